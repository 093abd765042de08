// Package natsconsole feeds the live console (bridge/console) from NATS
// JetStream and sends its commands there.
//
//   - Statuses: with Options.ViewBucket (the bridge sets it unless the
//     session view is off), a watch of the session view's key-value bucket
//     (QOD_SESSIONS): first every session's current status under the
//     bridge's rule (bridge/view.go), then every change of it, so a late or
//     retried notification never turns a row back; each carries when the
//     bridge received it, which the page shows as "how long ago". Without
//     it, an ordered consumer on the status stream (QOD_STATUS,
//     <prefix>.status.>) with DeliverLastPerSubject: the last status stored
//     per session, which a late retry can turn back.
//   - Results: an ordered consumer on the result stream (QOD_RESULTS,
//     <prefix>.results.>) starting Options.Results messages before its end,
//     then live.
//   - History: an ordered consumer filtered on the one session's subject,
//     read to its end, keeping the last Options.HistoryLimit statuses.
//   - Submit: a JetStream publish of the command to
//     <prefix>.commands.<action> with Nats-Msg-Id = requestId. The command
//     then runs like any other broker command: the shared command consumer
//     of whichever bridge instance fetches it, and the result lands on
//     <prefix>.results.<requestToken>, where Follow sees it. A form sent
//     twice with the same requestId within the stream's duplicate window is
//     stored once.
//
// Delivery semantics: ordered consumers are ephemeral and unacknowledged;
// they deliver each stored message in stream order and recreate themselves
// after a reconnect or a gap, so what Follow delivers is at least what the
// streams hold, possibly with repeats after a reset, never reordered within
// a session. Nothing here acknowledges, deletes or alters a stream: the
// console reads like any other consumer and never slows down publishing.
//
// A Feed borrows its JetStream context (and so its connection): closing it
// is the caller's job. It holds no goroutine outside Follow.
//
// Imports: bridge, bridge/command and bridge/console of ours; never config
// or cmd.
package natsconsole

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/console"
)

// Options configure a Feed. Zero values take the defaults named.
type Options struct {
	// Prefix of every subject. Default "qod".
	Prefix string
	// StatusStream holds <prefix>.status.>. Default QOD_STATUS.
	StatusStream string
	// ViewBucket is the session view's key-value bucket (natsview): when
	// set, Follow reads statuses from it rather than from the last message
	// per subject of StatusStream. History still reads StatusStream.
	ViewBucket string
	// ResultStream holds <prefix>.results.>. Default QOD_RESULTS.
	ResultStream string
	// Results is how many of the latest results Follow delivers before the
	// live ones. Default 200.
	Results int
	// HistoryLimit is the most statuses History returns (the last ones).
	// Default 100.
	HistoryLimit int
	// Logger gets consumer errors that the ordered consumers recover from.
	// Nil discards.
	Logger *slog.Logger
}

// Feed implements console.Feed and console.Submitter on JetStream.
type Feed struct {
	js  jetstream.JetStream
	o   Options
	log *slog.Logger
}

var (
	_ console.Feed      = (*Feed)(nil)
	_ console.Submitter = (*Feed)(nil)
)

// New makes a Feed on js, which it borrows. It contacts nothing yet.
func New(js jetstream.JetStream, o Options) *Feed {
	o.Prefix = cmp.Or(o.Prefix, "qod")
	o.StatusStream = cmp.Or(o.StatusStream, "QOD_STATUS")
	o.ResultStream = cmp.Or(o.ResultStream, "QOD_RESULTS")
	o.Results = cmp.Or(o.Results, 200)
	o.HistoryLimit = cmp.Or(o.HistoryLimit, 100)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{js: js, o: o, log: o.Logger}
}

// Follow implements console.Feed. It returns an error when a consumer
// cannot be set up (stream missing, NATS down); once both run, only ctx
// ends it. A missing result stream (the command flow is off everywhere) is
// not an error: statuses are followed alone, and the failure is logged.
func (f *Feed) Follow(ctx context.Context, onStatus func(console.Status), onResult func(console.Result)) error {
	if f.o.ViewBucket != "" {
		return f.followView(ctx, onStatus, onResult)
	}
	statuses, err := f.js.OrderedConsumer(ctx, f.o.StatusStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.o.Prefix + ".status.>"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return fmt.Errorf("natsconsole: status consumer on %s: %w", f.o.StatusStream, err)
	}
	onErr := func(stream string) jetstream.PullConsumeOpt {
		return jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			f.log.Debug("natsconsole: consumer error (the ordered consumer recovers)", "stream", stream, "err", err)
		})
	}
	sc, err := statuses.Consume(func(m jetstream.Msg) {
		if s, ok := f.status(m); ok {
			onStatus(s)
		}
	}, onErr(f.o.StatusStream))
	if err != nil {
		return fmt.Errorf("natsconsole: consume %s: %w", f.o.StatusStream, err)
	}
	defer sc.Stop()

	rc, err := f.followResults(ctx, onResult, onErr(f.o.ResultStream))
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		f.log.Warn("natsconsole: no result stream; the console shows statuses only", "stream", f.o.ResultStream)
	case err != nil:
		return err
	default:
		defer rc.Stop()
	}
	<-ctx.Done()
	return nil
}

// followView is Follow on the session view: a watch of the bucket, and
// the results as Follow reads them.
func (f *Feed) followView(ctx context.Context, onStatus func(console.Status), onResult func(console.Result)) error {
	kv, err := f.js.KeyValue(ctx, f.o.ViewBucket)
	if err != nil {
		return fmt.Errorf("natsconsole: session view %s: %w", f.o.ViewBucket, err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("natsconsole: watch %s: %w", f.o.ViewBucket, err)
	}
	defer func() { _ = w.Stop() }()
	rc, err := f.followResults(ctx, onResult, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		f.log.Debug("natsconsole: consumer error (the ordered consumer recovers)", "stream", f.o.ResultStream, "err", err)
	}))
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		f.log.Warn("natsconsole: no result stream; the console shows statuses only", "stream", f.o.ResultStream)
	case err != nil:
		return err
	default:
		defer rc.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("natsconsole: watch of %s ended", f.o.ViewBucket)
			}
			if e == nil { // the current entries were all delivered
				continue
			}
			var v bridge.ViewEntry
			if err := json.Unmarshal(e.Value(), &v); err != nil || v.SessionID == "" {
				f.log.Debug("natsconsole: undecodable view entry", "key", e.Key(), "err", err)
				continue
			}
			s := console.Status{SessionID: v.SessionID, QoSStatus: v.QoSStatus, StatusInfo: v.StatusInfo, Received: v.ReceivedAt}
			if t, err := time.Parse(time.RFC3339Nano, v.Time); err == nil {
				s.Time = t
			} else {
				s.Time = v.ReceivedAt
			}
			onStatus(s)
		}
	}
}

func (f *Feed) followResults(ctx context.Context, onResult func(console.Result), onErr jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	st, err := f.js.Stream(ctx, f.o.ResultStream)
	if err != nil {
		return nil, fmt.Errorf("natsconsole: result stream %s: %w", f.o.ResultStream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsconsole: result stream %s: %w", f.o.ResultStream, err)
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.o.Prefix + ".results.>"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if last := info.State.LastSeq; last >= uint64(f.o.Results) {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = last - uint64(f.o.Results) + 1
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("natsconsole: result consumer on %s: %w", f.o.ResultStream, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if r, ok := f.result(m); ok {
			onResult(r)
		}
	}, onErr)
	if err != nil {
		return nil, fmt.Errorf("natsconsole: consume %s: %w", f.o.ResultStream, err)
	}
	return cc, nil
}

// History implements console.Feed: it reads the session's subject from
// its first stored status to its last and keeps the last HistoryLimit.
// QoD sessions have a handful of statuses each, so this reads little; the
// stream's max_age bounds it for any session.
func (f *Feed) History(ctx context.Context, sessionID string) ([]console.Status, error) {
	subject := f.o.Prefix + ".status." + bridge.SessionToken(sessionID)
	st, err := f.js.Stream(ctx, f.o.StatusStream)
	if err != nil {
		return nil, fmt.Errorf("natsconsole: status stream %s: %w", f.o.StatusStream, err)
	}
	last, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("natsconsole: last status of %s: %w", subject, err)
	}
	// The ephemeral consumer is gone from the server soon after the read.
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, InactiveThreshold: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("natsconsole: history consumer on %s: %w", subject, err)
	}
	out := make([]console.Status, 0, 8)
	empty := false
	for {
		// The messages up to last are stored: a no-wait fetch returns them
		// at once rather than waiting for a full batch.
		var batch jetstream.MessageBatch
		var err error
		if empty {
			// Nothing came back last time (the consumer was not ready):
			// wait a little instead of spinning.
			batch, err = cons.Fetch(256, jetstream.FetchMaxWait(200*time.Millisecond))
		} else {
			batch, err = cons.FetchNoWait(256)
		}
		if err != nil {
			return nil, fmt.Errorf("natsconsole: history of %s: %w", subject, err)
		}
		done := false
		empty = true
		for m := range batch.Messages() {
			empty = false
			if s, ok := f.status(m); ok {
				if len(out) == f.o.HistoryLimit {
					copy(out, out[1:])
					out = out[:len(out)-1]
				}
				out = append(out, s)
			}
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last.Sequence {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("natsconsole: history of %s: %w", subject, err)
		}
		if done {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("natsconsole: history of %s: %w", subject, err)
		}
	}
}

// Submit implements console.Submitter.
func (f *Feed) Submit(ctx context.Context, action command.Action, body []byte) (string, error) {
	cmd, err := command.Parse(body, action)
	if err != nil {
		return "", fmt.Errorf("natsconsole: submit %s: %w", action, err)
	}
	m := nats.NewMsg(f.o.Prefix + ".commands." + string(action))
	m.Header.Set("Content-Type", "application/json")
	m.Header.Set(jetstream.MsgIDHeader, cmd.RequestID)
	// The parsed command, re-encoded, always names its requestId (Parse
	// generates one when the body had none), so the result is published
	// under the id returned.
	if m.Data, err = json.Marshal(cmd); err != nil {
		return "", fmt.Errorf("natsconsole: submit %s: encode: %w", action, err)
	}
	if _, err := f.js.PublishMsg(ctx, m); err != nil {
		return "", fmt.Errorf("natsconsole: publish %s: %w: %w", m.Subject, console.ErrUnavailable, err)
	}
	return cmd.RequestID, nil
}

// status decodes a status message in binary mode (the body is the data)
// or structured mode (application/cloudevents+json).
func (f *Feed) status(m jetstream.Msg) (console.Status, bool) {
	var d bridge.StatusData
	h := m.Headers()
	evTime := headerValue(h.Get("ce-time"))
	if strings.HasPrefix(h.Get("Content-Type"), "application/cloudevents+json") {
		var ev struct {
			Time string            `json:"time"`
			Data bridge.StatusData `json:"data"`
		}
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			f.log.Debug("natsconsole: undecodable status message", "subject", m.Subject(), "err", err)
			return console.Status{}, false
		}
		d, evTime = ev.Data, ev.Time
	} else if err := json.Unmarshal(m.Data(), &d); err != nil {
		f.log.Debug("natsconsole: undecodable status message", "subject", m.Subject(), "err", err)
		return console.Status{}, false
	}
	if d.SessionID == "" {
		return console.Status{}, false
	}
	return console.Status{SessionID: d.SessionID, QoSStatus: d.QoSStatus, StatusInfo: d.StatusInfo, Time: msgTime(m, evTime)}, true
}

func (f *Feed) result(m jetstream.Msg) (console.Result, bool) {
	var r console.Result
	if err := json.Unmarshal(m.Data(), &r.Result); err != nil || r.RequestID == "" {
		f.log.Debug("natsconsole: undecodable result message", "subject", m.Subject(), "err", err)
		return console.Result{}, false
	}
	r.SessionID = headerValue(m.Headers().Get("ce-subject"))
	r.Time = msgTime(m, "")
	return r, true
}

// msgTime is the event's own time when it has a valid one, else when the
// stream stored the message.
func msgTime(m jetstream.Msg, evTime string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, evTime); err == nil {
		return t
	}
	if md, err := m.Metadata(); err == nil {
		return md.Timestamp
	}
	return time.Time{}
}

// headerValue reverses bridge.HeaderValue's percent-encoding.
func headerValue(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
