package delivery

import (
	"time"

	"github.com/parley-chat/parley/chatserver/backplane"
)

// SealRaw seals an arbitrary body, so tests can reach Open's body checks
// past a valid tag.
func (c *Codec) SealRaw(kind byte, stored time.Time, body []byte, topic string) backplane.Message {
	return c.seal(kind, stored, body, topic)[0]
}
