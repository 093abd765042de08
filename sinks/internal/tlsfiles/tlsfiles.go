// Package tlsfiles builds client TLS configurations from PEM files, the
// same way for every broker connection.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrInvalid is wrapped by Client for settings that cannot work (as opposed
// to files that cannot be read).
var ErrInvalid = errors.New("tlsfiles: invalid TLS settings")

// Client returns a TLS 1.2+ client configuration: caFile verifies the
// server (the system roots when empty), certFile and keyFile are a client
// certificate (both or neither), insecure skips verification (tests only).
func Client(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS.CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: TLS.CAFile %s holds no PEM certificate", ErrInvalid, caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%w: TLS.CertFile and TLS.KeyFile go together", ErrInvalid)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
