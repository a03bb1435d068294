package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/settings"
)

func s3Attachments() *chatv1alpha1.AttachmentsSpec {
	return &chatv1alpha1.AttachmentsSpec{S3: &chatv1alpha1.S3Spec{
		Endpoint: "https://s3.eu-west-1.amazonaws.com", Bucket: "parley-files", Region: "eu-west-1",
		CredentialsSecret: &chatv1alpha1.S3CredentialsSecret{Name: "s3-creds"},
		CASecret:          &chatv1alpha1.S3CASecret{Name: "s3-ca"},
	}}
}

func rwx() []corev1.PersistentVolumeAccessMode {
	return []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
}

// The API server refuses attachments settings that cannot work, with
// messages that say why, and accepts the ones that can.
func TestAttachmentsValidation(t *testing.T) {
	f := newFixture(t)
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	bad := []struct {
		name   string
		mutate func(cc *chatv1alpha1.ChatCluster)
		want   string
	}{
		{"both volume and s3", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.Volume = &chatv1alpha1.AttachmentsVolumeSpec{AccessModes: rwx()}
		}, "set exactly one of spec.attachments.volume and spec.attachments.s3"},
		{"neither", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{}
		}, "set exactly one of spec.attachments.volume and spec.attachments.s3"},
		{"ReadWriteOnce volume under 3 replicas", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{}}
		}, "spec.attachments.volume is mounted by every replica: with more than one replica (or autoscaling above one) its accessModes must include ReadWriteMany"},
		{"ReadWriteOnce volume under autoscaling", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Replicas = ptr.To[int32](1)
			cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 4}
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}
		}, "its accessModes must include ReadWriteMany"},
		{"existing ReadWriteOnce claim under 3 replicas", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{ClaimName: "files"}}
		}, "its accessModes must include ReadWriteMany"},
		{"claimName with a size", func(cc *chatv1alpha1.ChatCluster) {
			q := resource.MustParse("5Gi")
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{ClaimName: "files", Size: &q, AccessModes: rwx()}}
		}, "spec.attachments.volume.claimName names an existing claim"},
		{"endpoint with a path", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Endpoint = "https://s3.example.com/parley-files"
		}, "spec.attachments.s3.endpoint"},
		{"endpoint with another scheme", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Endpoint = "s3://s3.example.com"
		}, "spec.attachments.s3.endpoint"},
		{"http:// without insecure", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.CASecret = nil
			cc.Spec.Attachments.S3.Endpoint = "http://minio.storage.svc:9000"
		}, "an http:// endpoint carries the S3 traffic unencrypted: set spec.attachments.s3.insecure: true"},
		{"insecure with https://", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.CASecret = nil
			cc.Spec.Attachments.S3.Insecure = true
		}, "spec.attachments.s3.insecure: true means plain HTTP, but the endpoint says https://"},
		{"caSecret with insecure", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Endpoint = "minio:9000"
			cc.Spec.Attachments.S3.Insecure = true
		}, "spec.attachments.s3.caSecret verifies a TLS server: it cannot go with insecure: true"},
		{"bucket with capitals", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Bucket = "Parley_Files"
		}, "bucket must be an S3 bucket name"},
		{"bucket like an IP address", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Bucket = "192.168.5.4"
		}, "bucket must be an S3 bucket name"},
		{"bucket with two dots", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Bucket = "parley..files"
		}, "bucket must be an S3 bucket name"},
		{"bucket ending in -s3alias", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Bucket = "files-s3alias"
		}, "bucket must be an S3 bucket name"},
		{"bucket too short", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.S3.Bucket = "ab"
		}, "spec.attachments.s3.bucket"},
		{"quota below the largest file", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.MaxAttachmentMiB = 500
			cc.Spec.Attachments.QuotaMiB = 100
		}, "spec.attachments.quotaMiB must be at least spec.attachments.maxAttachmentMiB"},
		{"largest file above the server's bound", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.MaxAttachmentMiB = int32(settings.MaxAttachment.Max + 1)
		}, "spec.attachments.maxAttachmentMiB"},
		{"upload expiry too short", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.UploadExpiry = dur(10 * time.Second)
		}, "uploadExpiry must be between 1m and 720h"},
		{"voice too long", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = s3Attachments()
			cc.Spec.Attachments.MaxVoiceLength = dur(3 * time.Hour)
		}, "maxVoiceLength must be between 1s and 2h"},
	}
	for _, tc := range bad {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			cc := sample(f.ns, "bad")
			tc.mutate(cc)
			err := k8s.Create(ctx, cc)
			if err == nil {
				_ = k8s.Delete(ctx, cc)
				t.Fatalf("the API server accepted the spec")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}

	good := []struct {
		name   string
		mutate func(cc *chatv1alpha1.ChatCluster)
	}{
		{"S3 with credentials and a CA", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Attachments = s3Attachments() }},
		{"S3 over plain HTTP inside the cluster, IAM role", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{S3: &chatv1alpha1.S3Spec{
				Endpoint: "minio.storage.svc:9000", Insecure: true, PathStyle: true, Bucket: "parley.files-1"}}
		}},
		{"ReadWriteMany volume under 3 replicas", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{AccessModes: rwx(), StorageClassName: ptr.To("nfs")}}
		}},
		{"existing ReadWriteMany claim under autoscaling", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 10}
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{ClaimName: "files", AccessModes: rwx()}}
		}},
		{"ReadWriteOnce volume with one replica", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Replicas = ptr.To[int32](1)
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{}}
		}},
		{"SQLite with a volume", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Replicas = ptr.To[int32](1)
			cc.Spec.Redis = nil
			cc.Spec.Database = chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{}}
		}},
	}
	for i, tc := range good {
		t.Run("accepted: "+tc.name, func(t *testing.T) {
			cc := sample(f.ns, "good-"+string(rune('a'+i)))
			tc.mutate(cc)
			if err := k8s.Create(ctx, cc); err != nil {
				t.Fatalf("refused: %v", err)
			}
			got := f.chat(cc.Name)
			a := got.Spec.Attachments
			// The server's defaults, applied by the API server.
			if a.MaxAttachmentMiB != int32(settings.MaxAttachment.Def) || a.QuotaMiB != int32(settings.AttachmentQuota.Def) ||
				a.MaxImageMegapixels != int32(settings.MaxImageMegapixels.Def) || a.UploadExpiry.Duration != settings.UploadExpiry.Def ||
				a.MaxVoiceLength.Duration != settings.MaxVoiceLength.Def {
				t.Errorf("defaults %+v", a)
			}
			if c := a.S3; c != nil && c.CredentialsSecret != nil && (c.CredentialsSecret.AccessKeyKey != "accessKey" || c.CredentialsSecret.SecretKeyKey != "secretKey") {
				t.Errorf("credential key defaults %+v", c.CredentialsSecret)
			}
			if c := a.S3; c != nil && c.CASecret != nil && c.CASecret.Key != "ca.crt" {
				t.Errorf("CA key default %q", c.CASecret.Key)
			}
		})
	}

	t.Run("a ReadWriteOnce volume blocks scaling out", func(t *testing.T) {
		cc := sample(f.ns, "rwo")
		cc.Spec.Replicas = ptr.To[int32](1)
		cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{}}
		if err := k8s.Create(ctx, cc); err != nil {
			t.Fatal(err)
		}
		cc = f.chat("rwo")
		cc.Spec.Replicas = ptr.To[int32](2)
		if err := k8s.Update(ctx, cc); err == nil || !strings.Contains(err.Error(), "its accessModes must include ReadWriteMany") {
			t.Fatalf("scale to 2 with a ReadWriteOnce volume: %v", err)
		}
	})
	t.Run("the volume cannot change", func(t *testing.T) {
		cc := f.chat("rwo")
		q := resource.MustParse("50Gi")
		cc.Spec.Attachments.Volume.Size = &q
		if err := k8s.Update(ctx, cc); err == nil || !strings.Contains(err.Error(), "spec.attachments.volume cannot change after creation") {
			t.Fatalf("resize: %v", err)
		}
		// Moving to S3 is allowed (copying the files is the person's job).
		cc = f.chat("rwo")
		cc.Spec.Attachments = s3Attachments()
		if err := k8s.Update(ctx, cc); err != nil {
			t.Fatalf("volume to S3: %v", err)
		}
	})
}

func secretKeyRefOf(c corev1.Container, env string) *corev1.SecretKeySelector {
	for _, e := range c.Env {
		if e.Name == env {
			if e.ValueFrom == nil {
				return nil
			}
			return e.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// S3 mode: the Deployment takes the credentials from the Secret by
// secretKeyRef (no value in any object the operator writes), mounts the CA,
// and rolls when either Secret changes.
func TestAttachmentsS3Deployment(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Attachments = s3Attachments()
	f.createSecret("s3-creds", map[string]string{"accessKey": "AKIAEXAMPLE", "secretKey": "wJalrXUtnFEMI-very-secret"})
	f.createSecret("s3-ca", map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"})
	f.create(cc)
	f.reconcile("chat")

	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	c := dep.Spec.Template.Spec.Containers[0]
	for env, key := range map[string]string{settings.S3AccessKeyEnv: "accessKey", settings.S3SecretKeyEnv: "secretKey"} {
		if ref := secretKeyRefOf(c, env); ref == nil || ref.Name != "s3-creds" || ref.Key != key {
			t.Errorf("%s: %+v, want secretKeyRef s3-creds/%s", env, ref, key)
		}
	}
	mustNotContain(t, "Deployment", dep, "wJalrXUtnFEMI-very-secret")
	mustNotContain(t, "Deployment", dep, "AKIAEXAMPLE")
	cm := &corev1.ConfigMap{}
	f.get(cm, "chat-config")
	mustNotContain(t, "ConfigMap", cm, "wJalrXUtnFEMI-very-secret")
	if cm.Data[settings.AttachmentsStore.Env] != "s3" || cm.Data[settings.S3Endpoint.Env] != "https://s3.eu-west-1.amazonaws.com" ||
		cm.Data[settings.S3Bucket.Env] != "parley-files" || cm.Data[settings.S3CAFileEnv] != "/etc/parley/s3-ca/ca.crt" {
		t.Errorf("ConfigMap %v", cm.Data)
	}
	var caVol *corev1.Volume
	for i, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "s3-ca" {
			caVol = &dep.Spec.Template.Spec.Volumes[i]
		}
	}
	if caVol == nil || len(caVol.Secret.Items) != 1 || caVol.Secret.Items[0].Key != "ca.crt" {
		t.Fatalf("no volume of the CA Secret: %+v", dep.Spec.Template.Spec.Volumes)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == caVol.Name && m.MountPath+"/"+caVol.Secret.Items[0].Path == cm.Data[settings.S3CAFileEnv] && m.ReadOnly)
	}
	if !mounted {
		t.Errorf("the CA is not mounted at %s: %+v", cm.Data[settings.S3CAFileEnv], c.VolumeMounts)
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy %s", dep.Spec.Strategy.Type)
	}
	got := f.chat("chat")
	if a := cond(got, "AttachmentsReady"); a.Status != metav1.ConditionTrue || a.Reason != "AttachmentsS3" || !strings.Contains(a.Message, "parley-files") {
		t.Errorf("AttachmentsReady %+v", a)
	}

	h1 := podTemplateHash(f, "chat")
	f.setSecret("s3-creds", "secretKey", "rotated")
	f.reconcile("chat")
	h2 := podTemplateHash(f, "chat")
	if h2 == h1 {
		t.Error("the pods do not roll when the S3 secret key changes")
	}
	f.setSecret("s3-ca", "ca.crt", "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n")
	f.reconcile("chat")
	if podTemplateHash(f, "chat") == h2 {
		t.Error("the pods do not roll when the CA bundle changes")
	}
}

// Volume mode: the operator's claim, owned by the ChatCluster, mounted where
// PARLEY_ATTACHMENTS_DIR points; ReadWriteMany keeps rolling updates.
func TestAttachmentsVolumeDeployment(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	q := resource.MustParse("20Gi")
	cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{AccessModes: rwx(), Size: &q, StorageClassName: ptr.To("nfs")}}
	f.create(cc)
	f.reconcile("chat")

	pvc := &corev1.PersistentVolumeClaim{}
	f.get(pvc, "chat-attachments")
	if !ownedByOperator(pvc) || len(pvc.OwnerReferences) != 1 || pvc.OwnerReferences[0].Name != "chat" || !ptr.Deref(pvc.OwnerReferences[0].Controller, false) {
		t.Errorf("claim owner references %+v", pvc.OwnerReferences)
	}
	if len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != corev1.ReadWriteMany || ptr.Deref(pvc.Spec.StorageClassName, "") != "nfs" ||
		!pvc.Spec.Resources.Requests.Storage().Equal(q) {
		t.Errorf("claim spec %+v", pvc.Spec)
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	cm := &corev1.ConfigMap{}
	f.get(cm, "chat-config")
	dir := cm.Data[settings.AttachmentsDir.Env]
	if cm.Data[settings.AttachmentsStore.Env] != "fs" || dir == "" {
		t.Fatalf("ConfigMap %v", cm.Data)
	}
	var volName string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "chat-attachments" {
			volName = v.Name
		}
	}
	mounted := false
	for _, m := range dep.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounted = mounted || (m.Name == volName && m.MountPath == dir && !m.ReadOnly)
	}
	if volName == "" || !mounted {
		t.Errorf("claim chat-attachments not mounted at %s: %+v", dir, dep.Spec.Template.Spec)
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy %s with a ReadWriteMany claim", dep.Spec.Strategy.Type)
	}
	if a := cond(f.chat("chat"), "AttachmentsReady"); a.Status != metav1.ConditionTrue || a.Reason != "AttachmentsVolume" {
		t.Errorf("AttachmentsReady %+v", a)
	}

	// One replica on the default ReadWriteOnce claim: Recreate.
	one := sample(f.ns, "solo")
	one.Spec.Replicas = ptr.To[int32](1)
	one.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{}}
	f.create(one)
	f.reconcile("solo")
	f.get(dep, "solo")
	if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %s with a ReadWriteOnce claim, want Recreate", dep.Spec.Strategy.Type)
	}
	f.get(pvc, "solo-attachments")
	if len(pvc.Spec.AccessModes) != 1 || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce || !pvc.Spec.Resources.Requests.Storage().Equal(resource.MustParse("10Gi")) {
		t.Errorf("default claim %+v", pvc.Spec)
	}
}

// A missing credentials Secret, or a key missing from it, is a typed
// condition and stops before the Deployment (no pod crash-loops on a missing
// variable); the Secret appearing recovers.
func TestAttachmentsMissingCredentials(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Attachments = s3Attachments()
	cc.Spec.Attachments.S3.CASecret = nil
	f.create(cc)
	f.reconcile("chat")
	got := f.chat("chat")
	for _, typ := range []string{"Ready", "AttachmentsReady"} {
		if c := cond(got, typ); c.Status != metav1.ConditionFalse || c.Reason != "SecretNotFound" || !strings.Contains(c.Message, "s3-creds") ||
			!strings.Contains(c.Message, "spec.attachments.s3.credentialsSecret") {
			t.Errorf("%s = %+v, want False/SecretNotFound naming s3-creds and the field", typ, c)
		}
	}
	if c := cond(got, "Degraded"); c.Status != metav1.ConditionTrue || c.Reason != "SecretNotFound" {
		t.Errorf("Degraded = %+v", c)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning SecretNotFound") {
		t.Errorf("events %q", evs)
	}
	if !f.absent(&appsv1.Deployment{}, "chat") {
		t.Fatal("Deployment created without its S3 credentials")
	}

	f.createSecret("s3-creds", map[string]string{"accessKey": "AKIAEXAMPLE"})
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "AttachmentsReady"); c.Reason != "SecretNotFound" || !strings.Contains(c.Message, `has no key "secretKey"`) {
		t.Errorf("AttachmentsReady = %+v, want the missing key named", c)
	}
	if !f.absent(&appsv1.Deployment{}, "chat") {
		t.Fatal("Deployment created without the secret key")
	}

	f.setSecret("s3-creds", "secretKey", "s3cret")
	f.reconcile("chat")
	got = f.chat("chat")
	if c := cond(got, "AttachmentsReady"); c.Status != metav1.ConditionTrue || c.Reason != "AttachmentsS3" {
		t.Errorf("AttachmentsReady = %+v after the Secret appeared", c)
	}
	if c := cond(got, "Degraded"); c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded = %+v after recovery", c)
	}
	f.get(&appsv1.Deployment{}, "chat")
}

// An existing claim: missing, or not ReadWriteMany under several replicas,
// stops before the Deployment with its own reason; a fitting claim is mounted.
func TestAttachmentsExistingClaim(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{ClaimName: "files", AccessModes: rwx()}}
	f.create(cc)
	f.reconcile("chat")
	got := f.chat("chat")
	for _, typ := range []string{"Ready", "Degraded", "AttachmentsReady"} {
		if c := cond(got, typ); c.Reason != "AttachmentsClaimNotFound" || !strings.Contains(c.Message, "files") {
			t.Errorf("%s = %+v, want AttachmentsClaimNotFound naming the claim", typ, c)
		}
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning AttachmentsClaimNotFound") {
		t.Errorf("events %q", evs)
	}
	if !f.absent(&appsv1.Deployment{}, "chat") {
		t.Fatal("Deployment created without its claim")
	}
	if !f.absent(&corev1.PersistentVolumeClaim{}, "chat-attachments") {
		t.Error("the operator created a claim of its own although claimName names one")
	}

	claim := func(mode corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "files"},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{mode},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	}
	pvc := claim(corev1.ReadWriteOnce)
	if err := k8s.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "AttachmentsReady"); c.Reason != "AttachmentsClaimNotShared" || !strings.Contains(c.Message, "ReadWriteOnce") {
		t.Errorf("AttachmentsReady = %+v, want AttachmentsClaimNotShared", c)
	}
	if !f.absent(&appsv1.Deployment{}, "chat") {
		t.Fatal("Deployment created on a claim its 3 replicas cannot share")
	}

	if err := k8s.Delete(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	// envtest runs no controller to lift the pvc-protection finalizer.
	f.get(pvc, "files")
	pvc.Finalizers = nil
	if err := k8s.Update(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the RWO claim gone", func() bool { return f.absent(&corev1.PersistentVolumeClaim{}, "files") })
	if err := k8s.Create(ctx, claim(corev1.ReadWriteMany)); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "AttachmentsReady"); c.Status != metav1.ConditionTrue || c.Reason != "AttachmentsVolume" {
		t.Errorf("AttachmentsReady = %+v", c)
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	found := false
	for _, v := range dep.Spec.Template.Spec.Volumes {
		found = found || (v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "files")
	}
	if !found || dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("claim files not mounted, or strategy %s", dep.Spec.Strategy.Type)
	}
	f.get(&corev1.PersistentVolumeClaim{}, "files")
}

// Without spec.attachments the operator says what happens to the files.
func TestAttachmentsUnsetIsReported(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "many"))
	f.reconcile("many")
	if c := cond(f.chat("many"), "AttachmentsReady"); c.Status != metav1.ConditionFalse || c.Reason != "AttachmentsNotShared" {
		t.Errorf("3 replicas: AttachmentsReady = %+v", c)
	}
	evs := f.drainEvents()
	if !hasEvent(evs, "Warning AttachmentsNotShared") {
		t.Errorf("events %q", evs)
	}
	f.reconcile("many")
	if evs := f.drainEvents(); hasEvent(evs, "Warning AttachmentsNotShared") {
		t.Errorf("the warning repeats on every reconcile: %q", evs)
	}
	if c := cond(f.chat("many"), "Ready"); c.Reason == "AttachmentsNotShared" {
		t.Errorf("Ready = %+v: a configuration warning, not an outage", c)
	}

	one := sample(f.ns, "one")
	one.Spec.Replicas = ptr.To[int32](1)
	f.create(one)
	f.reconcile("one")
	if c := cond(f.chat("one"), "AttachmentsReady"); c.Status != metav1.ConditionFalse || c.Reason != "AttachmentsEphemeral" {
		t.Errorf("1 replica on PostgreSQL: AttachmentsReady = %+v", c)
	}

	lite := sample(f.ns, "lite")
	lite.Spec.Replicas = ptr.To[int32](1)
	lite.Spec.Redis = nil
	lite.Spec.Database = chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}
	f.create(lite)
	f.reconcile("lite")
	if c := cond(f.chat("lite"), "AttachmentsReady"); c.Status != metav1.ConditionTrue || c.Reason != "AttachmentsOnDataVolume" {
		t.Errorf("SQLite: AttachmentsReady = %+v", c)
	}
}

// The samples in config/samples are accepted, and reconcile to
// AttachmentsReady=True once their Secrets exist.
func TestAttachmentSamples(t *testing.T) {
	f := newFixture(t)
	for file, secrets := range map[string]map[string]map[string]string{
		"chat_v1alpha1_chatcluster.yaml": {
			"parley-db": {"dsn": "postgres://x@db/parley"},
			"parley-s3": {"accessKey": "a", "secretKey": "s"},
		},
		"chat_v1alpha1_chatcluster_volume.yaml": {"parley-files-db": {"dsn": "postgres://x@db/parley"}},
	} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", file))
		if err != nil {
			t.Fatal(err)
		}
		cc := &chatv1alpha1.ChatCluster{}
		if err := yaml.UnmarshalStrict(raw, cc); err != nil {
			t.Fatalf("%s does not decode into the API types: %v", file, err)
		}
		if cc.Spec.Attachments == nil {
			t.Fatalf("%s has no spec.attachments", file)
		}
		cc.Namespace = f.ns
		for name, data := range secrets {
			f.createSecret(name, data)
		}
		if err := k8s.Create(ctx, cc); err != nil {
			t.Fatalf("the API server refuses %s: %v", file, err)
		}
		f.reconcile(cc.Name)
		if c := cond(f.chat(cc.Name), "AttachmentsReady"); c.Status != metav1.ConditionTrue {
			t.Errorf("%s: AttachmentsReady = %+v", file, c)
		}
	}
}
