package bridge

import "testing"

var benchEvent = Event{ID: "4a1e3c1e-9b7f-4d2e-8f6a-0c1d2e3f4a5b", Source: "https://qod.example.com/qod/v1",
	Time: "2024-06-01T12:00:00.123Z", SessionID: "3fa85f64-5717-4562-b3fc-2c963f66afa6",
	QoSStatus: StatusUnavailable, StatusInfo: InfoDurationExpired,
	TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

var benchSink []byte

func BenchmarkData(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchSink = benchEvent.Data()
	}
}

func BenchmarkStructuredJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchSink = benchEvent.StructuredJSON()
	}
}

func BenchmarkAppendData(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = benchEvent.AppendData(buf[:0])
	}
}

func BenchmarkAppendStructured(b *testing.B) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = benchEvent.AppendStructured(buf[:0])
	}
}
