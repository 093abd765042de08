package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Validate checks a resolved config; the error names every bad field.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkAddr("http.address", c.HTTP.Address))
	if c.Admin.Address != "off" {
		add(checkAddr("admin.address", c.Admin.Address))
	}
	if !strings.HasPrefix(c.HTTP.Path, "/") || strings.HasSuffix(c.HTTP.Path, "/") && c.HTTP.Path != "/" {
		add(fieldErr("http.path", "%q must start with / and not end with /", c.HTTP.Path))
	}
	if u, err := url.Parse(c.HTTP.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add(fieldErr("http.public_url", "%q is not an http(s) URL", c.HTTP.PublicURL))
	}
	if c.HTTP.MaxBodyBytes < 0 {
		add(fieldErr("http.max_body_bytes", "must be positive"))
	}
	if c.HTTP.MaxInFlight < 0 {
		add(fieldErr("http.max_in_flight", "must be positive"))
	}
	if (c.HTTP.TLS.CertFile == "") != (c.HTTP.TLS.KeyFile == "") {
		add(fieldErr("http.tls", "cert_file and key_file go together"))
	}
	if c.Auth.ClientCAFile != "" && c.HTTP.TLS.CertFile == "" {
		add(fieldErr("auth.client_ca_file", "needs http.tls.cert_file and key_file (mTLS runs over TLS)"))
	}
	for i, tok := range c.Auth.Tokens {
		if len(tok) < 16 {
			add(fieldErr(fmt.Sprintf("auth.tokens[%d]", i), "too short (%d characters; use at least 16)", len(tok)))
		}
		if strings.ContainsAny(tok, " \t\r\n") {
			add(fieldErr(fmt.Sprintf("auth.tokens[%d]", i), "contains white space"))
		}
	}
	if len(c.Auth.Tokens) == 0 && c.Auth.ClientCAFile == "" {
		add(fieldErr("auth.tokens", "required: http.address %s is not loopback, so the ingress needs auth.tokens (QODBRIDGE_AUTH_TOKENS) or auth.client_ca_file", c.HTTP.Address))
	}
	for i, s := range c.Auth.SessionSecrets {
		if len(s) < 16 {
			add(fieldErr(fmt.Sprintf("auth.session_secrets[%d]", i), "too short (use at least 16 characters)"))
		}
	}
	if c.Ingress.PublishTimeout.D() <= 0 {
		add(fieldErr("ingress.publish_timeout", "must be positive"))
	}
	if _, err := url.Parse(c.Ingress.LegacySource); err != nil || c.Ingress.LegacySource == "" {
		add(fieldErr("ingress.legacy_source", "%q is not a URI reference", c.Ingress.LegacySource))
	}
	if c.Ingress.RateLimit < 0 || c.Ingress.RateBurst < 0 {
		add(fieldErr("ingress.rate_limit", "rate_limit and rate_burst must not be negative"))
	}
	if c.Ingress.AllowedRate < 0 {
		add(fieldErr("ingress.allowed_rate", "must not be negative"))
	}
	if c.Ingress.MaxBatchEvents < 0 {
		add(fieldErr("ingress.max_batch_events", "must not be negative"))
	}
	if c.NATSEmbedded() {
		add(checkAddr("nats.embedded.address", c.NATS.Embedded.Address))
		if c.NATS.Embedded.DataDir == "" {
			add(fieldErr("nats.embedded.data_dir", "required"))
		}
	} else if !c.NATSOff() {
		for _, s := range splitList(c.NATS.URL) {
			u, err := url.Parse(s)
			if err != nil || u.Host == "" || !(u.Scheme == "nats" || u.Scheme == "tls" || u.Scheme == "ws" || u.Scheme == "wss") {
				add(fieldErr("nats.url", "%q is not a NATS URL such as nats://host:4222", s))
			}
		}
	}
	if !subjectPrefix.MatchString(c.NATS.SubjectPrefix) {
		add(fieldErr("nats.subject_prefix", "%q must be dot-separated tokens of letters, digits, _ and -", c.NATS.SubjectPrefix))
	}
	if !streamName.MatchString(c.NATS.Stream.Name) {
		add(fieldErr("nats.stream.name", "%q must be letters, digits, _ and -", c.NATS.Stream.Name))
	}
	if c.NATS.Stream.Replicas < 1 || c.NATS.Stream.Replicas > 5 {
		add(fieldErr("nats.stream.replicas", "%d is outside 1..5", c.NATS.Stream.Replicas))
	}
	if c.NATS.Stream.Discard != "old" && c.NATS.Stream.Discard != "new" {
		add(fieldErr("nats.stream.discard", "%q is not old or new", c.NATS.Stream.Discard))
	}
	if c.NATS.Stream.MaxBytes < 0 {
		add(fieldErr("nats.stream.max_bytes", "must not be negative"))
	}
	if c.NATS.Token != "" && (c.NATS.User != "" || c.NATS.CredsFile != "" || c.NATS.NKeyFile != "") ||
		c.NATS.User != "" && (c.NATS.CredsFile != "" || c.NATS.NKeyFile != "") || c.NATS.CredsFile != "" && c.NATS.NKeyFile != "" {
		add(fieldErr("nats", "set only one of token, user/password, creds_file, nkey_file"))
	}
	if c.NATS.Password != "" && c.NATS.User == "" {
		add(fieldErr("nats.user", "required with nats.password"))
	}
	if (c.NATS.TLS.CertFile == "") != (c.NATS.TLS.KeyFile == "") {
		add(fieldErr("nats.tls", "cert_file and key_file go together"))
	}
	if c.NATSOff() && len(c.Kafka.Brokers) == 0 {
		add(fieldErr("nats.url", "\"off\" with no kafka.brokers leaves no broker"))
	}
	for i, b := range c.Kafka.Brokers {
		add(checkAddr(fmt.Sprintf("kafka.brokers[%d]", i), b))
	}
	switch c.Kafka.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		add(fieldErr("kafka.compression", "%q is not none, gzip, snappy, lz4 or zstd", c.Kafka.Compression))
	}
	switch c.Kafka.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		add(fieldErr("kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Kafka.SASL.Mechanism))
	}
	if c.Kafka.SASL.Mechanism != "" && c.Kafka.SASL.Username == "" {
		add(fieldErr("kafka.sasl.username", "required with kafka.sasl.mechanism"))
	}
	if c.Kafka.Partitions < 1 {
		add(fieldErr("kafka.partitions", "must be at least 1"))
	}
	if c.Kafka.ReplicationFactor < 0 {
		add(fieldErr("kafka.replication_factor", "must not be negative"))
	}
	if c.QoD.APIURL != "" {
		if u, err := url.Parse(c.QoD.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(fieldErr("qod.api_url", "%q is not an http(s) URL", c.QoD.APIURL))
		}
	} else {
		add(checkAddr("sim.address", c.Sim.Address))
	}
	switch c.QoD.Dialect {
	case "camara-v1", "camara-v0":
	default:
		add(fieldErr("qod.dialect", "%q is not camara-v1 or camara-v0", c.QoD.Dialect))
	}
	if c.QoD.Token != "" && c.QoD.OAuth2.TokenURL != "" {
		add(fieldErr("qod", "set token or oauth2, not both"))
	}
	if c.QoD.OAuth2.TokenURL != "" && c.QoD.OAuth2.ClientID == "" {
		add(fieldErr("qod.oauth2.client_id", "required with qod.oauth2.token_url"))
	}
	if c.Commands.Lanes < 1 {
		add(fieldErr("commands.lanes", "must be at least 1"))
	}
	if c.Commands.MaxDeliver < 0 {
		add(fieldErr("commands.max_deliver", "must not be negative (0: the default, 5)"))
	}
	if c.Commands.AckWait.D() <= c.Commands.MaxElapsed.D() {
		add(fieldErr("commands.ack_wait", "%s must exceed commands.max_elapsed %s, or commands still being retried are redelivered", c.Commands.AckWait, c.Commands.MaxElapsed))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		add(fieldErr("log.format", "%q is not json or text", c.Log.Format))
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add(fieldErr("log.level", "%q is not debug, info, warn or error", c.Log.Level))
	}
	return errors.Join(errs...)
}

var (
	subjectPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
	streamName    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

func checkAddr(field, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fieldErr(field, "%q is not host:port: %v", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fieldErr(field, "%q has no valid port", addr)
	}
	return nil
}
