// Package qodclient is the Go client of qodbridge's command flow: create,
// get, extend, delete and list CAMARA Quality-on-Demand sessions by sending
// commands over NATS or Kafka, and watch their status events.
//
//	nc, err := nats.Connect("nats://127.0.0.1:4222")
//	…
//	c, err := qodclient.NewNATS(nc, qodclient.NATSOptions{})
//	…
//	defer c.Close()
//	s, err := c.Create(ctx, qodclient.CreateSession{
//		Device:            &qodclient.Device{PhoneNumber: "+36721601234567"},
//		ApplicationServer: qodclient.ApplicationServer{IPv4Address: "233.252.0.2"},
//		QoSProfile:        "QOS_L",
//		Duration:          3600,
//	})
//	for ev, err := range c.Watch(ctx, s.SessionID) { … }
//
// The types are CAMARA QoD 1.x's (CreateSession, Session, Device, …),
// whatever dialect the bridge speaks to the platform. The wire format is
// the bridge's command contract (go doc ./bridge/command): this package
// writes commands and reads results and status events as the bridge
// publishes them.
//
// # Two paths
//
// Request/reply (NATS only, the default of NewNATS): a call is a request to
// the micro service <prefix>.api.<action>, answered with the result. Nothing
// is stored: if the reply is lost, call again with the same requestId
// (WithRequestID).
//
// Asynchronous (NATSOptions.Async or WithAsync(true) on NATS; always on
// Kafka): a call publishes its command to <prefix>.commands.<action>
// (JetStream stream QOD_COMMANDS) or to the topic qod.commands, and awaits
// the result on <prefix>.results.<requestId> (stream QOD_RESULTS) or the
// topic qod.results. Send and Await are the two halves, for a caller that
// collects results later or elsewhere. On NATS the results stream keeps
// results (24h by default), so Await finds a result published while nobody
// waited, from any process, by an ordered consumer on the result's subject.
// On Kafka a client reads every partition of qod.results from where they
// ended when NewKafka returned, and keeps the latest results in a bounded
// buffer: Await sees only results published since its client started.
//
// # Delivery semantics and idempotency
//
// Commands are delivered at least once: a publish whose acknowledgement was
// lost may be repeated, and the bridge runs a command at least once. Every
// command carries a requestId (WithRequestID, or a random one), and the
// bridge applies create, extend and delete once per requestId: a repeated
// command gets the first one's result. So to retry a call that failed with
// a timeout, call again with the same requestId: the session is not created
// twice. On NATS the client also sets Nats-Msg-Id to a digest of the
// command, so the same command published again within the stream's
// duplicate window is stored once.
// Give each distinct command its own requestId: a reused one is answered
// with a conflict (ErrConflict) where the bridge or the client can tell:
// the bridge answers any different command under a used requestId with a
// conflict, but an asynchronous call may find the earlier command's result
// first; the client refuses it when its action or session differ, and
// otherwise returns it. Await returns the latest result stored under an id.
//
// # Errors
//
// A command the QoD API (or the bridge) answered with an error is an *Error
// carrying the CAMARA ErrorInfo (Status, Code, Message), which errors.Is
// matches against ErrNotFound, ErrConflict, ErrInvalid, ErrUnavailable and
// the other sentinels. ErrInvalid means the command was refused as invalid
// (400, 422) and dead-lettered: sending it again unchanged will not help.
// Every other error (broker unreachable, no responders, ctx ended) is
// wrapped with the step that failed, so errors.Is finds its cause, e.g.
// context.DeadlineExceeded or nats.ErrNoResponders.
//
// # Deadlines
//
// Every call takes ctx first and ends when ctx does; a ctx without a
// deadline gets the client's Timeout (DefaultTimeout, above the bridge's own
// retry budget for one command). A call that timed out may still run on the
// bridge: repeat it with the same requestId, or Await its result. A call
// that may need that carries a requestId of the caller's (WithRequestID):
// a generated one is named only in the error's text.
//
// # Watching status
//
// Watch(ctx, sessionID) and WatchAll(ctx) yield the session status events
// of the status flow, decoded (StatusEvent), as an iter.Seq2: first the
// current status (Live false), then every change (Live true) until ctx ends
// or the loop breaks. On NATS they read the bridge's session view (the
// key-value bucket QOD_SESSIONS): the current status is the view's entry,
// which a platform's late retry never sets back, and the changes are the
// view's (an event that does not advance it is not yielded); with
// NATSOptions.History, or where the view is off, they read the history
// stream QOD_STATUS instead, the last event published for each session
// first (DeliverLastPerSubject), then every event. On Kafka the topic
// qod.status read from its start (the key's partition for Watch, every
// partition for WatchAll) up to where it ended when the watch began, keeping
// each session's last record — on a long, uncompacted topic that first
// read takes a while. A session that has no event yet starts with its
// first change.
//
// # Ordering and concurrency
//
// Events of one session are yielded in the order the bridge published them;
// WatchAll interleaves sessions in no particular order. The bridge runs the
// commands of one session in the order they were stored: on NATS in stream
// order, on Kafka in partition order (the client keys commands by
// sessionId, or by requestId for create and list, so one session's
// commands share a partition). Calls made concurrently are independent, with
// no order between them.
//
// A Client is safe for concurrent use. A watch runs in the goroutine that
// ranges over it; each range is a watch of its own, holding a consumer
// (NATS) or readers (Kafka) that it releases when the loop ends. Close ends
// the calls and watches in flight, waits for the client's goroutines and
// is idempotent; it does not close a NATS connection given to NewNATS.
//
// Imports: bridge, bridge/command, sinks/kafkasink (its connection
// options), sinks/natsview (the view's bucket) and sinks/internal/kafkaproduce
// (the producer) of ours; never config or cmd.
package qodclient
