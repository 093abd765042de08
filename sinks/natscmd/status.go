package natscmd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/qodbridge/qodbridge/bridge"
)

// StatusReader reads the session view (natsview.View implements it).
type StatusReader interface {
	// Get returns the entry of sessionID, ok false when it has none. It
	// must return by ctx's deadline.
	Get(ctx context.Context, sessionID string) (bridge.ViewEntry, bool, error)
}

// MaxStatusIDs bounds the sessionIds of one status request.
const MaxStatusIDs = 100

// maxStatusIDLen bounds one sessionId of a status request (bytes).
const maxStatusIDLen = 512

// StatusRequest is the body of a <prefix>.api.status request: one
// sessionId, or several (at most MaxStatusIDs), or both.
type StatusRequest struct {
	SessionID  string   `json:"sessionId,omitempty"`
	SessionIDs []string `json:"sessionIds,omitempty"`
}

// StatusReply is the answer: one item per sessionId asked, in order. An
// item is the session's view entry (bridge.ViewEntry's JSON) with
// "found": true, or {"sessionId", "found": false} for a session the view
// does not hold (never seen, or its entry expired).
type StatusReply struct {
	Sessions []StatusItem `json:"sessions"`
}

// StatusItem is one session of a StatusReply.
type StatusItem struct {
	Found bool
	Entry bridge.ViewEntry // SessionID only, when not Found
}

// MarshalJSON writes the entry's fields and "found".
func (it StatusItem) MarshalJSON() ([]byte, error) {
	if !it.Found {
		return json.Marshal(struct {
			SessionID string `json:"sessionId"`
			Found     bool   `json:"found"`
		}{it.Entry.SessionID, false})
	}
	return json.Marshal(struct {
		bridge.ViewEntry
		Found bool `json:"found"`
	}{it.Entry, true})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (it *StatusItem) UnmarshalJSON(b []byte) error {
	var v struct {
		bridge.ViewEntry
		Found bool `json:"found"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	it.Found, it.Entry = v.Found, v.ViewEntry
	return nil
}

// serveStatus answers <prefix>.api.status from the session view: 400 for a
// request that names no session, too many, or is not JSON; 503 when the
// view cannot be read.
func (in *Intake) serveStatus(work context.Context, req micro.Request) {
	var r StatusRequest
	if err := json.Unmarshal(req.Data(), &r); err != nil {
		_ = req.Error("400", "want {\"sessionIds\": [...]} or {\"sessionId\": \"...\"}: "+bridge.Printable(err.Error(), 200), nil)
		return
	}
	ids := r.SessionIDs
	if r.SessionID != "" {
		ids = append([]string{r.SessionID}, ids...)
	}
	switch {
	case len(ids) == 0:
		_ = req.Error("400", "no sessionId: want {\"sessionIds\": [...]} or {\"sessionId\": \"...\"}", nil)
		return
	case len(ids) > MaxStatusIDs:
		_ = req.Error("400", fmt.Sprintf("%d sessionIds; at most %d per request", len(ids), MaxStatusIDs), nil)
		return
	}
	ctx, cancel := context.WithTimeout(work, cmpDur(in.o.PublishTimeout, 5*time.Second))
	defer cancel()
	out := StatusReply{Sessions: make([]StatusItem, len(ids))}
	for i, id := range ids {
		if id == "" || len(id) > maxStatusIDLen {
			_ = req.Error("400", fmt.Sprintf("sessionIds[%d]: empty or longer than %d bytes", i, maxStatusIDLen), nil)
			return
		}
		e, ok, err := in.o.Status.Get(ctx, id)
		if err != nil {
			in.log.Warn("natscmd: status: reading the session view failed", "session_id", bridge.Quote(id), "err", err)
			_ = req.Error("503", "the session view cannot be read now; send the request again", nil)
			return
		}
		if !ok {
			e = bridge.ViewEntry{SessionID: id}
		}
		out.Sessions[i] = StatusItem{Found: ok, Entry: e}
	}
	body, err := json.Marshal(out)
	if err != nil {
		_ = req.Error("500", "encoding the answer failed", nil)
		return
	}
	if err := req.Respond(body, micro.WithHeaders(micro.Headers{"Content-Type": []string{"application/json"}})); err != nil {
		in.log.Warn("natscmd: status response failed", "err", err)
	}
}

func cmpDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
