package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// pausedBy says what pauses the ChatCluster, or "" when nothing does.
func pausedBy(cc *chatv1alpha1.ChatCluster) string {
	switch {
	case cc.Spec.Paused:
		return "spec.paused is true"
	case cc.Annotations[chatv1alpha1.AnnotationPaused] == "true":
		return "the " + chatv1alpha1.AnnotationPaused + " annotation is \"true\""
	}
	return ""
}

// healthConditions are what the operator observes of the running chat
// servers; while paused they would go stale, so they turn Unknown.
var healthConditions = []string{
	chatv1alpha1.ConditionReady, chatv1alpha1.ConditionAvailable,
	chatv1alpha1.ConditionProgressing, chatv1alpha1.ConditionDegraded,
}

// reportPaused writes only the ChatCluster's status: Paused=True and the
// health conditions Unknown, so `kubectl get chatcluster` and the alerts say
// "paused" rather than health last seen before the pause. No child is touched.
func (r *ChatClusterReconciler) reportPaused(ctx context.Context, cc *chatv1alpha1.ChatCluster, why string) error {
	before := cc.Status.DeepCopy()
	r.setCond(cc, chatv1alpha1.ConditionPaused, metav1.ConditionTrue, ReasonPaused, "reconciliation paused: "+why)
	for _, t := range healthConditions {
		r.setCond(cc, t, metav1.ConditionUnknown, ReasonPaused, "not observed while the ChatCluster is paused ("+why+")")
	}
	r.Metrics.State.observeCluster(cc)
	if equality.Semantic.DeepEqual(*before, cc.Status) {
		return nil
	}
	orig := cc.DeepCopy()
	orig.Status = *before
	if err := r.Client.Status().Patch(ctx, cc, client.MergeFrom(orig)); err != nil {
		r.Metrics.Errors.WithLabelValues("status").Inc()
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// reconcilePrometheusRule applies or removes the PrometheusRule with Parley's
// alerts, like the ServiceMonitor: only where the CRD is served.
func (r *ChatClusterReconciler) reconcilePrometheusRule(ctx context.Context, cc *chatv1alpha1.ChatCluster, a applier, q *requeue, smOn bool) error {
	installed, err := r.Capabilities.PrometheusRules(ctx)
	if err != nil {
		return err
	}
	if !cc.Spec.Monitoring.PrometheusRule {
		if installed {
			pr := &unstructured.Unstructured{}
			pr.SetGroupVersionKind(prometheusRuleGVK)
			if err := r.prune(ctx, a, cc, pr, chatName(cc)); err != nil {
				return err
			}
		}
		r.setCond(cc, chatv1alpha1.ConditionPrometheusRuleReady, metav1.ConditionFalse, ReasonDisabled, "spec.monitoring.prometheusRule is off")
		return nil
	}
	if !installed {
		q.at(crdRecheckInterval)
		r.setCond(cc, chatv1alpha1.ConditionPrometheusRuleReady, metav1.ConditionFalse, ReasonCRDNotInstalled,
			"the monitoring.coreos.com/v1 PrometheusRule CRD is not installed")
		return nil
	}
	pr, err := PrometheusRule(cc)
	if err != nil {
		return err
	}
	res, err := a.applyUnstructured(ctx, pr)
	if err != nil {
		return err
	}
	if res == applyCreated {
		r.event(cc, corev1.EventTypeNormal, ReasonCreated, ActionReconcile, "created PrometheusRule %s", chatName(cc))
	}
	msg := "PrometheusRule " + chatName(cc) + " holds Parley's alerts for this ChatCluster"
	if !smOn {
		// The chat server's series get the chatcluster label from the
		// operator's ServiceMonitor; without it only the operator's alerts match.
		msg += "; without the operator's ServiceMonitor (spec.monitoring.serviceMonitor) the chat server alerts match no series"
	}
	r.setCond(cc, chatv1alpha1.ConditionPrometheusRuleReady, metav1.ConditionTrue, ReasonApplied, msg)
	return nil
}
