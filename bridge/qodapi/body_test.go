package qodapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestWithSink(t *testing.T) {
	exp := time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("CET", 3600))
	cases := []struct {
		name, body, token string
		want              string
	}{
		{"adds sink and credential", `{"qosProfile":"QOS_L","duration":60}`, "tok",
			`{"qosProfile":"QOS_L","duration":60,"sink":"https://b.example/n/k",
			  "sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"tok","accessTokenExpiresUtc":"2025-03-04T04:06:07Z","accessTokenType":"bearer"}}`},
		{"no token, no credential", `{"qosProfile":"QOS_L","sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"old"}}`, "",
			`{"qosProfile":"QOS_L","sink":"https://b.example/n/k"}`},
		{"replaces sink and webhook", `{"sink":"https://old.example","webhook":{"notificationUrl":"https://old.example"},"x":{"y":[1,"<&>"]}}`, "tok",
			`{"sink":"https://b.example/n/k","x":{"y":[1,"<&>"]},
			  "sinkCredential":{"credentialType":"ACCESSTOKEN","accessToken":"tok","accessTokenExpiresUtc":"2025-03-04T04:06:07Z","accessTokenType":"bearer"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := WithSink(json.RawMessage(tc.body), "https://b.example/n/k", tc.token, exp)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, got, []byte(tc.want)) {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
			if strings.Contains(string(got), `\u003c`) {
				t.Errorf("members were HTML-escaped: %s", got)
			}
			has, err := HasSink(got)
			if err != nil || !has {
				t.Errorf("HasSink(result) = %v, %v", has, err)
			}
		})
	}
	bad := []struct {
		name, body, url, token string
		exp                    time.Time
	}{
		{"not an object", `[]`, "https://b.example", "tok", exp},
		{"relative url", `{}`, "/notifications/k", "tok", exp},
		{"token without expiry", `{}`, "https://b.example", "tok", time.Time{}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WithSink(json.RawMessage(tc.body), tc.url, tc.token, tc.exp)
			if !errors.Is(err, ErrInvalidInput) {
				t.Errorf("err %v, want ErrInvalidInput", err)
			}
		})
	}
}

func TestHasSink(t *testing.T) {
	cases := []struct {
		body string
		want bool
	}{
		{`{"sink":"https://a.example"}`, true},
		{`{"webhook":{"notificationUrl":"https://a.example"}}`, true},
		{`{"sink":""}`, false},
		{`{"sink":null}`, false},
		{`{"webhook":{}}`, false},
		{`{"qosProfile":"QOS_L"}`, false},
	}
	for _, tc := range cases {
		got, err := HasSink(json.RawMessage(tc.body))
		if err != nil || got != tc.want {
			t.Errorf("HasSink(%s) = %v, %v; want %v", tc.body, got, err, tc.want)
		}
	}
	if _, err := HasSink(json.RawMessage(`"x"`)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("HasSink(string): %v, want ErrInvalidInput", err)
	}
}

func TestLenientFields(t *testing.T) {
	// Numbers where strings are due and strings where numbers are due, as
	// some platforms send them.
	body := `{"sessionId":12345,"duration":"3600","qosStatus":"AVAILABLE","statusInfo":null,"device":null}`
	f := newFakeAPI(t, DialectV1, fixed(answer{status: 200, body: body, offSpec: true}))
	c := newTestClient(t, f, nil)
	s, err := c.GetSession(context.Background(), "r", newUUID())
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != "12345" || s.Duration != time.Hour || s.StatusInfo != "" || s.Device != nil {
		t.Errorf("session %+v", s)
	}
	if string(s.Info) != body {
		t.Errorf("Info %s, want the answer unchanged", s.Info)
	}
}

func TestLongErrorMessageTruncated(t *testing.T) {
	msg := strings.Repeat("é", maxMessage) // two bytes each: cut inside a rune
	f := newFakeAPI(t, DialectV1, fixed(answer{status: 410, body: `{"status":410,"code":"GONE","message":"` + msg + `"}`, offSpec: true}))
	c := newTestClient(t, f, nil)
	_, err := c.GetSession(context.Background(), "r", newUUID())
	ae, ok := errors.AsType[*APIError](err)
	if !ok || !errors.Is(err, ErrGone) {
		t.Fatalf("err %v, want *APIError matching ErrGone", err)
	}
	if len(ae.Message) > maxMessage+len("…") || !strings.HasSuffix(ae.Message, "é…") {
		t.Errorf("message of %d bytes, ends %q", len(ae.Message), ae.Message[len(ae.Message)-8:])
	}
}

func TestCertificateErrorNotRetryable(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/quality-on-demand/v1"}) // does not trust the test CA
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSession(context.Background(), "r", newUUID())
	if !errors.Is(err, ErrTransport) || Retryable(err) {
		t.Errorf("err %v, want ErrTransport, not retryable", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":      0,
		"0":     0,
		"-5":    0,
		" 120 ": 2 * time.Minute,
		"soon":  0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		"99999999999999999999":                            0, // overflows int64: not a number
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
