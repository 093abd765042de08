package natssink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults of EmbeddedOptions.
const (
	// DefaultSyncInterval is nats-server's own (unexported) default.
	DefaultSyncInterval    = 2 * time.Minute
	DefaultEmbeddedAddress = "127.0.0.1:4222"
	DefaultStoreDir        = "qodbridge-data"
	DefaultReadyTimeout    = 10 * time.Second
)

// EmbeddedOptions configure StartEmbedded. The zero value listens on
// 127.0.0.1:4222 and keeps JetStream data in ./qodbridge-data.
type EmbeddedOptions struct {
	// Address is the host:port of the client listener. Port 0 picks a free
	// port (read it back with Server.ClientURL). Default 127.0.0.1:4222.
	Address string
	// StoreDir holds JetStream's files; reuse it to keep streams across
	// restarts. Default "qodbridge-data" in the working directory.
	StoreDir string
	// ServerName names the server. Default "qodbridge-embedded".
	ServerName string
	// MaxMemory and MaxStore cap JetStream's memory and disk use, in bytes.
	// Default 0: the server's defaults (a share of memory and disk).
	MaxMemory int64
	MaxStore  int64
	// ReadyTimeout bounds the wait for the server to accept clients.
	// Default 10s.
	ReadyTimeout time.Duration
	// Users, when not empty, are the only identities the server accepts:
	// a client must give one's name and password. A server whose Address
	// is not loopback must have them (StartEmbedded refuses to start
	// otherwise): whoever reaches an open broker can write statuses past
	// the ingress's authentication, run commands with the operator's API
	// credentials and delete streams.
	Users []EmbeddedUser
	// SyncAlways makes JetStream write every message to disk (fsync)
	// before it acknowledges it, so an acknowledged event survives a power
	// loss; otherwise files are synced every SyncInterval and a power loss
	// can lose what was acknowledged since the last sync (a crash of the
	// process alone loses nothing: the data is in the kernel's page cache).
	SyncAlways bool
	// SyncInterval is how often JetStream syncs its files when not
	// SyncAlways. Default DefaultSyncInterval.
	SyncInterval time.Duration
	// TLSCertFile and TLSKeyFile, when set, make the client listener TLS.
	TLSCertFile, TLSKeyFile string
	// Configure, when set, adjusts the server options last (auth, TLS,
	// limits): the escape hatch for what the fields above do not cover.
	Configure func(*server.Options)
	// Logger receives the server's log (notices as Info, warnings, errors;
	// no debug or trace). nil: the server logs nothing.
	Logger *slog.Logger
}

// EmbeddedUser is one identity of the embedded server.
type EmbeddedUser struct {
	Name, Password string
	// Permissions bound what the user may publish and subscribe to. Nil:
	// everything (the bridge's own user).
	Permissions *server.Permissions
}

// ErrOpenEmbedded is returned by StartEmbedded for a server that would
// listen off loopback with no users.
var ErrOpenEmbedded = errors.New("natssink: embedded NATS server off loopback without authentication")

// ClientPermissions are what an application of the bridge needs on the
// embedded server with the subject prefix prefix, and nothing more: send
// commands (<prefix>.commands.>, the micro service <prefix>.api.>), read
// status events and results (subscriptions, and JetStream consumers and
// direct gets on the status and result streams, and on readOnly: the
// session view's key-value stream, KV_<bucket>, which nats kv get and
// watch read), get replies. It may not publish statuses or results,
// create, change or delete streams, or read the bridge's other key-value
// buckets.
func ClientPermissions(prefix, statusStream, resultStream string, readOnly ...string) *server.Permissions {
	pub := []string{prefix + ".commands.>", prefix + ".api.>", "$JS.API.INFO"}
	for _, st := range append([]string{statusStream, resultStream}, readOnly...) {
		pub = append(pub,
			"$JS.API.STREAM.INFO."+st,
			"$JS.API.STREAM.MSG.GET."+st,
			"$JS.API.DIRECT.GET."+st, "$JS.API.DIRECT.GET."+st+".>",
			"$JS.API.CONSUMER.CREATE."+st, "$JS.API.CONSUMER.CREATE."+st+".>",
			"$JS.API.CONSUMER.DURABLE.CREATE."+st+".*",
			"$JS.API.CONSUMER.INFO."+st+".*", "$JS.API.CONSUMER.DELETE."+st+".*",
			"$JS.API.CONSUMER.MSG.NEXT."+st+".*", "$JS.API.CONSUMER.LIST."+st, "$JS.API.CONSUMER.NAMES."+st,
			"$JS.ACK."+st+".>", "$JS.FC."+st+".>")
	}
	return &server.Permissions{
		// Commands go through JetStream (the command stream's ack comes
		// back on an inbox) or are requests to the micro service.
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{prefix + ".status.>", prefix + ".results.>", "_INBOX.>"}},
	}
}

// StartEmbedded starts an in-process nats-server with JetStream and waits
// until it accepts clients. The caller owns the server: stop it with
// Shutdown and, to wait until its files are closed (before reusing
// StoreDir), WaitForShutdown. Connect to it with Server.ClientURL. A busy
// port is an error wrapping the listener's error (errors.Is(err,
// syscall.EADDRINUSE)).
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	addr := o.Address
	if addr == "" {
		addr = DefaultEmbeddedAddress
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("natssink: embedded NATS server: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: embedded NATS server: address %q: bad port", ErrInvalidOptions, addr)
	}
	storeDir := o.StoreDir
	if storeDir == "" {
		storeDir = DefaultStoreDir
	}
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return nil, fmt.Errorf("natssink: embedded NATS server: store dir: %w", err)
	}
	name := o.ServerName
	if name == "" {
		name = "qodbridge-embedded"
	}
	readyTimeout := o.ReadyTimeout
	if readyTimeout <= 0 {
		readyTimeout = DefaultReadyTimeout
	}

	if port != 0 {
		// The server only logs a failed listen; probing first turns a
		// busy port into a plain error. A port taken between the probe
		// and the server's listen still fails below, less clearly.
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("natssink: embedded NATS server: listen %s: %w", addr, listenCause(err))
		}
		l.Close()
	}

	opts := &server.Options{
		ServerName:         name,
		Host:               host,
		Port:               port,
		JetStream:          true,
		StoreDir:           storeDir,
		JetStreamMaxMemory: o.MaxMemory,
		JetStreamMaxStore:  o.MaxStore,
		NoLog:              true,
		NoSigs:             true,
	}
	if port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.SyncAlways, opts.SyncInterval = o.SyncAlways, o.SyncInterval
	if len(o.Users) == 0 && !loopbackHost(host) {
		return nil, fmt.Errorf("%w: %s is reachable from other machines: give it users", ErrOpenEmbedded, addr)
	}
	for _, u := range o.Users {
		if u.Name == "" || u.Password == "" {
			return nil, fmt.Errorf("%w: embedded NATS server: a user needs a name and a password", ErrInvalidOptions)
		}
		opts.Users = append(opts.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: u.Permissions})
	}
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLSCertFile, KeyFile: o.TLSKeyFile})
		if err != nil {
			return nil, fmt.Errorf("natssink: embedded NATS server: TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS = tc, true
	}
	if o.Configure != nil {
		o.Configure(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natssink: embedded NATS server: %w", err)
	}
	lg := &serverLogger{log: o.Logger}
	// The logger is installed even with no slog.Logger: it is how a
	// failed start (which the server only logs as fatal) is seen here.
	s.SetLoggerV2(lg, false, false, false)

	s.Start() // returns once listening, or after logging a fatal error
	if msg := lg.fatal(); msg != "" {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("natssink: embedded NATS server: %s", msg)
	}
	if !s.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("natssink: embedded NATS server: not ready for connections within %s", readyTimeout)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("natssink: embedded NATS server: JetStream did not start")
	}
	return s, nil
}

// listenCause strips "listen tcp <addr>: bind:" off a listen error, keeping
// the cause (and errors.Is to it).
func listenCause(err error) error {
	var sys *os.SyscallError
	if errors.As(err, &sys) {
		return sys.Err
	}
	return err
}

// serverLogger routes nats-server logging to slog and remembers the first
// fatal error (which the server does not return).
type serverLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalMsg string
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg
}

func (l *serverLogger) emit(level slog.Level, format string, v []any) {
	if l.log == nil || !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats-server")
}

// Noticef logs at debug: the server's start-up banner is some 25 notices,
// which would bury the bridge's own start line; warnings and errors stay.
func (l *serverLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.emit(slog.LevelDebug-4, format, v) }

// Fatalf records the message instead of exiting the process.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatalMsg == "" {
		l.fatalMsg = msg
	}
	l.mu.Unlock()
	l.emit(slog.LevelError, "%s", []any{msg})
}

// loopbackHost reports whether host (of a listen address) is a loopback
// address or "localhost".
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
