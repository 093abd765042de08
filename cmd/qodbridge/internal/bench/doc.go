// Package bench is qodbridge's load tool, `qodbridge bench [flags]`. It
// drives the notification ingress with qos-status-changed events,
// consumes what the bridge publishes at the same time, and reports
// throughput, latency, CPU time and resident memory, the correctness
// accounting (acknowledged events lost or received twice), and how the
// bridge compares with the two things it is made of: an HTTP server that
// does nothing, and a broker client that does nothing but publish.
//
// Without -url it starts the bridge in-process through package process
// (embedded NATS with JetStream, every listener on a random loopback
// port, data in a temporary directory removed afterwards, no admin
// listener, no command flow) and measures the ceilings too. With -url it
// loads a running bridge and consumes from its NATS server (-nats, by
// default nats://127.0.0.1:4222) or Kafka cluster (-kafka, -topic).
// Targets must be on loopback unless -allow-remote is given.
//
// The command line is a contract: its flags, the text report, the -json
// report's field names, and the exit status: 0, 1 on a failure or when an
// acknowledged event was lost or duplicated ([ErrAccounting]), 2 for bad
// flags ([ErrUsage]).
//
// # The run
//
// In order, every phase bounded in time:
//
//  1. With -ceilings (the default without -url): the no-op HTTP server,
//     and the broker side of the broker ceilings (a sink and a consumer),
//     start.
//  2. The consumer of the bridge's output starts, subscribed (or its
//     start offsets looked up) before anything is sent.
//  3. H, B, B_pipelined and the bridge run interleaved in -rounds slices,
//     for -n requests or -d in all (below).
//  4. With -latency-at: the half-peak runs, interleaved the same way.
//  5. The drain: bench waits until every acknowledged event arrived, for
//     at most -drain.
//  6. The report, as a table or with -json.
//
// The load is -n requests or -d (default 10 s), in a closed loop over -c
// connections (default 32), or in an open loop at -rate requests/s.
// -shape picks the input (structured, binary, json, nac, legacy, batch
// with -batch events per request), -sessions how many sessionIds the
// events are spread over.
//
// # Ceilings
//
// The ceilings are measured closed loop (a ceiling is a maximum, whatever
// -rate says), with the same connections, input shape and length as the
// bridge run:
//
//   - H: the same HTTP load against a handler that reads the body and
//     answers 204.
//   - B: synchronous acknowledged publishes of the same events from -c
//     concurrent publishers on one connection, through the bridge's own
//     sink (natssink, kafkasink), to a stream QODBENCH_<run> (Kafka: topic
//     qodbench.<run>) that is deleted afterwards. With the in-process
//     bridge that connection goes through memory to the embedded server,
//     as the bridge's own does.
//   - B_pipelined: one publisher keeping the events of -c requests in
//     flight, in calls of many events. On NATS the sink group-commits such
//     calls (one fast-ingest batch in flight, one PubAck per batch) when
//     the stream takes batches, as the stream bench creates does; the
//     bridge's single-event requests are pipelined publishes instead, so
//     P rests on a cheaper publish path than theirs (see go doc
//     ./sinks/natssink).
//
// While B and B_pipelined publish, the same kind of consumer as in the
// bridge run reads their events and accounts for them the same way
// (ceilings.broker_consumer). In the bridge run the broker delivers every
// event to bench's consumer, which parses and counts it on the same cores;
// a broker ceiling without that work would compare the bridge with less
// than its own run does.
//
// S = 1/(1/H + 1/B) is the throughput of a bridge that did the HTTP work
// and the broker work one after the other, each at its ceiling; P =
// 1/(1/H + 1/B_pipelined) the same with the broker work pipelined. The
// ceilings' stream is deleted before the half-peak runs, which do not use
// it: its duplicate-window ids and block caches would otherwise stay in
// the process's heap, and every garbage collection of the half-peak runs
// would scan them.
//
// # Interleaved rounds
//
// A ratio of two phases is only as good as the machine was alike while
// both ran, and a small virtual machine drifts: on the 2-core one this was
// built on, the same no-op HTTP phase measured 19,500 to 32,000
// requests/s in back-to-back runs, and with the phases run one after the
// other (so H and the bridge were up to a minute apart) bridge/S ranged
// from 0.86 to 1.22 over five runs. So the phases run interleaved: with
// -rounds 5 (the default) and -d 10s, H, B, B_pipelined and the bridge
// each run 2 s, in that order, five times over, and each phase's figures
// are the sum of its slices; the half-peak runs then alternate the same
// way. -rounds 1 runs each phase once, whole (what -cpuprofile needs, so
// that the profile holds the bridge alone).
//
// Each slice starts settled: a garbage collection and a flush of the page
// cache (sync) first. Without that, the phase after the ceilings (which
// store hundreds of thousands of events) was measured 20 % slower than
// the same phase alone, while the kernel wrote their stream files back on
// the same cores.
//
// # Open loop and schedule lag
//
// In an open loop (-rate, and the half-peak runs) a request's latency
// counts from its scheduled send time, so a backed-up server shows its
// queueing instead of slowing the load down (no coordinated omission).
// The load generator's own lateness is counted with it, and the report's
// "schedule lag" (pacing_lag) says how much that was. The schedule waits
// with a Go timer, whose wake-ups on an idle process have millisecond
// resolution (epoll_wait), so requests leave in small bursts. Sleeping
// with nanosleep on a locked thread was tried: accurate to 80 µs when the
// process is idle, but with the bridge in the process it waited for a
// scheduler slot behind the server's goroutines, and both its lag and the
// bridge's p99 were worse than with the timer.
//
// The load generator is bench's own HTTP/1.1 client (keep-alive
// connections, one request at a time on each, requests written from a
// reused buffer, answers read with http.ReadResponse), because it shares
// the process, the cores and the garbage collector with the bridge it
// measures: net/http's Client made 4.6 kB of garbage per request and
// passed each through two more goroutines, and that was measured as the
// bridge's own cost and latency tail.
//
// # Half-peak runs
//
// -latency-at 0.5 runs the bridge once more, in an open loop at that
// fraction of the peak request rate just measured, for the same -d or -n,
// with the same consumer and accounting. Its HTTP latency is what the
// bridge adds when it is not saturated. With the ceilings, the same open
// loop also drives, interleaved with the bridge's slices, the no-op HTTP
// server (at_rate.http) and B, synchronous publishes from -c publishers
// on a new stream (topic) of its own, QODBENCH_<run>-AT, with its own
// consumer (at_rate.broker): the like-with-like comparison, at the same
// rate, with the same schedule lag, and a stream whose duplicate window
// holds only events sent at that rate, as the bridge's does.
//
// # The session view's cost
//
// The in-process bridge runs with the session view on (the default): after
// each acknowledged publish it updates the KV bucket QOD_SESSIONS before it
// answers. -view-cost starts a second in-process bridge, alike but with
// view.disabled (its own embedded server, data directory, consumer and
// accounting), and runs its phase, "bridge, view off", interleaved with the
// bridge's in the same rounds. The report adds its row and view_cost: the
// bridge's events/s over the view-off bridge's (throughput_ratio), the
// same for cpu_us_per_event (cpu_ratio) and their difference
// (cpu_us_added_per_event: what the view costs per event), and the HTTP
// latency added at p50 and p99. Only these ratios within one run mean
// anything on a shared machine.
//
//	go run ./cmd/qodbridge bench -d 10s -view-cost -ceilings=false
//
// # Correctness accounting
//
// Every event carries a unique id, bench-<run>-<seq>; the QoD v0.9 body,
// which has no id (the bridge derives one from the content), carries a
// unique time instead, a per-run base plus seq nanoseconds. The consumer
// reads the id (and time) of every message from the CloudEvents headers
// (NATS ce-id/ce-time, Kafka ce_id/ce_time) or from a structured body, so
// the accounting is per event:
//
//   - received: distinct events of this run the consumer saw;
//   - lost: answered 2xx, but not received by the end of the drain;
//   - duplicates: receipts of an event already received;
//   - received_unacked: received, but the request was not answered 2xx
//     (published, then the answer failed or timed out);
//   - foreign: messages on the subject or topic that are not this run's;
//   - consumer_dropped: what a NATS core subscription itself dropped (slow
//     consumer); counted in lost, so -nats-consumer stream, an ordered
//     JetStream consumer that reads what was stored, is the one to trust
//     under overload.
//
// The Kafka consumer uses kafka-go, the client the bridge's sink uses: one
// Reader per partition, no consumer group, each starting at the first
// record written at or after one second before the run (or at the
// partition's end), looked up before anything is sent. The tracker keeps
// two bits per event sent plus the send time of events in flight, and
// latencies go into fixed-size log-linear histograms (within 1/64 of the
// value), so a long run's memory stays flat. Requests are counted in sent,
// acked, rejected and errors; events in received, lost and duplicates
// (they differ for -shape batch only). bench returns [ErrAccounting], and
// the command exits 1, when an event was lost or duplicated.
//
// # What the report's figures mean
//
//   - events_per_sec, requests_per_sec: acknowledged, over the phase's
//     time; latency: of 2xx answers (the broker's ack for B); e2e_latency:
//     from the POST (its scheduled time in an open loop) to receipt by the
//     consumer, on the same process clock.
//   - cpu_us_per_event: user and system CPU time of the bench process
//     during the phase, per acknowledged event. With the in-process
//     bridge it covers load generator, bridge, NATS server and consumer
//     alike; it moves much less than throughput when the machine drifts,
//     so it is the figure to compare across runs.
//   - ceilings.h, b, b_pipelined, s, p: the ceilings in events/s;
//     bridge_ratio.h, .b, .s, .p: the bridge's events/s divided by each.
//     bridge/S is how much of what its parts allow at their own peaks the
//     bridge reaches.
//   - at_rate.p99_vs_ceilings_p99: the half-peak run's p99 divided by the
//     larger of H's and B's closed-loop p99.
//   - at_rate.p99_vs_http_at_rate, p99_vs_broker_at_rate,
//     p99_vs_ceilings_at_rate: the same p99 divided by the no-op server's,
//     B's, and the larger of the two, in the same open loop.
//   - at_rate.cpu_vs_ceilings_at_rate: the bridge's cpu_us_per_event over
//     the no-op server's plus B's, all three in the same open loop: what
//     the serial model S predicts, with each part's cost taken at the
//     bridge's rate rather than at its own peak, where it is lower.
//   - resident_memory: sampled every -mem-every during the bridge's
//     slices; with -metrics the bridge's own (process_resident_memory_bytes
//     from `qodbridge serve`'s admin /metrics, embedded NATS included),
//     otherwise the bench process's (bridge, load and consumer: an upper
//     bound). growth is the mean of the last quarter of the samples over
//     the second quarter (the first is warm-up): about 1.0 is flat.
//
// # Method: the README's Performance table
//
// The README's Performance table is measured with
//
//	go run ./cmd/qodbridge bench -d 10s -latency-at 0.5
//
// for every row but memory, and for memory with the bridge as its own
// process and bench reading its /metrics:
//
//	QODBRIDGE_AUTH_TOKENS=bench-token-0123456789 go run ./cmd/qodbridge &
//	go run ./cmd/qodbridge bench -url http://127.0.0.1:8080/notifications -token bench-token-0123456789 \
//	  -metrics http://127.0.0.1:9090/metrics -d 10m -mem-every 10s
//
// again with GOMEMLIMIT=110MiB in the bridge's environment for the soft
// limit's row. The machine, Go version and broker are stated with the
// table; load generator, bridge, NATS server and consumer share its cores,
// and nothing else runs. The first command is run many times, one after
// the other, with -json; each row is the median over the runs of one
// figure per run, with its range in brackets (a ratio is taken within a
// run, then its median; never a ratio of medians):
//
//   - throughput: bridge.events_per_sec, and ceilings.bridge_ratio.s and .p;
//   - CPU time per event ÷ (H + B), each at its own peak:
//     bridge.cpu_us_per_event / (ceilings.http.cpu_us_per_event +
//     ceilings.broker.cpu_us_per_event);
//   - the same, all three in the same open loop at half the peak:
//     at_rate.cpu_vs_ceilings_at_rate;
//   - HTTP answer at half the peak rate: at_rate.latency.p50_ms and p99_ms;
//   - ÷ the larger ceiling's p99: at_rate.p99_vs_ceilings_p99;
//   - ÷ the broker's own p99 in the same open loop:
//     at_rate.p99_vs_broker_at_rate;
//   - resident memory: resident_memory.peak_mib and growth of the soak,
//     with bridge.events_per_sec for the rate it held;
//   - lost or stored twice: bridge.lost and bridge.duplicates (and the
//     exit status) of every run, both commands.
//
// -cpuprofile (with -rounds 1) and -memprofile write pprof profiles of the
// bridge phase, to see where the gap to S is.
//
// # Imports
//
// bench sits beside the product, not in it. It drives the bridge through
// package process's exported API only (New, Start, Shutdown, NotifyURL,
// NATSURL, EmbeddedNATS, NewLogger, CPUTime), and the brokers through the
// bridge's own sinks; nothing imports bench but cmd/qodbridge, and
// process must never import it. It reads Kafka with kafka-go, as the
// bridge does, so that the production binary links one Kafka client:
// franz-go (kfake, the in-process Kafka cluster) is for tests only.
package bench
