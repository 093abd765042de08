package ingress

import (
	"net/http"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
)

// TestStructuredWithCEHeaders: a structured request (or a batch) that also
// carries ce-* headers is read as structured, by its Content-Type, as the
// CloudEvents HTTP binding reads it: answered 204 with the body's event,
// not 415.
func TestStructuredWithCEHeaders(t *testing.T) {
	body := `{"specversion":"1.0","id":"body-id","source":"https://platform.example/qod","type":"` + bridge.EventType +
		`","data":{"sessionId":"s-1","qosStatus":"AVAILABLE"}}`
	ce := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "header-id", "Ce-Source": "urn:h", "Ce-Type": bridge.EventType}
	for _, c := range []struct{ ct, body string }{
		{"application/cloudevents+json", body},
		{"application/cloudevents+json; charset=utf-8", body},
		{"APPLICATION/CLOUDEVENTS+JSON", body},
		{"application/cloudevents-batch+json", "[" + body + "]"},
	} {
		pub := &recorder{}
		w := req{ct: c.ct, body: c.body, header: ce}.do(t, newHandler(t, pub, nil))
		if w.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d: %s", c.ct, w.Code, w.Body)
		}
		if evs := pub.events(); len(evs) != 1 || evs[0].ID != "body-id" {
			t.Fatalf("%s: published %+v, want the body's event", c.ct, evs)
		}
	}
}
