package sinktest

import (
	"errors"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
)

func TestPercentDecode(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a%20b", "a b"},
		{"%22q%22", `"q"`},
		{"100%25", "100%"},
		{"%C3%BC", "ü"},
		{"%c3%bc", "ü"},
	} {
		got, err := PercentDecode(c.in)
		if err != nil || got != c.want {
			t.Errorf("PercentDecode(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"%", "%2", "a%zz", "%G0"} {
		if _, err := PercentDecode(bad); !errors.Is(err, ErrDecode) {
			t.Errorf("PercentDecode(%q) error = %v, want ErrDecode", bad, err)
		}
	}
}

func FuzzHeaderValueRoundTrip(f *testing.F) {
	for _, s := range []string{"", "a b", `"%"`, "ü✓", "\x00\xff", "rojo=1,congo=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := bridge.HeaderValue(s)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c <= ' ' || c >= 0x7f || c == '"' {
				t.Fatalf("HeaderValue(%q) = %q holds byte %q", s, enc, c)
			}
		}
		got, err := PercentDecode(enc)
		if err != nil || got != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, enc, got, err)
		}
	})
}

func TestCEAttributes(t *testing.T) {
	h := map[string]string{
		"ce-id":           "a%20b",
		"CE_Source":       "urn:x",
		"Content-Type":    "application/json",
		"Nats-Msg-Id":     "abc",
		"cex":             "not an attribute",
		"ce-specversion":  "1.0",
		"ce_partitionkey": "s",
		"ce_subject":      "a%20b", // Kafka binding: verbatim
	}
	got, err := CEAttributes(h)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"id": "a b", "source": "urn:x", "specversion": "1.0", "partitionkey": "s", "subject": "a%20b"}
	if len(got) != len(want) {
		t.Fatalf("CEAttributes = %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attr %s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := CEAttributes(map[string]string{"ce-id": "a", "ce_id": "b"}); !errors.Is(err, ErrDecode) {
		t.Errorf("doubled attribute: error = %v, want ErrDecode", err)
	}
	if v, ok := Header(h, "content-type"); !ok || v != "application/json" {
		t.Errorf("Header(content-type) = %q, %v", v, ok)
	}
}

func TestDecodeBothModes(t *testing.T) {
	ev := bridge.Event{
		ID: "i d", Source: "urn:ü", Time: "2024-01-01T00:00:00Z", SessionID: "s.1",
		QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoDeleteRequested,
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "a=b",
	}
	nats := map[string]string{"Content-Type": ContentTypeBinary}
	kafka := map[string]string{"content-type": ContentTypeBinary}
	for _, a := range ev.Attributes() {
		nats["ce-"+a.Name] = bridge.HeaderValue(a.Value)
		kafka["ce_"+a.Name] = a.Value
	}
	for name, h := range map[string]map[string]string{"ce-": nats, "ce_": kafka} {
		got, err := Decode(h, ev.Data())
		if err != nil || got != ev {
			t.Errorf("binary Decode (%s) = %+v, %v; want %+v", name, got, err, ev)
		}
	}
	got, err := Decode(map[string]string{"Content-Type": ContentTypeStructured}, ev.StructuredJSON())
	if err != nil || got != ev {
		t.Errorf("structured Decode = %+v, %v; want %+v", got, err, ev)
	}
	if _, err := Decode(map[string]string{}, ev.Data()); !errors.Is(err, ErrDecode) {
		t.Errorf("Decode without attributes: error = %v, want ErrDecode", err)
	}
	if _, err := DecodeStructured([]byte(`{"specversion":1}`)); !errors.Is(err, ErrDecode) {
		t.Errorf("DecodeStructured(non-string attribute): error = %v, want ErrDecode", err)
	}
}
