#!/usr/bin/env bash
# make e2e-cluster: the operator and a ChatCluster on a REAL single-node Kubernetes cluster on
# this machine (root, no Docker engine, no registry). Steps, each timed into
# tmp/cluster/results.md (docs/e2e-cluster.md records a run):
#   deps       Debian's containerd, runc, CNI plugins (etcd, redis-server via hack/install-deps.sh)
#   k8s        kubelet, kube-controller-manager, kube-scheduler, kube-proxy v1.37.2 (cached in bin/k8s)
#   tools      CoreDNS (the node's cluster DNS) and Prometheus, from the Go module proxy (cached in bin/)
#   images     OCI archives for the pause, chat server, operator and Redis images (hack/cluster/images.sh)
#   up         containerd, bridge, control plane, kubelet (Ready), kube-proxy (hack/cluster/node.sh up)
#   operator   helm install charts/parley-operator (image parley/operator:dev, pullPolicy Never)
#   scenario   go test -tags clustere2e -run TestChatClusterOnRealNode (ChatCluster flows, see there)
#   scenario-upgrade  go test -tags clustere2e -run TestOperatorUpgrade: helm upgrade to operator dev2; the
#              pinned ChatCluster untouched, the default-image ones rolled one at a time (upgrade_test.go)
#   kubelet-default-sync  the kubelet restarted with the default syncFrequency (1m)
#   scenario-prod  go test -tags clustere2e -run TestProductionShape: PostgreSQL StatefulSet, Redis with a
#              password, 3 chat replicas, parley-load through the Service during a rolling update,
#              evictions, a key rotation and a SIGKILL; the exactness check (prod_test.go)
#   down       everything torn down, also on failure or interrupt (trap)
# Env: E2E_SCENARIO=all (default: basic, upgrade, prod) | basic | upgrade | prod; E2E_REDIS=0 skips the basic scenario's Redis steps;
# E2E_KEEP=1 leaves the cluster up (node.sh down later); E2E_LOCK=FILE runs the production shape's
# test (the load and its figures) under flock FILE, so it never overlaps another load measurement.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
W=$ROOT/tmp/cluster
RESULTS=$W/results.md
export KUBECONFIG=$W/kubeconfig KUBECACHEDIR=$W/kubecache
cd "$ROOT"
mkdir -p "$W/logs" "$W/run"

T0=$(date +%s)
{
	echo "run: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!tmp' || echo ' + uncommitted changes'), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "| step | seconds | result | observed |"
	echo "|---|---|---|---|"
} >"$RESULTS"
row() { echo "| $1 | $2 | $3 | $4 |" >>"$RESULTS"; }
# phase NAME CMD...: run and time one step, its output into logs/NAME.log; a failure ends the run.
phase() {
	local name=$1 start rc=0
	shift
	start=$(date +%s.%N)
	echo "e2e-cluster: $name..." >&2
	# In the background and then waited for: a function run as `f || rc=$?` would run with errexit off.
	("$@") >"$W/logs/$name.log" 2>&1 &
	PHASE_PID=$!
	wait $PHASE_PID || rc=$?
	PHASE_PID=
	local secs
	secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
	if [ $rc -ne 0 ]; then
		row "$name" "$secs" FAIL "exit $rc; tail of tmp/cluster/logs/$name.log: $(tail -3 "$W/logs/$name.log" | tr '\n|' ' /')"
		echo "e2e-cluster: $name FAILED after ${secs}s (tmp/cluster/logs/$name.log):" >&2
		tail -30 "$W/logs/$name.log" >&2
		return $rc
	fi
	row "$name" "$secs" pass "$(grep -h '^note: ' "$W/logs/$name.log" | cut -c7- | tr '\n|' ' /')"
	echo "e2e-cluster: $name ok (${secs}s)" >&2
}

deps() {
	local pkgs=() p
	for p in containerd runc containernetworking-plugins etcd-server redis-server; do
		dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
	done
	if [ ${#pkgs[@]} -gt 0 ]; then
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
	fi
	echo "note: $(containerd --version | cut -d' ' -f3), runc $(runc --version | head -1 | cut -d' ' -f3), $(etcd --version | head -1)"
}

tools() {
	"$ROOT/hack/coredns.sh" ensure
	"$ROOT/hack/prometheus.sh" ensure
	echo "note: coredns $("$ROOT/hack/coredns.sh" version), prometheus $("$ROOT/hack/prometheus.sh" version) in bin/"
}

operator() {
	"$ROOT/hack/helm.sh" ensure
	"$ROOT/bin/helm" install parley-operator charts/parley-operator --namespace parley-system --create-namespace \
		--set image.repository=parley/operator --set image.tag=dev --set image.pullPolicy=Never \
		--wait --timeout 3m
	kubectl -n parley-system get pods -o wide
	echo "note: helm install --wait done; $(kubectl -n parley-system get deploy -o jsonpath='{range .items[*]}{.metadata.name} {.status.readyReplicas}/{.spec.replicas} ready{end}')"
}

# A Redis for the external-Redis steps, on the bridge address (pods reach it on-link, nothing else can).
redis() {
	mkdir -p "$W/redis"
	nohup redis-server --bind 10.88.0.1 --port 16379 --protected-mode no --save '' --appendonly no \
		--dir "$W/redis" >"$W/logs/redis-server.log" 2>&1 &
	echo $! >"$W/run/redis.pid"
	for _ in $(seq 40); do redis-cli -h 10.88.0.1 -p 16379 ping 2>/dev/null | grep -q PONG && break; sleep 0.25; done
	redis-cli -h 10.88.0.1 -p 16379 ping | grep -q PONG
	echo "note: redis-server $(redis-server --version | grep -o 'v=[^ ]*') on 10.88.0.1:16379"
}

scenario() {
	PARLEY_E2E_KUBECONFIG=$KUBECONFIG PARLEY_E2E_WORKDIR=$W PARLEY_E2E_RESULTS=$RESULTS \
		go test -tags clustere2e -count=1 -v -timeout 30m -run '^TestChatClusterOnRealNode$' ./chatserver/e2e/cluster
}

scenario_upgrade() {
	PARLEY_E2E_KUBECONFIG=$KUBECONFIG PARLEY_E2E_WORKDIR=$W PARLEY_E2E_RESULTS=$RESULTS \
		PARLEY_E2E_HELM="$ROOT/bin/helm" PARLEY_E2E_CHART="$ROOT/charts/parley-operator" \
		go test -tags clustere2e -count=1 -v -timeout 20m -run '^TestOperatorUpgrade$' ./chatserver/e2e/cluster
}

scenario_prod() {
	go build -o "$W/bin/parley-load" ./chatserver/cmd/parley-load
	PARLEY_E2E_KUBECONFIG=$KUBECONFIG PARLEY_E2E_WORKDIR=$W PARLEY_E2E_RESULTS=$RESULTS PARLEY_E2E_LOAD=$W/bin/parley-load \
		PARLEY_E2E_POSTGRES_IMAGE=parley/postgres:dev PARLEY_E2E_REDIS_IMAGE=parley/redis:dev \
		PARLEY_E2E_PROMETHEUS="$ROOT/bin/prometheus" PARLEY_E2E_ALERTS="$ROOT/config/monitoring/alerts.yaml" \
		${E2E_LOCK:+flock "$E2E_LOCK"} go test -tags clustere2e -count=1 -v -timeout 40m -run '^TestProductionShape$' ./chatserver/e2e/cluster
}

# killtree PID: a phase still running when the run is interrupted (its children first, by pid).
killtree() {
	local c
	for c in $(pgrep -P "$1"); do killtree "$c"; done
	kill "$1" 2>/dev/null || true
}

PHASE_PID=
finish() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$PHASE_PID" ]; then
		killtree "$PHASE_PID"
		row interrupted - FAIL "the running step was stopped"
	fi
	if [ -f "$W/kubeconfig" ] && [ "${E2E_KEEP:-0}" != 1 ]; then
		"$ROOT/hack/cluster/node.sh" guard >"$W/logs/guard.log" 2>"$W/logs/guard-routes.log" || true
		local ok=FAIL
		grep -q '^guard drops (packets): 0$' "$W/logs/guard.log" && grep -q 'with a default route: 0$' "$W/logs/guard.log" &&
			grep -q '^net.ipv4.ip_forward=0 ' "$W/logs/guard.log" && ok=pass
		row confinement - "$ok" "$(tr '\n|' ' /' <"$W/logs/guard.log")"
		phase down "$ROOT/hack/cluster/node.sh" down || rc=1
	fi
	row total "$(($(date +%s) - T0))" "$([ $rc -eq 0 ] && echo pass || echo FAIL)" "exit $rc"
	echo >&2
	cat "$RESULTS" >&2
	exit $rc
}

phase deps deps
phase k8s "$ROOT/hack/cluster/k8s-binaries.sh"
phase tools tools
phase images "$ROOT/hack/cluster/images.sh"
trap finish EXIT
trap 'exit 130' INT TERM
phase up "$ROOT/hack/cluster/node.sh" up
phase operator operator
"$ROOT/hack/cluster/node.sh" guard >"$W/logs/guard-operator.log" 2>&1 || true # pod routes while the operator runs
SCENARIO=${E2E_SCENARIO:-all}
case $SCENARIO in all | basic | upgrade | prod) ;; *) echo "e2e-cluster: E2E_SCENARIO must be all, basic, upgrade or prod" >&2; exit 2 ;; esac
if [ "$SCENARIO" = all ] || [ "$SCENARIO" = basic ]; then
	if [ "${E2E_REDIS:-1}" != 0 ]; then
		phase redis redis
		export PARLEY_E2E_REDIS_ADDR=10.88.0.1:16379
		[ -f "$W/images/redis.tar" ] && export PARLEY_E2E_REDIS_IMAGE=parley/redis:dev
	fi
	phase scenario scenario
fi
if [ "$SCENARIO" = all ] || [ "$SCENARIO" = upgrade ]; then
	phase scenario-upgrade scenario_upgrade
fi
if [ "$SCENARIO" = all ] || [ "$SCENARIO" = prod ]; then
	phase kubelet-default-sync "$ROOT/hack/cluster/node.sh" kubelet-default-sync
	phase scenario-prod scenario_prod
fi
