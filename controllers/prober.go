package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// KeyringzPath is where a chat server reports the keyring it has loaded
// (chatserver/server): on its metrics listener, or beside /metrics on the API
// port when it has none.
const KeyringzPath = "/keyringz"

// DefaultProbeTimeout bounds one /keyringz request: a pod that cannot answer
// within it counts as not having loaded the staged key.
const DefaultProbeTimeout = 2 * time.Second

// maxKeyringzBytes caps the answer read: a keyring report is a few hundred bytes.
const maxKeyringzBytes = 1 << 20

// probePorts are the chat server container's port names the prober tries, in
// order: the metrics listener, then the API port (servers without one).
var probePorts = []string{"metrics", "http"}

// LoadedKey is one key a chat server reports, without material.
type LoadedKey struct {
	ID    string `json:"kid"`
	Kind  string `json:"kind"`
	State string `json:"state"`
}

// LoadedKeyring is a chat server's answer at /keyringz.
type LoadedKeyring struct {
	// Digest of the keys' ids, kinds and states (chatserver/keyring.Digest).
	Digest string      `json:"digest"`
	Keys   []LoadedKey `json:"keys"`
	// Accepts lists the optional keyring parts the server loads
	// ("vapid"); servers from before an optional part existed leave it out.
	Accepts []string `json:"accepts,omitempty"`
}

// AcceptsVAPID is the Accepts entry of chat servers that load VAPID keys.
const AcceptsVAPID = "vapid"

// Has reports whether the server holds the key, in any state: holding it at
// all, it verifies and decrypts with it.
func (l LoadedKeyring) Has(kid string) bool {
	return slices.ContainsFunc(l.Keys, func(k LoadedKey) bool { return k.ID == kid })
}

// KeyringProber asks a chat server pod which keys it has loaded. The operator
// promotes a staged key only once every ready pod has it.
type KeyringProber interface {
	LoadedKeyring(ctx context.Context, pod *corev1.Pod) (LoadedKeyring, error)
}

// HTTPKeyringProber reads GET http://<pod IP>:<port>/keyringz, the port being
// the chat server container's "metrics" port, else its "http" port.
type HTTPKeyringProber struct {
	// Client defaults to one without proxies: pod IPs are reached directly.
	Client *http.Client
	// Timeout of one request; DefaultProbeTimeout when zero.
	Timeout time.Duration
}

var directClient = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}}

// LoadedKeyring implements KeyringProber.
func (p HTTPKeyringProber) LoadedKeyring(ctx context.Context, pod *corev1.Pod) (LoadedKeyring, error) {
	if pod.Status.PodIP == "" {
		return LoadedKeyring{}, fmt.Errorf("pod %s has no IP", pod.Name)
	}
	port, ok := chatServerPort(pod)
	if !ok {
		return LoadedKeyring{}, fmt.Errorf("pod %s: container %s has no port named %v", pod.Name, containerName, probePorts)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	c := p.Client
	if c == nil {
		c = directClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port))) + KeyringzPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return LoadedKeyring{}, fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	res, err := c.Do(req)
	if err != nil {
		return LoadedKeyring{}, fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return LoadedKeyring{}, fmt.Errorf("pod %s: GET %s: %s", pod.Name, url, res.Status)
	}
	var l LoadedKeyring
	if err := json.NewDecoder(io.LimitReader(res.Body, maxKeyringzBytes)).Decode(&l); err != nil {
		return LoadedKeyring{}, fmt.Errorf("pod %s: GET %s: decode: %w", pod.Name, url, err)
	}
	return l, nil
}

// chatServerPort finds the port the pod serves /keyringz on.
func chatServerPort(pod *corev1.Pod) (int32, bool) {
	i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == containerName })
	if i < 0 {
		return 0, false
	}
	for _, name := range probePorts {
		for _, p := range pod.Spec.Containers[i].Ports {
			if p.Name == name {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}
