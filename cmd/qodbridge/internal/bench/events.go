package bench

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// Input shapes bench can send; the names are those of normalize.Shape,
// except "legacy" for the QoD v0.9 body.
var shapes = []string{"structured", "binary", "json", "nac", "legacy", "batch"}

// eventSource is the CloudEvents source of every event bench sends.
const eventSource = "https://bench.qodbridge.invalid/qod"

// runIDs names the events of one run so that the consumer recognises its
// own events among whatever else is on the subject or topic.
//
// Shapes with a CloudEvents id carry "bench-<run>-<seq>". The QoD v0.9 body
// has no id (the bridge derives one from the content), so every event of a
// run also carries a distinct time, base + seq nanoseconds, and the
// consumer reads the sequence number back from the time. base is drawn per
// run from a span of about 7 years, so two runs sharing a stream do not
// take each other's events.
type runIDs struct {
	run    string
	prefix string // "bench-<run>-"
	base   time.Time
}

func newRunIDs(run string, n uint64) runIDs {
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n%(1<<16)) * time.Hour)
	return runIDs{run: run, prefix: "bench-" + run + "-", base: base}
}

func (r runIDs) id(seq uint64) string {
	return r.prefix + strconv.FormatUint(seq, 10)
}

func (r runIDs) time(seq uint64) string {
	return r.base.Add(time.Duration(seq)).Format(time.RFC3339Nano)
}

// seq returns the sequence number of an event with CloudEvents id and time
// tm, and false for an event of another run or tool.
func (r runIDs) seq(id, tm string) (uint64, bool) {
	if rest, ok := strings.CutPrefix(id, r.prefix); ok {
		n, err := strconv.ParseUint(rest, 10, 64)
		return n, err == nil
	}
	if !strings.HasPrefix(id, "qod-v0.9-") {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, tm)
	if err != nil || t.Before(r.base) || t.Sub(r.base) >= time.Hour {
		return 0, false
	}
	return uint64(t.Sub(r.base)), true
}

// event is the canonical event bench expects the bridge to make of the
// event with sequence number seq.
func (r runIDs) event(seq uint64, sessions int) bridge.Event {
	ev := bridge.Event{
		ID:        r.id(seq),
		Source:    eventSource,
		Time:      r.time(seq),
		SessionID: "bench-s" + strconv.FormatUint(seq%uint64(sessions), 10),
	}
	// A session goes through all three statuses, as in real life.
	switch seq % 3 {
	case 0:
		ev.QoSStatus = bridge.StatusRequested
	case 1:
		ev.QoSStatus = bridge.StatusAvailable
	default:
		ev.QoSStatus, ev.StatusInfo = bridge.StatusUnavailable, bridge.InfoDurationExpired
	}
	return ev
}

// shaper builds the HTTP request of request number n in one input shape.
type shaper struct {
	ids      runIDs
	shape    string
	batch    int // events per request: 1 unless shape is batch
	sessions int
}

// wire is a structured CloudEvent or a Network-as-Code body as JSON.
type wire struct {
	SpecVersion string             `json:"specversion,omitempty"`
	ID          string             `json:"id,omitempty"`
	Source      string             `json:"source,omitempty"`
	Type        string             `json:"type,omitempty"`
	Time        string             `json:"time,omitempty"`
	DataCT      string             `json:"datacontenttype,omitempty"`
	Event       *wireNaC           `json:"event,omitempty"`
	Data        *bridge.StatusData `json:"data,omitempty"`
}

type wireNaC struct {
	EventType   string            `json:"eventType"`
	EventTime   string            `json:"eventTime"`
	EventDetail bridge.StatusData `json:"eventDetail"`
}

func statusData(ev *bridge.Event) *bridge.StatusData {
	return &bridge.StatusData{SessionID: ev.SessionID, QoSStatus: ev.QoSStatus, StatusInfo: ev.StatusInfo}
}

func structuredWire(ev *bridge.Event) wire {
	return wire{SpecVersion: bridge.SpecVersion, ID: ev.ID, Source: ev.Source, Type: bridge.EventTypeV0,
		Time: ev.Time, DataCT: "application/json", Data: statusData(ev)}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // plain strings only: cannot happen
		panic(fmt.Sprintf("bench: marshal: %v", err))
	}
	return b
}

// body returns the body of request n, whose events are n*batch …
// n*batch+batch-1, and appends its headers to hdr.
func (s *shaper) body(n uint64, hdr []reqHeader) ([]byte, []reqHeader) {
	first := n * uint64(s.batch)
	ev := s.ids.event(first, s.sessions)
	const ct = "Content-Type"
	switch s.shape {
	case "binary":
		return ev.Data(), append(hdr,
			reqHeader{ct, "application/json"},
			reqHeader{"Ce-Specversion", bridge.SpecVersion},
			reqHeader{"Ce-Id", ev.ID},
			reqHeader{"Ce-Source", ev.Source},
			reqHeader{"Ce-Type", bridge.EventTypeV0},
			reqHeader{"Ce-Time", ev.Time})
	case "json":
		return mustJSON(structuredWire(&ev)), append(hdr, reqHeader{ct, "application/json"})
	case "nac":
		// The Network-as-Code form with event{} and no data.
		w := structuredWire(&ev)
		w.Data = nil
		w.Event = &wireNaC{EventType: bridge.EventTypeLegacy, EventTime: ev.Time, EventDetail: *statusData(&ev)}
		return mustJSON(w), append(hdr, reqHeader{ct, "application/json"})
	case "legacy":
		return mustJSON(wire{Event: &wireNaC{EventType: bridge.EventTypeLegacy, EventTime: ev.Time, EventDetail: *statusData(&ev)}}),
			append(hdr, reqHeader{ct, "application/json"})
	case "batch":
		ws := make([]wire, s.batch)
		for i := range ws {
			e := s.ids.event(first+uint64(i), s.sessions)
			ws[i] = structuredWire(&e)
		}
		return mustJSON(ws), append(hdr, reqHeader{ct, "application/cloudevents-batch+json"})
	}
	return mustJSON(structuredWire(&ev)), append(hdr, reqHeader{ct, "application/cloudevents+json"})
}

// events returns the canonical events of request n (for the broker
// ceilings, which publish what the bridge would).
func (s *shaper) events(n uint64) []bridge.Event {
	evs := make([]bridge.Event, s.batch)
	for i := range evs {
		evs[i] = s.ids.event(n*uint64(s.batch)+uint64(i), s.sessions)
	}
	return evs
}
