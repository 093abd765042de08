package natscmd

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command/commandtest"
)

// fakeView is a StatusReader over a map; fail, when set, fails every read.
type fakeView struct {
	m    map[string]bridge.ViewEntry
	fail error
}

func (v fakeView) Get(_ context.Context, id string) (bridge.ViewEntry, bool, error) {
	if v.fail != nil {
		return bridge.ViewEntry{}, false, v.fail
	}
	e, ok := v.m[id]
	return e, ok, nil
}

// TestMicroStatus: qod.api.status answers one or many sessionIds from the
// view, in the order asked, unknown ones as not found; bad requests get a
// 400, an unreadable view a 503.
func TestMicroStatus(t *testing.T) {
	f := newFixture(t)
	ended := bridge.ViewEntry{SessionID: "s.1", QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoDeleteRequested,
		Time: "2026-12-03T10:05:00Z", ID: "d", Source: "p", Final: true, ReceivedAt: time.Unix(1700000000, 0).UTC()}
	view := &fakeView{m: map[string]bridge.ViewEntry{"s.1": ended}}
	in, err := New(context.Background(), f.nc, f.engine(t, nil), Options{Memory: true, Micro: true, Status: view})
	if err != nil {
		t.Fatal(err)
	}
	commandtest.Start(t, in.Run)
	select {
	case <-in.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready not closed within 10s")
	}
	msg, err := f.nc.Request("qod.api.status", []byte(`{"sessionIds":["nope","s.1"]}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r StatusReply
	if err := json.Unmarshal(msg.Data, &r); err != nil || len(r.Sessions) != 2 {
		t.Fatalf("reply %s (%v)", msg.Data, err)
	}
	if r.Sessions[0].Found || r.Sessions[0].Entry.SessionID != "nope" || !r.Sessions[1].Found || r.Sessions[1].Entry != ended {
		t.Fatalf("reply %s", msg.Data)
	}
	if !strings.Contains(string(msg.Data), `{"sessionId":"nope","found":false}`) {
		t.Fatalf("a not-found item is %s", msg.Data)
	}
	for body, code := range map[string]string{`{}`: "400", `{`: "400", `{"sessionIds":[""]}`: "400",
		`{"sessionIds":[` + strings.Repeat(`"x",`, MaxStatusIDs) + `"x"]}`: "400"} {
		msg, err := f.nc.Request("qod.api.status", []byte(body), 10*time.Second)
		if err != nil || msg.Header.Get("Nats-Service-Error-Code") != code {
			t.Errorf("%.40s: %v %v", body, msg.Header, err)
		}
	}
	view.fail = errors.New("kv down")
	msg, err = f.nc.Request("qod.api.status", []byte(`{"sessionId":"s.1"}`), 10*time.Second)
	if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "503" {
		t.Errorf("view down: %v %v", msg.Header, err)
	}
}
