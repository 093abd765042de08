package sinktest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// wireSink encodes events as broker messages in memory, so the suite's wire
// checks run against a known-good encoder in both modes and both header
// conventions.
type wireSink struct {
	prefix     string // "ce-" (NATS) or "ce_" (Kafka)
	structured bool

	mu     sync.Mutex
	closed bool
	msgs   []sinktest.Stored
	wg     sync.WaitGroup
}

func (w *wireSink) Publish(ctx context.Context, events ...bridge.Event) error {
	if len(events) == 0 {
		return nil
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("wire: %w", bridge.ErrClosed)
	}
	w.wg.Add(1)
	w.mu.Unlock()
	defer w.wg.Done()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wire: %w", err)
	}
	var out []sinktest.Stored
	for _, ev := range events {
		h := map[string]string{}
		var data []byte
		if w.structured {
			h["content-type"] = sinktest.ContentTypeStructured
			data = ev.StructuredJSON()
		} else {
			h["Content-Type"] = sinktest.ContentTypeBinary
			for _, a := range ev.Attributes() {
				v := a.Value
				if w.prefix == "ce-" { // the Kafka binding (ce_) does not encode
					v = bridge.HeaderValue(v)
				}
				h[w.prefix+a.Name] = v
			}
			data = ev.Data()
		}
		out = append(out, sinktest.Stored{Key: "k." + bridge.SessionToken(ev.SessionID), Headers: h, Data: data})
	}
	w.mu.Lock()
	w.msgs = append(w.msgs, out...)
	w.mu.Unlock()
	return nil
}

func (w *wireSink) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
	return nil
}

func (w *wireSink) Stored(_ context.Context, t testing.TB) []sinktest.Stored {
	t.Helper()
	w.mu.Lock()
	msgs := append([]sinktest.Stored(nil), w.msgs...)
	w.mu.Unlock()
	for i := range msgs {
		ev, err := sinktest.Decode(msgs[i].Headers, msgs[i].Data)
		if err != nil {
			t.Fatalf("decode %d: %v", i, err)
		}
		msgs[i].Event = ev
	}
	return msgs
}

func TestSuiteAgainstWireEncoder(t *testing.T) {
	for _, c := range []struct {
		name       string
		prefix     string
		structured bool
	}{
		{"binary-nats", "ce-", false},
		{"binary-kafka", "ce_", false},
		{"structured", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			sinktest.Run(t, sinktest.HarnessFunc(func(context.Context, testing.TB) (sinktest.Sink, sinktest.Reader) {
				w := &wireSink{prefix: c.prefix, structured: c.structured}
				return w, w
			}))
		})
	}
}
