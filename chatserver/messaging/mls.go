package messaging

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/mlswire"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// The MLS Delivery Service (issue 17): devices, KeyPackages, claims,
// commits, Welcomes. The server reads only the clear parts of MLS messages
// (mlswire): group, epoch, content type, Welcome recipients, KeyPackage
// credentials and signatures. It never holds an MLS private key.

// MLS limits (docs/api.md, "End-to-end encrypted conversations").
const (
	// DefaultMaxDevices and DefaultMaxKeyPackages apply when Config
	// leaves them 0 (-max-devices, -max-key-packages).
	DefaultMaxDevices     = 10
	DefaultMaxKeyPackages = 100
	// MaxDeviceNameChars bounds a device's name.
	MaxDeviceNameChars = 64
	// MaxKeyPackageBytes bounds one KeyPackage (a ciphersuite-1 one made by
	// ts-mls is ~330 bytes; room for extensions).
	MaxKeyPackageBytes = 8 << 10
	// MaxCommitBytes and MaxWelcomeBytes bound a commit (its UpdatePath
	// grows with the log of the group) and a Welcome (it carries the whole
	// ratchet tree, ~200 bytes per member: a 1,000-member group's fits).
	MaxCommitBytes  = 1 << 20
	MaxWelcomeBytes = 1 << 20
	// MaxClaimUsers bounds the users one claim names.
	MaxClaimUsers = 100
	// MLSOverheadBytes is what an MLS PrivateMessage may add to its
	// plaintext on top of MaxBodyChars × 4 (UTF-8): the framing, sender
	// data, AEAD tag, and the client's JSON payload around the text
	// (reply, attachment keys and names).
	MLSOverheadBytes = 4096
	// MLSBodyLimit is the request body limit of the routes that carry
	// commits, Welcomes and KeyPackage batches: base64 of the largest
	// commit and Welcome together, with room for the JSON around them.
	MLSBodyLimit = (MaxCommitBytes+MaxWelcomeBytes)*4/3 + 64<<10
)

func mlsAAD(kind, a, b string) []byte { return []byte("mls-" + kind + "|" + a + "|" + b) }

// mlsSealedAAD is the associated data a stored MLS row was sealed with.
func mlsSealedAAD(r store.MLSSealed) []byte {
	switch r.Kind {
	case store.SealedKeyPackage:
		return mlsAAD("kp", r.DeviceID, r.Ref)
	case store.SealedCommit:
		return mlsAAD("commit", r.ConversationID, strconv.FormatInt(r.Epoch, 10))
	}
	return mlsAAD("welcome", r.ConversationID, "")
}

// MaxCiphertextBytes is the largest MLS application message accepted.
func (s *Service) MaxCiphertextBytes() int { return 4*s.maxChars + MLSOverheadBytes }

// decodeB64 decodes standard base64 of at most max bytes.
func decodeB64(field, v string, max int) ([]byte, error) {
	if v == "" {
		return nil, apperr.OnField(apperr.InvalidRequest, field, "%s is required", field)
	}
	if base64.StdEncoding.DecodedLen(len(v)) > max+2 {
		return nil, apperr.OnField(apperr.RequestTooLarge, field, "%s is larger than %d bytes", field, max)
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, apperr.OnField(apperr.InvalidRequest, field, "%s is not standard base64", field)
	}
	if len(b) > max {
		return nil, apperr.OnField(apperr.RequestTooLarge, field, "%s is %d bytes; the limit is %d", field, len(b), max)
	}
	return b, nil
}

func staleEpoch(current int64) error {
	return &apperr.Error{Code: apperr.StaleEpoch, Epoch: &current,
		Message: fmt.Sprintf("the group is at epoch %d: process the commits before it, then retry", current)}
}

func notE2EE() error {
	return apperr.New(apperr.InvalidRequest, "this conversation is not end-to-end encrypted")
}

func noDevice() error { return apperr.New(apperr.NotFound, "no such device") }

// ownDevice returns userID's device deviceID; another user's device is
// not_found, as an unknown one.
func (s *Service) ownDevice(ctx context.Context, userID, deviceID string) (*store.Device, error) {
	if deviceID == "" {
		return nil, apperr.OnField(apperr.InvalidRequest, "deviceId", "deviceId is required")
	}
	d, err := s.store.Device(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.UserID != userID) {
		return nil, noDevice()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return d, nil
}

// e2eeConversation returns the conversation, its members and the caller's
// membership among them, or not_found (not a member) or invalid_request
// (not e2ee).
func (s *Service) e2eeConversation(ctx context.Context, userID, convID string) (*store.Conversation, []store.Member, *store.Member, error) {
	members, me, err := s.membersOf(ctx, convID, userID)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := s.store.Conversation(ctx, convID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, notFound()
	}
	if err != nil {
		return nil, nil, nil, unavailable(err)
	}
	if !c.E2EE {
		return nil, nil, nil, notE2EE()
	}
	return c, members, me, nil
}

func deviceView(d *store.Device) protocol.Device {
	return protocol.Device{ID: d.ID, Name: d.Name, SignatureKey: d.SignatureKey, CreatedAt: d.CreatedAt}
}

// RegisterDevice registers a device of userID: an MLS client whose Ed25519
// public key (32 bytes, base64) signs its KeyPackages and messages.
func (s *Service) RegisterDevice(ctx context.Context, userID, name, signatureKey string) (*protocol.Device, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return nil, apperr.OnField(apperr.InvalidRequest, "name", "a device needs a name")
	case !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return nil, apperr.OnField(apperr.InvalidRequest, "name", "name must be UTF-8 text without control characters")
	case utf8.RuneCountInString(name) > MaxDeviceNameChars:
		return nil, apperr.OnField(apperr.InvalidRequest, "name", "name is longer than %d characters", MaxDeviceNameChars)
	}
	key, err := decodeB64("signatureKey", signatureKey, 64)
	if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, apperr.OnField(apperr.InvalidRequest, "signatureKey", "signatureKey must be a 32-byte Ed25519 public key, not %d bytes", len(key))
	}
	// Each registration is a frame to every e2ee peer: it shares the rate
	// of changes.
	if err := s.changeAllowed(ctx, userID); err != nil {
		return nil, err
	}
	d := &store.Device{ID: ids.New("d"), UserID: userID, Name: name, SignatureKey: base64.StdEncoding.EncodeToString(key),
		CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	switch err := s.store.CreateDevice(ctx, d, s.maxDevices); {
	case errors.Is(err, store.ErrLimit):
		return nil, apperr.New(apperr.Conflict, "you have %d devices already; remove one first", s.maxDevices)
	case errors.Is(err, store.ErrConflict):
		return nil, apperr.OnField(apperr.Conflict, "signatureKey", "this signature key belongs to a device already")
	case errors.Is(err, store.ErrNotFound):
		return nil, apperr.New(apperr.NotFound, "no such user")
	case err != nil:
		return nil, unavailable(err)
	}
	_ = s.audit.Record(ctx, "device.added", userID, d.ID, "", nil)
	s.publishDevices(ctx, userID)
	v := deviceView(d)
	return &v, nil
}

// publishDevices tells userID and everyone sharing an e2ee conversation
// with them that userID's devices changed.
func (s *Service) publishDevices(ctx context.Context, userID string) {
	peers, err := s.store.E2EEPeers(ctx, userID)
	if err != nil {
		s.log.Warn("devices frame: peers lookup failed", "user", userID, "err", err)
	}
	s.events.Publish(ctx, delivery.Event{To: append([]string{userID}, peers...), Frame: protocol.DevicesFrame{UserID: userID}})
}

// DevicesGone tells the peers of a deleted account that its devices went
// with it (store.DeleteUser deletes them), so their devices commit the
// removal of its leaves.
func (s *Service) DevicesGone(ctx context.Context, userID string) { s.publishDevices(ctx, userID) }

// UserDevices lists a user's devices: any signed-in user may read them (to
// verify a contact's keys).
func (s *Service) UserDevices(ctx context.Context, userID string) ([]protocol.Device, error) {
	ds, err := s.store.UserDevices(ctx, []string{userID})
	if err != nil {
		return nil, unavailable(err)
	}
	if len(ds) == 0 {
		// A device's user exists: only an empty list asks whether the user does.
		if _, err := s.store.UserByID(ctx, userID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, apperr.New(apperr.NotFound, "no such user")
			}
			return nil, unavailable(err)
		}
	}
	out := make([]protocol.Device, len(ds))
	for i := range ds {
		out[i] = deviceView(&ds[i])
	}
	return out, nil
}

// DeleteDevice removes one of userID's devices with its KeyPackages and
// Welcomes. The groups it was in still hold its leaf until another device
// commits its removal (the devices frame asks them to).
func (s *Service) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	if err := s.changeAllowed(ctx, userID); err != nil {
		return err
	}
	err := s.store.DeleteDevice(ctx, userID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return noDevice()
	}
	if err != nil {
		return unavailable(err)
	}
	_ = s.audit.Record(ctx, "device.removed", userID, deviceID, "", nil)
	s.publishDevices(ctx, userID)
	return nil
}

// KeyPackageUpload is one upload of KeyPackages (base64 MLSMessages).
type KeyPackageUpload struct {
	KeyPackages []string
	LastResort  string // "": keep the current one
}

// UploadKeyPackages checks and stores KeyPackages of one of userID's
// devices, and returns how many unclaimed ones it now has. Each must be a
// valid ciphersuite-1 KeyPackage (signatures verified) whose signature key
// is the device's, whose identity is "<userId>:<deviceId>" and whose
// lifetime covers now.
func (s *Service) UploadKeyPackages(ctx context.Context, userID, deviceID string, u KeyPackageUpload) (int, error) {
	d, err := s.ownDevice(ctx, userID, deviceID)
	if err != nil {
		return 0, err
	}
	if len(u.KeyPackages) == 0 && u.LastResort == "" {
		return 0, apperr.New(apperr.InvalidRequest, "send keyPackages, a lastResort package, or both")
	}
	if len(u.KeyPackages) > s.maxKeyPackages {
		return 0, apperr.OnField(apperr.InvalidRequest, "keyPackages", "at most %d KeyPackages at once", s.maxKeyPackages)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	check := func(field, v string) (*store.KeyPackage, error) {
		raw, err := decodeB64(field, v, MaxKeyPackageBytes)
		if err != nil {
			return nil, err
		}
		kp, err := mlswire.ParseKeyPackage(raw)
		if err != nil {
			return nil, apperr.OnField(apperr.InvalidRequest, field, "%s is not an acceptable KeyPackage: %v", field, err)
		}
		switch {
		case base64.StdEncoding.EncodeToString(kp.SignatureKey) != d.SignatureKey:
			return nil, apperr.OnField(apperr.InvalidRequest, field, "%s is signed with another key than the device's", field)
		case string(kp.Identity) != userID+":"+deviceID:
			return nil, apperr.OnField(apperr.InvalidRequest, field, "%s names identity %q, not %q", field,
				strings.ToValidUTF8(string(kp.Identity), "?"), userID+":"+deviceID)
		case !kp.ValidAt(now):
			return nil, apperr.OnField(apperr.InvalidRequest, field, "%s is not valid now (its lifetime)", field)
		}
		ref := hex.EncodeToString(kp.Ref())
		sealed, kid, err := s.keys.Seal(ctx, mlsAAD("kp", deviceID, ref), raw)
		if err != nil {
			return nil, fmt.Errorf("messaging: seal key package: %w", err)
		}
		notAfter := time.Unix(int64(min(kp.NotAfter, uint64(store.MuteForever.Unix()))), 0).UTC()
		return &store.KeyPackage{Ref: ref, DeviceID: deviceID, Sealed: sealed, KeyID: kid, NotAfter: notAfter, CreatedAt: now}, nil
	}
	kps := make([]store.KeyPackage, 0, len(u.KeyPackages))
	for i, v := range u.KeyPackages {
		kp, err := check(fmt.Sprintf("keyPackages[%d]", i), v)
		if err != nil {
			return 0, err
		}
		if slices.ContainsFunc(kps, func(o store.KeyPackage) bool { return o.Ref == kp.Ref }) {
			return 0, apperr.OnField(apperr.InvalidRequest, "keyPackages", "keyPackages[%d] is sent twice", i)
		}
		kps = append(kps, *kp)
	}
	var last *store.KeyPackage
	if u.LastResort != "" {
		if last, err = check("lastResort", u.LastResort); err != nil {
			return 0, err
		}
	}
	n, err := s.store.AddKeyPackages(ctx, deviceID, kps, last, s.maxKeyPackages)
	switch {
	case errors.Is(err, store.ErrLimit):
		return 0, apperr.New(apperr.Conflict, "a device keeps at most %d unclaimed KeyPackages; check the count before topping up", s.maxKeyPackages)
	case errors.Is(err, store.ErrConflict):
		return 0, apperr.OnField(apperr.Conflict, "keyPackages", "a KeyPackage was uploaded before")
	case errors.Is(err, store.ErrNotFound):
		return 0, noDevice()
	case err != nil:
		return 0, unavailable(err)
	}
	return n, nil
}

// KeyPackageCount says how many unclaimed KeyPackages one of userID's
// devices has, and whether it has a last-resort one.
func (s *Service) KeyPackageCount(ctx context.Context, userID, deviceID string) (int, bool, error) {
	if _, err := s.ownDevice(ctx, userID, deviceID); err != nil {
		return 0, false, err
	}
	n, last, err := s.store.KeyPackageCount(ctx, deviceID, s.now())
	if err != nil {
		return 0, false, unavailable(err)
	}
	return n, last, nil
}

// ClaimKeyPackages hands userID one KeyPackage of every device of the users
// named, to add them to the e2ee conversation convID: each named user must
// be a member of it or someone userID may add (as the members endpoint
// rules). Each KeyPackage goes out once; a device with none left gives its
// last-resort package.
func (s *Service) ClaimKeyPackages(ctx context.Context, userID, convID string, users []string) ([]protocol.ClaimedKeyPackage, []protocol.MissingKeyPackage, error) {
	c, members, me, err := s.e2eeConversation(ctx, userID, convID)
	if err != nil {
		return nil, nil, err
	}
	users = slices.Compact(slices.Sorted(slices.Values(users)))
	switch {
	case len(users) == 0 || users[0] == "":
		return nil, nil, apperr.OnField(apperr.InvalidRequest, "users", "users must name at least one user (no empty ids)")
	case len(users) > MaxClaimUsers:
		return nil, nil, apperr.OnField(apperr.InvalidRequest, "users", "at most %d users per claim", MaxClaimUsers)
	}
	var outsiders []string
	for _, u := range users {
		if !slices.ContainsFunc(members, func(m store.Member) bool { return m.UserID == u }) {
			outsiders = append(outsiders, u)
		}
	}
	if len(outsiders) > 0 {
		if c.Kind != store.KindGroup || !canManage(me.Role) {
			return nil, nil, apperr.OnField(apperr.Forbidden, "users",
				"users names someone who is not a member and whom you may not add")
		}
		found, err := s.store.UsersByIDs(ctx, outsiders)
		if err != nil {
			return nil, nil, unavailable(err)
		}
		if len(found) != len(outsiders) || slices.ContainsFunc(found, func(u store.User) bool { return u.DeletedAt != nil }) {
			return nil, nil, apperr.OnField(apperr.NotFound, "users", "users names someone who does not exist")
		}
	}
	if err := s.allowed(ctx, s.claimLimit, "kpc:"+userID, "key_package_claims", "claiming KeyPackages"); err != nil {
		return nil, nil, err
	}
	got, err := s.store.ClaimKeyPackages(ctx, users, s.now())
	if err != nil {
		return nil, nil, unavailable(err)
	}
	out, missing := []protocol.ClaimedKeyPackage{}, []protocol.MissingKeyPackage{}
	for _, k := range got {
		if k.Sealed == "" {
			missing = append(missing, protocol.MissingKeyPackage{UserID: k.UserID, DeviceID: k.DeviceID})
			continue
		}
		raw, err := s.keys.Open(k.Sealed, mlsAAD("kp", k.DeviceID, k.Ref))
		if err != nil {
			s.log.Error("key package failed to decrypt", "device", k.DeviceID, "err", err)
			missing = append(missing, protocol.MissingKeyPackage{UserID: k.UserID, DeviceID: k.DeviceID})
			continue
		}
		out = append(out, protocol.ClaimedKeyPackage{UserID: k.UserID, DeviceID: k.DeviceID, KeyPackage: base64.StdEncoding.EncodeToString(raw)})
	}
	return out, missing, nil
}

// CommitRequest is an MLS commit for an e2ee conversation.
type CommitRequest struct {
	DeviceID string
	Commit   string // base64 MLSMessage (PublicMessage or PrivateMessage, content type commit)
	Welcome  string // base64 MLSMessage (Welcome); "" when nobody joins
	Add      []string
	Remove   []string
}

// Commit orders an MLS commit: it is accepted only for the conversation's
// current epoch (else stale_epoch with the current one), takes the next
// seq, moves the epoch on by one, mirrors the membership changes it makes
// (add, remove: the members endpoints' rules) and stores its Welcome for
// the devices it names, all in one transaction.
func (s *Service) Commit(ctx context.Context, userID, convID string, r CommitRequest) (*protocol.CommitResult, error) {
	if _, err := s.ownDevice(ctx, userID, r.DeviceID); err != nil {
		return nil, err
	}
	c, members, me, err := s.e2eeConversation(ctx, userID, convID)
	if err != nil {
		return nil, err
	}
	// Every member processes every commit: they share the rate of changes
	// (edits, deletions, reactions), apart from sends.
	if err := s.changeAllowed(ctx, userID); err != nil {
		return nil, err
	}
	raw, err := decodeB64("commit", r.Commit, MaxCommitBytes)
	if err != nil {
		return nil, err
	}
	m, err := mlswire.ParseMessage(raw)
	switch {
	case err != nil:
		return nil, apperr.OnField(apperr.InvalidRequest, "commit", "commit is not an MLS message: %v", err)
	case m.ContentType != mlswire.ContentCommit:
		return nil, apperr.OnField(apperr.InvalidRequest, "commit", "commit carries content type %d, not a commit (3)", m.ContentType)
	case !bytes.Equal(m.GroupID, []byte(convID)):
		return nil, apperr.OnField(apperr.InvalidRequest, "commit", "commit is for another group than this conversation")
	case m.Epoch > math.MaxInt64 || int64(m.Epoch) != c.MLSEpoch:
		return nil, staleEpoch(c.MLSEpoch)
	}
	change := &store.CommitChange{FromEpoch: c.MLSEpoch}
	if err := s.commitMembers(ctx, c, members, me, r, change); err != nil {
		return nil, err
	}
	if r.Welcome != "" {
		wraw, err := decodeB64("welcome", r.Welcome, MaxWelcomeBytes)
		if err != nil {
			return nil, err
		}
		w, err := mlswire.ParseWelcome(wraw)
		switch {
		case err != nil:
			return nil, apperr.OnField(apperr.InvalidRequest, "welcome", "welcome is not an MLS Welcome: %v", err)
		case w.CipherSuite != mlswire.SuiteX25519AES128Ed25519:
			return nil, apperr.OnField(apperr.InvalidRequest, "welcome", "welcome uses ciphersuite %d; only 1 is accepted", w.CipherSuite)
		case len(w.NewMembers) == 0:
			return nil, apperr.OnField(apperr.InvalidRequest, "welcome", "welcome names no new member")
		}
		for _, ref := range w.NewMembers {
			change.WelcomeRefs = append(change.WelcomeRefs, hex.EncodeToString(ref))
		}
		if change.WelcomeSealed, change.WelcomeKeyID, err = s.keys.Seal(ctx, mlsAAD("welcome", convID, ""), wraw); err != nil {
			return nil, fmt.Errorf("messaging: seal welcome: %w", err)
		}
	} else if len(change.Add) > 0 {
		return nil, apperr.OnField(apperr.InvalidRequest, "welcome", "adding members needs the Welcome for their devices")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	sealed, kid, err := s.keys.Seal(ctx, mlsAAD("commit", convID, strconv.FormatInt(c.MLSEpoch+1, 10)), raw)
	if err != nil {
		return nil, fmt.Errorf("messaging: seal commit: %w", err)
	}
	change.Commit = store.Commit{ConversationID: convID, SenderID: userID, DeviceID: r.DeviceID, Sealed: sealed, KeyID: kid, CreatedAt: now}
	stored, welcomed, err := s.store.ApplyCommit(ctx, change)
	switch {
	case errors.Is(err, store.ErrStaleEpoch):
		cur, rerr := s.store.Conversation(ctx, convID)
		if rerr != nil {
			return nil, unavailable(rerr)
		}
		return nil, staleEpoch(cur.MLSEpoch)
	case errors.Is(err, store.ErrNoWelcomeTarget):
		return nil, apperr.OnField(apperr.InvalidRequest, "welcome",
			"welcome names no KeyPackage handed out to a device of a member (claim them for this conversation first)")
	case errors.Is(err, store.ErrConflict):
		return nil, apperr.OnField(apperr.Conflict, "add", "add names someone who is a member already")
	case errors.Is(err, store.ErrNotFound):
		// Removed (or the conversation deleted, or a removed member gone)
		// since the checks above.
		return nil, notFound()
	case err != nil:
		return nil, unavailable(err)
	}
	if len(change.Add)+len(change.Remove) > 0 {
		s.members.drop(convID) // other replicas learn it from the version (memberCache)
		for _, m := range change.Add {
			_ = s.audit.Record(ctx, audit.MemberAdded, userID, convID, "", map[string]any{"user": m.UserID, "mls": true})
		}
		for _, u := range change.Remove {
			_ = s.audit.Record(ctx, audit.MemberRemoved, userID, convID, "", map[string]any{"user": u, "mls": true})
		}
	}
	// The commit, to every member after it, in the conversation's order.
	after, err := s.store.Members(ctx, convID)
	if err != nil {
		s.log.Error("commit: members lookup failed after storing; members catch up by sync", "conversation", convID, "err", err)
	}
	s.events.Publish(ctx, delivery.Event{To: userIDs(after, ""), Frame: protocol.MLSFrame{ConversationID: convID,
		Seq: stored.Seq, Epoch: stored.Epoch, SenderID: userID, DeviceID: r.DeviceID, Commit: base64.StdEncoding.EncodeToString(raw)},
		Conversation: convID, Seq: stored.Seq, Stored: stored.CreatedAt})
	for _, d := range welcomed {
		s.events.Publish(ctx, delivery.Event{To: []string{d.UserID}, Frame: protocol.WelcomeFrame{ConversationID: convID, DeviceID: d.ID}})
	}
	for _, u := range change.Remove {
		s.events.Publish(ctx, delivery.Event{To: []string{u}, Frame: protocol.RemovedFrame{ConversationID: convID}})
	}
	if len(change.Add)+len(change.Remove) > 0 {
		s.announceToMembers(ctx, convID, "")
	}
	return &protocol.CommitResult{Seq: stored.Seq, Epoch: stored.Epoch}, nil
}

// commitMembers checks a commit's membership changes against the members
// endpoints' rules and fills change.Add and change.Remove.
func (s *Service) commitMembers(ctx context.Context, c *store.Conversation, members []store.Member, me *store.Member, r CommitRequest, change *store.CommitChange) error {
	if len(r.Add)+len(r.Remove) == 0 {
		return nil
	}
	if c.Kind != store.KindGroup {
		return apperr.New(apperr.Forbidden, "members can only be changed in groups")
	}
	role := func(u string) (string, bool) {
		i := slices.IndexFunc(members, func(m store.Member) bool { return m.UserID == u })
		if i < 0 {
			return "", false
		}
		return members[i].Role, true
	}
	add := slices.Compact(slices.Sorted(slices.Values(r.Add)))
	remove := slices.Compact(slices.Sorted(slices.Values(r.Remove)))
	if len(add) > 0 {
		if !canManage(me.Role) {
			return apperr.OnField(apperr.Forbidden, "add", "only the group's owner or an admin can add people")
		}
		if len(members)+len(add) > s.maxMembers {
			return apperr.OnField(apperr.InvalidRequest, "add", "a group has at most %d members", s.maxMembers)
		}
		found, err := s.store.UsersByIDs(ctx, add)
		if err != nil {
			return unavailable(err)
		}
		if len(found) != len(add) || slices.ContainsFunc(found, func(u store.User) bool { return u.DeletedAt != nil }) {
			return apperr.OnField(apperr.NotFound, "add", "add names someone who does not exist")
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		for _, u := range add {
			if _, ok := role(u); ok {
				return apperr.OnField(apperr.Conflict, "add", "add names someone who is a member already")
			}
			change.Add = append(change.Add, store.Member{UserID: u, Role: store.RoleMember, JoinedAt: now})
		}
	}
	for _, u := range remove {
		rl, ok := role(u)
		switch {
		case !ok:
			// Left or removed on the server already (DELETE .../members):
			// the commit removes their leaves from the group, nothing more.
			continue
		case rl == store.RoleOwner:
			return apperr.OnField(apperr.Forbidden, "remove", "the owner cannot be removed or leave the group")
		case u != me.UserID && !canManage(me.Role):
			return apperr.OnField(apperr.Forbidden, "remove", "only the group's owner or an admin can remove people")
		case slices.Contains(add, u):
			return apperr.OnField(apperr.InvalidRequest, "remove", "a user cannot be added and removed by one commit")
		}
		change.Remove = append(change.Remove, u)
	}
	return nil
}

// Welcomes returns the Welcomes waiting for one of userID's devices.
func (s *Service) Welcomes(ctx context.Context, userID, deviceID string) ([]protocol.Welcome, error) {
	if _, err := s.ownDevice(ctx, userID, deviceID); err != nil {
		return nil, err
	}
	ws, err := s.store.Welcomes(ctx, deviceID)
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]protocol.Welcome, 0, len(ws))
	for _, w := range ws {
		raw, err := s.keys.Open(w.Sealed, mlsAAD("welcome", w.ConversationID, ""))
		if err != nil {
			s.log.Error("welcome failed to decrypt", "device", deviceID, "conversation", w.ConversationID, "err", err)
			continue
		}
		out = append(out, protocol.Welcome{ConversationID: w.ConversationID, Seq: w.Seq, Epoch: w.Epoch,
			Welcome: base64.StdEncoding.EncodeToString(raw)})
	}
	return out, nil
}

// DeleteWelcome drops a processed Welcome of one of userID's devices.
func (s *Service) DeleteWelcome(ctx context.Context, userID, deviceID, convID string) error {
	if _, err := s.ownDevice(ctx, userID, deviceID); err != nil {
		return err
	}
	err := s.store.DeleteWelcome(ctx, deviceID, convID)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "no Welcome of this conversation waits for this device")
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// checkCiphertext decodes and checks an MLS application message for
// convID: a PrivateMessage of content type application of this group. It
// returns the bytes and the epoch they were encrypted in.
func (s *Service) checkCiphertext(convID, b64 string) ([]byte, int64, error) {
	raw, err := decodeB64("ciphertext", b64, s.MaxCiphertextBytes())
	if err != nil {
		return nil, 0, err
	}
	m, err := mlswire.ParseMessage(raw)
	switch {
	case err != nil:
		return nil, 0, apperr.OnField(apperr.InvalidRequest, "ciphertext", "ciphertext is not an MLS message: %v", err)
	case m.WireFormat != mlswire.WirePrivate:
		return nil, 0, apperr.OnField(apperr.InvalidRequest, "ciphertext", "ciphertext must be an MLS PrivateMessage")
	case m.ContentType != mlswire.ContentApplication:
		return nil, 0, apperr.OnField(apperr.InvalidRequest, "ciphertext", "ciphertext carries content type %d, not an application message (1)", m.ContentType)
	case !bytes.Equal(m.GroupID, []byte(convID)):
		return nil, 0, apperr.OnField(apperr.InvalidRequest, "ciphertext", "ciphertext is for another group than this conversation")
	case m.Epoch > math.MaxInt64:
		return nil, 0, apperr.OnField(apperr.InvalidRequest, "ciphertext", "ciphertext's epoch is out of range")
	}
	return raw, int64(m.Epoch), nil
}

// whyRefused explains a send the store refused as not found: the
// conversation is e2ee and the message plain text, or the other way round,
// or the epoch moved; otherwise the sender is not a member.
func (s *Service) whyRefused(ctx context.Context, userID, convID string, mls bool) error {
	if _, err := s.member(ctx, convID, userID); err != nil {
		return err
	}
	c, err := s.store.Conversation(ctx, convID)
	if err != nil {
		return notFound()
	}
	switch {
	case c.E2EE && !mls:
		return apperr.OnField(apperr.InvalidRequest, "body",
			"this conversation is end-to-end encrypted: send the MLS ciphertext, not a body")
	case !c.E2EE && mls:
		return apperr.OnField(apperr.InvalidRequest, "ciphertext", "ciphertext is only for end-to-end encrypted conversations")
	case mls:
		return staleEpoch(c.MLSEpoch)
	}
	return notFound()
}

// e2eeCache remembers which conversations are end-to-end encrypted: the
// flag never changes after creation, so an entry never goes stale. Sync
// asks it before reading commits, so plain conversations cost no query for
// them. Bounded: past e2eeCacheSize entries it starts over.
type e2eeCache struct {
	mu sync.Mutex
	m  map[string]bool
}

const e2eeCacheSize = 100_000

// isE2EE reports whether convID is end-to-end encrypted (false when it
// does not exist).
func (s *Service) isE2EE(ctx context.Context, convID string) (bool, error) {
	s.e2ee.mu.Lock()
	v, ok := s.e2ee.m[convID]
	s.e2ee.mu.Unlock()
	if ok {
		return v, nil
	}
	c, err := s.store.Conversation(ctx, convID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.e2ee.mu.Lock()
	if s.e2ee.m == nil || len(s.e2ee.m) >= e2eeCacheSize {
		s.e2ee.m = map[string]bool{}
	}
	s.e2ee.m[convID] = c.E2EE
	s.e2ee.mu.Unlock()
	return c.E2EE, nil
}

// mlsFrames builds the frames of stored commits.
func (s *Service) mlsFrames(cs []store.Commit) []protocol.ServerFrame {
	out := make([]protocol.ServerFrame, len(cs))
	for i, c := range cs {
		f := protocol.MLSFrame{ConversationID: c.ConversationID, Seq: c.Seq, Epoch: c.Epoch, SenderID: c.SenderID, DeviceID: c.DeviceID}
		raw, err := s.keys.Open(c.Sealed, mlsAAD("commit", c.ConversationID, strconv.FormatInt(c.Epoch, 10)))
		if err != nil {
			// The frame still takes its place: the client sees a gap in
			// the epochs it cannot bridge, rather than a silent skip.
			s.log.Error("commit failed to decrypt", "conversation", c.ConversationID, "seq", c.Seq, "err", err)
		} else {
			f.Commit = base64.StdEncoding.EncodeToString(raw)
		}
		out[i] = f
	}
	return out
}
