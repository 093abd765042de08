package config

import (
	"fmt"
	"net/netip"
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
	// View is the session view: every session's current status, kept
	// beside the history on each broker.
	View View `yaml:"view"`
	// Log configures log/slog output.
	Log Log `yaml:"log"`
	// ShutdownTimeout bounds a graceful shutdown: in-flight requests and
	// publishes get this long after SIGTERM. Default 25s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	// GeneratedToken is set by Resolve when no token was configured and the
	// ingress listens on loopback: a random token the bridge prints at start.
	GeneratedToken string `yaml:"-"`

	origins map[string]string // key → where its value came from (Origin)
	files   []string          // the files settings were read from (SourceFiles)
	// secretFiles: key → the file its secret was read from (SecretFile).
	secretFiles map[string]string
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
	// TrustedProxies are the load balancers and reverse proxies in front
	// of the ingress (IP addresses or CIDR prefixes): from them the
	// client's address, which the rate limit is kept per, is taken from
	// X-Forwarded-For; from anyone else that header is ignored. Env
	// QODBRIDGE_TRUSTED_PROXIES (comma-separated).
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Prefixes parses addresses and CIDR prefixes, an address standing for
// itself alone.
func Prefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is neither an IP address nor a CIDR prefix", ErrInvalid, s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Admin configures the admin listener.
type Admin struct {
	// Address is host:port for /healthz, /readyz, /metrics. Default
	// 127.0.0.1:9090; "off" disables it. Env QODBRIDGE_ADMIN_ADDRESS.
	Address string `yaml:"address"`
	// UI serves the live session console at /ui on this listener. Default
	// true. On a loopback address it needs no credentials; on any other it
	// asks for one of admin.tokens and is off when there are none. Env
	// QODBRIDGE_ADMIN_UI (true/false).
	UI *bool `yaml:"ui"`
	// Tokens are the admin listener's own bearer tokens, never the
	// notification senders' auth.tokens (who may only notify): the
	// console's sign-in and, off loopback, /metrics and /readyz's detail.
	// Env QODBRIDGE_ADMIN_TOKENS (comma-separated).
	Tokens []string `yaml:"tokens" secret:"true"`
	// TokensFile names a file with one admin token per line.
	TokensFile string `yaml:"tokens_file"`
	// OpenMetrics serves /metrics without a token off loopback too, for a
	// scraper that cannot send one on a network that is private anyway.
	// Default false.
	OpenMetrics bool `yaml:"open_metrics"`
	// TrustedProxies are the reverse proxies in front of this listener
	// (IP addresses or CIDR prefixes): from them, X-Forwarded-Proto: https
	// makes the console's cookie Secure.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxConnections bounds the listener's open connections. Default 64.
	MaxConnections int `yaml:"max_connections"`
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
	Tokens []string `yaml:"tokens" secret:"true"`
	// TokensFile names a file with one token per line (blank lines and
	// lines starting with # are skipped); added to Tokens.
	TokensFile string `yaml:"tokens_file"`
	// SessionSecrets are HMAC keys for per-session credentials on
	// /notifications/{key}; the first signs new sessions, all verify.
	// Env QODBRIDGE_SESSION_SECRETS (comma-separated). Default: one random
	// secret per process, which is fine for a single instance but breaks
	// per-session credentials across restarts and instances.
	SessionSecrets []string `yaml:"session_secrets" secret:"true"`
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
	Token        string `yaml:"token" secret:"true"`
	TokenFile    string `yaml:"token_file"`
	User         string `yaml:"user"`
	Password     string `yaml:"password" secret:"true"`
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
	// Password is what clients give, as user "qod", to an embedded server
	// whose address is not loopback; required there (an open broker would
	// let anyone who reaches it write statuses, run commands with the
	// operator's API credentials and delete streams). The user may send
	// commands and read statuses and results, nothing else; the bridge
	// connects as a user of its own. Env QODBRIDGE_NATS_EMBEDDED_PASSWORD.
	Password string `yaml:"password" secret:"true"`
	// PasswordFile names a file holding Password.
	PasswordFile string `yaml:"password_file"`
	// TLS serves the embedded server's client listener over TLS.
	TLS ServerTLS `yaml:"tls"`
	// Sync is when JetStream writes its files to disk: "always" (before
	// each acknowledgement: a 204 survives a power loss) or an interval
	// such as "2m" (a 204 survives a crash of the process; a power loss
	// can lose what was acknowledged since the last sync). Default
	// DefaultSync. Env QODBRIDGE_NATS_SYNC.
	Sync string `yaml:"sync"`
}

// SyncAlways is the Embedded.Sync value that syncs every write.
const SyncAlways = "always"

// SyncPolicy reads Sync: always, or the interval (0: the server's
// default).
func (e Embedded) SyncPolicy() (always bool, interval time.Duration, err error) {
	switch e.Sync {
	case "":
		return false, 0, nil
	case SyncAlways:
		return true, 0, nil
	}
	d, err := time.ParseDuration(e.Sync)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("%w: %q is neither %q nor a positive duration such as \"2m\"", ErrInvalid, e.Sync, SyncAlways)
	}
	return false, d, nil
}

// Stream configures the status stream.
type Stream struct {
	// Name of the stream. Default QOD_STATUS.
	Name string `yaml:"name"`
	// Replicas of the stream in a cluster, and of the command streams and
	// the command store the bridge creates beside it. Default 1.
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
	// BatchTimeout is how long an idle partition's first record waits
	// for others before it is sent. Default 0: at once; records arriving
	// while a partition's produce request is in flight go in its next.
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
	Password     string `yaml:"password" secret:"true"`
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
	Token     string `yaml:"token" secret:"true"`
	TokenFile string `yaml:"token_file"`
	// OAuth2 client credentials, used when TokenURL is set.
	OAuth2 OAuth2 `yaml:"oauth2"`
	// APIKeyHeaders are sent on every call (Network as Code: X-RapidAPI-Key
	// and X-RapidAPI-Host). Values are secrets: prefer the environment.
	APIKeyHeaders map[string]string `yaml:"api_key_headers" secret:"true"`
	// Timeout bounds one API call. Default 10s.
	Timeout Duration `yaml:"timeout"`
}

// OAuth2 is the client-credentials grant.
type OAuth2 struct {
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret" secret:"true"`
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

// View configures the session view (bridge/view.go): the current status
// of every session under the bridge's rule, in a NATS key-value bucket and
// a compacted Kafka topic, updated after each event's history publish.
type View struct {
	// Disabled turns the view off: only the status stream and topic are
	// written, and readers fall back to the last status per subject.
	// Default false.
	Disabled bool `yaml:"disabled"`
	// Bucket is the NATS key-value bucket (key: the sessionToken, '%'
	// written as '='). Default QOD_SESSIONS.
	Bucket string `yaml:"bucket"`
	// Topic is the compacted Kafka topic (key: sessionId). Default
	// qod.sessions.
	Topic string `yaml:"topic"`
	// Retention is how long an ended session's entry is kept after it
	// ended (NATS per-key TTL; a Kafka tombstone). Default 24h.
	Retention Duration `yaml:"retention"`
	// KeepEnded keeps ended sessions' entries until deleted (no per-key
	// TTL, which needs nats-server 2.11 or later). Default false.
	KeepEnded bool `yaml:"keep_ended"`
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

// NATSOff reports whether NATS is disabled.
func (c *Config) NATSOff() bool { return c.NATS.off() }

// NATSEmbedded reports whether the bridge runs its own NATS server.
func (c *Config) NATSEmbedded() bool { return c.NATS.embedded() }

func (n NATS) off() bool      { return strings.EqualFold(n.URL, "off") }
func (n NATS) embedded() bool { return n.URL == "" }

// ServerTLS is a listener's certificate and key.
type ServerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}
