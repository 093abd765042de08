// Package process is the assembled qodbridge process: the notification
// ingress and the admin listener (health, readiness, metrics, pprof, the
// live console), the brokers, the command flow with its built-in simulator
// when no QoD API is configured, metrics and tracing, wired from one
// config.Config. cmd/qodbridge runs it (qodbridge serve) and the load tool
// drives it in-process (qodbridge bench).
//
// Life cycle: New prepares, Start opens the listeners first (a busy port
// fails before anything else started), then the brokers, the command flow
// and the console, and serves; Run waits for the context or a server
// failure and shuts down. Shutdown follows the bridge's contract: stop
// intake (the ingress answers 503 with Connection: close, the command
// intakes stop fetching), let what is in flight finish within the shutdown
// timeout, then flush and close the brokers. Nothing acknowledged is lost;
// a command cut short is left for redelivery. Shutdown is idempotent.
// Reload (on SIGHUP, and when a file the settings came from changes) puts
// new ingress tokens, session secrets and admin tokens in service, each
// set swapped whole under requests in flight.
//
// It imports everything of ours and nothing imports it but cmd/qodbridge
// and its internal packages.
package process

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/nats-io/nats.go"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/ingress"
	"github.com/qodbridge/qodbridge/bridge/normalize"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks"
)

// Options are what a Process needs besides its configuration.
type Options struct {
	// Logger gets the process's log. Nil: NewLogger(cfg.Log, os.Stderr).
	Logger *slog.Logger
	// Version is the bridge's version, for the micro service and traces.
	// Empty: "0.0.0-devel".
	Version string
	// Getenv reads the OpenTelemetry environment (OTEL_*). Nil: os.Getenv.
	Getenv func(string) string
	// Reload reads the configuration again, as it was read for New
	// (config.Load with the same file and environment), for Reload. Nil:
	// the process cannot reload.
	Reload func() (*config.Config, error)
	// ReloadInterval is how often the files the settings came from
	// (config.Config.SourceFiles) are read to see whether they changed,
	// which calls Reload. Zero: DefaultReloadInterval; negative: never
	// (Reload runs only when called). Used only with Reload.
	ReloadInterval time.Duration
}

// Process is the assembled bridge: its listeners, servers and brokers.
type Process struct {
	cfg     *config.Config
	o       Options
	log     *slog.Logger
	brokers *sinks.Brokers
	ingress *ingress.Handler
	http    *http.Server
	admin   *http.Server
	httpLn  net.Listener
	adminLn net.Listener
	ready   atomic.Bool
	started atomic.Bool
	errc    chan error // first server error
	wg      sync.WaitGroup

	metrics  *metrics
	tracing  *tracing           // nil when tracing is off
	commands *commandFlow       // nil when the command flow is off
	console  *consoleProc       // nil when the console is off
	stopSim  context.CancelFunc // stops serving the built-in simulator

	shutdownOnce sync.Once
	shutdownErr  error

	reloadMu    sync.Mutex
	creds       credentials                         // in service; under reloadMu
	adminTokens atomic.Pointer[[][sha256.Size]byte] // digests of the admin tokens in service
	stopWatch   chan struct{}                       // closed to stop watching the files
	watchDone   chan struct{}                       // closed when the watching stopped
}

// New returns a Process for cfg, a config.Load result, or Check's error.
// The Process runs on Effective(cfg), a copy: what `qodbridge check`
// prints. It starts nothing.
func New(cfg *config.Config, o Options) (*Process, error) {
	if cfg == nil {
		return nil, errors.New("process: nil config")
	}
	if err := Check(cfg); err != nil {
		return nil, err
	}
	cfg = Effective(cfg)
	if o.Logger == nil {
		l, err := NewLogger(cfg.Log, os.Stderr)
		if err != nil {
			return nil, err
		}
		o.Logger = l
	}
	o.Version = cmp.Or(o.Version, "0.0.0-devel")
	o.ReloadInterval = cmp.Or(o.ReloadInterval, DefaultReloadInterval)
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	return &Process{cfg: cfg, o: o, log: o.Logger, errc: make(chan error, 2)}, nil
}

// ErrStarted is returned by Start when the Process was started before.
var ErrStarted = errors.New("process: already started")

// Start opens the listeners first, so that a busy port fails before
// anything else started, then the brokers, the command flow and the
// console, and serves. ctx bounds the start only. On error everything
// opened is closed again, and the Process cannot be started again.
func (b *Process) Start(ctx context.Context) (err error) {
	if !b.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	cfg, log := b.cfg, b.log
	defer func() {
		if err != nil {
			b.closeAll()
		}
	}()
	if b.httpLn, err = Listen("http.address", cfg.HTTP.Address); err != nil {
		return err
	}
	// A random port (":0") is known only now: the default public URL, the
	// sink of the sessions the bridge creates, must name the real one.
	for _, scheme := range []string{"http://", "https://"} {
		if strings.HasSuffix(cfg.HTTP.Address, ":0") && cfg.HTTP.PublicURL == scheme+cfg.HTTP.Address {
			cfg.HTTP.PublicURL = scheme + b.httpLn.Addr().String()
		}
	}
	if cfg.Admin.Address != "off" {
		if b.adminLn, err = Listen("admin.address", cfg.Admin.Address); err != nil {
			return err
		}
	}
	if b.tracing, err = setupTracing(ctx, b.o.Getenv, b.o.Version); err != nil {
		return err
	}
	m := newMetrics()
	b.metrics = m
	hooks := sinks.Hooks{Published: m.published, Duplicate: m.duplicate, ViewUpdated: m.viewUpdated, Stale: m.stale}
	if b.tracing != nil {
		hooks.Send = b.tracing.send
	}
	if b.brokers, err = sinks.Open(ctx, cfg, log, hooks); err != nil {
		return err
	}
	if !cfg.Commands.Disabled {
		if err = b.startCommands(ctx, cfg, log); err != nil {
			return err
		}
	}
	secrets := make([][]byte, len(cfg.Auth.SessionSecrets))
	for i, s := range cfg.Auth.SessionSecrets {
		secrets[i] = []byte(s)
	}
	proxies, err := config.Prefixes(cfg.HTTP.TrustedProxies) // validated by config
	if err != nil {
		return fmt.Errorf("http.trusted_proxies: %w", err)
	}
	iopts := ingress.Options{
		Path:           cfg.HTTP.Path,
		Tokens:         cfg.Auth.Tokens,
		SessionSecrets: secrets,
		ClientCertAuth: cfg.Auth.ClientCAFile != "",
		MaxBodyBytes:   cfg.HTTP.MaxBodyBytes,
		MaxInFlight:    cfg.HTTP.MaxInFlight,
		// Every sink bounds its publishes by ingress.publish_timeout
		// (sinks.Open): a deadline of the handler's own would be a second
		// context and timer per request for the same bound.
		PublishTimeout: -1,
		RetryAfter:     cfg.Ingress.RetryAfter.D(),
		Normalize: normalize.Options{PassUnknownTypes: cfg.Ingress.PassUnknownTypes, LegacySource: cfg.Ingress.LegacySource,
			MaxBatchEvents: cfg.Ingress.MaxBatchEvents},
		AllowedOrigins: cfg.Ingress.AllowedOrigins,
		AllowedRate:    cfg.Ingress.AllowedRate,
		RateLimit:      cfg.Ingress.RateLimit,
		RateBurst:      cfg.Ingress.RateBurst,
		TrustedProxies: proxies,
		Logger:         log,
		Observe:        m.observe,
		View:           b.brokers.View(),
	}
	if b.tracing != nil {
		iopts.Trace = b.tracing.ingress
	}
	if b.commands != nil {
		// Per-session keys the engine issued hold for their session only.
		iopts.SessionOf = b.commands.engine.SessionOf
	}
	if b.ingress, err = ingress.New(b.brokers.Status(), iopts); err != nil {
		return err
	}
	b.creds = credentials{tokens: cfg.Auth.Tokens, secrets: cfg.Auth.SessionSecrets, admin: cfg.Admin.Tokens}
	b.setAdminTokens(cfg.Admin.Tokens)
	m.inFlight("qodbridge_ingress_in_flight_requests", "Notification requests being handled.", b.ingress.InFlight)
	if b.console, err = b.startConsole(cfg); err != nil {
		return err
	}

	b.http = &http.Server{
		Handler:           b.ingress,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.D(),
		ReadTimeout:       cfg.HTTP.ReadTimeout.D(),
		WriteTimeout:      cfg.HTTP.WriteTimeout.D(),
		IdleTimeout:       cfg.HTTP.IdleTimeout.D(),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln := b.httpLn
	if cfg.HTTP.TLS.CertFile != "" {
		tc, err := serverTLS(cfg, func(err error) {
			log.Error("TLS certificate not reloaded; the previous one stays in service", "err", err)
		})
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	b.goServe("ingress", b.http, ln)
	if b.adminLn != nil {
		admin, err := b.newAdmin(m)
		if err != nil {
			return err
		}
		b.admin = admin
		b.goServe("admin", b.admin, netutil.LimitListener(b.adminLn, cmp.Or(cfg.Admin.MaxConnections, DefaultAdminMaxConnections)))
	}
	b.ready.Store(true)
	if files := cfg.SourceFiles(); b.o.Reload != nil && b.o.ReloadInterval > 0 && len(files) > 0 {
		b.stopWatch, b.watchDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(b.watchDone)
			b.watchFiles(files, b.o.ReloadInterval, b.stopWatch)
		}()
	}
	log.Info("qodbridge started", "http", b.httpLn.Addr().String(), "nats", config.RedactURL(b.brokers.NATSURL()), "embedded_nats", cfg.NATSEmbedded())
	return nil
}

// Listen listens on addr (TCP), with an error naming the setting field and
// saying what to do when the address is in use.
func Listen(field, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s %s: address already in use (is another qodbridge running? choose another address)", field, addr)
		}
		return nil, fmt.Errorf("%s %s: %w", field, addr, err)
	}
	return ln, nil
}

func (b *Process) goServe(name string, srv *http.Server, ln net.Listener) {
	b.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case b.errc <- fmt.Errorf("%s server: %w", name, err):
			default:
			}
		}
	})
}

// IngressAddr is the ingress listener's address (nil before Start).
func (b *Process) IngressAddr() net.Addr {
	if b.httpLn == nil {
		return nil
	}
	return b.httpLn.Addr()
}

// NotifyURL is where notifications are POSTed: the ingress listener's
// address and the notification path.
func (b *Process) NotifyURL() string {
	scheme := "http"
	if b.cfg.HTTP.TLS.CertFile != "" {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s", scheme, b.httpLn.Addr(), b.cfg.HTTP.Path)
}

// AdminAddr is the admin listener's address, nil when it is off.
func (b *Process) AdminAddr() net.Addr {
	if b.adminLn == nil {
		return nil
	}
	return b.adminLn.Addr()
}

// NATSURL is the client URL of the NATS server in use, "" without NATS,
// credentials included: print it through config.RedactURL.
func (b *Process) NATSURL() string { return b.brokers.NATSURL() }

// EmbeddedNATS is the NATS server the process runs in-process (nil when
// NATS is external or off); its connections can go through memory.
func (b *Process) EmbeddedNATS() nats.InProcessConnProvider { return b.brokers.EmbeddedNATS() }

// Run waits until ctx is done or a server fails, then shuts down within
// the configured shutdown_timeout. It returns the server's failure or the
// shutdown's error.
func (b *Process) Run(ctx context.Context) error {
	var runErr error
	select {
	case <-ctx.Done():
		b.log.Info("shutting down", "timeout", b.cfg.ShutdownTimeout.String())
	case runErr = <-b.errc:
		b.log.Error("server failed, shutting down", "err", runErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ShutdownTimeout.D())
	defer cancel()
	if err := b.Shutdown(ctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// Shutdown stops intake, lets in-flight requests finish their publishes
// and commands their results, then flushes and closes the brokers, all
// within ctx. Requests arriving meanwhile are answered 503, so nothing the
// bridge accepted is dropped unanswered. It is idempotent: later calls
// return the first one's error.
func (b *Process) Shutdown(ctx context.Context) error {
	b.shutdownOnce.Do(func() { b.shutdownErr = b.shutdown(ctx) })
	return b.shutdownErr
}

func (b *Process) shutdown(ctx context.Context) error {
	if b.http == nil { // Start failed or never ran: closeAll released it
		return nil
	}
	if b.stopWatch != nil {
		close(b.stopWatch)
		<-b.watchDone
	}
	b.ready.Store(false)
	b.ingress.Drain()
	// Let the requests in flight finish their publishes while the listener
	// still answers newcomers 503 (with Connection: close), rather than
	// closing connections under clients that are about to send.
	tick := time.NewTicker(10 * time.Millisecond)
	for b.ingress.InFlight() > 0 && ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	tick.Stop()
	if b.commands != nil {
		b.commands.stop(ctx)
		b.stopSimulator()
	}
	b.console.stop()
	var errs []error
	if err := b.http.Shutdown(ctx); err != nil {
		b.log.Warn("shutdown timeout: closing the remaining ingress connections; their senders get no answer and will retry", "in_flight", b.ingress.InFlight())
		b.http.Close()
		errs = append(errs, fmt.Errorf("ingress shutdown: %w", err))
	}
	if err := b.brokers.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing brokers: %w", err))
	}
	if b.admin != nil {
		if err := b.admin.Shutdown(ctx); err != nil {
			b.admin.Close()
		}
	}
	b.wg.Wait()
	if err := b.tracing.shutdown(ctx); err != nil {
		b.log.Warn("tracing: spans not flushed", "err", err)
	}
	b.log.Info("stopped")
	return errors.Join(errs...)
}

// stopSimulator stops the built-in simulator (if it runs): its pending
// notifications are dropped, as a demo API's would be.
func (b *Process) stopSimulator() {
	cf := b.commands
	if cf == nil || cf.sim == nil {
		return
	}
	if cf.simDone != nil {
		b.stopSim()
		if err := <-cf.simDone; err != nil {
			b.log.Warn("simulator", "err", err)
		}
		cf.simDone = nil
	}
	_ = cf.sim.Close()
}

// closeAll releases what a failed start opened.
func (b *Process) closeAll() {
	b.console.stop()
	if b.commands != nil {
		b.commands.stop(context.Background())
		b.stopSimulator()
		if b.commands.simLn != nil {
			b.commands.simLn.Close()
		}
	}
	for _, ln := range []net.Listener{b.httpLn, b.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if b.brokers != nil {
		_ = b.brokers.Close()
	}
}

// NewLogger is the process's log/slog logger for c: JSON or text, at c's
// level, to w.
func NewLogger(c config.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	o := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, o)), nil
	}
	return slog.New(slog.NewJSONHandler(w, o)), nil
}

// WriteBanner writes what a started bridge prints: where to send
// notifications, the token, the brokers, the admin and console addresses,
// and commands to try.
func (b *Process) WriteBanner(w io.Writer) {
	cfg := b.cfg
	url := b.NotifyURL()
	// The token itself only when the bridge made it: a configured one is
	// never printed, the commands read it where it came from.
	tokLine := cfg.GeneratedToken + " (generated for this run; set QODBRIDGE_AUTH_TOKENS to choose your own)"
	tokSet, authArg := "", "-H 'Authorization: Bearer "+cfg.GeneratedToken+"'"
	switch {
	case cfg.GeneratedToken != "":
	case len(cfg.Auth.Tokens) == 0: // a client certificate authenticates
		tokLine = "none: a client certificate signed by auth.client_ca_file authenticates"
		authArg = "--cert client.pem --key client-key.pem" // the sender's own
	default:
		tokLine = "one of auth.tokens, from " + cfg.Origin("auth.tokens")
		tokSet = secretExpr(cfg, "auth.tokens", true)
		authArg = `-H "Authorization: Bearer $TOKEN"`
	}
	natsURL := config.RedactURL(b.brokers.NATSURL())
	natsShown := natsURL
	natsAuth := "" // what the nats CLI lines below need to connect
	natsNote := "(external)"
	if cfg.NATSEmbedded() {
		natsNote = "(embedded, JetStream in " + cfg.NATS.Embedded.DataDir + ")"
		if cfg.NATS.Embedded.Password != "" {
			natsShown = strings.Replace(natsURL, "://", "://"+sinks.EmbeddedClientUser+":***@", 1)
			natsNote = "(embedded, JetStream in " + cfg.NATS.Embedded.DataDir + "; user " + sinks.EmbeddedClientUser + ", password nats.embedded.password)"
			natsAuth = " --user " + sinks.EmbeddedClientUser + " --password " + secretExpr(cfg, "nats.embedded.password", false)
		}
	}
	fmt.Fprintf(w, "qodbridge is ready\n")
	fmt.Fprintf(w, "  notifications  POST %s\n", url)
	fmt.Fprintf(w, "  token          %s\n", tokLine)
	if natsURL != "" {
		fmt.Fprintf(w, "  NATS           %s %s\n", natsShown, natsNote)
	}
	if k := cfg.Kafka; len(k.Brokers) > 0 {
		fmt.Fprintf(w, "  Kafka          %s (status %s; commands %s → results %s)\n", strings.Join(k.Brokers, ","), k.Topic, k.CommandTopic, k.ResultTopic)
	}
	if b.adminLn != nil {
		fmt.Fprintf(w, "  admin          http://%s/healthz /readyz /metrics\n", b.adminLn.Addr())
	}
	if b.console != nil {
		fmt.Fprintf(w, "  console        %s\n", b.console.bannerLine(b.adminLn.Addr()))
	}
	if cf := b.commands; cf != nil {
		note := ""
		if cf.sim != nil {
			note = " (built-in simulator)"
		}
		fmt.Fprintf(w, "  QoD API        %s%s\n", config.RedactURL(cf.apiURL), note)
	}
	if natsURL != "" {
		fmt.Fprintf(w, "\nWatch status events:\n  nats sub --server %s%s '%s.status.>'\n", natsURL, natsAuth, cfg.NATS.SubjectPrefix)
		if b.brokers.NATSView() != nil {
			fmt.Fprintf(w, "\nWatch the current status of every session (the session view):\n  nats --server %s%s kv watch %s\n", natsURL, natsAuth, cfg.View.Bucket)
		}
	}
	if b.commands != nil && natsURL != "" {
		p := cfg.NATS.SubjectPrefix
		fmt.Fprintf(w, "\nCreate a QoD session (its status changes then appear on %s.status.>):\n", p)
		fmt.Fprintf(w, "  nats --server %s%s pub %s.commands.create '%s'\n", natsURL, natsAuth, p, demoCreate)
		fmt.Fprintf(w, "  nats --server %s%s sub '%s.results.>'\n", natsURL, natsAuth, p)
	}
	ev := fmt.Sprintf(`{"specversion":"1.0","id":"demo-1","source":"https://example.com/qod","type":"%s","data":{"sessionId":"demo-session","qosStatus":"AVAILABLE"}}`, bridge.EventType)
	fmt.Fprintf(w, "\nSend a notification:\n")
	if tokSet != "" {
		fmt.Fprintf(w, "  TOKEN=%s\n", tokSet)
	}
	fmt.Fprintf(w, "  curl -i -X POST %s \\\n    %s \\\n    -H 'Content-Type: application/cloudevents+json' \\\n    -d '%s'\n\n", url, authArg, ev)
}

// secretExpr is a shell expression for the configured secret key (the
// first item, for a list) that works where the bridge's environment is
// set: the file it was read from, or the variable it came from. Without
// either (the secret is in the config file) it is a placeholder naming the
// key: the banner never prints a configured secret.
func secretExpr(cfg *config.Config, key string, list bool) string {
	origin, _, _ := strings.Cut(cfg.Origin(key), " + ")
	if path := cfg.SecretFile(key); path != "" && strings.HasPrefix(origin, "file:") {
		// The first line that is not blank or a # comment.
		return `"$(grep -m1 '^[^#[:space:]]' ` + shellQuote(path) + `)"`
	}
	if v, ok := strings.CutPrefix(origin, "env:"); ok {
		if list {
			return `"${` + v + `%%,*}"`
		}
		return `"$` + v + `"`
	}
	return "'<one of " + key + ">'"
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// demoCreate is the create command the banner suggests: a simulated
// device, the bridge as the notification sink.
const demoCreate = `{"requestId":"demo-1","session":{"device":{"phoneNumber":"+36721601234567"},"applicationServer":{"ipv4Address":"233.252.0.2"},"qosProfile":"QOS_L","duration":60}}`
