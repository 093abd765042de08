package bridge

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxQuoted is how many bytes of a client's value Quote keeps.
const MaxQuoted = 64

// Truncate cuts s to at most n bytes at a rune boundary and marks the cut
// with "…". It leaves s as it is when it fits.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := max(n, 0)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Quote is how a value that came from a client goes into an error text, a
// log line or a header: Go-quoted (so control bytes and invalid UTF-8 are
// escaped, never written raw) and cut to MaxQuoted bytes with the full
// length said, so that no input makes an error or a log line unbounded.
func Quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(Truncate(s, MaxQuoted)) + " (" + strconv.Itoa(len(s)) + " bytes)"
}

// Printable returns s with every byte that may not appear in a NATS or HTTP
// header value (control bytes, DEL, invalid UTF-8) escaped Go-style and
// cut to at most n bytes: the form of a reason or other text of ours that
// may quote a client's input and goes into a header.
func Printable(s string, n int) string {
	clean := utf8.ValidString(s)
	for i := 0; clean && i < len(s); i++ {
		clean = s[i] >= ' ' && s[i] != 0x7f
	}
	if !clean {
		var b strings.Builder
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				b.WriteString(`\x`)
				b.WriteString(strconv.FormatUint(uint64(s[i]), 16))
			case r < ' ' || r == 0x7f:
				q := strconv.QuoteRune(r)
				b.WriteString(q[1 : len(q)-1])
			default:
				b.WriteString(s[i : i+size])
			}
			i += size
		}
		s = b.String()
	}
	return Truncate(s, n)
}
