package integration

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

func deploymentImage(f *fixture, name string) string {
	f.t.Helper()
	dep := &appsv1.Deployment{}
	f.get(dep, name)
	return dep.Spec.Template.Spec.Containers[0].Image
}

// readyCluster creates the sample ChatCluster and brings it to Ready.
func readyCluster(f *fixture) *chatv1alpha1.ChatCluster {
	f.t.Helper()
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	f.simulateRedisReady("chat")
	f.simulateRollout("chat", 3, 3)
	f.reconcile("chat")
	cc := f.chat("chat")
	if c := cond(cc, "Ready"); c.Status != metav1.ConditionTrue {
		f.t.Fatalf("sample not Ready: %+v", c)
	}
	f.drainEvents()
	return cc
}

// keysStatusHasDataKey reports whether status.keys records the data key id.
func keysStatusHasDataKey(cc *chatv1alpha1.ChatCluster, id string) bool {
	for _, k := range cc.Status.Keys.DataKeys {
		if k.ID == id {
			return k.Fingerprint != ""
		}
	}
	return false
}

// Deleting the keyring Secret of a ChatCluster whose keys are recorded does not
// make the operator generate new keys (stored messages would become unreadable):
// KeysReady=False/KeyringMissing, a Warning Event, Ready=False, the Deployment is
// left as it is (a spec change is not rolled out), and nothing is written while
// it stays missing. Restoring the Secret brings the cluster back.
func TestMissingKeyringIsNotRegenerated(t *testing.T) {
	f := newFixture(t)
	cc := readyCluster(f)
	kr, sec := f.keyring(cc)
	active, _ := kr.ActiveData()
	if !keysStatusHasDataKey(cc, active.ID) {
		t.Errorf("status.keys.dataKeys = %+v, want the active data key %s with a fingerprint", cc.Status.Keys.DataKeys, active.ID)
	}
	saved := sec.Data[keyringfile.FileName]

	if err := k8s.Delete(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Image = "ghcr.io/parley-chat/chatserver:v1.0.1" })
	res := f.reconcile("chat")
	if !f.absent(&corev1.Secret{}, "chat-keys") {
		kr2, _ := f.keyring(cc)
		t.Fatalf("the operator generated a new keyring (data key %s) over a lost one (%s)", kr2.Data[0].ID, active.ID)
	}
	cc = f.chat("chat")
	if c := cond(cc, "KeysReady"); c.Status != metav1.ConditionFalse || c.Reason != "KeyringMissing" || !strings.Contains(c.Message, "chat-keys") {
		t.Errorf("KeysReady = %+v, want False/KeyringMissing naming the Secret", c)
	}
	if c := cond(cc, "Ready"); c.Status != metav1.ConditionFalse || c.Reason != "KeysNotReady" {
		t.Errorf("Ready = %+v, want False/KeysNotReady", c)
	}
	if c := cond(cc, "Degraded"); c.Status != metav1.ConditionTrue || c.Reason != "KeyringMissing" {
		t.Errorf("Degraded = %+v, want True/KeyringMissing", c)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning KeyringMissing") {
		t.Errorf("events %q, want a Warning KeyringMissing", evs)
	}
	if img := deploymentImage(f, "chat"); img != "ghcr.io/parley-chat/chatserver:v1.0.0" {
		t.Errorf("the Deployment was rolled to %s while its keyring is missing", img)
	}
	if res.RequeueAfter == 0 {
		t.Error("no requeue while the keyring is missing")
	}

	// Still missing: no writes, no repeated Events.
	f.resetWrites()
	f.clock.Step(time.Minute)
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Errorf("reconcile with the keyring still missing wrote %q", w)
	}
	if evs := f.drainEvents(); len(evs) != 0 {
		t.Errorf("repeated events %q", evs)
	}

	// Restore from the backup: back to normal, and the spec change rolls out.
	restore := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "chat-keys"}, Data: map[string][]byte{keyringfile.FileName: saved}}
	if err := k8s.Create(ctx, restore); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	cc = f.chat("chat")
	if c := cond(cc, "KeysReady"); c.Status != metav1.ConditionTrue {
		t.Errorf("KeysReady after the restore = %+v", c)
	}
	if img := deploymentImage(f, "chat"); img != "ghcr.io/parley-chat/chatserver:v1.0.1" {
		t.Errorf("the Deployment runs %s after the restore, want the new image", img)
	}
	if kr2, _ := f.keyring(cc); kr2.Data[0].ID != active.ID {
		t.Errorf("after the restore the keyring has data key %s, want %s", kr2.Data[0].ID, active.ID)
	}
}

// A keyring Secret replaced by another keyring (the recorded data keys are not
// in it) is refused: KeysReady=False/KeyringForeign, a Warning Event, the Secret
// is neither rotated nor overwritten, the Deployment is not rolled.
func TestForeignKeyringIsRefused(t *testing.T) {
	f := newFixture(t)
	cc := readyCluster(f)
	_, sec := f.keyring(cc)
	original := sec.Data[keyringfile.FileName]

	other, err := keyringfile.New(t0.Add(-24 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sec.Data[keyringfile.FileName] = foreign
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Image = "ghcr.io/parley-chat/chatserver:v1.0.1"
		// Due long ago: a rotation would change the Secret if the operator went on.
		cc.Spec.Security.KeyRotation.JWTKeyInterval = &metav1.Duration{Duration: time.Hour}
	})
	f.reconcile("chat")
	cc = f.chat("chat")
	if c := cond(cc, "KeysReady"); c.Status != metav1.ConditionFalse || c.Reason != "KeyringForeign" {
		t.Errorf("KeysReady = %+v, want False/KeyringForeign", c)
	}
	if c := cond(cc, "Degraded"); c.Status != metav1.ConditionTrue || c.Reason != "KeyringForeign" {
		t.Errorf("Degraded = %+v, want True/KeyringForeign", c)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning KeyringForeign") {
		t.Errorf("events %q, want a Warning KeyringForeign", evs)
	}
	f.get(sec, "chat-keys")
	if string(sec.Data[keyringfile.FileName]) != string(foreign) {
		t.Error("the operator changed a foreign keyring")
	}
	if img := deploymentImage(f, "chat"); img != "ghcr.io/parley-chat/chatserver:v1.0.0" {
		t.Errorf("the Deployment was rolled to %s onto a foreign keyring", img)
	}
	if a, _ := other.ActiveData(); cc.Status.Keys.ActiveDataKeyID == a.ID {
		t.Error("status now reports the foreign keyring's data key")
	}

	// Same ids, other key material: also foreign.
	mixed, err := keyringfile.Parse(original)
	if err != nil {
		t.Fatal(err)
	}
	mixed.Data[0].Key = other.Data[0].Key
	b, err := mixed.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sec.Data[keyringfile.FileName] = b
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "KeysReady"); c.Reason != "KeyringForeign" {
		t.Errorf("a keyring with the recorded id but other key material: KeysReady = %+v, want KeyringForeign", c)
	}

	// Putting the right keyring back recovers.
	f.get(sec, "chat-keys")
	sec.Data[keyringfile.FileName] = original
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "KeysReady"); c.Status != metav1.ConditionTrue {
		t.Errorf("KeysReady after the right keyring came back = %+v", c)
	}
	if img := deploymentImage(f, "chat"); img != "ghcr.io/parley-chat/chatserver:v1.0.1" {
		t.Errorf("the Deployment runs %s after recovery, want the new image", img)
	}
}

// The annotation chat.parley.dev/accept-keyring-loss: "true" is the explicit way
// out: a missing keyring is replaced by a fresh one, recorded in status, with a
// Warning Event saying stored messages cannot be read; the operator removes the
// annotation, so a later loss is refused again. On a foreign keyring it adopts it.
// Set while nothing is lost, the annotation is removed and changes nothing.
func TestAcceptKeyringLossAnnotation(t *testing.T) {
	f := newFixture(t)
	cc := readyCluster(f)
	kr, sec := f.keyring(cc)
	lost, _ := kr.ActiveData()

	annotate := func() {
		f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
			if cc.Annotations == nil {
				cc.Annotations = map[string]string{}
			}
			cc.Annotations[chatv1alpha1.AnnotationAcceptKeyringLoss] = "true"
		})
	}
	annotated := func() bool {
		_, ok := f.chat("chat").Annotations[chatv1alpha1.AnnotationAcceptKeyringLoss]
		return ok
	}

	// Nothing lost: the annotation is removed, the keyring untouched.
	annotate()
	f.reconcile("chat")
	if annotated() {
		t.Error("the annotation stayed although nothing was lost: it would accept a later loss unasked")
	}
	if kr2, _ := f.keyring(cc); kr2.Data[0].ID != lost.ID {
		t.Error("the keyring changed with nothing lost")
	}
	f.drainEvents()

	// Missing: a fresh keyring.
	if err := k8s.Delete(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	annotate()
	f.reconcile("chat")
	fresh, _ := f.keyring(cc)
	fa, _ := fresh.ActiveData()
	if fa.ID == lost.ID {
		t.Fatal("no new keyring")
	}
	cc = f.chat("chat")
	if c := cond(cc, "KeysReady"); c.Status != metav1.ConditionTrue {
		t.Errorf("KeysReady after accepting the loss = %+v", c)
	}
	if cc.Status.Keys.ActiveDataKeyID != fa.ID || !keysStatusHasDataKey(cc, fa.ID) || keysStatusHasDataKey(cc, lost.ID) {
		t.Errorf("status.keys = %+v, want the fresh data key %s recorded and not %s", cc.Status.Keys, fa.ID, lost.ID)
	}
	evs := f.drainEvents()
	found := false
	for _, e := range evs {
		if strings.HasPrefix(e, "Warning KeyringLossAccepted") && strings.Contains(e, lost.ID) && strings.Contains(e, "unreadable") {
			found = true
		}
	}
	if !found {
		t.Errorf("events %q, want a Warning KeyringLossAccepted naming %s and saying messages are unreadable", evs, lost.ID)
	}
	if annotated() {
		t.Error("the annotation stayed after the loss was accepted")
	}
	// Running chat servers refuse to reload a keyring that does not continue
	// theirs, so the replacement rolls the pods onto it.
	f.reconcile("chat")
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	if got := dep.Spec.Template.Annotations["chat.parley.dev/keyring-epoch"]; cc.Status.Keys.Epoch != 1 || got != "1" {
		t.Errorf("status.keys.epoch %d, pod template keyring-epoch %q after accepting a loss, want 1 and \"1\" (annotations %v)", cc.Status.Keys.Epoch, got, dep.Spec.Template.Annotations)
	}

	// A later loss is refused again.
	if err := k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "chat-keys"}}); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "KeysReady"); c.Reason != "KeyringMissing" {
		t.Errorf("second loss: KeysReady = %+v, want KeyringMissing", c)
	}

	// Foreign, accepted: the foreign keyring is adopted, not overwritten.
	other, err := keyringfile.New(t0)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := other.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "chat-keys"}, Data: map[string][]byte{keyringfile.FileName: raw}}); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "KeysReady"); c.Reason != "KeyringForeign" {
		t.Fatalf("KeysReady = %+v, want KeyringForeign", c)
	}
	f.drainEvents()
	annotate()
	f.reconcile("chat")
	adopted, _ := f.keyring(cc)
	oa, _ := other.ActiveData()
	if a, _ := adopted.ActiveData(); a.ID != oa.ID || string(a.Key) != string(oa.Key) {
		t.Errorf("after accepting a foreign keyring its data key is %s, want the foreign %s kept", a.ID, oa.ID)
	}
	cc = f.chat("chat")
	if c := cond(cc, "KeysReady"); c.Status != metav1.ConditionTrue || cc.Status.Keys.ActiveDataKeyID != oa.ID {
		t.Errorf("KeysReady = %+v, active data key %s; want True with %s", c, cc.Status.Keys.ActiveDataKeyID, oa.ID)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning KeyringLossAccepted") {
		t.Errorf("events %q, want a Warning KeyringLossAccepted", evs)
	}
	if annotated() {
		t.Error("the annotation stayed after the foreign keyring was accepted")
	}
}

// A person removing a retired data key that nothing needs any more (the manual
// step docs/keyring.md describes) is not a foreign keyring: the operator goes on,
// with a Warning Event naming the key, and records the smaller keyring.
func TestRemovedRetiredDataKeyIsAcceptedWithAWarning(t *testing.T) {
	f := newFixture(t)
	cc := readyCluster(f)
	kr, _ := f.keyring(cc)
	old, _ := kr.ActiveData()
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Annotations = map[string]string{chatv1alpha1.AnnotationRotateKeysNow: "1"}
	})
	f.reconcile("chat")
	f.clock.Step(10 * time.Minute)
	f.reconcile("chat")
	kr, sec := f.keyring(cc)
	if st := stateOf(kr.Data, dataID, dataState, old.ID); st != keyringfile.StateRetired {
		t.Fatalf("data key %s is %q, want retired", old.ID, st)
	}
	f.drainEvents()

	var keep []keyringfile.DataKey
	for _, k := range kr.Data {
		if k.ID != old.ID {
			keep = append(keep, k)
		}
	}
	kr.Data = keep
	b, err := kr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sec.Data[keyringfile.FileName] = b
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	cc = f.chat("chat")
	if c := cond(cc, "KeysReady"); c.Status != metav1.ConditionTrue {
		t.Errorf("KeysReady after a retired data key was removed = %+v", c)
	}
	if keysStatusHasDataKey(cc, old.ID) {
		t.Error("status still records the removed data key")
	}
	evs := f.drainEvents()
	found := false
	for _, e := range evs {
		if strings.HasPrefix(e, "Warning DataKeysRemoved") && strings.Contains(e, old.ID) {
			found = true
		}
	}
	if !found {
		t.Errorf("events %q, want a Warning DataKeysRemoved naming %s", evs, old.ID)
	}
	f.drainEvents()
	f.reconcile("chat")
	if evs := f.drainEvents(); len(evs) != 0 {
		t.Errorf("the warning repeats: %q", evs)
	}
}

// With keyRetentionPolicy Retain (the default) the keyring Secret has no owner
// reference, so deleting the ChatCluster leaves it; a ChatCluster created again
// with the same name adopts it, and a message sealed before opens after. Delete
// keeps the controller owner reference; switching policy adds or removes it (a
// Secret made by an older operator has one).
func TestKeysSecretRetention(t *testing.T) {
	f := newFixture(t)
	cc := f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	cc = f.chat("chat")
	if cc.Spec.Security.KeyRetentionPolicy != chatv1alpha1.KeyRetentionRetain {
		t.Errorf("keyRetentionPolicy defaults to %q, want Retain", cc.Spec.Security.KeyRetentionPolicy)
	}
	kr, sec := f.keyring(cc)
	if refs := sec.OwnerReferences; len(refs) != 0 {
		t.Errorf("keyring Secret owner references %+v with Retain: the garbage collector would delete it with the ChatCluster", refs)
	}

	// The chat server seals a message with the keyring.
	srv := &server{t: t, dir: t.TempDir()}
	srv.load(sec.Data[keyringfile.FileName])
	ad := []byte("msg|c1|m1")
	ct, kid, err := srv.kr.Seal(ctx, ad, []byte("sealed before the ChatCluster was deleted"))
	if err != nil {
		t.Fatal(err)
	}
	f.drainEvents()

	if err := k8s.Delete(ctx, cc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the ChatCluster to go", func() bool { return f.absent(&chatv1alpha1.ChatCluster{}, "chat") })
	f.get(&corev1.Secret{}, "chat-keys")

	again := sample(f.ns, "chat")
	if err := k8s.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	cc = f.chat("chat")
	adopted, sec := f.keyring(cc)
	if adopted.Data[0].ID != kr.Data[0].ID || string(adopted.Data[0].Key) != string(kr.Data[0].Key) || adopted.JWT[0].ID != kr.JWT[0].ID {
		t.Fatalf("the recreated ChatCluster has data key %s and JWT key %s, want the retained %s and %s",
			adopted.Data[0].ID, adopted.JWT[0].ID, kr.Data[0].ID, kr.JWT[0].ID)
	}
	if cc.Status.Keys.ActiveDataKeyID != kid {
		t.Errorf("status active data key %s, the message was sealed with %s", cc.Status.Keys.ActiveDataKeyID, kid)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Normal KeysAdopted") || hasEvent(evs, "Normal KeysCreated") {
		t.Errorf("events %q, want KeysAdopted and no KeysCreated", evs)
	}
	after := &server{t: t, dir: t.TempDir()}
	after.load(sec.Data[keyringfile.FileName])
	if pt, err := after.kr.Open(ct, ad); err != nil || string(pt) != "sealed before the ChatCluster was deleted" {
		t.Fatalf("a message sealed before the deletion does not open after: %v", err)
	}

	// Delete: owned by the ChatCluster, as before.
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Security.KeyRetentionPolicy = chatv1alpha1.KeyRetentionDelete
	})
	f.reconcile("chat")
	f.get(sec, "chat-keys")
	if ref := metav1.GetControllerOf(sec); ref == nil || ref.UID != cc.UID || ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Errorf("with Delete the keyring Secret controller = %+v, want the ChatCluster", ref)
	}
	// And back to Retain: the owner reference goes (as for a Secret an older operator made).
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Security.KeyRetentionPolicy = chatv1alpha1.KeyRetentionRetain
	})
	f.reconcile("chat")
	f.get(sec, "chat-keys")
	if len(sec.OwnerReferences) != 0 {
		t.Errorf("owner references %+v remain after switching to Retain", sec.OwnerReferences)
	}
	f.reconcile("chat")
	f.resetWrites()
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Errorf("steady state with a retained keyring wrote %q", w)
	}
	if kr2, _ := f.keyring(cc); kr2.Data[0].ID != kr.Data[0].ID {
		t.Error("the keyring changed")
	}
}
