package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

const serveUsage = `usage: qodbridge [serve] [-config file] [-t]

Runs the bridge until SIGINT or SIGTERM, then shuts down gracefully within
shutdown_timeout. Without a config file it starts the zero-config default
on loopback: the ingress, an embedded NATS server with JetStream, the
command flow and the built-in QoD simulator, and prints where to send
notifications. Settings come from the file and the environment
(QODBRIDGE_<SECTION>_<KEY>, which wins; qodbridge check -env lists them).
SIGHUP, or a change of the config file or a secret file, reloads the
ingress tokens, the session secrets and the admin tokens.

examples:
  qodbridge
  qodbridge serve -config /etc/qodbridge/qodbridge.yaml
  QODBRIDGE_NATS_URL=nats://nats:4222 QODBRIDGE_AUTH_TOKENS_FILE=/run/secrets/tokens qodbridge serve
  kill -HUP "$(pidof qodbridge)"    # reload the tokens and secrets
`

// serve runs the bridge until ctx is done (SIGINT/SIGTERM), then shuts it
// down within shutdown_timeout.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", serveUsage, stderr)
	cfgPath := fs.String("config", os.Getenv("QODBRIDGE_CONFIG"), "config `file` (YAML; default $QODBRIDGE_CONFIG); none runs the zero-config default")
	test := fs.Bool("t", false, "validate the config, print the effective settings and exit (qodbridge check)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *test {
		return checkFile(*cfgPath, stdout)
	}
	load := func() (*config.Config, error) { return config.Load(*cfgPath, os.Getenv) }
	cfg, err := loadChecked(load)
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
	p, err := process.New(cfg, process.Options{Logger: log, Version: versionString(), Reload: load, ReloadInterval: reloadInterval})
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	// SIGHUP reloads the tokens and secrets (the files the settings came
	// from are also watched): before the banner, so that a signal sent
	// once the banner is out is never the default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	defer func() {
		signal.Stop(hup)
		close(done)
	}()
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading")
				_ = p.Reload() // logged
			case <-done:
				return
			}
		}
	}()
	p.WriteBanner(stdout)
	return p.Run(ctx)
}

// reloadInterval is how often serve reads the config and secret files for
// a change (tests lengthen it to see SIGHUP alone at work).
var reloadInterval = process.DefaultReloadInterval

// otherEnv are the QODBRIDGE_ variables read besides the settings'
// (config.EnvVars): serve's and check's -config default, the simulator's
// and the load tool's, and the repository's tests' own.
var otherEnv = []string{
	"QODBRIDGE_CONFIG",
	"QODBRIDGE_SIM_TOKENS", "QODBRIDGE_SIM_ALLOWED_SINKS", "QODBRIDGE_SIM_OAUTH_CLIENTS",
	"QODBRIDGE_TOKEN",
	"QODBRIDGE_TEST_SCALE", "QODBRIDGE_TEST_RUN_MAIN", "QODBRIDGE_SCREENSHOT", "QODBRIDGE_CONSOLE_PAGES",
}

// loadChecked loads the config, refusing QODBRIDGE_ variables that no
// setting has (a misspelt name would otherwise be ignored), and checks the
// rules between settings (process.Check).
func loadChecked(load func() (*config.Config, error)) (*config.Config, error) {
	envErr := config.CheckEnv(os.Environ(), otherEnv...)
	cfg, err := load()
	if err == nil {
		err = process.Check(cfg)
	}
	if err = errors.Join(envErr, err); err != nil {
		return nil, err
	}
	return cfg, nil
}
