package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resident memory during the bridge phase. The bridge's own number comes
// from its Prometheus endpoint (process_resident_memory_bytes, the process
// collector of `qodbridge serve`), so a bridge started with `qodbridge
// serve` is measured alone, embedded NATS included. The in-process bridge
// shares the bench process with the load generator and the consumer, so
// there bench reads its own VmRSS: an upper bound of the bridge's.

// rssSource reads one resident-memory sample in bytes.
type rssSource func(ctx context.Context) (int64, error)

// selfRSS reads the bench process's VmRSS from /proc/self/status.
func selfRSS(context.Context) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("resident memory: %w (only Linux has /proc)", err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("resident memory: VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("resident memory: no VmRSS in /proc/self/status")
}

// metricsRSS reads process_resident_memory_bytes from a Prometheus text
// endpoint such as the bridge's admin /metrics.
func metricsRSS(client *http.Client, url string) rssSource {
	return func(ctx context.Context) (int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, fmt.Errorf("-metrics: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("-metrics: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("-metrics %s: %s", url, resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return 0, fmt.Errorf("-metrics: process_resident_memory_bytes %q: %w", v, err)
				}
				return int64(f), nil
			}
		}
		if err := sc.Err(); err != nil {
			return 0, fmt.Errorf("-metrics %s: %w", url, err)
		}
		return 0, fmt.Errorf("-metrics %s: no process_resident_memory_bytes (is it a qodbridge admin /metrics?)", url)
	}
}

// memReport is resident memory over the bridge phase, in MiB.
type memReport struct {
	// Source says whose memory it is: "bridge" (its /metrics) or "bench
	// process (bridge + load + consumer)".
	Source  string  `json:"source"`
	Samples int     `json:"samples"`
	First   float64 `json:"first_mib"`
	Peak    float64 `json:"peak_mib"`
	Last    float64 `json:"last_mib"`
	// Growth compares the mean of the last quarter of the samples with
	// the mean of the second quarter (the first is warm-up): about 1.0 is
	// flat. Zero with fewer than 8 samples.
	Growth float64 `json:"growth"`
	// Series is every sample, in MiB, in order.
	Series []float64 `json:"series_mib"`
}

// memSampler samples a rssSource at a fixed interval until stopped.
type memSampler struct {
	source string
	read   rssSource
	every  time.Duration

	mu      sync.Mutex
	samples []int64
	err     error
}

// start samples until the returned function is called, which waits for
// the sampler and takes a last sample.
func (m *memSampler) start(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	m.sample(ctx)
	wg.Go(func() {
		tick := time.NewTicker(m.every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				m.sample(ctx)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			m.sample(context.Background())
		})
	}
}

func (m *memSampler) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	v, err := m.read(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		if m.err == nil && ctx.Err() == nil {
			m.err = err
		}
		return
	}
	m.samples = append(m.samples, v)
}

// report summarises the samples; err is the first failed read.
func (m *memSampler) report() (*memReport, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.samples
	if len(s) == 0 {
		return nil, m.err
	}
	mib := func(v float64) float64 { return roundTo(v/(1<<20), 1) }
	r := &memReport{Source: m.source, Samples: len(s), First: mib(float64(s[0])), Last: mib(float64(s[len(s)-1]))}
	var peak int64
	for _, v := range s {
		peak = max(peak, v)
		r.Series = append(r.Series, mib(float64(v)))
	}
	r.Peak = mib(float64(peak))
	if q := len(s) / 4; q >= 2 {
		mean := func(xs []int64) float64 {
			var t float64
			for _, x := range xs {
				t += float64(x)
			}
			return t / float64(len(xs))
		}
		r.Growth = roundTo(mean(s[len(s)-q:])/mean(s[q:2*q]), 3)
	}
	return r, m.err
}
