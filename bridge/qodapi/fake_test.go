package qodapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// spec is one CAMARA OpenAPI document ready to validate requests.
type spec struct {
	file   string
	base   string // base path of the API, from the spec's servers
	router routers.Router
	opts   *openapi3filter.Options
}

// specFor loads the spec of a dialect once per test binary. The documents
// are only read after loading, so tests and handlers share them.
var specFor = func() func(testing.TB, Dialect) *spec {
	type loaded struct {
		s   *spec
		err error
	}
	var once sync.Once
	var specs map[Dialect]loaded
	load := func() {
		v1, err1 := loadSpec("testdata/quality-on-demand-1.1.0.yaml", "/quality-on-demand/v1", nil)
		var v0 *spec
		var err0 error
		if err1 == nil {
			// QoD 0.10.1 has no retrieve-sessions; Network as Code serves
			// the 1.x operation under /qod/v0, so requests to it are
			// validated against the 1.1.0 operation.
			v0, err0 = loadSpec("testdata/quality-on-demand-0.10.1.yaml", "/qod/v0", func(doc *openapi3.T) error {
				l := openapi3.NewLoader()
				d1, err := l.LoadFromFile("testdata/quality-on-demand-1.1.0.yaml")
				if err != nil {
					return err
				}
				doc.Paths.Set("/retrieve-sessions", d1.Paths.Value("/retrieve-sessions"))
				doc.Components.SecuritySchemes["openId"] = d1.Components.SecuritySchemes["openId"]
				return nil
			})
		}
		specs = map[Dialect]loaded{DialectV1: {v1, err1}, DialectV0: {v0, err0}}
	}
	return func(t testing.TB, d Dialect) *spec {
		t.Helper()
		once.Do(load)
		l := specs[d]
		if l.err != nil || l.s == nil {
			t.Fatalf("load spec for %s: %v", d, l.err)
		}
		return l.s
	}
}()

func loadSpec(file, base string, patch func(*openapi3.T) error) (*spec, error) {
	l := openapi3.NewLoader()
	doc, err := l.LoadFromFile(file)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", file, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate %s: %w", file, err)
	}
	if patch != nil {
		if err := patch(doc); err != nil {
			return nil, fmt.Errorf("patch %s: %w", file, err)
		}
	}
	// The servers of both specs are "{apiRoot}/<base>"; a relative server
	// matches the fake on any host and port.
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router for %s: %w", file, err)
	}
	uri := openapi3.NewCallbackValidator(func(s string) error {
		u, err := url.Parse(s)
		if err != nil {
			return err
		}
		if !u.IsAbs() {
			return fmt.Errorf("not an absolute URI")
		}
		return nil
	})
	opts := &openapi3filter.Options{
		MultiError: true,
		// The specs require openIdConnect / OAuth2; which credential a
		// request carries is checked by the tests of each auth mode.
		AuthenticationFunc: func(context.Context, *openapi3filter.AuthenticationInput) error { return nil },
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122)),
			openapi3.WithStringFormatValidator("ipv4", openapi3.NewIPValidator(true)),
			openapi3.WithStringFormatValidator("ipv6", openapi3.NewIPValidator(false)),
			openapi3.WithStringFormatValidator("uri", uri),
		},
	}
	return &spec{file: file, base: base, router: router, opts: opts}, nil
}

// answer is what the fake API replies.
type answer struct {
	status int
	header http.Header
	body   string
	// offSpec marks an answer that breaks the spec on purpose (a platform
	// quirk under test); every other answer is validated against the spec
	// too, so the fixtures are what a conforming platform sends.
	offSpec bool
}

// received is one request the fake API accepted.
type received struct {
	op     string // operationId
	method string
	path   string // below the base path
	header http.Header
	body   []byte
}

// fakeAPI is an httptest QoD API that validates every request against the
// dialect's spec with kin-openapi and answers with handle.
type fakeAPI struct {
	t       testing.TB
	dialect Dialect
	spec    *spec
	srv     *httptest.Server
	// URL is the base URL to configure the client with.
	URL string

	handle func(op string, r *http.Request, body []byte) answer

	mu        sync.Mutex
	got       []received
	onInvalid func(error) // nil: t.Errorf
}

func newFakeAPI(t testing.TB, d Dialect, handle func(op string, r *http.Request, body []byte) answer) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, dialect: d, spec: specFor(t, d), handle: handle}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.URL = f.srv.URL + f.spec.base
	return f
}

func (f *fakeAPI) invalid(err error) {
	f.mu.Lock()
	on := f.onInvalid
	f.mu.Unlock()
	if on != nil {
		on(err)
		return
	}
	f.t.Errorf("%v", err)
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake: read body: %v", err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := f.spec.router.FindRoute(r)
	if err != nil {
		f.invalid(fmt.Errorf("%s %s: no operation in %s: %w", r.Method, r.URL.Path, f.spec.file, err))
		writeAnswer(w, answer{status: http.StatusNotFound, body: `{"status":404,"code":"NOT_FOUND","message":"no such operation"}`})
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: f.spec.opts}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		f.invalid(fmt.Errorf("%s %s does not validate against %s: %w", r.Method, r.URL.Path, f.spec.file, err))
		writeAnswer(w, answer{status: http.StatusBadRequest, body: `{"status":400,"code":"INVALID_ARGUMENT","message":"request does not validate"}`})
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	op := route.Operation.OperationID
	f.mu.Lock()
	f.got = append(f.got, received{op: op, method: r.Method, path: strings.TrimPrefix(r.URL.Path, f.spec.base), header: r.Header.Clone(), body: body})
	f.mu.Unlock()

	a := f.handle(op, r, body)
	if a.header == nil {
		a.header = http.Header{}
	}
	if a.body != "" && a.header.Get("Content-Type") == "" {
		a.header.Set("Content-Type", "application/json")
	}
	if !a.offSpec {
		err := openapi3filter.ValidateResponse(r.Context(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 a.status,
			Header:                 a.header,
			Body:                   io.NopCloser(strings.NewReader(a.body)),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: f.spec.opts.SchemaValidationOptions},
		})
		if err != nil {
			f.t.Errorf("fake answer %d to %s breaks %s: %v", a.status, op, f.spec.file, err)
		}
	}
	writeAnswer(w, a)
}

func writeAnswer(w http.ResponseWriter, a answer) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if a.status == 0 {
		a.status = http.StatusInternalServerError
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

// requests returns what the fake accepted so far.
func (f *fakeAPI) requests() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.got...)
}

// fixed answers every operation the same way.
func fixed(a answer) func(string, *http.Request, []byte) answer {
	return func(string, *http.Request, []byte) answer { return a }
}

// fakeNow is the clock of the session store: 2024-06-18T08:48:12Z.
var fakeNow = time.Unix(1718700492, 0).UTC()

// store is a small stateful QoD platform for the fake API: sessions become
// AVAILABLE at once, started at fakeNow. It answers in the dialect's shape
// (v0: epoch seconds, webhook echoed; v1: RFC 3339, sink and
// sinkCredential echoed, which 1.1.0 allows).
type store struct {
	dialect  Dialect
	mu       sync.Mutex
	sessions map[string]map[string]any
}

func newStore(d Dialect) *store { return &store{dialect: d, sessions: map[string]map[string]any{}} }

func (s *store) handle(op string, r *http.Request, body []byte) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var id string
	if _, rest, ok := strings.Cut(r.URL.Path, "/sessions/"); ok {
		id, _, _ = strings.Cut(rest, "/")
	}
	switch op {
	case "createSession":
		var sess map[string]any
		if err := json.Unmarshal(body, &sess); err != nil {
			return errorAnswer(400, "INVALID_ARGUMENT", err.Error())
		}
		id := newUUID()
		sess["sessionId"] = id
		if _, ok := sess["duration"]; !ok {
			sess["duration"] = 86400.0
		}
		sess["qosStatus"] = "AVAILABLE"
		s.sessions[id] = sess
		return answer{status: 201, body: s.render(sess)}
	case "getSession":
		sess, ok := s.sessions[id]
		if !ok {
			return errorAnswer(404, "NOT_FOUND", "The specified resource is not found.")
		}
		return answer{status: 200, body: s.render(sess)}
	case "extendQosSessionDuration":
		sess, ok := s.sessions[id]
		if !ok {
			return errorAnswer(404, "NOT_FOUND", "The specified resource is not found.")
		}
		var ext struct {
			RequestedAdditionalDuration float64 `json:"requestedAdditionalDuration"`
		}
		if err := json.Unmarshal(body, &ext); err != nil {
			return errorAnswer(400, "INVALID_ARGUMENT", err.Error())
		}
		sess["duration"] = sess["duration"].(float64) + ext.RequestedAdditionalDuration
		return answer{status: 200, body: s.render(sess)}
	case "deleteSession":
		if _, ok := s.sessions[id]; !ok {
			return errorAnswer(404, "NOT_FOUND", "The specified resource is not found.")
		}
		delete(s.sessions, id)
		return answer{status: 204}
	case "retrieveSessionsByDevice":
		var in struct {
			Device any `json:"device"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return errorAnswer(400, "INVALID_ARGUMENT", err.Error())
		}
		var out []string
		for _, sess := range s.sessions {
			if reflect.DeepEqual(sess["device"], in.Device) {
				out = append(out, s.render(sess))
			}
		}
		if len(out) == 0 && s.dialect == DialectV0 {
			// What Network as Code answers for a device without sessions.
			return answer{status: 404, body: `{"detail":"QoS subscription not found"}`, offSpec: true}
		}
		// v0 items are v0 SessionInfo, which the borrowed 1.1.0 operation
		// does not describe.
		return answer{status: 200, body: "[" + strings.Join(out, ",") + "]", offSpec: s.dialect == DialectV0}
	}
	return errorAnswer(500, "INTERNAL", "unexpected operation "+op)
}

// render writes a stored session as the dialect's SessionInfo.
func (s *store) render(sess map[string]any) string {
	out := make(map[string]any, len(sess)+2)
	for k, v := range sess {
		out[k] = v
	}
	d := time.Duration(sess["duration"].(float64) * float64(time.Second))
	if s.dialect == DialectV0 {
		out["startedAt"] = fakeNow.Unix()
		out["expiresAt"] = fakeNow.Add(d).Unix()
	} else {
		out["startedAt"] = fakeNow.Format(time.RFC3339)
		out["expiresAt"] = fakeNow.Add(d).Format(time.RFC3339)
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func errorAnswer(status int, code, msg string) answer {
	b, _ := json.Marshal(ErrorInfo{Status: status, Code: code, Message: msg})
	return answer{status: status, body: string(b)}
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newTestClient returns a client of f with a bearer token, adjusted by mod.
func newTestClient(t testing.TB, f *fakeAPI, mod func(*Options)) *Client {
	t.Helper()
	opts := Options{BaseURL: f.URL, Dialect: f.dialect, Auth: Auth{BearerToken: testBearer}}
	if mod != nil {
		mod(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

const testBearer = "s3cr3t-bearer-token-value"

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}
