package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/qodbridge/qodbridge/bridge/qodsim"
)

// listFlag is a comma-separated list flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = splitComma(v)
	return nil
}

func splitComma(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// sim runs the QoD simulator alone.
func sim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o qodsim.Options
	addr := fs.String("addr", envOr("QODBRIDGE_SIM_ADDRESS", "127.0.0.1:8090"), "listen address (QODBRIDGE_SIM_ADDRESS)")
	tokens := listFlag(splitComma(os.Getenv("QODBRIDGE_SIM_TOKENS")))
	fs.Var(&tokens, "tokens", "comma-separated bearer tokens the API requires (QODBRIDGE_SIM_TOKENS); none: no authentication")
	fs.DurationVar(&o.AvailableDelay, "available-delay", qodsim.DefaultAvailableDelay, "time a session stays REQUESTED before AVAILABLE")
	fs.DurationVar(&o.Retention, "retention", qodsim.DefaultRetention, "how long an ended session can still be read")
	fs.IntVar(&o.MaxSessions, "max-sessions", qodsim.DefaultMaxSessions, "sessions held at most")
	fs.BoolVar(&o.Strict, "strict", false, "enforce the spec: https:// sinks only")
	format := fs.String("format", "auto", "notification shape: auto, camara-v1, camara-v0 or nac")
	fs.StringVar(&o.EventSource, "event-source", qodsim.DefaultEventSource, "base of each notification's CloudEvents source")
	fs.IntVar(&o.MaxAttempts, "max-attempts", qodsim.DefaultMaxAttempts, "delivery attempts per notification")
	for _, sc := range []struct {
		name string
		p    *[]string
		def  []string
		help string
	}{
		{"unavailable", &o.Scenarios.Unavailable, qodsim.DefaultUnavailable, "device ids whose sessions turn UNAVAILABLE with no statusInfo"},
		{"network-terminated", &o.Scenarios.NetworkTerminated, qodsim.DefaultNetworkTerminated, "device ids whose sessions turn UNAVAILABLE/NETWORK_TERMINATED"},
		{"available", &o.Scenarios.Available, qodsim.DefaultAvailable, "device ids whose sessions turn AVAILABLE with no statusInfo and stay"},
		{"rate-limited", &o.Scenarios.RateLimited, qodsim.DefaultRateLimited, "device ids whose create answers 429 once"},
		{"server-error", &o.Scenarios.ServerError, qodsim.DefaultServerError, "device ids whose create answers 500 once"},
	} {
		*sc.p = append([]string(nil), sc.def...)
		fs.Var((*listFlag)(sc.p), sc.name, sc.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("sim: unexpected argument %q", fs.Arg(0))
	}
	f, err := qodsim.ParseFormat(*format)
	if err != nil {
		return usagef("sim: -format: %v", err)
	}
	o.Format, o.Tokens = f, tokens
	o.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	s, err := qodsim.New(o)
	if err != nil {
		return usageError{err}
	}
	ln, err := listen("sim -addr", *addr)
	if err != nil {
		s.Close()
		return err
	}
	auth := "none"
	if len(tokens) > 0 {
		auth = fmt.Sprintf("bearer token (%d configured)", len(tokens))
	}
	fmt.Fprintf(stdout, "QoD simulator listening\n  CAMARA QoD 1.1  http://%s/quality-on-demand/v1\n  QoD v0.10       http://%s/qod/v0\n  auth            %s\n", ln.Addr(), ln.Addr(), auth)
	serveErr := s.Serve(ctx, ln)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil && serveErr == nil {
		return fmt.Errorf("sim: notifications left undelivered at shutdown: %w", err)
	}
	return serveErr
}
