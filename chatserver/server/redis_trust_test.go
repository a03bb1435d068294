package server_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// Redis is a trust boundary: a party that can write to it (SET, PUBLISH) but
// does not hold the keyring can neither mint a WebSocket session nor inject
// a frame. The servers drop what does not verify and count it.
func TestRedisWritesWithoutTheKeyringAreRefused(t *testing.T) {
	url := chattest.RedisURL(t)
	ts := start(t, withArgs("-redis-url", url))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	defer rc.Close()
	ctx := t.Context()

	// A ticket-shaped key, in the format tickets had before they were
	// tagged and in the current one with a made-up tag.
	secret := "attacker-chosen-secret-" + alice.User.ID
	sum := sha256.Sum256([]byte(secret))
	key := "parley:ticket:" + hex.EncodeToString(sum[:])
	body, _ := json.Marshal(map[string]any{"UserID": alice.User.ID, "SessionID": "f_forged",
		"AccessExpires": time.Now().Add(time.Hour), "Issued": time.Now()})
	for _, v := range []string{string(body), "k1\nAAAA\n" + string(body)} {
		if err := rc.Set(ctx, key, v, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		_, res, err := ts.DialRaw("?ticket="+secret, nil)
		must(t, err != nil && res != nil && res.StatusCode == http.StatusUnauthorized,
			"a ticket written straight into Redis opened a socket (err %v)", err)
	}

	// A well-formed frame published straight to alice's topic, as an
	// envelope of the old unauthenticated format and of the current one
	// with a made-up tag, never reaches her socket.
	w := alice.Dial()
	frame := []byte(`{"type":"message","message":{"id":"m_forged","conversationId":"` + conv.ID +
		`","seq":99,"senderId":"` + bob.User.ID + `","body":"forged"}}`)
	old := append(binary.BigEndian.AppendUint64([]byte{'F'}, uint64(time.Now().UnixNano())), frame...)
	cur := binary.BigEndian.AppendUint64([]byte{'F'}, uint64(time.Now().UnixNano()))
	cur = binary.BigEndian.AppendUint64(cur, 0)
	cur = append(cur, 2, 'k', '1')
	cur = append(cur, make([]byte, 32)...)
	cur = append(cur, frame...)
	for _, p := range [][]byte{old, cur} {
		if err := rc.Publish(ctx, "u:"+alice.User.ID, p).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The same, as a shared envelope naming alice, on every shared topic
	// (which every replica subscribes to).
	shared := binary.BigEndian.AppendUint64([]byte{'f'}, uint64(time.Now().UnixNano()))
	shared = binary.BigEndian.AppendUint64(shared, 0)
	shared = append(shared, 2, 'k', '1')
	shared = append(shared, make([]byte, 32)...)
	shared = binary.BigEndian.AppendUint16(shared, 1)
	shared = append(append(shared, byte(len(alice.User.ID))), alice.User.ID...)
	shared = append(shared, frame...)
	for i := range delivery.SharedShards {
		if err := rc.Publish(ctx, "s:"+strconv.Itoa(i), shared).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A genuine message after them arrives; the forged ones never do.
	bob.Send(conv.ID, "genuine")
	for {
		f := w.Next(5 * time.Second)
		must(t, !strings.Contains(string(f.Raw), "forged"), "a forged frame reached the socket: %s", f.Raw)
		if f.Type == "message" && f.Message.Body == "genuine" {
			break
		}
	}
	res, err := http.Get(ts.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	m, _ := io.ReadAll(res.Body)
	// All 18 envelopes fail the tag check (the old format's bytes are read as
	// a key id and a tag that do not verify).
	for _, want := range []string{`parley_redis_rejected_total{reason="ticket_forged"} 2`,
		`parley_redis_rejected_total{reason="forged"} 18`} {
		must(t, strings.Contains(string(m), want), "metrics lack %s", want)
	}
}
