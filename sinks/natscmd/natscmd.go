// Package natscmd takes QoD commands from NATS and publishes their results
// there: a JetStream work-queue consumer on <prefix>.commands.<action>, and
// a NATS micro service "qod" whose endpoints <prefix>.api.<action> answer a
// request directly.
//
// Streams (created if missing, never altered if present and different):
//   - QOD_COMMANDS on <prefix>.commands.> — work-queue retention: a command
//     is removed once acked, and every bridge instance shares one durable
//     consumer ("qodbridge"), so each command runs on one instance;
//   - QOD_RESULTS on <prefix>.results.> — limits retention (default 24h),
//     so a requester that was away still finds its result under
//     <prefix>.results.<requestToken>;
//   - QOD_DLQ on <prefix>.dlq.commands — invalid commands with the reason
//     in the Qod-Dead-Letter-Reason header. It lies outside
//     <prefix>.commands.>, so dead letters are never consumed as commands.
//
// Delivery semantics: a command is acked only after its result (and dead
// letter, if any) was acknowledged by JetStream; a command still running
// when shutdown's deadline passes is nacked and redelivered. Execution is
// therefore at least once; the command engine makes a redelivered create,
// extend or delete idempotent (it answers with the first outcome), and
// result messages carry a Nats-Msg-Id derived from the
// requestId so a re-published result is stored once within the duplicate
// window.
//
// Hostile input: every command ends in exactly one outcome, whatever its
// subject, headers or body. A command that cannot be run is answered with an
// error result and dead-lettered with the reason; a panic while it is
// handled is recovered and dead-lettered as "internal error". Dead letters
// are bounded (reason, body, copied headers; broker control headers such as
// Nats-Expected-Stream are not copied), so what the command carried cannot
// make them fail. While the broker cannot be reached (an election, a
// reconnect), the command keeps its delivery: a run the engine left
// unfinished (its store away) is run again, an outcome that was not
// published is published again, for up to a minute. A command still
// unfinished on its last delivery is answered with an error result and a
// bare dead letter. When an outcome still cannot be published, the
// command is nacked with a growing delay (Options.Redelivery) and the consumer's
// MaxDeliver bounds how often it comes back: on the last delivery the
// bridge publishes a bare dead letter (reason only) and a minimal error
// result, and if even that fails it logs and counts the command as
// terminated and removes it from the stream.
//
// Ordering and concurrency: commands run on Options.Lanes workers
// (command.Lanes); commands with the same sessionId always go to the same
// worker, one after another, so they run in the order the stream holds
// them. Create and list (no sessionId) are spread over the workers. In
// flight: at most Lanes commands run, and the consumer's MaxAckPending
// bounds what is fetched.
//
// Imports: bridge and bridge/command of ours; never config or cmd, nor
// another broker's package (sinks.Brokers maps the configuration onto its
// Options).
package natscmd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
)

// Executor runs a parsed command to its outcome; *command.Engine
// implements it. It is called from several goroutines at once. A non-nil
// error means the command did not finish (ctx ended) and must not be acked.
type Executor interface {
	Execute(ctx context.Context, cmd command.Command) (command.Outcome, error)
}

var _ Executor = (*command.Engine)(nil)

// Defaults of Options that the bridge's effective settings show
// (qodbridge check).
const (
	DefaultAckWait      = 3 * time.Minute
	DefaultResultMaxAge = 24 * time.Hour
	DefaultMaxDeliver   = 5
	// DefaultResultStream is also what the embedded server lets
	// application clients read (natssink.ClientPermissions).
	DefaultResultStream = "QOD_RESULTS"
)

// Options configure an Intake. Zero values take the defaults named.
type Options struct {
	// Prefix of every subject. Default "qod".
	Prefix string
	// Streams. Defaults QOD_COMMANDS, QOD_RESULTS, QOD_DLQ.
	CommandStream, ResultStream, DLQStream string
	// Durable is the consumer every instance shares. Default "qodbridge".
	Durable string
	// Lanes is the number of commands run at once. Default 16.
	Lanes int
	// AckWait is how long JetStream waits for an ack before redelivering;
	// it must exceed the longest command (retries included). Default 3m.
	AckWait time.Duration
	// ResultMaxAge keeps results this long. Default 24h.
	ResultMaxAge time.Duration
	// Memory stores the streams in memory. Default false (files).
	Memory bool
	// Replicas of the streams in a cluster. Default 1.
	Replicas int
	// Source is the CloudEvents source of results. Default
	// command.DefaultResultSource.
	Source string
	// PublishTimeout bounds each result / dead-letter publish. Default 5s.
	PublishTimeout time.Duration
	// MaxDeliver bounds how many times JetStream delivers one command.
	// Default 5.
	MaxDeliver int
	// Redelivery are the delays of the nacks of a command whose outcome
	// could not be published: the n-th delivery's nack waits
	// Redelivery[n-1], the last one for every later delivery. Default
	// 1s, 5s, 30s, 2m.
	Redelivery []time.Duration
	// DeadLetterBody bounds how much of a command's body its dead letter
	// keeps (at most half the server's max_payload). Default
	// command.DefaultDeadLetterBody (64 KiB).
	DeadLetterBody int
	// Micro enables the micro service "qod" on <prefix>.api.<action>.
	// Default false.
	Micro bool
	// Version is the micro service version. Default "1.0.0".
	Version string
	// Logger gets one line per failure. Nil discards.
	Logger *slog.Logger
	// Trace, when set, wraps each command's execution: it gets the
	// command message's headers (a traceparent header continues the
	// sender's trace) and returns the context to execute with and a
	// function called with the outcome's error. Nil: tracing off.
	Trace command.TraceFunc
	// Status, when set with Micro, answers the endpoint <prefix>.api.status
	// from the session view (natsview.View). Nil: no status endpoint.
	Status StatusReader
	// OnOutcome, when set, is called once per command handled, with its
	// action (as sent: use Action.Label for a metric) and command.Outcome
	// label (OutcomeUnfinished when it was left for redelivery,
	// OutcomeTerminated when it was dropped). It must not block.
	OnOutcome func(action command.Action, outcome string)
}

// defaultRedelivery are the default Options.Redelivery.
var defaultRedelivery = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// Intake consumes commands. Create it with New, run it with Run.
type Intake struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	exec Executor
	o    Options
	log  *slog.Logger
	cons jetstream.Consumer
	svc  micro.Service

	inFlight atomic.Int64
	micro    sync.WaitGroup // requests of the micro service being served
	ready    chan struct{}  // closed by Run; see Ready

	// pullExpiry is how long each pull request lasts (defaultPullExpiry;
	// tests shorten it).
	pullExpiry time.Duration
}

// defaultPullExpiry bounds how long the intake can sit idle with commands
// waiting. nats.go (v1.55.0) sometimes skips a pull it owes: when the
// last command of a pull is taken while the previous pull request is still
// being sent, checkPending does not ask for more, and nothing does until
// two heartbeats are missed. The heartbeat is half the expiry, so with
// nats.go's default expiry of 30 s such a stall lasted 30 s (measured in
// TestCommandsForOneSessionRunInOrder under load: 85 to 166 of 200
// commands run, then nothing, with no pull request waiting on the
// server). 5 s bounds it to 5 s; idle, it costs a pull request per 5 s.
const defaultPullExpiry = 5 * time.Second

// New ensures the streams and the durable consumer and, with Options.Micro,
// starts the micro service. It borrows nc: closing nc is the caller's job.
func New(ctx context.Context, nc *nats.Conn, exec Executor, o Options) (*Intake, error) {
	o.Prefix = cmp.Or(o.Prefix, "qod")
	o.CommandStream = cmp.Or(o.CommandStream, "QOD_COMMANDS")
	o.ResultStream = cmp.Or(o.ResultStream, DefaultResultStream)
	o.DLQStream = cmp.Or(o.DLQStream, "QOD_DLQ")
	o.Durable = cmp.Or(o.Durable, "qodbridge")
	o.Lanes = cmp.Or(o.Lanes, command.DefaultLanes)
	o.AckWait = cmp.Or(o.AckWait, DefaultAckWait)
	o.ResultMaxAge = cmp.Or(o.ResultMaxAge, DefaultResultMaxAge)
	o.Source = cmp.Or(o.Source, command.DefaultResultSource)
	o.PublishTimeout = cmp.Or(o.PublishTimeout, 5*time.Second)
	o.Version = cmp.Or(o.Version, "1.0.0")
	o.MaxDeliver = cmp.Or(o.MaxDeliver, DefaultMaxDeliver)
	o.DeadLetterBody = cmp.Or(o.DeadLetterBody, command.DefaultDeadLetterBody)
	if len(o.Redelivery) == 0 {
		o.Redelivery = defaultRedelivery
	}
	if o.MaxDeliver < 1 {
		return nil, fmt.Errorf("natscmd: MaxDeliver %d: want at least 1", o.MaxDeliver)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natscmd: jetstream: %w", err)
	}
	in := &Intake{nc: nc, js: js, exec: exec, o: o, log: o.Logger, pullExpiry: defaultPullExpiry, ready: make(chan struct{})}
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	streams := []jetstream.StreamConfig{
		{Name: o.CommandStream, Subjects: []string{o.Prefix + ".commands.>"}, Retention: jetstream.WorkQueuePolicy, Storage: storage, Replicas: max(o.Replicas, 1),
			Description: "qodbridge: QoD commands (work queue)"},
		{Name: o.ResultStream, Subjects: []string{o.Prefix + ".results.>"}, Retention: jetstream.LimitsPolicy, Storage: storage, Replicas: max(o.Replicas, 1),
			MaxAge: o.ResultMaxAge, Duplicates: 2 * time.Minute, Description: "qodbridge: results of QoD commands"},
		{Name: o.DLQStream, Subjects: []string{o.Prefix + ".dlq.commands"}, Retention: jetstream.LimitsPolicy, Storage: storage, Replicas: max(o.Replicas, 1),
			Description: "qodbridge: invalid QoD commands"},
	}
	for _, sc := range streams {
		if err := ensureStream(ctx, js, sc); err != nil {
			return nil, err
		}
	}
	in.cons, err = js.CreateOrUpdateConsumer(ctx, o.CommandStream, jetstream.ConsumerConfig{
		Durable:       o.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		MaxAckPending: o.Lanes * 4,
		FilterSubject: o.Prefix + ".commands.>",
		Description:   "qodbridge command consumer, shared by every instance",
	})
	if err != nil {
		return nil, fmt.Errorf("natscmd: consumer %s on %s: %w", o.Durable, o.CommandStream, err)
	}
	return in, nil
}

// ErrStreamMismatch is returned by New when a stream exists with other
// subjects, retention or storage than the intake needs.
var ErrStreamMismatch = errors.New("natscmd: stream exists with a different configuration")

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	st, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("natscmd: create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("natscmd: look up stream %s: %w", want.Name, err)
	}
	got := st.CachedInfo().Config
	var diffs []string
	if strings.Join(got.Subjects, ",") != strings.Join(want.Subjects, ",") {
		diffs = append(diffs, fmt.Sprintf("subjects %v, want %v", got.Subjects, want.Subjects))
	}
	if got.Retention != want.Retention {
		diffs = append(diffs, fmt.Sprintf("retention %s, want %s", got.Retention, want.Retention))
	}
	if got.Storage != want.Storage {
		diffs = append(diffs, fmt.Sprintf("storage %s, want %s", got.Storage, want.Storage))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s: %s (qodbridge never alters an existing stream: fix or delete it)", ErrStreamMismatch, want.Name, strings.Join(diffs, "; "))
	}
	return nil
}

// InFlight reports the commands being run.
func (in *Intake) InFlight() int { return int(in.inFlight.Load()) }

// job is one command handed to a lane.
type job struct {
	cmd     command.Command
	msg     jetstream.Msg
	invalid error
}

// Ready is closed once Run has registered the micro service
// (Options.Micro) and the server has confirmed its subscriptions, so that
// a request to <prefix>.api.<action> finds a responder; without the micro
// service, as soon as Run starts. It is also closed when Run returns
// early. A caller that announces the bridge as ready waits for it.
func (in *Intake) Ready() <-chan struct{} { return in.ready }

// readyFlushTimeout bounds how long Run waits for the server to confirm
// the micro service's subscriptions before it calls itself ready anyway.
const readyFlushTimeout = 5 * time.Second

// Run consumes commands until intake is done, then stops fetching, lets
// the commands in flight finish on work (a context the caller cancels only
// when the shutdown deadline passed), and returns. Commands cut short by
// work are nacked for redelivery.
func (in *Intake) Run(intake, work context.Context) error {
	err := in.startMicro(intake, work)
	close(in.ready)
	if err != nil {
		return err
	}
	if in.svc != nil {
		defer func() {
			_ = in.svc.Stop()
			in.micro.Wait()
		}()
	}
	it, err := in.cons.Messages(jetstream.PullMaxMessages(in.o.Lanes), jetstream.PullExpiry(in.pullExpiry))
	if err != nil {
		return fmt.Errorf("natscmd: consume %s: %w", in.o.CommandStream, err)
	}
	// At shutdown, Drain rather than Stop: the commands the iterator
	// already pulled come out of Next and are nacked below, so another
	// instance gets them at once instead of after AckWait.
	stop := context.AfterFunc(intake, it.Drain)
	defer stop()

	lanes := command.NewLanes(in.o.Lanes, func(j job) { in.handle(intake, work, j) })
	defer lanes.Close()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			// The server's answers to our pull stopped (a stalled or lost
			// pull, a network hiccup). Not the end: Next has forgotten
			// the pull and asks again on the next call.
			in.log.Warn("command consumer: no heartbeat from the server, pulling again", "err", err)
			continue
		}
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				in.log.Warn("command consumer stopped", "err", err)
			}
			return nil
		}
		if intake.Err() != nil {
			_ = msg.Nak()
			continue
		}
		action := command.Action(strings.TrimPrefix(msg.Subject(), in.o.Prefix+".commands."))
		cmd, perr := command.Parse(msg.Data(), action)
		key := ""
		if perr == nil {
			key = cmd.OrderingKey()
		}
		in.inFlight.Add(1)
		lanes.Dispatch(nil, key, job{cmd: cmd, msg: msg, invalid: perr})
	}
}

// handle takes one command to its single outcome: published and acked,
// nacked with a delay for another delivery, or (on the last delivery)
// terminated.
func (in *Intake) handle(intake, work context.Context, j job) {
	defer in.inFlight.Add(-1)
	defer func() {
		// Handle recovers panics in running the command; this is for one
		// in publishing its outcome.
		if v := recover(); v != nil {
			in.log.Error("natscmd: panic while publishing a command's outcome; command terminated", "subject", bridge.Quote(j.msg.Subject()),
				"request_id", j.cmd.RequestID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			in.terminate(j.msg, j.cmd.Action, command.ReasonInternal)
		}
	}()
	mctx := bridge.WithMessaging(work, bridge.Messaging{System: "nats", Destination: j.msg.Subject(), MessageID: j.msg.Headers().Get(jetstream.MsgIDHeader)})
	out, err := in.runHolding(mctx, intake, j)
	if err != nil {
		delivered := deliveries(j.msg)
		switch {
		case intake.Err() != nil:
			in.log.Warn("command unfinished, left for redelivery", "request_id", j.cmd.RequestID, "err", err)
			_ = j.msg.Nak() // shutting down: another instance may take it at once
			in.outcome(j.cmd.Action, command.OutcomeUnfinished)
			return
		case delivered < in.o.MaxDeliver:
			delay := in.redeliveryDelay(delivered)
			in.log.Warn("command unfinished, nacked for redelivery", "request_id", j.cmd.RequestID,
				"delivery", delivered, "max_deliver", in.o.MaxDeliver, "delay", delay.String(), "err", err)
			_ = j.msg.NakWithDelay(delay)
			in.outcome(j.cmd.Action, command.OutcomeUnfinished)
			return
		}
		// The last delivery: JetStream will not offer it again, so the
		// requester gets an error result rather than no answer at all.
		out = command.BareOutcome(command.Outcome{Result: command.Result{RequestID: j.cmd.RequestID, Action: j.cmd.Action}, SessionID: j.cmd.SessionID},
			fmt.Sprintf("unfinished after %d deliveries: %v", delivered, err))
	}
	if out.Panic != nil {
		in.log.Error("natscmd: panic while running a command; dead-lettered as internal error", "request_id", j.cmd.RequestID,
			"action", j.cmd.Action.Label(), "panic", fmt.Sprint(out.Panic.Value), "stack", string(out.Panic.Stack))
	}
	perr := in.publishHolding(work, intake, j.msg, out)
	if perr == nil {
		in.outcome(out.Result.Action, out.Label())
		in.ack(work, j.msg, out.Result.RequestID)
		return
	}
	delivered := deliveries(j.msg)
	if delivered < in.o.MaxDeliver {
		delay := in.redeliveryDelay(delivered)
		in.log.Warn("result not published, command nacked for redelivery", "request_id", out.Result.RequestID,
			"delivery", delivered, "max_deliver", in.o.MaxDeliver, "delay", delay.String(), "err", perr)
		_ = j.msg.NakWithDelay(delay)
		in.outcome(j.cmd.Action, command.OutcomeUnfinished)
		return
	}
	// The last delivery: what cannot be published whole is published bare.
	last := command.BareOutcome(out, fmt.Sprintf("outcome not published in %d deliveries: %v", delivered, perr))
	if err := in.publish(work, j.msg, last, true); err != nil {
		in.log.Error("natscmd: command terminated: neither its outcome nor a bare dead letter could be published",
			"request_id", out.Result.RequestID, "subject", bridge.Quote(j.msg.Subject()), "deliveries", delivered, "err", err, "first_err", perr)
		in.terminate(j.msg, j.cmd.Action, last.DeadLetter)
		return
	}
	in.log.Warn("natscmd: outcome not published on the last delivery; bare dead letter published instead",
		"request_id", out.Result.RequestID, "deliveries", delivered, "err", perr)
	in.outcome(out.Result.Action, command.OutcomeDeadLetter)
	in.ack(work, j.msg, out.Result.RequestID)
}

// redeliveryDelay is how long the nack of a command's delivered-th
// delivery waits (Options.Redelivery).
func (in *Intake) redeliveryDelay(delivered int) time.Duration {
	return in.o.Redelivery[min(delivered, len(in.o.Redelivery))-1]
}

// deliveries is how many times JetStream delivered msg, 1 if it cannot
// tell.
func deliveries(msg jetstream.Msg) int {
	md, err := msg.Metadata()
	if err != nil || md.NumDelivered < 1 {
		return 1
	}
	return int(md.NumDelivered)
}

// terminate removes a command that reached its end without any outcome
// published: it is logged (by the caller) and counted, never delivered
// again.
func (in *Intake) terminate(msg jetstream.Msg, action command.Action, reason string) {
	if err := msg.TermWithReason(bridge.Printable(reason, 256)); err != nil {
		in.log.Warn("natscmd: terminating a command failed; JetStream stops delivering it after MaxDeliver", "err", err)
	}
	in.outcome(action, command.OutcomeTerminated)
}

func (in *Intake) ack(ctx context.Context, msg jetstream.Msg, requestID string) {
	ctx, cancel := context.WithTimeout(ctx, in.o.PublishTimeout)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		in.log.Warn("command ack failed; it will be redelivered and answered again", "request_id", requestID, "err", err)
	}
}

// publish sends the result and, for an invalid command, the dead letter,
// each acknowledged by JetStream. A bare dead letter carries none of the
// original's body and headers.
func (in *Intake) publish(ctx context.Context, orig jetstream.Msg, out command.Outcome, bare bool) error {
	ctx, cancel := context.WithTimeout(ctx, in.o.PublishTimeout)
	defer cancel()
	if out.DeadLetter != "" {
		if _, err := in.js.PublishMsg(ctx, in.deadLetter(orig, out, bare)); err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
	}
	if _, err := in.js.PublishMsg(ctx, in.resultMsg(out)); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	return nil
}

// holdBudget bounds how long publishHolding keeps one delivery of a
// command while the broker cannot be reached: a stream leader election
// takes seconds, and a delivery spent on one would bring the command nearer
// to MaxDeliver (and its bare dead letter) for no fault of its own.
const holdBudget = 60 * time.Second

// runHolding runs j's command. When it is left unfinished while work goes
// on (the command store could not be read or written: the broker is away,
// as during a leader election), it runs it again after a growing, jittered
// wait, telling JetStream the command is in progress, for at most
// holdBudget (and never past AckWait/2) and not once the intake stops: an
// election must not spend the command's deliveries. Running again is safe:
// the engine remembers what it did by requestId.
func (in *Intake) runHolding(ctx, intake context.Context, j job) (command.Outcome, error) {
	deadline := time.Now().Add(min(holdBudget, in.o.AckWait/2))
	wait := 100 * time.Millisecond
	for {
		out, err := command.Handle(ctx, in.o.Trace, j.msg.Headers().Get, j.cmd, j.invalid, in.exec.Execute)
		if err == nil || intake.Err() != nil || time.Now().Add(wait).After(deadline) {
			return out, err
		}
		_ = j.msg.InProgress()
		t := time.NewTimer(jitter(wait))
		select {
		case <-t.C:
		case <-intake.Done():
			t.Stop()
			return out, err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// publishHolding publishes out; while the broker cannot be reached (no
// responders, a timeout, a lost connection, JetStream temporarily
// unavailable during an election) it tries again with a growing, jittered
// wait, telling JetStream the command is in progress so its AckWait does not
// expire, for at most holdBudget (and never past AckWait/2) or until the
// intake stops. A refusal (too large, a failed expectation, no permission) is
// returned at once: trying again cannot change it.
func (in *Intake) publishHolding(work, intake context.Context, msg jetstream.Msg, out command.Outcome) error {
	deadline := time.Now().Add(min(holdBudget, in.o.AckWait/2))
	wait := 100 * time.Millisecond
	for {
		err := in.publish(work, msg, out, false)
		if err == nil || refused(err) || intake.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		_ = msg.InProgress() // best effort: the broker may be the one away
		t := time.NewTimer(jitter(wait))
		select {
		case <-t.C:
		case <-intake.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// refused reports whether err is the broker's (or the client's) refusal of
// a message, as opposed to its absence.
func refused(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.Code >= 400 && api.Code < 500
	}
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadHeaderMsg) ||
		errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, nats.ErrInvalidMsg)
}

// jitter is a random wait in [d/2, d]: instances that lost the same broker
// at the same moment do not all come back to it at the same moment.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// deadLetter is orig on the dead-letter subject with the reason, bounded so
// that it fits the server's max_payload whatever orig carried.
func (in *Intake) deadLetter(orig jetstream.Msg, out command.Outcome, bare bool) *nats.Msg {
	dl := nats.NewMsg(in.o.Prefix + ".dlq.commands")
	var t command.Trimmer
	limit := min(in.o.DeadLetterBody, int(in.nc.MaxPayload()/2))
	if bare {
		limit = 0
	} else {
		h := orig.Headers()
		for _, k := range slices.Sorted(maps.Keys(h)) {
			for _, v := range h[k] {
				if t.Header(k, v) {
					dl.Header.Add(k, v)
				}
			}
		}
	}
	dl.Data = t.Body(orig.Data(), limit)
	dl.Header.Set(command.HeaderDeadLetterReason, out.DeadLetter)
	dl.Header.Set(command.HeaderRequestID, out.Result.RequestID)
	dl.Header.Set(command.HeaderOriginalSubject, bridge.Printable(orig.Subject(), command.MaxOriginalSubject))
	if cut := t.Truncated(); cut != "" {
		dl.Header.Set(command.HeaderDeadLetterTruncated, cut)
	}
	dl.Header.Set(jetstream.MsgIDHeader, out.ID()+"-dlq")
	return dl
}

func (in *Intake) resultMsg(out command.Outcome) *nats.Msg {
	m := nats.NewMsg(in.o.Prefix + ".results." + bridge.SessionToken(out.Result.RequestID))
	b := bridge.NATSBinding
	for _, a := range out.ResultAttributes(in.o.Source) {
		m.Header.Set(b.Header(a.Name), b.Value(a.Value))
	}
	m.Header.Set(b.ContentTypeHeader(), "application/json")
	m.Header.Set(jetstream.MsgIDHeader, out.ID())
	m.Data = out.Result.JSON()
	return m
}

// startMicro adds the micro service "qod" when Options.Micro is set:
// endpoints <prefix>.api.<action> answer with the result JSON and publish
// nothing to <prefix>.results. It returns once the server has the
// endpoints' subscriptions (or after readyFlushTimeout, or when intake
// ends).
func (in *Intake) startMicro(intake, work context.Context) error {
	if !in.o.Micro {
		return nil
	}
	svc, err := micro.AddService(in.nc, micro.Config{
		Name:        "qod",
		Version:     in.o.Version,
		Description: "qodbridge: create, get, extend, delete and list CAMARA QoD sessions",
	})
	if err != nil {
		return fmt.Errorf("natscmd: micro service: %w", err)
	}
	in.svc = svc
	// micro calls a handler on the subscription's goroutine; the commands
	// run on their own goroutines, bounded like the stream's.
	sem := make(chan struct{}, in.o.Lanes)
	g := svc.AddGroup(in.o.Prefix + ".api")
	if in.o.Status != nil {
		err := g.AddEndpoint("status", micro.HandlerFunc(func(req micro.Request) {
			sem <- struct{}{}
			in.micro.Go(func() {
				defer func() { <-sem }()
				in.serveStatus(work, req)
			})
		}))
		if err != nil {
			_ = svc.Stop()
			return fmt.Errorf("natscmd: micro endpoint status: %w", err)
		}
	}
	for _, action := range command.Actions {
		err := g.AddEndpoint(string(action), micro.HandlerFunc(func(req micro.Request) {
			sem <- struct{}{}
			in.micro.Go(func() {
				defer func() { <-sem }()
				in.serveRequest(work, req, action)
			})
		}))
		if err != nil {
			_ = svc.Stop()
			return fmt.Errorf("natscmd: micro endpoint %s: %w", action, err)
		}
	}
	// Once the server has the endpoints' subscriptions, a request to any
	// of them finds a responder. Should the flush fail, the connection is
	// down and resends them when it is back.
	fctx, cancel := context.WithTimeout(intake, readyFlushTimeout)
	defer cancel()
	if err := in.nc.FlushWithContext(fctx); err != nil && intake.Err() == nil {
		in.log.Warn("natscmd: micro service registered, but the server did not confirm it", "err", err)
	}
	return nil
}

func (in *Intake) outcome(a command.Action, label string) {
	if in.o.OnOutcome != nil {
		in.o.OnOutcome(a, label)
	}
}

func (in *Intake) serveRequest(work context.Context, req micro.Request, action command.Action) {
	defer func() {
		if v := recover(); v != nil {
			in.log.Error("natscmd: panic while answering a micro request", "subject", bridge.Quote(req.Subject()),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			_ = req.Error("500", command.ReasonInternal, nil)
			in.outcome(action, command.OutcomeInternal)
		}
	}()
	cmd, perr := command.Parse(req.Data(), action)
	mctx := bridge.WithMessaging(work, bridge.Messaging{System: "nats", Destination: req.Subject(), MessageID: req.Headers().Get(jetstream.MsgIDHeader)})
	out, err := command.Handle(mctx, in.o.Trace, req.Headers().Get, cmd, perr, in.exec.Execute)
	if err != nil {
		_ = req.Error("503", "the bridge is shutting down; send the request again", nil)
		in.outcome(cmd.Action, command.OutcomeUnfinished)
		return
	}
	if out.Panic != nil {
		in.log.Error("natscmd: panic while running a micro request", "request_id", cmd.RequestID,
			"action", cmd.Action.Label(), "panic", fmt.Sprint(out.Panic.Value), "stack", string(out.Panic.Stack))
	}
	in.outcome(out.Result.Action, out.Label())
	h := micro.Headers{}
	b := bridge.NATSBinding
	for _, a := range out.ResultAttributes(in.o.Source) {
		h[b.Header(a.Name)] = []string{b.Value(a.Value)}
	}
	h[b.ContentTypeHeader()] = []string{"application/json"}
	if err := req.Respond(out.Result.JSON(), micro.WithHeaders(h)); err != nil {
		in.log.Warn("micro response failed", "request_id", out.Result.RequestID, "err", err)
	}
}
