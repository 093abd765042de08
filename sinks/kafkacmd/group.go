package kafkacmd

// The consumer group's side of the intake: one generation at a time, a
// fetcher per assigned partition handing commands to the lanes in offset
// order, and the per-partition watermarks that decide what is committed.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/qodbridge/qodbridge/bridge/command"
)

// job is one command handed to a lane.
type job struct {
	ctx     context.Context // the generation's work context
	gen     *generation
	part    *partition
	entry   *entry
	rec     record
	cmd     command.Command
	invalid error
}

// record is a fetched command record, copied out of the fetch response.
type record struct {
	partition int
	offset    int64
	key       []byte
	value     []byte
	headers   []kafka.Header
}

// generation is the work of one consumer-group generation: a fetcher per
// assigned partition, the watermarks, the committer.
type generation struct {
	in     *Intake
	kgen   *kafka.Generation
	lanes  *command.Lanes[*job]
	intake context.Context
	work   context.Context

	jobs  sync.WaitGroup // jobs handed to lanes and not yet finished
	dirty chan struct{}  // a watermark moved; capacity 1

	mu    sync.Mutex
	parts map[int]*partition
}

// partition is the watermark state of one assigned partition.
type partition struct {
	id int
	// pending are the dispatched commands not yet below the watermark, in
	// offset order.
	pending []*entry
	// mark is the offset to commit: every command before it finished and
	// published. -1 while unknown (nothing fetched from a partition the
	// group never committed).
	mark      int64
	committed int64
	// window holds a token per pending command: MaxUncommitted.
	window chan struct{}
}

type entry struct {
	offset int64
	done   bool
}

// run is the generation's body, run inside kafka-go's Generation.Start so
// that the group does not rejoin before it returned. ctx ends with the
// generation.
func (g *generation) run(ctx context.Context) {
	in := g.in
	assigned := g.kgen.Assignments[in.o.Topic]
	ids := make([]int, 0, len(assigned))
	for _, pa := range assigned {
		mark := pa.Offset
		if mark < 0 {
			mark = -1
		}
		g.parts[pa.ID] = &partition{id: pa.ID, mark: mark, committed: mark, window: make(chan struct{}, in.o.MaxUncommitted)}
		ids = append(ids, pa.ID)
	}
	in.log.Info("kafkacmd: generation started", "group", in.o.GroupID, "generation", g.kgen.ID, "member", g.kgen.MemberID, "partitions", ids)

	// Commands of this generation run on jobCtx: cancelled when work is,
	// or when a revocation's RevokeTimeout passed.
	jobCtx, cancelJobs := context.WithCancel(g.work)
	defer cancelJobs()
	var fetchers, committer sync.WaitGroup
	stopCommitter := make(chan struct{})
	committer.Go(func() { g.commitLoop(stopCommitter) })
	for _, pa := range assigned {
		p := g.parts[pa.ID]
		fetchers.Go(func() { g.fetch(ctx, jobCtx, p, pa.Offset) })
	}
	<-ctx.Done()
	fetchers.Wait()
	in.log.Info(msgDraining, "group", in.o.GroupID, "generation", g.kgen.ID, "in_flight", in.InFlight(), "shutdown", g.intake.Err() != nil)

	// Drain: the commands handed to lanes finish and publish. A shutdown
	// waits as long as work allows; a revocation RevokeTimeout.
	drained := make(chan struct{})
	go func() { g.jobs.Wait(); close(drained) }()
	shutdown := g.intake.Err() != nil
	var revoke <-chan time.Time
	if !shutdown {
		t := time.NewTimer(in.o.RevokeTimeout)
		defer t.Stop()
		revoke = t.C
	}
	keepAlive := time.NewTicker(in.o.HeartbeatInterval)
	defer keepAlive.Stop()
wait:
	for {
		select {
		case <-drained:
			break wait
		case <-revoke:
			in.log.Warn("kafkacmd: commands of revoked partitions still running after RevokeTimeout; cancelled, left for the next owner",
				"in_flight", in.InFlight(), "revoke_timeout", in.o.RevokeTimeout)
			cancelJobs()
			revoke = nil
		case <-keepAlive.C:
			// The heartbeats stopped with the generation; a commit keeps
			// the member's session alive while it drains.
			g.commit(true)
		}
	}
	close(stopCommitter)
	committer.Wait()
	g.commit(false)
	in.log.Info("kafkacmd: generation ended", "group", in.o.GroupID, "generation", g.kgen.ID, "shutdown", shutdown, "committed", g.committedOffsets())
}

// fetch reads partition p from offset and hands its commands to lanes in
// offset order until ctx (the generation) ends.
func (g *generation) fetch(ctx, jobCtx context.Context, p *partition, offset int64) {
	in := g.in
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		resp, err := in.client.Fetch(ctx, &kafka.FetchRequest{
			Topic: in.o.Topic, Partition: p.id, Offset: offset,
			MinBytes: 1, MaxBytes: int64(in.o.FetchMaxBytes), MaxWait: in.o.FetchMaxWait,
		})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if errors.Is(err, kafka.OffsetOutOfRange) {
			// Retention removed commands nobody ran, or the topic was
			// recreated: go on from the oldest one there is.
			in.log.Error("kafkacmd: committed offset out of range; commands in between are lost to retention, starting at the oldest",
				"partition", p.id, "offset", offset)
			offset = kafka.FirstOffset
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			in.log.Warn("kafkacmd: fetch failed; retrying", "partition", p.id, "offset", offset, "err", err)
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		next, ok := g.dispatch(ctx, jobCtx, p, resp.Records, offset)
		offset = next
		if !ok {
			return
		}
	}
}

// dispatch hands the records of one fetch response to lanes and returns
// the next offset to fetch, and false when ctx ended.
func (g *generation) dispatch(ctx, jobCtx context.Context, p *partition, rs kafka.RecordReader, offset int64) (int64, bool) {
	in := g.in
	for {
		r, err := rs.ReadRecord()
		if err != nil {
			return offset, true // io.EOF, or a truncated last batch: fetch on from offset
		}
		if offset >= 0 && r.Offset < offset {
			continue // a batch may start before the offset asked for
		}
		rec, err := copyRecord(p.id, r)
		if err != nil {
			in.log.Warn("kafkacmd: reading a record failed; fetching it again", "partition", p.id, "offset", r.Offset, "err", err)
			return r.Offset, true
		}
		select {
		case p.window <- struct{}{}:
		case <-ctx.Done():
			return offset, false
		}
		cmd, perr := parse(rec)
		if perr != nil {
			in.log.Info("kafkacmd: invalid command", "request_id", cmd.RequestID, "partition", p.id, "offset", rec.offset, "reason", perr.Error())
		}
		e := g.track(p, rec.offset)
		j := &job{ctx: jobCtx, gen: g, part: p, entry: e, rec: rec, cmd: cmd, invalid: perr}
		g.jobs.Add(1)
		in.inFlight.Add(1)
		key := ""
		if perr == nil {
			key = cmd.OrderingKey()
		}
		if !g.lanes.Dispatch(ctx.Done(), key, j) {
			// Never started: its entry stays unfinished, so the watermark
			// stops before it.
			g.jobs.Done()
			in.inFlight.Add(-1)
			return offset, false
		}
		offset = rec.offset + 1
	}
}

func copyRecord(partition int, r *kafka.Record) (record, error) {
	rec := record{partition: partition, offset: r.Offset}
	var err error
	if r.Key != nil {
		if rec.key, err = protocol.ReadAll(r.Key); err != nil {
			return rec, fmt.Errorf("key: %w", err)
		}
	}
	if r.Value != nil {
		if rec.value, err = protocol.ReadAll(r.Value); err != nil {
			return rec, fmt.Errorf("value: %w", err)
		}
	}
	rec.headers = make([]kafka.Header, len(r.Headers))
	for i, h := range r.Headers {
		rec.headers[i] = kafka.Header{Key: h.Key, Value: bytes.Clone(h.Value)}
	}
	return rec, nil
}

// track records a dispatched command of p.
func (g *generation) track(p *partition, offset int64) *entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := &entry{offset: offset}
	p.pending = append(p.pending, e)
	return e
}

// finished marks e's command published and moves p's watermark past every
// finished command at its head.
func (g *generation) finished(p *partition, e *entry) {
	g.mu.Lock()
	e.done = true
	moved := 0
	for len(p.pending) > 0 && p.pending[0].done {
		p.mark = p.pending[0].offset + 1
		p.pending[0] = nil
		p.pending = p.pending[1:]
		moved++
	}
	g.mu.Unlock()
	for range moved {
		<-p.window
	}
	if moved > 0 {
		select {
		case g.dirty <- struct{}{}:
		default: // a commit is already due; it will take this mark too
		}
	}
}

// commitLoop commits whenever a watermark moved, until stop is closed.
// Commits are coalesced: marks that move while one is in flight go in the
// next.
func (g *generation) commitLoop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-g.dirty:
			g.commit(false)
		}
	}
}

// commit sends the watermarks that moved since the last commit (every known
// one when all is set).
func (g *generation) commit(all bool) {
	g.mu.Lock()
	offsets := map[int]int64{}
	for id, p := range g.parts {
		if p.mark >= 0 && (all || p.mark > p.committed) {
			offsets[id] = p.mark
		}
	}
	g.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	if err := g.kgen.CommitOffsets(map[string]map[int]int64{g.in.o.Topic: offsets}); err != nil {
		// Kept for the next commit; if the generation is gone, the next
		// owner runs these commands again.
		g.in.log.Warn("kafkacmd: commit failed", "generation", g.kgen.ID, "offsets", offsets, "err", err)
		return
	}
	g.mu.Lock()
	for id, off := range offsets {
		if p := g.parts[id]; off > p.committed {
			p.committed = off
		}
	}
	g.mu.Unlock()
}

func (g *generation) committedOffsets() map[int]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make(map[int]int64, len(g.parts))
	for id, p := range g.parts {
		m[id] = p.committed
	}
	return m
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
