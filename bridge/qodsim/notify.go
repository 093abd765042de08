package qodsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// outgoing is one notification, built when the status changed: a retry
// sends the same bytes, so the same id.
type outgoing struct {
	id          string
	body        []byte
	contentType string
	sink        string
	token       string
	tokenExpiry time.Time
}

// ceTime is the CloudEvents time format the simulator sends (RFC 3339, UTC,
// milliseconds), as Network as Code does.
const ceTime = "2006-01-02T15:04:05.000Z07:00"

type statusData struct {
	SessionID  string `json:"sessionId"`
	QosStatus  string `json:"qosStatus"`
	StatusInfo string `json:"statusInfo,omitempty"`
}

type cloudEvent struct {
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	SpecVersion     string    `json:"specversion"`
	DataContentType string    `json:"datacontenttype"`
	Time            string    `json:"time"`
	Event           *nacEvent `json:"event,omitempty"`
	Data            any       `json:"data"`
}

// nacDetail is eventDetail (and data) of the Network-as-Code shape, whose
// receivers expect statusInfo present, null when absent.
type nacDetail struct {
	SessionID  string  `json:"sessionId"`
	QosStatus  string  `json:"qosStatus"`
	StatusInfo *string `json:"statusInfo"`
}

type nacEvent struct {
	EventType   string    `json:"eventType"`
	EventTime   string    `json:"eventTime"`
	EventDetail nacDetail `json:"eventDetail"`
}

// notify queues a status notification for the session's sink. Called with
// s.mu held.
func (s *Sim) notify(sess *session, st bridge.QoSStatus, info bridge.StatusInfo) {
	if sess.sink == "" || sess.gone {
		return
	}
	n := outgoing{
		id:          newUUID(),
		sink:        sess.sink,
		token:       sess.token,
		tokenExpiry: sess.tokenExpiry,
		contentType: "application/json",
	}
	ev := cloudEvent{
		ID:              n.id,
		Source:          s.cfg.EventSource + sess.dialect.basePath() + "/sessions/" + sess.id,
		Type:            bridge.EventTypeV0,
		SpecVersion:     bridge.SpecVersion,
		DataContentType: "application/json",
		Time:            s.clock.Now().UTC().Format(ceTime),
		Data:            statusData{SessionID: sess.id, QosStatus: string(st), StatusInfo: string(info)},
	}
	switch sess.format {
	case FormatCAMARAv1:
		ev.Type = bridge.EventType
		n.contentType = "application/cloudevents+json"
	case FormatNaC:
		d := nacDetail{SessionID: sess.id, QosStatus: string(st)}
		if info != "" {
			i := string(info)
			d.StatusInfo = &i
		}
		ev.Event = &nacEvent{EventType: bridge.EventTypeLegacy, EventTime: ev.Time, EventDetail: d}
		ev.Data = d
	}
	b, err := json.Marshal(ev)
	if err != nil { // only our own types: cannot happen
		panic(fmt.Sprintf("qodsim: marshal notification: %v", err))
	}
	n.body = b

	sess.outbox = append(sess.outbox, n)
	if s.pending == 0 {
		s.idle = make(chan struct{})
	}
	s.pending++
	if !sess.queued {
		sess.queued = true
		// Never blocks: ready holds MaxSessions and each held session is in
		// it at most once.
		s.ready <- sess
	}
}

// sender delivers notifications until quit: one session at a time, the
// head of its outbox, so a session's notifications go out in order.
func (s *Sim) sender() {
	defer s.senders.Done()
	for {
		var sess *session
		select {
		case <-s.quit:
			return
		case sess = <-s.ready:
		}
		s.mu.Lock()
		n, skip := sess.outbox[0], sess.gone
		s.mu.Unlock()

		gone := false
		if !skip {
			gone = s.deliver(sess.id, &n)
		}

		s.mu.Lock()
		sess.gone = sess.gone || gone
		sess.outbox[0] = outgoing{}
		sess.outbox = sess.outbox[1:]
		s.pending--
		if len(sess.outbox) > 0 {
			s.ready <- sess // this session just left the channel: there is room
		} else {
			sess.outbox = nil
			sess.queued = false
			s.release(sess)
		}
		if s.pending == 0 {
			close(s.idle)
			s.idle = nil
		}
		s.mu.Unlock()
	}
}

// deliver sends n until the sink accepts it, refuses it for good, the
// attempts run out or the Sim stops. It reports whether the sink answered
// 410 Gone: then the session sends nothing more.
func (s *Sim) deliver(sessionID string, n *outgoing) (gone bool) {
	log := s.log.With("sessionId", sessionID, "eventId", n.id, "sink", redact(n.sink))
	for attempt := 1; ; attempt++ {
		if !n.tokenExpiry.IsZero() && s.clock.Now().After(n.tokenExpiry) {
			log.Warn("qodsim: notification not sent: the sink credential expired", "expired", n.tokenExpiry)
			return false
		}
		status, retryAfter, err := s.post(n)
		switch {
		case err == nil && status/100 == 2:
			return false
		case s.sendCtx.Err() != nil:
			log.Debug("qodsim: notification cancelled by Close")
			return false
		case status == http.StatusGone:
			log.Warn("qodsim: sink answered 410 Gone: no more notifications for this session")
			return true
		}
		retry := err != nil || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
		if !retry || attempt >= s.cfg.MaxAttempts {
			log.Warn("qodsim: notification given up", "attempts", attempt, "status", status, "error", err)
			return false
		}
		wait := s.backoff(attempt)
		if retryAfter >= 0 {
			wait = min(retryAfter, s.cfg.RetryMaxBackoff)
		}
		log.Debug("qodsim: notification failed, retrying", "attempt", attempt, "status", status, "error", err, "wait", wait)
		if !s.sleep(wait) {
			return false
		}
	}
}

// redact drops what may hold a secret from a sink URL for logging: user
// info, query (a sink may carry ?access_token=) and fragment.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}

// post makes one attempt. retryAfter is -1 when the answer has none.
func (s *Sim) post(n *outgoing) (status int, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(s.sendCtx, s.cfg.NotifyTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.sink, bytes.NewReader(n.body))
	if err != nil {
		return 0, -1, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", n.contentType)
	req.Header.Set("User-Agent", "qodsim")
	if n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, -1, fmt.Errorf("post: %w", err)
	}
	// Drain a little so the connection can be reused; never read a huge body.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, s.retryAfter(resp.Header.Get("Retry-After")), nil
}

// retryAfter parses Retry-After as seconds or an HTTP date; -1 if absent or
// unparsable.
func (s *Sim) retryAfter(v string) time.Duration {
	if v == "" {
		return -1
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return -1
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(s.clock.Now()), 0)
	}
	return -1
}

// backoff is the wait after the attempt-th failure: RetryBackoff doubled per
// attempt, capped, with half of it random so senders do not retry in step.
func (s *Sim) backoff(attempt int) time.Duration {
	d := s.cfg.RetryBackoff
	for i := 1; i < attempt && d < s.cfg.RetryMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// sleep waits d on the Sim's clock; false if the Sim stopped meanwhile.
func (s *Sim) sleep(d time.Duration) bool {
	fired := make(chan struct{})
	t := s.clock.AfterFunc(d, func() { close(fired) })
	select {
	case <-fired:
		return true
	case <-s.sendCtx.Done():
		t.Stop()
		return false
	}
}
