package server

import (
	"encoding/json"
	"net/http"

	"github.com/parley-chat/parley/chatserver/keyring"
)

// KeyringzPath reports the loaded keyring (ids, kinds, states and their digest;
// never key material) for the operator, which promotes a staged key only once
// every ready replica reports it. It is served where /metrics is: on the
// metrics listener when there is one, off the public port.
const KeyringzPath = "/keyringz"

func keyringzHandler(k *keyring.Keyring) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(k.Loaded())
	})
}
