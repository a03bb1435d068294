package attachments

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// JPEG metadata is stripped losslessly, as the upload streams: the
// segments are copied except APP1 to APP15 (EXIF with its GPS block and
// embedded thumbnail, XMP, Photoshop IRB, maker notes, ...) and comments,
// which are dropped, and bytes after the end-of-image marker (a file
// appended to the picture). Kept: APP0 (JFIF), an ICC colour profile
// (APP2 "ICC_PROFILE") and APP14 "Adobe" (both change how pixels decode),
// and every frame, table and scan byte, so the image is bit-for-bit the
// one uploaded. The scans are parsed too (stuffed bytes, restart markers),
// so a metadata segment placed between the scans of a progressive JPEG is
// found and dropped as well. The EXIF orientation, which phones rely on
// rather than rotating the pixels, is carried over in a new EXIF segment
// holding that one tag.

var errNotJPEG = errors.New("not a JPEG stream")

// stripJPEG copies the JPEG in src to dst without its metadata and returns
// the EXIF orientation it found (1 when none).
func stripJPEG(dst io.Writer, src io.Reader) (orientation int, err error) {
	in := bufio.NewReaderSize(src, 32<<10)
	out := bufio.NewWriterSize(dst, 32<<10)
	orientation = 1
	var soi [2]byte
	if _, err := io.ReadFull(in, soi[:]); err != nil || soi != [2]byte{0xFF, 0xD8} {
		return 0, errNotJPEG
	}
	out.Write(soi[:])
	marker, err := nextMarker(in)
	for {
		if err != nil {
			return 0, err
		}
		switch {
		case marker == 0xD9: // EOI: what follows is not part of the image
			out.Write([]byte{0xFF, 0xD9})
			return orientation, out.Flush()
		case marker >= 0xD0 && marker <= 0xD7, marker == 0x01: // no length
			out.Write([]byte{0xFF, marker})
			marker, err = nextMarker(in)
			continue
		}
		var lb [2]byte
		if _, err := io.ReadFull(in, lb[:]); err != nil {
			return 0, fmt.Errorf("jpeg: segment %#x: %w", marker, err)
		}
		n := int(binary.BigEndian.Uint16(lb[:]))
		if n < 2 {
			return 0, fmt.Errorf("jpeg: segment %#x of length %d", marker, n)
		}
		payload := make([]byte, n-2)
		if _, err := io.ReadFull(in, payload); err != nil {
			return 0, fmt.Errorf("jpeg: segment %#x: %w", marker, err)
		}
		if keepSegment(marker, payload) {
			out.Write([]byte{0xFF, marker})
			out.Write(lb[:])
			out.Write(payload)
		} else if marker == 0xE1 && bytes.HasPrefix(payload, []byte("Exif\x00\x00")) {
			if o := exifOrientation(payload[6:]); o > 1 && o <= 8 {
				orientation = o
				out.Write(orientationSegment(o))
			}
		}
		if marker != 0xDA { // not a scan
			marker, err = nextMarker(in)
			continue
		}
		// Entropy-coded data: copy until a byte 0xFF that starts a marker
		// (0xFF00 is a stuffed 0xFF, 0xFFD0-D7 restart markers, more 0xFF fill).
		marker, err = copyScan(out, in)
	}
}

// nextMarker reads 0xFF (and any fill 0xFF) and returns the marker byte.
func nextMarker(in *bufio.Reader) (byte, error) {
	b, err := in.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("jpeg: %w", io.ErrUnexpectedEOF)
	}
	if b != 0xFF {
		return 0, fmt.Errorf("jpeg: byte %#x where a marker should be", b)
	}
	for b == 0xFF {
		if b, err = in.ReadByte(); err != nil {
			return 0, fmt.Errorf("jpeg: %w", io.ErrUnexpectedEOF)
		}
	}
	return b, nil
}

func copyScan(out *bufio.Writer, in *bufio.Reader) (byte, error) {
	for {
		chunk, err := in.ReadSlice(0xFF)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return 0, fmt.Errorf("jpeg: scan: %w", io.ErrUnexpectedEOF)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			if _, err := out.Write(chunk); err != nil {
				return 0, err // the store gave up: stop reading
			}
			continue
		}
		if _, err := out.Write(chunk[:len(chunk)-1]); err != nil { // the 0xFF goes with what follows
			return 0, err
		}
		b, err := in.ReadByte()
		for err == nil && b == 0xFF {
			b, err = in.ReadByte()
		}
		if err != nil {
			return 0, fmt.Errorf("jpeg: scan: %w", io.ErrUnexpectedEOF)
		}
		if b == 0x00 || (b >= 0xD0 && b <= 0xD7) {
			out.Write([]byte{0xFF, b})
			continue
		}
		return b, nil
	}
}

// keepSegment reports whether a segment is image data rather than metadata.
func keepSegment(marker byte, payload []byte) bool {
	switch {
	case marker == 0xFE: // comment
		return false
	case marker == 0xE0: // JFIF / JFXX
		return true
	case marker == 0xE2:
		return bytes.HasPrefix(payload, []byte("ICC_PROFILE\x00"))
	case marker == 0xEE:
		return bytes.HasPrefix(payload, []byte("Adobe"))
	case marker >= 0xE1 && marker <= 0xEF:
		return false
	}
	return true
}

// exifOrientation reads tag 0x0112 of IFD0 from a TIFF structure.
func exifOrientation(tiff []byte) int {
	if len(tiff) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	off := int(bo.Uint32(tiff[4:]))
	if off < 8 || off+2 > len(tiff) {
		return 0
	}
	n := int(bo.Uint16(tiff[off:]))
	for i := 0; i < n; i++ {
		e := off + 2 + 12*i
		if e+12 > len(tiff) {
			return 0
		}
		if bo.Uint16(tiff[e:]) == 0x0112 && bo.Uint16(tiff[e+2:]) == 3 {
			return int(bo.Uint16(tiff[e+8:]))
		}
	}
	return 0
}

// orientationSegment is an APP1 EXIF segment holding only the orientation.
func orientationSegment(o int) []byte {
	b := []byte{0xFF, 0xE1, 0, 34}
	b = append(b, "Exif\x00\x00"...)
	b = append(b, "MM\x00\x2A\x00\x00\x00\x08"...) // big-endian TIFF, IFD0 at 8
	b = append(b, 0, 1)                            // one entry
	b = append(b, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0)
	return append(b, 0, 0, 0, 0) // no next IFD
}
