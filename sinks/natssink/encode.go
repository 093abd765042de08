package natssink

import "github.com/qodbridge/qodbridge/bridge"

// The encoders below produce exactly the bytes of bridge.Event.Data and
// bridge.Event.StructuredJSON without reflection or intermediate maps, for
// events whose strings need no JSON escaping (the usual case: UUIDs, URLs,
// enum values). For any other event they report false and the caller uses
// the bridge methods. A fuzz test holds them to byte equality.

// plain reports whether encoding/json writes s unchanged between quotes:
// printable ASCII other than '"', '\\' and the HTML-escaped '<', '>', '&'.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func plainEvent(ev *bridge.Event) bool {
	return plain(ev.ID) && plain(ev.Source) && plain(ev.Time) && plain(ev.SessionID) &&
		plain(string(ev.QoSStatus)) && plain(string(ev.StatusInfo)) &&
		plain(ev.TraceParent) && plain(ev.TraceState)
}

func appendStr(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendData appends the body of bridge.Event.Data for a plain event.
func appendData(b []byte, ev *bridge.Event) []byte {
	b = append(b, `{"sessionId":`...)
	b = appendStr(b, ev.SessionID)
	b = append(b, `,"qosStatus":`...)
	b = appendStr(b, string(ev.QoSStatus))
	if ev.StatusInfo != "" {
		b = append(b, `,"statusInfo":`...)
		b = appendStr(b, string(ev.StatusInfo))
	}
	return append(b, '}')
}

// dataJSON returns bridge.Event.Data, appended to buf[:0] when the event is
// plain; otherwise in a new slice. Either way the result may alias buf.
func dataJSON(buf []byte, ev *bridge.Event) []byte {
	if !plainEvent(ev) {
		return ev.Data()
	}
	return appendData(buf[:0], ev)
}

// structuredJSON is bridge.Event.StructuredJSON (encoding/json writes a map
// with its keys sorted, which is the order below), with buf as dataJSON.
func structuredJSON(buf []byte, ev *bridge.Event) []byte {
	if !plainEvent(ev) {
		return ev.StructuredJSON()
	}
	b := buf[:0]
	b = append(b, `{"data":`...)
	b = appendData(b, ev)
	b = append(b, `,"datacontenttype":"application/json","id":`...)
	b = appendStr(b, ev.ID)
	b = append(b, `,"partitionkey":`...)
	b = appendStr(b, ev.SessionID)
	b = append(b, `,"source":`...)
	b = appendStr(b, ev.Source)
	b = append(b, `,"specversion":"`+bridge.SpecVersion+`","subject":`...)
	b = appendStr(b, ev.SessionID)
	if ev.Time != "" {
		b = append(b, `,"time":`...)
		b = appendStr(b, ev.Time)
	}
	if ev.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendStr(b, ev.TraceParent)
	}
	if ev.TraceState != "" {
		b = append(b, `,"tracestate":`...)
		b = appendStr(b, ev.TraceState)
	}
	b = append(b, `,"type":"`+bridge.EventType+`"}`...)
	return b
}
