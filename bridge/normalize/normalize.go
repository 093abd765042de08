// Package normalize turns every shape of QoD status notification that
// platforms send into canonical bridge.Events, or into an *Error that says
// precisely what is wrong and which HTTP status that deserves.
//
// Accepted shapes (see Shape):
//   - a structured CloudEvent (application/cloudevents+json);
//   - a binary CloudEvent (ce-* headers, JSON data as the body), read with
//     the CloudEvents SDK's HTTP binding;
//   - a structured CloudEvent sent as application/json, recognised by its
//     specversion;
//   - the Network-as-Code shape: CloudEvent attributes plus
//     event{eventType, eventTime, eventDetail{sessionId, qosStatus,
//     statusInfo}}, with or without data;
//   - the QoD v0.9 body that has only event{…}: its id is derived from its
//     content, so a resent one gets the same id and is deduplicated;
//   - a batch (application/cloudevents-batch+json): all or nothing.
//
// JSON bodies are parsed here rather than with the SDK's event type because
// the Network-as-Code shapes carry an object-valued "event" member that is
// not a valid CloudEvents extension, and because field-precise errors
// ("data.qosStatus: …") need the JSON decoder's own type errors.
//
// # Hostile input
//
// What is accepted is bounded and exact, so that no input reaches a broker
// as something other than what was sent, or larger than it can carry:
//   - A body that is not valid UTF-8 is refused (400, field "body", naming
//     the byte), as is a JSON escape of a lone UTF-16 surrogate: encoding/json
//     would replace either with U+FFFD, and two different sessionIds could
//     become one. Binary-mode ce-* header values are percent-decoded (the
//     HTTP binding's encoding) and refused when the result is not UTF-8.
//   - Every CloudEvents attribute and extension value has a cap in bytes
//     (MaxIDLen and the constants beside it; an extension that is not a
//     JSON string counts its JSON text). Over it is 400 naming the
//     attribute: "id", "[3].id" in a batch, "ce-foo" in binary mode.
//     Lengths are checked before any value is quoted in an error.
//   - A batch holds at most Options.MaxBatchEvents events (default
//     DefaultMaxBatchEvents); more is 413 (ErrTooMany).
//   - Trace context is never a reason to refuse an event: a traceparent
//     that is not valid W3C Trace Context is dropped with its tracestate,
//     and an invalid tracestate alone is dropped (bridge.TraceContext).
//   - Values quoted in an error's Detail go through bridge.Quote: escaped
//     and cut to bridge.MaxQuoted bytes.
//
// Imports: bridge of ours only. It parses; it neither publishes nor answers
// HTTP.
package normalize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/qodbridge/qodbridge/bridge"
)

// Shape names the form a notification arrived in (for metrics and logs).
type Shape string

// Input shapes.
const (
	ShapeStructured Shape = "structured" // application/cloudevents+json
	ShapeBinary     Shape = "binary"     // ce-* headers
	ShapeJSON       Shape = "json"       // structured CloudEvent as application/json
	ShapeNaC        Shape = "nac"        // CloudEvent attributes + event{…}
	ShapeLegacy     Shape = "qod-v0.9"   // event{…} only
	ShapeBatch      Shape = "batch"      // application/cloudevents-batch+json
)

// MaxSessionIDLen bounds sessionId, so that a subject stays well inside
// broker limits even when every byte is percent-encoded.
const MaxSessionIDLen = 256

// Caps on CloudEvents attribute values, in bytes of their UTF-8 text (in
// binary mode, after percent-decoding). CloudEvents sets no limits, but
// each value is copied onto every broker message (a header in binary mode,
// up to three times its size when percent-encoded), so a few of them must
// not add up to more than a broker carries; these leave a canonical event
// far below 64 kB, the size CloudEvents asks every intermediary to accept.
// A value over its cap is refused with 400 naming the attribute.
const (
	MaxIDLen              = 1024
	MaxSourceLen          = 1024 // a URI reference
	MaxTypeLen            = 256
	MaxTimeLen            = 64 // RFC 3339 with nanoseconds and an offset is 35
	MaxDataContentTypeLen = 256
	MaxDataSchemaLen      = 1024 // a URI
	MaxSubjectLen         = 1024
	// MaxExtensionLen caps specversion and every extension attribute
	// (a top-level member of a structured event that is none of the
	// above, data, data_base64 or the Network-as-Code event, or any other
	// ce-* header): its string value, or its JSON text when it is not a
	// string. Not traceparent and tracestate, which are dropped rather
	// than refused when invalid (see bridge.TraceContext).
	MaxExtensionLen = 1024
)

// Defaults of Options.
const (
	DefaultMaxBatchEvents = 100
	DefaultLegacySource   = "urn:qodbridge:qod-v0.9"
)

// Sentinels an *Error wraps, to tell the kinds of rejection apart.
var (
	// ErrInvalid: the body or an attribute is malformed, missing or over
	// its cap (400).
	ErrInvalid = errors.New("normalize: invalid notification")
	// ErrMediaType: the Content-Type is not one qodbridge reads (415).
	ErrMediaType = errors.New("normalize: unsupported media type")
	// ErrTooMany: a batch holds more events than Options.MaxBatchEvents
	// (413).
	ErrTooMany = errors.New("normalize: too many events in the batch")
)

// Error is a rejected notification.
type Error struct {
	// Status is the HTTP status the rejection deserves: 400, 413 or 415.
	Status int
	// Field is the JSON path or header of the problem ("data.qosStatus",
	// "[2].id", "ce-id", "Content-Type"); empty for the body as a whole.
	Field string
	// Detail says what is wrong, for a person.
	Detail string
	kind   error
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// Unwrap returns ErrInvalid, ErrMediaType or ErrTooMany.
func (e *Error) Unwrap() error { return e.kind }

func invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Field: field, Detail: fmt.Sprintf(format, args...), kind: ErrInvalid}
}

// Options change what is accepted. The zero value is strict.
type Options struct {
	// PassUnknownTypes accepts CloudEvent types other than the three QoD
	// status types, provided the data is a QoD status.
	PassUnknownTypes bool
	// LegacySource is the source given to QoD v0.9 bodies, which have none.
	// Empty means DefaultLegacySource.
	LegacySource string
	// MaxBatchEvents is the most events a batch may hold; a larger batch
	// is refused with 413 (ErrTooMany), before any of its events is read.
	// It bounds the work and the broker messages one request can cause.
	// Zero or less means DefaultMaxBatchEvents (100).
	MaxBatchEvents int
}

func (o Options) maxBatchEvents() int {
	if o.MaxBatchEvents <= 0 {
		return DefaultMaxBatchEvents
	}
	return o.MaxBatchEvents
}

// Parse reads one notification: its headers and its whole body. It returns
// at least one event, or an *Error.
//
// The mode is decided as the CloudEvents HTTP binding decides it: by the
// Content-Type first. A request whose media type starts with
// "application/cloudevents" is structured (or a batch) even when it also
// carries ce-* headers, which are then ignored; only otherwise do ce-*
// headers make it a binary-mode event.
func (o Options) Parse(h http.Header, body []byte) ([]bridge.Event, Shape, error) {
	ct := mediaType(h.Get("Content-Type"))
	if !strings.HasPrefix(ct, "application/cloudevents") && h.Get("Ce-Specversion") != "" {
		ev, err := o.parseBinary(h, body)
		if err != nil {
			return nil, ShapeBinary, err
		}
		return []bridge.Event{ev}, ShapeBinary, nil
	}
	switch ct {
	case "application/cloudevents+json", "application/json":
	case "application/cloudevents-batch+json":
	case "":
		return nil, "", &Error{Status: http.StatusUnsupportedMediaType, Field: "Content-Type", kind: ErrMediaType,
			Detail: "missing; send application/cloudevents+json, application/json, application/cloudevents-batch+json, or a binary CloudEvent with ce-* headers"}
	default:
		return nil, "", &Error{Status: http.StatusUnsupportedMediaType, Field: "Content-Type", kind: ErrMediaType,
			Detail: fmt.Sprintf("%s is not supported; send application/cloudevents+json, application/json, application/cloudevents-batch+json, or a binary CloudEvent with ce-* headers", bridge.Quote(ct))}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, "", invalid("", "empty body")
	}
	if err := checkText(body); err != nil {
		return nil, "", err
	}
	if ct == "application/cloudevents-batch+json" {
		evs, err := o.parseBatch(body)
		return evs, ShapeBatch, err
	}
	var w wireEvent
	if !fastEvent(body, &w) {
		if err := decodeEvent(body, &w, ""); err != nil {
			return nil, ShapeStructured, err
		}
	}
	shape := ShapeStructured
	if ct == "application/json" {
		shape = ShapeJSON
		if w.SpecVersion == nil {
			if w.Event == nil {
				return nil, shape, invalid("specversion", "required: an application/json body must be a structured CloudEvent (with specversion) or a QoD v0.9 notification (with event)")
			}
			ev, err := o.legacy(&w)
			return []bridge.Event{ev}, ShapeLegacy, err
		}
	}
	if w.Event != nil {
		shape = ShapeNaC
	}
	ev, err := o.structured(&w, "")
	if err != nil {
		return nil, shape, err
	}
	return []bridge.Event{ev}, shape, nil
}

func mediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// wireEvent is a structured CloudEvent with the Network-as-Code additions.
// Pointers tell absent from empty.
type wireEvent struct {
	SpecVersion     *string       `json:"specversion"`
	ID              *string       `json:"id"`
	Source          *string       `json:"source"`
	Type            *string       `json:"type"`
	Subject         *string       `json:"subject"`
	Time            *string       `json:"time"`
	DataContentType *string       `json:"datacontenttype"`
	DataSchema      *string       `json:"dataschema"`
	TraceParent     *string       `json:"traceparent"`
	TraceState      *string       `json:"tracestate"`
	Data            *wireStatus   `json:"data"` // decoded in the same pass: null is nil
	DataBase64      *string       `json:"data_base64"`
	Event           *wireNaCEvent `json:"event"`
}

type wireNaCEvent struct {
	EventType   *string     `json:"eventType"`
	EventTime   *string     `json:"eventTime"`
	EventDetail *wireStatus `json:"eventDetail"`
}

type wireStatus struct {
	SessionID  *string `json:"sessionId"`
	QoSStatus  *string `json:"qosStatus"`
	StatusInfo *string `json:"statusInfo"`
}

// checkText refuses a body whose text is not exactly what it decodes to:
// invalid UTF-8, or a JSON escape of a lone UTF-16 surrogate (\ud800),
// either of which encoding/json would replace with U+FFFD.
func checkText(body []byte) error {
	if !utf8.Valid(body) {
		return invalid("body", "invalid UTF-8 at byte %d", invalidUTF8At(string(body))) // copies: errors only
	}
	if i := loneSurrogate(body); i >= 0 {
		return invalid("body", "the escape %s at byte %d is a lone UTF-16 surrogate, not a character", body[i:i+6], i)
	}
	return nil
}

// invalidUTF8At is the offset of the first byte of b that is not part of a
// valid UTF-8 sequence, or -1.
func invalidUTF8At(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// loneSurrogate returns the offset of the first \uXXXX escape in a JSON
// text that is a UTF-16 surrogate not paired as JSON requires (a high one
// followed at once by an escaped low one), or -1. It reads every backslash
// as the start of an escape, which holds inside strings, the only place a
// valid JSON text has them; on an invalid one the JSON decoder's own error
// is no better.
func loneSurrogate(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return -1
		}
		i += j
		if i+1 >= len(b) {
			return -1
		}
		if b[i+1] != 'u' {
			i += 2
			continue
		}
		r, ok := hex4(b, i+2)
		if !ok || r < 0xd800 || r > 0xdfff {
			i += 2
			continue
		}
		if r >= 0xdc00 { // a low surrogate first
			return i
		}
		// ok means b holds all twelve bytes of a pair.
		lo, ok := hex4(b, i+8)
		if !ok || b[i+6] != '\\' || b[i+7] != 'u' || lo < 0xdc00 || lo > 0xdfff {
			return i
		}
		i += 12
	}
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// decodeEvent is the slow path of one structured event: encoding/json,
// then the caps of the members wireEvent does not read (extensions).
func decodeEvent(b []byte, w *wireEvent, prefix string) error {
	if err := decodeObject(b, w, prefix, "a CloudEvent"); err != nil {
		return err
	}
	return checkExtensions(b, prefix)
}

// wireMembers are the members wireEvent reads; any other top-level member
// of a structured event is an extension.
var wireMembers = [...]string{"specversion", "id", "source", "type", "subject", "time",
	"datacontenttype", "dataschema", "traceparent", "tracestate", "data", "data_base64", "event"}

// checkExtensions caps the extensions of the structured event b, a JSON
// object decodeObject accepted. Only the slow path needs it: the fast path
// gives up on any member it does not know.
func checkExtensions(b []byte, prefix string) error {
	var members map[string]json.RawMessage // stays nil for null
	if err := json.Unmarshal(b, &members); err != nil {
		// decodeObject accepted b, so this is not expected; refuse
		// rather than let an unchecked extension through.
		return invalid(prefix, "%v", err)
	}
	var over []string
	for k, raw := range members {
		// encoding/json matches member names to fields case-insensitively.
		if slices.ContainsFunc(wireMembers[:], func(m string) bool { return strings.EqualFold(m, k) }) {
			continue
		}
		if extensionLen(raw) > MaxExtensionLen {
			over = append(over, k)
		}
	}
	if len(over) == 0 {
		return nil
	}
	k := slices.Min(over) // the same answer for the same body
	return invalid(join(prefix, fieldName(k)), "longer than %d bytes (%d bytes)", MaxExtensionLen, extensionLen(members[k]))
}

// extensionLen is the length of an extension's value: its text when it is
// a JSON string, else its JSON text.
func extensionLen(raw json.RawMessage) int {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return len(s)
		}
	}
	return len(raw)
}

// fieldName is a member or header name as an Error's Field shows it: as it
// is when it is short plain ASCII, else quoted and cut (bridge.Quote), so
// that a client's name cannot make a field unbounded or unreadable.
func fieldName(name string) string {
	if len(name) > bridge.MaxQuoted {
		return bridge.Quote(name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return bridge.Quote(name)
		}
	}
	return name
}

// attrCap is the cap on the value of the CloudEvents attribute name, or
// -1 for the trace context, which is never refused for its length.
func attrCap(name string) int {
	switch name {
	case "id":
		return MaxIDLen
	case "source":
		return MaxSourceLen
	case "type":
		return MaxTypeLen
	case "time":
		return MaxTimeLen
	case "datacontenttype":
		return MaxDataContentTypeLen
	case "dataschema":
		return MaxDataSchemaLen
	case "subject":
		return MaxSubjectLen
	case "traceparent", "tracestate":
		return -1
	}
	return MaxExtensionLen
}

// checkLengths caps the attributes of w, before anything quotes them.
func checkLengths(w *wireEvent, prefix string) error {
	for _, a := range [...]struct {
		v    *string
		name string
	}{
		{w.SpecVersion, "specversion"}, {w.ID, "id"}, {w.Source, "source"}, {w.Type, "type"},
		{w.Subject, "subject"}, {w.Time, "time"}, {w.DataContentType, "datacontenttype"},
		{w.DataSchema, "dataschema"},
	} {
		if a.v != nil && len(*a.v) > attrCap(a.name) {
			return invalid(join(prefix, a.name), "longer than %d bytes (%d bytes)", attrCap(a.name), len(*a.v))
		}
	}
	return nil
}

// decodeObject unmarshals a JSON object and turns the decoder's errors into
// field-precise ones under prefix.
func decodeObject(b []byte, v any, prefix, what string) error {
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		if se.Offset >= int64(len(bytes.TrimRight(b, " \t\r\n"))) {
			return invalid(prefix, "truncated JSON: the body ends before the value is complete")
		}
		return invalid(prefix, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid(prefix, "truncated JSON: the body ends before the value is complete")
	case errors.As(err, &te):
		if te.Field == "" {
			return invalid(prefix, "want %s as a JSON object, got %s", what, jsonKind(te.Value))
		}
		t := te.Type
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t {
		case reflect.TypeFor[wireStatus]():
			return invalid(join(prefix, te.Field), "want the session status (sessionId, qosStatus, statusInfo) as a JSON object, got %s", jsonKind(te.Value))
		case reflect.TypeFor[wireNaCEvent]():
			return invalid(join(prefix, te.Field), "want the event object {eventType, eventTime, eventDetail}, got %s", jsonKind(te.Value))
		}
		return invalid(join(prefix, te.Field), "want %s, got %s", t.Kind(), jsonKind(te.Value))
	}
	return invalid(prefix, "%s", err.Error())
}

func jsonKind(v string) string {
	switch v {
	case "array", "object", "string", "bool":
		return "a JSON " + v
	case "number":
		return "a number"
	}
	if strings.HasPrefix(v, "number") {
		return "a number"
	}
	return v
}

func join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}

// structured validates a structured CloudEvent (with or without the
// Network-as-Code event member).
func (o Options) structured(w *wireEvent, prefix string) (bridge.Event, error) {
	var ev bridge.Event
	if err := checkLengths(w, prefix); err != nil {
		return ev, err
	}
	sv, err := requireString(w.SpecVersion, join(prefix, "specversion"))
	if err != nil {
		return ev, err
	}
	if sv != bridge.SpecVersion {
		return ev, invalid(join(prefix, "specversion"), "%s is not supported: want %q", bridge.Quote(sv), bridge.SpecVersion)
	}
	if ev.ID, err = requireString(w.ID, join(prefix, "id")); err != nil {
		return ev, err
	}
	if ev.Source, err = requireString(w.Source, join(prefix, "source")); err != nil {
		return ev, err
	}
	if !plainURI(ev.Source) {
		if _, perr := url.Parse(ev.Source); perr != nil {
			return ev, invalid(join(prefix, "source"), "%s is not a URI reference", bridge.Quote(ev.Source))
		}
	}
	typ, err := requireString(w.Type, join(prefix, "type"))
	if err != nil {
		return ev, err
	}
	if err := o.checkType(typ, join(prefix, "type")); err != nil {
		return ev, err
	}
	if w.DataContentType != nil && mediaType(*w.DataContentType) != "application/json" {
		return ev, invalid(join(prefix, "datacontenttype"), "%s is not supported: the data must be application/json", bridge.Quote(*w.DataContentType))
	}
	if w.DataBase64 != nil {
		return ev, invalid(join(prefix, "data_base64"), "binary data is not supported: send data as a JSON object")
	}
	if w.Time != nil {
		if ev.Time, err = checkTime(*w.Time, join(prefix, "time")); err != nil {
			return ev, err
		}
	}
	if w.TraceParent != nil {
		var ts string
		if w.TraceState != nil {
			ts = *w.TraceState
		}
		ev.TraceParent, ev.TraceState = bridge.TraceContext(*w.TraceParent, ts)
	}

	fromData, fromEvent := w.Data, (*wireStatus)(nil)
	if w.Event != nil {
		if err := checkEventType(w.Event, join(prefix, "event")); err != nil {
			return ev, err
		}
		if w.Event.EventTime != nil && ev.Time == "" {
			if ev.Time, err = checkTime(*w.Event.EventTime, join(prefix, "event.eventTime")); err != nil {
				return ev, err
			}
		}
		fromEvent = w.Event.EventDetail
		if fromEvent == nil && fromData == nil {
			return ev, invalid(join(prefix, "event.eventDetail"), "required when there is no data")
		}
	}
	switch {
	case fromData != nil:
		if err := setStatus(&ev, fromData, join(prefix, "data")); err != nil {
			return ev, err
		}
		if fromEvent != nil {
			var other bridge.Event
			if err := setStatus(&other, fromEvent, join(prefix, "event.eventDetail")); err != nil {
				return ev, err
			}
			if other.SessionID != ev.SessionID || other.QoSStatus != ev.QoSStatus || other.StatusInfo != ev.StatusInfo {
				// Statuses are valid enum values by now; session ids are the client's.
				return ev, invalid(join(prefix, "event.eventDetail"), "disagrees with data (%s/%s/%s vs %s/%s/%s)",
					bridge.Quote(other.SessionID), other.QoSStatus, other.StatusInfo, bridge.Quote(ev.SessionID), ev.QoSStatus, ev.StatusInfo)
			}
		}
	case fromEvent != nil:
		if err := setStatus(&ev, fromEvent, join(prefix, "event.eventDetail")); err != nil {
			return ev, err
		}
	default:
		return ev, invalid(join(prefix, "data"), "required: the session status {sessionId, qosStatus, statusInfo}")
	}
	return ev, nil
}

// legacy reads a QoD v0.9 body: event{eventType, eventTime, eventDetail}
// with no CloudEvents attributes.
func (o Options) legacy(w *wireEvent) (bridge.Event, error) {
	var ev bridge.Event
	if err := checkEventType(w.Event, "event"); err != nil {
		return ev, err
	}
	if w.Event.EventType == nil {
		return ev, invalid("event.eventType", "required")
	}
	if w.Event.EventDetail == nil {
		return ev, invalid("event.eventDetail", "required")
	}
	if w.Event.EventTime != nil {
		var err error
		if ev.Time, err = checkTime(*w.Event.EventTime, "event.eventTime"); err != nil {
			return ev, err
		}
	}
	if err := setStatus(&ev, w.Event.EventDetail, "event.eventDetail"); err != nil {
		return ev, err
	}
	ev.Source = o.LegacySource
	if ev.Source == "" {
		ev.Source = DefaultLegacySource
	}
	// The content is the identity: a platform resending the same change
	// yields the same id, so the broker deduplicates it.
	h := sha256.New()
	for _, s := range []string{ev.SessionID, string(ev.QoSStatus), string(ev.StatusInfo), ev.Time} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	ev.ID = "qod-v0.9-" + hex.EncodeToString(h.Sum(nil)[:16])
	return ev, nil
}

func checkEventType(e *wireNaCEvent, field string) error {
	if e.EventType != nil && *e.EventType != bridge.EventTypeLegacy {
		return invalid(field+".eventType", "%s is not supported: want %q", bridge.Quote(*e.EventType), bridge.EventTypeLegacy)
	}
	return nil
}

func (o Options) checkType(typ, field string) error {
	switch typ {
	case bridge.EventType, bridge.EventTypeV0, bridge.EventTypeV1:
		return nil
	}
	if o.PassUnknownTypes {
		return nil
	}
	return invalid(field, "%s is not a QoD status event type: want %s, %s or %s", bridge.Quote(typ), bridge.EventType, bridge.EventTypeV0, bridge.EventTypeV1)
}

func requireString(p *string, field string) (string, error) {
	if p == nil {
		return "", invalid(field, "required")
	}
	if *p == "" {
		return "", invalid(field, "must not be empty")
	}
	return *p, nil
}

func checkTime(s, field string) (string, error) {
	if len(s) > MaxTimeLen { // also event.eventTime, which is no CloudEvents attribute
		return "", invalid(field, "longer than %d bytes (%d bytes)", MaxTimeLen, len(s))
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return "", invalid(field, "%s is not an RFC 3339 time such as 2024-04-30T13:05:29.189Z", bridge.Quote(s))
	}
	return s, nil
}

func setStatus(ev *bridge.Event, s *wireStatus, prefix string) error {
	// Field names are joined only for an error: this runs per event.
	if s.SessionID == nil || *s.SessionID == "" {
		_, err := requireString(s.SessionID, prefix+".sessionId")
		return err
	}
	id := *s.SessionID
	if len(id) > MaxSessionIDLen {
		return invalid(prefix+".sessionId", "longer than %d bytes (%d bytes)", MaxSessionIDLen, len(id))
	}
	if s.QoSStatus == nil || *s.QoSStatus == "" {
		_, err := requireString(s.QoSStatus, prefix+".qosStatus")
		return err
	}
	st := *s.QoSStatus
	if !bridge.QoSStatus(st).Valid() {
		return invalid(prefix+".qosStatus", "%s is not REQUESTED, AVAILABLE or UNAVAILABLE", bridge.Quote(st))
	}
	ev.SessionID, ev.QoSStatus = id, bridge.QoSStatus(st)
	ev.StatusInfo = ""
	if s.StatusInfo != nil {
		// Network as Code documents statusInfo as "empty (null)"; an empty
		// string is read the same way.
		info := bridge.StatusInfo(*s.StatusInfo)
		if !info.Valid() {
			return invalid(prefix+".statusInfo", "%s is not DURATION_EXPIRED, NETWORK_TERMINATED, DELETE_REQUESTED or null", bridge.Quote(*s.StatusInfo))
		}
		ev.StatusInfo = info
	}
	return nil
}

func (o Options) parseBatch(body []byte) ([]bridge.Event, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return nil, invalid("", "a batch must be a JSON array of CloudEvents, got %s", jsonKind(te.Value))
		}
		return nil, decodeObject(body, &raw, "", "a batch")
	}
	if len(raw) == 0 {
		return nil, invalid("", "empty batch: send at least one CloudEvent")
	}
	if limit := o.maxBatchEvents(); len(raw) > limit {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, kind: ErrTooMany,
			Detail: fmt.Sprintf("batch of %d events exceeds the limit of %d events: send it in smaller batches", len(raw), limit)}
	}
	evs := make([]bridge.Event, 0, len(raw))
	for i, r := range raw {
		prefix := fmt.Sprintf("[%d]", i)
		var w wireEvent
		if !fastEvent(r, &w) {
			if err := decodeEvent(r, &w, prefix); err != nil {
				return nil, err
			}
		}
		ev, err := o.structured(&w, prefix)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// parseBinary reads a binary-mode CloudEvent: the ce-* header values,
// percent-decoded and checked here, then read and validated with the
// CloudEvents SDK's HTTP binding.
func (o Options) parseBinary(h http.Header, body []byte) (bridge.Event, error) {
	var ev bridge.Event
	h, err := binaryHeaders(h)
	if err != nil {
		return ev, err
	}
	if sv := h.Get("Ce-Specversion"); sv != bridge.SpecVersion {
		return ev, invalid("ce-specversion", "%s is not supported: want %q", bridge.Quote(sv), bridge.SpecVersion)
	}
	for _, name := range []string{"Ce-Id", "Ce-Source", "Ce-Type"} {
		if h.Get(name) == "" {
			return ev, invalid(strings.ToLower(name), "required")
		}
	}
	if ct := mediaType(h.Get("Content-Type")); ct != "application/json" && ct != "" {
		return ev, &Error{Status: http.StatusUnsupportedMediaType, Field: "Content-Type", kind: ErrMediaType,
			Detail: fmt.Sprintf("%s is not supported for binary-mode data: want application/json", bridge.Quote(ct))}
	}
	if err := checkText(body); err != nil {
		return ev, err
	}
	msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
	ce, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		// The SDK's errors may quote a header's name: bounded here.
		return ev, invalid("ce-*", "not a valid binary CloudEvent: %s", bridge.Printable(err.Error(), maxSDKError))
	}
	if err := ce.Validate(); err != nil {
		return ev, invalid("ce-*", "not a valid CloudEvent: %s", bridge.Printable(err.Error(), maxSDKError))
	}
	ev.ID, ev.Source = ce.ID(), ce.Source()
	if err := o.checkType(ce.Type(), "ce-type"); err != nil {
		return ev, err
	}
	if t := h.Get("Ce-Time"); t != "" {
		if _, err := checkTime(t, "ce-time"); err != nil {
			return ev, err
		}
		ev.Time = t
	}
	if tp, ok := ce.Extensions()["traceparent"].(string); ok {
		ts, _ := ce.Extensions()["tracestate"].(string)
		ev.TraceParent, ev.TraceState = bridge.TraceContext(tp, ts)
	}
	data := ce.Data()
	if len(bytes.TrimSpace(data)) == 0 {
		return ev, invalid("data", "required: the body must be the session status {sessionId, qosStatus, statusInfo}")
	}
	var s wireStatus
	if err := decodeObject(data, &s, "data", "the session status (sessionId, qosStatus, statusInfo)"); err != nil {
		return ev, err
	}
	if err := setStatus(&ev, &s, "data"); err != nil {
		return ev, err
	}
	return ev, nil
}

// maxSDKError bounds the CloudEvents SDK's error text in a Detail.
const maxSDKError = 256

// binaryHeaders percent-decodes every ce-* header value, as the HTTP
// binding of CloudEvents encodes them (a '%' not followed by two hex
// digits stays as it is), refuses a value that is not UTF-8 then or is
// over its attribute's cap, and returns the headers with the decoded
// values (h itself when none was encoded). Headers are visited in sorted
// order, so the same request gets the same answer.
func binaryHeaders(h http.Header) (http.Header, error) {
	out, cloned := h, false
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if len(k) < 3 || !strings.EqualFold(k[:3], "ce-") {
			continue
		}
		name := strings.ToLower(k[3:])
		field := "ce-" + fieldName(name)
		limit := attrCap(name)
		for i, v := range h[k] {
			if limit >= 0 && len(v) > 3*limit { // decoding shrinks a value to a third at most
				return nil, invalid(field, "longer than %d bytes (%d bytes before percent-decoding)", limit, len(v))
			}
			d := percentDecode(v)
			if !utf8.ValidString(d) {
				return nil, invalid(field, "invalid UTF-8 at byte %d after percent-decoding", invalidUTF8At(d))
			}
			if limit >= 0 && len(d) > limit {
				return nil, invalid(field, "longer than %d bytes (%d bytes)", limit, len(d))
			}
			if d != v {
				if !cloned {
					out, cloned = h.Clone(), true
				}
				out[k][i] = d
			}
		}
	}
	return out, nil
}

// percentDecode replaces every %XX of s by the byte it encodes.
func percentDecode(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
