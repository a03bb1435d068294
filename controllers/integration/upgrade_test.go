package integration

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

const (
	oldDefault = "ghcr.io/parley-chat/chatserver:v0.1.0"
	newDefault = "ghcr.io/parley-chat/chatserver:v0.2.0"
	pinned     = "ghcr.io/parley-chat/chatserver:v1.0.0"
)

// upgradeFixture has two ChatClusters on the operator's default image (a, b)
// and one pinned (p), reconciled and rolled out by an operator of v0.1.0 with
// the upgrade gate's Lease in the fixture's namespace.
func upgradeFixture(t *testing.T, delay time.Duration) *fixture {
	t.Helper()
	f := newFixture(t)
	f.r.Upgrades = &controllers.UpgradeGate{Namespace: f.ns, Delay: delay}
	for _, name := range []string{"a", "b", "p"} {
		cc := sample(f.ns, name)
		cc.Spec.Ingress = nil
		if name != "p" {
			cc.Spec.Image = ""
		}
		f.create(cc)
		f.reconcile(name)
		f.simulateRedisReady(name)
		f.simulateRollout(name, 3, 3)
		f.reconcile(name)
	}
	for name, want := range map[string]string{"a": oldDefault, "b": oldDefault, "p": pinned} {
		if got := f.chat(name).Status.Image; got != want {
			t.Fatalf("before the upgrade %s: status.image = %q, want %q", name, got, want)
		}
	}
	return f
}

// upgradeOperator stands for the new operator's pod: same API server, same
// clock, a new version and so a new default image.
func (f *fixture) upgradeOperator(delay time.Duration) {
	f.r = f.newReconciler(f.clock)
	f.r.Version = "v0.2.0"
	f.r.Upgrades = &controllers.UpgradeGate{Namespace: f.ns, Delay: delay}
}

func (f *fixture) template(name string) (corev1.PodTemplateSpec, int64) {
	f.t.Helper()
	dep := &appsv1.Deployment{}
	f.get(dep, name)
	return dep.Spec.Template, dep.Generation
}

func (f *fixture) runningImage(name string) string {
	f.t.Helper()
	tpl, _ := f.template(name)
	return tpl.Spec.Containers[0].Image
}

func TestOperatorUpgradeRollsDefaultImageClustersOneAtATime(t *testing.T) {
	const delay = 5 * time.Minute
	f := upgradeFixture(t, delay)
	pinnedTpl, pinnedGen := f.template("p")
	f.drainEvents()

	f.upgradeOperator(delay)
	checkPinned := func(when string) {
		t.Helper()
		tpl, gen := f.template("p")
		if gen != pinnedGen || !equality.Semantic.DeepEqual(tpl, pinnedTpl) {
			t.Fatalf("%s: the pinned ChatCluster's pod template changed (generation %d -> %d)", when, pinnedGen, gen)
		}
		if pi := f.chat("p").Status.PendingImage; pi != "" {
			t.Fatalf("%s: pinned ChatCluster has pendingImage %q", when, pi)
		}
	}

	// The new operator reconciles all three: one default-image cluster moves.
	f.reconcile("a")
	res := f.reconcile("b")
	f.reconcile("p")
	checkPinned("first reconcile by the new operator")
	if got := f.runningImage("a"); got != newDefault {
		t.Fatalf("a runs %s, want the new default %s", got, newDefault)
	}
	if got := f.runningImage("b"); got != oldDefault {
		t.Fatalf("b runs %s while a rolls, want it to keep %s", got, oldDefault)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > time.Minute {
		t.Errorf("b waiting at the gate requeues after %s, want a re-check within a minute", res.RequeueAfter)
	}
	b := f.chat("b")
	if b.Status.PendingImage != newDefault || b.Status.Image != oldDefault {
		t.Errorf("b status: image %q pendingImage %q, want %q and %q", b.Status.Image, b.Status.PendingImage, oldDefault, newDefault)
	}
	evs := f.drainEvents()
	if !hasEvent(evs, "Normal UpgradeStarted") || !hasEvent(evs, "Normal UpgradeWaiting") {
		t.Errorf("events %q, want UpgradeStarted (a) and UpgradeWaiting (b)", evs)
	}
	lease := &coordinationv1.Lease{}
	f.get(lease, controllers.UpgradeLeaseName)
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != f.ns+"/a" {
		t.Fatalf("upgrade Lease held by %q, want %s/a", h, f.ns)
	}

	// a rolls with surge and no capacity loss.
	dep := &appsv1.Deployment{}
	f.get(dep, "a")
	ru := dep.Spec.Strategy.RollingUpdate
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable.String() != "0" || ru.MaxSurge.IntValue() < 1 {
		t.Errorf("a's strategy %+v, want RollingUpdate with maxUnavailable 0 and maxSurge >= 1", dep.Spec.Strategy)
	}
	pdb := &policyv1.PodDisruptionBudget{}
	f.get(pdb, "a")
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("a's PDB maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}

	// Half-way through a's rollout, and after a long time, b still waits.
	f.simulateRollout("a", 2, 3)
	f.reconcile("a")
	f.clock.Step(time.Hour)
	f.reconcile("b")
	if got := f.runningImage("b"); got != oldDefault {
		t.Fatalf("b moved to %s before a finished rolling out", got)
	}
	if cond(f.chat("a"), "Ready").Reason != "RollingOut" {
		t.Errorf("a Ready = %+v, want RollingOut", cond(f.chat("a"), "Ready"))
	}

	// a is rolled out and available: it releases the gate, b waits the delay.
	f.simulateRollout("a", 3, 3)
	f.reconcile("a")
	if got := f.chat("a").Status.Image; got != newDefault {
		t.Errorf("a status.image = %q after its rollout, want %q", got, newDefault)
	}
	f.get(lease, controllers.UpgradeLeaseName)
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != "" {
		t.Fatalf("Lease still held by %q after a rolled out", h)
	}
	f.clock.Step(delay - time.Second)
	res = f.reconcile("b")
	if got := f.runningImage("b"); got != oldDefault {
		t.Fatalf("b moved %s after a's rollout, before the delay of %s", delay-time.Second, delay)
	}
	if res.RequeueAfter != time.Second {
		t.Errorf("b requeues after %s, want the 1s left of the delay", res.RequeueAfter)
	}
	f.clock.Step(time.Second)
	f.reconcile("b")
	if got := f.runningImage("b"); got != newDefault {
		t.Fatalf("b runs %s once the delay has passed, want %s", got, newDefault)
	}
	if pi := f.chat("b").Status.PendingImage; pi != "" {
		t.Errorf("b still shows pendingImage %q while it rolls", pi)
	}
	f.simulateRollout("b", 3, 3)
	f.reconcile("b")
	if got := f.chat("b").Status.Image; got != newDefault {
		t.Errorf("b status.image = %q, want %q", got, newDefault)
	}
	f.reconcile("p")
	checkPinned("after the wave")
}

// A holder that no longer needs the gate (pinned, deleted or paused meanwhile)
// does not hold up the others.
func TestUpgradeGateHolderThatStopsFollowingTheDefaultLetsGo(t *testing.T) {
	f := upgradeFixture(t, time.Minute)
	f.upgradeOperator(time.Minute)
	f.reconcile("a")
	f.reconcile("b")
	if f.runningImage("a") != newDefault || f.runningImage("b") != oldDefault {
		t.Fatalf("a %s, b %s: want a rolling and b waiting", f.runningImage("a"), f.runningImage("b"))
	}
	// a is pinned back to the old image (say it misbehaved on the new one).
	f.update("a", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Image = oldDefault })
	f.reconcile("a")
	if got := f.runningImage("a"); got != oldDefault {
		t.Fatalf("a pinned to %s runs %s", oldDefault, got)
	}
	f.reconcile("b")
	if got := f.runningImage("b"); got != newDefault {
		t.Fatalf("b runs %s after the holder was pinned, want %s", got, newDefault)
	}
}

// A ChatCluster created after the upgrade starts on the new default at once,
// even while another one holds the gate.
func TestNewChatClusterStartsOnTheNewDefault(t *testing.T) {
	f := upgradeFixture(t, time.Minute)
	f.upgradeOperator(time.Minute)
	f.reconcile("a")
	cc := sample(f.ns, "n")
	cc.Spec.Image, cc.Spec.Ingress = "", nil
	f.create(cc)
	f.reconcile("n")
	if got := f.runningImage("n"); got != newDefault {
		t.Fatalf("a new ChatCluster runs %s, want %s", got, newDefault)
	}
}

// During an operator upgrade without leader election the old operator runs
// beside the new one for a moment: it does not roll back the ChatCluster the
// new one is moving.
func TestOldOperatorDoesNotRollBackTheHolder(t *testing.T) {
	f := upgradeFixture(t, time.Minute)
	old := f.r
	f.upgradeOperator(time.Minute)
	f.reconcile("a")
	if got := f.runningImage("a"); got != newDefault {
		t.Fatalf("a runs %s, want %s", got, newDefault)
	}
	if _, err := old.Reconcile(ctx, reqFor(f, "a")); err != nil {
		t.Fatal(err)
	}
	if got := f.runningImage("a"); got != newDefault {
		t.Fatalf("the old operator rolled a back to %s", got)
	}
	if _, err := old.Reconcile(ctx, reqFor(f, "b")); err != nil {
		t.Fatal(err)
	}
	if got := f.runningImage("b"); got != oldDefault {
		t.Fatalf("b runs %s under the old operator", got)
	}
}
