package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// secretRefIndex indexes ChatClusters by the names of the Secrets they reference.
const secretRefIndex = ".spec.secretRefs"

// Backoff while a referenced Secret is missing: it grows with the time the Secret
// has been missing, and the Secret watch cuts it short once the Secret appears.
const (
	missingSecretMinBackoff = 5 * time.Second
	missingSecretMaxBackoff = 5 * time.Minute
	// Without a watch on CRDs, re-check for the ServiceMonitor CRD this often.
	crdRecheckInterval = 10 * time.Minute
	maxRequeue         = 12 * time.Hour
)

var serviceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// ChatClusterReconciler turns ChatClusters into running chat platforms.
type ChatClusterReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// Metrics is required and used without nil checks: main registers it on
	// controller-runtime's registry, tests on a throwaway prometheus.NewRegistry().
	Metrics      *Metrics
	Capabilities Capabilities
	// Version of the operator; the default chat server image has the same tag.
	Version string
	// KeyringProber asks chat server pods which keys they have loaded before a
	// staged key is promoted; nil: HTTPKeyringProber.
	KeyringProber KeyringProber
	// APIReader lists pods without a cache (main passes the manager's API
	// reader, so the operator keeps no informer on every pod); nil: Client.
	APIReader client.Reader
	// Upgrades serialises moves to a new default chat server image across
	// ChatClusters (upgrade.go); nil: every ChatCluster moves at once.
	Upgrades *UpgradeGate
}

// RBAC: only what the reconciler does (the operator's manager set-up in main reads
// nothing else). Writes are server-side apply (patch; create for a new object);
// update only for the workload container repair in apply.go; delete only for
// the kinds the spec can stop wanting. ChatClusters: patch removes the
// accept-keyring-loss annotation, and nothing writes their spec. No finalizers:
// the operator sets none, and its owner references do not block the owner's
// deletion (which under OwnerReferencesPermissionEnforcement would need them).
// +kubebuilder:rbac:groups=chat.parley.dev,resources=chatclusters,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=chat.parley.dev,resources=chatclusters/status,verbs=patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;serviceaccounts;persistentvolumeclaims,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services;secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses;networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors;prometheusrules,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=postgresql.cnpg.io,resources=clusters,verbs=get

// Reconcile brings the children of one ChatCluster to their desired state and
// reports what it sees in status.
func (r *ChatClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	log := logf.FromContext(ctx)
	paused := false
	defer func() {
		switch {
		case paused:
			r.Metrics.Reconciles.WithLabelValues("paused").Inc()
		case err != nil:
			r.Metrics.Reconciles.WithLabelValues("error").Inc()
		case res.RequeueAfter > 0:
			r.Metrics.Reconciles.WithLabelValues("requeue").Inc()
		default:
			r.Metrics.Reconciles.WithLabelValues("success").Inc()
		}
	}()

	cc := &chatv1alpha1.ChatCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, cc); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.State.Forget(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// No finalizer: owner references let the garbage collector remove the
	// children, so deletion never waits on the operator.
	if !cc.DeletionTimestamp.IsZero() {
		r.Metrics.State.Forget(cc.Namespace, cc.Name)
		return ctrl.Result{}, nil
	}
	if why := pausedBy(cc); why != "" {
		log.V(1).Info("reconciliation paused", "by", why)
		paused = true
		return ctrl.Result{}, r.reportPaused(ctx, cc, why)
	}

	before := cc.Status.DeepCopy()
	res, err = r.reconcile(ctx, cc)
	if err != nil {
		r.Metrics.Errors.WithLabelValues("reconcile").Inc()
		r.setCond(cc, chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonReconcileError, err.Error())
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonReconcileError, err.Error())
	}
	cc.Status.ObservedGeneration = cc.Generation
	r.Metrics.State.observeCluster(cc)
	if !equality.Semantic.DeepEqual(*before, cc.Status) {
		orig := cc.DeepCopy()
		orig.Status = *before
		if perr := r.Client.Status().Patch(ctx, cc, client.MergeFrom(orig)); perr != nil {
			r.Metrics.Errors.WithLabelValues("status").Inc()
			return ctrl.Result{}, errors.Join(err, fmt.Errorf("update status: %w", perr))
		}
	}
	return res, err
}

// requeue collects the earliest time the reconciler wants to run again.
type requeue struct{ after time.Duration }

func (q *requeue) at(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if q.after == 0 || d < q.after {
		q.after = d
	}
}

func (r *ChatClusterReconciler) reconcile(ctx context.Context, cc *chatv1alpha1.ChatCluster) (ctrl.Result, error) {
	now := r.Clock.Now()
	s := Resolve(cc, r.Version)
	a := applier{c: r.Client}
	var q requeue
	r.initConditions(cc)
	r.setCond(cc, chatv1alpha1.ConditionPaused, metav1.ConditionFalse, ReasonNotPaused, "the operator reconciles this ChatCluster")
	cc.Status.Selector = labels.SelectorFromSet(selectorLabels(cc, "chatserver")).String()
	cc.Status.Endpoint = Endpoint(cc)

	// A CloudNativePG database first: until it is ready, nothing would connect.
	var cnpg *cnpgDatabase
	if pg := cc.Spec.Database.Postgres; pg != nil && pg.CloudNativePG != nil {
		db, waiting, err := r.cnpgReady(ctx, cc)
		if err != nil {
			return ctrl.Result{}, err
		}
		if waiting != "" {
			r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonDatabaseNotReady, waiting)
			return ctrl.Result{RequeueAfter: cnpgRecheck}, nil
		}
		cnpg = &db
		// Its Secret is CloudNativePG's (unlabelled, so not watched): a changed
		// password is picked up at the latest this long after.
		q.at(cnpgResync)
	}

	// Referenced Secrets first: without them the pods cannot start.
	secretValues, missing, err := r.referencedSecrets(ctx, cc, cnpg)
	if err != nil {
		return ctrl.Result{}, err
	}
	if missing != "" {
		// Degraded turns True when the Secret goes missing: its transition time
		// says how long we have been waiting.
		backoff := missingSecretMinBackoff
		if c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionDegraded); c != nil && c.Status == metav1.ConditionTrue && c.Reason == string(ReasonSecretNotFound) {
			backoff = min(max(now.Sub(c.LastTransitionTime.Time), missingSecretMinBackoff), missingSecretMaxBackoff)
		}
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonSecretNotFound, missing)
		r.setCond(cc, chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonSecretNotFound, missing)
		if strings.Contains(missing, "(spec.attachments.") {
			r.setCond(cc, chatv1alpha1.ConditionAttachmentsReady, metav1.ConditionFalse, ReasonSecretNotFound, missing)
		}
		r.event(cc, corev1.EventTypeWarning, ReasonSecretNotFound, ActionReconcile, "%s", missing)
		r.Metrics.Errors.WithLabelValues("secret_not_found").Inc()
		return ctrl.Result{RequeueAfter: backoff}, nil
	}

	created := []string{}
	track := func(kind, name string, res applyResult, err error) error {
		if err != nil {
			return err
		}
		if res == applyCreated {
			created = append(created, kind+" "+name)
		}
		return nil
	}

	if err := track(r.applyTyped(ctx, a, ServiceAccount(cc))); err != nil {
		return ctrl.Result{}, err
	}
	cm := ConfigMap(cc, s)
	if err := track(r.applyTyped(ctx, a, cm)); err != nil {
		return ctrl.Result{}, err
	}
	keysNext, err := r.reconcileKeys(ctx, cc, s, now, a)
	if err != nil {
		return ctrl.Result{}, err
	}
	if reason, msg, blocked := keyringBlocked(cc); blocked {
		// The keyring is gone or foreign: nothing that would start pods on it (or
		// without it) is touched until a person restores it or accepts the loss.
		backoff := degradedBackoff(cc, reason, now)
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonKeysNotReady, msg)
		r.setCond(cc, chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, reason, msg)
		r.Metrics.Errors.WithLabelValues(strings.ToLower(string(reason))).Inc()
		return ctrl.Result{RequeueAfter: backoff}, nil
	}
	if !keysNext.IsZero() {
		q.at(min(keysNext.Sub(now), maxRequeue))
	}
	if cc.Spec.Database.SQLite != nil {
		if err := track(r.applyTyped(ctx, a, DataClaim(cc))); err != nil {
			return ctrl.Result{}, err
		}
	}
	att, err := r.reconcileAttachments(ctx, cc, s, a, track)
	if err != nil {
		return ctrl.Result{}, err
	}
	if att.blocked != "" {
		// The pods could not mount the claim: leave the Deployment as it is
		// until the claim is there (re-checked with a backoff: a claim the
		// operator does not own brings no watch event).
		backoff := degradedBackoff(cc, att.blocked, now)
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, att.blocked, att.msg)
		r.setCond(cc, chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, att.blocked, att.msg)
		r.Metrics.Errors.WithLabelValues(strings.ToLower(string(att.blocked))).Inc()
		return ctrl.Result{RequeueAfter: backoff}, nil
	}

	// Managed Redis, or its removal after a switch to external.
	if cc.Spec.Redis != nil && cc.Spec.Redis.Managed != nil {
		pw, res, err := r.reconcileRedisAuth(ctx, cc, a)
		if err := track("Secret", redisAuthName(cc), res, err); err != nil {
			return ctrl.Result{}, err
		}
		// The chat servers read the password at start: a new one rolls them.
		secretValues["managed redis password"] = pw
		for _, obj := range []client.Object{RedisStatefulSet(cc, RedisAuthHash(pw)), RedisService(cc), RedisNetworkPolicy(cc)} {
			if err := track(r.applyTyped(ctx, a, obj)); err != nil {
				return ctrl.Result{}, err
			}
		}
	} else {
		for _, obj := range []client.Object{
			&appsv1.StatefulSet{}, &corev1.Service{}, &networkingv1.NetworkPolicy{},
		} {
			if err := r.prune(ctx, a, cc, obj, redisName(cc)); err != nil {
				return ctrl.Result{}, err
			}
		}
		if err := r.prune(ctx, a, cc, &corev1.Secret{}, redisAuthName(cc)); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Monitoring decides the pod annotations, so it goes before the Deployment.
	smOn, err := r.reconcileServiceMonitor(ctx, cc, a, &q)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcilePrometheusRule(ctx, cc, a, &q, smOn); err != nil {
		return ctrl.Result{}, err
	}

	// After an operator upgrade, one ChatCluster at a time moves to the new default image.
	if s.Image, err = r.gateImage(ctx, cc, s.Image, &q); err != nil {
		return ctrl.Result{}, err
	}
	dep := Deployment(cc, s, DeploymentInput{ConfigHash: ConfigHash(cm, secretValues), PrometheusAnnotations: !smOn,
		AttachmentsClaimShared: att.claimShared, CloudNativePG: cnpg})
	if err := track(r.applyTyped(ctx, a, dep)); err != nil {
		return ctrl.Result{}, err
	}
	if err := track(r.applyTyped(ctx, a, Service(cc))); err != nil {
		return ctrl.Result{}, err
	}
	if err := track(r.applyTyped(ctx, a, MetricsService(cc))); err != nil {
		return ctrl.Result{}, err
	}
	if ing := Ingress(cc); ing != nil {
		if err := track(r.applyTyped(ctx, a, ing)); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.prune(ctx, a, cc, &networkingv1.Ingress{}, chatName(cc)); err != nil {
		return ctrl.Result{}, err
	}
	customMetrics := false
	if cc.Spec.Autoscaling != nil && cc.Spec.Autoscaling.TargetConnectionsPerPod != nil {
		if customMetrics, err = r.Capabilities.CustomMetrics(ctx); err != nil {
			return ctrl.Result{}, err
		}
	}
	if hpa := HPA(cc, s, customMetrics); hpa != nil {
		if err := track(r.applyTyped(ctx, a, hpa)); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.prune(ctx, a, cc, &autoscalingv2.HorizontalPodAutoscaler{}, chatName(cc)); err != nil {
		return ctrl.Result{}, err
	}
	if pdb := PDB(cc, s); pdb != nil {
		if err := track(r.applyTyped(ctx, a, pdb)); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.prune(ctx, a, cc, &policyv1.PodDisruptionBudget{}, chatName(cc)); err != nil {
		return ctrl.Result{}, err
	}
	if len(created) > 0 {
		r.event(cc, corev1.EventTypeNormal, ReasonCreated, ActionReconcile, "created %s", strings.Join(created, ", "))
	}

	if err := r.observe(ctx, cc, s); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: q.after}, nil
}

func (r *ChatClusterReconciler) applyTyped(ctx context.Context, a applier, obj client.Object) (string, string, applyResult, error) {
	res, err := a.apply(ctx, obj)
	return kindOf(obj), obj.GetName(), res, err
}

func (r *ChatClusterReconciler) prune(ctx context.Context, a applier, cc *chatv1alpha1.ChatCluster, obj client.Object, name string) error {
	obj.SetName(name)
	obj.SetNamespace(cc.Namespace)
	deleted, err := a.deleteIfOwned(ctx, obj, string(cc.UID))
	if err != nil {
		return err
	}
	if deleted {
		r.event(cc, corev1.EventTypeNormal, ReasonDeleted, ActionReconcile, "deleted %s %s: no longer wanted by the spec", kindName(obj), name)
	}
	return nil
}

// kindName names the kind of a (possibly empty) typed or unstructured object.
func kindName(obj client.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	t := fmt.Sprintf("%T", obj)
	return t[strings.LastIndex(t, ".")+1:]
}

// referencedSecrets reads the Secret keys the pods reference. It returns their
// values (for the pod template hash) or a message naming the first one missing.
func (r *ChatClusterReconciler) referencedSecrets(ctx context.Context, cc *chatv1alpha1.ChatCluster, cnpg *cnpgDatabase) (map[string][]byte, string, error) {
	values := map[string][]byte{}
	refs := secretRefs(cc)
	if cnpg != nil {
		refs = secretRefsWith(cc, cnpg.Secret)
	}
	for _, ref := range refs {
		sec := &corev1.Secret{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: ref.ref.Name}, sec)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("Secret %s/%s (%s) not found", cc.Namespace, ref.ref.Name, ref.field), nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("get Secret %s: %w", ref.ref.Name, err)
		}
		v, ok := sec.Data[ref.ref.Key]
		if !ok {
			return nil, fmt.Sprintf("Secret %s/%s has no key %q (%s)", cc.Namespace, ref.ref.Name, ref.ref.Key, ref.field), nil
		}
		values[ref.field] = v
	}
	return values, "", nil
}

type secretRef struct {
	field string
	ref   corev1.SecretKeySelector
}

// secretRefs are the Secret keys a ChatCluster references, a CloudNativePG
// Cluster's Secret by its default name (what the watch index can know).
func secretRefs(cc *chatv1alpha1.ChatCluster) []secretRef {
	cnpgSecret := ""
	if pg := cc.Spec.Database.Postgres; pg != nil && pg.CloudNativePG != nil {
		cnpgSecret = pg.CloudNativePG.ClusterName + "-app"
	}
	return secretRefsWith(cc, cnpgSecret)
}

// secretRefsWith is secretRefs with the CloudNativePG Cluster's Secret as read
// from the Cluster (its bootstrap may name another).
func secretRefsWith(cc *chatv1alpha1.ChatCluster, cnpgSecret string) []secretRef {
	var out []secretRef
	switch pg := cc.Spec.Database.Postgres; {
	case pg != nil && pg.CloudNativePG != nil:
		sel := func(k string) corev1.SecretKeySelector {
			return corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: cnpgSecret}, Key: k}
		}
		field := "spec.database.postgres.cloudNativePG: CloudNativePG application Secret"
		out = append(out, secretRef{field + " (username)", sel("username")}, secretRef{field + " (password)", sel("password")})
	case pg != nil:
		out = append(out, secretRef{"spec.database.postgres.dsnSecretRef", pg.DSNSecretRef})
	}
	if rd := cc.Spec.Redis; rd != nil && rd.External != nil && rd.External.PasswordSecretRef != nil {
		out = append(out, secretRef{"spec.redis.external.passwordSecretRef", *rd.External.PasswordSecretRef})
	}
	return append(out, attachmentsSecretRefs(cc)...)
}

// reconcileKeys creates the keyring Secret or advances its rotation schedule. It
// returns when the schedule is next due.
func (r *ChatClusterReconciler) reconcileKeys(ctx context.Context, cc *chatv1alpha1.ChatCluster, s Settings, now time.Time, a applier) (time.Time, error) {
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: keysSecretName(cc)}, sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return time.Time{}, fmt.Errorf("get keyring Secret: %w", err)
	}
	if apierrors.IsNotFound(err) {
		// The cache may not have the status that recorded the keyring yet (a
		// Secret deleted right after it was made, a busy API server): before
		// generating keys for what looks like a new ChatCluster, read its
		// record from the API server, so a recorded keyring is never replaced
		// because of a stale cache.
		if len(recordedDataKeys(cc.Status.Keys)) == 0 {
			fresh := &chatv1alpha1.ChatCluster{}
			if err := r.uncached().Get(ctx, client.ObjectKeyFromObject(cc), fresh); err != nil {
				return time.Time{}, fmt.Errorf("read ChatCluster before creating its keyring: %w", err)
			}
			if len(recordedDataKeys(fresh.Status.Keys)) > 0 {
				cc.Status.Keys = fresh.Status.Keys
			}
		}
		// Keys recorded in status are never replaced unasked (keyring_guard.go).
		guard := r.guardKeyring(cc, nil)
		if !guard.proceed {
			return time.Time{}, nil
		}
		f, err := NewKeyring(now)
		if err != nil {
			return time.Time{}, err
		}
		b, err := f.Marshal()
		if err != nil {
			return time.Time{}, err
		}
		// A rotate-now set at creation is satisfied by the fresh keyring.
		if _, err := a.apply(ctx, KeysSecret(cc, b, cc.Annotations[chatv1alpha1.AnnotationRotateKeysNow])); err != nil {
			return time.Time{}, err
		}
		if guard.lost == "" {
			r.event(cc, corev1.EventTypeNormal, ReasonKeysCreated, ActionRotateKeys, "created keyring Secret %s with JWT key %s and data key %s", keysSecretName(cc), f.JWT[0].ID, f.Data[0].ID)
		}
		setKeysStatus(cc, f)
		r.Metrics.State.observeKeys(cc, f, s.PropagationWindow)
		r.setCond(cc, chatv1alpha1.ConditionKeysReady, metav1.ConditionTrue, ReasonKeysCreated, "keyring created")
		r.reportPropagation(cc, keyPropagation{}, f, nil, now, s.PropagationWindow)
		return now.Add(s.JWTInterval - s.PropagationWindow), r.finishKeyringGuard(ctx, cc, guard)
	}

	raw := sec.Data[keyringfile.FileName]
	f, err := keyringfile.Parse(raw)
	if err != nil {
		// Never regenerate over an invalid keyring: new keys would invalidate every
		// session and make stored messages unreadable. The servers keep their last
		// good keyring; a person must look.
		msg := fmt.Sprintf("keyring Secret %s is invalid and was left untouched: %v", keysSecretName(cc), err)
		if c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionKeysReady); c == nil || c.Reason != string(ReasonInvalidKeyring) {
			r.event(cc, corev1.EventTypeWarning, ReasonInvalidKeyring, ActionRotateKeys, "%s", msg)
		}
		r.setCond(cc, chatv1alpha1.ConditionKeysReady, metav1.ConditionFalse, ReasonInvalidKeyring, msg)
		return time.Time{}, nil
	}
	guard := r.guardKeyring(cc, f)
	if !guard.proceed {
		return time.Time{}, nil
	}

	requested := cc.Annotations[chatv1alpha1.AnnotationRotateKeysNow]
	handled := sec.Annotations[AnnotationRotateNowHandled]
	rotateNow := requested != "" && requested != handled
	prop, err := r.probeKeyrings(ctx, cc, f, now, s.PropagationWindow)
	if err != nil {
		return time.Time{}, err
	}
	// A VAPID key is added between rotations, once the chat servers' rollout
	// is complete and every ready one says it loads VAPID keys.
	addVAPID := false
	if _, ok := f.ActiveVAPID(); !ok && len(stagedKeys(f)) == 0 {
		dep := &appsv1.Deployment{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: chatName(cc)}, dep)
		if err != nil && !apierrors.IsNotFound(err) {
			return time.Time{}, fmt.Errorf("get Deployment: %w", err)
		}
		if err == nil && rolledOut(dep) {
			if addVAPID, err = r.readyPodsAccept(ctx, cc, AcceptsVAPID); err != nil {
				return time.Time{}, err
			}
		}
	}
	res, err := Rotate(f, now, RotationPolicy{
		JWTInterval:       s.JWTInterval,
		DataInterval:      s.DataInterval,
		PropagationWindow: s.PropagationWindow,
		AccessTokenTTL:    s.AccessTokenTTL,
		RotateNow:         rotateNow,
		Propagated:        prop.propagated,
		AddVAPID:          addVAPID,
	})
	if err != nil {
		return time.Time{}, err
	}
	if rotateNow {
		handled = requested
	}
	if res.Changed {
		if raw, err = res.File.Marshal(); err != nil {
			return time.Time{}, err
		}
	}
	// Applied even when unchanged: the applier writes only on a difference, and
	// this also restores labels or owner references someone removed.
	if _, err := a.apply(ctx, KeysSecret(cc, raw, handled)); err != nil {
		return time.Time{}, err
	}
	for _, ev := range res.Events {
		r.event(cc, corev1.EventTypeNormal, ev.Reason, ActionRotateKeys, "%s", ev.Message)
		r.Metrics.Rotations.WithLabelValues(string(ev.Kind), ev.Step()).Inc()
	}
	setKeysStatus(cc, res.File)
	r.Metrics.State.observeKeys(cc, res.File, s.PropagationWindow)
	r.reportPropagation(cc, prop, res.File, res.Events, now, s.PropagationWindow)
	if len(cc.Status.Keys.StagedKeyIDs) > 0 {
		r.setCond(cc, chatv1alpha1.ConditionKeysReady, metav1.ConditionTrue, ReasonKeyStaged,
			fmt.Sprintf("rotation in progress: staged %s", strings.Join(cc.Status.Keys.StagedKeyIDs, ", ")))
	} else {
		r.setCond(cc, chatv1alpha1.ConditionKeysReady, metav1.ConditionTrue, ReasonKeysValid, "one active key of each kind")
	}
	return res.NextAt, r.finishKeyringGuard(ctx, cc, guard)
}

func setKeysStatus(cc *chatv1alpha1.ChatCluster, f *keyringfile.File) {
	ks := chatv1alpha1.KeysStatus{Epoch: cc.Status.Keys.Epoch} // the epoch outlives every rebuild
	if k, ok := f.ActiveJWT(); ok {
		ks.ActiveJWTKeyID = k.ID
		ks.LastJWTRotation = metaTime(k.Activated, k.Created)
	}
	if k, ok := f.ActiveData(); ok {
		ks.ActiveDataKeyID = k.ID
		ks.LastDataRotation = metaTime(k.Activated, k.Created)
	}
	for _, k := range f.JWT {
		if k.State == keyringfile.StateStaged {
			ks.StagedKeyIDs = append(ks.StagedKeyIDs, k.ID)
		}
	}
	for _, k := range f.Data {
		if k.State == keyringfile.StateStaged {
			ks.StagedKeyIDs = append(ks.StagedKeyIDs, k.ID)
		}
	}
	// The record the keyring guard compares the Secret with on every reconcile.
	ks.DataKeys = RecordDataKeys(f)
	cc.Status.Keys = ks
}

func metaTime(t *time.Time, fallback time.Time) *metav1.Time {
	if t != nil {
		return &metav1.Time{Time: *t}
	}
	return &metav1.Time{Time: fallback}
}

// reconcileServiceMonitor applies or removes the ServiceMonitor and reports
// whether one is in place.
func (r *ChatClusterReconciler) reconcileServiceMonitor(ctx context.Context, cc *chatv1alpha1.ChatCluster, a applier, q *requeue) (bool, error) {
	installed, err := r.Capabilities.ServiceMonitors(ctx)
	if err != nil {
		return false, err
	}
	if !cc.Spec.Monitoring.ServiceMonitor {
		if installed {
			sm := &unstructured.Unstructured{}
			sm.SetGroupVersionKind(serviceMonitorGVK)
			if err := r.prune(ctx, a, cc, sm, chatName(cc)); err != nil {
				return false, err
			}
		}
		r.setCond(cc, chatv1alpha1.ConditionServiceMonitorReady, metav1.ConditionFalse, ReasonDisabled,
			"spec.monitoring.serviceMonitor is off; pods carry prometheus.io scrape annotations")
		return false, nil
	}
	if !installed {
		q.at(crdRecheckInterval)
		r.setCond(cc, chatv1alpha1.ConditionServiceMonitorReady, metav1.ConditionFalse, ReasonCRDNotInstalled,
			"the monitoring.coreos.com/v1 ServiceMonitor CRD is not installed; pods carry prometheus.io scrape annotations instead")
		return false, nil
	}
	res, err := a.applyUnstructured(ctx, ServiceMonitor(cc))
	if err != nil {
		return false, err
	}
	if res == applyCreated {
		r.event(cc, corev1.EventTypeNormal, ReasonCreated, ActionReconcile, "created ServiceMonitor %s", chatName(cc))
	}
	r.setCond(cc, chatv1alpha1.ConditionServiceMonitorReady, metav1.ConditionTrue, ReasonApplied, "ServiceMonitor "+chatName(cc)+" scrapes /metrics")
	return true, nil
}

// observe reads the children's status into the ChatCluster's conditions.
func (r *ChatClusterReconciler) observe(ctx context.Context, cc *chatv1alpha1.ChatCluster, s Settings) error {
	dep := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: chatName(cc)}, dep); err != nil {
		return fmt.Errorf("get Deployment: %w", err)
	}
	desired := ptr.Deref(dep.Spec.Replicas, 1)
	st := dep.Status
	complete := rolledOut(dep)
	cc.Status.Replicas = st.Replicas
	cc.Status.ReadyReplicas = st.AvailableReplicas
	if cc.Status.DesiredReplicas != desired && cc.Status.ObservedGeneration > 0 {
		r.event(cc, corev1.EventTypeNormal, ReasonScaled, ActionScale, "chat servers scaled from %d to %d replicas", cc.Status.DesiredReplicas, desired)
	}
	cc.Status.DesiredReplicas = desired

	image := dep.Spec.Template.Spec.Containers[0].Image
	progress := fmt.Sprintf("%d of %d replicas updated, %d available", st.UpdatedReplicas, desired, st.AvailableReplicas)
	if complete {
		if cc.Status.Image != image {
			if cc.Status.Image != "" {
				r.event(cc, corev1.EventTypeNormal, ReasonRolloutComplete, ActionUpgrade, "chat servers now run %s", image)
			}
			cc.Status.Image, cc.Status.Version = image, imageTag(image)
		}
		r.setCond(cc, chatv1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonRolloutComplete, progress)
	} else {
		r.setCond(cc, chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonRollingOut, "rolling out "+image+": "+progress)
	}

	switch {
	case desired == 0:
		r.setCond(cc, chatv1alpha1.ConditionAvailable, metav1.ConditionFalse, ReasonHibernating, "scaled to zero replicas")
	case st.AvailableReplicas >= desired:
		r.setCond(cc, chatv1alpha1.ConditionAvailable, metav1.ConditionTrue, ReasonAllReplicasAvailable, progress)
	case st.AvailableReplicas > 0:
		r.setCond(cc, chatv1alpha1.ConditionAvailable, metav1.ConditionTrue, ReasonMinimumReplicasAvailable, progress)
	default:
		r.setCond(cc, chatv1alpha1.ConditionAvailable, metav1.ConditionFalse, ReasonNoReplicasAvailable, progress)
	}

	if err := r.observeRedis(ctx, cc); err != nil {
		return err
	}

	var degradedReason Reason
	degradedMsg := ""
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == string(ReasonProgressDeadlineExceeded) {
			degradedReason, degradedMsg = ReasonProgressDeadlineExceeded, c.Message
		}
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			degradedReason, degradedMsg = ReasonReplicaFailure, c.Message
		}
	}
	if k := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionKeysReady); k != nil && k.Status != metav1.ConditionTrue {
		// The keyring's own reason (InvalidKeyring) says more than a generic one.
		degradedReason, degradedMsg = Reason(k.Reason), k.Message
	}
	if degradedReason != "" {
		if c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionDegraded); c == nil || c.Reason != string(degradedReason) {
			r.event(cc, corev1.EventTypeWarning, ReasonDegraded, ActionReconcile, "%s: %s", degradedReason, degradedMsg)
		}
		r.setCond(cc, chatv1alpha1.ConditionDegraded, metav1.ConditionTrue, degradedReason, degradedMsg)
	} else {
		r.setCond(cc, chatv1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonAsExpected, "no problem detected")
	}

	// Ready is the conjunction, reported with the first reason it is not.
	ready := func(t string) *metav1.Condition { return apimeta.FindStatusCondition(cc.Status.Conditions, t) }
	switch {
	case s.Hibernate || desired == 0:
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonHibernating, "scaled to zero replicas")
	case ready(chatv1alpha1.ConditionKeysReady).Status != metav1.ConditionTrue:
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonKeysNotReady, ready(chatv1alpha1.ConditionKeysReady).Message)
	case !complete:
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonRollingOut, progress)
	case ready(chatv1alpha1.ConditionAvailable).Status != metav1.ConditionTrue:
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonUnavailable, progress)
	case ready(chatv1alpha1.ConditionRedisReady).Status != metav1.ConditionTrue:
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonRedisNotReady, ready(chatv1alpha1.ConditionRedisReady).Message)
	default:
		r.setCond(cc, chatv1alpha1.ConditionReady, metav1.ConditionTrue, ReasonReady, fmt.Sprintf("%d replicas of %s available", desired, image))
	}
	return nil
}

func (r *ChatClusterReconciler) observeRedis(ctx context.Context, cc *chatv1alpha1.ChatCluster) error {
	switch {
	case cc.Spec.Redis == nil:
		r.setCond(cc, chatv1alpha1.ConditionRedisReady, metav1.ConditionTrue, ReasonNotRequired, "single replica: the chat server uses its in-process backplane")
	case cc.Spec.Redis.External != nil:
		r.setCond(cc, chatv1alpha1.ConditionRedisReady, metav1.ConditionTrue, ReasonExternal, "external Redis at "+cc.Spec.Redis.External.Address+" (not probed by the operator)")
	default:
		sts := &appsv1.StatefulSet{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: redisName(cc)}, sts); err != nil {
			return fmt.Errorf("get Redis StatefulSet: %w", err)
		}
		if sts.Status.ReadyReplicas >= 1 {
			r.setCond(cc, chatv1alpha1.ConditionRedisReady, metav1.ConditionTrue, ReasonRedisAvailable, "managed Redis is ready")
		} else {
			r.setCond(cc, chatv1alpha1.ConditionRedisReady, metav1.ConditionFalse, ReasonRedisNotReady, "managed Redis has no ready replica yet")
		}
	}
	return nil
}

var allConditions = []string{
	chatv1alpha1.ConditionReady, chatv1alpha1.ConditionAvailable, chatv1alpha1.ConditionProgressing,
	chatv1alpha1.ConditionDegraded, chatv1alpha1.ConditionKeysReady, chatv1alpha1.ConditionRedisReady,
	chatv1alpha1.ConditionServiceMonitorReady, chatv1alpha1.ConditionKeysPropagated,
	chatv1alpha1.ConditionAttachmentsReady, chatv1alpha1.ConditionPrometheusRuleReady, chatv1alpha1.ConditionPaused,
}

// initConditions gives every condition a value on the first reconcile, so a
// reader never has to guess whether a missing condition means "not yet" or "fine".
func (r *ChatClusterReconciler) initConditions(cc *chatv1alpha1.ChatCluster) {
	for _, t := range allConditions {
		if apimeta.FindStatusCondition(cc.Status.Conditions, t) == nil {
			r.setCond(cc, t, metav1.ConditionUnknown, ReasonReconciling, "the operator has not observed this yet")
		}
	}
}

// setCond sets a condition stamped with the current generation; the transition
// time (from the reconciler's clock) changes only when the status does.
func (r *ChatClusterReconciler) setCond(cc *chatv1alpha1.ChatCluster, t string, status metav1.ConditionStatus, reason Reason, msg string) {
	apimeta.SetStatusCondition(&cc.Status.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: string(reason), Message: msg, ObservedGeneration: cc.Generation,
		LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

// event records an Event about cc. The reason and action are typed so that every
// Event reason is one of the constants in conditions.go.
func (r *ChatClusterReconciler) event(cc *chatv1alpha1.ChatCluster, eventType string, reason Reason, action EventAction, note string, args ...any) {
	r.Recorder.Eventf(cc, nil, eventType, string(reason), string(action), note, args...)
}

// SetupWithManager registers the controller and its watches.
func (r *ChatClusterReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(ctx, &chatv1alpha1.ChatCluster{}, secretRefIndex, func(o client.Object) []string {
		cc, ok := o.(*chatv1alpha1.ChatCluster)
		if !ok {
			return nil
		}
		var names []string
		for _, ref := range secretRefs(cc) {
			names = append(names, ref.ref.Name)
		}
		slices.Sort(names)
		return slices.Compact(names)
	})
	if err != nil {
		return fmt.Errorf("index ChatClusters by Secret: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&chatv1alpha1.ChatCluster{}).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&networkingv1.Ingress{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// Secrets: the keyring (owned) and the DSN or Redis password (referenced),
		// those labelled app.kubernetes.io/part-of=parley (cache.go).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretToChatClusters(mgr.GetClient()))).
		Named("chatcluster").
		Complete(r)
}

func (r *ChatClusterReconciler) secretToChatClusters(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var reqs []reconcile.Request
		if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "ChatCluster" && ref.APIVersion == chatv1alpha1.GroupVersion.String() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: ref.Name}})
		}
		// A retained keyring Secret has no owner reference: its name says whose
		// it is. (Only labelled Secrets reach this watch, cache.go; one restored
		// without labels is found by the KeyringMissing backoff.)
		if name, ok := strings.CutSuffix(o.GetName(), "-keys"); ok && name != "" {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}})
		}
		list := &chatv1alpha1.ChatClusterList{}
		if err := c.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretRefIndex: o.GetName()}); err != nil {
			logf.FromContext(ctx).Error(err, "list ChatClusters referencing Secret", "secret", o.GetName())
			return reqs
		}
		for _, cc := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&cc)})
		}
		return reqs
	}
}

// rolledOut reports whether the Deployment runs its current template on every
// replica, all available.
func rolledOut(dep *appsv1.Deployment) bool {
	desired := ptr.Deref(dep.Spec.Replicas, 1)
	st := dep.Status
	return st.ObservedGeneration >= dep.Generation &&
		st.UpdatedReplicas == desired && st.Replicas == desired && st.AvailableReplicas == desired
}
