package kafkacmd

import (
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/qodbridge/qodbridge/bridge/command"
)

// FuzzRecord: whatever a command record carries (key, a header, value),
// parsing it never panics, and an invalid one's dead letter and result stay
// within their bounds, so that publishing them cannot fail because of it.
func FuzzRecord(f *testing.F) {
	o, err := (&Options{}).withDefaults()
	if err != nil {
		f.Fatal(err)
	}
	in := &Intake{o: o}
	f.Add([]byte("k"), command.HeaderAction, "get", []byte(`{"sessionId":"s"}`))
	f.Add([]byte(nil), command.HeaderAction, "\xff", []byte(`{}`))
	f.Add([]byte(nil), "__TypeId__", "x", []byte(`not json`))
	f.Fuzz(func(t *testing.T, key []byte, hname, hvalue string, value []byte) {
		rec := record{partition: 1, offset: 7, key: key, value: value, headers: []kafka.Header{{Key: hname, Value: []byte(hvalue)}}}
		cmd, perr := parse(rec)
		if perr == nil {
			return
		}
		out := command.InvalidOutcome(cmd, perr)
		msgs := in.messages(rec, out, false)
		if len(msgs) != 2 {
			t.Fatalf("%d messages for an invalid command", len(msgs))
		}
		dl, res := msgs[0], msgs[1]
		if len(dl.Value) > o.DeadLetterBody || len(dl.Key) > command.MaxDeadLetterKey {
			t.Fatalf("dead letter value %d bytes, key %d bytes", len(dl.Value), len(dl.Key))
		}
		hb := 0
		for _, h := range dl.Headers {
			hb += len(h.Key) + len(h.Value)
		}
		if hb > command.MaxDeadLetterHeaders+2*command.MaxReasonLen+1024 {
			t.Fatalf("dead letter headers of %d bytes", hb)
		}
		if len(res.Value) > 4<<10 || len(res.Key) > 1024 {
			t.Fatalf("result value %d bytes, key %d bytes", len(res.Value), len(res.Key))
		}
	})
}
