package bridge_test

import (
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

func ev(id, tm string, st bridge.QoSStatus, info bridge.StatusInfo) bridge.Event {
	return bridge.Event{ID: id, Source: "https://platform.example/qod", Time: tm, SessionID: "s-1", QoSStatus: st, StatusInfo: info}
}

// issue26 is the issue's case: AVAILABLE 10:00, DELETE_REQUESTED 10:05, a
// retried AVAILABLE (another id) 10:01, plus a duplicate, a REQUESTED, an
// untimed AVAILABLE and a later DURATION_EXPIRED echo.
var issue26 = []bridge.Event{
	ev("a", "2026-12-03T10:00:00Z", bridge.StatusAvailable, ""),
	ev("d", "2026-12-03T10:05:00Z", bridge.StatusUnavailable, bridge.InfoDeleteRequested),
	ev("a2", "2026-12-03T10:01:00Z", bridge.StatusAvailable, ""),
	ev("a", "2026-12-03T10:00:00Z", bridge.StatusAvailable, ""),
	ev("r", "2026-12-03T09:59:00Z", bridge.StatusRequested, ""),
	ev("u", "", bridge.StatusAvailable, ""),
	ev("x", "2026-12-03T11:00:00Z", bridge.StatusUnavailable, bridge.InfoDurationExpired),
	ev("late", "2026-12-03T12:00:00Z", bridge.StatusAvailable, ""),
}

func fold(evs []bridge.Event) bridge.ViewEntry {
	var v bridge.ViewEntry
	for i := range evs {
		v = bridge.MaxView(v, bridge.EntryOf(&evs[i], time.Time{}))
	}
	return v
}

// permute calls f with every permutation of evs (Heap's algorithm).
func permute(evs []bridge.Event, f func([]bridge.Event)) {
	a := append([]bridge.Event(nil), evs...)
	c := make([]int, len(a))
	f(a)
	for i := 0; i < len(a); {
		if c[i] < i {
			if i%2 == 0 {
				a[0], a[i] = a[i], a[0]
			} else {
				a[c[i]], a[i] = a[i], a[c[i]]
			}
			f(a)
			c[i]++
			i = 0
		} else {
			c[i] = 0
			i++
		}
	}
}

// TestViewEveryPermutation: every arrival order of a session's events,
// duplicates and a retried older event included, yields the same view:
// the first termination.
func TestViewEveryPermutation(t *testing.T) {
	n := 0
	permute(issue26, func(p []bridge.Event) {
		n++
		v := fold(p)
		if v.ID != "d" || v.QoSStatus != bridge.StatusUnavailable || v.StatusInfo != bridge.InfoDeleteRequested || !v.Final {
			t.Fatalf("order %v: view %+v, want the DELETE_REQUESTED of 10:05", ids(p), v)
		}
	})
	if n != 40320 {
		t.Fatalf("%d permutations, want 8! = 40320", n)
	}
}

func ids(evs []bridge.Event) []string {
	s := make([]string, len(evs))
	for i := range evs {
		s[i] = evs[i].ID
	}
	return s
}

func TestViewRule(t *testing.T) {
	at := func(id, tm string, st bridge.QoSStatus, info bridge.StatusInfo) bridge.ViewEntry {
		e := ev(id, tm, st, info)
		return bridge.EntryOf(&e, time.Time{})
	}
	for _, c := range []struct {
		name      string
		cur, next bridge.ViewEntry
		advances  bool
		reason    bridge.StaleReason
	}{
		{"later time wins", at("a", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, ""), at("b", "2026-01-01T10:01:00Z", bridge.StatusAvailable, ""), true, ""},
		{"earlier time loses", at("a", "2026-01-01T10:01:00Z", bridge.StatusAvailable, ""), at("b", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, ""), false, bridge.StaleOlder},
		{"instants, not text", at("a", "2026-01-01T11:00:00+01:00", bridge.StatusAvailable, ""), at("b", "2026-01-01T10:00:00Z", bridge.StatusRequested, ""), false, bridge.StaleRank},
		{"final beats a later time", at("a", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, bridge.InfoNetworkTerminated), at("b", "2026-01-01T12:00:00Z", bridge.StatusAvailable, ""), false, bridge.StaleFinal},
		{"final replaces not final", at("a", "2026-01-01T12:00:00Z", bridge.StatusAvailable, ""), at("b", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, bridge.InfoDurationExpired), true, ""},
		{"the first end is the end", at("a", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, bridge.InfoDurationExpired), at("b", "2026-01-01T10:01:00Z", bridge.StatusUnavailable, bridge.InfoDeleteRequested), false, bridge.StaleEndedEarlier},
		{"an earlier end replaces", at("a", "2026-01-01T10:01:00Z", bridge.StatusUnavailable, bridge.InfoDeleteRequested), at("b", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, bridge.InfoDurationExpired), true, ""},
		{"a timed end beats an untimed one", at("a", "", bridge.StatusUnavailable, bridge.InfoDeleteRequested), at("b", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, bridge.InfoDurationExpired), true, ""},
		{"a time beats none", at("a", "2026-01-01T10:00:00Z", bridge.StatusRequested, ""), at("b", "", bridge.StatusUnavailable, ""), false, bridge.StaleOlder},
		{"no times: rank", at("a", "", bridge.StatusRequested, ""), at("b", "", bridge.StatusAvailable, ""), true, ""},
		{"equal times: rank", at("a", "2026-01-01T10:00:00Z", bridge.StatusUnavailable, ""), at("b", "2026-01-01T10:00:00Z", bridge.StatusAvailable, ""), false, bridge.StaleRank},
		{"tie-break", at("b", "2026-01-01T10:00:00Z", bridge.StatusAvailable, ""), at("a", "2026-01-01T10:00:00Z", bridge.StatusAvailable, ""), false, bridge.StaleTieBreak},
		{"tie-break other way", at("a", "2026-01-01T10:00:00Z", bridge.StatusAvailable, ""), at("b", "2026-01-01T10:00:00Z", bridge.StatusAvailable, ""), true, ""},
		{"duplicate", at("a", "2026-01-01T10:00:00Z", bridge.StatusAvailable, ""), at("a", "2026-01-01T10:00:00Z", bridge.StatusAvailable, ""), false, bridge.StaleDuplicate},
		{"empty view", bridge.ViewEntry{}, at("a", "", bridge.StatusRequested, ""), true, ""},
	} {
		ok, reason := bridge.Advances(c.cur, c.next)
		if ok != c.advances || reason != c.reason {
			t.Errorf("%s: Advances = %v, %q; want %v, %q", c.name, ok, reason, c.advances, c.reason)
		}
	}
}

// TestViewDuplicateKeepsReceivedAt: a resend leaves the entry as it was,
// "how long ago" included.
func TestViewDuplicateKeepsReceivedAt(t *testing.T) {
	e := issue26[0]
	first := bridge.EntryOf(&e, time.Unix(100, 0))
	got := bridge.MaxView(first, bridge.EntryOf(&e, time.Unix(200, 0)))
	if !got.ReceivedAt.Equal(time.Unix(100, 0)) {
		t.Fatalf("ReceivedAt = %v, want the first arrival", got.ReceivedAt)
	}
}

var (
	fuzzStatuses = []bridge.QoSStatus{bridge.StatusRequested, bridge.StatusAvailable, bridge.StatusUnavailable}
	fuzzInfos    = []bridge.StatusInfo{"", bridge.InfoDurationExpired, bridge.InfoNetworkTerminated, bridge.InfoDeleteRequested}
	fuzzTimes    = []string{"", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00+01:00", "2026-01-01T10:00:00.5Z", "2026-01-01T09:00:00Z", "2026-01-01T12:00:00Z"}
)

// fuzzEvents decodes each 3 bytes of data into an event of one session,
// from small alphabets so that ties, duplicates and equal instants written
// differently are common.
func fuzzEvents(data []byte) []bridge.Event {
	var evs []bridge.Event
	for i := 0; i+3 <= len(data) && len(evs) < 12; i += 3 {
		a, b, c := data[i], data[i+1], data[i+2]
		evs = append(evs, bridge.Event{
			ID:         string(rune('a' + a%4)),
			Source:     string(rune('p' + a/4%2)),
			Time:       fuzzTimes[int(b)%len(fuzzTimes)],
			SessionID:  "s",
			QoSStatus:  fuzzStatuses[int(c)%len(fuzzStatuses)],
			StatusInfo: fuzzInfos[int(c/3)%len(fuzzInfos)],
		})
	}
	return evs
}

// FuzzViewMax checks that the view, folded event by event in arrival
// order, is the maximum under the rule of the events stored (every one of
// them is at most the view), that the same events in reverse and rotated
// order fold to the same entry, and that CompareView is antisymmetric and
// transitive on them: the rule is a total preorder, so the fold is a
// join.
func FuzzViewMax(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 2, 5, 2, 4, 2, 3, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 2, 2, 2, 3, 3, 3, 2, 4, 1, 8, 5, 5, 11})
	f.Fuzz(func(t *testing.T, data []byte) {
		evs := fuzzEvents(data)
		if len(evs) == 0 {
			return
		}
		view := fold(evs)
		for i := range evs {
			e := bridge.EntryOf(&evs[i], time.Time{})
			if c, _ := bridge.CompareView(e, view); c > 0 {
				t.Fatalf("stored event %+v beats the view %+v", e, view)
			}
			for j := range evs {
				f := bridge.EntryOf(&evs[j], time.Time{})
				c1, _ := bridge.CompareView(e, f)
				c2, _ := bridge.CompareView(f, e)
				if c1 != -c2 {
					t.Fatalf("not antisymmetric: %+v vs %+v: %d, %d", e, f, c1, c2)
				}
				for k := range evs {
					g := bridge.EntryOf(&evs[k], time.Time{})
					if c3, _ := bridge.CompareView(f, g); c1 >= 0 && c3 >= 0 {
						if c, _ := bridge.CompareView(e, g); c < 0 {
							t.Fatalf("not transitive: %+v >= %+v >= %+v but not the first >= the last", e, f, g)
						}
					}
				}
			}
		}
		rev := make([]bridge.Event, len(evs))
		for i := range evs {
			rev[len(evs)-1-i] = evs[i]
		}
		rot := append(append([]bridge.Event(nil), evs[len(evs)/2:]...), evs[:len(evs)/2]...)
		for _, order := range [][]bridge.Event{rev, rot} {
			if got := fold(order); got != view {
				t.Fatalf("order-dependent: %+v, then %+v", view, got)
			}
		}
	})
}
