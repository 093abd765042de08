package process

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
