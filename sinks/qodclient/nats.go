package qodclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

// NATSOptions configure NewNATS. Zero values take the bridge's defaults.
type NATSOptions struct {
	// Prefix of every subject. Default "qod".
	Prefix string
	// StatusStream and ResultStream name the streams of status events and
	// results. Defaults QOD_STATUS and QOD_RESULTS.
	StatusStream, ResultStream string
	// ViewBucket is the bridge's session view, a key-value bucket. Default
	// QOD_SESSIONS (natsview.DefaultBucket).
	ViewBucket string
	// History makes Watch and WatchAll read the status stream (every event
	// stored, the last one per session first) even where the session view
	// exists. Default false: they read the view, whose entry of a session
	// never goes back to an older status when a platform's retry overtakes
	// a newer one; without the bucket (the view switched off) they read the
	// stream.
	History bool
	// Domain is the JetStream domain; empty: the account's default.
	Domain string
	// Async makes every call take the asynchronous path: publish to
	// <prefix>.commands.<action>, await the result on the results stream.
	// Default false: request/reply on the micro service
	// <prefix>.api.<action>. WithAsync chooses per call.
	Async bool
	// Timeout bounds a call whose ctx has no deadline. Default
	// DefaultTimeout.
	Timeout time.Duration
}

// NewNATS returns a Client on nc, a connection the caller keeps owning:
// Close does not close it. On the bridge's embedded server an application
// needs the permissions natssink.ClientPermissions lists, nothing more.
func NewNATS(nc *nats.Conn, o NATSOptions) (*Client, error) {
	if nc == nil {
		return nil, errors.New("qodclient: NewNATS: nil connection")
	}
	if o.Prefix == "" {
		o.Prefix = "qod"
	}
	if o.StatusStream == "" {
		o.StatusStream = "QOD_STATUS"
	}
	if o.ResultStream == "" {
		o.ResultStream = "QOD_RESULTS"
	}
	if o.ViewBucket == "" {
		o.ViewBucket = natsview.DefaultBucket
	}
	var js jetstream.JetStream
	var err error
	if o.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, o.Domain)
	} else {
		js, err = jetstream.New(nc)
	}
	if err != nil {
		return nil, fmt.Errorf("qodclient: NewNATS: jetstream: %w", err)
	}
	return newClient(&natsTransport{nc: nc, js: js, o: o}, o.Async, o.Timeout), nil
}

type natsTransport struct {
	nc *nats.Conn
	js jetstream.JetStream
	o  NATSOptions
}

func (t *natsTransport) request(ctx context.Context, cmd *command.Command, body []byte) ([]byte, error) {
	subject := t.o.Prefix + ".api." + string(cmd.Action)
	msg, err := t.nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return nil, fmt.Errorf("qodclient: %s %s: request on %s: %w", cmd.Action, cmd.RequestID, subject, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		// The service's own refusal (shutting down, internal error).
		status, _ := strconv.Atoi(code)
		e := &Error{RequestID: cmd.RequestID, Action: string(cmd.Action), Status: status,
			Code: "UNAVAILABLE", Message: msg.Header.Get(micro.ErrorHeader)}
		if status == 500 {
			e.Code = "INTERNAL"
		}
		return nil, e
	}
	return msg.Data, nil
}

func (t *natsTransport) publish(ctx context.Context, cmd *command.Command, body []byte) error {
	m := nats.NewMsg(t.o.Prefix + ".commands." + string(cmd.Action))
	m.Data = body
	// The same command published again within the duplicate window (its
	// ack was lost, the call is repeated) is stored once; another command
	// under the same requestId is not taken for it (the bridge answers
	// that with a conflict).
	sum := sha256.Sum256(body)
	m.Header.Set(jetstream.MsgIDHeader, "qodclient-"+hex.EncodeToString(sum[:16]))
	if _, err := t.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("qodclient: %s %s: publish on %s: %w", cmd.Action, cmd.RequestID, m.Subject, err)
	}
	return nil
}

func (t *natsTransport) await(ctx context.Context, requestID string) (result, error) {
	subject := t.o.Prefix + ".results." + bridge.SessionToken(requestID)
	for m, err := range t.consume(ctx, t.o.ResultStream, subject, nil) {
		if err != nil {
			return result{}, fmt.Errorf("qodclient: await result %s on %s: %w", requestID, subject, err)
		}
		session, _ := percentDecode(m.Headers().Get(bridge.NATSBinding.Header("subject")))
		return result{value: m.Data(), session: session}, nil
	}
	return result{}, fmt.Errorf("qodclient: await result %s on %s: no message", requestID, subject)
}

// consume yields the messages of stream on subject, the last stored one
// first, from an ordered consumer deleted when the loop ends. started, when
// not nil, gets the number of stored messages the consumer begins with.
func (t *natsTransport) consume(ctx context.Context, stream, subject string, started func(pending uint64)) iter.Seq2[jetstream.Msg, error] {
	return func(yield func(jetstream.Msg, error) bool) {
		cons, err := t.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects:    []string{subject},
			DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
			InactiveThreshold: time.Minute,
		})
		if err != nil {
			yield(nil, fmt.Errorf("consumer on %s: %w", stream, err))
			return
		}
		it, err := cons.Messages()
		if err != nil {
			yield(nil, fmt.Errorf("consumer on %s: %w", stream, err))
			return
		}
		defer func() {
			it.Stop()
			// Delete the consumer now rather than leave it to the
			// server's inactivity timer: a busy client makes many.
			if info := cons.CachedInfo(); info != nil {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_ = t.js.DeleteConsumer(dctx, stream, info.Name)
				cancel()
			}
		}()
		if started != nil {
			var pending uint64
			if info := cons.CachedInfo(); info != nil {
				pending = info.NumPending
			}
			started(pending)
		}
		for {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				yield(nil, err)
				return
			}
			if !yield(m, nil) {
				return
			}
		}
	}
}

func (t *natsTransport) watch(ctx context.Context, sessionID string) iter.Seq2[StatusEvent, error] {
	return func(yield func(StatusEvent, error) bool) {
		if !t.o.History {
			// Bounded: without the permission to look at the bucket the
			// server does not answer at all.
			lctx, cancel := context.WithTimeout(ctx, viewLookupTimeout)
			kv, err := t.js.KeyValue(lctx, t.o.ViewBucket)
			cancel()
			switch {
			case err == nil:
				t.watchView(ctx, kv, sessionID, yield)
				return
			case !errors.Is(err, jetstream.ErrBucketNotFound):
				yield(StatusEvent{}, fmt.Errorf("qodclient: watch: session view %s (NATSOptions.History reads the status stream instead): %w", t.o.ViewBucket, err))
				return
			}
		}
		subject := t.o.Prefix + ".status.>"
		if sessionID != "" {
			subject = t.o.Prefix + ".status." + bridge.SessionToken(sessionID)
		}
		// The consumer begins with the last stored event of each subject
		// (snapshot of them); when the one with nothing pending behind it
		// was delivered, the rest is live.
		var snapshot uint64
		for m, err := range t.consume(ctx, t.o.StatusStream, subject, func(p uint64) { snapshot = p }) {
			if err != nil {
				if ctx.Err() == nil {
					err = fmt.Errorf("qodclient: watch %s: %w", subject, err)
				}
				yield(StatusEvent{}, err)
				return
			}
			ev, err := decodeStatus(m.Headers().Get, bridge.NATSBinding, true, m.Data())
			if err != nil {
				err = fmt.Errorf("qodclient: watch %s: message on %s: %w", subject, m.Subject(), err)
			}
			ev.Live = snapshot == 0
			if md, merr := m.Metadata(); merr == nil && snapshot > 0 {
				snapshot = md.NumPending
			}
			if !yield(ev, err) {
				return
			}
		}
	}
}

// viewLookupTimeout bounds Watch's look for the session view's bucket.
const viewLookupTimeout = 5 * time.Second

// watchView yields the session view's entries: each session's current one
// (Live false) until the watcher says the rest is live, then every change.
func (t *natsTransport) watchView(ctx context.Context, kv jetstream.KeyValue, sessionID string, yield func(StatusEvent, error) bool) {
	var w jetstream.KeyWatcher
	var err error
	if sessionID == "" {
		w, err = kv.WatchAll(ctx)
	} else {
		w, err = kv.Watch(ctx, natsview.Key(sessionID))
	}
	if err != nil {
		yield(StatusEvent{}, fmt.Errorf("qodclient: watch session view %s: %w", t.o.ViewBucket, err))
		return
	}
	defer func() { _ = w.Stop() }()
	live := false
	for {
		select {
		case <-ctx.Done():
			yield(StatusEvent{}, ctx.Err())
			return
		case e, ok := <-w.Updates():
			if !ok {
				yield(StatusEvent{}, fmt.Errorf("qodclient: watch session view %s: the watcher stopped", t.o.ViewBucket))
				return
			}
			if e == nil { // every current entry was delivered
				live = true
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				continue // an ended session's entry expired or was purged
			}
			var v bridge.ViewEntry
			var derr error
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				derr = fmt.Errorf("%w: session view entry %s: %w", ErrDecode, e.Key(), err)
			}
			ev := StatusEvent{ID: v.ID, Source: v.Source, SessionID: v.SessionID, QoSStatus: v.QoSStatus, StatusInfo: v.StatusInfo, Live: live}
			if v.Time != "" {
				if ev.Time, err = time.Parse(time.RFC3339Nano, v.Time); err != nil && derr == nil {
					derr = fmt.Errorf("%w: session view entry %s: time: %w", ErrDecode, e.Key(), err)
				}
			}
			if !yield(ev, derr) {
				return
			}
		}
	}
}

func (t *natsTransport) close() error { return nil }
