package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrNotEvent is wrapped by Binding.Decode's error for a message that is
// not a canonical status event (no sessionId, id or source).
var ErrNotEvent = errors.New("bridge: not a canonical status event")

// Decode reads back an event the sinks wrote in this binding: binary mode
// (attributes in headers, get returning a header's value, the body the
// data) or structured mode (the content-type header says
// StructuredContentType and the body is the whole event). It is what the
// session view's rebuild reads the history with; it checks only that the
// event names a session, a status, an id and a source.
func (b *Binding) Decode(get func(header string) string, body []byte) (Event, error) {
	var ev Event
	if strings.HasPrefix(get(b.contentType), StructuredContentType) {
		var s struct {
			ID          string     `json:"id"`
			Source      string     `json:"source"`
			Time        string     `json:"time"`
			TraceParent string     `json:"traceparent"`
			TraceState  string     `json:"tracestate"`
			Data        StatusData `json:"data"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return Event{}, fmt.Errorf("%w: structured body: %w", ErrNotEvent, err)
		}
		ev = Event{ID: s.ID, Source: s.Source, Time: s.Time, TraceParent: s.TraceParent, TraceState: s.TraceState,
			SessionID: s.Data.SessionID, QoSStatus: s.Data.QoSStatus, StatusInfo: s.Data.StatusInfo}
	} else {
		var d StatusData
		if err := json.Unmarshal(body, &d); err != nil {
			return Event{}, fmt.Errorf("%w: data: %w", ErrNotEvent, err)
		}
		val := func(name string) string {
			v := get(b.Header(name))
			if b.percent && strings.Contains(v, "%") {
				if u, err := url.PathUnescape(v); err == nil {
					return u
				}
			}
			return v
		}
		ev = Event{ID: val("id"), Source: val("source"), Time: val("time"), TraceParent: val("traceparent"), TraceState: val("tracestate"),
			SessionID: d.SessionID, QoSStatus: d.QoSStatus, StatusInfo: d.StatusInfo}
	}
	if ev.SessionID == "" || ev.ID == "" || ev.Source == "" || !ev.QoSStatus.Valid() {
		return Event{}, fmt.Errorf("%w: sessionId %q, id %q, source %q, qosStatus %q", ErrNotEvent,
			Truncate(ev.SessionID, 64), Truncate(ev.ID, 64), Truncate(ev.Source, 64), Truncate(string(ev.QoSStatus), 32))
	}
	return ev, nil
}
