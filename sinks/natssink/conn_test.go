package natssink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

func runConfigured(t *testing.T, configure func(*server.Options)) *server.Server {
	t.Helper()
	s, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: t.TempDir(), Configure: configure})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopServer(s) })
	return s
}

func hostPortURL(s *server.Server, scheme string) string {
	return scheme + "://" + serverAddr(s)
}

func tryDial(t *testing.T, co natssink.ConnOptions) error {
	t.Helper()
	co.ConnectTimeout = 5 * time.Second
	nc, err := natssink.Dial(ctxT(t), co)
	if err == nil {
		nc.Close()
	}
	return err
}

func TestDialAuth(t *testing.T) {
	t.Run("token", func(t *testing.T) {
		s := runConfigured(t, func(o *server.Options) { o.Authorization = "s3cret" })
		if err := tryDial(t, natssink.ConnOptions{URL: s.ClientURL(), Token: "s3cret"}); err != nil {
			t.Errorf("right token: %v", err)
		}
		if err := tryDial(t, natssink.ConnOptions{URL: s.ClientURL(), Token: "wrong"}); err == nil {
			t.Error("wrong token connected")
		}
	})
	t.Run("user password", func(t *testing.T) {
		s := runConfigured(t, func(o *server.Options) { o.Username, o.Password = "qod", "pw" })
		if err := tryDial(t, natssink.ConnOptions{URL: s.ClientURL(), User: "qod", Password: "pw"}); err != nil {
			t.Errorf("right password: %v", err)
		}
		err := tryDial(t, natssink.ConnOptions{URL: "nats://qod:hunter2@" + serverAddr(s)})
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("wrong password in URL: err = %v, want an error that does not show the password", err)
		}
	})
	t.Run("nkey", func(t *testing.T) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := kp.PublicKey()
		seed, _ := kp.Seed()
		seedFile := filepath.Join(t.TempDir(), "user.nk")
		if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		s := runConfigured(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
		if err := tryDial(t, natssink.ConnOptions{URL: s.ClientURL(), NKeySeedFile: seedFile}); err != nil {
			t.Errorf("nkey: %v", err)
		}
		if err := tryDial(t, natssink.ConnOptions{URL: s.ClientURL()}); err == nil {
			t.Error("connected without the nkey")
		}
	})
	t.Run("option errors", func(t *testing.T) {
		for name, co := range map[string]natssink.ConnOptions{
			"two methods":   {Token: "a", User: "u", Password: "p"},
			"cert no key":   {TLS: natssink.TLSOptions{CertFile: "c.pem"}},
			"missing creds": {CredsFile: filepath.Join(t.TempDir(), "none.creds")},
			"missing seed":  {NKeySeedFile: filepath.Join(t.TempDir(), "none.nk")},
			"missing CA":    {TLS: natssink.TLSOptions{CAFile: filepath.Join(t.TempDir(), "none.pem")}},
			"empty CA":      {TLS: natssink.TLSOptions{CAFile: emptyFile(t)}},
		} {
			if err := tryDial(t, co); err == nil {
				t.Errorf("%s: Dial succeeded", name)
			}
		}
		if err := tryDial(t, natssink.ConnOptions{Token: "a", User: "u"}); !errors.Is(err, natssink.ErrInvalidOptions) {
			t.Errorf("two auth methods: %v, want ErrInvalidOptions", err)
		}
	})
}

func emptyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDialUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	err = tryDial(t, natssink.ConnOptions{URL: "nats://" + addr})
	if !errors.Is(err, natssink.ErrUnavailable) {
		t.Errorf("Dial to a closed port = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := natssink.Dial(ctx, natssink.ConnOptions{URL: "nats://" + addr}); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled ctx = %v, want context.Canceled", err)
	}
}

// pki is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, written as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p := pki{caFile: write("ca.pem", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func TestDialTLS(t *testing.T) {
	p := newPKI(t)
	cert, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	tlsServer := func(verifyClients bool) *server.Server {
		return runConfigured(t, func(o *server.Options) {
			cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			if verifyClients {
				cfg.ClientCAs, cfg.ClientAuth = p.pool, tls.RequireAndVerifyClientCert
				o.TLSVerify = true
			}
			o.TLSConfig, o.TLS, o.TLSTimeout = cfg, true, 5
		})
	}

	s := tlsServer(false)
	url := hostPortURL(s, "tls")
	if err := tryDial(t, natssink.ConnOptions{URL: url, TLS: natssink.TLSOptions{CAFile: p.caFile}}); err != nil {
		t.Errorf("TLS with the CA: %v", err)
	}
	if err := tryDial(t, natssink.ConnOptions{URL: url}); err == nil {
		t.Error("TLS connected without trusting the CA: verification is off")
	}
	if err := tryDial(t, natssink.ConnOptions{URL: url, TLS: natssink.TLSOptions{InsecureSkipVerify: true}}); err != nil {
		t.Errorf("TLS with InsecureSkipVerify: %v", err)
	}

	m := tlsServer(true)
	url = hostPortURL(m, "tls")
	if err := tryDial(t, natssink.ConnOptions{URL: url, TLS: natssink.TLSOptions{CAFile: p.caFile}}); err == nil {
		t.Error("mTLS connected without a client certificate")
	}
	co := natssink.ConnOptions{URL: url, TLS: natssink.TLSOptions{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}}
	if err := tryDial(t, co); err != nil {
		t.Errorf("mTLS with a client certificate: %v", err)
	}
	// A sink over mTLS works end to end.
	sink, err := natssink.Open(ctxT(t), co, natssink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if err := sink.Publish(ctxT(t), event("tls", "1")); err != nil {
		t.Fatal(err)
	}
}

// Closing the connection is not a disconnect worth a warning; losing the
// server is.
func TestDialLogsDisconnectsNotClose(t *testing.T) {
	s := runServer(t, "127.0.0.1:0", t.TempDir())
	var buf sinktest.Buffer
	co := connOpts(s)
	co.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := natssink.Dial(ctxT(t), co)
	if err != nil {
		t.Fatal(err)
	}
	// nats.go runs the disconnect and close callbacks in that order on
	// one goroutine: once closed has run, the disconnect callback has too.
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	nc.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("no close callback")
	}
	if out := buf.String(); out != "" {
		t.Errorf("closing the connection logged: %s", out)
	}

	nc, err = natssink.Dial(ctxT(t), co)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stopServer(s)
	if !sinktest.Poll(5*time.Second, 10*time.Millisecond, func() bool {
		return strings.Contains(buf.String(), "disconnected from NATS")
	}) {
		t.Errorf("losing the server logged no warning: %q", buf.String())
	}
}
