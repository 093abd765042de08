package process

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a leaf certificate and key; serial tells them apart.
func (ca *testCA) issue(t *testing.T, dir, name string, serial int64, client bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: nil, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestIngressTLSReloadAndMTLS: the ingress serves TLS, picks up a replaced
// certificate without a restart, and accepts a client certificate from the
// configured CA in place of a token.
func TestIngressTLSReloadAndMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o600)
	certFile, keyFile := ca.issue(t, dir, "server", 100, false)
	clientCert, clientKey := ca.issue(t, dir, "client", 300, true)
	cfgFile := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfgFile, []byte("http:\n  tls:\n    cert_file: "+certFile+"\n    key_file: "+keyFile+"\nauth:\n  client_ca_file: "+caFile+"\n  tokens: [tls-test-token-0123456789]\n"), 0o600)
	b, _ := startBridge(t, nil, "-config", cfgFile)
	if !strings.HasPrefix(b.notify, "https://") {
		t.Fatalf("notification URL %s is not https", b.notify)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	serial := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(b.notify, "/notifications"), "https://"), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 100 {
		t.Fatalf("serving serial %d, want 100", s)
	}
	// Replace the pair, as cert-manager does, with a newer modification time.
	newCert, newKey := ca.issue(t, t.TempDir(), "server", 200, false)
	for _, p := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		data, _ := os.ReadFile(p[0])
		os.WriteFile(p[1], data, 0o600)
		later := time.Now().Add(time.Minute)
		os.Chtimes(p[1], later, later)
	}
	got := int64(0)
	sinktest.Poll(15*time.Second, 50*time.Millisecond, func() bool { got = serial(); return got == 200 }) // the reloader checks once a second
	if got != 200 {
		t.Fatalf("still serving serial %d after the files changed", got)
	}

	body := statusEvent("tls-1", "s", "AVAILABLE")
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	if code, err := post(t, noCert, b.notify, "", body); err != nil || code != 401 {
		t.Fatalf("no token, no client certificate: %d %v", code, err)
	}
	if code, err := post(t, noCert, b.notify, "tls-test-token-0123456789", body); err != nil || code != 204 {
		t.Fatalf("token over TLS: %d %v", code, err)
	}
	cc, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cc}}}}
	if code, err := post(t, withCert, b.notify, "", statusEvent("tls-2", "s", "AVAILABLE")); err != nil || code != 204 {
		t.Fatalf("client certificate, no token: %d %v", code, err)
	}
}
