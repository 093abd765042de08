package normalize

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLoneSurrogate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{`{"a":"b"}`, -1},
		{`"\ud83d\ude00"`, -1},
		{`"\uD83D\uDE00"`, -1},
		{`"\u00e9\n\\"`, -1},
		{`"\\ud800"`, -1}, // an escaped backslash, then plain text
		{`"\\\ud800"`, 3},
		{`"\ud800"`, 1},
		{`"x\udc00"`, 2},
		{`"\ud800\u0041"`, 1},
		{`"\ud800\ud800"`, 1},
		{`"\ud83d\ude00\udc00"`, 13},
		{`"\ud800`, 1},
		{`"\u12`, -1},
		{`\`, -1},
	} {
		if got := loneSurrogate([]byte(tc.in)); got != tc.want {
			t.Errorf("loneSurrogate(%s) = %d, want %d", tc.in, got, tc.want)
		}
		// Whatever it finds, encoding/json turns into U+FFFD.
		var s string
		if tc.want >= 0 && json.Unmarshal([]byte(tc.in), &s) == nil && !strings.ContainsRune(s, utf8.RuneError) {
			t.Errorf("%s decodes to %q, with no U+FFFD", tc.in, s)
		}
	}
}

func TestPercentDecode(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "a%20b": "a b", "%25": "%", "100%": "100%", "%2": "%2", "%zz": "%zz",
		"%C3%A9": "é", "%c3%a9": "é", "%%41": "%A", "%FF": "\xff",
	} {
		if got := percentDecode(in); got != want {
			t.Errorf("percentDecode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInvalidUTF8At(t *testing.T) {
	for in, want := range map[string]int{"": -1, "abc": -1, "é": -1, "a\xff": 1, "é\xc3": 2, "\xed\xa0\x80": 0} {
		if got := invalidUTF8At(in); got != want {
			t.Errorf("invalidUTF8At(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestFieldNameIsBounded(t *testing.T) {
	for in, want := range map[string]string{
		"ext": "ext", "a.b-c_d": "a.b-c_d", "a b": `"a b"`, "a\nb": `"a\nb"`, `a"b`: `"a\"b"`,
		strings.Repeat("n", 65): `"` + strings.Repeat("n", 64) + `…" (65 bytes)`,
	} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestErrorsSayWhere: the new rejections wrap the right sentinel and
// status, so the ingress maps them without reading text.
func TestErrorsSayWhere(t *testing.T) {
	var o Options
	h := http.Header{"Content-Type": {"application/cloudevents-batch+json"}}
	_, _, err := o.Parse(h, []byte("["+strings.Repeat(`{},`, 100)+`{}]`))
	var e *Error
	if !errors.As(err, &e) || e.Status != 413 || !errors.Is(err, ErrTooMany) {
		t.Fatalf("101 events: %#v", err)
	}
	h.Set("Content-Type", "application/cloudevents+json")
	_, _, err = o.Parse(h, []byte("{\"id\":\"\xff\"}"))
	if !errors.As(err, &e) || e.Status != 400 || e.Field != "body" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid UTF-8: %#v", err)
	}
}

// FuzzLoneSurrogate: a JSON string that passes checkText decodes without
// a replacement character it did not spell out, so no two different texts
// become one.
func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{`"\ud83d\ude00"`, `"\ud800"`, `"\\ud800"`, `"a\u0000"`, `"\udc00\ud800"`, `"\ufffd"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s string
		if checkText(b) != nil || json.Unmarshal(b, &s) != nil {
			return
		}
		spelled := strings.Contains(string(b), "\uFFFD") || strings.Contains(strings.ToLower(string(b)), `\ufffd`)
		if !spelled && strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("%q passed checkText but decodes to %q", b, s)
		}
	})
}
