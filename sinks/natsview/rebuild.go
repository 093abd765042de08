package natsview

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
)

// RebuildStats says what Rebuild read.
type RebuildStats struct {
	// Read is the messages read from the stream; Undecodable those that
	// were no status event (skipped).
	Read, Undecodable int
}

// Rebuild replays the status stream's history (every message on
// <prefix>.status.> up to the last one stored when it starts) into the
// view. The rule makes this safe while bridges are running: an entry
// only ever advances, and what they write meanwhile is folded in like any
// other event. Each event's ReceivedAt is when the stream stored it. It
// reads in batches of 256 and returns at the end of the stream or when
// ctx is done.
func (v *View) Rebuild(ctx context.Context, stream, prefix string) (RebuildStats, error) {
	var st RebuildStats
	s, err := v.js.Stream(ctx, stream)
	if err != nil {
		return st, fmt.Errorf("natsview: rebuild: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return st, fmt.Errorf("natsview: rebuild: stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return st, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ".status.>"}})
	if err != nil {
		return st, fmt.Errorf("natsview: rebuild: consumer on %s: %w", stream, err)
	}
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return st, fmt.Errorf("natsview: rebuild: fetch from %s: %w", stream, err)
		}
		done, empty := false, true
		for m := range batch.Messages() {
			empty = false
			st.Read++
			md, err := m.Metadata()
			if err != nil {
				return st, fmt.Errorf("natsview: rebuild: metadata: %w", err)
			}
			h := m.Headers()
			ev, err := bridge.NATSBinding.Decode(h.Get, m.Data())
			if err != nil {
				st.Undecodable++
				v.log.Warn("natsview: rebuild skips a message that is no status event", "subject", m.Subject(), "seq", md.Sequence.Stream, "err", err)
			} else if err := v.UpdateView(ctx, md.Timestamp, ev); err != nil {
				return st, fmt.Errorf("natsview: rebuild: seq %d: %w", md.Sequence.Stream, err)
			}
			if md.Sequence.Stream >= last {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return st, fmt.Errorf("natsview: rebuild: fetch from %s: %w", stream, err)
		}
		if done {
			return st, nil
		}
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("natsview: rebuild: %w", err)
		}
		if empty {
			// Nothing came: have the messages up to last aged out meanwhile?
			info, err := s.Info(ctx)
			if err != nil {
				return st, fmt.Errorf("natsview: rebuild: stream %s: %w", stream, err)
			}
			if info.State.Msgs == 0 || info.State.FirstSeq > last {
				return st, nil
			}
		}
	}
}
