package qodsim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// oauthClients are the clients of the OAuth tests: two with every scope,
// one that may only read profiles.
var oauthClients = []OAuthClient{
	{ID: "app", Secret: "app-secret"},
	{ID: "other", Secret: "other-secret"},
	{ID: "profiles-only", Secret: "p-secret", Scopes: []string{ScopeProfilesRead}},
}

func newOAuthHarness(t testing.TB, o Options) *harness {
	t.Helper()
	o.OAuth.Clients = oauthClients
	return newHarness(t, o)
}

// token gets an access token from the token endpoint (client credentials;
// extra form values such as scope or expires_in).
func (h *harness) token(t testing.TB, id, secret string, extra ...string) string {
	t.Helper()
	f := url.Values{"grant_type": {"client_credentials"}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	a := h.c.form(TokenPath, f, id, secret)
	if a.status != 200 {
		t.Fatalf("token for %s: %d %s", id, a.status, a.body)
	}
	tok, _ := a.json(t)["access_token"].(string)
	return tok
}

// threeLegged gets a token for the device of the login hint through CIBA.
func (h *harness) threeLegged(t testing.TB, id, secret, hint string, extra ...string) string {
	t.Helper()
	f := url.Values{"scope": {"openid"}, "login_hint": {hint}}
	a := h.c.form(BackchannelAuthPath, f, id, secret)
	if a.status != 200 {
		t.Fatalf("bc-authorize %s: %d %s", hint, a.status, a.body)
	}
	m := a.json(t)
	if m["expires_in"] != 120.0 || m["interval"] != 1.0 {
		t.Errorf("bc-authorize answer %s", a.body)
	}
	f = url.Values{"grant_type": {grantCIBA}, "auth_req_id": {m["auth_req_id"].(string)}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	a = h.c.form(TokenPath, f, id, secret)
	if a.status != 200 {
		t.Fatalf("CIBA token %s: %d %s", hint, a.status, a.body)
	}
	return a.json(t)["access_token"].(string)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestOAuthTokenEndpoint(t *testing.T) {
	h := newOAuthHarness(t, Options{OAuth: OAuth{TokenTTL: 10 * time.Minute}})
	cc := url.Values{"grant_type": {"client_credentials"}}

	a := h.c.form(TokenPath, cc, "app", "app-secret")
	m := a.json(t)
	if a.status != 200 || m["token_type"] != "Bearer" || m["expires_in"] != 600.0 || m["scope"] != strings.Join(Scopes(), " ") ||
		a.header.Get("Pragma") != "no-cache" {
		t.Fatalf("token: %d %s %v", a.status, a.body, a.header)
	}
	// client_secret_post, a narrower scope, a shorter life.
	post := url.Values{"grant_type": {"client_credentials"}, "client_id": {"other"}, "client_secret": {"other-secret"},
		"scope": {ScopeSessionsRead + " " + ScopeProfilesRead}, "expires_in": {"60"}}
	a = h.c.form(TokenPath, post, "", "")
	if m := a.json(t); a.status != 200 || m["scope"] != ScopeSessionsRead+" "+ScopeProfilesRead || m["expires_in"] != 60.0 {
		t.Fatalf("token by post: %d %s", a.status, a.body)
	}
	// A client gets no scope it may not have.
	a = h.c.form(TokenPath, cc, "profiles-only", "p-secret")
	if m := a.json(t); a.status != 200 || m["scope"] != ScopeProfilesRead {
		t.Errorf("restricted client: %d %s", a.status, a.body)
	}

	for _, tc := range []struct {
		name       string
		form       url.Values
		id, secret string
		status     int
		code       string
	}{
		{"wrong secret", cc, "app", "nope", 401, "invalid_client"},
		{"unknown client", cc, "nobody", "app-secret", 401, "invalid_client"},
		{"no client", cc, "", "", 401, "invalid_client"},
		{"two client authentications", url.Values{"grant_type": {"client_credentials"}, "client_secret": {"app-secret"}}, "app", "app-secret", 400, "invalid_request"},
		{"no grant type", url.Values{}, "app", "app-secret", 400, "invalid_request"},
		{"password grant", url.Values{"grant_type": {"password"}}, "app", "app-secret", 400, "unsupported_grant_type"},
		{"unknown scope", url.Values{"grant_type": {"client_credentials"}, "scope": {"qod:all"}}, "app", "app-secret", 400, "invalid_scope"},
		{"scope not allowed", url.Values{"grant_type": {"client_credentials"}, "scope": {ScopeSessionsCreate}}, "profiles-only", "p-secret", 400, "invalid_scope"},
		{"lifetime too long", url.Values{"grant_type": {"client_credentials"}, "expires_in": {"601"}}, "app", "app-secret", 400, "invalid_request"},
		{"lifetime not a number", url.Values{"grant_type": {"client_credentials"}, "expires_in": {"soon"}}, "app", "app-secret", 400, "invalid_request"},
		{"bad auth_req_id", url.Values{"grant_type": {grantCIBA}, "auth_req_id": {"ar.x.y"}}, "app", "app-secret", 400, "invalid_grant"},
		{"access token as auth_req_id", url.Values{"grant_type": {grantCIBA}, "auth_req_id": {h.token(t, "app", "app-secret")}}, "app", "app-secret", 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.c.t = t
			a := h.c.form(TokenPath, tc.form, tc.id, tc.secret)
			if a.status != tc.status || a.json(t)["error"] != tc.code {
				t.Errorf("%d %s, want %d %s", a.status, a.body, tc.status, tc.code)
			}
		})
	}
	h.c.t = t
	if a := h.c.do("GET", TokenPath, nil); a.status != 405 || a.header.Get("Allow") != "POST" {
		t.Errorf("GET token endpoint: %d %v", a.status, a.header)
	}

	a = h.c.do("GET", DiscoveryPath, nil)
	if m := a.json(t); a.status != 200 || m["token_endpoint"] != h.c.base+TokenPath || m["backchannel_authentication_endpoint"] != h.c.base+BackchannelAuthPath {
		t.Errorf("discovery: %d %s", a.status, a.body)
	}

	// Without OAuth the endpoints do not exist.
	plain := newHarness(t, Options{})
	if a := plain.c.form(TokenPath, cc, "app", "app-secret"); a.status != 404 {
		t.Errorf("token endpoint without OAuth: %d", a.status)
	}
}

func TestOAuthAuthenticationAndScopes(t *testing.T) {
	h := newOAuthHarness(t, Options{})
	full := h.token(t, "app", "app-secret")
	id := h.c.do("POST", BasePathV1+"/sessions", createBody("+36700000001", "", ""), bearer(full)...).json(t)["sessionId"].(string)
	sess := BasePathV1 + "/sessions/" + id

	for _, tc := range []struct {
		name, auth string
		status     int
		wwwAuth    string
	}{
		{"no token", "", 401, `Bearer realm="qodsim"`},
		{"not bearer", "Basic YXBwOmFwcC1zZWNyZXQ=", 401, `Bearer realm="qodsim"`},
		{"invalid token", "Bearer invalid-token", 401, `Bearer realm="qodsim", error="invalid_token"`},
		{"tampered token", "Bearer " + full[:len(full)-2] + "xx", 401, `Bearer realm="qodsim", error="invalid_token"`},
		{"valid", "Bearer " + full, 200, ""},
	} {
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		a := h.c.do("GET", sess, nil, append(hdr, "x-correlator", "c-1")...)
		if a.status != tc.status || a.header.Get("WWW-Authenticate") != tc.wwwAuth || a.header.Get("x-correlator") != "c-1" {
			t.Errorf("%s: %d %v %s", tc.name, a.status, a.header, a.body)
		}
	}

	// Expiry on the Sim's clock, with the expires_in extension and without.
	short := h.token(t, "app", "app-secret", "expires_in", "0")
	if a := h.c.do("GET", sess, nil, bearer(short)...); a.status != 401 || !strings.Contains(a.errorInfo(t).Message, "expired") {
		t.Errorf("token issued expired: %d %s", a.status, a.body)
	}
	h.clk.Advance(DefaultTokenTTL - time.Second)
	if a := h.c.do("GET", sess, nil, bearer(full)...); a.status != 200 {
		t.Errorf("a second before expiry: %d %s", a.status, a.body)
	}
	h.clk.Advance(time.Second)
	if a := h.c.do("GET", sess, nil, bearer(full)...); a.status != 401 || a.errorInfo(t).Code != "UNAUTHENTICATED" {
		t.Errorf("at expiry: %d %s", a.status, a.body)
	}
	_ = h.token(t, "app", "app-secret") // a new token after expiry is issued at once

	// Each operation needs its scope; a token without it is 403, before the
	// body or the session is looked at.
	for _, tc := range []struct {
		scope, method, path string
		body                any
	}{
		{ScopeSessionsCreate, "POST", BasePathV1 + "/sessions", createBody("+36700000002", "", "")},
		{ScopeSessionsRead, "GET", sess, nil},
		{ScopeSessionsUpdate, "POST", sess + "/extend", "not json"},
		{ScopeSessionsDelete, "DELETE", sess, nil},
		{ScopeSessionsRetrieveByDevice, "POST", BasePathV1 + "/retrieve-sessions", map[string]any{"device": map[string]any{"phoneNumber": "+36700000001"}}},
		{ScopeProfilesRead, "POST", BasePathProfiles + "/retrieve-qos-profiles", map[string]any{}},
		{ScopeProfilesRead, "GET", BasePathProfiles + "/qos-profiles/QOS_L", nil},
	} {
		others := slices.DeleteFunc(Scopes(), func(s string) bool { return s == tc.scope })
		tok := h.token(t, "app", "app-secret", "scope", strings.Join(others, " "))
		a := h.c.do(tc.method, tc.path, tc.body, bearer(tok)...)
		if a.status != 403 || a.errorInfo(t).Code != "PERMISSION_DENIED" || !strings.Contains(a.errorInfo(t).Message, tc.scope) {
			t.Errorf("%s %s without %s: %d %s", tc.method, tc.path, tc.scope, a.status, a.body)
		}
		only := h.token(t, "app", "app-secret", "scope", tc.scope)
		if a := h.c.do(tc.method, tc.path, tc.body, bearer(only)...); a.status == 401 || a.status == 403 {
			t.Errorf("%s %s with only %s: %d %s", tc.method, tc.path, tc.scope, a.status, a.body)
		}
	}
	// Unknown paths and methods need a token, but no scope.
	none, _, err := h.sim.IssueToken(TokenRequest{ClientID: "app", Scopes: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if a := h.c.do("GET", "/nowhere", nil); a.status != 401 {
		t.Errorf("unknown path without a token: %d", a.status)
	}
	if a := h.c.do("PUT", BasePathV1+"/sessions", nil, bearer(none)...); a.status != 405 {
		t.Errorf("PUT with a token without scopes: %d", a.status)
	}
}

func TestOAuthOwnership(t *testing.T) {
	h := newOAuthHarness(t, Options{})
	app, other := h.token(t, "app", "app-secret"), h.token(t, "other", "other-secret")
	s := h.c.do("POST", BasePathV1+"/sessions", createBody("+36700000001", "", ""), bearer(app)...).json(t)
	id := s["sessionId"].(string)
	sess := BasePathV1 + "/sessions/" + id
	h.clk.Advance(time.Second) // AVAILABLE

	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", sess, nil},
		{"POST", sess + "/extend", map[string]any{"requestedAdditionalDuration": 60}},
		{"DELETE", sess, nil},
		{"GET", BasePathV0 + "/sessions/" + id, nil},
		{"DELETE", BasePathV0 + "/sessions/" + id, nil},
	} {
		a := h.c.do(tc.method, tc.path, tc.body, bearer(other)...)
		if a.status != 403 || a.errorInfo(t).Code != "PERMISSION_DENIED" || !strings.Contains(a.errorInfo(t).Message, "another API client") {
			t.Errorf("%s %s by another client: %d %s", tc.method, tc.path, a.status, a.body)
		}
	}
	if a := h.c.do("GET", BasePathV1+"/sessions/3fa85f64-5717-4562-b3fc-2c963f66afa6", nil, bearer(other)...); a.status != 404 {
		t.Errorf("unknown session: %d", a.status)
	}
	retrieve := map[string]any{"device": map[string]any{"phoneNumber": "+36700000001"}}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", retrieve, bearer(other)...); a.status != 200 || string(a.body) != "[]" {
		t.Errorf("retrieve by another client: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", retrieve, bearer(app)...); a.status != 200 || !strings.Contains(string(a.body), id) {
		t.Errorf("retrieve by the owner: %d %s", a.status, a.body)
	}
	// The device is taken whoever asks, but another client is not told the
	// session's id.
	a := h.c.do("POST", BasePathV1+"/sessions", createBody("+36700000001", "", ""), bearer(other)...)
	if a.status != 409 || strings.Contains(string(a.body), id) {
		t.Errorf("conflict with another client's session: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", BasePathV1+"/sessions", createBody("+36700000001", "", ""), bearer(app)...); a.status != 409 || !strings.Contains(string(a.body), id) {
		t.Errorf("conflict with an own session: %d %s", a.status, a.body)
	}
	// v0 needs a token but no scope; sessions belong to clients there too.
	v0 := map[string]any{"device": map[string]any{"phoneNumber": "36700000002"}, "applicationServer": map[string]any{"ipv4Address": "233.252.0.2"}, "qosProfile": "QOS_L"}
	if a := h.c.do("POST", BasePathV0+"/sessions", v0); a.status != 401 {
		t.Errorf("v0 without a token: %d", a.status)
	}
	profilesOnly := h.token(t, "profiles-only", "p-secret")
	v := h.c.do("POST", BasePathV0+"/sessions", v0, bearer(profilesOnly)...)
	if v.status != 201 {
		t.Fatalf("v0 create with a token without QoD scopes: %d %s", v.status, v.body)
	}
	if a := h.c.do("GET", BasePathV0+"/qos-profiles", nil, bearer(profilesOnly)...); a.status != 200 {
		t.Errorf("v0 profiles: %d", a.status)
	}
	if a := h.c.do("GET", BasePathV1+"/sessions/"+v.json(t)["sessionId"].(string), nil, bearer(app)...); a.status != 403 {
		t.Errorf("v1 get of another client's v0 session: %d", a.status)
	}
	if a := h.c.do("DELETE", sess, nil, bearer(app)...); a.status != 204 {
		t.Errorf("delete by the owner: %d %s", a.status, a.body)
	}
}

func TestOAuthThreeLegged(t *testing.T) {
	h := newOAuthHarness(t, Options{Profiles: []Profile{{Name: "QOS_L"}, {Name: "QOS_VIP", Devices: []string{"+99999991005"}}}})
	dev := h.threeLegged(t, "app", "app-secret", "tel:+36700000001")
	if d2 := h.threeLegged(t, "app", "app-secret", "tel: 36700000001"); d2 == "" { // a "+" sent unencoded
		t.Error("no token for tel: with a space for +")
	}
	two := h.token(t, "app", "app-secret")

	b := createBody("+36700000001", "", "")
	if a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(dev)...); a.status != 422 || a.errorInfo(t).Code != "UNNECESSARY_IDENTIFIER" {
		t.Errorf("create with a device and a three-legged token: %d %s", a.status, a.body)
	}
	delete(b, "device")
	b["duration"] = 0 // a 400 comes first
	if a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(dev)...); a.status != 400 {
		t.Errorf("bad create: %d %s", a.status, a.body)
	}
	b["duration"] = 3600
	if a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(two)...); a.status != 422 || a.errorInfo(t).Code != "MISSING_IDENTIFIER" {
		t.Errorf("create without device, two-legged: %d %s", a.status, a.body)
	}
	a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(dev)...)
	if a.status != 201 || strings.Contains(string(a.body), `"device"`) {
		t.Fatalf("create by the token's device: %d %s", a.status, a.body)
	}
	id := a.json(t)["sessionId"].(string)
	// The session is the device's: found by it, two-legged too.
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{}, bearer(dev)...); a.status != 200 || !strings.Contains(string(a.body), id) || strings.Contains(string(a.body), `"device"`) {
		t.Errorf("retrieve by the token's device: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{"device": map[string]any{"phoneNumber": "+36700000001"}}, bearer(dev)...); a.status != 422 || a.errorInfo(t).Code != "UNNECESSARY_IDENTIFIER" {
		t.Errorf("retrieve with a device and a three-legged token: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{"device": map[string]any{"phoneNumber": "+36700000001"}}, bearer(two)...); !strings.Contains(string(a.body), id) {
		t.Errorf("retrieve two-legged: %d %s", a.status, a.body)
	}
	if a := h.c.do("GET", BasePathV1+"/sessions/"+id, nil, bearer(two)...); a.status != 200 {
		t.Errorf("get two-legged: %d", a.status)
	}
	if a := h.c.do("GET", BasePathV0+"/sessions/"+id, nil, bearer(two)...); a.status != 200 || !strings.Contains(string(a.body), `"phoneNumber":"+36700000001"`) {
		t.Errorf("v0 get: %d %s", a.status, a.body)
	}
	// Another device's three-legged token may not touch it.
	ipDev := h.threeLegged(t, "app", "app-secret", "ipport:203.0.113.7:5000")
	for _, m := range []string{"GET", "DELETE"} {
		if a := h.c.do(m, BasePathV1+"/sessions/"+id, nil, bearer(ipDev)...); a.status != 403 || !strings.Contains(a.errorInfo(t).Message, "device of the access token") {
			t.Errorf("%s by another device's token: %d %s", m, a.status, a.body)
		}
	}
	if a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(ipDev)...); a.status != 201 {
		t.Errorf("create by an ipport device: %d %s", a.status, a.body)
	}
	two2 := map[string]any{"device": map[string]any{"ipv4Address": map[string]any{"publicAddress": "203.0.113.7", "publicPort": 5000}}}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", two2, bearer(two)...); a.status != 200 || strings.Count(string(a.body), "sessionId") != 1 {
		t.Errorf("retrieve the ipport device's session by its IPv4: %d %s", a.status, a.body)
	}
	v6 := h.threeLegged(t, "app", "app-secret", "ipport:[2001:db8::1]:443")
	if a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(v6)...); a.status != 201 {
		t.Errorf("create by an IPv6 device: %d %s", a.status, a.body)
	}
	if a := h.c.do("DELETE", BasePathV1+"/sessions/"+id, nil, bearer(dev)...); a.status != 204 {
		t.Errorf("delete by the device's token: %d", a.status)
	}

	// Scenario devices named by the token.
	na := h.threeLegged(t, "app", "app-secret", "tel:+99999991422")
	if a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(na)...); a.status != 422 || a.errorInfo(t).Code != "SERVICE_NOT_APPLICABLE" {
		t.Errorf("create by a not-applicable token: %d %s", a.status, a.body)
	}
	if a := h.c.do("POST", BasePathV1+"/retrieve-sessions", map[string]any{}, bearer(na)...); a.status != 422 {
		t.Errorf("retrieve by a not-applicable token: %d %s", a.status, a.body)
	}

	// QoS profiles for the token's device.
	vip := h.threeLegged(t, "app", "app-secret", "tel:+99999991005")
	none := h.threeLegged(t, "app", "app-secret", "tel:+99999991004")
	for _, tc := range []struct {
		tok  string
		want []string
	}{{dev, []string{"QOS_L"}}, {vip, []string{"QOS_L", "QOS_VIP"}}, {none, []string{}}} {
		a := h.c.do("POST", BasePathProfiles+"/retrieve-qos-profiles", map[string]any{}, bearer(tc.tok)...)
		if got := profileNames(t, a); !slices.Equal(got, tc.want) {
			t.Errorf("profiles %v, want %v", got, tc.want)
		}
	}
	if a := h.c.do("POST", BasePathProfiles+"/retrieve-qos-profiles", map[string]any{"device": map[string]any{"phoneNumber": "+99999991005"}}, bearer(vip)...); a.status != 422 || a.errorInfo(t).Code != "UNNECESSARY_IDENTIFIER" {
		t.Errorf("retrieve-qos-profiles with a device and a three-legged token: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		tok    string
		status int
	}{{vip, 200}, {dev, 404}, {two, 200}} {
		if a := h.c.do("GET", BasePathProfiles+"/qos-profiles/QOS_VIP", nil, bearer(tc.tok)...); a.status != tc.status {
			t.Errorf("getQosProfile QOS_VIP: %d, want %d", a.status, tc.status)
		}
	}

	// CIBA errors.
	for _, tc := range []struct {
		hint, code string
	}{
		{"", "invalid_request"},
		{"tel:36700000001", "invalid_request"},
		{"ipport:203.0.113.7", "invalid_request"},
		{"email:a@b", "invalid_request"},
		{"tel:+99999991404", "unknown_user_id"},
	} {
		a := h.c.form(BackchannelAuthPath, url.Values{"login_hint": {tc.hint}}, "app", "app-secret")
		if a.status != 400 || a.json(t)["error"] != tc.code {
			t.Errorf("bc-authorize %q: %d %s", tc.hint, a.status, a.body)
		}
	}
	if a := h.c.form(BackchannelAuthPath, url.Values{"login_hint": {"tel:+36700000001"}, "scope": {"openid " + ScopeSessionsCreate}}, "profiles-only", "p-secret"); a.status != 400 || a.json(t)["error"] != "invalid_scope" {
		t.Errorf("bc-authorize for a scope the client may not have: %d %s", a.status, a.body)
	}
	a = h.c.form(BackchannelAuthPath, url.Values{"login_hint": {"tel:+36700000001"}, "scope": {"openid " + ScopeSessionsRead}}, "app", "app-secret")
	req := a.json(t)["auth_req_id"].(string)
	redeem := url.Values{"grant_type": {grantCIBA}, "auth_req_id": {req}}
	if a := h.c.form(TokenPath, redeem, "other", "other-secret"); a.status != 400 || a.json(t)["error"] != "invalid_grant" {
		t.Errorf("auth_req_id redeemed by another client: %d %s", a.status, a.body)
	}
	if a := h.c.form(TokenPath, redeem, "app", "app-secret"); a.status != 200 || a.json(t)["scope"] != ScopeSessionsRead {
		t.Errorf("CIBA token with a narrow scope: %d %s", a.status, a.body)
	}
	h.clk.Advance(authReqTTL)
	if a := h.c.form(TokenPath, redeem, "app", "app-secret"); a.status != 400 || a.json(t)["error"] != "expired_token" {
		t.Errorf("expired auth_req_id: %d %s", a.status, a.body)
	}
}

func TestIssueToken(t *testing.T) {
	h := newOAuthHarness(t, Options{})
	tok, exp, err := h.sim.IssueToken(TokenRequest{ClientID: "other", Device: "tel:+36700000001", Scopes: []string{ScopeSessionsCreate}})
	if err != nil || !exp.Equal(epoch.Add(DefaultTokenTTL)) {
		t.Fatalf("IssueToken: %v %v", exp, err)
	}
	b := createBody("", "", "")
	delete(b, "device")
	if a := h.c.do("POST", BasePathV1+"/sessions", b, bearer(tok)...); a.status != 201 {
		t.Errorf("create with an issued three-legged token: %d %s", a.status, a.body)
	}
	expired, _, err := h.sim.IssueToken(TokenRequest{ClientID: "app", TTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	if a := h.c.do("GET", BasePathProfiles+"/qos-profiles/QOS_L", nil, bearer(expired)...); a.status != 401 {
		t.Errorf("expired issued token: %d", a.status)
	}
	for _, r := range []TokenRequest{
		{ClientID: "nobody"},
		{ClientID: "profiles-only", Scopes: []string{ScopeSessionsRead}},
		{ClientID: "app", Scopes: []string{"all"}},
		{ClientID: "app", Device: "tel:+99999991404"},
		{ClientID: "app", Device: "+36700000001"},
	} {
		if _, _, err := h.sim.IssueToken(r); !errors.Is(err, ErrTokenRequest) {
			t.Errorf("%+v: %v, want ErrTokenRequest", r, err)
		}
	}
	plain := newHarness(t, Options{})
	if _, _, err := plain.sim.IssueToken(TokenRequest{ClientID: "app"}); !errors.Is(err, ErrTokenRequest) {
		t.Errorf("without OAuth: %v", err)
	}
	// Tokens of one simulator mean nothing to another.
	h2 := newOAuthHarness(t, Options{})
	if a := h2.c.do("GET", BasePathProfiles+"/qos-profiles/QOS_L", nil, bearer(h.token(t, "app", "app-secret"))...); a.status != 401 {
		t.Errorf("another simulator's token: %d", a.status)
	}
}

func TestOAuthOptions(t *testing.T) {
	ok := []OAuthClient{{ID: "a", Secret: "s"}}
	for name, o := range map[string]Options{
		"tokens and OAuth":    {Tokens: []string{"t"}, OAuth: OAuth{Clients: ok}},
		"empty ID":            {OAuth: OAuth{Clients: []OAuthClient{{Secret: "s"}}}},
		"ID with colon":       {OAuth: OAuth{Clients: []OAuthClient{{ID: "a:b", Secret: "s"}}}},
		"empty secret":        {OAuth: OAuth{Clients: []OAuthClient{{ID: "a"}}}},
		"duplicate ID":        {OAuth: OAuth{Clients: []OAuthClient{{ID: "a", Secret: "s"}, {ID: "a", Secret: "t"}}}},
		"unknown scope":       {OAuth: OAuth{Clients: []OAuthClient{{ID: "a", Secret: "s", Scopes: []string{"qod"}}}}},
		"short TTL":           {OAuth: OAuth{Clients: ok, TokenTTL: time.Millisecond}},
		"TTL without clients": {OAuth: OAuth{TokenTTL: time.Hour}},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v, want ErrInvalidOptions", name, err)
		}
	}

	var o Options
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"-oauth-client", "app:s3cr:et,other:x", "-oauth-client", "third:y", "-oauth-token-ttl", "5m"}); err != nil {
		t.Fatal(err)
	}
	want := []OAuthClient{{ID: "app", Secret: "s3cr:et"}, {ID: "other", Secret: "x"}, {ID: "third", Secret: "y"}}
	if !slices.EqualFunc(o.OAuth.Clients, want, func(a, b OAuthClient) bool { return a.ID == b.ID && a.Secret == b.Secret && a.Scopes == nil }) ||
		o.OAuth.TokenTTL != 5*time.Minute {
		t.Errorf("parsed %+v", o.OAuth)
	}
	if _, err := New(o); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]string{{"-oauth-client", "app"}, {"-oauth-client", ":s"}, {"-oauth-token-ttl", "10ms"}} {
		fs := flag.NewFlagSet("sim", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		var o Options
		o.RegisterFlags(fs)
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestTokensHoldNoSecret: a token carries no client secret, and the
// simulator's answers never echo a token.
func TestTokensHoldNoSecret(t *testing.T) {
	h := newOAuthHarness(t, Options{})
	tok := h.token(t, "app", "app-secret")
	_, payload, _ := strings.Cut(tok, ".")
	payload, _, _ = strings.Cut(payload, ".")
	var c claims
	b, _ := base64.RawURLEncoding.DecodeString(payload)
	if err := json.Unmarshal(b, &c); err != nil || c.Client != "app" || strings.Contains(string(b), "secret") {
		t.Errorf("token payload %s: %v", b, err)
	}
	a := h.c.do("GET", BasePathV1+"/sessions/not-a-uuid", nil, bearer(tok)...)
	if strings.Contains(string(a.body), tok) {
		t.Errorf("answer echoes the token: %s", a.body)
	}
}
