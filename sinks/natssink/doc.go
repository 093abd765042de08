// Package natssink publishes canonical QoD status events to NATS JetStream.
//
// # Addressing
//
// An event of session id goes to the subject
//
//	<prefix>.status.<bridge.SessionToken(id)>     (prefix default "qod")
//
// captured by the stream QOD_STATUS on <prefix>.status.> (file storage,
// limits retention). The Sink creates the stream when it is missing and
// refuses to start when a stream of that name exists with another subject
// set, storage, retention, or with no-ack or sealed set: it never alters a
// stream an operator made (ErrStreamMismatch names the difference).
//
// # Wire format
//
// Binary mode (default): a header ce-<attr> for each CloudEvents attribute of
// bridge.Event.Attributes, its value percent-encoded by bridge.HeaderValue,
// Content-Type: application/json, and the body bridge.Event.Data. Structured
// mode (Options.Structured): the body bridge.Event.StructuredJSON with
// Content-Type: application/cloudevents+json. In both modes Nats-Msg-Id is
// bridge.Event.DedupKey. The W3C trace context travels as the CloudEvents
// attributes traceparent/tracestate (ce-traceparent in binary mode), not as
// plain headers: nats-server parses the headers of every message carrying a
// plain traceparent into a map (for its message tracing), dozens of
// allocations per message.
//
// # Delivery semantics
//
// Publish returns nil only after JetStream acknowledged every event (the
// PubAck: the event is stored as durably as the stream promises). Delivery
// to the stream is at-least-once: a publish whose ack was lost is retried by
// the notification's sender, and JetStream stores the retry once when it
// arrives within the stream's duplicate window (default 2m, DefaultDuplicateWindow), recognised by
// Nats-Msg-Id; a duplicate is acknowledged like a new event. Publish does
// not retry an event the stream refused or did not answer for (not even on
// "no responders"), so the events of one Publish call reach the stream in
// call order, and events of
// one session published one call after another keep their order on that
// session's subject. There is no order across sessions.
//
// # Group commit and pipelining
//
// A Publish of one event (what a notification request carries) is an
// asynchronous JetStream publish, pipelined with the other callers' on the
// Sink's one connection, each caller waiting for its own PubAck.
//
// A Publish of several events uses group commit when the stream takes
// fast-ingest batches (allow_batched, nats-server 2.14 or later; the stream
// the Sink creates does): the Sink keeps one batch in flight. A call that
// finds none sends its events at once as a batch; calls that arrive while a
// batch is in flight queue, and when its PubAck arrives the calls it covers
// are answered and everything queued meanwhile goes out as the next batch
// (at most 500 messages). JetStream then answers one PubAck per batch
// instead of one per message. Measured with `qodbridge bench -shape batch
// -batch 10` on 2 shared cores, 4 runs each way: CPU time per event of the
// bridge serving CloudEvents batch requests 66–72 µs against 79–88 µs
// pipelined, and of the bulk publish alone (B_pipelined) 41–50 µs against
// 57–61 µs; the Sink alone, calls of 10 events from 32 goroutines
// (BenchmarkPublishMode, 3 runs): 18–20 µs against 31–35 µs, and twice the
// events per second. Lone events are not batched: with one batch in
// flight, each would wait for the batch ahead of it, and with 32 concurrent
// single-event requests that cost the bridge more than the shared acks
// saved (`qodbridge bench -d 10s -latency-at 0.5`, three runs each way,
// interleaved, on 2 shared cores: bridge/P 0.55–0.58 batched against
// 0.61–0.64 pipelined, bridge/S 0.77–0.78 against 0.80–0.84, CPU time per
// event 154–171 µs against 149–164 µs).
// Each message of a batch is stored as a single publish would be, and a
// call returns nil only when the PubAck covers every one of its events:
//
//   - Nats-Msg-Id deduplication applies to each message of a batch, within
//     the batch and against the stream's window: a duplicate is skipped,
//     the rest of the batch goes on, and the duplicate is acknowledged like
//     a stored event. JetStream does not say which messages of a batch were
//     duplicates, so Options.OnDuplicate is not called for them.
//   - The batch runs in gap "fail" mode: the server stops it at the first
//     message it refuses or misses and acknowledges those before it. The
//     refused event gets its own error (its call fails, with the stream's
//     error); the events after it, which the server did not take, are sent
//     again at the head of the next batch (at most three times), so one
//     session's events keep their order and one bad event fails no other
//     call. Whatever of them was stored already is recognised by its
//     Nats-Msg-Id.
//   - Atomic batches (allow_atomic) are not used: a Nats-Msg-Id already in
//     the duplicate window, or twice in the batch, fails the whole atomic
//     batch (JSAtomicPublishContainsDuplicateMessageErr) instead of being
//     acknowledged, one refused message fails them all, and the server
//     stages the batch on disk before committing it.
//
// An existing stream without allow_batched is not altered: calls of several
// events are then pipelined too. Options.MaxPending bounds the events
// awaiting acks on each path; callers beyond it wait for a slot within
// their timeout.
//
// # Message size
//
// Publish checks every event of a call before it publishes any: its
// message, headers and data as the NATS client counts them, must fit the
// server's max_payload (1 MB by default, learnt from the server at connect)
// and the stream's max_msg_size when an operator set one. An event that
// does not is refused with an error wrapping bridge.ErrTooLarge and nothing
// of the call is published; the ingress answers 413. CheckSize makes the
// same check without publishing, for a caller that must ask several
// brokers first. Should the client or the stream refuse a message for its
// size all the same (a server or stream changed since), the error wraps
// bridge.ErrTooLarge too.
//
// # Failures and recovery
//
// Publish returns within Options.PublishTimeout (default 5s), or sooner when
// ctx ends, whatever the server does (a socket write that stalls can add up
// to the connection's write timeout, ConnOptions.WriteTimeout, after which
// the connection is dropped and redialled). While the connection is down,
// publishes fail at once with ErrUnavailable (connections made by Dial keep
// no reconnect buffer) and the connection keeps reconnecting. When a server
// comes back without its store, so that the stream is gone, the next
// Publish (or Ready) creates it again; no restart of the bridge is needed.
//
// # Current status of every session
//
// The stream keeps each session's history on its own subject. Its last
// message per subject is the last status stored, which is not the current
// one when a platform's retry arrives late (AVAILABLE at 10:01 stored
// after UNAVAILABLE at 10:05). The current status is the session view the
// bridge keeps beside the stream (sinks/natsview, the rule in
// bridge/view.go): the key-value bucket QOD_SESSIONS, one entry per
// session (key: bridge.SessionToken with '%' as '='; value: the JSON of
// bridge.ViewEntry). With the nats CLI:
//
//	nats kv watch QOD_SESSIONS          # every session, then each change
//	nats kv get QOD_SESSIONS <key>
//	nats req qod.api.status '{"sessionIds":["<id>"]}'
//
// In Go (nats.go/jetstream):
//
//	kv, err := js.KeyValue(ctx, "QOD_SESSIONS")
//	if err != nil { ... }
//	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
//	if err != nil { ... }
//	defer w.Stop()
//	for e := range w.Updates() {
//		if e == nil { continue } // the current entries were all delivered; changes follow
//		var v bridge.ViewEntry
//		if err := json.Unmarshal(e.Value(), &v); err != nil { ... }
//		fmt.Println(v.SessionID, v.QoSStatus, v.StatusInfo, time.Since(v.ReceivedAt))
//	}
//
// It first delivers one entry per session, then every change (see the
// CurrentStatus example). One session alone: kv.Get(ctx, natsview.Key(id)).
// With the view off (view.disabled), the last message per subject is what
// is left: a consumer with DeliverLastPerSubject.
//
// # Connections and the embedded server
//
// Open dials (Dial) and owns its connection; New borrows one. StartEmbedded
// runs an in-process nats-server with JetStream, for the zero-config default
// and for tests of other packages.
//
// Imports: bridge (the event and its wire format) and sinks/internal of
// ours; never config, cmd or another broker's package.
package natssink
