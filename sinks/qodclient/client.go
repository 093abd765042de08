package qodclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qodbridge/qodbridge/bridge/command"
)

// DefaultTimeout bounds a call whose ctx has no deadline. It exceeds the
// bridge's default retry budget for one command (command.DefaultMaxElapsed).
const DefaultTimeout = 2 * time.Minute

// Action names what a command does.
type Action = command.Action

// The actions of the command contract.
const (
	ActionCreate = command.Create
	ActionGet    = command.Get
	ActionExtend = command.Extend
	ActionDelete = command.Delete
	ActionList   = command.List
)

// Command is one command for Send: Action and what it needs.
type Command struct {
	Action Action
	// RequestID names the command and its result; empty: Send generates
	// one. Sending a command again with the same RequestID is safe (see the
	// package doc).
	RequestID string
	// SessionID is the target of get, extend and delete.
	SessionID string
	// Session is create's body.
	Session *CreateSession
	// AdditionalDuration is extend's additional seconds.
	AdditionalDuration int
	// Device is list's device.
	Device *Device
}

// Result is a command's successful result.
type Result struct {
	RequestID string
	Action    Action
	// Status is the QoD API's HTTP status: 201 create, 200 get, extend and
	// list, 204 delete.
	Status int
	// Session is the session of create, get and extend.
	Session *Session
	// Sessions are list's sessions (none: empty).
	Sessions []Session
}

// transport is what a Client needs of a broker.
type transport interface {
	// request runs cmd the synchronous way and returns the result's JSON;
	// errSyncUnsupported when the broker has none.
	request(ctx context.Context, cmd *command.Command, body []byte) ([]byte, error)
	// publish sends cmd to the command stream or topic.
	publish(ctx context.Context, cmd *command.Command, body []byte) error
	// await returns the result of requestID (the last stored, or the
	// first published after), once the bridge published it.
	await(ctx context.Context, requestID string) (result, error)
	// watch yields the status events of sessionID ("": of every session).
	watch(ctx context.Context, sessionID string) iter.Seq2[StatusEvent, error]
	close() error
}

var errSyncUnsupported = errors.New("qodclient: the broker has no request/reply path")

// Client drives the command flow of a bridge over one broker. Create it
// with NewNATS or NewKafka. It is safe for concurrent use; Close it when
// done.
type Client struct {
	tr      transport
	async   bool
	timeout time.Duration

	// life ends at Close: calls and watches in flight end with it.
	life      context.Context
	end       context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

func newClient(tr transport, async bool, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	life, end := context.WithCancel(context.Background())
	return &Client{tr: tr, async: async, timeout: timeout, life: life, end: end}
}

// CallOption adjusts one call.
type CallOption func(*callOptions)

type callOptions struct {
	requestID string
	async     *bool
}

// WithRequestID sets the command's requestId, instead of a random one. A
// call repeated with the same id (after a timeout, or from another
// process) gets the outcome of the first: create, extend and delete are
// applied once.
func WithRequestID(id string) CallOption {
	return func(o *callOptions) { o.requestID = id }
}

// WithAsync chooses the path of one call on NATS: true publishes the
// command to <prefix>.commands.<action> and waits for its result on the
// results stream; false asks the micro service <prefix>.api.<action>. On
// Kafka every call is asynchronous and false is an error.
func WithAsync(async bool) CallOption {
	return func(o *callOptions) { o.async = &async }
}

// Create creates a session and returns it, usually REQUESTED: watch it
// (Watch) to see it become AVAILABLE.
func (c *Client) Create(ctx context.Context, s CreateSession, opts ...CallOption) (Session, error) {
	r, err := c.call(ctx, Command{Action: ActionCreate, Session: &s}, opts)
	return sessionOf(r, err)
}

// Get returns the session sessionID as the QoD API reports it now.
func (c *Client) Get(ctx context.Context, sessionID string, opts ...CallOption) (Session, error) {
	r, err := c.call(ctx, Command{Action: ActionGet, SessionID: sessionID}, opts)
	return sessionOf(r, err)
}

// Extend adds seconds to the duration of the session sessionID (it must be
// AVAILABLE) and returns the session as extended.
func (c *Client) Extend(ctx context.Context, sessionID string, seconds int, opts ...CallOption) (Session, error) {
	r, err := c.call(ctx, Command{Action: ActionExtend, SessionID: sessionID, AdditionalDuration: seconds}, opts)
	return sessionOf(r, err)
}

// Delete deletes the session sessionID. Its UNAVAILABLE /
// DELETE_REQUESTED status follows on the status stream.
func (c *Client) Delete(ctx context.Context, sessionID string, opts ...CallOption) error {
	_, err := c.call(ctx, Command{Action: ActionDelete, SessionID: sessionID}, opts)
	return err
}

// List returns the sessions of device (none: an empty slice).
func (c *Client) List(ctx context.Context, device Device, opts ...CallOption) ([]Session, error) {
	r, err := c.call(ctx, Command{Action: ActionList, Device: &device}, opts)
	if err != nil {
		return nil, err
	}
	return r.Sessions, nil
}

func sessionOf(r Result, err error) (Session, error) {
	if err != nil {
		return Session{}, err
	}
	if r.Session == nil {
		return Session{}, fmt.Errorf("%w: %s result %s has no session", ErrDecode, r.Action, r.RequestID)
	}
	return *r.Session, nil
}

// call runs cmd by the path the options choose.
func (c *Client) call(ctx context.Context, cmd Command, opts []CallOption) (Result, error) {
	var o callOptions
	for _, f := range opts {
		f(&o)
	}
	cmd.RequestID = o.requestID
	async := c.async
	if o.async != nil {
		async = *o.async
	}
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	wire, body, err := c.encode(cmd)
	if err != nil {
		return Result{}, err
	}
	if async {
		if err := c.tr.publish(ctx, wire, body); err != nil {
			return Result{}, err
		}
		return c.await(ctx, wire.RequestID, wire)
	}
	data, err := c.tr.request(ctx, wire, body)
	if err != nil {
		return Result{}, err
	}
	return decodeResult(data, wire.RequestID)
}

// Send publishes cmd to the command stream (NATS) or topic (Kafka) and
// returns its requestId once the broker acknowledged it; Await gets the
// result. Send and Await let the result be collected later or elsewhere:
// on NATS the results stream keeps it (24 hours by default).
func (c *Client) Send(ctx context.Context, cmd Command) (requestID string, err error) {
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	wire, body, err := c.encode(cmd)
	if err != nil {
		return "", err
	}
	if err := c.tr.publish(ctx, wire, body); err != nil {
		return "", err
	}
	return wire.RequestID, nil
}

// Await waits for the result of requestID and returns it, or the *Error of
// an error result.
func (c *Client) Await(ctx context.Context, requestID string) (Result, error) {
	if c.closed.Load() {
		return Result{}, ErrClosed
	}
	ctx, cancel := c.deadline(ctx)
	defer cancel()
	return c.await(ctx, requestID, nil)
}

// result is a result message: its data and the session it names ("" when
// it names none).
type result struct {
	value   []byte
	session string
}

// await waits for the result of requestID; cmd, when not nil, is the
// command it must answer.
func (c *Client) await(ctx context.Context, requestID string, cmd *command.Command) (Result, error) {
	r, err := c.tr.await(ctx, requestID)
	if err != nil {
		return Result{}, err
	}
	if cmd != nil && !answers(cmd, r) {
		// The earlier command's result, found before the bridge's
		// conflict answer to this one.
		return Result{}, &Error{RequestID: requestID, Action: string(cmd.Action), Status: 409, Code: "CONFLICT",
			Message: "requestId " + requestID + " names an earlier, different command; send this one with a new requestId"}
	}
	return decodeResult(r.value, requestID)
}

// Watch yields the status events of the session sessionID: first its
// current status (its session view entry, or the last event stored for it;
// Live false),
// then each change as the bridge publishes it (Live true), until ctx ends
// or the loop breaks. See the package doc for what "stored" means on each
// broker.
//
// The sequence runs in the goroutine that ranges over it and blocks while
// it waits for the next event. An error ends it (the error is yielded
// once; ctx's end yields ctx.Err()), except an event that cannot be
// decoded: its error wraps ErrDecode and the loop may go on. Breaking out
// of the loop releases everything the watch holds. Each range over the
// sequence is a watch of its own.
func (c *Client) Watch(ctx context.Context, sessionID string) iter.Seq2[StatusEvent, error] {
	if sessionID == "" {
		return errSeq(errors.New("qodclient: watch: empty sessionId"))
	}
	return c.watch(ctx, sessionID)
}

// WatchAll is Watch for every session: the current status of each, then
// every change. Events of one session come in order; events of different
// sessions may interleave in any order.
func (c *Client) WatchAll(ctx context.Context) iter.Seq2[StatusEvent, error] {
	return c.watch(ctx, "")
}

func (c *Client) watch(ctx context.Context, sessionID string) iter.Seq2[StatusEvent, error] {
	return func(yield func(StatusEvent, error) bool) {
		if c.closed.Load() {
			yield(StatusEvent{}, ErrClosed)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(c.life, cancel)()
		for ev, err := range c.tr.watch(ctx, sessionID) {
			if err != nil && c.closed.Load() && ctx.Err() != nil {
				err = ErrClosed
			}
			if !yield(ev, err) {
				return
			}
		}
	}
}

func errSeq(err error) iter.Seq2[StatusEvent, error] {
	return func(yield func(StatusEvent, error) bool) { yield(StatusEvent{}, err) }
}

// Close releases what the client holds (on Kafka: its readers and writer;
// the NATS connection stays the caller's) and waits for its goroutines.
// Calls in flight fail; later calls return ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.end()
		c.closeErr = c.tr.close()
	})
	return c.closeErr
}

// deadline gives ctx the client's timeout when it has no deadline, and
// ends it when the client is closed.
func (c *Client) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	stop := context.AfterFunc(c.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// encode turns cmd into the command contract's JSON.
func (c *Client) encode(cmd Command) (*command.Command, []byte, error) {
	if c.closed.Load() {
		return nil, nil, ErrClosed
	}
	if !cmd.Action.Valid() {
		return nil, nil, fmt.Errorf("qodclient: unknown action %q", cmd.Action)
	}
	w := &command.Command{Action: cmd.Action, RequestID: cmd.RequestID, SessionID: cmd.SessionID,
		RequestedAdditionalDuration: cmd.AdditionalDuration}
	if w.RequestID == "" {
		w.RequestID = command.NewRequestID()
	}
	var err error
	if cmd.Session != nil {
		if w.Session, err = json.Marshal(cmd.Session); err != nil {
			return nil, nil, fmt.Errorf("qodclient: %s: encode session: %w", cmd.Action, err)
		}
	}
	if cmd.Device != nil {
		if w.Device, err = json.Marshal(cmd.Device); err != nil {
			return nil, nil, fmt.Errorf("qodclient: %s: encode device: %w", cmd.Action, err)
		}
	}
	body, err := json.Marshal(w)
	if err != nil {
		return nil, nil, fmt.Errorf("qodclient: %s: encode command: %w", cmd.Action, err)
	}
	return w, body, nil
}

// answers tells whether res can be the answer to cmd, as far as its action
// and session show: a result stored earlier under the same requestId for
// another command cannot.
func answers(cmd *command.Command, res result) bool {
	if cmd.SessionID != "" && res.session != "" && res.session != cmd.SessionID {
		return false
	}
	var r struct {
		Action  Action `json:"action"`
		OK      bool   `json:"ok"`
		Session struct {
			SessionID string `json:"sessionId"`
		} `json:"session"`
	}
	if json.Unmarshal(res.value, &r) != nil {
		return true // decodeResult reports it
	}
	if r.Action != "" && r.Action != cmd.Action {
		return false
	}
	return !r.OK || cmd.SessionID == "" || r.Session.SessionID == "" || r.Session.SessionID == cmd.SessionID
}

// decodeResult reads a result message: the Result of success, the *Error
// of failure.
func decodeResult(data []byte, requestID string) (Result, error) {
	var r command.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return Result{}, fmt.Errorf("%w: result of %s: %w", ErrDecode, requestID, err)
	}
	if !r.OK {
		return Result{}, resultError(&r)
	}
	out := Result{RequestID: r.RequestID, Action: r.Action, Status: r.Status}
	if len(r.Session) > 0 {
		out.Session = new(Session)
		if err := json.Unmarshal(r.Session, out.Session); err != nil {
			return Result{}, fmt.Errorf("%w: session in the result of %s: %w", ErrDecode, requestID, err)
		}
	}
	if r.Action == ActionList {
		out.Sessions = []Session{}
		if len(r.Sessions) > 0 {
			if err := json.Unmarshal(r.Sessions, &out.Sessions); err != nil {
				return Result{}, fmt.Errorf("%w: sessions in the result of %s: %w", ErrDecode, requestID, err)
			}
		}
	}
	return out, nil
}
