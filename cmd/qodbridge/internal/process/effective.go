package process

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/bridge/normalize"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks"
)

// Defaults of the ingress http.Server's timeouts (http.read_header_timeout,
// read_timeout, write_timeout, idle_timeout): the process builds that
// server, so they live here.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

// Effective returns a copy of cfg (a config.Load result) in which every
// setting left zero holds the default of the package that applies it:
// sinks.Effective for the brokers and the command intakes, the ingress,
// normalize, command, qodapi and qodsim packages and this one for the
// rest. It is what `qodbridge check` prints and what a Process runs on.
func Effective(cfg *config.Config) *config.Config {
	e := sinks.Effective(cfg)

	h := &e.HTTP
	h.Path = cmp.Or(h.Path, ingress.DefaultPath)
	h.MaxBodyBytes = cmp.Or(h.MaxBodyBytes, ingress.DefaultMaxBodyBytes)
	h.MaxInFlight = cmp.Or(h.MaxInFlight, ingress.DefaultMaxInFlight)
	h.ReadHeaderTimeout = cmp.Or(h.ReadHeaderTimeout, config.Duration(DefaultReadHeaderTimeout))
	h.ReadTimeout = cmp.Or(h.ReadTimeout, config.Duration(DefaultReadTimeout))
	h.WriteTimeout = cmp.Or(h.WriteTimeout, config.Duration(DefaultWriteTimeout))
	h.IdleTimeout = cmp.Or(h.IdleTimeout, config.Duration(DefaultIdleTimeout))

	ui := e.Admin.UIOn()
	e.Admin.UI = &ui
	e.Admin.MaxConnections = cmp.Or(e.Admin.MaxConnections, DefaultAdminMaxConnections)

	in := &e.Ingress
	in.RetryAfter = cmp.Or(in.RetryAfter, config.Duration(ingress.DefaultRetryAfter))
	in.LegacySource = cmp.Or(in.LegacySource, normalize.DefaultLegacySource)
	in.MaxBatchEvents = cmp.Or(in.MaxBatchEvents, normalize.DefaultMaxBatchEvents)
	if len(in.AllowedOrigins) == 0 {
		in.AllowedOrigins = slices.Clone(ingress.DefaultAllowedOrigins)
	}

	q := &e.QoD
	q.Dialect = cmp.Or(q.Dialect, string(qodapi.DefaultDialect))
	q.Timeout = cmp.Or(q.Timeout, config.Duration(qodapi.DefaultTimeout))
	e.Sim.AvailableDelay = cmp.Or(e.Sim.AvailableDelay, config.Duration(qodsim.DefaultAvailableDelay))

	c := &e.Commands
	c.MaxAttempts = cmp.Or(c.MaxAttempts, command.DefaultMaxAttempts)
	c.MaxElapsed = cmp.Or(c.MaxElapsed, config.Duration(command.DefaultMaxElapsed))
	return e
}

// Check validates the rules between settings whose defaults live in
// different packages, which config cannot know. New runs it, and so does
// `qodbridge check`; its errors read like config's.
func Check(cfg *config.Config) error {
	c := Effective(cfg).Commands
	// A command still being retried by the engine (max_elapsed) must not be
	// redelivered by JetStream (ack_wait) to another instance meanwhile.
	if c.AckWait <= c.MaxElapsed {
		return &config.FieldError{Field: "commands.ack_wait", Err: fmt.Errorf("%w: %s must exceed commands.max_elapsed %s, or commands still being retried are redelivered",
			config.ErrInvalid, c.AckWait, c.MaxElapsed)}
	}
	return nil
}
