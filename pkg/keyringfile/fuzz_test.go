package keyringfile

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to Parse, as read from a keyring file or
// Secret. Properties: it never panics; what it accepts is valid (Validate)
// and re-marshals; the re-marshalled document parses to the same keyring
// and marshals to the same bytes again (a fixed point).
func FuzzParse(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	good := &File{Version: Version,
		JWT: []JWTKey{
			{ID: "j-1", Alg: AlgEdDSA, State: StateActive, Created: at, Activated: &at, PrivateKey: key(1)},
			{ID: "j-2", Alg: AlgEdDSA, State: StateStaged, Created: at, PrivateKey: key(2)},
			{ID: "j-0", Alg: AlgEdDSA, State: StateRetired, Created: at, Activated: &at, Retired: &at, PrivateKey: key(3)},
		},
		Data: []DataKey{{ID: "d-1", Alg: AlgA256GCM, State: StateActive, Created: at, Activated: &at, Key: key(4)}},
	}
	raw, err := good.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	for _, s := range []string{
		`{"version":1,"jwt":[{"id":"j","alg":"EdDSA","state":"active","created":"2026-01-02T03:04:05+14:00",` +
			`"privateKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],` +
			`"data":[{"id":"d","alg":"A256GCM","state":"active","created":"0001-01-01T00:00:00Z","activated":null,` +
			`"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`,
		`{"Version":1,"JWT":[],"Data":[]}`,
		`{"version":1,"jwt":null,"data":null,"extra":1}`,
		`{"version":2}`,
		`{"version":1} {}`,
		`null`, ``, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		file, err := Parse(raw)
		if err != nil {
			if file != nil {
				t.Fatalf("Parse returned a document with the error %v", err)
			}
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("Parse accepted a document Validate refuses: %v\n%s", err, raw)
		}
		out, err := file.Marshal()
		if err != nil {
			t.Fatalf("Parse accepted a document that does not marshal: %v\n%s", err, raw)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("the re-marshalled document does not parse: %v\nin:  %s\nout: %s", err, raw, out)
		}
		if !sameFile(file, again) {
			t.Fatalf("the keyring changed through Marshal and Parse:\nin:  %s\nout: %s", raw, out)
		}
		if out2, err := again.Marshal(); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not a fixed point (%v):\n%s\n%s", err, out, out2)
		}
	})
}

// sameFile compares two documents; times by instant and offset (a parsed
// zone is a new *time.Location each time, so reflect.DeepEqual cannot).
func sameFile(a, b *File) bool {
	sameTime := func(x, y time.Time) bool {
		_, ox := x.Zone()
		_, oy := y.Zone()
		return x.Equal(y) && ox == oy
	}
	samePtr := func(x, y *time.Time) bool {
		return (x == nil) == (y == nil) && (x == nil || sameTime(*x, *y))
	}
	return a.Version == b.Version &&
		slices.EqualFunc(a.JWT, b.JWT, func(x, y JWTKey) bool {
			return x.ID == y.ID && x.Alg == y.Alg && x.State == y.State && sameTime(x.Created, y.Created) &&
				samePtr(x.Activated, y.Activated) && samePtr(x.Retired, y.Retired) && bytes.Equal(x.PrivateKey, y.PrivateKey)
		}) &&
		slices.EqualFunc(a.Data, b.Data, func(x, y DataKey) bool {
			return x.ID == y.ID && x.Alg == y.Alg && x.State == y.State && sameTime(x.Created, y.Created) &&
				samePtr(x.Activated, y.Activated) && samePtr(x.Retired, y.Retired) && bytes.Equal(x.Key, y.Key)
		})
}
