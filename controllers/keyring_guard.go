package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// The keyring guard: once status.keys records a ChatCluster's data keys, the
// operator never replaces its keyring on its own. A keyring Secret that is gone,
// or that holds another keyring, stops the reconcile (KeysReady=False) until a
// person restores it or accepts the loss with AnnotationAcceptKeyringLoss:
// generating new keys would silently make every stored message unreadable.

// DataKeyFingerprint tells data keys apart without revealing them: the first 16
// hex digits of SHA-256 over a fixed label and the key.
func DataKeyFingerprint(k keyringfile.DataKey) string {
	h := sha256.New()
	h.Write([]byte("parley data key fingerprint v1\x00"))
	h.Write(k.Key)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// RecordDataKeys lists the data keys of a keyring as status.keys.dataKeys records them.
func RecordDataKeys(f *keyringfile.File) []chatv1alpha1.RecordedKey {
	out := make([]chatv1alpha1.RecordedKey, 0, len(f.Data))
	for _, k := range f.Data {
		out = append(out, chatv1alpha1.RecordedKey{ID: k.ID, State: k.State, Fingerprint: DataKeyFingerprint(k)})
	}
	return out
}

// recordedDataKeys returns what status records; an operator before the guard
// recorded only the active data key's id.
func recordedDataKeys(ks chatv1alpha1.KeysStatus) []chatv1alpha1.RecordedKey {
	if len(ks.DataKeys) > 0 {
		return ks.DataKeys
	}
	if ks.ActiveDataKeyID != "" {
		return []chatv1alpha1.RecordedKey{{ID: ks.ActiveDataKeyID, State: keyringfile.StateActive}}
	}
	return nil
}

// KeyringCheck is how a keyring compares with the recorded data keys.
type KeyringCheck struct {
	// Foreign says why the keyring is not the recorded one; empty when it is.
	Foreign string
	// Removed lists recorded data keys, never the active one, that the keyring no
	// longer has: a person removed keys nothing needed (or so they thought).
	Removed []string
}

// CheckKeyring compares a keyring with the data keys recorded in status. It is
// foreign when a recorded id holds other key material, or when the recorded
// active data key is missing (new messages were sealed with it). Rotation never
// removes a data key and promotion keeps the old active one as retired, so the
// operator's own changes always pass.
func CheckKeyring(recorded chatv1alpha1.KeysStatus, f *keyringfile.File) KeyringCheck {
	have := map[string]keyringfile.DataKey{}
	for _, k := range f.Data {
		have[k.ID] = k
	}
	var out KeyringCheck
	var missingActive, changed []string
	for _, r := range recordedDataKeys(recorded) {
		k, ok := have[r.ID]
		switch {
		case ok && r.Fingerprint != "" && DataKeyFingerprint(k) != r.Fingerprint:
			changed = append(changed, r.ID)
		case !ok && r.State == keyringfile.StateActive:
			missingActive = append(missingActive, r.ID)
		case !ok:
			out.Removed = append(out.Removed, r.ID)
		}
	}
	var why []string
	if len(changed) > 0 {
		why = append(why, fmt.Sprintf("data key %s holds other key material than recorded", strings.Join(changed, ", ")))
	}
	if len(missingActive) > 0 {
		why = append(why, fmt.Sprintf("the recorded active data key %s is not in it", strings.Join(missingActive, ", ")))
	}
	if len(why) > 0 {
		ids := make([]string, 0, len(f.Data))
		for _, k := range f.Data {
			ids = append(ids, k.ID)
		}
		out.Foreign = fmt.Sprintf("%s (its data keys: %s)", strings.Join(why, "; "), strings.Join(ids, ", "))
	}
	return out
}

func recordedIDs(ks chatv1alpha1.KeysStatus) string {
	var ids []string
	for _, r := range recordedDataKeys(ks) {
		ids = append(ids, r.ID)
	}
	return strings.Join(ids, ", ")
}

// keyringGuard is the guard's verdict on one reconcile.
type keyringGuard struct {
	// proceed: use the keyring in the Secret, or create one when there is none.
	proceed bool
	// lost: the recorded keys (ids) are given up, by the accept annotation.
	lost string
	// adopted: an existing Secret taken on with nothing recorded (the restore path).
	adopted bool
	// removed: recorded non-active data keys no longer in the keyring.
	removed []string
	// dropAnnotation: the accept annotation is set and has been looked at.
	dropAnnotation bool
}

// guardKeyring decides whether the keyring in the Secret (f, nil when the Secret
// does not exist) may be used. When it may not, it sets KeysReady=False with
// KeyringMissing or KeyringForeign and records a Warning Event when that is news.
func (r *ChatClusterReconciler) guardKeyring(cc *chatv1alpha1.ChatCluster, f *keyringfile.File) keyringGuard {
	_, annotated := cc.Annotations[chatv1alpha1.AnnotationAcceptKeyringLoss]
	accept := cc.Annotations[chatv1alpha1.AnnotationAcceptKeyringLoss] == "true"
	recorded := len(recordedDataKeys(cc.Status.Keys)) > 0
	g := keyringGuard{dropAnnotation: annotated}
	block := func(reason Reason, msg string) keyringGuard {
		if c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionKeysReady); c == nil || c.Reason != string(reason) {
			r.event(cc, corev1.EventTypeWarning, reason, ActionRotateKeys, "%s", msg)
		}
		r.setCond(cc, chatv1alpha1.ConditionKeysReady, metav1.ConditionFalse, reason, msg)
		// Left for the person: set while the loss is visible, it is acted on.
		return keyringGuard{}
	}
	const howTo = "restore the Secret from a backup (docs/keyring.md), or set the annotation " +
		chatv1alpha1.AnnotationAcceptKeyringLoss + `="true" on the ChatCluster to accept that stored messages become unreadable`
	switch {
	case f == nil && !recorded:
		g.proceed = true // a new ChatCluster: its first keyring
	case f == nil && accept:
		g.proceed, g.lost = true, recordedIDs(cc.Status.Keys)
	case f == nil:
		return block(ReasonKeyringMissing, fmt.Sprintf(
			"keyring Secret %s/%s is missing; the operator does not generate new keys over the recorded data keys %s, which stored messages are sealed with: %s",
			cc.Namespace, keysSecretName(cc), recordedIDs(cc.Status.Keys), howTo))
	default:
		chk := CheckKeyring(cc.Status.Keys, f)
		switch {
		case chk.Foreign != "" && accept:
			g.proceed, g.lost = true, recordedIDs(cc.Status.Keys)
		case chk.Foreign != "":
			return block(ReasonKeyringForeign, fmt.Sprintf(
				"keyring Secret %s/%s holds another keyring: %s; the operator leaves it and the chat servers' Deployment untouched: %s",
				cc.Namespace, keysSecretName(cc), chk.Foreign, howTo))
		default:
			g.proceed, g.adopted, g.removed = true, !recorded, chk.Removed
		}
	}
	return g
}

// finish reports what the guard let through, once the keyring is in place and
// recorded, and removes the accept annotation so that it never accepts a later
// loss unasked.
func (r *ChatClusterReconciler) finishKeyringGuard(ctx context.Context, cc *chatv1alpha1.ChatCluster, g keyringGuard) error {
	active := cc.Status.Keys.ActiveDataKeyID
	switch {
	case g.lost != "":
		cc.Status.Keys.Epoch++ // recorded with the status; the next Deployment apply rolls the pods
		r.event(cc, corev1.EventTypeWarning, ReasonKeyringLossAccepted, ActionRotateKeys,
			"keyring loss accepted (%s): stored messages sealed with the lost data keys %s are unreadable, and every session must sign in again; the keyring now has active data key %s",
			chatv1alpha1.AnnotationAcceptKeyringLoss, g.lost, active)
	case g.dropAnnotation:
		r.event(cc, corev1.EventTypeNormal, ReasonNoKeyringLoss, ActionRotateKeys,
			"%s removed: the keyring Secret holds the recorded keys, there is no loss to accept", chatv1alpha1.AnnotationAcceptKeyringLoss)
	}
	if g.adopted {
		r.event(cc, corev1.EventTypeNormal, ReasonKeysAdopted, ActionRotateKeys,
			"adopted the existing keyring Secret %s (active data key %s)", keysSecretName(cc), active)
	}
	if len(g.removed) > 0 {
		r.event(cc, corev1.EventTypeWarning, ReasonDataKeysRemoved, ActionRotateKeys,
			"data keys %s are no longer in keyring Secret %s: rows still sealed with them cannot be opened (parley_keyring_rows_remaining{kid} said whether any were)",
			strings.Join(g.removed, ", "), keysSecretName(cc))
	}
	if !g.dropAnnotation {
		return nil
	}
	// A merge patch of that one annotation on a separate object: the reconciled
	// copy keeps its status changes for the status patch that follows.
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:null}}}`, chatv1alpha1.AnnotationAcceptKeyringLoss)
	obj := &chatv1alpha1.ChatCluster{ObjectMeta: metav1.ObjectMeta{Namespace: cc.Namespace, Name: cc.Name}}
	if err := r.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("remove annotation %s: %w", chatv1alpha1.AnnotationAcceptKeyringLoss, err)
	}
	return nil
}

// keyringBlocked reports whether the guard stopped this reconcile, and why.
func keyringBlocked(cc *chatv1alpha1.ChatCluster) (Reason, string, bool) {
	c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionKeysReady)
	if c == nil || c.Status == metav1.ConditionTrue || !slices.Contains([]string{string(ReasonKeyringMissing), string(ReasonKeyringForeign)}, c.Reason) {
		return "", "", false
	}
	return Reason(c.Reason), c.Message, true
}

// degradedBackoff grows with the time Degraded has been True for reason, from
// 5s to 5m: a problem only a person can fix is not polled in a hot loop, and the
// Secret watch brings the reconcile as soon as they do.
func degradedBackoff(cc *chatv1alpha1.ChatCluster, reason Reason, now time.Time) time.Duration {
	backoff := missingSecretMinBackoff
	if c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionDegraded); c != nil && c.Status == metav1.ConditionTrue && c.Reason == string(reason) {
		backoff = min(max(now.Sub(c.LastTransitionTime.Time), missingSecretMinBackoff), missingSecretMaxBackoff)
	}
	return backoff
}
