package ingress

import (
	"fmt"
	"net/http"
	"net/http/httptest"
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
	if n := len(l.sources); n > 4 {
		t.Fatalf("%d sources tracked, bound is 4", n)
	}
}
