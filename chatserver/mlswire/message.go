package mlswire

import "fmt"

// Sender types (RFC 9420 §6).
const (
	SenderMember            uint8 = 1
	SenderExternal          uint8 = 2
	SenderNewMemberProposal uint8 = 3
	SenderNewMemberCommit   uint8 = 4
)

// Proposal types (RFC 9420 §17.4).
const (
	proposalAdd                    uint16 = 1
	proposalUpdate                 uint16 = 2
	proposalRemove                 uint16 = 3
	proposalPSK                    uint16 = 4
	proposalReInit                 uint16 = 5
	proposalExternalInit           uint16 = 6
	proposalGroupContextExtensions uint16 = 7
)

// Message is the clear header of a PublicMessage or PrivateMessage: what
// the delivery service orders and authorises by. Everything else of a
// PrivateMessage (sender, content) is encrypted.
type Message struct {
	WireFormat  uint16
	GroupID     []byte
	Epoch       uint64
	ContentType uint8
}

// ParseMessage decodes an MLSMessage carrying a PublicMessage or a
// PrivateMessage. A PublicMessage is decoded whole (its proposals and commit
// too), so trailing or truncated bytes are refused; a PrivateMessage's
// encrypted parts are opaque. Neither signature nor MAC is checked: that
// needs the group's secrets, which only members hold.
func ParseMessage(b []byte) (*Message, error) {
	r := &reader{b: b}
	version := r.u16("MLSMessage version")
	wf := r.u16("MLSMessage wire_format")
	if r.err != nil {
		return nil, fmt.Errorf("message: %w", r.err)
	}
	if version != Version10 {
		return nil, fmt.Errorf("mlswire: message: protocol version %d, want 1 (mls10)", version)
	}
	m := &Message{WireFormat: wf}
	switch wf {
	case WirePublic:
		m.GroupID = r.vec("group_id")
		m.Epoch = r.u64("epoch")
		sender := decodeSender(r)
		r.vec("authenticated_data")
		m.ContentType = r.u8("content_type")
		switch m.ContentType {
		case ContentApplication:
			r.vec("application_data")
		case ContentProposal:
			decodeProposal(r)
		case ContentCommit:
			decodeCommit(r)
		default:
			r.fail("content_type %d", m.ContentType)
		}
		// FramedContentAuthData: signature, and a confirmation tag on commits.
		r.vec("signature")
		if m.ContentType == ContentCommit {
			r.vec("confirmation_tag")
		}
		if sender == SenderMember {
			r.vec("membership_tag")
		}
	case WirePrivate:
		p := decodePrivate(r)
		m.GroupID, m.Epoch, m.ContentType = p.groupID, p.epoch, p.contentType
	default:
		return nil, fmt.Errorf("mlswire: message: wire format %d is not a public or private message", wf)
	}
	r.done("message")
	if r.err != nil {
		return nil, fmt.Errorf("message: %w", r.err)
	}
	return m, nil
}

// privateMessage is a PrivateMessage's fields (RFC 9420 §6.3): the header in
// the clear, the rest encrypted.
type privateMessage struct {
	groupID                               []byte
	epoch                                 uint64
	contentType                           uint8
	authData, encryptedSender, ciphertext []byte
}

func decodePrivate(r *reader) privateMessage {
	var p privateMessage
	p.groupID = r.vec("group_id")
	p.epoch = r.u64("epoch")
	p.contentType = r.u8("content_type")
	if r.err == nil && (p.contentType < ContentApplication || p.contentType > ContentCommit) {
		r.fail("content_type %d", p.contentType)
	}
	p.authData = r.vec("authenticated_data")
	p.encryptedSender = r.vec("encrypted_sender_data")
	p.ciphertext = r.vec("ciphertext")
	return p
}

func decodeSender(r *reader) uint8 {
	t := r.u8("sender_type")
	switch t {
	case SenderMember:
		r.u32("leaf_index")
	case SenderExternal:
		r.u32("sender_index")
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		r.fail("sender_type %d", t)
	}
	return t
}

// decodeProposal reads a Proposal (RFC 9420 §12.1).
func decodeProposal(r *reader) {
	t := r.u16("proposal_type")
	switch t {
	case proposalAdd:
		// A KeyPackage inside: decode it in place, signatures unchecked
		// (the members check them).
		start := r.b
		if r.err != nil {
			return
		}
		n, err := keyPackageLen(start)
		if err != nil {
			r.fail("add proposal: %v", err)
			return
		}
		r.take(n, "add proposal key package")
	case proposalUpdate:
		var l leafNode
		l.decode(r)
	case proposalRemove:
		r.u32("removed")
	case proposalPSK:
		decodePSKID(r)
	case proposalReInit:
		r.vec("reinit group_id")
		r.u16("reinit version")
		r.u16("reinit cipher_suite")
		r.each("reinit extensions", func(e *reader) { e.u16("extension type"); e.vec("extension data") })
	case proposalExternalInit:
		r.vec("kem_output")
	case proposalGroupContextExtensions:
		r.each("group context extensions", func(e *reader) { e.u16("extension type"); e.vec("extension data") })
	default:
		// Other proposal types have no standard encoding to skip over.
		r.fail("proposal type %d", t)
	}
}

// keyPackageLen decodes a KeyPackage at the start of b and returns its length.
func keyPackageLen(b []byte) (int, error) {
	r := &reader{b: b}
	r.u16("version")
	r.u16("cipher_suite")
	r.vec("init_key")
	var l leafNode
	l.decode(r)
	r.each("key package extensions", func(e *reader) { e.u16("extension type"); e.vec("extension data") })
	r.vec("key package signature")
	if r.err != nil {
		return 0, r.err
	}
	return len(b) - len(r.b), nil
}

func decodePSKID(r *reader) {
	switch t := r.u8("psktype"); t {
	case 1: // external
		r.vec("psk_id")
	case 2: // resumption
		r.u8("usage")
		r.vec("psk_group_id")
		r.u64("psk_epoch")
	default:
		r.fail("psktype %d", t)
	}
	r.vec("psk_nonce")
}

// decodeCommit reads a Commit (RFC 9420 §12.4).
func decodeCommit(r *reader) {
	r.each("commit proposals", func(p *reader) {
		switch t := p.u8("proposal_or_ref type"); t {
		case 1:
			decodeProposal(p)
		case 2:
			p.vec("proposal reference")
		default:
			p.fail("proposal_or_ref type %d", t)
		}
	})
	switch present := r.u8("optional path"); present {
	case 0:
	case 1:
		var l leafNode
		l.decode(r)
		r.each("update path nodes", func(n *reader) {
			n.vec("encryption_key")
			n.each("encrypted_path_secret", func(c *reader) {
				c.vec("kem_output")
				c.vec("ciphertext")
			})
		})
	default:
		r.fail("optional path presence %d", present)
	}
}

// Welcome is what the server reads of a Welcome (RFC 9420 §12.4.3.1): for
// whom it is. The group secrets and GroupInfo are encrypted to them.
type Welcome struct {
	CipherSuite uint16
	NewMembers  [][]byte // KeyPackageRefs
}

// ParseWelcome decodes an MLSMessage carrying a Welcome.
func ParseWelcome(b []byte) (*Welcome, error) {
	r := &reader{b: b}
	version := r.u16("MLSMessage version")
	wf := r.u16("MLSMessage wire_format")
	if r.err != nil {
		return nil, fmt.Errorf("welcome: %w", r.err)
	}
	if version != Version10 {
		return nil, fmt.Errorf("mlswire: welcome: protocol version %d, want 1 (mls10)", version)
	}
	if wf != WireWelcome {
		return nil, fmt.Errorf("mlswire: welcome: wire format %d is not a welcome", wf)
	}
	w := &Welcome{CipherSuite: r.u16("cipher_suite")}
	r.each("secrets", func(s *reader) {
		ref := s.vec("new_member")
		s.vec("kem_output")
		s.vec("encrypted_group_secrets")
		if s.err == nil {
			w.NewMembers = append(w.NewMembers, ref)
		}
	})
	r.vec("encrypted_group_info")
	r.done("welcome")
	if r.err != nil {
		return nil, fmt.Errorf("welcome: %w", r.err)
	}
	if w.CipherSuite != SuiteX25519AES128Ed25519 {
		return nil, fmt.Errorf("mlswire: welcome: ciphersuite %d, only 1 is accepted", w.CipherSuite)
	}
	if len(w.NewMembers) == 0 {
		return nil, fmt.Errorf("mlswire: welcome: %w: no recipients", ErrMalformed)
	}
	return w, nil
}
