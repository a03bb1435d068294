package protocol

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeClient feeds arbitrary bytes to DecodeClient, as a client can
// send in a WebSocket text frame. Properties:
//   - it never panics;
//   - a decoded frame re-encodes (type first, as a client writes it) to JSON
//     that decodes to an equal frame with the same id;
//   - the id is never lost: whenever the input is a JSON object whose only
//     "id" member (any case, as encoding/json matches field names) holds a
//     string, that string is returned, with or without an error.
func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{
		`{"type":"auth","id":"a1","token":"eyJhbGciOiJFZERTQSJ9.e30.c2ln"}`,
		`{"type":"send","id":"s1","conversationId":"c_1","clientId":"k1","body":"hello"}`,
		`{"type":"send","id":"s2","conversationId":"c_1","body":null}`,
		`{"type":"send","id":"s3","conversationId":"c_1","body":"\u00e9\ud83d\ude00"}`,
		`{"type":"sync","id":"y1","cursors":{"c_1":3,"c_2":0}}`,
		`{"type":"sync","id":"y2","cursors":{}}`,
		`{"type":"typing","id":"t1","conversationId":"c_1"}`,
		`{"type":"read","id":"r1","conversationId":"c_1","seq":9223372036854775807}`,
		`{"type":"ping","id":"p1"}`,
		`{"type":"ping"}`,
		`{"type":"read","id":"r2","seq":"7"}`,    // wrong field type
		`{"type":"send","id":"s4","body":5}`,     // wrong field type
		`{"type":"nope","id":"x"}`,               // unknown type
		`{"type":"ping","id":7}`,                 // id is not a string
		`{"type":"ping","ID":"upper"}`,           // encoding/json matches names in any case
		`{"type":"ping","id":"a","id":"b"}`,      // the last duplicate wins
		`{"type":"sync","id":"y3","cursors":[]}`, // wrong type
		`{"type":"ping","id":"x"} trailing`,
		`{"type":"ping","id":"\xff"}`, // invalid UTF-8 in the id
		`[]`, `null`, `"ping"`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, id, err := DecodeClient(data)
		if want, ok := readableID(data); ok && id != want {
			t.Fatalf("DecodeClient(%q) returned id %q (err %v), want %q", data, id, err, want)
		}
		if err != nil {
			if fr != nil {
				t.Fatalf("DecodeClient(%q) returned a frame %#v with the error %v", data, fr, err)
			}
			return
		}
		if fr == nil {
			t.Fatalf("DecodeClient(%q) returned neither a frame nor an error", data)
		}
		if id != fr.RequestID() {
			t.Fatalf("DecodeClient(%q): id %q, but the frame's id is %q", data, id, fr.RequestID())
		}
		enc := encodeClient(t, fr)
		again, id2, err := DecodeClient(enc)
		if err != nil {
			t.Fatalf("re-encoded frame %s (from %q) does not decode: %v", enc, data, err)
		}
		if !reflect.DeepEqual(again, fr) || id2 != id {
			t.Fatalf("round trip changed the frame:\n in  %q\n got %#v (id %q)\n enc %s\n out %#v (id %q)", data, fr, id, enc, again, id2)
		}
	})
}

// encodeClient writes a client frame as a client would: {"type":..., fields}.
func encodeClient(t *testing.T, f ClientFrame) []byte {
	t.Helper()
	body, err := json.Marshal(f)
	if err != nil {
		t.Fatalf("marshal %#v: %v", f, err)
	}
	typ, err := json.Marshal(f.FrameType())
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(`{"type":`), typ...)
	if len(body) > 2 {
		out = append(append(out, ','), body[1:]...)
	} else {
		out = append(out, '}')
	}
	return out
}

// readableID is the oracle for the id: it reads data independently of
// DecodeClient and reports the id a client plainly meant, when there is one.
// Ambiguous inputs (several members named "id" in different cases, or one
// named "Id") are left out: which one counts is encoding/json's business.
func readableID(data []byte) (string, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return "", false
	}
	n := 0
	for k := range obj {
		if strings.EqualFold(k, "id") {
			n++
		}
	}
	raw, ok := obj["id"]
	if !ok || n != 1 {
		return "", false
	}
	var id string
	if json.Unmarshal(raw, &id) != nil {
		return "", false
	}
	return id, true
}
