package bridge_test

import (
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
)

func TestBindingHeaders(t *testing.T) {
	full := bridge.Event{ID: "1", Source: "urn:x", Time: "2024-06-01T12:00:00Z", SessionID: "s 1",
		QoSStatus: bridge.StatusAvailable, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "k=v"}
	out := command.Outcome{SessionID: "s"}
	out.Result.RequestID = "r"
	attrs := append(full.Attributes(), out.ResultAttributes("")...)
	for _, c := range []struct {
		b          *bridge.Binding
		prefix, ct string
		encode     func(string) string
	}{
		{bridge.NATSBinding, "ce-", "Content-Type", bridge.HeaderValue},
		{bridge.KafkaBinding, "ce_", "content-type", func(v string) string { return v }},
	} {
		if c.b.Prefix() != c.prefix || c.b.ContentTypeHeader() != c.ct {
			t.Errorf("%s: prefix %q, content-type header %q", c.prefix, c.b.Prefix(), c.b.ContentTypeHeader())
		}
		for _, a := range attrs {
			if got, want := c.b.Header(a.Name), c.prefix+a.Name; got != want {
				t.Errorf("Header(%q) = %q, want %q", a.Name, got, want)
			}
			// The attributes of events and results have their names
			// precomputed: naming their headers allocates nothing.
			if n := testing.AllocsPerRun(10, func() { _ = c.b.Header(a.Name) }); n != 0 {
				t.Errorf("%s: Header(%q) allocates %v times", c.prefix, a.Name, n)
			}
			if got, want := c.b.Value(a.Value), c.encode(a.Value); got != want {
				t.Errorf("%s: Value(%q) = %q, want %q", c.prefix, a.Value, got, want)
			}
		}
		if got := c.b.Header("x-other"); got != c.prefix+"x-other" {
			t.Errorf("Header of an unknown attribute = %q", got)
		}
	}
}
