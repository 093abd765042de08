// Package kafkacmd takes QoD commands from a Kafka topic and publishes
// their results to Kafka, with the same command engine and result shapes as
// the NATS command flow (sinks/natscmd).
//
// # Topics and records
//
// Commands are read from qod.commands by the consumer group qodbridge; every
// bridge instance joins the group, so each partition, and each command, is
// handled by one instance at a time. A command record's value is the
// command JSON; its action comes from the JSON member "action" or from the
// header qod-action (both present and different, or neither present: the
// command is invalid). The record key does not matter to the bridge, but
// producers should key commands by sessionId (see Ordering).
//
// Results go to qod.results as CloudEvents in binary mode (the Kafka
// protocol binding): headers ce_specversion, ce_id, ce_source, ce_type,
// ce_datacontenttype and, when the session is known, ce_subject, their
// values plain UTF-8 as the binding demands (no percent-encoding), the
// header content-type: application/json, and the value command.Result JSON.
// ce_id is command.ResultID(requestId), so the result of a redelivered
// command carries the id of the first one and consumers can deduplicate by
// it. The record key is the sessionId when known (the created session for a
// create), else the requestId, partitioned by murmur2 like the status
// topic, so the results of one session stay in order in one partition.
//
// Invalid commands (unparsable, unknown or contradictory action, missing or
// ill-typed member, or refused by the QoD API with 400/422) get an error
// result and a dead letter on qod.commands.dlq: the original value (its
// first Options.DeadLetterBody bytes, 64 KiB by default), key (up to
// 1 KiB) and headers (bounded; Kafka framework headers such as
// __TypeId__ and kafka_* are left out) plus Qod-Dead-Letter-Reason,
// Qod-Request-Id (the requestId of the error result), Qod-Original-Subject
// (the command topic), Qod-Original-Partition, Qod-Original-Offset and,
// when something was cut, Qod-Dead-Letter-Truncated. The dead letter is
// written before the result. Dead letters are never retried and never
// block the commands behind them; a panic while a command runs is
// recovered and dead-lettered with the reason "internal error".
//
// # Hostile input
//
// Every command ends in exactly one outcome, whatever its key, headers or
// value: its result (and dead letter); or, when the broker refuses that for
// good (too large, not authorized, invalid: a Kafka error that is not
// retriable), a bare dead letter (the reason, none of the original) and an
// error result; or, when even that is refused, a logged and counted
// termination (outcome "terminated") after which the partition moves on.
// Only a broker that cannot be reached holds a command, and with it its
// partition's watermark, until the broker is back or the generation ends.
//
// # Delivery semantics
//
// At least once. A command's offset is committed only after its result (and
// dead letter) was acknowledged by every in-sync replica, and only as a
// contiguous watermark per partition: the committed offset is that of the
// first command of the partition whose result is not yet published, so a
// later command that finishes first never lets the commit pass an earlier
// one still running. Commits are coalesced: one OffsetCommit carries every
// partition whose watermark moved since the last one. A failed result
// publish is retried (with backoff) until it succeeds or the command is
// abandoned by shutdown or revocation, so one unreachable moment of the
// cluster does not stall a partition's watermark for good.
//
// What may run twice: a command whose result was published but whose
// offset was not committed, because an earlier command of its partition was
// still unfinished when the instance stopped (or lost its partitions),
// because the group coordinator stopped and refused the commit (the
// generation then ends and the group rebalances when it is back), or
// because the instance died. The engine makes that safe: create, extend and
// delete remember their outcome by requestId in a Store (and a create
// adopts its session on 409), so a redelivered one is answered with the
// first outcome and not applied again; get and list are harmless.
// Consumers of qod.results deduplicate by ce_id.
//
// # Rebalances and shutdown
//
// The group is run with kafka-go's kafka.ConsumerGroup rather than a
// kafka.Reader with a GroupID: a Reader delivers records across partitions
// and commits what it is given, but hides generations and revocation, so it
// cannot keep a per-partition watermark consistent across a rebalance. A
// Generation hands out the assignment, lets the bridge run its partition
// fetchers inside the generation (the group does not rejoin until they
// returned) and commits with the generation's id.
//
// When a generation ends (another instance joined or left, partitions were
// added, or the coordinator moved), fetching stops at once, and commands
// already handed to the lanes are given Options.RevokeTimeout to finish and
// publish; then the watermarks are committed and the group rejoins.
// Commands still running when RevokeTimeout passes are cancelled (the engine
// reports them unfinished, nothing is published for them) and left
// uncommitted, so the partition's next owner runs them; a command never
// runs on two instances at once. kafka-go uses the eager rebalance
// protocol: every rebalance revokes every partition, also the ones the
// instance gets back. RevokeTimeout must stay below the group's rebalance
// timeout, or the coordinator drops the instance from the group and its
// commits are refused.
//
// Run's two contexts follow the shutdown contract of the bridge: when
// intake is done the instance stops fetching, lets the commands in flight
// finish on work (which the caller cancels only when the shutdown deadline
// passed), publishes their results, commits the watermarks and leaves the
// group. While it drains, it commits every HeartbeatInterval (a commit also
// keeps the member's session alive, the heartbeats having stopped with the
// generation). Commands cut off by work are left uncommitted and
// redelivered to whichever instance takes the partition.
//
// # Ordering and concurrency
//
// Commands run on Options.Lanes workers (command.Lanes). Commands with the same sessionId
// go to the same worker and run one after another in the order they were
// fetched, which within a partition is offset order. Ordering therefore
// holds per partition: commands for one session run in order when they are
// in one partition, which is what keying commands by sessionId (murmur2, as
// every Kafka producer's default partitioner) gives. Commands for one
// session written with different keys may land in different partitions and
// then run in any order relative to each other. Create and list (no
// sessionId) and invalid commands are spread over the workers.
//
// In flight: at most Lanes commands run; each partition fetcher hands one
// command at a time to a worker and stops fetching while
// Options.MaxUncommitted of its commands are fetched and not yet below the
// watermark; one fetch response holds at most Options.FetchMaxBytes per
// partition.
//
// # Topics
//
// New checks that the three topics exist and fails with ErrTopicMissing,
// naming the topic and the setting kafka.create_topics, when one does not.
// With Options.CreateTopics it creates them instead (Options.Partitions,
// default 6, and Options.ReplicationFactor, default the broker's). It never
// alters an existing topic. The partitions of the command topic bound how
// many instances share the work.
//
// Imports: bridge, bridge/command, sinks/kafkasink (its connection
// options) and sinks/internal (topics, the producer) of ours; never config or cmd (sinks.Brokers maps the
// configuration onto its Options).
package kafkacmd
