package qodsim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The scopes of QoD 1.1.0 and QoS Profiles 1.1.0, one per operation.
const (
	ScopeSessionsCreate           = "quality-on-demand:sessions:create"
	ScopeSessionsRead             = "quality-on-demand:sessions:read"
	ScopeSessionsUpdate           = "quality-on-demand:sessions:update"
	ScopeSessionsDelete           = "quality-on-demand:sessions:delete"
	ScopeSessionsRetrieveByDevice = "quality-on-demand:sessions:retrieve-by-device"
	ScopeProfilesRead             = "qos-profiles:read"
)

// Paths of the OAuth 2.0 endpoints, served in OAuth mode only.
const (
	// TokenPath is the token endpoint (RFC 6749): grant types
	// client_credentials and urn:openid:params:grant-type:ciba.
	TokenPath = "/oauth2/token"
	// BackchannelAuthPath is the CIBA backchannel authentication endpoint
	// (OpenID Connect CIBA Core, poll mode), where a client asks for a
	// three-legged token for the device its login_hint names.
	BackchannelAuthPath = "/oauth2/bc-authorize"
	// DiscoveryPath serves the endpoints' metadata (a subset of OpenID
	// Connect Discovery: there are no ID tokens).
	DiscoveryPath = "/.well-known/openid-configuration"
)

// DefaultTokenTTL is the lifetime of an access token when OAuth.TokenTTL
// is zero.
const DefaultTokenTTL = time.Hour

// grantCIBA is the grant type of the CIBA token request.
const grantCIBA = "urn:openid:params:grant-type:ciba"

// authReqTTL is the lifetime of a CIBA auth_req_id.
const authReqTTL = 120 * time.Second

// OAuth configures the OAuth 2.0 mode; its zero value leaves it off.
type OAuth struct {
	// Clients are the registered API clients. Not empty turns the mode on:
	// every call of the APIs needs an access token issued by this
	// simulator, each operation needs its scope, and a session belongs to
	// the client that created it. Options.Tokens must then be empty.
	Clients []OAuthClient
	// TokenTTL is the lifetime of an access token, at least 1s. Zero:
	// DefaultTokenTTL (1h).
	TokenTTL time.Duration
}

// OAuthClient is a registered client (a confidential client of the client
// credentials grant).
type OAuthClient struct {
	// ID is the client_id: not empty, no ":" (the -oauth-client flag
	// splits on it), unique.
	ID string
	// Secret is the client_secret, not empty.
	Secret string
	// Scopes the client may be granted; nil: all of them (Scopes()).
	Scopes []string
}

// Scopes returns every scope the simulator grants, in a fixed order.
func Scopes() []string { return slices.Clone(scopeNames[:]) }

// scopeSet is a set of scopes, one bit each in the order of scopeNames.
type scopeSet uint8

const (
	scopeCreate scopeSet = 1 << iota
	scopeRead
	scopeUpdate
	scopeDelete
	scopeRetrieve
	scopeProfiles
	scopeAll = 1<<iota - 1
)

var scopeNames = [...]string{
	ScopeSessionsCreate, ScopeSessionsRead, ScopeSessionsUpdate,
	ScopeSessionsDelete, ScopeSessionsRetrieveByDevice, ScopeProfilesRead,
}

// parseScopes returns the set of the named scopes; "openid" (which CIBA
// requests carry) is ignored.
func parseScopes(names []string) (scopeSet, error) {
	var set scopeSet
	for _, n := range names {
		if n == "openid" {
			continue
		}
		i := slices.Index(scopeNames[:], n)
		if i < 0 {
			return 0, fmt.Errorf("unknown scope %q", n)
		}
		set |= 1 << i
	}
	return set, nil
}

func (set scopeSet) String() string {
	var names []string
	for i, n := range scopeNames {
		if set&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, " ")
}

// oauthConfig is OAuth resolved.
type oauthConfig struct {
	clients map[string]*oauthClient
	ttl     time.Duration
	key     []byte // signs tokens; random per Sim
}

type oauthClient struct {
	id     string
	secret [sha256.Size]byte // digest: compared in constant time
	scopes scopeSet
}

func (o OAuth) resolve() (*oauthConfig, error) {
	if len(o.Clients) == 0 {
		if o.TokenTTL != 0 {
			return nil, fmt.Errorf("%w: OAuth.TokenTTL set without OAuth.Clients", ErrInvalidOptions)
		}
		return nil, nil
	}
	c := &oauthConfig{clients: make(map[string]*oauthClient, len(o.Clients)), ttl: o.TokenTTL, key: make([]byte, 32)}
	switch {
	case c.ttl == 0:
		c.ttl = DefaultTokenTTL
	case c.ttl < time.Second:
		return nil, fmt.Errorf("%w: OAuth.TokenTTL %v is below 1s", ErrInvalidOptions, o.TokenTTL)
	}
	_, _ = rand.Read(c.key) // never fails (crypto/rand)
	for i, cl := range o.Clients {
		switch {
		case cl.ID == "" || strings.Contains(cl.ID, ":"):
			return nil, fmt.Errorf("%w: OAuth.Clients[%d].ID %q: want a non-empty ID without \":\"", ErrInvalidOptions, i, cl.ID)
		case cl.Secret == "":
			return nil, fmt.Errorf("%w: OAuth.Clients[%d] (%s): empty Secret", ErrInvalidOptions, i, cl.ID)
		case c.clients[cl.ID] != nil:
			return nil, fmt.Errorf("%w: OAuth.Clients[%d].ID %q given twice", ErrInvalidOptions, i, cl.ID)
		}
		scopes := scopeSet(scopeAll)
		if cl.Scopes != nil {
			var err error
			if scopes, err = parseScopes(cl.Scopes); err != nil {
				return nil, fmt.Errorf("%w: OAuth.Clients[%d] (%s).Scopes: %w", ErrInvalidOptions, i, cl.ID, err)
			}
		}
		c.clients[cl.ID] = &oauthClient{id: cl.ID, secret: sha256.Sum256([]byte(cl.Secret)), scopes: scopes}
	}
	return c, nil
}

// grant returns the scopes a token request of the client gets: those it
// asks for (space-separated), which it must be allowed, or all it is
// allowed when it asks for none (or only for openid, as a CIBA request
// must).
func (cl *oauthClient) grant(scope string) (scopeSet, error) {
	set, err := parseScopes(strings.Fields(scope))
	if err != nil {
		return 0, err
	}
	if set == 0 {
		return cl.scopes, nil
	}
	if set&^cl.scopes != 0 {
		return 0, fmt.Errorf("client %s may not have %s", cl.id, set&^cl.scopes)
	}
	return set, nil
}

// ---- tokens ----

// Token kinds; each signs differently, so one is never taken for another.
const (
	kindAccess  = "at"
	kindAuthReq = "ar"
)

// claims is what a token carries. Tokens are self-contained (signed with
// the Sim's random key, HMAC-SHA256), so the simulator keeps no state per
// token: memory does not grow with the tokens issued, and a restarted
// simulator no longer accepts its old tokens.
type claims struct {
	Client string   `json:"c"`
	Scopes scopeSet `json:"s"`
	Hint   string   `json:"h,omitempty"` // login_hint of a three-legged token
	Exp    int64    `json:"e"`           // Unix nanoseconds
	ID     string   `json:"i"`           // random: no two tokens are equal
}

// Reasons a token is refused.
var (
	errTokenInvalid = errors.New("not a token this simulator issued")
	errTokenExpired = errors.New("expired")
)

func (o *oauthConfig) mac(kind, payload string) []byte {
	m := hmac.New(sha256.New, o.key)
	m.Write([]byte(kind))
	m.Write([]byte{'.'})
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (o *oauthConfig) sign(kind string, c claims) string {
	var id [12]byte
	_, _ = rand.Read(id[:])
	c.ID = base64.RawURLEncoding.EncodeToString(id[:])
	b, err := json.Marshal(c)
	if err != nil { // only our own types: cannot happen
		panic(fmt.Sprintf("qodsim: marshal token: %v", err))
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return kind + "." + payload + "." + base64.RawURLEncoding.EncodeToString(o.mac(kind, payload))
}

// verify checks a token of the kind and returns its claims; it fails with
// errTokenInvalid or errTokenExpired.
func (o *oauthConfig) verify(kind, tok string, now time.Time) (claims, error) {
	var c claims
	k, rest, ok := strings.Cut(tok, ".")
	if !ok || k != kind {
		return c, errTokenInvalid
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return c, errTokenInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, o.mac(kind, payload)) {
		return c, errTokenInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &c) != nil || o.clients[c.Client] == nil {
		return c, errTokenInvalid
	}
	if !now.Before(time.Unix(0, c.Exp)) {
		return c, errTokenExpired
	}
	return c, nil
}

// caller is who calls the API in OAuth mode: the client a token was issued
// to, its scopes, and for a three-legged token the device it names. nil
// without OAuth: then anyone may do anything.
type caller struct {
	client string
	scopes scopeSet
	dev    *device  // three-legged: the token's device
	keys   []string // and its index keys
}

// threeLegged reports whether the caller's token names a device.
func (c *caller) threeLegged() bool { return c != nil && c.dev != nil }

// owner is the owner a session created by the caller gets.
func (c *caller) owner() string {
	if c == nil {
		return ""
	}
	return c.client
}

// mayUse answers 403 unless the caller may read, extend or delete the
// session: it must have been created by the same client, and with a
// three-legged token (v1) be for the token's device.
func (c *caller) mayUse(sess *session, d dialect) *apiError {
	if c == nil {
		return nil
	}
	if sess.owner != c.client {
		return &apiError{status: http.StatusForbidden, code: codePermissionDenied,
			msg: "sessionId: the session was created by another API client"}
	}
	if d == dialectV1 && c.dev != nil && !slices.ContainsFunc(c.keys, func(k string) bool { return slices.Contains(sess.keys, k) }) {
		return &apiError{status: http.StatusForbidden, code: codePermissionDenied,
			msg: "sessionId: the session is not for the device of the access token"}
	}
	return nil
}

// parseLoginHint reads the device a CIBA login_hint names, in the formats
// of CAMARA's security profile: tel:+<E.164 number>, ipport:<IPv4>:<port>
// or ipport:[<IPv6>]:<port> (a v6 device is matched by its address).
func parseLoginHint(h string) (device, []string, error) {
	scheme, v, ok := strings.Cut(h, ":")
	switch {
	case ok && scheme == "tel":
		if strings.HasPrefix(v, " ") {
			// A "+" sent unencoded in the form (curl -d) arrives as a
			// space.
			v = "+" + v[1:]
		}
		if !phoneV1RE.MatchString(v) {
			return device{}, nil, fmt.Errorf("login_hint %q: tel: wants an E.164 number with +", h)
		}
		return device{PhoneNumber: v}, []string{scenarioKey(v)}, nil
	case ok && scheme == "ipport":
		ap, err := netip.ParseAddrPort(v)
		if err != nil || ap.Addr().Zone() != "" {
			return device{}, nil, fmt.Errorf("login_hint %q: ipport: wants <IPv4>:<port> or [<IPv6>]:<port>", h)
		}
		if a := ap.Addr().Unmap(); a.Is4() {
			port := int64(ap.Port())
			dev := device{IPv4Address: &deviceIPv4{PublicAddress: a.String(), PublicPort: &port}}
			return dev, []string{ip4Key(dev.IPv4Address)}, nil
		}
		return device{IPv6Address: ap.Addr().String()}, []string{ip6Key(ap.Addr())}, nil
	}
	return device{}, nil, fmt.Errorf("login_hint %q: want tel:+<number> or ipport:<address>:<port>", h)
}

// ErrTokenRequest is wrapped by the errors of IssueToken.
var ErrTokenRequest = errors.New("qodsim: token request refused")

// TokenRequest asks IssueToken for an access token, as the token endpoint
// would issue it.
type TokenRequest struct {
	// ClientID is a client of Options.OAuth.Clients; the sessions created
	// with the token belong to it.
	ClientID string
	// Scopes granted; nil: every scope the client may have.
	Scopes []string
	// Device, when set, makes a three-legged token for the device a CIBA
	// login_hint names: "tel:+99999991003", "ipport:203.0.113.7:5000" or
	// "ipport:[2001:db8::1]:5000". Empty: a two-legged token.
	Device string
	// TTL is the token's lifetime; zero: OAuth.TokenTTL; negative: the
	// token is expired already (for tests of 401).
	TTL time.Duration
}

// IssueToken returns an access token and its expiry on the Sim's Clock,
// without the HTTP round trip of the token endpoint: tests use it to mint
// three-legged, expired or narrowly scoped tokens. It fails (wrapping
// ErrTokenRequest) when OAuth mode is off, for an unknown client, a scope
// the client may not have, or a device that is malformed or unknown to the
// network (a not-found scenario device).
func (s *Sim) IssueToken(r TokenRequest) (string, time.Time, error) {
	o := s.cfg.oauth
	if o == nil {
		return "", time.Time{}, fmt.Errorf("%w: OAuth mode is off (no Options.OAuth.Clients)", ErrTokenRequest)
	}
	cl := o.clients[r.ClientID]
	if cl == nil {
		return "", time.Time{}, fmt.Errorf("%w: unknown client %q", ErrTokenRequest, r.ClientID)
	}
	scopes, err := cl.grant(strings.Join(r.Scopes, " "))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrTokenRequest, err)
	}
	if r.Scopes != nil && len(r.Scopes) == 0 {
		scopes = 0
	}
	if r.Device != "" {
		if err := s.checkHint(r.Device); err != nil {
			return "", time.Time{}, fmt.Errorf("%w: %w", ErrTokenRequest, err)
		}
	}
	ttl := r.TTL
	switch {
	case ttl == 0:
		ttl = o.ttl
	case ttl < 0:
		ttl = 0
	}
	exp := s.clock.Now().Add(ttl)
	return o.sign(kindAccess, claims{Client: cl.id, Scopes: scopes, Hint: r.Device, Exp: exp.UnixNano()}), exp, nil
}

// errUnknownUser is a login_hint naming a device the network does not
// know.
var errUnknownUser = errors.New("unknown to the network")

// checkHint checks that a login_hint names a device the network knows.
func (s *Sim) checkHint(h string) error {
	_, keys, err := parseLoginHint(h)
	if err != nil {
		return err
	}
	if sc, _ := s.scenarioOf(keys); sc == scenarioNotFound {
		return fmt.Errorf("login_hint %q: %w", h, errUnknownUser)
	}
	return nil
}

// authenticateOAuth resolves the caller of an API request from its access
// token.
func (s *Sim) authenticateOAuth(r *http.Request) (*caller, *apiError) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated,
			msg: "Request not authenticated due to missing, invalid, or expired credentials: send Authorization: Bearer <access token from " + TokenPath + ">"}
	}
	c, err := s.cfg.oauth.verify(kindAccess, strings.TrimSpace(tok), s.clock.Now())
	if err != nil {
		return nil, &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated,
			msg: "Request not authenticated due to missing, invalid, or expired credentials: the access token is " + err.Error(), wwwAuthErr: "invalid_token"}
	}
	cl := &caller{client: c.Client, scopes: c.Scopes}
	if c.Hint != "" {
		dev, keys, err := parseLoginHint(c.Hint)
		if err != nil { // signed by us: cannot happen
			return nil, &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated, msg: "the access token names no device"}
		}
		cl.dev, cl.keys = &dev, keys
	}
	return cl, nil
}

// ---- the endpoints ----

// oauthError writes an RFC 6749 section 5.2 error.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="qodsim"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// oauthRequest reads a form POST to a token endpoint and authenticates its
// client (HTTP Basic with form-encoded id and secret, as RFC 6749 section
// 2.3.1 says, or client_id and client_secret in the body). It writes the
// error and returns nil on failure.
func (s *Sim) oauthRequest(w http.ResponseWriter, r *http.Request) *oauthClient {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return nil
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
		if r.PostForm.Has("client_secret") {
			oauthError(w, http.StatusBadRequest, "invalid_request", "authenticate the client one way: HTTP Basic or client_secret, not both")
			return nil
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	cl := s.cfg.oauth.clients[id]
	sum := sha256.Sum256([]byte(secret))
	if cl == nil || subtle.ConstantTimeCompare(sum[:], cl.secret[:]) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return nil
	}
	return cl
}

// requestedTTL reads the simulator's expires_in extension of a token
// request: a lifetime of 0 up to TokenTTL seconds (0: expired at once, for
// tests of 401).
func (s *Sim) requestedTTL(form url.Values) (time.Duration, error) {
	if !form.Has("expires_in") {
		return s.cfg.oauth.ttl, nil
	}
	n, err := strconv.ParseInt(form.Get("expires_in"), 10, 64)
	if maxN := int64(s.cfg.oauth.ttl / time.Second); err != nil || n < 0 || n > maxN {
		return 0, fmt.Errorf("expires_in: want 0 to %d seconds", maxN)
	}
	return time.Duration(n) * time.Second, nil
}

// handleToken is the token endpoint.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	cl := s.oauthRequest(w, r)
	if cl == nil {
		return
	}
	form := r.PostForm
	var (
		scopes scopeSet
		hint   string
	)
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
		var err error
		if scopes, err = cl.grant(form.Get("scope")); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
			return
		}
	case grantCIBA:
		c, err := s.cfg.oauth.verify(kindAuthReq, form.Get("auth_req_id"), s.clock.Now())
		switch {
		case errors.Is(err, errTokenExpired):
			oauthError(w, http.StatusBadRequest, "expired_token", "auth_req_id expired")
			return
		case err != nil || c.Client != cl.id:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "auth_req_id is not one issued to this client")
			return
		}
		scopes, hint = c.Scopes, c.Hint
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type: required")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q: want client_credentials or %s", gt, grantCIBA))
		return
	}
	ttl, err := s.requestedTTL(form)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	tok := s.cfg.oauth.sign(kindAccess, claims{Client: cl.id, Scopes: scopes, Hint: hint, Exp: s.clock.Now().Add(ttl).UnixNano()})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}{tok, "Bearer", int64(ttl / time.Second), scopes.String()})
}

// handleBackchannel is the CIBA backchannel authentication endpoint, poll
// mode. The simulated user consents at once: the first token request with
// the auth_req_id gets the token. An auth_req_id can be redeemed until it
// expires (it is stateless, like the tokens).
func (s *Sim) handleBackchannel(w http.ResponseWriter, r *http.Request) {
	cl := s.oauthRequest(w, r)
	if cl == nil {
		return
	}
	scopes, err := cl.grant(r.PostForm.Get("scope"))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_scope", err.Error())
		return
	}
	hint := r.PostForm.Get("login_hint")
	if hint == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "login_hint: required (tel:+<number> or ipport:<address>:<port>)")
		return
	}
	if err := s.checkHint(hint); err != nil {
		code := "invalid_request"
		if errors.Is(err, errUnknownUser) {
			code = "unknown_user_id"
		}
		oauthError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	id := s.cfg.oauth.sign(kindAuthReq, claims{Client: cl.id, Scopes: scopes, Hint: hint, Exp: s.clock.Now().Add(authReqTTL).UnixNano()})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		AuthReqID string `json:"auth_req_id"`
		ExpiresIn int64  `json:"expires_in"`
		Interval  int    `json:"interval"`
	}{id, int64(authReqTTL / time.Second), 1})
}

// handleDiscovery serves the metadata of the endpoints.
func (s *Sim) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host
	if r.TLS != nil {
		base = "https://" + r.Host
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                     base,
		"token_endpoint":                             base + TokenPath,
		"backchannel_authentication_endpoint":        base + BackchannelAuthPath,
		"grant_types_supported":                      []string{"client_credentials", grantCIBA},
		"token_endpoint_auth_methods_supported":      []string{"client_secret_basic", "client_secret_post"},
		"backchannel_token_delivery_modes_supported": []string{"poll"},
		"scopes_supported":                           append([]string{"openid"}, Scopes()...),
	})
}
