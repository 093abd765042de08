package qodsim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCreateGetDeleteV1(t *testing.T) {
	h := newHarness(t, Options{})
	body := createBody("+36721601234567", h.rc.url(), "sink-token")
	body["device"] = map[string]any{
		"phoneNumber":             "+36721601234567",
		"networkAccessIdentifier": "device@testcsp.net",
		"ipv4Address":             map[string]any{"publicAddress": "233.252.0.2", "publicPort": 80},
	}
	body["devicePorts"] = map[string]any{"ports": []int{5060}, "ranges": []any{map[string]any{"from": 5010, "to": 5020}}}
	a := h.c.do("POST", BasePathV1+"/sessions", body, "x-correlator", "corr-1")
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	if got := a.header.Get("x-correlator"); got != "corr-1" {
		t.Errorf("x-correlator = %q", got)
	}
	s := a.json(t)
	id, _ := s["sessionId"].(string)
	if !uuidRE.MatchString(id) {
		t.Fatalf("sessionId %q", id)
	}
	if s["qosStatus"] != "REQUESTED" || s["duration"] != 3600.0 || s["qosProfile"] != "QOS_L" || s["sink"] != h.rc.url() {
		t.Errorf("create answer %s", a.body)
	}
	if _, ok := s["startedAt"]; ok {
		t.Errorf("startedAt while REQUESTED: %s", a.body)
	}
	if dev, _ := s["device"].(map[string]any); len(dev) != 1 || dev["phoneNumber"] != "+36721601234567" {
		t.Errorf("device = %v, want only the phone number", s["device"])
	}
	if strings.Contains(string(a.body), "sink-token") {
		t.Errorf("answer echoes the sink credential: %s", a.body)
	}

	got := h.c.do("GET", BasePathV1+"/sessions/"+id, nil, "x-correlator", "corr-2")
	if got.status != http.StatusOK || got.json(t)["qosStatus"] != "REQUESTED" || got.header.Get("x-correlator") != "corr-2" {
		t.Fatalf("get: %d %s", got.status, got.body)
	}
	if got := h.c.do("GET", BasePathV1+"/sessions/"+strings.ToUpper(id), nil); got.status != http.StatusOK {
		t.Errorf("get with upper-case id: %d", got.status)
	}

	if d := h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil); d.status != http.StatusNoContent || len(d.body) != 0 {
		t.Fatalf("delete: %d %s", d.status, d.body)
	}
	if g := h.c.do("GET", BasePathV1+"/sessions/"+id, nil); g.status != http.StatusNotFound || g.errorInfo(t).Code != "NOT_FOUND" {
		t.Errorf("get after delete: %d %s", g.status, g.body)
	}
	if d := h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil); d.status != http.StatusNotFound {
		t.Errorf("second delete: %d", d.status)
	}

	// Deleting a REQUESTED session notifies UNAVAILABLE / DELETE_REQUESTED.
	flush(t, h.sim)
	n := h.rc.accepted()
	if len(n) != 1 || n[0].status() != "UNAVAILABLE" || n[0].info() != "DELETE_REQUESTED" || n[0].sessionID() != id {
		t.Fatalf("notifications %v", n)
	}
}

func TestCreateValidation(t *testing.T) {
	h := newHarness(t, Options{Profiles: []Profile{
		{Name: "QOS_L", MinDuration: 10 * time.Second, MaxDuration: time.Hour},
		{Name: "QOS_OLD", Status: "DEPRECATED"},
	}})
	strict := newHarness(t, Options{Strict: true})

	with := func(f func(b map[string]any)) map[string]any {
		b := createBody("+36721601234567", "https://example.com/n", "tok")
		f(b)
		return b
	}
	cred := func(k string, v any) map[string]any {
		return with(func(b map[string]any) { b["sinkCredential"].(map[string]any)[k] = v })
	}
	cases := []struct {
		name    string
		h       *harness
		body    any
		header  []string
		status  int
		code    string
		message string // a part of the message: the field
	}{
		{"empty body", h, "", nil, 400, "INVALID_ARGUMENT", "request body: required"},
		{"malformed JSON", h, `{"device":`, nil, 400, "INVALID_ARGUMENT", "request body: invalid JSON"},
		{"not an object", h, `[1]`, nil, 400, "INVALID_ARGUMENT", "request body: must be a JSON object"},
		{"trailing data", h, `{} {}`, nil, 400, "INVALID_ARGUMENT", "request body: data after"},
		{"duration missing", h, with(func(b map[string]any) { delete(b, "duration") }), nil, 400, "INVALID_ARGUMENT", "duration: required"},
		{"duration wrong type", h, with(func(b map[string]any) { b["duration"] = "long" }), nil, 400, "INVALID_ARGUMENT", "duration: must be an integer"},
		{"duration zero", h, with(func(b map[string]any) { b["duration"] = 0 }), nil, 400, "OUT_OF_RANGE", "duration: 0 is outside"},
		{"duration above profile", h, with(func(b map[string]any) { b["duration"] = 3601 }), nil, 400, "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE", "duration: 3601 seconds"},
		{"duration below profile", h, with(func(b map[string]any) { b["duration"] = 9 }), nil, 400, "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE", "qosProfile QOS_L"},
		{"profile missing", h, with(func(b map[string]any) { delete(b, "qosProfile") }), nil, 400, "INVALID_ARGUMENT", "qosProfile: required"},
		{"profile unknown", h, with(func(b map[string]any) { b["qosProfile"] = "QOS_XL" }), nil, 400, "INVALID_ARGUMENT", `qosProfile: unknown profile "QOS_XL"`},
		{"profile malformed", h, with(func(b map[string]any) { b["qosProfile"] = "a b" }), nil, 400, "INVALID_ARGUMENT", "qosProfile:"},
		{"profile not active", h, with(func(b map[string]any) { b["qosProfile"] = "QOS_OLD" }), nil, 422, "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE", "qosProfile: profile QOS_OLD is DEPRECATED"},
		{"device empty", h, with(func(b map[string]any) { b["device"] = map[string]any{} }), nil, 400, "INVALID_ARGUMENT", "device: give at least one of"},
		{"device unknown fields only", h, with(func(b map[string]any) { b["device"] = map[string]any{"imei": "1"} }), nil, 400, "INVALID_ARGUMENT", "device: give at least one of"},
		{"device missing", h, with(func(b map[string]any) { delete(b, "device") }), nil, 422, "MISSING_IDENTIFIER", "device: required"},
		{"phone without plus", h, with(func(b map[string]any) { b["device"] = map[string]any{"phoneNumber": "36721601234567"} }), nil, 400, "INVALID_ARGUMENT", "device.phoneNumber:"},
		{"ipv4 alone", h, with(func(b map[string]any) {
			b["device"] = map[string]any{"ipv4Address": map[string]any{"publicAddress": "233.252.0.2"}}
		}), nil, 400, "INVALID_ARGUMENT", "device.ipv4Address: give privateAddress or publicPort"},
		{"ipv4 bad", h, with(func(b map[string]any) {
			b["device"] = map[string]any{"ipv4Address": map[string]any{"publicAddress": "300.1.1.1", "publicPort": 1}}
		}), nil, 400, "INVALID_ARGUMENT", "device.ipv4Address.publicAddress:"},
		{"ipv4 port", h, with(func(b map[string]any) {
			b["device"] = map[string]any{"ipv4Address": map[string]any{"publicAddress": "233.252.0.2", "publicPort": 70000}}
		}), nil, 400, "OUT_OF_RANGE", "device.ipv4Address.publicPort:"},
		{"ipv6 bad", h, with(func(b map[string]any) { b["device"] = map[string]any{"ipv6Address": "233.252.0.2"} }), nil, 400, "INVALID_ARGUMENT", "device.ipv6Address:"},
		{"application server missing", h, with(func(b map[string]any) { delete(b, "applicationServer") }), nil, 400, "INVALID_ARGUMENT", "applicationServer: required"},
		{"application server empty", h, with(func(b map[string]any) { b["applicationServer"] = map[string]any{} }), nil, 400, "INVALID_ARGUMENT", "applicationServer: give"},
		{"application server bad", h, with(func(b map[string]any) { b["applicationServer"] = map[string]any{"ipv4Address": "2001:db8::1"} }), nil, 400, "INVALID_ARGUMENT", "applicationServer.ipv4Address:"},
		{"ports empty", h, with(func(b map[string]any) { b["devicePorts"] = map[string]any{} }), nil, 400, "INVALID_ARGUMENT", "devicePorts: give ranges or ports"},
		{"ports range reversed", h, with(func(b map[string]any) {
			b["applicationServerPorts"] = map[string]any{"ranges": []any{map[string]any{"from": 20, "to": 10}}}
		}), nil, 400, "OUT_OF_RANGE", "applicationServerPorts.ranges[0]: from 20 is above to 10"},
		{"port out of range", h, with(func(b map[string]any) { b["devicePorts"] = map[string]any{"ports": []int{1, 65536}} }), nil, 400, "OUT_OF_RANGE", "devicePorts.ports[1]:"},
		{"sink not a URL", h, with(func(b map[string]any) { b["sink"] = "notify-me" }), nil, 400, "INVALID_SINK", "sink:"},
		{"sink other scheme", h, with(func(b map[string]any) { b["sink"] = "ftp://example.com/" }), nil, 400, "INVALID_SINK", "sink:"},
		{"sink http strict", strict, with(func(b map[string]any) { b["sink"] = "http://example.com/" }), nil, 400, "INVALID_SINK", "sink:"},
		{"credential PLAIN", h, cred("credentialType", "PLAIN"), nil, 400, "INVALID_CREDENTIAL", "sinkCredential.credentialType:"},
		{"credential unknown", h, cred("credentialType", "X"), nil, 400, "INVALID_ARGUMENT", "sinkCredential.credentialType:"},
		{"token type", h, cred("accessTokenType", "mac"), nil, 400, "INVALID_TOKEN", "sinkCredential.accessTokenType:"},
		{"token missing", h, with(func(b map[string]any) { delete(b["sinkCredential"].(map[string]any), "accessToken") }), nil, 400, "INVALID_ARGUMENT", "sinkCredential.accessToken: required"},
		{"token expiry bad", h, cred("accessTokenExpiresUtc", "tomorrow"), nil, 400, "INVALID_ARGUMENT", "sinkCredential.accessTokenExpiresUtc:"},
		{"credential without sink", h, with(func(b map[string]any) { delete(b, "sink") }), nil, 400, "INVALID_ARGUMENT", "sinkCredential: given without sink"},
		{"sink and webhook", h, with(func(b map[string]any) { b["webhook"] = map[string]any{"notificationUrl": "https://example.com/"} }), nil, 400, "INVALID_ARGUMENT", "sink: give either"},
		{"webhook without URL", h, with(func(b map[string]any) {
			delete(b, "sink")
			delete(b, "sinkCredential")
			b["webhook"] = map[string]any{}
		}), nil, 400, "INVALID_ARGUMENT", "webhook.notificationUrl: required"},
		{"bad x-correlator", h, with(func(map[string]any) {}), []string{"x-correlator", "has space"}, 400, "INVALID_ARGUMENT", "x-correlator:"},
		{"nested wrong type", h, with(func(b map[string]any) {
			b["device"] = map[string]any{"ipv4Address": map[string]any{"publicAddress": "233.252.0.2", "publicPort": "80"}}
		}), nil, 400, "INVALID_ARGUMENT", "device.ipv4Address.publicPort: must be an integer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.h.c.t = t
			a := tc.h.c.do("POST", BasePathV1+"/sessions", tc.body, tc.header...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			ei := a.errorInfo(t)
			if ei.Code != tc.code || !strings.Contains(ei.Message, tc.message) {
				t.Errorf("got %s %q, want %s with %q", ei.Code, ei.Message, tc.code, tc.message)
			}
		})
	}
}

func TestCreateAcceptsVariants(t *testing.T) {
	h := newHarness(t, Options{})
	for i, dev := range []map[string]any{
		{"networkAccessIdentifier": "someone@example.com", "ipv6Address": "2001:db8::7"},
		{"ipv4Address": map[string]any{"publicAddress": "233.252.0.2", "privateAddress": "192.0.2.25"}},
		{"ipv6Address": "2001:db8:1234:5678:9abc:def0:fedc:ba98"},
	} {
		b := createBody("", "", "")
		b["device"] = dev
		b["applicationServer"] = map[string]any{"ipv4Address": "198.51.100.0/24", "ipv6Address": "2001:db8::/64"}
		s := h.c.create(b)
		if got := s["device"].(map[string]any); len(got) != 1 || got["networkAccessIdentifier"] != nil {
			t.Errorf("%d: device %v", i, got)
		}
	}
	// The v0 webhook shape on the v1 API; the http:// sink is the leniency.
	b := createBody("+36721601230000", "", "")
	b["webhook"] = map[string]any{"notificationUrl": "http://127.0.0.1:1/n", "notificationAuthToken": "short"}
	if s := h.c.create(b); s["sink"] != "http://127.0.0.1:1/n" {
		t.Errorf("sink %v", s["sink"])
	}
}

// TestNetworkAccessIdentifierOnV1: QoD 1.1.0 does not allow the
// networkAccessIdentifier (Device, NOTE2). Alone it is 422
// UNSUPPORTED_IDENTIFIER, for create and retrieve-sessions alike, once the
// body passed every 400 check; beside another identifier it is ignored. The
// v0 dialect still takes it.
func TestNetworkAccessIdentifierOnV1(t *testing.T) {
	h := newHarness(t, Options{})
	nai := map[string]any{"networkAccessIdentifier": "someone@example.com"}
	b := createBody("", "", "")
	b["device"] = nai
	a := h.c.do("POST", BasePathV1+"/sessions", b)
	if a.status != 422 || a.errorInfo(t).Code != "UNSUPPORTED_IDENTIFIER" || !strings.Contains(a.errorInfo(t).Message, "networkAccessIdentifier") {
		t.Errorf("create by NAI: %d %s", a.status, a.body)
	}
	b["duration"] = 0 // a 400 still comes first
	if a := h.c.do("POST", BasePathV1+"/sessions", b); a.status != 400 {
		t.Errorf("bad create by NAI: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{"device": nai}); a.status != 422 || a.errorInfo(t).Code != "UNSUPPORTED_IDENTIFIER" {
		t.Errorf("retrieve by NAI: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{"device": map[string]any{"networkAccessIdentifier": 7}}); a.status != 400 {
		t.Errorf("retrieve by an ill-typed NAI: %d %s", a.status, a.body)
	}

	// Beside a phone number the NAI identifies nothing: the scenario device
	// it names does not apply, the phone number is echoed and matched.
	b = createBody("+36721601234567", "", "")
	b["device"] = map[string]any{"phoneNumber": "+36721601234567", "networkAccessIdentifier": "available@testcsp.net"}
	s := h.c.create(b)
	if s["qosStatus"] != "REQUESTED" || s["device"].(map[string]any)["phoneNumber"] != "+36721601234567" || len(s["device"].(map[string]any)) != 1 {
		t.Errorf("create by phone and NAI: %v", s)
	}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{"device": map[string]any{"phoneNumber": "+36721601234567", "networkAccessIdentifier": "x@y"}}); a.status != 200 || !strings.Contains(string(a.body), s["sessionId"].(string)) {
		t.Errorf("retrieve by phone and NAI: %d %s", a.status, a.body)
	}

	// v0 accepts it alone; v1 reads that session with the NAI as its only
	// identifier.
	v0 := h.c.do("POST", BasePathV0+"/sessions", map[string]any{"device": nai, "applicationServer": map[string]any{"ipv4Address": "233.252.0.2"}, "qosProfile": "QOS_L"})
	if v0.status != 201 {
		t.Fatalf("v0 create by NAI: %d %s", v0.status, v0.body)
	}
	g := h.c.do("GET", BasePathV1+"/sessions/"+v0.json(t)["sessionId"].(string), nil)
	if g.status != 200 || !strings.Contains(string(g.body), `"device":{"networkAccessIdentifier":"someone@example.com"}`) {
		t.Errorf("v1 get of a v0 NAI session: %d %s", g.status, g.body)
	}
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, Options{Tokens: []string{"old-token", "new-token"}})
	path := BasePathV1 + "/sessions"
	for i, tc := range []struct {
		auth   string
		status int
	}{
		{"", 401},
		{"Bearer wrong", 401},
		{"Basic bmV3LXRva2Vu", 401},
		{"Bearer new-token-and-more", 401},
		{"Bearer old-token", 201},
		{"bearer new-token", 201},
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		phone := fmt.Sprintf("+3670000%04d", i)
		a := h.c.do("POST", path, createBody(phone, "", ""), hdr...)
		if a.status != tc.status {
			t.Errorf("Authorization %q: %d %s", tc.auth, a.status, a.body)
		}
		if a.status == 401 {
			if a.errorInfo(t).Code != "UNAUTHENTICATED" || a.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 answer %s %v", a.body, a.header)
			}
		}
	}
	// Auth comes before everything else, even a bad body or unknown session.
	if a := h.c.do("GET", BasePathV1+"/sessions/not-a-uuid", nil); a.status != 401 {
		t.Errorf("unauthenticated get: %d", a.status)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := newHarness(t, Options{})
	unknown := "3fa85f64-5717-4562-b3fc-2c963f66afa6"
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		code         string
	}{
		{"GET", BasePathV1 + "/sessions/" + unknown, nil, 404, "NOT_FOUND"},
		{"DELETE", BasePathV1 + "/sessions/" + unknown, nil, 404, "NOT_FOUND"},
		{"POST", BasePathV1 + "/sessions/" + unknown + "/extend", map[string]any{"requestedAdditionalDuration": 60}, 404, "NOT_FOUND"},
		{"GET", BasePathV1 + "/sessions/123", nil, 400, "INVALID_ARGUMENT"},
		{"GET", BasePathV0 + "/sessions/" + unknown, nil, 404, "NOT_FOUND"},
		{"GET", BasePathV1 + "/sessions", nil, 405, "METHOD_NOT_ALLOWED"},
		{"PUT", BasePathV1 + "/sessions/" + unknown, nil, 405, "METHOD_NOT_ALLOWED"},
		{"GET", BasePathV1 + "/retrieve-sessions", nil, 405, "METHOD_NOT_ALLOWED"},
		{"GET", "/quality-on-demand/v2/sessions", nil, 404, "NOT_FOUND"},
		{"GET", "/", nil, 404, "NOT_FOUND"},
	} {
		a := h.c.do(tc.method, tc.path, tc.body)
		if a.status != tc.status || a.errorInfo(t).Code != tc.code {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, a.status, a.body, tc.status, tc.code)
		}
	}
}

func TestConflict(t *testing.T) {
	h := newHarness(t, Options{})
	first := h.c.create(createBody("+36721601234567", "", ""))
	// Same device by another identifier set that shares the phone number.
	b := createBody("+36721601234567", "", "")
	b["device"] = map[string]any{"phoneNumber": "+36721601234567", "networkAccessIdentifier": "x@example.com"}
	a := h.c.do("POST", BasePathV1+"/sessions", b)
	if a.status != 409 || a.errorInfo(t).Code != "CONFLICT" || !strings.Contains(a.errorInfo(t).Message, first["sessionId"].(string)) {
		t.Fatalf("second create: %d %s", a.status, a.body)
	}
	h.clk.Advance(time.Second) // AVAILABLE still conflicts
	if a := h.c.do("POST", BasePathV1+"/sessions", b); a.status != 409 {
		t.Fatalf("create while AVAILABLE: %d", a.status)
	}
	h.clk.Advance(3600 * time.Second) // expired: no longer blocks
	h.c.create(b)
}

func TestRetrieveSessions(t *testing.T) {
	h := newHarness(t, Options{})
	s1 := h.c.create(createBody("+36721601234567", "", ""))
	h.c.create(createBody("+36721601239999", "", ""))
	path := BasePathV1 + "/retrieve-sessions"

	a := h.c.do("POST", path, map[string]any{"device": map[string]any{"phoneNumber": "+36721601234567"}})
	if a.status != 200 || !strings.Contains(string(a.body), s1["sessionId"].(string)) || strings.Count(string(a.body), "sessionId") != 1 {
		t.Fatalf("retrieve: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", path, map[string]any{"device": map[string]any{"phoneNumber": "+36700000000"}}); a.status != 200 || string(a.body) != "[]" {
		t.Errorf("retrieve for a device without sessions: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", path, map[string]any{}); a.status != 422 || a.errorInfo(t).Code != "MISSING_IDENTIFIER" {
		t.Errorf("retrieve without device: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", path, map[string]any{"device": map[string]any{}}); a.status != 400 || !strings.Contains(a.errorInfo(t).Message, "device:") {
		t.Errorf("retrieve with device {}: %d %s", a.status, a.body)
	}
	// Expired sessions are listed while retained.
	h.clk.Advance(time.Second + 3600*time.Second)
	a = h.c.do("POST", path, map[string]any{"device": map[string]any{"phoneNumber": "+36721601234567"}})
	if !strings.Contains(string(a.body), `"qosStatus":"UNAVAILABLE"`) || !strings.Contains(string(a.body), `"statusInfo":"DURATION_EXPIRED"`) {
		t.Errorf("retrieve after expiry: %s", a.body)
	}
}

func TestExtend(t *testing.T) {
	h := newHarness(t, Options{Profiles: []Profile{{Name: "QOS_L", MaxDuration: 2 * time.Hour}}})
	s := h.c.create(createBody("+36721601234567", h.rc.url(), "tok"))
	id := s["sessionId"].(string)
	path := BasePathV1 + "/sessions/" + id + "/extend"

	a := h.c.do("POST", path, map[string]any{"requestedAdditionalDuration": 60})
	if a.status != 409 || a.errorInfo(t).Code != "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED" {
		t.Fatalf("extend while REQUESTED: %d %s", a.status, a.body)
	}
	h.clk.Advance(time.Second)
	for _, tc := range []struct {
		body any
		code string
	}{
		{map[string]any{}, "INVALID_ARGUMENT"},
		{map[string]any{"requestedAdditionalDuration": 0}, "OUT_OF_RANGE"},
		{map[string]any{"requestedAdditionalDuration": 1.5}, "INVALID_ARGUMENT"},
	} {
		if a := h.c.do("POST", path, tc.body); a.status != 400 || a.errorInfo(t).Code != tc.code ||
			!strings.Contains(a.errorInfo(t).Message, "requestedAdditionalDuration") {
			t.Errorf("extend %v: %d %s", tc.body, a.status, a.body)
		}
	}
	a = h.c.do("POST", path, map[string]any{"requestedAdditionalDuration": 1800})
	if a.status != 200 {
		t.Fatalf("extend: %d %s", a.status, a.body)
	}
	v := a.json(t)
	if v["duration"] != 5400.0 || v["expiresAt"] != "2025-06-01T13:30:01Z" || v["startedAt"] != "2025-06-01T12:00:01Z" {
		t.Errorf("extended session %s", a.body)
	}
	// Capped at the profile's 2h.
	v = h.c.do("POST", path, map[string]any{"requestedAdditionalDuration": 7200}).json(t)
	if v["duration"] != 7200.0 || v["expiresAt"] != "2025-06-01T14:00:01Z" {
		t.Errorf("capped extension %v", v)
	}
	// The old expiry passes without a change; the new one ends it.
	h.clk.Advance(3600 * time.Second)
	flush(t, h.sim)
	if g := h.c.do("GET", BasePathV1+"/sessions/"+id, nil).json(t); g["qosStatus"] != "AVAILABLE" {
		t.Fatalf("after the old expiry: %v", g)
	}
	h.clk.Advance(3600 * time.Second)
	flush(t, h.sim)
	g := h.c.do("GET", BasePathV1+"/sessions/"+id, nil).json(t)
	if g["qosStatus"] != "UNAVAILABLE" || g["statusInfo"] != "DURATION_EXPIRED" || g["duration"] != 7200.0 || g["expiresAt"] != "2025-06-01T14:00:01Z" {
		t.Errorf("after the new expiry: %v", g)
	}
	if a := h.c.do("POST", path, map[string]any{"requestedAdditionalDuration": 60}); a.status != 409 {
		t.Errorf("extend of an UNAVAILABLE session: %d", a.status)
	}
	got := h.rc.accepted()
	if len(got) != 2 || got[0].status() != "AVAILABLE" || got[1].info() != "DURATION_EXPIRED" {
		t.Errorf("notifications: %d", len(got))
	}
}

func TestMaxSessions(t *testing.T) {
	h := newHarness(t, Options{MaxSessions: 2})
	h.c.create(createBody("+36700000001", "", ""))
	b := createBody("+36700000002", "", "")
	b["duration"] = 10
	short := h.c.create(b)
	a := h.c.do("POST", BasePathV1+"/sessions", createBody("+36700000003", "", ""))
	if a.status != 429 || a.errorInfo(t).Code != "QUOTA_EXCEEDED" || a.header.Get("Retry-After") == "" {
		t.Fatalf("create beyond MaxSessions: %d %s", a.status, a.body)
	}
	// The short one expires and is retained; a new create evicts it.
	h.clk.Advance(11 * time.Second)
	if g := h.c.do("GET", BasePathV1+"/sessions/"+short["sessionId"].(string), nil); g.status != 200 {
		t.Fatalf("retained session: %d", g.status)
	}
	h.c.create(createBody("+36700000003", "", ""))
	if g := h.c.do("GET", BasePathV1+"/sessions/"+short["sessionId"].(string), nil); g.status != 404 {
		t.Errorf("evicted session: %d", g.status)
	}
}

func TestRetention(t *testing.T) {
	h := newHarness(t, Options{Retention: time.Minute})
	b := createBody("+36700000001", "", "")
	b["duration"] = 10
	id := h.c.create(b)["sessionId"].(string)
	h.clk.Advance(11 * time.Second)
	if g := h.c.do("GET", BasePathV1+"/sessions/"+id, nil); g.status != 200 {
		t.Fatalf("retained: %d", g.status)
	}
	h.clk.Advance(time.Minute)
	if g := h.c.do("GET", BasePathV1+"/sessions/"+id, nil); g.status != 404 {
		t.Errorf("after retention: %d", g.status)
	}
	h.sim.mu.Lock()
	defer h.sim.mu.Unlock()
	if h.sim.slots != 0 || len(h.sim.sessions) != 0 || len(h.sim.byDevice) != 0 || h.sim.ended.Len() != 0 {
		t.Errorf("store not empty: slots %d sessions %d devices %d ended %d", h.sim.slots, len(h.sim.sessions), len(h.sim.byDevice), h.sim.ended.Len())
	}
}
