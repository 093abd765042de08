package qodclient

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// decodeStatus reads a canonical status event: structured mode when the
// content type says application/cloudevents+json, else binary mode with
// the attributes in headers prefix+name (percent-encoded on NATS).
func decodeStatus(header func(string) string, b *bridge.Binding, percent bool, body []byte) (StatusEvent, error) {
	attr := func(name string) (string, error) {
		v := header(b.Header(name))
		if !percent {
			return v, nil
		}
		return percentDecode(v)
	}
	var ev StatusEvent
	var data []byte
	var specversion, tm string
	if strings.HasPrefix(header(b.ContentTypeHeader()), bridge.StructuredContentType) {
		var s struct {
			SpecVersion string          `json:"specversion"`
			ID          string          `json:"id"`
			Source      string          `json:"source"`
			Time        string          `json:"time"`
			Data        json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return ev, fmt.Errorf("%w: structured status event: %w", ErrDecode, err)
		}
		specversion, ev.ID, ev.Source, tm, data = s.SpecVersion, s.ID, s.Source, s.Time, s.Data
	} else {
		var err error
		for _, a := range []struct {
			name string
			dst  *string
		}{{"specversion", &specversion}, {"id", &ev.ID}, {"source", &ev.Source}, {"time", &tm}} {
			if *a.dst, err = attr(a.name); err != nil {
				return ev, fmt.Errorf("%w: header %s: %w", ErrDecode, b.Header(a.name), err)
			}
		}
		data = body
	}
	if specversion != bridge.SpecVersion {
		return ev, fmt.Errorf("%w: specversion %q", ErrDecode, bridge.Truncate(specversion, 64))
	}
	var d bridge.StatusData
	if err := json.Unmarshal(data, &d); err != nil {
		return ev, fmt.Errorf("%w: status data: %w", ErrDecode, err)
	}
	ev.SessionID, ev.QoSStatus, ev.StatusInfo = d.SessionID, d.QoSStatus, d.StatusInfo
	if tm != "" {
		t, err := time.Parse(time.RFC3339Nano, tm)
		if err != nil {
			return ev, fmt.Errorf("%w: time %q", ErrDecode, bridge.Truncate(tm, 64))
		}
		ev.Time = t
	}
	return ev, nil
}

// percentDecode reverses bridge.HeaderValue.
func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad escape %q", s[i:i+3])
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
