package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations a person sets on a ChatCluster for day-2 operations.
const (
	// AnnotationRotateKeysNow starts a key rotation of both kinds now. Any new value
	// starts one more rotation; the operator records the value it handled on the
	// keyring Secret, so the annotation can stay in place.
	AnnotationRotateKeysNow = "chat.parley.dev/rotate-keys-now"
	// AnnotationPaused set to "true" stops reconciliation, like spec.paused: the
	// operator changes no child and reports only the Paused condition.
	AnnotationPaused = "chat.parley.dev/paused"
	// AnnotationHibernate set to "true" scales the chat servers to zero replicas and
	// removes the autoscaler, keeping data, keys and configuration.
	AnnotationHibernate = "chat.parley.dev/hibernate"
	// AnnotationAcceptKeyringLoss set to "true" lets the operator replace a keyring
	// Secret that is missing (with a fresh keyring) or foreign (by adopting it),
	// although stored messages sealed with the recorded data keys then cannot be
	// read. The operator removes the annotation once it has looked at it, so it
	// never accepts a later loss on its own.
	AnnotationAcceptKeyringLoss = "chat.parley.dev/accept-keyring-loss"
)

// Key retention policies (spec.security.keyRetentionPolicy).
const (
	// KeyRetentionRetain keeps the keyring Secret when the ChatCluster is deleted:
	// it carries no owner reference, and a ChatCluster created again with the same
	// name adopts it.
	KeyRetentionRetain = "Retain"
	// KeyRetentionDelete lets the garbage collector delete the keyring Secret with
	// the ChatCluster (and every stored message becomes unreadable).
	KeyRetentionDelete = "Delete"
)

// Condition types reported in status.conditions.
const (
	ConditionReady               = "Ready"
	ConditionAvailable           = "Available"
	ConditionProgressing         = "Progressing"
	ConditionDegraded            = "Degraded"
	ConditionKeysReady           = "KeysReady"
	ConditionRedisReady          = "RedisReady"
	ConditionServiceMonitorReady = "ServiceMonitorReady"
	// ConditionPrometheusRuleReady is True when the operator keeps a
	// PrometheusRule with Parley's alerts for this ChatCluster.
	ConditionPrometheusRuleReady = "PrometheusRuleReady"
	// ConditionKeysPropagated is True when no staged key waits for chat server
	// pods to load it; False while a promotion waits (reasons Waiting and
	// KeyPropagationLagging).
	ConditionKeysPropagated = "KeysPropagated"
	// ConditionAttachmentsReady is True when attachments are kept where every
	// replica finds them and a restart keeps them (a shared or single-replica
	// volume, or S3); False when they would be lost or split between replicas,
	// or when the store's claim or Secret is missing.
	ConditionAttachmentsReady = "AttachmentsReady"
	// ConditionPaused is True while spec.paused (or the paused annotation) stops
	// reconciliation; Ready, Available, Progressing and Degraded are then
	// Unknown (reason Paused), since the operator no longer observes them.
	ConditionPaused = "Paused"
)

// ChatClusterSpec is the desired state of a Parley chat platform.
//
// +kubebuilder:validation:XValidation:rule="!has(self.database.sqlite) || ((!has(self.replicas) || self.replicas <= 1) && !has(self.autoscaling))",message="SQLite supports a single replica only: set spec.replicas to 1 and remove spec.autoscaling, or use spec.database.postgres"
// +kubebuilder:validation:XValidation:rule="has(self.redis) || ((!has(self.replicas) || self.replicas <= 1) && !has(self.autoscaling))",message="more than one replica needs spec.redis (managed or external) as the message backplane between replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.attachments) || !has(self.attachments.volume) || ((!has(self.replicas) || self.replicas <= 1) && (!has(self.autoscaling) || self.autoscaling.maxReplicas <= 1)) || (has(self.attachments.volume.accessModes) && self.attachments.volume.accessModes.exists(m, m == 'ReadWriteMany'))",message="spec.attachments.volume is mounted by every replica: with more than one replica (or autoscaling above one) its accessModes must include ReadWriteMany, or use spec.attachments.s3"
type ChatClusterSpec struct {
	// Paused stops reconciliation: the operator changes none of the children
	// (a spec change waits until paused is false again) and reports the Paused
	// condition instead of health it no longer observes. The chat servers keep
	// running as they are. The chat.parley.dev/paused annotation does the same.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// Image of the chat server. Defaults to ghcr.io/parley-chat/chatserver at the
	// operator's own version. Changing it rolls the pods one at a time with no
	// loss of capacity (maxUnavailable 0).
	// +optional
	Image string `json:"image,omitempty"`

	// ImagePullPolicy of the chat server container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ImagePullSecrets for the chat server and managed Redis pods.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// Replicas is the number of chat server pods when spec.autoscaling is not set.
	// The scale subresource (kubectl scale) changes this field. Default 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling lets a HorizontalPodAutoscaler own the replica count. When set,
	// spec.replicas is ignored.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// Resources of the chat server container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Scheduling constraints of the chat server pods.
	// +optional
	Scheduling SchedulingSpec `json:"scheduling,omitempty"`

	// Redis is the backplane between replicas (pub/sub, presence, shared rate
	// limits). Without it the single chat server uses in-process equivalents.
	// +optional
	Redis *RedisSpec `json:"redis,omitempty"`

	// Database where the chat server stores users, conversations and messages.
	Database DatabaseSpec `json:"database"`

	// Security settings: token lifetimes, allowed origins and key rotation.
	// +kubebuilder:default={}
	// +optional
	Security SecuritySpec `json:"security,omitempty"`

	// RateLimits applied per user and per IP.
	// +kubebuilder:default={}
	// +optional
	RateLimits RateLimitSpec `json:"rateLimits,omitempty"`

	// Server tunes the chat server process.
	// +kubebuilder:default={}
	// +optional
	Server ServerSpec `json:"server,omitempty"`

	// Ingress exposes the chat servers over HTTP(S). No Ingress when unset.
	// +optional
	Ingress *IngressSpec `json:"ingress,omitempty"`

	// Monitoring of the chat servers by Prometheus.
	// +kubebuilder:default={}
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitempty"`

	// Attachments says where uploaded files (images, documents, voice
	// messages), sealed with the keyring's data keys, are kept: a volume or an
	// S3 bucket, and their limits. When unset, a SQLite cluster keeps them on
	// its data volume; any other keeps them in each pod's emptyDir, where a
	// restart loses them and other replicas cannot read them, which the
	// AttachmentsReady condition reports.
	// +optional
	Attachments *AttachmentsSpec `json:"attachments,omitempty"`

	// Notifications tunes Web Push. Push needs no setting to work: the operator
	// adds the VAPID key to the keyring once every chat server can load it. When
	// unset the server's defaults apply.
	// +optional
	Notifications *NotificationsSpec `json:"notifications,omitempty"`
}

// NotificationsSpec tunes Web Push (docs/api.md, "Notifications"). The bounds
// and defaults are the chat server's own (pkg/settings), checked against the
// generated CRD by controllers/settings_test.go.
type NotificationsSpec struct {
	// Contact is where push services may write to the operators of this
	// server about its pushes (the VAPID "sub"): mailto:address or an
	// https:// URL. When unset the server's default applies: mailto:admin@localhost.
	// +kubebuilder:validation:Pattern=`^(mailto:[^@\s]+@[^@\s]+|https://[^/\s]+(/\S*)?)$`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Contact string `json:"contact,omitempty"`

	// Grace is how long after a message is stored its push waits, from 100ms
	// to 10m: a member who reads it or opens the page meanwhile is not pushed.
	// Default 3s.
	// +kubebuilder:default="3s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('10m')",message="notifications.grace must be between 100ms and 10m"
	// +optional
	Grace *metav1.Duration `json:"grace,omitempty"`

	// TTL is how long a push service keeps a push for a device that is
	// offline (the TTL header), from 1m to 672h. Default 24h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('672h')",message="notifications.ttl must be between 1m and 672h"
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// AttachmentsSpec selects the attachments store and sets the limits of uploads.
// The bounds and defaults of the limits are the chat server's own (pkg/settings),
// checked against the generated CRD by controllers/settings_test.go.
//
// +kubebuilder:validation:XValidation:rule="has(self.volume) != has(self.s3)",message="set exactly one of spec.attachments.volume and spec.attachments.s3"
// +kubebuilder:validation:XValidation:rule="!has(self.quotaMiB) || !has(self.maxAttachmentMiB) || self.quotaMiB >= self.maxAttachmentMiB",message="spec.attachments.quotaMiB must be at least spec.attachments.maxAttachmentMiB: a user could not upload even one file of the largest size"
type AttachmentsSpec struct {
	// Volume keeps attachments in a folder on a PersistentVolumeClaim, mounted
	// by every chat server pod: the operator's own claim <name>-attachments, or
	// an existing one (claimName). With more than one replica it must be
	// ReadWriteMany.
	// +optional
	Volume *AttachmentsVolumeSpec `json:"volume,omitempty"`

	// S3 keeps attachments in a bucket of an S3-compatible object store (AWS
	// S3, MinIO, Ceph RGW, SeaweedFS, ...): what clusters of several replicas
	// should use.
	// +optional
	S3 *S3Spec `json:"s3,omitempty"`

	// MaxAttachmentMiB is the largest file a user may upload, in MiB, from 1
	// to 10240. Default 100.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10240
	// +optional
	MaxAttachmentMiB int32 `json:"maxAttachmentMiB,omitempty"`

	// QuotaMiB is how much one user may keep in attachments, in MiB, from 1 to
	// 1048576, and at least maxAttachmentMiB. Default 1024.
	// +kubebuilder:default=1024
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1048576
	// +optional
	QuotaMiB int32 `json:"quotaMiB,omitempty"`

	// UploadExpiry is how long an upload may wait to be attached to a message
	// before it is deleted, from 1m to 720h. Default 24h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="uploadExpiry must be between 1m and 720h"
	// +optional
	UploadExpiry *metav1.Duration `json:"uploadExpiry,omitempty"`

	// MaxImageMegapixels is the largest image (width × height, in millions of
	// pixels) the server decodes for thumbnails, from 1 to 1000; larger ones
	// are refused before decoding. Default 50.
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxImageMegapixels int32 `json:"maxImageMegapixels,omitempty"`

	// MaxVoiceLength is the longest voice message, from 1s to 2h. Default 15m.
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('2h')",message="maxVoiceLength must be between 1s and 2h"
	// +optional
	MaxVoiceLength *metav1.Duration `json:"maxVoiceLength,omitempty"`
}

// AttachmentsVolumeSpec is the claim that holds the attachments folder: one the
// operator creates (size, storageClassName, accessModes) or an existing one
// (claimName). The operator never deletes a claim it did not create, nor its own
// when the spec stops using it (the files may still need copying).
//
// +kubebuilder:validation:XValidation:rule="!has(self.claimName) || (!has(self.size) && !has(self.storageClassName))",message="spec.attachments.volume.claimName names an existing claim: size and storageClassName describe one the operator creates; set one or the other"
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.attachments.volume cannot change after creation (a claim is not resized, moved or reclassified here): copy the files to another claim and name it in a new spec.attachments.volume, or move to spec.attachments.s3"
type AttachmentsVolumeSpec struct {
	// ClaimName of an existing PersistentVolumeClaim in the ChatCluster's
	// namespace. The operator checks that it exists (and, with more than one
	// replica, that it is ReadWriteMany) before it changes the Deployment.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	ClaimName string `json:"claimName,omitempty"`

	// Size of the claim the operator creates, <name>-attachments. Default 10Gi.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the claim the operator creates; the cluster default
	// when empty.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// AccessModes of the claim the operator creates; for an existing claim,
	// what it must offer. Default ReadWriteOnce, which allows one replica only
	// (and makes updates stop the old pod before starting the new one); more
	// replicas need ReadWriteMany.
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:Enum=ReadWriteOnce;ReadWriteMany;ReadWriteOncePod
	// +listType=set
	// +optional
	AccessModes []corev1.PersistentVolumeAccessMode `json:"accessModes,omitempty"`
}

// S3Spec is an S3-compatible bucket. The bucket must exist: the chat server
// checks it at start and stops with a clear message when it cannot reach it.
//
// +kubebuilder:validation:XValidation:rule="!self.endpoint.startsWith('http://') || (has(self.insecure) && self.insecure)",message="an http:// endpoint carries the S3 traffic unencrypted: set spec.attachments.s3.insecure: true to allow it, or use https://"
// +kubebuilder:validation:XValidation:rule="!has(self.insecure) || !self.insecure || !self.endpoint.startsWith('https://')",message="spec.attachments.s3.insecure: true means plain HTTP, but the endpoint says https://"
// +kubebuilder:validation:XValidation:rule="!has(self.insecure) || !self.insecure || !has(self.caSecret)",message="spec.attachments.s3.caSecret verifies a TLS server: it cannot go with insecure: true"
type S3Spec struct {
	// Endpoint of the S3 API: host[:port] or https://host[:port] (TLS), or
	// http://host[:port] with insecure: true. A DNS name or IPv4 address; no
	// path. For AWS, s3.<region>.amazonaws.com.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=270
	// +kubebuilder:validation:Pattern=`^(https?://)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$`
	Endpoint string `json:"endpoint"`

	// Bucket name, following S3's rules: 3 to 63 lowercase letters, digits,
	// dots and hyphens, starting and ending with a letter or digit, no two
	// dots in a row, not an IP address, not starting with xn-- nor ending in
	// -s3alias or --ol-s3. The bucket must exist.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9][a-z0-9.-]*[a-z0-9]$') && !self.contains('..') && !self.contains('.-') && !self.contains('-.') && !isIP(self) && !self.startsWith('xn--') && !self.endsWith('-s3alias') && !self.endsWith('--ol-s3')",message="bucket must be an S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, no two dots in a row, not an IP address, not starting with xn-- nor ending in -s3alias or --ol-s3"
	Bucket string `json:"bucket"`

	// Region of the bucket; when empty the client asks the server.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][-A-Za-z0-9_]*$`
	// +optional
	Region string `json:"region,omitempty"`

	// PathStyle addresses the bucket in the path (https://host/bucket/key)
	// rather than as a subdomain (https://bucket.host/key): what most
	// self-hosted servers (MinIO, SeaweedFS, Ceph RGW) need.
	// +optional
	PathStyle bool `json:"pathStyle,omitempty"`

	// CredentialsSecret holds the access key and secret key. The chat servers
	// read them from the Secret by reference (secretKeyRef): they are never
	// copied into the Deployment. When unset the chat server uses the AWS_*
	// variables or the pod's IAM role (IRSA). A change of the Secret rolls the
	// chat server pods.
	// +optional
	CredentialsSecret *S3CredentialsSecret `json:"credentialsSecret,omitempty"`

	// Insecure: plain HTTP, for an endpoint inside the cluster network or a
	// test server. Default false (TLS).
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// CASecret selects a Secret key with a PEM bundle of certificate
	// authorities that the chat server trusts for the endpoint, on top of the
	// system's: for a self-hosted server with a private CA. Mounted as a file
	// (PARLEY_S3_CA_FILE); a change rolls the pods.
	// +optional
	CASecret *S3CASecret `json:"caSecret,omitempty"`
}

// S3CredentialsSecret names a Secret and the keys of the access key and secret key in it.
type S3CredentialsSecret struct {
	// Name of the Secret, in the ChatCluster's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// AccessKeyKey is the key holding the access key id. Default accessKey.
	// +kubebuilder:default=accessKey
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	AccessKeyKey string `json:"accessKeyKey,omitempty"`

	// SecretKeyKey is the key holding the secret access key. Default secretKey.
	// +kubebuilder:default=secretKey
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	SecretKeyKey string `json:"secretKeyKey,omitempty"`
}

// S3CASecret names a Secret and the key of a PEM CA bundle in it.
type S3CASecret struct {
	// Name of the Secret, in the ChatCluster's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key holding the PEM bundle. Default ca.crt.
	// +kubebuilder:default="ca.crt"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler (autoscaling/v2) for the chat servers.
//
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="spec.autoscaling.minReplicas must be less than or equal to spec.autoscaling.maxReplicas"
type AutoscalingSpec struct {
	// MinReplicas is the lower bound of the replica count.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the upper bound of the replica count.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetCPUUtilizationPercentage is the average CPU utilization, relative to the
	// container's CPU request, the autoscaler aims for.
	// +kubebuilder:default=70
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`

	// TargetConnectionsPerPod is the average number of open WebSocket connections per
	// pod the autoscaler aims for, read from the per-pod custom metric
	// parley_ws_connections. Used only when the custom metrics API
	// (custom.metrics.k8s.io) is served, for example by prometheus-adapter.
	// +kubebuilder:validation:Minimum=1
	// +optional
	TargetConnectionsPerPod *int32 `json:"targetConnectionsPerPod,omitempty"`
}

// SchedulingSpec holds the usual pod scheduling constraints.
type SchedulingSpec struct {
	// NodeSelector of the chat server pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations of the chat server pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Affinity of the chat server pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// TopologySpreadConstraints of the chat server pods. When empty, pods are spread
	// across nodes (kubernetes.io/hostname, maxSkew 1, ScheduleAnyway).
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
}

// RedisSpec selects a managed Redis or an external one.
//
// +kubebuilder:validation:XValidation:rule="has(self.managed) != has(self.external)",message="set exactly one of spec.redis.managed and spec.redis.external: they are mutually exclusive"
type RedisSpec struct {
	// Managed runs a single Redis in the cluster, reachable only from the chat servers.
	// +optional
	Managed *ManagedRedisSpec `json:"managed,omitempty"`

	// External points the chat servers at an existing Redis.
	// +optional
	External *ExternalRedisSpec `json:"external,omitempty"`
}

// ManagedRedisSpec configures the Redis the operator runs (a one-replica StatefulSet).
//
// +kubebuilder:validation:XValidation:rule="has(self.persistence) == has(oldSelf.persistence)",message="spec.redis.managed.persistence cannot be added or removed after creation"
type ManagedRedisSpec struct {
	// Image of Redis.
	// +kubebuilder:default="docker.io/library/redis:7.4-alpine"
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of the Redis container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Persistence keeps Redis data (append-only file) on a PersistentVolumeClaim.
	// Without it Redis keeps nothing across restarts, which the chat servers
	// tolerate: Redis holds only ephemeral state.
	// +optional
	Persistence *PersistenceSpec `json:"persistence,omitempty"`
}

// PersistenceSpec describes a PersistentVolumeClaim.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="persistence settings are immutable (a StatefulSet cannot change its volume claims)"
type PersistenceSpec struct {
	// Size of the volume.
	// +kubebuilder:default="1Gi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the claim; the cluster default when empty.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// ExternalRedisSpec points at a Redis the operator does not manage.
type ExternalRedisSpec struct {
	// Address is host:port of the Redis server: a DNS name or IPv4 address and a port.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=260
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?:[0-9]{1,5}$`
	Address string `json:"address"`

	// PasswordSecretRef selects the Secret key holding the Redis password. A change
	// of the Secret rolls the chat server pods.
	// +optional
	PasswordSecretRef *corev1.SecretKeySelector `json:"passwordSecretRef,omitempty"`

	// TLS connects with rediss://.
	// +optional
	TLS bool `json:"tls,omitempty"`
}

// DatabaseSpec selects PostgreSQL or SQLite. The engine cannot change after creation.
//
// +kubebuilder:validation:XValidation:rule="has(self.postgres) != has(self.sqlite)",message="set exactly one of spec.database.postgres and spec.database.sqlite"
// +kubebuilder:validation:XValidation:rule="has(self.postgres) == has(oldSelf.postgres)",message="spec.database engine is immutable: a ChatCluster cannot move between SQLite and PostgreSQL"
type DatabaseSpec struct {
	// Postgres connects to a PostgreSQL database shared by all replicas.
	// +optional
	Postgres *PostgresSpec `json:"postgres,omitempty"`

	// SQLite stores the database in a file on a PersistentVolumeClaim. Only for a
	// single replica.
	// +optional
	SQLite *SQLiteSpec `json:"sqlite,omitempty"`
}

// PostgresSpec says where the PostgreSQL database is: a connection string in a
// Secret, or a CloudNativePG Cluster.
//
// +kubebuilder:validation:XValidation:rule="has(self.dsnSecretRef) != has(self.cloudNativePG)",message="set exactly one of spec.database.postgres.dsnSecretRef and spec.database.postgres.cloudNativePG"
type PostgresSpec struct {
	// DSNSecretRef selects the Secret key holding the PostgreSQL connection string
	// (postgres://user:password@host:5432/db?sslmode=require). A change of the
	// Secret rolls the chat server pods.
	// +optional
	DSNSecretRef corev1.SecretKeySelector `json:"dsnSecretRef,omitzero"`

	// CloudNativePG names a CloudNativePG Cluster (postgresql.cnpg.io/v1) in
	// the ChatCluster's namespace. The operator waits for it to be ready, and the
	// chat servers connect to its read-write Service (<cluster>-rw) as the
	// application user of its application Secret (<cluster>-app, or the
	// bootstrap's own secret), to its application database.
	// +optional
	CloudNativePG *CloudNativePGRef `json:"cloudNativePG,omitempty"`
}

// CloudNativePGRef references a CloudNativePG Cluster.
type CloudNativePGRef struct {
	// ClusterName of the postgresql.cnpg.io/v1 Cluster.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	ClusterName string `json:"clusterName"`
}

// SQLiteSpec describes the volume holding the SQLite database.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.database.sqlite is immutable (the volume claim is not resized or moved)"
type SQLiteSpec struct {
	// Size of the volume.
	// +kubebuilder:default="1Gi"
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`

	// StorageClassName of the claim; the cluster default when empty.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// SecuritySpec holds token lifetimes, origins and key rotation.
//
// The bounds below are the chat server's own (pkg/settings); markers cannot
// import them, so controllers/settings_test.go compares the generated CRD with them.
//
// +kubebuilder:validation:XValidation:rule="!has(self.accessTokenTTL) || !has(self.refreshTokenTTL) || duration(self.refreshTokenTTL) > duration(self.accessTokenTTL)",message="security.refreshTokenTTL must be longer than security.accessTokenTTL"
type SecuritySpec struct {
	// AccessTokenTTL is the lifetime of access tokens (JWT), from 1s to 1h.
	// Default 15m.
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="accessTokenTTL must be between 1s and 1h"
	// +optional
	AccessTokenTTL *metav1.Duration `json:"accessTokenTTL,omitempty"`

	// RefreshTokenTTL is the lifetime of refresh tokens, from 1m to 8760h, and
	// longer than accessTokenTTL. Default 720h.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('8760h')",message="refreshTokenTTL must be between 1m and 8760h"
	// +optional
	RefreshTokenTTL *metav1.Duration `json:"refreshTokenTTL,omitempty"`

	// AllowedOrigins are the browser origins (http://host[:port] or
	// https://host[:port], host a DNS name or IPv4 address) allowed to open
	// WebSockets and call the API. Empty allows only same-origin requests.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=270
	// +kubebuilder:validation:items:Pattern=`^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$`
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`

	// TrustedProxies are the IP addresses or CIDRs of proxies whose
	// X-Forwarded-For the server believes.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(p, isCIDR(p) || isIP(p))",message="trustedProxies must be IP addresses or CIDRs, such as 10.0.0.0/8"
	TrustedProxies []string `json:"trustedProxies,omitempty"`

	// KeyRotation schedules the rotation of the signing and encryption keys.
	// +kubebuilder:default={}
	// +optional
	KeyRotation KeyRotationSpec `json:"keyRotation,omitempty"`

	// KeyRetentionPolicy says what happens to the keyring Secret (<name>-keys) when
	// the ChatCluster is deleted. Retain (the default) leaves it in place, without
	// an owner reference, and a ChatCluster created again with the same name adopts
	// it; Delete lets the garbage collector remove it, which makes every stored
	// message unreadable.
	// +kubebuilder:default=Retain
	// +kubebuilder:validation:Enum=Retain;Delete
	// +optional
	KeyRetentionPolicy string `json:"keyRetentionPolicy,omitempty"`
}

// KeyRotationSpec schedules key rotation. A rotation first stages a new key
// (servers can verify and decrypt with it), and makes it active only after the
// propagation window and once every ready server reports it loaded, so every
// server knows a key before anything uses it.
//
// +kubebuilder:validation:XValidation:rule="!has(self.jwtKeyInterval) || !has(self.propagationWindow) || duration(self.jwtKeyInterval) > duration(self.propagationWindow)",message="keyRotation.jwtKeyInterval must be longer than keyRotation.propagationWindow"
// +kubebuilder:validation:XValidation:rule="!has(self.dataKeyInterval) || !has(self.propagationWindow) || duration(self.dataKeyInterval) > duration(self.propagationWindow)",message="keyRotation.dataKeyInterval must be longer than keyRotation.propagationWindow"
type KeyRotationSpec struct {
	// JWTKeyInterval is how long a JWT signing key stays active. Default 720h.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('8760h')",message="jwtKeyInterval must be between 1m and 8760h"
	// +optional
	JWTKeyInterval *metav1.Duration `json:"jwtKeyInterval,omitempty"`

	// DataKeyInterval is how long a data encryption key stays active. Default 2160h.
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('87600h')",message="dataKeyInterval must be between 1m and 87600h"
	// +optional
	DataKeyInterval *metav1.Duration `json:"dataKeyInterval,omitempty"`

	// PropagationWindow is the least time a staged key waits before it becomes
	// active; it then also waits until every ready chat server pod reports it
	// loaded. From 2m: a Secret volume reaches a pod within the kubelet's sync
	// period (60s by default, plus jitter) and its Secret cache's delay (watch
	// propagation, or up to the TTL of a TTL cache), and the server reloads
	// within 5s more. Default 5m.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('2m') && duration(self) <= duration('24h')",message="propagationWindow must be between 2m and 24h"
	// +optional
	PropagationWindow *metav1.Duration `json:"propagationWindow,omitempty"`
}

// RateLimitSpec holds limits written as "<count>/<duration>", e.g. "10/5m": a
// count from 1 to 9999999 over 1 to 99999 seconds (s), minutes (m) or hours (h).
type RateLimitSpec struct {
	// Login and register attempts per IP and per account. Default 10/5m.
	// +kubebuilder:default="10/5m"
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]{0,6}/[1-9][0-9]{0,4}(s|m|h)$`
	// +optional
	Login string `json:"login,omitempty"`

	// Messages sent per user. Default 60/1m.
	// +kubebuilder:default="60/1m"
	// +kubebuilder:validation:Pattern=`^[1-9][0-9]{0,6}/[1-9][0-9]{0,4}(s|m|h)$`
	// +optional
	Messages string `json:"messages,omitempty"`
}

// ServerSpec tunes the chat server process. The bounds are the server's own
// (pkg/settings), checked against the generated CRD by controllers/settings_test.go.
type ServerSpec struct {
	// MaxMessageChars is the longest message body accepted, in characters, from 1
	// to 100000. Default 4000. The operator raises the server's WebSocket frame
	// limit (PARLEY_MAX_FRAME_BYTES) when the default frame cannot hold such a message.
	// +kubebuilder:default=4000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxMessageChars int32 `json:"maxMessageChars,omitempty"`

	// MaxConnections caps the WebSocket connections per pod, from 1 to 10000000.
	// When unset the server's default applies: 10000.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	// +optional
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// ShutdownTimeout is how long a stopping pod drains its connections, from 1s
	// to 10m. Default 25s. The pod's termination grace period is set above it.
	// +kubebuilder:default="25s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('10m')",message="shutdownTimeout must be between 1s and 10m"
	// +optional
	ShutdownTimeout *metav1.Duration `json:"shutdownTimeout,omitempty"`

	// LogLevel of the chat server: debug, info, warn or error. Default info.
	// +kubebuilder:default=info
	// +kubebuilder:validation:Enum=debug;info;warn;error
	// +optional
	LogLevel string `json:"logLevel,omitempty"`
}

// IngressSpec exposes the chat servers through an Ingress.
type IngressSpec struct {
	// ClassName of the Ingress controller; the cluster default when unset.
	// +optional
	ClassName *string `json:"className,omitempty"`

	// Host name the Ingress serves.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// TLSSecretName names a kubernetes.io/tls Secret for the host. Plain HTTP when empty.
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
}

// MonitoringSpec configures scraping by Prometheus.
type MonitoringSpec struct {
	// ServiceMonitor creates a monitoring.coreos.com/v1 ServiceMonitor when the
	// Prometheus Operator's CRD is installed. Without the CRD, pods carry
	// prometheus.io/scrape annotations instead.
	// +optional
	ServiceMonitor bool `json:"serviceMonitor,omitempty"`

	// PrometheusRule creates a monitoring.coreos.com/v1 PrometheusRule with
	// Parley's alerts (docs/runbooks/), scoped to this ChatCluster, when the
	// Prometheus Operator's CRD is installed. The alerts read the chatcluster
	// label that the operator's ServiceMonitor adds, so it needs serviceMonitor.
	// +optional
	PrometheusRule bool `json:"prometheusRule,omitempty"`

	// Interval between scrapes. Default 30s.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Pattern=`^[0-9]+(ms|s|m)$`
	// +optional
	Interval string `json:"interval,omitempty"`
}

// ChatClusterStatus is the observed state of a ChatCluster.
type ChatClusterStatus struct {
	// ObservedGeneration is the .metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Available, Progressing, Degraded, KeysReady, RedisReady,
	// ServiceMonitorReady, PrometheusRuleReady, KeysPropagated, AttachmentsReady
	// and Paused.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Replicas is the number of chat server pods (the scale subresource reads it).
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of available chat server pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// DesiredReplicas is the replica count the operator asks for (0 when hibernating;
	// the autoscaler's current choice when autoscaling).
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas,omitempty"`

	// Selector is the label selector of the chat server pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// Endpoint is where clients connect: the Ingress URL or the in-cluster Service URL.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// Image the chat servers run, updated once a rollout has completed.
	// +optional
	Image string `json:"image,omitempty"`

	// Version is the tag of Image.
	// +optional
	Version string `json:"version,omitempty"`

	// PendingImage is the operator's new default image while this ChatCluster
	// waits for its turn to move to it: after an operator upgrade, ChatClusters
	// without spec.image roll one at a time.
	// +optional
	PendingImage string `json:"pendingImage,omitempty"`

	// Keys reports key ids and rotation times, never key material.
	// +optional
	Keys KeysStatus `json:"keys,omitempty"`
}

// KeysStatus reports the keyring without any key material.
type KeysStatus struct {
	// ActiveJWTKeyID is the id of the key that signs new tokens.
	// +optional
	ActiveJWTKeyID string `json:"activeJWTKeyID,omitempty"`
	// ActiveDataKeyID is the id of the key that encrypts new data.
	// +optional
	ActiveDataKeyID string `json:"activeDataKeyID,omitempty"`
	// StagedKeyIDs are keys waiting for the propagation window to end and for
	// every ready chat server pod to load them.
	// +optional
	StagedKeyIDs []string `json:"stagedKeyIDs,omitempty"`
	// LastJWTRotation is when the active JWT key became active.
	// +optional
	LastJWTRotation *metav1.Time `json:"lastJWTRotation,omitempty"`
	// LastDataRotation is when the active data key became active.
	// +optional
	LastDataRotation *metav1.Time `json:"lastDataRotation,omitempty"`
	// DataKeys records the data keys of the keyring the operator last accepted. A
	// keyring Secret without the recorded active data key, or with a recorded id
	// holding other key material, is foreign: the operator refuses it rather than
	// strand the stored messages sealed with the recorded keys.
	// +optional
	// +listType=map
	// +listMapKey=id
	DataKeys []RecordedKey `json:"dataKeys,omitempty"`
	// Epoch counts keyring replacements accepted with the accept-keyring-loss
	// annotation. The chat server pods carry it and restart when it changes: a
	// running chat server refuses to reload a keyring that does not continue
	// the one it has.
	// +optional
	Epoch int64 `json:"epoch,omitempty"`
}

// RecordedKey identifies a key without revealing it.
type RecordedKey struct {
	// ID of the key.
	ID string `json:"id"`
	// State of the key when recorded: staged, active or retired.
	// +optional
	State string `json:"state,omitempty"`
	// Fingerprint is the first 16 hex digits of a SHA-256 digest of the key
	// material (domain-separated): it tells keys apart, it does not reveal them.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
}

// ChatCluster is a Parley chat platform: chat servers, their Redis backplane,
// database connection, keyring and exposure.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=chat;chats,categories=parley
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,description="Why Ready is what it is: Ready, RollingOut, Unavailable, KeysNotReady, RedisNotReady, Hibernating, Paused, ..."
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version`,priority=1
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.status.image`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=string,JSONPath=`.status.pendingImage`,priority=1,description="The operator's new default image this ChatCluster waits to roll to"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ChatCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ChatClusterSpec   `json:"spec,omitempty"`
	Status ChatClusterStatus `json:"status,omitempty"`
}

// ChatClusterList is a list of ChatClusters.
//
// +kubebuilder:object:root=true
type ChatClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ChatCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ChatCluster{}, &ChatClusterList{})
}
