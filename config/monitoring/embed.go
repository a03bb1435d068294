// Package monitoring holds Parley's Prometheus alerts and Grafana dashboard, the
// one copy that the operator embeds and the chart's files/ copies.
package monitoring

import _ "embed"

// Alerts is the Prometheus rule file (groups:) with every Parley alert.
//
//go:embed alerts.yaml
var Alerts []byte

// ScopeMatcher is in every selector of Alerts; the operator replaces it to
// scope the rules to one ChatCluster.
const ScopeMatcher = `chatcluster=~".+"`
