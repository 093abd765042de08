package natssink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/qodbridge/qodbridge/sinks/internal/tlsfiles"
)

// Defaults of ConnOptions.
const (
	DefaultConnName       = "qodbridge"
	DefaultConnectTimeout = 5 * time.Second
	DefaultReconnectWait  = time.Second
	DefaultWriteTimeout   = 5 * time.Second
	DefaultPingInterval   = 20 * time.Second
)

// ConnOptions say how to reach NATS. The zero value connects to
// nats://127.0.0.1:4222 with no authentication.
type ConnOptions struct {
	// URL lists the servers, comma-separated (nats://, tls://, ws://,
	// wss://). Default nats.DefaultURL (nats://127.0.0.1:4222).
	URL string
	// Name is the connection name the server shows. Default "qodbridge".
	Name string

	// Authentication: at most one of Token, User+Password, CredsFile,
	// NKeySeedFile (user info in URL works too).
	Token        string
	User         string
	Password     string
	CredsFile    string // a .creds file (user JWT and NKey seed)
	NKeySeedFile string // a file holding an NKey user seed

	// TLS to the servers; TLS.Enabled() or a tls:// URL turns it on.
	TLS TLSOptions

	// ConnectTimeout bounds dialing one server. Default 5s.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between reconnect rounds (with jitter).
	// Default 1s.
	ReconnectWait time.Duration
	// WriteTimeout bounds one write to the socket; a write stalled longer
	// (a server that stopped reading) breaks the connection, which then
	// reconnects, so no publish waits on it for long. Default 5s.
	WriteTimeout time.Duration
	// PingInterval is how often the client pings the server; two missed
	// answers break the connection. It bounds how long a silently dead
	// server goes unnoticed. Default 20s.
	PingInterval time.Duration
	// Logger receives disconnects, reconnects and async errors. nil
	// discards.
	Logger *slog.Logger
	// InProcess, when set (an embedded *server.Server), connects through
	// memory instead of the loopback network: no socket system calls per
	// publish and ack. URL is then unused.
	InProcess nats.InProcessConnProvider
}

// TLSOptions configure TLS to the servers.
type TLSOptions struct {
	// CAFile verifies the servers' certificates; empty uses the system
	// roots.
	CAFile string
	// CertFile and KeyFile are a client certificate (mutual TLS); both or
	// neither.
	CertFile string
	KeyFile  string
	// InsecureSkipVerify accepts any server certificate. For tests only.
	// Default false.
	InsecureSkipVerify bool
}

// Enabled reports whether any TLS setting asks for TLS.
func (t TLSOptions) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

func (t TLSOptions) config() (*tls.Config, error) {
	cfg, err := tlsfiles.Client(t.CAFile, t.CertFile, t.KeyFile, t.InsecureSkipVerify)
	if errors.Is(err, tlsfiles.ErrInvalid) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if err != nil {
		return nil, fmt.Errorf("natssink: %w", err)
	}
	return cfg, nil
}

// Dial connects to NATS and returns a connection that reconnects forever
// (ReconnectWait apart) and keeps no reconnect buffer, so publishes made
// while it is down fail at once instead of piling up; stalled writes and
// unanswered pings break it (WriteTimeout, PingInterval) so that a dead
// server is noticed. ctx bounds the first connect only. The caller owns the
// connection and closes it.
func Dial(ctx context.Context, co ConnOptions) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natssink: connect: %w", err)
	}
	opts, d, err := co.natsOptions()
	if err != nil {
		return nil, err
	}
	urls := co.URL
	if urls == "" {
		urls = nats.DefaultURL
	}
	d.ctx.Store(&ctx)
	nc, err := nats.Connect(urls, opts...)
	d.ctx.Store(nil) // reconnects must not depend on the caller's ctx
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		if errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("natssink: connect %s: %w", redactURLs(urls), err)
	}
	return nc, nil
}

func (co ConnOptions) natsOptions() ([]nats.Option, *ctxDialer, error) {
	log := co.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	name := co.Name
	if name == "" {
		name = DefaultConnName
	}
	timeout := co.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	wait := co.ReconnectWait
	if wait <= 0 {
		wait = DefaultReconnectWait
	}
	writeTimeout := co.WriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	ping := co.PingInterval
	if ping <= 0 {
		ping = DefaultPingInterval
	}
	d := &ctxDialer{d: net.Dialer{Timeout: timeout}}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.SetCustomDialer(d),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.ReconnectBufSize(-1),
		nats.FlusherTimeout(writeTimeout),
		nats.PingInterval(ping),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil { // our own Close: a clean shutdown is not worth a warning
				log.Debug("natssink: connection to NATS closed")
				return
			}
			log.Warn("natssink: disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("natssink: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("natssink: NATS async error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("natssink: NATS async error", "err", err)
		}),
	}
	if co.InProcess != nil {
		opts = append(opts, nats.InProcessServer(co.InProcess))
	}
	auth := 0
	if co.Token != "" {
		auth++
		opts = append(opts, nats.Token(co.Token))
	}
	if co.User != "" || co.Password != "" {
		auth++
		opts = append(opts, nats.UserInfo(co.User, co.Password))
	}
	if co.CredsFile != "" {
		auth++
		if _, err := os.Stat(co.CredsFile); err != nil {
			return nil, nil, fmt.Errorf("natssink: CredsFile: %w", err)
		}
		opts = append(opts, nats.UserCredentials(co.CredsFile))
	}
	if co.NKeySeedFile != "" {
		auth++
		o, err := nats.NkeyOptionFromSeed(co.NKeySeedFile)
		if err != nil {
			return nil, nil, fmt.Errorf("natssink: NKeySeedFile: %w", err)
		}
		opts = append(opts, o)
	}
	if auth > 1 {
		return nil, nil, fmt.Errorf("%w: give one of Token, User/Password, CredsFile, NKeySeedFile", ErrInvalidOptions)
	}
	if co.TLS.Enabled() {
		cfg, err := co.TLS.config()
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, d, nil
}

// ctxDialer dials with the first connect's ctx, so Dial honours
// cancellation, and with no ctx on reconnects.
type ctxDialer struct {
	d   net.Dialer
	ctx atomic.Pointer[context.Context]
}

func (d *ctxDialer) Dial(network, address string) (net.Conn, error) {
	ctx := context.Background()
	if p := d.ctx.Load(); p != nil {
		ctx = *p
	}
	return d.d.DialContext(ctx, network, address)
}

// redactURLs hides passwords and tokens of a server list for error texts.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = url.User("xxxxx")
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
