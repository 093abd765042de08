package bench

import "testing"

func TestRunIDs(t *testing.T) {
	ids := newRunIDs("abcd1234", 42)
	other := newRunIDs("ffff0000", 43)
	for _, seq := range []uint64{0, 1, 999, 1 << 30} {
		if got, ok := ids.seq(ids.id(seq), ""); !ok || got != seq {
			t.Errorf("id of %d reads back as %d, %v", seq, got, ok)
		}
		if got, ok := ids.seq("qod-v0.9-00", ids.time(seq)); !ok || got != seq {
			t.Errorf("time of %d reads back as %d, %v", seq, got, ok)
		}
		if _, ok := other.seq(ids.id(seq), ""); ok {
			t.Errorf("another run's id %s is taken", ids.id(seq))
		}
		if _, ok := other.seq("qod-v0.9-00", ids.time(seq)); ok {
			t.Errorf("another run's time %s is taken", ids.time(seq))
		}
	}
	if _, ok := ids.seq("e-1", "2025-01-01T00:00:00Z"); ok {
		t.Error("a foreign id is taken")
	}
}
