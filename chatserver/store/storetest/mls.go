package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// The MLS Delivery Service (issue 17).
var mlsTests = []test{
	{"Devices", testDevices},
	{"KeyPackagesHandedOutOnce", testKeyPackagesHandedOutOnce},
	{"KeyPackagesConcurrentClaims", testKeyPackagesConcurrentClaims},
	{"KeyPackageLimitsAndLastResort", testKeyPackageLimitsAndLastResort},
	{"CommitEpochCompareAndBump", testCommitEpoch},
	{"CommitConcurrentOneWins", testCommitConcurrent},
	{"CommitMembershipAndWelcomes", testCommitWelcomes},
	{"MLSMessagesCheckEpoch", testMLSMessages},
	{"MLSReseal", testMLSReseal},
}

func mustE2EEGroup(t *testing.T, s store.Store, users ...*store.User) *store.Conversation {
	t.Helper()
	c, ms := newGroup(t0, users...)
	c.E2EE = true
	wantNoErr(t, "CreateConversation(e2ee)", s.CreateConversation(ctx(t), c, ms))
	return c
}

func mustDevice(t *testing.T, s store.Store, u *store.User) *store.Device {
	t.Helper()
	d := &store.Device{ID: newID("d"), UserID: u.ID, Name: "laptop", SignatureKey: newID("sig"), CreatedAt: t0}
	wantNoErr(t, "CreateDevice", s.CreateDevice(ctx(t), d, 10))
	return d
}

func kp(d *store.Device, n int) store.KeyPackage {
	return store.KeyPackage{Ref: fmt.Sprintf("%s-ref-%03d", d.ID, n), DeviceID: d.ID, Sealed: fmt.Sprintf("v1.k1.kp-%s-%d", d.ID, n),
		KeyID: "k1", NotAfter: t0.Add(24 * time.Hour), CreatedAt: t0.Add(time.Duration(n) * time.Microsecond)}
}

func mustKeyPackages(t *testing.T, s store.Store, d *store.Device, from, to int) {
	t.Helper()
	var kps []store.KeyPackage
	for i := from; i < to; i++ {
		kps = append(kps, kp(d, i))
	}
	if _, err := s.AddKeyPackages(ctx(t), d.ID, kps, nil, 100); err != nil {
		t.Fatalf("AddKeyPackages: %v", err)
	}
}

func testDevices(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	d1 := mustDevice(t, s, alice)
	d2 := &store.Device{ID: newID("d"), UserID: alice.ID, Name: "phone", SignatureKey: newID("sig"), CreatedAt: t0}
	wantNoErr(t, "CreateDevice(second)", s.CreateDevice(ctx(t), d2, 2))
	d3 := &store.Device{ID: newID("d"), UserID: alice.ID, Name: "third", SignatureKey: newID("sig"), CreatedAt: t0}
	wantErr(t, "CreateDevice past the cap", s.CreateDevice(ctx(t), d3, 2), store.ErrLimit)
	taken := &store.Device{ID: newID("d"), UserID: bob.ID, Name: "x", SignatureKey: d1.SignatureKey, CreatedAt: t0}
	wantErr(t, "CreateDevice with a taken signature key", s.CreateDevice(ctx(t), taken, 10), store.ErrConflict)
	ghost := &store.Device{ID: newID("d"), UserID: "u_nobody", Name: "x", SignatureKey: newID("sig"), CreatedAt: t0}
	wantErr(t, "CreateDevice of an unknown user", s.CreateDevice(ctx(t), ghost, 10), store.ErrNotFound)
	b1 := mustDevice(t, s, bob)

	got, err := s.Device(ctx(t), d1.ID)
	wantNoErr(t, "Device", err)
	wantEq(t, "Device.SignatureKey", got.SignatureKey, d1.SignatureKey)
	wantEq(t, "Device.UserID", got.UserID, alice.ID)
	wantTime(t, "Device.CreatedAt", got.CreatedAt, t0)
	_, err = s.Device(ctx(t), "d_nope")
	wantErr(t, "Device(unknown)", err, store.ErrNotFound)

	list, err := s.UserDevices(ctx(t), []string{bob.ID, alice.ID})
	wantNoErr(t, "UserDevices", err)
	var ids []string
	for _, d := range list {
		ids = append(ids, d.ID)
	}
	want := sorted(d1.ID, d2.ID)
	if alice.ID > bob.ID {
		want = append([]string{b1.ID}, want...)
	} else {
		want = append(want, b1.ID)
	}
	wantStrings(t, "UserDevices ids (by user, then id)", ids, want)

	// Bob cannot delete Alice's device; Alice can, and its packages and
	// Welcomes go with it.
	mustKeyPackages(t, s, d1, 0, 3)
	wantErr(t, "DeleteDevice of another user's device", s.DeleteDevice(ctx(t), bob.ID, d1.ID), store.ErrNotFound)
	wantNoErr(t, "DeleteDevice", s.DeleteDevice(ctx(t), alice.ID, d1.ID))
	_, err = s.Device(ctx(t), d1.ID)
	wantErr(t, "Device after delete", err, store.ErrNotFound)
	n, _, err := s.KeyPackageCount(ctx(t), d1.ID, t0)
	wantNoErr(t, "KeyPackageCount of a deleted device", err)
	wantEq(t, "key packages of a deleted device", n, 0)
	wantErr(t, "DeleteDevice twice", s.DeleteDevice(ctx(t), alice.ID, d1.ID), store.ErrNotFound)

	// Deleting the account deletes its devices.
	wantNoErr(t, "DeleteUser", s.DeleteUser(ctx(t), bob.ID, t0.Add(time.Hour)))
	_, err = s.Device(ctx(t), b1.ID)
	wantErr(t, "Device of a deleted account", err, store.ErrNotFound)
}

func testKeyPackagesHandedOutOnce(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	b1, b2 := mustDevice(t, s, bob), mustDevice(t, s, bob)
	mustKeyPackages(t, s, b1, 0, 2)
	mustKeyPackages(t, s, b2, 0, 1)
	_ = alice

	seen := map[string]bool{}
	claim := func(what string) []store.ClaimedKeyPackage {
		t.Helper()
		got, err := s.ClaimKeyPackages(ctx(t), []string{bob.ID}, t0)
		wantNoErr(t, what, err)
		if len(got) != 2 {
			t.Fatalf("%s: %d entries, want one per device (2): %+v", what, len(got), got)
		}
		return got
	}
	first := claim("first claim")
	for _, c := range first {
		if c.Sealed == "" || seen[c.Ref] {
			t.Fatalf("first claim: %+v: want a fresh package", c)
		}
		seen[c.Ref] = true
		wantEq(t, "claimed package's user", c.UserID, bob.ID)
	}
	wantEq(t, "first claim takes the oldest of b1", refOf(first, b1.ID), kp(b1, 0).Ref)
	second := claim("second claim")
	wantEq(t, "second claim of b1", refOf(second, b1.ID), kp(b1, 1).Ref)
	for _, c := range second {
		if c.DeviceID == b2.ID && c.Sealed != "" {
			t.Fatalf("b2 had one package, handed out already, and no last resort: got %+v", c)
		}
	}
	n, last, err := s.KeyPackageCount(ctx(t), b1.ID, t0)
	wantNoErr(t, "KeyPackageCount", err)
	wantEq(t, "b1 packages left", n, 0)
	wantEq(t, "b1 last resort", last, false)

	// Expired packages are never handed out.
	old := kp(b2, 50)
	old.NotAfter = t0.Add(-time.Second)
	if _, err := s.AddKeyPackages(ctx(t), b2.ID, []store.KeyPackage{old}, nil, 100); err != nil {
		t.Fatalf("AddKeyPackages(expired): %v", err)
	}
	if got := refOf(claim("claim with only an expired package"), b2.ID); got != "" {
		t.Fatalf("an expired package was handed out: %s", got)
	}
	// A ref stored before is a conflict.
	_, err = s.AddKeyPackages(ctx(t), b1.ID, []store.KeyPackage{kp(b1, 0)}, nil, 100)
	wantErr(t, "AddKeyPackages with a known ref", err, store.ErrConflict)
}

func refOf(cs []store.ClaimedKeyPackage, deviceID string) string {
	for _, c := range cs {
		if c.DeviceID == deviceID && c.Sealed != "" {
			return c.Ref
		}
	}
	return ""
}

func testKeyPackagesConcurrentClaims(t *testing.T, s store.Store) {
	bob := mustUser(t, s, "bob")
	d := mustDevice(t, s, bob)
	const packages, claimers = 20, 8
	mustKeyPackages(t, s, d, 0, packages)
	var (
		mu   sync.Mutex
		got  []string
		wg   sync.WaitGroup
		errs = make(chan error, claimers)
	)
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cs, err := s.ClaimKeyPackages(ctx(t), []string{bob.ID}, t0)
				if err != nil {
					errs <- err
					return
				}
				ref := refOf(cs, d.ID)
				if ref == "" {
					return
				}
				mu.Lock()
				got = append(got, ref)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent ClaimKeyPackages: %v", err)
	}
	slices.Sort(got)
	if len(got) != packages || len(slices.Compact(slices.Clone(got))) != packages {
		t.Fatalf("%d claimers got %d packages (%d distinct), want each of the %d exactly once: %v",
			claimers, len(got), len(slices.Compact(slices.Clone(got))), packages, got)
	}
}

func testKeyPackageLimitsAndLastResort(t *testing.T, s store.Store) {
	bob := mustUser(t, s, "bob")
	d := mustDevice(t, s, bob)
	n, err := s.AddKeyPackages(ctx(t), d.ID, []store.KeyPackage{kp(d, 0), kp(d, 1), kp(d, 2)}, nil, 4)
	wantNoErr(t, "AddKeyPackages", err)
	wantEq(t, "count after adding 3", n, 3)
	_, err = s.AddKeyPackages(ctx(t), d.ID, []store.KeyPackage{kp(d, 3), kp(d, 4)}, nil, 4)
	wantErr(t, "AddKeyPackages past the cap", err, store.ErrLimit)
	n, _, err = s.KeyPackageCount(ctx(t), d.ID, t0)
	wantNoErr(t, "KeyPackageCount", err)
	wantEq(t, "nothing stored by a refused batch", n, 3)
	_, err = s.AddKeyPackages(ctx(t), "d_nope", []store.KeyPackage{kp(d, 9)}, nil, 4)
	wantErr(t, "AddKeyPackages to an unknown device", err, store.ErrNotFound)

	lr := kp(d, 100)
	n, err = s.AddKeyPackages(ctx(t), d.ID, nil, &lr, 4)
	wantNoErr(t, "AddKeyPackages(last resort)", err)
	wantEq(t, "a last resort is not counted", n, 3)
	_, last, _ := s.KeyPackageCount(ctx(t), d.ID, t0)
	wantEq(t, "has a last resort", last, true)

	for i := range 3 {
		cs, err := s.ClaimKeyPackages(ctx(t), []string{bob.ID}, t0)
		wantNoErr(t, "claim", err)
		if cs[0].LastResort || cs[0].Ref != kp(d, i).Ref {
			t.Fatalf("claim %d: got %+v, want the one-time package %s", i, cs[0], kp(d, i).Ref)
		}
	}
	// None left: the last resort, again and again, never consumed.
	for range 3 {
		cs, err := s.ClaimKeyPackages(ctx(t), []string{bob.ID}, t0)
		wantNoErr(t, "claim of the last resort", err)
		if !cs[0].LastResort || cs[0].Ref != lr.Ref || cs[0].Sealed != lr.Sealed {
			t.Fatalf("claim with none left: got %+v, want the last resort %s", cs[0], lr.Ref)
		}
	}
	// A new last resort replaces the old one.
	lr2 := kp(d, 101)
	_, err = s.AddKeyPackages(ctx(t), d.ID, nil, &lr2, 4)
	wantNoErr(t, "replace the last resort", err)
	cs, err := s.ClaimKeyPackages(ctx(t), []string{bob.ID}, t0)
	wantNoErr(t, "claim", err)
	wantEq(t, "the new last resort", cs[0].Ref, lr2.Ref)
}

func commitOf(c *store.Conversation, u *store.User, d *store.Device, from int64) *store.CommitChange {
	return &store.CommitChange{FromEpoch: from, Commit: store.Commit{ConversationID: c.ID, SenderID: u.ID, DeviceID: d.ID,
		Sealed: fmt.Sprintf("v1.k1.commit-%d-%s", from, newID("x")), KeyID: "k1", CreatedAt: t0.Add(time.Minute)}}
}

func testCommitEpoch(t *testing.T, s store.Store) {
	alice, bob, eve := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "eve")
	c := mustE2EEGroup(t, s, alice, bob)
	da, de := mustDevice(t, s, alice), mustDevice(t, s, eve)
	got, err := s.Conversation(ctx(t), c.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "E2EE", got.E2EE, true)
	wantEq(t, "starting epoch", got.MLSEpoch, int64(0))

	m := mustSend(t, s, mustGroup(t, s, t0, alice), alice, t0) // another conversation's seq does not count
	_ = m
	cm, _, err := s.ApplyCommit(ctx(t), commitOf(c, alice, da, 0))
	wantNoErr(t, "ApplyCommit at epoch 0", err)
	wantEq(t, "commit epoch", cm.Epoch, int64(1))
	wantEq(t, "commit seq", cm.Seq, int64(1))
	_, _, err = s.ApplyCommit(ctx(t), commitOf(c, alice, da, 0))
	wantErr(t, "ApplyCommit at the old epoch", err, store.ErrStaleEpoch)
	_, _, err = s.ApplyCommit(ctx(t), commitOf(c, alice, da, 5))
	wantErr(t, "ApplyCommit at a future epoch", err, store.ErrStaleEpoch)
	_, _, err = s.ApplyCommit(ctx(t), commitOf(c, eve, de, 1))
	wantErr(t, "ApplyCommit by a non-member", err, store.ErrNotFound)
	plain := mustGroup(t, s, t0, alice)
	_, _, err = s.ApplyCommit(ctx(t), commitOf(plain, alice, da, 0))
	wantErr(t, "ApplyCommit in a plain conversation", err, store.ErrNotFound)

	cm2, _, err := s.ApplyCommit(ctx(t), commitOf(c, bob, da, 1))
	wantNoErr(t, "ApplyCommit at epoch 1", err)
	wantEq(t, "second commit epoch", cm2.Epoch, int64(2))
	got, _ = s.Conversation(ctx(t), c.ID)
	wantEq(t, "conversation epoch", got.MLSEpoch, int64(2))
	wantEq(t, "conversation last seq", got.LastSeq, int64(2))

	list, err := s.CommitsAfter(ctx(t), c.ID, 0, 10)
	wantNoErr(t, "CommitsAfter", err)
	if len(list) != 2 || list[0].Seq != 1 || list[1].Seq != 2 || list[1].Epoch != 2 || list[1].SenderID != bob.ID {
		t.Fatalf("CommitsAfter: %+v", list)
	}
	wantTime(t, "commit CreatedAt", list[0].CreatedAt, t0.Add(time.Minute))
	list, _ = s.CommitsAfter(ctx(t), c.ID, 1, 10)
	if len(list) != 1 || list[0].Seq != 2 {
		t.Fatalf("CommitsAfter(1): %+v", list)
	}
}

func testCommitConcurrent(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustE2EEGroup(t, s, alice, bob)
	da := mustDevice(t, s, alice)
	const racers = 8
	for epoch := int64(0); epoch < 3; epoch++ {
		var (
			wg           sync.WaitGroup
			mu           sync.Mutex
			won, stale   int
			other        []error
			start        = make(chan struct{})
			winnerSeq    int64
			winnerSealed string
			change       = make([]*store.CommitChange, racers)
		)
		for i := range racers {
			change[i] = commitOf(c, alice, da, epoch)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				cm, _, err := s.ApplyCommit(ctx(t), change[i])
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
					winnerSeq, winnerSealed = cm.Seq, change[i].Commit.Sealed
				case isStale(err):
					stale++
				default:
					other = append(other, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if won != 1 || stale != racers-1 || len(other) > 0 {
			t.Fatalf("epoch %d: %d commits won, %d stale, errors %v; want exactly one winner", epoch, won, stale, other)
		}
		list, err := s.CommitsAfter(ctx(t), c.ID, winnerSeq-1, 10)
		wantNoErr(t, "CommitsAfter", err)
		if len(list) != 1 || list[0].Sealed != winnerSealed || list[0].Epoch != epoch+1 {
			t.Fatalf("epoch %d: stored commits %+v, want only the winner's", epoch, list)
		}
	}
	got, _ := s.Conversation(ctx(t), c.ID)
	wantEq(t, "epoch after three rounds", got.MLSEpoch, int64(3))
	wantEq(t, "seq after three rounds (losers took none)", got.LastSeq, int64(3))
}

func testCommitWelcomes(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	c := mustE2EEGroup(t, s, alice, bob)
	da, db1 := mustDevice(t, s, alice), mustDevice(t, s, bob)
	dc1, dc2 := mustDevice(t, s, carol), mustDevice(t, s, carol)
	for _, d := range []*store.Device{dc1, dc2, db1} {
		mustKeyPackages(t, s, d, 0, 2)
	}
	claimed, err := s.ClaimKeyPackages(ctx(t), []string{carol.ID}, t0)
	wantNoErr(t, "claim", err)

	// A Welcome naming only refs the server never handed out is refused,
	// and nothing of the commit is written.
	bad := commitOf(c, alice, da, 0)
	bad.Add = []store.Member{{UserID: carol.ID, Role: store.RoleMember, JoinedAt: t0}}
	bad.WelcomeRefs = []string{"unknown-ref", kp(db1, 1).Ref} // the second: not claimed
	bad.WelcomeSealed, bad.WelcomeKeyID = "v1.k1.welcome-bad", "k1"
	_, _, err = s.ApplyCommit(ctx(t), bad)
	wantErr(t, "ApplyCommit with a Welcome naming nobody", err, store.ErrNoWelcomeTarget)
	got, _ := s.Conversation(ctx(t), c.ID)
	wantEq(t, "epoch after a refused commit", got.MLSEpoch, int64(0))
	_, err = s.Member(ctx(t), c.ID, carol.ID)
	wantErr(t, "carol after a refused commit", err, store.ErrNotFound)

	// Adding carol: the Welcome goes to both her devices.
	add := commitOf(c, alice, da, 0)
	add.Add = []store.Member{{UserID: carol.ID, Role: store.RoleMember, JoinedAt: t0}}
	add.WelcomeRefs = []string{claimed[0].Ref, claimed[1].Ref, "unknown-ref"}
	add.WelcomeSealed, add.WelcomeKeyID = "v1.k1.welcome-1", "k1"
	cm, welcomed, err := s.ApplyCommit(ctx(t), add)
	wantNoErr(t, "ApplyCommit adding carol", err)
	var wd []string
	for _, d := range welcomed {
		wd = append(wd, d.ID)
		wantEq(t, "welcomed device's user", d.UserID, carol.ID)
	}
	wantStrings(t, "welcomed devices", wd, sorted(dc1.ID, dc2.ID))
	if _, err := s.Member(ctx(t), c.ID, carol.ID); err != nil {
		t.Fatalf("carol is not a member after the commit adding her: %v", err)
	}
	for _, d := range []*store.Device{dc1, dc2} {
		ws, err := s.Welcomes(ctx(t), d.ID)
		wantNoErr(t, "Welcomes", err)
		if len(ws) != 1 || ws[0].ConversationID != c.ID || ws[0].Seq != cm.Seq || ws[0].Epoch != 1 || ws[0].Sealed != "v1.k1.welcome-1" {
			t.Fatalf("Welcomes of %s: %+v", d.ID, ws)
		}
	}
	ws, _ := s.Welcomes(ctx(t), da.ID)
	wantEq(t, "Welcomes of a device not named", len(ws), 0)
	wantNoErr(t, "DeleteWelcome", s.DeleteWelcome(ctx(t), dc1.ID, c.ID))
	wantErr(t, "DeleteWelcome twice", s.DeleteWelcome(ctx(t), dc1.ID, c.ID), store.ErrNotFound)
	ws, _ = s.Welcomes(ctx(t), dc2.ID)
	wantEq(t, "the other device keeps its Welcome", len(ws), 1)

	// Adding someone already a member is a conflict; nothing is written.
	again := commitOf(c, alice, da, 1)
	again.Add = []store.Member{{UserID: bob.ID, Role: store.RoleMember, JoinedAt: t0}}
	_, _, err = s.ApplyCommit(ctx(t), again)
	wantErr(t, "ApplyCommit adding a member", err, store.ErrConflict)

	peers, err := s.E2EEPeers(ctx(t), carol.ID)
	wantNoErr(t, "E2EEPeers", err)
	wantStrings(t, "carol's e2ee peers", peers, sorted(alice.ID, bob.ID))

	// Removing carol: her pending Welcome goes, membership too, and the
	// membership version moves (caches of member lists notice).
	_, v0, _ := s.MembersVersioned(ctx(t), c.ID)
	rm := commitOf(c, alice, da, 1)
	rm.Remove = []string{carol.ID}
	_, _, err = s.ApplyCommit(ctx(t), rm)
	wantNoErr(t, "ApplyCommit removing carol", err)
	_, err = s.Member(ctx(t), c.ID, carol.ID)
	wantErr(t, "carol after removal", err, store.ErrNotFound)
	ws, _ = s.Welcomes(ctx(t), dc2.ID)
	wantEq(t, "Welcomes of a removed member's device", len(ws), 0)
	_, v1, _ := s.MembersVersioned(ctx(t), c.ID)
	if v1 <= v0 {
		t.Fatalf("members version %d -> %d: want it raised", v0, v1)
	}
	notMember := commitOf(c, alice, da, 2)
	notMember.Remove = []string{carol.ID}
	_, _, err = s.ApplyCommit(ctx(t), notMember)
	wantErr(t, "ApplyCommit removing a non-member", err, store.ErrNotFound)
	peers, _ = s.E2EEPeers(ctx(t), carol.ID)
	wantEq(t, "carol's e2ee peers after removal", len(peers), 0)
}

func testMLSMessages(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustE2EEGroup(t, s, alice, bob)
	da := mustDevice(t, s, alice)
	send := func(epoch int64, mls bool) (*store.Message, error) {
		id := newID("m")
		m, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: c.ID, ID: id, SenderID: alice.ID,
			ClientID: "cl-" + id, BodySealed: "v1.k1.mls-" + id, KeyID: "k1", CreatedAt: t0, MLS: mls, MLSEpoch: epoch})
		return m, err
	}
	m1, err := send(0, true)
	wantNoErr(t, "AppendMessage(mls, epoch 0)", err)
	wantEq(t, "MLS read back", m1.MLS, true)
	cm, _, err := s.ApplyCommit(ctx(t), commitOf(c, alice, da, 0))
	wantNoErr(t, "ApplyCommit", err)
	_, err = send(0, true)
	wantErr(t, "AppendMessage at the old epoch", err, store.ErrStaleEpoch)
	_, err = send(1, false)
	wantErr(t, "AppendMessage of text in an e2ee conversation", err, store.ErrNotFound)
	m2, err := send(1, true)
	wantNoErr(t, "AppendMessage(mls, epoch 1)", err)
	if m1.Seq != 1 || cm.Seq != 2 || m2.Seq != 3 {
		t.Fatalf("seqs message %d, commit %d, message %d: want 1, 2, 3 (one counter)", m1.Seq, cm.Seq, m2.Seq)
	}
	ms, _ := s.MessagesAfter(ctx(t), c.ID, 0, 10)
	if len(ms) != 2 || !ms[0].MLS || !ms[1].MLS {
		t.Fatalf("MessagesAfter: %+v", ms)
	}
	sum, err := s.ConversationSummary(ctx(t), bob.ID, c.ID)
	wantNoErr(t, "ConversationSummary", err)
	if !sum.E2EE || sum.MLSEpoch != 1 || sum.LastMessage == nil || !sum.LastMessage.MLS {
		t.Fatalf("summary: e2ee %v epoch %d last %+v", sum.E2EE, sum.MLSEpoch, sum.LastMessage)
	}
	// An MLS message in a plain conversation is refused.
	plain := mustGroup(t, s, t0, alice)
	_, _, err = s.AppendMessage(ctx(t), &store.Message{ConversationID: plain.ID, ID: newID("m"), SenderID: alice.ID,
		BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0, MLS: true})
	wantErr(t, "AppendMessage(mls) in a plain conversation", err, store.ErrNotFound)
}

func isStale(err error) bool { return err != nil && errors.Is(err, store.ErrStaleEpoch) }

func testMLSReseal(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustE2EEGroup(t, s, alice, bob)
	da, db := mustDevice(t, s, alice), mustDevice(t, s, bob)
	mustKeyPackages(t, s, db, 0, 2) // sealed with k1
	claimed, err := s.ClaimKeyPackages(ctx(t), []string{bob.ID}, t0)
	wantNoErr(t, "claim", err)
	cm := commitOf(c, alice, da, 0)
	cm.WelcomeRefs, cm.WelcomeSealed, cm.WelcomeKeyID = []string{claimed[0].Ref}, "v1.k1.welcome", "k1"
	_, _, err = s.ApplyCommit(ctx(t), cm)
	wantNoErr(t, "ApplyCommit", err)

	counts, err := s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)
	// The title, the unclaimed KeyPackage, the commit, the Welcome (the
	// claimed package was emptied).
	wantEq(t, "rows sealed with k1", counts["k1"], int64(4))
	rows, err := s.MLSSealedWith(ctx(t), "k1", 10)
	wantNoErr(t, "MLSSealedWith", err)
	kinds := map[string]int{}
	for _, r := range rows {
		kinds[r.Kind]++
	}
	if len(rows) != 3 || kinds[store.SealedKeyPackage] != 1 || kinds[store.SealedCommit] != 1 || kinds[store.SealedWelcome] != 1 {
		t.Fatalf("MLSSealedWith: %+v", rows)
	}
	for _, r := range rows {
		if r.Kind == store.SealedCommit && (r.ConversationID != c.ID || r.Seq != 1 || r.Epoch != 1) {
			t.Fatalf("commit row %+v", r)
		}
		stale := r
		stale.Sealed = "v1.k1.something-else"
		ok, err := s.ResealMLS(ctx(t), stale, "v1.k2.x", "k2")
		wantNoErr(t, "ResealMLS(stale)", err)
		wantEq(t, "ResealMLS of a changed row", ok, false)
		ok, err = s.ResealMLS(ctx(t), r, "v1.k2.new-"+r.Kind, "k2")
		wantNoErr(t, "ResealMLS", err)
		wantEq(t, "ResealMLS "+r.Kind, ok, true)
	}
	counts, _ = s.SealedCounts(ctx(t))
	wantEq(t, "rows sealed with k1 after", counts["k1"], int64(1)) // the title
	wantEq(t, "rows sealed with k2 after", counts["k2"], int64(3))
	ws, _ := s.Welcomes(ctx(t), db.ID)
	if len(ws) != 1 || ws[0].Sealed != "v1.k2.new-welcome" || ws[0].KeyID != "k2" {
		t.Fatalf("Welcome after reseal: %+v", ws)
	}
}
