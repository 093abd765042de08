package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

const sessionsUsage = `usage: qodbridge sessions rebuild [-config file]

rebuild   replay the status history (NATS stream, Kafka topic) into the
          session view (KV bucket QOD_SESSIONS, topic qod.sessions)
`

// sessions runs the session view's subcommands: rebuild.
func sessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stderr, sessionsUsage)
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprint(stderr, sessionsUsage)
		if len(args) == 0 {
			return usagef("sessions: a subcommand is required")
		}
		return usagef("sessions: unknown subcommand %q", args[0])
	}
	fs := flag.NewFlagSet("sessions rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("QODBRIDGE_CONFIG"), "config file (YAML); none uses the zero-config default")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("sessions rebuild: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(*cfgPath, os.Getenv)
	if err == nil {
		err = process.Check(cfg)
	}
	if err != nil {
		return usageError{err}
	}
	log, err := process.NewLogger(cfg.Log, stderr)
	if err != nil {
		return usageError{err}
	}
	return process.RebuildSessions(ctx, cfg, log, stdout)
}
