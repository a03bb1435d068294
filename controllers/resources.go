package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/keyringfile"
	"github.com/parley-chat/parley/pkg/settings"
)

// Constants of the chat server contract (see docs/operator.md).
const (
	ChatPort    = 8080
	ServicePort = 80
	RedisPort   = 6379
	// MetricsPort is the chat server's own listener for /metrics (PARLEY_METRICS_ADDR),
	// which the client-facing Service and the Ingress never route to.
	MetricsPort     = 9090
	chatUID         = 65532
	redisUID        = 999
	containerName   = "chatserver"
	keyringDir      = "/etc/parley/keys"
	dataDir         = "/var/lib/parley"
	sqliteURL       = "sqlite:///var/lib/parley/parley.db"
	preStopSeconds  = 5
	graceAboveDrain = 10 // seconds of termination grace beyond the server's shutdown timeout

	// RedisPasswordKey is the key of the managed Redis password in <name>-redis-auth.
	RedisPasswordKey = "password"
	// redisConfKey holds a redis.conf fragment with requirepass, derived from the
	// password, so the password reaches redis-server through a file and never an argument.
	redisConfKey    = "redis.conf"
	redisAuthDir    = "/etc/redis/auth"
	redisCLIAuthEnv = "REDISCLI_AUTH" // read by redis-cli, so the probe authenticates without -a

	// AnnotationConfigHash on the pod template changes whenever the configuration or
	// a referenced Secret changes, which rolls the pods.
	AnnotationConfigHash = "chat.parley.dev/config-hash"
	// AnnotationKeyringEpoch on the pod template follows status.keys.epoch: a
	// keyring replaced by accepting its loss rolls the pods onto it (running
	// servers refuse to reload a keyring that does not continue theirs).
	AnnotationKeyringEpoch = "chat.parley.dev/keyring-epoch"
	// AnnotationRotateNowHandled on the keyring Secret records the last value of the
	// rotate-now annotation the operator acted on.
	AnnotationRotateNowHandled = "chat.parley.dev/rotate-keys-now-handled"

	defaultImageRepo  = "ghcr.io/parley-chat/chatserver"
	defaultRedisImage = "docker.io/library/redis:7.4-alpine"
)

// Names of the objects a ChatCluster owns.
func chatName(cc *chatv1alpha1.ChatCluster) string       { return cc.Name }
func configMapName(cc *chatv1alpha1.ChatCluster) string  { return cc.Name + "-config" }
func keysSecretName(cc *chatv1alpha1.ChatCluster) string { return cc.Name + "-keys" }
func redisName(cc *chatv1alpha1.ChatCluster) string      { return cc.Name + "-redis" }
func dataClaimName(cc *chatv1alpha1.ChatCluster) string  { return cc.Name + "-data" }
func redisAuthName(cc *chatv1alpha1.ChatCluster) string  { return cc.Name + "-redis-auth" }
func metricsName(cc *chatv1alpha1.ChatCluster) string    { return cc.Name + "-metrics" }

// RedisAuthSecretName is the name of the Secret with the managed Redis password.
func RedisAuthSecretName(cc *chatv1alpha1.ChatCluster) string { return redisAuthName(cc) }

// KeysSecretName is the name of the keyring Secret of a ChatCluster.
func KeysSecretName(cc *chatv1alpha1.ChatCluster) string { return keysSecretName(cc) }

// selectorLabels are stable for the life of the ChatCluster: a Deployment's
// selector is immutable.
func selectorLabels(cc *chatv1alpha1.ChatCluster, component string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "parley",
		"app.kubernetes.io/instance":  cc.Name,
		"app.kubernetes.io/component": component,
	}
}

func objectLabels(cc *chatv1alpha1.ChatCluster, component string) map[string]string {
	l := selectorLabels(cc, component)
	l["app.kubernetes.io/managed-by"] = FieldOwner
	l["app.kubernetes.io/part-of"] = "parley"
	return l
}

func meta(cc *chatv1alpha1.ChatCluster, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: cc.Namespace,
		Labels:    objectLabels(cc, component),
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: chatv1alpha1.GroupVersion.String(),
			Kind:       "ChatCluster",
			Name:       cc.Name,
			UID:        cc.UID,
			Controller: ptr.To(true),
			// Not BlockOwnerDeletion: the garbage collector removes the
			// children either way, and blocking would need update on
			// chatclusters/finalizers where OwnerReferencesPermissionEnforcement
			// is on, for a finalizer the operator never sets.
		}},
	}
}

// Settings are the spec with every default resolved. The API server applies the
// CRD defaults; resolving them again here keeps the builders total on any input.
type Settings struct {
	Image             string
	Replicas          int32
	Hibernate         bool
	AccessTokenTTL    time.Duration
	RefreshTokenTTL   time.Duration
	JWTInterval       time.Duration
	DataInterval      time.Duration
	PropagationWindow time.Duration
	ShutdownTimeout   time.Duration
	MaxMessageChars   int
}

func durOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}

// Resolve returns the effective settings of a ChatCluster for an operator of the given version.
func Resolve(cc *chatv1alpha1.ChatCluster, operatorVersion string) Settings {
	s := Settings{
		Image:             cc.Spec.Image,
		Replicas:          ptr.Deref(cc.Spec.Replicas, 1),
		Hibernate:         cc.Annotations[chatv1alpha1.AnnotationHibernate] == "true",
		AccessTokenTTL:    durOr(cc.Spec.Security.AccessTokenTTL, settings.AccessTokenTTL.Def),
		RefreshTokenTTL:   durOr(cc.Spec.Security.RefreshTokenTTL, settings.RefreshTokenTTL.Def),
		JWTInterval:       durOr(cc.Spec.Security.KeyRotation.JWTKeyInterval, 720*time.Hour),
		DataInterval:      durOr(cc.Spec.Security.KeyRotation.DataKeyInterval, 2160*time.Hour),
		PropagationWindow: durOr(cc.Spec.Security.KeyRotation.PropagationWindow, 5*time.Minute),
		ShutdownTimeout:   durOr(cc.Spec.Server.ShutdownTimeout, settings.ShutdownTimeout.Def),
		MaxMessageChars:   int(orInt(cc.Spec.Server.MaxMessageChars, int32(settings.MaxMessageChars.Def))),
	}
	if s.Image == "" {
		s.Image = defaultImageRepo + ":" + operatorVersion
	}
	return s
}

// autoscaled reports whether an HPA owns the replica count.
func (s Settings) autoscaled(cc *chatv1alpha1.ChatCluster) bool {
	return cc.Spec.Autoscaling != nil && !s.Hibernate
}

// imageTag returns the tag (or digest) of an image reference.
func imageTag(image string) string {
	if i := strings.LastIndex(image, "@"); i >= 0 {
		return image[i+1:]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return "latest"
}

func redisURL(cc *chatv1alpha1.ChatCluster) string {
	switch {
	case cc.Spec.Redis == nil:
		return ""
	case cc.Spec.Redis.Managed != nil:
		return fmt.Sprintf("redis://%s:%d/0", redisName(cc), RedisPort)
	case cc.Spec.Redis.External != nil:
		scheme := "redis"
		if cc.Spec.Redis.External.TLS {
			scheme = "rediss"
		}
		return fmt.Sprintf("%s://%s/0", scheme, cc.Spec.Redis.External.Address)
	}
	return ""
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ConfigMap holds the chat server's non-secret configuration as environment
// variables. Names and defaults come from pkg/settings, the server's own
// definition, so the server reads exactly what is written here.
func ConfigMap(cc *chatv1alpha1.ChatCluster, s Settings) *corev1.ConfigMap {
	data := map[string]string{
		settings.Addr.Env:            fmt.Sprintf(":%d", ChatPort),
		settings.MetricsAddr.Env:     fmt.Sprintf(":%d", MetricsPort),
		settings.DataDir.Env:         dataDir,
		settings.KeyringDir.Env:      keyringDir,
		settings.AllowedOrigins.Env:  strings.Join(cc.Spec.Security.AllowedOrigins, ","),
		settings.TrustedProxies.Env:  strings.Join(cc.Spec.Security.TrustedProxies, ","),
		settings.AccessTokenTTL.Env:  s.AccessTokenTTL.String(),
		settings.RefreshTokenTTL.Env: s.RefreshTokenTTL.String(),
		settings.RateLogin.Env:       orDefault(cc.Spec.RateLimits.Login, settings.RateLogin.Default),
		settings.RateMessages.Env:    orDefault(cc.Spec.RateLimits.Messages, settings.RateMessages.Default),
		settings.MaxMessageChars.Env: strconv.Itoa(s.MaxMessageChars),
		settings.ShutdownTimeout.Env: s.ShutdownTimeout.String(),
		settings.LogLevel.Env:        orDefault(cc.Spec.Server.LogLevel, settings.LogLevel.Default),
		settings.RedisURL.Env:        redisURL(cc),
	}
	// The server refuses frames too small for the longest message. Set only when
	// the server's default is too small, so that other clusters' ConfigMaps (and
	// their config hash) stay as they were.
	if settings.MinFrameBytes(s.MaxMessageChars) > settings.MaxFrameBytes.Def {
		data[settings.MaxFrameBytes.Env] = strconv.Itoa(settings.FrameBytesFor(s.MaxMessageChars))
	}
	if cc.Spec.Server.MaxConnections != nil {
		data[settings.MaxConnections.Env] = strconv.Itoa(int(*cc.Spec.Server.MaxConnections))
	}
	if cc.Spec.Database.SQLite != nil {
		data[settings.DatabaseURL.Env] = sqliteURL
	}
	attachmentsConfig(cc, data)
	notificationsConfig(cc, data)
	// Empty values would override the server's own defaults with "".
	for k, v := range data {
		if v == "" {
			delete(data, k)
		}
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta(cc, configMapName(cc), "chatserver"),
		Data:       data,
	}
	return cm
}

func orInt(v, def int32) int32 {
	if v == 0 {
		return def
	}
	return v
}

// ConfigHash digests everything that should roll the pods when it changes: the
// ConfigMap data and the values of the referenced Secret keys. The keyring is not
// part of it: servers reload it in place.
func ConfigHash(cm *corev1.ConfigMap, secretValues map[string][]byte) string {
	h := sha256.New()
	write := func(k string, v []byte) {
		fmt.Fprintf(h, "%d:%s=%d:", len(k), k, len(v))
		h.Write(v)
	}
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		write("cm/"+k, []byte(cm.Data[k]))
	}
	keys = keys[:0]
	for k := range secretValues {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		write("secret/"+k, secretValues[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// ServiceAccount of the chat servers; they need no API access, so no token is mounted.
func ServiceAccount(cc *chatv1alpha1.ChatCluster) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   meta(cc, chatName(cc), "chatserver"),
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// KeysSecret holds the keyring document. With the Retain policy (the default) it
// has no owner reference, so the garbage collector keeps it when the ChatCluster
// goes, and a ChatCluster created again with the same name adopts it; applying it
// without one also removes the reference an older operator set.
func KeysSecret(cc *chatv1alpha1.ChatCluster, keyring []byte, rotateNowHandled string) *corev1.Secret {
	sec := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(cc, keysSecretName(cc), "keyring"),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{keyringfile.FileName: keyring},
	}
	if cc.Spec.Security.KeyRetentionPolicy != chatv1alpha1.KeyRetentionDelete {
		sec.OwnerReferences = nil
	}
	if rotateNowHandled != "" {
		sec.Annotations = map[string]string{AnnotationRotateNowHandled: rotateNowHandled}
	}
	return sec
}

// DataClaim is the volume of the SQLite database.
func DataClaim(cc *chatv1alpha1.ChatCluster) *corev1.PersistentVolumeClaim {
	sq := cc.Spec.Database.SQLite
	size := sizeOr(sq.Size)
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: meta(cc, dataClaimName(cc), "chatserver"),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: sq.StorageClassName,
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
		},
	}
}

// sizeOr returns the requested volume size, 1Gi when unset.
func sizeOr(q *resource.Quantity) resource.Quantity {
	if q == nil || q.IsZero() {
		return resource.MustParse("1Gi")
	}
	return q.DeepCopy()
}

func restrictedContainerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func podSecurity(uid int64) *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To(uid),
		RunAsGroup:     ptr.To(uid),
		FSGroup:        ptr.To(uid),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// DeploymentInput is what the Deployment depends on besides the ChatCluster.
type DeploymentInput struct {
	ConfigHash string
	// PrometheusAnnotations marks pods for annotation-based scraping, used when no
	// ServiceMonitor is possible.
	PrometheusAnnotations bool
	// AttachmentsClaimShared: the attachments claim (spec.attachments.volume) is
	// ReadWriteMany, as the reconciler found it. Otherwise an update must stop
	// the old pod before the new one can mount the claim.
	AttachmentsClaimShared bool
	// CloudNativePG is the database of spec.database.postgres.cloudNativePG,
	// read from its Cluster by the reconciler.
	CloudNativePG *cnpgDatabase
}

// Deployment runs the chat servers.
func Deployment(cc *chatv1alpha1.ChatCluster, s Settings, in DeploymentInput) *appsv1.Deployment {
	sel := selectorLabels(cc, "chatserver")
	podLabels := objectLabels(cc, "chatserver")
	annotations := map[string]string{AnnotationConfigHash: in.ConfigHash}
	if e := cc.Status.Keys.Epoch; e > 0 {
		annotations[AnnotationKeyringEpoch] = strconv.FormatInt(e, 10)
	}
	if in.PrometheusAnnotations {
		annotations["prometheus.io/scrape"] = "true"
		annotations["prometheus.io/port"] = strconv.Itoa(MetricsPort)
		annotations["prometheus.io/path"] = "/metrics"
	}

	env := []corev1.EnvVar{}
	switch pg := cc.Spec.Database.Postgres; {
	case pg != nil && in.CloudNativePG != nil:
		// The connection string names the read-write Service and the database;
		// the user and password come from CloudNativePG's Secret through the
		// variables pgx reads for what the string leaves out.
		key := func(k string) *corev1.EnvVarSource {
			return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: in.CloudNativePG.Secret}, Key: k}}
		}
		env = append(env,
			corev1.EnvVar{Name: settings.DatabaseURL.Env, Value: in.CloudNativePG.DSN},
			corev1.EnvVar{Name: envPGUser, ValueFrom: key("username")},
			corev1.EnvVar{Name: envPGPassword, ValueFrom: key("password")})
	case pg != nil:
		env = append(env, corev1.EnvVar{Name: settings.DatabaseURL.Env, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: pg.DSNSecretRef.LocalObjectReference, Key: pg.DSNSecretRef.Key},
		}})
	}
	if r := cc.Spec.Redis; r != nil && r.External != nil && r.External.PasswordSecretRef != nil {
		ref := r.External.PasswordSecretRef
		env = append(env, corev1.EnvVar{Name: settings.RedisPassword.Env, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: ref.LocalObjectReference, Key: ref.Key},
		}})
	}
	if r := cc.Spec.Redis; r != nil && r.Managed != nil {
		env = append(env, redisPasswordEnv(cc, settings.RedisPassword.Env))
	}
	env = append(env, attachmentsEnv(cc)...)
	extraVolumes, extraMounts := attachmentsVolumes(cc)

	dataVolume := corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	strategy := appsv1.DeploymentStrategy{
		// New pods come up before old ones go: an upgrade never lowers capacity.
		Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{
			MaxUnavailable: ptr.To(intstr.FromInt32(0)),
			MaxSurge:       ptr.To(intstr.FromInt32(1)),
		},
	}
	if cc.Spec.Database.SQLite != nil {
		dataVolume.VolumeSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: dataClaimName(cc)}}
		// One writer on a ReadWriteOnce volume: the old pod must stop first.
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}
	if AttachmentsClaimName(cc) != "" && !in.AttachmentsClaimShared {
		// The same for a ReadWriteOnce attachments claim: a surge pod on
		// another node could not attach it, and the rollout would stall.
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}

	spread := cc.Spec.Scheduling.TopologySpreadConstraints
	if len(spread) == 0 {
		spread = []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       "kubernetes.io/hostname",
			WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: sel},
		}}
	}

	pullPolicy := cc.Spec.ImagePullPolicy
	if pullPolicy == "" {
		pullPolicy = corev1.PullIfNotPresent
	}

	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(cc, chatName(cc), "chatserver"),
		Spec: appsv1.DeploymentSpec{
			Selector:             &metav1.LabelSelector{MatchLabels: sel},
			Strategy:             strategy,
			RevisionHistoryLimit: ptr.To[int32](5),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec: corev1.PodSpec{
					ServiceAccountName:            chatName(cc),
					AutomountServiceAccountToken:  ptr.To(false),
					ImagePullSecrets:              cc.Spec.ImagePullSecrets,
					SecurityContext:               podSecurity(chatUID),
					TerminationGracePeriodSeconds: ptr.To(int64(s.ShutdownTimeout/time.Second) + preStopSeconds + graceAboveDrain),
					NodeSelector:                  cc.Spec.Scheduling.NodeSelector,
					Tolerations:                   cc.Spec.Scheduling.Tolerations,
					Affinity:                      cc.Spec.Scheduling.Affinity,
					TopologySpreadConstraints:     spread,
					Containers: []corev1.Container{{
						Name:            containerName,
						Image:           s.Image,
						ImagePullPolicy: pullPolicy,
						Command:         []string{"/chatserver"},
						Ports: []corev1.ContainerPort{
							{Name: "http", ContainerPort: ChatPort, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
						},
						EnvFrom:   []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(cc)}}}},
						Env:       env,
						Resources: cc.Spec.Resources,
						LivenessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
							PeriodSeconds:    10,
							TimeoutSeconds:   2,
							FailureThreshold: 3,
							SuccessThreshold: 1,
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}},
							PeriodSeconds:    5,
							TimeoutSeconds:   2,
							FailureThreshold: 2,
							SuccessThreshold: 1,
						},
						// The sleep lets endpoints drop the pod before the server starts draining.
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: preStopSeconds}}},
						VolumeMounts: append([]corev1.VolumeMount{
							{Name: "keys", MountPath: keyringDir, ReadOnly: true},
							{Name: "data", MountPath: dataDir},
							{Name: "tmp", MountPath: "/tmp"},
						}, extraMounts...),
						SecurityContext:          restrictedContainerSecurity(),
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}},
					Volumes: append([]corev1.Volume{
						{Name: "keys", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: keysSecretName(cc), DefaultMode: ptr.To[int32](0o440)}}},
						dataVolume,
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					}, extraVolumes...),
				},
			},
		},
	}
	switch {
	case s.Hibernate:
		dep.Spec.Replicas = ptr.To[int32](0)
	case s.autoscaled(cc):
		// The HPA owns spec.replicas; leaving the field out of the apply gives up
		// our ownership of it.
	default:
		dep.Spec.Replicas = ptr.To(s.Replicas)
	}
	return dep
}

// Service fronts the chat servers.
func Service(cc *chatv1alpha1.ChatCluster) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(cc, chatName(cc), "chatserver"),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(cc, "chatserver"),
			Ports: []corev1.ServicePort{{
				Name: "http", Port: ServicePort, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// MetricsService exposes the chat servers' metrics listener to Prometheus, apart
// from the client-facing Service (which the Ingress uses). Headless: Prometheus
// scrapes every pod through its endpoints, and there is no load-balanced address
// for /metrics at all.
func MetricsService(cc *chatv1alpha1.ChatCluster) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(cc, metricsName(cc), "metrics"),
		Spec: corev1.ServiceSpec{
			Type:      corev1.ServiceTypeClusterIP,
			ClusterIP: corev1.ClusterIPNone,
			Selector:  selectorLabels(cc, "chatserver"),
			Ports: []corev1.ServicePort{{
				Name: "metrics", Port: MetricsPort, TargetPort: intstr.FromString("metrics"), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// Endpoint is the URL clients use: the Ingress host when there is one.
func Endpoint(cc *chatv1alpha1.ChatCluster) string {
	if ing := cc.Spec.Ingress; ing != nil {
		if ing.TLSSecretName != "" {
			return "https://" + ing.Host
		}
		return "http://" + ing.Host
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", chatName(cc), cc.Namespace, ServicePort)
}

// Ingress exposes the Service; nil when spec.ingress is unset.
func Ingress(cc *chatv1alpha1.ChatCluster) *networkingv1.Ingress {
	spec := cc.Spec.Ingress
	if spec == nil {
		return nil
	}
	ing := &networkingv1.Ingress{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
		ObjectMeta: meta(cc, chatName(cc), "chatserver"),
		Spec: networkingv1.IngressSpec{
			IngressClassName: spec.ClassName,
			Rules: []networkingv1.IngressRule{{
				Host: spec.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: ptr.To(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: chatName(cc), Port: networkingv1.ServiceBackendPort{Name: "http"},
						}},
					}},
				}},
			}},
		},
	}
	if spec.TLSSecretName != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{spec.Host}, SecretName: spec.TLSSecretName}}
	}
	return ing
}

// HPA scales the chat server Deployment; nil unless autoscaling is on.
// customMetrics tells whether the custom metrics API is served.
func HPA(cc *chatv1alpha1.ChatCluster, s Settings, customMetrics bool) *autoscalingv2.HorizontalPodAutoscaler {
	if !s.autoscaled(cc) {
		return nil
	}
	as := cc.Spec.Autoscaling
	metrics := []autoscalingv2.MetricSpec{{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricSource{
			Name:   corev1.ResourceCPU,
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(ptr.Deref(as.TargetCPUUtilizationPercentage, 70))},
		},
	}}
	if as.TargetConnectionsPerPod != nil && customMetrics {
		// The gauge each chat server exports, as prometheus-adapter serves it
		// per pod under its own name.
		q := resource.NewQuantity(int64(*as.TargetConnectionsPerPod), resource.DecimalSI)
		metrics = append(metrics, autoscalingv2.MetricSpec{
			Type: autoscalingv2.PodsMetricSourceType,
			Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: ConnectionsMetric},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: q},
			},
		})
	}
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: meta(cc, chatName(cc), "chatserver"),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: chatName(cc)},
			MinReplicas:    ptr.To(max(as.MinReplicas, 1)),
			MaxReplicas:    as.MaxReplicas,
			Metrics:        metrics,
		},
	}
}

// PDB keeps all but one chat server up during voluntary disruptions; nil when a
// budget would block node drains (fewer than two replicas).
func PDB(cc *chatv1alpha1.ChatCluster, s Settings) *policyv1.PodDisruptionBudget {
	if s.Hibernate || (!s.autoscaled(cc) && s.Replicas < 2) {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(cc, chatName(cc), "chatserver"),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(cc, "chatserver")},
		},
	}
}

// RedisNetworkPolicy lets only the chat servers reach the managed Redis.
func RedisNetworkPolicy(cc *chatv1alpha1.ChatCluster) *networkingv1.NetworkPolicy {
	if cc.Spec.Redis == nil || cc.Spec.Redis.Managed == nil {
		return nil
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: meta(cc, redisName(cc), "redis"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selectorLabels(cc, "redis")},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(cc, "chatserver")}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(RedisPort))}},
			}},
		},
	}
}

// RedisService fronts the managed Redis.
func RedisService(cc *chatv1alpha1.ChatCluster) *corev1.Service {
	if cc.Spec.Redis == nil || cc.Spec.Redis.Managed == nil {
		return nil
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(cc, redisName(cc), "redis"),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(cc, "redis"),
			Ports:    []corev1.ServicePort{{Name: "redis", Port: RedisPort, TargetPort: intstr.FromString("redis"), Protocol: corev1.ProtocolTCP}},
		},
	}
}

// redisPasswordEnv takes the managed Redis password from its Secret by reference:
// the value is never copied into the pod spec.
func redisPasswordEnv(cc *chatv1alpha1.ChatCluster, name string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: redisAuthName(cc)}, Key: RedisPasswordKey,
	}}}
}

// RedisAuthSecret holds the managed Redis password (generated once by the
// reconciler, kept as long as the Secret exists) and the redis.conf fragment that
// sets it; the fragment is derived from the password on every apply, so a person
// who changes the password changes only that key.
func RedisAuthSecret(cc *chatv1alpha1.ChatCluster, password []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(cc, redisAuthName(cc), "redis"),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			RedisPasswordKey: password,
			redisConfKey:     []byte("# Written by the Parley operator from the password key of this Secret.\nrequirepass " + redisQuote(password) + "\n"),
		},
	}
}

// redisQuote writes s as a double-quoted redis.conf string (sdssplitargs rules),
// so a password a person chose with spaces or quotes still reads back exactly.
func redisQuote(s []byte) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// RedisAuthHash digests the managed Redis password for the Redis pod template:
// redis-server reads it only at start, so a new password must restart Redis.
func RedisAuthHash(password []byte) string {
	sum := sha256.Sum256(append([]byte("parley redis auth\x00"), password...))
	return hex.EncodeToString(sum[:])[:32]
}

// RedisStatefulSet runs the managed Redis: one replica, ephemeral unless
// persistence is set, requiring the password of RedisAuthSecret. authHash is
// RedisAuthHash of that password.
func RedisStatefulSet(cc *chatv1alpha1.ChatCluster, authHash string) *appsv1.StatefulSet {
	if cc.Spec.Redis == nil || cc.Spec.Redis.Managed == nil {
		return nil
	}
	m := cc.Spec.Redis.Managed
	// Every client must authenticate: the password comes from a config file
	// mounted from the Secret (redis-server takes a config file as its first
	// argument), never from an argument, which the pod spec and the process list
	// would show. The NetworkPolicy still limits who may connect at all. Protected
	// mode is off as before: with a password it refuses no one anyway, and the flag
	// keeps builds of redis-server whose defaults differ (Debian's) alike.
	args := []string{"redis-server", redisAuthDir + "/" + redisConfKey,
		"--port", strconv.Itoa(RedisPort), "--dir", "/data", "--save", "",
		"--protected-mode", "no"}
	if m.Persistence != nil {
		args = append(args, "--appendonly", "yes")
	} else {
		args = append(args, "--appendonly", "no")
	}
	sts := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta(cc, redisName(cc), "redis"),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: redisName(cc),
			Selector:    &metav1.LabelSelector{MatchLabels: selectorLabels(cc, "redis")},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: objectLabels(cc, "redis"), Annotations: map[string]string{AnnotationConfigHash: authHash}},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					ImagePullSecrets:             cc.Spec.ImagePullSecrets,
					SecurityContext:              podSecurity(redisUID),
					Volumes: []corev1.Volume{{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
						SecretName:  redisAuthName(cc),
						Items:       []corev1.KeyToPath{{Key: redisConfKey, Path: redisConfKey}},
						DefaultMode: ptr.To[int32](0o440),
					}}}},
					Containers: []corev1.Container{{
						Name:      "redis",
						Image:     orDefault(m.Image, defaultRedisImage),
						Args:      args,
						Ports:     []corev1.ContainerPort{{Name: "redis", ContainerPort: RedisPort, Protocol: corev1.ProtocolTCP}},
						Env:       []corev1.EnvVar{redisPasswordEnv(cc, redisCLIAuthEnv)},
						Resources: m.Resources,
						ReadinessProbe: &corev1.Probe{
							// -e: exit non-zero on an error reply, so NOAUTH (a wrong
							// password) fails the probe instead of passing as output.
							ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"redis-cli", "-e", "ping"}}},
							PeriodSeconds:    5,
							TimeoutSeconds:   2,
							FailureThreshold: 3,
							SuccessThreshold: 1,
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("redis")}},
							PeriodSeconds:    10,
							TimeoutSeconds:   2,
							FailureThreshold: 3,
							SuccessThreshold: 1,
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "data", MountPath: "/data"},
							{Name: "auth", MountPath: redisAuthDir, ReadOnly: true},
						},
						SecurityContext:          restrictedContainerSecurity(),
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}},
				},
			},
		},
	}
	if p := m.Persistence; p != nil {
		size := sizeOr(p.Size)
		sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
			ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: selectorLabels(cc, "redis")},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: p.StorageClassName,
				VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
		}}
	} else {
		sts.Spec.Template.Spec.Volumes = append(sts.Spec.Template.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	return sts
}

// serviceMonitorAPIVersion is the Prometheus Operator's ServiceMonitor API.
const serviceMonitorAPIVersion = "monitoring.coreos.com/v1"

// ServiceMonitor scrapes the chat servers' /metrics through the metrics Service
// (the metrics port, never the client-facing one). It is unstructured so the
// operator does not depend on the Prometheus Operator's types.
func ServiceMonitor(cc *chatv1alpha1.ChatCluster) *unstructured.Unstructured {
	interval := orDefault(cc.Spec.Monitoring.Interval, "30s")
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": serviceMonitorAPIVersion,
		"kind":       "ServiceMonitor",
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": toAnyMap(selectorLabels(cc, "metrics"))},
			"endpoints": []any{map[string]any{
				"port":     "metrics",
				"path":     "/metrics",
				"interval": interval,
				// The alerts and dashboard (config/monitoring) group by
				// ChatCluster: several may share a namespace.
				"relabelings": []any{map[string]any{
					"action": "replace", "targetLabel": "chatcluster", "replacement": cc.Name,
				}},
			}},
		},
	}}
	m := meta(cc, chatName(cc), "chatserver")
	u.SetName(m.Name)
	u.SetNamespace(m.Namespace)
	u.SetLabels(m.Labels)
	u.SetOwnerReferences(m.OwnerReferences)
	return u
}

func toAnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// notificationsConfig writes spec.notifications; nothing when it is unset, so
// the ConfigMaps of clusters that do not use it (and their config hash) stay
// as they were.
func notificationsConfig(cc *chatv1alpha1.ChatCluster, data map[string]string) {
	n := cc.Spec.Notifications
	if n == nil {
		return
	}
	data[settings.PushGrace.Env] = durOr(n.Grace, settings.PushGrace.Def).String()
	data[settings.PushTTL.Env] = durOr(n.TTL, settings.PushTTL.Def).String()
	if n.Contact != "" {
		data[settings.PushContact.Env] = n.Contact
	}
}

// ConnectionsMetric is the chat server's gauge of open WebSocket connections,
// the per-pod custom metric spec.autoscaling.targetConnectionsPerPod reads.
const ConnectionsMetric = "parley_ws_connections"
