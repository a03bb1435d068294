package storetest

import (
	"testing"

	"github.com/parley-chat/parley/chatserver/store"
)

var avatarTests = []test{
	{"Avatars", testAvatars},
}

// Profile photos: set, read back with the user wherever users are read,
// replaced (the old one handed back), counted and resealed per key,
// removed; a deleted account gets no new photo but can lose its old one.
func testAvatars(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	wantEq(t, "new user's avatar", a.Avatar, store.Avatar{})
	got, err := s.UserByID(ctx(t), a.ID)
	wantNoErr(t, "UserByID", err)
	wantEq(t, "stored new user's avatar", got.Avatar, store.Avatar{})

	one := store.Avatar{Version: "v1", BlobKey: "u/" + a.ID + "/v1", KeyID: "k1", Stored: 1234}
	prev, err := s.SetAvatar(ctx(t), a.ID, one)
	wantNoErr(t, "SetAvatar", err)
	wantEq(t, "replaced on first set", prev, store.Avatar{})
	got, err = s.UserByID(ctx(t), a.ID)
	wantNoErr(t, "UserByID", err)
	wantEq(t, "UserByID avatar", got.Avatar, one)
	users, err := s.UsersByIDs(ctx(t), []string{a.ID, b.ID})
	wantNoErr(t, "UsersByIDs", err)
	wantEq(t, "UsersByIDs count", len(users), 2)
	for _, u := range users { // ordered by id, which is random
		want := store.Avatar{}
		if u.ID == a.ID {
			want = one
		}
		wantEq(t, "UsersByIDs avatar of "+u.Username, u.Avatar, want)
	}
	found, err := s.SearchUsers(ctx(t), "alice", 5)
	wantNoErr(t, "SearchUsers", err)
	wantEq(t, "SearchUsers finds alice", len(found), 1)
	wantEq(t, "SearchUsers avatar", found[0].Avatar, one)
	byName, err := s.UserByUsername(ctx(t), "alice")
	wantNoErr(t, "UserByUsername", err)
	wantEq(t, "UserByUsername avatar", byName.Avatar, one)

	counts, err := s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)
	wantEq(t, "photos sealed with k1", counts["k1"], int64(1))

	two := store.Avatar{Version: "v2", BlobKey: "u/" + a.ID + "/v2", KeyID: "k1", Stored: 2000}
	prev, err = s.SetAvatar(ctx(t), a.ID, two)
	wantNoErr(t, "SetAvatar again", err)
	wantEq(t, "the photo replaced", prev, one)
	_, err = s.SetAvatar(ctx(t), b.ID, store.Avatar{Version: "w", BlobKey: "u/" + b.ID + "/w", KeyID: "k1", Stored: 10})
	wantNoErr(t, "SetAvatar b", err)

	// Re-encryption: listed by key, swapped compare-and-set.
	sealedWith, err := s.AvatarsSealedWith(ctx(t), "k1", 1)
	wantNoErr(t, "AvatarsSealedWith", err)
	wantEq(t, "AvatarsSealedWith limit", len(sealedWith), 1)
	sealedWith, err = s.AvatarsSealedWith(ctx(t), "k1", 10)
	wantNoErr(t, "AvatarsSealedWith", err)
	wantEq(t, "avatars sealed with k1", len(sealedWith), 2)
	resealed := two
	resealed.BlobKey, resealed.KeyID, resealed.Stored = "u/"+a.ID+"/v2r", "k2", 2001
	ok, err := s.ResealAvatar(ctx(t), a.ID, one.BlobKey, resealed)
	wantNoErr(t, "ResealAvatar stale", err)
	wantEq(t, "stale reseal applied", ok, false)
	ok, err = s.ResealAvatar(ctx(t), a.ID, two.BlobKey, resealed)
	wantNoErr(t, "ResealAvatar", err)
	wantEq(t, "reseal applied", ok, true)
	got, _ = s.UserByID(ctx(t), a.ID)
	wantEq(t, "avatar after reseal", got.Avatar, resealed)
	counts, err = s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)
	wantEq(t, "photos sealed with k1 after reseal", counts["k1"], int64(1))
	wantEq(t, "photos sealed with k2 after reseal", counts["k2"], int64(1))

	// Removal hands back the photo; a removed photo is not resealed.
	prev, err = s.SetAvatar(ctx(t), a.ID, store.Avatar{})
	wantNoErr(t, "remove", err)
	wantEq(t, "removed photo", prev, resealed)
	got, _ = s.UserByID(ctx(t), a.ID)
	wantEq(t, "avatar after removal", got.Avatar, store.Avatar{})
	ok, err = s.ResealAvatar(ctx(t), a.ID, "", resealed)
	wantNoErr(t, "ResealAvatar of none", err)
	wantEq(t, "reseal of a removed photo applied", ok, false)

	// Deleted accounts: no new photo; the old one can still be removed.
	wantNoErr(t, "DeleteUser", s.DeleteUser(ctx(t), b.ID, t0))
	_, err = s.SetAvatar(ctx(t), b.ID, one)
	wantErr(t, "SetAvatar on a deleted account", err, store.ErrNotFound)
	prev, err = s.SetAvatar(ctx(t), b.ID, store.Avatar{})
	wantNoErr(t, "remove a deleted account's photo", err)
	wantEq(t, "deleted account's removed photo", prev.Version, "w")
	_, err = s.SetAvatar(ctx(t), "u_nobody", one)
	wantErr(t, "SetAvatar unknown user", err, store.ErrNotFound)
}
