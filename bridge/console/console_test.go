package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/ingress"
)

// fakeFeed is a Feed the test drives: push statuses and results through
// the callbacks of the running Follow.
type fakeFeed struct {
	mu        sync.Mutex
	onStatus  func(Status)
	onResult  func(Result)
	following chan struct{} // closed when Follow runs
	failFirst error         // returned by the first Follow
	calls     int
	history   map[string][]Status
}

func newFakeFeed() *fakeFeed {
	return &fakeFeed{following: make(chan struct{}), history: map[string][]Status{}}
}

func (f *fakeFeed) Follow(ctx context.Context, onStatus func(Status), onResult func(Result)) error {
	f.mu.Lock()
	f.calls++
	if f.calls == 1 && f.failFirst != nil {
		f.mu.Unlock()
		return f.failFirst
	}
	f.onStatus, f.onResult = onStatus, onResult
	close(f.following)
	f.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (f *fakeFeed) History(_ context.Context, id string) ([]Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.history[id], nil
}

func (f *fakeFeed) status(id string, st bridge.QoSStatus, info bridge.StatusInfo) {
	f.mu.Lock()
	cb := f.onStatus
	f.mu.Unlock()
	cb(Status{SessionID: id, QoSStatus: st, StatusInfo: info, Time: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)})
}

func (f *fakeFeed) result(r Result) {
	f.mu.Lock()
	cb := f.onResult
	f.mu.Unlock()
	cb(r)
}

// fakeSubmitter records what the console submits.
type fakeSubmitter struct {
	mu   sync.Mutex
	got  []string
	fail error
}

func (s *fakeSubmitter) Submit(_ context.Context, action command.Action, body []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return "", s.fail
	}
	cmd, err := command.Parse(body, action)
	if err != nil {
		return "", err
	}
	s.got = append(s.got, string(action)+" "+string(body))
	return cmd.RequestID, nil
}

// running starts a Console with o (a fake feed and submitter unless set)
// and its Run, both stopped at cleanup.
func running(t *testing.T, o Options) (*Console, *fakeFeed, *fakeSubmitter) {
	t.Helper()
	feed, sub := newFakeFeed(), &fakeSubmitter{}
	if o.Feed == nil {
		o.Feed = feed
	}
	if o.Submitter == nil {
		o.Submitter = sub
	}
	if o.Linger == 0 {
		o.Linger = -1 // follow from the start: these tests are about other things
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		c.Close()
	})
	if o.Feed == Feed(feed) {
		waitClosed(t, feed.following, "Follow to start")
	}
	return c, feed, sub
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// eventually polls cond until it holds or 10 s passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// sse is one event read from a stream.
type sse struct {
	event string
	data  string
}

// stream opens /ui/events on srv and returns its events as they come; the
// stream ends when ctx does.
func stream(t testing.TB, ctx context.Context, url string, hdr http.Header) <-chan sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/ui/events", nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("events: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("events headers: %v", resp.Header)
	}
	out := make(chan sse, 1024)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		readEvents(resp.Body, out)
	}()
	return out
}

// readEvents parses a text/event-stream; comments come out as event ":".
func readEvents(r io.Reader, out chan<- sse) {
	br := bufio.NewReader(r)
	var ev sse
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				out <- ev
			}
			ev = sse{}
		case strings.HasPrefix(line, ":"):
			ev.event = ":"
		case strings.HasPrefix(line, "event: "):
			ev.event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[len("data: "):]
		}
	}
}

// nextEvent returns the next event other than a heartbeat.
func nextEvent(t testing.TB, ch <-chan sse) sse {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.event != ":" {
				return ev
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
		}
	}
}

func TestSnapshotThenIncremental(t *testing.T) {
	c, feed, _ := running(t, Options{Open: true})
	srv := httptest.NewServer(c)
	defer srv.Close()
	feed.status("s-1", bridge.StatusRequested, "")
	feed.status("s-2", bridge.StatusAvailable, "")
	feed.result(Result{Result: command.Result{RequestID: "r-1", Action: command.Create, OK: true, Status: 201,
		Session: json.RawMessage(`{"sessionId":"s-1","device":{"phoneNumber":"+36721601234567"},"qosStatus":"REQUESTED"}`)}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := stream(t, ctx, srv.URL, nil)
	ev := nextEvent(t, events)
	if ev.event != "snapshot" {
		t.Fatalf("first event %q", ev.event)
	}
	var snap snapshot
	if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Sessions) != 2 || snap.Sessions[0].SessionID != "s-2" || snap.Sessions[1].Device != "+36721601234567" ||
		snap.Sessions[1].QoSStatus != bridge.StatusRequested || len(snap.Results) != 1 || !snap.CanSubmit || !snap.Feed.OK || snap.Truncated {
		t.Fatalf("snapshot %s", ev.data)
	}

	feed.status("s-1", bridge.StatusUnavailable, bridge.InfoDeleteRequested)
	ev = nextEvent(t, events)
	var row Row
	json.Unmarshal([]byte(ev.data), &row)
	if ev.event != "session" || row.SessionID != "s-1" || row.QoSStatus != bridge.StatusUnavailable ||
		row.StatusInfo != bridge.InfoDeleteRequested || row.Device != "+36721601234567" || row.Time.IsZero() {
		t.Fatalf("incremental %s %s", ev.event, ev.data)
	}
	feed.result(Result{Result: command.Result{RequestID: "r-2", Action: command.Delete, OK: true, Status: 204}, SessionID: "s-1"})
	if ev := nextEvent(t, events); ev.event != "result" || !strings.Contains(ev.data, `"requestId":"r-2"`) {
		t.Fatalf("result event %s %s", ev.event, ev.data)
	}
}

// TestSlowClientNeverBlocks: a page whose socket takes nothing does not
// hold up the feed; once it can write again it finds itself behind the
// backlog and is disconnected, and its registration is gone.
func TestSlowClientNeverBlocks(t *testing.T) {
	c, feed, _ := running(t, Options{Open: true, Backlog: 8, FlushInterval: -1})
	w := newBlockingWriter()
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/ui/events", nil)
	served := make(chan struct{})
	go func() {
		defer close(served)
		c.ServeHTTP(w, req)
	}()
	waitClosed(t, w.entered, "the first write to block")
	if c.Clients() != 1 {
		t.Fatalf("%d clients, want 1", c.Clients())
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range 1000 {
			feed.status(fmt.Sprintf("s-%d", i), bridge.StatusAvailable, "")
		}
	}()
	waitClosed(t, published, "1,000 statuses to pass a blocked page")
	close(w.release)
	waitClosed(t, served, "the lagging page to be disconnected")
	if n := c.Clients(); n != 0 {
		t.Fatalf("%d clients after the drop, want 0", n)
	}
	if strings.Contains(w.String(), "event: session") {
		t.Fatalf("a page behind the backlog got stale events:\n%.300s", w.String())
	}
}

// blockingWriter is a ResponseWriter whose writes block until release.
type blockingWriter struct {
	hdr     http.Header
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     strings.Builder
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{hdr: http.Header{}, entered: make(chan struct{}), release: make(chan struct{})}
}

func (w *blockingWriter) Header() http.Header { return w.hdr }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}
func (w *blockingWriter) Flush() {}
func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestClosedPageUnregisters: a page that goes away frees its registration,
// and Close ends every stream.
func TestClosedPageUnregisters(t *testing.T) {
	c, feed, _ := running(t, Options{Open: true})
	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ev1 := stream(t, ctx1, srv.URL, nil)
	ev2 := stream(t, ctx2, srv.URL, nil)
	nextEvent(t, ev1)
	nextEvent(t, ev2)
	eventually(t, "2 clients", func() bool { return c.Clients() == 2 })
	cancel1()
	eventually(t, "the closed page to unregister", func() bool { return c.Clients() == 1 })

	feed.status("s-1", bridge.StatusAvailable, "")
	if ev := nextEvent(t, ev2); ev.event != "session" {
		t.Fatalf("open page got %q", ev.event)
	}
	c.Close()
	for range ev2 { // drains until the server ends the stream
	}
	eventually(t, "Close to end the streams", func() bool { return c.Clients() == 0 })
	resp, err := http.Get(srv.URL + "/ui/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("events after Close: %d, want 503", resp.StatusCode)
	}
}

func TestHeartbeat(t *testing.T) {
	c, _, _ := running(t, Options{Open: true, Heartbeat: 5 * time.Millisecond})
	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := stream(t, ctx, srv.URL, nil)
	nextEvent(t, events) // snapshot
	for ev := range events {
		if ev.event == ":" {
			return
		}
	}
	t.Fatal("stream ended without a heartbeat")
}

func TestTableBounded(t *testing.T) {
	c, feed, _ := running(t, Options{Open: true, MaxSessions: 3, MaxResults: 2})
	srv := httptest.NewServer(c)
	defer srv.Close()
	for i := range 5 {
		feed.status(fmt.Sprintf("s-%d", i), bridge.StatusAvailable, "")
		feed.result(Result{Result: command.Result{RequestID: fmt.Sprintf("r-%d", i), OK: true, Status: 200}})
	}
	feed.result(Result{Result: command.Result{RequestID: "r-4", OK: false, Status: 404}}) // redelivered: replaces
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var snap snapshot
	json.Unmarshal([]byte(nextEvent(t, stream(t, ctx, srv.URL, nil)).data), &snap)
	var ids []string
	for _, r := range snap.Sessions {
		ids = append(ids, r.SessionID)
	}
	if strings.Join(ids, ",") != "s-4,s-3,s-2" || !snap.Truncated || snap.Limit != 3 {
		t.Fatalf("sessions %v truncated %v limit %d", ids, snap.Truncated, snap.Limit)
	}
	if len(snap.Results) != 2 || snap.Results[0].RequestID != "r-3" || snap.Results[1].RequestID != "r-4" || snap.Results[1].Status != 404 {
		t.Fatalf("results %+v", snap.Results)
	}
}

// TestFeedFailureShown: a failing Follow is shown on the page and retried.
func TestFeedFailureShown(t *testing.T) {
	feed := newFakeFeed()
	feed.failFirst = errors.New("stream QOD_STATUS not found")
	c, _, _ := running(t, Options{Open: true, Feed: feed})
	waitClosed(t, feed.following, "Follow to be called again")
	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := stream(t, ctx, srv.URL, nil)
	var snap snapshot
	json.Unmarshal([]byte(nextEvent(t, events).data), &snap)
	if snap.Feed.OK || !strings.Contains(snap.Feed.Error, "QOD_STATUS") {
		t.Fatalf("feed state %+v", snap.Feed)
	}
	feed.status("s-1", bridge.StatusAvailable, "")
	if ev := nextEvent(t, events); ev.event != "feed" || !strings.Contains(ev.data, `"ok":true`) {
		t.Fatalf("recovery event %s %s", ev.event, ev.data)
	}
}

func TestPageAndHeaders(t *testing.T) {
	c, feed, _ := running(t, Options{Open: true})
	feed.history["s.1/x"] = []Status{{SessionID: "s.1/x", QoSStatus: bridge.StatusRequested}, {SessionID: "s.1/x", QoSStatus: bridge.StatusAvailable}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/ui", "text/html", `<form id="create-form"`},
		{"/ui/", "text/html", `<label for="c-phone">`},
		{"/ui/assets/console.js", "text/javascript", "textContent"},
		{"/ui/assets/console.css", "text/css", "focus-visible"},
		{"/ui/api/sessions/s.1%2Fx/history", "application/json", `"qosStatus":"AVAILABLE"`},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s: %d %s\n%.200s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: CSP %q", tc.path, csp)
		}
	}
	if strings.Contains(mustRead(t, "assets/console.js"), "innerHTML") {
		t.Error("console.js uses innerHTML")
	}
}

func mustRead(t *testing.T, name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// do sends one request to h and returns the recorded answer.
func do(h http.Handler, method, target, body string, hdr map[string]string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const goodToken = "console-token-0123456789"

func TestAuth(t *testing.T) {
	t.Run("loopback open, loopback Host only", func(t *testing.T) {
		c, _, _ := running(t, Options{Open: true})
		for host, want := range map[string]int{"127.0.0.1:9090": 200, "localhost:9090": 200, "[::1]:9090": 200, "rebound.example:9090": 403} {
			rec := do(c, "GET", "http://"+host+"/ui/api/sessions/x/history", "", nil)
			if rec.Code != want {
				t.Errorf("Host %s: %d, want %d", host, rec.Code, want)
			}
		}
	})
	t.Run("off without tokens", func(t *testing.T) {
		c, _, _ := running(t, Options{Listener: "admin.address 0.0.0.0:9090"})
		rec := do(c, "GET", "http://10.0.0.1/ui", "", nil)
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), "console off: admin.address 0.0.0.0:9090 is not loopback") || strings.Count(rec.Body.String(), "\n") != 1 {
			t.Fatalf("%d %q", rec.Code, rec.Body.String())
		}
	})

	c, _, _ := running(t, Options{Tokens: []string{"other-token-0123456789", goodToken}, LoginTTL: time.Hour})
	api := "http://10.0.0.1:9090/ui/api/sessions/x/history"
	for name, tc := range map[string]struct {
		auth string
		want int
	}{
		"no credentials": {"", 401},
		"good bearer":    {"Bearer " + goodToken, 200},
		"lower-case":     {"bearer " + goodToken, 200},
		"bad bearer":     {"Bearer wrong-token-0123456789", 401},
		"prefix":         {"Bearer " + goodToken[:10], 401},
		"basic":          {"Basic " + goodToken, 401},
	} {
		hdr := map[string]string{}
		if tc.auth != "" {
			hdr["Authorization"] = tc.auth
		}
		if rec := do(c, "GET", api, "", hdr); rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", name, rec.Code, tc.want)
		}
	}
	if rec := do(c, "GET", "http://10.0.0.1:9090/ui", "", nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `action="/ui/login"`) {
		t.Fatalf("login page: %d %.200s", rec.Code, rec.Body.String())
	}
	rec := do(c, "POST", "http://10.0.0.1:9090/ui/login", "token=wrong-token-0123456789", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "not accepted") || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("bad login: %d %v", rec.Code, rec.Result().Cookies())
	}
	rec = do(c, "POST", "http://10.0.0.1:9090/ui/login", "token="+goodToken, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	cks := rec.Result().Cookies()
	if rec.Code != 303 || len(cks) != 1 {
		t.Fatalf("login: %d %v", rec.Code, cks)
	}
	ck := cks[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/ui" || strings.Contains(ck.Value, goodToken) {
		t.Fatalf("cookie %+v", ck)
	}
	if rec := do(c, "GET", api, "", nil, ck); rec.Code != 200 {
		t.Fatalf("with cookie: %d", rec.Code)
	}
	if rec := do(c, "GET", "http://10.0.0.1:9090/ui", "", nil, ck); !strings.Contains(rec.Body.String(), `id="create-form"`) {
		t.Fatal("the page is not served with a login cookie")
	}
	exp, sig, _ := strings.Cut(ck.Value, ".")
	for name, v := range map[string]string{
		"later expiry":  "9999999999." + sig,
		"bad signature": exp + "." + strings.Repeat("A", len(sig)),
		"no signature":  exp,
		"expired":       c.cookieValue(time.Now().Add(-time.Second)),
		"other process": func() string {
			o, _ := New(Options{Tokens: []string{goodToken}})
			return o.cookieValue(time.Now().Add(time.Hour))
		}(),
		"not base64 sig": exp + ".!!",
	} {
		if rec := do(c, "GET", api, "", nil, &http.Cookie{Name: cookieName, Value: v}); rec.Code != 401 {
			t.Errorf("%s cookie: %d, want 401", name, rec.Code)
		}
	}
	// Over TLS the cookie is Secure.
	req := httptest.NewRequest("POST", "https://10.0.0.1:9090/ui/login", strings.NewReader("token="+goodToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rr := httptest.NewRecorder()
	c.ServeHTTP(rr, req)
	if cks := rr.Result().Cookies(); len(cks) != 1 || !cks[0].Secure {
		t.Fatalf("TLS login cookie %v", cks)
	}
	// Behind a TLS-terminating proxy: Secure when the proxy is trusted,
	// not when any client claims X-Forwarded-Proto.
	for _, tc := range []struct {
		trusted []netip.Prefix
		secure  bool
	}{{nil, false}, {[]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, true}} {
		pc, _, _ := running(t, Options{Tokens: []string{goodToken}, TrustedProxies: tc.trusted})
		req := httptest.NewRequest("POST", "http://10.0.0.1:9090/ui/login", strings.NewReader("token="+goodToken))
		req.RemoteAddr = "192.0.2.10:40000"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-Proto", "https")
		rr := httptest.NewRecorder()
		pc.ServeHTTP(rr, req)
		if cks := rr.Result().Cookies(); len(cks) != 1 || cks[0].Secure != tc.secure {
			t.Fatalf("proxied login (trusted %v): cookies %v, want Secure=%v", tc.trusted, cks, tc.secure)
		}
	}
	rec = do(c, "POST", "http://10.0.0.1:9090/ui/logout", "", nil, ck)
	if cks := rec.Result().Cookies(); rec.Code != 303 || len(cks) != 1 || cks[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %v", rec.Code, cks)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	c, _, sub := running(t, Options{Open: true})
	body := `{"session":{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60}}`
	url := "http://127.0.0.1:9090/ui/api/commands/create"
	for name, tc := range map[string]struct {
		hdr  map[string]string
		want int
	}{
		"cross-site fetch":     {map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		"same-site other port": {map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		"foreign Origin":       {map[string]string{"Origin": "http://evil.example"}, 403},
		"same-origin fetch":    {map[string]string{"Sec-Fetch-Site": "same-origin"}, 202},
		"same Origin":          {map[string]string{"Origin": "http://127.0.0.1:9090"}, 202},
		"no browser headers":   {nil, 202},
	} {
		rec := do(c, "POST", url, body, tc.hdr)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", name, rec.Code, tc.want, rec.Body.String())
		}
	}
	if len(sub.got) != 3 {
		t.Fatalf("%d commands submitted, want 3 (the refused ones must not be)", len(sub.got))
	}
	rec := do(c, "POST", "http://127.0.0.1:9090/ui/logout", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	if rec.Code != 403 {
		t.Fatalf("cross-site logout: %d", rec.Code)
	}
	tc, _, _ := running(t, Options{Tokens: []string{goodToken}})
	rec = do(tc, "POST", "http://10.0.0.1:9090/ui/login", "token="+goodToken, map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "cross-site"})
	if rec.Code != 403 || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("cross-site login: %d", rec.Code)
	}
}

func TestCommands(t *testing.T) {
	c, _, sub := running(t, Options{Open: true})
	url := "http://127.0.0.1:9090/ui/api/commands/"
	for _, tc := range []struct {
		action, body string
		want         int
		field        string
	}{
		{"create", `{"requestId":"r-1","session":{"device":{"phoneNumber":"+36721601234567"},"qosProfile":"QOS_L","duration":60}}`, 202, ""},
		{"extend", `{"sessionId":"s-1","requestedAdditionalDuration":600}`, 202, ""},
		{"delete", `{"sessionId":"s-1"}`, 202, ""},
		{"create", `{"sessionId":"s-1"}`, 400, "sessionId"},
		{"create", `{}`, 400, "session"},
		{"extend", `{"sessionId":"s-1","requestedAdditionalDuration":-5}`, 400, "requestedAdditionalDuration"},
		{"delete", `{"sessionID":"s-1"}`, 400, "sessionID"},
		{"delete", `{"action":"create","sessionId":"s-1"}`, 400, "action"},
		{"delete", `not json`, 400, ""},
		{"frobnicate", `{}`, 404, "action"},
	} {
		rec := do(c, "POST", url+tc.action, tc.body, nil)
		var p ingress.Problem
		json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != tc.want || p.Field != tc.field {
			t.Errorf("%s %s: %d field %q, want %d field %q (%s)", tc.action, tc.body, rec.Code, p.Field, tc.want, tc.field, rec.Body.String())
		}
		if tc.want == 400 && rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: content type %s", tc.body, rec.Header().Get("Content-Type"))
		}
		if tc.want == 202 {
			var a struct{ RequestID string }
			json.Unmarshal(rec.Body.Bytes(), &a)
			if a.RequestID == "" || (strings.Contains(tc.body, "r-1") && a.RequestID != "r-1") {
				t.Errorf("%s: answer %s", tc.body, rec.Body.String())
			}
		}
	}
	if len(sub.got) != 3 || !strings.Contains(sub.got[1], `"requestId":"`) {
		t.Fatalf("submitted %q: every command must carry its requestId", sub.got)
	}

	sub.fail = fmt.Errorf("publish: %w: nats: connection closed", ErrUnavailable)
	if rec := do(c, "POST", url+"delete", `{"sessionId":"s-1"}`, nil); rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("broker down: %d %s", rec.Code, rec.Body.String())
	}

	off, err := New(Options{Open: true, Notice: "The console needs NATS."})
	if err != nil {
		t.Fatal(err)
	}
	rec := do(off, "POST", url+"delete", `{"sessionId":"s-1"}`, nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "needs NATS") {
		t.Fatalf("no submitter: %d %s", rec.Code, rec.Body.String())
	}
}

// startStopFeed records each Follow's start (with the pages open then)
// and end.
type startStopFeed struct {
	c      *Console
	events chan string
}

func (f *startStopFeed) Follow(ctx context.Context, _ func(Status), _ func(Result)) error {
	f.events <- fmt.Sprintf("start with %d pages", f.c.Clients())
	<-ctx.Done()
	f.events <- "stop"
	return nil
}

func (f *startStopFeed) History(context.Context, string) ([]Status, error) { return nil, nil }

// TestFollowsOnlyWhilePagesOpen: with no page open the console does not
// follow the streams (a consumer receiving every status costs the bridge);
// the first page starts it, and Linger after the last page closed it stops.
func TestFollowsOnlyWhilePagesOpen(t *testing.T) {
	feed := &startStopFeed{events: make(chan string, 4)}
	c, err := New(Options{Open: true, Feed: feed, Linger: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	feed.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-feed.events:
			if got != want && (want != "start" || !strings.HasPrefix(got, "start with ") || strings.HasPrefix(got, "start with 0 ")) {
				t.Fatalf("feed: %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for the feed to %s", want)
		}
	}
	open := func() {
		c.mu.Lock()
		c.subscribeLocked()
		c.mu.Unlock()
	}
	for range 3 {
		open()
		expect("start") // with a page open, never with 0: nobody watching, nothing followed
		open()          // a second page changes nothing
		c.unsubscribe()
		c.unsubscribe()
		expect("stop") // Linger after the last page closed
	}
}

// TestPageGetsLastStatusPerSession: of the statuses a page has not been
// sent yet, only each session's last goes out, in its place among the
// other events.
func TestPageGetsLastStatusPerSession(t *testing.T) {
	c, feed, _ := running(t, Options{Open: true})
	c.mu.Lock()
	_, cursor := c.subscribeLocked()
	c.mu.Unlock()
	defer c.unsubscribe()
	feed.status("s1", bridge.StatusRequested, "")
	feed.status("s2", bridge.StatusAvailable, "")
	feed.status("s1", bridge.StatusAvailable, "")
	feed.result(Result{Result: command.Result{RequestID: "r1", Action: command.Create, OK: true, Status: 201}})
	feed.status("s1", bridge.StatusUnavailable, bridge.InfoDeleteRequested)
	frames, head, _, lagged := c.next(cursor, nil)
	if lagged || head != cursor+5 {
		t.Fatalf("head %d (cursor %d), lagged %v", head, cursor, lagged)
	}
	var got []string
	for _, f := range frames {
		s := string(f)
		switch {
		case strings.Contains(s, `"sessionId":"s1"`):
			got = append(got, "s1 "+map[bool]string{true: "UNAVAILABLE", false: "other"}[strings.Contains(s, "UNAVAILABLE")])
		case strings.Contains(s, `"sessionId":"s2"`):
			got = append(got, "s2")
		case strings.HasPrefix(s, "event: result"):
			got = append(got, "result")
		default:
			got = append(got, s)
		}
	}
	if want := "s2,result,s1 UNAVAILABLE"; strings.Join(got, ",") != want {
		t.Fatalf("frames %q, want %s", got, want)
	}
}

// TestPagesAreBounded: beyond MaxPages open event streams, a page gets 503
// with Retry-After; once one closes, a new one is served.
func TestPagesAreBounded(t *testing.T) {
	c, _, _ := running(t, Options{Open: true, MaxPages: 2})
	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx1, close1 := context.WithCancel(context.Background())
	ctx2, close2 := context.WithCancel(context.Background())
	defer close2()
	first := stream(t, ctx1, srv.URL, nil)
	stream(t, ctx2, srv.URL, nil)
	resp, err := http.Get(srv.URL + "/ui/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third page: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close1()
	for range first { // the first page's stream ends
	}
	eventually(t, "the closed page to unregister", func() bool { return c.Clients() < 2 })
	ctx3, close3 := context.WithCancel(context.Background())
	defer close3()
	stream(t, ctx3, srv.URL, nil)
}

// TestSetTokens: new tokens hold at once; removing a token ends every
// sign-in (a cookie does not say which token made it), adding one does not.
func TestSetTokens(t *testing.T) {
	const other = "other-token-0123456789"
	c, _, _ := running(t, Options{Tokens: []string{goodToken}, LoginTTL: time.Hour})
	api := "http://10.0.0.1:9090/ui/api/sessions/x/history"
	bearer := func(tok string) int {
		return do(c, "GET", api, "", map[string]string{"Authorization": "Bearer " + tok}).Code
	}
	rec := do(c, "POST", "http://10.0.0.1:9090/ui/login", "token="+goodToken, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	ck := rec.Result().Cookies()[0]
	c.SetTokens([]string{goodToken, other})
	if bearer(other) != 200 || bearer(goodToken) != 200 || do(c, "GET", api, "", nil, ck).Code != 200 {
		t.Fatal("after adding a token: both tokens and the sign-in must hold")
	}
	c.SetTokens([]string{other})
	if bearer(goodToken) != 401 || bearer(other) != 200 || do(c, "GET", api, "", nil, ck).Code != 401 {
		t.Fatal("after removing a token: it and the sign-ins must end")
	}
	c.SetTokens(nil)
	if !c.Off() {
		t.Error("off loopback with no tokens the console must be off")
	}
}
