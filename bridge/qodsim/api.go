package qodsim

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// sessionInfoV1 is SessionInfo of QoD 1.1.0.
type sessionInfoV1 struct {
	SessionID              string     `json:"sessionId"`
	Device                 *device    `json:"device,omitempty"`
	ApplicationServer      appServer  `json:"applicationServer"`
	DevicePorts            *portsSpec `json:"devicePorts,omitempty"`
	ApplicationServerPorts *portsSpec `json:"applicationServerPorts,omitempty"`
	QosProfile             string     `json:"qosProfile"`
	Sink                   string     `json:"sink,omitempty"`
	Duration               int64      `json:"duration"`
	StartedAt              string     `json:"startedAt,omitempty"`
	ExpiresAt              string     `json:"expiresAt,omitempty"`
	QosStatus              string     `json:"qosStatus"`
	StatusInfo             string     `json:"statusInfo,omitempty"`
}

// sessionInfoV0 is SessionInfo of QoD 0.10.1: times in Unix seconds, the
// whole device, the sink as webhook. statusInfo is not in that schema
// (which allows extra properties); Network as Code sends it.
type sessionInfoV0 struct {
	SessionID              string     `json:"sessionId"`
	Device                 device     `json:"device"`
	ApplicationServer      appServer  `json:"applicationServer"`
	DevicePorts            *portsSpec `json:"devicePorts,omitempty"`
	ApplicationServerPorts *portsSpec `json:"applicationServerPorts,omitempty"`
	QosProfile             string     `json:"qosProfile"`
	Webhook                *webhookV0 `json:"webhook,omitempty"`
	Duration               int64      `json:"duration"`
	StartedAt              int64      `json:"startedAt"`
	ExpiresAt              int64      `json:"expiresAt"`
	QosStatus              string     `json:"qosStatus"`
	StatusInfo             string     `json:"statusInfo,omitempty"`
}

// webhookV0 echoes the notification URL; the token is never echoed.
type webhookV0 struct {
	NotificationURL string `json:"notificationUrl"`
}

type errorInfo struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// render returns the session as dialect d shows it. Called with s.mu held.
func (s *Sim) render(sess *session, d dialect) any {
	if d == dialectV0 {
		v := sessionInfoV0{
			SessionID: sess.id, Device: sess.dev, ApplicationServer: sess.app,
			DevicePorts: sess.devPorts, ApplicationServerPorts: sess.appPorts,
			QosProfile: sess.profile, Duration: sess.duration,
			QosStatus: string(sess.status), StatusInfo: string(sess.info),
		}
		if sess.sink != "" {
			v.Webhook = &webhookV0{NotificationURL: sess.sink}
		}
		// v0 demands both times in every state.
		switch {
		case sess.status == bridge.StatusAvailable:
			v.StartedAt, v.ExpiresAt = sess.started.Unix(), sess.expires.Unix()
		case sess.status == bridge.StatusUnavailable:
			v.StartedAt, v.ExpiresAt = cmp.Or(sess.started, sess.created).Unix(), sess.ended.Unix()
			v.Duration = effective(sess)
		default:
			v.StartedAt = sess.created.Unix()
			v.ExpiresAt = sess.created.Add(time.Duration(sess.duration) * time.Second).Unix()
		}
		return v
	}
	v := sessionInfoV1{
		SessionID: sess.id, ApplicationServer: sess.app,
		DevicePorts: sess.devPorts, ApplicationServerPorts: sess.appPorts,
		QosProfile: sess.profile, Sink: sess.sink, Duration: sess.duration,
		QosStatus: string(sess.status), StatusInfo: string(sess.info),
	}
	if !sess.devFromToken { // returned only if given in the request
		v.Device = sess.dev.one()
	}
	switch sess.status {
	case bridge.StatusAvailable:
		v.StartedAt, v.ExpiresAt = rfc3339(sess.started), rfc3339(sess.expires)
	case bridge.StatusUnavailable:
		// expiresAt is the termination time; startedAt only if it started.
		v.ExpiresAt = rfc3339(sess.ended)
		if !sess.started.IsZero() {
			v.StartedAt = rfc3339(sess.started)
		}
		v.Duration = effective(sess)
	}
	return v
}

// effective is the duration of an ended session: from AVAILABLE to its end
// in whole seconds (at least 1, the schema's minimum), or the granted
// duration if it never started.
func effective(sess *session) int64 {
	if sess.started.IsZero() {
		return sess.duration
	}
	d := sess.ended.Sub(sess.started)
	secs := int64((d + time.Second - 1) / time.Second)
	return max(secs, 1)
}

// handlerFunc is an API operation: it answers, or returns the error to
// answer with. c is the caller in OAuth mode, nil otherwise.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) *apiError

func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	for _, d := range []dialect{dialectV1, dialectV0} {
		// /qod/v0 checks no scopes: QoD 0.10.1 grants its client
		// credentials none.
		need := func(sc scopeSet) scopeSet {
			if d == dialectV0 {
				return 0
			}
			return sc
		}
		b := d.basePath()
		mux.Handle("POST "+b+"/sessions", s.api(need(scopeCreate), func(w http.ResponseWriter, r *http.Request, c *caller) *apiError { return s.handleCreate(w, r, d, c) }))
		mux.Handle("GET "+b+"/sessions/{sessionId}", s.api(need(scopeRead), func(w http.ResponseWriter, r *http.Request, c *caller) *apiError { return s.handleGet(w, r, d, c) }))
		mux.Handle("DELETE "+b+"/sessions/{sessionId}", s.api(need(scopeDelete), func(w http.ResponseWriter, r *http.Request, c *caller) *apiError { return s.handleDelete(w, r, d, c) }))
		mux.Handle("POST "+b+"/sessions/{sessionId}/extend", s.api(need(scopeUpdate), func(w http.ResponseWriter, r *http.Request, c *caller) *apiError { return s.handleExtend(w, r, d, c) }))
		mux.Handle(b+"/sessions", s.notAllowed("POST"))
		mux.Handle(b+"/sessions/{sessionId}", s.notAllowed("GET, DELETE"))
		mux.Handle(b+"/sessions/{sessionId}/extend", s.notAllowed("POST"))
	}
	mux.Handle("POST "+BasePathV1+"/retrieve-sessions", s.api(scopeRetrieve, s.handleRetrieve))
	mux.Handle(BasePathV1+"/retrieve-sessions", s.notAllowed("POST"))
	mux.Handle("GET "+BasePathV0+"/qos-profiles", s.api(0, s.handleProfilesV0))
	mux.Handle("GET "+BasePathV0+"/qos-profiles/{name}", s.api(0, s.handleProfileV0))
	mux.Handle(BasePathV0+"/qos-profiles", s.notAllowed("GET"))
	mux.Handle(BasePathV0+"/qos-profiles/{name}", s.notAllowed("GET"))
	mux.Handle("POST "+BasePathProfiles+"/retrieve-qos-profiles", s.api(scopeProfiles, s.handleRetrieveProfiles))
	mux.Handle(BasePathProfiles+"/retrieve-qos-profiles", s.notAllowed("POST"))
	mux.Handle("GET "+BasePathProfiles+"/qos-profiles/{name}", s.api(scopeProfiles, s.handleGetProfile))
	mux.Handle(BasePathProfiles+"/qos-profiles/{name}", s.notAllowed("GET"))
	if s.cfg.oauth != nil {
		mux.HandleFunc(TokenPath, s.handleToken)
		mux.HandleFunc(BackchannelAuthPath, s.handleBackchannel)
		mux.HandleFunc("GET "+DiscoveryPath, s.handleDiscovery)
	}
	mux.Handle("/", s.api(0, func(w http.ResponseWriter, r *http.Request, _ *caller) *apiError {
		return &apiError{status: http.StatusNotFound, code: codeNotFound,
			msg: fmt.Sprintf("no resource at %s; the simulator serves %s, %s and %s", r.URL.Path, BasePathV1, BasePathProfiles, BasePathV0)}
	}))
	return mux
}

// api wraps a handler with what every answer shares: the x-correlator echo,
// authentication (and in OAuth mode the scope the operation needs), 503
// after Close, and ErrorInfo error bodies.
func (s *Sim) api(need scopeSet, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		corr, corrOK := r.Header.Get("x-correlator"), true
		if corr != "" {
			if corrOK = correlatorRE.MatchString(corr); corrOK {
				w.Header().Set("x-correlator", corr)
			}
		}
		c, err := s.authenticate(r)
		if err == nil && c != nil && c.scopes&need != need {
			err = &apiError{status: http.StatusForbidden, code: codePermissionDenied,
				msg: "Client does not have sufficient permissions to perform this action: the access token lacks scope " + (need &^ c.scopes).String()}
		}
		if err == nil && !corrOK {
			err = invalid("x-correlator", "header must match ^[a-zA-Z0-9-_:;.\\/<>{}]{0,256}$")
		}
		if err == nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				err = errShuttingDown()
			}
		}
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			writeError(w, err)
		}
	})
}

func errShuttingDown() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: "the simulator is shutting down"}
}

func (s *Sim) notAllowed(allow string) http.Handler {
	return s.api(0, func(w http.ResponseWriter, r *http.Request, _ *caller) *apiError {
		w.Header().Set("Allow", allow)
		return &apiError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed,
			msg: fmt.Sprintf("method %s not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)}
	})
}

// authenticate checks the credentials before anything of the request is
// read: in OAuth mode the access token (the caller it names is returned),
// else the static bearer tokens, if any. Every static token is compared,
// in constant time each, so the answer time does not tell which one came
// closer.
func (s *Sim) authenticate(r *http.Request) (*caller, *apiError) {
	if s.cfg.oauth != nil {
		return s.authenticateOAuth(r)
	}
	if len(s.cfg.Tokens) == 0 {
		return nil, nil
	}
	fail := &apiError{status: http.StatusUnauthorized, code: codeUnauthenticated,
		msg: "Request not authenticated due to missing, invalid, or expired credentials: send Authorization: Bearer <token>"}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, fail
	}
	// Over digests: neither which token matched nor a token's length
	// shows in the timing.
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for _, t := range s.cfg.Tokens {
		want := sha256.Sum256([]byte(t))
		match |= subtle.ConstantTimeCompare(sum[:], want[:])
	}
	if match != 1 {
		return nil, fail
	}
	return nil, nil
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		v := `Bearer realm="qodsim"`
		if e.wwwAuthErr != "" {
			v += `, error="` + e.wwwAuthErr + `"`
		}
		w.Header().Set("WWW-Authenticate", v)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, errorInfo{Status: e.status, Code: e.code, Message: e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types: cannot happen
		panic(fmt.Sprintf("qodsim: marshal answer: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func sessionID(r *http.Request) (string, *apiError) {
	id := r.PathValue("sessionId")
	if !uuidRE.MatchString(id) {
		return "", invalid("sessionId", "%q is not a UUID", id)
	}
	return strings.ToLower(id), nil
}

func notFound(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: codeNotFound, msg: fmt.Sprintf("sessionId: session %s does not exist", id)}
}

func (s *Sim) handleCreate(w http.ResponseWriter, r *http.Request, d dialect, c *caller) *apiError {
	var in createIn
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	p, err := s.parseCreate(d, &in, c)
	if err != nil {
		return err
	}
	s.mu.Lock()
	v, err := s.create(d, p, c.owner())
	s.mu.Unlock()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// create stores a validated session and starts its life. Called with s.mu
// held.
func (s *Sim) create(d dialect, p *createParams, owner string) (any, *apiError) {
	if s.closed { // Close may have begun after api() looked
		return nil, errShuttingDown()
	}
	sc, scKey := s.scenarioOf(p.keys)
	if sc == scenarioRateLimited || sc == scenarioServerError {
		failedLast := s.toggles[scKey]
		s.toggles[scKey] = !failedLast
		if !failedLast {
			if sc == scenarioRateLimited {
				return nil, &apiError{status: http.StatusTooManyRequests, code: codeTooManyRequests, retryAfter: DefaultRetryAfter,
					msg: "Rate limit reached (scenario device: every other create is rate limited)"}
			}
			return nil, &apiError{status: http.StatusInternalServerError, code: codeInternal,
				msg: "Internal server error (scenario device: every other create fails)"}
		}
	}
	for _, k := range p.keys {
		for _, o := range s.byDevice[k] {
			if o.blocks() {
				why := string(o.status)
				if o.status == bridge.StatusUnavailable {
					why = "NETWORK_TERMINATED, not yet deleted"
				}
				which := o.id
				if o.owner != owner { // another client's: not its id
					which = "one of another API client"
				}
				return nil, &apiError{status: http.StatusConflict, code: codeConflict,
					msg: fmt.Sprintf("Conflict with an existing session for the same device: %s (%s)", which, why)}
			}
		}
	}
	if !s.makeRoom() {
		return nil, &apiError{status: http.StatusTooManyRequests, code: codeQuotaExceeded, retryAfter: DefaultRetryAfter,
			msg: fmt.Sprintf("Out of resource quota: the simulator holds at most %d sessions", s.cfg.MaxSessions)}
	}

	format := s.cfg.Format
	if format == FormatAuto {
		format = FormatCAMARAv1
		if d == dialectV0 {
			format = FormatCAMARAv0
		}
	}
	sess := &session{
		id: newUUID(), dialect: d, format: format, scenario: sc, owner: owner,
		dev: p.dev, devFromToken: p.devFromToken, keys: p.keys, app: p.app, devPorts: p.devPorts, appPorts: p.appPorts,
		profile: p.profile.Name, duration: p.duration,
		sink: p.sink, sinkV0: p.sinkV0, token: p.token, tokenExpiry: p.tokenExpiry,
		status: bridge.StatusRequested, created: s.clock.Now(), listed: true,
	}
	s.slots++
	s.sessions[sess.id] = sess
	for _, k := range sess.keys {
		s.byDevice[k] = append(s.byDevice[k], sess)
	}
	if sc == scenarioAvailable {
		s.makeAvailable(sess)
	} else {
		s.schedule(sess, s.cfg.AvailableDelay, s.requestedDone)
	}
	return s.render(sess, d), nil
}

func (s *Sim) handleGet(w http.ResponseWriter, r *http.Request, d dialect, c *caller) *apiError {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	sess, ok := s.sessions[id]
	var v any
	if ok {
		if err = c.mayUse(sess, d); err == nil {
			v = s.render(sess, d)
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return notFound(id)
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Sim) handleDelete(w http.ResponseWriter, r *http.Request, d dialect, c *caller) *apiError {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	sess, ok := s.sessions[id]
	if ok {
		if err = c.mayUse(sess, d); err == nil {
			// No notification for a session that is UNAVAILABLE already.
			if sess.status != bridge.StatusUnavailable {
				s.terminate(sess, bridge.InfoDeleteRequested)
			}
			s.remove(sess)
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return notFound(id)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Sim) handleExtend(w http.ResponseWriter, r *http.Request, d dialect, c *caller) *apiError {
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	var in extendIn
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	add, err := parseExtend(d, &in)
	if err != nil {
		return err
	}
	s.mu.Lock()
	v, err := s.extend(id, d, add, c)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// extend moves the expiry of an AVAILABLE session. Called with s.mu held.
func (s *Sim) extend(id string, d dialect, add int64, c *caller) (any, *apiError) {
	sess, ok := s.sessions[id]
	if !ok {
		return nil, notFound(id)
	}
	if err := c.mayUse(sess, d); err != nil {
		return nil, err
	}
	if sess.status != bridge.StatusAvailable {
		if d == dialectV0 {
			return nil, invalid("sessionId", "The target session is inactive (%s)", sess.status)
		}
		return nil, &apiError{status: http.StatusConflict, code: codeExtensionNotAllowed,
			msg: fmt.Sprintf("Extending the session duration is not allowed in the current state (%s). The session must be in the AVAILABLE state.", sess.status)}
	}
	maxD := int64(s.cfg.profiles[sess.profile].MaxDuration / time.Second)
	now := s.clock.Now()
	if d == dialectV0 {
		// v0 caps the remaining duration, not the overall one.
		remaining := int64(sess.expires.Sub(now) / time.Second)
		remaining = min(remaining+add, maxD)
		sess.expires = now.Add(time.Duration(remaining) * time.Second)
		sess.duration = int64(sess.expires.Sub(sess.started) / time.Second)
	} else {
		sess.duration = min(sess.duration+add, max(maxD, sess.duration))
		sess.expires = sess.started.Add(time.Duration(sess.duration) * time.Second)
	}
	s.schedule(sess, sess.expires.Sub(now), s.expire)
	return s.render(sess, d), nil
}

func (s *Sim) handleRetrieve(w http.ResponseWriter, r *http.Request, c *caller) *apiError {
	var in retrieveIn
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	keys, err := s.subject(in.Device, c, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	var found []*session
	for _, k := range keys {
		for _, sess := range s.byDevice[k] {
			// In OAuth mode a client sees its own sessions only.
			if !slices.Contains(found, sess) && (c == nil || sess.owner == c.client) {
				found = append(found, sess)
			}
		}
	}
	slices.SortFunc(found, func(a, b *session) int {
		return cmp.Or(a.created.Compare(b.created), strings.Compare(a.id, b.id))
	})
	out := make([]any, 0, len(found))
	for _, sess := range found {
		out = append(out, s.render(sess, dialectV1))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Sim) handleProfilesV0(w http.ResponseWriter, r *http.Request, _ *caller) *apiError {
	name, status := r.URL.Query().Get("name"), r.URL.Query().Get("status")
	out := []qosProfile{}
	for _, n := range s.cfg.order {
		p := s.cfg.profiles[n]
		if (name == "" || name == p.Name) && (status == "" || status == p.Status) {
			out = append(out, renderProfile(p))
		}
	}
	if len(out) == 0 {
		return &apiError{status: http.StatusNotFound, code: codeNotFound, msg: "No QoS Profiles found"}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Sim) handleProfileV0(w http.ResponseWriter, r *http.Request, _ *caller) *apiError {
	name := r.PathValue("name")
	if !profileNameRE.MatchString(name) {
		return invalid("name", "%q is not 3 to 256 of [a-zA-Z0-9_.-]", name)
	}
	p, ok := s.cfg.profiles[name]
	if !ok {
		return &apiError{status: http.StatusNotFound, code: codeNotFound, msg: fmt.Sprintf("name: QoS profile %s does not exist", name)}
	}
	writeJSON(w, http.StatusOK, renderProfile(p))
	return nil
}
