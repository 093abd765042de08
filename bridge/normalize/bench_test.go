package normalize

import (
	"net/http"
	"testing"

	"github.com/qodbridge/qodbridge/bridge"
)

// BenchmarkParse is the common notification alone, without the handler
// around it: what the text check, the caps and the trace validation cost.
func BenchmarkParse(b *testing.B) {
	body := []byte(`{"specversion":"1.0","id":"83a0d986-0866-4f38-b8c0-fc65bfcda452","source":"https://network-as-code.example/qod/v0/sessions/1234","type":"` + bridge.EventTypeV0 +
		`","datacontenttype":"application/json","time":"2024-04-30T13:05:29.189Z","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{"sessionId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","qosStatus":"UNAVAILABLE","statusInfo":"DELETE_REQUESTED"}}`)
	h := http.Header{"Content-Type": {"application/cloudevents+json"}}
	var o Options
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := o.Parse(h, body); err != nil {
			b.Fatal(err)
		}
	}
}
