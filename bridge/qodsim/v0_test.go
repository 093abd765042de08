package qodsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestV0Sessions(t *testing.T) {
	h := newHarness(t, Options{AvailableDelay: 2 * time.Second})
	// The body the Network-as-Code Python SDK sends.
	body := map[string]any{
		"device": map[string]any{
			"phoneNumber":             "36721601234567",
			"networkAccessIdentifier": "device@testcsp.net",
			"ipv4Address":             map[string]any{"publicAddress": "233.252.0.2", "privateAddress": "192.0.2.25", "publicPort": 80},
			"ipv6Address":             "2001:db8:1234:5678:9abc:def0:fedc:ba98",
		},
		"applicationServer": map[string]any{"ipv4Address": "233.252.0.2", "ipv6Address": "2001:db8:1234:5678:9abc:def0:fedc:ba98"},
		"qosProfile":        "QOS_L",
		"webhook":           map[string]any{"notificationUrl": h.rc.url(), "notificationAuthToken": "replace-with-your-auth-token"},
	}
	a := h.c.do("POST", BasePathV0+"/sessions", body)
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	s := a.json(t)
	id := s["sessionId"].(string)
	created := float64(epoch.Unix())
	if s["duration"] != 86400.0 || s["startedAt"] != created || s["expiresAt"] != created+86400 || s["qosStatus"] != "REQUESTED" {
		t.Errorf("create answer %s", a.body)
	}
	if dev := s["device"].(map[string]any); len(dev) != 4 {
		t.Errorf("v0 echoes the whole device: %v", dev)
	}
	if wh := s["webhook"].(map[string]any); wh["notificationUrl"] != h.rc.url() || len(wh) != 1 {
		t.Errorf("webhook %v (the token must not be echoed)", wh)
	}

	// Readable through both APIs; v1 shows one identifier, E.164 with "+".
	if g := h.c.do("GET", BasePathV1+"/sessions/"+id, nil); g.status != 200 || !strings.Contains(string(g.body), `"device":{"phoneNumber":"+36721601234567"}`) {
		t.Errorf("v1 get of a v0 session: %d %s", g.status, g.body)
	}
	ext := BasePathV0 + "/sessions/" + id + "/extend"
	if e := h.c.do("POST", ext, map[string]any{"requestedAdditionalDuration": 60}); e.status != 400 || !strings.Contains(e.errorInfo(t).Message, "inactive") {
		t.Errorf("extend while REQUESTED: %d %s", e.status, e.body)
	}
	h.clk.Advance(2 * time.Second)
	h.clk.Advance(1000 * time.Second)
	// v0 caps the remaining duration at the profile maximum (86400s).
	e := h.c.do("POST", ext, map[string]any{"requestedAdditionalDuration": 5000})
	if e.status != 200 {
		t.Fatalf("extend: %d %s", e.status, e.body)
	}
	v := e.json(t)
	now := float64(epoch.Add(1002 * time.Second).Unix())
	if v["expiresAt"] != now+86400 || v["duration"] != 86400.0+1000 || v["startedAt"] != float64(epoch.Unix()+2) {
		t.Errorf("extended: %s", e.body)
	}
	if e := h.c.do("POST", ext, map[string]any{"requestedAdditionalDuration": 86400}); e.status != 400 || e.errorInfo(t).Code != "OUT_OF_RANGE" {
		t.Errorf("extend beyond the v0 maximum: %d %s", e.status, e.body)
	}

	if d := h.c.do("DELETE", BasePathV0+"/sessions/"+id, nil); d.status != 204 {
		t.Fatalf("delete: %d", d.status)
	}
	flush(t, h.sim)
	got := h.rc.accepted()
	if len(got) != 2 || got[1].info() != "DELETE_REQUESTED" {
		t.Fatalf("notifications %d", len(got))
	}
	for _, n := range got {
		checkNotification(t, n, FormatCAMARAv0, "replace-with-your-auth-token")
	}
	if g := h.c.do("GET", BasePathV0+"/sessions/"+id, nil); g.status != 404 {
		t.Errorf("get after delete: %d", g.status)
	}
}

func TestV0Validation(t *testing.T) {
	h := newHarness(t, Options{})
	strict := newHarness(t, Options{Strict: true})
	valid := func() map[string]any {
		return map[string]any{
			"device":            map[string]any{"phoneNumber": "+36721601234567"},
			"applicationServer": map[string]any{"ipv4Address": "233.252.0.2"},
			"qosProfile":        "QOS_S",
			"duration":          60,
			"webhook":           map[string]any{"notificationUrl": "http://127.0.0.1:1/n", "notificationAuthToken": "my-token"},
		}
	}
	for _, tc := range []struct {
		name   string
		h      *harness
		mod    func(map[string]any)
		status int
		code   string
		msg    string
	}{
		{"device missing", h, func(b map[string]any) { delete(b, "device") }, 400, "INVALID_ARGUMENT", "device: required"},
		{"duration above 86400", h, func(b map[string]any) { b["duration"] = 86401 }, 400, "OUT_OF_RANGE", "duration:"},
		{"bad phone", h, func(b map[string]any) { b["device"] = map[string]any{"phoneNumber": "12"} }, 400, "INVALID_ARGUMENT", "device.phoneNumber:"},
		{"bad webhook URL", h, func(b map[string]any) { b["webhook"] = map[string]any{"notificationUrl": "/relative"} }, 400, "INVALID_ARGUMENT", "webhook.notificationUrl:"},
		{"short token strict", strict, func(b map[string]any) {
			b["webhook"] = map[string]any{"notificationUrl": "https://127.0.0.1:1/n", "notificationAuthToken": "my-token"}
		}, 400, "INVALID_ARGUMENT", "webhook.notificationAuthToken:"},
		{"http sink strict", strict, func(b map[string]any) {
			b["webhook"] = map[string]any{"notificationUrl": "http://127.0.0.1:1/n", "notificationAuthToken": "c8974e592c2fa383d4a3960714"}
		}, 400, "INVALID_ARGUMENT", "webhook.notificationUrl:"},
		{"short token lenient", h, func(map[string]any) {}, 201, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := valid()
			tc.mod(b)
			a := tc.h.c.do("POST", BasePathV0+"/sessions", b)
			if a.status != tc.status {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if tc.status >= 400 {
				if ei := a.errorInfo(t); ei.Code != tc.code || !strings.Contains(ei.Message, tc.msg) {
					t.Errorf("%s %q, want %s with %q", ei.Code, ei.Message, tc.code, tc.msg)
				}
			}
		})
	}
}

func TestV0Profiles(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.c.do("GET", BasePathV0+"/qos-profiles", nil)
	if a.status != 200 || strings.Count(string(a.body), `"name"`) != 4 {
		t.Fatalf("profiles: %d %s", a.status, a.body)
	}
	if a := h.c.do("GET", BasePathV0+"/qos-profiles?name=QOS_E", nil); strings.Count(string(a.body), `"name"`) != 1 {
		t.Errorf("filtered profiles: %s", a.body)
	}
	if a := h.c.do("GET", BasePathV0+"/qos-profiles?status=INACTIVE", nil); a.status != 404 {
		t.Errorf("no match: %d", a.status)
	}
	a = h.c.do("GET", BasePathV0+"/qos-profiles/QOS_M", nil)
	if p := a.json(t); a.status != 200 || p["name"] != "QOS_M" || p["status"] != "ACTIVE" {
		t.Errorf("profile: %d %s", a.status, a.body)
	}
	if a := h.c.do("GET", BasePathV0+"/qos-profiles/QOS_X", nil); a.status != 404 {
		t.Errorf("unknown profile: %d", a.status)
	}
}
