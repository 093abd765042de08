package qodsim

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults applied to the zero values of Options.
const (
	DefaultAvailableDelay  = time.Second
	DefaultRetention       = 360 * time.Second // the spec's "at earliest 360 seconds" for released resources
	DefaultMaxSessions     = 10000
	DefaultEventSource     = "https://qodsim.local"
	DefaultNotifyTimeout   = 10 * time.Second
	DefaultMaxAttempts     = 5
	DefaultRetryBackoff    = 500 * time.Millisecond
	DefaultRetryMaxBackoff = 30 * time.Second
	DefaultSenders         = 16
	// DefaultRetryAfter is the Retry-After, in seconds, of the simulator's
	// own 429 answers (rate-limited scenario, session quota).
	DefaultRetryAfter = 1
)

// Format selects the shape of the notifications the simulator sends.
type Format string

// Notification formats.
const (
	// FormatAuto (the zero value) sends FormatCAMARAv1 for sessions created
	// through /quality-on-demand/v1 and FormatCAMARAv0 for sessions created
	// through /qod/v0.
	FormatAuto Format = ""
	// FormatCAMARAv1 is the callback of QoD 1.1.0: a structured CloudEvent
	// of type org.camaraproject.quality-on-demand.v1.qos-status-changed, data
	// {sessionId, qosStatus, statusInfo}, sent as
	// Content-Type: application/cloudevents+json.
	FormatCAMARAv1 Format = "camara-v1"
	// FormatCAMARAv0 is the callback of QoD 0.10 as Network as Code documents
	// it: type org.camaraproject.qod.v0.qos-status-changed, the same data,
	// sent as Content-Type: application/json as that platform does.
	FormatCAMARAv0 Format = "camara-v0"
	// FormatNaC is the legacy Network-as-Code shape: the CloudEvent
	// attributes of FormatCAMARAv0 plus
	// event{eventType:"QOS_STATUS_CHANGED", eventTime, eventDetail{sessionId,
	// qosStatus, statusInfo}} beside data, statusInfo null when absent,
	// sent as Content-Type: application/json.
	FormatNaC Format = "nac"
)

// ParseFormat parses the name of a Format; "" and "auto" are FormatAuto.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case "auto":
		return FormatAuto, nil
	case FormatAuto, FormatCAMARAv1, FormatCAMARAv0, FormatNaC:
		return f, nil
	}
	return "", fmt.Errorf("%w: format %q: want auto, camara-v1, camara-v0 or nac", ErrInvalidOptions, s)
}

// String returns the flag name of f ("auto" for FormatAuto).
func (f Format) String() string {
	if f == FormatAuto {
		return "auto"
	}
	return string(f)
}

// Profile is one QoS profile the simulator offers.
type Profile struct {
	// Name as sent in qosProfile, 3 to 256 of [a-zA-Z0-9_.-].
	Name string
	// Description is shown by the v0 /qos-profiles endpoints.
	Description string
	// MinDuration and MaxDuration bound a session's duration, in whole
	// seconds (a fraction is cut off). Zero MinDuration means 1s; zero
	// MaxDuration means 24h.
	MinDuration, MaxDuration time.Duration
	// Status is ACTIVE (also ""), INACTIVE or DEPRECATED. A create with a
	// profile that is not ACTIVE answers 422
	// QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE.
	Status string
	// Devices, when not empty, restrict the profile to these devices, named
	// like scenario devices (phone numbers, and access identifiers, which
	// only /qod/v0 uses): the qos-profiles API lists it only for them
	// (never without a device), getQosProfile with a three-legged token of
	// another device answers 404, and a create for another device answers
	// 422 QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE. Empty: every
	// device.
	Devices []string
}

// DefaultProfiles returns the built-in profile set used when
// Options.Profiles is nil: QOS_E, QOS_S, QOS_M and QOS_L, each allowing 1s to
// 24h (the Network-as-Code maximum).
func DefaultProfiles() []Profile {
	return []Profile{
		{Name: "QOS_E", Description: "Enhanced communication: stable low latency"},
		{Name: "QOS_S", Description: "Small throughput"},
		{Name: "QOS_M", Description: "Medium throughput"},
		{Name: "QOS_L", Description: "Large throughput"},
	}
}

// Scenarios names the device identifiers with a scripted behaviour (see the
// package documentation). Each identifier is compared with a device's
// phoneNumber (leading "+" ignored) and networkAccessIdentifier (case
// ignored). A nil list takes the defaults below; an empty non-nil list
// disables that scenario.
type Scenarios struct {
	// Unavailable: REQUESTED, then after AvailableDelay UNAVAILABLE with no
	// statusInfo. Default unavailable@testcsp.net, +99999991001.
	Unavailable []string
	// NetworkTerminated: REQUESTED, then after AvailableDelay UNAVAILABLE
	// with NETWORK_TERMINATED. Default network-terminated@testcsp.net,
	// +99999991002.
	NetworkTerminated []string
	// Available: the create answers AVAILABLE at once and the AVAILABLE
	// notification (no statusInfo) follows immediately. Default
	// available@testcsp.net, +99999991003.
	Available []string
	// RateLimited: every other create answers 429 TOO_MANY_REQUESTS with
	// Retry-After, starting with the first; the retry succeeds. Default
	// rate-limited@testcsp.net, +99999991429.
	RateLimited []string
	// ServerError: every other create answers 500 INTERNAL, starting with
	// the first; the retry succeeds. Default server-error@testcsp.net,
	// +99999991500.
	ServerError []string
	// NotFound: devices the network does not know: create,
	// retrieve-sessions and retrieve-qos-profiles answer 404
	// IDENTIFIER_NOT_FOUND, and no three-legged token can name them.
	// Default not-found@testcsp.net, +99999991404.
	NotFound []string
	// NotApplicable: devices the service does not apply to: create,
	// retrieve-sessions and retrieve-qos-profiles answer 422
	// SERVICE_NOT_APPLICABLE. Default not-applicable@testcsp.net,
	// +99999991422.
	NotApplicable []string
	// NoProfiles: devices no QoS profile is available to: the qos-profiles
	// API lists none for them (200 []), and a create answers 422
	// QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE. Default
	// no-profiles@testcsp.net, +99999991004.
	NoProfiles []string
}

// Default scenario identifiers.
var (
	DefaultUnavailable       = []string{"unavailable@testcsp.net", "+99999991001"}
	DefaultNetworkTerminated = []string{"network-terminated@testcsp.net", "+99999991002"}
	DefaultAvailable         = []string{"available@testcsp.net", "+99999991003"}
	DefaultRateLimited       = []string{"rate-limited@testcsp.net", "+99999991429"}
	DefaultServerError       = []string{"server-error@testcsp.net", "+99999991500"}
	DefaultNotFound          = []string{"not-found@testcsp.net", "+99999991404"}
	DefaultNotApplicable     = []string{"not-applicable@testcsp.net", "+99999991422"}
	DefaultNoProfiles        = []string{"no-profiles@testcsp.net", "+99999991004"}
)

// Options configure a Sim. The zero value is usable: no authentication,
// the default profiles and scenario devices, and the defaults named on each
// field.
type Options struct {
	// Tokens are the bearer tokens the API accepts (several, for rotation).
	// Empty: the API needs no authentication (unless OAuth is on; the two
	// exclude each other).
	Tokens []string

	// OAuth turns on the OAuth 2.0 mode: tokens from a token endpoint,
	// scopes, sessions owned by clients. Zero: off.
	OAuth OAuth

	// Profiles is the QoS profile set. Nil: DefaultProfiles().
	Profiles []Profile

	// AvailableDelay is the time a session stays REQUESTED before it turns
	// AVAILABLE (or, for the Unavailable and NetworkTerminated scenarios,
	// UNAVAILABLE). Zero: DefaultAvailableDelay (1s). Negative: at once
	// (still after the create answered, on the next clock tick).
	AvailableDelay time.Duration

	// Retention is how long a session that turned UNAVAILABLE on its own
	// (expiry, scenarios) can still be read before it is removed; a deleted
	// session is removed at once. Zero: DefaultRetention (360s). Negative:
	// removed at once.
	Retention time.Duration

	// MaxSessions bounds the sessions held, counting retained UNAVAILABLE
	// ones and deleted ones whose notifications are still being sent. When
	// it is reached, retained UNAVAILABLE sessions are dropped oldest first;
	// when none is left, create answers 429 QUOTA_EXCEEDED with Retry-After.
	// Zero: DefaultMaxSessions (10000).
	MaxSessions int

	// AllowedSinks, when not empty, are the notification targets the
	// simulator may POST to: a sink must have the scheme and host of one of
	// these URLs, its port if it names one, and a path under its path if
	// it has one, else create answers 400 INVALID_SINK. A simulator reachable from other machines
	// sets it, so that it cannot be used to send requests with a token of
	// the caller's choosing to any address it can reach. LoopbackSinks are
	// the loopback addresses, to add to the bridge's own URL. Empty: any
	// sink.
	AllowedSinks []string

	// Strict enforces the spec where the simulator is lenient by default:
	// a sink must be https:// (400 INVALID_SINK otherwise) and a v0
	// notificationAuthToken must have 20 to 256 characters.
	Strict bool

	// Format is the notification shape. Zero: FormatAuto.
	Format Format

	// EventSource is the base of each notification's source attribute:
	// source = EventSource + API base path + "/sessions/" + sessionId, for
	// example https://qodsim.local/quality-on-demand/v1/sessions/<id>.
	// Zero: DefaultEventSource.
	EventSource string

	// Scenarios are the scripted device identifiers.
	Scenarios Scenarios

	// HTTPClient sends notifications. Nil: a client that does not follow
	// redirects and keeps up to Senders idle connections per host.
	HTTPClient *http.Client
	// NotifyTimeout bounds one delivery attempt. Zero: DefaultNotifyTimeout.
	NotifyTimeout time.Duration
	// MaxAttempts bounds the attempts to deliver one notification (1: no
	// retry). Zero: DefaultMaxAttempts (5).
	MaxAttempts int
	// RetryBackoff is the wait before the second attempt; it doubles per
	// attempt, with jitter, up to RetryMaxBackoff. Zero: DefaultRetryBackoff.
	RetryBackoff time.Duration
	// RetryMaxBackoff caps every wait between attempts, a Retry-After of the
	// receiver included. Zero: DefaultRetryMaxBackoff (30s).
	RetryMaxBackoff time.Duration
	// Senders bounds the notifications being delivered at once. Zero:
	// DefaultSenders (16).
	Senders int

	// Clock drives the life cycle, the retry waits and the timestamps. Nil:
	// the real clock. Tests pass a *ManualClock.
	Clock Clock
	// Logger receives one line per failed delivery and per rejected
	// notification. Nil: discard.
	Logger *slog.Logger
}

// ErrInvalidOptions is wrapped by the error New returns for options it
// cannot use.
var ErrInvalidOptions = errors.New("qodsim: invalid options")

var profileNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,256}$`)

// config is Options with the defaults applied and the lists indexed.
type config struct {
	Options
	oauth      *oauthConfig // nil: OAuth mode off
	profiles   map[string]Profile
	order      []string                   // profile names in the given order
	restricted map[string]map[string]bool // profile name -> the device keys it is restricted to
	scenarios  map[string]scenario
}

func (o Options) resolve() (*config, error) {
	c := &config{Options: o}
	if c.AvailableDelay == 0 {
		c.AvailableDelay = DefaultAvailableDelay
	} else if c.AvailableDelay < 0 {
		c.AvailableDelay = 0
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	} else if c.Retention < 0 {
		c.Retention = 0
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxSessions < 0 {
		return nil, fmt.Errorf("%w: MaxSessions %d is negative", ErrInvalidOptions, c.MaxSessions)
	}
	f, err := ParseFormat(string(c.Format))
	if err != nil {
		return nil, err
	}
	c.Format = f
	if c.EventSource == "" {
		c.EventSource = DefaultEventSource
	}
	c.EventSource = strings.TrimSuffix(c.EventSource, "/")
	if c.NotifyTimeout <= 0 {
		c.NotifyTimeout = DefaultNotifyTimeout
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.RetryMaxBackoff <= 0 {
		c.RetryMaxBackoff = DefaultRetryMaxBackoff
	}
	if c.Senders <= 0 {
		c.Senders = DefaultSenders
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	for i, t := range c.Tokens {
		if t == "" {
			return nil, fmt.Errorf("%w: Tokens[%d] is empty", ErrInvalidOptions, i)
		}
	}
	if c.oauth, err = o.OAuth.resolve(); err != nil {
		return nil, err
	}
	if c.oauth != nil && len(c.Tokens) > 0 {
		return nil, fmt.Errorf("%w: Tokens and OAuth.Clients are both set: static tokens have no client, scopes or device", ErrInvalidOptions)
	}
	for i, p := range c.AllowedSinks {
		if u, err := url.Parse(p); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: AllowedSinks[%d] %q is not an absolute http(s) URL prefix", ErrInvalidOptions, i, p)
		}
	}

	profiles := c.Profiles
	if profiles == nil {
		profiles = DefaultProfiles()
	}
	c.profiles = make(map[string]Profile, len(profiles))
	c.restricted = make(map[string]map[string]bool)
	for i, p := range profiles {
		if !profileNameRE.MatchString(p.Name) {
			return nil, fmt.Errorf("%w: Profiles[%d].Name %q: want 3 to 256 of [a-zA-Z0-9_.-]", ErrInvalidOptions, i, p.Name)
		}
		if _, dup := c.profiles[p.Name]; dup {
			return nil, fmt.Errorf("%w: Profiles[%d].Name %q given twice", ErrInvalidOptions, i, p.Name)
		}
		p.MinDuration = p.MinDuration.Truncate(time.Second)
		p.MaxDuration = p.MaxDuration.Truncate(time.Second)
		if p.MinDuration == 0 {
			p.MinDuration = time.Second
		}
		if p.MaxDuration == 0 {
			p.MaxDuration = 24 * time.Hour
		}
		if p.MinDuration < time.Second || p.MaxDuration < p.MinDuration || p.MaxDuration > math.MaxInt32*time.Second {
			return nil, fmt.Errorf("%w: Profiles[%d] %s: want 1s <= MinDuration (%v) <= MaxDuration (%v) <= %ds",
				ErrInvalidOptions, i, p.Name, p.MinDuration, p.MaxDuration, math.MaxInt32)
		}
		switch p.Status {
		case "":
			p.Status = "ACTIVE"
		case "ACTIVE", "INACTIVE", "DEPRECATED":
		default:
			return nil, fmt.Errorf("%w: Profiles[%d].Status %q: want ACTIVE, INACTIVE or DEPRECATED", ErrInvalidOptions, i, p.Status)
		}
		if len(p.Devices) > 0 {
			keys := make(map[string]bool, len(p.Devices))
			for _, id := range p.Devices {
				k := scenarioKey(id)
				if k == "" {
					return nil, fmt.Errorf("%w: Profiles[%d].Devices: empty identifier", ErrInvalidOptions, i)
				}
				keys[k] = true
			}
			c.restricted[p.Name] = keys
			p.Devices = slices.Clone(p.Devices)
		}
		c.profiles[p.Name] = p
		c.order = append(c.order, p.Name)
	}

	c.scenarios = make(map[string]scenario)
	for _, l := range []struct {
		name string
		ids  []string
		def  []string
		sc   scenario
	}{
		{"Unavailable", o.Scenarios.Unavailable, DefaultUnavailable, scenarioUnavailable},
		{"NetworkTerminated", o.Scenarios.NetworkTerminated, DefaultNetworkTerminated, scenarioNetworkTerminated},
		{"Available", o.Scenarios.Available, DefaultAvailable, scenarioAvailable},
		{"RateLimited", o.Scenarios.RateLimited, DefaultRateLimited, scenarioRateLimited},
		{"ServerError", o.Scenarios.ServerError, DefaultServerError, scenarioServerError},
		{"NotFound", o.Scenarios.NotFound, DefaultNotFound, scenarioNotFound},
		{"NotApplicable", o.Scenarios.NotApplicable, DefaultNotApplicable, scenarioNotApplicable},
		{"NoProfiles", o.Scenarios.NoProfiles, DefaultNoProfiles, scenarioNoProfiles},
	} {
		ids := l.ids
		if ids == nil {
			ids = l.def
		}
		for _, id := range ids {
			k := scenarioKey(id)
			if k == "" {
				return nil, fmt.Errorf("%w: Scenarios.%s: empty identifier", ErrInvalidOptions, l.name)
			}
			if prev, dup := c.scenarios[k]; dup {
				return nil, fmt.Errorf("%w: Scenarios.%s: identifier %q is already in Scenarios.%s", ErrInvalidOptions, l.name, id, prev)
			}
			c.scenarios[k] = l.sc
		}
	}
	return c, nil
}

// scenarioKey normalizes an identifier the way devices are matched: phone
// numbers without "+", access identifiers in lower case.
func scenarioKey(id string) string {
	id = strings.TrimSpace(id)
	if strings.Contains(id, "@") {
		return "nai:" + strings.ToLower(id)
	}
	if id == "" {
		return ""
	}
	return "tel:" + strings.TrimPrefix(id, "+")
}

// RegisterFlags defines on fs one flag per setting of o that a command line
// needs, with o's current values (or the defaults) as flag defaults, so
// `qodbridge sim` can do:
//
//	var opts qodsim.Options
//	opts.RegisterFlags(fs)
//	fs.Parse(args)
//	sim, err := qodsim.New(opts)
//
// Flags: -token (repeatable, or comma-separated), -oauth-client ID:SECRET
// (repeatable, or comma-separated), -oauth-token-ttl, -available-delay,
// -retention (0 there means at once), -max-sessions, -strict, -format,
// -event-source, -notify-timeout, -max-attempts, -retry-backoff,
// -retry-max-backoff, -senders, -scenario-unavailable,
// -scenario-network-terminated, -scenario-available,
// -scenario-rate-limited, -scenario-server-error, -scenario-not-found,
// -scenario-not-applicable, -scenario-no-profiles (comma-separated; an
// empty value disables the scenario), and -profile-status NAME=STATUS and
// -profile-device NAME=IDENTIFIER (repeatable or comma-separated), which
// change a profile of the set (the defaults unless Profiles is set) or add
// one by that name. The listen address is the caller's flag. Clock,
// HTTPClient and Logger have no flags.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.Func("token", "bearer `token` the API accepts (repeatable or comma-separated; none: no authentication)", func(s string) error {
		for t := range strings.SplitSeq(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				o.Tokens = append(o.Tokens, t)
			}
		}
		return nil
	})
	fs.Func("oauth-client", "turn on the OAuth 2.0 mode with a client, `ID:SECRET`, that may have every scope (repeatable or comma-separated); tokens from POST "+TokenPath+" (client_credentials), three-legged ones through "+BackchannelAuthPath+" (CIBA)",
		func(s string) error {
			for item := range strings.SplitSeq(s, ",") {
				if item = strings.TrimSpace(item); item == "" {
					continue
				}
				id, secret, ok := strings.Cut(item, ":")
				if !ok || id == "" || secret == "" {
					return errors.New("want ID:SECRET")
				}
				o.OAuth.Clients = append(o.OAuth.Clients, OAuthClient{ID: id, Secret: secret})
			}
			return nil
		})
	ttl := o.OAuth.TokenTTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	fs.Func("oauth-token-ttl", fmt.Sprintf("lifetime of an OAuth access token, a `duration` of at least 1s (default %v)", ttl), func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d < time.Second {
			return fmt.Errorf("%v is below 1s", d)
		}
		o.OAuth.TokenTTL = d
		return nil
	})
	durFlag(fs, &o.AvailableDelay, "available-delay", DefaultAvailableDelay, "time a session stays REQUESTED (0: at once)")
	durFlag(fs, &o.Retention, "retention", DefaultRetention, "time an UNAVAILABLE session stays readable (0: removed at once)")
	intFlag(fs, &o.MaxSessions, "max-sessions", DefaultMaxSessions, "sessions held at most")
	fs.BoolVar(&o.Strict, "strict", o.Strict, "enforce the spec: https:// sinks only, v0 tokens of 20 to 256 characters")
	fs.Func("allow-sink", "URL `prefix` notifications may be sent to (repeatable or comma-separated; none: any sink, which only a loopback simulator allows)", func(s string) error {
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.AllowedSinks = append(o.AllowedSinks, p)
			}
		}
		return nil
	})
	fs.Func("format", "notification `format`: auto, camara-v1, camara-v0 or nac (default auto)", func(s string) error {
		f, err := ParseFormat(s)
		if err == nil {
			o.Format = f
		}
		return err
	})
	src := o.EventSource
	if src == "" {
		src = DefaultEventSource
	}
	fs.StringVar(&o.EventSource, "event-source", src, "base `URL` of each notification's source attribute")
	plainDurFlag(fs, &o.NotifyTimeout, "notify-timeout", DefaultNotifyTimeout, "timeout of one notification attempt")
	intFlag(fs, &o.MaxAttempts, "max-attempts", DefaultMaxAttempts, "attempts to deliver one notification")
	plainDurFlag(fs, &o.RetryBackoff, "retry-backoff", DefaultRetryBackoff, "wait before the first retry (doubles per attempt)")
	plainDurFlag(fs, &o.RetryMaxBackoff, "retry-max-backoff", DefaultRetryMaxBackoff, "longest wait between attempts, Retry-After included")
	intFlag(fs, &o.Senders, "senders", DefaultSenders, "notifications delivered at once")
	for _, l := range []struct {
		name string
		p    *[]string
		def  []string
	}{
		{"unavailable", &o.Scenarios.Unavailable, DefaultUnavailable},
		{"network-terminated", &o.Scenarios.NetworkTerminated, DefaultNetworkTerminated},
		{"available", &o.Scenarios.Available, DefaultAvailable},
		{"rate-limited", &o.Scenarios.RateLimited, DefaultRateLimited},
		{"server-error", &o.Scenarios.ServerError, DefaultServerError},
		{"not-found", &o.Scenarios.NotFound, DefaultNotFound},
		{"not-applicable", &o.Scenarios.NotApplicable, DefaultNotApplicable},
		{"no-profiles", &o.Scenarios.NoProfiles, DefaultNoProfiles},
	} {
		def := *l.p
		if def == nil {
			def = l.def
		}
		fs.Func("scenario-"+l.name, fmt.Sprintf("comma-separated device `identifiers` of the %s scenario (empty: none; default %s)",
			l.name, strings.Join(def, ",")), func(s string) error {
			ids := []string{}
			for id := range strings.SplitSeq(s, ",") {
				if id = strings.TrimSpace(id); id != "" {
					ids = append(ids, id)
				}
			}
			*l.p = ids
			return nil
		})
	}
	fs.Func("profile-status", "set a QoS profile's status, `NAME=STATUS` with STATUS ACTIVE, INACTIVE or DEPRECATED; a name not offered yet adds that profile (1s to 24h); repeatable or comma-separated, e.g. QOS_OLD=DEPRECATED",
		func(s string) error {
			return o.profileFlag(s, func(p *Profile, v string) error {
				switch st := strings.ToUpper(v); st {
				case "ACTIVE", "INACTIVE", "DEPRECATED":
					p.Status = st
					return nil
				}
				return fmt.Errorf("status %q: want ACTIVE, INACTIVE or DEPRECATED", v)
			})
		})
	fs.Func("profile-device", "restrict a QoS profile to a device, `NAME=IDENTIFIER` (a phone number, or an access identifier for /qod/v0); repeatable or comma-separated for more devices; a name not offered yet adds that profile; e.g. QOS_VIP=+99999991005",
		func(s string) error {
			return o.profileFlag(s, func(p *Profile, v string) error {
				if scenarioKey(v) == "" {
					return errors.New("empty device identifier")
				}
				p.Devices = append(p.Devices, strings.TrimSpace(v))
				return nil
			})
		})
}

// profileFlag applies set to the profile named by each NAME=VALUE item of
// s (comma-separated), adding a profile by that name when the set (the
// defaults while Profiles is nil) has none.
func (o *Options) profileFlag(s string, set func(*Profile, string) error) error {
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		name, v, ok := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		if !ok || !profileNameRE.MatchString(name) {
			return fmt.Errorf("%q: want NAME=VALUE with NAME 3 to 256 of [a-zA-Z0-9_.-]", item)
		}
		if o.Profiles == nil {
			o.Profiles = DefaultProfiles()
		}
		i := slices.IndexFunc(o.Profiles, func(p Profile) bool { return p.Name == name })
		if i < 0 {
			o.Profiles = append(o.Profiles, Profile{Name: name})
			i = len(o.Profiles) - 1
		}
		if err := set(&o.Profiles[i], strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// durFlag registers a duration flag whose 0 means "at once" (stored as a
// negative duration, since 0 in Options means the default).
func durFlag(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	cur := *p
	if cur == 0 {
		cur = def
	} else if cur < 0 {
		cur = 0
	}
	fs.Func(name, fmt.Sprintf("%s (default %v)", usage, cur), func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d < 0 {
			return fmt.Errorf("negative duration %v", d)
		}
		if d == 0 {
			d = -1
		}
		*p = d
		return nil
	})
}

func plainDurFlag(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	if *p <= 0 {
		*p = def
	}
	fs.DurationVar(p, name, *p, usage)
}

func intFlag(fs *flag.FlagSet, p *int, name string, def int, usage string) {
	if *p == 0 {
		*p = def
	}
	fs.IntVar(p, name, *p, usage)
}

// LoopbackSinks are the URL prefixes of every loopback address, for
// AllowedSinks: a simulator may always notify a receiver on its own
// machine.
var LoopbackSinks = []string{"http://127.0.0.1", "https://127.0.0.1", "http://localhost", "https://localhost", "http://[::1]", "https://[::1]"}
