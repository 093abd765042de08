package normalize_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/normalize"
)

// TestContentTypeDecidesTheMode: as the CloudEvents HTTP binding reads a
// request, a Content-Type of application/cloudevents… makes it structured
// (or a batch) whatever ce-* headers it carries; ce-* headers make it
// binary only under another Content-Type.
func TestContentTypeDecidesTheMode(t *testing.T) {
	structured := `{"specversion":"1.0","id":"s-1","source":"https://platform.example/qod","type":"` + bridge.EventType +
		`","data":{"sessionId":"sess-1","qosStatus":"AVAILABLE"}}`
	binaryData := `{"sessionId":"sess-2","qosStatus":"UNAVAILABLE","statusInfo":"DURATION_EXPIRED"}`
	// ce-* headers that disagree with the structured body: a reader that
	// took them would publish another event, or refuse the request.
	ce := map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "header-id", "Ce-Source": "urn:from-headers",
		"Ce-Type": bridge.EventType, "Ce-Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	cases := []struct {
		name, ct, body string
		headers        bool
		shape          normalize.Shape
		wantID         string
		wantStatus     int // 0: accepted
	}{
		{"structured, no ce headers", "application/cloudevents+json", structured, false, normalize.ShapeStructured, "s-1", 0},
		{"structured with ce headers", "application/cloudevents+json", structured, true, normalize.ShapeStructured, "s-1", 0},
		{"structured with parameters and ce headers", "Application/CloudEvents+JSON; charset=utf-8", structured, true, normalize.ShapeStructured, "s-1", 0},
		{"batch with ce headers", "application/cloudevents-batch+json", "[" + structured + "]", true, normalize.ShapeBatch, "s-1", 0},
		{"binary", "application/json", binaryData, true, normalize.ShapeBinary, "header-id", 0},
		{"binary without content type", "", binaryData, true, normalize.ShapeBinary, "header-id", 0},
		// A structured format qodbridge does not read stays 415, ce-* or not.
		{"structured xml with ce headers", "application/cloudevents+xml", "<event/>", true, "", "", http.StatusUnsupportedMediaType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.ct != "" {
				h.Set("Content-Type", c.ct)
			}
			if c.headers {
				for k, v := range ce {
					h.Set(k, v)
				}
			}
			evs, shape, err := normalize.Options{}.Parse(h, []byte(c.body))
			if c.wantStatus != 0 {
				var ne *normalize.Error
				if !errors.As(err, &ne) || ne.Status != c.wantStatus {
					t.Fatalf("err %v, want status %d", err, c.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if shape != c.shape || len(evs) != 1 || evs[0].ID != c.wantID {
				t.Fatalf("shape %q, events %+v; want shape %q and id %q", shape, evs, c.shape, c.wantID)
			}
			if c.shape != normalize.ShapeBinary && (evs[0].Source == "urn:from-headers" || evs[0].TraceParent != "") {
				t.Fatalf("a structured event took attributes from ce-* headers: %+v", evs[0])
			}
		})
	}
}
