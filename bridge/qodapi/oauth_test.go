package qodapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
)

// clock is a settable time for the client's token expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// authOf returns the Authorization of each request the fake accepted.
func authOf(f *fakeAPI) []string {
	var out []string
	for _, r := range f.requests() {
		out = append(out, r.header.Get("Authorization"))
	}
	return out
}

func TestAuthClientCredentialsRenewedBeforeExpiry(t *testing.T) {
	ts := newTokenServer(t) // tokens with expires_in 3600
	st := newStore(DialectV1)
	f := newFakeAPI(t, DialectV1, st.handle)
	c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
	clk := &clock{now: fakeNow}
	c.now = clk.Now
	ctx := context.Background()
	s, err := c.CreateSession(ctx, "r1", withSink(t, testCreate))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(3589 * time.Second) // 11s left: still good
	if _, err := c.GetSession(ctx, "r2", s.ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second) // 9s left: renewed first
	if _, err := c.GetSession(ctx, "r3", s.ID); err != nil {
		t.Fatal(err)
	}
	if got, want := authOf(f), []string{"Bearer access-token-1", "Bearer access-token-1", "Bearer access-token-2"}; !equal(got, want) {
		t.Errorf("Authorization %q, want %q", got, want)
	}
}

func TestRenewAt(t *testing.T) {
	at := fakeNow
	for _, tc := range []struct {
		expiresIn int64
		want      time.Duration
	}{{3600, 3590 * time.Second}, {10, 5 * time.Second}, {1, 500 * time.Millisecond}} {
		if got := renewAt(&oauth2.Token{ExpiresIn: tc.expiresIn}, at); !got.Equal(at.Add(tc.want)) {
			t.Errorf("expires_in %d: renew after %v, want %v", tc.expiresIn, got.Sub(at), tc.want)
		}
	}
	if got := renewAt(&oauth2.Token{}, at); !got.IsZero() {
		t.Errorf("no expiry stated: renew at %v", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAuthClientCredentials401: a 401 drops the token, a new one is
// obtained and the call is sent once more; a second 401 is the error. A
// static bearer token is never retried.
func TestAuthClientCredentials401(t *testing.T) {
	unauthorized := answer{status: 401, body: `{"status":401,"code":"UNAUTHENTICATED","message":"the access token expired"}`}
	t.Run("retried once with a new token", func(t *testing.T) {
		ts := newTokenServer(t)
		st := newStore(DialectV1)
		f := newFakeAPI(t, DialectV1, func(op string, r *http.Request, body []byte) answer {
			if r.Header.Get("Authorization") == "Bearer access-token-1" {
				return unauthorized
			}
			return st.handle(op, r, body)
		})
		c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
		s, err := c.CreateSession(context.Background(), "r1", withSink(t, testCreate))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if got := authOf(f); !equal(got, []string{"Bearer access-token-1", "Bearer access-token-2"}) {
			t.Errorf("Authorization %q", got)
		}
		if r := f.requests(); string(r[0].body) != string(r[1].body) || r[0].header.Get("x-correlator") != r[1].header.Get("x-correlator") {
			t.Errorf("the retry differs from the first attempt")
		}
		if _, err := c.GetSession(context.Background(), "r2", s.ID); err != nil || ts.requests.Load() != 2 {
			t.Errorf("the new token is kept: %v, %d token requests", err, ts.requests.Load())
		}
	})
	t.Run("a second 401 is the error", func(t *testing.T) {
		ts := newTokenServer(t)
		f := newFakeAPI(t, DialectV1, func(string, *http.Request, []byte) answer { return unauthorized })
		c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
		_, err := c.GetSession(context.Background(), "r", newUUID())
		ae, ok := errors.AsType[*APIError](err)
		if !ok || ae.Status != 401 || ae.Code != "UNAUTHENTICATED" || !errors.Is(err, ErrUnauthenticated) || Retryable(err) {
			t.Fatalf("err %v", err)
		}
		if n, tn := len(f.requests()), ts.requests.Load(); n != 2 || tn != 2 {
			t.Errorf("%d attempts, %d token requests; want 2 and 2", n, tn)
		}
	})
	t.Run("static bearer token", func(t *testing.T) {
		f := newFakeAPI(t, DialectV1, func(string, *http.Request, []byte) answer { return unauthorized })
		c := newTestClient(t, f, nil)
		if _, err := c.GetSession(context.Background(), "r", newUUID()); !errors.Is(err, ErrUnauthenticated) || len(f.requests()) != 1 {
			t.Errorf("err %v after %d attempts, want one", err, len(f.requests()))
		}
	})
}

// TestAuthClientCredentials403: a 403 is final: the CAMARA error, no new
// token, no retry.
func TestAuthClientCredentials403(t *testing.T) {
	ts := newTokenServer(t)
	f := newFakeAPI(t, DialectV1, func(string, *http.Request, []byte) answer {
		return answer{status: 403, body: `{"status":403,"code":"PERMISSION_DENIED","message":"Client does not have sufficient permissions to perform this action."}`}
	})
	c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
	_, err := c.GetSession(context.Background(), "r", newUUID())
	ae, ok := errors.AsType[*APIError](err)
	if !ok || ae.Status != 403 || ae.Code != "PERMISSION_DENIED" || !errors.Is(err, ErrPermissionDenied) || Retryable(err) {
		t.Fatalf("err %v", err)
	}
	if n, tn := len(f.requests()), ts.requests.Load(); n != 1 || tn != 1 {
		t.Errorf("%d attempts, %d token requests; want 1 and 1", n, tn)
	}
}

// TestAuthClientCredentialsOneFetch: calls that find no token at once share
// one token request.
func TestAuthClientCredentialsOneFetch(t *testing.T) {
	ts := newTokenServer(t)
	f := newFakeAPI(t, DialectV1, newStore(DialectV1).handle)
	c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := c.RetrieveSessions(context.Background(), "r"+strconv.Itoa(i), []byte(testDevice)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

// TestAuthTokenWaitHonoursCtx: a call waiting for another call's token
// request gives up when its own ctx ends.
func TestAuthTokenWaitHonoursCtx(t *testing.T) {
	ts := newTokenServer(t)
	ts.hang = true
	ts.arrived = make(chan struct{}, 1)
	f := newFakeAPI(t, DialectV1, newStore(DialectV1).handle)
	c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth(); o.Timeout = time.Minute })
	first, cancelFirst := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.GetSession(first, "r1", newUUID())
		done <- err
	}()
	select {
	case <-ts.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the token request never arrived")
	}
	waiting, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.GetSession(waiting, "r2", newUUID()); !errors.Is(err, context.Canceled) || Retryable(err) {
		t.Errorf("waiting call: %v, want its own ctx's error", err)
	}
	cancelFirst()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("first call: %v", err)
	}
	if len(f.requests()) != 0 {
		t.Errorf("the API was called without a token")
	}
}

// simCounter counts what the simulator answered, by path and status.
type simCounter struct {
	mu  sync.Mutex
	got map[string]int // "<path>" and "<path> <status>"
}

func (sc *simCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, status: 200}
		h.ServeHTTP(rw, r)
		key := r.URL.Path
		if key != qodsim.TokenPath {
			key = "api"
		}
		sc.mu.Lock()
		sc.got[key]++
		sc.got[key+" "+strconv.Itoa(rw.status)]++
		sc.mu.Unlock()
	})
}

func (sc *simCounter) count(key string) int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.got[key]
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

// TestOAuthAgainstSimulator: the client in the simulator's OAuth mode, end
// to end: client credentials, the token reused and renewed when it
// expires, a 401 answered by one new token and one retry, a 403 returned
// with its CAMARA code and not retried.
func TestOAuthAgainstSimulator(t *testing.T) {
	simClock := qodsim.NewManualClock(fakeNow)
	sim, err := qodsim.New(qodsim.Options{Clock: simClock, AvailableDelay: -1, OAuth: qodsim.OAuth{Clients: []qodsim.OAuthClient{
		{ID: "bridge", Secret: "bridge-secret"},
		{ID: "other", Secret: "other-secret"},
		{ID: "reader", Secret: "reader-secret", Scopes: []string{qodsim.ScopeSessionsCreate, qodsim.ScopeSessionsRead}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	counter := &simCounter{got: map[string]int{}}
	srv := httptest.NewServer(counter.wrap(sim.Handler()))
	t.Cleanup(func() { srv.Close(); _ = sim.Close() })

	var tokenRequests, apiCalls, api401 int
	// step checks what the simulator saw since the previous step.
	step := func(t *testing.T, tokens, calls, unauthorized int) {
		t.Helper()
		got := [3]int{counter.count(qodsim.TokenPath) - tokenRequests, counter.count("api") - apiCalls, counter.count("api 401") - api401}
		if want := [3]int{tokens, calls, unauthorized}; got != want {
			t.Errorf("token requests, API calls, API 401s: %v, want %v", got, want)
		}
		tokenRequests, apiCalls, api401 = counter.count(qodsim.TokenPath), counter.count("api"), counter.count("api 401")
	}
	client := func(t *testing.T, id string, params url.Values, now func() time.Time) *Client {
		c, err := New(Options{BaseURL: srv.URL + qodsim.BasePathV1, Auth: Auth{ClientCredentials: &ClientCredentials{
			TokenURL: srv.URL + qodsim.TokenPath, ClientID: id, ClientSecret: id + "-secret", EndpointParams: params,
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if now != nil {
			c.now = now
		}
		return c
	}
	ctx := context.Background()
	create := []byte(`{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":7200}`)

	// The bridge's client keeps time with the simulator.
	bridge := client(t, "bridge", nil, simClock.Now)
	var id string
	t.Run("client credentials", func(t *testing.T) {
		s, err := bridge.CreateSession(ctx, "c-1", create)
		if err != nil {
			t.Fatal(err)
		}
		id = s.ID
		if _, err := bridge.GetSession(ctx, "c-2", id); err != nil {
			t.Fatal(err)
		}
		step(t, 1, 2, 0) // one token for both calls
	})
	t.Run("renewed on expiry", func(t *testing.T) {
		simClock.Advance(qodsim.DefaultTokenTTL)
		if _, err := bridge.ExtendSession(ctx, "c-3", id, 60); err != nil {
			t.Fatal(err)
		}
		step(t, 1, 1, 0) // a new token before the call: no 401
	})
	t.Run("401: one new token and one retry", func(t *testing.T) {
		// This client keeps real time: its token is good for an hour by
		// its clock, while the simulator's clock runs ahead.
		c := client(t, "bridge", nil, nil)
		if _, err := c.GetSession(ctx, "c-4", id); err != nil {
			t.Fatal(err)
		}
		step(t, 1, 1, 0)
		simClock.Advance(qodsim.DefaultTokenTTL)
		if _, err := c.GetSession(ctx, "c-5", id); err != nil {
			t.Fatalf("after the simulator expired the token: %v", err)
		}
		step(t, 1, 2, 1)
		bridge = client(t, "bridge", nil, simClock.Now)
	})
	t.Run("401 twice: the error", func(t *testing.T) {
		// The simulator's expires_in=0 issues tokens expired already.
		c := client(t, "bridge", url.Values{"expires_in": {"0"}}, simClock.Now)
		_, err := c.GetSession(ctx, "c-6", id)
		if ae, ok := errors.AsType[*APIError](err); !ok || ae.Status != 401 || ae.Code != "UNAUTHENTICATED" || Retryable(err) {
			t.Fatalf("err %v", err)
		}
		step(t, 2, 2, 2)
	})
	t.Run("403 missing scope: the error, no retry", func(t *testing.T) {
		c := client(t, "reader", nil, simClock.Now)
		if _, err := c.GetSession(ctx, "c-7", id); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("reader gets another client's session: %v", err)
		}
		step(t, 1, 1, 0)
		err := c.DeleteSession(ctx, "c-8", id)
		ae, ok := errors.AsType[*APIError](err)
		if !ok || ae.Status != 403 || ae.Code != "PERMISSION_DENIED" || ae.Op != "deleteSession" || Retryable(err) || !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("delete without the scope: %v", err)
		}
		step(t, 0, 1, 0)
	})
	t.Run("403 another client's session", func(t *testing.T) {
		c := client(t, "other", nil, simClock.Now)
		_, err := c.ExtendSession(ctx, "c-9", id, 60)
		if ae, ok := errors.AsType[*APIError](err); !ok || ae.Status != 403 || ae.Code != "PERMISSION_DENIED" {
			t.Fatalf("extend of another client's session: %v", err)
		}
		list, err := c.RetrieveSessions(ctx, "c-10", []byte(`{"phoneNumber":"+36721601234567"}`))
		if err != nil || len(list) != 0 {
			t.Errorf("another client's list: %v %v", list, err)
		}
		step(t, 1, 2, 0)
	})
	t.Run("the owner", func(t *testing.T) {
		list, err := bridge.RetrieveSessions(ctx, "c-11", []byte(`{"phoneNumber":"+36721601234567"}`))
		if err != nil || len(list) != 1 || list[0].ID != id {
			t.Fatalf("own list: %v %v", list, err)
		}
		if err := bridge.DeleteSession(ctx, "c-12", id); err != nil {
			t.Fatal(err)
		}
		step(t, 1, 2, 0)
	})
}
