package bridge

import (
	"strings"
	"testing"
)

func TestValidTraceParent(t *testing.T) {
	const tid, pid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"version 00", "00-" + tid + "-" + pid + "-01", true},
		{"flags 00", "00-" + tid + "-" + pid + "-00", true},
		{"empty", "", false},
		{"version ff", "ff-" + tid + "-" + pid + "-01", false},
		{"upper-case hex", "00-" + strings.ToUpper(tid) + "-" + pid + "-01", false},
		{"upper-case flags", "00-" + tid + "-" + pid + "-0A", false},
		{"upper-case version", "0A-" + tid + "-" + pid + "-01", false},
		{"all-zero trace id", "00-" + strings.Repeat("0", 32) + "-" + pid + "-01", false},
		{"all-zero parent id", "00-" + tid + "-" + strings.Repeat("0", 16) + "-01", false},
		{"version 00 with more", "00-" + tid + "-" + pid + "-01-extra", false},
		{"short trace id", "00-" + tid[1:] + "-" + pid + "-01", false},
		{"wrong separator", "00_" + tid + "-" + pid + "-01", false},
		{"non-hex", "00-" + tid[:31] + "g-" + pid + "-01", false},
		{"higher version", "01-" + tid + "-" + pid + "-01", true},
		{"higher version with more", "cc-" + tid + "-" + pid + "-01-what-the-future-holds", true},
		{"higher version, no dash after flags", "cc-" + tid + "-" + pid + "-01x", false},
		{"higher version, too short", "cc-" + tid + "-" + pid + "-0", false},
		{"higher version, too long", "cc-" + tid + "-" + pid + "-01-" + strings.Repeat("x", MaxTraceParentLen), false},
		{"control byte", "00-" + tid + "-" + pid + "-0\n", false},
	} {
		if got := ValidTraceParent(tc.in); got != tc.want {
			t.Errorf("%s: ValidTraceParent(%q) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestValidTraceState(t *testing.T) {
	members := func(n int) string {
		m := make([]string, n)
		for i := range m {
			m[i] = "k" + strings.Repeat("x", i%3) + "=v"
		}
		return strings.Join(m, ",")
	}
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"empty", "", true},
		{"two members", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", true},
		{"spaces and tabs around members", "a=1 ,\tb=2, ,", true},
		{"32 members", members(32), true},
		{"33 members", members(33), false},
		{"32 members and empty ones", members(32) + ",,, ,", true},
		{"512 bytes", "k=" + strings.Repeat("v", 510), true},
		{"513 bytes", "k=" + strings.Repeat("v", 511), false},
		{"newline", "a=1\nb=2", false},
		{"NUL", "a=\x00", false},
		{"DEL", "a=\x7f", false},
		{"non-ASCII", "a=ü", false},
	} {
		if got := ValidTraceState(tc.in); got != tc.want {
			t.Errorf("%s: ValidTraceState(%q) = %v, want %v", tc.name, Truncate(tc.in, 80), got, tc.want)
		}
	}
}

func TestTraceContextDropsWhatIsInvalid(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct{ tp, ts, wantTP, wantTS string }{
		{tp, "k=v", tp, "k=v"},
		{tp, "", tp, ""},
		{tp, "k=\n", tp, ""},
		{"00-bad", "k=v", "", ""},
		{"", "k=v", "", ""},
	} {
		if p, s := TraceContext(tc.tp, tc.ts); p != tc.wantTP || s != tc.wantTS {
			t.Errorf("TraceContext(%q, %q) = %q, %q; want %q, %q", tc.tp, tc.ts, p, s, tc.wantTP, tc.wantTS)
		}
	}
}
