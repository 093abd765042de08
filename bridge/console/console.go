package console

import (
	"cmp"
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
)

// Prefix is the path the console is served under: mount the Console on
// Prefix and Prefix+"/".
const Prefix = "/ui"

var (
	// ErrUnavailable is wrapped by a Submitter's error when the broker did
	// not take the command (down, no stream, timed out); the console
	// answers 503 and the page shows it.
	ErrUnavailable = errors.New("console: command flow unavailable")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("console: closed")
)

// Status is one status change of one session, as the console shows it.
type Status struct {
	SessionID  string            `json:"sessionId"`
	QoSStatus  bridge.QoSStatus  `json:"qosStatus"`
	StatusInfo bridge.StatusInfo `json:"statusInfo,omitempty"`
	// Time is when the change happened: the event's CloudEvents time, or
	// when the broker stored it if the event has none.
	Time time.Time `json:"time,omitzero"`
	// Received is when the bridge received the event (the session view
	// records it), zero when the feed does not know: the page shows how
	// long ago.
	Received time.Time `json:"received,omitzero"`
}

// Result is one command result, as the console shows it.
type Result struct {
	command.Result
	// SessionID is the session the command concerned, when known.
	SessionID string `json:"sessionId,omitempty"`
	// Time is when the broker stored the result.
	Time time.Time `json:"time,omitzero"`
}

// Feed is where the console's data comes from. sinks/natsconsole reads it
// from JetStream.
type Feed interface {
	// Follow delivers, through onStatus, the last status of every session
	// and then every new status as it is stored, and through onResult the
	// most recent results and then every new one. It blocks until ctx ends
	// (and then returns nil) or the feed fails (an error; the caller may
	// call Follow again, which starts over with the last statuses and
	// results, so the callbacks must treat a repeated delivery as harmless).
	// Statuses of one session come in the order they were stored. Each
	// callback is called from one goroutine at a time, but onStatus and
	// onResult may run concurrently with each other. The callbacks must
	// return quickly: they run on the consumer's goroutine.
	Follow(ctx context.Context, onStatus func(Status), onResult func(Result)) error
	// History returns the recent statuses of one session, oldest first and
	// at most an implementation-defined number of them (the last ones), or
	// none for a session the feed does not know. It blocks until done or
	// ctx ends and is safe for concurrent use.
	History(ctx context.Context, sessionID string) ([]Status, error)
}

// Submitter hands a command to the command flow.
type Submitter interface {
	// Submit publishes a command that command.Parse accepted for action
	// (body carries its requestId) so that the command flow runs it, and
	// returns the requestId its result will be published under. A nil
	// error means the broker accepted the command, not that it ran: its
	// result arrives later through Feed.Follow. An error wrapping
	// ErrUnavailable means the broker did not take it; Submit does not
	// retry. It blocks until the broker answered or ctx ends and is safe
	// for concurrent use.
	Submit(ctx context.Context, action command.Action, body []byte) (requestID string, err error)
}

// Options configure a Console. Zero values take the defaults named.
type Options struct {
	// Feed supplies statuses, results and histories. Nil: the page shows
	// no sessions, only Notice.
	Feed Feed
	// Submitter runs the form's commands. Nil: the form is disabled and
	// commands are answered 503 with Notice.
	Submitter Submitter
	// Notice, when set, is shown at the top of the page: say there why
	// Feed or Submitter is missing.
	Notice string
	// Open serves the console without credentials; set it only when the
	// listener is on loopback. Requests must then name a loopback Host.
	Open bool
	// Tokens are the bearer tokens accepted when not Open: the console's
	// own (admin.console_tokens), never the notification senders', whose
	// credentials allow them to notify and nothing else. Not Open and no
	// Tokens: the console is off (404).
	Tokens []string
	// TrustedProxies are the reverse proxies in front of the admin
	// listener: from them, X-Forwarded-Proto: https makes the login cookie
	// Secure (ingress.ViaTLS).
	TrustedProxies []netip.Prefix
	// Listener names the listener in the one-line answer of a console that
	// is off, e.g. "admin.address 0.0.0.0:9090".
	Listener string
	// MaxSessions bounds the session table; the least recently updated
	// session is dropped first. Default 10,000.
	MaxSessions int
	// MaxResults bounds the recent results kept. Default 200.
	MaxResults int
	// MaxPages bounds the pages open at once (event streams, each sent a
	// snapshot of up to MaxSessions sessions); beyond it a page is
	// answered 503 with Retry-After. Default 50.
	MaxPages int
	// Backlog is how many events a page may fall behind before it is
	// disconnected (it reconnects and starts from a snapshot). Default
	// 16,384.
	Backlog int
	// FlushInterval is the shortest time between two writes to one page:
	// events that arrive meanwhile go out together, and of several
	// statuses of one session only the last (the page shows the current
	// status; a session's history is read from the stream on click), so a
	// page's cost follows the sessions that changed, not the events.
	// Default 200ms; negative: write at once.
	FlushInterval time.Duration
	// Heartbeat is how often an idle event stream gets a comment line, so
	// proxies keep it open. Default 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds one write to a page; a page whose socket does
	// not take it in time is disconnected. Default 10s.
	WriteTimeout time.Duration
	// LoginTTL is how long a login cookie is valid. Default 12h.
	LoginTTL time.Duration
	// Linger is how long Run keeps following the feed after the last page
	// closed. Following costs the bridge a consumer that receives every
	// status, so with no page open it stops; the table is kept and the
	// next page sees it at once while the feed catches up. Default 30s;
	// negative: follow all the time.
	Linger time.Duration
	// Logger gets one line per feed failure and dropped page. Nil discards.
	Logger *slog.Logger
}

// Console is the /ui handler with its session table, recent results and
// event hub. Create it with New; run Run on a goroutine of your own to
// feed it; Close it before shutting the listener down, so its event streams
// end. It is safe for concurrent use.
type Console struct {
	o      Options
	log    *slog.Logger
	mux    *http.ServeMux
	key    atomic.Pointer[[]byte]              // signs login cookies; random per process and token removal
	tokens atomic.Pointer[[][sha256.Size]byte] // digests of Options.Tokens, or of SetTokens
	closed chan struct{}
	once   sync.Once

	mu        sync.Mutex
	rows      map[string]*list.Element // sessionId → element of order holding *Row
	order     *list.List               // front: most recently updated
	devices   map[string]string        // sessionId → device, learnt before the session's first status
	truncated bool
	results   []Result // oldest first, at most MaxResults
	feedErr   string
	ring      [][]byte // encoded events; event n is ring[n%len(ring)]
	// stale[n%len(ring)] is true when a later status of the same session
	// is in the ring: pages that have not sent event n yet skip it.
	stale   []bool
	lastPos map[string]uint64 // session → ring position of its last status
	head    uint64            // number of events appended so far
	changed chan struct{}     // closed and replaced on every append
	clients int
	// pages is signalled when clients changes between zero and more, so
	// that Run starts or stops following.
	pages chan struct{}
}

// Row is one session in the table.
type Row struct {
	SessionID  string            `json:"sessionId"`
	Device     string            `json:"device,omitempty"`
	QoSStatus  bridge.QoSStatus  `json:"qosStatus,omitempty"`
	StatusInfo bridge.StatusInfo `json:"statusInfo,omitempty"`
	Time       time.Time         `json:"time,omitzero"`
	// Received is when the bridge received the status (Status.Received).
	Received time.Time `json:"received,omitzero"`
}

// New makes a Console. It starts nothing: call Run to follow the feed.
func New(o Options) (*Console, error) {
	o.MaxSessions = cmp.Or(o.MaxSessions, 10000)
	o.MaxResults = cmp.Or(o.MaxResults, 200)
	o.MaxPages = cmp.Or(o.MaxPages, 50)
	o.Backlog = cmp.Or(o.Backlog, 16384)
	o.FlushInterval = cmp.Or(o.FlushInterval, 200*time.Millisecond)
	o.Heartbeat = cmp.Or(o.Heartbeat, 15*time.Second)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, 10*time.Second)
	o.LoginTTL = cmp.Or(o.LoginTTL, 12*time.Hour)
	o.Linger = cmp.Or(o.Linger, 30*time.Second)
	if o.MaxSessions < 0 || o.MaxResults < 0 || o.Backlog < 0 {
		return nil, errors.New("console: MaxSessions, MaxResults and Backlog must not be negative")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{
		o:       o,
		log:     o.Logger,
		closed:  make(chan struct{}),
		rows:    make(map[string]*list.Element),
		order:   list.New(),
		devices: make(map[string]string),
		ring:    make([][]byte, o.Backlog),
		stale:   make([]bool, o.Backlog),
		lastPos: make(map[string]uint64),
		changed: make(chan struct{}),
		pages:   make(chan struct{}, 1),
	}
	c.SetTokens(o.Tokens)
	c.mux = c.routes()
	return c, nil
}

// Off reports whether the console is off: not Open and no tokens to ask
// for. It then answers every request 404 with a line saying why.
func (c *Console) Off() bool { return !c.o.Open && len(*c.tokens.Load()) == 0 }

// SetTokens replaces the accepted tokens (Options.Tokens) at once; it is
// safe to call while the console serves. When a token is removed, every
// sign-in ends (the key that signs the login cookies is renewed), since a
// cookie does not say which token signed it in.
func (c *Console) SetTokens(tokens []string) {
	sums := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		sums[i] = sha256.Sum256([]byte(t))
	}
	prev := c.tokens.Swap(&sums)
	if prev == nil || slices.ContainsFunc(*prev, func(p [sha256.Size]byte) bool { return !slices.Contains(sums, p) }) {
		key := make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand does not fail
		c.key.Store(&key)
	}
}

// Run follows the feed while pages are open (and Options.Linger after the
// last one closed) until ctx ends (then it returns nil) or the console is
// closed (ErrClosed). When Follow fails, Run shows the failure on the
// pages and calls it again after a pause that grows to 30s. Without a
// Feed it just waits. Run must be called at most once at a time; the
// caller owns the goroutine it runs on.
func (c *Console) Run(ctx context.Context) error {
	if c.o.Feed == nil {
		select {
		case <-ctx.Done():
			return nil
		case <-c.closed:
			return ErrClosed
		}
	}
	pause := 500 * time.Millisecond
	for {
		if err := c.waitForPages(ctx); err != nil {
			return err
		}
		start := time.Now()
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // ctx's end stops Run; what Follow said on the way out is moot
		}
		if errors.Is(err, errIdle) {
			pause = 500 * time.Millisecond
			continue
		}
		if err == nil {
			err = errors.New("the feed stopped")
		}
		c.log.Warn("console: following the streams failed; retrying", "err", err, "retry_in", pause.String())
		c.setFeedErr(err.Error())
		if time.Since(start) > time.Minute {
			pause = 500 * time.Millisecond
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-c.closed:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// errIdle ends a follow that no page wants any more.
var errIdle = errors.New("console: no page open")

// waitForPages returns once a page is open (at once with a negative
// Linger), or with ctx's end (nil) or ErrClosed.
func (c *Console) waitForPages(ctx context.Context) error {
	for c.o.Linger >= 0 && c.Clients() == 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-c.closed:
			return ErrClosed
		case <-c.pages:
		}
	}
	return nil
}

// follow runs Feed.Follow until it fails, ctx ends, or no page has been
// open for Linger (errIdle).
func (c *Console) follow(ctx context.Context) error {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() { done <- c.o.Feed.Follow(fctx, c.onStatus, c.onResult) }()
	var idle *time.Timer
	var idleC <-chan time.Time
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		select {
		case err := <-done:
			if errors.Is(context.Cause(fctx), errIdle) {
				return errIdle
			}
			return err
		case <-c.pages:
			if c.o.Linger < 0 {
				continue
			}
			if c.Clients() > 0 {
				if idle != nil {
					idle.Stop()
				}
				idleC = nil
			} else if idleC == nil {
				idle = time.NewTimer(c.o.Linger)
				idleC = idle.C
			}
		case <-idleC:
			if c.Clients() == 0 {
				cancel(errIdle)
			}
			idleC = nil
		}
	}
}

// Close ends every open event stream (their requests return) and answers
// later ones 503. It does not stop Run: cancel Run's ctx for that. It is
// idempotent and always returns nil.
func (c *Console) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// Clients reports the event streams open now.
func (c *Console) Clients() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clients
}

// onStatus is the Feed's status callback: update the table, append the
// row (and any evicted session) to the ring. It never blocks on a page.
func (c *Console) onStatus(s Status) {
	if s.SessionID == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.feedErr != "" {
		c.feedErr = ""
		c.appendLocked("feed", feedState{OK: true})
	}
	row := c.touchLocked(s.SessionID)
	row.QoSStatus, row.StatusInfo, row.Time, row.Received = s.QoSStatus, s.StatusInfo, s.Time, s.Received
	c.appendLocked("session", row)
}

// touchLocked returns the row of id, created if new, moved to the front,
// evicting the least recently updated row when the table is full.
func (c *Console) touchLocked(id string) *Row {
	if e, ok := c.rows[id]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*Row)
	}
	row := &Row{SessionID: id, Device: c.devices[id]}
	delete(c.devices, id)
	c.rows[id] = c.order.PushFront(row)
	for c.order.Len() > c.o.MaxSessions {
		old := c.order.Remove(c.order.Back()).(*Row)
		delete(c.rows, old.SessionID)
		c.truncated = true
		c.appendLocked("evict", evicted{SessionID: old.SessionID, Limit: c.o.MaxSessions})
	}
	return row
}

// onResult is the Feed's result callback: keep the result (a repeated
// delivery replaces the earlier copy) and learn the device of the session
// it names.
func (c *Console) onResult(r Result) {
	id, device := sessionDevice(r.Session)
	if r.SessionID == "" {
		r.SessionID = id
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	replaced := false
	for i := range c.results {
		if c.results[i].RequestID == r.RequestID {
			c.results[i], replaced = r, true
			break
		}
	}
	if !replaced {
		if len(c.results) >= c.o.MaxResults && len(c.results) > 0 {
			copy(c.results, c.results[1:])
			c.results = c.results[:len(c.results)-1]
		}
		if c.o.MaxResults > 0 {
			c.results = append(c.results, r)
		}
	}
	c.appendLocked("result", r)
	if id == "" || device == "" {
		return
	}
	if e, ok := c.rows[id]; ok {
		if row := e.Value.(*Row); row.Device != device {
			row.Device = device
			c.appendLocked("session", row)
		}
		return
	}
	// The result came before the session's first status (or the session
	// is gone): remember the device for a while, bounded.
	if len(c.devices) >= c.o.MaxResults {
		for k := range c.devices {
			delete(c.devices, k)
			break
		}
	}
	c.devices[id] = device
}

// sessionDevice reads the sessionId and a one-line device of a CAMARA
// SessionInfo.
func sessionDevice(raw json.RawMessage) (id, device string) {
	if len(raw) == 0 {
		return "", ""
	}
	var s struct {
		SessionID string `json:"sessionId"`
		Device    struct {
			PhoneNumber             string `json:"phoneNumber"`
			NetworkAccessIdentifier string `json:"networkAccessIdentifier"`
			IPv4Address             struct {
				PublicAddress string `json:"publicAddress"`
			} `json:"ipv4Address"`
			IPv6Address string `json:"ipv6Address"`
		} `json:"device"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return "", ""
	}
	d := s.Device
	for _, v := range []string{d.PhoneNumber, d.NetworkAccessIdentifier, d.IPv4Address.PublicAddress, d.IPv6Address} {
		if v != "" {
			return s.SessionID, v
		}
	}
	return s.SessionID, ""
}

func (c *Console) setFeedErr(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.feedErr = msg
	c.appendLocked("feed", feedState{OK: false, Error: msg})
}

// Events on the stream, besides "snapshot".
type (
	feedState struct {
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}
	evicted struct {
		SessionID string `json:"sessionId"`
		Limit     int    `json:"limit"`
	}
)

// appendLocked encodes one event once, for every page, into the ring and
// wakes the pages waiting for one. The caller holds c.mu.
func (c *Console) appendLocked(event string, v any) {
	if len(c.ring) == 0 {
		return
	}
	size := uint64(len(c.ring))
	i := c.head % size
	c.ring[i] = frame(event, v)
	c.stale[i] = false
	if row, ok := v.(*Row); ok && event == "session" {
		if prev, ok := c.lastPos[row.SessionID]; ok && c.head-prev < size {
			c.stale[prev%size] = true
		}
		c.lastPos[row.SessionID] = c.head
	}
	if ev, ok := v.(evicted); ok {
		delete(c.lastPos, ev.SessionID)
	}
	c.head++
	close(c.changed)
	c.changed = make(chan struct{})
}

// frame is one server-sent event: "event: <name>\ndata: <json>\n\n".
// encoding/json never writes a raw newline, so the data is one line.
func frame(event string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil { // only our own types: cannot happen
		data = fmt.Appendf(nil, `{"error":%q}`, err.Error())
	}
	b := make([]byte, 0, len(event)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// snapshot is the first event of every stream: the whole state.
type snapshot struct {
	Sessions  []Row     `json:"sessions"` // most recently updated first
	Results   []Result  `json:"results"`  // oldest first
	Limit     int       `json:"limit"`
	Truncated bool      `json:"truncated"`
	Notice    string    `json:"notice,omitempty"`
	CanSubmit bool      `json:"canSubmit"`
	Feed      feedState `json:"feed"`
	// Login is true when the page was opened with a login cookie (it then
	// offers to sign out).
	Login bool `json:"login"`
}

// subscribeLocked copies the state for a new page and returns the ring
// position its events start at. The caller holds c.mu.
func (c *Console) subscribeLocked() (snapshot, uint64) {
	s := snapshot{
		Sessions:  make([]Row, 0, c.order.Len()),
		Results:   append([]Result(nil), c.results...),
		Limit:     c.o.MaxSessions,
		Truncated: c.truncated,
		Notice:    c.o.Notice,
		CanSubmit: c.o.Submitter != nil,
		Feed:      feedState{OK: c.feedErr == "", Error: c.feedErr},
	}
	for e := c.order.Front(); e != nil; e = e.Next() {
		s.Sessions = append(s.Sessions, *e.Value.(*Row))
	}
	c.clients++
	if c.clients == 1 {
		c.signalPages()
	}
	return s, c.head
}

// signalPages tells Run that the number of pages went to or from zero.
func (c *Console) signalPages() {
	select {
	case c.pages <- struct{}{}:
	default:
	}
}

// next collects the events after cursor into buf. lagged means the page
// fell more than Backlog events behind; wake is closed by the next append.
func (c *Console) next(cursor uint64, buf [][]byte) (_ [][]byte, head uint64, wake <-chan struct{}, lagged bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head-cursor > uint64(len(c.ring)) {
		return buf, cursor, nil, true
	}
	size := uint64(len(c.ring))
	// Of several statuses of one session only the last goes out, where it
	// stands, so it still follows an earlier eviction and precedes a
	// later one. (A stale status is always followed by its session's later
	// one, which this page sends too.)
	for n := cursor; n < c.head; n++ {
		if !c.stale[n%size] {
			buf = append(buf, c.ring[n%size])
		}
	}
	return buf, c.head, c.changed, false
}

func (c *Console) unsubscribe() {
	c.mu.Lock()
	c.clients--
	if c.clients == 0 {
		c.signalPages()
	}
	c.mu.Unlock()
}
