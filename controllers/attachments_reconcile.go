package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// mostPods is the most chat server pods the spec lets run at once: what decides
// whether the attachments must be shared between pods. Hibernation does not
// count: waking up brings the replicas back.
func mostPods(cc *chatv1alpha1.ChatCluster, s Settings) int32 {
	if as := cc.Spec.Autoscaling; as != nil {
		return max(as.MaxReplicas, as.MinReplicas)
	}
	return s.Replicas
}

// attachmentsOutcome is what reconcileAttachments found.
type attachmentsOutcome struct {
	// claimShared: the attachments claim is ReadWriteMany (DeploymentInput).
	claimShared bool
	// blocked is set when the Deployment must not change: the claim named in
	// the spec is missing, or cannot be shared by the replicas the spec asks for.
	blocked Reason
	msg     string
}

// reconcileAttachments applies the operator's attachments claim, checks an
// existing one, and sets the AttachmentsReady condition. The CRD's rules keep
// out what can never work (a ReadWriteOnce volume under several replicas);
// this reports what only the cluster can tell, and what an unset
// spec.attachments means for the files.
func (r *ChatClusterReconciler) reconcileAttachments(ctx context.Context, cc *chatv1alpha1.ChatCluster, s Settings, a applier,
	track func(kind, name string, res applyResult, err error) error) (attachmentsOutcome, error) {
	att := cc.Spec.Attachments
	many := mostPods(cc, s) > 1
	switch {
	case att == nil && cc.Spec.Database.SQLite != nil:
		r.setAttachmentsCond(cc, metav1.ConditionTrue, ReasonAttachmentsOnDataVolume,
			fmt.Sprintf("attachments are kept in %s/attachments on the SQLite volume %s", dataDir, dataClaimName(cc)))
	case att == nil && many:
		r.setAttachmentsCond(cc, metav1.ConditionFalse, ReasonAttachmentsNotShared,
			"attachments are kept in each pod's emptyDir: a file uploaded through one replica cannot be downloaded through another, and a restart loses it; set spec.attachments.s3, or spec.attachments.volume with ReadWriteMany")
	case att == nil:
		r.setAttachmentsCond(cc, metav1.ConditionFalse, ReasonAttachmentsEphemeral,
			"attachments are kept in the pod's emptyDir and lost when it restarts; set spec.attachments.volume or spec.attachments.s3")
	case att.S3 != nil:
		creds := "the AWS_* variables or the pod's IAM role"
		if c := att.S3.CredentialsSecret; c != nil {
			creds = "Secret " + c.Name
		}
		r.setAttachmentsCond(cc, metav1.ConditionTrue, ReasonAttachmentsS3,
			fmt.Sprintf("attachments in S3 bucket %s at %s, credentials from %s", att.S3.Bucket, S3Endpoint(att.S3), creds))
	case att.Volume != nil && att.Volume.ClaimName != "":
		pvc := &corev1.PersistentVolumeClaim{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: att.Volume.ClaimName}, pvc)
		if apierrors.IsNotFound(err) {
			return r.blockAttachments(cc, ReasonAttachmentsClaimNotFound, fmt.Sprintf(
				"PersistentVolumeClaim %s/%s (spec.attachments.volume.claimName) not found", cc.Namespace, att.Volume.ClaimName)), nil
		}
		if err != nil {
			return attachmentsOutcome{}, fmt.Errorf("get attachments claim %s: %w", att.Volume.ClaimName, err)
		}
		shared := Shared(pvc.Spec.AccessModes)
		if many && !shared {
			return r.blockAttachments(cc, ReasonAttachmentsClaimNotShared, fmt.Sprintf(
				"PersistentVolumeClaim %s/%s has access modes %s, but %d replicas must all mount it: it needs ReadWriteMany",
				cc.Namespace, att.Volume.ClaimName, modesString(pvc.Spec.AccessModes), mostPods(cc, s))), nil
		}
		r.setAttachmentsCond(cc, metav1.ConditionTrue, ReasonAttachmentsVolume,
			fmt.Sprintf("attachments on PersistentVolumeClaim %s (%s)", att.Volume.ClaimName, modesString(pvc.Spec.AccessModes)))
		return attachmentsOutcome{claimShared: shared}, nil
	case att.Volume != nil:
		pvc := AttachmentsClaim(cc)
		if err := track(r.applyTyped(ctx, a, pvc)); err != nil {
			return attachmentsOutcome{}, err
		}
		r.setAttachmentsCond(cc, metav1.ConditionTrue, ReasonAttachmentsVolume,
			fmt.Sprintf("attachments on PersistentVolumeClaim %s (%s)", pvc.Name, modesString(pvc.Spec.AccessModes)))
		return attachmentsOutcome{claimShared: Shared(pvc.Spec.AccessModes)}, nil
	}
	return attachmentsOutcome{}, nil
}

// blockAttachments reports a claim problem the pods could not start with: the
// reconcile stops before the Deployment, as for a missing Secret.
func (r *ChatClusterReconciler) blockAttachments(cc *chatv1alpha1.ChatCluster, reason Reason, msg string) attachmentsOutcome {
	r.setAttachmentsCond(cc, metav1.ConditionFalse, reason, msg)
	return attachmentsOutcome{blocked: reason, msg: msg}
}

// setAttachmentsCond sets AttachmentsReady, with a Warning Event when it turns
// to a False reason it did not have: once per episode, not per reconcile.
func (r *ChatClusterReconciler) setAttachmentsCond(cc *chatv1alpha1.ChatCluster, status metav1.ConditionStatus, reason Reason, msg string) {
	prev := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionAttachmentsReady)
	if status == metav1.ConditionFalse && (prev == nil || prev.Reason != string(reason)) {
		r.event(cc, corev1.EventTypeWarning, reason, ActionReconcile, "%s", msg)
	}
	r.setCond(cc, chatv1alpha1.ConditionAttachmentsReady, status, reason, msg)
}

func modesString(modes []corev1.PersistentVolumeAccessMode) string {
	if len(modes) == 0 {
		return "none"
	}
	s := make([]string, len(modes))
	for i, m := range modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}
