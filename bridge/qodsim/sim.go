package qodsim

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// dialect is the API a request came through.
type dialect int

const (
	dialectV1 dialect = iota // /quality-on-demand/v1, QoD 1.1.0
	dialectV0                // /qod/v0, QoD 0.10.1
)

// Base paths of the two APIs the handler serves.
const (
	BasePathV1 = "/quality-on-demand/v1"
	BasePathV0 = "/qod/v0"
)

func (d dialect) basePath() string {
	if d == dialectV0 {
		return BasePathV0
	}
	return BasePathV1
}

// scenario is the scripted behaviour of a device.
type scenario int

const (
	scenarioNone scenario = iota
	scenarioAvailable
	scenarioUnavailable
	scenarioNetworkTerminated
	scenarioRateLimited
	scenarioServerError
	// The device outcomes below end a request before a session exists; the
	// higher one wins when a device matches several.
	scenarioNoProfiles
	scenarioNotApplicable
	scenarioNotFound
)

func (s scenario) String() string {
	switch s {
	case scenarioAvailable:
		return "Available"
	case scenarioUnavailable:
		return "Unavailable"
	case scenarioNetworkTerminated:
		return "NetworkTerminated"
	case scenarioRateLimited:
		return "RateLimited"
	case scenarioServerError:
		return "ServerError"
	case scenarioNoProfiles:
		return "NoProfiles"
	case scenarioNotApplicable:
		return "NotApplicable"
	case scenarioNotFound:
		return "NotFound"
	}
	return "none"
}

// scenarioOf returns the scripted behaviour of the device with these keys,
// the one of highest precedence when several match, and the key that named
// it.
func (s *Sim) scenarioOf(keys []string) (scenario, string) {
	sc, key := scenarioNone, ""
	for _, k := range keys {
		if c, ok := s.cfg.scenarios[k]; ok && c > sc {
			sc, key = c, k
		}
	}
	return sc, key
}

// deviceError answers a device the simulated network does not know or does
// not serve; nil for any other.
func (s *Sim) deviceError(keys []string) *apiError {
	switch sc, _ := s.scenarioOf(keys); sc {
	case scenarioNotFound:
		return &apiError{status: http.StatusNotFound, code: codeIdentifierNotFound,
			msg: "device: Device identifier not found (scenario device: unknown to the network)"}
	case scenarioNotApplicable:
		return &apiError{status: http.StatusUnprocessableEntity, code: codeServiceNotApplicable,
			msg: "device: The service is not available for the provided identifier (scenario device)"}
	}
	return nil
}

// profileAvailable reports whether the profile may serve the device with
// these keys (no keys: no device): a device with a scripted outcome that
// excludes profiles has none; a restricted profile serves only its
// devices.
func (s *Sim) profileAvailable(name string, keys []string) bool {
	if sc, _ := s.scenarioOf(keys); sc >= scenarioNoProfiles {
		return false
	}
	r := s.cfg.restricted[name]
	if r == nil {
		return true
	}
	for _, k := range keys {
		if r[k] {
			return true
		}
	}
	return false
}

// session is one QoD session. All fields are guarded by Sim.mu.
type session struct {
	id       string
	dialect  dialect // the API that created it: source path and, with FormatAuto, the format
	format   Format
	scenario scenario

	owner        string // the OAuth client that created it; "" without OAuth
	dev          device
	devFromToken bool     // dev is the three-legged token's: a v1 answer does not show it
	keys         []string // device index keys
	app          appServer
	devPorts     *portsSpec
	appPorts     *portsSpec
	profile      string
	duration     int64 // seconds granted, extensions included
	sink         string
	sinkV0       bool // the sink came as webhook{notificationUrl}
	token        string
	tokenExpiry  time.Time // zero: none

	status  bridge.QoSStatus
	info    bridge.StatusInfo
	created time.Time
	started time.Time // zero until AVAILABLE
	expires time.Time // scheduled end while AVAILABLE
	ended   time.Time // zero until UNAVAILABLE

	timer Timer
	gen   uint64 // bumped on every (re)schedule, so a stale timer call does nothing

	listed    bool          // in Sim.sessions and Sim.byDevice
	endedElem *list.Element // in Sim.ended while retained as UNAVAILABLE
	released  bool          // its slot was given back

	outbox []outgoing // notifications not yet delivered, in order
	queued bool       // in Sim.ready or being delivered by a sender
	gone   bool       // the sink answered 410: send nothing more
}

// Sim is a QoD simulator: an http.Handler serving the CAMARA QoD API, a
// store of sessions whose status moves on the Clock, and a bounded pool of
// senders delivering status notifications. It is safe for concurrent use.
type Sim struct {
	cfg     *config
	clock   Clock
	log     *slog.Logger
	client  *http.Client
	handler http.Handler

	mu       sync.Mutex
	sessions map[string]*session
	byDevice map[string][]*session
	ended    *list.List      // retained UNAVAILABLE sessions, oldest first
	slots    int             // sessions held: listed plus deleted ones still sending
	toggles  map[string]bool // scenario identifier -> its last create failed
	pending  int             // notifications queued or being delivered
	idle     chan struct{}   // closed when pending drops to 0; nil while it is 0
	closed   bool

	ready      chan *session // sessions with notifications to send; capacity MaxSessions, so sends never block
	quit       chan struct{}
	sendCtx    context.Context
	cancelSend context.CancelFunc
	senders    sync.WaitGroup
	shutdown   sync.Once
	done       chan struct{} // closed when the senders have stopped
}

// New returns a running simulator. Its senders run until Close or
// Shutdown; the caller serves Handler (or calls Serve) itself.
func New(opts Options) (*Sim, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Senders
		client = &http.Client{
			Transport: tr,
			// A webhook that redirects is misconfigured; following it could
			// also carry the bearer token somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s := &Sim{
		cfg:      cfg,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		client:   client,
		sessions: make(map[string]*session),
		byDevice: make(map[string][]*session),
		ended:    list.New(),
		toggles:  make(map[string]bool),
		ready:    make(chan *session, cfg.MaxSessions),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.sendCtx, s.cancelSend = context.WithCancel(context.Background())
	s.handler = s.routes()
	s.senders.Add(cfg.Senders)
	for range cfg.Senders {
		go s.sender()
	}
	return s, nil
}

// Handler returns the HTTP handler of the APIs: /quality-on-demand/v1/…,
// /qos-profiles/v1/… and /qod/v0/…, and in OAuth mode /oauth2/… and
// /.well-known/openid-configuration. After Close or Shutdown began the APIs
// answer 503.
func (s *Sim) Handler() http.Handler { return s.handler }

// Flush blocks until no notification is queued or being delivered, or ctx
// is done (then it returns ctx.Err()). A retry waiting on a ManualClock
// waits for Advance, so Flush does too.
func (s *Sim) Flush(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-s.done: // stopped: what is left will not be sent
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops the simulator gracefully: the API answers 503 from now on
// and session timers stop; then it waits for the queued notifications to be
// delivered (or given up) until ctx is done, cancels what is left, and
// returns when every sender has stopped. It returns ctx.Err() when
// notifications were left undelivered. Further calls wait for the first to
// finish (or their own ctx).
func (s *Sim) Shutdown(ctx context.Context) error {
	first := false
	s.shutdown.Do(func() { first = true })
	if !first {
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.closed = true
	for _, sess := range s.sessions {
		s.stopTimer(sess)
	}
	s.mu.Unlock()

	err := s.Flush(ctx)
	s.cancelSend()
	close(s.quit)
	s.senders.Wait()
	s.mu.Lock()
	left := s.pending
	s.mu.Unlock()
	if left > 0 {
		s.log.Info("qodsim: stopped with notifications undelivered", "count", left)
	}
	close(s.done)
	return err
}

// Close stops the simulator at once: the API answers 503, timers stop,
// deliveries in flight are cancelled, and Close returns when every sender
// has stopped. It is idempotent and always returns nil.
func (s *Sim) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
	s.cancelSend() // also cuts short a Shutdown still draining
	<-s.done
	return nil
}

// Serve serves the API on ln until ctx is done, then shuts the HTTP server
// down (waiting up to 5s for requests in flight) and returns nil; it
// returns the error of http.Server.Serve if serving fails. It does not stop
// the Sim: call Close or Shutdown after it returned.
func (s *Sim) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("qodsim: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("qodsim: shut down HTTP server: %w", err)
	}
	return nil
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Sim) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("qodsim: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ---- life cycle; every method below runs with s.mu held ----

// schedule makes f(sess) run after d, replacing the session's pending timer.
func (s *Sim) schedule(sess *session, d time.Duration, f func(*session)) {
	s.stopTimer(sess)
	gen := sess.gen
	sess.timer = s.clock.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		// After Close nothing moves; a timer that lost the race with a
		// reschedule, a delete or Stop finds another generation.
		if s.closed || sess.gen != gen {
			return
		}
		sess.timer = nil
		f(sess)
	})
}

func (s *Sim) stopTimer(sess *session) {
	if sess.timer != nil {
		sess.timer.Stop()
		sess.timer = nil
	}
	sess.gen++
}

// requestedDone ends the REQUESTED phase as the session's scenario says.
func (s *Sim) requestedDone(sess *session) {
	switch sess.scenario {
	case scenarioUnavailable:
		s.end(sess, "")
	case scenarioNetworkTerminated:
		s.end(sess, bridge.InfoNetworkTerminated)
	default:
		s.makeAvailable(sess)
	}
}

func (s *Sim) makeAvailable(sess *session) {
	now := s.clock.Now()
	sess.status = bridge.StatusAvailable
	sess.started = now
	sess.expires = now.Add(time.Duration(sess.duration) * time.Second)
	s.notify(sess, bridge.StatusAvailable, "")
	s.schedule(sess, sess.expires.Sub(now), s.expire)
}

func (s *Sim) expire(sess *session) { s.end(sess, bridge.InfoDurationExpired) }

// end makes the session UNAVAILABLE, notifies, and retains it for reading.
func (s *Sim) end(sess *session, info bridge.StatusInfo) {
	s.terminate(sess, info)
	if s.cfg.Retention == 0 {
		s.remove(sess)
		return
	}
	sess.endedElem = s.ended.PushBack(sess)
	s.schedule(sess, s.cfg.Retention, s.remove)
}

func (s *Sim) terminate(sess *session, info bridge.StatusInfo) {
	sess.status = bridge.StatusUnavailable
	sess.info = info
	sess.ended = s.clock.Now()
	s.stopTimer(sess)
	s.notify(sess, bridge.StatusUnavailable, info)
}

// remove takes the session out of the store; its slot is given back once
// its last notification is done.
func (s *Sim) remove(sess *session) {
	if !sess.listed {
		return
	}
	s.stopTimer(sess)
	sess.listed = false
	delete(s.sessions, sess.id)
	for _, k := range sess.keys {
		l := slices.DeleteFunc(s.byDevice[k], func(o *session) bool { return o == sess })
		if len(l) == 0 {
			delete(s.byDevice, k)
		} else {
			s.byDevice[k] = l
		}
	}
	if sess.endedElem != nil {
		s.ended.Remove(sess.endedElem)
		sess.endedElem = nil
	}
	s.release(sess)
}

func (s *Sim) release(sess *session) {
	if sess.listed || len(sess.outbox) > 0 || sess.released {
		return
	}
	sess.released = true
	s.slots--
}

// makeRoom frees a slot by dropping retained UNAVAILABLE sessions, oldest
// first, and reports whether one is free.
func (s *Sim) makeRoom() bool {
	for s.slots >= s.cfg.MaxSessions {
		e := s.ended.Front()
		if e == nil {
			return false
		}
		s.remove(e.Value.(*session))
	}
	return true
}

// blocks reports whether sess keeps its device from another session: it is
// REQUESTED or AVAILABLE, or it was NETWORK_TERMINATED, whose resources the
// spec keeps until the session is deleted or removed.
func (sess *session) blocks() bool {
	return sess.status != bridge.StatusUnavailable || sess.info == bridge.InfoNetworkTerminated
}
