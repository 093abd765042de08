package ingress

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
)

// nopPublisher acknowledges at once: the handler's own cost is measured.
type nopPublisher struct{ n atomic.Int64 }

func (p *nopPublisher) Publish(_ context.Context, evs ...bridge.Event) error {
	p.n.Add(int64(len(evs)))
	return nil
}

var benchBody = fmt.Sprintf(`{"specversion":"1.0","id":"83a0d986-0866-4f38-b8c0-fc65bfcda452","source":"https://network-as-code.example/qod/v0/sessions/1234","type":%q,"datacontenttype":"application/json","time":"2024-04-30T13:05:29.189Z","data":{"sessionId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","qosStatus":"UNAVAILABLE","statusInfo":"DELETE_REQUESTED"}}`, bridge.EventTypeV0)

func benchServe(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodPost, "/notifications", strings.NewReader(benchBody))
			r.Header.Set("Content-Type", "application/cloudevents+json")
			r.Header.Set("Authorization", "Bearer "+testToken)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusNoContent {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

// BenchmarkHandler is the ingress (auth, read, normalize, publish to a
// publisher that acknowledges at once), in-process without the network:
// as the bridge wires it, leaving the publish timeout to the sinks, and
// with a deadline of its own (the default).
func BenchmarkHandler(b *testing.B) {
	b.Run("sink-deadline", func(b *testing.B) {
		benchServe(b, newHandler(b, &nopPublisher{}, func(o *Options) { o.PublishTimeout = -1 }))
	})
	b.Run("own-deadline", func(b *testing.B) {
		benchServe(b, newHandler(b, &nopPublisher{}, nil))
	})
}

// BenchmarkNoopHandler is the baseline: a handler that reads the body and
// answers 204, under the same harness.
func BenchmarkNoopHandler(b *testing.B) {
	benchServe(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
}
