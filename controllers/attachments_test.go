package controllers

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/pkg/settings"
)

func s3Cluster() *chatv1alpha1.ChatCluster {
	cc := testCluster()
	cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{S3: &chatv1alpha1.S3Spec{
		Endpoint: "minio.storage.svc:9000", Bucket: "parley-files", Region: "eu-west-1", PathStyle: true,
		CredentialsSecret: &chatv1alpha1.S3CredentialsSecret{Name: "s3-creds", AccessKeyKey: "id", SecretKeyKey: "key"},
		CASecret:          &chatv1alpha1.S3CASecret{Name: "s3-ca"},
	}}
	return cc
}

func envNamed(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func volumeNamed(p corev1.PodSpec, name string) *corev1.Volume {
	for i := range p.Volumes {
		if p.Volumes[i].Name == name {
			return &p.Volumes[i]
		}
	}
	return nil
}

func mountAt(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// S3: the ConfigMap carries where the bucket is, the Deployment the
// credentials by secretKeyRef and the CA as a file; the server's own loader
// reads the ConfigMap as the s3 store with those settings.
func TestAttachmentsS3Builders(t *testing.T) {
	cc := s3Cluster()
	cm := ConfigMap(cc, Resolve(cc, "v1"))
	want := map[string]string{
		settings.AttachmentsStore.Env:   "s3",
		settings.S3Endpoint.Env:         "https://minio.storage.svc:9000",
		settings.S3Bucket.Env:           "parley-files",
		settings.S3Region.Env:           "eu-west-1",
		settings.S3PathStyle.Env:        "true",
		settings.S3CAFileEnv:            "/etc/parley/s3-ca/ca.crt",
		settings.MaxAttachment.Env:      "100",
		settings.AttachmentQuota.Env:    "1024",
		settings.UploadExpiry.Env:       "24h0m0s",
		settings.MaxImageMegapixels.Env: "50",
		settings.MaxVoiceLength.Env:     "15m0s",
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("ConfigMap %s = %q, want %q", k, cm.Data[k], v)
		}
	}
	for _, k := range []string{settings.S3AccessKeyEnv, settings.S3SecretKeyEnv, settings.AttachmentsDir.Env} {
		if _, ok := cm.Data[k]; ok {
			t.Errorf("ConfigMap sets %s", k)
		}
	}
	cfg, err := config.Load(nil, func(k string) string { return cm.Data[k] })
	if err != nil {
		t.Fatalf("the chat server refuses the ConfigMap: %v", err)
	}
	if cfg.AttachmentsStore != "s3" || cfg.S3.Endpoint != "https://minio.storage.svc:9000" || cfg.S3.Bucket != "parley-files" ||
		cfg.S3.Region != "eu-west-1" || !cfg.S3.PathStyle || cfg.MaxAttachmentBytes != 100<<20 || cfg.AttachmentQuota != 1024<<20 ||
		cfg.UploadExpiry != 24*time.Hour || cfg.MaxImagePixels != 50_000_000 || cfg.MaxVoiceLength != 15*time.Minute {
		t.Errorf("the server reads %+v", cfg)
	}

	dep := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{})
	c := dep.Spec.Template.Spec.Containers[0]
	for env, key := range map[string]string{settings.S3AccessKeyEnv: "id", settings.S3SecretKeyEnv: "key"} {
		e := envNamed(c, env)
		if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != "s3-creds" || e.ValueFrom.SecretKeyRef.Key != key {
			t.Errorf("%s = %+v, want a secretKeyRef to s3-creds/%s", env, e, key)
		}
	}
	v := volumeNamed(dep.Spec.Template.Spec, "s3-ca")
	if v == nil || v.Secret == nil || v.Secret.SecretName != "s3-ca" ||
		!slices.Equal(v.Secret.Items, []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}) {
		t.Fatalf("s3-ca volume %+v", v)
	}
	if m := mountAt(c, "/etc/parley/s3-ca"); m == nil || m.Name != "s3-ca" || !m.ReadOnly {
		t.Errorf("CA mount %+v", m)
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy %s: S3 needs no Recreate", dep.Spec.Strategy.Type)
	}
	if AttachmentsClaim(cc) != nil {
		t.Error("a claim for an S3 store")
	}

	// The referenced keys are checked, hashed and watched like the DSN.
	var fields []string
	for _, r := range secretRefs(cc) {
		fields = append(fields, r.field+"="+r.ref.Name+"/"+r.ref.Key)
	}
	for _, w := range []string{
		"spec.attachments.s3.credentialsSecret (access key)=s3-creds/id",
		"spec.attachments.s3.credentialsSecret (secret key)=s3-creds/key",
		"spec.attachments.s3.caSecret=s3-ca/ca.crt",
	} {
		if !slices.Contains(fields, w) {
			t.Errorf("secretRefs %q lacks %q", fields, w)
		}
	}
	h1 := ConfigHash(cm, map[string][]byte{"spec.attachments.s3.credentialsSecret (secret key)": []byte("a")})
	h2 := ConfigHash(cm, map[string][]byte{"spec.attachments.s3.credentialsSecret (secret key)": []byte("b")})
	if h1 == h2 {
		t.Error("a new secret key does not change the config hash")
	}
}

func TestS3Endpoint(t *testing.T) {
	for _, c := range []struct {
		ep       string
		insecure bool
		want     string
	}{
		{"s3.eu-west-1.amazonaws.com", false, "https://s3.eu-west-1.amazonaws.com"},
		{"minio:9000", true, "http://minio:9000"},
		{"https://minio:9000", false, "https://minio:9000"},
		{"http://10.0.0.5:9000", true, "http://10.0.0.5:9000"},
	} {
		if got := S3Endpoint(&chatv1alpha1.S3Spec{Endpoint: c.ep, Insecure: c.insecure}); got != c.want {
			t.Errorf("S3Endpoint(%q, insecure %v) = %q, want %q", c.ep, c.insecure, got, c.want)
		}
	}
}

// Without credentials the chat server uses the AWS chain (IRSA): no
// secretKeyRef, nothing to check; without a CA no volume and no CA variable.
func TestAttachmentsS3WithoutSecrets(t *testing.T) {
	cc := testCluster()
	cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{S3: &chatv1alpha1.S3Spec{Endpoint: "s3.amazonaws.com", Bucket: "b-1"}}
	if refs := attachmentsSecretRefs(cc); len(refs) != 0 {
		t.Errorf("refs %+v", refs)
	}
	dep := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{})
	c := dep.Spec.Template.Spec.Containers[0]
	if envNamed(c, settings.S3AccessKeyEnv) != nil || volumeNamed(dep.Spec.Template.Spec, "s3-ca") != nil {
		t.Errorf("credentials or CA without a Secret: env %+v", c.Env)
	}
	if _, ok := ConfigMap(cc, Resolve(cc, "v1")).Data[settings.S3CAFileEnv]; ok {
		t.Error("CA file set without caSecret")
	}
}

// A volume: the operator's claim (RWO by default, 10Gi) or an existing one,
// mounted where PARLEY_ATTACHMENTS_DIR says; a claim only one node can mount
// makes updates Recreate.
func TestAttachmentsVolumeBuilders(t *testing.T) {
	cc := testCluster()
	cc.Spec.Replicas = ptr.To[int32](1)
	cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{StorageClassName: ptr.To("fast")},
		MaxAttachmentMiB: 10, QuotaMiB: 10, UploadExpiry: &metav1.Duration{Duration: time.Minute},
		MaxImageMegapixels: 1000, MaxVoiceLength: &metav1.Duration{Duration: 2 * time.Hour}}
	pvc := AttachmentsClaim(cc)
	if pvc == nil || pvc.Name != "chat-attachments" || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) ||
		ptr.Deref(pvc.Spec.StorageClassName, "") != "fast" || !pvc.Spec.Resources.Requests.Storage().Equal(resource.MustParse("10Gi")) {
		t.Fatalf("claim %+v", pvc)
	}
	if len(pvc.OwnerReferences) != 1 || pvc.OwnerReferences[0].UID != cc.UID || !ptr.Deref(pvc.OwnerReferences[0].Controller, false) {
		t.Errorf("owner references %+v", pvc.OwnerReferences)
	}
	cm := ConfigMap(cc, Resolve(cc, "v1"))
	cfg, err := config.Load(nil, func(k string) string { return cm.Data[k] })
	if err != nil {
		t.Fatalf("the chat server refuses the ConfigMap: %v", err)
	}
	if cfg.AttachmentsStore != "fs" || cfg.AttachmentsDir != "/var/lib/parley-attachments" || cfg.MaxAttachmentBytes != 10<<20 ||
		cfg.AttachmentQuota != 10<<20 || cfg.UploadExpiry != time.Minute || cfg.MaxImagePixels != 1000_000_000 || cfg.MaxVoiceLength != 2*time.Hour {
		t.Errorf("the server reads %+v", cfg)
	}
	dep := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{AttachmentsClaimShared: false})
	v := volumeNamed(dep.Spec.Template.Spec, "attachments")
	if v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "chat-attachments" {
		t.Fatalf("attachments volume %+v", v)
	}
	if m := mountAt(dep.Spec.Template.Spec.Containers[0], cm.Data[settings.AttachmentsDir.Env]); m == nil || m.Name != "attachments" || m.ReadOnly {
		t.Errorf("mount at PARLEY_ATTACHMENTS_DIR: %+v", m)
	}
	if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %s with a ReadWriteOnce claim, want Recreate", dep.Spec.Strategy.Type)
	}

	cc.Spec.Replicas = ptr.To[int32](3)
	cc.Spec.Attachments.Volume = &chatv1alpha1.AttachmentsVolumeSpec{ClaimName: "shared-files"}
	if AttachmentsClaim(cc) != nil {
		t.Error("the operator would create a claim although claimName names one")
	}
	dep = Deployment(cc, Resolve(cc, "v1"), DeploymentInput{AttachmentsClaimShared: true})
	if v := volumeNamed(dep.Spec.Template.Spec, "attachments"); v == nil || v.PersistentVolumeClaim.ClaimName != "shared-files" {
		t.Fatalf("attachments volume %+v", v)
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy %s with a ReadWriteMany claim, want RollingUpdate", dep.Spec.Strategy.Type)
	}
}

// Without spec.attachments nothing changes: no variable, volume or env, so
// the ConfigMap (and the pods' config hash) of existing clusters stay as they
// were across an operator upgrade.
func TestNoAttachmentsSpecChangesNothing(t *testing.T) {
	cc := testCluster()
	cm := ConfigMap(cc, Resolve(cc, "v1"))
	for k := range cm.Data {
		if strings.Contains(k, "ATTACHMENT") || strings.Contains(k, "S3") || k == settings.MaxVoiceLength.Env ||
			k == settings.UploadExpiry.Env || k == settings.MaxImageMegapixels.Env {
			t.Errorf("ConfigMap sets %s without spec.attachments", k)
		}
	}
	dep := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{})
	if n := len(dep.Spec.Template.Spec.Volumes); n != 3 {
		t.Errorf("%d volumes, want keys, data and tmp", n)
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy %s", dep.Spec.Strategy.Type)
	}
}

func TestMostPods(t *testing.T) {
	cc := testCluster()
	if n := mostPods(cc, Resolve(cc, "v1")); n != 3 {
		t.Errorf("3 replicas: %d", n)
	}
	cc.Spec.Replicas = ptr.To[int32](1)
	cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 4}
	if n := mostPods(cc, Resolve(cc, "v1")); n != 4 {
		t.Errorf("autoscaling to 4: %d", n)
	}
	cc.Annotations = map[string]string{chatv1alpha1.AnnotationHibernate: "true"}
	if n := mostPods(cc, Resolve(cc, "v1")); n != 4 {
		t.Errorf("hibernating, autoscaling to 4: %d (waking up brings them back)", n)
	}
}
