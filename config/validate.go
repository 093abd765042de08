package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Validate checks a resolved config; the error names every bad field.
// Each section checks its own fields; the rules that span sections (a
// broker must remain, the simulator's listener when no API is named) are
// here. A zero setting is valid wherever the package it is passed to has a
// default for it; rules that need those defaults are the process's
// (process.Check).
func (c *Config) Validate() error {
	var p problems
	c.HTTP.validate(&p)
	c.Admin.validate(&p)
	c.Auth.validate(&p, c.HTTP)
	c.Ingress.validate(&p)
	c.NATS.validate(&p)
	if c.NATSOff() && len(c.Kafka.Brokers) == 0 {
		p.bad("nats.url", "\"off\" with no kafka.brokers leaves no broker")
	}
	c.Kafka.validate(&p)
	c.QoD.validate(&p)
	if c.QoD.APIURL == "" {
		c.Sim.validate(&p)
	}
	c.Commands.validate(&p)
	c.View.validate(&p)
	c.Log.validate(&p)
	return errors.Join(p...)
}

// problems collects every bad field, so that one run of Validate reports
// them all rather than the first.
type problems []error

func (p *problems) add(err error) {
	if err != nil {
		*p = append(*p, err)
	}
}

func (p *problems) bad(field, format string, args ...any) {
	p.add(fieldErr(field, format, args...))
}

func (h HTTP) validate(p *problems) {
	p.add(checkAddr("http.address", h.Address))
	if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.HasSuffix(h.Path, "/") && h.Path != "/") {
		p.bad("http.path", "%q must start with / and not end with /", h.Path)
	}
	if u, err := url.Parse(h.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.bad("http.public_url", "%q is not an http(s) URL", h.PublicURL)
	}
	if h.MaxBodyBytes < 0 {
		p.bad("http.max_body_bytes", "must be positive")
	}
	if h.MaxInFlight < 0 {
		p.bad("http.max_in_flight", "must be positive")
	}
	if (h.TLS.CertFile == "") != (h.TLS.KeyFile == "") {
		p.bad("http.tls", "cert_file and key_file go together")
	}
	if _, err := Prefixes(h.TrustedProxies); err != nil {
		p.add(&FieldError{Field: "http.trusted_proxies", Err: err})
	}
}

func (a Admin) validate(p *problems) {
	if a.Address != "off" {
		p.add(checkAddr("admin.address", a.Address))
	}
	checkTokens(p, "admin.tokens", a.Tokens)
	if _, err := Prefixes(a.TrustedProxies); err != nil {
		p.add(&FieldError{Field: "admin.trusted_proxies", Err: err})
	}
	if a.MaxConnections < 0 {
		p.bad("admin.max_connections", "must not be negative")
	}
}

// checkTokens holds bearer tokens to what guessing cannot reach.
func checkTokens(p *problems, field string, tokens []string) {
	for i, tok := range tokens {
		if len(tok) < 16 {
			p.bad(fmt.Sprintf("%s[%d]", field, i), "too short (%d characters; use at least 16)", len(tok))
		}
		if strings.ContainsAny(tok, " \t\r\n") {
			p.bad(fmt.Sprintf("%s[%d]", field, i), "contains white space")
		}
	}
}

// validate checks the credentials against the listener they guard: mTLS
// needs the listener's TLS, and a listener with no credentials at all is
// refused (Resolve generated a token where that is safe, on loopback).
func (a Auth) validate(p *problems, h HTTP) {
	if a.ClientCAFile != "" && h.TLS.CertFile == "" {
		p.bad("auth.client_ca_file", "needs http.tls.cert_file and key_file (mTLS runs over TLS)")
	}
	checkTokens(p, "auth.tokens", a.Tokens)
	if len(a.Tokens) == 0 && a.ClientCAFile == "" {
		p.bad("auth.tokens", "required: http.address %s is not loopback, so the ingress needs auth.tokens (QODBRIDGE_AUTH_TOKENS) or auth.client_ca_file", h.Address)
	}
	for i, s := range a.SessionSecrets {
		if len(s) < 16 {
			p.bad(fmt.Sprintf("auth.session_secrets[%d]", i), "too short (use at least 16 characters)")
		}
	}
}

func (in Ingress) validate(p *problems) {
	if in.PublishTimeout < 0 {
		p.bad("ingress.publish_timeout", "must be positive")
	}
	if _, err := url.Parse(in.LegacySource); err != nil {
		p.bad("ingress.legacy_source", "%q is not a URI reference", in.LegacySource)
	}
	if in.RateLimit < 0 || in.RateBurst < 0 {
		p.bad("ingress.rate_limit", "rate_limit and rate_burst must not be negative")
	}
	if in.AllowedRate < 0 {
		p.bad("ingress.allowed_rate", "must not be negative")
	}
	if in.MaxBatchEvents < 0 {
		p.bad("ingress.max_batch_events", "must not be negative")
	}
}

func (n NATS) validate(p *problems) {
	if n.embedded() {
		p.add(checkAddr("nats.embedded.address", n.Embedded.Address))
		if n.Embedded.DataDir == "" {
			p.bad("nats.embedded.data_dir", "required")
		}
		if n.Embedded.Password == "" && !IsLoopback(n.Embedded.Address) {
			p.bad("nats.embedded.password", "required: nats.embedded.address %s is not loopback, so clients must authenticate (QODBRIDGE_NATS_EMBEDDED_PASSWORD; they connect as user qod)", n.Embedded.Address)
		} else if n.Embedded.Password != "" && len(n.Embedded.Password) < 16 {
			p.bad("nats.embedded.password", "too short (use at least 16 characters)")
		}
		if (n.Embedded.TLS.CertFile == "") != (n.Embedded.TLS.KeyFile == "") {
			p.bad("nats.embedded.tls", "cert_file and key_file go together")
		}
		if _, _, err := n.Embedded.SyncPolicy(); err != nil {
			p.add(&FieldError{Field: "nats.embedded.sync", Err: err})
		}
	} else if !n.off() {
		for _, s := range SplitList(n.URL) {
			u, err := url.Parse(s)
			if err != nil || u.Host == "" || !(u.Scheme == "nats" || u.Scheme == "tls" || u.Scheme == "ws" || u.Scheme == "wss") {
				p.bad("nats.url", "%q is not a NATS URL such as nats://host:4222", s)
			}
		}
	}
	if n.SubjectPrefix != "" && !subjectPrefix.MatchString(n.SubjectPrefix) {
		p.bad("nats.subject_prefix", "%q must be dot-separated tokens of letters, digits, _ and -", n.SubjectPrefix)
	}
	n.Stream.validate(p)
	if n.Token != "" && (n.User != "" || n.CredsFile != "" || n.NKeyFile != "") ||
		n.User != "" && (n.CredsFile != "" || n.NKeyFile != "") || n.CredsFile != "" && n.NKeyFile != "" {
		p.bad("nats", "set only one of token, user/password, creds_file, nkey_file")
	}
	if n.Password != "" && n.User == "" {
		p.bad("nats.user", "required with nats.password")
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		p.bad("nats.tls", "cert_file and key_file go together")
	}
}

func (s Stream) validate(p *problems) {
	if s.Name != "" && !streamName.MatchString(s.Name) {
		p.bad("nats.stream.name", "%q must be letters, digits, _ and -", s.Name)
	}
	if s.Replicas < 0 || s.Replicas > 5 {
		p.bad("nats.stream.replicas", "%d is outside 1..5", s.Replicas)
	}
	if s.Discard != "" && s.Discard != "old" && s.Discard != "new" {
		p.bad("nats.stream.discard", "%q is not old or new", s.Discard)
	}
	if s.MaxBytes < 0 {
		p.bad("nats.stream.max_bytes", "must not be negative")
	}
}

func (v View) validate(p *problems) {
	if v.Bucket != "" && !streamName.MatchString(v.Bucket) {
		p.bad("view.bucket", "%q must be letters, digits, _ and -", v.Bucket)
	}
	if v.Topic != "" && !kafkaTopic.MatchString(v.Topic) {
		p.bad("view.topic", "%q must be at most 249 letters, digits, '.', '_' and '-'", v.Topic)
	}
	if v.Retention != 0 && v.Retention.D() < time.Second {
		p.bad("view.retention", "%s is below 1s, the shortest per-key TTL", v.Retention)
	}
}

// kafkaTopic is a legal Kafka topic name.
var kafkaTopic = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

func (k Kafka) validate(p *problems) {
	for i, b := range k.Brokers {
		p.add(checkAddr(fmt.Sprintf("kafka.brokers[%d]", i), b))
	}
	switch k.Compression {
	case "", "none", "gzip", "snappy", "lz4", "zstd":
	default:
		p.bad("kafka.compression", "%q is not none, gzip, snappy, lz4 or zstd", k.Compression)
	}
	switch k.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		p.bad("kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASL.Mechanism)
	}
	if k.SASL.Mechanism != "" && k.SASL.Username == "" {
		p.bad("kafka.sasl.username", "required with kafka.sasl.mechanism")
	}
	if k.Partitions < 0 {
		p.bad("kafka.partitions", "must be at least 1")
	}
	if k.ReplicationFactor < 0 {
		p.bad("kafka.replication_factor", "must not be negative")
	}
}

func (q QoD) validate(p *problems) {
	if q.APIURL != "" {
		if u, err := url.Parse(q.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.bad("qod.api_url", "%q is not an http(s) URL", q.APIURL)
		}
	}
	switch q.Dialect {
	case "", "camara-v1", "camara-v0":
	default:
		p.bad("qod.dialect", "%q is not camara-v1 or camara-v0", q.Dialect)
	}
	if q.Token != "" && q.OAuth2.TokenURL != "" {
		p.bad("qod", "set token or oauth2, not both")
	}
	if q.OAuth2.TokenURL != "" && q.OAuth2.ClientID == "" {
		p.bad("qod.oauth2.client_id", "required with qod.oauth2.token_url")
	}
}

func (s Sim) validate(p *problems) {
	p.add(checkAddr("sim.address", s.Address))
}

func (c Commands) validate(p *problems) {
	if c.Lanes < 0 {
		p.bad("commands.lanes", "must be at least 1")
	}
	if c.MaxDeliver < 0 {
		p.bad("commands.max_deliver", "must not be negative (0: the default, 5)")
	}
}

func (l Log) validate(p *problems) {
	switch l.Format {
	case "json", "text":
	default:
		p.bad("log.format", "%q is not json or text", l.Format)
	}
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		p.bad("log.level", "%q is not debug, info, warn or error", l.Level)
	}
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
