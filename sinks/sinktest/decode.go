package sinktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/qodbridge/qodbridge/bridge"
)

// ErrDecode is returned by the decoding helpers for a broker message that is
// not a canonical event in binary or structured mode.
var ErrDecode = errors.New("sinktest: not a canonical event")

// Content types of the two CloudEvents modes.
const (
	ContentTypeBinary     = "application/json"
	ContentTypeStructured = "application/cloudevents+json"
)

// Header returns the value of the header name in h, compared without regard
// to case (NATS sends Content-Type, Kafka content-type), and whether it was
// there.
func Header(h map[string]string, name string) (string, bool) {
	if v, ok := h[name]; ok {
		return v, true
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// CEAttributes returns the CloudEvents attributes carried in binary-mode
// headers: every header whose name starts with "ce-" (NATS, HTTP) or "ce_"
// (Kafka), in any case, keyed by the lower-case attribute name. Values of
// "ce-" headers are percent-decoded (the HTTP and NATS bindings encode
// them); values of "ce_" headers are taken as they are, because the Kafka
// binding carries them as plain UTF-8. It returns an empty map when h has
// none.
func CEAttributes(h map[string]string) (map[string]string, error) {
	attrs := make(map[string]string, len(h))
	for k, v := range h {
		if len(k) < 4 || !strings.EqualFold(k[:2], "ce") || (k[2] != '-' && k[2] != '_') {
			continue
		}
		name := strings.ToLower(k[3:])
		dv := v
		if k[2] == '-' {
			var err error
			if dv, err = PercentDecode(v); err != nil {
				return nil, fmt.Errorf("header %s: %w", k, err)
			}
		}
		if _, dup := attrs[name]; dup {
			return nil, fmt.Errorf("%w: attribute %s given twice", ErrDecode, name)
		}
		attrs[name] = dv
	}
	return attrs, nil
}

// PercentDecode reverses bridge.HeaderValue: every "%XX" becomes the byte
// 0xXX. A '%' not followed by two hex digits is an error, as the encoder
// never leaves one.
func PercentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("%w: truncated escape at %d in %q", ErrDecode, i, s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("%w: bad escape %q at %d", ErrDecode, s[i:i+3], i)
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Decode turns a broker message back into the event it carries: structured
// mode when its content type is application/cloudevents+json, binary mode
// otherwise.
func Decode(headers map[string]string, data []byte) (bridge.Event, error) {
	if ct, _ := Header(headers, "content-type"); strings.HasPrefix(ct, ContentTypeStructured) {
		return DecodeStructured(data)
	}
	return DecodeBinary(headers, data)
}

// DecodeBinary decodes a binary-mode message: attributes from the ce-/ce_
// headers, the session fields from the JSON body.
func DecodeBinary(headers map[string]string, data []byte) (bridge.Event, error) {
	attrs, err := CEAttributes(headers)
	if err != nil {
		return bridge.Event{}, err
	}
	return eventFrom(attrs, data)
}

// DecodeStructured decodes a structured-mode body
// (application/cloudevents+json) whose data is a JSON object.
func DecodeStructured(body []byte) (bridge.Event, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return bridge.Event{}, fmt.Errorf("%w: structured body: %w", ErrDecode, err)
	}
	attrs := make(map[string]string, len(raw))
	var data []byte
	for k, v := range raw {
		if k == "data" {
			data = v
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return bridge.Event{}, fmt.Errorf("%w: attribute %s is not a string: %w", ErrDecode, k, err)
		}
		attrs[k] = s
	}
	return eventFrom(attrs, data)
}

func eventFrom(attrs map[string]string, data []byte) (bridge.Event, error) {
	if v := attrs["specversion"]; v != bridge.SpecVersion {
		return bridge.Event{}, fmt.Errorf("%w: specversion %q", ErrDecode, v)
	}
	var d bridge.StatusData
	if err := json.Unmarshal(data, &d); err != nil {
		return bridge.Event{}, fmt.Errorf("%w: data: %w", ErrDecode, err)
	}
	return bridge.Event{
		ID:          attrs["id"],
		Source:      attrs["source"],
		Time:        attrs["time"],
		SessionID:   d.SessionID,
		QoSStatus:   d.QoSStatus,
		StatusInfo:  d.StatusInfo,
		TraceParent: attrs["traceparent"],
		TraceState:  attrs["tracestate"],
	}, nil
}
