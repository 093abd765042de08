package normalize

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fastSeeds are bodies the fast path must take, and near misses it must
// leave to encoding/json.
var fastSeeds = []string{
	`{"specversion":"1.0","id":"1","source":"https://example.com/qod","type":"org.camaraproject.quality-on-demand.v1.qos-status-changed","time":"2024-04-30T13:05:29.189Z","data":{"sessionId":"s1","qosStatus":"AVAILABLE"}}`,
	` { "specversion" : "1.0" , "data" : { "sessionId" : "s1" , "qosStatus" : "UNAVAILABLE" , "statusInfo" : "DELETE_REQUESTED" } } `,
	`{}`, `{"data":{}}`, `{"id":"é"}`, `{"tracestate":"a=b","traceparent":"00-x"}`,
	`{"ID":"1"}`, `{"id":"1","id":"2"}`, `{"id":"a\"b"}`, `{"id":null}`, `{"id":1}`, `{"data":null}`,
	`{"data":{"sessionId":"a","sessionId":"b"}}`, `{"data":{"SessionId":"a"}}`, `{"event":{}}`,
	`{"id":"1"} x`, `{"id":"1",}`, `{"id":"1"`, `[]`, `"x"`, "{\"id\":\"\xff\"}", "{\"id\":\"a\tb\"}",
	`{"data":{"sessionId":"a"},"data":{"qosStatus":"AVAILABLE"}}`, `{"extension":"x"}`,
}

// FuzzFastPath checks that the fast path decodes whatever it accepts
// exactly as encoding/json does, and that plainURI accepts only what
// url.Parse accepts.
func FuzzFastPath(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob("../ingress/testdata/*.json")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast wireEvent
		if fastEvent(body, &fast) {
			var slow wireEvent
			if err := json.Unmarshal(body, &slow); err != nil {
				t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", body, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q decodes differently:\nfast %s\nslow %s", body, dump(fast), dump(slow))
			}
		}
		if s := string(body); plainURI(s) {
			if _, err := url.Parse(s); err != nil {
				t.Fatalf("plainURI accepted %q, url.Parse refuses it: %v", s, err)
			}
		}
	})
}

func dump(w wireEvent) string {
	b, _ := json.Marshal(w)
	return string(b)
}

// TestFastPathTakesTheCommonForm guards the point of the fast path: the
// golden notifications of the common form do not fall back.
func TestFastPathTakesTheCommonForm(t *testing.T) {
	for _, s := range fastSeeds[:6] {
		var w wireEvent
		if !fastEvent([]byte(s), &w) {
			t.Errorf("fast path refused %s", s)
		}
	}
	for _, s := range fastSeeds[6:] {
		var w wireEvent
		if fastEvent([]byte(s), &w) {
			t.Errorf("fast path took %s; encoding/json must decide it", s)
		}
	}
	for _, u := range []string{"https://example.com/qod", "http://127.0.0.1:8080/a/b?c=d", "https://network-as-code.example/qod/v0/sessions/1234"} {
		if !plainURI(u) {
			t.Errorf("plainURI(%q) = false", u)
		}
	}
	for _, u := range []string{"urn:x", "/relative", "https://[::1]/", "http://h:x/", "https://h/%zz", "http://a b/", "https://"} {
		if plainURI(u) {
			t.Errorf("plainURI(%q) = true; url.Parse must decide it", u)
		}
	}
}
