// Package ingress is the HTTP receiver of QoD status notifications.
//
// Delivery semantics: a notification is answered 204 only after the
// Publisher acknowledged every event in it (every configured broker stored
// it). Any failure to publish answers 503 with Retry-After, so the platform
// resends; the resend carries the same CloudEvents source and id, which the
// broker deduplicates, so a notification is stored at least once and, within
// the broker's duplicate window, exactly once. Bad input is never answered
// 5xx and is never published. Ordering: a request's events are published
// together; the ingress adds no ordering of its own across requests (a
// platform that needs per-session order sends one change at a time).
//
// Authentication happens before the body is read: a bearer token from the
// configured set (constant-time comparison; "Bearer Bearer <token>", as the
// Network-as-Code SDK sends, is accepted), the same token in
// ?access_token=, a per-session token on <path>/<key> derived with
// bridge.SinkToken, or a verified client certificate when mTLS is on.
//
// # Hostile input
//
// Input is bounded before anything is published or echoed: the body by
// Options.MaxBodyBytes (413); its text, attribute lengths and batch size
// by package normalize (400, or 413 for a batch over
// normalize.Options.MaxBatchEvents); an event too large for a broker's
// message size by the Publisher, which refuses it before sending anything
// (bridge.ErrTooLarge, answered 413 PAYLOAD_TOO_LARGE). A 503 always means
// the broker, never the input. Trace context that is not valid W3C Trace
// Context, in the Traceparent header or in the event, is dropped and the
// event accepted (bridge.TraceContext).
//
// # Logging
//
// Every value from a request that goes into a log line or a problem detail
// is quoted and cut by bridge.Quote; no part of the Authorization header or
// of access_token is ever echoed. A rejected request (any 4xx) logs one
// line, "notification rejected", at Info, and those lines are rate-limited
// (Options.RejectLogRate, default 10 per second with a burst of
// Options.RejectLogBurst, default 20): a flood of bad requests cannot flood
// the log. Lines over the limit are counted, and the next line that is
// written carries their number as "suppressed". Options.Observe still sees
// every request. A publish failure (503) is logged as "publish failed" at
// Warn, every time.
//
// # Session view
//
// With Options.View, the events of a request are folded into the session
// view (bridge.ViewUpdater, under the rule of bridge/view.go) after the
// Publisher acknowledged them and before the 204. A view that fails does
// not fail the request: the history holds the events.
//
// Imports: bridge and bridge/normalize of ours; never config, sinks or cmd.
// It publishes through the bridge.Publisher it is given and knows no
// broker.
package ingress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/normalize"
)

// Defaults of Options that the bridge's effective settings show
// (qodbridge check).
const (
	DefaultPath         = "/notifications"
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxInFlight  = 512
	DefaultRetryAfter   = time.Second
)

// DefaultAllowedOrigins is the default of Options.AllowedOrigins: any
// origin. Do not modify it.
var DefaultAllowedOrigins = []string{"*"}

// Options configure a Handler. The zero value of each field takes the
// default named in its comment.
type Options struct {
	// Path receives notifications; Path + "/{key}" receives them with
	// per-session credentials. Default "/notifications".
	Path string
	// Tokens are the accepted bearer tokens.
	Tokens []string
	// SessionSecrets verify per-session tokens (bridge.SinkToken).
	SessionSecrets [][]byte
	// ClientCertAuth accepts a request whose TLS client certificate was
	// verified by the server (mTLS) without a token.
	ClientCertAuth bool
	// SessionOf, when set, tells which session a per-session key was
	// issued for (the command engine records it when the create returns:
	// command.Engine.SessionOf). A request authenticated by a per-session
	// token is then accepted only for that session (403 otherwise); while
	// the session is not known yet, for any. An error answers 503. Nil: a
	// per-session token is good for any session until it expires.
	SessionOf func(ctx context.Context, key string) (sessionID string, ok bool, err error)
	// MaxBodyBytes bounds the body; more answers 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxInFlight bounds requests being handled at once; more answer 429.
	// Default 512.
	MaxInFlight int
	// PublishTimeout bounds the wait for the Publisher; past it, 503.
	// Default 5s. Negative sets no deadline of the handler's own, for a
	// Publisher that bounds every call itself (the NATS and Kafka sinks
	// do, with their PublishTimeout): that saves a context and a timer per
	// request, and its timeout error becomes the 503's detail.
	PublishTimeout time.Duration
	// RetryAfter is sent with 429 and 503. Default 1s.
	RetryAfter time.Duration
	// Normalize sets which inputs are accepted.
	Normalize normalize.Options
	// AllowedOrigins answer the CloudEvents webhook OPTIONS handshake;
	// "*" allows any. Default ["*"].
	AllowedOrigins []string
	// AllowedRate is answered as WebHook-Allowed-Rate (per minute);
	// 0 answers "*".
	AllowedRate int
	// RateLimit is the requests per second one source address may send
	// (token bucket); more answer 429 with Retry-After. Zero: no limit.
	RateLimit float64
	// RateBurst is the bucket size. Zero: RateLimit rounded down, at least 1.
	RateBurst int
	// RateSources bounds the client addresses tracked (least recently
	// seen forgotten first). Default 10000.
	RateSources int
	// TrustedProxies are the reverse proxies and load balancers in front
	// of the ingress: from a peer in one of them, the client address is
	// taken from X-Forwarded-For (ClientAddr); from anyone else that
	// header is ignored. Empty: the peer is the client.
	TrustedProxies []netip.Prefix
	// Logger receives one line per failed request, the rejections among
	// them rate-limited (RejectLogRate). Nil discards.
	Logger *slog.Logger
	// RejectLogRate bounds the "notification rejected" lines (4xx answers)
	// logged per second; the lines over it are counted and the next line
	// logged carries the count as "suppressed". Default 10. Negative logs
	// every rejection.
	RejectLogRate float64
	// RejectLogBurst is how many rejection lines may be logged at once
	// before RejectLogRate applies. Default 20.
	RejectLogBurst int
	// Trace, when set, is called just before the events are published, and
	// the function it returns just after, with the publish error. It may
	// set the events' TraceParent and TraceState (so that the ingress's own
	// span is the parent of what consumers do) and returns the context to
	// publish with. Nil, tracing off, costs nothing.
	Trace func(ctx context.Context, events []bridge.Event) (context.Context, func(error))
	// Observe, when set, is called once per request after it was answered
	// (for metrics). It must not block.
	Observe func(Outcome)
	// View, when set, is the session view: after Publish returned nil the
	// handler folds the request's events into it (bridge.ViewUpdater)
	// before it answers 204, so a 204 means the view was updated too,
	// unless that failed. A failure does not change the answer: the events
	// are stored, and the view is repaired by the session's next event or
	// a rebuild; it is logged ("view update failed", Warn) and reported in
	// Outcome.ViewErr. The View bounds its own wait. Nil: no view.
	View bridge.ViewUpdater
}

// Outcome describes one answered request, for metrics.
type Outcome struct {
	Status   int
	Shape    normalize.Shape // empty when the body was not parsed
	Events   int             // events published (0 unless Status is 204)
	Publish  time.Duration   // time spent in Publish (0 when not called)
	View     time.Duration   // time spent updating the view (0 when not called)
	ViewErr  error           // the view update's failure (the answer is still 204)
	Draining bool
}

// Handler is the notification receiver. It is an http.Handler that routes
// Options.Path itself, so it can be mounted at "/".
type Handler struct {
	pub      bridge.Publisher
	o        Options
	creds    atomic.Pointer[credentials]
	sem      chan struct{}
	draining atomic.Bool
	origins  map[string]bool
	retry    string
	log      *slog.Logger
	bufs     sync.Pool
	limit    *limiter // nil: no rate limit

	rejectLog  *rate.Limiter // nil: every rejection is logged
	suppressed atomic.Int64  // rejection lines not logged since the last one that was
	now        func() time.Time
}

// New returns a Handler publishing to pub.
func New(pub bridge.Publisher, o Options) (*Handler, error) {
	if pub == nil {
		return nil, errors.New("ingress: nil Publisher")
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.RejectLogRate == 0 {
		o.RejectLogRate = 10
	}
	if o.RejectLogBurst <= 0 {
		o.RejectLogBurst = 20
	}
	if len(o.AllowedOrigins) == 0 {
		o.AllowedOrigins = DefaultAllowedOrigins
	}
	if len(o.Tokens) == 0 && len(o.SessionSecrets) == 0 && !o.ClientCertAuth {
		return nil, errors.New("ingress: no credentials configured: set Tokens, SessionSecrets or ClientCertAuth")
	}
	h := &Handler{pub: pub, o: o, sem: make(chan struct{}, o.MaxInFlight), origins: map[string]bool{}, log: o.Logger, now: time.Now}
	if o.RejectLogRate > 0 {
		h.rejectLog = rate.NewLimiter(rate.Limit(o.RejectLogRate), o.RejectLogBurst)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.creds.Store(newCredentials(o.Tokens, o.SessionSecrets))
	for _, or := range o.AllowedOrigins {
		h.origins[strings.ToLower(or)] = true
	}
	h.retry = strconv.Itoa(max(1, int((o.RetryAfter+time.Second-1)/time.Second)))
	h.bufs.New = func() any { return new(bytes.Buffer) }
	if o.RateLimit > 0 {
		h.limit = newLimiter(o.RateLimit, o.RateBurst, o.RateSources)
	}
	return h, nil
}

// Drain makes the handler answer every new request 503 with Retry-After and
// Connection: close, while requests already being handled finish. Call it
// when shutdown starts, before http.Server.Shutdown, so that senders still
// connected are told to come back rather than cut off.
func (h *Handler) Drain() { h.draining.Store(true) }

// InFlight reports how many requests are being handled.
func (h *Handler) InFlight() int { return len(h.sem) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	out := Outcome{}
	defer func() {
		if h.o.Observe != nil {
			h.o.Observe(out)
		}
	}()
	key, ok := h.route(r.URL.Path)
	if !ok {
		out.Status = h.problem(w, r, http.StatusNotFound, "NOT_FOUND", "", fmt.Sprintf("no notification endpoint at %s: POST to %s or %s/{key}", bridge.Quote(r.URL.Path), h.o.Path, h.o.Path))
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		out.Status = h.handshake(w, r)
		return
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		out.Status = h.problem(w, r, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "", bridge.Quote(r.Method)+" is not allowed: notifications are POSTed")
		return
	}
	if h.draining.Load() {
		out.Draining = true
		w.Header().Set("Connection", "close")
		out.Status = h.unavailable(w, r, "the bridge is shutting down; retry against another instance or later")
		return
	}
	if h.limit != nil {
		if ok, wait := h.limit.allow(ClientAddr(r, h.o.TrustedProxies), time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			out.Status = h.problem(w, r, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "",
				fmt.Sprintf("rate limit of %g requests per second for this source exceeded", h.o.RateLimit))
			return
		}
	}
	byKey, status := h.authenticate(w, r, key)
	if status != 0 {
		out.Status = status
		return
	}
	select {
	case h.sem <- struct{}{}:
		defer func() { <-h.sem }()
	default:
		w.Header().Set("Retry-After", h.retry)
		out.Status = h.problem(w, r, http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "", fmt.Sprintf("more than %d requests in flight", h.o.MaxInFlight))
		return
	}

	buf := h.bufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // do not pin rare large buffers
			buf.Reset()
			h.bufs.Put(buf)
		}
	}()
	if status := h.readBody(w, r, buf); status != 0 {
		out.Status = status
		return
	}
	evs, shape, err := h.o.Normalize.Parse(r.Header, buf.Bytes())
	out.Shape = shape
	if err != nil {
		var ne *normalize.Error
		if !errors.As(err, &ne) { // Parse returns only *normalize.Error
			ne = &normalize.Error{Status: http.StatusBadRequest, Detail: err.Error()}
		}
		code := "INVALID_ARGUMENT"
		switch ne.Status {
		case http.StatusUnsupportedMediaType:
			code = "UNSUPPORTED_MEDIA_TYPE"
		case http.StatusRequestEntityTooLarge:
			code = "PAYLOAD_TOO_LARGE"
		}
		out.Status = h.problem(w, r, ne.Status, code, ne.Field, ne.Error())
		return
	}
	if byKey && h.o.SessionOf != nil {
		if status := h.checkSession(w, r, key, evs); status != 0 {
			out.Status = status
			return
		}
	}
	if tp := r.Header.Get("Traceparent"); tp != "" {
		// An invalid one is dropped with its tracestate; the event is
		// accepted all the same.
		if tp, ts := bridge.TraceContext(tp, r.Header.Get("Tracestate")); tp != "" {
			for i := range evs {
				if evs[i].TraceParent == "" {
					evs[i].TraceParent, evs[i].TraceState = tp, ts
				}
			}
		}
	}

	// The publish must not be cut short by the sender hanging up: an event
	// the broker may already hold is better acknowledged to nobody than
	// half-published. PublishTimeout, or the Publisher, bounds it instead.
	ctx := context.WithoutCancel(r.Context())
	cancel := context.CancelFunc(nil)
	if h.o.PublishTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, h.o.PublishTimeout)
	}
	var end func(error)
	if h.o.Trace != nil {
		ctx, end = h.o.Trace(ctx, evs)
	}
	start := time.Now()
	err = h.pub.Publish(ctx, evs...)
	out.Publish = time.Since(start)
	if end != nil {
		end(err)
	}
	if cancel != nil {
		cancel()
	}
	if err != nil {
		// A Publisher's error may quote the events: bounded here.
		text := bridge.Printable(err.Error(), maxErrText)
		if errors.Is(err, bridge.ErrTooLarge) {
			// The same event will never fit: not the broker's fault,
			// and no retry (so no Retry-After).
			out.Status = h.problem(w, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "",
				"the event is too large for the broker's message size: "+text)
			return
		}
		detail := "publishing to the broker failed: " + text
		if h.o.PublishTimeout > 0 && errors.Is(err, context.DeadlineExceeded) {
			detail = fmt.Sprintf("the broker did not acknowledge within %s", h.o.PublishTimeout)
		}
		h.log.Warn("publish failed", "event_id", bridge.Quote(evs[0].ID), "session_id", bridge.Quote(evs[0].SessionID), "events", len(evs), "err", text)
		out.Status = h.unavailable(w, r, detail)
		return
	}
	if h.o.View != nil {
		// After the acknowledgement, never before: the view must not show
		// what the history does not hold. Not cut short by the sender
		// hanging up either; the View bounds it.
		vstart := time.Now()
		if err := h.o.View.UpdateView(context.WithoutCancel(r.Context()), start, evs...); err != nil {
			out.ViewErr = err
			h.log.Warn("view update failed; the events are stored, the view is repaired by the session's next event or a rebuild",
				"event_id", bridge.Quote(evs[0].ID), "session_id", bridge.Quote(evs[0].SessionID), "events", len(evs),
				"err", bridge.Printable(err.Error(), maxErrText))
		}
		out.View = time.Since(vstart)
	}
	out.Status, out.Events = http.StatusNoContent, len(evs)
	w.WriteHeader(http.StatusNoContent)
}

// route splits the request path into the per-session key (empty for the
// plain path).
func (h *Handler) route(p string) (key string, ok bool) {
	if p == h.o.Path {
		return "", true
	}
	rest, found := strings.CutPrefix(p, h.o.Path+"/")
	if !found || !bridge.ValidSinkKey(rest) {
		return "", false
	}
	return rest, true
}

// authenticate answers 401 and returns its status when the request carries
// no valid credential; it returns 0 when the request may go on, and byKey
// when the credential was key's per-session token (not a static token or a
// client certificate), which holds for one session only.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, key string) (byKey bool, status int) {
	if h.o.ClientCertAuth && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return false, 0
	}
	auth := r.Header.Get("Authorization")
	var query string
	if r.URL.RawQuery != "" { // most senders use the header: skip parsing
		query = r.URL.Query().Get("access_token")
	}
	if query != "" {
		// The token is in the URL: keep it out of every cache.
		w.Header().Set("Cache-Control", "no-store")
	}
	var tok string
	switch {
	case auth != "" && query != "":
		return false, h.unauthorized(w, r, "send the token either in the Authorization header or in access_token, not both")
	case auth != "":
		// Up to four fields without allocating: more than three is wrong anyway.
		var fields [4]string
		n := 0
		for s := range strings.FieldsSeq(auth) {
			if n == len(fields) {
				break
			}
			fields[n] = s
			n++
		}
		f := fields[:n]
		if len(f) == 0 {
			return false, h.unauthorized(w, r, "Authorization header is empty: send Bearer <token>")
		}
		if !strings.EqualFold(f[0], "Bearer") {
			// Never echo any part of it: without a scheme, the first
			// field is the token.
			return false, h.unauthorized(w, r, `Authorization must be "Bearer <token>"`)
		}
		// "Bearer Bearer <token>": the Network-as-Code SDK prefixes the
		// token itself, and users configure it with the prefix too.
		if len(f) == 3 && strings.EqualFold(f[1], "Bearer") {
			f = f[1:]
		}
		if len(f) != 2 {
			return false, h.unauthorized(w, r, "Authorization header must be \"Bearer <token>\"")
		}
		tok = f[1]
	case query != "":
		tok = query
	default:
		return false, h.unauthorized(w, r, "missing credentials: send Authorization: Bearer <token>")
	}
	static, perSession := h.validToken(tok, key)
	switch {
	case static:
		return false, 0
	case !perSession:
		return false, h.unauthorized(w, r, "the bearer token is not valid for this endpoint")
	}
	// The token is the MAC of the key, so the expiry the key carries is
	// the one the bridge issued.
	expires, err := bridge.SinkKeyExpiry(key)
	if err != nil {
		return false, h.unauthorized(w, r, "this per-session path was not issued by this version of qodbridge: it carries no expiry")
	}
	if now := h.now(); now.After(expires) {
		return false, h.unauthorized(w, r, fmt.Sprintf("the per-session credential expired at %s", expires.UTC().Format(time.RFC3339)))
	}
	return true, 0
}

// credentials are the static tokens (their digests) and the session
// secrets, swapped whole by SetCredentials.
type credentials struct {
	tokens  [][sha256.Size]byte
	secrets [][]byte
}

func newCredentials(tokens []string, secrets [][]byte) *credentials {
	c := &credentials{secrets: make([][]byte, len(secrets))}
	for _, t := range tokens {
		c.tokens = append(c.tokens, sha256.Sum256([]byte(t)))
	}
	for i, s := range secrets {
		c.secrets[i] = bytes.Clone(s)
	}
	return c
}

// SetCredentials replaces the accepted bearer tokens and session secrets
// (Options.Tokens, Options.SessionSecrets) at once: a request in flight
// is checked against the old set or the new one, never a mix. It is safe
// to call while the Handler serves.
func (h *Handler) SetCredentials(tokens []string, sessionSecrets [][]byte) {
	h.creds.Store(newCredentials(tokens, sessionSecrets))
}

// validToken compares tok with every static token and, on a per-session
// path, with key's token under every session secret, without stopping
// early, so timing does not tell which one matched; hashing first hides
// the lengths.
func (h *Handler) validToken(tok, key string) (static, perSession bool) {
	sum := sha256.Sum256([]byte(tok))
	st, ps := 0, 0
	cr := h.creds.Load() // one set for the whole comparison
	for i := range cr.tokens {
		st |= subtle.ConstantTimeCompare(sum[:], cr.tokens[i][:])
	}
	if key != "" {
		for _, s := range cr.secrets {
			want := sha256.Sum256([]byte(bridge.SinkToken(s, key)))
			ps |= subtle.ConstantTimeCompare(sum[:], want[:])
		}
	}
	return st == 1, ps == 1
}

// checkSession answers 403 (and returns its status) when key was issued
// for a session and an event is about another, and 503 when the binding
// cannot be read; 0 when the events may be published.
func (h *Handler) checkSession(w http.ResponseWriter, r *http.Request, key string, evs []bridge.Event) int {
	sid, ok, err := h.o.SessionOf(r.Context(), key)
	if err != nil {
		h.log.Warn("per-session key: its session could not be looked up", "err", err)
		return h.unavailable(w, r, "the session of this per-session credential could not be looked up; retry")
	}
	if !ok {
		return 0 // not known yet: the create's answer has not reached the bridge
	}
	for i := range evs {
		if evs[i].SessionID != sid {
			field := "data.sessionId"
			if len(evs) > 1 {
				field = fmt.Sprintf("[%d].data.sessionId", i)
			}
			return h.problem(w, r, http.StatusForbidden, "PERMISSION_DENIED", field,
				"this per-session credential was issued for another session: notify each session on its own sink")
		}
	}
	return 0
}

func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, detail string) int {
	w.Header().Set("WWW-Authenticate", `Bearer realm="qodbridge"`)
	return h.problem(w, r, http.StatusUnauthorized, "UNAUTHENTICATED", "Authorization", detail)
}

func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, detail string) int {
	w.Header().Set("Retry-After", h.retry)
	return h.problem(w, r, http.StatusServiceUnavailable, "UNAVAILABLE", "", detail)
}

// readBody reads the whole body into buf, answering 413 or 400 on failure.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) int {
	limit := h.o.MaxBodyBytes
	if r.ContentLength > limit {
		return h.problem(w, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "", fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit))
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return 0
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return h.problem(w, r, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "", fmt.Sprintf("body exceeds the limit of %d bytes", limit))
	}
	return h.problem(w, r, http.StatusBadRequest, "INVALID_ARGUMENT", "", "reading the body failed: "+err.Error())
}

// handshake answers the CloudEvents HTTP webhook abuse-protection request.
func (h *Handler) handshake(w http.ResponseWriter, r *http.Request) int {
	w.Header().Set("Allow", "POST, OPTIONS")
	origin := r.Header.Get("WebHook-Request-Origin")
	if origin == "" {
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	}
	if !h.origins["*"] && !h.origins[strings.ToLower(origin)] {
		return h.problem(w, r, http.StatusForbidden, "PERMISSION_DENIED", "WebHook-Request-Origin", fmt.Sprintf("origin %s is not allowed to send notifications here", bridge.Quote(origin)))
	}
	w.Header().Set("WebHook-Allowed-Origin", origin)
	if r.Header.Get("WebHook-Request-Rate") != "" || h.o.AllowedRate > 0 {
		rate := "*"
		if h.o.AllowedRate > 0 {
			rate = strconv.Itoa(h.o.AllowedRate)
		}
		w.Header().Set("WebHook-Allowed-Rate", rate)
	}
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

// Problem is the RFC 9457 body of every error answer. Code repeats the
// CAMARA-style error code so clients can switch on it.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	// Field names the attribute, JSON path or header at fault, if any.
	Field string `json:"field,omitempty"`
}

// maxErrText bounds the text of a Publisher's error in a detail or a log
// line.
const maxErrText = 512

func (h *Handler) problem(w http.ResponseWriter, r *http.Request, status int, code, field, detail string) int {
	WriteProblem(w, status, code, field, detail)
	if status >= 500 {
		return status
	}
	h.logRejection(r, status, code, field, detail)
	return status
}

// logRejection writes the "notification rejected" line unless the
// rejection log's rate is spent; then it counts the line, and the next one
// written says how many were left out.
func (h *Handler) logRejection(r *http.Request, status int, code, field, detail string) {
	if h.rejectLog != nil && !h.rejectLog.AllowN(h.now(), 1) {
		h.suppressed.Add(1)
		return
	}
	attrs := []any{"status", status, "code", code, "field", field, "detail", detail, "remote", r.RemoteAddr}
	if n := h.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	h.log.Info("notification rejected", attrs...)
}

// WriteProblem answers status with a Problem body (application/problem+json).
// The bridge's other HTTP surfaces (the console) answer errors with it too,
// so clients parse one shape.
func WriteProblem(w http.ResponseWriter, status int, code, field, detail string) {
	// Not HTML-escaped: a detail such as `must be "Bearer <token>"` reads
	// as written. The body is JSON served as application/problem+json,
	// never HTML.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Code: code, Field: field})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

var _ http.Handler = (*Handler)(nil)
