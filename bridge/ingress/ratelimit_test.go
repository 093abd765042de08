package ingress

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRateLimitPerSource(t *testing.T) {
	pub := &recorder{}
	h := newHandler(t, pub, func(o *Options) { o.RateLimit = 1; o.RateBurst = 3 })
	send := func(remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/notifications", strings.NewReader(readFile(t, "nac-v0-cloudevent.json")))
		r.RemoteAddr = remote
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := range 3 {
		if w := send("192.0.2.1:1000"); w.Code != 204 {
			t.Fatalf("request %d within the burst: %d", i, w.Code)
		}
	}
	w := send("192.0.2.1:1001") // same host, other port: same source
	if w.Code != 429 {
		t.Fatalf("over the limit: %d", w.Code)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	if !strings.Contains(w.Body.String(), "rate limit of 1 requests per second") {
		t.Fatalf("body %s", w.Body)
	}
	if w := send("192.0.2.2:1000"); w.Code != 204 {
		t.Fatalf("another source is limited too: %d", w.Code)
	}
}

func TestLimiterRefillsAndStaysBounded(t *testing.T) {
	l := newLimiter(10, 1, 4)
	now := time.Unix(1000, 0)
	if ok, _ := l.allow("a:1", now); !ok {
		t.Fatal("first request refused")
	}
	ok, wait := l.allow("a:1", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("second request: %v, wait %v", ok, wait)
	}
	if ok, _ := l.allow("a:1", now.Add(100*time.Millisecond)); !ok {
		t.Fatal("refused after the bucket refilled")
	}
	for i := range 100 {
		l.allow(fmt.Sprintf("10.0.0.%d:1", i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.size(); n > 4 {
		t.Fatalf("%d sources tracked, bound is 4", n)
	}
}

func TestClientAddrTrustsOnlyDeclaredProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"no proxies: the peer", "192.0.2.1:1000", []string{"203.0.113.9"}, nil, "192.0.2.1"},
		{"untrusted peer's header ignored", "192.0.2.1:1000", []string{"203.0.113.9"}, trusted, "192.0.2.1"},
		{"trusted peer: the client it names", "10.1.2.3:1000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"chain of trusted proxies", "10.1.2.3:1000", []string{"198.51.100.7, 203.0.113.9, 10.9.9.9"}, trusted, "203.0.113.9"},
		{"a forged left part is not trusted", "10.1.2.3:1000", []string{"1.1.1.1", "203.0.113.9"}, trusted, "203.0.113.9"},
		{"trusted peer without the header", "10.1.2.3:1000", nil, trusted, "10.1.2.3"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/notifications", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := ClientAddr(r, tc.trusted); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/ui", nil)
	r.RemoteAddr = "10.1.2.3:1000"
	r.Header.Set("X-Forwarded-Proto", "https")
	if !ViaTLS(r, trusted) || ViaTLS(r, nil) {
		t.Error("X-Forwarded-Proto must count from a trusted proxy only")
	}
}

// TestRateLimitBehindAProxy: behind a trusted proxy every client gets its
// own bucket; the proxy's address is not one shared bucket.
func TestRateLimitBehindAProxy(t *testing.T) {
	h := newHandler(t, &recorder{}, func(o *Options) {
		o.RateLimit, o.RateBurst = 1, 1
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	})
	send := func(client string) int {
		r := httptest.NewRequest(http.MethodPost, "/notifications", strings.NewReader(readFile(t, "nac-v0-cloudevent.json")))
		r.RemoteAddr = "10.0.0.1:5000"
		r.Header.Set("X-Forwarded-For", client)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if a, b, a2 := send("203.0.113.1"), send("203.0.113.2"), send("203.0.113.1"); a != 204 || b != 204 || a2 != 429 {
		t.Fatalf("client a %d, client b %d, client a again %d; want 204, 204, 429", a, b, a2)
	}
}

func BenchmarkLimiterManySources(b *testing.B) {
	l := newLimiter(1000, 10, 10000)
	now := time.Unix(1000, 0)
	addrs := make([]string, 50000)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	}
	b.ResetTimer()
	for i := range b.N {
		l.allow(addrs[i%len(addrs)], now)
	}
}
