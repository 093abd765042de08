package process

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/qodbridge/qodbridge/config"
)

// certReloader serves the certificate in certFile/keyFile and loads it
// again when either file changes (as cert-manager and similar tools
// replace them), checking the files at most once per interval. A pair that
// fails to load keeps the previous certificate in service.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration

	mu      sync.Mutex
	cert    *tls.Certificate
	mod     time.Time // newest modification time of the pair when loaded
	checked time.Time
	onError func(error)
}

func newCertReloader(certFile, keyFile string, onError func(error)) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: time.Second, onError: onError}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) modTime() (time.Time, error) {
	var newest time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return time.Time{}, err
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest, nil
}

func (r *certReloader) load() error {
	mod, err := r.modTime()
	if err != nil {
		return fmt.Errorf("http.tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("http.tls: %w", err)
	}
	r.cert, r.mod = &cert, mod
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		if mod, err := r.modTime(); err == nil && !mod.Equal(r.mod) {
			if err := r.load(); err != nil && r.onError != nil {
				r.onError(err)
			}
		}
	}
	return r.cert, nil
}

func serverTLS(cfg *config.Config, onError func(error)) (*tls.Config, error) {
	rl, err := newCertReloader(cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile, onError)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{GetCertificate: rl.getCertificate, MinVersion: tls.VersionTLS12}
	if cfg.Auth.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.Auth.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("auth.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auth.client_ca_file: %s holds no PEM certificate", cfg.Auth.ClientCAFile)
		}
		tc.ClientCAs = pool
		// Tokens still work for clients without a certificate.
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}
