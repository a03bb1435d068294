package controllers

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/settings"
)

// Where the chat server container finds the attachments volume and the S3 CA.
const (
	attachmentsDir    = "/var/lib/parley-attachments"
	attachmentsVolume = "attachments"
	s3CAVolume        = "s3-ca"
	s3CADir           = "/etc/parley/s3-ca"
	s3CAFileName      = "ca.crt"
	// Default keys of spec.attachments.s3.credentialsSecret and caSecret, as in
	// the CRD; repeated so the builders stay total on objects the API server
	// has not defaulted (unit tests, an older CRD).
	defaultAccessKeyKey = "accessKey"
	defaultSecretKeyKey = "secretKey"
	defaultCAKey        = "ca.crt"
)

// defaultAttachmentsSize is the size of the operator's attachments claim when
// spec.attachments.volume.size is unset: a hundred default-sized uploads.
var defaultAttachmentsSize = resource.MustParse("10Gi")

func attachmentsClaimName(cc *chatv1alpha1.ChatCluster) string { return cc.Name + "-attachments" }

// AttachmentsClaimName is the claim the chat server pods mount for
// attachments: the operator's <name>-attachments or an existing claim; "" when
// attachments are not on a volume of their own.
func AttachmentsClaimName(cc *chatv1alpha1.ChatCluster) string {
	a := cc.Spec.Attachments
	if a == nil || a.Volume == nil {
		return ""
	}
	if a.Volume.ClaimName != "" {
		return a.Volume.ClaimName
	}
	return attachmentsClaimName(cc)
}

// attachmentsAccessModes are the modes asked of the attachments claim:
// ReadWriteOnce unless the spec says otherwise.
func attachmentsAccessModes(v *chatv1alpha1.AttachmentsVolumeSpec) []corev1.PersistentVolumeAccessMode {
	if len(v.AccessModes) == 0 {
		return []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return slices.Clone(v.AccessModes)
}

// Shared reports whether a claim with these access modes can be mounted by
// pods on several nodes at once.
func Shared(modes []corev1.PersistentVolumeAccessMode) bool {
	return slices.Contains(modes, corev1.ReadWriteMany)
}

// AttachmentsClaim is the claim the operator creates for attachments; nil
// unless spec.attachments.volume asks for one (no claimName).
func AttachmentsClaim(cc *chatv1alpha1.ChatCluster) *corev1.PersistentVolumeClaim {
	a := cc.Spec.Attachments
	if a == nil || a.Volume == nil || a.Volume.ClaimName != "" {
		return nil
	}
	size := defaultAttachmentsSize.DeepCopy()
	if q := a.Volume.Size; q != nil && !q.IsZero() {
		size = q.DeepCopy()
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: meta(cc, attachmentsClaimName(cc), "attachments"),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      attachmentsAccessModes(a.Volume),
			StorageClassName: a.Volume.StorageClassName,
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
		},
	}
}

// S3Endpoint is the endpoint written for the chat server, always with its
// scheme: the server takes a bare host:port as https, so insecure needs http://.
func S3Endpoint(s3 *chatv1alpha1.S3Spec) string {
	ep := s3.Endpoint
	if strings.Contains(ep, "://") {
		return ep
	}
	if s3.Insecure {
		return "http://" + ep
	}
	return "https://" + ep
}

// attachmentsConfig adds the attachments settings to the ConfigMap data. Nothing
// when spec.attachments is unset: the server's defaults apply (a folder under
// the data directory), and the ConfigMaps (and config hashes) of clusters
// without attachments settings stay as they were.
func attachmentsConfig(cc *chatv1alpha1.ChatCluster, data map[string]string) {
	a := cc.Spec.Attachments
	if a == nil {
		return
	}
	switch {
	case a.Volume != nil:
		data[settings.AttachmentsStore.Env] = "fs"
		data[settings.AttachmentsDir.Env] = attachmentsDir
	case a.S3 != nil:
		data[settings.AttachmentsStore.Env] = "s3"
		data[settings.S3Endpoint.Env] = S3Endpoint(a.S3)
		data[settings.S3Bucket.Env] = a.S3.Bucket
		data[settings.S3Region.Env] = a.S3.Region
		data[settings.S3PathStyle.Env] = strconv.FormatBool(a.S3.PathStyle)
		if a.S3.CASecret != nil {
			data[settings.S3CAFileEnv] = s3CADir + "/" + s3CAFileName
		}
	}
	data[settings.MaxAttachment.Env] = strconv.Itoa(int(orInt(a.MaxAttachmentMiB, int32(settings.MaxAttachment.Def))))
	data[settings.AttachmentQuota.Env] = strconv.Itoa(int(orInt(a.QuotaMiB, int32(settings.AttachmentQuota.Def))))
	data[settings.UploadExpiry.Env] = durOr(a.UploadExpiry, settings.UploadExpiry.Def).String()
	data[settings.MaxImageMegapixels.Env] = strconv.Itoa(int(orInt(a.MaxImageMegapixels, int32(settings.MaxImageMegapixels.Def))))
	data[settings.MaxVoiceLength.Env] = durOr(a.MaxVoiceLength, settings.MaxVoiceLength.Def).String()
}

func s3Credentials(s3 *chatv1alpha1.S3Spec) (name, accessKey, secretKey string) {
	c := s3.CredentialsSecret
	return c.Name, orDefault(c.AccessKeyKey, defaultAccessKeyKey), orDefault(c.SecretKeyKey, defaultSecretKeyKey)
}

func s3CA(s3 *chatv1alpha1.S3Spec) (name, key string) {
	return s3.CASecret.Name, orDefault(s3.CASecret.Key, defaultCAKey)
}

// attachmentsSecretRefs are the Secret keys the attachments store reads: the
// operator checks them before it touches the Deployment, hashes their values
// into the pod template (a change rolls the pods) and watches their Secrets.
func attachmentsSecretRefs(cc *chatv1alpha1.ChatCluster) []secretRef {
	a := cc.Spec.Attachments
	if a == nil || a.S3 == nil {
		return nil
	}
	var out []secretRef
	sel := func(name, key string) corev1.SecretKeySelector {
		return corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
	}
	if a.S3.CredentialsSecret != nil {
		name, ak, sk := s3Credentials(a.S3)
		out = append(out,
			secretRef{"spec.attachments.s3.credentialsSecret (access key)", sel(name, ak)},
			secretRef{"spec.attachments.s3.credentialsSecret (secret key)", sel(name, sk)})
	}
	if a.S3.CASecret != nil {
		name, key := s3CA(a.S3)
		out = append(out, secretRef{"spec.attachments.s3.caSecret", sel(name, key)})
	}
	return out
}

// attachmentsEnv is the S3 credentials by secretKeyRef: the kubelet reads the
// Secret, so the keys are in no object the operator writes.
func attachmentsEnv(cc *chatv1alpha1.ChatCluster) []corev1.EnvVar {
	a := cc.Spec.Attachments
	if a == nil || a.S3 == nil || a.S3.CredentialsSecret == nil {
		return nil
	}
	name, ak, sk := s3Credentials(a.S3)
	ref := func(env, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: env, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key,
		}}}
	}
	return []corev1.EnvVar{ref(settings.S3AccessKeyEnv, ak), ref(settings.S3SecretKeyEnv, sk)}
}

// attachmentsVolumes are the pod's attachments claim or S3 CA bundle, and
// where the chat server container mounts them.
func attachmentsVolumes(cc *chatv1alpha1.ChatCluster) ([]corev1.Volume, []corev1.VolumeMount) {
	a := cc.Spec.Attachments
	switch {
	case a == nil:
		return nil, nil
	case a.Volume != nil:
		return []corev1.Volume{{Name: attachmentsVolume, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: AttachmentsClaimName(cc)},
			}}},
			[]corev1.VolumeMount{{Name: attachmentsVolume, MountPath: attachmentsDir}}
	case a.S3 != nil && a.S3.CASecret != nil:
		name, key := s3CA(a.S3)
		return []corev1.Volume{{Name: s3CAVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName:  name,
				Items:       []corev1.KeyToPath{{Key: key, Path: s3CAFileName}},
				DefaultMode: ptr.To[int32](0o440),
			}}}},
			[]corev1.VolumeMount{{Name: s3CAVolume, MountPath: s3CADir, ReadOnly: true}}
	}
	return nil, nil
}
