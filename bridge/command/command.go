// Package command is the broker-independent command engine: it parses a
// create / get / extend / delete / list request, calls the QoD API, and
// returns the result every intake (NATS stream, NATS micro service, Kafka)
// publishes the same way.
//
// Delivery semantics: the engine never acknowledges anything itself. An
// intake acks (JetStream) or commits (Kafka) a command only after the
// Outcome's result (and dead letter, if any) was published, so a command is
// run at least once. Execute returns an error only when ctx ended before the
// command finished (shutdown): the intake must then leave it unacknowledged,
// to be redelivered. Redelivery is safe: create, extend and delete remember
// their outcome by requestId in a Store before Execute returns, and a
// redelivered one is answered with it instead of being applied again. A
// create that meets 409 because an earlier attempt's session exists looks
// that session up and reports it; an extend or delete that an earlier
// attempt may have sent without its outcome being stored is not sent twice
// (see Engine.Execute).
//
// Hostile input: Parse refuses anything that is not a well-formed command
// with a bounded, printable reason; Handle turns a panic into an
// "internal error" dead letter; metric labels come from Action.Label.
// Lanes is the per-session dispatcher every intake runs commands on.
//
// Ordering: the engine runs commands as it is given them; an intake that
// wants commands for one session in order runs those with the same
// Command.OrderingKey one after another.
//
// Imports: bridge and bridge/qodapi of ours; never config, sinks or cmd.
// The engine knows no broker: intakes in sinks/ bring commands to it.
package command

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
)

// Action names what a command does.
type Action string

// The actions of the command contract.
const (
	Create Action = "create"
	Get    Action = "get"
	Extend Action = "extend"
	Delete Action = "delete"
	List   Action = "list"
)

// Actions lists every action, in contract order.
var Actions = []Action{Create, Get, Extend, Delete, List}

// Valid reports whether a is one of Actions.
func (a Action) Valid() bool {
	switch a {
	case Create, Get, Extend, Delete, List:
		return true
	}
	return false
}

// LabelInvalid is the metric label of every action that is not one of
// Actions.
const LabelInvalid = "invalid"

// Label is a as a metric label value: a itself when it is one of Actions,
// else LabelInvalid. The action of an invalid command comes from whoever
// published it (a subject token, a header): as a label it would add a
// series per value, and a value that is not UTF-8 makes the Prometheus
// client panic.
func (a Action) Label() string {
	if a.Valid() {
		return string(a)
	}
	return LabelInvalid
}

// Command is one parsed request.
type Command struct {
	Action Action `json:"action"`
	// RequestID names the result; sent as x-correlator. Generated when the
	// message had none.
	RequestID string `json:"requestId"`
	// SessionID is the target of get, extend and delete.
	SessionID string `json:"sessionId,omitempty"`
	// Session is the CAMARA CreateSession body of create, as sent.
	Session json.RawMessage `json:"session,omitempty"`
	// RequestedAdditionalDuration is extend's additional seconds.
	RequestedAdditionalDuration int `json:"requestedAdditionalDuration,omitempty"`
	// Device is list's CAMARA Device object.
	Device json.RawMessage `json:"device,omitempty"`
}

// OrderingKey is what commands must share to be run in order: the
// sessionId, or "" for commands that name no session (create, list).
func (c *Command) OrderingKey() string { return c.SessionID }

// ErrInvalid is wrapped by every *InvalidError.
var ErrInvalid = errors.New("command: invalid command")

// InvalidError is a command that cannot be run as sent. It is answered with
// an error result and dead-lettered with Reason, never retried.
type InvalidError struct {
	// Field is the JSON member at fault, empty for the message as a whole.
	Field string
	// Reason says what is wrong, for a person.
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) *InvalidError {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// wire is a command as sent; pointers tell absent from zero.
type wire struct {
	Action                      *string         `json:"action"`
	RequestID                   *string         `json:"requestId"`
	SessionID                   *string         `json:"sessionId"`
	Session                     json.RawMessage `json:"session"`
	RequestedAdditionalDuration *json.Number    `json:"requestedAdditionalDuration"`
	Device                      json.RawMessage `json:"device"`
}

// MaxRequestIDLen bounds requestId: it becomes a subject token and a
// header value.
const MaxRequestIDLen = 256

// MaxSessionIDLen bounds sessionId: it becomes a URL path segment, a
// header value and a Kafka key.
const MaxSessionIDLen = 256

// Parse reads a command. transport is the action the transport names (the
// NATS subject, the micro endpoint, a Kafka qod-action header), or "" when
// it names none. It returns a Command whose RequestID is always set, even
// with an error, so that the error result can be addressed: the message's
// requestId when it had a usable one, else a generated one.
func Parse(body []byte, transport Action) (Command, error) {
	cmd := Command{Action: transport}
	var w wire
	err := decode(body, &w)
	if w.RequestID != nil && validRequestID(*w.RequestID) {
		cmd.RequestID = *w.RequestID
	} else {
		cmd.RequestID = NewRequestID()
	}
	if err != nil {
		return cmd, err
	}
	if w.RequestID != nil && !validRequestID(*w.RequestID) {
		return cmd, invalid("requestId", "%s must be 1 to %d printable ASCII characters without spaces", bridge.Quote(*w.RequestID), MaxRequestIDLen)
	}
	if transport != "" && !transport.Valid() {
		return cmd, invalid("action", "%s is not one of create, get, extend, delete, list", bridge.Quote(string(transport)))
	}
	if w.Action != nil {
		a := Action(*w.Action)
		if !a.Valid() {
			return cmd, invalid("action", "%s is not one of create, get, extend, delete, list", bridge.Quote(*w.Action))
		}
		if transport != "" && a != transport {
			return cmd, invalid("action", "%q contradicts the action %q the subject or endpoint names", a, transport)
		}
		cmd.Action = a
	}
	if cmd.Action == "" {
		return cmd, invalid("action", "required: one of create, get, extend, delete, list")
	}
	// Members another action uses are refused rather than ignored: they
	// usually mean the wrong action was sent.
	uses := map[Action][]string{
		Create: {"session"},
		Get:    {"sessionId"},
		Extend: {"sessionId", "requestedAdditionalDuration"},
		Delete: {"sessionId"},
		List:   {"device"},
	}[cmd.Action]
	present := map[string]bool{
		"sessionId":                   w.SessionID != nil,
		"session":                     w.Session != nil,
		"requestedAdditionalDuration": w.RequestedAdditionalDuration != nil,
		"device":                      w.Device != nil,
	}
	for _, f := range []string{"sessionId", "session", "requestedAdditionalDuration", "device"} {
		if present[f] && !contains(uses, f) {
			return cmd, invalid(f, "not used by %s (it takes %s)", cmd.Action, strings.Join(uses, " and "))
		}
	}
	switch cmd.Action {
	case Create:
		if err := object(w.Session, "session"); err != nil {
			return cmd, err
		}
		cmd.Session = w.Session
	case Get, Delete, Extend:
		if w.SessionID == nil {
			return cmd, invalid("sessionId", "required for %s", cmd.Action)
		}
		if *w.SessionID == "" {
			return cmd, invalid("sessionId", "must not be empty")
		}
		if !validSessionID(*w.SessionID) {
			return cmd, invalid("sessionId", "%s must be at most %d bytes of UTF-8 text without control characters", bridge.Quote(*w.SessionID), MaxSessionIDLen)
		}
		cmd.SessionID = *w.SessionID
		if cmd.Action == Extend {
			if w.RequestedAdditionalDuration == nil {
				return cmd, invalid("requestedAdditionalDuration", "required for extend (seconds, at least 1)")
			}
			n, err := w.RequestedAdditionalDuration.Int64()
			if err != nil || n < 1 || n > 86400 {
				return cmd, invalid("requestedAdditionalDuration", "%s is not a whole number of seconds from 1 to 86400", w.RequestedAdditionalDuration.String())
			}
			cmd.RequestedAdditionalDuration = int(n)
		}
	case List:
		if err := object(w.Device, "device"); err != nil {
			return cmd, err
		}
		cmd.Device = w.Device
	}
	return cmd, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func object(raw json.RawMessage, field string) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return invalid(field, "required: a JSON object")
	}
	if t[0] != '{' {
		return invalid(field, "want a JSON object, got %s", kind(t[0]))
	}
	return nil
}

func kind(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	}
	return "a number"
}

// members are the command's JSON members. encoding/json matches names
// case-insensitively; a command is checked for exact names first, so that a
// misspelt "sessionID" is refused rather than silently accepted.
var members = map[string]bool{"action": true, "requestId": true, "sessionId": true, "session": true, "requestedAdditionalDuration": true, "device": true}

func decode(body []byte, w *wire) error {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(&m)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err != nil {
		return decodeError(body, err)
	}
	if m == nil {
		return invalid("", "want a JSON command object, got null")
	}
	for k := range m {
		if !members[k] {
			return invalid(bridge.Printable(k, bridge.MaxQuoted), "unknown member (a command has action, requestId, sessionId, session, requestedAdditionalDuration, device)")
		}
	}
	dec = json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(w); err != nil {
		return decodeError(body, err)
	}
	return nil
}

func decodeError(body []byte, err error) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("", "empty message: want a JSON command object")
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return invalid("", "not JSON: %v (at byte %d)", se, se.Offset)
	case errors.As(err, &te):
		if te.Field == "" {
			return invalid("", "want a JSON command object, got %s", te.Value)
		}
		return invalid(te.Field, "want %s, got %s", strings.TrimPrefix(te.Type.String(), "*"), te.Value)
	}
	if strings.Contains(err.Error(), "unexpected EOF") {
		return invalid("", "truncated JSON")
	}
	return invalid("", "%v", err)
}

func validSessionID(s string) bool {
	if len(s) > MaxSessionIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func validRequestID(s string) bool {
	if s == "" || len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// NewRequestID returns a random request id (32 hex digits).
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return hex.EncodeToString(b[:])
}

// Result is the data of a result message, the same on every broker.
type Result struct {
	RequestID string `json:"requestId"`
	Action    Action `json:"action,omitempty"`
	OK        bool   `json:"ok"`
	// Status is the HTTP status of the QoD API's answer, or the status the
	// bridge assigns (400 for an invalid command, 503 when the API stayed
	// unavailable through every retry).
	Status int `json:"status"`
	// Session is the CAMARA SessionInfo of create, get and extend.
	Session json.RawMessage `json:"session,omitempty"`
	// Sessions is list's array of SessionInfo ("[]" when there are none).
	Sessions json.RawMessage `json:"sessions,omitempty"`
	// Error is set when OK is false.
	Error *qodapi.ErrorInfo `json:"error,omitempty"`
}

// Outcome is everything an intake publishes for one command.
type Outcome struct {
	Result Result
	// SessionID is the session the command concerns when known (the
	// created session's id for create): the Kafka key of the result.
	SessionID string
	// DeadLetter, when not empty, is why the command is dead-lettered:
	// publish the original message to the dead-letter subject or topic with
	// this reason, besides the result.
	DeadLetter string
	// Panic is set when the outcome stands for a panic Handle recovered.
	Panic *PanicError
	// id, when set, replaces ResultID(Result.RequestID) as the result's
	// id: a conflict answer to a reused requestId must not carry the id of
	// the earlier command's result, or a broker that deduplicates by it
	// would drop the answer.
	id string
}

// ID is the CloudEvents id and broker dedup key of the outcome's result:
// ResultID of the requestId, so that a redelivered command's result is
// stored once, except for a conflict answer to a reused requestId, whose id
// is derived from the conflicting command too.
func (o *Outcome) ID() string {
	if o.id != "" {
		return o.id
	}
	return ResultID(o.Result.RequestID)
}

// Outcome labels, for metrics: what became of a command.
const (
	OutcomeOK         = "ok"          // the API did what was asked
	OutcomeError      = "error"       // an error result (404, 409, API unavailable, …)
	OutcomeDeadLetter = "dead_letter" // invalid: error result and dead letter
	OutcomeUnfinished = "unfinished"  // left for redelivery (shutdown, publish failed)
	// OutcomeTerminated: not even a dead letter could be published within
	// the delivery limit; the command was logged and dropped.
	OutcomeTerminated = "terminated"
	// OutcomeInternal: handling the command panicked; it was answered and
	// dead-lettered with ReasonInternal.
	OutcomeInternal = "internal_error"
)

// Label is o's outcome label.
func (o *Outcome) Label() string {
	switch {
	case o.Panic != nil:
		return OutcomeInternal
	case o.DeadLetter != "":
		return OutcomeDeadLetter
	case o.Result.OK:
		return OutcomeOK
	}
	return OutcomeError
}

// JSON encodes the result.
func (r *Result) JSON() []byte {
	b, err := json.Marshal(r)
	if err != nil { // RawMessage fields hold valid JSON from the API or us
		b, _ = json.Marshal(Result{RequestID: r.RequestID, Action: r.Action, Status: http.StatusInternalServerError,
			Error: &qodapi.ErrorInfo{Status: 500, Code: "INTERNAL", Message: "result could not be encoded: " + err.Error()}})
	}
	return b
}

// MaxReasonLen bounds a dead letter's reason and an error result's
// message: both may quote what the command carried.
const MaxReasonLen = 1024

// InvalidOutcome is the outcome of a command Parse refused: an error
// result (status 400, code INVALID_ARGUMENT, the reason as message) and a
// dead letter with the same reason.
func InvalidOutcome(cmd Command, err error) Outcome {
	return errorOutcome(cmd, http.StatusBadRequest, "INVALID_ARGUMENT", err.Error())
}

// ReasonInternal is the dead-letter reason of a command whose handling
// panicked.
const ReasonInternal = "internal error"

// InternalOutcome is the outcome of a command whose handling panicked: an
// error result (status 500, code INTERNAL) and a dead letter with reason
// ReasonInternal, so that the command ends once instead of being
// redelivered into the same panic.
func InternalOutcome(cmd Command) Outcome {
	return errorOutcome(cmd, http.StatusInternalServerError, "INTERNAL", ReasonInternal)
}

// errorOutcome is a dead-lettered error result. Only what Parse validated
// is echoed: an action that is not one of Actions, or a sessionId Parse
// did not accept, stays out of the result, so that the result's size does
// not depend on the command's.
func errorOutcome(cmd Command, status int, code, reason string) Outcome {
	reason = bridge.Printable(reason, MaxReasonLen)
	action := cmd.Action
	if !action.Valid() {
		action = ""
	}
	sessionID := cmd.SessionID
	if !validSessionID(sessionID) {
		sessionID = ""
	}
	return Outcome{
		Result: Result{RequestID: cmd.RequestID, Action: action, Status: status,
			Error: &qodapi.ErrorInfo{Status: status, Code: code, Message: reason}},
		SessionID:  sessionID,
		DeadLetter: reason,
	}
}

// BareOutcome is what an intake publishes in place of out when out could
// not be published and the command has no delivery left: the result
// without its session data, as an error saying why (and, for a command
// that ran, with what status), and a dead letter with that reason besides
// out's own. Published with a dead letter that carries none of the
// original, it fits any broker.
func BareOutcome(out Outcome, why string) Outcome {
	r := out.Result
	msg := why
	if r.OK {
		msg = fmt.Sprintf("the command ran (status %d), but %s", r.Status, why)
	}
	r.OK, r.Status, r.Session, r.Sessions = false, http.StatusInternalServerError, nil, nil
	r.Error = &qodapi.ErrorInfo{Status: http.StatusInternalServerError, Code: "INTERNAL", Message: bridge.Printable(msg, MaxReasonLen)}
	reason := why
	if out.DeadLetter != "" {
		reason = out.DeadLetter + "; " + why
	}
	return Outcome{Result: r, SessionID: out.SessionID, DeadLetter: bridge.Printable(reason, MaxReasonLen)}
}
