package bridge

import (
	"strings"
	"unicode/utf8"
)

// This file is the wire format of the outgoing CloudEvent, for every sink:
// its attributes (Attributes), its data (AppendData), its structured form
// (AppendStructured), and the binary-mode headers of each protocol binding
// (Binding: header names for a prefix, HeaderValue). The JSON is written by
// hand, without reflection or maps, as encoding/json would write it:
// FuzzWireFormat holds it to byte equality with json.Marshal.

// Content types of the outgoing event.
const (
	// DataContentType is the datacontenttype of the data, and the content
	// type of a binary-mode message.
	DataContentType = "application/json"
	// StructuredContentType is the content type of a structured-mode
	// message (StructuredJSON).
	StructuredContentType = "application/cloudevents+json"
)

// StatusData is the data of a canonical event (and its JSON shape).
type StatusData struct {
	SessionID  string     `json:"sessionId"`
	QoSStatus  QoSStatus  `json:"qosStatus"`
	StatusInfo StatusInfo `json:"statusInfo,omitempty"`
}

// Data returns the JSON data of e: {"sessionId","qosStatus","statusInfo"},
// statusInfo left out when absent. It is AppendData in a new slice.
func (e *Event) Data() []byte {
	return e.AppendData(make([]byte, 0, e.dataLen()))
}

// StructuredJSON returns e as a structured-mode CloudEvent
// (StructuredContentType) with data as a JSON object. It is
// AppendStructured in a new slice.
func (e *Event) StructuredJSON() []byte {
	return e.AppendStructured(make([]byte, 0, e.structuredLen()))
}

// The fixed parts of the data.
const (
	dataSessionID  = `{"sessionId":`
	dataQoSStatus  = `,"qosStatus":`
	dataStatusInfo = `,"statusInfo":`
)

// AppendData appends the JSON data of e to dst, exactly the bytes
// json.Marshal writes for its StatusData, and returns the extended slice.
// It allocates only when dst has no room.
func (e *Event) AppendData(dst []byte) []byte {
	dst = append(dst, dataSessionID...)
	dst = appendJSONString(dst, e.SessionID)
	dst = append(dst, dataQoSStatus...)
	dst = appendJSONString(dst, string(e.QoSStatus))
	if e.StatusInfo != "" {
		dst = append(dst, dataStatusInfo...)
		dst = appendJSONString(dst, string(e.StatusInfo))
	}
	return append(dst, '}')
}

// dataLen is the length of e's data when no string needs escaping (a lower
// bound otherwise).
func (e *Event) dataLen() int {
	n := len(dataSessionID) + 2 + len(e.SessionID) + len(dataQoSStatus) + 2 + len(e.QoSStatus) + 1
	if e.StatusInfo != "" {
		n += len(dataStatusInfo) + 2 + len(e.StatusInfo)
	}
	return n
}

// The fixed parts of the structured form, the members in the order
// encoding/json writes a map's (sorted by key).
const (
	structData            = `{"data":`
	structDataContentType = `,"datacontenttype":"` + DataContentType + `","id":`
	structPartitionKey    = `,"partitionkey":`
	structSource          = `,"source":`
	structSpecVersion     = `,"specversion":"` + SpecVersion + `","subject":`
	structTime            = `,"time":`
	structTraceParent     = `,"traceparent":`
	structTraceState      = `,"tracestate":`
	structType            = `,"type":"` + EventType + `"}`
)

// AppendStructured appends e as a structured-mode CloudEvent to dst: a JSON
// object of the attributes of Attributes and "data" (AppendData), exactly
// the bytes json.Marshal writes for a map of them. It returns the extended
// slice and allocates only when dst has no room.
func (e *Event) AppendStructured(dst []byte) []byte {
	dst = append(dst, structData...)
	dst = e.AppendData(dst)
	dst = append(dst, structDataContentType...)
	dst = appendJSONString(dst, e.ID)
	dst = append(dst, structPartitionKey...)
	dst = appendJSONString(dst, e.SessionID)
	dst = append(dst, structSource...)
	dst = appendJSONString(dst, e.Source)
	dst = append(dst, structSpecVersion...)
	dst = appendJSONString(dst, e.SessionID)
	if e.Time != "" {
		dst = append(dst, structTime...)
		dst = appendJSONString(dst, e.Time)
	}
	if e.TraceParent != "" {
		dst = append(dst, structTraceParent...)
		dst = appendJSONString(dst, e.TraceParent)
	}
	if e.TraceState != "" {
		dst = append(dst, structTraceState...)
		dst = appendJSONString(dst, e.TraceState)
	}
	return append(dst, structType...)
}

// structuredLen is the length of e's structured form when no string needs
// escaping (a lower bound otherwise).
func (e *Event) structuredLen() int {
	n := len(structData) + e.dataLen() +
		len(structDataContentType) + 2 + len(e.ID) +
		len(structPartitionKey) + 2 + len(e.SessionID) +
		len(structSource) + 2 + len(e.Source) +
		len(structSpecVersion) + 2 + len(e.SessionID) +
		len(structType)
	if e.Time != "" {
		n += len(structTime) + 2 + len(e.Time)
	}
	if e.TraceParent != "" {
		n += len(structTraceParent) + 2 + len(e.TraceParent)
	}
	if e.TraceState != "" {
		n += len(structTraceState) + 2 + len(e.TraceState)
	}
	return n
}

// jsonSafe holds the bytes encoding/json writes as they are inside a string
// (with its default HTML escaping): printable ASCII and DEL, other than '"',
// '\\', '<', '>' and '&'. It is indexed by any byte (those of multi-byte
// UTF-8 are false), so the scan of a string checks one table per byte.
var jsonSafe = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string the way encoding/json writes
// it: '"' and '\\' escaped with a backslash; \b, \f, \n, \r and \t as
// such; other control bytes and the HTML-sensitive '<', '>', '&' as
// \u00XX; invalid UTF-8 as \ufffd; U+2028 and U+2029 as \u2028 and \u2029.
// A string with nothing to escape is copied in one piece.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Attr is one CloudEvents context attribute or extension of a canonical event.
type Attr struct{ Name, Value string }

// Attributes returns the CloudEvents context attributes and extensions of e
// in a fixed order, leaving out the ones that are absent. Sinks turn them
// into broker headers with a Binding (ce-* on NATS, ce_* on Kafka).
func (e *Event) Attributes() []Attr {
	return e.AppendAttributes(make([]Attr, 0, numAttrs))
}

// AppendAttributes appends Attributes to dst, for a caller that reuses the
// slice.
func (e *Event) AppendAttributes(dst []Attr) []Attr {
	dst = append(dst,
		Attr{"specversion", SpecVersion},
		Attr{"id", e.ID},
		Attr{"source", e.Source},
		Attr{"type", EventType},
		Attr{"subject", e.SessionID},
	)
	if e.Time != "" {
		dst = append(dst, Attr{"time", e.Time})
	}
	dst = append(dst, Attr{"datacontenttype", DataContentType}, Attr{"partitionkey", e.SessionID})
	if e.TraceParent != "" {
		dst = append(dst, Attr{"traceparent", e.TraceParent})
	}
	if e.TraceState != "" {
		dst = append(dst, Attr{"tracestate", e.TraceState})
	}
	return dst
}

// attrNames are the names of the attributes an Event or a command result
// has (AppendAttributes, command.Outcome.ResultAttributes); a Binding has
// their header names precomputed.
var attrNames = [...]string{
	"specversion", "id", "source", "type", "subject", "time",
	"datacontenttype", "partitionkey", "traceparent", "tracestate",
}

const numAttrs = len(attrNames)

// attrIndex is the index of name in attrNames, or -1.
func attrIndex(name string) int {
	switch name {
	case "specversion":
		return 0
	case "id":
		return 1
	case "source":
		return 2
	case "type":
		return 3
	case "subject":
		return 4
	case "time":
		return 5
	case "datacontenttype":
		return 6
	case "partitionkey":
		return 7
	case "traceparent":
		return 8
	case "tracestate":
		return 9
	}
	return -1
}

// A Binding is the binary-mode header form of one CloudEvents protocol
// binding: each attribute travels as a header named prefix+attribute, its
// value encoded as the binding says, next to the binding's content-type
// header. Use NATSBinding or KafkaBinding; both are safe for concurrent use.
type Binding struct {
	prefix      string
	contentType string
	percent     bool
	names       [numAttrs]string
}

var (
	// NATSBinding is the header form of the NATS binding, the HTTP
	// binding's: headers ce-<attr> with values percent-encoded by
	// HeaderValue, and Content-Type.
	NATSBinding = newBinding("ce-", "Content-Type", true)
	// KafkaBinding is the header form of the Kafka binding: headers
	// ce_<attr> with the values as they are, and content-type.
	KafkaBinding = newBinding("ce_", "content-type", false)
)

func newBinding(prefix, contentType string, percent bool) *Binding {
	b := &Binding{prefix: prefix, contentType: contentType, percent: percent}
	for i, name := range attrNames {
		b.names[i] = prefix + name
	}
	return b
}

// Prefix is the prefix of the binding's attribute headers: "ce-" or "ce_".
func (b *Binding) Prefix() string { return b.prefix }

// ContentTypeHeader is the name of the binding's content-type header.
func (b *Binding) ContentTypeHeader() string { return b.contentType }

// Header returns the header name of the attribute called name. For the
// attributes of Event and of command results it is a precomputed string:
// naming a header concatenates nothing.
func (b *Binding) Header(name string) string {
	if i := attrIndex(name); i >= 0 {
		return b.names[i]
	}
	return b.prefix + name
}

// Value returns v encoded as the binding's header value: percent-encoded
// (HeaderValue) on NATS, as it is on Kafka.
func (b *Binding) Value(v string) string {
	if b.percent {
		return HeaderValue(v)
	}
	return v
}

// HeaderValue percent-encodes s for a CloudEvents binary-mode header value
// (HTTP and NATS bindings): space, '"', '%', and bytes outside printable
// ASCII are encoded; other bytes pass unchanged.
func HeaderValue(s string) string {
	enc := false
	for i := 0; i < len(s); i++ {
		if headerEscape(s[i]) {
			enc = true
			break
		}
	}
	if !enc {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !headerEscape(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func headerEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }
