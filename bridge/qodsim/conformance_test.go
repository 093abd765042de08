package qodsim

// TestConformance runs the scenarios of CAMARA's official test definitions
// (testdata/camara-test-definitions-r3.2, the r3.2 release matching
// quality-on-demand 1.1.0 and qos-profiles 1.1.0) against the simulator.
//
// How: the feature files are parsed (a minimal Gherkin reader: tags,
// Scenario, Scenario Outline with Examples). Every scenario, and every row
// of an outline, is a subtest named <feature>/<tag>[/<first column>], so a
// regression names the CAMARA scenario it breaks. Its Given and When steps
// are implemented in Go below (impls: by tag, or shared by the scenarios
// every operation has, such as 401.1), on top of the feature's Background
// (background). Its Then steps are interpreted from the feature text by a
// small step library (steps): every such step must be matched, by the
// library or by a check of the scenario's own, or the subtest fails. A
// step that contradicts the 1.1.0 specs is replaced by what the spec says
// (deviations); the package documentation lists each, with the spec's
// text. Every answer is also validated against the specs by the harness's
// transport, and every scenario of the files must have an implementation.
//
// The simulator runs with conformanceFlags, the documented settings of
// `qodbridge sim` for running the test definitions.

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

const featureDir = "testdata/camara-test-definitions-r3.2"

// conformanceFlags are the settings to run the test definitions against
// `qodbridge sim`; the package documentation quotes them.
var conformanceFlags = []string{
	"-oauth-client", "app:app-secret",
	"-oauth-client", "other:other-secret",
	"-profile-status", "QOS_OLD=DEPRECATED",
	"-profile-device", "QOS_VIP=+99999991005",
}

// The testing assets of the features, as the simulator provides them under
// conformanceFlags.
const (
	validPhone      = "+36700000001" // any number not in a scenario list
	otherPhone      = "+36700000002"
	notFoundPhone   = "+99999991404"
	notApplicable   = "+99999991422"
	noProfilesPhone = "+99999991004"
	restrictedPhone = "+99999991005" // QOS_VIP is restricted to it
	restricted      = "QOS_VIP"
	notActive       = "QOS_OLD"
	terminatedPhone = "+99999991002" // REQUESTED, then UNAVAILABLE / NETWORK_TERMINATED
)

// ---- Gherkin ----

type step struct {
	keyword string // Given, When or Then ("And" and "But" take the one before)
	text    string
}

type gherkinScenario struct {
	file    string
	tag     string // without "@"
	line    int
	steps   []step
	example map[string]string // the Examples row of an outline; nil otherwise
	row     string            // the row's first value
}

// name is the subtest name: the tag, and for an outline the row's first
// value.
func (sc gherkinScenario) name() string {
	if sc.example == nil {
		return sc.tag
	}
	return sc.tag + "/" + sc.row
}

// parseFeature reads the scenarios of a feature file. Backgrounds are
// skipped: background implements them.
func parseFeature(path string) ([]gherkinScenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		out     []gherkinScenario
		cur     *gherkinScenario
		tags    []string
		header  []string
		rows    [][]string
		inEx    bool
		lastKw  string
		lineNo  int
		inScene bool
	)
	flush := func() {
		if cur == nil {
			return
		}
		if len(header) == 0 {
			out = append(out, *cur)
		}
		for _, r := range rows {
			ex := make(map[string]string, len(header))
			for i, h := range header {
				ex[h] = r[i]
			}
			sc := *cur
			sc.example, sc.row = ex, r[0]
			sc.steps = nil
			for _, st := range cur.steps {
				for h, v := range ex {
					st.text = strings.ReplaceAll(st.text, "<"+h+">", v)
				}
				sc.steps = append(sc.steps, st)
			}
			out = append(out, sc)
		}
		cur, header, rows, inEx = nil, nil, nil, false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNo++
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "@"):
			flush()
			tags = append(tags, strings.Fields(l)...)
		case strings.HasPrefix(l, "Feature:"):
		case strings.HasPrefix(l, "Background:"):
			flush()
			inScene = false
		case strings.HasPrefix(l, "Scenario:"), strings.HasPrefix(l, "Scenario Outline:"):
			flush()
			if len(tags) != 1 {
				return nil, fmt.Errorf("%s:%d: want one tag per scenario, have %q", path, lineNo, tags)
			}
			cur = &gherkinScenario{file: filepath.Base(path), tag: strings.TrimPrefix(tags[0], "@"), line: lineNo}
			tags, inScene, lastKw = nil, true, ""
		case strings.HasPrefix(l, "Examples:"):
			if cur == nil {
				return nil, fmt.Errorf("%s:%d: Examples outside a scenario", path, lineNo)
			}
			inEx = true
		case strings.HasPrefix(l, "|"):
			if !inEx {
				return nil, fmt.Errorf("%s:%d: table outside Examples", path, lineNo)
			}
			var cells []string
			for c := range strings.SplitSeq(strings.Trim(l, "|"), "|") {
				cells = append(cells, strings.TrimSpace(c))
			}
			if header == nil {
				header = cells
			} else if len(cells) != len(header) {
				return nil, fmt.Errorf("%s:%d: %d cells, header has %d", path, lineNo, len(cells), len(header))
			} else {
				rows = append(rows, cells)
			}
		default:
			kw, text, _ := strings.Cut(l, " ")
			switch kw {
			case "Given", "When", "Then":
				lastKw = kw
			case "And", "But":
				if lastKw == "" {
					return nil, fmt.Errorf("%s:%d: %s first", path, lineNo, kw)
				}
			default:
				return nil, fmt.Errorf("%s:%d: cannot read %q", path, lineNo, l)
			}
			if inScene && cur != nil {
				cur.steps = append(cur.steps, step{keyword: lastKw, text: strings.TrimSpace(text)})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}

// operationOf returns the operationId a scenario tag names:
// quality_on_demand_createSession_01_… → createSession.
func operationOf(tag string) string {
	rest := strings.TrimPrefix(strings.TrimPrefix(tag, "quality_on_demand_"), "qos_profiles_")
	op, _, _ := strings.Cut(rest, "_")
	return op
}

// ---- deviations: where a feature contradicts the spec, the spec wins ----

type deviation struct {
	tag  string // the scenario
	step string // its step as the feature has it
	with string // the step the simulator is held to instead; "" drops it
	why  string // the spec's text
}

var deviations = []deviation{
	{"quality_on_demand_createSession_02_2_event_received",
		`the event body property "$.type" is set to "org.camaraproject.qod.v1.qos-status-changed"`,
		`the event body property "$.type" is set to "org.camaraproject.quality-on-demand.v1.qos-status-changed"`,
		`quality-on-demand-1.1.0.yaml, CloudEvent.type: enum: ["org.camaraproject.quality-on-demand.v1.qos-status-changed"]`},
	{"quality_on_demand_deleteSession_02_event_notification",
		`the event body property "$.type" is set to "org.camaraproject.qod.v1.qos-status-changed"`,
		`the event body property "$.type" is set to "org.camaraproject.quality-on-demand.v1.qos-status-changed"`,
		`quality-on-demand-1.1.0.yaml, CloudEvent.type: enum: ["org.camaraproject.quality-on-demand.v1.qos-status-changed"]`},
	{"quality_on_demand_createSession_400.9_invalid_duration",
		`the response property "$.code" is "INVALID_ARGUMENT"`,
		`the response property "$.code" is "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE"`,
		`quality-on-demand-1.1.0.yaml, CreateSessionBadRequest400, DurationOutOfRangeForQoSProfile: "The requested duration is out of the allowed range for the specific QoS profile"`},
	{"quality_on_demand_deleteSession_01_delete_existing_qod_session",
		`the response header "Content-Type" is "application/json"`, "",
		`quality-on-demand-1.1.0.yaml, deleteSession: "204": description: Session deleted (no content, so no Content-Type)`},
	{"qos_profiles_getQosProfile_01_generic_success_scenario",
		`each item of the response array complies with the OAS schema at "/components/schemas/QosProfile"`,
		`the response body complies with the OAS schema at "/components/schemas/QosProfile"`,
		`qos-profiles-1.1.0.yaml, getQosProfile: "200": schema: $ref: "#/components/schemas/QosProfile" (one object, not an array)`},
}

// ---- the world of one scenario ----

type world struct {
	t  *testing.T
	h  *harness
	op string
	sc gherkinScenario

	method, path string
	header       http.Header
	body         any // nil: no body; a string is sent as is

	resp answer

	createReq   map[string]any // the body the scenario's session was created with
	created     map[string]any // its createSession answer
	sessionID   string
	events      []notification // notifications of the When step
	maxDuration int64          // of the session's profile, from the qos-profiles API
	tokens      map[string]string
}

func conformanceOptions(t testing.TB) Options {
	t.Helper()
	var o Options
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse(conformanceFlags); err != nil {
		t.Fatal(err)
	}
	return o
}

func newWorld(t *testing.T, sc gherkinScenario) *world {
	w := &world{t: t, h: newHarness(t, conformanceOptions(t)), op: operationOf(sc.tag), sc: sc, tokens: map[string]string{}}
	w.background()
	return w
}

// tok returns a two-legged token of the client with every scope.
func (w *world) tok(client string) string {
	if tok, ok := w.tokens[client]; ok {
		return tok
	}
	tok := w.h.token(w.t, client, client+"-secret")
	w.tokens[client] = tok
	return tok
}

func (w *world) auth(tok string) { w.header.Set("Authorization", "Bearer "+tok) }

// scopeOf is the scope the scenario's operation needs.
func (w *world) scopeOf() string {
	return map[string]string{
		"createSession": ScopeSessionsCreate, "getSession": ScopeSessionsRead, "extendQosSessionDuration": ScopeSessionsUpdate,
		"deleteSession": ScopeSessionsDelete, "retrieveSessionsByDevice": ScopeSessionsRetrieveByDevice,
		"getQosProfile": ScopeProfilesRead, "retrieveQoSProfiles": ScopeProfilesRead,
	}[w.op]
}

func phoneDevice(phone string) map[string]any { return map[string]any{"phoneNumber": phone} }

func (w *world) validCreateBody(phone string) map[string]any {
	return map[string]any{
		"device":            phoneDevice(phone),
		"applicationServer": map[string]any{"ipv4Address": "233.252.0.2"},
		"qosProfile":        "QOS_L",
		"duration":          3600,
		"sink":              w.h.rc.url(),
		"sinkCredential": map[string]any{
			"credentialType": "ACCESSTOKEN", "accessToken": "sink-token-0123456789",
			"accessTokenExpiresUtc": "2100-01-01T00:00:00Z", "accessTokenType": "bearer",
		},
	}
}

// createSession creates the scenario's session (as client app) and
// remembers it.
func (w *world) createSession(body map[string]any) string {
	w.t.Helper()
	a := w.h.c.do("POST", BasePathV1+"/sessions", body, bearer(w.tok("app"))...)
	if a.status != http.StatusCreated {
		w.t.Fatalf("creating the scenario's session: %d %s", a.status, a.body)
	}
	w.createReq, w.created = body, a.json(w.t)
	w.sessionID = w.created["sessionId"].(string)
	return w.sessionID
}

// advance moves the clock (1s: the scenario's session reaches AVAILABLE,
// the default AvailableDelay) and collects the notifications.
func (w *world) advance(d time.Duration) {
	w.t.Helper()
	w.collect(func() { w.h.clk.Advance(d) })
}

// collect runs f and keeps the notifications it caused as the events.
func (w *world) collect(f func()) {
	w.t.Helper()
	before := len(w.h.rc.all())
	f()
	flush(w.t, w.h.sim)
	w.events = w.h.rc.all()[before:]
}

// background implements each feature's Background: the resource, a valid
// two-legged token of client app, an x-correlator, a default body, and an
// existing session where the resource is one.
func (w *world) background() {
	w.header = http.Header{}
	w.auth(w.tok("app"))
	w.header.Set("x-correlator", "conformance-"+strconv.Itoa(w.sc.line))
	switch w.op {
	case "createSession":
		w.method, w.path, w.body = "POST", BasePathV1+"/sessions", w.validCreateBody(validPhone)
	case "getSession", "deleteSession":
		w.method = map[string]string{"getSession": "GET", "deleteSession": "DELETE"}[w.op]
		w.path = BasePathV1 + "/sessions/" + w.createSession(w.validCreateBody(validPhone))
	case "extendQosSessionDuration":
		w.method, w.body = "POST", map[string]any{"requestedAdditionalDuration": 600}
		w.path = BasePathV1 + "/sessions/" + w.createSession(w.validCreateBody(validPhone)) + "/extend"
	case "retrieveSessionsByDevice":
		w.method, w.path, w.body = "POST", BasePathV1+"/retrieve-sessions", map[string]any{"device": phoneDevice(validPhone)}
	case "getQosProfile":
		w.method, w.path = "GET", BasePathProfiles+"/qos-profiles/QOS_L"
	case "retrieveQoSProfiles":
		w.method, w.path, w.body = "POST", BasePathProfiles+"/retrieve-qos-profiles", map[string]any{"device": phoneDevice(validPhone)}
	default:
		w.t.Fatalf("no background for operation %q", w.op)
	}
}

// send is the When step: the request as set up.
func (w *world) send() {
	w.t.Helper()
	var hdr []string
	for k, v := range w.header {
		hdr = append(hdr, k, v[0])
	}
	if w.op == "createSession" {
		if m, ok := w.body.(map[string]any); ok {
			w.createReq = m
		}
	}
	w.resp = w.h.c.do(w.method, w.path, w.body, hdr...)
	if w.op == "createSession" && w.resp.status == http.StatusCreated {
		w.created = w.resp.json(w.t)
	}
}

// bodyMap is the request body as an object, to change a property.
func (w *world) bodyMap() map[string]any {
	m, ok := w.body.(map[string]any)
	if !ok {
		w.t.Fatalf("%s has no object body", w.op)
	}
	return m
}

// ---- scenarios: Given and When ----

type impl struct {
	run    func(w *world)
	checks map[string]func(w *world) // Then steps the library does not interpret
}

func sendAs(f func(w *world)) impl { return impl{run: func(w *world) { f(w); w.send() }} }

// shared are the scenarios several operations have, keyed by the end of
// their tags.
var shared = map[string]impl{
	"_401.1_no_authorization_header": sendAs(func(w *world) { w.header.Del("Authorization") }),
	"_401.2_expired_access_token":    sendAs(func(w *world) { w.auth(w.h.token(w.t, "app", "app-secret", "expires_in", "0")) }),
	"_401.3_invalid_access_token":    sendAs(func(w *world) { w.auth("invalid-access-token") }),
	"_403.2_session_token_mismatch":  sendAs(func(w *world) { w.auth(w.tok("other")) }),
	"_no_request_body":               sendAs(func(w *world) { w.body = nil }),
	"_empty_request_body":            sendAs(func(w *world) { w.body = map[string]any{} }),
	"_invalid_session_id":            sendAs(func(w *world) { w.path = strings.Replace(w.path, w.sessionID, "not-a-uuid", 1) }),
	"_C01.01_device_empty":           sendAs(func(w *world) { w.bodyMap()["device"] = map[string]any{} }),
	"_C01.03_device_not_found":       sendAs(func(w *world) { w.bodyMap()["device"] = phoneDevice(notFoundPhone) }),
	"_C01.05_missing_device":         sendAs(func(w *world) { delete(w.bodyMap(), "device") }),
	"_C01.07_device_not_supported":   sendAs(func(w *world) { w.bodyMap()["device"] = phoneDevice(notApplicable) }),
	"_403.1_missing_access_token_scope": sendAs(func(w *world) {
		others := slices.DeleteFunc(Scopes(), func(s string) bool { return s == w.scopeOf() })
		w.auth(w.h.token(w.t, "app", "app-secret", "scope", strings.Join(others, " ")))
	}),
	"_404.1_not_found": sendAs(func(w *world) {
		if w.op == "getQosProfile" {
			w.path = BasePathProfiles + "/qos-profiles/QOS_" + strings.ToUpper(newUUID()[:8])
			return
		}
		w.path = strings.Replace(w.path, w.sessionID, newUUID(), 1)
	}),
	"_schema_not_compliant": sendAs(func(w *world) {
		switch w.op {
		case "createSession":
			w.bodyMap()["applicationServer"] = "233.252.0.2" // an object in the schema
		case "extendQosSessionDuration":
			w.body = map[string]any{"requestedAdditionalDuration": "600"} // an integer in the schema
		case "retrieveSessionsByDevice":
			w.body = map[string]any{"device": validPhone} // an object in the schema
		case "retrieveQoSProfiles":
			w.body = map[string]any{"status": "RETIRED"} // not in the enum
		}
	}),
	"_C01.02_device_identifiers_not_schema_compliant": sendAs(func(w *world) {
		w.bodyMap()["device"] = map[string]map[string]any{
			"$.device.phoneNumber":             {"phoneNumber": "36700000001"},                                  // no "+"
			"$.device.ipv4Address":             {"ipv4Address": map[string]any{"publicAddress": "233.252.0.2"}}, // neither privateAddress nor publicPort
			"$.device.ipv6Address":             {"ipv6Address": "2001:db8::g"},
			"$.device.networkAccessIdentifier": {"networkAccessIdentifier": 36700000001}, // a string in the schema
		}[w.sc.example["device_identifier"]]
	}),
	"_C01.04_unnecessary_device": sendAs(func(w *world) {
		w.auth(w.h.threeLegged(w.t, "app", "app-secret", "tel:"+validPhone))
		w.bodyMap()["device"] = phoneDevice(validPhone) // the same device: still 422
	}),
	"_C01.06_unsupported_device": sendAs(func(w *world) {
		w.bodyMap()["device"] = map[string]any{"networkAccessIdentifier": "device@testcsp.net"} // CAMARA does not allow it
	}),
}

var impls = map[string]impl{
	// createSession
	"quality_on_demand_createSession_01_generic_success_scenario":  sendAs(func(*world) {}),
	"quality_on_demand_createSession_02_1_sinkcredential_provided": sendAs(func(*world) {}),
	"quality_on_demand_createSession_02_2_event_received": {run: func(w *world) {
		w.createSession(w.validCreateBody(validPhone))
		w.advance(time.Second) // the QoS status becomes known: AVAILABLE
	}},
	"quality_on_demand_createSession_03_3_legged_missing_device": sendAs(func(w *world) {
		w.auth(w.h.threeLegged(w.t, "app", "app-secret", "tel:"+validPhone))
		delete(w.bodyMap(), "device")
	}),
	"quality_on_demand_createSession_400.4_empty_property": sendAs(func(w *world) {
		w.bodyMap()[strings.TrimPrefix(w.sc.example["required_property"], "$.")] = map[string]any{}
	}),
	"quality_on_demand_createSession_400.5_out_of_range_port": sendAs(func(w *world) {
		b := w.bodyMap()
		switch p := w.sc.example["port_property"]; p {
		case "$.device.ipv4Address.publicPort":
			b["device"] = map[string]any{"ipv4Address": map[string]any{"publicAddress": "233.252.0.2", "publicPort": 65536}}
		case "$.devicePorts.ranges.from", "$.applicationServerPorts.ranges.from":
			b[strings.Split(p, ".")[1]] = map[string]any{"ranges": []any{map[string]any{"from": 65536, "to": 65536}}}
		case "$.devicePorts.ranges.to", "$.applicationServerPorts.ranges.to":
			b[strings.Split(p, ".")[1]] = map[string]any{"ranges": []any{map[string]any{"from": 5000, "to": 65536}}}
		case "$.devicePorts.ports[*]", "$.applicationServerPorts.ports[*]":
			b[strings.Split(p, ".")[1]] = map[string]any{"ports": []any{5060, -1}}
		default:
			w.t.Fatalf("port property %q", p)
		}
	}),
	"quality_on_demand_createSession_400.6_invalid_sink_credential": sendAs(func(w *world) {
		w.bodyMap()["sinkCredential"].(map[string]any)["credentialType"] = w.sc.example["unsupported_credential_type"]
	}),
	"quality_on_demand_createSession_400.7_sink_credential_invalid_token": sendAs(func(w *world) {
		w.bodyMap()["sinkCredential"].(map[string]any)["accessTokenType"] = "mac"
	}),
	"quality_on_demand_createSession_400.8_non_existent_qos_profile": sendAs(func(w *world) { w.bodyMap()["qosProfile"] = "QOS_NONEXISTENT" }),
	"quality_on_demand_createSession_400.9_invalid_duration": sendAs(func(w *world) {
		w.bodyMap()["duration"] = 86401 // QOS_L allows up to 86400s; the schema up to 2^31-1
	}),
	"quality_on_demand_createSession_409.1_session_conflict": sendAs(func(w *world) {
		w.createSession(w.validCreateBody(validPhone))
	}),
	"quality_on_demand_createSession_422.1_session_qos_profile_not_applicable": sendAs(func(w *world) { w.bodyMap()["qosProfile"] = notActive }),

	// deleteSession
	"quality_on_demand_deleteSession_01_delete_existing_qod_session": sendAs(func(*world) {}),
	"quality_on_demand_deleteSession_02_event_notification": {run: func(w *world) {
		w.advance(time.Second) // AVAILABLE
		w.collect(w.send)
	}},

	// getSession
	"quality_on_demand_getSession_01_get_existing_session": sendAs(func(*world) {}),
	"quality_on_demand_getSession_02_get_recent_unavailable": sendAs(func(w *world) {
		w.path = BasePathV1 + "/sessions/" + w.createSession(w.validCreateBody(terminatedPhone))
		w.advance(time.Second) // failed: UNAVAILABLE, NETWORK_TERMINATED
	}),

	// extendQosSessionDuration
	"quality_on_demand_extendQosSessionDuration_01_generic_success_scenario": sendAs(func(w *world) { w.advance(time.Second) }),
	"quality_on_demand_extendQosSessionDuration_02_exceed_max_duration": sendAs(func(w *world) {
		w.advance(time.Second)
		a := w.h.c.do("GET", BasePathProfiles+"/qos-profiles/"+w.createReq["qosProfile"].(string), nil, bearer(w.tok("app"))...)
		var p qosProfile
		if err := json.Unmarshal(a.body, &p); err != nil || a.status != 200 || p.MaxDuration.Unit != "Seconds" {
			w.t.Fatalf("maxDuration from the qos-profiles API: %d %s", a.status, a.body)
		}
		w.maxDuration = p.MaxDuration.Value
		w.body = map[string]any{"requestedAdditionalDuration": w.maxDuration - int64(w.createReq["duration"].(int)) + 1000}
	}),
	"quality_on_demand_extendQosSessionDuration_409.1_session_not_available": sendAs(func(*world) {}), // still REQUESTED

	// retrieveSessionsByDevice
	"quality_on_demand_retrieveSessionsByDevice_01_get_existing_session_by_device": sendAs(func(w *world) {
		w.createSession(w.validCreateBody(validPhone))
		w.advance(time.Second) // active
	}),
	"quality_on_demand_retrieveSessionsByDevice_02_sessions_not_found": sendAs(func(w *world) {
		w.createSession(w.validCreateBody(otherPhone)) // another device's
	}),

	// getQosProfile
	"qos_profiles_getQosProfile_01_generic_success_scenario": sendAs(func(*world) {}),
	"qos_profiles_getQosProfile_400.1_name_does_not_match_regex": sendAs(func(w *world) {
		w.path = BasePathProfiles + "/qos-profiles/QOS@L"
	}),
	"qos_profiles_getQosProfile_400.2_invalid_name_length": sendAs(func(w *world) {
		w.path = BasePathProfiles + "/qos-profiles/QL"
	}),

	// retrieveQoSProfiles
	"qos_profiles_retrieveQoSProfiles_01_generic_success_scenario": sendAs(func(*world) {}),
	"qos_profiles_retrieveQoSProfiles_02_filter_by_name_only":      sendAs(func(w *world) { w.body = map[string]any{"name": "QOS_L"} }),
	"qos_profiles_retrieveQoSProfiles_03_filter_by_status_only": sendAs(func(w *world) {
		w.body = map[string]any{"status": w.sc.example["status"]}
	}),
	"qos_profiles_retrieveQoSProfiles_04_return_restricted_profiles": {
		run: func(w *world) { w.body = map[string]any{"device": phoneDevice(restrictedPhone)}; w.send() },
		checks: map[string]func(*world){"the restricted QoS Profiles are returned in the response": func(w *world) {
			if !slices.Contains(profileNames(w.t, w.resp), restricted) {
				w.t.Errorf("%s not listed for %s: %s", restricted, restrictedPhone, w.resp.body)
			}
		}},
	},
	"qos_profiles_retrieveQoSProfiles_05_not_return_restricted_profiles": {
		run: func(w *world) { w.body = map[string]any{}; w.send() },
		checks: map[string]func(*world){"no restricted QoS Profile is included in the response": func(w *world) {
			if slices.Contains(profileNames(w.t, w.resp), restricted) {
				w.t.Errorf("%s listed without a device: %s", restricted, w.resp.body)
			}
		}},
	},
	"qos_profiles_retrieveQoSProfiles_06_device_qos_profiles_not_found": sendAs(func(w *world) {
		w.body = map[string]any{"device": phoneDevice(noProfilesPhone)}
	}),
}

// implOf finds the implementation of a scenario: by its tag, else the one
// shared implementation whose key ends the tag.
func implOf(tag string) (impl, error) {
	if im, ok := impls[tag]; ok {
		return im, nil
	}
	var found []string
	for k := range shared {
		if strings.HasSuffix(tag, k) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 1:
		return shared[found[0]], nil
	case 0:
		return impl{}, fmt.Errorf("no implementation of scenario %s", tag)
	}
	return impl{}, fmt.Errorf("scenario %s matches several shared implementations: %q", tag, found)
}

// ---- the step library: Then steps ----

type stepDef struct {
	re *regexp.Regexp
	f  func(w *world, m []string)
}

func def(re string, f func(w *world, m []string)) stepDef {
	return stepDef{regexp.MustCompile("^" + re + "$"), f}
}

// specFor is the spec the scenario's feature refers to.
func (w *world) specFor() *openapi3.T {
	if strings.HasPrefix(w.sc.file, "qos-profiles") {
		return mustSpecs(w.t).profiles
	}
	return mustSpecs(w.t).v1
}

// conform validates v against a schema of the scenario's spec.
func (w *world) conform(what, name string, v any) {
	w.t.Helper()
	ref := w.specFor().Components.Schemas[name]
	if ref == nil {
		w.t.Fatalf("the spec has no schema %s", name)
	}
	if err := ref.Value.VisitJSON(v); err != nil {
		w.t.Errorf("%s does not comply with %s: %v", what, name, err)
	}
}

// answerJSON is the answer as generic JSON, with an http:// sink read as
// https:// (the simulator's one leniency; the harness's sinks are https
// anyway).
func (w *world) answerJSON() any {
	w.t.Helper()
	var v any
	if err := json.Unmarshal(httpSinkAsHTTPS(w.resp.body), &v); err != nil {
		w.t.Fatalf("answer %d is not JSON: %v: %s", w.resp.status, err, w.resp.body)
	}
	return v
}

func (w *world) answerObject() map[string]any {
	w.t.Helper()
	m, ok := w.answerJSON().(map[string]any)
	if !ok {
		w.t.Fatalf("answer is not an object: %s", w.resp.body)
	}
	return m
}

func (w *world) answerArray() []any {
	w.t.Helper()
	a, ok := w.answerJSON().([]any)
	if !ok {
		w.t.Fatalf("answer is not an array: %s", w.resp.body)
	}
	return a
}

// normal is v as encoding/json decodes it, so that what the test sent
// compares with what the simulator answered.
func normal(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func (w *world) now() time.Time { return w.h.clk.Now() }

// rule checks one constraint of a SessionInfo item against the session's
// create request.
func (w *world) rule(item map[string]any, prop, text string) {
	w.t.Helper()
	prop = strings.TrimPrefix(prop, "$.")
	got, present := item[prop]
	req, given := w.createReq[prop]
	status, _ := item["qosStatus"].(string)
	ts := func(k string) time.Time {
		s, _ := item[k].(string)
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			w.t.Errorf("%s %q is not RFC 3339", k, s)
		}
		return v
	}
	switch {
	case regexp.MustCompile(`^exists only if provided (in the request body|for createSession) and with the same value$`).MatchString(text):
		switch {
		case present && !given:
			w.t.Errorf("%s present though not given: %v", prop, got)
		case given && prop == "device":
			// One identifier of those given (SessionInfo.device is a
			// DeviceResponse: maxProperties 1).
			if d, ok := got.(map[string]any); present && (!ok || len(d) != 1) {
				w.t.Errorf("device %v: want one identifier of %v", got, req)
			}
			for k, v := range got.(map[string]any) {
				if !reflect.DeepEqual(v, normal(req).(map[string]any)[k]) {
					w.t.Errorf("device.%s %v, given %v", k, v, req)
				}
			}
		case given && !reflect.DeepEqual(got, normal(req)):
			w.t.Errorf("%s %v, given %v", prop, got, req)
		}
	case regexp.MustCompile(`^(has )?(the )?same value as in the request body$|^has the value provided for createSession$`).MatchString(text):
		if !reflect.DeepEqual(got, normal(req)) {
			w.t.Errorf("%s %v, given %v", prop, got, req)
		}
	case regexp.MustCompile(`^exists only if "(\$\.)?qosStatus" is "AVAILABLE" and (the )?value is in the past$`).MatchString(text):
		if present && (status != "AVAILABLE" || ts(prop).After(w.now())) {
			w.t.Errorf("%s %v with qosStatus %s at %v", prop, got, status, w.now())
		}
	case regexp.MustCompile(`^exists only if "(\$\.)?qosStatus" is not "REQUESTED" and (the value is )?later than "(\$\.)?startedAt"$`).MatchString(text):
		if present && (status == "REQUESTED" || (item["startedAt"] != nil && !ts(prop).After(ts("startedAt")))) {
			w.t.Errorf("%s %v with qosStatus %s, startedAt %v", prop, got, status, item["startedAt"])
		}
	case regexp.MustCompile(`^exists only if "(\$\.)?qosStatus" is "UNAVAILABLE"$`).MatchString(text):
		if present && status != "UNAVAILABLE" {
			w.t.Errorf("%s %v with qosStatus %s", prop, got, status)
		}
	case text == `is not lower than request property "$.requestedAdditionalDuration"`:
		if d, _ := got.(float64); d < float64(w.bodyMap()["requestedAdditionalDuration"].(int)) {
			w.t.Errorf("duration %v below requestedAdditionalDuration %v", got, w.body)
		}
	case text == `does not exceed the "maxDuration" for the QoS Profile`:
		if d, _ := got.(float64); w.maxDuration == 0 || d > float64(w.maxDuration) {
			w.t.Errorf("duration %v above maxDuration %d", got, w.maxDuration)
		}
	default:
		w.t.Errorf("rule %q of %s not implemented", text, prop)
	}
}

var steps = []stepDef{
	def(`the response status code is (\d+)`, func(w *world, m []string) {
		if want, _ := strconv.Atoi(m[1]); w.resp.status != want {
			w.t.Errorf("status %d, want %d: %s", w.resp.status, want, w.resp.body)
		}
	}),
	def(`the response header "Content-Type" is "application/json"`, func(w *world, _ []string) {
		if ct := w.resp.header.Get("Content-Type"); ct != "application/json" {
			w.t.Errorf("Content-Type %q", ct)
		}
	}),
	def(`the response header "x-correlator" has (?:the )?same value as the request header "x-correlator"`, func(w *world, _ []string) {
		if got, want := w.resp.header.Get("x-correlator"), w.header.Get("x-correlator"); got != want || want == "" {
			w.t.Errorf("x-correlator %q, sent %q", got, want)
		}
	}),
	def(`the response property "\$\.status" is (\d+)`, func(w *world, m []string) {
		if want, _ := strconv.Atoi(m[1]); w.resp.errorInfo(w.t).Status != want {
			w.t.Errorf("$.status %d, want %d", w.resp.errorInfo(w.t).Status, want)
		}
	}),
	def(`the response property "\$\.code" is "([^"]+)"(?: or "([^"]+)")?`, func(w *world, m []string) {
		if c := w.resp.errorInfo(w.t).Code; c != m[1] && (m[2] == "" || c != m[2]) {
			w.t.Errorf("$.code %q, want %q: %s", c, strings.TrimSuffix(m[1]+" or "+m[2], " or "), w.resp.body)
		}
	}),
	def(`the response property "\$\.message" contains a user[- ]friendly text`, func(w *world, _ []string) {
		if ei := w.resp.errorInfo(w.t); len(ei.Message) < 10 || !strings.Contains(ei.Message, " ") {
			w.t.Errorf("$.message %q is no text for a user", ei.Message)
		}
	}),
	def(`the response body complies with the OAS schema at "#?/components/schemas/(\w+)"`, func(w *world, m []string) {
		w.conform("the answer", m[1], w.answerJSON())
	}),
	def(`each item of the response array(?:, if any,)? complies with the OAS schema at "/components/schemas/(\w+)"`, func(w *world, m []string) {
		for i, it := range w.answerArray() {
			w.conform(fmt.Sprintf("item %d", i), m[1], it)
		}
	}),
	def(`each item of the response array, if any, has property "\$\[\*\]\.(\w+)" equal to (\w+)`, func(w *world, m []string) {
		for i, it := range w.answerArray() {
			if v := it.(map[string]any)[m[1]]; v != m[2] {
				w.t.Errorf("item %d: %s %v, want %s", i, m[1], v, m[2])
			}
		}
	}),
	def(`the response array has only one item which complies with the OAS schema at "/components/schemas/(\w+)"`, func(w *world, m []string) {
		a := w.answerArray()
		if len(a) != 1 {
			w.t.Fatalf("%d items, want 1: %s", len(a), w.resp.body)
		}
		w.conform("the item", m[1], a[0])
	}),
	def(`the response property "\$\[0\]\.name" value is equal to the request body property "\$\.name"`, func(w *world, _ []string) {
		if a := w.answerArray(); len(a) == 0 || a[0].(map[string]any)["name"] != w.bodyMap()["name"] {
			w.t.Errorf("$[0].name of %s, want %v", w.resp.body, w.bodyMap()["name"])
		}
	}),
	def(`the response property "\$\.name" value is equal to path param "name"`, func(w *world, _ []string) {
		if name := w.path[strings.LastIndex(w.path, "/")+1:]; w.answerObject()["name"] != name {
			w.t.Errorf("$.name of %s, want %s", w.resp.body, name)
		}
	}),
	def(`the response body is \[\]`, func(w *world, _ []string) {
		if a := w.answerArray(); len(a) != 0 {
			w.t.Errorf("answer %s, want []", w.resp.body)
		}
	}),
	def(`the response property "\$\.(\w+)" does not exist`, func(w *world, m []string) {
		if v, ok := w.answerObject()[m[1]]; ok {
			w.t.Errorf("$.%s is %v", m[1], v)
		}
	}),
	def(`the response property "\$\.(\w+)" is "([^"]+)"`, func(w *world, m []string) {
		if v := w.answerObject()[m[1]]; v != m[2] {
			w.t.Errorf("$.%s %v, want %s", m[1], v, m[2])
		}
	}),
	def(`the response property "(\$\.\w+)" matches the rule: (.+)`, func(w *world, m []string) {
		w.rule(w.answerObject(), m[1], m[2])
	}),
	def(`the response property "(\$\.\w+)" ((?:exists only if|has the|is not lower|does not exceed) .+)`, func(w *world, m []string) {
		w.rule(w.answerObject(), m[1], m[2])
	}),
	def(`in all items in the response, property "(\w+)" (.+)`, func(w *world, m []string) {
		a := w.answerArray()
		if len(a) == 0 {
			w.t.Errorf("no items to check")
		}
		for _, it := range a {
			w.rule(it.(map[string]any), m[1], m[2])
		}
	}),

	// events
	def(`an event is received at the address of the (?:request property "\$\.sink"|"\$\.sink" provided for createSession)`, func(w *world, _ []string) {
		if len(w.events) == 0 || w.createReq["sink"] != w.h.rc.url() {
			w.t.Fatalf("%d events at %v", len(w.events), w.createReq["sink"])
		}
	}),
	def(`the event header "Authorization" is set to "Bearer " \+ the value of the (?:request )?property "\$\.sinkCredential\.accessToken"(?: provided for createSession)?`, func(w *world, _ []string) {
		want := "Bearer " + w.createReq["sinkCredential"].(map[string]any)["accessToken"].(string)
		for _, n := range w.events {
			if got := n.header.Get("Authorization"); got != want {
				w.t.Errorf("event Authorization %q, want %q", got, want)
			}
		}
	}),
	def(`the event header "Content-Type" is set to "application/cloudevents\+json"`, func(w *world, _ []string) {
		for _, n := range w.events {
			if ct := n.header.Get("Content-Type"); ct != "application/cloudevents+json" {
				w.t.Errorf("event Content-Type %q", ct)
			}
		}
	}),
	def(`the event body complies with the OAS schema at "/components/schemas/(\w+)"`, func(w *world, m []string) {
		for i, n := range w.events {
			w.conform(fmt.Sprintf("event %d", i), m[1], n.ev)
		}
	}),
	def(`the event body property "\$\.id" is unique`, func(w *world, _ []string) {
		// Among every event the sink accepted in the scenario (a retry
		// would resend the same id, on purpose).
		seen := map[string]bool{}
		for _, n := range w.h.rc.accepted() {
			if n.id() == "" || seen[n.id()] {
				w.t.Errorf("event id %q not unique", n.id())
			}
			seen[n.id()] = true
		}
	}),
	def(`the event body property "\$\.type" is set to "([^"]+)"`, func(w *world, m []string) {
		for _, n := range w.events {
			if n.ev["type"] != m[1] {
				w.t.Errorf("event type %v, want %s", n.ev["type"], m[1])
			}
		}
	}),
	def(`the event body property "\$\.data\.sessionId" (?:has the same value as createSession response property "\$\.sessionId"|as returned for createSession)`, func(w *world, _ []string) {
		for _, n := range w.events {
			if n.sessionID() != w.created["sessionId"] {
				w.t.Errorf("event sessionId %s, want %v", n.sessionID(), w.created["sessionId"])
			}
		}
	}),
	def(`the event body property "\$\.data\.qosStatus" is "(\w+)"(?: or "(\w+)")?`, func(w *world, m []string) {
		for _, n := range w.events {
			if s := n.status(); s != m[1] && s != m[2] {
				w.t.Errorf("event qosStatus %s, want %s", s, strings.TrimSuffix(m[1]+" or "+m[2], " or "))
			}
		}
	}),
	def(`the event body property "\$\.data\.statusInfo" exists only if "\$\.data\.qosStatus" is "UNAVAILABLE"`, func(w *world, _ []string) {
		for _, n := range w.events {
			if _, ok := n.data()["statusInfo"]; ok && n.status() != "UNAVAILABLE" {
				w.t.Errorf("statusInfo with qosStatus %s: %s", n.status(), n.body)
			}
		}
	}),
	def(`the event body property "\$\.data\.statusInfo" is "(\w+)"`, func(w *world, m []string) {
		for _, n := range w.events {
			if n.info() != m[1] {
				w.t.Errorf("event statusInfo %q, want %s", n.info(), m[1])
			}
		}
	}),
}

// then checks one Then step: by the scenario's own check, else by the
// library; an unknown step fails the scenario.
func (w *world) then(im impl, text string) {
	w.t.Helper()
	if check, ok := im.checks[text]; ok {
		check(w)
		return
	}
	var found []stepDef
	for _, d := range steps {
		if d.re.MatchString(text) {
			found = append(found, d)
		}
	}
	// The generic property step matches what the $.code step does: the
	// first definition wins, and the specific ones come first.
	if len(found) == 0 {
		w.t.Errorf("step not implemented: Then %s", text)
		return
	}
	found[0].f(w, found[0].re.FindStringSubmatch(text))
}

func runScenario(t *testing.T, sc gherkinScenario) {
	im, err := implOf(sc.tag)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, sc)
	im.run(w)
	when := false
	for _, st := range sc.steps {
		if st.keyword == "When" {
			when = true
		}
		if st.keyword != "Then" {
			continue
		}
		text := st.text
		for _, d := range deviations {
			if d.tag == sc.tag && d.step == text {
				t.Logf("deviation: %q checked as %q: %s", d.step, d.with, d.why)
				text = d.with
			}
		}
		if text != "" {
			w.then(im, text)
		}
	}
	if !when {
		t.Errorf("scenario has no When step")
	}
}

func featureFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(featureDir, "*.feature"))
	if err != nil || len(files) != 7 {
		t.Fatalf("feature files %v: %v", files, err)
	}
	return files
}

func TestConformance(t *testing.T) {
	tags := map[string]bool{}
	for _, file := range featureFiles(t) {
		scs, err := parseFeature(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.TrimSuffix(filepath.Base(file), ".feature"), func(t *testing.T) {
			for _, sc := range scs {
				tags[sc.tag] = true
				t.Run(sc.name(), func(t *testing.T) { runScenario(t, sc) })
			}
		})
	}
	for tag := range impls {
		if !tags[tag] {
			t.Errorf("implementation of %s, a scenario no feature has", tag)
		}
	}
	for _, d := range deviations {
		if !tags[d.tag] {
			t.Errorf("deviation for %s, a scenario no feature has", d.tag)
		}
	}
}

// TestConformanceCoverage: the run covers every scenario of every feature
// file, and each deviation replaces a step its scenario has.
func TestConformanceCoverage(t *testing.T) {
	n, outlines := 0, 0
	for _, file := range featureFiles(t) {
		scs, err := parseFeature(file)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Count(string(b), "\n  @"); len(slices.CompactFunc(slices.Clone(scs), func(a, b gherkinScenario) bool { return a.tag == b.tag })) != want {
			t.Errorf("%s: read %d scenarios, the file tags %d", file, len(scs), want)
		}
		for _, sc := range scs {
			n++
			if sc.example != nil {
				outlines++
			}
			if _, err := implOf(sc.tag); err != nil {
				t.Error(err)
			}
			for _, d := range deviations {
				if d.tag == sc.tag && !slices.ContainsFunc(sc.steps, func(s step) bool { return s.text == d.step }) {
					t.Errorf("deviation of %s: no step %q", d.tag, d.step)
				}
			}
		}
	}
	t.Logf("%d scenario runs, %d of them outline rows", n, outlines)
}

// TestConformanceDocumented: the package documentation lists every
// deviation and the settings of the run.
func TestConformanceDocumented(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(strings.ReplaceAll(string(b), "//", "")), " ")
	for _, d := range deviations {
		if !strings.Contains(doc, d.tag) {
			t.Errorf("doc.go does not list the deviation of %s", d.tag)
		}
	}
	if want := strings.Join(conformanceFlags, " "); !strings.Contains(doc, want) {
		t.Errorf("doc.go does not give the settings %q", want)
	}
}
