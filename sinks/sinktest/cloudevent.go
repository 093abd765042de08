package sinktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/qodbridge/qodbridge/bridge"
)

// InteropEvents are events whose attributes exercise what a binding can get
// wrong: a plain one, and one whose id, source and tracestate hold spaces,
// '%', '"', non-ASCII text and a time with an offset and fractions.
func InteropEvents(session string) []bridge.Event {
	return []bridge.Event{
		{
			ID: "evt-1", Source: "https://platform.example/qod", Time: "2024-06-01T12:00:00Z",
			SessionID: session, QoSStatus: bridge.StatusAvailable,
			TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		},
		{
			ID: `évt 2 "50%"`, Source: "https://platform.example/qod?tenant=a%20b", Time: "2024-06-01T14:00:00.123456+02:00",
			SessionID: session, QoSStatus: bridge.StatusUnavailable, StatusInfo: bridge.InfoDurationExpired,
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			TraceState:  "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
		},
	}
}

// SDKDiff compares an event as the CloudEvents SDK read it from a broker
// with the bridge.Event that was published: every context attribute
// (specversion, id, source, type, subject, time, datacontenttype), every
// extension (partitionkey, traceparent, tracestate; others the reader's
// protocol binding adds itself, named in extra, must be there too), and the
// data, compared as JSON. It returns the differences, none when they agree,
// and also reports an event the SDK does not hold valid.
func SDKDiff(got *event.Event, want bridge.Event, extra map[string]string) []string {
	var diffs []string
	check := func(what, g, w string) {
		if g != w {
			diffs = append(diffs, fmt.Sprintf("%s = %q, want %q", what, g, w))
		}
	}
	if err := got.Validate(); err != nil {
		diffs = append(diffs, fmt.Sprintf("the SDK holds the event invalid: %v", err))
	}
	check("specversion", got.SpecVersion(), bridge.SpecVersion)
	check("id", got.ID(), want.ID)
	check("source", got.Source(), want.Source)
	check("type", got.Type(), bridge.EventType)
	check("subject", got.Subject(), want.SessionID)
	check("datacontenttype", got.DataContentType(), bridge.DataContentType)
	switch {
	case want.Time == "" && !got.Time().IsZero():
		diffs = append(diffs, fmt.Sprintf("time = %s, want none", got.Time()))
	case want.Time != "":
		wt, err := time.Parse(time.RFC3339Nano, want.Time)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("the published time %q is not RFC 3339: %v", want.Time, err))
		} else if !got.Time().Equal(wt) {
			diffs = append(diffs, fmt.Sprintf("time = %s, want %s", got.Time().Format(time.RFC3339Nano), want.Time))
		}
	}
	wantExt := map[string]string{"partitionkey": want.SessionID}
	if want.TraceParent != "" {
		wantExt["traceparent"] = want.TraceParent
	}
	if want.TraceState != "" {
		wantExt["tracestate"] = want.TraceState
	}
	maps.Copy(wantExt, extra)
	gotExt := map[string]string{}
	for k, v := range got.Extensions() {
		gotExt[k] = fmt.Sprint(v)
	}
	if !maps.Equal(gotExt, wantExt) {
		diffs = append(diffs, fmt.Sprintf("extensions = %v, want %v", sorted(gotExt), sorted(wantExt)))
	}
	var g, w any
	if err := json.Unmarshal(got.Data(), &g); err != nil {
		diffs = append(diffs, fmt.Sprintf("data %q is not JSON: %v", got.Data(), err))
	} else if _ = json.Unmarshal(want.Data(), &w); !jsonEqual(g, w) {
		diffs = append(diffs, fmt.Sprintf("data = %s, want %s", got.Data(), want.Data()))
	}
	return diffs
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func sorted(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}
