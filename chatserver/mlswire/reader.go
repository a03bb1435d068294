package mlswire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("mlswire: malformed")

// reader decodes the TLS presentation language with MLS's variable-length
// vectors (RFC 9420 §2.1.2). It never allocates: slices point into the input.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("%s: need %d bytes, have %d", what, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(what string) uint8 {
	v := r.take(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16(what string) uint16 {
	v := r.take(2, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) u32(what string) uint32 {
	v := r.take(4, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (r *reader) u64(what string) uint64 {
	v := r.take(8, what)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// varint reads a vector length: 1, 2 or 4 bytes by its top two bits, in the
// fewest bytes that hold it (a longer encoding is malformed, as the RFC says).
func (r *reader) varint(what string) int {
	first := r.take(1, what)
	if first == nil {
		return 0
	}
	prefix := first[0] >> 6
	v := uint32(first[0] & 0x3f)
	switch prefix {
	case 0:
		return int(v)
	case 1:
		rest := r.take(1, what)
		if rest == nil {
			return 0
		}
		v = v<<8 | uint32(rest[0])
		if v < 64 {
			r.fail("%s: length %d not minimally encoded", what, v)
			return 0
		}
	case 2:
		rest := r.take(3, what)
		if rest == nil {
			return 0
		}
		v = v<<24 | uint32(rest[0])<<16 | uint32(rest[1])<<8 | uint32(rest[2])
		if v < 16384 {
			r.fail("%s: length %d not minimally encoded", what, v)
			return 0
		}
	default:
		r.fail("%s: invalid length prefix", what)
		return 0
	}
	return int(v)
}

// vec reads an opaque<V>.
func (r *reader) vec(what string) []byte {
	n := r.varint(what)
	if r.err != nil {
		return nil
	}
	v := r.take(n, what)
	if v == nil && r.err == nil {
		return []byte{}
	}
	return v
}

// sub reads a vector and returns a reader over its content, for vectors of
// structures.
func (r *reader) sub(what string) *reader {
	v := r.vec(what)
	return &reader{b: v, err: r.err}
}

// each calls f for every element of a vector of structures, and checks that
// the elements fill the vector exactly.
func (r *reader) each(what string, f func(*reader)) {
	s := r.sub(what)
	for s.err == nil && len(s.b) > 0 {
		f(s)
	}
	if s.err != nil && r.err == nil {
		r.err = s.err
	}
}

// done fails unless every byte was read.
func (r *reader) done(what string) {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%s: %d trailing bytes", what, len(r.b))
	}
}

// AppendVector appends v as an MLS opaque<V> (a variable-length vector); tests
// and fixtures build framing with it.
func AppendVector(dst, v []byte) []byte {
	return append(appendLength(dst, len(v)), v...)
}

// appendLength appends a vector length in the fewest bytes (n < 2^30).
func appendLength(dst []byte, n int) []byte {
	switch {
	case n < 1<<6:
		dst = append(dst, byte(n))
	case n < 1<<14:
		dst = append(dst, byte(n>>8)|0x40, byte(n))
	default:
		dst = append(dst, byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n))
	}
	return dst
}
