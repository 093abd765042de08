package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/config"
)

// syncBuffer is a log destination tests read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// reloadable starts a process whose configuration comes from env (which
// the test may change under mu) and is read again on Reload; the files
// the settings came from are read every interval.
type reloadable struct {
	p   *Process
	log *syncBuffer
	mu  sync.Mutex
	env map[string]string
}

func (r *reloadable) getenv(k string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.env[k]
}

func (r *reloadable) set(k, v string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.env[k] = v
}

func startReloadable(t *testing.T, env map[string]string, interval time.Duration) *reloadable {
	t.Helper()
	r := &reloadable{log: &syncBuffer{}, env: map[string]string{
		"QODBRIDGE_HTTP_ADDRESS":          "127.0.0.1:0",
		"QODBRIDGE_ADMIN_ADDRESS":         "127.0.0.1:0",
		"QODBRIDGE_NATS_EMBEDDED_ADDRESS": "127.0.0.1:0",
		"QODBRIDGE_SIM_ADDRESS":           "127.0.0.1:0",
		"QODBRIDGE_DATA_DIR":              t.TempDir(),
	}}
	maps.Copy(r.env, env)
	load := func() (*config.Config, error) { return config.Load("", r.getenv) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := New(cfg, Options{Logger: log, Reload: load, ReloadInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	r.p = p
	return r
}

// writeFile replaces a file at once, as a secret manager does.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestTokenFileRotationUnderLoad rotates the ingress token through its
// file while clients keep sending: add the new token, move the clients
// to it, remove the old one. Every request a client sends with a token
// valid at that step is answered 204: none dropped, none refused.
func TestTokenFileRotationUnderLoad(t *testing.T) {
	const oldTok, newTok = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
	path := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, path, "# ingress tokens\n"+oldTok+"\n")
	r := startReloadable(t, map[string]string{"QODBRIDGE_AUTH_TOKENS_FILE": path}, 5*time.Millisecond)
	url := r.p.NotifyURL()

	var current atomic.Pointer[string]
	tok := oldTok
	current.Store(&tok)
	var sent, failed atomic.Int64
	var firstFailure atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, err := post(t, client, url, *current.Load(), statusEvent(fmt.Sprintf("rot-%d-%d", w, i), fmt.Sprintf("s-%d", w), "AVAILABLE"))
				sent.Add(1)
				if code != http.StatusNoContent {
					failed.Add(1)
					msg := fmt.Sprintf("status %d, %v", code, err)
					firstFailure.CompareAndSwap(nil, &msg)
				}
			}
		})
	}
	accepted := func(token string) bool {
		code, _ := post(t, client, url, token, statusEvent(fmt.Sprintf("probe-%d", time.Now().UnixNano()), "probe", "AVAILABLE"))
		return code == http.StatusNoContent
	}
	waitSent := func(n int64) {
		target := sent.Load() + n
		waitFor(t, fmt.Sprintf("%d more requests", n), func() bool { return sent.Load() >= target })
	}

	waitSent(50)
	writeFile(t, path, oldTok+"\n"+newTok+"\n")
	waitFor(t, "the new token to be accepted", func() bool { return accepted(newTok) })
	waitSent(50)
	tok2 := newTok
	current.Store(&tok2)
	waitSent(50)
	writeFile(t, path, newTok+"\n")
	waitFor(t, "the old token to be refused", func() bool { return !accepted(oldTok) })
	waitSent(50)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during the rotation; first: %s", n, sent.Load(), *firstFailure.Load())
	}
	t.Logf("%d requests, none failed", sent.Load())
	logs := r.log.String()
	if !strings.Contains(logs, "reloaded credentials") || !strings.Contains(logs, "auth.tokens") {
		t.Errorf("the reload was not logged:\n%s", logs)
	}
	if strings.Contains(logs, oldTok) || strings.Contains(logs, newTok) {
		t.Errorf("the log shows a token:\n%s", logs)
	}
}

// TestReloadSecretsAndAdminTokens: Reload (what SIGHUP calls) puts new
// session secrets and admin tokens in service; a configuration that does
// not load keeps the credentials in service, and says why.
func TestReloadSecretsAndAdminTokens(t *testing.T) {
	const (
		tok       = "ingress-token-0123456789"
		oldSecret = "old-session-secret-0123456789"
		newSecret = "new-session-secret-0123456789"
		oldAdmin  = "old-admin-token-0123456789"
		newAdmin  = "new-admin-token-0123456789"
	)
	r := startReloadable(t, map[string]string{
		"QODBRIDGE_AUTH_TOKENS":     tok,
		"QODBRIDGE_SESSION_SECRETS": oldSecret,
		"QODBRIDGE_ADMIN_TOKENS":    oldAdmin,
		// Off loopback, so that /metrics asks for an admin token.
		"QODBRIDGE_ADMIN_ADDRESS": "0.0.0.0:0",
	}, -1)
	url := r.p.NotifyURL()
	metrics := strings.Replace(fmt.Sprintf("http://%s/metrics", r.p.AdminAddr()), "[::]", "127.0.0.1", 1)
	metrics = strings.Replace(metrics, "0.0.0.0", "127.0.0.1", 1)
	admin := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, metrics, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	key := bridge.NewSinkKey(time.Now().Add(time.Hour))
	perSession := func(secret string) int {
		code, err := post(t, http.DefaultClient, url+"/"+key, bridge.SinkToken([]byte(secret), key), statusEvent("ps-"+secret[:3], "s-ps", "AVAILABLE"))
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	if admin(oldAdmin) != 200 || admin(newAdmin) != 401 || perSession(oldSecret) != 204 || perSession(newSecret) != 401 {
		t.Fatal("before the reload: the old credentials must hold, the new ones not")
	}

	r.set("QODBRIDGE_AUTH_TOKENS", "short")
	err := r.p.Reload()
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "auth.tokens") {
		t.Fatalf("reload of a bad configuration: %v", err)
	}
	if code, _ := post(t, http.DefaultClient, url, tok, statusEvent("kept-1", "s", "AVAILABLE")); code != 204 {
		t.Fatalf("after a failed reload the token in service got %d", code)
	}
	if !strings.Contains(r.log.String(), "reload failed: the credentials in service stay") {
		t.Errorf("the failed reload was not logged:\n%s", r.log.String())
	}

	r.set("QODBRIDGE_AUTH_TOKENS", tok)
	r.set("QODBRIDGE_SESSION_SECRETS", newSecret+","+oldSecret)
	r.set("QODBRIDGE_ADMIN_TOKENS", newAdmin)
	if err := r.p.Reload(); err != nil {
		t.Fatal(err)
	}
	if admin(oldAdmin) != 401 || admin(newAdmin) != 200 {
		t.Error("after the reload: the admin tokens were not swapped")
	}
	if perSession(newSecret) != 204 || perSession(oldSecret) != 204 {
		t.Error("after the reload: both session secrets must verify")
	}
	logs := r.log.String()
	if !strings.Contains(logs, "auth.session_secrets") || !strings.Contains(logs, "admin.tokens") || strings.Contains(logs, newSecret) || strings.Contains(logs, newAdmin) {
		t.Errorf("log:\n%s", logs)
	}
}
