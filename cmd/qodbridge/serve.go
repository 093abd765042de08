package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

// serve runs the bridge until ctx is done (SIGINT/SIGTERM), then shuts it
// down within shutdown_timeout.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("QODBRIDGE_CONFIG"), "config file (YAML); none runs the zero-config default")
	test := fs.Bool("t", false, "validate the config, print the effective settings and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	if *test {
		return checkFile(*cfgPath, stdout)
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
	if limit := process.SetMemoryLimitFromCgroup(os.Getenv); limit > 0 {
		log.Info("soft memory limit set from the container's memory limit (set GOMEMLIMIT to choose one)", "bytes", limit)
	}
	p, err := process.New(cfg, process.Options{Logger: log, Version: versionString()})
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	p.WriteBanner(stdout)
	return p.Run(ctx)
}
