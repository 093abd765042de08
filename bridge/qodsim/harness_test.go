package qodsim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// The specs the simulator is held to: unmodified copies, see testdata/README.md.
const (
	specV1File       = "testdata/quality-on-demand-1.1.0.yaml"
	specV0File       = "testdata/quality-on-demand-0.10.1.yaml"
	specProfilesFile = "testdata/qos-profiles-1.1.0.yaml"
)

func init() {
	// kin-openapi checks these formats only when asked to.
	openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122))
	openapi3.DefineIPv4Format()
	openapi3.DefineIPv6Format()
}

type specs struct{ v1, v0, profiles *openapi3.T }

var loadSpecs = sync.OnceValues(func() (specs, error) {
	load := func(file string) (*openapi3.T, error) {
		doc, err := openapi3.NewLoader().LoadFromFile(file)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", file, err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			return nil, fmt.Errorf("validate %s: %w", file, err)
		}
		return doc, nil
	}
	v1, err := load(specV1File)
	if err != nil {
		return specs{}, err
	}
	v0, err := load(specV0File)
	if err != nil {
		return specs{}, err
	}
	profiles, err := load(specProfilesFile)
	return specs{v1: v1, v0: v0, profiles: profiles}, err
})

func mustSpecs(t testing.TB) specs {
	t.Helper()
	s, err := loadSpecs()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSpecCopies(t *testing.T) {
	for file, want := range map[string]string{
		specV1File:       "b50893bacfeeb45631f36dbfdc8f6e09de4a6e3b4d9a4515404b9c5765b02c31",
		specV0File:       "c54ddf163cc08800614cc1ddd8a955db63626732956736c0f85a86213faa6eb6",
		specProfilesFile: "12d7130e6342da634759e3691a8c4a6bbf3f41aa0b717ef80f4b1e9e1336d31c",
		featureDir + "/qos-profiles-getQosProfile.feature":                 "814556fe52f2960f4c640ac541c36f240f213baec7c703a68dc001a12ca913a6",
		featureDir + "/qos-profiles-retrieveQoSProfiles.feature":           "abc7aa92db0874f5c9e7c2140319c80c87f07a4b209cbe6c8c278a9103421306",
		featureDir + "/quality-on-demand-createSession.feature":            "3fd3182f2ed9937d12f979e7f329df6d91ed2d23aa45a9898bbba34b66a56b04",
		featureDir + "/quality-on-demand-deleteSession.feature":            "f57bdb973292cf56b31ca955e6d8324d9325aeda513f32e07c0647dbc51922fb",
		featureDir + "/quality-on-demand-extendQosSessionDuration.feature": "1d030c489dc5453ab103c5b5334985896d98dbd17bc0741763b8f7c86cf55e56",
		featureDir + "/quality-on-demand-getSession.feature":               "841d67fea5220daef248daa67ec7f56f315417a099b61a6449beb763a09257d1",
		featureDir + "/quality-on-demand-retrieveSessionsByDevice.feature": "a1eb3a9b2492c3b302b62843c36a061658f8711bc05e9e9514664d6d9c1f9960",
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
			t.Errorf("%s was modified: sha256 %x, want %s", file, sum, want)
		}
	}
	mustSpecs(t)
}

// findRoute matches a concrete path against the spec's path templates.
func findRoute(doc *openapi3.T, method, rel string) (*routers.Route, map[string]string, bool) {
	segs := strings.Split(strings.Trim(rel, "/"), "/")
	for tmpl, item := range doc.Paths.Map() {
		tsegs := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") {
				if segs[i] == "" {
					ok = false
					break
				}
				params[ts[1:len(ts)-1]] = segs[i]
			} else if ts != segs[i] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		op := item.GetOperation(method)
		if op == nil {
			return nil, nil, true
		}
		return &routers.Route{Spec: doc, Path: tmpl, PathItem: item, Method: method, Operation: op}, params, true
	}
	return nil, nil, false
}

// statusesBeyondSpec are answers the specs do not list for an operation but
// CAMARA's common definitions allow ("the list of error codes in this API
// specification is not exhaustive"): the simulator may send them, with
// these codes only.
var statusesBeyondSpec = map[int][]string{
	http.StatusNotFound:            {codeIdentifierNotFound},                 // v0 create has no 404
	http.StatusUnprocessableEntity: {codeServiceNotApplicable},               // v0 create has no 422
	http.StatusTooManyRequests:     {codeTooManyRequests, codeQuotaExceeded}, // v0 has no 429
	http.StatusInternalServerError: {codeInternal},                           // v1 has no 500
	http.StatusServiceUnavailable:  {codeUnavailable},                        // v1 has no 503
}

// validateAnswer checks one answer of the simulator against the spec of the
// API it came from. The one leniency: an echoed http:// sink is checked as
// if it were https:// (the spec's pattern demands https).
func validateAnswer(ctx context.Context, sp specs, req *http.Request, status int, header http.Header, body []byte) error {
	if c := req.Header.Get("x-correlator"); c != "" && correlatorRE.MatchString(c) && header.Get("x-correlator") != c {
		return fmt.Errorf("x-correlator %q not echoed (got %q)", c, header.Get("x-correlator"))
	}
	if p := req.URL.Path; (strings.HasPrefix(p, "/oauth2/") || p == DiscoveryPath) && !bytes.Contains(body, []byte(`"code":"NOT_FOUND"`)) {
		return validateOAuthAnswer(req, status, header, body)
	}
	var ei errorInfo
	if status >= 400 {
		if ct := header.Get("Content-Type"); ct != "application/json" {
			return fmt.Errorf("error answer Content-Type %q", ct)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ei); err != nil {
			return fmt.Errorf("error answer is not ErrorInfo: %w: %s", err, body)
		}
		if ei.Status != status || ei.Code == "" || ei.Message == "" {
			return fmt.Errorf("ErrorInfo %+v does not match status %d or is incomplete", ei, status)
		}
		if status == http.StatusTooManyRequests && header.Get("Retry-After") == "" {
			return errors.New("429 without Retry-After")
		}
	}

	path := req.URL.Path
	var (
		doc *openapi3.T
		rel string
	)
	switch {
	case strings.HasPrefix(path, BasePathV1+"/"):
		doc, rel = sp.v1, strings.TrimPrefix(path, BasePathV1)
	case strings.HasPrefix(path, BasePathV0+"/"):
		doc, rel = sp.v0, strings.TrimPrefix(path, BasePathV0)
	case strings.HasPrefix(path, BasePathProfiles+"/"):
		doc, rel = sp.profiles, strings.TrimPrefix(path, BasePathProfiles)
	}
	var (
		route  *routers.Route
		params map[string]string
		known  bool
	)
	if doc != nil {
		route, params, known = findRoute(doc, req.Method, rel)
	}
	switch {
	case !known:
		if (status != http.StatusNotFound || ei.Code != codeNotFound) && (status != http.StatusUnauthorized || ei.Code != codeUnauthenticated) {
			return fmt.Errorf("path outside the spec answered %d %s, want 404 NOT_FOUND (or 401 UNAUTHENTICATED)", status, ei.Code)
		}
		return nil
	case route == nil:
		if status != http.StatusMethodNotAllowed || header.Get("Allow") == "" || ei.Code != codeMethodNotAllowed {
			return fmt.Errorf("method outside the spec answered %d %s (Allow %q), want 405 with Allow", status, ei.Code, header.Get("Allow"))
		}
		return nil
	}
	if route.Operation.Responses.Status(status) == nil {
		if !slices.Contains(statusesBeyondSpec[status], ei.Code) {
			return fmt.Errorf("%s %s: status %d (%s) is not in the spec", req.Method, route.Path, status, ei.Code)
		}
		return nil
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	input.SetBodyBytes(httpSinkAsHTTPS(body))
	if err := openapi3filter.ValidateResponse(ctx, input); err != nil {
		return fmt.Errorf("%s %s -> %d: %w\nbody: %s", req.Method, route.Path, status, err, body)
	}
	return nil
}

// validateOAuthAnswer checks an answer of the OAuth endpoints, which are
// not CAMARA APIs: JSON always, an RFC 6749 error object on failure, and
// Cache-Control: no-store on whatever carries or refuses a credential.
func validateOAuthAnswer(req *http.Request, status int, header http.Header, body []byte) error {
	var m map[string]any
	if header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil {
		return fmt.Errorf("OAuth answer %d is not a JSON object: %s", status, body)
	}
	if req.URL.Path == DiscoveryPath {
		return nil
	}
	if header.Get("Cache-Control") != "no-store" {
		return fmt.Errorf("OAuth answer %d without Cache-Control: no-store", status)
	}
	if status >= 400 {
		code, _ := m["error"].(string)
		if !slices.Contains([]string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
			"invalid_scope", "expired_token", "unknown_user_id"}, code) {
			return fmt.Errorf("OAuth error %d with error %q", status, code)
		}
		if status == http.StatusUnauthorized && header.Get("WWW-Authenticate") == "" {
			return errors.New("OAuth 401 without WWW-Authenticate")
		}
	}
	return nil
}

// httpSinkAsHTTPS rewrites the sink of a SessionInfo (or of each in an
// array) from http:// to https://, the simulator's one deliberate deviation.
func httpSinkAsHTTPS(body []byte) []byte {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return body
	}
	fix := func(o any) {
		if m, ok := o.(map[string]any); ok {
			if s, ok := m["sink"].(string); ok && strings.HasPrefix(s, "http://") {
				m["sink"] = "https://" + strings.TrimPrefix(s, "http://")
			}
		}
	}
	if a, ok := v.([]any); ok {
		for _, o := range a {
			fix(o)
		}
	} else {
		fix(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return b
}

// validatingTransport validates every answer that passes through it.
type validatingTransport struct {
	t    testing.TB
	sp   specs
	next http.RoundTripper
}

func (vt *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := vt.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := validateAnswer(req.Context(), vt.sp, req, resp.StatusCode, resp.Header, body); err != nil {
		vt.t.Errorf("answer violates the spec: %v", err)
	}
	return resp, nil
}

// client calls the simulator's API through a validatingTransport, so every
// answer in every test is checked against the spec.
type client struct {
	t     testing.TB
	base  string
	http  *http.Client
	token string
}

func newClient(t testing.TB, h http.Handler) *client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: srv.URL, http: &http.Client{Transport: &validatingTransport{t: t, sp: mustSpecs(t), next: tr}}}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) errorInfo(t testing.TB) errorInfo {
	t.Helper()
	var ei errorInfo
	if err := json.Unmarshal(a.body, &ei); err != nil {
		t.Fatalf("not ErrorInfo: %v: %s", err, a.body)
	}
	return ei
}

// decode unmarshals the answer body into a generic JSON value.
func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", a.status, err, a.body)
	}
	return m
}

// do sends body (a string is sent as is, anything else as JSON) with the
// optional header pairs. It is safe to call from any goroutine: a failed
// call is reported with Errorf and returns a zero answer.
func (c *client) do(method, path string, body any, header ...string) answer {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Errorf("marshal %s body: %v", path, err)
			return answer{}
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Errorf("%s %s: read answer: %v", method, path, err)
		return answer{}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// form posts an application/x-www-form-urlencoded body, with HTTP Basic
// client authentication when id is not empty.
func (c *client) form(path string, form url.Values, id, secret string) answer {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// create posts a v1 create and requires 201; it returns the SessionInfo.
func (c *client) create(body map[string]any) map[string]any {
	c.t.Helper()
	a := c.do("POST", BasePathV1+"/sessions", body)
	if a.status != http.StatusCreated {
		c.t.Fatalf("create: %d %s", a.status, a.body)
	}
	return a.json(c.t)
}

// createBody returns a valid v1 create body for the phone number, with a
// sink and token if sink is not empty.
func createBody(phone, sink, token string) map[string]any {
	b := map[string]any{
		"device":            map[string]any{"phoneNumber": phone},
		"applicationServer": map[string]any{"ipv4Address": "233.252.0.2"},
		"qosProfile":        "QOS_L",
		"duration":          3600,
	}
	if sink != "" {
		b["sink"] = sink
		if token != "" {
			b["sinkCredential"] = map[string]any{
				"credentialType":        "ACCESSTOKEN",
				"accessToken":           token,
				"accessTokenExpiresUtc": "2100-01-01T00:00:00Z",
				"accessTokenType":       "bearer",
			}
		}
	}
	return b
}

// notification is one POST the receiver got.
type notification struct {
	header   http.Header
	body     []byte
	ev       map[string]any
	answered int
}

func (n notification) id() string           { s, _ := n.ev["id"].(string); return s }
func (n notification) data() map[string]any { m, _ := n.ev["data"].(map[string]any); return m }
func (n notification) sessionID() string    { s, _ := n.data()["sessionId"].(string); return s }
func (n notification) status() string       { s, _ := n.data()["qosStatus"].(string); return s }
func (n notification) info() string         { s, _ := n.data()["statusInfo"].(string); return s }

// receiver is a notification sink. answer decides each status (204 when
// nil); it runs under the receiver's lock.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	mu     sync.Mutex
	got    []notification
	answer func(n notification, prior []notification) (status int, retryAfter string)
	signal chan struct{}
}

// newReceiver starts a TLS sink (so answers echo an https:// sink, as the
// spec wants) unless plain is set.
func newReceiver(t testing.TB, plain bool) *receiver {
	rc := &receiver{t: t, signal: make(chan struct{}, 1)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := notification{header: r.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &n.ev); err != nil {
			t.Errorf("notification is not JSON: %v: %s", err, body)
		}
		rc.mu.Lock()
		status, ra := http.StatusNoContent, ""
		if rc.answer != nil {
			status, ra = rc.answer(n, rc.got)
		}
		n.answered = status
		rc.got = append(rc.got, n)
		rc.mu.Unlock()
		select {
		case rc.signal <- struct{}{}:
		default:
		}
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.WriteHeader(status)
	})
	rc.srv = httptest.NewUnstartedServer(h)
	// Close cuts connections mid-handshake; that is not a test failure.
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if plain {
		rc.srv.Start()
	} else {
		rc.srv.StartTLS()
	}
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) url() string { return rc.srv.URL + "/notifications" }

// client returns an HTTP client for the simulator that trusts the receiver.
func (rc *receiver) client() *http.Client {
	c := rc.srv.Client()
	tr := c.Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	rc.t.Cleanup(tr.CloseIdleConnections)
	c.Transport = tr
	return c
}

func (rc *receiver) all() []notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// accepted returns the notifications answered 2xx, in arrival order.
func (rc *receiver) accepted() []notification {
	var out []notification
	for _, n := range rc.all() {
		if n.answered/100 == 2 {
			out = append(out, n)
		}
	}
	return out
}

// waitUntil polls cond, calling step before each poll (nil: none), until it
// holds or 30s passed.
func waitUntil(t testing.TB, what string, step func(), cond func() bool, wake <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if step != nil {
			step()
		}
		select {
		case <-wake:
		case <-tick.C:
		}
	}
}

// flush waits for every queued notification (no retry pending on the clock).
func flush(t testing.TB, s *Sim) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// harness is a simulator on a ManualClock with a validating client and a
// receiver.
type harness struct {
	sim *Sim
	clk *ManualClock
	c   *client
	rc  *receiver
}

func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	h := &harness{clk: NewManualClock(epoch), rc: newReceiver(t, false)}
	if opts.Clock == nil {
		opts.Clock = h.clk
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = h.rc.client()
	}
	sim, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	h.sim = sim
	h.c = newClient(t, sim.Handler())
	return h
}
