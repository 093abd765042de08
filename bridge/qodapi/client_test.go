package qodapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

const (
	testDevice = `{"phoneNumber":"+36721601234567"}`
	testSink   = "https://bridge.example/notifications/k1"
	// testToken is what the engine derives: 43 characters of base64url.
	testToken = "q0dBr1dgeSessionTokenAAAAAAAAAAAAAAAAAAAAAA"
)

var testCreate = json.RawMessage(`{
  "device": ` + testDevice + `,
  "applicationServer": {"ipv4Address": "233.252.0.2"},
  "qosProfile": "QOS_L",
  "duration": 3600
}`)

func withSink(t testing.TB, body json.RawMessage) json.RawMessage {
	t.Helper()
	b, err := WithSink(body, testSink, testToken, fakeNow.Add(2*time.Hour))
	if err != nil {
		t.Fatalf("WithSink: %v", err)
	}
	return b
}

func TestSessionLifecycle(t *testing.T) {
	for _, d := range []Dialect{DialectV1, DialectV0} {
		t.Run(string(d), func(t *testing.T) {
			st := newStore(d)
			f := newFakeAPI(t, d, st.handle)
			c := newTestClient(t, f, nil)
			ctx := context.Background()
			body := withSink(t, testCreate)

			s, err := c.CreateSession(ctx, "req-create", body)
			if err != nil {
				t.Fatalf("CreateSession: %v", err)
			}
			checkSession(t, s, 3600)

			// What reached the platform.
			reqs := f.requests()
			sent := reqs[len(reqs)-1]
			if d == DialectV1 {
				if string(sent.body) != string(body) {
					t.Errorf("v1 body not sent as-is:\n got %s\nwant %s", sent.body, body)
				}
			} else {
				want := `{"device":` + testDevice + `,"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600,
					"webhook":{"notificationUrl":"` + testSink + `","notificationAuthToken":"Bearer ` + testToken + `"}}`
				if !jsonEqual(t, sent.body, []byte(want)) {
					t.Errorf("v0 body:\n got %s\nwant %s", sent.body, want)
				}
			}

			g, err := c.GetSession(ctx, "req-get", s.ID)
			if err != nil {
				t.Fatalf("GetSession: %v", err)
			}
			checkSession(t, g, 3600)
			if g.ID != s.ID {
				t.Errorf("GetSession id %q, want %q", g.ID, s.ID)
			}

			e, err := c.ExtendSession(ctx, "req-extend", s.ID, 600)
			if err != nil {
				t.Fatalf("ExtendSession: %v", err)
			}
			checkSession(t, e, 4200)

			list, err := c.RetrieveSessions(ctx, "req-list", json.RawMessage(testDevice))
			if err != nil {
				t.Fatalf("RetrieveSessions: %v", err)
			}
			if len(list) != 1 || list[0].ID != s.ID {
				t.Fatalf("RetrieveSessions = %+v, want the one session %s", list, s.ID)
			}
			checkSession(t, list[0], 4200)

			if err := c.DeleteSession(ctx, "req-delete", s.ID); err != nil {
				t.Fatalf("DeleteSession: %v", err)
			}
			if _, err := c.GetSession(ctx, "req-get2", s.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetSession after delete: %v, want ErrNotFound", err)
			}
			if err := c.DeleteSession(ctx, "req-delete2", s.ID); !errors.Is(err, ErrNotFound) {
				t.Errorf("DeleteSession twice: %v, want ErrNotFound", err)
			}
			list, err = c.RetrieveSessions(ctx, "req-list2", json.RawMessage(testDevice))
			if err != nil || len(list) != 0 || list == nil {
				t.Errorf("RetrieveSessions after delete = %#v, %v; want an empty non-nil list", list, err)
			}

			wantOps := []struct{ op, method, path, corr string }{
				{"createSession", "POST", "/sessions", "req-create"},
				{"getSession", "GET", "/sessions/" + s.ID, "req-get"},
				{"extendQosSessionDuration", "POST", "/sessions/" + s.ID + "/extend", "req-extend"},
				{"retrieveSessionsByDevice", "POST", "/retrieve-sessions", "req-list"},
				{"deleteSession", "DELETE", "/sessions/" + s.ID, "req-delete"},
				{"getSession", "GET", "/sessions/" + s.ID, "req-get2"},
				{"deleteSession", "DELETE", "/sessions/" + s.ID, "req-delete2"},
				{"retrieveSessionsByDevice", "POST", "/retrieve-sessions", "req-list2"},
			}
			reqs = f.requests()
			if len(reqs) != len(wantOps) {
				t.Fatalf("platform got %d requests, want %d", len(reqs), len(wantOps))
			}
			for i, w := range wantOps {
				r := reqs[i]
				if r.op != w.op || r.method != w.method || r.path != w.path {
					t.Errorf("request %d = %s %s (%s), want %s %s (%s)", i, r.method, r.path, r.op, w.method, w.path, w.op)
				}
				if got := r.header.Get("x-correlator"); got != w.corr {
					t.Errorf("request %d x-correlator %q, want %q", i, got, w.corr)
				}
				if got := r.header.Get("Authorization"); got != "Bearer "+testBearer {
					t.Errorf("request %d Authorization %q", i, got)
				}
				if r.header.Get("Accept") != "application/json" || r.header.Get("User-Agent") != DefaultUserAgent {
					t.Errorf("request %d Accept %q User-Agent %q", i, r.header.Get("Accept"), r.header.Get("User-Agent"))
				}
				if r.method == "POST" && r.header.Get("Content-Type") != "application/json" {
					t.Errorf("request %d Content-Type %q", i, r.header.Get("Content-Type"))
				}
			}
			if !jsonEqual(t, reqs[2].body, []byte(`{"requestedAdditionalDuration":600}`)) {
				t.Errorf("extend body %s", reqs[2].body)
			}
			if !jsonEqual(t, reqs[3].body, []byte(`{"device":`+testDevice+`}`)) {
				t.Errorf("retrieve body %s", reqs[3].body)
			}
		})
	}
}

// checkSession checks what every answer of the store must give, in either
// dialect: the parsed fields and a 1.x SessionInfo without the secret.
func checkSession(t *testing.T, s Session, dur int) {
	t.Helper()
	d := time.Duration(dur) * time.Second
	if s.ID == "" || s.QoSStatus != bridge.StatusAvailable || s.StatusInfo != "" || s.QoSProfile != "QOS_L" {
		t.Errorf("session %q status %q info %q profile %q", s.ID, s.QoSStatus, s.StatusInfo, s.QoSProfile)
	}
	if s.Duration != d {
		t.Errorf("Duration %v, want %v", s.Duration, d)
	}
	if !s.StartedAt.Equal(fakeNow) || !s.ExpiresAt.Equal(fakeNow.Add(d)) {
		t.Errorf("StartedAt %v ExpiresAt %v, want %v and %v", s.StartedAt, s.ExpiresAt, fakeNow, fakeNow.Add(d))
	}
	if s.Sink != testSink {
		t.Errorf("Sink %q, want %q", s.Sink, testSink)
	}
	if !jsonEqual(t, s.Device, []byte(testDevice)) {
		t.Errorf("Device %s", s.Device)
	}
	if strings.Contains(string(s.Info), testToken) {
		t.Errorf("Info carries the notification token: %s", s.Info)
	}
	var info map[string]any
	if err := json.Unmarshal(s.Info, &info); err != nil {
		t.Fatalf("Info: %v", err)
	}
	for _, k := range []string{"sinkCredential", "webhook"} {
		if _, ok := info[k]; ok {
			t.Errorf("Info has %s: %s", k, s.Info)
		}
	}
	if info["startedAt"] != fakeNow.Format(time.RFC3339) || info["expiresAt"] != fakeNow.Add(d).Format(time.RFC3339) {
		t.Errorf("Info timestamps %v %v", info["startedAt"], info["expiresAt"])
	}
	if info["sink"] != testSink || info["sessionId"] != s.ID {
		t.Errorf("Info sink %v sessionId %v", info["sink"], info["sessionId"])
	}
}

func TestErrorMapping(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	get := func(c *Client) error { _, err := c.GetSession(context.Background(), "r", newUUID()); return err }
	create := func(c *Client) error {
		_, err := c.CreateSession(context.Background(), "r", withSink(t, testCreate))
		return err
	}
	retry := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	cases := []struct {
		name       string
		call       func(*Client) error
		a          answer
		sentinel   error
		code, msg  string
		retryable  bool
		retryAfter time.Duration
	}{
		{"400", create, answer{status: 400, body: `{"status":400,"code":"INVALID_ARGUMENT","message":"Client specified an invalid argument"}`},
			ErrBadRequest, "INVALID_ARGUMENT", "Client specified an invalid argument", false, 0},
		{"401", get, answer{status: 401, body: `{"status":401,"code":"UNAUTHENTICATED","message":"Request not authenticated"}`},
			ErrUnauthenticated, "UNAUTHENTICATED", "Request not authenticated", false, 0},
		{"403", get, answer{status: 403, body: `{"status":403,"code":"PERMISSION_DENIED","message":"no"}`},
			ErrPermissionDenied, "PERMISSION_DENIED", "no", false, 0},
		{"404", get, answer{status: 404, body: `{"status":404,"code":"NOT_FOUND","message":"The specified resource is not found."}`},
			ErrNotFound, "NOT_FOUND", "The specified resource is not found.", false, 0},
		{"409", create, answer{status: 409, body: `{"status":409,"code":"CONFLICT","message":"Conflict with an existing session for the same device."}`},
			ErrConflict, "CONFLICT", "Conflict with an existing session for the same device.", false, 0},
		{"422", create, answer{status: 422, body: `{"status":422,"code":"MISSING_IDENTIFIER","message":"The device cannot be identified."}`},
			ErrUnprocessable, "MISSING_IDENTIFIER", "The device cannot be identified.", false, 0},
		{"429 seconds", get, answer{status: 429, header: retry("7"), body: `{"status":429,"code":"TOO_MANY_REQUESTS","message":"Rate limit reached."}`},
			ErrTooManyRequests, "TOO_MANY_REQUESTS", "Rate limit reached.", true, 7 * time.Second},
		{"429 date", get, answer{status: 429, header: retry(now.Add(30 * time.Second).Format(http.TimeFormat)), body: `{"status":429,"code":"QUOTA_EXCEEDED","message":"Out of resource quota."}`},
			ErrTooManyRequests, "QUOTA_EXCEEDED", "Out of resource quota.", true, 30 * time.Second},
		{"429 past date", get, answer{status: 429, header: retry(now.Add(-time.Minute).Format(http.TimeFormat)), body: `{"status":429,"code":"TOO_MANY_REQUESTS","message":"x"}`},
			ErrTooManyRequests, "TOO_MANY_REQUESTS", "x", true, 0},
		// QoD 1.1.0 documents no 5xx: these answers are off-spec by definition.
		{"500", get, answer{status: 500, body: `{"status":500,"code":"INTERNAL","message":"Server error"}`, offSpec: true},
			ErrServer, "INTERNAL", "Server error", true, 0},
		{"503", get, answer{status: 503, header: retry("2"), body: `{"status":503,"code":"UNAVAILABLE","message":"Service unavailable"}`, offSpec: true},
			ErrServer, "UNAVAILABLE", "Service unavailable", true, 2 * time.Second},
		{"501", get, answer{status: 501, body: `{"status":501,"code":"NOT_IMPLEMENTED","message":"not here"}`, offSpec: true},
			ErrServer, "NOT_IMPLEMENTED", "not here", false, 0},
		{"502 html", get, answer{status: 502, header: http.Header{"Content-Type": {"text/html"}}, body: "<html><body><h1>502 Bad Gateway</h1></body></html>", offSpec: true},
			ErrServer, "BAD_GATEWAY", "Bad Gateway", true, 0},
		{"500 empty", get, answer{status: 500, offSpec: true},
			ErrServer, "INTERNAL", "Internal Server Error", true, 0},
		{"404 detail", get, answer{status: 404, body: `{"detail":"QoS subscription not found"}`, offSpec: true},
			ErrNotFound, "NOT_FOUND", "QoS subscription not found", false, 0},
		{"403 rapidapi", get, answer{status: 403, body: `{"message":"Invalid API key."}`, offSpec: true},
			ErrPermissionDenied, "PERMISSION_DENIED", "Invalid API key.", false, 0},
		{"422 fastapi", create, answer{status: 422, body: `{"detail":[{"loc":["body","duration"],"msg":"field required"}]}`, offSpec: true},
			ErrUnprocessable, "UNPROCESSABLE_ENTITY", `[{"loc":["body","duration"],"msg":"field required"}]`, false, 0},
		{"418 plain text", get, answer{status: 418, header: http.Header{"Content-Type": {"text/plain"}}, body: "short and stout", offSpec: true},
			nil, "HTTP_418", "I'm a teapot", false, 0},
		{"302 not followed", get, answer{status: 302, header: http.Header{"Location": {"/elsewhere"}}, offSpec: true},
			nil, "HTTP_302", "Found", false, 0},
	}
	all := []error{ErrBadRequest, ErrUnauthenticated, ErrPermissionDenied, ErrNotFound, ErrConflict, ErrGone, ErrUnprocessable, ErrTooManyRequests, ErrServer}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, DialectV1, fixed(tc.a))
			c := newTestClient(t, f, nil)
			c.now = func() time.Time { return now }
			err := tc.call(c)
			ae, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("error %v (%T), want *APIError", err, err)
			}
			if ae.Status != tc.a.status || ae.Code != tc.code || ae.Message != tc.msg {
				t.Errorf("APIError{%d %q %q}, want {%d %q %q}", ae.Status, ae.Code, ae.Message, tc.a.status, tc.code, tc.msg)
			}
			for _, s := range all {
				if got, want := errors.Is(err, s), s == tc.sentinel; got != want { //nolint:errorlint // compares two sentinels, not an error chain
					t.Errorf("errors.Is(err, %v) = %v, want %v", s, got, want)
				}
			}
			if Retryable(err) != tc.retryable || ae.Temporary() != tc.retryable {
				t.Errorf("Retryable = %v, Temporary = %v, want %v", Retryable(err), ae.Temporary(), tc.retryable)
			}
			if RetryAfter(err) != tc.retryAfter || ae.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", RetryAfter(err), tc.retryAfter)
			}
			if strings.Contains(err.Error(), testBearer) || strings.Contains(err.Error(), testToken) {
				t.Errorf("error string carries a secret: %q", err)
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Errorf("error string %q lacks the code", err)
			}
			if n := len(f.requests()); n != 1 {
				t.Errorf("platform got %d requests, want exactly 1 (one attempt, no redirect)", n)
			}
		})
	}
}

func TestRetrieveSessionsNotFoundIsEmpty(t *testing.T) {
	cases := []struct {
		name string
		d    Dialect
		a    answer
	}{
		{"v1 404 IDENTIFIER_NOT_FOUND", DialectV1, answer{status: 404, body: `{"status":404,"code":"IDENTIFIER_NOT_FOUND","message":"Device identifier not found."}`}},
		{"v1 404 empty body", DialectV1, answer{status: 404, offSpec: true}},
		{"v1 200 empty array", DialectV1, answer{status: 200, body: `[]`}},
		{"v1 200 null", DialectV1, answer{status: 200, body: `null`, offSpec: true}},
		{"v1 204", DialectV1, answer{status: 204, offSpec: true}},
		{"v0 404 NaC", DialectV0, answer{status: 404, body: `{"detail":"QoS subscription not found"}`, offSpec: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, tc.d, fixed(tc.a))
			c := newTestClient(t, f, nil)
			list, err := c.RetrieveSessions(context.Background(), "r", json.RawMessage(testDevice))
			if err != nil || list == nil || len(list) != 0 {
				t.Fatalf("RetrieveSessions = %#v, %v; want an empty list", list, err)
			}
		})
	}
	t.Run("token endpoint 404 is an error", func(t *testing.T) {
		ts := newTokenServer(t)
		ts.fail = answer{status: 404}
		f := newFakeAPI(t, DialectV1, fixed(answer{status: 200, body: `[]`}))
		c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
		list, err := c.RetrieveSessions(context.Background(), "r", json.RawMessage(testDevice))
		if !errors.Is(err, ErrNotFound) || list != nil {
			t.Errorf("RetrieveSessions = %v, %v; want the token endpoint's 404", list, err)
		}
	})
	t.Run("no device sends {}", func(t *testing.T) {
		f := newFakeAPI(t, DialectV1, fixed(answer{status: 200, body: `[]`}))
		c := newTestClient(t, f, nil)
		if _, err := c.RetrieveSessions(context.Background(), "r", nil); err != nil {
			t.Fatal(err)
		}
		if got := string(f.requests()[0].body); got != `{}` {
			t.Errorf("body %s, want {}", got)
		}
	})
}

func TestTimestampQuirks(t *testing.T) {
	const id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	started := time.Date(2024, 6, 18, 8, 48, 12, 0, time.UTC)
	cases := []struct {
		name               string
		startedAt          string // JSON
		expiresAt          string // JSON, "" for absent
		wantStart, wantExp time.Time
		infoStart, infoExp any // in Info; nil: absent
	}{
		{"epoch seconds and millis", `1718700492`, `1718704092300`, started, started.Add(time.Hour + 300*time.Millisecond),
			"2024-06-18T08:48:12Z", "2024-06-18T09:48:12.3Z"},
		{"epoch strings", `"1718700492"`, `"1718704092000"`, started, started.Add(time.Hour),
			"2024-06-18T08:48:12Z", "2024-06-18T09:48:12Z"},
		{"fractional epoch", `1718700492.5`, `1718704092`, started.Add(500 * time.Millisecond), started.Add(time.Hour),
			"2024-06-18T08:48:12.5Z", "2024-06-18T09:48:12Z"},
		{"no zone is UTC", `"2024-06-18T08:48:12.300312"`, `"2024-06-18 09:48:12+02:00"`, started.Add(300312 * time.Microsecond), started.Add(-time.Hour),
			"2024-06-18T08:48:12.300312Z", "2024-06-18T07:48:12Z"},
		{"null removed", `null`, `""`, time.Time{}, time.Time{}, nil, nil},
		{"rfc3339 kept as sent", `"2024-06-18T10:48:12+02:00"`, "", started, time.Time{}, "2024-06-18T10:48:12+02:00", nil},
		{"garbage left as sent", `"yesterday"`, `true`, time.Time{}, time.Time{}, "yesterday", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"sessionId":"` + id + `","duration":3600,"qosStatus":"UNAVAILABLE","statusInfo":"DURATION_EXPIRED",` +
				`"qosProfile":"QOS_L","applicationServer":{"ipv4Address":"233.252.0.2"},"startedAt":` + tc.startedAt
			if tc.expiresAt != "" {
				body += `,"expiresAt":` + tc.expiresAt
			}
			body += "}"
			f := newFakeAPI(t, DialectV1, fixed(answer{status: 200, body: body, offSpec: tc.infoStart != "2024-06-18T10:48:12+02:00"}))
			c := newTestClient(t, f, nil)
			s, err := c.GetSession(context.Background(), "r", id)
			if err != nil {
				t.Fatalf("GetSession: %v", err)
			}
			if !s.StartedAt.Equal(tc.wantStart) || !s.ExpiresAt.Equal(tc.wantExp) {
				t.Errorf("StartedAt %v ExpiresAt %v, want %v %v", s.StartedAt, s.ExpiresAt, tc.wantStart, tc.wantExp)
			}
			if s.StatusInfo != bridge.InfoDurationExpired || s.QoSStatus != bridge.StatusUnavailable {
				t.Errorf("status %q info %q", s.QoSStatus, s.StatusInfo)
			}
			var info map[string]any
			if err := json.Unmarshal(s.Info, &info); err != nil {
				t.Fatal(err)
			}
			for k, want := range map[string]any{"startedAt": tc.infoStart, "expiresAt": tc.infoExp} {
				got, ok := info[k]
				if want == nil && ok || want != nil && got != want {
					t.Errorf("Info %s = %v (present %v), want %v", k, got, ok, want)
				}
			}
			if tc.name == "rfc3339 kept as sent" && string(s.Info) != body {
				t.Errorf("an answer needing no change must be kept byte for byte:\n got %s\nwant %s", s.Info, body)
			}
		})
	}
}

// TestV0ResponseGolden translates a QoD 0.10.1 SessionInfo (validated against
// the 0.10.1 spec by the fake) into the 1.x shape.
func TestV0ResponseGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/v0-session.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/v0-session.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeAPI(t, DialectV0, fixed(answer{status: 200, body: string(in)}))
	c := newTestClient(t, f, nil)
	s, err := c.GetSession(context.Background(), "r", "3fa85f64-5717-4562-b3fc-2c963f66afa6")
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, s.Info, want) {
		t.Errorf("Info:\n got %s\nwant %s", s.Info, want)
	}
	if s.Sink != "https://application-server.com/notifications" || s.ExpiresAt.Unix() != 1639566000 || s.StartedAt.Unix() != 1639479600 {
		t.Errorf("Sink %q StartedAt %v ExpiresAt %v", s.Sink, s.StartedAt, s.ExpiresAt)
	}
}

func TestV0CreateTranslation(t *testing.T) {
	ctx := context.Background()
	t.Run("bare token", func(t *testing.T) {
		f := newFakeAPI(t, DialectV0, newStore(DialectV0).handle)
		c := newTestClient(t, f, func(o *Options) { o.V0BareAuthToken = true })
		if _, err := c.CreateSession(ctx, "r", withSink(t, testCreate)); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Webhook map[string]string `json:"webhook"`
		}
		json.Unmarshal(f.requests()[0].body, &got)
		if got.Webhook["notificationAuthToken"] != testToken || got.Webhook["notificationUrl"] != testSink {
			t.Errorf("webhook %v", got.Webhook)
		}
	})
	t.Run("sink without credential", func(t *testing.T) {
		f := newFakeAPI(t, DialectV0, newStore(DialectV0).handle)
		c := newTestClient(t, f, nil)
		body, err := WithSink(testCreate, testSink, "", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateSession(ctx, "r", body); err != nil {
			t.Fatal(err)
		}
		want := `{"device":` + testDevice + `,"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":3600,"webhook":{"notificationUrl":"` + testSink + `"}}`
		if got := f.requests()[0].body; !jsonEqual(t, got, []byte(want)) {
			t.Errorf("body %s, want %s", got, want)
		}
	})
	t.Run("v0 body passes unchanged", func(t *testing.T) {
		f := newFakeAPI(t, DialectV0, newStore(DialectV0).handle)
		c := newTestClient(t, f, nil)
		body := json.RawMessage(`{"device":` + testDevice + `,"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L",` +
			`"webhook":{"notificationUrl":"https://app.example/hook","notificationAuthToken":"c8974e592c2fa383d4a3960714"}}`)
		s, err := c.CreateSession(ctx, "r", body)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.requests()[0].body; string(got) != string(body) {
			t.Errorf("body %s, want as-is", got)
		}
		if s.Sink != "https://app.example/hook" || s.Duration != 86400*time.Second {
			t.Errorf("Sink %q Duration %v", s.Sink, s.Duration)
		}
	})
	bad := []struct{ name, body string }{
		{"plain credential", `{"qosProfile":"QOS_L","sink":"https://a.example/n","sinkCredential":{"credentialType":"PLAIN","identifier":"u","secret":"` + testToken + `"}}`},
		{"refresh credential", `{"qosProfile":"QOS_L","sink":"https://a.example/n","sinkCredential":{"credentialType":"REFRESHTOKEN","accessToken":"` + testToken + `"}}`},
		{"empty access token", `{"qosProfile":"QOS_L","sink":"https://a.example/n","sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":""}}`},
		{"credential without sink", `{"qosProfile":"QOS_L","sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"` + testToken + `"}}`},
		{"sink and webhook", `{"qosProfile":"QOS_L","sink":"https://a.example/n","webhook":{"notificationUrl":"https://b.example/n"}}`},
		{"sink not a string", `{"qosProfile":"QOS_L","sink":42}`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, DialectV0, newStore(DialectV0).handle)
			c := newTestClient(t, f, nil)
			_, err := c.CreateSession(ctx, "r", json.RawMessage(tc.body))
			if !errors.Is(err, ErrInvalidInput) || Retryable(err) {
				t.Errorf("err %v, want ErrInvalidInput, not retryable", err)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("error carries the token: %v", err)
			}
			if n := len(f.requests()); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	f := newFakeAPI(t, DialectV1, newStore(DialectV1).handle)
	c := newTestClient(t, f, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"create array":       func() error { _, err := c.CreateSession(ctx, "r", json.RawMessage(`[1]`)); return err },
		"create not json":    func() error { _, err := c.CreateSession(ctx, "r", json.RawMessage(`{"a":`)); return err },
		"create two objects": func() error { _, err := c.CreateSession(ctx, "r", json.RawMessage(`{} {}`)); return err },
		"create null":        func() error { _, err := c.CreateSession(ctx, "r", json.RawMessage(`null`)); return err },
		"create empty":       func() error { _, err := c.CreateSession(ctx, "r", nil); return err },
		"get empty id":       func() error { _, err := c.GetSession(ctx, "r", ""); return err },
		"extend empty id":    func() error { _, err := c.ExtendSession(ctx, "r", "", 60); return err },
		"extend zero":        func() error { _, err := c.ExtendSession(ctx, "r", newUUID(), 0); return err },
		"delete empty id":    func() error { return c.DeleteSession(ctx, "r", "") },
		"retrieve string":    func() error { _, err := c.RetrieveSessions(ctx, "r", json.RawMessage(`"+3612345678"`)); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, ErrInvalidInput) || Retryable(err) {
				t.Errorf("err %v, want ErrInvalidInput, not retryable", err)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

func TestBadResponse(t *testing.T) {
	cases := []struct {
		name string
		a    answer
		max  int64
	}{
		{"html 200", answer{status: 200, header: http.Header{"Content-Type": {"text/html"}}, body: "<html>ok</html>", offSpec: true}, 0},
		{"no sessionId", answer{status: 200, body: `{"duration":3600,"qosStatus":"AVAILABLE"}`, offSpec: true}, 0},
		{"array", answer{status: 200, body: `[]`, offSpec: true}, 0},
		{"too large", answer{status: 200, body: `{"sessionId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","duration":3600,"qosStatus":"AVAILABLE","qosProfile":"QOS_L","applicationServer":{"ipv4Address":"233.252.0.2"}}`}, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, DialectV1, fixed(tc.a))
			c := newTestClient(t, f, func(o *Options) { o.MaxResponseBytes = tc.max })
			_, err := c.GetSession(context.Background(), "r", newUUID())
			if !errors.Is(err, ErrBadResponse) || Retryable(err) {
				t.Errorf("err %v, want ErrBadResponse, not retryable", err)
			}
		})
	}
}

func TestCorrelator(t *testing.T) {
	long := strings.Repeat("a", 257)
	cases := []struct {
		id   string
		sent bool
	}{
		{"c0ffee-1", true},
		{"urn:x;a.b/c<d>{e}_F-9", true},
		{strings.Repeat("a", 256), true},
		{"", false},
		{"has space", false},
		{"plus+sign", false},
		{"ünïcode", false},
		{long, false},
	}
	for _, tc := range cases {
		if got := ValidCorrelator(tc.id); got != (tc.sent || tc.id == "") {
			t.Errorf("ValidCorrelator(%q) = %v", tc.id, got)
		}
	}
	f := newFakeAPI(t, DialectV1, newStore(DialectV1).handle)
	c := newTestClient(t, f, nil)
	for i, tc := range cases {
		// The fake validates x-correlator against the spec's pattern, so a
		// header sent out of pattern would fail the test there too.
		if _, err := c.RetrieveSessions(context.Background(), tc.id, json.RawMessage(testDevice)); err != nil {
			t.Fatalf("%q: %v", tc.id, err)
		}
		h := f.requests()[i].header
		if _, present := h["X-Correlator"]; present != tc.sent || tc.sent && h.Get("x-correlator") != tc.id {
			t.Errorf("id %.20q: header %q present %v, want sent %v", tc.id, h.Get("x-correlator"), present, tc.sent)
		}
	}
}

// TestValidatorHasTeeth makes sure the fake rejects requests that break the
// spec, so the other tests' silence means something.
func TestValidatorHasTeeth(t *testing.T) {
	cases := []struct {
		name string
		d    Dialect
		req  func(base string) *http.Request
	}{
		{"v1 missing applicationServer", DialectV1, func(base string) *http.Request {
			r, _ := http.NewRequest("POST", base+"/sessions", strings.NewReader(`{"qosProfile":"QOS_L","duration":60}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
		{"v1 http sink", DialectV1, func(base string) *http.Request {
			r, _ := http.NewRequest("POST", base+"/sessions", strings.NewReader(`{"qosProfile":"QOS_L","duration":60,"applicationServer":{"ipv4Address":"233.252.0.2"},"sink":"http://a.example/x"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
		{"v1 bad x-correlator", DialectV1, func(base string) *http.Request {
			r, _ := http.NewRequest("GET", base+"/sessions/"+newUUID(), nil)
			r.Header.Set("x-correlator", "has space")
			return r
		}},
		{"v1 session id not uuid", DialectV1, func(base string) *http.Request {
			r, _ := http.NewRequest("GET", base+"/sessions/1234", nil)
			return r
		}},
		{"v0 sink instead of webhook token too short", DialectV0, func(base string) *http.Request {
			r, _ := http.NewRequest("POST", base+"/sessions", strings.NewReader(`{"qosProfile":"QOS_L","device":`+testDevice+`,"applicationServer":{"ipv4Address":"233.252.0.2"},"webhook":{"notificationUrl":"https://a.example","notificationAuthToken":"short"}}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
		{"v0 duration over a day", DialectV0, func(base string) *http.Request {
			r, _ := http.NewRequest("POST", base+"/sessions", strings.NewReader(`{"qosProfile":"QOS_L","device":`+testDevice+`,"applicationServer":{"ipv4Address":"233.252.0.2"},"duration":86401}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAPI(t, tc.d, newStore(tc.d).handle)
			var rejected atomic.Int32
			f.onInvalid = func(error) { rejected.Add(1) }
			resp, err := http.DefaultClient.Do(tc.req(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if rejected.Load() != 1 {
				t.Errorf("the fake accepted a request that breaks the spec")
			}
		})
	}
}

func TestAuthAPIKeyHeaders(t *testing.T) {
	f := newFakeAPI(t, DialectV0, newStore(DialectV0).handle)
	c := newTestClient(t, f, func(o *Options) {
		o.Auth = Auth{APIKeyHeaders: map[string]string{"X-RapidAPI-Key": "rapid-key-value", "X-RapidAPI-Host": "network-as-code.nokia.rapidapi.com"}}
	})
	if _, err := c.RetrieveSessions(context.Background(), "r", json.RawMessage(testDevice)); err != nil {
		t.Fatal(err)
	}
	h := f.requests()[0].header
	if h.Get("X-RapidAPI-Key") != "rapid-key-value" || h.Get("X-RapidAPI-Host") != "network-as-code.nokia.rapidapi.com" {
		t.Errorf("API key headers: %v", h)
	}
	if h.Get("Authorization") != "" {
		t.Errorf("Authorization %q sent in API-key mode", h.Get("Authorization"))
	}
}

// tokenServer is an OAuth2 token endpoint for the client credentials grant.
type tokenServer struct {
	t        *testing.T
	srv      *httptest.Server
	requests atomic.Int32
	fail     answer // status 0: issue tokens
	hang     bool
	arrived  chan struct{} // if not nil, told of each request (without blocking)
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{t: t}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.requests.Add(1)
		select {
		case ts.arrived <- struct{}{}:
		default:
		}
		if ts.hang {
			// The server notices the client going away only once the
			// body has been read.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		if ts.fail.status != 0 {
			writeAnswer(w, ts.fail)
			return
		}
		id, secret, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || r.Method != "POST" || !ok || id != "qod-client" || secret != "client-secret-value" ||
			r.PostForm.Get("grant_type") != "client_credentials" ||
			r.PostForm.Get("scope") != "quality-on-demand:sessions:create quality-on-demand:sessions:read" {
			t.Errorf("token request %s form %v basic %v (id %q)", r.Method, r.PostForm, ok, id)
			writeAnswer(w, answer{status: 400, body: `{"error":"invalid_request"}`})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "access-token-" + strconv.Itoa(int(n)), "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) auth() Auth {
	return Auth{ClientCredentials: &ClientCredentials{
		TokenURL: ts.srv.URL + "/oauth/token", ClientID: "qod-client", ClientSecret: "client-secret-value",
		Scopes: []string{"quality-on-demand:sessions:create", "quality-on-demand:sessions:read"},
	}}
}

// countingTransport counts the requests of the client's own http.Client, as
// a tracing transport would see them.
type countingTransport struct{ n atomic.Int32 }

func (ct *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ct.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestAuthClientCredentials(t *testing.T) {
	ts := newTokenServer(t)
	f := newFakeAPI(t, DialectV1, newStore(DialectV1).handle)
	ct := &countingTransport{}
	c := newTestClient(t, f, func(o *Options) {
		o.Auth = ts.auth()
		o.Auth.APIKeyHeaders = map[string]string{"X-Gateway-Key": "gw"}
		o.HTTPClient = &http.Client{Transport: ct}
	})
	ctx := context.Background()
	s, err := c.CreateSession(ctx, "r1", withSink(t, testCreate))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSession(ctx, "r2", s.ID); err != nil {
		t.Fatal(err)
	}
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("token requests %d, want 1 (the token is reused)", n)
	}
	if n := ct.n.Load(); n != 3 {
		t.Errorf("the injected transport saw %d requests, want 3 (token + 2 calls)", n)
	}
	for i, r := range f.requests() {
		if got := r.header.Get("Authorization"); got != "Bearer access-token-1" {
			t.Errorf("request %d Authorization %q", i, got)
		}
		if r.header.Get("X-Gateway-Key") != "gw" {
			t.Errorf("request %d lacks the gateway key", i)
		}
	}
}

func TestAuthClientCredentialsFailure(t *testing.T) {
	cases := []struct {
		name      string
		fail      answer
		sentinel  error
		code, msg string
		retryable bool
	}{
		{"401 invalid_client", answer{status: 401, header: http.Header{"Content-Type": {"application/json"}}, body: `{"error":"invalid_client","error_description":"Client authentication failed"}`},
			ErrUnauthenticated, "invalid_client", "Client authentication failed", false},
		{"503", answer{status: 503, header: http.Header{"Retry-After": {"5"}}, body: "<html>down</html>"},
			ErrServer, "UNAVAILABLE", "Service Unavailable", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTokenServer(t)
			ts.fail = tc.fail
			f := newFakeAPI(t, DialectV1, newStore(DialectV1).handle)
			c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
			_, err := c.GetSession(context.Background(), "r", newUUID())
			ae, ok := errors.AsType[*APIError](err)
			if !ok {
				t.Fatalf("err %v, want *APIError", err)
			}
			if ae.Op != "token" || ae.Status != tc.fail.status || ae.Code != tc.code || ae.Message != tc.msg {
				t.Errorf("APIError %+v", ae)
			}
			if !errors.Is(err, tc.sentinel) || Retryable(err) != tc.retryable {
				t.Errorf("errors.Is(%v) %v, Retryable %v", tc.sentinel, errors.Is(err, tc.sentinel), Retryable(err))
			}
			if strings.Contains(err.Error(), "client-secret-value") {
				t.Errorf("error carries the client secret: %v", err)
			}
			if n := len(f.requests()); n != 0 {
				t.Errorf("API called %d times without a token", n)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	hang := func(_ string, r *http.Request, _ []byte) answer {
		<-r.Context().Done()
		return answer{status: 500, offSpec: true}
	}
	t.Run("api hangs", func(t *testing.T) {
		f := newFakeAPI(t, DialectV1, hang)
		c := newTestClient(t, f, func(o *Options) { o.Timeout = 50 * time.Millisecond })
		_, err := c.GetSession(context.Background(), "r", newUUID())
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !Retryable(err) {
			t.Errorf("err %v, want ErrTimeout and DeadlineExceeded, retryable", err)
		}
	})
	t.Run("token endpoint hangs", func(t *testing.T) {
		ts := newTokenServer(t)
		ts.hang = true
		f := newFakeAPI(t, DialectV1, hang)
		c := newTestClient(t, f, func(o *Options) { o.Timeout = 50 * time.Millisecond; o.Auth = ts.auth() })
		_, err := c.GetSession(context.Background(), "r", newUUID())
		if !errors.Is(err, ErrTimeout) || !Retryable(err) {
			t.Errorf("err %v, want ErrTimeout, retryable", err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		arrived := make(chan struct{})
		f := newFakeAPI(t, DialectV1, func(_ string, r *http.Request, _ []byte) answer {
			close(arrived)
			<-r.Context().Done()
			return answer{status: 500, offSpec: true}
		})
		c := newTestClient(t, f, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { _, err := c.GetSession(ctx, "r", newUUID()); done <- err }()
		<-arrived
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) || Retryable(err) {
			t.Errorf("err %v, want context.Canceled, not retryable", err)
		}
	})
}

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(Options{BaseURL: url + "/quality-on-demand/v1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSession(context.Background(), "r", newUUID())
	if !errors.Is(err, ErrTransport) || !Retryable(err) {
		t.Errorf("err %v, want ErrTransport, retryable", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	ts := newTokenServer(t)
	f := newFakeAPI(t, DialectV0, newStore(DialectV0).handle)
	c := newTestClient(t, f, func(o *Options) { o.Auth = ts.auth() })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			s, err := c.CreateSession(context.Background(), newUUID(), withSink(t, testCreate))
			if err == nil {
				_, err = c.GetSession(context.Background(), "", s.ID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(f.requests()); n != 16 {
		t.Errorf("%d requests, want 16", n)
	}
}

func TestNewOptions(t *testing.T) {
	const secret = "top-secret-value"
	good := "https://api.example/quality-on-demand/v1"
	cases := []struct {
		name string
		opts Options
	}{
		{"no base URL", Options{}},
		{"ftp", Options{BaseURL: "ftp://api.example/qod"}},
		{"relative", Options{BaseURL: "/qod/v0"}},
		{"user info", Options{BaseURL: "https://user:" + secret + "@api.example/qod/v0"}},
		{"query", Options{BaseURL: good + "?key=" + secret}},
		{"dialect", Options{BaseURL: good, Dialect: "camara-v2"}},
		{"negative timeout", Options{BaseURL: good, Timeout: -time.Second}},
		{"negative max body", Options{BaseURL: good, MaxResponseBytes: -1}},
		{"bearer and client credentials", Options{BaseURL: good, Auth: Auth{BearerToken: secret, ClientCredentials: &ClientCredentials{TokenURL: good, ClientID: "x"}}}},
		{"bearer with newline", Options{BaseURL: good, Auth: Auth{BearerToken: secret + "\r\nX-Evil: 1"}}},
		{"token URL", Options{BaseURL: good, Auth: Auth{ClientCredentials: &ClientCredentials{TokenURL: "token", ClientID: "x", ClientSecret: secret}}}},
		{"client id", Options{BaseURL: good, Auth: Auth{ClientCredentials: &ClientCredentials{TokenURL: good, ClientSecret: secret}}}},
		{"api key name", Options{BaseURL: good, Auth: Auth{APIKeyHeaders: map[string]string{"X Key": secret}}}},
		{"api key value", Options{BaseURL: good, Auth: Auth{APIKeyHeaders: map[string]string{"X-Key": secret + "\n"}}}},
		{"api key reserved", Options{BaseURL: good, Auth: Auth{APIKeyHeaders: map[string]string{"content-type": secret}}}},
		{"api key correlator", Options{BaseURL: good, Auth: Auth{APIKeyHeaders: map[string]string{"X-Correlator": secret}}}},
		{"api key authorization with bearer", Options{BaseURL: good, Auth: Auth{BearerToken: "b", APIKeyHeaders: map[string]string{"Authorization": secret}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err %v, want ErrInvalidOptions", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error carries a secret: %v", err)
			}
		})
	}
	c, err := New(Options{BaseURL: good + "/", Auth: Auth{APIKeyHeaders: map[string]string{"Authorization": "Key x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Dialect() != DialectV1 || c.timeout != DefaultTimeout || c.maxBody != DefaultMaxResponseBytes || c.base != good {
		t.Errorf("defaults: dialect %q timeout %v max %d base %q", c.Dialect(), c.timeout, c.maxBody, c.base)
	}
}
