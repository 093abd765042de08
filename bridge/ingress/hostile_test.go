package ingress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/normalize"
)

// logBuffer collects log output from concurrent handlers.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines written since mark (a length of String).
func (l *logBuffer) since(mark int) []string {
	s := l.String()[mark:]
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

const (
	goodTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ce     = "application/cloudevents+json"
	batch  = "application/cloudevents-batch+json"
)

// event returns a valid structured event as a map, changed by mods.
func event(mods ...func(map[string]any)) map[string]any {
	m := map[string]any{"specversion": "1.0", "id": "h-1", "source": "https://p.example", "type": bridge.EventTypeV0,
		"data": map[string]any{"sessionId": "s-1", "qosStatus": "AVAILABLE"}}
	for _, mod := range mods {
		mod(m)
	}
	return m
}

func with(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }

func jsonOf(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// batchOf is a batch of n valid events with distinct ids.
func batchOf(n int) string {
	evs := make([]any, n)
	for i := range evs {
		evs[i] = event(with("id", fmt.Sprintf("b-%d", i)))
	}
	return jsonOf(evs)
}

// binaryReq is a valid binary-mode request with header changes.
func binaryReq(set map[string]string) req {
	h := map[string]string{"ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "https://p.example", "ce-type": bridge.EventType}
	for k, v := range set {
		h[k] = v
	}
	return req{ct: "application/json", body: `{"sessionId":"s-1","qosStatus":"AVAILABLE"}`, header: h}
}

var goodReq = req{ct: ce, body: jsonOf(event())}

// hostileCase is one hostile request and the exact answer it must get.
type hostileCase struct {
	name   string
	r      req
	status int
	code   string
	field  string
	detail string // substring of the problem detail
}

func hostileCases() []hostileCase {
	long := func(n int) string { return strings.Repeat("x", n) }
	return []hostileCase{
		// 1. Text that is not what it decodes to.
		{"invalid UTF-8 in a structured body", req{ct: ce, body: `{"specversion":"1.0","id":"a` + "\xff" + `"}`}, 400, "INVALID_ARGUMENT", "body", "invalid UTF-8 at byte 28"},
		{"invalid UTF-8 in a sessionId", req{ct: ce, body: strings.Replace(jsonOf(event()), `"s-1"`, "\"s-\xfe\"", 1)}, 400, "INVALID_ARGUMENT", "body", "invalid UTF-8 at byte"},
		{"truncated UTF-8 sequence at the end", req{ct: ce, body: jsonOf(event()) + "\xe2\x82"}, 400, "INVALID_ARGUMENT", "body", "invalid UTF-8 at byte"},
		{"invalid UTF-8 in a batch", req{ct: batch, body: "[" + strings.Replace(jsonOf(event()), `"h-1"`, "\"h-\xc0\xaf\"", 1) + "]"}, 400, "INVALID_ARGUMENT", "body", "invalid UTF-8"},
		{"lone high surrogate escape", req{ct: ce, body: strings.Replace(jsonOf(event()), `"s-1"`, `"s-\ud800"`, 1)}, 400, "INVALID_ARGUMENT", "body", `\ud800`},
		{"lone low surrogate escape", req{ct: "application/json", body: strings.Replace(jsonOf(event()), `"s-1"`, `"\uDC00x"`, 1)}, 400, "INVALID_ARGUMENT", "body", "lone UTF-16 surrogate"},
		{"invalid UTF-8 in a binary body", func() req {
			r := binaryReq(nil)
			r.body = `{"sessionId":"s-` + "\xff" + `","qosStatus":"AVAILABLE"}`
			return r
		}(), 400, "INVALID_ARGUMENT", "body", "invalid UTF-8 at byte 16"},
		{"percent-encoded invalid UTF-8 in ce-id", binaryReq(map[string]string{"ce-id": "ok%FFno"}), 400, "INVALID_ARGUMENT", "ce-id", "invalid UTF-8 at byte 2 after percent-decoding"},
		{"raw invalid UTF-8 in ce-source", binaryReq(map[string]string{"ce-source": "urn:\xfe"}), 400, "INVALID_ARGUMENT", "ce-source", "invalid UTF-8 at byte 4"},
		{"invalid UTF-8 in an extension header", binaryReq(map[string]string{"ce-foo": "%C3%28"}), 400, "INVALID_ARGUMENT", "ce-foo", "invalid UTF-8"},

		// 2. Attribute and extension caps.
		{"300 kB id of spaces", req{ct: ce, body: jsonOf(event(with("id", strings.Repeat(" ", 300_000))))}, 400, "INVALID_ARGUMENT", "id", "longer than 1024 bytes (300000 bytes)"},
		{"id over the cap", req{ct: ce, body: jsonOf(event(with("id", long(normalize.MaxIDLen+1))))}, 400, "INVALID_ARGUMENT", "id", "longer than 1024 bytes"},
		{"id over the cap, with escapes (slow path)", req{ct: ce, body: jsonOf(event(with("id", `"`+long(normalize.MaxIDLen))))}, 400, "INVALID_ARGUMENT", "id", "longer than 1024 bytes"},
		{"source over the cap", req{ct: ce, body: jsonOf(event(with("source", "urn:"+long(normalize.MaxSourceLen))))}, 400, "INVALID_ARGUMENT", "source", "longer than 1024 bytes"},
		{"type over the cap", req{ct: ce, body: jsonOf(event(with("type", long(normalize.MaxTypeLen+1))))}, 400, "INVALID_ARGUMENT", "type", "longer than 256 bytes"},
		{"time over the cap", req{ct: ce, body: jsonOf(event(with("time", long(normalize.MaxTimeLen+1))))}, 400, "INVALID_ARGUMENT", "time", "longer than 64 bytes"},
		{"datacontenttype over the cap", req{ct: ce, body: jsonOf(event(with("datacontenttype", "application/json;"+long(normalize.MaxDataContentTypeLen))))}, 400, "INVALID_ARGUMENT", "datacontenttype", "longer than 256 bytes"},
		{"dataschema over the cap", req{ct: ce, body: jsonOf(event(with("dataschema", "https://x/"+long(normalize.MaxDataSchemaLen))))}, 400, "INVALID_ARGUMENT", "dataschema", "longer than 1024 bytes"},
		{"subject over the cap", req{ct: ce, body: jsonOf(event(with("subject", long(normalize.MaxSubjectLen+1))))}, 400, "INVALID_ARGUMENT", "subject", "longer than 1024 bytes"},
		{"specversion over the cap", req{ct: ce, body: jsonOf(event(with("specversion", long(normalize.MaxExtensionLen+1))))}, 400, "INVALID_ARGUMENT", "specversion", "longer than 1024 bytes"},
		{"string extension over the cap", req{ct: ce, body: jsonOf(event(with("myext", long(normalize.MaxExtensionLen+1))))}, 400, "INVALID_ARGUMENT", "myext", "longer than 1024 bytes"},
		{"escaped string extension over the cap", req{ct: ce, body: jsonOf(event(with("myext", strings.Repeat("\n", normalize.MaxExtensionLen+1))))}, 400, "INVALID_ARGUMENT", "myext", "(1025 bytes)"},
		{"object extension over the cap", req{ct: ce, body: jsonOf(event(with("objext", map[string]any{"k": long(normalize.MaxExtensionLen)})))}, 400, "INVALID_ARGUMENT", "objext", "longer than 1024 bytes"},
		{"number array extension over the cap", req{ct: ce, body: jsonOf(event(with("nums", make([]int, 600))))}, 400, "INVALID_ARGUMENT", "nums", "longer than 1024 bytes"},
		{"extension with a long name", req{ct: ce, body: jsonOf(event(with(long(5000), long(normalize.MaxExtensionLen+1))))}, 400, "INVALID_ARGUMENT", `"` + long(bridge.MaxQuoted) + `…" (5000 bytes)`, "longer than 1024 bytes"},
		{"extension over the cap in a legacy body", req{ct: "application/json", body: `{"ext":"` + long(normalize.MaxExtensionLen+1) + `","event":{"eventType":"QOS_STATUS_CHANGED","eventDetail":{"sessionId":"s","qosStatus":"AVAILABLE"}}}`}, 400, "INVALID_ARGUMENT", "ext", "longer than 1024 bytes"},
		{"eventTime over the cap", req{ct: "application/json", body: `{"event":{"eventType":"QOS_STATUS_CHANGED","eventTime":"` + long(100) + `","eventDetail":{"sessionId":"s","qosStatus":"AVAILABLE"}}}`}, 400, "INVALID_ARGUMENT", "event.eventTime", "longer than 64 bytes"},
		{"batch element id over the cap", req{ct: batch, body: jsonOf([]any{event(), event(), event(), event(with("id", long(normalize.MaxIDLen+1)))})}, 400, "INVALID_ARGUMENT", "[3].id", "longer than 1024 bytes"},
		{"batch element extension over the cap", req{ct: batch, body: jsonOf([]any{event(), event(with("ext", long(2000)))})}, 400, "INVALID_ARGUMENT", "[1].ext", "longer than 1024 bytes"},
		{"ce-id over the cap", binaryReq(map[string]string{"ce-id": long(normalize.MaxIDLen + 1)}), 400, "INVALID_ARGUMENT", "ce-id", "longer than 1024 bytes (1025 bytes)"},
		{"percent-encoded ce-id over the cap", binaryReq(map[string]string{"ce-id": strings.Repeat("%20", normalize.MaxIDLen+1)}), 400, "INVALID_ARGUMENT", "ce-id", "longer than 1024 bytes"},
		{"ce-type over the cap", binaryReq(map[string]string{"ce-type": long(normalize.MaxTypeLen + 1)}), 400, "INVALID_ARGUMENT", "ce-type", "longer than 256 bytes"},
		{"ce-time over the cap", binaryReq(map[string]string{"ce-time": long(normalize.MaxTimeLen + 1)}), 400, "INVALID_ARGUMENT", "ce-time", "longer than 64 bytes"},
		{"extension header over the cap", binaryReq(map[string]string{"ce-foo": long(normalize.MaxExtensionLen + 1)}), 400, "INVALID_ARGUMENT", "ce-foo", "longer than 1024 bytes"},
		{"1 MB ce-id", binaryReq(map[string]string{"ce-id": long(1 << 20)}), 400, "INVALID_ARGUMENT", "ce-id", "longer than 1024 bytes"},

		// 3. Batches over the cap.
		{"101-event batch", req{ct: batch, body: batchOf(normalize.DefaultMaxBatchEvents + 1)}, 413, "PAYLOAD_TOO_LARGE", "", "batch of 101 events exceeds the limit of 100 events"},
		{"5,000-event batch", req{ct: batch, body: batchOf(5000)}, 413, "PAYLOAD_TOO_LARGE", "", "batch of 5000 events exceeds the limit of 100 events"},

		// 6. Values echoed back are bounded; credentials never are.
		{"token without a scheme", req{noAuth: true, ct: ce, body: jsonOf(event()), header: map[string]string{"Authorization": "secret-token-value"}}, 401, "UNAUTHENTICATED", "Authorization", `Authorization must be "Bearer <token>"`},
		{"token in another scheme", req{noAuth: true, ct: ce, body: jsonOf(event()), header: map[string]string{"Authorization": "Token secret-token-value"}}, 401, "UNAUTHENTICATED", "Authorization", `Authorization must be "Bearer <token>"`},
		{"1 MB Authorization", req{noAuth: true, ct: ce, body: jsonOf(event()), header: map[string]string{"Authorization": "secret-token-value" + long(1<<20)}}, 401, "UNAUTHENTICATED", "Authorization", `Authorization must be "Bearer <token>"`},
		{"wrong token in the query", req{noAuth: true, path: "/notifications?access_token=secret-token-value", ct: ce, body: jsonOf(event())}, 401, "UNAUTHENTICATED", "Authorization", "not valid"},
		{"1 MB Content-Type", req{ct: "text/" + long(1<<20), body: jsonOf(event())}, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type", `"text/` + long(bridge.MaxQuoted-5) + `…" (1048581 bytes) is not supported`},
		{"1 MB path", req{path: "/" + long(1<<20), ct: ce, body: jsonOf(event())}, 404, "NOT_FOUND", "", "(1048577 bytes)"},
		{"control bytes in the path", req{path: "/x%0Alevel=ERROR", ct: ce, body: jsonOf(event())}, 404, "NOT_FOUND", "", `"/x\nlevel=ERROR"`},
		{"1 MB specversion header", binaryReq(map[string]string{"ce-specversion": "1.0" + long(1<<20)}), 400, "INVALID_ARGUMENT", "ce-specversion", "longer than 1024 bytes"},
		{"1 MB qosStatus", req{ct: ce, body: jsonOf(event(with("data", map[string]any{"sessionId": "s", "qosStatus": long(1 << 19)})))}, 400, "INVALID_ARGUMENT", "data.qosStatus", "(524288 bytes) is not REQUESTED"},
	}
}

// TestHostileRequests: each hostile request gets its exact status, code
// and field, publishes nothing, leaves the log and the answer bounded and
// free of credentials, and the same handler then still accepts a good
// notification.
func TestHostileRequests(t *testing.T) {
	var logs logBuffer
	pub := &recorder{}
	var observed int
	h := newHandler(t, pub, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		o.RejectLogRate = -1 // every line, to check each one
		o.Observe = func(Outcome) { observed++ }
	})
	cases := hostileCases()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := len(logs.String())
			w := tc.r.do(t, h)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, bridge.Truncate(w.Body.String(), 500))
			}
			if n := len(pub.events()); n != 0 {
				t.Fatalf("%d events published for a hostile request", n)
			}
			var p Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("problem body %q: %v", bridge.Truncate(w.Body.String(), 500), err)
			}
			if p.Status != tc.status || p.Code != tc.code || p.Field != tc.field {
				t.Errorf("problem status %d code %q field %q; want %d %q %q", p.Status, p.Code, p.Field, tc.status, tc.code, tc.field)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", p.Detail, tc.detail)
			}
			if tc.status == 413 && w.Header().Get("Retry-After") != "" {
				t.Error("413 with Retry-After: the same request will never fit")
			}
			if w.Body.Len() > 2048 {
				t.Errorf("answer of %d bytes", w.Body.Len())
			}
			lines := logs.since(mark)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %q", len(lines), lines)
			}
			if len(lines[0]) > 2048 {
				t.Errorf("log line of %d bytes: %s…", len(lines[0]), lines[0][:200])
			}
			for _, secret := range []string{"secret-token-value", testToken} {
				if strings.Contains(lines[0], secret) || strings.Contains(w.Body.String(), secret) {
					t.Errorf("credential %q echoed: log %s answer %s", secret, lines[0], w.Body)
				}
			}
			if w := goodReq.do(t, h); w.Code != http.StatusNoContent {
				t.Fatalf("a good notification after it answered %d: %s", w.Code, w.Body)
			}
			pub.mu.Lock()
			pub.evs = nil
			pub.mu.Unlock()
		})
	}
	if observed != 2*len(cases) {
		t.Errorf("Observe saw %d requests, want %d", observed, 2*len(cases))
	}
}

// TestAcceptedAtTheEdge: values at their caps, batches at theirs, and
// input that only looks odd are accepted as sent.
func TestAcceptedAtTheEdge(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name  string
		r     req
		mod   func(*Options)
		check func(t *testing.T, evs []bridge.Event)
	}{
		{"id at the cap", req{ct: ce, body: jsonOf(event(with("id", long(normalize.MaxIDLen))))}, nil,
			func(t *testing.T, evs []bridge.Event) {
				if len(evs[0].ID) != normalize.MaxIDLen {
					t.Errorf("id of %d bytes", len(evs[0].ID))
				}
			}},
		{"extension at the cap", req{ct: ce, body: jsonOf(event(with("ext", long(normalize.MaxExtensionLen))))}, nil, nil},
		{"surrogate pair escape", req{ct: ce, body: strings.Replace(jsonOf(event()), `"s-1"`, `"s-\ud83d\ude00"`, 1)}, nil,
			func(t *testing.T, evs []bridge.Event) {
				if evs[0].SessionID != "s-😀" {
					t.Errorf("sessionId %q", evs[0].SessionID)
				}
			}},
		{"escaped backslash before u", req{ct: ce, body: strings.Replace(jsonOf(event()), `"s-1"`, `"s-\\ud800"`, 1)}, nil,
			func(t *testing.T, evs []bridge.Event) {
				if evs[0].SessionID != `s-\ud800` {
					t.Errorf("sessionId %q", evs[0].SessionID)
				}
			}},
		{"percent-decoded ce-id", binaryReq(map[string]string{"ce-id": "a%20b%25c%C3%A9", "ce-foo": "100%"}), nil,
			func(t *testing.T, evs []bridge.Event) {
				if evs[0].ID != "a b%cé" {
					t.Errorf("id %q", evs[0].ID)
				}
			}},
		{"percent-encoded ce-id decoding to the cap", binaryReq(map[string]string{"ce-id": strings.Repeat("%41", normalize.MaxIDLen)}), nil,
			func(t *testing.T, evs []bridge.Event) {
				if evs[0].ID != strings.Repeat("A", normalize.MaxIDLen) {
					t.Errorf("id %q", bridge.Truncate(evs[0].ID, 20))
				}
			}},
		{"100-event batch", req{ct: batch, body: batchOf(normalize.DefaultMaxBatchEvents)}, nil,
			func(t *testing.T, evs []bridge.Event) {
				if len(evs) != normalize.DefaultMaxBatchEvents {
					t.Errorf("%d events", len(evs))
				}
			}},
		{"5,000-event batch with the cap raised", req{ct: batch, body: batchOf(5000)}, func(o *Options) { o.Normalize.MaxBatchEvents = 5000 },
			func(t *testing.T, evs []bridge.Event) {
				if len(evs) != 5000 {
					t.Errorf("%d events", len(evs))
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recorder{}
			w := tc.r.do(t, newHandler(t, pub, tc.mod))
			if w.Code != http.StatusNoContent {
				t.Fatalf("status %d: %s", w.Code, bridge.Truncate(w.Body.String(), 500))
			}
			if tc.check != nil {
				tc.check(t, pub.events())
			}
		})
	}
}

// TestTooLargeForTheBrokerIs413: a Publisher's ErrTooLarge is the input's
// fault, answered 413 without Retry-After, never 503.
func TestTooLargeForTheBrokerIs413(t *testing.T) {
	pub := &recorder{fail: fmt.Errorf("natssink: publish \"h-1\": %w: 2000 bytes, the server takes 1024", bridge.ErrTooLarge)}
	w := goodReq.do(t, newHandler(t, pub, nil))
	var p Problem
	json.Unmarshal(w.Body.Bytes(), &p)
	if w.Code != 413 || p.Code != "PAYLOAD_TOO_LARGE" || !strings.Contains(p.Detail, "too large for the broker") || w.Header().Get("Retry-After") != "" {
		t.Fatalf("status %d Retry-After %q problem %+v", w.Code, w.Header().Get("Retry-After"), p)
	}
	// Wrapped twice, as sinks.Set does with several brokers.
	pub.fail = errors.Join(errors.New("kafka: ok"), fmt.Errorf("nats: %w", pub.fail))
	if w := goodReq.do(t, newHandler(t, pub, nil)); w.Code != 413 {
		t.Fatalf("joined error: status %d", w.Code)
	}
}

// TestTraceContextValidation: invalid trace context is dropped, never a
// reason to refuse the event; a valid one is kept.
func TestTraceContextValidation(t *testing.T) {
	const otherTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	withTrace := func(tp, ts string) string {
		return jsonOf(event(with("traceparent", tp), with("tracestate", ts)))
	}
	bigState := "k=" + strings.Repeat("v", bridge.MaxTraceStateLen)
	cases := []struct {
		name           string
		r              req
		wantTP, wantTS string
	}{
		{"valid in the event", req{ct: ce, body: withTrace(goodTP, "k=v")}, goodTP, "k=v"},
		{"invalid traceparent in the event", req{ct: ce, body: withTrace("00-xyz", "k=v")}, "", ""},
		{"version ff in the event", req{ct: ce, body: withTrace("ff"+goodTP[2:], "k=v")}, "", ""},
		{"all-zero trace id", req{ct: ce, body: withTrace("00-"+strings.Repeat("0", 32)+goodTP[35:], "k=v")}, "", ""},
		{"1 MB traceparent in the event", req{ct: ce, body: withTrace("01"+goodTP[2:]+"-"+strings.Repeat("x", 1<<19), "k=v")}, "", ""},
		{"tracestate over 512 bytes", req{ct: ce, body: withTrace(goodTP, bigState)}, goodTP, ""},
		{"tracestate with a newline", req{ct: ce, body: withTrace(goodTP, "a=1\nb=2")}, goodTP, ""},
		{"tracestate without traceparent", req{ct: ce, body: jsonOf(event(with("tracestate", "k=v")))}, "", ""},
		{"invalid Traceparent header", req{ct: ce, body: jsonOf(event()), header: map[string]string{"Traceparent": "garbage", "Tracestate": "k=v"}}, "", ""},
		{"valid Traceparent header", req{ct: ce, body: jsonOf(event()), header: map[string]string{"Traceparent": otherTP, "Tracestate": "k=v"}}, otherTP, "k=v"},
		{"valid header, long Tracestate header", req{ct: ce, body: jsonOf(event()), header: map[string]string{"Traceparent": otherTP, "Tracestate": bigState}}, otherTP, ""},
		{"invalid in the event, valid header", req{ct: ce, body: withTrace("bad", "k=v"), header: map[string]string{"Traceparent": otherTP}}, otherTP, ""},
		{"valid in the event wins over the header", req{ct: ce, body: withTrace(goodTP, ""), header: map[string]string{"Traceparent": otherTP}}, goodTP, ""},
		{"invalid ce-traceparent", binaryReq(map[string]string{"ce-traceparent": "00-" + strings.Repeat("A", 32) + goodTP[35:], "ce-tracestate": "k=v"}), "", ""},
		{"valid ce-traceparent, percent-encoded tracestate", binaryReq(map[string]string{"ce-traceparent": goodTP, "ce-tracestate": "k=v%2Cl=w"}), goodTP, "k=v,l=w"},
		{"1 MB ce-tracestate", binaryReq(map[string]string{"ce-traceparent": goodTP, "ce-tracestate": strings.Repeat("x", 1<<20)}), goodTP, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recorder{}
			w := tc.r.do(t, newHandler(t, pub, nil))
			if w.Code != http.StatusNoContent {
				t.Fatalf("status %d: %s", w.Code, bridge.Truncate(w.Body.String(), 300))
			}
			ev := pub.events()[0]
			if ev.TraceParent != tc.wantTP || ev.TraceState != tc.wantTS {
				t.Errorf("traceparent %q tracestate %q; want %q %q", bridge.Truncate(ev.TraceParent, 80), bridge.Truncate(ev.TraceState, 80), tc.wantTP, tc.wantTS)
			}
		})
	}
}

// TestRejectionLogIsRateLimited: past the burst, rejections are counted
// rather than logged, the next line logged says how many were left out,
// and Observe sees every request. The handler's clock is fixed, so the
// test depends on no timing.
func TestRejectionLogIsRateLimited(t *testing.T) {
	var logs logBuffer
	var mu sync.Mutex
	statuses := map[int]int{}
	h := newHandler(t, &recorder{}, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		o.RejectLogRate, o.RejectLogBurst = 10, 5
		o.Observe = func(oc Outcome) { mu.Lock(); statuses[oc.Status]++; mu.Unlock() }
	})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	bad := req{noAuth: true, ct: ce, body: jsonOf(event())}
	for range 50 {
		bad.do(t, h)
	}
	if n := len(logs.since(0)); n != 5 {
		t.Fatalf("%d lines logged for 50 rejections with a burst of 5, want 5", n)
	}
	if strings.Contains(logs.String(), "suppressed") {
		t.Fatal("a line within the burst says lines were suppressed")
	}
	now = now.Add(time.Second) // 10 more tokens
	mark := len(logs.String())
	bad.do(t, h)
	lines := logs.since(mark)
	if len(lines) != 1 {
		t.Fatalf("%d lines after the rate refilled, want 1", len(lines))
	}
	var line struct {
		Msg        string `json:"msg"`
		Suppressed int    `json:"suppressed"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line.Msg != "notification rejected" || line.Suppressed != 45 {
		t.Fatalf("line %s: want the rejection with suppressed 45", lines[0])
	}
	mark = len(logs.String())
	bad.do(t, h)
	if lines := logs.since(mark); len(lines) != 1 || strings.Contains(lines[0], "suppressed") {
		t.Fatalf("the next line %q still carries a count", lines)
	}
	if statuses[401] != 52 {
		t.Fatalf("Observe saw %v, want 52 answers of 401", statuses)
	}
	if w := goodReq.do(t, h); w.Code != http.StatusNoContent {
		t.Fatalf("good notification after the flood: %d", w.Code)
	}
}

// TestRejectionLogConcurrent: the limiter and its counter under -race.
func TestRejectionLogConcurrent(t *testing.T) {
	var logs logBuffer
	h := newHandler(t, &recorder{}, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		o.RejectLogRate, o.RejectLogBurst = 1, 3
	})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now } // fixed: no line but the burst
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				req{noAuth: true, ct: ce, body: "{}"}.do(t, h)
			}
		})
	}
	wg.Wait()
	if n := len(logs.since(0)); n != 3 {
		t.Fatalf("%d lines, want the burst of 3", n)
	}
	if n := h.suppressed.Load(); n != 200-3 {
		t.Fatalf("suppressed %d, want %d", n, 200-3)
	}
}
