package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldOwner is the server-side apply field manager of every write the operator makes.
const FieldOwner = "parley-operator"

// applyResult tells what an apply did.
type applyResult int

const (
	applyUnchanged applyResult = iota
	applyCreated
	applyUpdated
)

// applier writes desired objects with server-side apply, but only when they differ
// from what our field manager already owns. That keeps a steady-state reconcile
// free of writes (no resourceVersion churn, no watch events, no audit noise) while
// still reverting drift: a field someone else changed is no longer ours in
// managedFields, so the comparison sees the difference and we apply again, with force.
type applier struct {
	c client.Client
}

// apply server-side applies a typed object built by the builders in resources.go.
func (a applier) apply(ctx context.Context, desired client.Object) (applyResult, error) {
	// A zero object of the same type: decoding into a copy of desired would merge maps.
	existing, ok := reflect.New(reflect.TypeOf(desired).Elem()).Interface().(client.Object)
	if !ok {
		return 0, fmt.Errorf("%T is not a client.Object", desired)
	}
	err := a.c.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
		return applyCreated, a.write(ctx, desired)
	case err != nil:
		return 0, fmt.Errorf("get %s %s: %w", kindOf(desired), desired.GetName(), err)
	}
	owned, extractErr := extractOwned(existing)
	if extractErr != nil && !repairable(existing) {
		return 0, fmt.Errorf("extract fields owned by %s from %s %s: %w", FieldOwner, kindOf(desired), desired.GetName(), extractErr)
	}
	want, err := toComparable(desired)
	if err != nil {
		return 0, err
	}
	// Empty objects ("updateStrategy: {}") are compared as absent: the API server
	// may default them without recording our ownership of the empty value.
	// A workload the extractor cannot read (a hand edit gave two container ports
	// one number: duplicate list keys) differs: the write below repairs it.
	if extractErr == nil && equality.Semantic.DeepEqual(dropEmpty(want), dropEmpty(owned)) {
		return applyUnchanged, nil
	}
	err = a.write(ctx, desired)
	if (apierrors.IsInvalid(err) || (err != nil && extractErr != nil)) && repairContainers(existing, desired) {
		// A hand edit changed a list key (a container port number): to server-side
		// apply that is a new list entry, and ours would collide with it by name.
		// Put our containers back with a plain update, then apply again so the
		// fields are owned by the Apply entry.
		if uerr := a.c.Update(ctx, existing, client.FieldOwner(FieldOwner)); uerr != nil {
			return 0, fmt.Errorf("repair containers of %s %s: %w (after apply failed: %w)", kindOf(desired), desired.GetName(), uerr, err)
		}
		err = a.write(ctx, desired)
	}
	return applyUpdated, err
}

// repairable reports whether repairContainers can put a live object right.
func repairable(live client.Object) bool {
	switch live.(type) {
	case *appsv1.Deployment, *appsv1.StatefulSet:
		return true
	}
	return false
}

// repairContainers replaces, in a live Deployment or StatefulSet, each container
// the desired object defines with the desired one. It reports whether it applies.
func repairContainers(live, desired client.Object) bool {
	var lt, dt *corev1.PodTemplateSpec
	switch l := live.(type) {
	case *appsv1.Deployment:
		lt, dt = &l.Spec.Template, &desired.(*appsv1.Deployment).Spec.Template
	case *appsv1.StatefulSet:
		lt, dt = &l.Spec.Template, &desired.(*appsv1.StatefulSet).Spec.Template
	default:
		return false
	}
	for _, want := range dt.Spec.Containers {
		for i := range lt.Spec.Containers {
			if lt.Spec.Containers[i].Name == want.Name {
				lt.Spec.Containers[i] = *want.DeepCopy()
			}
		}
	}
	return true
}

func (a applier) write(ctx context.Context, desired client.Object) error {
	u, err := toUnstructured(desired)
	if err != nil {
		return err
	}
	if err := a.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s %s: %w", kindOf(desired), desired.GetName(), err)
	}
	return nil
}

// applyUnstructured applies an object whose type the operator does not compile in
// (ServiceMonitor). Without a typed extractor, it compares the desired fields as a
// subset of the live object: extra fields set by others or by defaulting are fine.
func (a applier) applyUnstructured(ctx context.Context, desired *unstructured.Unstructured) (applyResult, error) {
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(desired.GroupVersionKind())
	err := a.c.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	res := applyUpdated
	switch {
	case apierrors.IsNotFound(err):
		res = applyCreated
	case err != nil:
		return 0, fmt.Errorf("get %s %s: %w", desired.GetKind(), desired.GetName(), err)
	default:
		if isSubset(desired.Object, existing.Object) {
			return applyUnchanged, nil
		}
	}
	if err := a.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired.DeepCopy()), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return 0, fmt.Errorf("apply %s %s: %w", desired.GetKind(), desired.GetName(), err)
	}
	return res, nil
}

// deleteIfOwned removes an object this ChatCluster no longer wants (an Ingress
// after spec.ingress is removed, say). Objects it does not control are left alone.
func (a applier) deleteIfOwned(ctx context.Context, obj client.Object, ownerUID string) (bool, error) {
	if err := a.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		// No such kind (a CRD removed meanwhile) means no such object either.
		if apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err) {
			return false, nil
		}
		return false, fmt.Errorf("get %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	controlled := false
	for _, ref := range obj.GetOwnerReferences() {
		if string(ref.UID) == ownerUID && ref.Controller != nil && *ref.Controller {
			controlled = true
		}
	}
	if !controlled {
		return false, nil
	}
	if err := a.c.Delete(ctx, obj, client.PropagationPolicy("Background")); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("delete %s %s: %w", kindOf(obj), obj.GetName(), err)
	}
	return true, nil
}

func kindOf(obj runtime.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	return fmt.Sprintf("%T", obj)
}

func toUnstructured(obj client.Object) (*unstructured.Unstructured, error) {
	m, err := toComparable(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// toComparable renders an object as the JSON map an apply would send: no status,
// no server-set metadata, no nulls.
func toComparable(obj any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", obj, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode %T: %w", obj, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
		delete(md, "managedFields")
		delete(md, "resourceVersion")
		delete(md, "uid")
		delete(md, "generation")
	}
	dropNulls(m)
	return m, nil
}

func dropNulls(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if e == nil {
				delete(t, k)
				continue
			}
			dropNulls(e)
		}
	case []any:
		for _, e := range t {
			dropNulls(e)
		}
	}
}

// dropEmpty removes empty maps and lists, recursively, from a copy of v.
func dropEmpty(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			e = dropEmpty(e)
			if m, ok := e.(map[string]any); ok && len(m) == 0 {
				continue
			}
			if l, ok := e.([]any); ok && len(l) == 0 {
				continue
			}
			out[k] = e
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = dropEmpty(e)
		}
		return out
	}
	return v
}

// extractOwned returns the fields of a live object that our field manager owns,
// in the same shape as toComparable.
func extractOwned(obj client.Object) (map[string]any, error) {
	var ac any
	var err error
	switch o := obj.(type) {
	case *appsv1.Deployment:
		ac, err = appsv1ac.ExtractDeployment(o, FieldOwner)
	case *appsv1.StatefulSet:
		ac, err = appsv1ac.ExtractStatefulSet(o, FieldOwner)
	case *corev1.Service:
		ac, err = corev1ac.ExtractService(o, FieldOwner)
	case *corev1.ConfigMap:
		ac, err = corev1ac.ExtractConfigMap(o, FieldOwner)
	case *corev1.Secret:
		ac, err = corev1ac.ExtractSecret(o, FieldOwner)
	case *corev1.ServiceAccount:
		ac, err = corev1ac.ExtractServiceAccount(o, FieldOwner)
	case *corev1.PersistentVolumeClaim:
		ac, err = corev1ac.ExtractPersistentVolumeClaim(o, FieldOwner)
	case *networkingv1.Ingress:
		ac, err = networkingv1ac.ExtractIngress(o, FieldOwner)
	case *networkingv1.NetworkPolicy:
		ac, err = networkingv1ac.ExtractNetworkPolicy(o, FieldOwner)
	case *autoscalingv2.HorizontalPodAutoscaler:
		ac, err = autoscalingv2ac.ExtractHorizontalPodAutoscaler(o, FieldOwner)
	case *policyv1.PodDisruptionBudget:
		ac, err = policyv1ac.ExtractPodDisruptionBudget(o, FieldOwner)
	default:
		return nil, fmt.Errorf("no field extractor for %T", obj)
	}
	if err != nil {
		return nil, err
	}
	return toComparable(ac)
}

// isSubset reports whether every field of want is present in have with an equal
// value. Lists must have the same length; their elements compare as subsets.
func isSubset(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if k == "status" {
				continue
			}
			hv, ok := h[k]
			if !ok || !isSubset(wv, hv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !isSubset(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		wb, _ := json.Marshal(want)
		hb, _ := json.Marshal(have)
		return string(wb) == string(hb)
	}
}
