package config

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// Defaults that config's own rules read: the listener addresses (the
// loopback rules and the public URL derive from them), the embedded NATS
// server's place, logging and the shutdown bound. Every other setting is
// left zero here; the package it is passed to applies its own default.
const (
	DefaultHTTPAddress     = "127.0.0.1:8080"
	DefaultAdminAddress    = "127.0.0.1:9090"
	DefaultNATSAddress     = "127.0.0.1:4222"
	DefaultDataDir         = "./qodbridge-data"
	DefaultSimAddress      = "127.0.0.1:8090"
	DefaultLogFormat       = "json"
	DefaultLogLevel        = "info"
	DefaultShutdownTimeout = 25 * time.Second
)

// Resolve reads the *_file secrets and makes the zero-config start
// possible: it fills the defaults above, derives http.public_url from the
// ingress address, makes a session secret when none is given and, on a
// loopback ingress with no credentials, a token. It is idempotent.
func (c *Config) Resolve() error {
	if err := c.readSecretFiles(); err != nil {
		return err
	}
	c.HTTP.Address = cmp.Or(c.HTTP.Address, DefaultHTTPAddress)
	if c.HTTP.PublicURL == "" {
		scheme := "http://"
		if c.HTTP.TLS.CertFile != "" {
			scheme = "https://"
		}
		c.HTTP.PublicURL = scheme + c.HTTP.Address
	}
	c.HTTP.PublicURL = strings.TrimRight(c.HTTP.PublicURL, "/")
	c.Admin.Address = cmp.Or(c.Admin.Address, DefaultAdminAddress)
	c.NATS.Embedded.Address = cmp.Or(c.NATS.Embedded.Address, DefaultNATSAddress)
	c.NATS.Embedded.DataDir = cmp.Or(c.NATS.Embedded.DataDir, DefaultDataDir)
	c.Sim.Address = cmp.Or(c.Sim.Address, DefaultSimAddress)
	c.Log.Format = cmp.Or(c.Log.Format, DefaultLogFormat)
	c.Log.Level = cmp.Or(c.Log.Level, DefaultLogLevel)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, Duration(DefaultShutdownTimeout))

	if len(c.Auth.SessionSecrets) == 0 {
		c.Auth.SessionSecrets = []string{randomToken()}
		c.Auth.SessionSecretsGenerated = true
		c.setOrigin("auth.session_secrets", "generated")
	}
	if len(c.Auth.Tokens) == 0 && c.Auth.ClientCAFile == "" && IsLoopback(c.HTTP.Address) {
		if c.GeneratedToken == "" {
			c.GeneratedToken = randomToken()
		}
		c.Auth.Tokens = []string{c.GeneratedToken}
		c.setOrigin("auth.tokens", "generated")
	}
	return nil
}

// IsLoopback reports whether a host:port listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func randomToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("config: crypto/rand: %v", err)) // cannot fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
