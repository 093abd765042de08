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
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

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

// Sentinels an *Error wraps, to tell the two kinds of rejection apart.
var (
	// ErrInvalid: the body or an attribute is malformed or missing (400).
	ErrInvalid = errors.New("normalize: invalid notification")
	// ErrMediaType: the Content-Type is not one qodbridge reads (415).
	ErrMediaType = errors.New("normalize: unsupported media type")
)

// Error is a rejected notification.
type Error struct {
	// Status is the HTTP status the rejection deserves: 400 or 415.
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

// Unwrap returns ErrInvalid or ErrMediaType.
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
	// Empty means "urn:qodbridge:qod-v0.9".
	LegacySource string
}

// Parse reads one notification: its headers and its whole body. It returns
// at least one event, or an *Error.
func (o Options) Parse(h http.Header, body []byte) ([]bridge.Event, Shape, error) {
	if h.Get("Ce-Specversion") != "" {
		ev, err := o.parseBinary(h, body)
		if err != nil {
			return nil, ShapeBinary, err
		}
		return []bridge.Event{ev}, ShapeBinary, nil
	}
	ct := mediaType(h.Get("Content-Type"))
	switch ct {
	case "application/cloudevents+json", "application/json":
	case "application/cloudevents-batch+json":
	case "":
		return nil, "", &Error{Status: http.StatusUnsupportedMediaType, Field: "Content-Type", kind: ErrMediaType,
			Detail: "missing; send application/cloudevents+json, application/json, application/cloudevents-batch+json, or a binary CloudEvent with ce-* headers"}
	default:
		return nil, "", &Error{Status: http.StatusUnsupportedMediaType, Field: "Content-Type", kind: ErrMediaType,
			Detail: fmt.Sprintf("%q is not supported; send application/cloudevents+json, application/json, application/cloudevents-batch+json, or a binary CloudEvent with ce-* headers", ct)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, "", invalid("", "empty body")
	}
	if ct == "application/cloudevents-batch+json" {
		evs, err := o.parseBatch(body)
		return evs, ShapeBatch, err
	}
	var w wireEvent
	if !fastEvent(body, &w) {
		if err := decodeObject(body, &w, "", "a CloudEvent"); err != nil {
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
	sv, err := requireString(w.SpecVersion, join(prefix, "specversion"))
	if err != nil {
		return ev, err
	}
	if sv != bridge.SpecVersion {
		return ev, invalid(join(prefix, "specversion"), "%q is not supported: want %q", sv, bridge.SpecVersion)
	}
	if ev.ID, err = requireString(w.ID, join(prefix, "id")); err != nil {
		return ev, err
	}
	if ev.Source, err = requireString(w.Source, join(prefix, "source")); err != nil {
		return ev, err
	}
	if !plainURI(ev.Source) {
		if _, perr := url.Parse(ev.Source); perr != nil {
			return ev, invalid(join(prefix, "source"), "%q is not a URI reference", ev.Source)
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
		return ev, invalid(join(prefix, "datacontenttype"), "%q is not supported: the data must be application/json", *w.DataContentType)
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
		ev.TraceParent = *w.TraceParent
	}
	if w.TraceState != nil {
		ev.TraceState = *w.TraceState
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
				return ev, invalid(join(prefix, "event.eventDetail"), "disagrees with data (%s/%s/%s vs %s/%s/%s)",
					other.SessionID, other.QoSStatus, other.StatusInfo, ev.SessionID, ev.QoSStatus, ev.StatusInfo)
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
		ev.Source = "urn:qodbridge:qod-v0.9"
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
		return invalid(field+".eventType", "%q is not supported: want %q", *e.EventType, bridge.EventTypeLegacy)
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
	return invalid(field, "%q is not a QoD status event type: want %s, %s or %s", typ, bridge.EventType, bridge.EventTypeV0, bridge.EventTypeV1)
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
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return "", invalid(field, "%q is not an RFC 3339 time such as 2024-04-30T13:05:29.189Z", s)
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
		return invalid(prefix+".sessionId", "longer than %d bytes", MaxSessionIDLen)
	}
	if s.QoSStatus == nil || *s.QoSStatus == "" {
		_, err := requireString(s.QoSStatus, prefix+".qosStatus")
		return err
	}
	st := *s.QoSStatus
	if !bridge.QoSStatus(st).Valid() {
		return invalid(prefix+".qosStatus", "%q is not REQUESTED, AVAILABLE or UNAVAILABLE", st)
	}
	ev.SessionID, ev.QoSStatus = id, bridge.QoSStatus(st)
	ev.StatusInfo = ""
	if s.StatusInfo != nil {
		// Network as Code documents statusInfo as "empty (null)"; an empty
		// string is read the same way.
		info := bridge.StatusInfo(*s.StatusInfo)
		if !info.Valid() {
			return invalid(prefix+".statusInfo", "%q is not DURATION_EXPIRED, NETWORK_TERMINATED, DELETE_REQUESTED or null", *s.StatusInfo)
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
	evs := make([]bridge.Event, 0, len(raw))
	for i, r := range raw {
		prefix := fmt.Sprintf("[%d]", i)
		var w wireEvent
		if !fastEvent(r, &w) {
			if err := decodeObject(r, &w, prefix, "a CloudEvent"); err != nil {
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

// parseBinary reads a binary-mode CloudEvent with the SDK's HTTP binding,
// which decodes the percent-encoded ce-* header values.
func (o Options) parseBinary(h http.Header, body []byte) (bridge.Event, error) {
	var ev bridge.Event
	if sv := h.Get("Ce-Specversion"); sv != bridge.SpecVersion {
		return ev, invalid("ce-specversion", "%q is not supported: want %q", sv, bridge.SpecVersion)
	}
	for _, name := range []string{"Ce-Id", "Ce-Source", "Ce-Type"} {
		if h.Get(name) == "" {
			return ev, invalid(strings.ToLower(name), "required")
		}
	}
	if ct := mediaType(h.Get("Content-Type")); ct != "application/json" && ct != "" {
		return ev, &Error{Status: http.StatusUnsupportedMediaType, Field: "Content-Type", kind: ErrMediaType,
			Detail: fmt.Sprintf("%q is not supported for binary-mode data: want application/json", ct)}
	}
	msg := cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body)))
	ce, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		return ev, invalid("ce-*", "not a valid binary CloudEvent: %v", err)
	}
	if err := ce.Validate(); err != nil {
		return ev, invalid("ce-*", "not a valid CloudEvent: %v", err)
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
	if v, ok := ce.Extensions()["traceparent"].(string); ok {
		ev.TraceParent = v
	}
	if v, ok := ce.Extensions()["tracestate"].(string); ok {
		ev.TraceState = v
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
