package process

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/bridge/qodapi"
	"github.com/qodbridge/qodbridge/bridge/qodsim"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks"
)

// commandFlow is the running command side: the built-in simulator when no
// QoD API is configured, the engine, and one intake per broker.
type commandFlow struct {
	sim      *qodsim.Sim
	simLn    net.Listener
	simDone  chan error
	apiURL   string
	engine   *command.Engine
	intakes  []sinks.Intake
	stopIn   context.CancelFunc // stops fetching commands
	stopWork context.CancelFunc // cuts commands short (shutdown deadline)
	done     chan struct{}      // closed when every intake returned
}

// startCommands starts the command flow on b's brokers.
func (b *Process) startCommands(ctx context.Context, cfg *config.Config, log *slog.Logger) (err error) {
	cf := &commandFlow{done: make(chan struct{})}
	b.commands = cf
	cf.apiURL = cfg.QoD.APIURL
	simToken := ""
	if cf.apiURL == "" {
		if cf.simLn, err = Listen("sim.address", cfg.Sim.Address); err != nil {
			return err
		}
		so := qodsim.Options{AvailableDelay: cfg.Sim.AvailableDelay.D(), Logger: log.With("component", "qodsim")}
		if !config.IsLoopback(cfg.Sim.Address) {
			// Others can reach it: only this bridge may create sessions
			// (with a token made for this run), and it notifies only this
			// bridge and loopback.
			simToken = rand.Text()
			so.Tokens = []string{simToken}
			so.AllowedSinks = append([]string{cfg.HTTP.PublicURL + cfg.HTTP.Path}, qodsim.LoopbackSinks...)
		}
		if cf.sim, err = qodsim.New(so); err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		cf.apiURL = "http://" + cf.simLn.Addr().String() + qodsim.BasePathV1
		cf.simDone = make(chan error, 1)
		simCtx, stopSim := context.WithCancel(context.Background())
		b.stopSim = stopSim
		go func() { cf.simDone <- cf.sim.Serve(simCtx, cf.simLn) }()
	}
	auth := qodapi.Auth{BearerToken: cmp.Or(simToken, cfg.QoD.Token), APIKeyHeaders: cfg.QoD.APIKeyHeaders}
	if o := cfg.QoD.OAuth2; o.TokenURL != "" {
		auth.ClientCredentials = &qodapi.ClientCredentials{TokenURL: o.TokenURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Scopes: o.Scopes}
	}
	var httpClient *http.Client
	var trace command.TraceFunc
	if b.tracing != nil {
		httpClient, trace = b.tracing.transport(), b.tracing.command
	}
	client, err := qodapi.New(qodapi.Options{
		HTTPClient: httpClient,
		BaseURL:    cf.apiURL,
		Dialect:    qodapi.Dialect(cfg.QoD.Dialect),
		Auth:       auth,
		Timeout:    cfg.QoD.Timeout.D(),
		Logger:     log,
	})
	if err != nil {
		return fmt.Errorf("qod: %w", err)
	}
	store, err := b.brokers.Store(ctx)
	if err != nil {
		return err
	}
	engine, err := command.New(client, command.Options{
		NotifyURL:     cfg.HTTP.PublicURL + cfg.HTTP.Path,
		SessionSecret: []byte(cfg.Auth.SessionSecrets[0]),
		MaxAttempts:   cfg.Commands.MaxAttempts,
		MaxElapsed:    cfg.Commands.MaxElapsed.D(),
		Store:         store,
		Status:        withView(b.brokers.Status(), b.brokers.View(), log),
		Logger:        log,
		OnAttempt:     b.metrics.apiAttempt,
	})
	if err != nil {
		return err
	}
	cf.engine = engine
	if cf.intakes, err = b.brokers.Intakes(ctx, engine, sinks.IntakeHooks{Version: b.o.Version, Trace: trace, OnOutcome: b.metrics.command}); err != nil {
		return err
	}
	for _, in := range cf.intakes {
		// Each broker's gauge keeps the name dashboards use.
		switch in.Broker() {
		case "nats":
			b.metrics.inFlight("qodbridge_commands_in_flight", "Commands from NATS being run.", in.InFlight)
		case "kafka":
			b.metrics.inFlight("qodbridge_kafka_commands_in_flight", "Commands from Kafka being run.", in.InFlight)
		}
	}
	intake, stopIn := context.WithCancel(context.Background())
	work, stopWork := context.WithCancel(context.Background())
	cf.stopIn, cf.stopWork = stopIn, stopWork
	n := len(cf.intakes)
	errs := make(chan error, n)
	for _, in := range cf.intakes {
		go func() { errs <- in.Run(intake, work) }()
	}
	go func() {
		for range n {
			if err := <-errs; err != nil {
				log.Error("command intake stopped", "err", err)
			}
		}
		close(cf.done)
	}()
	// "qodbridge is ready" promises that qod.api.* answers: wait until the
	// micro service is registered (or its intake has given up).
	for _, in := range cf.intakes {
		select {
		case <-in.Serving():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop ends the command flow: no more fetching, commands in flight get
// until ctx's deadline to finish and publish their results; the rest are
// left for redelivery.
// It is idempotent, and closes the intakes also when they never ran.
func (cf *commandFlow) stop(ctx context.Context) {
	if cf.stopIn != nil {
		cf.stopIn()
		select {
		case <-cf.done:
		case <-ctx.Done():
			cf.stopWork()
			<-cf.done
		}
		cf.stopWork()
	}
	for _, in := range cf.intakes {
		_ = in.Close()
	}
}
