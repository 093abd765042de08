package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/normalize"
)

const testToken = "test-token-0123456789"

// recorder is a Publisher that stores what it is given; fail, when set,
// decides the outcome instead; hold, when set, blocks Publish until closed.
type recorder struct {
	mu   sync.Mutex
	evs  []bridge.Event
	fail error
	hold chan struct{}
	in   chan struct{} // receives one value per Publish entered, if set
}

func (p *recorder) Publish(ctx context.Context, evs ...bridge.Event) error {
	if p.in != nil {
		p.in <- struct{}{}
	}
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.evs = append(p.evs, evs...)
	return nil
}

func (p *recorder) events() []bridge.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]bridge.Event(nil), p.evs...)
}

func newHandler(t testing.TB, pub bridge.Publisher, mod func(*Options)) *Handler {
	t.Helper()
	o := Options{Tokens: []string{testToken, "second-token-0123456789"}, SessionSecrets: [][]byte{[]byte("secret-one-0123456789"), []byte("secret-two-0123456789")}}
	if mod != nil {
		mod(&o)
	}
	h, err := New(pub, o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type req struct {
	method, path, ct, body string
	header                 map[string]string
	noAuth                 bool
}

func (r req) do(t testing.TB, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/notifications"
	}
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	if r.ct != "" {
		hr.Header.Set("Content-Type", r.ct)
	}
	if !r.noAuth {
		hr.Header.Set("Authorization", "Bearer "+testToken)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGoldenNetworkAsCode: the two notification examples of the Network as
// Code documentation normalize to the canonical event in testdata.
func TestGoldenNetworkAsCode(t *testing.T) {
	var want bridge.Event
	if err := json.Unmarshal([]byte(readFile(t, "nac.want.json")), &want); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"nac-v0-cloudevent.json", "nac-legacy-event-data.json"} {
		for _, ct := range []string{"application/json", "application/cloudevents+json"} {
			t.Run(file+"/"+ct, func(t *testing.T) {
				pub := &recorder{}
				w := req{ct: ct, body: readFile(t, file)}.do(t, newHandler(t, pub, nil))
				if w.Code != http.StatusNoContent {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				got := pub.events()
				if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
					t.Fatalf("published %+v, want %+v", got, want)
				}
			})
		}
	}
}

// TestEveryShapeNormalizesAlike sends one status change in every accepted
// shape and type and checks they all become the same canonical event.
func TestEveryShapeNormalizesAlike(t *testing.T) {
	const (
		id, src, tm = "evt-1", "https://qod.example/sessions/s-1", "2025-01-02T03:04:05Z"
		data        = `{"sessionId":"s.1","qosStatus":"UNAVAILABLE","statusInfo":"NETWORK_TERMINATED"}`
		detail      = `"eventDetail":` + data
	)
	want := bridge.Event{ID: id, Source: src, Time: tm, SessionID: "s.1", QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoNetworkTerminated}
	structured := func(typ string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,"time":%q,"datacontenttype":"application/json","data":%s}`, id, src, typ, tm, data)
	}
	binary := map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-source": src, "ce-type": bridge.EventTypeV0, "ce-time": tm}
	cases := []struct {
		name  string
		r     req
		shape normalize.Shape
	}{
		{"structured v1", req{ct: "application/cloudevents+json", body: structured(bridge.EventType)}, normalize.ShapeStructured},
		{"structured qod v0", req{ct: "application/cloudevents+json; charset=utf-8", body: structured(bridge.EventTypeV0)}, normalize.ShapeStructured},
		{"structured test-definition v1", req{ct: "application/cloudevents+json", body: structured(bridge.EventTypeV1)}, normalize.ShapeStructured},
		{"structured as application/json", req{ct: "application/json", body: structured(bridge.EventTypeV0)}, normalize.ShapeJSON},
		{"binary", req{ct: "application/json", body: data, header: binary}, normalize.ShapeBinary},
		{"nac event and data", req{ct: "application/json", body: fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,"time":%q,"event":{"eventType":"QOS_STATUS_CHANGED","eventTime":%q,%s},"data":%s}`, id, src, bridge.EventTypeV0, tm, tm, detail, data)}, normalize.ShapeNaC},
		{"nac event without data, eventTime as time", req{ct: "application/json", body: fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,"event":{"eventType":"QOS_STATUS_CHANGED","eventTime":%q,%s}}`, id, src, bridge.EventTypeV0, tm, detail)}, normalize.ShapeNaC},
		{"batch", req{ct: "application/cloudevents-batch+json", body: "[" + structured(bridge.EventTypeV0) + "]"}, normalize.ShapeBatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recorder{}
			var shape normalize.Shape
			h := newHandler(t, pub, func(o *Options) { o.Observe = func(oc Outcome) { shape = oc.Shape } })
			w := tc.r.do(t, h)
			if w.Code != http.StatusNoContent {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := pub.events(); len(got) != 1 || got[0] != want {
				t.Fatalf("published %+v\nwant %+v", got, want)
			}
			if shape != tc.shape {
				t.Errorf("shape %q, want %q", shape, tc.shape)
			}
		})
	}

	t.Run("qod v0.9 body without attributes", func(t *testing.T) {
		body := fmt.Sprintf(`{"event":{"eventType":"QOS_STATUS_CHANGED","eventTime":%q,%s}}`, tm, detail)
		pub := &recorder{}
		h := newHandler(t, pub, func(o *Options) { o.Normalize.LegacySource = "urn:test:platform" })
		for range 2 { // a resend gets the same id, so the broker dedupes it
			if w := (req{ct: "application/json", body: body}).do(t, h); w.Code != http.StatusNoContent {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
		got := pub.events()
		if len(got) != 2 || got[0] != got[1] {
			t.Fatalf("resend normalized differently: %+v", got)
		}
		g := got[0]
		if g.Source != "urn:test:platform" || !strings.HasPrefix(g.ID, "qod-v0.9-") || g.Time != tm ||
			g.SessionID != want.SessionID || g.QoSStatus != want.QoSStatus || g.StatusInfo != want.StatusInfo {
			t.Fatalf("legacy event %+v", g)
		}
	})
}

func TestBatchPublishesAll(t *testing.T) {
	var parts []string
	for i := range 5 {
		parts = append(parts, fmt.Sprintf(`{"specversion":"1.0","id":"b-%d","source":"s","type":%q,"data":{"sessionId":"s-%d","qosStatus":"AVAILABLE","statusInfo":null}}`, i, bridge.EventType, i))
	}
	pub := &recorder{}
	w := req{ct: "application/cloudevents-batch+json", body: "[" + strings.Join(parts, ",") + "]"}.do(t, newHandler(t, pub, nil))
	if w.Code != http.StatusNoContent || len(pub.events()) != 5 {
		t.Fatalf("status %d, published %d", w.Code, len(pub.events()))
	}
}

func TestAuth(t *testing.T) {
	ok := `{"specversion":"1.0","id":"1","source":"s","type":"org.camaraproject.qod.v0.qos-status-changed","data":{"sessionId":"a","qosStatus":"AVAILABLE"}}`
	k1, k2 := bridge.NewSinkKey(time.Now().Add(time.Hour)), bridge.NewSinkKey(time.Now().Add(time.Hour))
	sessionTok := bridge.SinkToken([]byte("secret-two-0123456789"), k1)
	expired := bridge.NewSinkKey(time.Now().Add(-time.Second))
	legacy := "k-1" // a key of a qodbridge before expiring keys
	// k1 with its expiry moved a day on, under k1's token: tampered.
	tampered := bridge.NewSinkKey(time.Now().Add(25 * time.Hour))
	tampered = tampered[:13] + k1[13:]
	cases := []struct {
		name   string
		r      req
		status int
	}{
		{"bearer", req{}, 204},
		{"second token (rotation)", req{noAuth: true, header: map[string]string{"Authorization": "Bearer second-token-0123456789"}}, 204},
		{"doubled Bearer prefix", req{noAuth: true, header: map[string]string{"Authorization": "Bearer Bearer " + testToken}}, 204},
		{"lower-case scheme", req{noAuth: true, header: map[string]string{"Authorization": "bearer " + testToken}}, 204},
		{"access_token query", req{noAuth: true, path: "/notifications?access_token=" + testToken}, 204},
		{"per-session token", req{noAuth: true, path: "/notifications/" + k1, header: map[string]string{"Authorization": "Bearer " + sessionTok}}, 204},
		{"static token on per-session path", req{path: "/notifications/" + k1}, 204},
		{"per-session token for another key", req{noAuth: true, path: "/notifications/" + k2, header: map[string]string{"Authorization": "Bearer " + sessionTok}}, 401},
		{"expired per-session key", req{noAuth: true, path: "/notifications/" + expired, header: map[string]string{"Authorization": "Bearer " + bridge.SinkToken([]byte("secret-two-0123456789"), expired)}}, 401},
		{"key without expiry", req{noAuth: true, path: "/notifications/" + legacy, header: map[string]string{"Authorization": "Bearer " + bridge.SinkToken([]byte("secret-two-0123456789"), legacy)}}, 401},
		{"tampered expiry", req{noAuth: true, path: "/notifications/" + tampered, header: map[string]string{"Authorization": "Bearer " + sessionTok}}, 401},
		{"per-session token on plain path", req{noAuth: true, header: map[string]string{"Authorization": "Bearer " + sessionTok}}, 401},
		{"both header and query", req{path: "/notifications?access_token=" + testToken}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.ct, tc.r.body = "application/json", ok
			w := tc.r.do(t, newHandler(t, &recorder{}, nil))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if strings.Contains(tc.r.path, "access_token") && w.Header().Get("Cache-Control") != "no-store" {
				t.Error("token in the URL but no Cache-Control: no-store")
			}
		})
	}
}

// TestBadRequests: each bad request gets its exact status and a
// problem+json body naming the problem; nothing is published; no 5xx.
func TestBadRequests(t *testing.T) {
	valid := func(mod func(m map[string]any)) string {
		m := map[string]any{"specversion": "1.0", "id": "1", "source": "https://p.example", "type": bridge.EventTypeV0,
			"data": map[string]any{"sessionId": "s", "qosStatus": "AVAILABLE"}}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	data := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) {
			d := m["data"].(map[string]any)
			if v == nil {
				delete(d, k)
			} else {
				d[k] = v
			}
		}
	}
	ce := "application/cloudevents+json"
	cases := []struct {
		name   string
		r      req
		status int
		detail string // substring of the problem detail
	}{
		{"no auth", req{noAuth: true, ct: ce, body: valid(del(""))}, 401, "missing credentials"},
		{"wrong token", req{noAuth: true, ct: ce, body: valid(del("")), header: map[string]string{"Authorization": "Bearer wrong-token-0123456789"}}, 401, "not valid"},
		{"token in Basic scheme", req{noAuth: true, ct: ce, body: valid(del("")), header: map[string]string{"Authorization": "Basic " + testToken}}, 401, `Authorization must be "Bearer <token>"`},
		{"Bearer without token", req{noAuth: true, ct: ce, body: valid(del("")), header: map[string]string{"Authorization": "Bearer"}}, 401, "Bearer <token>"},
		{"malformed JSON", req{ct: ce, body: `{"id": 1,,}`}, 400, "malformed JSON"},
		{"truncated JSON", req{ct: ce, body: `{"specversion":"1.0","id":"1"`}, 400, "truncated JSON"},
		{"array where object belongs", req{ct: ce, body: `[1,2]`}, 400, "got a JSON array"},
		{"missing id", req{ct: ce, body: valid(del("id"))}, 400, "id: required"},
		{"empty id", req{ct: ce, body: valid(set("id", ""))}, 400, "id: must not be empty"},
		{"id as number", req{ct: ce, body: valid(set("id", 7))}, 400, "id: want string, got a number"},
		{"missing source", req{ct: ce, body: valid(del("source"))}, 400, "source: required"},
		{"missing type", req{ct: ce, body: valid(del("type"))}, 400, "type: required"},
		{"missing specversion", req{ct: ce, body: valid(del("specversion"))}, 400, "specversion: required"},
		{"unknown specversion", req{ct: ce, body: valid(set("specversion", "0.3"))}, 400, `"0.3" is not supported`},
		{"unknown type", req{ct: ce, body: valid(set("type", "com.example.other"))}, 400, "not a QoD status event type"},
		{"missing data", req{ct: ce, body: valid(del("data"))}, 400, "data: required"},
		{"missing sessionId", req{ct: ce, body: valid(data("sessionId", nil))}, 400, "data.sessionId: required"},
		{"empty sessionId", req{ct: ce, body: valid(data("sessionId", ""))}, 400, "data.sessionId: must not be empty"},
		{"sessionId too long", req{ct: ce, body: valid(data("sessionId", strings.Repeat("x", 300)))}, 400, "longer than 256"},
		{"unknown qosStatus", req{ct: ce, body: valid(data("qosStatus", "ACTIVE"))}, 400, `"ACTIVE" is not REQUESTED`},
		{"missing qosStatus", req{ct: ce, body: valid(data("qosStatus", nil))}, 400, "data.qosStatus: required"},
		{"wrong statusInfo", req{ct: ce, body: valid(data("statusInfo", "EXPIRED"))}, 400, `"EXPIRED" is not DURATION_EXPIRED`},
		{"statusInfo as number", req{ct: ce, body: valid(data("statusInfo", 3))}, 400, "data.statusInfo: want string"},
		{"data as a string", req{ct: ce, body: valid(set("data", "s,AVAILABLE"))}, 400, "data: want the session status"},
		{"data_base64", req{ct: ce, body: valid(func(m map[string]any) { delete(m, "data"); m["data_base64"] = "e30=" })}, 400, "data_base64"},
		{"bad time", req{ct: ce, body: valid(set("time", "yesterday"))}, 400, "time: \"yesterday\" is not an RFC 3339 time"},
		{"xml datacontenttype", req{ct: ce, body: valid(set("datacontenttype", "application/xml"))}, 400, "datacontenttype"},
		{"text/plain", req{ct: "text/plain", body: valid(del(""))}, 415, `"text/plain" is not supported`},
		{"no content type", req{body: valid(del(""))}, 415, "Content-Type"},
		{"empty body", req{ct: ce, body: ""}, 400, "empty body"},
		{"whitespace body", req{ct: ce, body: " \n"}, 400, "empty body"},
		{"2 MiB body", req{ct: ce, body: `{"id":"` + strings.Repeat("a", 2<<20) + `"}`}, 413, "exceeds the limit"},
		{"GET", req{method: http.MethodGet}, 405, `"GET" is not allowed`},
		{"DELETE", req{method: http.MethodDelete}, 405, `"DELETE" is not allowed`},
		{"unknown path", req{path: "/other", ct: ce, body: valid(del(""))}, 404, "no notification endpoint"},
		{"bad session key", req{path: "/notifications/a.b", ct: ce, body: valid(del(""))}, 404, "no notification endpoint"},
		{"batch with one bad event", req{ct: "application/cloudevents-batch+json", body: "[" + valid(del("")) + "," + valid(data("qosStatus", "NOPE")) + "]"}, 400, "[1].data.qosStatus"},
		{"batch that is an object", req{ct: "application/cloudevents-batch+json", body: valid(del(""))}, 400, "JSON array"},
		{"empty batch", req{ct: "application/cloudevents-batch+json", body: "[]"}, 400, "empty batch"},
		{"json without specversion or event", req{ct: "application/json", body: `{"sessionId":"s","qosStatus":"AVAILABLE"}`}, 400, "specversion: required"},
		{"legacy with wrong eventType", req{ct: "application/json", body: `{"event":{"eventType":"OTHER","eventDetail":{"sessionId":"s","qosStatus":"AVAILABLE"}}}`}, 400, "event.eventType"},
		{"nac event disagreeing with data", req{ct: "application/json", body: valid(set("event", map[string]any{"eventDetail": map[string]any{"sessionId": "other", "qosStatus": "AVAILABLE"}}))}, 400, "disagrees with data"},
		{"binary without ce-id", req{ct: "application/json", body: `{"sessionId":"s","qosStatus":"AVAILABLE"}`, header: map[string]string{"ce-specversion": "1.0", "ce-source": "s", "ce-type": bridge.EventType}}, 400, "ce-id: required"},
		{"binary with empty body", req{ct: "application/json", body: ``, header: map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": bridge.EventType}}, 400, "data: required"},
		{"binary with text data", req{ct: "text/plain", body: `x`, header: map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": bridge.EventType}}, 415, "binary-mode data"},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recorder{}
			w := tc.r.do(t, newHandler(t, pub, nil))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if n := len(pub.events()); n != 0 {
				t.Fatalf("%d events published for a bad request", n)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var p Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem body %q: %v", w.Body, err)
			}
			if p.Status != tc.status || p.Title == "" || p.Code == "" {
				t.Errorf("problem %+v", p)
			}
			full := p.Detail
			if !strings.Contains(full, tc.detail) {
				t.Errorf("detail %q does not contain %q", full, tc.detail)
			}
			if tc.status == 405 && w.Header().Get("Allow") != "POST, OPTIONS" {
				t.Errorf("405 without Allow")
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
}

func TestBrokerFailureIs503(t *testing.T) {
	pub := &recorder{fail: errors.New("nats: no responders")}
	w := req{ct: "application/json", body: readFile(t, "nac-v0-cloudevent.json")}.do(t, newHandler(t, pub, nil))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), "no responders") {
		t.Fatalf("status %d retry %q body %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

func TestPublishTimeoutIs503(t *testing.T) {
	pub := &recorder{hold: make(chan struct{})} // never released: only the timeout ends Publish
	h := newHandler(t, pub, func(o *Options) { o.PublishTimeout = 50_000_000 /* 50ms */ })
	w := req{ct: "application/json", body: readFile(t, "nac-v0-cloudevent.json")}.do(t, h)
	if w.Code != 503 || !strings.Contains(w.Body.String(), "did not acknowledge within 50ms") {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
}

// deadlineProbe reports whether Publish got a deadline, and fails like a
// sink whose own timeout ran out.
type deadlineProbe struct{ hadDeadline atomic.Bool }

var errSinkTimeout = fmt.Errorf("natssink: publish 1: no ack within 5s: %w", context.DeadlineExceeded)

func (p *deadlineProbe) Publish(ctx context.Context, _ ...bridge.Event) error {
	_, ok := ctx.Deadline()
	p.hadDeadline.Store(ok)
	return errSinkTimeout
}

func TestNegativePublishTimeoutLeavesTheBoundToThePublisher(t *testing.T) {
	pub := &deadlineProbe{}
	h := newHandler(t, pub, func(o *Options) { o.PublishTimeout = -1 })
	w := req{ct: "application/json", body: readFile(t, "nac-v0-cloudevent.json")}.do(t, h)
	if pub.hadDeadline.Load() {
		t.Error("Publish got a deadline with PublishTimeout < 0")
	}
	// The Publisher's own timeout is the detail, not a made-up bound.
	if w.Code != 503 || !strings.Contains(w.Body.String(), "no ack within 5s") {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}

	pub = &deadlineProbe{}
	req{ct: "application/json", body: readFile(t, "nac-v0-cloudevent.json")}.do(t, newHandler(t, pub, nil))
	if !pub.hadDeadline.Load() {
		t.Error("Publish got no deadline with the default PublishTimeout")
	}
}

func TestInFlightLimitIs429(t *testing.T) {
	pub := &recorder{hold: make(chan struct{}), in: make(chan struct{}, 2)}
	h := newHandler(t, pub, func(o *Options) { o.MaxInFlight = 2 })
	body := readFile(t, "nac-v0-cloudevent.json")
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() { codes[i] = req{ct: "application/json", body: body}.do(t, h).Code })
	}
	<-pub.in
	<-pub.in // both requests hold a slot now
	w := req{ct: "application/json", body: body}.do(t, h)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	close(pub.hold)
	wg.Wait()
	if codes[0] != 204 || codes[1] != 204 {
		t.Fatalf("held requests answered %v", codes)
	}
	if h.InFlight() != 0 {
		t.Fatalf("in flight %d after all answered", h.InFlight())
	}
}

func TestDrainAnswers503(t *testing.T) {
	pub := &recorder{}
	h := newHandler(t, pub, nil)
	h.Drain()
	w := req{ct: "application/json", body: readFile(t, "nac-v0-cloudevent.json")}.do(t, h)
	if w.Code != 503 || w.Header().Get("Connection") != "close" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d headers %v", w.Code, w.Header())
	}
	if len(pub.events()) != 0 {
		t.Fatal("published while draining")
	}
}

func TestWebhookHandshake(t *testing.T) {
	h := newHandler(t, &recorder{}, func(o *Options) { o.AllowedOrigins = []string{"qod.example.com"}; o.AllowedRate = 120 })
	w := req{method: http.MethodOptions, noAuth: true, header: map[string]string{"WebHook-Request-Origin": "qod.example.com", "WebHook-Request-Rate": "60"}}.do(t, h)
	if w.Code != 200 || w.Header().Get("WebHook-Allowed-Origin") != "qod.example.com" || w.Header().Get("WebHook-Allowed-Rate") != "120" {
		t.Fatalf("status %d headers %v", w.Code, w.Header())
	}
	w = req{method: http.MethodOptions, noAuth: true, header: map[string]string{"WebHook-Request-Origin": "evil.example"}}.do(t, h)
	if w.Code != 403 {
		t.Fatalf("disallowed origin answered %d", w.Code)
	}
	h = newHandler(t, &recorder{}, nil)
	w = req{method: http.MethodOptions, noAuth: true, header: map[string]string{"WebHook-Request-Origin": "any.example", "WebHook-Request-Rate": "60"}}.do(t, h)
	if w.Code != 200 || w.Header().Get("WebHook-Allowed-Origin") != "any.example" || w.Header().Get("WebHook-Allowed-Rate") != "*" {
		t.Fatalf("default allow-all: status %d headers %v", w.Code, w.Header())
	}
}

func TestTraceparentFromHTTPHeader(t *testing.T) {
	pub := &recorder{}
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	w := req{ct: "application/json", body: readFile(t, "nac-v0-cloudevent.json"), header: map[string]string{"traceparent": tp, "tracestate": "k=v"}}.do(t, newHandler(t, pub, nil))
	if w.Code != 204 || pub.events()[0].TraceParent != tp || pub.events()[0].TraceState != "k=v" {
		t.Fatalf("status %d events %+v", w.Code, pub.events())
	}
}

// TestConcurrentRequests runs many requests through a real server under
// -race and checks each one was published once.
func TestConcurrentRequests(t *testing.T) {
	pub := &recorder{}
	srv := httptest.NewServer(newHandler(t, pub, nil))
	defer srv.Close()
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"specversion":"1.0","id":"c-%d","source":"s","type":%q,"data":{"sessionId":"s-%d","qosStatus":"AVAILABLE"}}`, i, bridge.EventType, i%7)
			r, _ := http.NewRequest(http.MethodPost, srv.URL+"/notifications", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/cloudevents+json")
			r.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := srv.Client().Do(r)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 204 {
				errs <- fmt.Errorf("request %d: status %d", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[string]bool{}
	for _, e := range pub.events() {
		if seen[e.ID] {
			t.Errorf("%s published twice", e.ID)
		}
		seen[e.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("published %d distinct events, want %d", len(seen), n)
	}
}

func TestNewRequiresCredentials(t *testing.T) {
	if _, err := New(&recorder{}, Options{}); err == nil {
		t.Fatal("New accepted a handler nobody can authenticate to")
	}
	if _, err := New(nil, Options{Tokens: []string{"x"}}); err == nil {
		t.Fatal("New accepted a nil publisher")
	}
}

// FuzzIngress holds the handler to its invariants on any content type,
// body and Traceparent header: no panic; never a 5xx with a working
// publisher; 204 only for valid canonical events within their caps, with
// valid trace context or none; nothing published otherwise; answers and
// log lines bounded.
func FuzzIngress(f *testing.F) {
	f.Add("application/cloudevents+json", `{"specversion":"1.0","id":"1","source":"s","type":"org.camaraproject.qod.v0.qos-status-changed","data":{"sessionId":"a","qosStatus":"AVAILABLE"}}`, "")
	f.Add("application/json", `{"event":{"eventType":"QOS_STATUS_CHANGED","eventDetail":{"sessionId":"a","qosStatus":"UNAVAILABLE","statusInfo":null}}}`, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("application/cloudevents-batch+json", `[{"specversion":"1.0"}]`, "ff-x")
	f.Add("application/json", `{"specversion":"1.0","event":{"eventDetail":{}},"data":null}`, "")
	f.Add("application/cloudevents+json", `{"specversion":"1.0","id":"\ud800","source":"s","type":"org.camaraproject.qod.v0.qos-status-changed","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"k=v","ext":[1,2],"data":{"sessionId":"a","qosStatus":"AVAILABLE"}}`, "")
	f.Fuzz(func(t *testing.T, ct, body, traceparent string) {
		pub := &recorder{}
		var logs logBuffer
		h := newHandler(t, pub, func(o *Options) {
			o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			o.RejectLogRate = -1
		})
		w := req{ct: ct, body: body, header: map[string]string{"Traceparent": traceparent}}.do(t, h)
		switch {
		case w.Code == 204:
			evs := pub.events()
			if len(evs) == 0 {
				t.Fatal("204 with nothing published")
			}
			for _, e := range evs {
				if e.ID == "" || e.Source == "" || e.SessionID == "" || !e.QoSStatus.Valid() || !e.StatusInfo.Valid() {
					t.Fatalf("invalid canonical event published: %+v", e)
				}
				if len(e.ID) > normalize.MaxIDLen || len(e.Source) > normalize.MaxSourceLen || len(e.Time) > normalize.MaxTimeLen ||
					len(e.SessionID) > normalize.MaxSessionIDLen {
					t.Fatalf("event over its caps published: %+v", e)
				}
				if e.TraceParent != "" && !bridge.ValidTraceParent(e.TraceParent) || e.TraceState != "" && (e.TraceParent == "" || !bridge.ValidTraceState(e.TraceState)) {
					t.Fatalf("invalid trace context published: %q %q", e.TraceParent, e.TraceState)
				}
				for _, a := range e.Attributes() {
					if !utf8.ValidString(a.Value) {
						t.Fatalf("attribute %s is not UTF-8: %q", a.Name, a.Value)
					}
				}
			}
		case w.Code >= 500:
			t.Fatalf("bad input answered %d: %s", w.Code, w.Body)
		default:
			if len(pub.events()) != 0 {
				t.Fatalf("status %d but published", w.Code)
			}
			if w.Body.Len() > 2048 {
				t.Fatalf("answer of %d bytes", w.Body.Len())
			}
		}
		for _, line := range logs.since(0) {
			if len(line) > 2048 {
				t.Fatalf("log line of %d bytes", len(line))
			}
		}
	})
}

func decodeJSON(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s answer: %v", resp.Status, err)
	}
}

// TestPerSessionKeyIsBoundToItsSession: once the bridge knows which session
// a per-session key was issued for, notifications on that key are
// accepted for that session only.
func TestPerSessionKeyIsBoundToItsSession(t *testing.T) {
	secret := []byte("secret-two-0123456789")
	bound := map[string]string{}
	var lookupErr error
	key := bridge.NewSinkKey(time.Now().Add(time.Hour))
	h, err := New(&recorder{}, Options{Tokens: []string{testToken}, SessionSecrets: [][]byte{secret},
		SessionOf: func(_ context.Context, k string) (string, bool, error) {
			sid, ok := bound[k]
			return sid, ok, lookupErr
		}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(session string, auth string) *httptest.ResponseRecorder {
		body := fmt.Sprintf(`{"specversion":"1.0","id":"%s-1","source":"s","type":%q,"data":{"sessionId":%q,"qosStatus":"AVAILABLE"}}`, session, bridge.EventType, session)
		return req{noAuth: true, path: "/notifications/" + key, ct: "application/json", body: body,
			header: map[string]string{"Authorization": "Bearer " + auth}}.do(t, h)
	}
	tok := bridge.SinkToken(secret, key)
	if w := send("sess-b", tok); w.Code != 204 {
		t.Fatalf("before the session is known: %d %s", w.Code, w.Body)
	}
	bound[key] = "sess-a"
	if w := send("sess-a", tok); w.Code != 204 {
		t.Fatalf("its own session: %d %s", w.Code, w.Body)
	}
	if w := send("sess-b", tok); w.Code != 403 || !strings.Contains(w.Body.String(), "another session") {
		t.Fatalf("another session: %d %s", w.Code, w.Body)
	}
	// A static token on the same path is not bound to the session.
	if w := send("sess-b", testToken); w.Code != 204 {
		t.Fatalf("static token: %d %s", w.Code, w.Body)
	}
	lookupErr = errors.New("kv down")
	if w := send("sess-a", tok); w.Code != 503 {
		t.Fatalf("lookup failing: %d %s", w.Code, w.Body)
	}
}

// TestSetCredentials: tokens and session secrets are replaced at once.
func TestSetCredentials(t *testing.T) {
	h := newHandler(t, &recorder{}, nil)
	body := `{"specversion":"1.0","id":"c-1","source":"s","type":"` + bridge.EventType + `","data":{"sessionId":"s","qosStatus":"AVAILABLE"}}`
	send := func(path, tok string) int {
		return req{ct: "application/cloudevents+json", path: path, body: body, header: map[string]string{"Authorization": "Bearer " + tok}}.do(t, h).Code
	}
	key := bridge.NewSinkKey(time.Now().Add(time.Hour))
	if send("", testToken) != 204 || send("/notifications/"+key, bridge.SinkToken([]byte("secret-one-0123456789"), key)) != 204 {
		t.Fatal("before: the configured credentials must hold")
	}
	h.SetCredentials([]string{"rotated-token-0123456789"}, [][]byte{[]byte("rotated-secret-0123456789")})
	if send("", testToken) != 401 || send("", "rotated-token-0123456789") != 204 ||
		send("/notifications/"+key, bridge.SinkToken([]byte("secret-one-0123456789"), key)) != 401 ||
		send("/notifications/"+key, bridge.SinkToken([]byte("rotated-secret-0123456789"), key)) != 204 {
		t.Fatal("after: only the new credentials may hold")
	}
}
