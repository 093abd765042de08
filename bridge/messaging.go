package bridge

import "context"

// Messaging describes a broker message, or the messages of one publish,
// as OpenTelemetry's messaging semantic conventions name them: what a trace
// span of sending or processing it carries. The broker packages fill it in
// (they know subjects, topics and ids); the process's tracing turns it
// into span attributes.
type Messaging struct {
	// System is the broker: "nats" or "kafka" (messaging.system).
	System string
	// Destination is the subject or topic (messaging.destination.name); a
	// publish of events of several sessions on NATS names the stream's
	// subject wildcard.
	Destination string
	// Template is the destination's low-cardinality form when Destination
	// holds an id (messaging.destination.template), e.g.
	// "qod.status.{sessionToken}"; empty when Destination is one.
	Template string
	// MessageID is the broker message's id when there is one message
	// (messaging.message.id): its Nats-Msg-Id on NATS, its CloudEvents id
	// (ce_id) on Kafka; empty when unknown.
	MessageID string
	// Count is how many messages a publish sends (messaging.batch.message_count
	// when above one); 0 or 1 for one.
	Count int
	// Kafka only: the record key (messaging.kafka.message.key); for a
	// consumed record (Consumed) its partition and offset, and the
	// consumer group.
	Key           string
	Consumed      bool
	Partition     int
	Offset        int64
	ConsumerGroup string
}

type messagingKey struct{}

// WithMessaging returns ctx carrying m, for the tracing hook that runs
// under it (a command intake sets it before command.Handle).
func WithMessaging(ctx context.Context, m Messaging) context.Context {
	return context.WithValue(ctx, messagingKey{}, m)
}

// MessagingFrom returns the Messaging ctx carries, and whether it carries
// one.
func MessagingFrom(ctx context.Context) (Messaging, bool) {
	m, ok := ctx.Value(messagingKey{}).(Messaging)
	return m, ok
}
