package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// PropagationLagBound is how long after its propagation window a staged key may
// still be missing from a ready pod before the operator raises a Warning
// (KeyPropagationLagging). A default kubelet delivers a Secret change within
// about two minutes, which the window covers; a pod still without the key
// minutes later sits on a node that is cut off or a kubelet that is stuck, and a
// person should look. Promotion keeps waiting either way.
const PropagationLagBound = 5 * time.Minute

// maxConcurrentProbes bounds the /keyringz requests in flight in one reconcile.
const maxConcurrentProbes = 8

// maxPodsNamed bounds the pods a condition message or Event names.
const maxPodsNamed = 5

// podKeyring is what one ready pod reported.
type podKeyring struct {
	name   string
	loaded LoadedKeyring
	err    error
}

// keyPropagation is what the ready chat server pods have loaded. It is read
// only when a staged key's window has passed, so a steady cluster is never probed.
type keyPropagation struct {
	probed bool
	pods   []podKeyring
}

// without lists the pods that have not (or could not say they have) loaded kid.
func (p keyPropagation) without(kid string) []podKeyring {
	var out []podKeyring
	for _, pk := range p.pods {
		if pk.err != nil || !pk.loaded.Has(kid) {
			out = append(out, pk)
		}
	}
	return out
}

// propagated is RotationPolicy.Propagated. With no ready pod there is nobody
// to wait for: a pod that starts later mounts the current Secret.
func (p keyPropagation) propagated(kid string) bool { return len(p.without(kid)) == 0 }

type stagedKey struct {
	title   string // "JWT key", "data key"
	id      string
	created time.Time
}

func stagedKeys(f *keyringfile.File) []stagedKey {
	var out []stagedKey
	for _, k := range f.JWT {
		if k.State == keyringfile.StateStaged {
			out = append(out, stagedKey{"JWT key", k.ID, k.Created})
		}
	}
	for _, k := range f.Data {
		if k.State == keyringfile.StateStaged {
			out = append(out, stagedKey{"data key", k.ID, k.Created})
		}
	}
	return out
}

// probeKeyrings asks every ready chat server pod of cc which keys it has
// loaded, when a staged key of f is past its window.
func (r *ChatClusterReconciler) probeKeyrings(ctx context.Context, cc *chatv1alpha1.ChatCluster, f *keyringfile.File, now time.Time, window time.Duration) (keyPropagation, error) {
	if !slices.ContainsFunc(stagedKeys(f), func(k stagedKey) bool { return !now.Before(k.created.Add(window)) }) {
		return keyPropagation{}, nil
	}
	pods, err := r.readyChatPods(ctx, cc)
	if err != nil {
		return keyPropagation{}, err
	}
	prober := r.keyringProber()
	out := keyPropagation{probed: true, pods: make([]podKeyring, len(pods))}
	sem := make(chan struct{}, maxConcurrentProbes)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			l, err := prober.LoadedKeyring(ctx, &pods[i])
			out.pods[i] = podKeyring{name: pods[i].Name, loaded: l, err: err}
		})
	}
	wg.Wait()
	return out, nil
}

// keyringProber is the configured prober, HTTPKeyringProber when none is.
func (r *ChatClusterReconciler) keyringProber() KeyringProber {
	if r.KeyringProber != nil {
		return r.KeyringProber
	}
	return HTTPKeyringProber{}
}

// readyPodsAccept reports whether there are ready chat server pods and every
// one of them says at /keyringz that it loads the optional keyring part
// feature. A pod that does not answer counts as not accepting it.
func (r *ChatClusterReconciler) readyPodsAccept(ctx context.Context, cc *chatv1alpha1.ChatCluster, feature string) (bool, error) {
	pods, err := r.readyChatPods(ctx, cc)
	if err != nil || len(pods) == 0 {
		return false, err
	}
	prober := r.keyringProber()
	for i := range pods {
		l, err := prober.LoadedKeyring(ctx, &pods[i])
		if err != nil || !slices.Contains(l.Accepts, feature) {
			return false, nil
		}
	}
	return true, nil
}

// readyChatPods lists the chat server pods that receive traffic: Ready, with an
// IP, not terminating. Not-ready pods get no requests to fail, and load the
// Secret as it is when they start.
func (r *ChatClusterReconciler) readyChatPods(ctx context.Context, cc *chatv1alpha1.ChatCluster) ([]corev1.Pod, error) {
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	list := &corev1.PodList{}
	if err := reader.List(ctx, list, client.InNamespace(cc.Namespace), client.MatchingLabels(selectorLabels(cc, "chatserver"))); err != nil {
		return nil, fmt.Errorf("list chat server pods: %w", err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp.IsZero() && p.Status.PodIP != "" && podReady(&p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// reportPropagation sets KeysPropagated from the keyring after this step (after)
// and what the pods reported, and raises a Warning when a pod lags past the bound.
func (r *ChatClusterReconciler) reportPropagation(cc *chatv1alpha1.ChatCluster, prop keyPropagation, after *keyringfile.File, events []KeyEvent, now time.Time, window time.Duration) {
	waiting := stagedKeys(after)
	if len(waiting) == 0 {
		var promoted []string
		for _, e := range events {
			if e.Reason == ReasonKeyActivated {
				promoted = append(promoted, e.KeyID)
			}
		}
		switch {
		case len(promoted) > 0 && len(prop.pods) > 0:
			r.setCond(cc, chatv1alpha1.ConditionKeysPropagated, metav1.ConditionTrue, ReasonPropagated,
				fmt.Sprintf("%d/%d ready pods had loaded %s when promoted", len(prop.pods), len(prop.pods), strings.Join(promoted, ", ")))
		case len(promoted) > 0:
			r.setCond(cc, chatv1alpha1.ConditionKeysPropagated, metav1.ConditionTrue, ReasonPropagated,
				fmt.Sprintf("promoted %s after the propagation window: no ready pod to wait for", strings.Join(promoted, ", ")))
		case !apimeta.IsStatusConditionTrue(cc.Status.Conditions, chatv1alpha1.ConditionKeysPropagated):
			// Otherwise keep the message of the last promotion.
			r.setCond(cc, chatv1alpha1.ConditionKeysPropagated, metav1.ConditionTrue, ReasonPropagated, "no staged key waits for promotion")
		}
		return
	}

	var msgs, lagging []string
	for _, k := range waiting {
		due := k.created.Add(window)
		if now.Before(due) {
			msgs = append(msgs, fmt.Sprintf("%s %s waits for the propagation window until %s", k.title, k.id, due.UTC().Format(time.RFC3339)))
			continue
		}
		missing := prop.without(k.id)
		n := len(prop.pods)
		msgs = append(msgs, fmt.Sprintf("%d/%d ready pods have loaded %s %s; waiting for %s", n-len(missing), n, k.title, k.id, describePods(missing)))
		if !now.Before(due.Add(PropagationLagBound)) {
			lagging = append(lagging, fmt.Sprintf("%s %s, staged %s ago, has not reached %d of %d ready pods: %s; promotion waits",
				k.title, k.id, now.Sub(k.created).Round(time.Second), len(missing), n, describePods(missing)))
		}
	}
	reason := ReasonWaiting
	if len(lagging) > 0 {
		reason = ReasonKeyPropagationLagging
		// Once per episode: the condition carries it from then on.
		if c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionKeysPropagated); c == nil || c.Reason != string(ReasonKeyPropagationLagging) {
			r.event(cc, corev1.EventTypeWarning, ReasonKeyPropagationLagging, ActionRotateKeys, "%s", strings.Join(lagging, "; "))
		}
	}
	r.setCond(cc, chatv1alpha1.ConditionKeysPropagated, metav1.ConditionFalse, reason, strings.Join(msgs, "; "))
}

// describePods names the first few pods and why each is still waited for.
func describePods(pods []podKeyring) string {
	var parts []string
	for i, p := range pods {
		if i == maxPodsNamed {
			parts = append(parts, fmt.Sprintf("and %d more", len(pods)-i))
			break
		}
		if p.err != nil {
			// Prober errors name the pod already.
			parts = append(parts, fmt.Sprintf("%s (%s)", p.name, strings.TrimPrefix(p.err.Error(), "pod "+p.name+": ")))
		} else {
			parts = append(parts, fmt.Sprintf("%s (loaded keyring %s without it)", p.name, shortDigest(p.loaded.Digest)))
		}
	}
	return strings.Join(parts, ", ")
}

func shortDigest(d string) string {
	if len(d) > 12 {
		return d[:12]
	}
	return d
}
