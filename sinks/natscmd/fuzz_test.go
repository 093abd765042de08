package natscmd

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
	"github.com/qodbridge/qodbridge/sinks/sinktest"
)

// FuzzIntake drives the command intake end to end: whatever subject token,
// header and body a message on qod.commands.> carries, the running intake
// (real JetStream, real engine, the simulator as the API) gives it exactly
// one final outcome (result, dead letter or termination), never
// "unfinished", and goes on to the next. A panic, a stall or a redelivery
// loop fails it.
func FuzzIntake(f *testing.F) {
	nc, js := natstest.Server(f)
	api := commandtest.NewAPI(f, qodsim.Options{})
	var final, unfinished atomic.Int64
	in, err := New(context.Background(), nc, api.Engine(f, nil), Options{Memory: true, MaxDeliver: 2,
		Redelivery: []time.Duration{time.Millisecond},
		OnOutcome: func(_ command.Action, o string) {
			if o == command.OutcomeUnfinished {
				unfinished.Add(1)
				return
			}
			final.Add(1)
		}})
	if err != nil {
		f.Fatal(err)
	}
	commandtest.Start(f, in.Run)

	f.Add("create", "", "", []byte(`{"requestId":"f-1","session":{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60}}`))
	f.Add("get", "X-Team", "a", []byte(`{"sessionId":"nope"}`))
	f.Add("extend", "", "", []byte(`{"sessionId":"s","requestedAdditionalDuration":60}`))
	f.Add("\xff\xfe", "Nats-Expected-Stream", "QOD_COMMANDS", []byte(`{}`))
	f.Add("list", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", []byte(`{"device":{"phoneNumber":"+1"}}`))
	f.Add("delete", "", "", []byte(`{"requestId":"`+strings.Repeat("x", 300)+`","sessionId":"s"}`))
	f.Add("get.more", "", "", []byte("not json"))
	f.Fuzz(func(t *testing.T, token, hname, hvalue string, body []byte) {
		m := nats.NewMsg("qod.commands." + token)
		m.Data = body
		if hname != "" && validHeader(hname, hvalue) {
			m.Header.Set(hname, hvalue)
		}
		before := final.Load()
		ack, err := js.PublishMsg(context.Background(), m)
		if err != nil || ack.Duplicate {
			return // not a message the stream holds (bad subject, refused expectation, duplicate id)
		}
		if !sinktest.Poll(20*time.Second, time.Millisecond, func() bool { return final.Load() > before }) {
			t.Fatalf("no outcome within 20s for subject %q header %q=%q body %q", m.Subject, hname, hvalue, body)
		}
		if n := final.Load(); n != before+1 {
			t.Fatalf("%d final outcomes for one message", n-before)
		}
	})
	if n := unfinished.Load(); n != 0 {
		f.Logf("%d deliveries left unfinished and redelivered", n)
	}
}

// validHeader reports whether a NATS client can send name: value as a
// header at all (the fuzzer would otherwise test nats.go's encoder).
func validHeader(name, value string) bool {
	if strings.ContainsAny(name, ":\r\n \t") || strings.ContainsAny(value, "\r\n") {
		return false
	}
	for _, c := range []byte(name + value) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
