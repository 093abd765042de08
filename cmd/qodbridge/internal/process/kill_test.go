package process

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qodbridge/qodbridge/bridge/qodapi"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
)

// childEnv makes the test binary run `qodbridge` instead of the tests, so
// that a test can run a bridge as a process of its own and kill it.
const childEnv = "QODBRIDGE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild is `qodbridge serve` in the child process: the configuration
// from the environment, the banner on stdout, SIGTERM for a graceful stop.
func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := serveStart(ctx, os.Getenv("QODBRIDGE_CONFIG"), os.Stderr)
	if err == nil {
		p.WriteBanner(os.Stdout)
		err = p.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "qodbridge:", err)
		return 1
	}
	return 0
}

// startBridgeProcess runs `qodbridge serve args...` as a child process
// (the test binary itself, see TestMain) with every listener on a random
// loopback port, and returns its banner and the process to kill.
func startBridgeProcess(t *testing.T, env map[string]string, args ...string) (banner, *exec.Cmd) {
	t.Helper()
	if len(args) == 2 && args[0] == "-config" {
		env = maps.Clone(env)
		if env == nil {
			env = map[string]string{}
		}
		env["QODBRIDGE_CONFIG"] = args[1]
	} else if len(args) > 0 {
		t.Fatalf("startBridgeProcess: arguments %q: only -config file is understood", args)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"QODBRIDGE_HTTP_ADDRESS=127.0.0.1:0", "QODBRIDGE_ADMIN_ADDRESS=127.0.0.1:0",
		"QODBRIDGE_NATS_EMBEDDED_ADDRESS=127.0.0.1:0", "QODBRIDGE_SIM_ADDRESS=127.0.0.1:0",
		"QODBRIDGE_DATA_DIR="+t.TempDir(), "QODBRIDGE_LOG_LEVEL=warn")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	b, err := readBanner(out)
	go func() {
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	if b.notify == "" {
		t.Fatalf("bridge process did not start: %v", err)
	}
	return b, cmd
}

// slowAPI answers QoD API calls after a pause, so that commands are
// in flight at any moment (and when an instance is killed).
type slowAPI struct {
	next  http.Handler
	pause time.Duration
}

func (s slowAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := time.NewTimer(s.pause)
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
	t.Stop()
	s.next.ServeHTTP(w, r)
}

// TestKilledInstance: two bridges share one NATS server, one Kafka
// cluster and one QoD API; notifications are spread over both and commands
// are queued for both. One instance is killed with SIGKILL in the middle:
// no shutdown, no drain, commands half done. Every notification answered
// 2xx (by either) is stored, on NATS once; every command ends with exactly
// one result, run by the survivor once the killed instance's unacked
// commands come back after commands.ack_wait; no device gets two sessions.
func TestKilledInstance(t *testing.T) {
	creates := scaled(200, 80)
	be := newSharedBackends(t, 50*time.Millisecond)
	ns, kc, api, env := be.nats, be.kafka, be.api, be.env
	const token = sharedToken
	// A short ack_wait: the killed instance's commands come back in
	// seconds, not the default minutes.
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("commands:\n  max_elapsed: 2s\n  ack_wait: 4s\n  lanes: 8\n"), 0o600)
	a, proc := startBridgeProcess(t, env, "-config", cfgFile)
	b, _ := startBridge(t, env, "-config", cfgFile)

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()

	// Notifications to both instances until told to stop; the ids answered
	// 2xx are remembered.
	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		failed atomic.Int64
		next   atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	var stopOnce sync.Once
	stopLoad := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer stopLoad() // also when a wait below fails the test
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := next.Add(1)
				target := a.notify
				if w%2 == 1 {
					target = b.notify
				}
				id := fmt.Sprintf("kill-%d", i)
				code, err := post(t, client, target, token, statusEvent(id, fmt.Sprintf("s-%d", i%50), "AVAILABLE"))
				if err == nil && code == http.StatusNoContent {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				} else {
					failed.Add(1)
				}
			}
		})
	}
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	phone := func(i int) string { return fmt.Sprintf("+3672180%07d", i) }
	// Commands arrive at a steady pace over the whole run; a is killed
	// once some results are out, notifications were answered, and a is
	// in the middle of commands (its in-flight gauge says so).
	var pubWG sync.WaitGroup
	pubErr := make(chan error, 1)
	defer pubWG.Wait()
	pubWG.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := range creates {
			<-tick.C // pacing the load, not waiting for something to happen
			cmd := fmt.Sprintf(`{"requestId":"kill-%d","session":{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600}}`, i, phone(i))
			if _, err := js.Publish(ctx, "qod.commands.create", []byte(cmd)); err != nil {
				pubErr <- err
				return
			}
		}
	})
	waitFor(t, "first results, acked notifications, and commands in flight on a", func() bool {
		return streamCount(t, ns.ClientURL(), "QOD_RESULTS") >= uint64(creates/8) && ackedCount() >= 200 &&
			metricValue(t, a.admin+"/metrics", "qodbridge_commands_in_flight") > 0
	})
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := ackedCount()
	pubWG.Wait()
	select {
	case err := <-pubErr:
		t.Fatalf("publishing commands: %v", err)
	default:
	}
	// The survivor keeps answering while a's commands wait out ack_wait.
	waitFor(t, "notifications after the kill", func() bool { return ackedCount() >= killedAt+200 })
	stopLoad()
	waitFor(t, "every command's result", func() bool { return streamCount(t, ns.ClientURL(), "QOD_RESULTS") >= uint64(creates) })

	// Every acked notification is stored, on NATS exactly once.
	mu.Lock()
	defer mu.Unlock()
	stored := map[string]int{}
	cons, err := js.OrderedConsumer(ctx, "QOD_STATUS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	total := streamCount(t, ns.ClientURL(), "QOD_STATUS")
	for range total {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("reading QOD_STATUS: %v", err)
		}
		stored[m.Headers().Get("ce-id")]++
	}
	for id := range acked {
		if stored[id] != 1 {
			t.Errorf("event %s answered 204 is stored %d times on NATS", id, stored[id])
		}
	}
	for id, n := range stored {
		if n > 1 {
			t.Errorf("event %s stored %d times on NATS", id, n)
		}
	}
	// And on Kafka (at least once: a publish whose answer was lost may be
	// there too, which is not a loss).
	kcl, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ConsumeTopics("qod.status"))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	onKafka := map[string]bool{}
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	missing := func() int {
		n := 0
		for id := range acked {
			if !onKafka[id] {
				n++
			}
		}
		return n
	}
	for missing() > 0 && kctx.Err() == nil {
		kcl.PollFetches(kctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "ce_id" {
					onKafka[string(h.Value)] = true
				}
			}
		})
	}
	if n := missing(); n > 0 {
		t.Errorf("%d events answered 204 are not on Kafka", n)
	}

	// Every command: one result, one session.
	if got := streamCount(t, ns.ClientURL(), "QOD_RESULTS"); got != uint64(creates) {
		t.Fatalf("%d results for %d commands", got, creates)
	}
	checkOneSessionEach(t, js, api.URL+qodsim.BasePathV1, "kill", creates, phone)
	t.Logf("%d notifications answered 204 (%d before the kill), %d not answered 2xx (the killed instance's); %d commands, each with one result and one session",
		len(acked), killedAt, failed.Load(), creates)
}

// checkOneSessionEach checks the results of the creates <prefix>-0 …
// <prefix>-(n-1): each is ok and names the one session its device has.
func checkOneSessionEach(t *testing.T, js jetstream.JetStream, apiURL, prefix string, n int, phone func(int) string) {
	t.Helper()
	ctx := context.Background()
	client, err := qodapi.New(qodapi.Options{BaseURL: apiURL})
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "QOD_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, err := st.GetLastMsgForSubject(ctx, fmt.Sprintf("qod.results.%s-%d", prefix, i))
		if err != nil {
			t.Fatalf("%s-%d: %v", prefix, i, err)
		}
		var r struct {
			OK      bool            `json:"ok"`
			Session json.RawMessage `json:"session"`
		}
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("%s-%d: result %s: %v", prefix, i, m.Data, err)
		}
		ss, err := client.RetrieveSessions(ctx, "", json.RawMessage(fmt.Sprintf(`{"phoneNumber":%q}`, phone(i))))
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK || len(ss) != 1 || sessionIDOf(r.Session) != ss[0].ID {
			t.Errorf("%s-%d: ok=%v, device has %d sessions", prefix, i, r.OK, len(ss))
		}
	}
}

// metricValue reads one unlabelled sample from a Prometheus endpoint; -1
// when it is not there.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
