#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, without Docker, for make e2e-cluster.
# Debian's containerd + runc + CNI plugins; kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet and kube-proxy v1.37.2 from bin/k8s (hack/cluster/k8s-binaries.sh);
# Debian's etcd. Everything it writes lives under tmp/cluster/ except what `down` lists.
#
#   hack/cluster/node.sh up      start containerd, the bridge, the control plane, the kubelet
#                                (waits for the node to be Ready) and kube-proxy
#   hack/cluster/node.sh down    stop what up started (pids in tmp/cluster/run) and remove every trace
#   hack/cluster/node.sh guard   print the confinement evidence (guard drop counters, ip_forward, bridge ports, pod routes)
#   hack/cluster/node.sh kubelet-default-sync
#                                restart the kubelet with the default syncFrequency (1m) instead of 5s;
#                                the pods keep running (the production-shape scenario's key rotation)
#
# Network confinement: the bridge parley0 (10.88.0.1/24) has no physical port; pods get
# 10.88.0.10-250 with NO default route (only the bridge subnet and the Service range via the
# host); the Service range 10.96.0.0/24 is routed onto the bridge, so a ClusterIP packet that
# kube-proxy has not translated stays on the machine; net.ipv4.ip_forward and route_localnet
# stay 0 (only packets arriving on the bridge are forwarded: pod -> ClusterIP -> pod); a guard
# chain drops and counts any pod/Service packet routed out of anything but the bridge; pods
# resolve names through CoreDNS on 10.88.0.1 (cluster.local only, never forwarded);
# the apiserver listens on 10.88.0.1 (pods reach it through the `kubernetes` Service), every
# other component on 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
W=$ROOT/tmp/cluster              # working folder
K=$ROOT/bin/k8s                  # kube-* binaries
BR=parley0 BR_IP=10.88.0.1 POD_NET=10.88.0.0/24 SVC_NET=10.96.0.0/24
API_PORT=16443 ETCD_PORT=32379 ETCD_PEER=32380
CGROOT=parley-e2e
export KUBECONFIG=$W/kubeconfig KUBECACHEDIR=$W/kubecache
CTR="ctr -a $W/containerd/containerd.sock -n k8s.io"

log() { echo "node: $*" >&2; }
start() { # start NAME CMD...: background it, pid into run/NAME.pid, output into logs/NAME.log
	local n=$1; shift
	nohup "$@" >"$W/logs/$n.log" 2>&1 &
	echo $! >"$W/run/$n.pid"
}
wait_for() { # wait_for SECONDS WHAT CMD...
	local until=$(($(date +%s) + $1)) what=$2; shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$until" ] || { log "$what: not within timeout"; return 1; }
		sleep 0.5
	done
}

containerd_up() {
	mkdir -p "$W/containerd" "$W/cni/net.d" "$W/cni/ipam"
	# Every image is imported, nothing is ever pulled. Should a pull happen anyway (a missing
	# image), it goes to a closed port on loopback instead of resolving a registry.
	local r
	for r in _default docker.io ghcr.io registry.k8s.io; do
		mkdir -p "$W/containerd/certs.d/$r"
		printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' >"$W/containerd/certs.d/$r/hosts.toml"
	done
	cat >"$W/containerd/config.toml" <<EOF
version = 2
root = "$W/containerd/root"
state = "$W/containerd/state"
[grpc]
  address = "$W/containerd/containerd.sock"
[ttrpc]
  address = "$W/containerd/containerd.sock.ttrpc"
[debug]
  address = "$W/containerd/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$W/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "parley/pause:dev"
  disable_apparmor = true
  restrict_oom_score_adj = true   # no CAP_SYS_RESOURCE here
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "$W/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$W/containerd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/cni/net.d"
    max_conf_num = 1
EOF
	start containerd /usr/bin/containerd --config "$W/containerd/config.toml"
	wait_for 20 containerd ctr -a "$W/containerd/containerd.sock" version
	for img in "$W"/images/*.tar; do $CTR images import "$img" >/dev/null; done
	log "containerd up, images: $($CTR images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
}

bridge_up() {
	ip link show $BR >/dev/null 2>&1 || ip link add $BR type bridge
	ip addr show dev $BR | grep -q "$BR_IP/24" || ip addr add $BR_IP/24 dev $BR
	ip link set $BR up
	ip route replace $SVC_NET dev $BR src $BR_IP
	# Pod -> ClusterIP -> another pod is routed by the host: forwarding for packets that arrive on
	# the bridge only (net.ipv4.ip_forward stays 0, so nothing arriving on eth0 is forwarded); the
	# guard below drops whatever would be forwarded out of anything but the bridge. The setting
	# goes with the bridge.
	sysctl -qw net.ipv4.conf.$BR.forwarding=1
	# Guard (and evidence): a packet from or to the pod or Service range that is routed out of
	# any interface but the bridge or loopback is dropped and counted (node.sh guard prints it).
	iptables -t mangle -N PARLEY-E2E-GUARD 2>/dev/null || iptables -t mangle -F PARLEY-E2E-GUARD
	iptables -t mangle -A PARLEY-E2E-GUARD -o $BR -j RETURN
	iptables -t mangle -A PARLEY-E2E-GUARD -o lo -j RETURN
	for net in "-s $POD_NET" "-d $POD_NET" "-d $SVC_NET"; do iptables -t mangle -A PARLEY-E2E-GUARD $net -j DROP; done
	iptables -t mangle -C POSTROUTING -j PARLEY-E2E-GUARD 2>/dev/null || iptables -t mangle -I POSTROUTING -j PARLEY-E2E-GUARD
	# isGateway=false: the plugin would otherwise turn on net.ipv4.ip_forward. No default route.
	cat >"$W/cni/net.d/10-parley-e2e.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "parley-e2e", "plugins": [{
  "type": "bridge", "bridge": "$BR", "isGateway": false, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$W/cni/ipam",
    "ranges": [[{"subnet": "$POD_NET", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.250", "gateway": "$BR_IP"}]],
    "routes": [{"dst": "$SVC_NET", "gw": "$BR_IP"}]}}]}
EOF
}

controlplane_up() {
	local p=$W/pki
	mkdir -p "$p"
	if [ ! -f "$p/ca.crt" ]; then # own CA, serving cert for the API (also the pods' kube-root-ca.crt), SA keys
		openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
		openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
		openssl req -x509 -newkey rsa:2048 -nodes -keyout "$p/ca.key" -out "$p/ca.crt" -days 2 -subj /CN=parley-e2e-ca 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout "$p/apiserver.key" -out "$p/apiserver.csr" -subj /CN=kube-apiserver 2>/dev/null
		printf 'subjectAltName=IP:%s,IP:10.96.0.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' $BR_IP >"$p/apiserver.ext"
		openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
			-out "$p/apiserver.crt" -days 2 -extfile "$p/apiserver.ext" 2>/dev/null
		echo "$(openssl rand -hex 16),admin,admin,system:masters" >"$p/tokens.csv"
	fi
	cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: parley-e2e, cluster: {server: "https://$BR_IP:$API_PORT", certificate-authority: "$p/ca.crt"}}]
users: [{name: admin, user: {token: "$(cut -d, -f1 "$p/tokens.csv")"}}]
contexts: [{name: parley-e2e, context: {cluster: parley-e2e, user: admin}}]
current-context: parley-e2e
EOF
	chmod 600 "$KUBECONFIG"
	start etcd /usr/bin/etcd --name parley-e2e --data-dir "$W/etcd" \
		--listen-client-urls http://127.0.0.1:$ETCD_PORT --advertise-client-urls http://127.0.0.1:$ETCD_PORT \
		--listen-peer-urls http://127.0.0.1:$ETCD_PEER --initial-advertise-peer-urls http://127.0.0.1:$ETCD_PEER \
		--initial-cluster parley-e2e=http://127.0.0.1:$ETCD_PEER
	start kube-apiserver "$K/kube-apiserver" --etcd-servers=http://127.0.0.1:$ETCD_PORT \
		--bind-address=$BR_IP --advertise-address=$BR_IP --secure-port=$API_PORT \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt" \
		--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$p/sa.pub" \
		--service-account-signing-key-file="$p/sa.key" --token-auth-file="$p/tokens.csv" \
		--authorization-mode=Node,RBAC --service-cluster-ip-range=$SVC_NET \
		--kubelet-preferred-address-types=Hostname,InternalIP
	wait_for 90 kube-apiserver kubectl get --raw /readyz
	# cluster DNS for the pods: CoreDNS's kubernetes plugin for cluster.local, NXDOMAIN for
	# anything else, never forwards (hack/cluster/Corefile; bin/coredns from hack/coredns.sh)
	"$ROOT/hack/coredns.sh" ensure
	PARLEY_DNS_ADDR=$BR_IP PARLEY_DNS_READY=127.0.0.1:20253 start dns "$ROOT/bin/coredns" -conf "$ROOT/hack/cluster/Corefile"
	start kube-controller-manager "$K/kube-controller-manager" --kubeconfig="$KUBECONFIG" \
		--bind-address=127.0.0.1 --secure-port=20257 --leader-elect=false \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" --use-service-account-credentials=true
	start kube-scheduler "$K/kube-scheduler" --kubeconfig="$KUBECONFIG" --bind-address=127.0.0.1 --secure-port=20259 --leader-elect=false
	wait_for 60 kube-controller-manager curl -sfk https://127.0.0.1:20257/healthz
	wait_for 60 kube-scheduler curl -sfk https://127.0.0.1:20259/healthz
	wait_for 60 coredns curl -sf http://127.0.0.1:20253/ready
	log "control plane up (API https://$BR_IP:$API_PORT)"
}

kubelet_up() {
	local s
	for s in /sys/fs/cgroup/*/; do # cgroup v1: our own root in every hierarchy
		[ -f "$s/cgroup.procs" ] || continue
		mkdir -p "$s$CGROOT"
		if [ -f "$s/cpuset.cpus" ]; then cat "$s/cpuset.cpus" >"$s$CGROOT/cpuset.cpus"; cat "$s/cpuset.mems" >"$s$CGROOT/cpuset.mems"; fi
	done
	cat >"$W/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 20250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 20248
containerRuntimeEndpoint: unix://$W/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$CGROOT
failSwapOn: false
failCgroupV1: false          # this machine has cgroup v1 (deprecated; see docs/e2e-cluster.md)
podLogsDir: $W/pod-logs
clusterDNS: [$BR_IP]         # CoreDNS (hack/cluster/Corefile): cluster.local only
clusterDomain: cluster.local
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}   # only 127.0.0.1 can reach it
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
rotateCertificates: false
EOF
	# 5s: Secret volume updates within seconds instead of ~1 min for the first scenario;
	# KUBELET_SYNC=default leaves the kubelet's default (1m), as on every cluster.
	[ "${KUBELET_SYNC:-5s}" = default ] || echo "syncFrequency: ${KUBELET_SYNC:-5s}" >>"$W/kubelet.yaml"
	KUBELET_START=$(date +%s)
	start kubelet "$K/kubelet" --config="$W/kubelet.yaml" --kubeconfig="$KUBECONFIG" --root-dir="$W/kubelet" \
		--cert-dir="$W/kubelet/pki" --hostname-override=localhost --v=1
	wait_for 120 "node Ready" bash -c \
		'[ "$(kubectl get node localhost -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].status}")" = True ]'
	log "node Ready"
	echo "note: node $(kubectl get node localhost -o jsonpath='{.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}') Ready $(($(date +%s) - KUBELET_START))s after the kubelet started"
}

proxy_up() {
	start kube-proxy "$K/kube-proxy" --kubeconfig="$KUBECONFIG" --hostname-override=localhost --proxy-mode=iptables \
		--cluster-cidr=$POD_NET --detect-local-mode=ClusterCIDR \
		--healthz-bind-address=127.0.0.1:20256 --metrics-bind-address=127.0.0.1:20249 \
		--conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
		--iptables-localhost-nodeports=false --nodeport-addresses=$BR_IP/32
	wait_for 30 kube-proxy curl -sf http://127.0.0.1:20256/healthz
	log "kube-proxy up"
}

# The kubelet again with the default sync period; containers keep running across a kubelet restart.
kubelet_default_sync() {
	stop kubelet
	KUBELET_SYNC=default kubelet_up
	grep -q syncFrequency "$W/kubelet.yaml" && { log "syncFrequency still set"; return 1; }
	echo "note: kubelet restarted with the default syncFrequency (1m); $(kubectl get pods -A --no-headers 2>/dev/null | wc -l) pods kept running"
}

up() {
	mkdir -p "$W/logs" "$W/run"
	[ -n "$(ls "$W"/images/*.tar 2>/dev/null)" ] || { log "no images in $W/images (hack/cluster/images.sh)"; exit 1; }
	containerd_up
	bridge_up
	controlplane_up
	kubelet_up
	proxy_up
}

alive() { [ -f "$W/run/$1.pid" ] && kill -0 "$(cat "$W/run/$1.pid")" 2>/dev/null; }
stop() { # SIGTERM the recorded pid, SIGKILL after 10s
	local pid
	if alive "$1"; then
		pid=$(cat "$W/run/$1.pid")
		kill "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
		log "stopped $1 ($pid)"
	fi
	rm -f "$W/run/$1.pid"
}

down() {
	set +e
	# 1. pods go through the kubelet (CNI DEL, unmounts) while it still runs
	if alive kube-apiserver && alive kubelet; then
		kubectl delete chatclusters.chat.parley.dev --all -A --wait=false >/dev/null 2>&1
		for ns in $(kubectl get ns -o name 2>/dev/null | cut -d/ -f2); do
			kubectl -n "$ns" delete deploy,statefulset,rs --all --wait=false >/dev/null 2>&1
		done
		kubectl delete pods --all -A --grace-period=1 --timeout=60s >/dev/null 2>&1
	fi
	stop kube-proxy
	[ -x "$K/kube-proxy" ] && "$K/kube-proxy" --cleanup >/dev/null 2>&1
	for c in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd redis dns; do stop $c; done
	# 2. whatever containerd still runs
	if alive containerd; then
		for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
		sleep 1
		for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks rm -f "$t" >/dev/null 2>&1; done
		for c in $($CTR containers ls -q 2>/dev/null); do $CTR containers rm "$c" >/dev/null 2>&1; done
	fi
	stop containerd
	# 3. mounts under the working folder (Secret tmpfs, overlays, shm, netns), then cgroups
	awk -v w="$W/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m"; done
	for s in /sys/fs/cgroup/*/$CGROOT; do [ -d "$s" ] && find "$s" -depth -type d -exec rmdir {} \; 2>/dev/null; done
	ls -d /sys/fs/cgroup/*/$CGROOT 2>/dev/null && log "WARNING: cgroups left under /$CGROOT"
	# 4. host network: bridge (its routes go with it), kubelet's iptables chains
	ip link show $BR >/dev/null 2>&1 && ip link del $BR
	iptables -t mangle -D POSTROUTING -j PARLEY-E2E-GUARD 2>/dev/null
	iptables -t mangle -F PARLEY-E2E-GUARD 2>/dev/null
	iptables -t mangle -X PARLEY-E2E-GUARD 2>/dev/null
	for ipt in iptables ip6tables; do
		$ipt -D INPUT -j KUBE-FIREWALL 2>/dev/null
		$ipt -D OUTPUT -j KUBE-FIREWALL 2>/dev/null
		for tc in filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY mangle:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT; do
			$ipt -t "${tc%%:*}" -F "${tc#*:}" 2>/dev/null
			$ipt -t "${tc%%:*}" -X "${tc#*:}" 2>/dev/null
		done
	done
	# 5. hard-coded paths outside the working folder: go-cni's result cache, the kubelet's
	#    log symlinks and device-plugin socket, containerd 1.6's shim sockets (removed only when empty)
	rm -f /var/lib/cni/results/parley-e2e-*
	rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null
	find /var/log/containers -maxdepth 1 -type l -lname "$W/*" -delete 2>/dev/null
	rmdir /var/log/containers 2>/dev/null
	rm -f /var/lib/kubelet/device-plugins/kubelet.sock
	[ -d /var/lib/kubelet ] && find /var/lib/kubelet -depth -type d -empty -delete
	[ -d /run/containerd ] && find /run/containerd -depth -type d -empty -delete
	# 6. state (logs stay for the record), unless something is still mounted
	if awk -v w="$W/" 'index($2, w) == 1 {f = 1} END {exit !f}' /proc/self/mounts; then
		log "WARNING: mounts left under $W, state not removed"
	else
		rm -rf "$W/etcd" "$W/kubelet" "$W/pod-logs" "$W/containerd" "$W/cni" "$W/pki" "$W/pv" "$W/redis" "$W/kubecache" "$W/run" "$W/kubelet.yaml" "$KUBECONFIG"
	fi
	log "down"
}

# confinement evidence: the guard's drop counters, ip_forward, the bridge's ports, pod routes
guard() {
	echo "guard drops (packets): $(iptables -t mangle -L PARLEY-E2E-GUARD -v -n -x | awk '$3 == "DROP" {n += $1} END {print n + 0}')"
	echo "net.ipv4.ip_forward=$(cat /proc/sys/net/ipv4/ip_forward) route_localnet=$(cat /proc/sys/net/ipv4/conf/all/route_localnet) $BR.forwarding=$(cat /proc/sys/net/ipv4/conf/$BR/forwarding) eth0.forwarding=$(cat /proc/sys/net/ipv4/conf/eth0/forwarding 2>/dev/null)"
	echo "bridge ports: $(ip -o link show master $BR | awk -F': ' '{print $2}' | cut -d@ -f1 | tr '\n' ' ')"
	local pid n=0 def=0
	for pid in $(pgrep -x pause); do # one per pod sandbox; hostNetwork pods share the host's routes
		[ "$(readlink /proc/$pid/ns/net)" = "$(readlink /proc/1/ns/net)" ] && continue
		n=$((n + 1))
		nsenter -t "$pid" -n ip -4 route | grep -q '^default' && def=$((def + 1))
		echo "  routes in the pod netns of pause $pid: $(nsenter -t "$pid" -n ip -4 route | tr '\n' ';')" >&2
	done
	echo "pod network namespaces: $n, with a default route: $def"
}

case "${1:-}" in
up) up ;;
down) down ;;
guard) guard ;;
kubelet-default-sync) kubelet_default_sync ;;
*)
	echo "usage: $0 up|down|guard|kubelet-default-sync" >&2
	exit 2
	;;
esac
