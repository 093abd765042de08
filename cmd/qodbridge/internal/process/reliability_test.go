package process

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// streamCount returns how many messages a stream holds.
// scaled is the size of a reliability test: n in the default run (the one
// .ci/run makes), short with -short, and n times QODBRIDGE_TEST_SCALE for
// the long mode (README, "Delivery and shutdown").
func scaled(n, short int) int {
	if testing.Short() {
		return short
	}
	if f, err := strconv.Atoi(os.Getenv("QODBRIDGE_TEST_SCALE")); err == nil && f > 1 {
		return n * f
	}
	return n
}

func streamCount(t *testing.T, natsURL, stream string) uint64 {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestDuplicateStorm: the same 1,000 notifications sent three times,
// concurrently: every request is answered 204 and the stream holds 1,000.
func TestDuplicateStorm(t *testing.T) {
	n := scaled(1000, 200)
	ns := natstest.Embedded(t)
	// The copies of one event are 3n requests apart at most: keep them all
	// in the duplicate window however slow the machine (-race, long mode).
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("nats:\n  stream:\n    duplicate_window: 5m\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": ns.ClientURL()}, "-config", cfgFile)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 24 {
		wg.Go(func() {
			for i := range jobs {
				code, err := post(t, client, b.notify, b.token, statusEvent(fmt.Sprintf("storm-%d", i%n), fmt.Sprintf("s-%d", i%50), "AVAILABLE"))
				if err != nil || code != http.StatusNoContent {
					if failed.Add(1) == 1 {
						t.Errorf("request %d: %d %v", i, code, err)
					}
				}
			}
		})
	}
	for i := range 3 * n {
		jobs <- i // three copies of each event, interleaved across workers
	}
	close(jobs)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests not answered 204", failed.Load())
	}
	if got := streamCount(t, ns.ClientURL(), "QOD_STATUS"); got != uint64(n) {
		t.Fatalf("stream holds %d events, want %d", got, n)
	}
}

// faultyAPI sits in front of the simulator and, for a share of the calls,
// answers 500 or 429, or lets the call time out before or after the
// simulator handled it (the last one is the hard case: the session exists
// but the bridge never heard so).
type faultyAPI struct {
	next  http.Handler
	share float64
	mu    sync.Mutex
	rnd   *rand.Rand
	count map[string]int
	stop  chan struct{} // releases calls held to time out
}

// hold keeps a call open until the client gives up (or the test ends). The
// body is read first: only then does net/http notice a client that hung up.
func (f *faultyAPI) hold(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-f.stop:
	}
}

func (f *faultyAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	fault := -1
	if f.rnd.Float64() < f.share {
		fault = f.rnd.IntN(4)
	}
	f.count[fmt.Sprint(fault)]++
	f.mu.Unlock()
	switch fault {
	case 0:
		http.Error(w, `{"status":500,"code":"INTERNAL","message":"injected"}`, http.StatusInternalServerError)
	case 1:
		http.Error(w, `{"status":429,"code":"TOO_MANY_REQUESTS","message":"injected"}`, http.StatusTooManyRequests)
	case 2: // times out before the platform did anything
		f.hold(r)
	case 3: // the platform acts, the answer is lost
		f.next.ServeHTTP(httptest.NewRecorder(), r)
		f.hold(r)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// TestCommandsWithFaultyAPI: 1,000 creates while 30 % of the QoD API calls
// fail (500, 429, timeouts, answers lost after the session was made):
// every command ends with exactly one result, and no device has two
// sessions.
func TestCommandsWithFaultyAPI(t *testing.T) {
	n := scaled(1000, 200)
	sim, err := qodsim.New(qodsim.Options{AvailableDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	simSrv := httptest.NewServer(sim.Handler())
	defer simSrv.Close()
	target, _ := url.Parse(simSrv.URL)
	faulty := &faultyAPI{next: httputil.NewSingleHostReverseProxy(target), share: 0.3, rnd: rand.New(rand.NewPCG(1, 2)), count: map[string]int{}, stop: make(chan struct{})}
	api := httptest.NewServer(faulty)
	defer api.Close()
	defer close(faulty.stop) // before api.Close, which waits for every call

	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("qod:\n  timeout: 300ms\ncommands:\n  max_attempts: 12\n  max_elapsed: 60s\n  lanes: 32\n"), 0o600)
	ns := natstest.Embedded(t)
	startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": ns.ClientURL(), "QODBRIDGE_QOD_API_URL": api.URL + qodsim.BasePathV1}, "-config", cfgFile)

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	phone := func(i int) string { return fmt.Sprintf("+3672160%07d", i) }
	for i := range n {
		cmd := fmt.Sprintf(`{"requestId":"faulty-%d","session":{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600}}`, i, phone(i))
		if _, err := js.Publish(ctx, "qod.commands.create", []byte(cmd)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until every command has a result (the stream dedupes re-published ones).
	sinktest.Poll(3*time.Minute, 100*time.Millisecond, func() bool { // commands are still being retried
		return streamCount(t, ns.ClientURL(), "QOD_RESULTS") >= uint64(n)
	})
	st, _ := js.Stream(ctx, "QOD_RESULTS")
	results := map[string]command.Result{}
	ok := 0
	for i := range n {
		m, err := st.GetLastMsgForSubject(ctx, fmt.Sprintf("qod.results.faulty-%d", i))
		if err != nil {
			t.Fatalf("no result for faulty-%d: %v", i, err)
		}
		var r command.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		results[r.RequestID] = r
		if r.OK {
			ok++
		}
	}
	if got := streamCount(t, ns.ClientURL(), "QOD_RESULTS"); got != uint64(n) {
		t.Fatalf("%d results for %d commands", got, n)
	}

	// No device has two sessions, and every ok result names the device's session.
	client, err := qodapi.New(qodapi.Options{BaseURL: simSrv.URL + qodsim.BasePathV1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ss, err := client.RetrieveSessions(ctx, "", json.RawMessage(fmt.Sprintf(`{"phoneNumber":%q}`, phone(i))))
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) > 1 {
			t.Errorf("device %s has %d sessions", phone(i), len(ss))
		}
		r := results[fmt.Sprintf("faulty-%d", i)]
		if r.OK && (len(ss) != 1 || sessionIDOf(r.Session) != ss[0].ID) {
			t.Errorf("faulty-%d: result names session %s, the device has %v", i, sessionIDOf(r.Session), ss)
		}
	}
	faulty.mu.Lock()
	t.Logf("%d commands, %d ok; API calls by fault (-1 none, 0 500, 1 429, 2 timeout, 3 answer lost): %v", n, ok, faulty.count)
	faulty.mu.Unlock()
	if ok < n*99/100 {
		t.Fatalf("only %d of %d creates succeeded through the faults", ok, n)
	}
}

func sessionIDOf(info json.RawMessage) string {
	var s struct {
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(info, &s)
	return s.SessionID
}

// TestFullStreamAnswers503: a stream at its size limit with discard: new
// refuses events; the bridge answers 503 at once (no hang, no crash),
// keeps running, and every event answered 204 is stored.
func TestFullStreamAnswers503(t *testing.T) {
	ns := natstest.Embedded(t)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("nats:\n  stream:\n    max_bytes: 20000\n    discard: new\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": ns.ClientURL()}, "-config", cfgFile)
	acked, refused := 0, 0
	for i := 0; i < 2000 && refused < 20; i++ {
		code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent(fmt.Sprintf("full-%d", i), "s", "AVAILABLE"))
		switch {
		case err != nil:
			t.Fatalf("request %d: %v", i, err)
		case code == http.StatusNoContent:
			if refused > 0 {
				t.Fatalf("request %d answered 204 after the stream was full", i)
			}
			acked++
		case code == http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("request %d answered %d", i, code)
		}
	}
	if acked == 0 || refused == 0 {
		t.Fatalf("%d acked, %d refused: the stream never filled up", acked, refused)
	}
	if got := streamCount(t, ns.ClientURL(), "QOD_STATUS"); got != uint64(acked) {
		t.Fatalf("stream holds %d events, %d were answered 204", got, acked)
	}
	resp, err := http.Get(b.admin + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the stream filled: %v %v", resp, err)
	}
	resp.Body.Close()
}
