package process

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/config"
)

// Defaults of the admin listener.
const (
	// DefaultAdminMaxConnections bounds the admin listener's open
	// connections (admin.max_connections): probes, scrapes and console
	// pages (at most the console's MaxPages) fit with room to spare.
	DefaultAdminMaxConnections = 64
	// The admin server's timeouts. Console pages are long-lived event
	// streams: the console moves the write deadline on before each write.
	adminReadHeaderTimeout = 5 * time.Second
	adminReadTimeout       = 10 * time.Second
	adminWriteTimeout      = 30 * time.Second
	adminIdleTimeout       = 60 * time.Second
)

// newAdmin is the admin listener's server: /healthz and a plain /readyz for
// probes, open to all and saying nothing secret; /readyz's detail (the
// brokers' errors), /metrics and pprof to the admin tokens off loopback
// (on loopback the machine is the boundary); the console with its own
// sign-in.
func (b *Process) newAdmin(m *metrics) (*http.Server, error) {
	mux := http.NewServeMux()
	private := config.IsLoopback(b.cfg.Admin.Address)
	authorized := func(r *http.Request) bool {
		if private {
			return true
		}
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		match := 0
		tokens := *b.adminTokens.Load() // swapped whole by Reload
		for i := range tokens {
			match |= subtle.ConstantTimeCompare(sum[:], tokens[i][:])
		}
		return match == 1
	}
	guard := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !authorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="qodbridge admin"`)
				ingress.WriteProblem(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Authorization",
					"this admin endpoint needs one of admin.tokens off loopback: send Authorization: Bearer <token>")
				return
			}
			h.ServeHTTP(w, r)
		})
	}

	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !b.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: shutting down")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := b.brokers.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			if authorized(r) {
				fmt.Fprintln(w, "not ready:", err)
			} else {
				// Broker errors name hosts and settings: only for those
				// who may see them.
				fmt.Fprintln(w, "not ready: a broker is unavailable (send an admin token for the detail)")
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	metricsHandler := m.handler()
	if !b.cfg.Admin.OpenMetrics {
		metricsHandler = guard(metricsHandler)
	}
	mux.Handle("GET /metrics", metricsHandler)
	if b.cfg.Admin.Pprof {
		mux.Handle("GET /debug/pprof/", guard(http.HandlerFunc(pprof.Index)))
		mux.Handle("GET /debug/pprof/cmdline", guard(http.HandlerFunc(pprof.Cmdline)))
		mux.Handle("GET /debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
		mux.Handle("GET /debug/pprof/symbol", guard(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("GET /debug/pprof/trace", guard(http.HandlerFunc(pprof.Trace)))
	}
	b.console.mount(mux)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       adminIdleTimeout,
	}, nil
}
