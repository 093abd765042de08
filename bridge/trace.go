package bridge

// W3C Trace Context (https://www.w3.org/TR/trace-context/) as far as the
// bridge needs it: whether a traceparent and a tracestate may be carried
// over onto the broker message. The bridge never fails an event for its
// trace context: a value these functions refuse is dropped, because a
// consumer's tracer given a malformed traceparent either rejects it or,
// worse, continues a trace that is not the sender's.

// Bounds of the trace context the bridge carries over.
const (
	// MaxTraceParentLen bounds a traceparent of a version above 00, whose
	// later fields W3C leaves open: 512 bytes, the length W3C asks vendors
	// to propagate of a tracestate. Version 00 is exactly 55 bytes.
	MaxTraceParentLen = 512
	// MaxTraceStateLen is the longest tracestate carried over: W3C asks
	// vendors to propagate at least 512 bytes and lets them drop more.
	MaxTraceStateLen = 512
	// MaxTraceStateMembers is W3C's limit on tracestate list members.
	MaxTraceStateMembers = 32
)

// ValidTraceParent reports whether s is a traceparent W3C Trace Context
// accepts. Version 00 is exactly
// 00-<32 lowercase hex, not all zero>-<16 lowercase hex, not all zero>-<2 lowercase hex>.
// Version ff is invalid. A higher version is read as W3C asks: the same
// first four fields, then either the end or a '-' and more (which this
// parser does not read), up to MaxTraceParentLen bytes.
func ValidTraceParent(s string) bool {
	const v00Len = 55 // 2+1+32+1+16+1+2
	if len(s) < v00Len || !lowerHex(s[0:2]) || s[0:2] == "ff" {
		return false
	}
	if s[0:2] == "00" {
		if len(s) != v00Len {
			return false
		}
	} else if len(s) > MaxTraceParentLen || len(s) > v00Len && s[v00Len] != '-' {
		return false
	}
	traceID, parentID, flags := s[3:35], s[36:52], s[53:55]
	return s[2] == '-' && s[35] == '-' && s[52] == '-' &&
		lowerHex(traceID) && !allZero(traceID) &&
		lowerHex(parentID) && !allZero(parentID) &&
		lowerHex(flags)
}

// ValidTraceState reports whether s is a tracestate the bridge carries
// over: at most MaxTraceStateLen bytes, at most MaxTraceStateMembers
// non-empty comma-separated list members, and only printable ASCII (W3C's
// character set for keys and values) or the spaces and tabs W3C allows
// around members. It does not check the grammar of each key and value: a
// consumer's tracer does that, and skips a member it cannot read.
func ValidTraceState(s string) bool {
	if len(s) > MaxTraceStateLen {
		return false
	}
	members, empty := 0, true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ',':
			if !empty {
				members++
			}
			empty = true
		case c == ' ' || c == '\t':
		case c < 0x20 || c >= 0x7f:
			return false
		default:
			empty = false
		}
	}
	if !empty {
		members++
	}
	return members <= MaxTraceStateMembers
}

// TraceContext returns the trace context of an input as the bridge carries
// it over: both values when the traceparent is valid, the traceparent
// alone when only the tracestate is not, and nothing when the traceparent
// is not valid (W3C: a tracestate means nothing without its traceparent).
func TraceContext(traceparent, tracestate string) (string, string) {
	if !ValidTraceParent(traceparent) {
		return "", ""
	}
	if !ValidTraceState(tracestate) {
		return traceparent, ""
	}
	return traceparent, tracestate
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
