package qodapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/qodbridge/qodbridge/bridge"
)

// Defaults of Options.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultUserAgent        = "qodbridge-qodapi"
	DefaultDialect          = DialectV1
)

// Dialect names the version of the QoD API a platform speaks.
type Dialect string

// Dialects.
const (
	// DialectV1 is QoD 1.x (specs/quality-on-demand-1.1.0.yaml).
	DialectV1 Dialect = "camara-v1"
	// DialectV0 is QoD 0.10 (specs/quality-on-demand-0.10.1.yaml), as
	// Network as Code serves it.
	DialectV0 Dialect = "camara-v0"
)

// Options configure a Client. The zero value is not usable: BaseURL is
// required; every other field has a working default.
type Options struct {
	// BaseURL is the API root including its version path, e.g.
	// https://host/quality-on-demand/v1 (DialectV1) or https://host/qod/v0
	// (DialectV0). http or https; no user info, query or fragment.
	BaseURL string
	// Dialect of the API; empty means DefaultDialect (DialectV1).
	Dialect Dialect
	// Auth is how the client authenticates; the zero value sends no
	// credentials.
	Auth Auth
	// HTTPClient sends every request, OAuth2 token requests included: wrap
	// its Transport to trace or meter calls. nil means a client on
	// http.DefaultTransport. The client is copied, not modified; the copy
	// never follows redirects (a 3xx answer is an *APIError), because
	// following a 301/302 would turn a POST into a GET. A Timeout set on it
	// applies besides Timeout.
	HTTPClient *http.Client
	// Timeout bounds each call, from sending the request to reading the
	// answer, besides the caller's ctx; it bounds each OAuth2 token request
	// too. Zero means DefaultTimeout; negative is invalid.
	Timeout time.Duration
	// MaxResponseBytes bounds the answer body read. Zero means
	// DefaultMaxResponseBytes; negative is invalid.
	MaxResponseBytes int64
	// UserAgent is sent as User-Agent; empty means DefaultUserAgent.
	UserAgent string
	// V0BareAuthToken, for DialectV0 only, sends
	// webhook.notificationAuthToken as the bare access token. By default it is
	// "Bearer <token>", which is what the Network-as-Code Python SDK sends;
	// qodbridge's ingress accepts both the resulting "Bearer <token>" and
	// "Bearer Bearer <token>" Authorization headers. QoD 0.10.1 wants 20 to
	// 256 characters there; the client does not check, the platform does.
	V0BareAuthToken bool
	// Logger receives one debug line per call (operation, status, duration,
	// requestId) and warnings about tolerated quirks; never bodies or
	// credentials. nil discards.
	Logger *slog.Logger
}

// Auth selects the credentials sent with every call. BearerToken and
// ClientCredentials exclude each other; APIKeyHeaders may be combined with
// either (an API gateway key plus an OAuth2 token).
type Auth struct {
	// BearerToken, when set, is sent as "Authorization: Bearer <token>".
	BearerToken string
	// ClientCredentials, when set, obtains tokens with the OAuth2 client
	// credentials grant and sends them as Authorization: Bearer. A token is
	// reused until shortly before it expires (its expires_in, less 10s or
	// half its life), on the client's clock; when the API answers 401 the
	// token is dropped and the call is sent once more with a new one.
	ClientCredentials *ClientCredentials
	// APIKeyHeaders are sent as they are, name → value; Network as Code
	// (RapidAPI) uses X-RapidAPI-Key and X-RapidAPI-Host. Names Authorization
	// (unless no bearer or client credentials are set), Content-Type,
	// Content-Length, Accept, Host, User-Agent and x-correlator are refused.
	APIKeyHeaders map[string]string
}

// ClientCredentials configure the OAuth2 client credentials grant (RFC 6749
// section 4.4).
type ClientCredentials struct {
	// TokenURL is the token endpoint (http or https). Required.
	TokenURL string
	// ClientID is required; ClientSecret may be empty for public clients.
	ClientID     string
	ClientSecret string
	// Scopes requested, e.g. quality-on-demand:sessions:create; nil requests
	// none.
	Scopes []string
	// EndpointParams are extra form parameters of the token request, e.g.
	// audience.
	EndpointParams url.Values
}

// Client calls one QoD API. It is safe for concurrent use. Each method makes
// exactly one HTTP attempt (plus, with ClientCredentials, a token request
// when no valid token is cached, and after a 401 one more token request and
// attempt); retrying is the caller's job (see Retryable and RetryAfter).
type Client struct {
	base    string // BaseURL without a trailing slash
	dialect Dialect
	hc      *http.Client
	timeout time.Duration
	maxBody int64
	ua      string
	v0Bare  bool
	log     *slog.Logger

	bearer  string
	tokens  *tokenCache // nil unless ClientCredentials
	apiKeys http.Header

	now func() time.Time // for Retry-After HTTP-dates; tests replace it
}

// New returns a Client for opts. Errors wrap ErrInvalidOptions and name the
// field; they never contain a secret.
func New(opts Options) (*Client, error) {
	c := &Client{
		dialect: opts.Dialect,
		timeout: opts.Timeout,
		maxBody: opts.MaxResponseBytes,
		ua:      opts.UserAgent,
		v0Bare:  opts.V0BareAuthToken,
		log:     opts.Logger,
		now:     time.Now,
	}
	base, err := checkURL(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: BaseURL: %w", ErrInvalidOptions, err)
	}
	c.base = strings.TrimRight(base.String(), "/")
	switch c.dialect {
	case "":
		c.dialect = DefaultDialect
	case DialectV1, DialectV0:
	default:
		return nil, fmt.Errorf("%w: Dialect %q: want %q or %q", ErrInvalidOptions, opts.Dialect, DialectV1, DialectV0)
	}
	switch {
	case c.timeout == 0:
		c.timeout = DefaultTimeout
	case c.timeout < 0:
		return nil, fmt.Errorf("%w: Timeout %v is negative", ErrInvalidOptions, opts.Timeout)
	}
	switch {
	case c.maxBody == 0:
		c.maxBody = DefaultMaxResponseBytes
	case c.maxBody < 0:
		return nil, fmt.Errorf("%w: MaxResponseBytes %d is negative", ErrInvalidOptions, opts.MaxResponseBytes)
	}
	if c.ua == "" {
		c.ua = DefaultUserAgent
	}
	if !validHeaderValue(c.ua) {
		return nil, fmt.Errorf("%w: UserAgent holds a control character", ErrInvalidOptions)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}

	var hc http.Client
	if opts.HTTPClient != nil {
		hc = *opts.HTTPClient
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.hc = &hc

	if err := c.setAuth(opts.Auth); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) setAuth(a Auth) error {
	if a.BearerToken != "" && a.ClientCredentials != nil {
		return fmt.Errorf("%w: Auth: BearerToken and ClientCredentials are both set", ErrInvalidOptions)
	}
	if a.BearerToken != "" {
		if !validHeaderValue(a.BearerToken) {
			return fmt.Errorf("%w: Auth.BearerToken holds a control character", ErrInvalidOptions)
		}
		c.bearer = a.BearerToken
	}
	if cc := a.ClientCredentials; cc != nil {
		if _, err := checkURL(cc.TokenURL); err != nil {
			return fmt.Errorf("%w: Auth.ClientCredentials.TokenURL: %w", ErrInvalidOptions, err)
		}
		if cc.ClientID == "" {
			return fmt.Errorf("%w: Auth.ClientCredentials.ClientID is empty", ErrInvalidOptions)
		}
		cfg := &clientcredentials.Config{
			ClientID:       cc.ClientID,
			ClientSecret:   cc.ClientSecret,
			TokenURL:       cc.TokenURL,
			Scopes:         append([]string(nil), cc.Scopes...),
			EndpointParams: cc.EndpointParams,
		}
		// Token requests share the caller's transport, tracing included;
		// each is bounded by the ctx of the call that needs the token, and
		// by the per-call timeout.
		tokenHTTP := &http.Client{Transport: c.hc.Transport, Timeout: c.timeout}
		c.tokens = &tokenCache{cfg: cfg, http: tokenHTTP, now: func() time.Time { return c.now() }}
	}
	if len(a.APIKeyHeaders) > 0 {
		c.apiKeys = make(http.Header, len(a.APIKeyHeaders))
		for name, value := range a.APIKeyHeaders {
			if !validHeaderName(name) {
				return fmt.Errorf("%w: Auth.APIKeyHeaders: invalid header name %q", ErrInvalidOptions, name)
			}
			canon := http.CanonicalHeaderKey(name)
			switch canon {
			case "Content-Type", "Content-Length", "Accept", "Host", "User-Agent", "X-Correlator":
				return fmt.Errorf("%w: Auth.APIKeyHeaders: header %q is set by the client", ErrInvalidOptions, name)
			case "Authorization":
				if c.bearer != "" || c.tokens != nil {
					return fmt.Errorf("%w: Auth.APIKeyHeaders: Authorization conflicts with BearerToken/ClientCredentials", ErrInvalidOptions)
				}
			}
			if !validHeaderValue(value) {
				return fmt.Errorf("%w: Auth.APIKeyHeaders: value of %q holds a control character", ErrInvalidOptions, name)
			}
			c.apiKeys.Set(canon, value)
		}
	}
	return nil
}

func checkURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		// Not the *url.Error itself: it quotes the whole URL, which may
		// hold a password in user info.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			return nil, ue.Err
		}
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	case u.Host == "":
		return nil, fmt.Errorf("no host")
	case u.User != nil:
		return nil, fmt.Errorf("user info is not allowed (put credentials in Auth)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("query or fragment is not allowed")
	}
	return u, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidCorrelator reports whether id fits the x-correlator pattern of QoD
// 1.1.0, ^[a-zA-Z0-9-_:;./<>{}]{0,256}$. Calls send an id that does not fit
// without the header.
func ValidCorrelator(id string) bool {
	if len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_:;./<>{}", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// Dialect returns the dialect the client speaks.
func (c *Client) Dialect() Dialect { return c.dialect }

// call is one HTTP exchange.
type call struct {
	op        string // operationId, for errors and logs
	method    string
	path      string // below base, starting with "/"
	requestID string
	body      []byte // nil: no body
}

// do sends cl and returns the status and body of a 2xx answer, an *APIError
// for any other answer, or a *callError. With ClientCredentials, a 401
// drops the token it was sent with, and the call is sent once more with a
// new one (a 401 means the request was not acted on): the token may have
// expired before the client thought, or been revoked. Any other answer,
// 403 included, is final.
func (c *Client) do(ctx context.Context, cl call) (int, []byte, error) {
	status, body, tok, err := c.attempt(ctx, cl)
	if status == http.StatusUnauthorized && tok != nil {
		c.tokens.drop(tok)
		c.log.LogAttrs(ctx, slog.LevelDebug, "qodapi: the API refused the access token: retrying once with a new one",
			slog.String("op", cl.op), slog.String("requestId", cl.requestID))
		status, body, _, err = c.attempt(ctx, cl)
	}
	return status, body, err
}

// attempt is one HTTP exchange of cl; tok is the client credentials token
// it was sent with, if any.
func (c *Client) attempt(ctx context.Context, cl call) (status int, data []byte, tok *oauth2.Token, err error) {
	parent := ctx
	// The cause tells our deadline from one of the caller's; net/http
	// returns it in place of ctx.Err().
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, callTimeoutError(c.timeout))
	defer cancel()

	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base+cl.path, body)
	if err != nil {
		return 0, nil, nil, &callError{op: cl.op, kind: ErrInvalidInput, cause: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.requestID != "" {
		if ValidCorrelator(cl.requestID) {
			req.Header.Set("x-correlator", cl.requestID)
		} else {
			c.log.LogAttrs(ctx, slog.LevelWarn, "qodapi: requestId does not fit the x-correlator pattern; sent without it",
				slog.String("op", cl.op), slog.String("requestId", cl.requestID))
		}
	}
	for name, v := range c.apiKeys {
		req.Header[name] = v
	}
	switch {
	case c.bearer != "":
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	case c.tokens != nil:
		if tok, err = c.tokens.token(ctx); err != nil {
			return 0, nil, nil, c.tokenError(parent, ctx, cl.op, err)
		}
		// Token types other than Bearer ("bearer", "Bearer") are not used
		// with QoD; SetAuthHeader normalises the case.
		tok.SetAuthHeader(req)
	}

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, tok, c.transportError(parent, ctx, cl.op, err)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	resp.Body.Close()
	if err != nil {
		return 0, nil, tok, c.transportError(parent, ctx, cl.op, fmt.Errorf("reading the answer: %w", err))
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "qodapi: call",
		slog.String("op", cl.op), slog.String("method", cl.method), slog.String("path", cl.path),
		slog.Int("status", resp.StatusCode), slog.Duration("elapsed", time.Since(start)),
		slog.String("requestId", cl.requestID))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if int64(len(data)) > c.maxBody {
			data = nil // a truncated error body is not worth parsing
		}
		return resp.StatusCode, nil, tok, newAPIError(cl.op, resp.StatusCode, resp.Header, data, c.now())
	}
	if int64(len(data)) > c.maxBody {
		return resp.StatusCode, nil, tok, &callError{op: cl.op, kind: ErrBadResponse,
			cause: fmt.Errorf("answer larger than %d bytes", c.maxBody)}
	}
	return resp.StatusCode, data, tok, nil
}

// callTimeoutError is the cause of a call's context when Options.Timeout ran
// out; it matches ErrTimeout and context.DeadlineExceeded.
type callTimeoutError time.Duration

func (d callTimeoutError) Error() string {
	return "per-call timeout of " + time.Duration(d).String() + " exceeded"
}

func (d callTimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

func (d callTimeoutError) Timeout() bool { return true }

// transportError classifies a failure to send or read: the caller's ctx
// ended (not retryable), our per-call timeout (ErrTimeout), or the network
// (ErrTransport).
func (c *Client) transportError(parent, ctx context.Context, op string, err error) error {
	switch {
	case parent.Err() != nil:
		return &callError{op: op, cause: err}
	case errors.Is(context.Cause(ctx), ErrTimeout):
		if !errors.Is(err, ErrTimeout) { // failed with another error as the deadline struck
			err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		return &callError{op: op, kind: ErrTimeout, cause: err}
	}
	// A network timeout (dial, or the token client's own Timeout, which may
	// fire just before our ctx does) is a timeout too.
	if te, ok := errors.AsType[interface {
		error
		Timeout() bool
	}](err); ok && te.Timeout() {
		return &callError{op: op, kind: ErrTimeout, cause: err}
	}
	return &callError{op: op, kind: ErrTransport, cause: err}
}

// tokenError turns a failure of the OAuth2 token endpoint into an *APIError
// when it answered (so 401 reads as ErrUnauthenticated and 5xx is
// retryable), else into a transport error. The endpoint's body is not
// quoted: only its RFC 6749 error code and description are kept.
func (c *Client) tokenError(parent, ctx context.Context, op string, err error) error {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		e := newAPIError("token", re.Response.StatusCode, re.Response.Header, nil, c.now())
		if re.ErrorCode != "" {
			e.Code = re.ErrorCode
		}
		if re.ErrorDescription != "" {
			e.Message = bridge.Truncate(re.ErrorDescription, maxMessage)
		}
		return e
	}
	return c.transportError(parent, ctx, op, fmt.Errorf("obtaining an access token: %w", err))
}

// jsonObject checks that b is one JSON object and returns its members.
func jsonObject(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("null, want a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return m, nil
}
