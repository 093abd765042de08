package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestSessionTokenRoundTrip(t *testing.T) {
	cases := []struct{ id, tok string }{
		{"abc-DEF_123", "abc-DEF_123"},
		{"a.b", "a%2Eb"},
		{"3fa85f64-5717-4562-b3fc-2c963f66afa6", "3fa85f64-5717-4562-b3fc-2c963f66afa6"},
		{"x y*>", "x%20y%2A%3E"},
		{"100%", "100%25"},
		{"é", "%C3%A9"},
		{"", ""},
	}
	for _, c := range cases {
		got := SessionToken(c.id)
		if got != c.tok {
			t.Errorf("SessionToken(%q) = %q, want %q", c.id, got, c.tok)
		}
		back, err := ParseToken(got)
		if err != nil || back != c.id {
			t.Errorf("ParseToken(%q) = %q, %v; want %q", got, back, err, c.id)
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	for _, tok := range []string{"a.b", "a%2", "a%2e", "a%41", "a*", "%"} {
		if _, err := ParseToken(tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseToken(%q) error = %v, want ErrBadToken", tok, err)
		}
	}
}

func FuzzSessionToken(f *testing.F) {
	for _, s := range []string{"", "a.b", "x y", "%%", "\x00\xff", "qod.status.>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		tok := SessionToken(id)
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; !tokenSafe(c) && c != '%' {
				t.Fatalf("token %q has byte %q", tok, c)
			}
		}
		back, err := ParseToken(tok)
		if err != nil || back != id {
			t.Fatalf("round trip %q -> %q -> %q, %v", id, tok, back, err)
		}
	})
}

func TestDedupKey(t *testing.T) {
	a := Event{Source: "a", ID: "bc"}
	b := Event{Source: "ab", ID: "c"}
	if a.DedupKey() == b.DedupKey() {
		t.Fatal("DedupKey does not separate source from id")
	}
	if a.DedupKey() != (&Event{Source: "a", ID: "bc", SessionID: "other"}).DedupKey() {
		t.Fatal("DedupKey depends on more than source and id")
	}
	if len(a.DedupKey()) != 32 {
		t.Fatalf("DedupKey length %d", len(a.DedupKey()))
	}
	// The key is stored in streams as Nats-Msg-Id: a new version must
	// compute the same one, or a resend during a rolling upgrade would be
	// stored twice. These were computed by the first release.
	for _, c := range []struct{ source, id, want string }{
		{"a", "bc", "fac4d75282e3de358e8a42f2e1166bfe"},
		{"https://network-as-code.example/qod/v0/sessions/1234", "83a0d986-0866-4f38-b8c0-fc65bfcda452", "dd251a3a01416fb66118d63c6bef9c8c"},
		{strings.Repeat("s", 300), strings.Repeat("i", 300), ""},
	} {
		want := c.want
		if want == "" { // longer than the stack buffer: compare with the definition
			sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%s%s", len(c.source), c.source, c.id)))
			want = hex.EncodeToString(sum[:16])
		}
		if got := (&Event{Source: c.source, ID: c.id}).DedupKey(); got != want {
			t.Errorf("DedupKey(%.20q, %.20q) = %s, want %s", c.source, c.id, got, want)
		}
	}
}

func TestEventEncodings(t *testing.T) {
	e := Event{ID: "1", Source: "https://nac.example/qod", Time: "2024-04-30T13:05:29.189Z",
		SessionID: "s-1", QoSStatus: StatusUnavailable, StatusInfo: InfoDeleteRequested, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	if got, want := string(e.Data()), `{"sessionId":"s-1","qosStatus":"UNAVAILABLE","statusInfo":"DELETE_REQUESTED"}`; got != want {
		t.Errorf("Data = %s, want %s", got, want)
	}
	e2 := Event{ID: "1", Source: "s", SessionID: "s-1", QoSStatus: StatusAvailable}
	if got, want := string(e2.Data()), `{"sessionId":"s-1","qosStatus":"AVAILABLE"}`; got != want {
		t.Errorf("Data without statusInfo = %s, want %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal(e.StructuredJSON(), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"specversion": "1.0", "type": EventType, "subject": "s-1", "partitionkey": "s-1",
		"datacontenttype": "application/json", "time": e.Time, "traceparent": e.TraceParent} {
		if m[k] != want {
			t.Errorf("structured %s = %v, want %q", k, m[k], want)
		}
	}
	if d, _ := m["data"].(map[string]any); d["qosStatus"] != "UNAVAILABLE" {
		t.Errorf("structured data = %v", m["data"])
	}
	for _, a := range e2.Attributes() {
		if a.Name == "time" || a.Name == "traceparent" || a.Name == "tracestate" {
			t.Errorf("absent attribute %s emitted", a.Name)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	for _, s := range []string{"plain", "with space", `quo"te`, "50%", "é\n"} {
		enc := HeaderValue(s)
		if strings.ContainsAny(enc, " \"\n") {
			t.Errorf("HeaderValue(%q) = %q keeps a byte that must be encoded", s, enc)
		}
		dec, err := url.PathUnescape(enc)
		if err != nil || dec != s {
			t.Errorf("HeaderValue(%q) = %q does not decode back: %q, %v", s, enc, dec, err)
		}
	}
	if HeaderValue("plain") != "plain" {
		t.Error("plain value changed")
	}
}
