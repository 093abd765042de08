package qodclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/qodbridge/qodbridge/bridge/command"
)

// Sentinels an *Error matches with errors.Is, by status.
var (
	// ErrInvalid matches a command refused as invalid: 400 or 422, whether
	// the bridge or the QoD API refused it. The bridge dead-lettered it;
	// sending it again unchanged will not help.
	ErrInvalid = errors.New("qodclient: invalid command")
	// ErrUnauthenticated matches 401 and ErrPermissionDenied 403 from the
	// QoD API (the bridge's credentials for it).
	ErrUnauthenticated  = errors.New("qodclient: unauthenticated")
	ErrPermissionDenied = errors.New("qodclient: permission denied")
	// ErrNotFound matches 404: no such session (or, on create or list, a
	// device the network does not know).
	ErrNotFound = errors.New("qodclient: not found")
	// ErrConflict matches 409: the device has a session already, or the
	// session cannot be extended now.
	ErrConflict = errors.New("qodclient: conflict")
	// ErrTooManyRequests matches 429: the API's rate limit or quota held
	// through the bridge's retries.
	ErrTooManyRequests = errors.New("qodclient: too many requests")
	// ErrUnavailable matches 5xx: the API failed or stayed unavailable
	// through the bridge's retries (503). Trying again later may succeed.
	ErrUnavailable = errors.New("qodclient: QoD API unavailable")
)

// ErrClosed is returned by the methods of a closed Client.
var ErrClosed = errors.New("qodclient: client closed")

// ErrDecode is wrapped by the error for a broker message that is not what
// the bridge publishes (a result or a status event that cannot be decoded).
var ErrDecode = errors.New("qodclient: malformed message")

// Error is a command's error result: the QoD API's answer (CAMARA
// ErrorInfo) or the bridge's own (400 for an invalid command, 503 when the
// API stayed unavailable). Use errors.As to read it and errors.Is with the
// sentinels above to classify it.
type Error struct {
	// RequestID names the command, Action what it asked.
	RequestID string
	Action    string
	// Status, Code and Message are the CAMARA ErrorInfo.
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("qodclient: %s %s: %d %s: %s", e.Action, e.RequestID, e.Status, e.Code, e.Message)
}

// Is matches e against the sentinels by its Status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity
	case ErrUnauthenticated:
		return e.Status == http.StatusUnauthorized
	case ErrPermissionDenied:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrTooManyRequests:
		return e.Status == http.StatusTooManyRequests
	case ErrUnavailable:
		return e.Status >= 500
	}
	return false
}

// resultError is the *Error of a failed result.
func resultError(r *command.Result) *Error {
	e := &Error{RequestID: r.RequestID, Action: string(r.Action), Status: r.Status}
	if r.Error != nil {
		e.Code, e.Message = r.Error.Code, r.Error.Message
		if e.Status == 0 {
			e.Status = r.Error.Status
		}
	}
	if e.Code == "" {
		e.Code = strings.ToUpper(strings.ReplaceAll(http.StatusText(e.Status), " ", "_"))
	}
	return e
}
