package controllers

import (
	"strings"
	"testing"
	"time"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// CheckKeyring against the record: the operator's own rotations pass, a keyring
// without the recorded active data key or with other material under a recorded id
// is foreign, and recorded retired keys a person removed are reported, not refused.
func TestCheckKeyring(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kr, err := NewKeyring(start)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(f *keyringfile.File) chatv1alpha1.KeysStatus {
		a, _ := f.ActiveData()
		return chatv1alpha1.KeysStatus{ActiveDataKeyID: a.ID, DataKeys: RecordDataKeys(f)}
	}
	p := policy
	p.RotateNow = true
	staged, err := Rotate(kr, start.Add(time.Minute), p)
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := Rotate(staged.File, start.Add(time.Hour), policy)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewKeyring(start)
	if err != nil {
		t.Fatal(err)
	}
	withoutRetired := cloneKeyring(promoted.File)
	withoutRetired.Data = withoutRetired.Data[1:] // the first key, now retired
	sameIDOtherKey := cloneKeyring(kr)
	sameIDOtherKey.Data[0].Key = other.Data[0].Key

	for _, tc := range []struct {
		name     string
		recorded chatv1alpha1.KeysStatus
		keyring  *keyringfile.File
		foreign  string // substring of the reason; "" for not foreign
		removed  []string
	}{
		{"nothing recorded", chatv1alpha1.KeysStatus{}, other, "", nil},
		{"unchanged", rec(kr), kr, "", nil},
		{"a key staged by the operator", rec(kr), staged.File, "", nil},
		{"promoted since the record", rec(staged.File), promoted.File, "", nil},
		{"an older record (active id only) and the same key", chatv1alpha1.KeysStatus{ActiveDataKeyID: kr.Data[0].ID}, kr, "", nil},
		{"another keyring", rec(kr), other, "recorded active data key " + kr.Data[0].ID + " is not in it", nil},
		{"another keyring, older record", chatv1alpha1.KeysStatus{ActiveDataKeyID: kr.Data[0].ID}, other, "is not in it", nil},
		{"same id, other material", rec(kr), sameIDOtherKey, "holds other key material", nil},
		{"a retired key removed by a person", rec(promoted.File), withoutRetired, "", []string{kr.Data[0].ID}},
		{"an older backup without the active key", rec(promoted.File), kr, "is not in it", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckKeyring(tc.recorded, tc.keyring)
			if (tc.foreign == "") != (got.Foreign == "") || !strings.Contains(got.Foreign, tc.foreign) {
				t.Errorf("Foreign = %q, want %q", got.Foreign, tc.foreign)
			}
			if strings.Join(got.Removed, ",") != strings.Join(tc.removed, ",") {
				t.Errorf("Removed = %v, want %v", got.Removed, tc.removed)
			}
		})
	}
}

// The record names keys and tells them apart, never reveals them.
func TestRecordDataKeysHoldsNoKeyMaterial(t *testing.T) {
	kr, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := RecordDataKeys(kr)
	if len(r) != 1 || r[0].ID != kr.Data[0].ID || r[0].State != keyringfile.StateActive || len(r[0].Fingerprint) != 16 {
		t.Fatalf("record %+v", r)
	}
	other, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if DataKeyFingerprint(other.Data[0]) == r[0].Fingerprint {
		t.Error("two keys share a fingerprint")
	}
}
