// Package bridge is the domain of qodbridge: the canonical QoD status event
// and its wire format, the contract a broker must meet to carry it, and the
// naming rules that turn a sessionId into a NATS subject token.
//
// Delivery semantics: an Event is handed to a Publisher, and a caller may
// report success to whoever sent the event only after Publish returned nil,
// that is after every configured broker acknowledged it. Publishers make one
// attempt; the sender of the notification retries (QoD platforms retry
// webhooks), and brokers deduplicate the retry by Event.DedupKey where they
// can (JetStream's Nats-Msg-Id). Ordering: events of one session are kept in
// the order they were published by addressing them by sessionId (one NATS
// subject, one Kafka partition); no order is promised across sessions.
//
// Wire format: this package is the one home of the outgoing CloudEvent's
// bytes, and every sink takes them from here. Event.Attributes lists the
// context attributes and extensions; Event.AppendData (Data) writes the
// data {"sessionId","qosStatus","statusInfo"}, statusInfo left out when
// absent; Event.AppendStructured (StructuredJSON) writes the structured
// form (StructuredContentType), its members in the order encoding/json
// writes a map's. Both write exactly what json.Marshal would (held to it by
// FuzzWireFormat) without reflection, and allocate nothing when the buffer
// has room. In binary mode a Binding names and encodes the headers:
// NATSBinding for NATS (the HTTP binding's form: ce-<attr>, values
// percent-encoded by HeaderValue, Content-Type) and KafkaBinding for Kafka
// (ce_<attr>, values as they are, content-type); the result messages of
// the command flow use the same bindings.
//
// Session view (view.go): which event of a session is its current status,
// whatever order retries arrive in, is decided here once, by CompareView
// (the rule and its reasons are its documentation), Advances and MaxView;
// ViewUpdater is what the ingress needs from a broker's view, and
// Binding.Decode reads the history back for a rebuild.
//
// Sub-packages hold the pieces that use this model: ingress (HTTP in),
// normalize, the QoD API client, the command engine, the QoD simulator and
// the console.
//
// Imports: nothing of ours. No package under bridge/ imports config, sinks
// or cmd: the domain knows no broker and no configuration file.
package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// EventType is the CloudEvents type of every canonical event qodbridge
// publishes, whatever type the platform sent (QoD 1.x, specs/).
const EventType = "org.camaraproject.quality-on-demand.v1.qos-status-changed"

// Input event types that normalize to EventType.
const (
	// EventTypeV0 is sent by QoD v0.10 platforms and Network as Code.
	EventTypeV0 = "org.camaraproject.qod.v0.qos-status-changed"
	// EventTypeV1 is what CAMARA's own test definitions expect.
	EventTypeV1 = "org.camaraproject.qod.v1.qos-status-changed"
	// EventTypeLegacy is the eventType of the QoD v0.9 body {event{eventType,...}}.
	EventTypeLegacy = "QOS_STATUS_CHANGED"
)

// SpecVersion is the only CloudEvents spec version qodbridge accepts and emits.
const SpecVersion = "1.0"

// QoSStatus is the status of a QoD session.
type QoSStatus string

// Session statuses, as the CAMARA QoD API defines them.
const (
	StatusRequested   QoSStatus = "REQUESTED"
	StatusAvailable   QoSStatus = "AVAILABLE"
	StatusUnavailable QoSStatus = "UNAVAILABLE"
)

// Valid reports whether s is one of the three statuses of the QoD API.
func (s QoSStatus) Valid() bool {
	return s == StatusRequested || s == StatusAvailable || s == StatusUnavailable
}

// StatusInfo says why a session became UNAVAILABLE. The empty value means
// absent (the API sends null or leaves it out).
type StatusInfo string

// Reasons for UNAVAILABLE, as the CAMARA QoD API defines them.
const (
	InfoDurationExpired   StatusInfo = "DURATION_EXPIRED"
	InfoNetworkTerminated StatusInfo = "NETWORK_TERMINATED"
	InfoDeleteRequested   StatusInfo = "DELETE_REQUESTED"
)

// Valid reports whether i is absent or one of the three reasons of the QoD API.
func (i StatusInfo) Valid() bool {
	return i == "" || i == InfoDurationExpired || i == InfoNetworkTerminated || i == InfoDeleteRequested
}

// Event is the canonical status event: one status change of one QoD session.
// Its CloudEvents form has type EventType, subject and extension partitionkey
// equal to SessionID, datacontenttype application/json and the data of Data.
type Event struct {
	// ID and Source are kept from the input; together they identify the
	// event for deduplication.
	ID     string
	Source string
	// Time is the RFC 3339 time of the change as the platform sent it, or
	// empty when the platform sent none.
	Time string

	SessionID  string
	QoSStatus  QoSStatus
	StatusInfo StatusInfo

	// TraceParent and TraceState are the W3C trace context carried over from
	// the input, empty when absent.
	TraceParent string
	TraceState  string
}

// DedupKey is a digest of Source and ID: the same notification resent by a
// platform yields the same key, so brokers that deduplicate (JetStream's
// Nats-Msg-Id) store it once.
func (e *Event) DedupKey() string {
	// Length-prefix Source so ("a","bc") and ("ab","c") differ. Built in
	// a stack buffer: this runs for every event.
	var stack [256]byte
	b := strconv.AppendInt(stack[:0], int64(len(e.Source)), 10)
	b = append(b, ':')
	b = append(b, e.Source...)
	b = append(b, e.ID...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// ErrClosed is returned by a Publisher's Publish after it was closed.
var ErrClosed = errors.New("bridge: publisher closed")

// ErrTooLarge is wrapped by the error a Publisher returns, before it sends
// anything, when an event's encoded form cannot fit the broker's message
// size (NATS max_payload, Kafka's message size limit). Unlike a broker
// failure it is about the input: the same event will never fit, so the
// sender must not retry it unchanged (the ingress answers 413, not 503).
var ErrTooLarge = errors.New("bridge: event too large for the broker")

// Publisher delivers canonical events to a broker.
//
// Publish blocks until the broker acknowledged every one of events, ctx is
// done, or publishing failed. A nil error means every event was acknowledged
// (stored as durably as the broker promises) and the caller may acknowledge
// them to their sender. A non-nil error means the caller must treat all of
// them as not delivered, though some may have been stored: the sender's retry
// is deduplicated where the broker can (Event.DedupKey). Publish makes one
// attempt and never retries: retries belong to the sender. It is safe for
// concurrent use, and events of one call need not share a session. Publish
// with no events returns nil. After the publisher was closed, Publish
// returns an error wrapping ErrClosed.
//
// Publish checks that every event of the call fits the broker's message
// size before it sends any of them; when one does not, it sends nothing and
// returns an error wrapping ErrTooLarge. Any other error means the events
// were not delivered this time, and the sender may retry them.
type Publisher interface {
	Publish(ctx context.Context, events ...Event) error
}

// SessionToken turns a sessionId into one NATS subject token: every byte
// outside [A-Za-z0-9_-] is percent-encoded ("." becomes "%2E"), so any id is
// exactly one valid token and ParseToken reverses it.
func SessionToken(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if !tokenSafe(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(id) + 2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// ErrBadToken is returned by ParseToken for a string SessionToken cannot have
// produced.
var ErrBadToken = errors.New("bridge: malformed subject token")

// ParseToken reverses SessionToken.
func ParseToken(tok string) (string, error) {
	if !strings.Contains(tok, "%") {
		for i := 0; i < len(tok); i++ {
			if !tokenSafe(tok[i]) {
				return "", fmt.Errorf("%w: byte %q at %d", ErrBadToken, tok[i], i)
			}
		}
		return tok, nil
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case tokenSafe(c):
			b.WriteByte(c)
		case c == '%' && i+2 < len(tok) && isUpperHex(tok[i+1]) && isUpperHex(tok[i+2]):
			v := unhex(tok[i+1])<<4 | unhex(tok[i+2])
			if tokenSafe(v) { // SessionToken never encodes a safe byte
				return "", fmt.Errorf("%w: %q encodes a safe byte", ErrBadToken, tok[i:i+3])
			}
			b.WriteByte(v)
			i += 2
		default:
			return "", fmt.Errorf("%w: byte %q at %d", ErrBadToken, c, i)
		}
	}
	return b.String(), nil
}

func tokenSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
