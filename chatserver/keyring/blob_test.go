package keyring

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob/fsblob"
	"github.com/parley-chat/parley/chatserver/blob/sealed"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// A blob sealed under the keyring stays readable while its data key is held
// (staged, active or retired), is refused once the key is dropped, and cannot
// be opened by another keyring that uses the same key id.
func TestBlobsThroughRotation(t *testing.T) {
	ctx := context.Background()
	store, err := fsblob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := newFile(t)
	k, dir := load(t, f)
	plain := bytes.Repeat([]byte("attachment "), 20_000) // several 64 KiB segments
	res, err := sealed.Put(ctx, store, "a/1", "att-1", k, bytes.NewReader(plain), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	kid := res.KeyID
	if _, active := k.ActiveIDs(); kid != active || kid != k.ActiveDataKeyID() {
		t.Fatalf("sealed under %q, active data key %q", kid, active)
	}
	read := func(k *Keyring) ([]byte, error) {
		o, err := sealed.Open(ctx, store, "a/1", "att-1", k, res.Stored)
		if err != nil {
			return nil, err
		}
		return o.ReadAll(ctx)
	}

	if got, err := read(k); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("before rotation: err=%v, equal=%v", err, bytes.Equal(got, plain))
	}

	// Rotate: a new active key, the old one retired. Old blobs still open.
	nd, _ := keyringfile.NewDataKey(time.Now(), keyringfile.StateActive)
	f.Data[0].State = keyringfile.StateRetired
	f.Data = append(f.Data, nd)
	writeFile(t, dir, f)
	if _, err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if k.ActiveDataKeyID() != nd.ID {
		t.Fatalf("active data key %q after rotation, want %q", k.ActiveDataKeyID(), nd.ID)
	}
	got, err := read(k)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("after rotation: err=%v, equal=%v", err, bytes.Equal(got, plain))
	}

	// Another keyring whose key has the same id but other bytes: refused.
	other := newFile(t)
	other.Data[0].ID = kid
	k2, _ := load(t, other)
	if _, err := read(k2); !errors.Is(err, sealed.ErrTampered) {
		t.Fatalf("a foreign key with the same id: err=%v, want ErrTampered", err)
	}

	// The old key dropped: unknown key.
	f.Data = f.Data[1:]
	writeFile(t, dir, f)
	if _, err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := read(k); !errors.Is(err, sealed.ErrUnknownKey) || !strings.Contains(err.Error(), kid) {
		t.Fatalf("old key dropped: err=%v, want ErrUnknownKey naming %q", err, kid)
	}
	if _, err := k.ObjectCipher(kid, nil, nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("ObjectCipher(dropped key): %v, want keyring.ErrUnknownKey", err)
	}
}
