package natssink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
)

// Defaults of Options and StreamOptions.
const (
	DefaultPrefix     = "qod"
	DefaultStreamName = "QOD_STATUS"
	DefaultReplicas   = 1
	// DefaultDuplicateWindow is JetStream's own default: QoD platforms,
	// and the bridge's own simulator, retry a notification for up to about
	// a minute, and a resend after the window is stored twice. nats-server
	// keeps every message id of the window in memory, about 115 bytes each
	// and up to three windows' worth: some 40 MB at 1,000 events/s, 200 MB
	// at 5,000. The bridge keeps that in check with a soft memory limit
	// (GOMEMLIMIT, or one taken from the container's cgroup limit).
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultPublishTimeout  = 5 * time.Second
	DefaultMaxPending      = 4096
)

var (
	// ErrUnavailable wraps publish and readiness failures that say nothing
	// about the event and everything about the broker: not connected,
	// reconnecting, no responders (the stream is gone), no ack within the
	// publish timeout, too many publishes pending. The sender should retry
	// later (the ingress answers 503).
	ErrUnavailable = errors.New("natssink: NATS unavailable")

	// ErrStreamMismatch is returned by New, Open and Ready when the stream
	// exists with a configuration the sink cannot publish to as promised
	// (subjects, storage, retention, no-ack, sealed). The error text names
	// each difference. The sink never alters an existing stream.
	ErrStreamMismatch = errors.New("natssink: stream exists with a different configuration")

	// ErrInvalidEvent is returned by Publish for an event that has no
	// subject to go to (an empty sessionId); the ingress never lets one
	// through.
	ErrInvalidEvent = errors.New("natssink: invalid event")

	// ErrInvalidOptions is returned by New and Open for options that cannot
	// work, naming the field.
	ErrInvalidOptions = errors.New("natssink: invalid options")
)

// Options configure a Sink. The zero value publishes binary-mode events to
// qod.status.<token> in the file-backed stream QOD_STATUS.
type Options struct {
	// Prefix is the first subject token(s): events go to
	// <Prefix>.status.<sessionToken>. Default "qod".
	Prefix string
	// Stream configures the stream that captures <Prefix>.status.>.
	Stream StreamOptions
	// Structured publishes structured-mode CloudEvents
	// (application/cloudevents+json bodies) instead of binary mode.
	// Default false.
	Structured bool
	// PublishTimeout bounds one Publish call, waiting for a pending slot
	// and for the acks included. Default 5s.
	PublishTimeout time.Duration
	// MaxPending bounds the events awaiting an ack at once, across all
	// callers, on each of the two publish paths (pipelined, and queued for
	// or in a group-commit batch); callers beyond it wait for a slot.
	// Default 4096.
	MaxPending int
	// Domain is the JetStream domain to publish in; empty means the
	// account's default JetStream.
	Domain string
	// Logger receives stream creation and mismatch warnings. nil discards.
	Logger *slog.Logger
	// OnDuplicate, when set, is called for each event JetStream
	// acknowledged as a duplicate (already stored within the duplicate
	// window). JetStream does not report duplicates inside a group-commit
	// batch (calls of several events), so those go uncounted (see the
	// package doc). It must not block.
	OnDuplicate func()
}

// StreamOptions configure the stream the Sink creates when it is missing.
// Of an existing stream only subjects, storage, retention, no-ack and
// sealed are checked (ErrStreamMismatch); other differences are logged as
// warnings and left alone.
type StreamOptions struct {
	// Name of the stream. Default "QOD_STATUS".
	Name string
	// Replicas in a JetStream cluster. Default 1.
	Replicas int
	// MaxAge drops events older than this. Default 0: kept until MaxBytes.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size, dropping the oldest events.
	// Default 0: unlimited.
	MaxBytes int64
	// DuplicateWindow is how long a resent event (same Nats-Msg-Id) is
	// recognised and stored once. Default 2m (DefaultDuplicateWindow). It
	// must not exceed MaxAge.
	DuplicateWindow time.Duration
	// Memory keeps the stream in memory instead of files. Default false.
	Memory bool
	// DiscardNew makes a full stream (MaxAge aside, at MaxBytes) refuse new
	// events, so publishes fail and the sender retries later, instead of
	// dropping the oldest events to make room. Default false.
	DiscardNew bool
}

func (o *Options) withDefaults() (Options, error) {
	r := *o
	if r.Prefix == "" {
		r.Prefix = DefaultPrefix
	}
	if r.Stream.Name == "" {
		r.Stream.Name = DefaultStreamName
	}
	if r.Stream.Replicas == 0 {
		r.Stream.Replicas = DefaultReplicas
	}
	if r.Stream.DuplicateWindow == 0 {
		r.Stream.DuplicateWindow = DefaultDuplicateWindow
	}
	if r.PublishTimeout == 0 {
		r.PublishTimeout = DefaultPublishTimeout
	}
	if r.MaxPending == 0 {
		r.MaxPending = DefaultMaxPending
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case !validPrefix(r.Prefix):
		return r, fmt.Errorf("%w: Prefix %q must be dot-separated tokens without wildcards or spaces", ErrInvalidOptions, r.Prefix)
	case strings.ContainsAny(r.Stream.Name, ".*> \t\r\n/\\"):
		return r, fmt.Errorf("%w: Stream.Name %q must not hold '.', '*', '>', '/', '\\' or white space", ErrInvalidOptions, r.Stream.Name)
	case r.Stream.Replicas < 0:
		return r, fmt.Errorf("%w: Stream.Replicas %d is negative", ErrInvalidOptions, r.Stream.Replicas)
	case r.Stream.MaxAge < 0 || r.Stream.MaxBytes < 0 || r.Stream.DuplicateWindow < 0:
		return r, fmt.Errorf("%w: Stream.MaxAge, MaxBytes and DuplicateWindow must not be negative", ErrInvalidOptions)
	case r.Stream.MaxAge > 0 && r.Stream.DuplicateWindow > r.Stream.MaxAge:
		return r, fmt.Errorf("%w: Stream.DuplicateWindow %s exceeds Stream.MaxAge %s", ErrInvalidOptions, r.Stream.DuplicateWindow, r.Stream.MaxAge)
	case r.PublishTimeout < 0:
		return r, fmt.Errorf("%w: PublishTimeout %s is negative", ErrInvalidOptions, r.PublishTimeout)
	case r.MaxPending < 0:
		return r, fmt.Errorf("%w: MaxPending %d is negative", ErrInvalidOptions, r.MaxPending)
	}
	return r, nil
}

func validPrefix(p string) bool {
	for tok := range strings.SplitSeq(p, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, "*> \t\r\n") {
			return false
		}
	}
	return true
}

// Subject returns the subject of session id's events under prefix ("" means
// DefaultPrefix).
func Subject(prefix, id string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return prefix + ".status." + bridge.SessionToken(id)
}

// Sink publishes canonical events to JetStream. It is safe for concurrent
// use.
type Sink struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	owned   bool
	opts    Options
	log     *slog.Logger
	subject string // "<prefix>.status."
	cfg     jetstream.StreamConfig

	gc      *committer    // group commit, when the stream takes batches
	batched atomic.Bool   // the stream takes fast-ingest batches: publish through gc
	sem     chan struct{} // one slot per publish awaiting its ack (pipelined)
	window  int           // most of one batch's publishes awaiting acks at once: leaves others a slot
	pubOpts []jetstream.PublishOpt
	msgs    sync.Pool // *outMsg

	needEnsure atomic.Bool   // the stream must be looked up (again) before the next publish
	ensureMu   chan struct{} // one ensureStream at a time; a channel so waiting honours ctx
	maxMsgSize atomic.Int64  // the stream's max_msg_size as last looked up; <= 0: none

	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

var _ bridge.Publisher = (*Sink)(nil)

// New returns a Sink publishing on nc, a connection the caller keeps
// owning: Close does not close it. New makes sure the stream exists
// (creating it when missing) before it returns; ctx bounds that. Give nc
// the reconnect behaviour Dial gives its connections, or publishes may
// queue in its reconnect buffer during an outage until their timeout.
func New(ctx context.Context, nc *nats.Conn, opts Options) (*Sink, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOptions)
	}
	return newSink(ctx, nc, false, opts)
}

// Open dials NATS with co (see Dial) and returns a Sink that owns the
// connection: Close flushes and closes it. When the stream cannot be made
// sure of, Open closes the connection and returns the error.
func Open(ctx context.Context, co ConnOptions, opts Options) (*Sink, error) {
	if co.Logger == nil {
		co.Logger = opts.Logger
	}
	nc, err := Dial(ctx, co)
	if err != nil {
		return nil, err
	}
	s, err := newSink(ctx, nc, true, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return s, nil
}

func newSink(ctx context.Context, nc *nats.Conn, owned bool, o Options) (*Sink, error) {
	opts, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	// Publishes abandoned by a cancelled caller give their slot back at
	// once but stay pending in the client until acked or timed out, so
	// the client's own bound is larger than ours: it is never what a
	// caller waits on.
	jsOpts := []jetstream.JetStreamOpt{
		jetstream.WithPublishAsyncMaxPending(2*opts.MaxPending + 64),
		jetstream.WithPublishAsyncTimeout(opts.PublishTimeout),
		jetstream.WithDefaultTimeout(opts.PublishTimeout),
	}
	var js jetstream.JetStream
	if opts.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, opts.Domain, jsOpts...)
	} else {
		js, err = jetstream.New(nc, jsOpts...)
	}
	if err != nil {
		return nil, fmt.Errorf("natssink: jetstream: %w", err)
	}
	s := &Sink{
		nc:      nc,
		js:      js,
		owned:   owned,
		opts:    opts,
		log:     opts.Logger,
		subject: opts.Prefix + ".status.",
		cfg:     streamConfig(opts),
		sem:     make(chan struct{}, opts.MaxPending),
		window:  max(1, opts.MaxPending/2),
		// One attempt: a retried "no responders" could overtake a later
		// event of the same session; the sender retries instead.
		pubOpts:  []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)},
		ensureMu: make(chan struct{}, 1),
	}
	if s.gc, err = newCommitter(s); err != nil {
		return nil, err
	}
	if err := s.ensureStream(ctx); err != nil {
		s.gc.close()
		return nil, err
	}
	return s, nil
}

// Conn returns the connection the Sink publishes on, owned or borrowed.
func (s *Sink) Conn() *nats.Conn { return s.nc }

// JetStream returns the JetStream context the Sink publishes with.
func (s *Sink) JetStream() jetstream.JetStream { return s.js }

// StreamName returns the name of the stream the Sink publishes to.
func (s *Sink) StreamName() string { return s.cfg.Name }

// Publish publishes events and waits for JetStream's ack of each, or until
// ctx is done or Options.PublishTimeout passed. See the package doc for the
// delivery semantics. Before it publishes any event it checks all of them
// (CheckSize, and that each has a sessionId), so a call refused for its
// input publishes nothing. Errors wrap ErrUnavailable for broker trouble,
// ctx.Err() when ctx ended first, bridge.ErrClosed after Close,
// ErrInvalidEvent for an event with no sessionId, bridge.ErrTooLarge for an
// event over the message size (also when the client or the stream refused
// it as such), and the JetStream error (a *jetstream.APIError) when the
// stream refused an event otherwise.
func (s *Sink) Publish(ctx context.Context, events ...bridge.Event) error {
	if len(events) == 0 {
		return nil
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("natssink: publish: %w", bridge.ErrClosed)
	}
	s.inflight.Add(1)
	s.mu.RUnlock()
	defer s.inflight.Done()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natssink: publish: %w", err)
	}
	c := call{ctx: ctx, deadline: time.Now().Add(s.opts.PublishTimeout)}
	defer c.stop()
	if s.needEnsure.Load() {
		if err := s.reensure(&c); err != nil {
			return err
		}
	}
	if len(events) > 1 && s.batched.Load() {
		// Group commit pays for calls of several events; a lone event is
		// published pipelined, at once (see the package doc's numbers).
		return s.publishGrouped(&c, events)
	}
	if len(events) == 1 {
		m, err := s.prepare(&events[0])
		if err != nil {
			return err
		}
		p, err := s.send(&c, m, &events[0], false)
		if err != nil {
			s.msgs.Put(m) // never handed to the client
			return err
		}
		return s.await(&c, p, &events[0])
	}
	return s.publishBatch(&c, events)
}

// CheckSize returns nil when every event's message (headers and data, as
// the NATS client counts them) fits the server's max_payload and the
// stream's max_msg_size, else an error wrapping bridge.ErrTooLarge naming
// the first that does not. It sends nothing and does not block; it is safe
// for concurrent use. Publish makes the same check itself; CheckSize lets
// a caller publishing to several brokers ask each before it publishes to
// any.
func (s *Sink) CheckSize(events ...bridge.Event) error {
	for i := range events {
		m := s.message(&events[i])
		err := s.fits(m, &events[i])
		s.msgs.Put(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// prepare builds ev's message once it is sure the event can be published:
// it has a subject and fits the message size.
func (s *Sink) prepare(ev *bridge.Event) (*outMsg, error) {
	if ev.SessionID == "" {
		return nil, fmt.Errorf("natssink: publish %s: %w: empty sessionId", bridge.Quote(ev.ID), ErrInvalidEvent)
	}
	m := s.message(ev)
	if err := s.fits(m, ev); err != nil {
		s.msgs.Put(m)
		return nil, err
	}
	return m, nil
}

// fits checks m against the server's max_payload, which the client would
// refuse it over (nats.ErrMaxPayload), and the stream's max_msg_size, which
// the server would.
func (s *Sink) fits(m *outMsg, ev *bridge.Event) error {
	// Msg.Size counts the header block exactly as the client encodes it;
	// the subject and reply are not part of the payload.
	n := int64(m.msg.Size() - len(m.msg.Subject) - len(m.msg.Reply))
	if limit := s.nc.MaxPayload(); limit > 0 && n > limit { // 0: not connected yet, the client checks later
		return fmt.Errorf("natssink: publish %s: %w: %d bytes of headers and data, the server's max_payload is %d",
			bridge.Quote(ev.ID), bridge.ErrTooLarge, n, limit)
	}
	if limit := s.maxMsgSize.Load(); limit > 0 && n > limit {
		return fmt.Errorf("natssink: publish %s: %w: %d bytes of headers and data, stream %s takes at most %d",
			bridge.Quote(ev.ID), bridge.ErrTooLarge, n, s.cfg.Name, limit)
	}
	return nil
}

// publishGrouped checks and builds every event's message, then hands them
// to the committer (group.go).
func (s *Sink) publishGrouped(c *call, events []bridge.Event) error {
	msgs := make([]*outMsg, len(events))
	for i := range events {
		m, err := s.prepare(&events[i])
		if err != nil {
			for _, m := range msgs[:i] {
				s.msgs.Put(m)
			}
			return err
		}
		msgs[i] = m
	}
	return s.gc.publish(c, msgs, events)
}

func (s *Sink) publishBatch(c *call, events []bridge.Event) error {
	// Every event is checked, and its message built, before any is sent:
	// a batch refused for one event's size publishes none.
	msgs := make([]*outMsg, len(events))
	for i := range events {
		m, err := s.prepare(&events[i])
		if err != nil {
			for _, m := range msgs[:i] {
				s.msgs.Put(m)
			}
			return err
		}
		msgs[i] = m
	}
	pafs := make([]pending, 0, len(events))
	next := 0 // oldest future not yet awaited
	var err error
	for i := range events {
		// Never hold more than the window, and never wait for a slot while
		// holding one: concurrent batches that each held some slots and
		// waited for more would stall one another until the timeout. Await
		// our own oldest publish instead; its ack does not depend on anyone.
		for err == nil && next < len(pafs) && (len(pafs)-next >= s.window || !s.tryAcquire()) {
			err = s.await(c, pafs[next], &events[next])
			next++
		}
		if err != nil {
			break
		}
		held := next < len(pafs) // tryAcquire succeeded above
		var p pending
		if p, err = s.send(c, msgs[i], &events[i], held); err != nil {
			break
		}
		pafs = append(pafs, p)
	}
	for _, m := range msgs[len(pafs):] { // never handed to the client
		s.msgs.Put(m)
	}
	for ; err == nil && next < len(pafs); next++ {
		err = s.await(c, pafs[next], &events[next])
	}
	// Give back the slots of publishes no one will await; the client
	// times them out (and keeps their messages: they stay out of the pool).
	for ; next < len(pafs); next++ {
		<-s.sem
	}
	return err
}

// tryAcquire takes a pending slot if one is free.
func (s *Sink) tryAcquire() bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// call is the state of one Publish: its ctx and deadline, and a timer made
// only when the call has to wait for something other than its acks (whose
// timeout the JetStream client runs).
type call struct {
	ctx      context.Context
	deadline time.Time
	timer    *time.Timer
}

func (c *call) expired() <-chan time.Time {
	if c.timer == nil {
		c.timer = time.NewTimer(time.Until(c.deadline))
	}
	return c.timer.C
}

// timerC is expired's channel when the call already waited for something,
// else nil: the ack wait alone is bounded by the client's ack timeout.
func (c *call) timerC() <-chan time.Time {
	if c.timer == nil {
		return nil
	}
	return c.timer.C
}

func (c *call) stop() {
	if c.timer != nil {
		c.timer.Stop()
	}
}

// pending is a publish awaiting its ack.
type pending struct {
	paf jetstream.PubAckFuture
	m   *outMsg
}

// send takes a pending slot (unless acquired says the caller already
// took one) and publishes ev's message m asynchronously. On success the
// slot is held until await; on failure m is still the caller's.
func (s *Sink) send(c *call, m *outMsg, ev *bridge.Event, acquired bool) (pending, error) {
	if acquired {
		return s.publishAsync(m, ev)
	}
	select {
	case s.sem <- struct{}{}:
	default:
		select {
		case s.sem <- struct{}{}:
		case <-c.ctx.Done():
			return pending{}, fmt.Errorf("natssink: publish %s: wait for a pending slot: %w", bridge.Quote(ev.ID), c.ctx.Err())
		case <-c.expired():
			return pending{}, fmt.Errorf("natssink: publish %s: %w: no pending slot within %s (%d publishes awaiting acks)",
				bridge.Quote(ev.ID), ErrUnavailable, s.opts.PublishTimeout, cap(s.sem))
		}
	}
	return s.publishAsync(m, ev)
}

// publishAsync publishes ev's message m on a slot the caller holds. On
// failure the client published nothing and keeps nothing: m is the
// caller's again.
func (s *Sink) publishAsync(m *outMsg, ev *bridge.Event) (pending, error) {
	paf, err := s.js.PublishMsgAsync(&m.msg, s.pubOpts...)
	if err != nil {
		<-s.sem
		return pending{}, s.publishErr(ev, err)
	}
	return pending{paf, m}, nil
}

// await waits for p's ack and gives its slot back. Once the broker
// answered, the client is done with the message and it is reused; a
// publish abandoned before that keeps its message.
func (s *Sink) await(c *call, p pending, ev *bridge.Event) error {
	defer func() { <-s.sem }()
	select {
	case ack := <-p.paf.Ok():
		s.msgs.Put(p.m)
		if ack != nil && ack.Duplicate && s.opts.OnDuplicate != nil {
			s.opts.OnDuplicate()
		}
		return nil
	case err := <-p.paf.Err():
		s.msgs.Put(p.m)
		return s.publishErr(ev, err)
	case <-c.ctx.Done():
		return fmt.Errorf("natssink: publish %s: wait for ack: %w", bridge.Quote(ev.ID), c.ctx.Err())
	case <-c.timerC():
		return fmt.Errorf("natssink: publish %s: %w: no ack within %s", bridge.Quote(ev.ID), ErrUnavailable, s.opts.PublishTimeout)
	}
}

// publishErr classifies a publish failure, and schedules a stream check
// when the failure may mean the stream is gone or the server changed.
func (s *Sink) publishErr(ev *bridge.Event, err error) error {
	return s.publishErrID(ev.ID, err)
}

// publishErrID is publishErr for the event of id.
func (s *Sink) publishErrID(id string, err error) error {
	if tooLarge(err) {
		// fits let it through: the server or the stream changed since.
		s.needEnsure.Store(true)
		return fmt.Errorf("natssink: publish %s: %w: %w", bridge.Quote(id), bridge.ErrTooLarge, err)
	}
	if unavailable(err) {
		s.needEnsure.Store(true)
		var within string
		if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			within = fmt.Sprintf(": no ack within %s", s.opts.PublishTimeout)
		}
		return fmt.Errorf("natssink: publish %s: %w%s%s: %w", bridge.Quote(id), ErrUnavailable, within, s.connState(), err)
	}
	return fmt.Errorf("natssink: publish %s: %w", bridge.Quote(id), err)
}

// tooLarge reports whether err refuses a message for its size: the client
// over the server's max_payload, or the stream over its max_msg_size.
func tooLarge(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// connState describes the connection for an error text when it is not up.
func (s *Sink) connState() string {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return " (connection " + st.String() + ")"
	}
	return ""
}

func unavailable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503 // JetStream temporarily unavailable, no quorum
	}
	for _, e := range []error{
		nats.ErrDisconnected, nats.ErrConnectionClosed, nats.ErrConnectionDraining,
		nats.ErrConnectionReconnecting, nats.ErrReconnectBufExceeded, nats.ErrNoResponders,
		nats.ErrTimeout, nats.ErrNoServers, nats.ErrStaleConnection,
		jetstream.ErrNoStreamResponse, jetstream.ErrAsyncPublishTimeout,
		jetstream.ErrTooManyStalledMsgs, jetstream.ErrJetStreamPublisherClosed,
		jetstream.ErrJetStreamNotEnabled, context.DeadlineExceeded,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// outMsg is one publish's message with the storage behind its header and
// body, reused from one publish to the next once the broker answered:
// building a fresh nats.Header map, values and body for each event was 1.6
// of the 4.1 kB the ingress handler allocated per request.
type outMsg struct {
	msg   nats.Msg
	vals  []string // the header's values, all in one backing array
	attrs []bridge.Attr
	buf   []byte // the body
}

// message builds the NATS message of ev in a pooled outMsg; the caller
// puts it back once the client is done with it.
func (s *Sink) message(ev *bridge.Event) *outMsg {
	m, _ := s.msgs.Get().(*outMsg)
	if m == nil {
		m = &outMsg{msg: nats.Msg{Header: make(nats.Header, 12)}, vals: make([]string, 0, 12), attrs: make([]bridge.Attr, 0, 10)}
	} else {
		clear(m.msg.Header)
	}
	h, vals := m.msg.Header, m.vals[:0]
	set := func(k, v string) {
		vals = append(vals, v)
		n := len(vals)
		h[k] = vals[n-1 : n : n]
	}
	// The wire format is the bridge's: header names and values of its NATS
	// binding (precomputed names, no concatenation), the body appended to
	// the pooled buffer.
	b := bridge.NATSBinding
	var data []byte
	if s.opts.Structured {
		set(b.ContentTypeHeader(), bridge.StructuredContentType)
		data = ev.AppendStructured(m.buf[:0])
	} else {
		m.attrs = ev.AppendAttributes(m.attrs[:0])
		for _, a := range m.attrs {
			set(b.Header(a.Name), b.Value(a.Value))
		}
		set(b.ContentTypeHeader(), bridge.DataContentType)
		data = ev.AppendData(m.buf[:0])
	}
	if cap(data) > cap(m.buf) && cap(data) <= maxPooledBody {
		// The body outgrew the buffer: keep the larger one.
		m.buf = data[:0]
	}
	set(jetstream.MsgIDHeader, ev.DedupKey())
	m.vals = vals
	// The trace context travels as ce-traceparent/ce-tracestate only: a
	// plain traceparent header makes nats-server parse every message's
	// headers for its message tracing (dozens of allocations each).
	m.msg.Subject, m.msg.Data = s.subject+bridge.SessionToken(ev.SessionID), data
	return m
}

// maxPooledBody bounds the body buffer a pooled message keeps, so that one
// outsized event does not pin its size in the pool.
const maxPooledBody = 4 << 10

// reensure checks the stream again after a failure hinted it may be gone;
// one caller does it while the others wait.
func (s *Sink) reensure(c *call) error {
	select {
	case s.ensureMu <- struct{}{}:
	case <-c.ctx.Done():
		return fmt.Errorf("natssink: publish: wait for stream check: %w", c.ctx.Err())
	case <-c.expired():
		return fmt.Errorf("natssink: publish: %w: stream check took over %s", ErrUnavailable, s.opts.PublishTimeout)
	}
	defer func() { <-s.ensureMu }()
	if !s.needEnsure.Load() { // someone else just did it
		return nil
	}
	ctx, cancel := context.WithDeadline(c.ctx, c.deadline)
	defer cancel()
	return s.ensureStreamLocked(ctx)
}

// Ready reports whether the Sink can publish: the connection is up and the
// stream exists as configured. It creates the stream when it is missing (a
// server that lost its store), so a readiness probe heals what it finds.
func (s *Sink) Ready(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return fmt.Errorf("natssink: ready: %w", bridge.ErrClosed)
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("natssink: ready: %w: connection %s", ErrUnavailable, st)
	}
	return s.ensureStream(ctx)
}

// Close makes later Publish calls fail with bridge.ErrClosed, waits for the
// calls in flight (each bounded by PublishTimeout), and, when the Sink owns
// its connection, flushes and closes it. A borrowed connection stays open.
// Close is idempotent and returns nil.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.inflight.Wait()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	s.gc.close()
	if s.owned {
		if s.nc.IsConnected() {
			// Everything acknowledged is stored; flushing only hands
			// over what the connection still buffers.
			_ = s.nc.FlushTimeout(s.opts.PublishTimeout)
		}
		s.nc.Close()
	} else {
		s.js.CleanupPublisher() // our reply subscription on the borrowed conn
	}
	return nil
}
