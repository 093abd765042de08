package natssink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

// The current status of every session is the session view, the key-value
// bucket QOD_SESSIONS the bridge updates after each publish: a watch
// delivers every session's entry. A late retry (s-1's AVAILABLE of 10:01,
// stored after its end at 10:05) is in the stream but not in the view.
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
	js, _ := jetstream.New(sink.Conn())
	view, err := natsview.Open(ctx, js, natsview.Options{})
	if err != nil {
		panic(err)
	}

	for i, st := range []struct {
		session, time string
		status        bridge.QoSStatus
		info          bridge.StatusInfo
	}{
		{"s-1", "2026-12-03T10:00:00Z", bridge.StatusAvailable, ""},
		{"s-2", "2026-12-03T10:00:00Z", bridge.StatusRequested, ""},
		{"s-1", "2026-12-03T10:05:00Z", bridge.StatusUnavailable, bridge.InfoDeleteRequested},
		{"s-1", "2026-12-03T10:01:00Z", bridge.StatusAvailable, ""}, // a late retry
	} {
		ev := bridge.Event{ID: fmt.Sprint(i), Source: "urn:example", Time: st.time, SessionID: st.session, QoSStatus: st.status, StatusInfo: st.info}
		if err := sink.Publish(ctx, ev); err != nil { // the history first,
			panic(err)
		}
		if err := view.UpdateView(ctx, time.Now(), ev); err != nil { // then the view
			panic(err)
		}
	}

	kv, err := js.KeyValue(ctx, "QOD_SESSIONS")
	if err != nil {
		panic(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		panic(err)
	}
	defer w.Stop()
	for e := range w.Updates() {
		if e == nil { // every session delivered; changes would follow
			break
		}
		var v bridge.ViewEntry
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			panic(err)
		}
		fmt.Printf("%s %s %q\n", v.SessionID, v.QoSStatus, v.StatusInfo)
	}
	// Unordered output:
	// s-1 UNAVAILABLE "DELETE_REQUESTED"
	// s-2 REQUESTED ""
}
