package natssink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// The current status of every session is the last message on each session's
// subject: an ordered consumer with DeliverLastPerSubject.
func Example_currentStatus() {
	dir, _ := os.MkdirTemp("", "nats-example")
	defer os.RemoveAll(dir)
	srv, err := natssink.StartEmbedded(natssink.EmbeddedOptions{Address: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		panic(err)
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	ctx := context.Background()
	sink, err := natssink.Open(ctx, natssink.ConnOptions{URL: srv.ClientURL()}, natssink.Options{})
	if err != nil {
		panic(err)
	}
	defer sink.Close()

	for i, st := range []struct {
		session string
		status  bridge.QoSStatus
	}{
		{"s-1", bridge.StatusRequested}, {"s-2", bridge.StatusRequested},
		{"s-1", bridge.StatusAvailable}, {"s-2", bridge.StatusUnavailable},
	} {
		ev := bridge.Event{ID: fmt.Sprint(i), Source: "urn:example", SessionID: st.session, QoSStatus: st.status}
		if err := sink.Publish(ctx, ev); err != nil {
			panic(err)
		}
	}

	js, _ := jetstream.New(sink.Conn())
	cons, err := js.OrderedConsumer(ctx, "QOD_STATUS", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"qod.status.>"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		panic(err)
	}
	batch, err := cons.Fetch(2)
	if err != nil {
		panic(err)
	}
	for m := range batch.Messages() {
		var d bridge.StatusData // binary mode: the body is the event's data
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			panic(err)
		}
		fmt.Println(m.Subject(), d.SessionID, d.QoSStatus)
	}
	// Output:
	// qod.status.s-1 s-1 AVAILABLE
	// qod.status.s-2 s-2 UNAVAILABLE
}
