package config

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// Defaults of the zero-config start.
const (
	DefaultHTTPAddress     = "127.0.0.1:8080"
	DefaultAdminAddress    = "127.0.0.1:9090"
	DefaultNATSAddress     = "127.0.0.1:4222"
	DefaultDataDir         = "./qodbridge-data"
	DefaultPath            = "/notifications"
	DefaultSubjectPrefix   = "qod"
	DefaultStreamName      = "QOD_STATUS"
	DefaultLegacySource    = "urn:qodbridge:qod-v0.9"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxInFlight     = 512
	DefaultMaxBatchEvents  = 100
	DefaultPublishTimeout  = 5 * time.Second
	DefaultShutdownTimeout = 25 * time.Second
)

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Resolve fills in defaults and reads *_file secrets. It is idempotent.
func (c *Config) Resolve() error {
	if err := c.readSecretFiles(); err != nil {
		return err
	}
	setDefault(&c.HTTP.Address, DefaultHTTPAddress)
	setDefault(&c.HTTP.Path, DefaultPath)
	setDefault(&c.HTTP.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.HTTP.MaxInFlight, DefaultMaxInFlight)
	setDefault(&c.HTTP.ReadHeaderTimeout, Duration(5*time.Second))
	setDefault(&c.HTTP.ReadTimeout, Duration(30*time.Second))
	setDefault(&c.HTTP.WriteTimeout, Duration(30*time.Second))
	setDefault(&c.HTTP.IdleTimeout, Duration(120*time.Second))
	if c.HTTP.PublicURL == "" {
		scheme := "http://"
		if c.HTTP.TLS.CertFile != "" {
			scheme = "https://"
		}
		c.HTTP.PublicURL = scheme + c.HTTP.Address
	}
	c.HTTP.PublicURL = strings.TrimRight(c.HTTP.PublicURL, "/")
	setDefault(&c.Admin.Address, DefaultAdminAddress)
	setDefault(&c.Ingress.PublishTimeout, Duration(DefaultPublishTimeout))
	setDefault(&c.Ingress.RetryAfter, Duration(time.Second))
	setDefault(&c.Ingress.LegacySource, DefaultLegacySource)
	setDefault(&c.Ingress.MaxBatchEvents, DefaultMaxBatchEvents)
	if len(c.Ingress.AllowedOrigins) == 0 {
		c.Ingress.AllowedOrigins = []string{"*"}
	}
	setDefault(&c.NATS.Embedded.Address, DefaultNATSAddress)
	setDefault(&c.NATS.Embedded.DataDir, DefaultDataDir)
	setDefault(&c.NATS.SubjectPrefix, DefaultSubjectPrefix)
	setDefault(&c.NATS.Stream.Name, DefaultStreamName)
	setDefault(&c.NATS.Stream.Replicas, 1)
	setDefault(&c.NATS.Stream.DuplicateWindow, Duration(10*time.Second))
	setDefault(&c.NATS.Name, "qodbridge")
	setDefault(&c.NATS.Stream.Discard, "old")
	setDefault(&c.Kafka.ClientID, "qodbridge")
	setDefault(&c.Kafka.Topic, "qod.status")
	setDefault(&c.Kafka.BatchTimeout, Duration(5*time.Millisecond))
	setDefault(&c.Kafka.BatchSize, 100)
	setDefault(&c.Kafka.Compression, "none")
	setDefault(&c.Kafka.DialTimeout, Duration(5*time.Second))
	setDefault(&c.Kafka.Partitions, 6)
	setDefault(&c.Kafka.CommandTopic, "qod.commands")
	setDefault(&c.Kafka.ResultTopic, "qod.results")
	setDefault(&c.Kafka.DLQTopic, "qod.commands.dlq")
	setDefault(&c.Kafka.GroupID, "qodbridge")
	setDefault(&c.QoD.Dialect, "camara-v1")
	setDefault(&c.QoD.Timeout, Duration(10*time.Second))
	setDefault(&c.Sim.Address, "127.0.0.1:8090")
	setDefault(&c.Sim.AvailableDelay, Duration(time.Second))
	setDefault(&c.Commands.Lanes, 16)
	setDefault(&c.Commands.AckWait, Duration(3*time.Minute))
	setDefault(&c.Commands.MaxAttempts, 5)
	setDefault(&c.Commands.MaxElapsed, Duration(60*time.Second))
	setDefault(&c.Commands.ResultMaxAge, Duration(24*time.Hour))
	setDefault(&c.Log.Format, "json")
	setDefault(&c.Log.Level, "info")
	setDefault(&c.ShutdownTimeout, Duration(DefaultShutdownTimeout))

	if len(c.Auth.SessionSecrets) == 0 {
		c.Auth.SessionSecrets = []string{randomToken()}
		c.Auth.SessionSecretsGenerated = true
	}
	if len(c.Auth.Tokens) == 0 && c.Auth.ClientCAFile == "" && IsLoopback(c.HTTP.Address) {
		if c.GeneratedToken == "" {
			c.GeneratedToken = randomToken()
		}
		c.Auth.Tokens = []string{c.GeneratedToken}
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
