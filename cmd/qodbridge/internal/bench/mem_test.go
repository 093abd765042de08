package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

func TestMemSamplerReport(t *testing.T) {
	// 12 samples: warm-up, then flat at 40 MiB with a 60 MiB peak, so
	// growth (last quarter / second quarter) is 1.
	mib := []int64{10, 20, 30, 40, 40, 40, 60, 40, 40, 40, 40, 40}
	m := &memSampler{source: "test"}
	for _, v := range mib {
		m.samples = append(m.samples, v<<20)
	}
	r, err := m.report()
	if err != nil {
		t.Fatal(err)
	}
	if r.First != 10 || r.Peak != 60 || r.Last != 40 || r.Samples != 12 || r.Growth != 1 {
		t.Fatalf("report %+v", r)
	}
	// Growing: the last quarter is twice the second.
	m.samples = nil
	for _, v := range []int64{10, 10, 20, 20, 30, 30, 40, 40} {
		m.samples = append(m.samples, v<<20)
	}
	if r, _ := m.report(); r.Growth != 2 {
		t.Fatalf("growth %v, want 2", r.Growth)
	}
}

func TestMemSamplerSamplesUntilStopped(t *testing.T) {
	var mu sync.Mutex
	n := int64(0)
	m := &memSampler{source: "test", every: time.Millisecond, read: func(context.Context) (int64, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return n << 20, nil
	}}
	stop := m.start(context.Background())
	if !sinktest.Poll(10*time.Second, time.Millisecond, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return n >= 5
	}) {
		t.Fatal("sampler took fewer than 5 samples in 10s")
	}
	stop()
	stop() // idempotent
	r, err := m.report()
	if err != nil || r.Samples < 6 || r.First != 1 || r.Last != r.Peak {
		t.Fatalf("report %+v, %v", r, err)
	}
}

func TestMetricsRSS(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprint(w, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 4.2991616e+07\ngo_goroutines 12\n")
		case "/other":
			fmt.Fprint(w, "go_goroutines 12\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	got, err := metricsRSS(srv.Client(), srv.URL+"/metrics")(context.Background())
	if err != nil || got != 42991616 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := metricsRSS(srv.Client(), srv.URL+"/other")(context.Background()); err == nil || !strings.Contains(err.Error(), "no process_resident_memory_bytes") {
		t.Fatalf("err %v", err)
	}
	if _, err := metricsRSS(srv.Client(), srv.URL+"/missing")(context.Background()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err %v", err)
	}
}

func TestSelfRSS(t *testing.T) {
	v, err := selfRSS(context.Background())
	if err != nil {
		t.Skip(err)
	}
	if v < 1<<20 {
		t.Fatalf("VmRSS %d bytes", v)
	}
}
