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
// Nats-Msg-Id; a duplicate is acknowledged like a new event. Publish makes
// one attempt and does not retry (not even on "no responders"), so the
// events of one Publish call reach the stream in call order, and events of
// one session published one call after another keep their order on that
// session's subject. There is no order across sessions.
//
// Publishes from many goroutines are pipelined on one connection
// (asynchronous JetStream publishes, each caller waiting for its own ack),
// bounded by Options.MaxPending outstanding acks; callers beyond it wait
// for a slot within their timeout.
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
// Imports: bridge (the event and its wire format) of ours; never config,
// cmd or another broker's package.
package natssink
