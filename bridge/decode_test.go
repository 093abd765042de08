package bridge_test

import (
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
)

// TestDecodeRoundTrip: what the sinks write, in either binding and mode,
// decodes to the same event.
func TestDecodeRoundTrip(t *testing.T) {
	want := bridge.Event{ID: "id 1 \"%\"", Source: "https://p.example/qod", Time: "2026-12-03T10:05:00Z", SessionID: "s.1",
		QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoDeleteRequested, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	for _, b := range []*bridge.Binding{bridge.NATSBinding, bridge.KafkaBinding} {
		h := map[string]string{b.ContentTypeHeader(): "application/json"}
		for _, a := range want.Attributes() {
			h[b.Header(a.Name)] = b.Value(a.Value)
		}
		got, err := b.Decode(func(k string) string { return h[k] }, want.Data())
		if err != nil || got != want {
			t.Errorf("%s binary: %+v, %v", b.Prefix(), got, err)
		}
		s := map[string]string{b.ContentTypeHeader(): bridge.StructuredContentType}
		got, err = b.Decode(func(k string) string { return s[k] }, want.StructuredJSON())
		if err != nil || got != want {
			t.Errorf("%s structured: %+v, %v", b.Prefix(), got, err)
		}
	}
	if _, err := bridge.NATSBinding.Decode(func(string) string { return "" }, []byte(`{}`)); err == nil {
		t.Error("an empty message decoded")
	}
}
