package s3blob

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// privateCA makes a certificate authority and a server certificate it signed
// for 127.0.0.1, as a self-hosted S3 server with a private CA would have.
func privateCA(t *testing.T) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parley test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "s3.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsFront serves the real S3 server of the tests over TLS with a
// certificate of a private CA: a TLS-terminating proxy that keeps the Host
// header, so the SigV4 signatures the client makes for the proxy's address
// are the ones the S3 server checks.
func tlsFront(t *testing.T, plain string, cert tls.Certificate) string {
	t.Helper()
	u, err := url.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL // https://127.0.0.1:port
}

// -s3 CA file (PARLEY_S3_CA_FILE, mounted by the operator from
// spec.attachments.s3.caSecret): the client trusts the private CA for the
// bucket's endpoint, and without it refuses the same server.
func TestPrivateCA(t *testing.T) {
	cfg := testConfig(t)
	caPEM, cert := privateCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Endpoint = tlsFront(t, cfg.Endpoint, cert)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("trusted with the CA file", func(t *testing.T) {
		c := cfg
		c.CAFile = caFile
		s := testStore(t, c)
		key := "ca-test/" + strings.ReplaceAll(t.Name(), "/", "-")
		body := bytes.Repeat([]byte("sealed bytes "), 1000)
		if _, err := s.Put(ctx, key, bytes.NewReader(body), int64(len(body))+1); err != nil {
			t.Fatalf("put over TLS: %v", err)
		}
		t.Cleanup(func() { _ = s.Delete(context.Background(), key) })
		rc, err := s.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatalf("open over TLS: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("read back %d bytes (%v), put %d", len(got), err, len(body))
		}
	})
	t.Run("refused without it", func(t *testing.T) {
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Check against a private CA without the CA file: %v, want a certificate error", err)
		}
	})
	t.Run("a file without a certificate", func(t *testing.T) {
		bad := filepath.Join(dir, "empty.crt")
		if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.CAFile = bad
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
			t.Fatalf("New with an empty CA file: %v", err)
		}
		c.CAFile = filepath.Join(dir, "missing.crt")
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("New with a missing CA file: %v", err)
		}
	})
	t.Run("not for plain HTTP", func(t *testing.T) {
		c := cfg
		c.Endpoint = "http://127.0.0.1:1"
		c.CAFile = caFile
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
			t.Fatalf("New with a CA file for http://: %v", err)
		}
	})
}

func TestConfigFromEnvReadsCAFile(t *testing.T) {
	t.Setenv("PARLEY_X_CA_FILE", "/etc/parley/s3-ca/ca.crt")
	t.Setenv("PARLEY_X_SECRET_KEY", "do-not-print")
	t.Setenv("PARLEY_X_ACCESS_KEY", "ak")
	c := ConfigFromEnv("PARLEY_X")
	if c.CAFile != "/etc/parley/s3-ca/ca.crt" {
		t.Fatalf("CAFile = %q", c.CAFile)
	}
	if s := c.String(); !strings.Contains(s, "/etc/parley/s3-ca/ca.crt") || strings.Contains(s, "do-not-print") {
		t.Fatalf("String() = %s", s)
	}
}
