package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/s3blob"
	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// s3Env is the S3 server of the tests (make s3-up, tmp/s3/env) as the
// chat server's settings. Without it the test fails (it is skipped only in
// -short mode, which starts no services): attachments on a real object store
// are what it is about.
func s3Env(t *testing.T) ([]string, *s3blob.Store) {
	t.Helper()
	cfg := s3blob.ConfigFromEnv("PARLEY_TEST_S3")
	if cfg.Endpoint == "" || cfg.Bucket == "" || cfg.AccessKey == "" {
		if testing.Short() {
			t.Skip("-short: the S3 test needs PARLEY_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY and _SECRET_KEY")
		}
		t.Fatal("PARLEY_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY and _SECRET_KEY are not set: run `make test`, " +
			"or `make s3-up` and `set -a; . tmp/s3/env; set +a`")
	}
	cfg.PathStyle = true
	st, err := s3blob.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(context.Background()); err != nil {
		t.Fatalf("the S3 server of PARLEY_TEST_S3_ENDPOINT does not answer (make s3-up starts it): %v", err)
	}
	return []string{"PARLEY_ATTACHMENTS_STORE=s3", "PARLEY_S3_ENDPOINT=" + cfg.Endpoint, "PARLEY_S3_BUCKET=" + cfg.Bucket,
		"PARLEY_S3_PATH_STYLE=true", "PARLEY_S3_ACCESS_KEY=" + os.Getenv("PARLEY_TEST_S3_ACCESS_KEY"),
		"PARLEY_S3_SECRET_KEY=" + os.Getenv("PARLEY_TEST_S3_SECRET_KEY")}, st
}

// Attachments on two replicas with PostgreSQL, Redis and the real S3
// server: uploaded through one replica, read through the other (whole, by
// range, by a signed URL made on the first), refused to a non-member, sent
// over a WebSocket and caught up by a device that was offline, and deleted
// from the bucket with its message.
func TestAttachmentsAcrossReplicas(t *testing.T) {
	s3env, bucket := s3Env(t)
	dbURL := chattest.PostgresDatabase(t)
	redis := startRedis(t)
	c := newCluster(t, dbURL, redis.url(), s3env...)
	r1, r2 := c.start(), c.start()
	alice := r1.Register("alice")
	bob := r1.Register("bob")
	bobR2 := bob.On(r2.API)
	carolR2 := r1.Register("carol").On(r2.API)
	conv := alice.Direct(bob)

	// Bob's phone is offline; it last saw the conversation empty.
	data := make([]byte, 3*64<<10+999)
	for i := range data {
		data[i] = byte(i*31 + i>>9)
	}
	r := alice.API.Do("POST", "/api/v1/attachments", alice.Token, data, "X-Filename", url.PathEscape("clip été.bin"))
	must(t, r.Status == 201, "upload on r1: %d %s", r.Status, r.Body)
	var att protocol.Attachment
	r.Decode(t, &att)
	must(t, att.Name == "clip été.bin" && att.Size == int64(len(data)), "upload answer %+v", att)

	// Sent over alice's WebSocket on r1, no text.
	ws := alice.Dial()
	ws.Write(map[string]any{"type": "send", "id": "s1", "conversationId": conv.ID, "clientId": "att-1", "attachments": []string{att.ID}})
	ack := ws.WaitFor("ack", 10*time.Second)
	var ackMsg struct {
		Message protocol.Message `json:"message"`
	}
	must(t, json.Unmarshal(ack.Raw, &ackMsg) == nil && len(ackMsg.Message.Attachments) == 1, "ack %s", ack.Raw)
	msgID := ackMsg.Message.ID

	// Downloaded through r2: whole, and a range across a segment boundary.
	path := "/api/v1/attachments/" + att.ID
	r = r2.Do("GET", path, bobR2.Token, nil)
	must(t, r.Status == 200 && bytes.Equal(r.Body, data), "download on r2: %d, %d bytes", r.Status, len(r.Body))
	r = r2.Do("GET", path, bobR2.Token, nil, "Range", "bytes=65530-131080")
	must(t, r.Status == 206 && bytes.Equal(r.Body, data[65530:131081]), "range on r2: %d, %d bytes", r.Status, len(r.Body))
	// A signed URL made by r1 works on r2 (one keyring).
	r = alice.Do("GET", path+"/url", nil)
	must(t, r.Status == 200, "url on r1: %d %s", r.Status, r.Body)
	var su struct{ URL string }
	r.Decode(t, &su)
	res, err := http.Get(r2.Base + su.URL)
	must(t, err == nil && res.StatusCode == 200, "signed URL on r2: %v %v", err, res)
	res.Body.Close()
	// Carol is no member: 404 on either replica.
	must(t, carolR2.Do("GET", path, nil).Status == 404, "non-member download on r2")
	must(t, r1.Do("GET", path, carolR2.Token, nil).Status == 404, "non-member download on r1")

	// Bob's phone comes back on r2 and syncs from where it was.
	phone := bobR2.Dial()
	phone.Sync("sync-1", map[string]int64{conv.ID: 0})
	got := phone.WaitForMessage(msgID, 10*time.Second)
	must(t, len(got.Attachments) == 1 && got.Attachments[0].ID == att.ID && got.Attachments[0].Size == int64(len(data)) &&
		got.Attachments[0].Name == att.Name, "synced message %+v", got)
	phone.WaitFor("synced", 10*time.Second)

	// The bucket holds the sealed file (not the plaintext); deleting the
	// message deletes it.
	db, err := sql.Open("pgx", dbURL)
	must(t, err == nil, "open db: %v", err)
	defer db.Close()
	var key string
	must(t, db.QueryRow("SELECT blob_key FROM attachments WHERE id = $1", att.ID).Scan(&key) == nil, "blob key")
	rc, err := bucket.Get(context.Background(), key, 0, -1)
	must(t, err == nil, "object in the bucket: %v", err)
	var stored bytes.Buffer
	stored.ReadFrom(rc)
	rc.Close()
	must(t, stored.Len() > len(data) && !bytes.Contains(stored.Bytes(), data[1000:1064]), "the bucket holds plaintext")
	r = bob.Do("DELETE", "/api/v1/conversations/"+conv.ID+"/messages/"+msgID, nil)
	must(t, r.Status == 403, "bob deletes alice's message in a direct conversation: %d", r.Status)
	r = r2.Do("DELETE", "/api/v1/conversations/"+conv.ID+"/messages/"+msgID, alice.Token, nil)
	must(t, r.Status == 200, "delete on r2: %d %s", r.Status, r.Body)
	_, err = bucket.Stat(context.Background(), key)
	must(t, errors.Is(err, blob.ErrNotFound), "object after its message was deleted: %v", err)
	must(t, r1.Do("GET", path, bob.Token, nil).Status == 404, "download after deletion")
}
