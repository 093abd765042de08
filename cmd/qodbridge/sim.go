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
	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

// sim runs the QoD simulator alone.
func sim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o qodsim.Options
	addr := fs.String("addr", envOr("QODBRIDGE_SIM_ADDRESS", config.DefaultSimAddress), "listen `address` (QODBRIDGE_SIM_ADDRESS)")
	o.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("sim: unexpected argument %q", fs.Arg(0))
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
	if len(o.Tokens) > 0 {
		auth = fmt.Sprintf("bearer token (%d configured)", len(o.Tokens))
	}
	fmt.Fprintf(stdout, "QoD simulator listening\n  CAMARA QoD 1.1  http://%s%s\n  QoD 0.10        http://%s%s\n  auth            %s\n  scenario devices: see README (QoD simulator)\n",
		ln.Addr(), qodsim.BasePathV1, ln.Addr(), qodsim.BasePathV0, auth)
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
