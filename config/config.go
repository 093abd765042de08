// Package config holds qodbridge's settings: plain structs whose zero value
// means "the zero-config default", strict YAML loading (an unknown key is an
// error naming its path), environment overrides (QODBRIDGE_…, which win over
// the file), secrets from the environment or from *_file keys, and
// validation whose errors name the field.
//
// The order is: Load reads the file and the environment, Resolve fills in
// defaults, Validate checks the result. Load does all three.
package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. The zero value, resolved, is the
// zero-config default: everything on loopback, an embedded NATS server, the
// built-in QoD simulator.
type Config struct {
	// HTTP is the notification ingress.
	HTTP HTTP `yaml:"http"`
	// Admin is the listener for /healthz, /readyz and /metrics.
	Admin Admin `yaml:"admin"`
	// Auth holds the credentials the ingress accepts.
	Auth Auth `yaml:"auth"`
	// Ingress tunes how notifications are accepted.
	Ingress Ingress `yaml:"ingress"`
	// NATS is the NATS connection, the embedded server and the status stream.
	NATS NATS `yaml:"nats"`
	// Kafka is the Kafka side; off unless Brokers is set.
	Kafka Kafka `yaml:"kafka"`
	// QoD is the QoD API the command flow calls.
	QoD QoD `yaml:"qod"`
	// Sim is the built-in QoD simulator, run when QoD.APIURL is empty.
	Sim Sim `yaml:"sim"`
	// Commands tunes the command flow.
	Commands Commands `yaml:"commands"`
	// Log configures log/slog output.
	Log Log `yaml:"log"`
	// ShutdownTimeout bounds a graceful shutdown: in-flight requests and
	// publishes get this long after SIGTERM. Default 25s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	// GeneratedToken is set by Resolve when no token was configured and the
	// ingress listens on loopback: a random token the bridge prints at start.
	GeneratedToken string `yaml:"-"`
}

// HTTP configures the notification ingress listener.
type HTTP struct {
	// Address is host:port to listen on. Default 127.0.0.1:8080.
	// Env QODBRIDGE_HTTP_ADDRESS.
	Address string `yaml:"address"`
	// Path is where notifications are POSTed; Path + "/{key}" takes
	// per-session credentials. Default /notifications.
	Path string `yaml:"path"`
	// PublicURL is the ingress base URL as the QoD platform reaches it, used
	// as the sink of sessions the bridge creates. Default "http://" + Address.
	// Env QODBRIDGE_PUBLIC_URL.
	PublicURL string `yaml:"public_url"`
	// MaxBodyBytes is the largest accepted body; larger answers 413.
	// Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInFlight bounds the requests handled at once; more answer 429.
	// Default 512.
	MaxInFlight int `yaml:"max_in_flight"`
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server timeouts. Defaults 5s, 30s, 30s, 120s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// TLS serves the ingress over TLS when CertFile and KeyFile are set.
	TLS TLS `yaml:"tls"`
}

// Admin configures the admin listener.
type Admin struct {
	// Address is host:port for /healthz, /readyz, /metrics. Default
	// 127.0.0.1:9090; "off" disables it. Env QODBRIDGE_ADMIN_ADDRESS.
	Address string `yaml:"address"`
	// UI serves the live session console at /ui on this listener. Default
	// true. On a loopback address it needs no credentials; on any other it
	// asks for one of auth.tokens and is off when there are none. Env
	// QODBRIDGE_ADMIN_UI (true/false).
	UI *bool `yaml:"ui"`
	// Pprof serves Go's profiles (net/http/pprof) at /debug/pprof/ on this
	// listener, for diagnosing CPU and memory use. Default false: profiles
	// reveal internals, so turn it on only where the admin listener is
	// private. Env QODBRIDGE_ADMIN_PPROF (true/false).
	Pprof bool `yaml:"pprof"`
}

// UIOn reports whether the console is served (admin.ui, default true).
func (a Admin) UIOn() bool { return a.UI == nil || *a.UI }

// Auth holds ingress credentials. Tokens are secrets: give them by
// environment or file, never in a committed config file.
type Auth struct {
	// Tokens are the accepted bearer tokens; several allow rotation.
	// Env QODBRIDGE_AUTH_TOKENS (comma-separated).
	Tokens []string `yaml:"tokens"`
	// TokensFile names a file with one token per line (blank lines and
	// lines starting with # are skipped); added to Tokens.
	TokensFile string `yaml:"tokens_file"`
	// SessionSecrets are HMAC keys for per-session credentials on
	// /notifications/{key}; the first signs new sessions, all verify.
	// Env QODBRIDGE_SESSION_SECRETS (comma-separated). Default: one random
	// secret per process, which is fine for a single instance but breaks
	// per-session credentials across restarts and instances.
	SessionSecrets []string `yaml:"session_secrets"`
	// SessionSecretsFile names a file with one secret per line.
	SessionSecretsFile string `yaml:"session_secrets_file"`
	// ClientCAFile, when set, requires ingress clients to present a
	// certificate signed by this CA (mTLS); it counts as authentication.
	ClientCAFile string `yaml:"client_ca_file"`

	// SessionSecretsGenerated is set by Resolve when it made the secret.
	SessionSecretsGenerated bool `yaml:"-"`
}

// Ingress tunes notification handling.
type Ingress struct {
	// PublishTimeout bounds the wait for broker acknowledgement; past it the
	// request is answered 503. Default 5s.
	PublishTimeout Duration `yaml:"publish_timeout"`
	// RetryAfter is the Retry-After given with 429 and 503. Default 1s.
	RetryAfter Duration `yaml:"retry_after"`
	// PassUnknownTypes accepts event types other than the three QoD status
	// types, as long as their data is a QoD status. Default false (400).
	PassUnknownTypes bool `yaml:"pass_unknown_types"`
	// LegacySource is the CloudEvents source given to QoD v0.9 bodies
	// ({"event":{…}} with no CloudEvents attributes). Default
	// "urn:qodbridge:qod-v0.9".
	LegacySource string `yaml:"legacy_source"`
	// AllowedOrigins answers the CloudEvents webhook OPTIONS handshake:
	// origins allowed to send. Default ["*"] (any).
	AllowedOrigins []string `yaml:"allowed_origins"`
	// RateLimit is the requests per second one source address may send;
	// more answer 429 with Retry-After. 0 (default): no limit. Behind a
	// load balancer every request comes from its address: limit there.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is the token bucket size. 0: RateLimit, at least 1.
	RateBurst int `yaml:"rate_burst"`
	// AllowedRate is the WebHook-Allowed-Rate answered to the handshake,
	// in requests per minute; 0 answers "*". Default 0.
	AllowedRate int `yaml:"allowed_rate"`
	// MaxBatchEvents is the most events one batch
	// (application/cloudevents-batch+json) may hold; a larger batch is
	// answered 413 and none of it is published. Default 100.
	MaxBatchEvents int `yaml:"max_batch_events"`
}

// NATS configures the NATS side.
type NATS struct {
	// URL lists external NATS servers (comma-separated). Empty runs an
	// embedded server; "off" disables NATS. Env QODBRIDGE_NATS_URL.
	URL string `yaml:"url"`
	// Embedded configures the embedded server used when URL is empty.
	Embedded Embedded `yaml:"embedded"`
	// SubjectPrefix prefixes every subject. Default "qod".
	// Env QODBRIDGE_SUBJECT_PREFIX.
	SubjectPrefix string `yaml:"subject_prefix"`
	// Stream configures the JetStream stream of status events.
	Stream Stream `yaml:"stream"`
	// Structured publishes structured-mode CloudEvents instead of binary
	// mode. Default false.
	Structured bool `yaml:"structured"`

	// Name is the client connection name. Default "qodbridge".
	Name string `yaml:"name"`
	// Token, User, Password authenticate to external servers; *File
	// variants read the secret from a file.
	Token        string `yaml:"token"`
	TokenFile    string `yaml:"token_file"`
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// CredsFile is a NATS .creds file (JWT + NKey seed).
	CredsFile string `yaml:"creds_file"`
	// NKeyFile is a file holding an NKey user seed.
	NKeyFile string `yaml:"nkey_file"`
	// TLS to the NATS servers.
	TLS TLS `yaml:"tls"`
}

// Embedded configures the embedded NATS server.
type Embedded struct {
	// Address is the client listener. Default 127.0.0.1:4222.
	// Env QODBRIDGE_NATS_EMBEDDED_ADDRESS.
	Address string `yaml:"address"`
	// DataDir holds JetStream storage. Default ./qodbridge-data.
	// Env QODBRIDGE_DATA_DIR.
	DataDir string `yaml:"data_dir"`
}

// Stream configures the status stream.
type Stream struct {
	// Name of the stream. Default QOD_STATUS.
	Name string `yaml:"name"`
	// Replicas of the stream in a cluster. Default 1.
	Replicas int `yaml:"replicas"`
	// MaxAge drops events older than this; 0 keeps them. Default 0.
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes bounds the stream size; 0 means unlimited. Default 0.
	MaxBytes int64 `yaml:"max_bytes"`
	// DuplicateWindow is how long a resent notification is recognised.
	// Default 10s: the NATS server keeps each id of the window in memory.
	DuplicateWindow Duration `yaml:"duplicate_window"`
	// Memory stores the stream in memory instead of files. Default false.
	Memory bool `yaml:"memory"`
	// Discard is what a full stream (at max_bytes) does: "old" (default)
	// drops the oldest events; "new" refuses new ones, which the ingress
	// answers 503, so nothing stored is dropped to make room.
	Discard string `yaml:"discard"`
}

// Kafka configures the Kafka brokers, the status topic and the command
// topics. Kafka is on when Brokers is not empty.
type Kafka struct {
	// Brokers are seed brokers, host:port. Env QODBRIDGE_KAFKA_BROKERS
	// (comma-separated).
	Brokers []string `yaml:"brokers"`
	// ClientID names the bridge to the brokers. Default "qodbridge".
	ClientID string `yaml:"client_id"`
	// Topic receives status events, keyed by sessionId. Default qod.status.
	Topic string `yaml:"topic"`
	// Structured publishes structured-mode CloudEvents. Default false.
	Structured bool `yaml:"structured"`
	// BatchTimeout closes a batch of records. Default 5ms.
	BatchTimeout Duration `yaml:"batch_timeout"`
	// BatchSize is the records per partition per produce request.
	// Default 100.
	BatchSize int `yaml:"batch_size"`
	// Compression is none (default), gzip, snappy, lz4 or zstd.
	Compression string `yaml:"compression"`
	// DialTimeout bounds one connection, TLS and SASL included. Default 5s.
	DialTimeout Duration `yaml:"dial_timeout"`
	// CreateTopics creates missing topics; otherwise a missing topic is an
	// error at start. Default false.
	CreateTopics bool `yaml:"create_topics"`
	// Partitions of a created topic. Default 6.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of a created topic; 0 means the broker's default.
	ReplicationFactor int `yaml:"replication_factor"`
	// Compact creates the status topic with cleanup.policy=compact (only
	// the last status per session is kept). Default false.
	Compact bool `yaml:"compact"`
	// TLS to the brokers; Enabled turns TLS on with the system roots.
	TLS KafkaTLS `yaml:"tls"`
	// SASL authenticates to the brokers.
	SASL SASL `yaml:"sasl"`
	// CommandTopic, ResultTopic and DLQTopic are the command flow's
	// topics. Defaults qod.commands, qod.results, qod.commands.dlq.
	CommandTopic string `yaml:"command_topic"`
	ResultTopic  string `yaml:"result_topic"`
	DLQTopic     string `yaml:"dlq_topic"`
	// GroupID is the consumer group of the command consumer. Default
	// qodbridge.
	GroupID string `yaml:"group_id"`
}

// KafkaTLS is TLS to Kafka.
type KafkaTLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// SASL authenticates to Kafka.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty is none.
	Mechanism    string `yaml:"mechanism"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// QoD is the QoD API the command flow calls.
type QoD struct {
	// APIURL is the API base URL, e.g.
	// https://api.example/quality-on-demand/v1. Empty runs the built-in
	// simulator and uses it. Env QODBRIDGE_QOD_API_URL.
	APIURL string `yaml:"api_url"`
	// Dialect is camara-v1 (QoD 1.x, default) or camara-v0 (QoD 0.10,
	// Network as Code).
	Dialect string `yaml:"dialect"`
	// Token is a static bearer token. Env QODBRIDGE_QOD_API_TOKEN.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// OAuth2 client credentials, used when TokenURL is set.
	OAuth2 OAuth2 `yaml:"oauth2"`
	// APIKeyHeaders are sent on every call (Network as Code: X-RapidAPI-Key
	// and X-RapidAPI-Host). Values are secrets: prefer the environment.
	APIKeyHeaders map[string]string `yaml:"api_key_headers"`
	// Timeout bounds one API call. Default 10s.
	Timeout Duration `yaml:"timeout"`
}

// OAuth2 is the client-credentials grant.
type OAuth2 struct {
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
}

// Sim configures the built-in simulator.
type Sim struct {
	// Address of the simulator's listener. Default 127.0.0.1:8090.
	// Env QODBRIDGE_SIM_ADDRESS.
	Address string `yaml:"address"`
	// AvailableDelay is how long a session stays REQUESTED. Default 1s.
	AvailableDelay Duration `yaml:"available_delay"`
}

// Commands tunes the command flow.
type Commands struct {
	// Disabled turns the command flow off. Default false.
	Disabled bool `yaml:"disabled"`
	// Lanes is the number of commands run at once per intake. Default 16.
	Lanes int `yaml:"lanes"`
	// AckWait is how long the broker waits before redelivering an
	// unacknowledged command; above MaxElapsed. Default 3m.
	AckWait Duration `yaml:"ack_wait"`
	// MaxAttempts bounds QoD API calls per command. Default 5.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxDeliver bounds how often JetStream delivers one command (the
	// consumer's MaxDeliver): a command whose outcome cannot be published
	// comes back with a growing delay, and on its last delivery ends in a
	// bare dead letter or, failing that, is logged, counted and dropped.
	// Zero: 5.
	MaxDeliver int `yaml:"max_deliver"`
	// MaxElapsed bounds the time one command spends retrying. Default 60s.
	MaxElapsed Duration `yaml:"max_elapsed"`
	// ResultMaxAge keeps results on NATS this long. Default 24h.
	ResultMaxAge Duration `yaml:"result_max_age"`
	// Micro runs the NATS micro service "qod" (<prefix>.api.<action>).
	// Default true; set false to turn it off.
	Micro *bool `yaml:"micro"`
}

// MicroOn reports whether the micro service runs.
func (c Commands) MicroOn() bool { return c.Micro == nil || *c.Micro }

// TLS is a set of TLS files. For a server: CertFile and KeyFile; for a
// client: CAFile to verify the server, CertFile/KeyFile for a client
// certificate.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any TLS file is set.
func (t TLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// Log configures logging.
type Log struct {
	// Format is "json" (default) or "text".
	Format string `yaml:"format"`
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
}

// Duration is a time.Duration written as a string ("30s", "5m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts only duration strings, so that a bare number (whose
// unit a reader would have to guess) is an error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration string such as \"30s\"")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %q", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Errors of Load and Validate; each is wrapped with the field path.
var (
	// ErrUnknownKey reports a config file key that no setting has.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalid reports a setting whose value is not acceptable.
	ErrInvalid = errors.New("config: invalid value")
)

// FieldError names the setting that is wrong.
type FieldError struct {
	// Field is the dotted config-file path, e.g. "http.address", or the
	// environment variable name.
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
}

// Load reads the YAML file at path (none when empty), applies the
// environment given by getenv (os.Getenv when nil), fills in defaults and
// validates. Errors name the field.
func Load(path string, getenv func(string) string) (*Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		if err := Parse(b, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	if err := c.Resolve(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Parse decodes YAML into c strictly: unknown keys, wrong types and
// several documents are errors naming the key path.
func Parse(b []byte, c *Config) error {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: all defaults
		}
		return fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return fmt.Errorf("config: line %d: a config file holds one YAML document", extra.Line)
	}
	if len(root.Content) == 0 {
		return nil
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return nil
	}
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("config: line %d: want a mapping of settings at the top level", doc.Line)
	}
	lines := map[int]string{}
	if err := checkKeys(doc, reflect.TypeOf(*c), "", lines); err != nil {
		return err
	}
	if err := doc.Decode(c); err != nil {
		return namedTypeError(err, lines)
	}
	return nil
}

// checkKeys walks the YAML mapping against the struct type and reports the
// first unknown key by its full path. It records which path each line holds,
// so that yaml's own type errors ("line 7: cannot unmarshal…") can be given
// a field name.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string, lines map[int]string) error {
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			hint := ""
			if s := closest(k.Value, fields); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			return &FieldError{Field: path, Err: fmt.Errorf("%w at line %d%s", ErrUnknownKey, k.Line, hint)}
		}
		lines[v.Line] = path
		if f.Type == reflect.TypeOf(Duration(0)) {
			var d Duration
			if err := d.UnmarshalYAML(v); err != nil {
				return &FieldError{Field: path, Err: fmt.Errorf("%w at line %d: %w", ErrInvalid, v.Line, err)}
			}
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			if v.Kind != yaml.MappingNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
				return fieldErr(path, "want a mapping, got %s", kindName(v))
			}
			if err := checkKeys(v, f.Type, path, lines); err != nil {
				return err
			}
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

func namedTypeError(err error, lines map[int]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config: %w", err)
	}
	var errs []error
	for _, msg := range te.Errors {
		m := yamlLine.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, msg))
			continue
		}
		ln, _ := strconv.Atoi(m[1])
		field := lines[ln]
		if field == "" {
			field = "line " + m[1]
		}
		errs = append(errs, &FieldError{Field: field, Err: fmt.Errorf("%w at line %s: %s", ErrInvalid, m[1], m[2])})
	}
	return errors.Join(errs...)
}

// closest suggests a known key for a misspelt one.
func closest(key string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(key, name); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envVar maps an environment variable onto a setting.
type envVar struct {
	name string
	set  func(c *Config, v string) error
}

// Env lists the environment variables Load reads, in the order of the
// README table.
var envVars = []envVar{
	{"QODBRIDGE_HTTP_ADDRESS", func(c *Config, v string) error { c.HTTP.Address = v; return nil }},
	{"QODBRIDGE_ADMIN_ADDRESS", func(c *Config, v string) error { c.Admin.Address = v; return nil }},
	{"QODBRIDGE_ADMIN_UI", func(c *Config, v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: %q is not true or false", ErrInvalid, v)
		}
		c.Admin.UI = &on
		return nil
	}},
	{"QODBRIDGE_ADMIN_PPROF", func(c *Config, v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: %q is not true or false", ErrInvalid, v)
		}
		c.Admin.Pprof = on
		return nil
	}},
	{"QODBRIDGE_AUTH_TOKENS", func(c *Config, v string) error { c.Auth.Tokens = splitList(v); return nil }},
	{"QODBRIDGE_SESSION_SECRETS", func(c *Config, v string) error { c.Auth.SessionSecrets = splitList(v); return nil }},
	{"QODBRIDGE_PUBLIC_URL", func(c *Config, v string) error { c.HTTP.PublicURL = v; return nil }},
	{"QODBRIDGE_NATS_URL", func(c *Config, v string) error { c.NATS.URL = v; return nil }},
	{"QODBRIDGE_NATS_EMBEDDED_ADDRESS", func(c *Config, v string) error { c.NATS.Embedded.Address = v; return nil }},
	{"QODBRIDGE_DATA_DIR", func(c *Config, v string) error { c.NATS.Embedded.DataDir = v; return nil }},
	{"QODBRIDGE_SUBJECT_PREFIX", func(c *Config, v string) error { c.NATS.SubjectPrefix = v; return nil }},
	{"QODBRIDGE_KAFKA_BROKERS", func(c *Config, v string) error { c.Kafka.Brokers = splitList(v); return nil }},
	{"QODBRIDGE_QOD_API_URL", func(c *Config, v string) error { c.QoD.APIURL = v; return nil }},
	{"QODBRIDGE_QOD_API_TOKEN", func(c *Config, v string) error { c.QoD.Token = v; return nil }},
	{"QODBRIDGE_SIM_ADDRESS", func(c *Config, v string) error { c.Sim.Address = v; return nil }},
	{"QODBRIDGE_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"QODBRIDGE_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
}

// EnvNames returns the environment variables Load reads.
func EnvNames() []string {
	names := make([]string, len(envVars))
	for i, e := range envVars {
		names[i] = e.name
	}
	return names
}

func (c *Config) applyEnv(getenv func(string) string) error {
	for _, e := range envVars {
		if v := getenv(e.name); v != "" {
			if err := e.set(c, v); err != nil {
				return &FieldError{Field: e.name, Err: err}
			}
		}
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

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

	if c.Auth.TokensFile != "" {
		lines, err := readLines(c.Auth.TokensFile)
		if err != nil {
			return &FieldError{Field: "auth.tokens_file", Err: err}
		}
		c.Auth.Tokens = append(c.Auth.Tokens, lines...)
		c.Auth.TokensFile = ""
	}
	if c.Auth.SessionSecretsFile != "" {
		lines, err := readLines(c.Auth.SessionSecretsFile)
		if err != nil {
			return &FieldError{Field: "auth.session_secrets_file", Err: err}
		}
		c.Auth.SessionSecrets = append(c.Auth.SessionSecrets, lines...)
		c.Auth.SessionSecretsFile = ""
	}
	for _, sf := range []struct {
		field      string
		file, dest *string
	}{
		{"nats.token_file", &c.NATS.TokenFile, &c.NATS.Token},
		{"nats.password_file", &c.NATS.PasswordFile, &c.NATS.Password},
		{"kafka.sasl.password_file", &c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password},
		{"qod.token_file", &c.QoD.TokenFile, &c.QoD.Token},
		{"qod.oauth2.client_secret_file", &c.QoD.OAuth2.ClientSecretFile, &c.QoD.OAuth2.ClientSecret},
	} {
		if *sf.file == "" {
			continue
		}
		lines, err := readLines(*sf.file)
		if err != nil || len(lines) != 1 {
			if err == nil {
				err = fmt.Errorf("%w: %s must hold exactly one line", ErrInvalid, *sf.file)
			}
			return &FieldError{Field: sf.field, Err: err}
		}
		*sf.dest, *sf.file = lines[0], ""
	}
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

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no secret", ErrInvalid, path)
	}
	return out, nil
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

// NATSOff reports whether NATS is disabled.
func (c *Config) NATSOff() bool { return strings.EqualFold(c.NATS.URL, "off") }

// NATSEmbedded reports whether the bridge runs its own NATS server.
func (c *Config) NATSEmbedded() bool { return c.NATS.URL == "" }

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

func randomToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("config: crypto/rand: %v", err)) // cannot fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Masked returns a copy of c with every secret replaced by "***", for
// printing.
func (c *Config) Masked() Config {
	m := *c
	mask := func(in []string) []string {
		out := make([]string, len(in))
		for i := range in {
			out[i] = "***"
		}
		return out
	}
	m.Auth.Tokens = mask(c.Auth.Tokens)
	m.Auth.SessionSecrets = mask(c.Auth.SessionSecrets)
	if m.NATS.Token != "" {
		m.NATS.Token = "***"
	}
	for _, p := range []*string{&m.NATS.Password, &m.Kafka.SASL.Password, &m.QoD.Token, &m.QoD.OAuth2.ClientSecret} {
		if *p != "" {
			*p = "***"
		}
	}
	if len(c.QoD.APIKeyHeaders) > 0 {
		m.QoD.APIKeyHeaders = map[string]string{}
		for k := range c.QoD.APIKeyHeaders {
			m.QoD.APIKeyHeaders[k] = "***"
		}
	}
	m.GeneratedToken = ""
	return m
}
