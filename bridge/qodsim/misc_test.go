package qodsim

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestValidatorCatches shows the validating transport is not vacuous: it
// rejects answers that break the spec.
func TestValidatorCatches(t *testing.T) {
	sp := mustSpecs(t)
	const id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	json := http.Header{"Content-Type": {"application/json"}}
	ok := `{"sessionId":"` + id + `","applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60,"qosStatus":"REQUESTED"}`
	for _, tc := range []struct {
		name, method, path string
		reqHeader          http.Header
		status             int
		header             http.Header
		body               string
		wantErr            bool
	}{
		{"valid", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 200, json, ok, false},
		{"http sink tolerated", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 200, json, strings.Replace(ok, `"duration"`, `"sink":"http://h/n","duration"`, 1), false},
		{"other sink scheme", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 200, json, strings.Replace(ok, `"duration"`, `"sink":"ftp://h/n","duration"`, 1), true},
		{"missing sessionId", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 200, json, strings.Replace(ok, `"sessionId":"`+id+`",`, "", 1), true},
		{"bad status enum", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 200, json, strings.Replace(ok, "REQUESTED", "ACTIVE", 1), true},
		{"two device ids in v1", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 200, json, strings.Replace(ok, `"duration"`, `"device":{"phoneNumber":"+3670000000","networkAccessIdentifier":"a@b"},"duration"`, 1), true},
		{"wrong code for 404", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 404, json, `{"status":404,"code":"CONFLICT","message":"x"}`, true},
		{"status mismatch", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 404, json, `{"status":400,"code":"NOT_FOUND","message":"x"}`, true},
		{"not ErrorInfo", "GET", "/quality-on-demand/v1/sessions/" + id, nil, 400, json, `{"error":"x"}`, true},
		{"500 INTERNAL beyond spec", "POST", "/quality-on-demand/v1/sessions", nil, 500, json, `{"status":500,"code":"INTERNAL","message":"x"}`, false},
		{"500 other code", "POST", "/quality-on-demand/v1/sessions", nil, 500, json, `{"status":500,"code":"BOOM","message":"x"}`, true},
		{"undocumented status", "POST", "/quality-on-demand/v1/sessions", nil, 418, json, `{"status":418,"code":"TEAPOT","message":"x"}`, true},
		{"429 without Retry-After", "POST", "/quality-on-demand/v1/sessions", nil, 429, json, `{"status":429,"code":"TOO_MANY_REQUESTS","message":"x"}`, true},
		{"x-correlator not echoed", "GET", "/quality-on-demand/v1/sessions/" + id, http.Header{"X-Correlator": {"abc"}}, 200, json, ok, true},
		{"v0 times as strings", "GET", "/qod/v0/sessions/" + id, nil, 200, json,
			`{"sessionId":"` + id + `","device":{"phoneNumber":"123456"},"applicationServer":{"ipv4Address":"1.2.3.4"},"qosProfile":"QOS_L","duration":60,"startedAt":"2024-01-01T00:00:00Z","expiresAt":1,"qosStatus":"REQUESTED"}`, true},
		{"unknown path not 404", "GET", "/nowhere", nil, 200, json, `{}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.reqHeader {
				req.Header[k] = v
			}
			err := validateAnswer(context.Background(), sp, req, tc.status, tc.header, []byte(tc.body))
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestOptionsErrors(t *testing.T) {
	for name, o := range map[string]Options{
		"bad profile name":   {Profiles: []Profile{{Name: "Q"}}},
		"duplicate profile":  {Profiles: []Profile{{Name: "QOS_L"}, {Name: "QOS_L"}}},
		"min above max":      {Profiles: []Profile{{Name: "QOS_L", MinDuration: time.Hour, MaxDuration: time.Minute}}},
		"bad profile status": {Profiles: []Profile{{Name: "QOS_L", Status: "OFF"}}},
		"bad format":         {Format: "xml"},
		"empty token":        {Tokens: []string{""}},
		"negative max":       {MaxSessions: -1},
		"empty scenario id":  {Scenarios: Scenarios{Unavailable: []string{" "}}},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestRegisterFlags(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	o.RegisterFlags(fs)
	if o.MaxSessions != DefaultMaxSessions || o.EventSource != DefaultEventSource {
		t.Errorf("defaults not shown: %+v", o)
	}
	err := fs.Parse([]string{
		"-token", "a,b", "-token", "c", "-available-delay", "0", "-retention", "2m",
		"-max-sessions", "5", "-strict", "-format", "nac", "-event-source", "https://sim.example",
		"-max-attempts", "3", "-retry-backoff", "2s", "-senders", "4",
		"-scenario-unavailable", "x@y, +3670000", "-scenario-server-error", "",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Tokens, []string{"a", "b", "c"}) || o.AvailableDelay >= 0 || o.Retention != 2*time.Minute ||
		o.MaxSessions != 5 || !o.Strict || o.Format != FormatNaC || o.EventSource != "https://sim.example" ||
		o.MaxAttempts != 3 || o.RetryBackoff != 2*time.Second || o.Senders != 4 ||
		!slices.Equal(o.Scenarios.Unavailable, []string{"x@y", "+3670000"}) || o.Scenarios.ServerError == nil || len(o.Scenarios.ServerError) != 0 ||
		o.Scenarios.Available != nil {
		t.Errorf("parsed options %+v", o)
	}
	if _, err := New(o); err != nil {
		t.Errorf("New with parsed flags: %v", err)
	}
	for _, bad := range [][]string{
		{"-format", "yaml"},
		{"-profile-status", "QOS_L=OFF"},
		{"-profile-status", "QOS_L"},
		{"-profile-status", "Q=ACTIVE"},
		{"-profile-device", "QOS_L="},
	} {
		fs2 := flag.NewFlagSet("sim", flag.ContinueOnError)
		fs2.SetOutput(io.Discard)
		var o2 Options
		o2.RegisterFlags(fs2)
		if err := fs2.Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestProfileFlags: -profile-status and -profile-device change a default
// profile or add one.
func TestProfileFlags(t *testing.T) {
	var o Options
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	o.RegisterFlags(fs)
	err := fs.Parse([]string{
		"-profile-status", "QOS_M=inactive,QOS_OLD=DEPRECATED",
		"-profile-device", "QOS_VIP=+99999991005", "-profile-device", "QOS_VIP=vip@testcsp.net,QOS_E=+36700000001",
		"-scenario-not-found", "+36700000404", "-scenario-no-profiles", "",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Profile{
		{Name: "QOS_E", Description: "Enhanced communication: stable low latency", Devices: []string{"+36700000001"}},
		{Name: "QOS_S", Description: "Small throughput"},
		{Name: "QOS_M", Description: "Medium throughput", Status: "INACTIVE"},
		{Name: "QOS_L", Description: "Large throughput"},
		{Name: "QOS_OLD", Status: "DEPRECATED"},
		{Name: "QOS_VIP", Devices: []string{"+99999991005", "vip@testcsp.net"}},
	}
	if !slices.EqualFunc(o.Profiles, want, func(a, b Profile) bool {
		return a.Name == b.Name && a.Description == b.Description && a.Status == b.Status && slices.Equal(a.Devices, b.Devices)
	}) {
		t.Errorf("profiles %+v", o.Profiles)
	}
	if !slices.Equal(o.Scenarios.NotFound, []string{"+36700000404"}) || o.Scenarios.NoProfiles == nil || len(o.Scenarios.NoProfiles) != 0 {
		t.Errorf("scenarios %+v", o.Scenarios)
	}
	if _, err := New(o); err != nil {
		t.Errorf("New: %v", err)
	}
}

func TestManualClock(t *testing.T) {
	c := NewManualClock(epoch)
	var (
		mu  sync.Mutex
		got []string
	)
	rec := func(s string) func() {
		return func() {
			mu.Lock()
			got = append(got, s+"@"+c.Now().Sub(epoch).String())
			mu.Unlock()
		}
	}
	c.AfterFunc(2*time.Second, rec("b"))
	c.AfterFunc(time.Second, rec("a"))
	stopped := c.AfterFunc(time.Second, rec("never"))
	c.AfterFunc(time.Second, func() { c.AfterFunc(0, rec("chained")) })
	c.AfterFunc(5*time.Second, rec("late"))
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop reports wrongly")
	}
	c.Advance(3 * time.Second)
	want := []string{"a@1s", "chained@1s", "b@2s"}
	if !slices.Equal(got, want) {
		t.Errorf("ran %v, want %v", got, want)
	}
	if c.Now() != epoch.Add(3*time.Second) || c.Pending() != 1 {
		t.Errorf("now %v pending %d", c.Now(), c.Pending())
	}
}

func TestServe(t *testing.T) {
	s, err := New(Options{Tokens: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()

	c := &client{t: t, base: "http://" + ln.Addr().String(), token: "t",
		http: &http.Client{Transport: &validatingTransport{t: t, sp: mustSpecs(t), next: http.DefaultTransport}}}
	if a := c.do("POST", BasePathV1+"/sessions", createBody("+36721601234567", "", "")); a.status != 201 {
		t.Errorf("create: %d %s", a.status, a.body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if err := s.ListenAndServe(context.Background(), "256.0.0.1:0"); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}
}

func TestLogsHoldNoSecrets(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	h := newHarness(t, Options{Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	h.rc.answer = func(notification, []notification) (int, string) { return http.StatusForbidden, "" }
	h.c.create(createBody("+36721601234567", h.rc.url()+"?access_token=QUERYSECRET", "BEARERSECRET"))
	h.clk.Advance(time.Second)
	flush(t, h.sim)
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	if !strings.Contains(out, "notification given up") || !strings.Contains(out, "status=403") {
		t.Errorf("no log line for the refused notification:\n%s", out)
	}
	if strings.Contains(out, "SECRET") {
		t.Errorf("a secret reached the log:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
