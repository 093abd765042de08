package qodapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// Sentinels an *APIError matches with errors.Is, by HTTP status.
var (
	// ErrBadRequest matches a 400 answer.
	ErrBadRequest = errors.New("qodapi: bad request")
	// ErrUnauthenticated matches a 401 answer (from the API or the OAuth2
	// token endpoint).
	ErrUnauthenticated = errors.New("qodapi: unauthenticated")
	// ErrPermissionDenied matches a 403 answer.
	ErrPermissionDenied = errors.New("qodapi: permission denied")
	// ErrNotFound matches a 404 answer.
	ErrNotFound = errors.New("qodapi: not found")
	// ErrConflict matches a 409 answer.
	ErrConflict = errors.New("qodapi: conflict")
	// ErrGone matches a 410 answer.
	ErrGone = errors.New("qodapi: gone")
	// ErrUnprocessable matches a 422 answer.
	ErrUnprocessable = errors.New("qodapi: unprocessable entity")
	// ErrTooManyRequests matches a 429 answer.
	ErrTooManyRequests = errors.New("qodapi: too many requests")
	// ErrServer matches any 5xx answer.
	ErrServer = errors.New("qodapi: server error")
)

// Errors for failures that are not an answer of the API.
var (
	// ErrInvalidInput is wrapped by errors about the caller's input (a body
	// that is not a JSON object, an empty session id, a sink credential v0
	// cannot carry): the request was not sent, and sending it again will not
	// help.
	ErrInvalidInput = errors.New("qodapi: invalid input")
	// ErrInvalidOptions is wrapped by New's errors.
	ErrInvalidOptions = errors.New("qodapi: invalid options")
	// ErrTimeout is wrapped (with context.DeadlineExceeded) when a call ran
	// out of Options.Timeout. Retryable.
	ErrTimeout = errors.New("qodapi: call timed out")
	// ErrTransport is wrapped (with the cause) when the request could not be
	// sent or the answer not read: connection refused or reset, TLS, DNS.
	// Retryable, except certificate errors.
	ErrTransport = errors.New("qodapi: transport failure")
	// ErrBadResponse is wrapped when a 2xx answer cannot be used: not JSON,
	// not the expected shape, no sessionId, or larger than
	// Options.MaxResponseBytes. The call may have taken effect.
	ErrBadResponse = errors.New("qodapi: malformed response")
)

// ErrorInfo is the CAMARA error body {status, code, message}.
type ErrorInfo struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// APIError is an answer of the QoD API (or of the OAuth2 token endpoint)
// other than 2xx. Its ErrorInfo is taken from the body when the body is a
// CAMARA ErrorInfo; otherwise Code is derived from the status (NOT_FOUND,
// UNAVAILABLE, HTTP_418, …) and Message from a JSON "message", "detail" or
// "error_description" field, else the status text. Status is always the HTTP
// status, whatever the body says.
type APIError struct {
	ErrorInfo
	// Op is the operationId of the call (createSession, getSession,
	// extendQosSessionDuration, deleteSession, retrieveSessionsByDevice), or
	// "token" for the OAuth2 token endpoint.
	Op string
	// RetryAfter is the Retry-After of the answer (delay-seconds or
	// HTTP-date), zero when absent or past.
	RetryAfter time.Duration
}

var _ error = (*APIError)(nil)

// Error returns "qodapi: <op>: <status> <code>: <message>".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("qodapi: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteByte(' ')
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is matches e against the status sentinels (ErrNotFound for 404, ErrServer
// for any 5xx, …).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthenticated:
		return e.Status == http.StatusUnauthorized
	case ErrPermissionDenied:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrGone:
		return e.Status == http.StatusGone
	case ErrUnprocessable:
		return e.Status == http.StatusUnprocessableEntity
	case ErrTooManyRequests:
		return e.Status == http.StatusTooManyRequests
	case ErrServer:
		return e.Status >= 500 && e.Status <= 599
	}
	return false
}

// Temporary reports whether the same request may succeed later: 408, 429,
// and 5xx except 501 Not Implemented.
func (e *APIError) Temporary() bool {
	switch {
	case e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooManyRequests:
		return true
	case e.Status == http.StatusNotImplemented:
		return false
	}
	return e.Status >= 500 && e.Status <= 599
}

// Retryable reports whether err, returned by a Client call, is worth another
// attempt: an *APIError that is Temporary, a per-call timeout (ErrTimeout),
// or a transport failure other than a certificate error. A cancelled or
// expired caller ctx, invalid input and malformed answers are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.Temporary()
	}
	if errors.Is(err, ErrTimeout) {
		return true
	}
	if errors.Is(err, ErrTransport) {
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			return false
		}
		if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
			return false
		}
		if _, ok := errors.AsType[x509.HostnameError](err); ok {
			return false
		}
		return true
	}
	return false
}

// RetryAfter returns the Retry-After of the *APIError in err's chain, zero if
// there is none.
func RetryAfter(err error) time.Duration {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.RetryAfter
	}
	return 0
}

// maxMessage bounds an error message taken from a body, so a verbose
// platform cannot flood logs and results.
const maxMessage = 512

// newAPIError builds the error for a non-2xx answer.
func newAPIError(op string, status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Op: op, ErrorInfo: ErrorInfo{Status: status}}
	e.RetryAfter = parseRetryAfter(h.Get("Retry-After"), now)
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) == nil {
		e.Code = jsonString(fields["code"])
		for _, k := range []string{"message", "detail", "error_description", "error"} {
			if m := messageOf(fields[k]); m != "" {
				e.Message = m
				break
			}
		}
	}
	if e.Code == "" {
		e.Code = codeForStatus(status)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	e.Message = bridge.Truncate(e.Message, maxMessage)
	return e
}

func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// messageOf returns a JSON string as is and any other non-null JSON value
// (FastAPI puts a list of problems in "detail") as compact JSON.
func messageOf(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if s := jsonString(raw); s != "" {
		return s
	}
	if raw[0] == '"' {
		return ""
	}
	return string(raw)
}

// codeForStatus derives a CAMARA error code from an HTTP status for answers
// whose body carries none.
func codeForStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 405:
		return "METHOD_NOT_ALLOWED"
	case 406:
		return "NOT_ACCEPTABLE"
	case 409:
		return "CONFLICT"
	case 410:
		return "GONE"
	case 412:
		return "FAILED_PRECONDITION"
	case 415:
		return "UNSUPPORTED_MEDIA_TYPE"
	case 422:
		return "UNPROCESSABLE_ENTITY"
	case 429:
		return "TOO_MANY_REQUESTS"
	case 500:
		return "INTERNAL"
	case 501:
		return "NOT_IMPLEMENTED"
	case 502:
		return "BAD_GATEWAY"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "TIMEOUT"
	}
	return "HTTP_" + strconv.Itoa(status)
}

// parseRetryAfter reads delay-seconds or an HTTP-date; anything else, or a
// time already past, is zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		const maxSeconds = int64(1<<63-1) / int64(time.Second)
		return time.Duration(min(n, maxSeconds)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// callError is a failure of one call that is not an answer: it names the
// operation and wraps both a kind sentinel (ErrTimeout, ErrTransport, …) and
// the cause.
type callError struct {
	op    string
	kind  error // may be nil
	cause error
}

func (e *callError) Error() string {
	if e.kind == nil {
		return fmt.Sprintf("qodapi: %s: %v", e.op, e.cause)
	}
	return fmt.Sprintf("qodapi: %s: %s: %v", e.op, strings.TrimPrefix(e.kind.Error(), "qodapi: "), e.cause)
}

func (e *callError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.cause}
	}
	return []error{e.kind, e.cause}
}
