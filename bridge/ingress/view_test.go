package ingress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// viewRec is a bridge.ViewUpdater folding events by the rule, and
// checking that each was published before; fail, when set, fails it.
type viewRec struct {
	pub  *recorder
	mu   sync.Mutex
	view map[string]bridge.ViewEntry
	fail error
	errs []error
}

func (v *viewRec) UpdateView(_ context.Context, received time.Time, evs ...bridge.Event) error {
	published := map[string]bool{}
	for _, e := range v.pub.events() {
		published[e.DedupKey()] = true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range evs {
		if !published[evs[i].DedupKey()] {
			v.errs = append(v.errs, fmt.Errorf("event %s reached the view before it was published", evs[i].ID))
		}
		v.view[evs[i].SessionID] = bridge.MaxView(v.view[evs[i].SessionID], bridge.EntryOf(&evs[i], received))
	}
	return v.fail
}

func notification(id, tm, status, info string) string {
	si := "null"
	if info != "" {
		si = fmt.Sprintf("%q", info)
	}
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"https://p.example","type":%q,"time":%q,"data":{"sessionId":"s-1","qosStatus":%q,"statusInfo":%s}}`,
		id, bridge.EventType, tm, status, si)
}

// TestViewAfterPublish: the out-of-order notifications are each
// answered 204 and the view ends UNAVAILABLE; the view sees an event only
// after it was published, never one whose publish failed, and its failure
// leaves the answer 204.
func TestViewAfterPublish(t *testing.T) {
	pub := &recorder{}
	view := &viewRec{pub: pub, view: map[string]bridge.ViewEntry{}}
	var outs []Outcome
	h := newHandler(t, pub, func(o *Options) {
		o.View = view
		o.Observe = func(out Outcome) { outs = append(outs, out) }
	})
	for _, body := range []string{
		notification("a", "2026-12-03T10:00:00Z", "AVAILABLE", ""),
		notification("d", "2026-12-03T10:05:00Z", "UNAVAILABLE", "DELETE_REQUESTED"),
		notification("a2", "2026-12-03T10:01:00Z", "AVAILABLE", ""),
	} {
		if w := (req{ct: "application/cloudevents+json", body: body}).do(t, h); w.Code != http.StatusNoContent {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	if v := view.view["s-1"]; v.QoSStatus != bridge.StatusUnavailable || v.ID != "d" {
		t.Fatalf("view %+v, want the DELETE_REQUESTED", v)
	}
	if len(view.errs) > 0 {
		t.Fatal(view.errs)
	}

	pub.fail = errors.New("broker down")
	if w := (req{ct: "application/cloudevents+json", body: notification("late", "2026-12-03T12:00:00Z", "AVAILABLE", "")}).do(t, h); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", w.Code)
	}
	if _, ok := view.view["s-1"]; !ok || view.view["s-1"].ID != "d" {
		t.Fatal("an unpublished event reached the view")
	}

	pub.fail, view.fail = nil, errors.New("kv down")
	if w := (req{ct: "application/cloudevents+json", body: notification("r", "2026-12-03T09:00:00Z", "REQUESTED", "")}).do(t, h); w.Code != http.StatusNoContent {
		t.Fatalf("a failed view update answered %d", w.Code)
	}
	if last := outs[len(outs)-1]; last.ViewErr == nil || last.Status != http.StatusNoContent {
		t.Fatalf("outcome %+v", last)
	}
}
