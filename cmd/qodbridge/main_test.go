package main

import (
	"bufio"
	"context"
	"encoding/json"

	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBusyPortIsOneLineExit1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("QODBRIDGE_HTTP_ADDRESS", ln.Addr().String())
	t.Setenv("QODBRIDGE_ADMIN_ADDRESS", "127.0.0.1:0")
	t.Setenv("QODBRIDGE_NATS_EMBEDDED_ADDRESS", "127.0.0.1:0")
	t.Setenv("QODBRIDGE_SIM_ADDRESS", "127.0.0.1:0")
	t.Setenv("QODBRIDGE_DATA_DIR", t.TempDir())
	err = run(context.Background(), nil, io.Discard, io.Discard)
	var stderr strings.Builder
	if code := exitCode(err, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1 (%v)", code, err)
	}
	msg := stderr.String()
	if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "http.address "+ln.Addr().String()+": address already in use") {
		t.Fatalf("message %q", msg)
	}
}

func TestBadConfigExit2(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte("http:\n  adress: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	code := exitCode(run(context.Background(), []string{"-config", path}, io.Discard, io.Discard), &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "http.adress") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if code := exitCode(run(context.Background(), []string{"serve", "-nope"}, io.Discard, io.Discard), io.Discard); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	if code := exitCode(run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard), io.Discard); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	t.Setenv("QODBRIDGE_HTTP_ADDRESS", "0.0.0.0:8080")
	stderr.Reset()
	code = exitCode(run(context.Background(), nil, io.Discard, io.Discard), &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "auth.tokens") {
		t.Fatalf("non-loopback without auth: exit %d, %q", code, stderr.String())
	}
}

func TestCheck(t *testing.T) {
	var out strings.Builder
	t.Setenv("QODBRIDGE_AUTH_TOKENS", "a-secret-token-0123456789")
	if err := run(context.Background(), []string{"check", "-config", "../../config/example.yaml"}, &out, io.Discard); err != nil {
		t.Fatalf("check example.yaml: %v", err)
	}
	if !strings.Contains(out.String(), "valid") || strings.Contains(out.String(), "a-secret-token") || !strings.Contains(out.String(), "'***'") {
		t.Fatalf("check output leaks or lacks the masked settings:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"-t", "-config", "../../config/example.yaml"}, &out, io.Discard); err != nil {
		t.Fatalf("-t: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("nats:\n  stream:\n    replicas: 9\n"), 0o600)
	err := run(context.Background(), []string{"check", "-config", bad}, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 1 || !strings.Contains(err.Error(), "nats.stream.replicas") {
		t.Fatalf("check bad config: exit %d, %v", code, err)
	}
}

func TestVersion(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "qodbridge ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("version output %q", out.String())
	}
}

func TestSimCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sim", "-addr", "127.0.0.1:0", "-token", "sim-token-0123456789", "-available-delay", "0"}, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base string
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "CAMARA" {
			base = f[3]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		cancel()
		t.Fatalf("sim did not start: %v", <-done)
	}
	body := `{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60}`
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"sim-token-0123456789", 201}} {
		req, _ := http.NewRequest(http.MethodPost, base+"/sessions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("token %q: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("sim: %v", err)
	}
}

// TestSimOffLoopbackNeedsAToken: a simulator other machines can reach
// refuses to start without a token, and then notifies only allowed sinks
// (loopback unless -allow-sink names more).
func TestSimOffLoopbackNeedsAToken(t *testing.T) {
	var stderr strings.Builder
	code := exitCode(run(context.Background(), []string{"sim", "-addr", "0.0.0.0:0"}, io.Discard, io.Discard), &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "not loopback: set -token") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"sim", "-addr", "0.0.0.0:0", "-token", "sim-token-0123456789"}, pw, io.Discard)
		pw.Close()
	}()
	banner := ""
	buf := make([]byte, 4096)
	for !strings.Contains(banner, "scenario devices") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("banner %q: %v", banner, err)
		}
		banner += string(buf[:n])
	}
	go io.Copy(io.Discard, pr)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(banner, "sinks           http://127.0.0.1") || !strings.Contains(banner, "bearer token (1 configured)") {
		t.Fatalf("banner:\n%s", banner)
	}
}

// TestAckWaitRuleIsAConfigError: the rule between commands.ack_wait and
// commands.max_elapsed is checked by the process, not config.Load, and
// still fails serve with exit 2 and check with the field named.
func TestAckWaitRuleIsAConfigError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ack.yaml")
	if err := os.WriteFile(path, []byte("commands:\n  ack_wait: 30s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const want = "commands.ack_wait: config: invalid value: 30s must exceed commands.max_elapsed 1m0s"
	var stderr strings.Builder
	if code := exitCode(run(context.Background(), []string{"-config", path}, io.Discard, io.Discard), &stderr); code != 2 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("serve: exit %d, stderr %q", code, stderr.String())
	}
	err := run(context.Background(), []string{"check", "-config", path}, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 1 || !strings.Contains(err.Error(), want) {
		t.Fatalf("check: exit %d, %v", code, err)
	}
}

// TestSimHelpListsFlags: `qodbridge sim -h` lists the simulator's flags,
// the OAuth and profile ones included.
func TestSimHelpListsFlags(t *testing.T) {
	var stderr strings.Builder
	if code := exitCode(run(context.Background(), []string{"sim", "-h"}, io.Discard, &stderr), io.Discard); code != 0 {
		t.Fatalf("sim -h: exit %d", code)
	}
	for _, f := range []string{"-addr", "-token", "-oauth-client", "-oauth-token-ttl", "-profile-status", "-profile-device",
		"-scenario-not-found", "-scenario-not-applicable", "-scenario-no-profiles", "-allow-sink", "-strict"} {
		if out := stderr.String(); !strings.Contains(out, "\n  "+f+" ") && !strings.Contains(out, "\n  "+f+"\n") {
			t.Errorf("sim -h does not list %s:\n%s", f, stderr.String())
		}
	}
}

// TestSimOAuth: with -oauth-client the simulator wants tokens from its
// token endpoint, and starts off loopback without -token.
func TestSimOAuth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	t.Setenv("QODBRIDGE_SIM_OAUTH_CLIENTS", "env-client:env-secret")
	go func() {
		done <- run(ctx, []string{"sim", "-addr", "0.0.0.0:0", "-oauth-client", "app:app-secret", "-profile-status", "QOS_OLD=DEPRECATED"}, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var base, banner string
	for sc.Scan() {
		banner += sc.Text() + "\n"
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "CAMARA" {
			base = f[3]
		}
		if strings.Contains(sc.Text(), "scenario devices") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		cancel()
		t.Fatalf("sim did not start: %v", <-done)
	}
	if !strings.Contains(banner, "OAuth 2.0 (2 clients)") || !strings.Contains(banner, "/oauth2/token") {
		t.Errorf("banner:\n%s", banner)
	}
	root := strings.TrimSuffix(base, "/quality-on-demand/v1")
	root = strings.Replace(root, "0.0.0.0", "127.0.0.1", 1)
	body := `{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_OLD","duration":60}`
	post := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, root+"/quality-on-demand/v1/sessions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(""); got != 401 {
		t.Errorf("without a token: %d", got)
	}
	for _, id := range []string{"app:app-secret", "env-client:env-secret"} {
		req, _ := http.NewRequest(http.MethodPost, root+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		cid, secret, _ := strings.Cut(id, ":")
		req.SetBasicAuth(cid, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if resp.StatusCode != 200 || tok.AccessToken == "" {
			t.Fatalf("token for %s: %d", cid, resp.StatusCode)
		}
		// QOS_OLD was made DEPRECATED by the flag.
		if got := post(tok.AccessToken); got != 422 {
			t.Errorf("create with a DEPRECATED profile: %d", got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSessionsRebuildCommand: `qodbridge sessions rebuild` replays the
// (zero-config, embedded) history into the view and says what it read;
// bad subcommands and flags exit 2.
func TestSessionsRebuildCommand(t *testing.T) {
	for _, args := range [][]string{{"sessions"}, {"sessions", "nope"}, {"sessions", "rebuild", "-nope"}, {"sessions", "rebuild", "extra"}} {
		if code := exitCode(run(context.Background(), args, io.Discard, io.Discard), io.Discard); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	t.Setenv("QODBRIDGE_DATA_DIR", t.TempDir())
	t.Setenv("QODBRIDGE_NATS_EMBEDDED_ADDRESS", "127.0.0.1:0")
	var out strings.Builder
	if err := run(context.Background(), []string{"sessions", "rebuild"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "nats: replayed 0 messages of QOD_STATUS") {
		t.Fatalf("printed %q", out.String())
	}
}
