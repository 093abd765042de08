package command

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
)

// API is what the engine needs of the QoD platform; *qodapi.Client
// implements it. Each method makes one attempt (the engine retries), is safe
// for concurrent use, and returns errors that qodapi.Retryable and
// qodapi.RetryAfter classify, carrying *qodapi.APIError for API answers.
type API interface {
	CreateSession(ctx context.Context, requestID string, body json.RawMessage) (qodapi.Session, error)
	GetSession(ctx context.Context, requestID, sessionID string) (qodapi.Session, error)
	ExtendSession(ctx context.Context, requestID, sessionID string, additionalSeconds int) (qodapi.Session, error)
	DeleteSession(ctx context.Context, requestID, sessionID string) error
	RetrieveSessions(ctx context.Context, requestID string, device json.RawMessage) ([]qodapi.Session, error)
}

var _ API = (*qodapi.Client)(nil)

// Store remembers what became of create, extend and delete commands, so
// that a redelivered one is answered from it instead of being applied to
// the session again. Keys are derived from the requestId (create's is the
// requestId itself); values are opaque to the store. Implementations are
// safe for concurrent use; Get returns ok=false when key is unknown; an
// error from either method means the store could not be consulted (the
// engine then treats the command as not finished).
type Store interface {
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	Put(ctx context.Context, key string, value []byte) error
}

// Defaults of Options.
const (
	DefaultMaxAttempts = 5
	DefaultMaxElapsed  = 60 * time.Second
)

// Options configure an Engine. Zero values take the defaults named.
type Options struct {
	// NotifyURL is the bridge's notification endpoint as the QoD platform
	// reaches it (public URL + path, e.g. https://bridge.example/notifications).
	// A create without a sink gets NotifyURL + "/" + key and a per-session
	// token. Empty: such creates are sent without a sink.
	NotifyURL string
	// SessionSecret signs per-session tokens (bridge.SinkToken); required
	// with NotifyURL.
	SessionSecret []byte
	// TokenLifetimeMargin is added to the session's duration for the
	// per-session token's expiry, so extensions keep working. Default 24h.
	TokenLifetimeMargin time.Duration

	// MaxAttempts bounds the calls per command (1: no retry). Default 5.
	MaxAttempts int
	// MaxElapsed bounds the time spent retrying one command. Default 60s.
	MaxElapsed time.Duration
	// BaseBackoff is the first wait between attempts; it doubles, with
	// full jitter, up to MaxBackoff. Defaults 200ms and 10s. A Retry-After
	// from the API replaces the computed wait (capped by MaxElapsed).
	BaseBackoff time.Duration
	MaxBackoff  time.Duration

	// Store remembers the results of create, extend and delete. Nil: an
	// in-memory store of the last 10,000 entries (enough for one instance;
	// several instances need a shared store such as the JetStream KV one).
	Store Store
	// Sleep waits d or until ctx ends; tests inject a fake. Nil: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for token expiries. Nil: time.Now.
	Now func() time.Time
	// Status, when set, receives a REQUESTED status event for each session
	// the engine creates: QoD platforms notify only AVAILABLE and
	// UNAVAILABLE, so without it the status stream would not show a
	// session before it turned AVAILABLE. A failure is logged, not fatal.
	Status bridge.Publisher
	// Logger gets one line per failed command. Nil discards.
	Logger *slog.Logger
	// OnAttempt, when set, is called after each API call with its action
	// (the lookup after a create's 409 counts as list), the HTTP status (the
	// spec's success status, the error's status, or 0 when there was no
	// answer), the error and the call's duration. For metrics; it must not
	// block.
	OnAttempt func(action Action, status int, err error, took time.Duration)
}

// Engine runs commands. It is safe for concurrent use.
type Engine struct {
	api    API
	o      Options
	log    *slog.Logger
	secret atomic.Pointer[[]byte] // Options.SessionSecret, or SetSessionSecret's
}

// SetSessionSecret replaces the secret that signs the per-session tokens
// of sessions created from now on (Options.SessionSecret); it is safe to
// call while commands run. Sessions created before keep their tokens: the
// ingress must still accept the old secret for them.
func (e *Engine) SetSessionSecret(secret []byte) {
	s := bytes.Clone(secret)
	e.secret.Store(&s)
}

// New returns an Engine calling api.
func New(api API, o Options) (*Engine, error) {
	if api == nil {
		return nil, errors.New("command: nil API")
	}
	if o.NotifyURL != "" && len(o.SessionSecret) == 0 {
		return nil, errors.New("command: NotifyURL needs a SessionSecret to sign per-session tokens")
	}
	o.NotifyURL = strings.TrimRight(o.NotifyURL, "/")
	if o.TokenLifetimeMargin <= 0 {
		o.TokenLifetimeMargin = 24 * time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MaxElapsed <= 0 {
		o.MaxElapsed = DefaultMaxElapsed
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Store == nil {
		o.Store = NewMemoryStore(10000)
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	e := &Engine{api: api, o: o, log: o.Logger}
	e.SetSessionSecret(o.SessionSecret)
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrUnfinished is wrapped by Execute's error when ctx ended before the
// command finished: the intake must not acknowledge the command.
var ErrUnfinished = errors.New("command: not finished")

// Run parses body and executes it; see Parse and Execute.
func (e *Engine) Run(ctx context.Context, body []byte, transport Action) (Outcome, error) {
	cmd, err := Parse(body, transport)
	if err != nil {
		e.log.Info("invalid command", "request_id", cmd.RequestID, "action", cmd.Action, "reason", err.Error())
		return InvalidOutcome(cmd, err), nil
	}
	return e.Execute(ctx, cmd)
}

// Execute runs a parsed command to its outcome: a result for success and
// for every failure of the API, with DeadLetter set when the API rejected
// the command as malformed (400, 422). It returns an error wrapping
// ErrUnfinished only when ctx ended first.
//
// Create, extend and delete run once per requestId: their outcome is
// stored, and a redelivered one gets it again. An extend or delete that an
// earlier delivery (or an earlier try of this one that got no answer) may
// have sent to the API is not sent again where that could apply it twice:
// a delete's 404 then means the earlier call deleted the session, and an
// extend reports the session as the API has it now, whose duration shows
// whether the earlier extension applied.
func (e *Engine) Execute(ctx context.Context, cmd Command) (Outcome, error) {
	out := Outcome{Result: Result{RequestID: cmd.RequestID, Action: cmd.Action}, SessionID: cmd.SessionID}
	var err error
	switch cmd.Action {
	case Create:
		return e.create(ctx, cmd)
	case Get:
		err = e.retry(ctx, cmd.Action, func(ctx context.Context) error {
			s, err := e.api.GetSession(ctx, cmd.RequestID, cmd.SessionID)
			out.setSession(s, http.StatusOK)
			return err
		})
	case Extend, Delete:
		return e.once(ctx, cmd)
	case List:
		err = e.retry(ctx, cmd.Action, func(ctx context.Context) error {
			ss, err := e.api.RetrieveSessions(ctx, cmd.RequestID, cmd.Device)
			if err == nil {
				out.Result.OK, out.Result.Status, out.Result.Sessions = true, http.StatusOK, sessionsJSON(ss)
			}
			return err
		})
	default:
		return InvalidOutcome(cmd, invalid("action", "%s is not one of create, get, extend, delete, list", bridge.Quote(string(cmd.Action)))), nil
	}
	if err != nil {
		return e.failed(ctx, cmd, out, err)
	}
	return out, nil
}

// stored is what the Store holds for an extend or a delete: the outcome
// once it is known, or only Attempted while a call to the API may be under
// way (or may have been, when the process stopped in the middle).
type stored struct {
	Attempted  bool            `json:"attempted,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	DeadLetter string          `json:"deadLetter,omitempty"`
	// Digest is Command.digest of the command the entry belongs to: the
	// outcome is given only to a command with the same one, so that
	// whoever reuses a requestId does not read another's result (with
	// its phone number) or get another's extend or delete reported as
	// theirs.
	Digest string `json:"digest,omitempty"`
}

// digest identifies what cmd asks for: its action and every member it
// carries, JSON compacted so that a redelivery (the same bytes) and a
// resend with other white space match.
func (c *Command) digest() string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(c.Action), []byte(c.SessionID), []byte(strconv.Itoa(c.RequestedAdditionalDuration)),
		compact(c.Session), compact(c.Device)} {
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{':'})
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// reused is the answer to a command whose requestId names an earlier,
// different command: a conflict, and not that command's outcome.
func reused(cmd Command) Outcome {
	msg := fmt.Sprintf("requestId %s was already used for a different %s command; send this one with a new requestId", cmd.RequestID, cmd.Action)
	return Outcome{Result: Result{RequestID: cmd.RequestID, Action: cmd.Action, Status: http.StatusConflict,
		Error: &qodapi.ErrorInfo{Status: http.StatusConflict, Code: "CONFLICT", Message: msg}}, SessionID: cmd.SessionID,
		id: ResultID(cmd.RequestID + "\x00conflict\x00" + cmd.digest())}
}

// storeKey is where cmd's outcome is remembered. Create's is its requestId
// (as it always was); the others' name the action too, so that a requestId
// reused for another action is not answered with the wrong kind of result.
func storeKey(cmd Command) string {
	if cmd.Action == Create {
		return cmd.RequestID
	}
	return string(cmd.Action) + " " + cmd.RequestID // a requestId has no space
}

// once runs an extend or a delete at most once per requestId. A
// redelivered command whose outcome is stored gets that outcome again. One
// that an earlier delivery may have sent to the API without its outcome
// being stored (the process stopped, or ctx ended, after the call went out)
// is not sent again where that could apply it twice: a delete's 404 then
// means the earlier call deleted the session, and an extend reports the
// session as the API has it now (its duration shows whether the earlier
// extension applied) instead of extending it a second time. The same holds
// for the engine's own retries after a call that got no answer.
func (e *Engine) once(ctx context.Context, cmd Command) (Outcome, error) {
	out := Outcome{Result: Result{RequestID: cmd.RequestID, Action: cmd.Action}, SessionID: cmd.SessionID}
	key := storeKey(cmd)
	prev, ok, err := e.o.Store.Get(ctx, key)
	if err != nil {
		return out, fmt.Errorf("%w: reading the command store: %w", ErrUnfinished, err)
	}
	digest := cmd.digest()
	var st stored
	if ok && json.Unmarshal(prev, &st) == nil && st.Digest != "" && st.Digest != digest {
		return reused(cmd), nil
	}
	if ok && len(st.Result) > 0 && json.Unmarshal(st.Result, &out.Result) == nil {
		out.DeadLetter = st.DeadLetter
		return out, nil
	}
	maybeSent := ok && st.Attempted
	if !maybeSent {
		mark, _ := json.Marshal(stored{Attempted: true, Digest: digest})
		if err := e.o.Store.Put(ctx, key, mark); err != nil {
			return out, fmt.Errorf("%w: writing the command store: %w", ErrUnfinished, err)
		}
	}
	err = e.retry(ctx, cmd.Action, func(ctx context.Context) error {
		var err error
		switch {
		case cmd.Action == Delete:
			err = e.api.DeleteSession(ctx, cmd.RequestID, cmd.SessionID)
			if maybeSent && errors.Is(err, qodapi.ErrNotFound) {
				e.log.Info("delete met 404 after an earlier attempt that may have deleted the session; reported as deleted",
					"request_id", cmd.RequestID, "session_id", cmd.SessionID)
				err = nil
			}
			out.Result.OK, out.Result.Status = err == nil, http.StatusNoContent
		case maybeSent:
			e.log.Info("extend not sent again: an earlier attempt may have applied it; reporting the session as it is",
				"request_id", cmd.RequestID, "session_id", cmd.SessionID)
			var s qodapi.Session
			s, err = e.api.GetSession(ctx, cmd.RequestID, cmd.SessionID)
			out.setSession(s, http.StatusOK)
		default:
			var s qodapi.Session
			s, err = e.api.ExtendSession(ctx, cmd.RequestID, cmd.SessionID, cmd.RequestedAdditionalDuration)
			out.setSession(s, http.StatusOK)
		}
		maybeSent = maybeSent || ambiguous(err)
		return err
	})
	if err != nil {
		if out, err = e.failed(ctx, cmd, out, err); err != nil {
			return out, err
		}
	}
	b, _ := json.Marshal(stored{Result: out.Result.JSON(), DeadLetter: out.DeadLetter, Digest: digest})
	if perr := e.o.Store.Put(ctx, key, b); perr != nil {
		e.log.Warn("command result not remembered", "request_id", cmd.RequestID, "action", cmd.Action, "err", perr)
	}
	return out, nil
}

// ambiguous reports whether a failed call may still have been applied by
// the API: it got no answer (timeout, connection lost), or an answer that
// does not say the request was refused before it was processed.
func ambiguous(err error) bool {
	if err == nil {
		return false
	}
	var ae *qodapi.APIError
	if !errors.As(err, &ae) {
		return !errors.Is(err, qodapi.ErrInvalidInput)
	}
	switch ae.Status {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (o *Outcome) setSession(s qodapi.Session, status int) {
	if s.ID == "" {
		return
	}
	o.Result.OK, o.Result.Status, o.Result.Session = true, status, s.Info
	o.SessionID = s.ID
}

func sessionsJSON(ss []qodapi.Session) json.RawMessage {
	parts := make([]json.RawMessage, len(ss))
	for i, s := range ss {
		parts[i] = s.Info
	}
	b, err := json.Marshal(parts)
	if err != nil {
		return json.RawMessage("[]")
	}
	return b
}

// create runs a create once per requestId.
func (e *Engine) create(ctx context.Context, cmd Command) (Outcome, error) {
	out := Outcome{Result: Result{RequestID: cmd.RequestID, Action: Create}}
	digest := cmd.digest()
	if prev, ok, err := e.o.Store.Get(ctx, cmd.RequestID); err != nil {
		return out, fmt.Errorf("%w: reading the create store: %w", ErrUnfinished, err)
	} else if ok {
		var st stored
		if json.Unmarshal(prev, &st) == nil && len(st.Result) > 0 {
			if st.Digest != digest {
				return reused(cmd), nil
			}
			prev = st.Result
		}
		// Else an entry from before digests were stored: the result alone.
		var r Result
		if err := json.Unmarshal(prev, &r); err == nil {
			out.Result = r
			out.SessionID = sessionIDOf(r.Session)
			return out, nil
		}
	}
	body := cmd.Session
	has, err := qodapi.HasSink(body)
	if err != nil {
		return InvalidOutcome(cmd, invalid("session", "%v", err)), nil
	}
	if !has && e.o.NotifyURL != "" {
		var dur struct {
			Duration int64 `json:"duration"`
		}
		_ = json.Unmarshal(body, &dur) // absent or odd: the API will say
		// The key and its token stay valid for the session's duration and
		// TokenLifetimeMargin more, so that extensions keep working.
		expires := e.o.Now().Add(time.Duration(max(dur.Duration, 0))*time.Second + e.o.TokenLifetimeMargin)
		key := bridge.NewSinkKey(expires)
		body, err = qodapi.WithSink(body, e.o.NotifyURL+"/"+key, bridge.SinkToken(*e.secret.Load(), key), expires)
		if err != nil {
			return InvalidOutcome(cmd, invalid("session", "%v", err)), nil
		}
	}
	var created qodapi.Session
	err = e.retry(ctx, Create, func(ctx context.Context) error {
		s, err := e.api.CreateSession(ctx, cmd.RequestID, body)
		out.setSession(s, http.StatusCreated)
		created = s
		return err
	})
	if errors.Is(err, qodapi.ErrConflict) {
		// Maybe an earlier attempt of this very command created the
		// session and its result was lost: adopt it if it notifies us.
		if s, ok := e.adopt(ctx, cmd); ok {
			out.setSession(s, http.StatusOK)
			created, err = s, nil
		}
	}
	if err != nil {
		return e.failed(ctx, cmd, out, err)
	}
	e.bind(ctx, created)
	e.announce(ctx, out)
	entry, _ := json.Marshal(stored{Result: out.Result.JSON(), Digest: digest})
	if perr := e.o.Store.Put(ctx, cmd.RequestID, entry); perr != nil {
		// The session exists; a redelivery will meet 409 and adopt it.
		e.log.Warn("create result not remembered", "request_id", cmd.RequestID, "session_id", out.SessionID, "err", perr)
	}
	return out, nil
}

// bindingKey is where the session a per-session key was issued for is
// stored. The space keeps it apart from every requestId-derived key.
func bindingKey(key string) string { return "sink " + key }

// bind records which session s's per-session key (its sink on our
// notification URL) was issued for, so that the ingress accepts
// notifications on that key for that session only (SessionOf). A failure
// is logged: the key then stays valid for any session until it expires,
// as it was before the bridge knew the session.
func (e *Engine) bind(ctx context.Context, s qodapi.Session) {
	key, ok := strings.CutPrefix(s.Sink, e.o.NotifyURL+"/")
	if !ok || e.o.NotifyURL == "" || s.ID == "" {
		return
	}
	if err := e.o.Store.Put(ctx, bindingKey(key), []byte(s.ID)); err != nil {
		e.log.Warn("per-session key not bound to its session", "session_id", s.ID, "err", err)
	}
}

// SessionOf returns the sessionId the per-session key was issued for, and
// ok=false when the engine does not know it (not yet, or the key was not
// issued through this engine's store). The ingress calls it for
// notifications on a per-session path. It is safe for concurrent use.
func (e *Engine) SessionOf(ctx context.Context, key string) (sessionID string, ok bool, err error) {
	v, ok, err := e.o.Store.Get(ctx, bindingKey(key))
	if err != nil || !ok {
		return "", false, err
	}
	return string(v), true, nil
}

// announce publishes the REQUESTED status of a session just created.
func (e *Engine) announce(ctx context.Context, out Outcome) {
	if e.o.Status == nil || out.Result.Status != http.StatusCreated {
		return
	}
	var s struct {
		QoSStatus bridge.QoSStatus `json:"qosStatus"`
		StartedAt string           `json:"startedAt"`
	}
	if json.Unmarshal(out.Result.Session, &s) != nil || s.QoSStatus != bridge.StatusRequested {
		return
	}
	ev := bridge.Event{
		// One id per session: a redelivered create announces it once.
		ID:        "created-" + out.SessionID,
		Source:    DefaultResultSource,
		Time:      e.o.Now().UTC().Format(time.RFC3339Nano),
		SessionID: out.SessionID,
		QoSStatus: bridge.StatusRequested,
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.o.Status.Publish(pctx, ev); err != nil {
		e.log.Warn("REQUESTED status not published", "request_id", out.Result.RequestID, "session_id", out.SessionID, "err", err)
	}
}

// adopt looks for the device's session that this bridge created (its sink
// is our notification URL) after a create met 409.
func (e *Engine) adopt(ctx context.Context, cmd Command) (qodapi.Session, bool) {
	if e.o.NotifyURL == "" {
		return qodapi.Session{}, false
	}
	var body struct {
		Device json.RawMessage `json:"device"`
	}
	if json.Unmarshal(cmd.Session, &body) != nil || body.Device == nil {
		return qodapi.Session{}, false
	}
	var found qodapi.Session
	err := e.retry(ctx, List, func(ctx context.Context) error {
		ss, err := e.api.RetrieveSessions(ctx, cmd.RequestID, body.Device)
		for _, s := range ss {
			if strings.HasPrefix(s.Sink, e.o.NotifyURL+"/") && s.QoSStatus != bridge.StatusUnavailable {
				found = s
			}
		}
		return err
	})
	return found, err == nil && found.ID != ""
}

func sessionIDOf(info json.RawMessage) string {
	var s struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(info, &s)
	return s.SessionID
}

// failed turns an API failure into an error result.
func (e *Engine) failed(ctx context.Context, cmd Command, out Outcome, err error) (Outcome, error) {
	if ctx.Err() != nil {
		return out, fmt.Errorf("%w: %s %s: %w", ErrUnfinished, cmd.Action, cmd.RequestID, ctx.Err())
	}
	info := qodapi.ErrorInfo{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE", Message: err.Error()}
	var ae *qodapi.APIError
	if errors.As(err, &ae) {
		info = ae.ErrorInfo
		if qodapi.Retryable(err) {
			info.Message = fmt.Sprintf("%s (still failing after retries)", info.Message)
		}
	} else if errors.Is(err, qodapi.ErrInvalidInput) {
		return InvalidOutcome(cmd, invalid("session", "%v", err)), nil
	}
	out.Result.OK, out.Result.Status, out.Result.Error = false, info.Status, &info
	out.Result.Session, out.Result.Sessions = nil, nil
	if info.Status == http.StatusBadRequest || info.Status == http.StatusUnprocessableEntity {
		out.DeadLetter = bridge.Printable(fmt.Sprintf("the QoD API rejected the command: %d %s: %s", info.Status, info.Code, info.Message), MaxReasonLen)
	}
	e.log.Info("command failed", "request_id", cmd.RequestID, "action", cmd.Action, "session_id", cmd.SessionID, "status", info.Status, "code", info.Code)
	return out, nil
}

// successStatus is the status the spec gives each call's success.
var successStatus = map[Action]int{Create: http.StatusCreated, Get: http.StatusOK, Extend: http.StatusOK, Delete: http.StatusNoContent, List: http.StatusOK}

// retry calls f until it succeeds, fails for good, or the attempts or time
// run out. Only failures qodapi.Retryable calls temporary are retried.
func (e *Engine) retry(ctx context.Context, action Action, f func(context.Context) error) error {
	start := e.o.Now()
	var err error
	for attempt := 1; ; attempt++ {
		t0 := time.Now()
		err = f(ctx)
		if e.o.OnAttempt != nil {
			status := successStatus[action]
			if err != nil {
				status = 0
				var ae *qodapi.APIError
				if errors.As(err, &ae) {
					status = ae.Status
				}
			}
			e.o.OnAttempt(action, status, err, time.Since(t0))
		}
		if err == nil || !qodapi.Retryable(err) || attempt >= e.o.MaxAttempts || ctx.Err() != nil {
			return err
		}
		wait := qodapi.RetryAfter(err)
		if wait <= 0 {
			// Full jitter: a random wait up to the exponential bound.
			bound := min(e.o.BaseBackoff<<(attempt-1), e.o.MaxBackoff)
			wait = time.Duration(rand.Int64N(int64(bound)) + 1)
		}
		if e.o.Now().Add(wait).Sub(start) > e.o.MaxElapsed {
			return err
		}
		if serr := e.o.Sleep(ctx, wait); serr != nil {
			return err
		}
	}
}

// MemoryStore is a bounded in-memory Store: it forgets the oldest
// requestIds beyond its size.
type MemoryStore struct {
	mu    sync.Mutex
	max   int
	m     map[string][]byte
	order []string
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns a store of at most size entries.
func NewMemoryStore(size int) *MemoryStore {
	return &MemoryStore{max: max(size, 1), m: map[string][]byte{}}
}

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, id string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[id]
	return r, ok, nil
}

// Put implements Store.
func (s *MemoryStore) Put(_ context.Context, id string, r []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		s.order = append(s.order, id)
		if len(s.order) > s.max {
			delete(s.m, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.m[id] = r
	return nil
}
