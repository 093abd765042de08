package bridge

import (
	"context"
	"strings"
	"time"
)

// ViewEntry is one session's entry in the view: the event that is its
// current status under the rule, and when the bridge received it. Its JSON
// is what the views store and readers get (sessionId, qosStatus,
// statusInfo, time, id, source, final, receivedAt).
type ViewEntry struct {
	SessionID  string     `json:"sessionId"`
	QoSStatus  QoSStatus  `json:"qosStatus"`
	StatusInfo StatusInfo `json:"statusInfo,omitempty"`
	// Time is the event's time as the platform sent it (RFC 3339), empty
	// when it sent none.
	Time   string `json:"time,omitempty"`
	ID     string `json:"id"`
	Source string `json:"source"`
	// Final says the session has ended (Final()); stored for readers,
	// derived, not compared.
	Final bool `json:"final"`
	// ReceivedAt is when a bridge instance received the event, for "how
	// long ago": not part of the rule (two instances receive a retry at
	// different times).
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
}

// EntryOf is the view entry of e, received at received.
func EntryOf(e *Event, received time.Time) ViewEntry {
	v := ViewEntry{SessionID: e.SessionID, QoSStatus: e.QoSStatus, StatusInfo: e.StatusInfo, Time: e.Time,
		ID: e.ID, Source: e.Source, ReceivedAt: received}
	v.Final = v.IsFinal()
	return v
}

// IsFinal reports whether the entry's session has ended: UNAVAILABLE with a
// statusInfo (every statusInfo of the QoD API says the session was
// terminated).
func (v *ViewEntry) IsFinal() bool { return v.QoSStatus == StatusUnavailable && v.StatusInfo != "" }

// StaleReason says why an event did not advance the view: which step of
// the rule kept the entry the view holds. Its values are metric labels.
type StaleReason string

// Reasons an event does not advance the view, one per step of the rule.
const (
	// StaleDuplicate: the view holds this very event (same source, id,
	// time, status): a resend.
	StaleDuplicate StaleReason = "duplicate"
	// StaleFinal: the session has ended and the event is not final.
	StaleFinal StaleReason = "final"
	// StaleEndedEarlier: both are final and the view's ended earlier (or
	// has a time and the event has none).
	StaleEndedEarlier StaleReason = "ended_earlier"
	// StaleOlder: the event's time is earlier than the view's (or it has
	// none and the view's has one).
	StaleOlder StaleReason = "older"
	// StaleRank: same time, and the event is earlier in the life cycle.
	StaleRank StaleReason = "rank"
	// StaleTieBreak: equal in everything the rule weighs; the tie-break
	// kept the view's.
	StaleTieBreak StaleReason = "tiebreak"
)

// StaleReasons lists every StaleReason, for metrics that want each label.
var StaleReasons = []StaleReason{StaleDuplicate, StaleFinal, StaleEndedEarlier, StaleOlder, StaleRank, StaleTieBreak}

// CompareView orders a and b under the session view's rule: +1 when a
// wins, -1 when b wins, 0 when they are the same event. The reason names
// the step of the rule that decided.
//
// The session view is what each session's status is now, kept beside the
// full history by every broker (a JetStream key-value bucket, a compacted
// Kafka topic). Notifications arrive late, twice and out of order
// (platforms retry, and retries overtake each other), so "the last one
// received" is not the current status. This is the one place that says
// which of two events of a session the view holds; every view and every
// reader that folds a history uses it.
//
// # The rule
//
// The view of a session is the maximum of its events under this total
// preorder, compared field by field until one differs (each field's
// reason follows it):
//
//  1. Final beats not final. A final event is an UNAVAILABLE with a
//     statusInfo (DURATION_EXPIRED, NETWORK_TERMINATED, DELETE_REQUESTED:
//     the only values the QoD API has, and each says the session was
//     terminated). A terminated session never comes back, so nothing that
//     is not final replaces one, whatever its time: a retried AVAILABLE
//     that carries a later time (a platform's clock, a re-stamped retry)
//     still describes a session that has ended.
//  2. Between two final events, the earlier time wins, and one with a time
//     beats one without: the session ended at its first termination, and
//     a later one (a DELETE_REQUESTED after the duration expired) is an
//     echo of an ended session. Between two events that are not final,
//     the later time wins, and one with a time beats one without (an event
//     that carries no time tells the least). Times are compared as
//     instants, so 10:00Z and 11:00+01:00 are equal.
//  3. Where times are equal or both missing, the life-cycle rank decides:
//     REQUESTED < AVAILABLE < UNAVAILABLE, the order a session lives in.
//  4. Then a deterministic tie-break on the bytes of source, id, time and
//     statusInfo, larger wins. It means nothing; it exists so that every
//     instance, whatever order it saw two such events in, keeps the same.
//
// Why a total preorder and not "final wins, else the later time": a rule
// has to make the view a join (a maximum) so that the view converges to
// the same entry for any arrival order, on any number of instances, and
// for a rebuild from the history. Rules that compare time only where both
// have one are not transitive (A 10:00 REQUESTED > C 09:00 UNAVAILABLE
// by time, C > B untimed AVAILABLE by rank, B > A by rank) and would let
// the result depend on arrival order. The lexicographic key (final,
// time ordered as in 2, rank, tie-break) is a total order on the fields
// compared, so MaxView is associative, commutative and idempotent.
//
// Two entries equal under the rule are the same event (a duplicate): the
// view keeps the one it holds, with its ReceivedAt.
func CompareView(a, b ViewEntry) (int, StaleReason) {
	af, bf := a.IsFinal(), b.IsFinal()
	if af != bf {
		if af {
			return 1, StaleFinal
		}
		return -1, StaleFinal
	}
	at, aok := eventInstant(a.Time)
	bt, bok := eventInstant(b.Time)
	reason := StaleOlder
	if af {
		reason = StaleEndedEarlier
	}
	switch {
	case aok != bok: // a time beats none, for final and not final alike
		if aok {
			return 1, reason
		}
		return -1, reason
	case aok && !at.Equal(bt):
		c := at.Compare(bt) // later wins ...
		if af {
			c = -c // ... except between ends: the first end is the end
		}
		return c, reason
	}
	if r := rank(a.QoSStatus) - rank(b.QoSStatus); r != 0 {
		if r > 0 {
			return 1, StaleRank
		}
		return -1, StaleRank
	}
	for _, p := range [...][2]string{{a.Source, b.Source}, {a.ID, b.ID}, {a.Time, b.Time}, {string(a.StatusInfo), string(b.StatusInfo)}} {
		if c := strings.Compare(p[0], p[1]); c != 0 {
			return c, StaleTieBreak
		}
	}
	return 0, StaleDuplicate
}

// Advances reports whether next replaces cur in the view, and when it does
// not, why. An empty cur (no SessionID: the session has no entry yet) is
// replaced by anything.
func Advances(cur, next ViewEntry) (bool, StaleReason) {
	if cur.SessionID == "" {
		return true, ""
	}
	c, reason := CompareView(next, cur)
	if c > 0 {
		return true, ""
	}
	return false, reason
}

// MaxView is the entry the view holds of cur and next: next when it
// advances cur, else cur (so a duplicate keeps cur's ReceivedAt).
func MaxView(cur, next ViewEntry) ViewEntry {
	if ok, _ := Advances(cur, next); ok {
		next.Final = next.IsFinal()
		return next
	}
	return cur
}

func rank(s QoSStatus) int {
	switch s {
	case StatusRequested:
		return 1
	case StatusAvailable:
		return 2
	case StatusUnavailable:
		return 3
	}
	return 0
}

// eventInstant parses an event time; a time that does not parse (the
// ingress admits none) counts as missing.
func eventInstant(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// ViewUpdater folds events whose history publish was acknowledged into a
// session view.
//
// UpdateView is called only after the Publisher acknowledged events (so
// the view never shows what the history does not hold); received is when
// they arrived. For each event it replaces the session's entry when the
// event advances it under the rule (Advances), atomically with respect to
// other writers of the same view (compare-and-set, or the broker's
// equivalent), and leaves it otherwise. It is idempotent: the same events
// again change nothing, so a caller that is unsure may call it again. A
// non-nil error means some entries may not have been updated; the history
// holds the events, and the next event of the session or a rebuild from
// the history repairs the view. The caller must not fail the delivery
// for it: the events are stored. It is safe for concurrent use and bounds
// its own wait on the broker.
type ViewUpdater interface {
	UpdateView(ctx context.Context, received time.Time, events ...Event) error
}
