package bridge

import (
	"bytes"
	"encoding/json"
	"testing"
)

// refData and refStructured are the encoding/json reference of the wire
// format: what Data and StructuredJSON were before they were written by
// hand.
func refData(t testing.TB, e *Event) []byte {
	b, err := json.Marshal(StatusData{SessionID: e.SessionID, QoSStatus: e.QoSStatus, StatusInfo: e.StatusInfo})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func refStructured(t testing.TB, e *Event) []byte {
	m := make(map[string]any, 11)
	for _, at := range e.Attributes() {
		m[at.Name] = at.Value
	}
	m["data"] = json.RawMessage(refData(t, e))
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzWireFormat holds the hand-written encoder to byte equality with
// encoding/json, for any strings: escaping, HTML escaping, invalid UTF-8,
// U+2028/2029, absent optional attributes.
func FuzzWireFormat(f *testing.F) {
	f.Add("id-1", "https://qod.example.com/x", "2024-06-01T12:00:00Z", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "AVAILABLE", "", "00-4bf9-01", "")
	f.Add("a b", "urn:x?a=1&b=<2>", "", "s.1", "UNAVAILABLE", "DURATION_EXPIRED", "", "k=v")
	f.Add("\"q\"\\", "ü\u2028\xff", "\x00\t", "", "", "", "", "")
	f.Add("\b\f\n\r\t\x01\x1f\x7f", "\u2029x\u2028", "\xe2\x80", "\xc3", "é€𝄞", "<>&", "\xed\xa0\x80", "\xf4\x90\x80\x80")
	f.Fuzz(func(t *testing.T, id, src, tm, sess, st, info, tp, ts string) {
		e := Event{ID: id, Source: src, Time: tm, SessionID: sess, QoSStatus: QoSStatus(st),
			StatusInfo: StatusInfo(info), TraceParent: tp, TraceState: ts}
		wantData, wantStruct := refData(t, &e), refStructured(t, &e)

		if got := e.Data(); !bytes.Equal(got, wantData) {
			t.Fatalf("Data\n got %s\nwant %s", got, wantData)
		}
		if got := e.StructuredJSON(); !bytes.Equal(got, wantStruct) {
			t.Fatalf("StructuredJSON\n got %s\nwant %s", got, wantStruct)
		}
		// Appending keeps what dst holds, and a reused buffer holding an
		// earlier, longer encoding does not show through.
		buf := bytes.Repeat([]byte{'#'}, 600)
		if got := e.AppendData(buf[:3]); !bytes.Equal(got[:3], []byte("###")) || !bytes.Equal(got[3:], wantData) {
			t.Fatalf("AppendData\n got %s\nwant ###%s", got, wantData)
		}
		if got := e.AppendStructured(buf[:0]); !bytes.Equal(got, wantStruct) {
			t.Fatalf("AppendStructured\n got %s\nwant %s", got, wantStruct)
		}
		// Escaping only lengthens: the size estimates are lower bounds,
		// exact when nothing is escaped.
		if n := e.dataLen(); n > len(wantData) {
			t.Fatalf("dataLen %d > %d", n, len(wantData))
		}
		if n := e.structuredLen(); n > len(wantStruct) {
			t.Fatalf("structuredLen %d > %d", n, len(wantStruct))
		}
	})
}

func TestWireFormatSizes(t *testing.T) {
	for _, e := range []Event{
		{ID: "1", Source: "urn:x", SessionID: "s", QoSStatus: StatusAvailable},
		{ID: "1", Source: "urn:x", Time: "2024-06-01T12:00:00Z", SessionID: "s", QoSStatus: StatusUnavailable,
			StatusInfo: InfoDeleteRequested, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "k=v"},
	} {
		if d := e.Data(); len(d) != cap(d) || len(d) != e.dataLen() {
			t.Errorf("Data of a plain event: len %d cap %d, dataLen %d", len(d), cap(d), e.dataLen())
		}
		if s := e.StructuredJSON(); len(s) != cap(s) || len(s) != e.structuredLen() {
			t.Errorf("StructuredJSON of a plain event: len %d cap %d, structuredLen %d", len(s), cap(s), e.structuredLen())
		}
	}
}

func TestWireFormatAllocations(t *testing.T) {
	plain := Event{ID: "1", Source: "https://qod.example.com/x", Time: "2024-06-01T12:00:00Z",
		SessionID: "3fa85f64-5717-4562-b3fc-2c963f66afa6", QoSStatus: StatusAvailable, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	escaped := plain
	escaped.Source, escaped.SessionID = "urn:x?a=<1>&b=\u2028\xff", "s\n\"1\""
	buf := make([]byte, 0, 1024)
	for name, e := range map[string]*Event{"plain": &plain, "escaped": &escaped} {
		if n := testing.AllocsPerRun(100, func() { buf = e.AppendData(buf[:0]) }); n != 0 {
			t.Errorf("%s: AppendData into a buffer with room: %v allocations", name, n)
		}
		if n := testing.AllocsPerRun(100, func() { buf = e.AppendStructured(buf[:0]) }); n != 0 {
			t.Errorf("%s: AppendStructured into a buffer with room: %v allocations", name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { buf = plain.Data() }); n != 1 {
		t.Errorf("Data: %v allocations, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = plain.StructuredJSON() }); n != 1 {
		t.Errorf("StructuredJSON: %v allocations, want 1", n)
	}
}
