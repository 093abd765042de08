package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
)

// banner is what a running bridge printed at start.
type banner struct {
	notify, token, nats, admin, api string
	console                         string // the console's URL, or "off"
	kafka                           string // the Kafka line after its label
}

// startBridge runs `qodbridge serve` in-process with every listener on a
// random loopback port and returns what it printed; the bridge stops at
// test cleanup (or earlier through the returned stop function, which also
// returns run's error).
func startBridge(t *testing.T, env map[string]string, args ...string) (banner, func() error) {
	t.Helper()
	return startBridgeLog(t, env, io.Discard, args...)
}

// startBridgeLog is startBridge with the bridge's log going to stderr. It
// runs the process as `qodbridge serve` does: config from the environment
// (and -config file), New, Start, the banner, Run until stop.
func startBridgeLog(t *testing.T, env map[string]string, stderr io.Writer, args ...string) (banner, func() error) {
	t.Helper()
	base := map[string]string{
		"QODBRIDGE_HTTP_ADDRESS":          "127.0.0.1:0",
		"QODBRIDGE_ADMIN_ADDRESS":         "127.0.0.1:0",
		"QODBRIDGE_NATS_EMBEDDED_ADDRESS": "127.0.0.1:0",
		"QODBRIDGE_SIM_ADDRESS":           "127.0.0.1:0",
		"QODBRIDGE_DATA_DIR":              t.TempDir(),
		"QODBRIDGE_LOG_LEVEL":             "warn",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	path := ""
	if len(args) == 2 && args[0] == "-config" {
		path = args[1]
	} else if len(args) > 0 {
		t.Fatalf("startBridge: arguments %q: only -config file is understood", args)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := serveStart(ctx, path, stderr)
	if err != nil {
		cancel()
		t.Fatalf("bridge did not start: %v", err)
	}
	var out bytes.Buffer
	p.WriteBanner(&out)
	b, _ := readBanner(&out)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(time.Minute):
				runErr = errors.New("Run did not return within a minute of cancellation")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return b, stop
}

// serveStart is what `qodbridge serve` does before its banner: load the
// config from path and the environment, make and start the process.
func serveStart(ctx context.Context, path string, stderr io.Writer) (*Process, error) {
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		return nil, err
	}
	log, err := NewLogger(cfg.Log, stderr)
	if err != nil {
		return nil, err
	}
	p, err := New(cfg, Options{Logger: log})
	if err != nil {
		return nil, err
	}
	return p, p.Start(ctx)
}

// readBanner reads what a starting bridge prints, up to its last part.
func readBanner(r io.Reader) (banner, error) {
	var b banner
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[0] == "notifications":
			b.notify = f[2]
		case len(f) >= 2 && f[0] == "token":
			b.token = f[1]
		case len(f) >= 2 && f[0] == "Kafka":
			b.kafka = strings.Join(f[1:], " ")
		case len(f) >= 2 && f[0] == "NATS":
			b.nats = f[1]
		case len(f) >= 3 && f[0] == "QoD" && f[1] == "API":
			b.api = f[2]
		case len(f) >= 2 && f[0] == "console":
			b.console = f[1]
		case len(f) >= 2 && f[0] == "admin":
			b.admin = strings.TrimSuffix(f[1], "/healthz")
		}
		if strings.HasPrefix(sc.Text(), "Send a notification") {
			break
		}
	}
	return b, sc.Err()
}

func post(t testing.TB, client *http.Client, url, token, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func statusEvent(id, session, status string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"https://qod.example/v0","type":%q,"time":"2025-05-06T07:08:09Z","data":{"sessionId":%q,"qosStatus":%q}}`,
		id, bridge.EventTypeV0, session, status)
}

// TestZeroConfigRoundTrip: the zero-config bridge prints where to send
// notifications, the token and the NATS URL; a notification sent there is
// on the stream under qod.status.<token> with CloudEvents headers.
func TestZeroConfigRoundTrip(t *testing.T) {
	b, _ := startBridge(t, nil)
	if b.token == "" || b.nats == "" || b.admin == "" {
		t.Fatalf("banner incomplete: %+v", b)
	}
	nc, js := natstest.Connect(t, b.nats)
	sub, err := nc.SubscribeSync("qod.status.>")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, nc) // the server knows the subscriptions before anything is published
	code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("e-1", "session.1", "AVAILABLE"))
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("POST: %d, %v", code, err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "qod.status.session%2E1" {
		t.Errorf("subject %s", msg.Subject)
	}
	if msg.Header.Get("ce-type") != bridge.EventType || msg.Header.Get("ce-subject") != "session.1" || msg.Header.Get("ce-id") != "e-1" {
		t.Errorf("headers %v", msg.Header)
	}
	if string(msg.Data) != `{"sessionId":"session.1","qosStatus":"AVAILABLE"}` {
		t.Errorf("data %s", msg.Data)
	}

	// The same notification again: 204, stored once.
	if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("e-1", "session.1", "AVAILABLE")); err != nil || code != 204 {
		t.Fatalf("resend: %d, %v", code, err)
	}
	st, err := js.Stream(context.Background(), "QOD_STATUS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after a resend (%v), want 1", info.State.Msgs, err)
	}

	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(b.admin + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
		if p == "/metrics" && (!strings.Contains(string(body), `qodbridge_ingress_requests_total{code="204",shape="structured"} 2`) ||
			!strings.Contains(string(body), `qodbridge_dedupe_hits_total{sink="nats"} 1`)) {
			t.Errorf("metrics do not count the two requests and the duplicate:\n%s", body)
		}
	}

	// A wrong token is refused.
	if code, _ := post(t, http.DefaultClient, b.notify, "wrong-token-0123456789", statusEvent("e-2", "s", "AVAILABLE")); code != 401 {
		t.Fatalf("wrong token answered %d", code)
	}
}

// TestShutdownUnderLoad: SIGTERM (ctx cancellation) while many clients
// post. Every request gets 204 or 503 (or, once the listener is closed, a
// connection error: such a request was never read), and every event
// answered 204 is in the stream afterwards, exactly once.
func TestShutdownUnderLoad(t *testing.T) {
	ns := natstest.Embedded(t)
	b, stop := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": ns.ClientURL()})

	const workers = 16
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		codes   = map[int]int{}
		started = make(chan struct{}, workers*4)
		wg      sync.WaitGroup
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				code, err := post(t, client, b.notify, b.token, statusEvent(id, fmt.Sprintf("s-%d", w), "AVAILABLE"))
				if err != nil {
					return // listener closed: the bridge is gone
				}
				mu.Lock()
				codes[code]++
				if code == 204 {
					acked[id] = true
				}
				mu.Unlock()
				select {
				case started <- struct{}{}:
				default:
				}
				if code == 503 {
					return
				}
			}
		})
	}
	for range workers * 4 { // load is flowing
		<-started
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	wg.Wait()

	for code, n := range codes {
		if code != 204 && code != 503 {
			t.Errorf("%d requests answered %d", n, code)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no request was acknowledged")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "QOD_STATUS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := js.Stream(ctx, "QOD_STATUS")
	info, _ := st.Info(ctx)
	stored := map[string]int{}
	for range info.State.Msgs {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		stored[m.Headers().Get("ce-id")]++
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("event %s answered 204 is stored %d times", id, stored[id])
		}
	}
	t.Logf("answers %v; %d acked, %d stored", codes, len(acked), len(stored))
}

// TestSimCommand runs `qodbridge sim` and creates a session on it.
// flush waits until the server has processed nc's subscriptions: a core
// NATS subscription not yet known to the server misses what is published.
func flush(t testing.TB, nc *nats.Conn) {
	t.Helper()
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestZeroConfigDedupeOutlastsRetries: the zero-config status stream
// recognises a resend for at least two minutes, longer than platforms
// (and the bridge's own simulator) retry a notification.
func TestZeroConfigDedupeOutlastsRetries(t *testing.T) {
	b, _ := startBridge(t, nil)
	_, js := natstest.Connect(t, b.nats)
	st, err := js.Stream(context.Background(), "QOD_STATUS")
	if err != nil {
		t.Fatal(err)
	}
	if w := st.CachedInfo().Config.Duplicates; w < 2*time.Minute {
		t.Fatalf("duplicate window %s, want at least 2m: a resend 70 s later would be stored twice", w)
	}
	for range 2 {
		if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("resent-1", "s-resent", "AVAILABLE")); err != nil || code != 204 {
			t.Fatalf("POST: %d %v", code, err)
		}
	}
	if info, err := st.Info(context.Background()); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream holds %v messages after a resend (%v), want 1", info.State.Msgs, err)
	}
}
