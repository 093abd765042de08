package qodsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// profileNames returns the names of a QosProfile array answer.
func profileNames(t testing.TB, a answer) []string {
	t.Helper()
	var ps []qosProfile
	if err := json.Unmarshal(a.body, &ps); err != nil {
		t.Fatalf("not a QosProfile array: %v: %s", err, a.body)
	}
	names := []string{}
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

func TestProfilesAPI(t *testing.T) {
	h := newHarness(t, Options{Profiles: []Profile{
		{Name: "QOS_E", Description: "low latency", MinDuration: 10 * time.Second, MaxDuration: time.Hour},
		{Name: "QOS_L"},
		{Name: "QOS_OLD", Status: "DEPRECATED"},
		{Name: "QOS_VIP", Devices: []string{"+99999991005"}},
	}})
	retrieve := BasePathProfiles + "/retrieve-qos-profiles"
	dev := func(phone string) map[string]any { return map[string]any{"phoneNumber": phone} }
	for _, tc := range []struct {
		name string
		body any
		want []string
	}{
		{"all without a device", map[string]any{}, []string{"QOS_E", "QOS_L", "QOS_OLD"}},
		{"by name", map[string]any{"name": "QOS_L"}, []string{"QOS_L"}},
		{"by unknown name", map[string]any{"name": "QOS_XL"}, []string{}},
		{"by status", map[string]any{"status": "DEPRECATED"}, []string{"QOS_OLD"}},
		{"by status, none", map[string]any{"status": "INACTIVE"}, []string{}},
		{"for a device", map[string]any{"device": dev("+36700000001")}, []string{"QOS_E", "QOS_L", "QOS_OLD"}},
		{"for the restricted device", map[string]any{"device": dev("+99999991005")}, []string{"QOS_E", "QOS_L", "QOS_OLD", "QOS_VIP"}},
		{"restricted by name without device", map[string]any{"name": "QOS_VIP"}, []string{}},
		{"for a device with no profiles", map[string]any{"device": dev("+99999991004")}, []string{}},
		{"by two identifiers", map[string]any{"device": map[string]any{"phoneNumber": "+99999991005", "networkAccessIdentifier": "a@b"}}, []string{"QOS_E", "QOS_L", "QOS_OLD", "QOS_VIP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.c.t = t
			a := h.c.do("POST", retrieve, tc.body, "x-correlator", "c-1")
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if got := profileNames(t, a); !slices.Equal(got, tc.want) {
				t.Errorf("profiles %v, want %v", got, tc.want)
			}
		})
	}
	h.c.t = t
	a := h.c.do("POST", retrieve, map[string]any{"name": "QOS_E"})
	if !strings.Contains(string(a.body), `"minDuration":{"value":10,"unit":"Seconds"},"maxDuration":{"value":3600,"unit":"Seconds"}`) ||
		!strings.Contains(string(a.body), `"description":"low latency"`) {
		t.Errorf("QOS_E %s", a.body)
	}

	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"no body", nil, 400, "INVALID_ARGUMENT"},
		{"not an object", "[]", 400, "INVALID_ARGUMENT"},
		{"bad status", map[string]any{"status": "RETIRED"}, 400, "INVALID_ARGUMENT"},
		{"bad name", map[string]any{"name": "Q"}, 400, "INVALID_ARGUMENT"},
		{"name wrong type", map[string]any{"name": 5}, 400, "INVALID_ARGUMENT"},
		{"device empty", map[string]any{"device": map[string]any{}}, 400, "INVALID_ARGUMENT"},
		{"device bad phone", map[string]any{"device": dev("123")}, 400, "INVALID_ARGUMENT"},
		{"device by NAI alone", map[string]any{"device": map[string]any{"networkAccessIdentifier": "a@b"}}, 422, "UNSUPPORTED_IDENTIFIER"},
		{"device not found", map[string]any{"device": dev("+99999991404")}, 404, "IDENTIFIER_NOT_FOUND"},
		{"device not applicable", map[string]any{"device": dev("+99999991422")}, 422, "SERVICE_NOT_APPLICABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.c.t = t
			a := h.c.do("POST", retrieve, tc.body)
			if a.status != tc.status || a.errorInfo(t).Code != tc.code {
				t.Errorf("%d %s, want %d %s", a.status, a.body, tc.status, tc.code)
			}
		})
	}
	h.c.t = t

	get := BasePathProfiles + "/qos-profiles/"
	a = h.c.do("GET", get+"QOS_OLD", nil, "x-correlator", "c-2")
	if p := a.json(t); a.status != 200 || p["name"] != "QOS_OLD" || p["status"] != "DEPRECATED" {
		t.Errorf("get QOS_OLD: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"QOS_XL", 404},
		{"QL", 400},
		{"QOS%20L", 400},
		{"QOS@L", 400},
		{strings.Repeat("Q", 257), 400},
	} {
		if a := h.c.do("GET", get+tc.name, nil); a.status != tc.status {
			t.Errorf("get %s: %d %s", tc.name, a.status, a.body)
		}
	}
	if a := h.c.do("GET", retrieve, nil); a.status != 405 || a.header.Get("Allow") != "POST" {
		t.Errorf("GET retrieve-qos-profiles: %d %v", a.status, a.header)
	}
	if a := h.c.do("DELETE", get+"QOS_L", nil); a.status != 405 {
		t.Errorf("DELETE a profile: %d", a.status)
	}
	if a := h.c.do("GET", BasePathProfiles+"/qos-profiles", nil); a.status != 404 {
		t.Errorf("GET the v0-style listing under v1: %d", a.status)
	}
}

// TestProfilesAreEnforced: what the qos-profiles API tells a client is what
// createSession and extend enforce, for every profile of the default set
// and a changed one.
func TestProfilesAreEnforced(t *testing.T) {
	var o Options
	o.Profiles = append(DefaultProfiles(),
		Profile{Name: "QOS_SHORT", MinDuration: 5 * time.Second, MaxDuration: time.Minute},
		Profile{Name: "QOS_OFF", Status: "INACTIVE"},
		Profile{Name: "QOS_VIP", Devices: []string{"+99999991005"}})
	h := newHarness(t, o)
	var ps []qosProfile
	for _, phone := range []string{"+36700000001", "+99999991005"} {
		a := h.c.do("POST", BasePathProfiles+"/retrieve-qos-profiles", map[string]any{"device": map[string]any{"phoneNumber": phone}})
		var got []qosProfile
		if err := json.Unmarshal(a.body, &got); err != nil {
			t.Fatal(err)
		}
		for _, p := range got {
			if !slices.ContainsFunc(ps, func(q qosProfile) bool { return q.Name == p.Name }) {
				ps = append(ps, p)
			}
		}
	}
	if len(ps) != 7 {
		t.Fatalf("%d profiles listed, want 7", len(ps))
	}
	n := 0
	for _, p := range ps {
		t.Run(p.Name, func(t *testing.T) {
			h.c.t = t
			phone := func() string { n++; return fmt.Sprintf("+3670001%04d", n) }
			if p.Name == "QOS_VIP" {
				phone = func() string { return "+99999991005" }
			}
			if p.MinDuration.Unit != "Seconds" || p.MaxDuration.Unit != "Seconds" {
				t.Fatalf("units %+v", p)
			}
			b := createBody(phone(), "", "")
			b["qosProfile"] = p.Name
			if p.Status != "ACTIVE" {
				a := h.c.do("POST", BasePathV1+"/sessions", b)
				if a.status != 422 || a.errorInfo(t).Code != codeProfileNotApplicable {
					t.Errorf("create with a %s profile: %d %s", p.Status, a.status, a.body)
				}
				return
			}
			for _, d := range []int64{p.MinDuration.Value - 1, p.MaxDuration.Value + 1} {
				b["duration"] = d
				if a := h.c.do("POST", BasePathV1+"/sessions", b); d > 0 && (a.status != 400 || a.errorInfo(t).Code != codeDurationOutOfRange) {
					t.Errorf("duration %d: %d %s", d, a.status, a.body)
				}
			}
			b["duration"] = p.MinDuration.Value
			id := h.c.create(b)["sessionId"].(string)
			h.clk.Advance(time.Second) // AVAILABLE
			a := h.c.do("POST", BasePathV1+"/sessions/"+id+"/extend", map[string]any{"requestedAdditionalDuration": p.MaxDuration.Value})
			if a.status != 200 || a.json(t)["duration"] != float64(p.MaxDuration.Value) {
				t.Errorf("extend beyond maxDuration: %d %s", a.status, a.body)
			}
			h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil)
			if p.Name == "QOS_VIP" {
				b["device"] = map[string]any{"phoneNumber": "+36700009999"}
				if a := h.c.do("POST", BasePathV1+"/sessions", b); a.status != 422 {
					t.Errorf("restricted profile for another device: %d %s", a.status, a.body)
				}
			}
		})
	}
	if a := h.c.do("GET", BasePathProfiles+"/qos-profiles/QOS_OFF", nil); a.status != http.StatusOK {
		t.Errorf("an INACTIVE profile is not readable: %d", a.status)
	}
}
