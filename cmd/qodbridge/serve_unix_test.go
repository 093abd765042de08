//go:build unix

package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// serveInProcess runs `qodbridge serve` with every listener on a random
// loopback port and returns its banner; the bridge stops at cleanup.
func serveInProcess(t *testing.T, env map[string]string) string {
	t.Helper()
	for k, v := range map[string]string{
		"QODBRIDGE_HTTP_ADDRESS": "127.0.0.1:0", "QODBRIDGE_ADMIN_ADDRESS": "127.0.0.1:0",
		"QODBRIDGE_NATS_EMBEDDED_ADDRESS": "127.0.0.1:0", "QODBRIDGE_SIM_ADDRESS": "127.0.0.1:0",
		"QODBRIDGE_DATA_DIR": t.TempDir(), "QODBRIDGE_LOG_LEVEL": "warn",
	} {
		t.Setenv(k, v)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	var banner strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		banner.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "-d '") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if !strings.Contains(banner.String(), "Send a notification") {
		t.Fatalf("no banner: %q", banner.String())
	}
	return banner.String()
}

// pasteNotification runs the banner's "Send a notification" commands in a
// shell, as a user pasting them would, and returns curl's output.
func pasteNotification(t *testing.T, banner string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	_, cmds, _ := strings.Cut(banner, "Send a notification:\n")
	out, err := exec.Command("sh", "-c", cmds).CombinedOutput()
	if err != nil {
		t.Fatalf("the banner's commands failed: %v\n%s\n%s", err, cmds, out)
	}
	return string(out)
}

// TestBannerCommandsWork: the commands the banner prints send a
// notification that is accepted, with the generated token and with
// tokens configured in the environment or a file (never printed).
func TestBannerCommandsWork(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# rotate me\n\nfile-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, env := range map[string]map[string]string{
		"generated": nil,
		"env":       {"QODBRIDGE_AUTH_TOKENS": "env-token-0123456789abcdef,second-token-0123456789"},
		"file":      {"QODBRIDGE_AUTH_TOKENS_FILE": file},
	} {
		t.Run(name, func(t *testing.T) {
			banner := serveInProcess(t, env)
			if strings.Contains(banner, "env-token-") || strings.Contains(banner, "file-token-") {
				t.Errorf("the banner shows a configured token:\n%s", banner)
			}
			if out := pasteNotification(t, banner); !strings.Contains(out, "HTTP/1.1 204") {
				t.Errorf("curl:\n%s\nbanner:\n%s", out, banner)
			}
		})
	}
}

// TestSIGHUPReloadsTokens: serve reloads its tokens on SIGHUP (the file
// watch is slowed to an hour, so that the signal alone is at work).
func TestSIGHUPReloadsTokens(t *testing.T) {
	defer func(d time.Duration) { reloadInterval = d }(reloadInterval)
	reloadInterval = time.Hour
	const oldTok, newTok = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(oldTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	banner := serveInProcess(t, map[string]string{"QODBRIDGE_AUTH_TOKENS_FILE": file})
	var url string
	for _, l := range strings.Split(banner, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "notifications" {
			url = f[2]
		}
	}
	send := func(tok string) int {
		body := `{"specversion":"1.0","id":"hup-` + tok[:3] + `","source":"s","type":"` + bridge.EventType + `","data":{"sessionId":"s","qosStatus":"AVAILABLE"}}`
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if send(oldTok) != 204 || send(newTok) != 401 {
		t.Fatal("before SIGHUP: the old token must hold, the new one not")
	}
	if err := os.WriteFile(file, []byte(newTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !sinktest.Poll(time.Minute, 5*time.Millisecond, func() bool { return send(newTok) == 204 }) {
		t.Fatal("SIGHUP did not put the new token in service")
	}
	if send(oldTok) != 401 {
		t.Error("after SIGHUP the old token still holds")
	}
}
