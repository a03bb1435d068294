//go:build clustere2e

package cluster

// The production-shape scenario (make e2e-cluster, E2E_SCENARIO=prod or all):
// PostgreSQL in the cluster (a StatefulSet of Debian's PostgreSQL, see
// docs/e2e-cluster.md for why not CloudNativePG), a Redis that requires a
// password from a Secret the ChatCluster references, a ChatCluster of 3 chat
// servers on them, and parley-load (-mode soak) driving traffic through the
// Service while, one after the other: a rolling image update, the eviction of
// every chat pod through the Eviction API (the PodDisruptionBudget decides),
// a key rotation at the kubelet's default sync period, and a SIGKILL of a chat
// server process. Then the exactness check against the stored history.
//
// Environment (besides cluster_test.go's):
//
//	PARLEY_E2E_LOAD            the parley-load binary (required)
//	PARLEY_E2E_POSTGRES_IMAGE  the PostgreSQL image (parley/postgres:dev)
//	PARLEY_E2E_REDIS_IMAGE     the Redis image (parley/redis:dev)

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

const (
	pns       = "parley-prod"
	prodName  = "prod"
	prodImage = "parley/chatserver:dev"
	newImage  = "parley/chatserver:dev2" // the same build under another tag
	// The load: 60 accounts, 120 connections (2 per account, spread by the
	// Service over the 3 pods), 40 messages/s, half of them to groups of 6.
	loadUsers, loadConns, loadRate = 60, 120, 40
)

func pkc(t *testing.T, args ...string) string {
	t.Helper()
	return kc(t, append([]string{"-n", pns}, args...)...)
}

func secretHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// podsOf lists the pods matching selector as name=phase;ready;image;restarts[deletion time].
func podsOf(t *testing.T, selector string) []string {
	out, _ := kubectl(t, "", "-n", pns, "get", "pods", "-l", selector, "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.status.phase};{.status.conditions[?(@.type=="Ready")].status};{.spec.containers[0].image};{.status.containerStatuses[0].restartCount}{.metadata.deletionTimestamp}{"\n"}{end}`)
	return strings.Fields(out)
}

const chatSelector = "app.kubernetes.io/instance=" + prodName + ",app.kubernetes.io/component=chatserver"

// waitProdReady waits for the ChatCluster Ready at its generation with 3 ready
// replicas, and exactly 3 chat pods, all Running, ready, on image and not terminating.
func waitProdReady(t *testing.T, d time.Duration, image string) time.Duration {
	t.Helper()
	return eventually(t, d, "ChatCluster "+prodName+" Ready with 3 pods on "+image, func() string {
		get := func(p string) string {
			out, _ := kubectl(t, "", "-n", pns, "get", "chatcluster", prodName, "-o", "jsonpath="+p)
			return out
		}
		gen := get("{.metadata.generation}")
		st := get(`{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].observedGeneration}`)
		pods := podsOf(t, chatSelector)
		ok := 0
		for _, p := range pods {
			_, s, _ := strings.Cut(p, "=")
			f := strings.Split(s, ";")
			if _, err := strconv.Atoi(f[len(f)-1]); err == nil && len(f) == 4 && f[0] == "Running" && f[1] == "True" && f[2] == image { // not terminating
				ok++
			}
		}
		if gen != "" && st == "True/"+gen && get("{.status.readyReplicas}") == "3" && ok == 3 && len(pods) == 3 {
			return ""
		}
		return fmt.Sprintf("generation %s, Ready %s, pods %v", gen, st, pods)
	})
}

// relay listens on 127.0.0.1 and copies each connection to and from target
// (the Service's ClusterIP): parley-load talks to loopback addresses only, and
// every connection still goes through kube-proxy to a pod it picks. A close
// on either side closes both, so a server's close reaches the client.
func relay(t *testing.T, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// recEvent is one line of parley-load's -soak-record.
type recEvent struct {
	Ev       string           `json:"ev"`
	T        int64            `json:"t"`
	Conn     int              `json:"conn"`
	Conv     string           `json:"conv"`
	Seq      int64            `json:"seq"`
	ClientID string           `json:"clientId"`
	Code     int              `json:"code"`
	MS       int64            `json:"ms"`
	User     any              `json:"user"`
	Open     bool             `json:"open"`
	Cursors  map[string]int64 `json:"cursors"`
	Members  []string         `json:"members"`
}

// loadReport is the part of parley-load's -json report the test reads.
type loadReport struct {
	Connect struct {
		Attempted, Established int
	} `json:"connect"`
	StillOpen int `json:"stillOpen"`
	Traffic   struct {
		Sent, Acked int64
		Expected    int64 `json:"expectedDeliveries"`
		Delivered   int64
	} `json:"traffic"`
	Soak struct {
		Lost           int64 `json:"lost"`
		ReconnectFails int64 `json:"reconnectFails"`
		Duplicates     int64 `json:"duplicates"`
		Resyncs        int64 `json:"resyncs"`
	} `json:"soak"`
	Errors map[string]int64 `json:"errors"`
}

// phase is one disruption's window on the host clock.
type phase struct {
	name       string
	start, end time.Time
}

func TestProductionShape(t *testing.T) {
	if os.Getenv("PARLEY_E2E_KUBECONFIG") == "" || os.Getenv("PARLEY_E2E_LOAD") == "" {
		t.Fatal("PARLEY_E2E_KUBECONFIG or PARLEY_E2E_LOAD is unset: run make e2e-cluster (hack/cluster/e2e.sh)")
	}
	pgImage, redisImage := envOr("PARLEY_E2E_POSTGRES_IMAGE", "parley/postgres:dev"), envOr("PARLEY_E2E_REDIS_IMAGE", "parley/redis:dev")
	kc(t, "create", "namespace", pns)
	t.Cleanup(func() {
		if t.Failed() {
			prodDiagnostics(t)
		}
		start := time.Now()
		if _, err := kubectl(t, "", "delete", "namespace", pns, "--timeout=120s"); err != nil {
			t.Errorf("namespace %s: %v", pns, err)
		}
		t.Logf("namespace %s deleted in %.1fs", pns, time.Since(start).Seconds())
	})
	pgPassword, redisPassword := secretHex(16), secretHex(16)

	step(t, "PostgreSQL StatefulSet (Debian's PostgreSQL) Ready", func() string {
		start := time.Now()
		hostPathPV(t, pns, "pg", "data-parley-pg-0", 999) // Debian's postgres uid
		t.Cleanup(func() { _, _ = kubectl(t, "", "delete", "pv", pns+"-pg", "--ignore-not-found", "--wait=false") })
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: parley-pg, namespace: %[1]s}
stringData: {password: %[2]q}
---
apiVersion: v1
kind: Service
metadata: {name: parley-pg, namespace: %[1]s}
spec:
  selector: {app: parley-pg}
  ports: [{name: postgres, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: parley-pg, namespace: %[1]s}
spec:
  serviceName: parley-pg
  replicas: 1
  selector: {matchLabels: {app: parley-pg}}
  template:
    metadata: {labels: {app: parley-pg}}
    spec:
      securityContext: {runAsUser: 999, runAsGroup: 999, fsGroup: 999, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      terminationGracePeriodSeconds: 30
      containers:
      - name: postgres
        image: %[3]s
        imagePullPolicy: Never
        env:
        - {name: PGDATA, value: /var/lib/postgresql/data/pgdata}
        - {name: POSTGRES_USER, value: parley}
        - {name: POSTGRES_DB, value: parley}
        - {name: POSTGRES_PASSWORD_FILE, value: /run/secrets/pg/password}
        ports: [{name: postgres, containerPort: 5432}]
        readinessProbe: {tcpSocket: {port: 5432}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts:
        - {name: data, mountPath: /var/lib/postgresql/data}
        - {name: password, mountPath: /run/secrets/pg, readOnly: true}
      volumes:
      - {name: password, secret: {secretName: parley-pg, defaultMode: 0440}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: %[4]s
      resources: {requests: {storage: 2Gi}}
`, pns, pgPassword, pgImage, storageClass))
		eventually(t, 3*time.Minute, "parley-pg-0 ready", func() string {
			if p := podsOf(t, "app=parley-pg"); len(p) != 1 || !strings.Contains(p[0], "=Running;True;") {
				return fmt.Sprint(p)
			}
			return ""
		})
		logs, _ := kubectl(t, "", "-n", pns, "logs", "parley-pg-0")
		chattest.Must(t, strings.Contains(logs, "database system is ready to accept connections"), "postgres log: %s", logs)
		return fmt.Sprintf("parley-pg-0 ready %.1fs after apply (initdb on the hostPath volume, database parley, scram-sha-256 for TCP clients); %s",
			time.Since(start).Seconds(), firstLine(logs, "starting PostgreSQL"))
	})

	step(t, "Redis with requirepass from a Secret Ready", func() string {
		start := time.Now()
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: parley-redis, namespace: %[1]s, labels: {app.kubernetes.io/part-of: parley}}
stringData: {password: %[2]q}
---
apiVersion: v1
kind: Secret
metadata: {name: parley-redis-conf, namespace: %[1]s}
stringData:
  redis.conf: |
    port 6379
    requirepass %[2]s
    save ""
    appendonly no
---
apiVersion: v1
kind: Service
metadata: {name: parley-redis, namespace: %[1]s}
spec:
  selector: {app: parley-redis}
  ports: [{name: redis, port: 6379}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: parley-redis, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: parley-redis}}
  template:
    metadata: {labels: {app: parley-redis}}
    spec:
      securityContext: {runAsUser: 999, runAsGroup: 999, fsGroup: 999, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: redis
        image: %[3]s
        imagePullPolicy: Never
        args: [redis-server, /etc/redis/redis.conf]
        ports: [{name: redis, containerPort: 6379}]
        readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: conf, mountPath: /etc/redis, readOnly: true}]
      volumes:
      - {name: conf, secret: {secretName: parley-redis-conf, defaultMode: 0440}}
`, pns, redisPassword, redisImage))
		eventually(t, 2*time.Minute, "redis ready", func() string {
			if p := podsOf(t, "app=parley-redis"); len(p) != 1 || !strings.Contains(p[0], "=Running;True;") {
				return fmt.Sprint(p)
			}
			return ""
		})
		ip := pkc(t, "get", "svc", "parley-redis", "-o", "jsonpath={.spec.clusterIP}")
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		anon := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ip, "6379"), MaxRetries: -1})
		defer anon.Close()
		// The pod is ready before kube-proxy routes the Service to it (refused until then).
		var errAnon error
		eventually(t, 30*time.Second, "Redis through its ClusterIP", func() string {
			if errAnon = anon.Publish(ctx, "u:anyone", "forged").Err(); errAnon != nil && strings.Contains(errAnon.Error(), "connection refused") {
				return errAnon.Error()
			}
			return ""
		})
		chattest.Must(t, errAnon != nil && strings.Contains(errAnon.Error(), "NOAUTH"), "PUBLISH without the password: %v, want NOAUTH", errAnon)
		auth := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ip, "6379"), Password: redisPassword, MaxRetries: -1})
		defer auth.Close()
		chattest.Must(t, auth.Ping(ctx).Err() == nil, "PING with the password: %v", auth.Ping(ctx).Err())
		return fmt.Sprintf("ready %.1fs after apply; through %s:6379 without the password: %v; with it: PONG", time.Since(start).Seconds(), ip, errAnon)
	})

	step(t, "ChatCluster (3 replicas, PostgreSQL DSN Secret, Redis password Secret) Ready", func() string {
		dsn := fmt.Sprintf("postgres://parley:%s@parley-pg:5432/parley?sslmode=disable", pgPassword)
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: parley-db, namespace: %[1]s, labels: {app.kubernetes.io/part-of: parley}}
stringData: {dsn: %[2]q}
---
apiVersion: chat.parley.dev/v1alpha1
kind: ChatCluster
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  image: %[4]s
  imagePullPolicy: Never
  replicas: 3
  database:
    postgres:
      dsnSecretRef: {name: parley-db, key: dsn}
  redis:
    external:
      address: parley-redis:6379
      passwordSecretRef: {name: parley-redis, key: password}
  security:
    keyRotation: {propagationWindow: 2m}
  # Every load connection comes from the host's one address (10.88.0.1): the per-IP login
  # limit (default 10/5m) would refuse the 60 registrations, and 60 messages/min per user
  # leaves no headroom for the load's random spread over accounts.
  rateLimits: {login: "1000/1m", messages: "600/1m"}
`, pns, dsn, prodName, prodImage))
		d := waitProdReady(t, 5*time.Minute, prodImage)
		pdb := pkc(t, "get", "pdb", prodName, "-o", "jsonpath={.spec.maxUnavailable}/{.status.currentHealthy}/{.status.disruptionsAllowed}")
		var ups []string
		for _, ip := range podIPs(t) {
			m := fetch(t, "http://"+net.JoinHostPort(ip, "9090")+"/metrics")
			up := regexp.MustCompile(`(?m)^parley_backplane_up(\{[^}]*\})? 1$`).FindString(m)
			chattest.Must(t, up != "", "pod %s: parley_backplane_up is not 1", ip)
			ups = append(ups, ip)
		}
		return fmt.Sprintf("Ready=True with 3 ready pods after %.1fs; PDB maxUnavailable/healthy/allowed %s; parley_backplane_up 1 on %v (Redis with the password)",
			d.Seconds(), pdb, ups)
	})

	// A real Prometheus on the node (PARLEY_E2E_PROMETHEUS), scraping as the ServiceMonitors would.
	prom := ""
	if bin := os.Getenv("PARLEY_E2E_PROMETHEUS"); bin != "" {
		step(t, "Prometheus scrapes the chat servers and the operator, rules loaded", func() string {
			start := time.Now()
			prom = startPrometheus(t, bin, envOr("PARLEY_E2E_ALERTS", "config/monitoring/alerts.yaml"))
			var chat, op, ready []string
			eventually(t, 2*time.Minute, "3 chat server targets and the operator up, the operator's gauge", func() string {
				chat = promQuery(t, prom, `up{job="`+prodName+`-metrics",chatcluster="`+prodName+`"} == 1`)
				op = promQuery(t, prom, `up{job="parley-operator-metrics"} == 1`)
				ready = promQuery(t, prom, `parley_operator_chatcluster_ready{namespace="`+pns+`",chatcluster="`+prodName+`"}`)
				if len(chat) != 3 || len(op) != 1 || len(ready) != 1 {
					return fmt.Sprintf("chat %v operator %v ready %v", chat, op, ready)
				}
				return ""
			})
			res, err := http.Get(prom + "/api/v1/rules")
			chattest.Must(t, err == nil, "rules: %v", err)
			defer res.Body.Close()
			var rules struct {
				Data struct {
					Groups []struct{ Rules []struct{ Name string } }
				}
			}
			chattest.Must(t, json.NewDecoder(res.Body).Decode(&rules) == nil, "rules: decode")
			n := 0
			for _, g := range rules.Data.Groups {
				n += len(g.Rules)
			}
			chattest.Must(t, n > 0, "no rules loaded")
			backplane := promQuery(t, prom, `parley_backplane_up{chatcluster="`+prodName+`"}`)
			return fmt.Sprintf("after %.1fs: 3 chat server targets (job %s-metrics, pod and chatcluster labels) and the operator up; %s; %d alerting rules from config/monitoring/alerts.yaml; parley_backplane_up %v",
				time.Since(start).Seconds(), prodName, ready[0], n, backplane)
		})
	}

	// The load, through the Service.
	svcIP := pkc(t, "get", "svc", prodName, "-o", "jsonpath={.spec.clusterIP}")
	front := relay(t, net.JoinHostPort(svcIP, "80"))
	logDir := filepath.Join(workDir, "logs")
	_ = os.MkdirAll(logDir, 0o755)
	recFile, cacheFile := filepath.Join(logDir, "prod-load-record.jsonl"), filepath.Join(workDir, "prod-load-cache.json")
	_ = os.Remove(cacheFile)
	var stdout bytes.Buffer
	stderrF, err := os.Create(filepath.Join(logDir, "prod-load.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderrF.Close()
	load := exec.Command(os.Getenv("PARLEY_E2E_LOAD"), "-mode", "soak", "-label", "e2e-cluster production shape",
		"-targets", "http://"+front, "-users", strconv.Itoa(loadUsers), "-conns", strconv.Itoa(loadConns),
		"-rate", strconv.Itoa(loadRate), "-group-size", "6", "-group-fraction", "0.5", "-user-prefix", "prod",
		"-register-workers", "4", "-duration", "20m", "-timeout", "25m", "-drain", "20s",
		"-soak-churn", "0", "-soak-sample", "30s", "-soak-reconnect-attempts", "30",
		"-soak-record", recFile, "-cache", cacheFile, "-json")
	load.Stdout, load.Stderr = &stdout, stderrF
	loadDone := make(chan error, 1)
	step(t, "parley-load: connections through the Service", func() string {
		start := time.Now()
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { loadDone <- load.Wait() }()
		t.Cleanup(func() {
			if load.ProcessState == nil {
				_ = load.Process.Kill()
			}
		})
		eventually(t, 4*time.Minute, "parley-load connected", func() string {
			b, _ := os.ReadFile(stderrF.Name())
			if bytes.Contains(b, []byte("connections: ")) {
				return ""
			}
			select {
			case err := <-loadDone:
				t.Fatalf("parley-load ended early: %v: %s", err, b)
			default:
			}
			return "no 'connections:' line yet"
		})
		time.Sleep(15 * time.Second) // steady traffic before the first disruption
		b, _ := os.ReadFile(stderrF.Name())
		return fmt.Sprintf("%s; %d msg/s (half to groups of 6) through 127.0.0.1 → ClusterIP %s:80 after %.1fs",
			lastLine(string(b), "connections: "), loadRate, svcIP, time.Since(start).Seconds())
	})

	var phases []phase
	run := func(name string, fn func() string) {
		p := phase{name: name, start: time.Now()}
		step(t, name, func() string {
			note := fn()
			time.Sleep(10 * time.Second) // the last reconnects catch up inside the phase
			return note
		})
		p.end = time.Now()
		phases = append(phases, p)
	}

	run("rolling image update under load (dev → dev2)", func() string {
		before := podsOf(t, chatSelector)
		pkc(t, "patch", "chatcluster", prodName, "--type=merge", "-p", `{"spec":{"image":"`+newImage+`"}}`)
		d := waitProdReady(t, 5*time.Minute, newImage)
		strategy := pkc(t, "get", "deploy", prodName, "-o", "jsonpath={.spec.strategy.rollingUpdate.maxSurge}/{.spec.strategy.rollingUpdate.maxUnavailable}")
		return fmt.Sprintf("3 new pods Ready on %s after %.1fs (maxSurge/maxUnavailable %s); replaced %d pods", newImage, d.Seconds(), strategy, len(before))
	})

	run("eviction of every chat pod through the Eviction API (PDB)", func() string {
		var refused int
		var names []string
		for _, p := range podsOf(t, chatSelector) {
			names = append(names, strings.SplitN(p, "=", 2)[0])
		}
		start := time.Now()
		for _, name := range names {
			body := fmt.Sprintf(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":%q}}`, name, pns)
			eventually(t, 3*time.Minute, "eviction of "+name, func() string {
				out, err := kubectl(t, body, "create", "--raw", "/api/v1/namespaces/"+pns+"/pods/"+name+"/eviction", "-f", "-")
				if err == nil {
					return ""
				}
				if strings.Contains(out, "disruption budget") || strings.Contains(out, "TooManyRequests") {
					refused++
					return "refused by the PodDisruptionBudget"
				}
				t.Fatalf("eviction of %s: %v", name, err)
				return ""
			})
		}
		waitProdReady(t, 5*time.Minute, newImage)
		for _, p := range podsOf(t, chatSelector) {
			chattest.Must(t, !slices.Contains(names, strings.SplitN(p, "=", 2)[0]), "pod %s was not evicted", p)
		}
		return fmt.Sprintf("evicted %v one at a time, without cordoning the node (%d attempts refused with 429 by the PDB while a replacement was not ready); 3 new pods Ready %.1fs after the first eviction",
			names, refused, time.Since(start).Seconds())
	})

	run("key rotation at the default kubelet sync period", func() string {
		keyring := func() (string, string, []string) {
			raw := pkc(t, "get", "secret", prodName+"-keys", "-o", `jsonpath={.data.keyring\.json}`)
			return keyIDs(decodeKeyring(t, raw))
		}
		jwt0, data0, _ := keyring()
		pods := podsOf(t, chatSelector)
		start := time.Now()
		pkc(t, "annotate", "--overwrite", "chatcluster", prodName, fmt.Sprintf("chat.parley.dev/rotate-keys-now=%d", start.Unix()))
		var staged []string
		eventually(t, 30*time.Second, "staged keys in the Secret", func() string {
			if _, _, staged = keyring(); len(staged) != 2 {
				return fmt.Sprintf("staged %v", staged)
			}
			return ""
		})
		allReloaded := func(ids ...string) string {
			for _, p := range pods {
				name := strings.SplitN(p, "=", 2)[0]
				logs, _ := kubectl(t, "", "-n", pns, "logs", name, "--tail=-1")
				if !reloadedWith(logs, ids...) {
					return name + " has not reloaded " + strings.Join(ids, ",")
				}
			}
			return ""
		}
		eventually(t, 4*time.Minute, "every pod reloading the staged keys", func() string { return allReloaded(staged...) })
		tStaged := time.Since(start)
		var jwt1, data1 string
		eventually(t, 5*time.Minute, "staged keys promoted", func() string {
			if jwt1, data1, _ = keyring(); jwt1 == jwt0 || data1 == data0 {
				return fmt.Sprintf("active jwt %s data %s", jwt1, data1)
			}
			return ""
		})
		tPromoted := time.Since(start)
		eventually(t, 4*time.Minute, "every pod reloading the promoted keys", func() string {
			for _, p := range pods {
				name := strings.SplitN(p, "=", 2)[0]
				logs, _ := kubectl(t, "", "-n", pns, "logs", name, "--tail=-1")
				re := regexp.MustCompile(`jwt_active["=:]+` + regexp.QuoteMeta(jwt1))
				found := false
				for _, line := range strings.Split(logs, "\n") {
					found = found || (strings.Contains(line, "keyring reloaded") && re.MatchString(line))
				}
				if !found {
					return name + " not on jwt " + jwt1
				}
			}
			return ""
		})
		chattest.Must(t, slices.Equal(pods, podsOf(t, chatSelector)), "pods changed during the rotation: %v -> %v", pods, podsOf(t, chatSelector))
		return fmt.Sprintf("kubelet syncFrequency default (1m); every pod reloaded the staged keys %.1fs, promoted %.1fs (window 2m), every pod on jwt %s / data %s %.1fs after the annotation; no pod restarted",
			tStaged.Seconds(), tPromoted.Seconds(), jwt1, data1, time.Since(start).Seconds())
	})

	run("SIGKILL of a chat server process", func() string {
		pids := chatServerPIDs(t)
		chattest.Must(t, len(pids) == 3, "chat server processes on the node: %v, want 3", pids)
		chattest.Must(t, syscall.Kill(pids[0], syscall.SIGKILL) == nil, "kill -9 %d", pids[0])
		start := time.Now()
		eventually(t, 3*time.Minute, "the container restarted and 3 pods ready", func() string {
			restarts := 0
			for _, p := range podsOf(t, chatSelector) {
				f := strings.Split(p, ";")
				n, _ := strconv.Atoi(f[len(f)-1])
				restarts += n
			}
			if restarts < 1 {
				return "no restart yet"
			}
			return ""
		})
		waitProdReady(t, 3*time.Minute, newImage)
		return fmt.Sprintf("kill -9 %d (of %v); the kubelet restarted the container, 3 pods ready %.1fs later", pids[0], pids, time.Since(start).Seconds())
	})

	var rep loadReport
	step(t, "parley-load stopped (SIGINT), report read", func() string {
		_ = load.Process.Signal(os.Interrupt)
		var err error
		select {
		case err = <-loadDone:
		case <-time.After(2 * time.Minute):
			t.Fatal("parley-load did not stop within 2m of SIGINT")
		}
		// SIGINT ends a soak with "soak interrupted" (exit 1) after the report: the report decides.
		chattest.Must(t, json.Unmarshal(stdout.Bytes(), &rep) == nil, "parley-load report (exit %v): %s", err, stdout.String())
		return fmt.Sprintf("%v (interrupted, as intended); sent %d, acked %d, deliveries %d of %d expected, lost connections %d, reconnect failures %d, cursor duplicates dropped %d, errors %v",
			err, rep.Traffic.Sent, rep.Traffic.Acked, rep.Traffic.Delivered, rep.Traffic.Expected, rep.Soak.Lost, rep.Soak.ReconnectFails, rep.Soak.Duplicates, rep.Errors)
	})

	events := readRecord(t, recFile)
	step(t, "exactness: no acked message lost or duplicated, every client reconnected and caught up", func() string {
		return checkExactness(t, "http://"+svcIP, cacheFile, rep, events, phases)
	})

	if prom != "" {
		step(t, "Prometheus: ParleyBackplaneDown fires with Redis at 0 replicas, resolves with Redis back", func() string {
			const alert = "ParleyBackplaneDown"
			state, _ := alertState(t, prom, alert)
			chattest.Must(t, state == "", "%s is %s before Redis was stopped", alert, state)
			pkc(t, "scale", "deploy", "parley-redis", "--replicas=0")
			down := eventually(t, 2*time.Minute, "parley_backplane_up 0 on the 3 pods", func() string {
				if s := promQuery(t, prom, `parley_backplane_up{chatcluster="`+prodName+`"} == 0`); len(s) != 3 {
					return fmt.Sprint(s)
				}
				return ""
			})
			pending := eventually(t, time.Minute, alert+" pending", func() string {
				if s, _ := alertState(t, prom, alert); s != "pending" && s != "firing" {
					return "state " + s
				}
				return ""
			})
			var n int
			firing := eventually(t, 8*time.Minute, alert+" firing (for: 5m)", func() string {
				var s string
				if s, n = alertState(t, prom, alert); s != "firing" {
					return "state " + s
				}
				return ""
			})
			pkc(t, "scale", "deploy", "parley-redis", "--replicas=1")
			resolved := eventually(t, 3*time.Minute, alert+" resolved", func() string {
				if s, _ := alertState(t, prom, alert); s != "" {
					return "state " + s
				}
				return ""
			})
			up := promQuery(t, prom, `parley_backplane_up{chatcluster="`+prodName+`"} == 1`)
			chattest.Must(t, len(up) == 3, "parley_backplane_up after Redis came back: %v", up)
			return fmt.Sprintf("Redis scaled to 0: parley_backplane_up 0 on 3 pods after %.1fs, pending %.1fs, firing (%d alerts, one per pod) %.1fs after the scale-down; Redis scaled to 1: resolved %.1fs later, parley_backplane_up 1 on 3 pods",
				down.Seconds(), down.Seconds()+pending.Seconds(), n, down.Seconds()+pending.Seconds()+firing.Seconds(), resolved.Seconds())
		})
	}
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func lastLine(s, sub string) string {
	out := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = strings.TrimSpace(l)
		}
	}
	return out
}

func podIPs(t *testing.T) []string {
	out := pkc(t, "get", "pods", "-l", chatSelector, "-o", `jsonpath={range .items[*]}{.status.podIP}{" "}{end}`)
	return strings.Fields(out)
}

func fetch(t *testing.T, url string) string {
	res, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// chatServerPIDs are the host PIDs of the chat server processes in this node's pods.
func chatServerPIDs(t *testing.T) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		comm, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(comm)) != "chatserver" {
			continue
		}
		if cg, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cgroup")); err != nil || !strings.Contains(string(cg), "/parley-e2e/") {
			continue
		}
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pids = append(pids, n)
	}
	sort.Ints(pids)
	return pids
}

func readRecord(t *testing.T, path string) []recEvent {
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("parley-load record: %v", err)
	}
	defer f.Close()
	var out []recEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e recEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("record line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedHistory pages through a conversation's stored messages (ascending).
func storedHistory(t *testing.T, api *chattest.API, token, conv string) []protocol.Message {
	var all []protocol.Message
	after := int64(0)
	for {
		r := api.Do("GET", "/api/v1/conversations/"+conv+"/messages?limit=200&after="+strconv.FormatInt(after, 10), token, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("history of %s: %d %s", conv, r.Status, r.Body)
		}
		var page struct {
			Messages []protocol.Message
			HasMore  bool
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Messages...)
		if len(page.Messages) == 0 || !page.HasMore {
			return all
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
}

// checkExactness compares the record with the stored history: every acked
// message stored once at its acked seq, no clientId stored twice, every lost
// connection reopened and caught up (its sync answered), every connection's
// final cursors at each conversation's last stored seq; then the per-phase
// figures.
func checkExactness(t *testing.T, base, cacheFile string, rep loadReport, events []recEvent, phases []phase) string {
	api := &chattest.API{T: t, Base: base}
	var cache struct {
		Users map[string]struct{ AccessToken string }
	}
	b, err := os.ReadFile(cacheFile)
	chattest.Must(t, err == nil && json.Unmarshal(b, &cache) == nil, "parley-load cache %s: %v", cacheFile, err)
	token := func(name string) string {
		r := api.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": name, "password": "load-" + name + "-not-a-real-passphrase", "session": "body"})
		if r.Status == http.StatusOK {
			var s struct{ AccessToken string }
			if json.Unmarshal(r.Body, &s) == nil && s.AccessToken != "" {
				return s.AccessToken
			}
		}
		return cache.Users[name].AccessToken
	}

	acks := map[string]recEvent{} // by clientId
	convs := map[string][]string{}
	var doubleAcks int
	var lost, caught []recEvent
	var cursors []recEvent
	type connConv struct {
		conn int
		conv string
	}
	took := map[connConv][]int64{} // the seqs each connection took, per conversation
	for _, e := range events {
		switch e.Ev {
		case "msg":
			k := connConv{e.Conn, e.Conv}
			took[k] = append(took[k], e.Seq)
		case "ack":
			if _, dup := acks[e.ClientID]; dup {
				doubleAcks++
			}
			acks[e.ClientID] = e
		case "conv":
			convs[e.Conv] = e.Members
		case "lost":
			lost = append(lost, e)
		case "caughtup":
			caught = append(caught, e)
		case "cursors":
			cursors = append(cursors, e)
		}
	}
	chattest.Must(t, len(acks) > 0 && int64(len(acks)) == rep.Traffic.Acked, "record has %d acks, the report %d", len(acks), rep.Traffic.Acked)
	chattest.Must(t, doubleAcks == 0, "%d clientIds acked twice", doubleAcks)
	chattest.Must(t, rep.Connect.Established == loadConns && rep.StillOpen == loadConns, "connections: %d established, %d open at the end, want %d",
		rep.Connect.Established, rep.StillOpen, loadConns)
	chattest.Must(t, rep.Soak.ReconnectFails == 0, "%d reconnects failed", rep.Soak.ReconnectFails)
	chattest.Must(t, int64(len(lost)) == rep.Soak.Lost, "record has %d lost connections, the report %d", len(lost), rep.Soak.Lost)

	// The stored history of every conversation.
	lastSeq := map[string]int64{}
	stored := map[string]int{} // clientId -> times stored
	storedAt := map[string]string{}
	var storedUnacked, lostAcked, wrongSeq int
	for conv, members := range convs {
		h := storedHistory(t, api, token(members[0]), conv)
		prev := int64(0)
		for _, m := range h {
			chattest.Must(t, m.Seq > prev, "conversation %s: seq %d after %d", conv, m.Seq, prev)
			prev = m.Seq
			stored[m.ClientID]++
			storedAt[m.ClientID] = fmt.Sprintf("%s/%d", conv, m.Seq)
		}
		lastSeq[conv] = prev
	}
	var dups []string
	for id, n := range stored {
		if n > 1 {
			dups = append(dups, id)
		}
		if _, ok := acks[id]; !ok {
			storedUnacked++ // sent, stored, its ack lost with its connection (allowed: never acked)
		}
	}
	for id, a := range acks {
		switch {
		case stored[id] == 0:
			lostAcked++
		case storedAt[id] != fmt.Sprintf("%s/%d", a.Conv, a.Seq):
			wrongSeq++
		}
	}
	chattest.Must(t, lostAcked == 0 && wrongSeq == 0 && len(dups) == 0,
		"acked but not stored: %d, stored at another seq than acked: %d, stored twice: %v", lostAcked, wrongSeq, dups)

	// Every lost connection was reopened and synced; every connection ends at the last seq.
	caughtBy := map[int][]recEvent{}
	for _, c := range caught {
		caughtBy[c.Conn] = append(caughtBy[c.Conn], c)
	}
	notCaught := 0
	for _, l := range lost {
		ok := false
		for _, c := range caughtBy[l.Conn] {
			ok = ok || c.T >= l.T
		}
		if !ok {
			notCaught++
		}
	}
	chattest.Must(t, notCaught == 0, "%d lost connections never caught up (no synced after reopening)", notCaught)
	member := map[string][]string{} // user -> conversations
	for conv, ms := range convs {
		for _, m := range ms {
			member[m] = append(member[m], conv)
		}
	}
	behind := 0
	for _, c := range cursors {
		name, _ := c.User.(string)
		chattest.Must(t, c.Open, "connection %d not open at the end", c.Conn)
		for _, conv := range member[name] {
			if c.Cursors[conv] != lastSeq[conv] {
				behind++
				t.Logf("connection %d (%s): conversation %s cursor %d, stored up to %d", c.Conn, name, conv, c.Cursors[conv], lastSeq[conv])
			}
		}
	}
	chattest.Must(t, len(cursors) == loadConns && behind == 0, "%d cursors records, %d cursors behind the stored history", len(cursors), behind)
	// Every connection took every message of its account's conversations exactly once, from
	// seq 1 (it synced from the start), across its reconnections: no hole. (Not always in seq
	// order: after a reconnect, live frames may come before the sync answer fills the hole.)
	holes := 0
	var taken int
	for _, c := range cursors {
		name, _ := c.User.(string)
		for _, conv := range member[name] {
			seqs := slices.Sorted(slices.Values(took[connConv{c.Conn, conv}]))
			taken += len(seqs)
			ok := int64(len(seqs)) == lastSeq[conv]
			for i, q := range seqs {
				ok = ok && q == int64(i+1)
			}
			if !ok {
				holes++
				if holes <= 5 {
					t.Logf("connection %d (%s), conversation %s: took %d messages for %d stored: %v", c.Conn, name, conv, len(seqs), lastSeq[conv], seqs)
				}
			}
		}
	}
	chattest.Must(t, holes == 0, "%d connection×conversation pairs did not take every stored message exactly once", holes)

	// Per phase: duration, acks, reconnects and their close codes, longest catch-up.
	var notes []string
	for _, p := range phases {
		from, to := p.start.UnixMilli(), p.end.UnixMilli()
		var acked, n int
		codes := map[int]int{}
		var maxCatch int64
		for _, a := range acks {
			if a.T >= from && a.T < to {
				acked++
			}
		}
		for _, l := range lost {
			if l.T < from || l.T >= to {
				continue
			}
			n++
			codes[l.Code]++
			for _, c := range caughtBy[l.Conn] {
				if c.T >= l.T {
					maxCatch = max(maxCatch, c.MS)
					break
				}
			}
		}
		chattest.Must(t, acked > 0, "phase %q: no message acked", p.name)
		switch {
		case strings.HasPrefix(p.name, "rolling") || strings.HasPrefix(p.name, "eviction"):
			chattest.Must(t, n > 0 && codes[1001] == n, "phase %q: %d reconnects, close codes %v: want every one 1001", p.name, n, codes)
		case strings.HasPrefix(p.name, "key rotation"):
			chattest.Must(t, n == 0, "phase %q: %d connections lost during a key rotation", p.name, n)
		case strings.HasPrefix(p.name, "SIGKILL"):
			chattest.Must(t, n > 0 && codes[1001] == 0, "phase %q: %d reconnects, close codes %v: want none 1001 (killed, not drained)", p.name, n, codes)
		}
		notes = append(notes, fmt.Sprintf("%s: %.1fs, %d acked, %d reconnects (close codes %v), max catch-up %d ms",
			p.name, p.end.Sub(p.start).Seconds(), acked, n, codes, maxCatch))
	}
	errs := []string{}
	for k, v := range rep.Errors {
		errs = append(errs, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(errs)
	return fmt.Sprintf("%d acked messages all stored once at their acked seq, %d stored but never acked (ack lost with its connection), 0 stored twice; "+
		"%d reconnects, all caught up; %d connections open at the end, each took every message of its conversations exactly once (%d deliveries; %d duplicates from overlapping syncs dropped). Phases: %s. Load errors by kind: %s",
		len(acks), storedUnacked, len(lost), rep.StillOpen, taken, rep.Soak.Duplicates, strings.Join(notes, "; "), strings.Join(errs, " "))
}

func decodeKeyring(t *testing.T, raw string) keyringfile.File {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatal(err)
	}
	var f keyringfile.File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("keyring.json: %v", err)
	}
	return f
}

// prodDiagnostics writes what a failed run needs to tmp/cluster/logs/diagnostics-prod.txt.
func prodDiagnostics(t *testing.T) {
	var b strings.Builder
	for _, args := range [][]string{
		{"-n", pns, "get", "chatcluster", prodName, "-o", "yaml"},
		{"-n", pns, "get", "all,pvc,pdb,secret,configmap,events", "-o", "wide"},
		{"-n", pns, "describe", "pods"},
		{"-n", pns, "logs", "-l", chatSelector, "--tail=100", "--prefix"},
		{"-n", pns, "logs", "parley-pg-0", "--tail=100"},
		{"-n", "parley-system", "logs", "deploy/parley-operator", "--tail=200"},
	} {
		out, err := kubectl(t, "", args...)
		fmt.Fprintf(&b, "### kubectl %s\n%s\n%v\n\n", strings.Join(args, " "), out, err)
	}
	p := filepath.Join(workDir, "logs", "diagnostics-"+prodName+".txt")
	_ = os.WriteFile(p, []byte(b.String()), 0o644)
	t.Logf("diagnostics in %s", p)
}

// startPrometheus runs bin/prometheus on 127.0.0.1 with the scrape configuration
// the operator's ServiceMonitor (controllers/resources.go) and the chart's
// operator ServiceMonitor amount to, as prometheus-operator would render them
// (endpointslice discovery in the namespace, the Service's labels, the port
// named metrics, the namespace/service/pod/endpoint labels, job = the
// Service's name, chatcluster = the ChatCluster's name; honor_labels for the
// operator), and config/monitoring/alerts.yaml as its rules. It returns the
// API's base URL.
func startPrometheus(t *testing.T, bin, alerts string) string {
	dir := filepath.Join(workDir, "prometheus")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubeconfig := os.Getenv("PARLEY_E2E_KUBECONFIG")
	cfg := fmt.Sprintf(`global: {scrape_interval: 10s, evaluation_interval: 10s}
rule_files: [%[1]q]
scrape_configs:
# = the ServiceMonitor the operator keeps for ChatCluster %[3]s/%[4]s (spec.monitoring.serviceMonitor)
- job_name: serviceMonitor/%[3]s/%[4]s/0
  metrics_path: /metrics
  kubernetes_sd_configs: [{role: endpointslice, kubeconfig_file: %[2]q, namespaces: {names: [%[3]s]}}]
  relabel_configs:
  - {action: keep, source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_name, __meta_kubernetes_service_label_app_kubernetes_io_instance, __meta_kubernetes_service_label_app_kubernetes_io_component], regex: parley;%[4]s;metrics}
  - {action: keep, source_labels: [__meta_kubernetes_endpointslice_port_name], regex: metrics}
  - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
  - {source_labels: [__meta_kubernetes_service_name], target_label: service}
  - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
  - {source_labels: [__meta_kubernetes_pod_container_name], target_label: container}
  - {source_labels: [__meta_kubernetes_service_name], target_label: job}
  - {target_label: endpoint, replacement: metrics}
  - {action: replace, target_label: chatcluster, replacement: %[4]s}
# = the chart's ServiceMonitor for the operator (honorLabels: its gauges carry namespace)
- job_name: serviceMonitor/parley-system/parley-operator/0
  honor_labels: true
  metrics_path: /metrics
  kubernetes_sd_configs: [{role: endpointslice, kubeconfig_file: %[2]q, namespaces: {names: [parley-system]}}]
  relabel_configs:
  - {action: keep, source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_name, __meta_kubernetes_service_label_app_kubernetes_io_instance], regex: parley-operator;parley-operator}
  - {action: keep, source_labels: [__meta_kubernetes_endpointslice_port_name], regex: metrics}
  - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
  - {source_labels: [__meta_kubernetes_service_name], target_label: service}
  - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
  - {source_labels: [__meta_kubernetes_service_name], target_label: job}
  - {target_label: endpoint, replacement: metrics}
`, alerts, kubeconfig, pns, prodName)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(workDir, "logs", "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		_ = os.RemoveAll(dir)
	})
	base := "http://" + addr
	eventually(t, time.Minute, "prometheus ready", func() string {
		res, err := http.Get(base + "/-/ready")
		if err != nil {
			return err.Error()
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return res.Status
		}
		return ""
	})
	return base
}

// promQuery runs an instant query and returns "labels=value" per series.
func promQuery(t *testing.T, base, q string) []string {
	res, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("prometheus query %s: %v", q, err)
	}
	defer res.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string
				Value  []any
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatalf("prometheus query %s: %v", q, err)
	}
	var out []string
	for _, s := range r.Data.Result {
		keys := make([]string, 0, len(s.Metric))
		for k := range s.Metric {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+s.Metric[k])
		}
		v := ""
		if len(s.Value) == 2 {
			v = fmt.Sprint(s.Value[1])
		}
		out = append(out, "{"+strings.Join(kv, ",")+"}="+v)
	}
	return out
}

// alertState is the state (pending, firing) of alert name for chatcluster, "" when inactive.
func alertState(t *testing.T, base, name string) (string, int) {
	res, err := http.Get(base + "/api/v1/alerts")
	if err != nil {
		t.Fatalf("prometheus alerts: %v", err)
	}
	defer res.Body.Close()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatalf("prometheus alerts: %v", err)
	}
	state, n := "", 0
	for _, a := range r.Data.Alerts {
		if a.Labels["alertname"] == name && a.Labels["chatcluster"] == prodName {
			n++
			if state != "firing" {
				state = a.State
			}
		}
	}
	return state, n
}
