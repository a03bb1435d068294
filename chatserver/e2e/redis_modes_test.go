package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// redisServer starts one redis-server with extra arguments and stops it
// after the test.
func redisServer(t *testing.T, dir string, port int, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if testing.Short() {
			t.Skip("-short: Redis Cluster and Sentinel tests need redis-server")
		}
		t.Fatal("redis-server not found: run `make test` (hack/install-deps.sh installs it)")
	}
	all := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no"}, args...)
	cmd := exec.Command("redis-server", all...)
	log, _ := os.Create(filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitTCP(t, port)
}

func waitTCP(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %d", port)
}

func redisCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// deliveryAcrossReplicas: two replicas on one Redis deployment deliver a
// message from one to the other, and share the message rate limit. It returns
// the id of the receiving user, whose socket stays open until the test ends.
func deliveryAcrossReplicas(t *testing.T, env ...string) (string, func()) {
	t.Helper()
	c := newCluster(t, chattest.PostgresDatabase(t), "", append(env, "PARLEY_RATE_MESSAGES=3/1m")...)
	r1, r2 := c.start(), c.start()
	alice, bob := r1.Register("alice"), r2.Register("bob")
	conv := alice.Direct(bob)
	w := bob.On(r2.API).Dial()
	m := alice.On(r1.API).Send(conv.ID, "through "+strings.Join(env, " "))
	w.WaitForMessage(m.ID, wait)
	alice.On(r2.API).Send(conv.ID, "2")
	alice.On(r1.API).Send(conv.ID, "3")
	r := alice.On(r2.API).Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", map[string]string{"body": "4"})
	must(t, r.Status == 429, "the 4th message passed the shared limit: %d", r.Status)
	code, body := r1.ready()
	must(t, code == 200 && strings.Contains(body, `"backplane":"ok"`), "readyz %d %s", code, body)
	// recheck delivers to Bob again, for a test that changed the Redis side
	// (from a new sender: Alice has used her allowance).
	recheck := func() {
		carol := r1.Register("carol")
		m := carol.Send(carol.Direct(bob).ID, "after the change")
		w.WaitForMessage(m.ID, wait)
	}
	return bob.User.ID, recheck
}

// Redis Cluster (3 masters): the backplane (sharded pub/sub), presence and
// limits work through the cluster client.
func TestRedisCluster(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	for i := 0; i < 3; i++ {
		port := freePort(t)
		redisServer(t, dir, port, "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port))
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	redisCLI(t, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(redisCLI(t, "-p", strings.Split(addrs[0], ":")[1], "cluster", "info"), "cluster_state:ok") {
		must(t, time.Now().Before(deadline), "cluster did not become ok")
		time.Sleep(100 * time.Millisecond)
	}
	bob, recheck := deliveryAcrossReplicas(t, "PARLEY_REDIS_ADDRS="+strings.Join(addrs, ","))

	// Sharded pub/sub: Bob's topic is a shard channel on exactly one master
	// (the owner of its slot), and no node carries classic channels.
	owners := 0
	for _, a := range addrs {
		port := strings.Split(a, ":")[1]
		if strings.Contains(redisCLI(t, "-p", port, "pubsub", "shardchannels"), "u:"+bob) {
			owners++
		}
		must(t, strings.TrimSpace(redisCLI(t, "-p", port, "pubsub", "channels")) == "", "classic channels on %s", a)
	}
	must(t, owners == 1, "bob's topic is a shard channel on %d masters, want 1", owners)
	// The shared topics (events for many recipients) are shard channels too,
	// each on one master, spread over the masters.
	shared, holders := map[string]int{}, 0
	for _, a := range addrs {
		n := 0
		for _, ch := range strings.Fields(redisCLI(t, "-p", strings.Split(a, ":")[1], "pubsub", "shardchannels", "s:*")) {
			shared[ch]++
			n++
		}
		if n > 0 {
			holders++
		}
	}
	for _, topic := range delivery.SharedTopics() {
		must(t, shared[topic] == 1, "shared topic %s is a shard channel on %d masters, want 1", topic, shared[topic])
	}
	must(t, holders >= 2, "the %d shared topics are all on one master", len(shared))

	// Resharding: move the slot of Bob's topic to another master. Redis drops
	// the shard subscription; the replica subscribes again on the new owner.
	portOf := func(a string) string { return strings.Split(a, ":")[1] }
	slot := strings.TrimSpace(redisCLI(t, "-p", portOf(addrs[0]), "cluster", "keyslot", "u:"+bob))
	var from, to string
	ids := map[string]string{}
	for _, a := range addrs {
		ids[a] = strings.TrimSpace(redisCLI(t, "-p", portOf(a), "cluster", "myid"))
		if strings.Contains(redisCLI(t, "-p", portOf(a), "pubsub", "shardchannels"), "u:"+bob) {
			from = a
		}
	}
	for _, a := range addrs {
		if a != from {
			to = a
			break
		}
	}
	redisCLI(t, "-p", portOf(to), "cluster", "setslot", slot, "importing", ids[from])
	redisCLI(t, "-p", portOf(from), "cluster", "setslot", slot, "migrating", ids[to])
	for _, a := range addrs {
		redisCLI(t, "-p", portOf(a), "cluster", "setslot", slot, "node", ids[to])
	}
	deadline = time.Now().Add(15 * time.Second)
	for !strings.Contains(redisCLI(t, "-p", portOf(to), "pubsub", "shardchannels"), "u:"+bob) {
		must(t, time.Now().Before(deadline), "bob's topic was not subscribed again on the new owner %s", to)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("slot %s moved %s -> %s; subscription followed", slot, from, to)
	recheck()
}

// Redis Sentinel: the replicas find the master through Sentinel.
func TestRedisSentinel(t *testing.T) {
	dir := t.TempDir()
	master, sentinel := freePort(t), freePort(t)
	redisServer(t, dir, master)
	conf := filepath.Join(dir, "sentinel.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor parley 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds parley 30000\n", sentinel, master)), 0o600)
	cmd := exec.Command("redis-server", conf, "--sentinel")
	log, _ := os.Create(filepath.Join(dir, "sentinel.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitTCP(t, sentinel)
	_, _ = deliveryAcrossReplicas(t, fmt.Sprintf("PARLEY_REDIS_ADDRS=127.0.0.1:%d", sentinel), "PARLEY_REDIS_MASTER=parley")
}
