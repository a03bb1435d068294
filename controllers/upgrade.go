package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// DefaultUpgradeDelay is how long the upgrade gate waits after one ChatCluster
// has rolled to a new default image before it lets the next one start.
const DefaultUpgradeDelay = 5 * time.Minute

// UpgradeLeaseName is the Lease in the operator's namespace that serialises
// moves of ChatClusters to a new default chat server image.
const UpgradeLeaseName = "parley-operator-upgrade"

// Annotations on the upgrade Lease.
const (
	// AnnotationUpgradeImage is the default image the holder is rolling to.
	AnnotationUpgradeImage = "chat.parley.dev/upgrade-image"
	// AnnotationUpgradeReleased is when the last holder finished (RFC 3339):
	// the next may start UpgradeGate.Delay after it.
	AnnotationUpgradeReleased = "chat.parley.dev/upgrade-released-at"
)

// How often a ChatCluster waiting at the gate looks again: the Lease is read,
// not watched, so that the operator keeps no informer on Leases.
const upgradeRecheck = 30 * time.Second

// UpgradeGate lets ChatClusters that follow the operator's default image move
// to a new one (an operator upgrade) one at a time: the holder of a Lease rolls,
// and releases it once its Deployment has rolled out with every replica
// available; the next starts Delay later. ChatClusters with spec.image set are
// never gated: an operator upgrade does not change their pods at all.
type UpgradeGate struct {
	// Namespace of the Lease: the operator's own.
	Namespace string
	// Delay between one ChatCluster's completed rollout and the next one's start.
	Delay time.Duration
}

// gateImage returns the image the chat server Deployment gets. For a
// ChatCluster on the default image whose Deployment runs another one, that is
// the new default only while it holds the upgrade Lease; until then its
// current image, so that the rest of the spec is still reconciled.
func (r *ChatClusterReconciler) gateImage(ctx context.Context, cc *chatv1alpha1.ChatCluster, want string, q *requeue) (string, error) {
	if r.Upgrades == nil || cc.Spec.Image != "" {
		cc.Status.PendingImage = ""
		return want, nil
	}
	dep := &appsv1.Deployment{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: chatName(cc)}, dep)
	if apierrors.IsNotFound(err) {
		cc.Status.PendingImage = ""
		return want, nil // a new ChatCluster starts on the current default
	}
	if err != nil {
		return "", fmt.Errorf("get Deployment: %w", err)
	}
	running := chatContainerImage(dep)
	if (running == want || running == "") && cc.Status.Image == want {
		// Settled on the default (status.image is set once a rollout has
		// completed, after the release below): no Lease to read.
		cc.Status.PendingImage = ""
		return want, nil
	}
	g := r.Upgrades
	me := cc.Namespace + "/" + cc.Name
	lease := &coordinationv1.Lease{}
	// Read uncached: a cached Get would start an informer on every Lease.
	err = r.uncached().Get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: UpgradeLeaseName}, lease)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("get upgrade Lease %s/%s: %w", g.Namespace, UpgradeLeaseName, err)
	}
	leaseFound := err == nil
	holder := ""
	if leaseFound {
		holder = ptr.Deref(lease.Spec.HolderIdentity, "")
	}
	now := r.Clock.Now()

	if running == want || running == "" {
		cc.Status.PendingImage = ""
		if holder == me && rolledOut(dep) {
			// Rolled out, every replica available: the next may go after the delay.
			lease.Spec.HolderIdentity = nil
			setAnnotation(lease, AnnotationUpgradeReleased, now.UTC().Format(time.RFC3339))
			if err := r.Client.Update(ctx, lease); err != nil {
				return "", fmt.Errorf("release upgrade Lease: %w", err)
			}
			logf.FromContext(ctx).Info("default image rolled out; upgrade gate released", "image", want, "next after", g.Delay)
		}
		return want, nil
	}

	if holder == me {
		if lease.Annotations[AnnotationUpgradeImage] == want {
			return want, nil
		}
		// Taken for another image: an older operator still running beside the
		// new one (no leader election) must not roll this ChatCluster back.
		return r.waitAtGate(cc, want, running, "it is rolling to "+lease.Annotations[AnnotationUpgradeImage], upgradeRecheck, q)
	}
	wait := func(why string, after time.Duration) (string, error) {
		return r.waitAtGate(cc, want, running, why, after, q)
	}
	if holder != "" {
		busy, err := r.holderBusy(ctx, holder)
		if err != nil {
			return "", err
		}
		if busy {
			return wait("ChatCluster "+holder+" is rolling", upgradeRecheck)
		}
	} else if leaseFound {
		if t, perr := time.Parse(time.RFC3339, lease.Annotations[AnnotationUpgradeReleased]); perr == nil {
			if next := t.Add(g.Delay); now.Before(next) {
				return wait(fmt.Sprintf("the next ChatCluster starts at %s", next.UTC().Format(time.RFC3339)), next.Sub(now))
			}
		}
	}

	// Take the Lease. A conflict means another reconcile took it first: wait.
	lease.Spec.HolderIdentity = ptr.To(me)
	lease.Spec.AcquireTime = &metav1.MicroTime{Time: now}
	lease.Spec.RenewTime = &metav1.MicroTime{Time: now}
	setAnnotation(lease, AnnotationUpgradeImage, want)
	if leaseFound {
		err = r.Client.Update(ctx, lease)
	} else {
		lease.Name, lease.Namespace = UpgradeLeaseName, g.Namespace
		err = r.Client.Create(ctx, lease)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return wait("another ChatCluster took the gate first", time.Second)
	}
	if err != nil {
		return "", fmt.Errorf("take upgrade Lease: %w", err)
	}
	cc.Status.PendingImage = ""
	r.event(cc, corev1.EventTypeNormal, ReasonUpgradeStarted, ActionUpgrade,
		"rolling the chat servers from %s to the operator's default image %s", running, want)
	return want, nil
}

// waitAtGate keeps the running image and says why in status and, once, an Event.
func (r *ChatClusterReconciler) waitAtGate(cc *chatv1alpha1.ChatCluster, want, running, why string, after time.Duration, q *requeue) (string, error) {
	if cc.Status.PendingImage != want {
		r.event(cc, corev1.EventTypeNormal, ReasonUpgradeWaiting, ActionUpgrade,
			"operator default image %s waits for the upgrade gate (%s); the chat servers keep %s", want, why, running)
	}
	cc.Status.PendingImage = want
	q.at(after)
	return running, nil
}

// holderBusy reports whether the Lease's holder still needs the gate: it
// exists, is not being deleted, is not paused and still follows the default
// image. A holder that stopped needing it (deleted, paused, pinned) loses it.
// A holder whose rollout fails keeps it: a bad default image stops the wave.
func (r *ChatClusterReconciler) holderBusy(ctx context.Context, holder string) (bool, error) {
	ns, name, ok := cutNamespacedName(holder)
	if !ok {
		return false, nil
	}
	cc := &chatv1alpha1.ChatCluster{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cc)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get ChatCluster %s holding the upgrade gate: %w", holder, err)
	}
	return cc.DeletionTimestamp.IsZero() && pausedBy(cc) == "" && cc.Spec.Image == "", nil
}

func cutNamespacedName(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], i > 0 && i < len(s)-1
		}
	}
	return "", "", false
}

func setAnnotation(obj client.Object, k, v string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	obj.SetAnnotations(a)
}

// chatContainerImage is the image of the chat server container of a Deployment.
func chatContainerImage(dep *appsv1.Deployment) string {
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == containerName {
			return c.Image
		}
	}
	return ""
}

// uncached reads from the API server directly (main's APIReader); nil: Client.
func (r *ChatClusterReconciler) uncached() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}
