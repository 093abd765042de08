package qodapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// Session is one QoD session as an answer of the API describes it.
type Session struct {
	// Info is the session as a CAMARA QoD 1.x SessionInfo JSON object: the
	// answer with the changes the package doc lists (v0 translation,
	// timestamps made RFC 3339, sinkCredential removed), else byte for byte.
	Info json.RawMessage

	// ID is sessionId; never empty.
	ID string
	// QoSStatus is qosStatus as sent, not checked (see QoSStatus.Valid).
	QoSStatus bridge.QoSStatus
	// StatusInfo is statusInfo, empty when absent or null.
	StatusInfo bridge.StatusInfo
	// QoSProfile is qosProfile, empty when absent.
	QoSProfile string
	// Duration is the granted duration, zero when absent.
	Duration time.Duration
	// StartedAt and ExpiresAt are zero when absent or unparsable.
	StartedAt time.Time
	ExpiresAt time.Time
	// Device is the device object, nil when absent.
	Device json.RawMessage
	// Sink is the notification URL, empty when absent.
	Sink string
}

// Operation ids, as the specs name them; they appear in errors and logs.
const (
	opCreate   = "createSession"
	opGet      = "getSession"
	opExtend   = "extendQosSessionDuration"
	opDelete   = "deleteSession"
	opRetrieve = "retrieveSessionsByDevice"
)

// CreateSession creates a session from body, a CAMARA CreateSession JSON
// object (1.x shape: sink + sinkCredential), and returns the session the API
// answered with (201, any 2xx accepted). In DialectV1 body is sent as-is; in
// DialectV0 it is translated (package doc). requestID, if not empty, is sent
// as x-correlator.
func (c *Client) CreateSession(ctx context.Context, requestID string, body json.RawMessage) (Session, error) {
	m, err := jsonObject(body)
	if err != nil {
		return Session{}, &callError{op: opCreate, kind: ErrInvalidInput, cause: fmt.Errorf("body: %w", err)}
	}
	send := []byte(body)
	if c.dialect == DialectV0 {
		if send, err = toV0Create(body, m, c.v0Bare); err != nil {
			return Session{}, &callError{op: opCreate, kind: ErrInvalidInput, cause: err}
		}
	}
	_, data, err := c.do(ctx, call{op: opCreate, method: http.MethodPost, path: "/sessions", requestID: requestID, body: send})
	if err != nil {
		return Session{}, err
	}
	return c.parseSession(ctx, opCreate, data)
}

// GetSession returns the session sessionID (200).
func (c *Client) GetSession(ctx context.Context, requestID, sessionID string) (Session, error) {
	if sessionID == "" {
		return Session{}, &callError{op: opGet, kind: ErrInvalidInput, cause: errors.New("empty sessionId")}
	}
	_, data, err := c.do(ctx, call{op: opGet, method: http.MethodGet, path: sessionPath(sessionID), requestID: requestID})
	if err != nil {
		return Session{}, err
	}
	return c.parseSession(ctx, opGet, data)
}

// ExtendSession adds additionalSeconds (at least 1) to the duration of the
// session sessionID and returns the session as extended (200).
func (c *Client) ExtendSession(ctx context.Context, requestID, sessionID string, additionalSeconds int) (Session, error) {
	switch {
	case sessionID == "":
		return Session{}, &callError{op: opExtend, kind: ErrInvalidInput, cause: errors.New("empty sessionId")}
	case additionalSeconds < 1 || additionalSeconds > math.MaxInt32:
		return Session{}, &callError{op: opExtend, kind: ErrInvalidInput,
			cause: fmt.Errorf("requestedAdditionalDuration %d: want 1 to %d seconds", additionalSeconds, math.MaxInt32)}
	}
	body := []byte(`{"requestedAdditionalDuration":` + strconv.Itoa(additionalSeconds) + `}`)
	_, data, err := c.do(ctx, call{op: opExtend, method: http.MethodPost, path: sessionPath(sessionID) + "/extend", requestID: requestID, body: body})
	if err != nil {
		return Session{}, err
	}
	return c.parseSession(ctx, opExtend, data)
}

// DeleteSession deletes the session sessionID (204, any 2xx accepted). A
// session that does not exist is an error matching ErrNotFound.
func (c *Client) DeleteSession(ctx context.Context, requestID, sessionID string) error {
	if sessionID == "" {
		return &callError{op: opDelete, kind: ErrInvalidInput, cause: errors.New("empty sessionId")}
	}
	_, _, err := c.do(ctx, call{op: opDelete, method: http.MethodDelete, path: sessionPath(sessionID), requestID: requestID})
	return err
}

// RetrieveSessions returns the sessions of device, a CAMARA Device JSON
// object, with POST /retrieve-sessions (in both dialects, see the package
// doc). A nil or JSON null device sends {} (with a three-legged token the
// device comes from the token). A 404 answer, which platforms send for a
// device without sessions, and an empty 2xx body are an empty list and no
// error.
func (c *Client) RetrieveSessions(ctx context.Context, requestID string, device json.RawMessage) ([]Session, error) {
	body := []byte(`{}`)
	if d := bytes.TrimSpace(device); len(d) > 0 && string(d) != "null" {
		if _, err := jsonObject(d); err != nil {
			return nil, &callError{op: opRetrieve, kind: ErrInvalidInput, cause: fmt.Errorf("device: %w", err)}
		}
		body = append(append([]byte(`{"device":`), d...), '}')
	}
	_, data, err := c.do(ctx, call{op: opRetrieve, method: http.MethodPost, path: "/retrieve-sessions", requestID: requestID, body: body})
	if ae, ok := errors.AsType[*APIError](err); ok && ae.Op == opRetrieve && ae.Status == http.StatusNotFound {
		return []Session{}, nil // not a 404 of the token endpoint
	}
	if err != nil {
		return nil, err
	}
	if d := bytes.TrimSpace(data); len(d) == 0 || string(d) == "null" {
		return []Session{}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, &callError{op: opRetrieve, kind: ErrBadResponse, cause: fmt.Errorf("want a JSON array of SessionInfo: %w", err)}
	}
	out := make([]Session, 0, len(items))
	for i, it := range items {
		s, err := c.parseSession(ctx, opRetrieve, it)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func sessionPath(id string) string { return "/sessions/" + url.PathEscape(id) }

// parseSession reads one SessionInfo of a 2xx answer.
func (c *Client) parseSession(ctx context.Context, op string, data []byte) (Session, error) {
	m, err := jsonObject(data)
	if err != nil {
		return Session{}, &callError{op: op, kind: ErrBadResponse, cause: fmt.Errorf("want a SessionInfo object: %w", err)}
	}
	changed := false
	if c.dialect == DialectV0 {
		if wh, ok := m["webhook"]; ok {
			var w struct {
				NotificationURL string `json:"notificationUrl"`
			}
			_ = json.Unmarshal(wh, &w) // a malformed webhook is just dropped
			if _, has := m["sink"]; !has && w.NotificationURL != "" {
				m["sink"] = mustJSON(w.NotificationURL)
			}
			delete(m, "webhook")
			changed = true
		}
	}
	if _, ok := m["sinkCredential"]; ok {
		delete(m, "sinkCredential") // holds the notification secret
		changed = true
	}

	var s Session
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"startedAt", &s.StartedAt}, {"expiresAt", &s.ExpiresAt}} {
		raw, ok := m[f.name]
		if !ok {
			continue
		}
		t, kind, err := parseTimestamp(raw)
		switch {
		case err != nil:
			c.log.LogAttrs(ctx, slog.LevelWarn, "qodapi: unparsable timestamp left as sent",
				slog.String("op", op), slog.String("field", f.name), slog.String("error", err.Error()))
		case kind == tsAbsent:
			delete(m, f.name)
			changed = true
		case kind == tsRewrite:
			m[f.name] = mustJSON(t.UTC().Format(time.RFC3339Nano))
			changed = true
			*f.dst = t
		default:
			*f.dst = t
		}
	}

	s.ID = idString(m["sessionId"])
	if s.ID == "" {
		return Session{}, &callError{op: op, kind: ErrBadResponse, cause: errors.New("no sessionId")}
	}
	s.QoSStatus = bridge.QoSStatus(jsonString(m["qosStatus"]))
	s.StatusInfo = bridge.StatusInfo(jsonString(m["statusInfo"]))
	s.QoSProfile = jsonString(m["qosProfile"])
	s.Sink = jsonString(m["sink"])
	if d := bytes.TrimSpace(m["device"]); len(d) > 0 && string(d) != "null" {
		s.Device = append(json.RawMessage(nil), d...)
	}
	if secs, ok := jsonNumber(m["duration"]); ok && secs > 0 && secs < math.MaxInt64/float64(time.Second) {
		s.Duration = time.Duration(secs * float64(time.Second))
	}

	if changed {
		s.Info = marshalObject(m)
	} else {
		s.Info = append(json.RawMessage(nil), bytes.TrimSpace(data)...)
	}
	return s, nil
}

// idString reads a sessionId, tolerating a number.
func idString(raw json.RawMessage) string {
	if s := jsonString(raw); s != "" {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// jsonNumber reads a JSON number or a string holding one.
func jsonNumber(raw json.RawMessage) (float64, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		s := jsonString(raw)
		if s == "" {
			return 0, false
		}
		n = json.Number(s)
	}
	f, err := n.Float64()
	return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
}

type tsKind int

const (
	tsKeep    tsKind = iota // RFC 3339 already
	tsRewrite               // parsed from another form
	tsAbsent                // null or ""
)

// epochMillisFrom is the magnitude from which an epoch number is read as
// milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
const epochMillisFrom = 1e11

// parseTimestamp reads an RFC 3339 string, an epoch number (seconds or
// milliseconds) as a JSON number or string, or a date-time without a zone
// (read as UTC).
func parseTimestamp(raw json.RawMessage) (time.Time, tsKind, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return time.Time{}, tsAbsent, nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		t, err := parseEpoch(string(raw))
		return t, tsRewrite, err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, 0, err
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, tsAbsent, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, tsKeep, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, tsRewrite, nil
		}
	}
	t, err := parseEpoch(s)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("%q is neither RFC 3339 nor an epoch number", bridge.Truncate(s, 64))
	}
	return t, tsRewrite, nil
}

func parseEpoch(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n >= epochMillisFrom || n <= -epochMillisFrom {
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Unix(n, 0).UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e15 {
		return time.Time{}, fmt.Errorf("%q is not an epoch number", bridge.Truncate(s, 64))
	}
	if math.Abs(f) >= epochMillisFrom {
		f /= 1000
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64(math.Round((f-sec)*1e9))).UTC(), nil
}

// toV0Create translates a 1.x CreateSession body to 0.10: sink and
// sinkCredential become webhook{notificationUrl, notificationAuthToken}.
// A body without sink or sinkCredential is returned unchanged.
func toV0Create(body []byte, m map[string]json.RawMessage, bare bool) ([]byte, error) {
	sinkRaw, hasSink := m["sink"]
	credRaw, hasCred := m["sinkCredential"]
	hasSink = hasSink && string(bytes.TrimSpace(sinkRaw)) != "null"
	hasCred = hasCred && string(bytes.TrimSpace(credRaw)) != "null"
	if !hasSink && !hasCred {
		if sinkRaw == nil && credRaw == nil {
			return body, nil
		}
		delete(m, "sink") // null members: v0 has no such field
		delete(m, "sinkCredential")
		return marshalObject(m), nil
	}
	if !hasSink {
		return nil, errors.New("sinkCredential without sink")
	}
	if _, ok := m["webhook"]; ok {
		return nil, errors.New("both sink and webhook are set")
	}
	var sink string
	if err := json.Unmarshal(sinkRaw, &sink); err != nil || sink == "" {
		return nil, errors.New("sink: want a non-empty string")
	}
	webhook := struct {
		NotificationURL       string `json:"notificationUrl"`
		NotificationAuthToken string `json:"notificationAuthToken,omitempty"`
	}{NotificationURL: sink}
	if hasCred {
		var cred struct {
			CredentialType string `json:"credentialType"`
			AccessToken    string `json:"accessToken"`
		}
		if err := json.Unmarshal(credRaw, &cred); err != nil {
			return nil, errors.New("sinkCredential: want an object with credentialType and accessToken")
		}
		if cred.CredentialType != "ACCESSTOKEN" {
			return nil, fmt.Errorf("sinkCredential.credentialType %q: QoD v0 carries only an ACCESSTOKEN credential", bridge.Truncate(cred.CredentialType, 32))
		}
		if cred.AccessToken == "" {
			return nil, errors.New("sinkCredential.accessToken is empty")
		}
		webhook.NotificationAuthToken = cred.AccessToken
		if !bare {
			webhook.NotificationAuthToken = "Bearer " + cred.AccessToken
		}
	}
	delete(m, "sink")
	delete(m, "sinkCredential")
	m["webhook"] = mustJSON(webhook)
	return marshalObject(m), nil
}

// WithSink returns body, a CreateSession JSON object, with its notification
// target set to sinkURL: sink = sinkURL and, when token is not empty,
// sinkCredential = {credentialType: ACCESSTOKEN, accessToken: token,
// accessTokenExpiresUtc: expires in RFC 3339 UTC to the second,
// accessTokenType: bearer}. An existing sink, sinkCredential or v0 webhook is
// replaced; every other member is kept (members are reordered). Errors wrap
// ErrInvalidInput and never contain token.
func WithSink(body json.RawMessage, sinkURL, token string, expires time.Time) (json.RawMessage, error) {
	m, err := jsonObject(body)
	if err != nil {
		return nil, fmt.Errorf("%w: body: %w", ErrInvalidInput, err)
	}
	if u, err := url.Parse(sinkURL); err != nil || !u.IsAbs() || u.Host == "" {
		// The URL is not quoted: it might carry an access_token query.
		return nil, fmt.Errorf("%w: sink URL is not an absolute URL", ErrInvalidInput)
	}
	delete(m, "webhook")
	delete(m, "sinkCredential")
	m["sink"] = mustJSON(sinkURL)
	if token != "" {
		if expires.IsZero() {
			return nil, fmt.Errorf("%w: sinkCredential needs an expiry", ErrInvalidInput)
		}
		m["sinkCredential"] = mustJSON(struct {
			CredentialType        string `json:"credentialType"`
			AccessToken           string `json:"accessToken"`
			AccessTokenExpiresUtc string `json:"accessTokenExpiresUtc"`
			AccessTokenType       string `json:"accessTokenType"`
		}{"ACCESSTOKEN", token, expires.UTC().Format(time.RFC3339), "bearer"})
	}
	return marshalObject(m), nil
}

// HasSink reports whether body, a CreateSession JSON object, names a
// notification target: a non-empty sink, or a v0 webhook.notificationUrl.
func HasSink(body json.RawMessage) (bool, error) {
	m, err := jsonObject(body)
	if err != nil {
		return false, fmt.Errorf("%w: body: %w", ErrInvalidInput, err)
	}
	if jsonString(m["sink"]) != "" {
		return true, nil
	}
	var w struct {
		NotificationURL string `json:"notificationUrl"`
	}
	if wh, ok := m["webhook"]; ok && json.Unmarshal(wh, &w) == nil && w.NotificationURL != "" {
		return true, nil
	}
	return false, nil
}

// mustJSON marshals values that cannot fail (strings and string structs).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("qodapi: marshal %T: %v", v, err))
	}
	return b
}

// marshalObject encodes m without HTML escaping, so members that were not
// touched keep their text.
func marshalObject(m map[string]json.RawMessage) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil { // members are valid JSON already
		panic(fmt.Sprintf("qodapi: marshal object: %v", err))
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
