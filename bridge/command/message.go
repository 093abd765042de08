package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/qodbridge/qodbridge/bridge"
)

// ResultEventType is the CloudEvents type of result messages.
const ResultEventType = "org.qodbridge.command.result.v1"

// DefaultResultSource is the CloudEvents source of result messages when the
// intake names none.
const DefaultResultSource = "urn:qodbridge:commands"

// Header names on dead-lettered commands (NATS headers, Kafka headers).
const (
	// HeaderDeadLetterReason says why the command was dead-lettered.
	HeaderDeadLetterReason = "Qod-Dead-Letter-Reason"
	// HeaderRequestID is the requestId the error result was published under.
	HeaderRequestID = "Qod-Request-Id"
	// HeaderOriginalSubject is where the command was received (NATS subject
	// or Kafka topic).
	HeaderOriginalSubject = "Qod-Original-Subject"
	// HeaderAction is the Kafka header that may name a command's action.
	HeaderAction = "qod-action"
	// HeaderDeadLetterTruncated is set on a dead letter that does not
	// carry all of the original message: its value lists what was cut,
	// e.g. "body=600000" (the original body's size in bytes; the dead
	// letter keeps its first DeadLetterLimits.Body bytes), "key=2048" (a
	// Kafka key left out), "headers=3" (original headers left out).
	HeaderDeadLetterTruncated = "Qod-Dead-Letter-Truncated"
)

// Bounds of a dead letter, so that it never fails to publish because of
// what the original carried.
const (
	// DefaultDeadLetterBody is how much of the original body a dead
	// letter keeps by default.
	DefaultDeadLetterBody = 64 << 10
	// MaxDeadLetterHeader bounds one copied header (name and value).
	MaxDeadLetterHeader = 1 << 10
	// MaxDeadLetterHeaders bounds all copied headers together.
	MaxDeadLetterHeaders = 16 << 10
	// MaxDeadLetterKey bounds the Kafka key a dead letter keeps.
	MaxDeadLetterKey = 1 << 10
	// MaxOriginalSubject bounds the Qod-Original-Subject header.
	MaxOriginalSubject = 1 << 10
)

// CopiedHeader reports whether a header of a command goes onto its dead
// letter. Broker control headers are left out: a JetStream expectation
// such as Nats-Expected-Stream that held for the command stream would make
// the dead letter's publish fail, and Nats-Msg-Id would deduplicate it
// away; so are Kafka framework headers ("__TypeId__", "kafka_…") and this
// package's own dead-letter headers, which the dead letter sets anew.
func CopiedHeader(name string) bool {
	switch {
	case hasPrefixFold(name, "Nats-"), hasPrefixFold(name, "kafka_"), strings.HasPrefix(name, "__"),
		hasPrefixFold(name, "Qod-Dead-Letter-"), strings.EqualFold(name, HeaderRequestID),
		strings.EqualFold(name, HeaderOriginalSubject), hasPrefixFold(name, "Qod-Original-"):
		return false
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Trimmer bounds the parts of one dead letter taken from the original
// command and remembers what it cut, for HeaderDeadLetterTruncated. Its
// zero value is ready; use one per dead letter.
type Trimmer struct {
	cut          []string
	headerBytes  int
	droppedHeads int
}

// Body keeps at most limit bytes of body.
func (t *Trimmer) Body(body []byte, limit int) []byte {
	if len(body) <= limit {
		return body
	}
	t.cut = append(t.cut, "body="+strconv.Itoa(len(body)))
	return body[:max(limit, 0)]
}

// Key keeps a Kafka key of at most MaxDeadLetterKey bytes; a longer one is
// left out.
func (t *Trimmer) Key(key []byte) []byte {
	if len(key) <= MaxDeadLetterKey {
		return key
	}
	t.cut = append(t.cut, "key="+strconv.Itoa(len(key)))
	return nil
}

// Header reports whether the original's header name: value is copied:
// CopiedHeader allows it and it fits MaxDeadLetterHeader and, with the
// headers copied before it, MaxDeadLetterHeaders.
func (t *Trimmer) Header(name, value string) bool {
	if !CopiedHeader(name) {
		return false
	}
	n := len(name) + len(value)
	if n > MaxDeadLetterHeader || t.headerBytes+n > MaxDeadLetterHeaders {
		t.droppedHeads++
		return false
	}
	t.headerBytes += n
	return true
}

// Truncated is the value of HeaderDeadLetterTruncated, "" when nothing was
// cut.
func (t *Trimmer) Truncated() string {
	cut := t.cut
	if t.droppedHeads > 0 {
		cut = append(cut, "headers="+strconv.Itoa(t.droppedHeads))
	}
	return strings.Join(cut, ", ")
}

// ResultAttributes are the CloudEvents attributes of o's result message in
// binary mode; the message body is o.Result.JSON(). The id is o.ID(),
// derived from the requestId, so the result of a redelivered command
// carries the same id and a broker that deduplicates stores it once.
func (o *Outcome) ResultAttributes(source string) []bridge.Attr {
	if source == "" {
		source = DefaultResultSource
	}
	a := []bridge.Attr{
		{Name: "specversion", Value: bridge.SpecVersion},
		{Name: "id", Value: o.ID()},
		{Name: "source", Value: source},
		{Name: "type", Value: ResultEventType},
		{Name: "datacontenttype", Value: "application/json"},
	}
	if o.SessionID != "" {
		a = append(a, bridge.Attr{Name: "subject", Value: o.SessionID})
	}
	return a
}

// ResultID is the CloudEvents id (and dedup key) of the result of
// requestID.
func ResultID(requestID string) string {
	sum := sha256.Sum256([]byte("result\x00" + requestID))
	return hex.EncodeToString(sum[:16])
}

// TraceFunc starts a trace span for one command: header reads the command
// message's headers (a traceparent header, or the CloudEvents extension
// header ce-traceparent / ce_traceparent, continues the sender's trace),
// and ctx carries the message's bridge.Messaging when the intake set it; it
// returns the context to execute with and a function to call with the
// outcome's error. Intakes take one as an option; nil means tracing off.
type TraceFunc func(ctx context.Context, header func(string) string, action Action) (context.Context, func(error))

// PanicError is a panic recovered while a command was handled.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("command: panic: %v", e.Value) }

// Handle takes one received command to its outcome, the same way for every
// intake: a command Parse refused (parseErr) gets InvalidOutcome; a valid
// one runs exec inside trace's span (nil trace: no span). A panic in exec
// is recovered: the outcome is InternalOutcome with Panic set (log it,
// count it, publish the outcome), so that one poison command ends in a
// dead letter instead of crashing the process and then every instance it
// is redelivered to. The error is exec's: non-nil only when the command did
// not finish (ctx ended) and must be left for redelivery.
func Handle(ctx context.Context, trace TraceFunc, header func(string) string, cmd Command, parseErr error,
	exec func(context.Context, Command) (Outcome, error)) (out Outcome, err error) {
	if parseErr != nil {
		return InvalidOutcome(cmd, parseErr), nil
	}
	var end func(error)
	if trace != nil {
		ctx, end = trace(ctx, header, cmd.Action)
	}
	defer func() {
		if v := recover(); v != nil {
			out, err = InternalOutcome(cmd), nil
			out.Panic = &PanicError{Value: v, Stack: debug.Stack()}
		}
		if end == nil {
			return
		}
		switch {
		case out.Panic != nil:
			end(out.Panic)
		case err == nil && !out.Result.OK:
			end(fmt.Errorf("%s: %d %s", cmd.Action, out.Result.Status, out.Label()))
		default:
			end(err)
		}
	}()
	return exec(ctx, cmd)
}
