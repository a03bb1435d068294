package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var attachmentTests = []test{
	{"AttachmentLifecycle", testAttachmentLifecycle},
	{"AttachOnlyOwnReadyUploads", testAttachOnlyOwnReady},
	{"AttachmentQuota", testAttachmentQuota},
	{"AttachmentsGoWithMessagesAndConversations", testAttachmentsGo},
	{"StaleUploadsAndAccountUploads", testStaleUploads},
	{"ResealAttachment", testResealAttachment},
	{"SealedCountsAttachments", testSealedCountsAttachments},
}

func mustUpload(t *testing.T, s store.Store, owner *store.User, at time.Time, size int64) *store.Attachment {
	t.Helper()
	a := &store.Attachment{ID: newID("a"), OwnerID: owner.ID, Name: "photo.jpg", CreatedAt: at}
	a.BlobKey = "a/" + a.ID + "/1"
	wantNoErr(t, "CreateAttachment", s.CreateAttachment(ctx(t), a))
	a.ContentType, a.Size, a.StoredSize, a.KeyID = "image/jpeg", size, size+100, "k1"
	a.ThumbKey, a.ThumbStored, a.Width, a.Height = "a/"+a.ID+"/t1", 900, 640, 480
	a.Preview = []byte{0x89, 'P', 'N', 'G', 1, 2, 3}
	wantNoErr(t, "MarkAttachmentReady", s.MarkAttachmentReady(ctx(t), a, 1<<40))
	a.State = store.AttachmentReady
	return a
}

func sendWith(t *testing.T, s store.Store, c *store.Conversation, from *store.User, at time.Time, ids ...string) (*store.Message, error) {
	t.Helper()
	id := newID("m")
	m, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: c.ID, ID: id, SenderID: from.ID,
		ClientID: "cl-" + id, BodySealed: "v1.k1.body-" + id, KeyID: "k1", CreatedAt: at, Attachments: ids})
	return m, err
}

func testAttachmentLifecycle(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, alice, bob)

	up := &store.Attachment{ID: newID("a"), OwnerID: alice.ID, Name: "voice.ogg", BlobKey: "a/x/1", CreatedAt: t0}
	wantNoErr(t, "CreateAttachment", s.CreateAttachment(ctx(t), up))
	got, err := s.Attachment(ctx(t), up.ID)
	wantNoErr(t, "Attachment", err)
	wantEq(t, "state after create", got.State, store.AttachmentUploading)
	wantEq(t, "name", got.Name, "voice.ogg")
	wantTime(t, "created", got.CreatedAt, t0)
	// Still uploading: not attachable.
	_, err = sendWith(t, s, c, alice, t0.Add(time.Second), up.ID)
	wantErr(t, "attach an upload in progress", err, store.ErrAttachment)

	up.ContentType, up.Size, up.StoredSize, up.KeyID, up.Duration = "audio/ogg", 5000, 5123, "k1", 2500*time.Millisecond
	wantNoErr(t, "MarkAttachmentReady", s.MarkAttachmentReady(ctx(t), up, 1<<30))
	wantErr(t, "ready twice", s.MarkAttachmentReady(ctx(t), up, 1<<30), store.ErrNotFound)
	img := mustUpload(t, s, alice, t0, 1000)

	got, err = s.Attachment(ctx(t), img.ID)
	wantNoErr(t, "Attachment ready", err)
	wantEq(t, "state", got.State, store.AttachmentReady)
	wantEq(t, "content type", got.ContentType, "image/jpeg")
	wantEq(t, "size", got.Size, int64(1000))
	wantEq(t, "stored size", got.StoredSize, int64(1100))
	wantEq(t, "key", got.KeyID, "k1")
	wantEq(t, "thumb", got.ThumbKey, "a/"+img.ID+"/t1")
	wantEq(t, "thumb stored", got.ThumbStored, int64(900))
	wantEq(t, "width", got.Width, 640)
	wantEq(t, "height", got.Height, 480)
	if !bytes.Equal(got.Preview, img.Preview) {
		t.Errorf("preview = %x, want %x", got.Preview, img.Preview)
	}
	if got.ConversationID != "" || got.MessageID != "" || got.AttachedAt != nil {
		t.Errorf("a ready upload belongs to no message: %+v", got)
	}

	// A message carries both, in the order given.
	m, err := sendWith(t, s, c, alice, t0.Add(2*time.Second), img.ID, up.ID)
	wantNoErr(t, "send with attachments", err)
	as, err := s.AttachmentsOfMessages(ctx(t), []string{m.ID, "m_unknown"})
	wantNoErr(t, "AttachmentsOfMessages", err)
	if len(as) != 2 || as[0].ID != img.ID || as[1].ID != up.ID {
		t.Fatalf("attachments of the message = %+v", as)
	}
	for _, a := range as {
		wantEq(t, "state attached", a.State, store.AttachmentAttached)
		wantEq(t, "conversation", a.ConversationID, c.ID)
		wantEq(t, "message", a.MessageID, m.ID)
		if a.AttachedAt == nil || !a.AttachedAt.Equal(t0.Add(2*time.Second)) {
			t.Errorf("attached at %v", a.AttachedAt)
		}
	}
	wantEq(t, "duration", as[1].Duration, 2500*time.Millisecond)
	// Attached once: not again.
	_, err = sendWith(t, s, c, alice, t0.Add(3*time.Second), img.ID)
	wantErr(t, "attach twice", err, store.ErrAttachment)
	// A retried send (same client id) returns the message, attaching nothing new.
	again, created, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: c.ID, ID: newID("m"), SenderID: alice.ID,
		ClientID: m.ClientID, BodySealed: "x", KeyID: "k1", CreatedAt: t0.Add(4 * time.Second), Attachments: []string{img.ID}})
	wantNoErr(t, "retried send", err)
	if created || again.ID != m.ID {
		t.Fatalf("retried send created=%v id=%s, want the first message %s", created, again.ID, m.ID)
	}
	used, err := s.AttachmentUsage(ctx(t), alice.ID)
	wantNoErr(t, "AttachmentUsage", err)
	wantEq(t, "usage", used, int64(6000))
	list, err := s.UserAttachments(ctx(t), alice.ID, "", 10)
	wantNoErr(t, "UserAttachments", err)
	wantEq(t, "user attachments", len(list), 2)
	page, err := s.UserAttachments(ctx(t), alice.ID, list[0].ID, 10)
	wantNoErr(t, "UserAttachments page", err)
	if len(page) != 1 || page[0].ID != list[1].ID {
		t.Errorf("second page %+v", page)
	}
	none, err := s.UserAttachments(ctx(t), bob.ID, "", 10)
	wantNoErr(t, "UserAttachments bob", err)
	wantEq(t, "bob's attachments", len(none), 0)
	_, err = s.Attachment(ctx(t), "a_missing")
	wantErr(t, "unknown attachment", err, store.ErrNotFound)
}

func testAttachOnlyOwnReady(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, alice, bob)
	mine := mustUpload(t, s, alice, t0, 10)
	theirs := mustUpload(t, s, bob, t0, 10)
	before, err := s.Conversation(ctx(t), c.ID)
	wantNoErr(t, "Conversation", err)
	// One bad id refuses the whole message: nothing stored, nothing attached.
	_, err = sendWith(t, s, c, alice, t0.Add(time.Second), mine.ID, theirs.ID)
	wantErr(t, "attach someone else's upload", err, store.ErrAttachment)
	_, err = sendWith(t, s, c, alice, t0.Add(time.Second), "a_unknown")
	wantErr(t, "attach an unknown id", err, store.ErrAttachment)
	after, err := s.Conversation(ctx(t), c.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "no seq taken by refused sends", after.LastSeq, before.LastSeq)
	got, err := s.Attachment(ctx(t), mine.ID)
	wantNoErr(t, "Attachment", err)
	wantEq(t, "own upload still ready", got.State, store.AttachmentReady)
	ms, err := s.MessagesAfter(ctx(t), c.ID, 0, 10)
	wantNoErr(t, "MessagesAfter", err)
	wantEq(t, "messages stored", len(ms), 0)
	// Two sends racing for one upload: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			if m, err := sendWith(t, s, c, alice, t0.Add(2*time.Second), mine.ID); err == nil {
				wins <- m.ID
			}
		})
	}
	wg.Wait()
	close(wins)
	wantEq(t, "sends that attached the upload", len(wins), 1)
}

func testAttachmentQuota(t *testing.T, s store.Store) {
	alice := mustUser(t, s, "alice")
	mustUpload(t, s, alice, t0, 600)
	a := &store.Attachment{ID: newID("a"), OwnerID: alice.ID, Name: "big.bin", BlobKey: "a/big/1", CreatedAt: t0}
	wantNoErr(t, "CreateAttachment", s.CreateAttachment(ctx(t), a))
	a.ContentType, a.Size, a.StoredSize, a.KeyID = "application/octet-stream", 500, 600, "k1"
	wantErr(t, "over quota", s.MarkAttachmentReady(ctx(t), a, 1000), store.ErrLimit)
	got, err := s.Attachment(ctx(t), a.ID)
	wantNoErr(t, "Attachment", err)
	wantEq(t, "refused upload still uploading", got.State, store.AttachmentUploading)
	a.Size = 400
	wantNoErr(t, "exactly at the quota", s.MarkAttachmentReady(ctx(t), a, 1000))
	// Concurrent uploads finishing together cannot pass the quota together.
	var ups []*store.Attachment
	for range 5 {
		u := &store.Attachment{ID: newID("a"), OwnerID: alice.ID, Name: "c", BlobKey: "a/c/1", CreatedAt: t0,
			ContentType: "text/plain", Size: 100, StoredSize: 200, KeyID: "k1"}
		wantNoErr(t, "CreateAttachment", s.CreateAttachment(ctx(t), u))
		ups = append(ups, u)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, u := range ups {
		wg.Go(func() {
			if err := s.MarkAttachmentReady(ctx(t), u, 1300); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wantEq(t, "uploads within 300 bytes of quota left", ok, 3)
	used, err := s.AttachmentUsage(ctx(t), alice.ID)
	wantNoErr(t, "usage", err)
	// The two refused ones are still "uploading" and count until collected:
	// an upload in flight holds its share.
	if used < 1300 {
		t.Errorf("usage %d after filling the quota", used)
	}
}

func testAttachmentsGo(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, alice, bob)
	a1, a2 := mustUpload(t, s, alice, t0, 10), mustUpload(t, s, alice, t0, 20)
	m, err := sendWith(t, s, c, alice, t0.Add(time.Second), a1.ID)
	wantNoErr(t, "send", err)
	_, _, err = s.DeleteMessage(ctx(t), c.ID, m.ID, alice.ID, store.EventDeleted, t0.Add(2*time.Second))
	wantNoErr(t, "DeleteMessage", err)
	got, err := s.Attachment(ctx(t), a1.ID)
	wantNoErr(t, "Attachment", err)
	wantEq(t, "attachment of a deleted message", got.State, store.AttachmentDeleted)
	as, err := s.AttachmentsOfMessages(ctx(t), []string{m.ID})
	wantNoErr(t, "AttachmentsOfMessages", err)
	wantEq(t, "attachments shown on a tombstone", len(as), 0)
	used, err := s.AttachmentUsage(ctx(t), alice.ID)
	wantNoErr(t, "usage", err)
	wantEq(t, "usage without the deleted one", used, int64(20))

	// A deleted conversation takes its attachments with it; an upload not
	// attached there is untouched.
	c2 := mustGroup(t, s, t0, alice)
	_, err = sendWith(t, s, c2, alice, t0.Add(time.Second), a2.ID)
	wantNoErr(t, "send in c2", err)
	a3 := mustUpload(t, s, alice, t0, 30)
	wantNoErr(t, "DeleteConversation", s.DeleteConversation(ctx(t), c2.ID))
	got, err = s.Attachment(ctx(t), a2.ID)
	wantNoErr(t, "Attachment a2", err)
	wantEq(t, "attachment of a deleted conversation", got.State, store.AttachmentDeleted)
	got, err = s.Attachment(ctx(t), a3.ID)
	wantNoErr(t, "Attachment a3", err)
	wantEq(t, "unrelated upload", got.State, store.AttachmentReady)

	doomed, err := s.DoomedAttachments(ctx(t), 10)
	wantNoErr(t, "DoomedAttachments", err)
	if len(doomed) != 2 {
		t.Fatalf("doomed = %+v, want a1 and a2", doomed)
	}
	for _, d := range doomed {
		if d.BlobKey == "" || d.ThumbKey == "" {
			t.Errorf("doomed attachment without its blob keys: %+v", d)
		}
		wantNoErr(t, "DeleteAttachment", s.DeleteAttachment(ctx(t), d.ID))
	}
	wantErr(t, "DeleteAttachment of a live one", s.DeleteAttachment(ctx(t), a3.ID), store.ErrNotFound)
	// DiscardUpload: only an upload no message carries.
	wantErr(t, "DiscardUpload of a doomed one", s.DiscardUpload(ctx(t), a1.ID), store.ErrNotFound)
	a4 := mustUpload(t, s, alice, t0, 1)
	m4, err := sendWith(t, s, c, alice, t0.Add(3*time.Second), a4.ID)
	wantNoErr(t, "send a4", err)
	wantErr(t, "DiscardUpload of an attached one", s.DiscardUpload(ctx(t), a4.ID), store.ErrNotFound)
	wantNoErr(t, "DiscardUpload", s.DiscardUpload(ctx(t), a3.ID))
	_, err = s.Attachment(ctx(t), a3.ID)
	wantErr(t, "discarded upload", err, store.ErrNotFound)
	_ = m4
	_, err = s.Attachment(ctx(t), a1.ID)
	wantErr(t, "deleted row", err, store.ErrNotFound)
	doomed, err = s.DoomedAttachments(ctx(t), 10)
	wantNoErr(t, "DoomedAttachments", err)
	wantEq(t, "doomed after deletion", len(doomed), 0)
}

func testStaleUploads(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, alice, bob)
	old := mustUpload(t, s, alice, t0, 10)
	oldUploading := &store.Attachment{ID: newID("a"), OwnerID: alice.ID, Name: "x", BlobKey: "a/y/1", CreatedAt: t0}
	wantNoErr(t, "CreateAttachment", s.CreateAttachment(ctx(t), oldUploading))
	oldAttached := mustUpload(t, s, alice, t0, 10)
	_, err := sendWith(t, s, c, alice, t0.Add(time.Minute), oldAttached.ID)
	wantNoErr(t, "send", err)
	fresh := mustUpload(t, s, alice, t0.Add(2*time.Hour), 10)
	bobs := mustUpload(t, s, bob, t0.Add(2*time.Hour), 10)

	n, err := s.DoomStaleAttachments(ctx(t), t0.Add(time.Hour))
	wantNoErr(t, "DoomStaleAttachments", err)
	wantEq(t, "stale uploads", n, int64(2))
	for id, want := range map[string]string{old.ID: store.AttachmentDeleted, oldUploading.ID: store.AttachmentDeleted,
		oldAttached.ID: store.AttachmentAttached, fresh.ID: store.AttachmentReady} {
		got, err := s.Attachment(ctx(t), id)
		wantNoErr(t, "Attachment", err)
		wantEq(t, "state of "+id, got.State, want)
	}
	// A collected upload can no longer be attached nor finished.
	_, err = sendWith(t, s, c, alice, t0.Add(2*time.Hour), old.ID)
	wantErr(t, "attach a collected upload", err, store.ErrAttachment)
	oldUploading.Size, oldUploading.KeyID = 1, "k1"
	wantErr(t, "finish a collected upload", s.MarkAttachmentReady(ctx(t), oldUploading, 1<<30), store.ErrNotFound)

	n, err = s.DoomUserUploads(ctx(t), alice.ID)
	wantNoErr(t, "DoomUserUploads", err)
	wantEq(t, "alice's unattached uploads", n, int64(1))
	got, err := s.Attachment(ctx(t), oldAttached.ID)
	wantNoErr(t, "Attachment", err)
	wantEq(t, "attached one stays with its message", got.State, store.AttachmentAttached)
	got, err = s.Attachment(ctx(t), bobs.ID)
	wantNoErr(t, "Attachment", err)
	wantEq(t, "bob's upload", got.State, store.AttachmentReady)

	// DoomUpload: only the owner's, only before it is sent; then it cannot be sent.
	mine := mustUpload(t, s, bob, t0.Add(2*time.Hour), 10)
	wantErr(t, "DoomUpload of someone else's", s.DoomUpload(ctx(t), alice.ID, mine.ID), store.ErrNotFound)
	wantErr(t, "DoomUpload of an attached one", s.DoomUpload(ctx(t), alice.ID, oldAttached.ID), store.ErrNotFound)
	wantErr(t, "DoomUpload of a missing one", s.DoomUpload(ctx(t), bob.ID, "a_missing"), store.ErrNotFound)
	wantNoErr(t, "DoomUpload", s.DoomUpload(ctx(t), bob.ID, mine.ID))
	got, err = s.Attachment(ctx(t), mine.ID)
	wantNoErr(t, "Attachment", err)
	wantEq(t, "removed upload", got.State, store.AttachmentDeleted)
	wantErr(t, "DoomUpload twice", s.DoomUpload(ctx(t), bob.ID, mine.ID), store.ErrNotFound)
	_, err = sendWith(t, s, c, bob, t0.Add(3*time.Hour), mine.ID)
	wantErr(t, "send a removed upload", err, store.ErrAttachment)
}

func testResealAttachment(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, alice, bob)
	a := mustUpload(t, s, alice, t0, 10)
	b := mustUpload(t, s, alice, t0, 10)
	_, err := sendWith(t, s, c, alice, t0, b.ID)
	wantNoErr(t, "send", err)
	gone := mustUpload(t, s, alice, t0, 10)
	_, err = s.DoomUserUploads(ctx(t), bob.ID) // nothing of bob's
	wantNoErr(t, "DoomUserUploads", err)
	list, err := s.AttachmentsSealedWith(ctx(t), "k1", 10)
	wantNoErr(t, "AttachmentsSealedWith", err)
	wantEq(t, "sealed with k1", len(list), 3)
	_, err = s.DoomStaleAttachments(ctx(t), t0.Add(time.Second)) // a and gone; b is attached
	wantNoErr(t, "DoomStaleAttachments", err)
	list, err = s.AttachmentsSealedWith(ctx(t), "k1", 10)
	wantNoErr(t, "AttachmentsSealedWith", err)
	if len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("live attachments sealed with k1 = %+v, want only %s", list, b.ID)
	}
	next := &store.Attachment{BlobKey: "a/" + b.ID + "/2", StoredSize: 111, KeyID: "k2", ThumbKey: "a/" + b.ID + "/t2", ThumbStored: 99}
	ok, err := s.ResealAttachment(ctx(t), b.ID, "a/stale", next)
	wantNoErr(t, "ResealAttachment with a stale key", err)
	wantEq(t, "swapped on a stale blob key", ok, false)
	ok, err = s.ResealAttachment(ctx(t), b.ID, b.BlobKey, next)
	wantNoErr(t, "ResealAttachment", err)
	wantEq(t, "swapped", ok, true)
	got, err := s.Attachment(ctx(t), b.ID)
	wantNoErr(t, "Attachment", err)
	if got.BlobKey != next.BlobKey || got.KeyID != "k2" || got.StoredSize != 111 || got.ThumbKey != next.ThumbKey ||
		got.ThumbStored != 99 || got.State != store.AttachmentAttached || got.Size != 10 {
		t.Errorf("after reseal: %+v", got)
	}
	ok, err = s.ResealAttachment(ctx(t), a.ID, a.BlobKey, next)
	wantNoErr(t, "ResealAttachment of a deleted one", err)
	wantEq(t, "a deleted attachment is not resealed", ok, false)
	_ = gone
}

// Live attachments count as ciphertexts of their key: a key is needed
// until they are resealed.
func testSealedCountsAttachments(t *testing.T, s store.Store) {
	alice := mustUser(t, s, "alice")
	a := mustUpload(t, s, alice, t0, 10)
	mustUpload(t, s, alice, t0, 10)
	counts, err := s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)
	wantEq(t, "k1 with two attachments", counts["k1"], int64(2))
	wantNoErr(t, "ResealAttachment", func() error {
		_, err := s.ResealAttachment(ctx(t), a.ID, a.BlobKey, &store.Attachment{BlobKey: "a/n/1", StoredSize: 1, KeyID: "k2"})
		return err
	}())
	_, err = s.DoomStaleAttachments(ctx(t), t0.Add(time.Hour))
	wantNoErr(t, "DoomStaleAttachments", err)
	counts, err = s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)
	wantEq(t, "k1 once its attachment is deleted", counts["k1"], int64(0))
}
