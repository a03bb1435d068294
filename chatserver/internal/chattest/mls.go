package chattest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/parley-chat/parley/chatserver/mlswire"
	"github.com/parley-chat/parley/chatserver/mlswire/mlswiretest"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// The MLS Delivery Service from a test client's side: devices with their
// own Ed25519 keys, KeyPackages and framing built by mlswiretest (valid MLS
// encodings; the "ciphertext" inside is random bytes: the server reads only
// the clear headers).

// Device is one of a client's registered MLS devices.
type Device struct {
	C   *Client
	ID  string
	Key ed25519.PrivateKey
}

// B64 is standard base64, the API's encoding of bytes.
func B64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// NewDevice registers a device with a fresh Ed25519 key.
func (c *Client) NewDevice(name string) *Device {
	c.API.T.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		c.API.T.Fatal(err)
	}
	r := c.Do("POST", "/api/v1/devices", map[string]string{"name": name, "signatureKey": B64(key.Public().(ed25519.PublicKey))})
	if r.Status != http.StatusCreated {
		c.API.T.Fatalf("register device: %d %s", r.Status, r.Body)
	}
	var d protocol.Device
	r.Decode(c.API.T, &d)
	return &Device{C: c, ID: d.ID, Key: key}
}

// On is the device used through another replica.
func (d *Device) On(a *API) *Device {
	cp := *d
	cp.C = d.C.On(a)
	return &cp
}

// Identity is the device's MLS credential identity.
func (d *Device) Identity() string { return d.C.User.ID + ":" + d.ID }

// KeyPackage builds a valid KeyPackage of the device (or shaped by o).
func (d *Device) KeyPackage(o mlswiretest.KeyPackageOptions) (msg []byte, ref string) {
	m, r := mlswiretest.KeyPackage(d.Key, d.Identity(), o)
	return m, hex.EncodeToString(r)
}

// Upload uploads n fresh KeyPackages and returns their refs (hex).
func (d *Device) Upload(n int) []string {
	d.C.API.T.Helper()
	var kps, refs []string
	for range n {
		m, ref := d.KeyPackage(mlswiretest.KeyPackageOptions{})
		kps = append(kps, B64(m))
		refs = append(refs, ref)
	}
	r := d.C.Do("POST", "/api/v1/devices/"+d.ID+"/keypackages", map[string]any{"keyPackages": kps})
	if r.Status != http.StatusOK {
		d.C.API.T.Fatalf("upload key packages: %d %s", r.Status, r.Body)
	}
	return refs
}

// Claimed is the answer of a KeyPackage claim.
type Claimed struct {
	KeyPackages []protocol.ClaimedKeyPackage `json:"keyPackages"`
	Missing     []protocol.MissingKeyPackage `json:"missing"`
}

// Refs are the KeyPackageRefs (raw) of the claimed packages.
func (c Claimed) Refs(t interface{ Fatalf(string, ...any) }) [][]byte {
	var out [][]byte
	for _, k := range c.KeyPackages {
		raw, err := base64.StdEncoding.DecodeString(k.KeyPackage)
		if err != nil {
			t.Fatalf("claimed key package: %v", err)
		}
		kp, err := mlswire.ParseKeyPackage(raw)
		if err != nil {
			t.Fatalf("claimed key package does not parse: %v", err)
		}
		out = append(out, kp.Ref())
	}
	return out
}

// Claim claims KeyPackages of users for convID.
func (c *Client) Claim(convID string, users ...string) (Claimed, Resp) {
	c.API.T.Helper()
	r := c.Do("POST", "/api/v1/conversations/"+convID+"/mls/keypackages", map[string]any{"users": users})
	var out Claimed
	if r.Status == http.StatusOK {
		r.Decode(c.API.T, &out)
	}
	return out, r
}

// Commit posts a commit made by the device at epoch, with a Welcome for
// refs when there are any, and membership changes.
func (d *Device) Commit(convID string, epoch uint64, refs [][]byte, add, remove []string) (protocol.CommitResult, Resp) {
	d.C.API.T.Helper()
	body := map[string]any{"deviceId": d.ID, "commit": B64(mlswiretest.Commit(convID, epoch))}
	if len(refs) > 0 {
		body["welcome"] = B64(mlswiretest.Welcome(refs...))
	}
	if len(add) > 0 {
		body["add"] = add
	}
	if len(remove) > 0 {
		body["remove"] = remove
	}
	r := d.C.Do("POST", "/api/v1/conversations/"+convID+"/mls/commit", body)
	var out protocol.CommitResult
	if r.Status == http.StatusOK {
		r.Decode(d.C.API.T, &out)
	}
	return out, r
}

// SendCiphertext sends an MLS application message (raw) over REST.
func (c *Client) SendCiphertext(convID string, msg []byte) (protocol.Message, Resp) {
	c.API.T.Helper()
	r := c.Do("POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"ciphertext": B64(msg)})
	var m protocol.Message
	if r.Status == http.StatusCreated {
		r.Decode(c.API.T, &m)
	}
	return m, r
}

// E2EEGroup creates an end-to-end encrypted group with the given members.
func (c *Client) E2EEGroup(title string, members ...*Client) protocol.Conversation {
	c.API.T.Helper()
	conv := c.group(title, true, members)
	if !conv.E2EE || conv.MLSEpoch != 0 {
		c.API.T.Fatalf("e2ee group: %+v", conv)
	}
	return conv
}

// Welcomes lists the device's Welcomes.
func (d *Device) Welcomes() ([]protocol.Welcome, Resp) {
	d.C.API.T.Helper()
	r := d.C.Do("GET", "/api/v1/devices/"+d.ID+"/welcomes", nil)
	var out struct {
		Welcomes []protocol.Welcome `json:"welcomes"`
	}
	if r.Status == http.StatusOK {
		r.Decode(d.C.API.T, &out)
	}
	return out.Welcomes, r
}

// MLSFrame is an "mls" frame as received.
type MLSFrame = protocol.MLSFrame

// MLS decodes an "mls" frame.
func (f Frame) MLS() (MLSFrame, error) {
	var m MLSFrame
	err := json.Unmarshal(f.Raw, &m)
	return m, err
}
