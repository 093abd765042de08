package process

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
)

// TestStatusFlowSurvivesStreamLeaderLoss runs the bridge against a 3-node
// JetStream cluster with QOD_STATUS at 3 replicas, and under load stops
// the server leading the stream, then restarts it. Senders behave as QoD
// platforms do: a 503 is retried until it is a 204. Every notification
// answered 204 is in the stream exactly once afterwards; every answer is
// 204 or 503 (never a reset or a hang); and the same bridge process goes
// on publishing without a restart.
func TestStatusFlowSurvivesStreamLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and a failover: not in -short")
	}
	cl := natstest.NewCluster(t, 3)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("nats:\n  stream:\n    replicas: 3\n    duplicate_window: 5m\ningress:\n  publish_timeout: 2s\ncommands:\n  disabled: true\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": cl.URLs()}, "-config", cfgFile)

	n := scaled(600, 200)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: time.Minute}
	var acked, unavailable, other atomic.Int64
	var otherErr atomic.Value
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range jobs {
				ev := statusEvent(fmt.Sprintf("cl-%d", i), fmt.Sprintf("s-%d", i%50), "AVAILABLE")
				for {
					code, err := post(t, client, b.notify, b.token, ev)
					if code == http.StatusNoContent {
						acked.Add(1)
						break
					}
					if code == http.StatusServiceUnavailable {
						unavailable.Add(1)
						time.Sleep(50 * time.Millisecond) // a platform's retry interval
						continue
					}
					other.Add(1)
					otherErr.Store(fmt.Sprintf("%d %v", code, err))
					break
				}
			}
		})
	}
	stopped := make(chan int, 1)
	for i := range n {
		jobs <- i
		if i == n/3 {
			leader := cl.StreamLeader("QOD_STATUS")
			if leader < 0 {
				t.Fatal("QOD_STATUS has no leader")
			}
			cl.Stop(leader)
			stopped <- leader
		}
		if i == 2*n/3 {
			cl.Restart(<-stopped)
		}
	}
	close(jobs)
	wg.Wait()
	if other.Load() > 0 {
		t.Fatalf("%d answers were neither 204 nor 503, e.g. %v", other.Load(), otherErr.Load())
	}
	t.Logf("%d notifications acknowledged, %d answers 503 during the failover", acked.Load(), unavailable.Load())

	// Exactly once: every id is in the stream once.
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "QOD_STATUS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for len(seen) < n {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			seen[m.Headers().Get("ce-id")]++
			got++
		}
		if got == 0 {
			break
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("cl-%d", i)]; c != 1 {
			t.Errorf("cl-%d is in the stream %d times, want once", i, c)
		}
	}
	if len(seen) != n {
		t.Errorf("the stream holds %d ids, want %d", len(seen), n)
	}
}

// TestCommandFlowSurvivesStreamLeaderLoss: with the command streams and
// the command store at 3 replicas, losing the command stream's leader
// under load loses no command and runs none twice: every create has one
// result, and every device has exactly one session.
func TestCommandFlowSurvivesStreamLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster and a failover: not in -short")
	}
	cl := natstest.NewCluster(t, 3)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	// A delivery lost with the consumer's leader comes back after
	// ack_wait: shorter than the default 3 minutes so that the wait below
	// covers it.
	os.WriteFile(cfgFile, []byte("nats:\n  stream:\n    replicas: 3\ncommands:\n  max_deliver: 10\n  ack_wait: 30s\n  max_elapsed: 20s\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": cl.URLs()}, "-config", cfgFile)
	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	n := scaled(60, 20)
	phone := func(i int) string { return fmt.Sprintf("+3670%07d", 1000000+i) }
	publish := func(i int) {
		body := fmt.Sprintf(`{"requestId":"cc-%d","session":{"device":{"phoneNumber":%q},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":600}}`, i, phone(i))
		// A requester retries a publish that got no ack; the command
		// stream keeps one copy (Nats-Msg-Id).
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, "qod.commands.create", []byte(body), jetstream.WithMsgID(fmt.Sprintf("cc-%d", i)))
			pcancel()
			if err == nil {
				return
			}
		}
		t.Fatalf("command %d not accepted: %v", i, ctx.Err())
	}
	for i := range n {
		publish(i)
		if i == n/3 {
			leader := cl.StreamLeader("QOD_COMMANDS")
			if leader < 0 {
				t.Fatal("QOD_COMMANDS has no leader")
			}
			cl.Stop(leader) // restarted with the others below
		}
	}
	for i := range cl.Servers {
		cl.Restart(i)
	}
	// Every create has its result in QOD_RESULTS.
	results, err := js.Stream(ctx, "QOD_RESULTS")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var ok bool
		for ctx.Err() == nil && !ok {
			m, err := results.GetLastMsgForSubject(ctx, fmt.Sprintf("qod.results.cc-%d", i))
			if err == nil {
				ok = strings.Contains(string(m.Data), `"ok":true`)
				if !ok {
					t.Fatalf("result of cc-%d: %s", i, m.Data)
				}
				break
			}
			time.Sleep(20 * time.Millisecond) // polling the stream, within ctx's deadline
		}
		if !ok {
			t.Fatalf("no result for cc-%d", i)
		}
	}
	// Exactly one session per device: no create ran twice.
	for i := range n {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.api+"/retrieve-sessions", strings.NewReader(fmt.Sprintf(`{"device":{"phoneNumber":%q}}`, phone(i))))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sessions []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&sessions)
		resp.Body.Close()
		if err != nil || len(sessions) != 1 {
			t.Fatalf("device %s has %d sessions (%v), want 1", phone(i), len(sessions), err)
		}
	}
}

// TestStatusFlowSurvivesClusterRestart: one server stays down (the
// cluster keeps its quorum), then the whole cluster stops and starts
// again. Requests meanwhile are 503; afterwards the same bridge publishes
// again, and every 204 is stored once.
func TestStatusFlowSurvivesClusterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster restarted: not in -short")
	}
	cl := natstest.NewCluster(t, 3)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgFile, []byte("nats:\n  stream:\n    replicas: 3\n    duplicate_window: 5m\ningress:\n  publish_timeout: 2s\ncommands:\n  disabled: true\n"), 0o600)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": cl.URLs()}, "-config", cfgFile)
	send := func(id string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent(id, "s-restart", "AVAILABLE"))
			if code == http.StatusNoContent {
				return
			}
			if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("%s: %d %v", id, code, err)
			}
			time.Sleep(100 * time.Millisecond) // a platform's retry interval
		}
	}
	send("r-1")
	cl.Stop(2) // stays down: two of three keep the quorum
	send("r-2")
	for i := range cl.Servers {
		cl.Stop(i)
	}
	if code, _ := post(t, http.DefaultClient, b.notify, b.token, statusEvent("r-3", "s-restart", "AVAILABLE")); code != http.StatusServiceUnavailable {
		t.Fatalf("with the whole cluster down: %d, want 503", code)
	}
	for i := range cl.Servers {
		cl.Restart(i)
	}
	cl.WaitReady(time.Minute)
	send("r-3")
	send("r-4")
	if n := streamCount(t, cl.URLs(), "QOD_STATUS"); n != 4 {
		t.Fatalf("QOD_STATUS holds %d events, want 4", n)
	}
}
