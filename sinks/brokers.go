package sinks

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/bridge/command"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks/kafkacmd"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/kafkaview"
	"github.com/qodbridge/qodbridge/sinks/natscmd"
	"github.com/qodbridge/qodbridge/sinks/natsconsole"
	"github.com/qodbridge/qodbridge/sinks/natssink"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

// Brokers is every broker a configuration names and everything the bridge
// runs on them. It is the one place that maps config.Config onto each
// broker's options: Open connects (starting the embedded NATS server when
// the configuration has no NATS URL) and builds the status sinks; Store,
// Intakes and Console build what the command flow and the console run on
// the same connections. Nothing outside takes a connection out of it.
type Brokers struct {
	cfg *config.Config
	log *slog.Logger

	status   *Set
	embedded *server.Server // nil unless NATS is embedded
	natsURL  string
	nc       *nats.Conn // nil without NATS
	js       jetstream.JetStream
	kafka    kafkasink.ConnOptions // Brokers empty without Kafka
	natsView *natsview.View        // nil without NATS or with the view off
	kafView  *kafkaview.View       // nil without Kafka or with the view off
	views    *Views                // nil with the view off

	closeOnce sync.Once
	closeErr  error
}

// EmbeddedClientUser is the user applications give the embedded NATS
// server when it has nats.embedded.password.
const EmbeddedClientUser = "qod"

// Hooks are optional callbacks for metrics. None may block.
type Hooks struct {
	// Published is called after each broker answered one Publish call.
	Published func(sink string, took time.Duration, err error)
	// Duplicate is called for each event a broker recognised as already
	// stored.
	Duplicate func(sink string)
	// ViewUpdated is called after each broker's view answered one
	// UpdateView call ("nats" or "kafka").
	ViewUpdated func(view string, took time.Duration, err error)
	// Stale is called for each event that did not advance a broker's
	// view, with the rule's reason.
	Stale func(view string, reason bridge.StaleReason)
	// Send, when set, wraps each broker's publish of one call's events
	// (tracing's send span): m says the broker, the subject or topic and
	// the message id (bridge.Messaging); end gets the publish's error.
	Send func(ctx context.Context, m bridge.Messaging, events []bridge.Event) (_ context.Context, end func(error))
}

// Open connects to what cfg names: the embedded NATS server when cfg has
// no NATS URL, a connection to NATS and its status sink, and the Kafka
// status sink when cfg names brokers. Everything runs on Effective(cfg).
// On error everything already opened is closed again.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, hooks Hooks) (_ *Brokers, err error) {
	cfg = Effective(cfg)
	b := &Brokers{cfg: cfg, log: log, status: &Set{observe: hooks.Published, send: hooks.Send}}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	if !cfg.NATSOff() {
		if err := b.openNATS(ctx, hooks); err != nil {
			return nil, err
		}
	}
	if len(cfg.Kafka.Brokers) > 0 {
		if err := b.openKafka(ctx); err != nil {
			return nil, err
		}
	}
	if len(b.status.sinks) == 0 {
		return nil, errors.New("sinks: no broker configured")
	}
	if !cfg.View.Disabled {
		if err := b.openViews(ctx, hooks); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// openViews opens the session view on every broker (natsview, kafkaview).
func (b *Brokers) openViews(ctx context.Context, hooks Hooks) error {
	cfg := b.cfg
	b.views = &Views{observe: hooks.ViewUpdated}
	stale := func(view string) func(bridge.StaleReason) {
		if hooks.Stale == nil {
			return nil
		}
		return func(r bridge.StaleReason) { hooks.Stale(view, r) }
	}
	retention := cfg.View.Retention.D()
	if cfg.View.KeepEnded {
		retention = -1
	}
	if b.js != nil {
		v, err := natsview.Open(ctx, b.js, natsview.Options{
			Bucket:    cfg.View.Bucket,
			Retention: retention,
			Memory:    cfg.NATS.Stream.Memory,
			Replicas:  cfg.NATS.Stream.Replicas,
			Timeout:   cfg.Ingress.PublishTimeout.D(),
			OnStale:   stale("nats"),
			Logger:    b.log,
		})
		if err != nil {
			return fmt.Errorf("view.bucket %s: %w", cfg.View.Bucket, err)
		}
		b.natsView = v
		b.views.views = append(b.views.views, namedView{"nats", v})
	}
	if len(b.kafka.Brokers) > 0 {
		k := cfg.Kafka
		v, err := kafkaview.Open(ctx, b.kafka, kafkaview.Options{
			Topic:             cfg.View.Topic,
			Retention:         retention,
			CreateTopics:      k.CreateTopics,
			Partitions:        k.Partitions,
			ReplicationFactor: k.ReplicationFactor,
			Timeout:           cfg.Ingress.PublishTimeout.D(),
			OnStale:           stale("kafka"),
			Logger:            b.log,
		})
		if err != nil {
			return fmt.Errorf("view.topic %s: %w", cfg.View.Topic, err)
		}
		b.kafView = v
		b.views.views = append(b.views.views, namedView{"kafka", v})
	}
	return nil
}

// viewStreams are the streams of the session view applications may read:
// the bucket's, KV_<bucket>.
func viewStreams(cfg *config.Config) []string {
	if cfg.View.Disabled {
		return nil
	}
	return []string{"KV_" + cfg.View.Bucket}
}

// View is the session view on every configured broker, nil when it is off
// (view.disabled). The Brokers own it: Close closes it.
func (b *Brokers) View() bridge.ViewUpdater {
	if b.views == nil {
		return nil
	}
	return b.views
}

// RebuildResult is what RebuildView did on one broker.
type RebuildResult struct {
	// View is "nats" or "kafka"; History the stream or topic replayed.
	View, History string
	// Read and Undecodable count the history's messages.
	Read, Undecodable int
}

// ErrViewOff is returned by RebuildView when the view is off.
var ErrViewOff = errors.New("sinks: the session view is off (view.disabled)")

// RebuildView replays each broker's history (the status stream, the
// status topic) into its session view. It is safe while bridges run: the
// rule only lets entries advance. On error the results so far are
// returned with it.
func (b *Brokers) RebuildView(ctx context.Context) ([]RebuildResult, error) {
	if b.views == nil {
		return nil, ErrViewOff
	}
	var out []RebuildResult
	if b.natsView != nil {
		st, err := b.natsView.Rebuild(ctx, b.cfg.NATS.Stream.Name, b.cfg.NATS.SubjectPrefix)
		out = append(out, RebuildResult{View: "nats", History: b.cfg.NATS.Stream.Name, Read: st.Read, Undecodable: st.Undecodable})
		if err != nil {
			return out, fmt.Errorf("rebuild %s from %s: %w", b.cfg.View.Bucket, b.cfg.NATS.Stream.Name, err)
		}
	}
	if b.kafView != nil {
		st, err := b.kafView.Rebuild(ctx, b.cfg.Kafka.Topic)
		out = append(out, RebuildResult{View: "kafka", History: b.cfg.Kafka.Topic, Read: st.Read, Undecodable: st.Undecodable})
		if err != nil {
			return out, fmt.Errorf("rebuild %s from %s: %w", b.cfg.View.Topic, b.cfg.Kafka.Topic, err)
		}
	}
	return out, nil
}

// NATSView is the session view's key-value bucket on NATS, nil without
// NATS or with the view off: what the console and the micro service read.
func (b *Brokers) NATSView() *natsview.View { return b.natsView }

// KafkaView is the session view on Kafka, nil without Kafka or with the
// view off.
func (b *Brokers) KafkaView() *kafkaview.View { return b.kafView }

func (b *Brokers) openNATS(ctx context.Context, hooks Hooks) (err error) {
	cfg := b.cfg
	url := cfg.NATS.URL
	user, password := cfg.NATS.User, cfg.NATS.Password
	if cfg.NATSEmbedded() {
		always, interval, err := cfg.NATS.Embedded.SyncPolicy() // validated by config
		if err != nil {
			return fmt.Errorf("nats.embedded.sync: %w", err)
		}
		eo := natssink.EmbeddedOptions{
			SyncAlways:   always,
			SyncInterval: interval,
			Address:      cfg.NATS.Embedded.Address,
			StoreDir:     cfg.NATS.Embedded.DataDir,
			TLSCertFile:  cfg.NATS.Embedded.TLS.CertFile,
			TLSKeyFile:   cfg.NATS.Embedded.TLS.KeyFile,
			Logger:       b.log,
		}
		if e := cfg.NATS.Embedded; e.Password != "" {
			// Applications connect as EmbeddedClientUser and may do what
			// an application of the bridge needs; the bridge itself as a
			// user of its own, with a password made for this run.
			user, password = "qodbridge", rand.Text()
			eo.Users = []natssink.EmbeddedUser{
				{Name: user, Password: password},
				{Name: EmbeddedClientUser, Password: e.Password,
					Permissions: natssink.ClientPermissions(cfg.NATS.SubjectPrefix, cfg.NATS.Stream.Name, natscmd.DefaultResultStream, viewStreams(cfg)...)},
			}
		}
		b.embedded, err = natssink.StartEmbedded(eo)
		if err != nil {
			return fmt.Errorf("nats.embedded: %w", err)
		}
		url = b.embedded.ClientURL()
	}
	b.natsURL = url
	co := natssink.ConnOptions{
		URL:          url,
		Name:         cfg.NATS.Name,
		Token:        cfg.NATS.Token,
		User:         user,
		Password:     password,
		CredsFile:    cfg.NATS.CredsFile,
		NKeySeedFile: cfg.NATS.NKeyFile,
		TLS: natssink.TLSOptions{
			CAFile:   cfg.NATS.TLS.CAFile,
			CertFile: cfg.NATS.TLS.CertFile,
			KeyFile:  cfg.NATS.TLS.KeyFile,
		},
		Logger: b.log,
	}
	if b.embedded != nil {
		// Through memory: the loopback socket's system calls were 6 % of
		// the CPU time per event at half the peak rate.
		co.InProcess = b.embedded
	}
	if b.nc, err = natssink.Dial(ctx, co); err != nil {
		return fmt.Errorf("nats.url %s: %w", config.RedactURL(url), err)
	}
	nopts := natssink.Options{
		Prefix:         cfg.NATS.SubjectPrefix,
		Structured:     cfg.NATS.Structured,
		PublishTimeout: cfg.Ingress.PublishTimeout.D(),
		Stream: natssink.StreamOptions{
			Name:            cfg.NATS.Stream.Name,
			Replicas:        cfg.NATS.Stream.Replicas,
			MaxAge:          cfg.NATS.Stream.MaxAge.D(),
			MaxBytes:        cfg.NATS.Stream.MaxBytes,
			DuplicateWindow: cfg.NATS.Stream.DuplicateWindow.D(),
			Memory:          cfg.NATS.Stream.Memory,
			DiscardNew:      cfg.NATS.Stream.Discard == discardNew,
		},
		Logger: b.log,
	}
	if hooks.Duplicate != nil {
		nopts.OnDuplicate = func() { hooks.Duplicate("nats") }
	}
	ns, err := natssink.New(ctx, b.nc, nopts)
	if err != nil {
		return fmt.Errorf("nats stream %s: %w", cfg.NATS.Stream.Name, err)
	}
	b.js = ns.JetStream()
	prefix := cfg.NATS.SubjectPrefix
	b.status.add("nats", ns, func(evs []bridge.Event) bridge.Messaging {
		// Events of several sessions go to several subjects: the stream's
		// wildcard names them.
		m := bridge.Messaging{System: "nats", Destination: natssink.Subject(prefix, "") + ">",
			Template: natssink.Subject(prefix, "") + "{sessionToken}", Count: len(evs)}
		if len(evs) > 0 && sameSession(evs) {
			m.Destination = natssink.Subject(prefix, evs[0].SessionID)
		}
		if len(evs) == 1 {
			m.MessageID = evs[0].DedupKey() // Nats-Msg-Id
		}
		return m
	})
	return nil
}

func (b *Brokers) openKafka(ctx context.Context) error {
	k := b.cfg.Kafka
	b.kafka = kafkasink.ConnOptions{
		Brokers:     k.Brokers,
		ClientID:    k.ClientID,
		TLS:         kafkasink.TLSOptions{Enabled: k.TLS.Enabled, CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile, KeyFile: k.TLS.KeyFile},
		SASL:        kafkasink.SASLOptions{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: k.SASL.Password},
		DialTimeout: k.DialTimeout.D(),
	}
	ks, err := kafkasink.Open(ctx, b.kafka, kafkasink.Options{
		Topic:             k.Topic,
		Structured:        k.Structured,
		Compression:       k.Compression,
		BatchTimeout:      k.BatchTimeout.D(),
		BatchSize:         k.BatchSize,
		PublishTimeout:    b.cfg.Ingress.PublishTimeout.D(),
		CreateTopics:      k.CreateTopics,
		Partitions:        k.Partitions,
		ReplicationFactor: k.ReplicationFactor,
		Compact:           k.Compact,
		Logger:            b.log,
	})
	if err != nil {
		return fmt.Errorf("kafka topic %s: %w", k.Topic, err)
	}
	b.status.add("kafka", ks, func(evs []bridge.Event) bridge.Messaging {
		m := bridge.Messaging{System: "kafka", Destination: k.Topic, Count: len(evs)}
		if len(evs) > 0 && sameSession(evs) {
			m.Key = evs[0].SessionID
		}
		if len(evs) == 1 {
			m.MessageID = evs[0].ID // ce_id
		}
		return m
	})
	return nil
}

// Status is the status flow's publisher: every configured broker at once.
// The Brokers own it: Close closes it.
func (b *Brokers) Status() *Set { return b.status }

// NATSURL is the client URL of the NATS server in use ("" without NATS),
// credentials included: print it through config.RedactURL.
func (b *Brokers) NATSURL() string { return b.natsURL }

// EmbeddedNATS is the NATS server the Brokers run in-process, nil when NATS
// is external or off. Its connections can go through memory
// (natssink.ConnOptions.InProcess), as the Brokers' own does.
func (b *Brokers) EmbeddedNATS() nats.InProcessConnProvider {
	if b.embedded == nil {
		return nil
	}
	return b.embedded
}

// Store is where the command engine remembers outcomes: a JetStream
// key-value bucket shared by every instance on the same NATS system, or nil
// without NATS (the engine then keeps them in memory).
func (b *Brokers) Store(ctx context.Context) (command.Store, error) {
	if b.js == nil {
		return nil, nil
	}
	s, err := natscmd.NewKVStore(ctx, b.js, natscmd.KVStoreOptions{Memory: b.cfg.NATS.Stream.Memory, Replicas: b.cfg.NATS.Stream.Replicas})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Intake is one broker's command intake as the process runs it.
type Intake interface {
	// Broker names the broker: "nats" or "kafka".
	Broker() string
	// Run consumes commands until intake is done, lets the commands in
	// flight finish on work (cancelled only when the shutdown deadline
	// passed), and returns.
	Run(intake, work context.Context) error
	// Serving is closed once the intake answers requests (the NATS micro
	// service is registered), or when Run returned early.
	Serving() <-chan struct{}
	// InFlight reports the commands being run.
	InFlight() int
	// Close releases what the intake owns; call it after Run returned.
	// It is idempotent.
	Close() error
}

// IntakeHooks are the process's parts of every command intake.
type IntakeHooks struct {
	// Version is the NATS micro service's version.
	Version string
	// Trace wraps each command's execution; nil: tracing off.
	Trace command.TraceFunc
	// OnOutcome is called once per command handled; it must not block.
	OnOutcome func(action command.Action, outcome string)
}

// Intakes builds a command intake on every configured broker (NATS stream
// and micro service, Kafka consumer group), running commands with exec.
// None runs until its Run is called. On error the ones built are closed.
func (b *Brokers) Intakes(ctx context.Context, exec *command.Engine, h IntakeHooks) (_ []Intake, err error) {
	var ins []Intake
	defer func() {
		if err != nil {
			for _, in := range ins {
				_ = in.Close()
			}
		}
	}()
	cfg := b.cfg
	if b.nc != nil {
		var status natscmd.StatusReader // nil, not a nil *natsview.View, when the view is off
		if b.natsView != nil {
			status = b.natsView
		}
		in, err := natscmd.New(ctx, b.nc, exec, natscmd.Options{
			Status:         status,
			Prefix:         cfg.NATS.SubjectPrefix,
			Lanes:          cfg.Commands.Lanes,
			AckWait:        cfg.Commands.AckWait.D(),
			MaxDeliver:     cfg.Commands.MaxDeliver,
			ResultMaxAge:   cfg.Commands.ResultMaxAge.D(),
			Memory:         cfg.NATS.Stream.Memory,
			Replicas:       cfg.NATS.Stream.Replicas,
			PublishTimeout: cfg.Ingress.PublishTimeout.D(),
			Micro:          cfg.Commands.MicroOn(),
			Version:        h.Version,
			Logger:         b.log,
			OnOutcome:      h.OnOutcome,
			Trace:          h.Trace,
		})
		if err != nil {
			return nil, err
		}
		ins = append(ins, natsIntake{in})
	}
	if len(b.kafka.Brokers) > 0 {
		k := cfg.Kafka
		in, err := kafkacmd.New(ctx, b.kafka, exec, kafkacmd.Options{
			Topic:             k.CommandTopic,
			ResultTopic:       k.ResultTopic,
			DLQTopic:          k.DLQTopic,
			GroupID:           k.GroupID,
			Lanes:             cfg.Commands.Lanes,
			CreateTopics:      k.CreateTopics,
			Partitions:        k.Partitions,
			ReplicationFactor: k.ReplicationFactor,
			PublishTimeout:    cfg.Ingress.PublishTimeout.D(),
			Logger:            b.log,
			OnOutcome:         h.OnOutcome,
			Trace:             h.Trace,
		})
		if err != nil {
			return nil, fmt.Errorf("kafka commands: %w", err)
		}
		ins = append(ins, kafkaIntake{in})
	}
	return ins, nil
}

type natsIntake struct{ *natscmd.Intake }

func (natsIntake) Broker() string             { return "nats" }
func (i natsIntake) Serving() <-chan struct{} { return i.Ready() }

// Close: the NATS intake borrows the Brokers' connection; nothing to release.
func (natsIntake) Close() error { return nil }

type kafkaIntake struct{ *kafkacmd.Intake }

func (kafkaIntake) Broker() string { return "kafka" }

// Serving: the group intake serves as soon as it runs.
func (kafkaIntake) Serving() <-chan struct{} { return closed }

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

var (
	_ Intake = natsIntake{}
	_ Intake = kafkaIntake{}
)

// Console is the live console's feed and command submitter, reading the
// session view (or, with the view off, the status stream) and the result
// stream on NATS; nil without NATS.
func (b *Brokers) Console(log *slog.Logger) *natsconsole.Feed {
	if b.js == nil {
		return nil
	}
	var bucket string // the session view's, when it is on
	if b.natsView != nil {
		bucket = b.cfg.View.Bucket
	}
	return natsconsole.New(b.js, natsconsole.Options{
		Prefix:       b.cfg.NATS.SubjectPrefix,
		StatusStream: b.cfg.NATS.Stream.Name,
		ViewBucket:   bucket,
		Logger:       log,
	})
}

// Ready returns nil when every broker is ready, else why not.
func (b *Brokers) Ready(ctx context.Context) error { return b.status.Ready(ctx) }

// Close flushes and closes the status sinks, then the NATS connection, then
// the embedded server, in that order, so nothing acknowledged is cut off.
// Close the intakes first. It is idempotent.
func (b *Brokers) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = b.status.Close()
		if b.kafView != nil {
			b.closeErr = errors.Join(b.closeErr, b.kafView.Close())
		}
		if b.nc != nil {
			// The sinks waited for their acks; nothing of ours is pending.
			b.nc.Close()
		}
		if b.embedded != nil {
			b.embedded.Shutdown()
			b.embedded.WaitForShutdown()
		}
	})
	return b.closeErr
}

// sameSession reports whether every event is of the first one's session.
func sameSession(evs []bridge.Event) bool {
	for i := range evs {
		if evs[i].SessionID != evs[0].SessionID {
			return false
		}
	}
	return true
}
