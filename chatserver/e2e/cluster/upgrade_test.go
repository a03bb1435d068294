//go:build clustere2e

package cluster

// The operator upgrade (make e2e-cluster, E2E_SCENARIO=upgrade or all): three
// ChatClusters, one pinned to an image (spec.image) and two on the operator's
// default image (ghcr.io/parley-chat/chatserver:<operator version>); then
// `helm upgrade` to an operator built as version dev2. The pinned cluster's
// pod must not restart; the two default-image clusters must move to :dev2 one
// at a time, the second no sooner than --upgrade-delay after the first has
// rolled out.
//
// Environment (besides cluster_test.go's): PARLEY_E2E_HELM (the helm binary),
// PARLEY_E2E_CHART (charts/parley-operator).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

const (
	uns          = "parley-upgrade"
	defaultImage = "ghcr.io/parley-chat/chatserver"
	upgradeDelay = 20 * time.Second
)

// sqliteCluster applies a 1-replica SQLite ChatCluster in uns on a fresh
// hostPath volume; image "" follows the operator's default image.
func sqliteCluster(t *testing.T, name, image string) {
	t.Helper()
	hostPathPV(t, uns, name+"-data", name+"-data", 65532)
	imageLine := ""
	if image != "" {
		imageLine = "  image: " + image + "\n"
	}
	apply(t, fmt.Sprintf(`apiVersion: chat.parley.dev/v1alpha1
kind: ChatCluster
metadata: {name: %[2]s, namespace: %[1]s}
spec:
%[4]s  imagePullPolicy: Never
  replicas: 1
  database:
    sqlite: {size: 1Gi, storageClassName: %[3]s}
  server: {shutdownTimeout: 2s}
`, uns, name, storageClass, imageLine))
	t.Cleanup(func() {
		_, _ = kubectl(t, "", "delete", "pv", uns+"-"+name+"-data", "--ignore-not-found", "--wait=false")
	})
}

func ukc(t *testing.T, args ...string) string {
	t.Helper()
	out, _ := kubectl(t, "", append([]string{"-n", uns}, args...)...)
	return out
}

// readyOn reports "" when ChatCluster name is Ready at its generation with one
// ready pod running image (and no other pod).
func readyOn(t *testing.T, name, image string) string {
	st := ukc(t, "get", "chatcluster", name, "-o", `jsonpath={.metadata.generation}/{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].observedGeneration}/{.status.readyReplicas}`)
	pods := ukc(t, "get", "pods", "-l", "app.kubernetes.io/instance="+name+",app.kubernetes.io/component=chatserver", "-o",
		`jsonpath={range .items[*]}{.spec.containers[0].image}={.status.phase};{.status.conditions[?(@.type=="Ready")].status}{.metadata.deletionTimestamp}{" "}{end}`)
	f := strings.Split(st, "/")
	if len(f) == 4 && f[1] == "True" && f[0] == f[2] && f[3] == "1" && strings.TrimSpace(pods) == image+"=Running;True" {
		return ""
	}
	return fmt.Sprintf("%s: %s, pods %s", name, st, pods)
}

func TestOperatorUpgrade(t *testing.T) {
	helm, chart := os.Getenv("PARLEY_E2E_HELM"), os.Getenv("PARLEY_E2E_CHART")
	if os.Getenv("PARLEY_E2E_KUBECONFIG") == "" || helm == "" || chart == "" {
		t.Fatal("PARLEY_E2E_KUBECONFIG, PARLEY_E2E_HELM or PARLEY_E2E_CHART is unset: run make e2e-cluster (hack/cluster/e2e.sh)")
	}
	kc(t, "create", "namespace", uns)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := kubectl(t, "", "-n", uns, "get", "chatcluster,deploy,pods,events", "-o", "wide")
			ops, _ := kubectl(t, "", "-n", "parley-system", "logs", "deploy/parley-operator", "--tail=100")
			_ = os.WriteFile(filepath.Join(workDir, "logs", "diagnostics-upgrade.txt"), []byte(out+"\n\n"+ops), 0o644)
		}
		if _, err := kubectl(t, "", "delete", "namespace", uns, "--timeout=120s"); err != nil {
			t.Errorf("namespace %s: %v", uns, err)
		}
	})
	const pinned = "parley/chatserver:dev"
	names := []string{"follow-a", "follow-b"}
	var pinnedPod string
	step(t, "three ChatClusters: one pinned (spec.image), two on the operator's default image", func() string {
		sqliteCluster(t, "pinned", pinned)
		for _, n := range names {
			sqliteCluster(t, n, "")
		}
		d := eventually(t, 4*time.Minute, "the three Ready", func() string {
			for n, img := range map[string]string{"pinned": pinned, names[0]: defaultImage + ":dev", names[1]: defaultImage + ":dev"} {
				if s := readyOn(t, n, img); s != "" {
					return s
				}
			}
			return ""
		})
		pinnedPod = ukc(t, "get", "pods", "-l", "app.kubernetes.io/instance=pinned", "-o", `jsonpath={.items[0].metadata.uid}/{.items[0].status.containerStatuses[0].restartCount}`)
		return fmt.Sprintf("Ready after %.1fs: pinned on %s, %s on %s:dev (the operator's version dev)", d.Seconds(), pinned, strings.Join(names, " and "), defaultImage)
	})

	step(t, "helm upgrade to operator dev2: pinned untouched, default-image clusters roll one at a time", func() string {
		pinnedGen := ukc(t, "get", "deploy", "pinned", "-o", "jsonpath={.metadata.generation}")
		start := time.Now()
		out, err := runCmd(helm, "upgrade", "parley-operator", chart, "--namespace", "parley-system", "--reuse-values",
			"--set", "image.tag=dev2", "--set", "upgradeDelay="+upgradeDelay.String(), "--wait", "--timeout", "3m")
		chattest.Must(t, err == nil, "helm upgrade: %v: %s", err, out)
		helmDone := time.Since(start)
		// When each default-image Deployment's template moved to :dev2, and when its cluster was Ready on it.
		moved, ready := map[string]time.Duration{}, map[string]time.Duration{}
		eventually(t, 6*time.Minute, "both default-image clusters Ready on :dev2", func() string {
			for _, n := range names {
				if _, ok := moved[n]; !ok && ukc(t, "get", "deploy", n, "-o", "jsonpath={.spec.template.spec.containers[0].image}") == defaultImage+":dev2" {
					moved[n] = time.Since(start)
				}
				if _, ok := ready[n]; !ok && moved[n] > 0 && readyOn(t, n, defaultImage+":dev2") == "" {
					ready[n] = time.Since(start)
				}
			}
			if len(ready) < 2 {
				return fmt.Sprintf("moved %v ready %v", moved, ready)
			}
			return ""
		})
		first, second := names[0], names[1]
		if moved[second] < moved[first] {
			first, second = second, first
		}
		// Polled every 0.5 s: the second may not move before the first was Ready plus the delay
		// (less the poll's resolution).
		gap := moved[second] - ready[first]
		chattest.Must(t, gap >= upgradeDelay-time.Second, "%s moved %.1fs after %s was Ready on dev2, want at least the upgrade delay %v",
			second, gap.Seconds(), first, upgradeDelay)
		pinnedNow := ukc(t, "get", "pods", "-l", "app.kubernetes.io/instance=pinned", "-o", `jsonpath={.items[0].metadata.uid}/{.items[0].status.containerStatuses[0].restartCount}`)
		chattest.Must(t, pinnedNow == pinnedPod, "the pinned cluster's pod changed: %s -> %s", pinnedPod, pinnedNow)
		chattest.Must(t, ukc(t, "get", "deploy", "pinned", "-o", "jsonpath={.metadata.generation}") == pinnedGen, "the pinned Deployment was changed")
		chattest.Must(t, readyOn(t, "pinned", pinned) == "", "pinned: %s", readyOn(t, "pinned", pinned))
		return fmt.Sprintf("helm upgrade --wait %.1fs; %s moved to :dev2 at %.1fs, Ready at %.1fs; %s moved at %.1fs (%.1fs after, delay %v), Ready at %.1fs; the pinned pod (uid/restarts %s) and Deployment untouched",
			helmDone.Seconds(), first, moved[first].Seconds(), ready[first].Seconds(), second, moved[second].Seconds(), gap.Seconds(), upgradeDelay, ready[second].Seconds(), pinnedPod)
	})
}

// runCmd runs a command against the test cluster (KUBECONFIG set).
func runCmd(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("PARLEY_E2E_KUBECONFIG"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}
