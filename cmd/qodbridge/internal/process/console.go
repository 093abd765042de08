package process

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/qodbridge/qodbridge/bridge/console"
	"github.com/qodbridge/qodbridge/config"
)

// consoleProc is the live console on the admin listener and the goroutine
// that feeds it from the brokers. The bridgeProc owns it: stop it before
// the sinks close (its consumers use their NATS connection) and before the
// admin server shuts down (its event streams would hold that up).
type consoleProc struct {
	c      *console.Console
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	note   string        // for the banner
}

// startConsole builds the console from the running bridge's brokers. It
// returns nil when there is none to run: no admin listener, or admin.ui
// false.
func (b *Process) startConsole(cfg *config.Config) (*consoleProc, error) {
	if b.adminLn == nil || !cfg.Admin.UIOn() {
		return nil, nil
	}
	log := b.log.With("component", "console")
	proxies, err := config.Prefixes(cfg.Admin.TrustedProxies) // validated by config
	if err != nil {
		return nil, fmt.Errorf("admin.trusted_proxies: %w", err)
	}
	o := console.Options{
		Open: config.IsLoopback(cfg.Admin.Address),
		// The console's own credentials: a notification sender may only
		// notify, not create or delete sessions here.
		Tokens:         cfg.Admin.Tokens,
		TrustedProxies: proxies,
		Listener:       "admin.address " + cfg.Admin.Address,
		Logger:         log,
	}
	p := &consoleProc{done: make(chan struct{})}
	if feed := b.brokers.Console(log); feed != nil {
		o.Feed = feed
		if cfg.Commands.Disabled {
			o.Notice = "The command flow is off on this bridge (commands.disabled): the form cannot send commands."
		} else {
			o.Submitter = feed
		}
	} else {
		o.Notice = "The console reads sessions and results from NATS JetStream, and this bridge runs with Kafka only " +
			"(nats.url: off), so it has nothing to show and cannot send commands. Run the bridge with NATS to use it."
		p.note = " (needs NATS: this bridge runs with Kafka only)"
	}
	switch {
	case !o.Open && len(o.Tokens) == 0:
		p.note = " off: admin.address is not loopback and there are no admin.tokens to protect it"
	case !o.Open:
		p.note += " (sign in with one of admin.tokens)"
	}
	c, err := console.New(o)
	if err != nil {
		return nil, fmt.Errorf("admin.ui: %w", err)
	}
	p.c = c
	b.metrics.inFlight("qodbridge_console_streams", "Live console pages open (event streams).", c.Clients)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		if err := c.Run(ctx); err != nil && !errors.Is(err, console.ErrClosed) {
			log.Error("console stopped", "err", err)
		}
	}()
	return p, nil
}

// mount serves the console on the admin mux.
func (p *consoleProc) mount(mux *http.ServeMux) {
	if p == nil {
		return
	}
	mux.Handle(console.Prefix, p.c)
	mux.Handle(console.Prefix+"/", p.c)
}

// stop ends the console: no more feeding, every event stream closed. It is
// idempotent and a no-op on nil.
func (p *consoleProc) stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
	_ = p.c.Close()
}

// bannerLine is what the start banner prints for the console.
func (p *consoleProc) bannerLine(admin net.Addr) string {
	if p.c.Off() {
		return "off" + p.note[len(" off"):]
	}
	return fmt.Sprintf("http://%s%s%s", admin, console.Prefix, p.note)
}
