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

// Resolve fills in defaults and reads *_file secrets. It is idempotent.
func (c *Config) Resolve() error {
	if err := c.readSecretFiles(); err != nil {
		return err
	}
	c.HTTP.Address = cmp.Or(c.HTTP.Address, DefaultHTTPAddress)
	c.HTTP.Path = cmp.Or(c.HTTP.Path, DefaultPath)
	c.HTTP.MaxBodyBytes = cmp.Or(c.HTTP.MaxBodyBytes, DefaultMaxBodyBytes)
	c.HTTP.MaxInFlight = cmp.Or(c.HTTP.MaxInFlight, DefaultMaxInFlight)
	c.HTTP.ReadHeaderTimeout = cmp.Or(c.HTTP.ReadHeaderTimeout, Duration(5*time.Second))
	c.HTTP.ReadTimeout = cmp.Or(c.HTTP.ReadTimeout, Duration(30*time.Second))
	c.HTTP.WriteTimeout = cmp.Or(c.HTTP.WriteTimeout, Duration(30*time.Second))
	c.HTTP.IdleTimeout = cmp.Or(c.HTTP.IdleTimeout, Duration(120*time.Second))
	if c.HTTP.PublicURL == "" {
		scheme := "http://"
		if c.HTTP.TLS.CertFile != "" {
			scheme = "https://"
		}
		c.HTTP.PublicURL = scheme + c.HTTP.Address
	}
	c.HTTP.PublicURL = strings.TrimRight(c.HTTP.PublicURL, "/")
	c.Admin.Address = cmp.Or(c.Admin.Address, DefaultAdminAddress)
	c.Ingress.PublishTimeout = cmp.Or(c.Ingress.PublishTimeout, Duration(DefaultPublishTimeout))
	c.Ingress.RetryAfter = cmp.Or(c.Ingress.RetryAfter, Duration(time.Second))
	c.Ingress.LegacySource = cmp.Or(c.Ingress.LegacySource, DefaultLegacySource)
	c.Ingress.MaxBatchEvents = cmp.Or(c.Ingress.MaxBatchEvents, DefaultMaxBatchEvents)
	if len(c.Ingress.AllowedOrigins) == 0 {
		c.Ingress.AllowedOrigins = []string{"*"}
	}
	c.NATS.Embedded.Address = cmp.Or(c.NATS.Embedded.Address, DefaultNATSAddress)
	c.NATS.Embedded.DataDir = cmp.Or(c.NATS.Embedded.DataDir, DefaultDataDir)
	c.NATS.SubjectPrefix = cmp.Or(c.NATS.SubjectPrefix, DefaultSubjectPrefix)
	c.NATS.Stream.Name = cmp.Or(c.NATS.Stream.Name, DefaultStreamName)
	c.NATS.Stream.Replicas = cmp.Or(c.NATS.Stream.Replicas, 1)
	c.NATS.Stream.DuplicateWindow = cmp.Or(c.NATS.Stream.DuplicateWindow, Duration(10*time.Second))
	c.NATS.Name = cmp.Or(c.NATS.Name, "qodbridge")
	c.NATS.Stream.Discard = cmp.Or(c.NATS.Stream.Discard, "old")
	c.Kafka.ClientID = cmp.Or(c.Kafka.ClientID, "qodbridge")
	c.Kafka.Topic = cmp.Or(c.Kafka.Topic, "qod.status")
	c.Kafka.BatchTimeout = cmp.Or(c.Kafka.BatchTimeout, Duration(5*time.Millisecond))
	c.Kafka.BatchSize = cmp.Or(c.Kafka.BatchSize, 100)
	c.Kafka.Compression = cmp.Or(c.Kafka.Compression, "none")
	c.Kafka.DialTimeout = cmp.Or(c.Kafka.DialTimeout, Duration(5*time.Second))
	c.Kafka.Partitions = cmp.Or(c.Kafka.Partitions, 6)
	c.Kafka.CommandTopic = cmp.Or(c.Kafka.CommandTopic, "qod.commands")
	c.Kafka.ResultTopic = cmp.Or(c.Kafka.ResultTopic, "qod.results")
	c.Kafka.DLQTopic = cmp.Or(c.Kafka.DLQTopic, "qod.commands.dlq")
	c.Kafka.GroupID = cmp.Or(c.Kafka.GroupID, "qodbridge")
	c.QoD.Dialect = cmp.Or(c.QoD.Dialect, "camara-v1")
	c.QoD.Timeout = cmp.Or(c.QoD.Timeout, Duration(10*time.Second))
	c.Sim.Address = cmp.Or(c.Sim.Address, "127.0.0.1:8090")
	c.Sim.AvailableDelay = cmp.Or(c.Sim.AvailableDelay, Duration(time.Second))
	c.Commands.Lanes = cmp.Or(c.Commands.Lanes, 16)
	c.Commands.AckWait = cmp.Or(c.Commands.AckWait, Duration(3*time.Minute))
	c.Commands.MaxAttempts = cmp.Or(c.Commands.MaxAttempts, 5)
	c.Commands.MaxElapsed = cmp.Or(c.Commands.MaxElapsed, Duration(60*time.Second))
	c.Commands.ResultMaxAge = cmp.Or(c.Commands.ResultMaxAge, Duration(24*time.Hour))
	c.Log.Format = cmp.Or(c.Log.Format, "json")
	c.Log.Level = cmp.Or(c.Log.Level, "info")
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, Duration(DefaultShutdownTimeout))

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
