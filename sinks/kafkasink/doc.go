// Package kafkasink publishes canonical QoD status events to a Kafka topic
// with segmentio/kafka-go.
//
// # Addressing
//
// Every event goes to one topic, qod.status by default, with the record key
// sessionId (its bytes as they are). The partition is
// (murmur2(key) & 0x7fffffff) % partitions, kafka-go's Murmur2Balancer: the
// partition Java's default partitioner and franz-go's default
// (StickyKeyPartitioner) choose for the same key, so producers in any of
// them put a session's events in one partition, and a consumer sees a
// session's events in order.
//
// # Wire format
//
// Binary mode (default), the Kafka protocol binding of CloudEvents: a header
// ce_<attr> for each attribute of bridge.Event.Attributes, its value the
// attribute's UTF-8 text as is (the Kafka binding, unlike the HTTP and NATS
// bindings, does not percent-encode), the header content-type:
// application/json, and the value bridge.Event.Data. Structured mode
// (Options.Structured): the header content-type:
// application/cloudevents+json and the value bridge.Event.StructuredJSON.
// In both modes an event with a trace context also carries it as the plain
// W3C headers traceparent and tracestate (HeaderTraceParent,
// HeaderTraceState), beside ce_traceparent: Kafka instrumentation
// (OpenTelemetry's propagator over the record headers, franz-go's kotel,
// sarama's otel plugins) reads those. The record timestamp is the time of
// the Publish call (CreateTime).
//
// # Delivery semantics
//
// Publish returns nil only after the partition leaders acknowledged every
// record with acks=all (every in-sync replica has it; pair with the topic's
// min.insync.replicas). The events of one call are all-or-nothing from the
// caller's view: if any record failed, Publish returns an error, although
// records of other partitions may have been stored; the sender's retry then
// stores those again. Kafka keeps no deduplication for this producer (no
// idempotent producer in kafka-go), so delivery is at-least-once and
// consumers deduplicate by ce_source+ce_id (bridge.Event.DedupKey) when they
// need to.
//
// One producer (sinks/internal/kafkaproduce, over kafka-go's Client and
// Transport) is shared by all callers, and commits groups per partition: at
// most one produce request per partition is in flight, and the records of
// the calls that arrive meanwhile go together in the next one (up to
// Options.BatchSize records). A lone event is sent at once, not held for a
// batch to fill or a timer (Options.BatchTimeout adds such a wait; default
// none); under load the requests grow with the broker's round trip. Each
// call waits for the acks of its own records. Records of one session
// published one call after another keep their order in the partition; there
// is no order across sessions. Options.MaxAttempts (default 1) is how often
// a request is tried. Kafka stores or refuses a request whole: when the
// broker refuses one for some of its records (record errors, or
// MESSAGE_TOO_LARGE), only their calls fail and the other records are sent
// again.
//
// # Cancellation, timeouts and what may still be written
//
// Publish returns within Options.PublishTimeout (default 5s) or when ctx
// ends, whichever comes first, with an error wrapping ErrUnavailable or
// ctx.Err(). Records handed to the producer cannot be taken back: those of
// a call that gave up are still sent with their partition's next request
// (each bounded by PublishTimeout) and may be stored although the caller
// reported failure; the sender's retry then stores them a second time.
// Records refused before they are handed over (too large, no metadata,
// topic missing, no pending slot) are never written. Records handed over
// and not yet acknowledged, abandoned ones included, are bounded by
// Options.MaxPending; callers beyond it wait for a slot within their
// timeout. Close waits for the calls in flight and then for every record
// handed over, abandoned ones included.
//
// # Message size
//
// Publish checks every record of a call before it writes any: its size as
// kafka-go counts it (key, value, headers and framing) must not exceed
// Options.MaxMessageBytes, which also bounds the bytes of records in one
// produce request per partition. Open lowers it to
// the topic's max.message.bytes, less the record batch's framing, when it
// can read that and it is smaller, so that neither one record nor a batch
// of several exceeds what the brokers take. A record over the bound is
// refused with an error wrapping bridge.ErrTooLarge and nothing of the call
// is written; the ingress answers 413. CheckSize makes the same check
// without writing. A broker's MESSAGE_TOO_LARGE is reported as
// bridge.ErrTooLarge too, for the record alone (a refused request is split
// until it is); it can only come from a topic limit lowered after Open:
// restart the bridge to read the new one.
//
// # Failures and recovery
//
// While no broker is reachable Publish fails with ErrUnavailable (at once
// when kafka-go already knows, else at the timeout). The transport reconnects
// on its own, so publishing resumes when a broker is back; no restart is
// needed. Ready checks that a broker answers and the topic exists.
//
// # Topics
//
// Open checks that the topic exists and fails with ErrTopicMissing, naming
// the topic and the setting kafka.create_topics, when it does not. With
// Options.CreateTopics it creates the topic instead, with Options.Partitions
// (default 6) and Options.ReplicationFactor (default: the broker's
// default.replication.factor), and cleanup.policy=compact when
// Options.Compact is set. A compacted topic keeps, in the long run, only the
// last record of each key: the last status stored of every session (not
// its current one when a retry came late: that is the session view,
// sinks/kafkaview, topic qod.sessions), at the price of the history (intermediate
// statuses disappear once the log cleaner runs; consumers that lag behind
// the cleaner miss them). Compaction needs every record to have a key; the
// Sink always sets it. The Sink never alters an existing topic.
//
// # Connections
//
// ConnOptions (seed brokers, client id, TLS, SASL PLAIN and SCRAM, dial
// timeout) build the kafka-go Transport the Sink uses; ConnOptions.Dialer
// gives the matching kafka.Dialer for kafka.Reader.
//
// Imports: bridge (the event and its wire format) and sinks/internal of
// ours; never config, cmd or another broker's package.
package kafkasink
