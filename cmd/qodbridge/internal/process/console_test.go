package process

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/qodbridge/qodbridge/bridge/console"
	"github.com/qodbridge/qodbridge/sinks/natsconsole"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// findBrowser returns a Chromium or Chrome binary, or skips the test.
func findBrowser(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no browser found (chromium, chromium-browser or google-chrome on PATH): skipping the browser test; " +
		"install the Debian package chromium (.ci/run does) to run it")
	return ""
}

// TestConsoleInBrowser drives the console in headless Chromium against the
// zero-config bridge with its simulator: a session created from the form
// (typed with the keyboard) appears as REQUESTED, then AVAILABLE; deleted
// from its row it turns UNAVAILABLE / DELETE_REQUESTED; both results show;
// all without reloading the page. With QODBRIDGE_SCREENSHOT set it writes
// a screenshot there (the README's deploy/console.png).
func TestConsoleInBrowser(t *testing.T) {
	browser := findBrowser(t)
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("sim:\n  available_delay: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := startBridge(t, nil, "-config", cfgFile)
	if !strings.HasPrefix(b.console, "http://127.0.0.1:") || !strings.HasSuffix(b.console, "/ui") {
		t.Fatalf("banner console line %q", b.console)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	do("open the console",
		chromedp.Navigate(b.console),
		chromedp.WaitVisible(css("#empty")),
		chromedp.WaitVisible(css("#conn.conn-live")),
	)
	// Record every status the table shows, so that a REQUESTED that turns
	// AVAILABLE between two polls is still seen; and mark the page, so a
	// reload would show.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`
		window.__noReload = true;
		window.__seen = [];
		new MutationObserver(() => {
			for (const tr of document.querySelectorAll('#sessions tbody tr')) {
				const s = tr.dataset.status + '/' + (tr.dataset.statusInfo || '');
				if (window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);
			}
		}).observe(document.querySelector('#sessions tbody'), {subtree: true, childList: true, attributes: true});
		true`)); err != nil {
		t.Fatalf("install the recorder: %v", err)
	}

	do("fill in the form with the keyboard",
		chromedp.SendKeys(css("#c-phone"), "+36721601234567"),
		chromedp.SendKeys(css("#c-ipv4"), "233.252.0.2"),
		chromedp.Focus(css("#c-profile")),
		chromedp.KeyEvent(kb.ArrowUp), // QOS_L → QOS_M
		chromedp.SetValue(css("#c-duration"), ""),
		chromedp.SendKeys(css("#c-duration"), "300"),
	)
	if profile, err := chromedp.Run(ctx, chromedp.Value(css("#c-profile"))); err != nil || profile != "QOS_M" {
		t.Fatalf("the arrow key chose %q (%v), want QOS_M", profile, err)
	}
	do("submit with Enter and see it REQUESTED, then AVAILABLE",
		chromedp.SendKeys(css("#c-duration"), kb.Enter),
		chromedp.WaitVisible(css(`#results li[data-state="ok"]`)),
		chromedp.WaitVisible(css(`#sessions tbody tr[data-status="AVAILABLE"]`)),
	)
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(css(`#sessions tbody tr`), "data-session-id"))
	if err != nil || attr.Value == "" {
		t.Fatalf("session id: %v", err)
	}
	id := attr.Value
	do("open its history",
		chromedp.Click(css(`#sessions tbody tr td.sid button`)),
		chromedp.WaitVisible(css(`#history li:nth-child(2)`)),
	)
	do("delete it from its row (two clicks: arm, confirm)",
		chromedp.Click(css(`#sessions tbody tr button.delete`)),
		chromedp.WaitVisible(css(`#sessions tbody tr button.delete.armed`)),
		chromedp.Click(css(`#sessions tbody tr button.delete`)),
		chromedp.WaitVisible(css(`#sessions tbody tr[data-status="UNAVAILABLE"][data-status-info="DELETE_REQUESTED"]`)),
		chromedp.WaitVisible(css(`#results li[data-state="ok"]:nth-child(2)`)),
		chromedp.WaitVisible(css(`#history li:nth-child(3)`)),
	)
	seen, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__seen`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "REQUESTED/ AVAILABLE/ UNAVAILABLE/DELETE_REQUESTED"; strings.Join(seen, " ") != want {
		t.Errorf("statuses shown %q, want %s", seen, want)
	}
	if noReload, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`)); err != nil || !noReload {
		t.Errorf("the page was reloaded (%v)", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(css(`#sessions tbody tr`)))
	if err != nil || !strings.Contains(text, id) || !strings.Contains(text, "+36721601234567") || !strings.Contains(text, "DELETE_REQUESTED") {
		t.Errorf("row text %q (%v) lacks the session id, device or statusInfo", text, err)
	}
	if path := os.Getenv("QODBRIDGE_SCREENSHOT"); path != "" {
		// A fuller table for the picture: sessions a platform notified.
		for i, sid := range []string{"9b2e4c1a-7d3f-4a8e-b5c6-0f1e2d3c4b5a", "1c8f3e7b-2a4d-4f6e-8b9c-5d4e3f2a1b0c", "e4a7b2c9-6f1d-4c3e-a8b5-7c6d5e4f3a2b"} {
			st := []string{"AVAILABLE", "REQUESTED", "AVAILABLE"}[i]
			if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent(fmt.Sprintf("shot-%d", i), sid, st)); err != nil || code != 204 {
				t.Fatalf("POST: %d %v", code, err)
			}
		}
		do("wait for the notified sessions", chromedp.WaitVisible(css(`#sessions tbody tr:nth-child(4)`)))
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelectorAll('tr.flash').forEach((tr) => tr.classList.remove('flash')); true`)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", path)
	}

	// An invalid form is reported in the page, naming the field.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('c-ipv4').value = ''; true`)); err != nil {
		t.Fatal(err)
	}
	do("submit an invalid form",
		chromedp.Click(css("#c-submit")),
		chromedp.WaitVisible(css("#c-error")),
	)
	if text, err := chromedp.Run(ctx, chromedp.Text(css("#c-error"))); err != nil || !strings.Contains(text, "Application server IPv4 address") {
		t.Errorf("form error %q (%v) does not name the field", text, err)
	}

	// Readable on a narrow screen: nothing wider than 360 px.
	do("narrow screen", chromedp.EmulateViewport(360, 740))
	if width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || width > 360 {
		t.Errorf("at 360 px the page is %d px wide (%v)", width, err)
	}
	if path := os.Getenv("QODBRIDGE_SCREENSHOT"); path != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		narrow := strings.TrimSuffix(path, ".png") + "-narrow.png"
		if err := os.WriteFile(narrow, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("narrow screenshot written to %s", narrow)
	}
}

// TestConsoleProtectedOffLoopback: on a non-loopback admin address the
// console asks for an admin token (never a notification sender's), and
// /metrics, /readyz's detail and pprof need one too while /healthz and
// plain /readyz stay open for probes; with admin.ui false the console is
// gone.
func TestConsoleProtectedOffLoopback(t *testing.T) {
	const token = "console-test-token-0123456789"
	const sender = "sender-test-token-0123456789"
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_ADMIN_ADDRESS": "0.0.0.0:0", "QODBRIDGE_ADMIN_TOKENS": token,
		"QODBRIDGE_AUTH_TOKENS": sender, "QODBRIDGE_ADMIN_PPROF": "true"})
	if !strings.Contains(b.console, "/ui") {
		t.Fatalf("banner console line %q", b.console)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(b.console, "/ui"), "http://"))
	base := "http://127.0.0.1:" + port
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/ui", ""); code != 200 || !strings.Contains(body, `action="/ui/login"`) {
		t.Fatalf("/ui without credentials: %d, want the login page", code)
	}
	if code, _ := get("/ui/api/sessions/x/history", ""); code != 401 {
		t.Fatalf("history without credentials: %d", code)
	}
	if code, _ := get("/ui/api/sessions/x/history", "wrong-token-0123456789"); code != 401 {
		t.Fatalf("history with a wrong token: %d", code)
	}
	if code, body := get("/ui/api/sessions/x/history", token); code != 200 || !strings.Contains(body, `"history":[]`) {
		t.Fatalf("history with the token: %d %s", code, body)
	}
	if code, _ := get("/ui/api/sessions/x/history", sender); code != 401 {
		t.Fatalf("history with a notification sender's token: %d, want 401", code)
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/healthz", "", 200}, {"/readyz", "", 200},
		{"/metrics", "", 401}, {"/metrics", sender, 401}, {"/metrics", token, 200},
		{"/debug/pprof/", "", 401}, {"/debug/pprof/", token, 200},
	} {
		if code, _ := get(c.path, c.auth); code != c.want {
			t.Errorf("%s (token %q): %d, want %d", c.path, c.auth, code, c.want)
		}
	}

	b2, _ := startBridge(t, map[string]string{"QODBRIDGE_ADMIN_UI": "false"})
	if b2.console != "" {
		t.Fatalf("admin.ui false still prints %q", b2.console)
	}
	resp, err := http.Get(b2.admin + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("admin.ui false: /ui answers %d", resp.StatusCode)
	}
}

// TestConsoleKafkaOnly: without NATS the console says it needs NATS.
func TestConsoleKafkaOnly(t *testing.T) {
	kc := newKafka(t, 0)
	defer kc.Close()
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": "off", "QODBRIDGE_KAFKA_BROKERS": kc.ListenAddrs()[0]})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := openPage(t, ctx, b.console+"/events")
	if !strings.Contains(p.snapshot, "needs NATS") && !strings.Contains(p.snapshot, "Kafka only") || strings.Contains(p.snapshot, `"canSubmit":true`) {
		t.Fatalf("snapshot %s", p.snapshot)
	}
}

// TestConsoleExternalNATS: with an external NATS server and another
// subject prefix the console follows the right subjects.
func TestConsoleExternalNATS(t *testing.T) {
	ns := natstest.Embedded(t)
	b, _ := startBridge(t, map[string]string{"QODBRIDGE_NATS_URL": ns.ClientURL(), "QODBRIDGE_SUBJECT_PREFIX": "acme.qod"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := openPage(t, ctx, b.console+"/events")
	if code, err := post(t, http.DefaultClient, b.notify, b.token, statusEvent("x-1", "ext.session", "AVAILABLE")); err != nil || code != 204 {
		t.Fatalf("POST: %d %v", code, err)
	}
	waitFor(t, "the status on the page", func() bool { return p.sessions.Load() >= 1 })
	resp, err := http.Get(b.console + "/api/sessions/ext.session/history")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"qosStatus":"AVAILABLE"`) {
		t.Fatalf("history: %d %s", resp.StatusCode, body)
	}
}

// page is an open event stream that counts the session events it gets.
type page struct {
	snapshot string
	sessions atomic.Int64           // "session" events after the snapshot
	marker   atomic.Pointer[string] // the last session "bench-end-…" seen
	ended    chan struct{}
}

func openPage(t testing.TB, ctx context.Context, url string) *page {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("%s: %d", url, resp.StatusCode)
	}
	p := &page{ended: make(chan struct{})}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for p.snapshot == "" {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the snapshot: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			p.snapshot = line
		}
	}
	go func() {
		defer close(p.ended)
		defer resp.Body.Close()
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if bytes.Equal(line, []byte("event: session\n")) {
				p.sessions.Add(1)
			}
			if _, rest, ok := bytes.Cut(line, []byte(`"sessionId":"bench-end-`)); ok {
				if id, _, ok := bytes.Cut(rest, []byte(`"`)); ok {
					m := "bench-end-" + string(id)
					p.marker.Store(&m)
				}
			}
		}
	}()
	return p
}

// consoleStreams reads the qodbridge_console_streams gauge.
func consoleStreams(t testing.TB, admin string) int {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "qodbridge_console_streams "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("no qodbridge_console_streams in /metrics")
	return 0
}

// waitFor polls cond until it holds, for at most a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !sinktest.Poll(time.Minute, 5*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestConsoleSlowPageDoesNotBlock: a client that opens the event stream
// and never reads does not hold up publishing or the other pages: 1,000
// notifications are all answered 204 and both reading pages get every
// one; closing it frees its stream.
func TestConsoleSlowPageDoesNotBlock(t *testing.T) {
	b, _ := startBridge(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readers := []*page{openPage(t, ctx, b.console+"/events"), openPage(t, ctx, b.console+"/events")}

	stuck, err := net.Dial("tcp", strings.TrimPrefix(b.admin, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /ui/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
	waitFor(t, "3 open streams", func() bool { return consoleStreams(t, b.admin) == 3 })

	const n = 1000
	var wg sync.WaitGroup
	var failed atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				code, err := post(t, client, b.notify, b.token, statusEvent(fmt.Sprintf("slow-%d", i), fmt.Sprintf("slow-s-%d", i), "AVAILABLE"))
				if err != nil || code != 204 {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d notifications not answered 204", f, n)
	}
	for i, p := range readers {
		waitFor(t, fmt.Sprintf("page %d to get all %d statuses", i, n), func() bool { return p.sessions.Load() >= n })
	}
	stuck.Close()
	waitFor(t, "the closed client's stream to be freed", func() bool { return consoleStreams(t, b.admin) == 2 })
	cancel()
	for _, p := range readers {
		<-p.ended
	}
	waitFor(t, "every stream to be freed", func() bool { return consoleStreams(t, b.admin) == 0 })
}

// BenchmarkIngressWithConsole measures, in one run, the ingress
// (HTTP → ingress → JetStream PubAck → 204, as BenchmarkE2E/bridge) with
//
//	no-console   the console not running
//	0-pages      the console running, no page open (it then follows nothing)
//	1-page       one open page (the console follows the streams)
//	100-pages    100 open pages, each receiving the last status of every
//	             session that changed, every 200 ms
//
// and reports each one's throughput relative to no-console's in the same
// run (x-no-console), the CPU time per event of this process (load
// generator, bridge, NATS server: cpu-µs/event, steadier than throughput on
// a shared machine), and for 100-pages the CPU time of the page readers,
// which run in a process of their own as browsers would
// (reader-cpu-µs/event), and how many pages were dropped for falling
// behind. After the load, one more status (session bench-end-<n>) is sent:
// every page must get it or be dropped.
//
//	go test -run - -bench IngressWithConsole -benchtime 5s ./cmd/qodbridge
func BenchmarkIngressWithConsole(b *testing.B) {
	bb := newBenchBridge(b, "console-bench")
	ctx := context.Background()
	sink, h, token, body := bb.sink, bb.h, bb.token, bb.body
	rate := map[string]float64{} // events/s of each sub-benchmark's last run; no-console runs first
	bench := func(name string, pages int) {
		b.Run(name, func(b *testing.B) {
			var readers *pageReaders
			if pages >= 0 {
				c, err := console.New(console.Options{Open: true, Feed: natsconsole.New(sink.JetStream(), natsconsole.Options{})})
				if err != nil {
					b.Fatal(err)
				}
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- c.Run(runCtx) }()
				defer func() { stop(); <-done; c.Close() }()
				srv := httptest.NewServer(c)
				defer srv.Close()
				if pages > 0 {
					readers = startPageReaders(b, pages, srv.URL+"/ui/events")
				}
			}
			b.ResetTimer()
			cpu0 := CPUTime()
			measureHTTP(b, h, token, body)
			b.StopTimer()
			cpu := CPUTime() - cpu0
			rate[name] = float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate[name], "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			if base := rate["no-console"]; base > 0 && name != "no-console" {
				b.ReportMetric(rate[name]/base, "x-no-console")
			}
			if readers != nil {
				marker := fmt.Sprintf("bench-end-%d", bb.seq.Add(1))
				req := httptest.NewRequest(http.MethodPost, "/notifications", strings.NewReader(statusEvent(marker, marker, "AVAILABLE")))
				req.Header.Set("Content-Type", "application/cloudevents+json")
				req.Header.Set("Authorization", "Bearer "+token)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusNoContent {
					b.Fatalf("the last status: %d %s", rec.Code, rec.Body)
				}
				dropped, readerCPU := readers.finish(b, marker)
				b.ReportMetric(float64(dropped), "pages-dropped")
				b.ReportMetric(float64(readerCPU.Microseconds())/float64(b.N), "reader-cpu-µs/event")
			}
		})
	}
	bench("no-console", -1)
	bench("0-pages", 0)
	bench("1-page", 1)
	bench("100-pages", 100)
}

// readersEnv makes TestConsolePageReaders read console pages: "<n> <url>".
const readersEnv = "QODBRIDGE_CONSOLE_PAGES"

// pageReaders is the process of TestConsolePageReaders.
type pageReaders struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startPageReaders runs the test binary as a process that opens n pages
// of url, and returns once every page got its snapshot.
func startPageReaders(b *testing.B, n int, url string) *pageReaders {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestConsolePageReaders$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s", readersEnv, n, url))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	r := &pageReaders{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if r.line(b, "ready") == "" {
		b.Fatal("the page readers did not start")
	}
	return r
}

// line returns the next line of the readers' output starting with prefix.
func (r *pageReaders) line(b *testing.B, prefix string) string {
	for r.out.Scan() {
		if strings.HasPrefix(r.out.Text(), prefix) {
			return r.out.Text()
		}
	}
	b.Fatalf("page readers: no %q line (%v)", prefix, r.out.Err())
	return ""
}

// finish waits until every page got the status of session marker (or was
// dropped), ends the process and returns the pages dropped and the
// process's CPU time.
func (r *pageReaders) finish(b *testing.B, marker string) (dropped int, cpu time.Duration) {
	fmt.Fprintf(r.in, "expect %s\n", marker)
	done := r.line(b, "done ")
	if _, err := fmt.Sscanf(done, "done %d", &dropped); err != nil {
		b.Fatalf("page readers: %q", done)
	}
	r.in.Close()
	if err := r.cmd.Wait(); err != nil {
		b.Fatalf("page readers: %v", err)
	}
	return dropped, r.cmd.ProcessState.UserTime() + r.cmd.ProcessState.SystemTime()
}

// TestConsolePageReaders is not a test of its own: BenchmarkIngressWithConsole
// runs the test binary with QODBRIDGE_CONSOLE_PAGES set, and this reads the
// pages in that process. It prints "ready" when every page got its
// snapshot; for each "expect <marker>" line on stdin it waits until every
// page got the status of session <marker> or was dropped, and prints
// "done <dropped>".
func TestConsolePageReaders(t *testing.T) {
	spec := os.Getenv(readersEnv)
	if spec == "" {
		t.Skip("runs only as BenchmarkIngressWithConsole's page-reading process")
	}
	var n int
	var url string
	if _, err := fmt.Sscanf(spec, "%d %s", &n, &url); err != nil {
		t.Fatalf("%s=%q: %v", readersEnv, spec, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps := make([]*page, n)
	for i := range ps {
		ps[i] = openPage(t, ctx, url)
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var want string
		if _, err := fmt.Sscanf(sc.Text(), "expect %s", &want); err != nil {
			t.Fatalf("stdin %q: %v", sc.Text(), err)
		}
		dropped := 0
		for _, p := range ps {
			deadline := time.NewTimer(time.Minute)
			tick := time.NewTicker(5 * time.Millisecond)
		wait:
			for m := p.marker.Load(); m == nil || *m != want; m = p.marker.Load() {
				select {
				case <-p.ended:
					dropped++
					break wait
				case <-tick.C:
				case <-deadline.C:
					t.Fatalf("a page did not get session %s within a minute (%d statuses)", want, p.sessions.Load())
				}
			}
			tick.Stop()
			deadline.Stop()
		}
		fmt.Printf("done %d\n", dropped)
	}
}
