package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

const simUsage = `usage: qodbridge sim [-addr address] [flags]

Runs only the QoD simulator: a CAMARA QoD API (1.1 and 0.10) whose sessions
go REQUESTED, AVAILABLE, UNAVAILABLE on timers, each change sent to the
session's sink. Off loopback it needs -token or -oauth-client
(QODBRIDGE_SIM_TOKENS, QODBRIDGE_SIM_OAUTH_CLIENTS, comma-separated) and
notifies only loopback sinks unless -allow-sink
(QODBRIDGE_SIM_ALLOWED_SINKS) names more.

examples:
  qodbridge sim
  qodbridge sim -addr 0.0.0.0:8090 -token sim-token-0123456789
  curl -X POST http://127.0.0.1:8090/quality-on-demand/v1/sessions \
    -H 'Content-Type: application/json' \
    -d '{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60}'
`

// sim runs the QoD simulator alone.
func sim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sim", simUsage, stderr)
	var o qodsim.Options
	addr := fs.String("addr", envOr("QODBRIDGE_SIM_ADDRESS", config.DefaultSimAddress), "listen `address` (QODBRIDGE_SIM_ADDRESS)")
	o.RegisterFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// For containers, where flags are awkward to keep secret.
	o.Tokens = append(o.Tokens, config.SplitList(os.Getenv("QODBRIDGE_SIM_TOKENS"))...)
	o.AllowedSinks = append(o.AllowedSinks, config.SplitList(os.Getenv("QODBRIDGE_SIM_ALLOWED_SINKS"))...)
	for _, c := range config.SplitList(os.Getenv("QODBRIDGE_SIM_OAUTH_CLIENTS")) {
		if err := fs.Set("oauth-client", c); err != nil {
			return usagef("sim: QODBRIDGE_SIM_OAUTH_CLIENTS: %v", err)
		}
	}
	if !config.IsLoopback(*addr) {
		// Reachable from other machines: anyone who can reach it must not
		// be able to make it POST, with a token of their choosing, to any
		// address it can reach.
		if len(o.Tokens) == 0 && len(o.OAuth.Clients) == 0 {
			return usagef("sim: -addr %s is not loopback: set -token (or QODBRIDGE_SIM_TOKENS) or -oauth-client (or QODBRIDGE_SIM_OAUTH_CLIENTS) so that only its clients can create sessions", *addr)
		}
		if len(o.AllowedSinks) == 0 {
			o.AllowedSinks = qodsim.LoopbackSinks
		}
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	s, err := qodsim.New(o)
	if err != nil {
		return usageError{err}
	}
	ln, err := process.Listen("sim -addr", *addr)
	if err != nil {
		_ = s.Close()
		return err
	}
	auth := "none"
	switch {
	case len(o.OAuth.Clients) > 0:
		auth = fmt.Sprintf("OAuth 2.0 (%d clients): tokens from http://%s%s, three-legged through http://%s%s", len(o.OAuth.Clients), ln.Addr(), qodsim.TokenPath, ln.Addr(), qodsim.BackchannelAuthPath)
	case len(o.Tokens) > 0:
		auth = fmt.Sprintf("bearer token (%d configured)", len(o.Tokens))
	}
	sinks := "any"
	if len(o.AllowedSinks) > 0 {
		sinks = strings.Join(o.AllowedSinks, " ")
	}
	fmt.Fprintf(stdout, "QoD simulator listening\n  CAMARA QoD 1.1  http://%s%s\n  QoS Profiles    http://%s%s\n  QoD 0.10        http://%s%s\n  auth            %s\n  sinks           %s\n  scenario devices: see README (QoD simulator)\n",
		ln.Addr(), qodsim.BasePathV1, ln.Addr(), qodsim.BasePathProfiles, ln.Addr(), qodsim.BasePathV0, auth, sinks)
	serveErr := s.Serve(ctx, ln)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil && serveErr == nil {
		return fmt.Errorf("sim: notifications left undelivered at shutdown: %w", err)
	}
	return serveErr
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}
