package bridge

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestQuoteBoundsAndEscapes(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"short", "abc", `"abc"`},
		{"control bytes", "a\r\nb", `"a\r\nb"`},
		{"invalid utf-8", "a\xffb", `"a\xffb"`},
		{"long", strings.Repeat("x", 1000), `"` + strings.Repeat("x", MaxQuoted) + `…" (1000 bytes)`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("%s: Quote = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	s := strings.Repeat("é", 10) // 2 bytes each
	got := Truncate(s, 5)
	if got != "éé…" || !utf8.ValidString(got) {
		t.Errorf("Truncate = %q", got)
	}
	if Truncate("abc", 3) != "abc" {
		t.Error("a string that fits was changed")
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain reason: ok", "plain reason: ok"},
		{"a\r\nb\x00", `a\r\nb\x00`},
		{"bad \xff\xfe byte", `bad \xff\xfe byte`},
		{"ünïcode stays", "ünïcode stays"},
	} {
		if got := Printable(tc.in, 100); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Printable(strings.Repeat("y", 5000), 100); len(got) > 100+len("…") {
		t.Errorf("Printable kept %d bytes", len(got))
	}
}
