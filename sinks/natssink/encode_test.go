package natssink

import (
	"bytes"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
)

func FuzzEncodersMatchBridge(f *testing.F) {
	f.Add("id-1", "https://qod.example.com/x", "2024-06-01T12:00:00Z", "3fa85f64-5717-4562-b3fc-2c963f66afa6", "AVAILABLE", "", "00-4bf9-01", "")
	f.Add("a b", "urn:x?a=1&b=<2>", "", "s.1", "UNAVAILABLE", "DURATION_EXPIRED", "", "k=v")
	f.Add("\"q\"\\", "ü\u2028\xff", "\x00\t", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, id, src, tm, sess, st, info, tp, ts string) {
		ev := bridge.Event{ID: id, Source: src, Time: tm, SessionID: sess, QoSStatus: bridge.QoSStatus(st),
			StatusInfo: bridge.StatusInfo(info), TraceParent: tp, TraceState: ts}
		// A reused buffer holding an earlier, longer encoding must not
		// show through.
		buf := bytes.Repeat([]byte{'#'}, 600)
		if got, want := dataJSON(buf, &ev), ev.Data(); !bytes.Equal(got, want) {
			t.Fatalf("dataJSON\n got %s\nwant %s", got, want)
		}
		if got, want := structuredJSON(buf, &ev), ev.StructuredJSON(); !bytes.Equal(got, want) {
			t.Fatalf("structuredJSON\n got %s\nwant %s", got, want)
		}
	})
}

func TestPlainEventUsesFastPath(t *testing.T) {
	ev := bridge.Event{ID: "1", Source: "urn:x", SessionID: "s", QoSStatus: bridge.StatusAvailable}
	if !plainEvent(&ev) {
		t.Fatal("a plain event is not taken as plain")
	}
	ev.Source = "urn:x?a=1&b=2"
	if plainEvent(&ev) {
		t.Fatal("'&' is HTML-escaped by encoding/json: not plain")
	}
}
