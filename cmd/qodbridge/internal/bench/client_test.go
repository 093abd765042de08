package bench

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testLoadClient is newLoadClient for a target that must be valid; its
// idle connections are closed when the test ends.
func testLoadClient(t *testing.T, target, token string, conc int, timeout time.Duration) *loadClient {
	t.Helper()
	c, err := newLoadClient(target, token, conc, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.closeIdle)
	return c
}

// connCounter counts the connections a test server accepted.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

func TestLoadClientSendsRequestAndReadsAnswers(t *testing.T) {
	var conns connCounter
	type seen struct {
		host, ct, auth, ceID, body string
		length                     int64
	}
	got := make(chan seen, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- seen{r.Host, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.Header.Get("Ce-Id"), string(b), r.ContentLength}:
		default:
		}
		switch r.URL.Query().Get("answer") {
		case "503":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"title":"Service Unavailable"}`)
		case "chunked":
			// Flushed before the end: net/http sends it chunked.
			_, _ = io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = conns.hook
	srv.Start()
	defer srv.Close()

	ctx := context.Background()
	c := testLoadClient(t, srv.URL+"/notifications?x=1", "tok-123", 4, 5*time.Second)
	hdr := []reqHeader{{"Content-Type", "application/json"}, {"Ce-Id", "e-1"}}
	status, err := c.post(ctx, hdr, []byte(`{"a":1}`))
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("post: %d, %v; want 204", status, err)
	}
	want := seen{srv.Listener.Addr().String(), "application/json", "Bearer tok-123", "e-1", `{"a":1}`, 7}
	if s := <-got; s != want {
		t.Errorf("server saw %+v, want %+v", s, want)
	}

	// Answers with bodies, plain and chunked, on the same connection.
	for _, tc := range []struct {
		answer string
		want   int
	}{{"503", 503}, {"chunked", 200}, {"", 204}} {
		c2 := testLoadClient(t, srv.URL+"/notifications?answer="+tc.answer, "", 4, 5*time.Second)
		for range 3 {
			if status, err := c2.post(ctx, nil, []byte("{}")); err != nil || status != tc.want {
				t.Errorf("answer %q: %d, %v; want %d", tc.answer, status, err, tc.want)
			}
		}
		c2.closeIdle()
	}
	// One connection for the first client, one per answer kind: every
	// answer was read to its end and its connection reused.
	if n := conns.n.Load(); n != 4 {
		t.Errorf("server accepted %d connections, want 4 (one per client)", n)
	}
}

func TestLoadClientConnectionClose(t *testing.T) {
	var conns connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ConnState = conns.hook
	srv.Start()
	defer srv.Close()
	c := testLoadClient(t, srv.URL, "", 2, 5*time.Second)
	for i := range 3 {
		if status, err := c.post(context.Background(), nil, nil); err != nil || status != http.StatusAccepted {
			t.Fatalf("post %d: %d, %v; want 202", i, status, err)
		}
	}
	if n := conns.n.Load(); n != 3 {
		t.Errorf("server accepted %d connections, want 3: one per answer that said Connection: close", n)
	}
}

// A connection the server closed while it was idle: the request goes once
// more on a new connection, and the server sees it once.
func TestLoadClientResendsOnIdleClosedConnection(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := testLoadClient(t, srv.URL, "", 1, 5*time.Second)
	ctx := context.Background()
	if _, err := c.post(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	status, err := c.post(ctx, nil, nil)
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("post on the closed connection: %d, %v; want 204 from a new one", status, err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("server handled %d requests, want 2", n)
	}
}

// An answer cut off after it began is an error, never sent again: the
// server may have acted on the request.
func TestLoadClientDoesNotResendAfterAnswerBegan(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			br := bufio.NewReader(conn)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, req.Body)
				if n == 1 && req.Header.Get("X-N") == "2" {
					_, _ = io.WriteString(conn, "HTTP/1.1 204 No Con")
					break
				}
				_, _ = io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
			}
			_ = conn.Close()
		}
	})
	c := testLoadClient(t, "http://"+ln.Addr().String()+"/", "", 1, 5*time.Second)
	// The server reads a connection until the client closes it.
	defer func() {
		c.closeIdle()
		_ = ln.Close()
		wg.Wait()
	}()
	ctx := context.Background()
	if status, err := c.post(ctx, []reqHeader{{"X-N", "1"}}, nil); err != nil || status != 204 {
		t.Fatalf("first post: %d, %v", status, err)
	}
	status, err := c.post(ctx, []reqHeader{{"X-N", "2"}}, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut-off answer: %d, %v; want io.ErrUnexpectedEOF", status, err)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1: a cut-off answer must not be retried", n)
	}
	// The client recovers on a new connection.
	if status, err := c.post(ctx, []reqHeader{{"X-N", "3"}}, nil); err != nil || status != 204 {
		t.Fatalf("post after the error: %d, %v", status, err)
	}
}

func TestLoadClientGivesUpWhenInterruptedOrTimedOut(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	c := testLoadClient(t, srv.URL, "", 1, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var wg sync.WaitGroup
	// Whatever happens below, the post is interrupted and waited for.
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() {
		_, err := c.post(ctx, nil, nil)
		done <- err
	})
	select {
	case <-started: // in flight: the server has it
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the server")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("interrupted post returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("post did not return after its context was cancelled")
	}

	short := testLoadClient(t, srv.URL, "", 1, 50*time.Millisecond)
	var ne net.Error
	if _, err := short.post(context.Background(), nil, nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("post to a server that never answers: %v; want a timeout", err)
	}
}

func TestLoadClientTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	c := testLoadClient(t, srv.URL, "", 1, 5*time.Second)
	// Verified like net/http's client: against the system roots, which do
	// not hold the test server's certificate.
	if _, err := c.post(context.Background(), nil, nil); err == nil {
		t.Fatal("post to a server with an unknown certificate succeeded")
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c.tlsConf.RootCAs = roots
	for i := range 2 {
		if status, err := c.post(context.Background(), nil, nil); err != nil || status != 204 {
			t.Fatalf("post %d over TLS: %d, %v", i, status, err)
		}
	}
}

func TestNewLoadClientRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "http://", "://x", "127.0.0.1:8080/notifications"} {
		if _, err := newLoadClient(u, "", 1, time.Second); err == nil {
			t.Errorf("newLoadClient(%q): no error", u)
		}
	}
	c := testLoadClient(t, "http://[::1]:8080/n?a=b", "t", 1, time.Second)
	if c.addr != "[::1]:8080" {
		t.Errorf("addr %q", c.addr)
	}
	if want := "POST /n?a=b HTTP/1.1\r\nHost: [::1]:8080\r\nUser-Agent: qodbridge-bench\r\nAuthorization: Bearer t\r\n"; string(c.head) != want {
		t.Errorf("head %q, want %q", c.head, want)
	}
	if c, _ := newLoadClient("https://example.invalid/x", "", 1, time.Second); c == nil || c.addr != "example.invalid:443" || c.tlsConf.ServerName != "example.invalid" {
		t.Errorf("https default port or server name wrong: %+v", c)
	}
}
