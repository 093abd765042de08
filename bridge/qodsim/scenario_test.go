package qodsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestScenarioDevices(t *testing.T) {
	for _, tc := range []struct {
		name       string
		device     map[string]any
		createdAs  string // qosStatus of the create answer
		wantStatus string // of the one notification
		wantInfo   string
		getStatus  string // after the change
	}{
		{"unavailable", map[string]any{"phoneNumber": "+99999991001"}, "REQUESTED", "UNAVAILABLE", "", "UNAVAILABLE"},
		{"network terminated", map[string]any{"phoneNumber": "+99999991002"}, "REQUESTED", "UNAVAILABLE", "NETWORK_TERMINATED", "UNAVAILABLE"},
		{"available", map[string]any{"phoneNumber": "+99999991003", "ipv6Address": "2001:db8::1"}, "AVAILABLE", "AVAILABLE", "", "AVAILABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{AvailableDelay: 3 * time.Second})
			b := createBody("", h.rc.url(), "tok")
			b["device"] = tc.device
			s := h.c.create(b)
			if s["qosStatus"] != tc.createdAs {
				t.Fatalf("create answered %v, want %s", s["qosStatus"], tc.createdAs)
			}
			id := s["sessionId"].(string)
			if tc.createdAs == "AVAILABLE" {
				if s["startedAt"] != "2025-06-01T12:00:00Z" || s["expiresAt"] != "2025-06-01T13:00:00Z" {
					t.Errorf("AVAILABLE at once: %v", s)
				}
			} else {
				flush(t, h.sim)
				if n := len(h.rc.all()); n != 0 {
					t.Fatalf("%d notifications before AvailableDelay", n)
				}
				h.clk.Advance(3 * time.Second)
			}
			flush(t, h.sim)
			got := h.rc.accepted()
			if len(got) != 1 || got[0].status() != tc.wantStatus || got[0].info() != tc.wantInfo {
				t.Fatalf("notifications %d: %v", len(got), got)
			}
			checkNotification(t, got[0], FormatCAMARAv1, "tok")
			g := h.c.do("GET", BasePathV1+"/sessions/"+id, nil).json(t)
			if g["qosStatus"] != tc.getStatus || (g["statusInfo"] != nil) != (tc.wantInfo != "") {
				t.Errorf("get: %v", g)
			}
			if tc.wantInfo == "NETWORK_TERMINATED" {
				// The spec keeps its resources until deleted: the device
				// conflicts until then.
				a := h.c.do("POST", BasePathV1+"/sessions", b)
				if a.status != http.StatusConflict {
					t.Errorf("create after NETWORK_TERMINATED: %d %s", a.status, a.body)
				}
				h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil)
				h.c.create(b)
			}
			if tc.wantStatus == "UNAVAILABLE" && tc.wantInfo == "" {
				h.c.create(b) // no statusInfo: resources released
			}
		})
	}
}

func TestScenarioErrors(t *testing.T) {
	h := newHarness(t, Options{})
	for _, tc := range []struct {
		device map[string]any
		status int
		code   string
	}{
		{map[string]any{"phoneNumber": "+99999991429"}, 429, "TOO_MANY_REQUESTS"},
		{map[string]any{"phoneNumber": "+99999991500"}, 500, "INTERNAL"},
	} {
		b := createBody("", "", "")
		b["device"] = tc.device
		a := h.c.do("POST", BasePathV1+"/sessions", b)
		if a.status != tc.status || a.errorInfo(t).Code != tc.code {
			t.Fatalf("%v first create: %d %s", tc.device, a.status, a.body)
		}
		if tc.status == 429 && a.header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
		}
		id := h.c.create(b)["sessionId"].(string) // the retry succeeds
		h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil)
		// And it starts over: every other create fails.
		if a := h.c.do("POST", BasePathV1+"/sessions", b); a.status != tc.status {
			t.Errorf("%v third create: %d", tc.device, a.status)
		}
	}
	// v0 answers the same (CAMARA's common 429 and 500, beyond the v0 spec's
	// list), matches a phone number without "+", and matches the access
	// identifiers (which v1 does not use).
	h0 := newHarness(t, Options{})
	for _, tc := range []struct {
		device map[string]any
		status int
	}{
		{map[string]any{"phoneNumber": "99999991429"}, 429},
		{map[string]any{"phoneNumber": "99999991500"}, 500},
		{map[string]any{"networkAccessIdentifier": "Rate-Limited@testcsp.net"}, 429},
		{map[string]any{"networkAccessIdentifier": "server-error@testcsp.net"}, 500},
	} {
		b := map[string]any{"device": tc.device, "applicationServer": map[string]any{"ipv4Address": "233.252.0.2"}, "qosProfile": "QOS_E"}
		if a := h0.c.do("POST", BasePathV0+"/sessions", b); a.status != tc.status {
			t.Errorf("v0 %v first create: %d %s", tc.device, a.status, a.body)
		}
		if a := h0.c.do("POST", BasePathV0+"/sessions", b); a.status != 201 {
			t.Errorf("v0 %v second create: %d %s", tc.device, a.status, a.body)
		}
	}
}

// TestScenarioDevicesByNAIOnV0: on /qod/v0 the access identifiers of the
// scenario devices script the life as the phone numbers do on both APIs.
func TestScenarioDevicesByNAIOnV0(t *testing.T) {
	for _, tc := range []struct {
		nai              string
		createdAs, state string
		info             string
	}{
		{"unavailable@testcsp.net", "REQUESTED", "UNAVAILABLE", ""},
		{"Network-Terminated@TestCSP.net", "REQUESTED", "UNAVAILABLE", "NETWORK_TERMINATED"},
		{"available@testcsp.net", "AVAILABLE", "AVAILABLE", ""},
	} {
		t.Run(tc.nai, func(t *testing.T) {
			h := newHarness(t, Options{})
			a := h.c.do("POST", BasePathV0+"/sessions", map[string]any{
				"device": map[string]any{"networkAccessIdentifier": tc.nai}, "applicationServer": map[string]any{"ipv4Address": "233.252.0.2"},
				"qosProfile": "QOS_E", "duration": 60, "webhook": map[string]any{"notificationUrl": h.rc.url(), "notificationAuthToken": "tok"},
			})
			if a.status != 201 || a.json(t)["qosStatus"] != tc.createdAs {
				t.Fatalf("create: %d %s", a.status, a.body)
			}
			h.clk.Advance(time.Second)
			flush(t, h.sim)
			got := h.rc.accepted()
			if len(got) != 1 || got[0].status() != tc.state || got[0].info() != tc.info {
				t.Fatalf("notifications %v", got)
			}
			checkNotification(t, got[0], FormatCAMARAv0, "tok")
		})
	}
}

func TestScenarioOptions(t *testing.T) {
	h := newHarness(t, Options{Scenarios: Scenarios{
		Unavailable:       []string{"+36700000001"},
		NetworkTerminated: []string{},
	}})
	b := createBody("+36700000001", h.rc.url(), "")
	h.c.create(b)
	h.c.create(createBody("+99999991002", h.rc.url(), "")) // the scenario is off: a normal device
	h.c.create(createBody("+99999991001", h.rc.url(), "")) // replaced: a normal device
	h.clk.Advance(time.Second)
	flush(t, h.sim)
	var unavailable, available int
	for _, n := range h.rc.accepted() {
		switch n.status() {
		case "UNAVAILABLE":
			unavailable++
		case "AVAILABLE":
			available++
		}
	}
	if unavailable != 1 || available != 2 {
		t.Errorf("UNAVAILABLE %d (want 1), AVAILABLE %d (want 2)", unavailable, available)
	}

	if _, err := New(Options{Scenarios: Scenarios{Available: []string{"+99999991001"}}}); err == nil {
		t.Error("an identifier in two scenarios was accepted")
	}
}

// TestScenarioDeviceOutcomes: devices the network does not know (404
// IDENTIFIER_NOT_FOUND), does not serve (422 SERVICE_NOT_APPLICABLE) or has
// no QoS profile for (422 QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE on
// create), on create and retrieve-sessions, by phone number on v1 and by
// either identifier on v0; after every 400.
func TestScenarioDeviceOutcomes(t *testing.T) {
	h := newHarness(t, Options{})
	for _, tc := range []struct {
		phone, nai     string
		status         int
		code           string
		retrieveStatus int
	}{
		{"+99999991404", "not-found@testcsp.net", 404, "IDENTIFIER_NOT_FOUND", 404},
		{"+99999991422", "not-applicable@testcsp.net", 422, "SERVICE_NOT_APPLICABLE", 422},
		{"+99999991004", "no-profiles@testcsp.net", 422, "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE", 200},
	} {
		t.Run(tc.code, func(t *testing.T) {
			h.c.t = t
			b := createBody(tc.phone, "", "")
			a := h.c.do("POST", BasePathV1+"/sessions", b)
			if a.status != tc.status || a.errorInfo(t).Code != tc.code {
				t.Errorf("create: %d %s", a.status, a.body)
			}
			b["duration"] = 0
			if a := h.c.do("POST", BasePathV1+"/sessions", b); a.status != 400 {
				t.Errorf("create with a bad duration: %d %s", a.status, a.body)
			}
			a = h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{"device": map[string]any{"phoneNumber": tc.phone}})
			if a.status != tc.retrieveStatus || (a.status != 200 && a.errorInfo(t).Code != tc.code) {
				t.Errorf("retrieve-sessions: %d %s", a.status, a.body)
			}
			for _, dev := range []map[string]any{{"phoneNumber": tc.phone[1:]}, {"networkAccessIdentifier": tc.nai}} {
				a := h.c.do("POST", BasePathV0+"/sessions", map[string]any{"device": dev, "applicationServer": map[string]any{"ipv4Address": "233.252.0.2"}, "qosProfile": "QOS_E"})
				want, code := tc.status, tc.code
				if tc.status == 422 && tc.retrieveStatus == 200 {
					want, code = 400, "INVALID_ARGUMENT" // v0 has no QOS_PROFILE_NOT_APPLICABLE
				}
				if a.status != want || a.errorInfo(t).Code != code {
					t.Errorf("v0 create by %v: %d %s", dev, a.status, a.body)
				}
			}
		})
	}
	h.c.t = t
	// The NAI names no scenario on v1: beside a phone number it is ignored.
	b := createBody("+36700000404", "", "")
	b["device"] = map[string]any{"phoneNumber": "+36700000404", "networkAccessIdentifier": "not-found@testcsp.net"}
	h.c.create(b)
}

// TestRestrictedProfiles: a profile with Devices serves only those devices.
func TestRestrictedProfiles(t *testing.T) {
	h := newHarness(t, Options{Profiles: []Profile{{Name: "QOS_L"}, {Name: "QOS_VIP", Devices: []string{"+36700000001", "vip@testcsp.net"}}}})
	b := createBody("+36700000002", "", "")
	b["qosProfile"] = "QOS_VIP"
	a := h.c.do("POST", BasePathV1+"/sessions", b)
	if a.status != 422 || a.errorInfo(t).Code != "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE" || !strings.Contains(a.errorInfo(t).Message, "not available to this device") {
		t.Errorf("create for another device: %d %s", a.status, a.body)
	}
	b["device"] = map[string]any{"phoneNumber": "+36700000001"}
	h.c.create(b)
	v0 := map[string]any{"device": map[string]any{"networkAccessIdentifier": "VIP@testcsp.net"}, "applicationServer": map[string]any{"ipv4Address": "233.252.0.2"}, "qosProfile": "QOS_VIP"}
	if a := h.c.do("POST", BasePathV0+"/sessions", v0); a.status != 201 {
		t.Errorf("v0 create by the NAI it is restricted to: %d %s", a.status, a.body)
	}
	v0["device"] = map[string]any{"networkAccessIdentifier": "other@testcsp.net"}
	if a := h.c.do("POST", BasePathV0+"/sessions", v0); a.status != 400 || !strings.Contains(a.errorInfo(t).Message, "qosProfile:") {
		t.Errorf("v0 create by another NAI: %d %s", a.status, a.body)
	}
	if _, err := New(Options{Profiles: []Profile{{Name: "QOS_L", Devices: []string{" "}}}}); err == nil {
		t.Error("an empty restricted device was accepted")
	}
}
