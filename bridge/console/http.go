package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/ingress"
)

//go:embed assets
var assets embed.FS

var loginPage = template.Must(template.ParseFS(assets, "assets/login.html"))

// contentSecurityPolicy allows the page its own scripts, styles and
// connections only: no inline script, no other origin, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// maxCommandBytes bounds a command posted by the page.
const maxCommandBytes = 64 << 10

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusForbidden, "PERMISSION_DENIED", "", "cross-origin request refused: the console takes commands from its own page only")
	}))
	mux.HandleFunc("GET "+Prefix+"/{$}", c.serveIndex)
	mux.HandleFunc("GET "+Prefix, c.serveIndex)
	mux.Handle("GET "+Prefix+"/assets/", http.StripPrefix(Prefix+"/assets/", files))
	mux.Handle("POST "+Prefix+"/login", cop.Handler(http.HandlerFunc(c.serveLogin)))
	mux.Handle("POST "+Prefix+"/logout", cop.Handler(http.HandlerFunc(c.serveLogout)))
	mux.Handle("GET "+Prefix+"/events", c.authed(http.HandlerFunc(c.serveEvents)))
	mux.Handle("GET "+Prefix+"/api/sessions/{id}/history", c.authed(http.HandlerFunc(c.serveHistory)))
	mux.Handle("POST "+Prefix+"/api/commands/{action}", cop.Handler(c.authed(http.HandlerFunc(c.serveCommand))))
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "NOT_FOUND", "", "no console endpoint at "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// ServeHTTP serves everything under Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.Off() {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "console off: "+c.o.Listener+" is not loopback and no auth.tokens are configured to protect it\n")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if c.o.Open && !loopbackHost(r.Host) {
		problem(w, http.StatusForbidden, "PERMISSION_DENIED", "Host",
			"the console listens on loopback and answers only requests to a loopback host (open it as http://127.0.0.1:<port>/ui)")
		return
	}
	c.mux.ServeHTTP(w, r)
}

// loopbackHost reports whether a Host header names localhost or a loopback
// address: a page that rebinds its DNS name to 127.0.0.1 still sends its
// own name.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Console) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !c.authorized(r) {
		c.renderLogin(w, http.StatusOK, "")
		return
	}
	http.ServeFileFS(w, r, assets, "assets/index.html")
}

func (c *Console) renderLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, struct{ Error string }{msg})
}

// authed lets through requests authorized to use the console; others get
// 401.
func (c *Console) authed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qodbridge console"`)
			problem(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Authorization",
				"sign in at "+Prefix+" or send Authorization: Bearer <one of auth.tokens>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *Console) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	c.mu.Lock()
	select {
	case <-c.closed:
		c.mu.Unlock()
		w.Header().Set("Retry-After", "5")
		problem(w, http.StatusServiceUnavailable, "UNAVAILABLE", "", "the console is shutting down")
		return
	default:
	}
	if c.clients >= c.o.MaxPages {
		c.mu.Unlock()
		w.Header().Set("Retry-After", "10")
		problem(w, http.StatusServiceUnavailable, "UNAVAILABLE", "", fmt.Sprintf("%d console pages are open, the most this bridge serves: close one or retry later", c.o.MaxPages))
		return
	}
	snap, cursor := c.subscribeLocked()
	c.mu.Unlock()
	defer c.unsubscribe()
	snap.Login = !c.o.Open && !bearer(r)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Frames are joined into one buffer and written with one Write: the
	// response's small buffer would otherwise turn a burst into a write
	// system call (and an HTTP chunk) every few kilobytes.
	var out []byte
	write := func(frames ...[]byte) bool {
		out = out[:0]
		for _, f := range frames {
			out = append(out, f...)
		}
		_ = rc.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout)) // not supported by every ResponseWriter: then no deadline
		if _, err := w.Write(out); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: 2000\n\n"), frame("snapshot", snap)) {
		return
	}

	heartbeat := time.NewTicker(c.o.Heartbeat)
	defer heartbeat.Stop()
	var pace *time.Timer
	if c.o.FlushInterval > 0 {
		pace = time.NewTimer(c.o.FlushInterval)
		defer pace.Stop()
	}
	ctx := r.Context()
	var buf [][]byte
	for {
		var wake <-chan struct{}
		var lagged bool
		buf, cursor, wake, lagged = c.next(cursor, buf[:0])
		if lagged {
			c.log.Info("console: a page fell behind and was disconnected; it reconnects with a fresh snapshot", "remote", r.RemoteAddr, "backlog", len(c.ring))
			return
		}
		if len(buf) > 0 {
			if !write(buf...) {
				return
			}
			clear(buf) // drop references to frames the ring may overwrite
			heartbeat.Reset(c.o.Heartbeat)
			if pace != nil {
				pace.Reset(c.o.FlushInterval)
				select {
				case <-pace.C:
				case <-ctx.Done():
					return
				case <-c.closed:
					return
				}
			}
			continue
		}
		select {
		case <-wake:
		case <-heartbeat.C:
			if !write([]byte(": heartbeat\n\n")) {
				return
			}
		case <-ctx.Done():
			return
		case <-c.closed:
			return
		}
	}
}

func (c *Console) serveHistory(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if c.o.Feed == nil {
		problem(w, http.StatusServiceUnavailable, "UNAVAILABLE", "", c.unavailable())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	hist, err := c.o.Feed.History(ctx, id)
	if err != nil {
		c.log.Warn("console: reading a session's history failed", "session_id", id, "err", err)
		w.Header().Set("Retry-After", "2")
		problem(w, http.StatusServiceUnavailable, "UNAVAILABLE", "", "reading the history failed: "+err.Error())
		return
	}
	if hist == nil {
		hist = []Status{}
	}
	writeJSON(w, http.StatusOK, struct {
		SessionID string   `json:"sessionId"`
		History   []Status `json:"history"`
	}{id, hist})
}

func (c *Console) serveCommand(w http.ResponseWriter, r *http.Request) {
	action := command.Action(r.PathValue("action"))
	if !action.Valid() {
		problem(w, http.StatusNotFound, "NOT_FOUND", "action", strconv.Quote(string(action))+" is not one of create, get, extend, delete, list")
		return
	}
	if c.o.Submitter == nil {
		problem(w, http.StatusServiceUnavailable, "UNAVAILABLE", "", c.unavailable())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCommandBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem(w, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "", "a command is at most 64 KiB")
			return
		}
		problem(w, http.StatusBadRequest, "INVALID_ARGUMENT", "", "reading the body failed: "+err.Error())
		return
	}
	cmd, err := command.Parse(body, action)
	if err != nil {
		var inv *command.InvalidError
		if errors.As(err, &inv) {
			problem(w, http.StatusBadRequest, "INVALID_ARGUMENT", inv.Field, inv.Error())
			return
		}
		problem(w, http.StatusBadRequest, "INVALID_ARGUMENT", "", err.Error())
		return
	}
	// Re-encoded, the command always carries its requestId, so the page
	// can wait for that result.
	canonical, err := json.Marshal(cmd)
	if err != nil {
		problem(w, http.StatusInternalServerError, "INTERNAL", "", "encoding the command: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	id, err := c.o.Submitter.Submit(ctx, action, canonical)
	if err != nil {
		c.log.Warn("console: command not submitted", "action", action, "request_id", cmd.RequestID, "err", err)
		w.Header().Set("Retry-After", "2")
		problem(w, http.StatusServiceUnavailable, "UNAVAILABLE", "", "the command was not taken: "+err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, struct {
		RequestID string         `json:"requestId"`
		Action    command.Action `json:"action"`
	}{id, action})
}

func (c *Console) unavailable() string {
	if c.o.Notice != "" {
		return c.o.Notice
	}
	return "the console has no command flow"
}

// problem answers an error as the ingress does (ingress.Problem), never
// cached.
func problem(w http.ResponseWriter, status int, code, field, detail string) {
	w.Header().Set("Cache-Control", "no-store")
	ingress.WriteProblem(w, status, code, field, detail)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem(w, http.StatusInternalServerError, "INTERNAL", "", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
