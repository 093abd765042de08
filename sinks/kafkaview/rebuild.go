package kafkaview

import (
	"context"
	"fmt"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge"
)

// RebuildStats says what Rebuild read.
type RebuildStats struct {
	// Read is the records read from the history topic; Undecodable those
	// that were no status event (skipped).
	Read, Undecodable int
}

// Rebuild replays the status topic (the history, every partition up to
// its end when Rebuild starts) into the view. It is safe while bridges
// run: entries only advance under the rule. Each event's ReceivedAt is
// the record's timestamp.
func (v *View) Rebuild(ctx context.Context, historyTopic string) (RebuildStats, error) {
	ends, err := v.ends(ctx, historyTopic)
	if err != nil {
		return RebuildStats{}, err
	}
	var (
		mu   sync.Mutex
		st   RebuildStats
		errs = make(chan error, len(ends))
		wg   sync.WaitGroup
	)
	for p, end := range ends {
		wg.Go(func() {
			var failed error
			err := v.read(ctx, historyTopic, p, end, true, nil, func(m kafka.Message) {
				if failed != nil {
					return
				}
				get := func(name string) string {
					for _, h := range m.Headers {
						if h.Key == name {
							return string(h.Value)
						}
					}
					return ""
				}
				ev, err := bridge.KafkaBinding.Decode(get, m.Value)
				mu.Lock()
				st.Read++
				if err != nil {
					st.Undecodable++
				}
				mu.Unlock()
				if err != nil {
					v.log.Warn("kafkaview: rebuild skips a record that is no status event", "partition", m.Partition, "offset", m.Offset, "err", err)
					return
				}
				if err := v.UpdateView(ctx, m.Time, ev); err != nil {
					failed = fmt.Errorf("kafkaview: rebuild: %s/%d@%d: %w", historyTopic, m.Partition, m.Offset, err)
				}
			})
			errs <- cmpErr(failed, err)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
