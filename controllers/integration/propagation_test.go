package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// fakeProber answers /keyringz for simulated pods from real chat server
// keyrings (the loader of rotation_test.go), one per pod: a pod "has loaded" a
// Secret once the test hands it to that pod's server.
type fakeProber struct {
	mu      sync.Mutex
	servers map[string]*server
	fail    map[string]error
	asked   map[string]int
	// old pods run a release from before VAPID keys: no "accepts".
	old map[string]bool
}

func newFakeProber() *fakeProber {
	return &fakeProber{servers: map[string]*server{}, fail: map[string]error{}, asked: map[string]int{}, old: map[string]bool{}}
}

func (p *fakeProber) LoadedKeyring(_ context.Context, pod *corev1.Pod) (controllers.LoadedKeyring, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked[pod.Name]++
	if err := p.fail[pod.Name]; err != nil {
		return controllers.LoadedKeyring{}, err
	}
	s, ok := p.servers[pod.Name]
	if !ok || s.kr == nil {
		return controllers.LoadedKeyring{}, fmt.Errorf("pod %s: connection refused", pod.Name)
	}
	l := s.kr.Loaded()
	out := controllers.LoadedKeyring{Digest: l.Digest}
	if !p.old[pod.Name] {
		out.Accepts = l.Accepts
	}
	for _, k := range l.Keys {
		out.Keys = append(out.Keys, controllers.LoadedKey{ID: k.ID, Kind: k.Kind, State: k.State})
	}
	return out, nil
}

func (p *fakeProber) setFail(pod string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail[pod] = err
}

func (p *fakeProber) timesAsked(pod string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asked[pod]
}

// chatPod creates a pod as the Deployment's ReplicaSet would (the Deployment's
// selector labels) and plays its kubelet: Running with a pod IP, Ready or not.
func (f *fixture) chatPod(deployment, name, ip string, ready bool) {
	f.t.Helper()
	dep := &appsv1.Deployment{}
	f.get(dep, deployment)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name, Labels: dep.Spec.Selector.MatchLabels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "chatserver", Image: "chatserver",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}}}},
	}
	if err := k8s.Create(ctx, pod); err != nil {
		f.t.Fatalf("create Pod %s: %v", name, err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		f.t.Fatalf("set Pod %s status: %v", name, err)
	}
}

func stagedIDs(f *keyringfile.File) (jwtID, dataID string) {
	for _, k := range f.JWT {
		if k.State == keyringfile.StateStaged {
			jwtID = k.ID
		}
	}
	for _, k := range f.Data {
		if k.State == keyringfile.StateStaged {
			dataID = k.ID
		}
	}
	return jwtID, dataID
}

// A staged key becomes active only once every ready chat server pod reports it
// loaded; the wall-clock window stays the minimum. While a pod lags,
// KeysPropagated=False/Waiting counts the pods that have it and names the
// others; past the bound a Warning Event (KeyPropagationLagging) is raised,
// still without promoting. Once the pod catches up the keys are promoted, and
// a token signed with the new key verifies on every replica.
func TestPromotionWaitsForEveryReadyPod(t *testing.T) {
	f := newFixture(t)
	prober := newFakeProber()
	f.r.KeyringProber = prober
	cc := sample(f.ns, "chat")
	cc.Spec.Security.KeyRotation.PropagationWindow = &metav1.Duration{Duration: 2 * time.Minute}
	f.create(cc)
	f.reconcile("chat")
	cc = f.chat("chat")
	if c := cond(cc, chatv1alpha1.ConditionKeysPropagated); c.Status != metav1.ConditionTrue || c.Reason != "Propagated" {
		t.Errorf("KeysPropagated with nothing staged = %+v, want True/Propagated", c)
	}

	// Three ready replicas on the first keyring, one starting (not ready) and a
	// pod of another ChatCluster: only the three are asked.
	_, sec := f.keyring(cc)
	for i, name := range []string{"chat-a", "chat-b", "chat-c"} {
		f.chatPod("chat", name, fmt.Sprintf("10.0.0.%d", i+1), true)
		prober.servers[name] = &server{t: t, dir: t.TempDir()}
		prober.servers[name].load(sec.Data[keyringfile.FileName])
	}
	f.chatPod("chat", "chat-starting", "10.0.0.9", false)
	other := sample(f.ns, "other")
	f.create(other)
	f.reconcile("other")
	f.chatPod("other", "other-a", "10.0.1.1", true)

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Annotations = map[string]string{chatv1alpha1.AnnotationRotateKeysNow: "r1"}
	})
	f.reconcile("chat")
	kr, sec := f.keyring(cc)
	jwtID, dataID := stagedIDs(kr)
	if jwtID == "" || dataID == "" {
		t.Fatalf("rotate-now staged jwt %q data %q", jwtID, dataID)
	}
	c := cond(f.chat("chat"), chatv1alpha1.ConditionKeysPropagated)
	if c.Status != metav1.ConditionFalse || c.Reason != "Waiting" || !strings.Contains(c.Message, "propagation window") {
		t.Errorf("KeysPropagated just after staging = %+v, want False/Waiting for the propagation window", c)
	}
	// The kubelets of a and b deliver the Secret; c's node lags.
	prober.servers["chat-a"].load(sec.Data[keyringfile.FileName])
	prober.servers["chat-b"].load(sec.Data[keyringfile.FileName])
	f.drainEvents()
	for _, name := range []string{"chat-a", "chat-b", "chat-c"} {
		if n := prober.timesAsked(name); n != 0 {
			t.Errorf("pod %s asked %d times before the window ended", name, n)
		}
	}

	assertNotPromoted := func(when string) {
		t.Helper()
		kr, _ := f.keyring(cc)
		if j, d := stagedIDs(kr); j != jwtID || d != dataID {
			t.Fatalf("%s: staged keys now jwt %q data %q, want %s and %s still staged (promoted while chat-c lags)", when, j, d, jwtID, dataID)
		}
	}

	// The window has passed: the operator asks the ready pods and waits for chat-c.
	f.clock.Step(2 * time.Minute)
	res := f.reconcile("chat")
	assertNotPromoted("window passed")
	c = cond(f.chat("chat"), chatv1alpha1.ConditionKeysPropagated)
	for _, want := range []string{"2/3 ready pods have loaded JWT key " + jwtID, "2/3 ready pods have loaded data key " + dataID, "chat-c"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("KeysPropagated message %q lacks %q", c.Message, want)
		}
	}
	t.Logf("KeysPropagated while chat-c lags: %s/%s %q", c.Status, c.Reason, c.Message)
	if c.Status != metav1.ConditionFalse || c.Reason != "Waiting" || strings.Contains(c.Message, "chat-a") {
		t.Errorf("KeysPropagated = %+v, want False/Waiting naming only the lagging pod", c)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > controllers.PropagationRecheck {
		t.Errorf("requeue after %s while waiting for a pod, want at most %s", res.RequeueAfter, controllers.PropagationRecheck)
	}
	evs := f.drainEvents()
	if hasEvent(evs, "Normal KeyActivated") || hasEvent(evs, "Warning") {
		t.Errorf("events while within the bound: %q", evs)
	}
	for _, name := range []string{"chat-starting", "other-a"} {
		if n := prober.timesAsked(name); n != 0 {
			t.Errorf("pod %s (not ready, or another ChatCluster's) was asked %d times", name, n)
		}
	}

	// Past the bound: a Warning, once, and still no promotion.
	f.clock.Step(controllers.PropagationLagBound)
	f.reconcile("chat")
	assertNotPromoted("past the bound")
	c = cond(f.chat("chat"), chatv1alpha1.ConditionKeysPropagated)
	if c.Status != metav1.ConditionFalse || c.Reason != "KeyPropagationLagging" || !strings.Contains(c.Message, "2/3") {
		t.Errorf("KeysPropagated past the bound = %+v, want False/KeyPropagationLagging", c)
	}
	evs = f.drainEvents()
	t.Logf("events past the bound: %q", evs)
	if !hasEvent(evs, "Warning KeyPropagationLagging") || !strings.Contains(strings.Join(evs, "\n"), "chat-c") {
		t.Errorf("events past the bound %q, want a Warning KeyPropagationLagging naming chat-c", evs)
	}
	f.clock.Step(time.Minute)
	f.reconcile("chat")
	assertNotPromoted("still lagging")
	if evs := f.drainEvents(); hasEvent(evs, "Warning KeyPropagationLagging") {
		t.Errorf("the Warning was raised again for the same lag: %q", evs)
	}

	// chat-c catches up but chat-b stops answering: still no promotion.
	prober.servers["chat-c"].load(sec.Data[keyringfile.FileName])
	prober.setFail("chat-b", fmt.Errorf("GET http://10.0.0.2:9090/keyringz: context deadline exceeded"))
	f.reconcile("chat")
	assertNotPromoted("chat-b unreachable")
	if c := cond(f.chat("chat"), chatv1alpha1.ConditionKeysPropagated); !strings.Contains(c.Message, "chat-b") || !strings.Contains(c.Message, "deadline exceeded") {
		t.Errorf("KeysPropagated %q does not say chat-b could not be asked", c.Message)
	}

	// Every ready pod has the staged keys: promoted.
	prober.setFail("chat-b", nil)
	f.reconcile("chat")
	kr, sec = f.keyring(cc)
	if a, _ := kr.ActiveJWT(); a.ID != jwtID {
		t.Fatalf("active JWT key %s, want the staged %s once every pod has it", a.ID, jwtID)
	}
	if a, _ := kr.ActiveData(); a.ID != dataID {
		t.Fatalf("active data key %s, want the staged %s", a.ID, dataID)
	}
	c = cond(f.chat("chat"), chatv1alpha1.ConditionKeysPropagated)
	t.Logf("KeysPropagated after promotion: %s/%s %q", c.Status, c.Reason, c.Message)
	if c.Status != metav1.ConditionTrue || c.Reason != "Propagated" || !strings.Contains(c.Message, "3/3") {
		t.Errorf("KeysPropagated after promotion = %+v, want True/Propagated 3/3", c)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Normal KeyActivated") {
		t.Errorf("events %q, want KeyActivated", evs)
	}

	// The replica that signs with the new key first (a) and the laggard (c,
	// still on the staged keyring) agree: no 401, no undecryptable message.
	a, lag := prober.servers["chat-a"], prober.servers["chat-c"]
	a.load(sec.Data[keyringfile.FileName])
	tok, err := a.kr.SignJWT(jwt.RegisteredClaims{Subject: "u1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if err := lag.kr.ParseJWT(tok, &jwt.RegisteredClaims{}); err != nil {
		t.Errorf("a lagging replica refuses a token signed with the promoted key: %v", err)
	}
	ct, kid, err := a.kr.Seal(ctx, []byte("msg|c1|m1"), []byte("hello"))
	if err != nil || kid != dataID {
		t.Fatalf("seal: %v with %s, want %s", err, kid, dataID)
	}
	if pt, err := lag.kr.Open(ct, []byte("msg|c1|m1")); err != nil || string(pt) != "hello" {
		t.Errorf("a lagging replica cannot open a message sealed with the promoted key: %v", err)
	}
}

// The generated ClusterRole lets the operator list the pods it asks, and with
// no ready pod (hibernating, or none up yet) promotion runs on the window alone:
// pods that start later mount the current Secret.
func TestPromotionGateRBACAndNoReadyPods(t *testing.T) {
	f := newFixture(t)
	user := bindGeneratedRole(t, "parley-operator-gate-"+f.ns)
	u, err := testEnv.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.r = f.newReconcilerAs(u.Config(), f.clock)
	prober := newFakeProber()
	f.r.KeyringProber = prober

	cc := sample(f.ns, "chat")
	cc.Annotations = map[string]string{chatv1alpha1.AnnotationRotateKeysNow: "r1"}
	cc.Spec.Security.KeyRotation.PropagationWindow = &metav1.Duration{Duration: 2 * time.Minute}
	f.create(cc)
	f.reconcile("chat")
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Annotations[chatv1alpha1.AnnotationRotateKeysNow] = "r2" })
	f.reconcile("chat")
	kr, sec := f.keyring(cc)
	jwtID, _ := stagedIDs(kr)
	if jwtID == "" {
		t.Fatal("nothing staged")
	}

	// One ready pod on the staged keyring: asked (as the generated role), then promoted.
	f.chatPod("chat", "chat-a", "10.0.0.1", true)
	prober.servers["chat-a"] = &server{t: t, dir: t.TempDir()}
	prober.servers["chat-a"].load(sec.Data[keyringfile.FileName])
	f.clock.Step(2 * time.Minute)
	f.reconcile("chat") // fails the test on Forbidden
	if prober.timesAsked("chat-a") == 0 {
		t.Error("the ready pod was not asked before the promotion")
	}
	kr, _ = f.keyring(cc)
	if a, _ := kr.ActiveJWT(); a.ID != jwtID {
		t.Fatalf("active JWT key %s, want %s", a.ID, jwtID)
	}

	// No ready pod: the next rotation is promoted after the window alone.
	if err := k8s.Delete(ctx, &corev1.Pod{ObjectMeta: ctrlObjectMeta(f.ns, "chat-a")}); err != nil {
		t.Fatal(err)
	}
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Annotations[chatv1alpha1.AnnotationRotateKeysNow] = "r3" })
	f.reconcile("chat")
	kr, _ = f.keyring(cc)
	next, _ := stagedIDs(kr)
	f.clock.Step(2 * time.Minute)
	f.reconcile("chat")
	kr, _ = f.keyring(cc)
	if a, _ := kr.ActiveJWT(); a.ID != next {
		t.Errorf("with no ready pod the staged key %s was not promoted after the window (active %s)", next, a.ID)
	}
	if c := cond(f.chat("chat"), chatv1alpha1.ConditionKeysPropagated); c.Status != metav1.ConditionTrue {
		t.Errorf("KeysPropagated = %+v, want True", c)
	}
}

// The propagation window cannot be shorter than a Secret volume update takes
// on a default kubelet (sync period 60s plus its cache TTL).
func TestPropagationWindowMinimum(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		window time.Duration
		ok     bool
	}{{10 * time.Second, false}, {time.Minute + 59*time.Second, false}, {2 * time.Minute, true}} {
		cc := sample(f.ns, fmt.Sprintf("w%d", int(tc.window.Seconds())))
		cc.Spec.Security.KeyRotation.PropagationWindow = &metav1.Duration{Duration: tc.window}
		err := k8s.Create(ctx, cc)
		switch {
		case tc.ok && err != nil:
			t.Errorf("window %s refused: %v", tc.window, err)
		case !tc.ok && err == nil:
			t.Errorf("window %s accepted", tc.window)
		case !tc.ok && !strings.Contains(err.Error(), "propagationWindow must be between 2m and 24h"):
			t.Errorf("window %s: error %q does not give the range", tc.window, err)
		}
	}
}

// A keyring gets its VAPID key only once every ready chat server pod says it
// loads one (a server from before Web Push refuses a keyring with a part it
// does not know, and would then miss every later rotation): not while one
// ready pod is old, nor while none is ready; then once, with an event; the
// servers load the result.
func TestVAPIDKeyWaitsForEveryReadyPodToAcceptIt(t *testing.T) {
	f := newFixture(t)
	prober := newFakeProber()
	f.r.KeyringProber = prober
	cc := sample(f.ns, "vapid")
	cc.Spec.Replicas = ptr.To[int32](2)
	f.create(cc)
	f.reconcile("vapid")
	cc = f.chat("vapid")
	kr, sec := f.keyring(cc)
	if len(kr.VAPID) != 0 {
		t.Fatalf("first keyring has VAPID keys %v before any server accepts them", kr.VAPID)
	}
	for i, name := range []string{"vapid-a", "vapid-b"} {
		f.chatPod("vapid", name, fmt.Sprintf("10.0.2.%d", i+1), true)
		prober.servers[name] = &server{t: t, dir: t.TempDir()}
		prober.servers[name].load(sec.Data[keyringfile.FileName])
	}
	f.reconcile("vapid") // a rollout under way: not even asked
	if prober.timesAsked("vapid-a") != 0 {
		t.Fatal("pods asked about VAPID keys during the rollout")
	}
	f.simulateRollout("vapid", 2, 2)
	prober.old["vapid-b"] = true // one replica on the old release (its image pinned)
	f.drainEvents()
	f.reconcile("vapid")
	if kr, _ := f.keyring(cc); len(kr.VAPID) != 0 {
		t.Fatalf("VAPID key added while pod vapid-b does not accept it: %v", kr.VAPID)
	}
	prober.old["vapid-b"] = false
	f.reconcile("vapid")
	kr, sec = f.keyring(cc)
	v, ok := kr.ActiveVAPID()
	if !ok {
		t.Fatal("no VAPID key once every ready pod accepts one")
	}
	evs := f.drainEvents()
	if !slices.ContainsFunc(evs, func(e string) bool { return strings.Contains(e, "KeyActivated") && strings.Contains(e, v.ID) }) {
		t.Errorf("no KeyActivated event naming %s in %v", v.ID, evs)
	}
	for _, name := range []string{"vapid-a", "vapid-b"} {
		prober.servers[name].load(sec.Data[keyringfile.FileName])
	}
	f.reconcile("vapid")
	if again, _ := f.keyring(cc); len(again.VAPID) != 1 || again.VAPID[0].ID != v.ID {
		t.Fatalf("VAPID keys after another reconcile: %v, want %s kept", again.VAPID, v.ID)
	}
}
