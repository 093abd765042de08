package process

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPprofOptIn: Go's profiles are on the admin listener only when
// admin.pprof asks for them.
func TestPprofOptIn(t *testing.T) {
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	off, _ := startBridge(t, nil)
	if code, _ := get(off.admin + "/debug/pprof/heap?debug=1"); code != http.StatusNotFound {
		t.Errorf("pprof off by default: status %d, want 404", code)
	}
	on, _ := startBridge(t, map[string]string{"QODBRIDGE_ADMIN_PPROF": "true"})
	code, body := get(on.admin + "/debug/pprof/heap?debug=1")
	if code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("admin.pprof: true: status %d, body %.80q", code, body)
	}
	if code, _ := get(on.admin + "/debug/pprof/"); code != http.StatusOK {
		t.Errorf("pprof index: status %d", code)
	}
}

// TestAdminConnectionCapAndHeaderTimeout: with admin.max_connections 2, two
// connections that never send a request hold the listener; a third
// request is served only once the server dropped one of them for not
// sending its headers within the read-header timeout.
func TestAdminConnectionCapAndHeaderTimeout(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfgFile, []byte("admin:\n  max_connections: 2\n  ui: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := startBridge(t, nil, "-config", cfgFile)
	addr := strings.TrimPrefix(b.admin, "http://")
	var idle []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Get(b.admin + "/healthz")
	if err != nil {
		t.Fatalf("a request past the cap: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	// It was served, so the server had closed an idle connection first: its
	// end of the socket reads EOF at once.
	closed := 0
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			closed++
		}
	}
	if closed == 0 {
		t.Fatal("a third connection was served while two idle ones were open: no cap")
	}
}
