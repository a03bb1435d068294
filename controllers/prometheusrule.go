package controllers

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/config/monitoring"
)

var prometheusRuleGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}

// PrometheusRule carries Parley's alerts (config/monitoring/alerts.yaml, the
// file the chart ships too) scoped to one ChatCluster: every selector's
// chatcluster=~".+" becomes this cluster's namespace and name, so two
// ChatClusters in a namespace each alert only about themselves.
func PrometheusRule(cc *chatv1alpha1.ChatCluster) (*unstructured.Unstructured, error) {
	scope := fmt.Sprintf("namespace=%s, chatcluster=%s", strconv.Quote(cc.Namespace), strconv.Quote(cc.Name))
	var rules struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := yaml.Unmarshal(monitoring.Alerts, &rules); err != nil {
		return nil, fmt.Errorf("parse embedded alerts: %w", err)
	}
	groups := make([]any, 0, len(rules.Groups))
	for _, g := range rules.Groups {
		// Group names are unique per PrometheusRule; the suffix keeps them
		// apart in Prometheus' rule listing across ChatClusters.
		g["name"] = fmt.Sprintf("%s/%s/%s", g["name"], cc.Namespace, cc.Name)
		list, _ := g["rules"].([]any)
		for _, r := range list {
			rule, ok := r.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("embedded alerts: group %v: a rule is not a mapping", g["name"])
			}
			expr, _ := rule["expr"].(string)
			if !strings.Contains(expr, monitoring.ScopeMatcher) {
				return nil, fmt.Errorf("embedded alerts: rule %v has no %s to scope", rule["alert"], monitoring.ScopeMatcher)
			}
			rule["expr"] = strings.ReplaceAll(expr, monitoring.ScopeMatcher, scope)
		}
		groups = append(groups, g)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": prometheusRuleGVK.GroupVersion().String(),
		"kind":       prometheusRuleGVK.Kind,
		"spec":       map[string]any{"groups": groups},
	}}
	m := meta(cc, chatName(cc), "chatserver")
	u.SetName(m.Name)
	u.SetNamespace(m.Namespace)
	u.SetLabels(m.Labels)
	u.SetOwnerReferences(m.OwnerReferences)
	return u, nil
}
