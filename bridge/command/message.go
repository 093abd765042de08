package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

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
)

// ResultAttributes are the CloudEvents attributes of o's result message in
// binary mode; the message body is o.Result.JSON(). The id is derived from
// the requestId, so the result of a redelivered command carries the same
// id and a broker that deduplicates stores it once.
func (o *Outcome) ResultAttributes(source string) []bridge.Attr {
	if source == "" {
		source = DefaultResultSource
	}
	a := []bridge.Attr{
		{Name: "specversion", Value: bridge.SpecVersion},
		{Name: "id", Value: ResultID(o.Result.RequestID)},
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
// message's headers (a traceparent header continues the sender's trace);
// it returns the context to execute with and a function to call with the
// outcome's error. Intakes take one as an option; nil means tracing off.
type TraceFunc func(ctx context.Context, header func(string) string, action Action) (context.Context, func(error))

// ExecuteTraced runs exec for cmd inside trace's span when trace is not
// nil; an error result ends the span as failed too.
func ExecuteTraced(ctx context.Context, trace TraceFunc, header func(string) string, cmd Command,
	exec func(context.Context, Command) (Outcome, error)) (Outcome, error) {
	if trace == nil {
		return exec(ctx, cmd)
	}
	ctx, end := trace(ctx, header, cmd.Action)
	out, err := exec(ctx, cmd)
	if err == nil && !out.Result.OK {
		end(fmt.Errorf("%s: %d %s", cmd.Action, out.Result.Status, out.Label()))
	} else {
		end(err)
	}
	return out, err
}
