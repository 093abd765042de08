package qodsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestLifecycle(t *testing.T) {
	h := newHarness(t, Options{AvailableDelay: 5 * time.Second, Retention: time.Minute})
	b := createBody("+36721601234567", h.rc.url(), "sink-token")
	b["duration"] = 60
	id := h.c.create(b)["sessionId"].(string)
	get := func() map[string]any { return h.c.do("GET", BasePathV1+"/sessions/"+id, nil).json(t) }

	h.clk.Advance(4 * time.Second)
	flush(t, h.sim)
	if s := get(); s["qosStatus"] != "REQUESTED" || len(h.rc.all()) != 0 {
		t.Fatalf("before AvailableDelay: %v, %d notifications", s, len(h.rc.all()))
	}

	h.clk.Advance(time.Second)
	flush(t, h.sim)
	s := get()
	if s["qosStatus"] != "AVAILABLE" || s["startedAt"] != "2025-06-01T12:00:05Z" || s["expiresAt"] != "2025-06-01T12:01:05Z" || s["duration"] != 60.0 {
		t.Fatalf("after AvailableDelay: %v", s)
	}
	got := h.rc.accepted()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	checkNotification(t, got[0], FormatCAMARAv1, "sink-token")
	if got[0].status() != "AVAILABLE" || got[0].info() != "" || got[0].sessionID() != id || got[0].ev["time"] != "2025-06-01T12:00:05.000Z" {
		t.Errorf("AVAILABLE notification %s", got[0].body)
	}
	if _, ok := got[0].data()["statusInfo"]; ok {
		t.Errorf("statusInfo present without a value: %s", got[0].body)
	}

	h.clk.Advance(60 * time.Second)
	flush(t, h.sim)
	s = get()
	if s["qosStatus"] != "UNAVAILABLE" || s["statusInfo"] != "DURATION_EXPIRED" || s["expiresAt"] != "2025-06-01T12:01:05Z" {
		t.Fatalf("after the duration: %v", s)
	}
	got = h.rc.accepted()
	if len(got) != 2 || got[1].status() != "UNAVAILABLE" || got[1].info() != "DURATION_EXPIRED" {
		t.Fatalf("notifications %d: %s", len(got), got[len(got)-1].body)
	}
	checkNotification(t, got[1], FormatCAMARAv1, "sink-token")
	if got[0].id() == got[1].id() {
		t.Errorf("two notifications share id %s", got[0].id())
	}
	// Deleting an UNAVAILABLE session sends nothing more.
	h.clk.Advance(time.Minute - time.Second)
	if d := h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil); d.status != 204 {
		t.Fatalf("delete retained session: %d", d.status)
	}
	flush(t, h.sim)
	if n := len(h.rc.all()); n != 2 {
		t.Errorf("%d notifications after deleting an UNAVAILABLE session", n)
	}
}

func TestDeleteAvailable(t *testing.T) {
	h := newHarness(t, Options{})
	id := h.c.create(createBody("+36721601234567", h.rc.url(), "tok"))["sessionId"].(string)
	h.clk.Advance(time.Second)
	h.clk.Advance(10 * time.Second)
	if d := h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil); d.status != 204 {
		t.Fatalf("delete: %d", d.status)
	}
	flush(t, h.sim)
	got := h.rc.accepted()
	if len(got) != 2 || got[1].status() != "UNAVAILABLE" || got[1].info() != "DELETE_REQUESTED" {
		t.Fatalf("notifications %v", got)
	}
	// Its expiry timer was stopped: nothing more happens.
	h.clk.Advance(2 * time.Hour)
	flush(t, h.sim)
	if n := len(h.rc.all()); n != 2 {
		t.Errorf("%d notifications after the deleted session's expiry", n)
	}
	if p := h.clk.Pending(); p != 0 {
		t.Errorf("%d timers left", p)
	}
}

// checkNotification asserts the CloudEvent shape of one notification in
// format f and its bearer token, against the spec's callback schema and as
// a CloudEvents 1.0 event.
func checkNotification(t testing.TB, n notification, f Format, token string) {
	t.Helper()
	wantCT, wantType, doc := "application/json", "org.camaraproject.qod.v0.qos-status-changed", mustSpecs(t).v0
	if f == FormatCAMARAv1 {
		wantCT, wantType, doc = "application/cloudevents+json", "org.camaraproject.quality-on-demand.v1.qos-status-changed", mustSpecs(t).v1
	}
	if ct := n.header.Get("Content-Type"); ct != wantCT {
		t.Errorf("Content-Type %q, want %q", ct, wantCT)
	}
	wantAuth := ""
	if token != "" {
		wantAuth = "Bearer " + token
	}
	if got := n.header.Get("Authorization"); got != wantAuth {
		t.Errorf("Authorization %q, want %q", got, wantAuth)
	}

	ev := n.ev
	if f == FormatNaC {
		// The legacy event{} beside the CloudEvent attributes, as the
		// Network-as-Code receiver example models it.
		e, _ := ev["event"].(map[string]any)
		d, _ := e["eventDetail"].(map[string]any)
		if e["eventType"] != "QOS_STATUS_CHANGED" || e["eventTime"] != ev["time"] || d == nil {
			t.Fatalf("NaC event %s", n.body)
		}
		for _, k := range []string{"sessionId", "qosStatus", "statusInfo"} {
			if _, ok := d[k]; !ok {
				t.Errorf("eventDetail lacks %s: %s", k, n.body)
			}
			if _, ok := n.data()[k]; !ok {
				t.Errorf("data lacks %s: %s", k, n.body)
			}
		}
		if d["sessionId"] != n.sessionID() || d["qosStatus"] != n.status() || d["statusInfo"] != n.data()["statusInfo"] {
			t.Errorf("eventDetail differs from data: %s", n.body)
		}
		ev = make(map[string]any, len(n.ev))
		for k, v := range n.ev {
			if k != "event" {
				ev[k] = v
			}
		}
	} else {
		schema := doc.Components.Schemas["EventQosStatusChanged"].Value
		if err := schema.VisitJSON(ev); err != nil {
			t.Errorf("notification violates the spec's callback schema: %v\n%s", err, n.body)
		}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var ce event.Event
	if err := json.Unmarshal(b, &ce); err != nil {
		t.Fatalf("not a CloudEvent: %v: %s", err, n.body)
	}
	if err := ce.Validate(); err != nil {
		t.Errorf("invalid CloudEvent: %v: %s", err, n.body)
	}
	if ce.SpecVersion() != "1.0" || ce.Type() != wantType || ce.DataContentType() != "application/json" || ce.Time().IsZero() || ce.ID() == "" {
		t.Errorf("CloudEvent attributes: %s", n.body)
	}
	if s, _ := ev["time"].(string); !strings.HasSuffix(s, "Z") {
		t.Errorf("time %q not RFC 3339 UTC", s)
	}
	base := BasePathV1
	if strings.Contains(ce.Source(), BasePathV0) {
		base = BasePathV0
	}
	if want := "https://qodsim.local" + base + "/sessions/" + n.sessionID(); ce.Source() != want {
		t.Errorf("source %q, want %q", ce.Source(), want)
	}
}

func TestNotificationFormats(t *testing.T) {
	for _, tc := range []struct {
		opt, want Format
		v0        bool // create through /qod/v0
	}{
		{FormatAuto, FormatCAMARAv1, false},
		{FormatAuto, FormatCAMARAv0, true},
		{FormatCAMARAv1, FormatCAMARAv1, true},
		{FormatCAMARAv0, FormatCAMARAv0, false},
		{FormatNaC, FormatNaC, false},
		{FormatNaC, FormatNaC, true},
	} {
		t.Run(tc.opt.String()+"/v0="+map[bool]string{true: "yes", false: "no"}[tc.v0], func(t *testing.T) {
			h := newHarness(t, Options{Format: tc.opt})
			var id string
			if tc.v0 {
				a := h.c.do("POST", BasePathV0+"/sessions", map[string]any{
					"device":            map[string]any{"phoneNumber": "36721601234567"},
					"applicationServer": map[string]any{"ipv4Address": "233.252.0.2"},
					"qosProfile":        "QOS_L",
					"webhook":           map[string]any{"notificationUrl": h.rc.url(), "notificationAuthToken": "replace-with-your-auth-token"},
				})
				if a.status != 201 {
					t.Fatalf("v0 create: %d %s", a.status, a.body)
				}
				id = a.json(t)["sessionId"].(string)
			} else {
				id = h.c.create(createBody("+36721601234567", h.rc.url(), "replace-with-your-auth-token"))["sessionId"].(string)
			}
			h.clk.Advance(time.Second)
			base := BasePathV1
			if tc.v0 {
				base = BasePathV0
			}
			if d := h.c.do("DELETE", base+"/sessions/"+id, nil); d.status != 204 {
				t.Fatalf("delete: %d", d.status)
			}
			flush(t, h.sim)
			got := h.rc.accepted()
			if len(got) != 2 {
				t.Fatalf("%d notifications", len(got))
			}
			for _, n := range got {
				checkNotification(t, n, tc.want, "replace-with-your-auth-token")
				if !strings.HasSuffix(n.ev["source"].(string), base+"/sessions/"+id) {
					t.Errorf("source %v", n.ev["source"])
				}
			}
			if got[0].status() != "AVAILABLE" || got[1].status() != "UNAVAILABLE" || got[1].info() != "DELETE_REQUESTED" {
				t.Errorf("statuses %s / %s", got[0].body, got[1].body)
			}
			if tc.want == FormatNaC {
				if v, ok := got[0].data()["statusInfo"]; !ok || v != nil {
					t.Errorf("NaC statusInfo of AVAILABLE = %v, %v; want null", v, ok)
				}
			}
		})
	}
}

func TestNoSinkNoToken(t *testing.T) {
	h := newHarness(t, Options{})
	// No sink: nothing is sent, and nothing is pending.
	h.c.create(createBody("+36700000001", "", ""))
	// A sink without a credential: no Authorization header.
	h.c.create(createBody("+36700000002", h.rc.url(), ""))
	h.clk.Advance(time.Second)
	flush(t, h.sim)
	got := h.rc.accepted()
	if len(got) != 1 {
		t.Fatalf("%d notifications", len(got))
	}
	checkNotification(t, got[0], FormatCAMARAv1, "")
}

func TestRetry(t *testing.T) {
	h := newHarness(t, Options{RetryBackoff: time.Second, RetryMaxBackoff: 10 * time.Second, MaxAttempts: 4})
	// First attempt of each notification: 503 with Retry-After 7; second:
	// 500; third: accepted.
	h.rc.answer = func(n notification, prior []notification) (int, string) {
		tries := 0
		for _, p := range prior {
			if p.id() == n.id() {
				tries++
			}
		}
		switch tries {
		case 0:
			return http.StatusServiceUnavailable, "7"
		case 1:
			return http.StatusInternalServerError, ""
		}
		return http.StatusNoContent, ""
	}
	id := h.c.create(createBody("+36721601234567", h.rc.url(), "tok"))["sessionId"].(string)
	h.clk.Advance(time.Second)
	waitUntil(t, "the first attempt", nil, func() bool { return len(h.rc.all()) == 1 }, h.rc.signal)
	// The sender honours Retry-After: 7s. Wait until it waits on the clock
	// (expiry timer + retry wait), then move to just before it is due.
	waitUntil(t, "the retry wait", nil, func() bool { return h.clk.Pending() == 2 }, nil)
	h.clk.Advance(6 * time.Second)
	if n := len(h.rc.all()); n != 1 {
		t.Fatalf("retried before Retry-After: %d attempts", n)
	}
	h.clk.Advance(time.Second)
	waitUntil(t, "the second attempt", nil, func() bool { return len(h.rc.all()) == 2 }, h.rc.signal)
	// Then the backoff: at most RetryBackoff*2 = 2s with jitter.
	waitUntil(t, "the second retry wait", nil, func() bool { return h.clk.Pending() == 2 }, nil)
	h.clk.Advance(2 * time.Second)
	flush(t, h.sim)
	all := h.rc.all()
	if len(all) != 3 || all[2].answered != 204 {
		t.Fatalf("%d attempts", len(all))
	}
	for _, n := range all {
		checkNotification(t, n, FormatCAMARAv1, "tok")
		if n.id() != all[0].id() || string(n.body) != string(all[0].body) {
			t.Errorf("a retry changed the notification: %s vs %s", n.body, all[0].body)
		}
		if n.sessionID() != id {
			t.Errorf("sessionId %s", n.sessionID())
		}
	}
}

func TestRetryGivesUp(t *testing.T) {
	h := newHarness(t, Options{MaxAttempts: 2, RetryBackoff: time.Second, RetryMaxBackoff: time.Second})
	h.rc.answer = func(n notification, _ []notification) (int, string) {
		switch n.status() {
		case "AVAILABLE":
			return http.StatusBadGateway, ""
		}
		return http.StatusNoContent, ""
	}
	id := h.c.create(createBody("+36721601234567", h.rc.url(), "tok"))["sessionId"].(string)
	h.clk.Advance(time.Second)
	waitUntil(t, "the first attempt", nil, func() bool { return len(h.rc.all()) == 1 }, h.rc.signal)
	waitUntil(t, "the retry wait", nil, func() bool { return h.clk.Pending() == 2 }, nil)
	h.clk.Advance(time.Second)
	flush(t, h.sim) // the second attempt fails too: given up, nothing waits
	h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil)
	flush(t, h.sim)
	all := h.rc.all()
	if len(all) != 3 || all[0].status() != "AVAILABLE" || all[1].status() != "AVAILABLE" || all[2].info() != "DELETE_REQUESTED" {
		t.Fatalf("attempts %d", len(all))
	}
}

func TestNoRetryOn4xxAndGone(t *testing.T) {
	h := newHarness(t, Options{})
	h.rc.answer = func(n notification, _ []notification) (int, string) {
		if n.sessionID() == "" {
			return 400, ""
		}
		if strings.HasPrefix(n.header.Get("Authorization"), "Bearer gone") {
			return http.StatusGone, ""
		}
		return http.StatusUnauthorized, ""
	}
	a := h.c.create(createBody("+36700000001", h.rc.url(), "unauthorized"))["sessionId"].(string)
	g := h.c.create(createBody("+36700000002", h.rc.url(), "gone"))["sessionId"].(string)
	h.clk.Advance(time.Second)
	flush(t, h.sim) // no retry is waiting on the clock, or this would block
	h.c.do("DELETE", BasePathV1+"/sessions/"+a, nil)
	h.c.do("DELETE", BasePathV1+"/sessions/"+g, nil)
	flush(t, h.sim)
	var toA, toG int
	for _, n := range h.rc.all() {
		if n.sessionID() == a {
			toA++
		} else {
			toG++
		}
	}
	// 401: each notification tried once; 410: nothing after the first.
	if toA != 2 || toG != 1 {
		t.Errorf("attempts: 401 sink %d (want 2), 410 sink %d (want 1)", toA, toG)
	}
}

func TestTokenExpiry(t *testing.T) {
	h := newHarness(t, Options{})
	b := createBody("+36721601234567", h.rc.url(), "tok")
	b["sinkCredential"].(map[string]any)["accessTokenExpiresUtc"] = "2025-06-01T12:00:30Z"
	id := h.c.create(b)["sessionId"].(string)
	h.clk.Advance(time.Second) // AVAILABLE: token valid
	flush(t, h.sim)
	h.clk.Advance(time.Minute) // token expired before the delete
	h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil)
	flush(t, h.sim)
	got := h.rc.all()
	if len(got) != 1 || got[0].status() != "AVAILABLE" {
		t.Errorf("notifications %d, want only AVAILABLE", len(got))
	}
}

func TestShutdownDrainsAndClose(t *testing.T) {
	h := newHarness(t, Options{})
	h.c.create(createBody("+36721601234567", h.rc.url(), "tok"))
	h.clk.Advance(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.sim.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n := len(h.rc.accepted()); n != 1 {
		t.Errorf("shutdown did not drain: %d notifications", n)
	}
	a := h.c.do("POST", BasePathV1+"/sessions", createBody("+36700000001", "", ""))
	if a.status != 503 || a.errorInfo(t).Code != "UNAVAILABLE" {
		t.Errorf("after shutdown: %d %s", a.status, a.body)
	}
	if err := h.sim.Close(); err != nil {
		t.Error(err)
	}
	if err := h.sim.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	// Timers stopped: nothing moves any more.
	h.clk.Advance(24 * time.Hour)
	if n := len(h.rc.all()); n != 1 {
		t.Errorf("%d notifications after shutdown", n)
	}
}

func TestCloseCancelsDelivery(t *testing.T) {
	h := newHarness(t, Options{})
	release := make(chan struct{})
	defer close(release)
	stuck := make(chan struct{}, 1)
	h.rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stuck <- struct{}{}
		select { // a receiver that never answers until the sender gives up
		case <-r.Context().Done():
		case <-release:
		}
	})
	h.c.create(createBody("+36721601234567", h.rc.url(), "tok"))
	h.clk.Advance(time.Second)
	<-stuck
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.sim.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("shutdown with a done ctx and a pending notification: %v", err)
	}
	// Close returns although the receiver never answered.
	if err := h.sim.Close(); err != nil {
		t.Error(err)
	}
}
