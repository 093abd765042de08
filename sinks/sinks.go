// Package sinks opens the brokers a configuration names and publishes to all
// of them as one bridge.Publisher.
//
// Delivery semantics: Set.Publish returns nil only when every configured
// broker acknowledged every event; if any failed, it returns an error and
// the caller answers the sender 503, whose retry each broker deduplicates
// as it can (JetStream by Nats-Msg-Id). Publishes to the brokers run
// concurrently, so the latency is the slowest broker's, not the sum.
//
// An event too large for one broker's message size is refused by the Set
// before it is published to any broker (SizeChecker), with an error
// wrapping bridge.ErrTooLarge (413): no broker holds an event the sender is
// told not to resend.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks/kafkasink"
	"github.com/qodbridge/qodbridge/sinks/natssink"
)

// Sink is one broker as the Set uses it.
type Sink interface {
	bridge.Publisher
	// Ready reports whether the broker is reachable and set up; nil means
	// ready. It must return by ctx's deadline.
	Ready(ctx context.Context) error
	// Close flushes what was acknowledged and releases the broker's
	// resources. It is idempotent.
	Close() error
}

// SizeChecker is a Sink that can tell, before anything is published,
// whether events fit its broker's message size.
//
// CheckSize returns nil when every event fits, else an error wrapping
// bridge.ErrTooLarge naming the first that does not. It sends nothing, does
// not wait on the network, and is safe for concurrent use. Its Publish must
// refuse the same events the same way. A Set of several sinks asks every
// SizeChecker before it publishes to any; a Sink that is not one is
// asked only by publishing.
type SizeChecker interface {
	CheckSize(events ...bridge.Event) error
}

var (
	_ Sink        = (*natssink.Sink)(nil)
	_ Sink        = (*kafkasink.Sink)(nil)
	_ SizeChecker = (*natssink.Sink)(nil)
	_ SizeChecker = (*kafkasink.Sink)(nil)
)

// named pairs a sink with the name errors and readiness report it by.
type named struct {
	name string
	Sink
}

// Set is every configured broker. It is a bridge.Publisher.
type Set struct {
	sinks    []named
	embedded *server.Server // nil unless the Set runs the NATS server
	natsURL  string
	nc       *nats.Conn
	ns       *natssink.Sink

	closeOnce sync.Once
	closeErr  error

	observe func(sink string, took time.Duration, err error)
}

// Hooks are optional callbacks of a Set, for metrics. None may block.
type Hooks struct {
	// Published is called after each broker answered one Publish call.
	Published func(sink string, took time.Duration, err error)
	// Duplicate is called for each event a broker recognised as already
	// stored.
	Duplicate func(sink string)
}

var _ bridge.Publisher = (*Set)(nil)

// Open starts what cfg asks for: the embedded NATS server when cfg has no
// NATS URL, a connection to NATS and its status sink, and the Kafka status
// sink when cfg names brokers. On error everything already opened is closed
// again.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, hooks Hooks) (_ *Set, err error) {
	s := &Set{observe: hooks.Published}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if !cfg.NATSOff() {
		url := cfg.NATS.URL
		if cfg.NATSEmbedded() {
			s.embedded, err = natssink.StartEmbedded(natssink.EmbeddedOptions{
				Address:  cfg.NATS.Embedded.Address,
				StoreDir: cfg.NATS.Embedded.DataDir,
				Logger:   log,
			})
			if err != nil {
				return nil, fmt.Errorf("nats.embedded: %w", err)
			}
			url = s.embedded.ClientURL()
		}
		s.natsURL = url
		co := natssink.ConnOptions{
			URL:          url,
			Name:         cfg.NATS.Name,
			Token:        cfg.NATS.Token,
			User:         cfg.NATS.User,
			Password:     cfg.NATS.Password,
			CredsFile:    cfg.NATS.CredsFile,
			NKeySeedFile: cfg.NATS.NKeyFile,
			TLS: natssink.TLSOptions{
				CAFile:   cfg.NATS.TLS.CAFile,
				CertFile: cfg.NATS.TLS.CertFile,
				KeyFile:  cfg.NATS.TLS.KeyFile,
			},
			Logger: log,
		}
		if s.embedded != nil {
			// Through memory: the loopback socket's system calls were
			// 6 % of the CPU time per event at half the peak rate.
			co.InProcess = s.embedded
		}
		if s.nc, err = natssink.Dial(ctx, co); err != nil {
			return nil, fmt.Errorf("nats.url %s: %w", url, err)
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
				DiscardNew:      cfg.NATS.Stream.Discard == "new",
			},
			Logger: log,
		}
		if hooks.Duplicate != nil {
			nopts.OnDuplicate = func() { hooks.Duplicate("nats") }
		}
		ns, err := natssink.New(ctx, s.nc, nopts)
		if err != nil {
			return nil, fmt.Errorf("nats stream %s: %w", cfg.NATS.Stream.Name, err)
		}
		s.ns = ns
		s.sinks = append(s.sinks, named{"nats", ns})
	}
	if len(cfg.Kafka.Brokers) > 0 {
		ks, err := kafkasink.Open(ctx, KafkaConn(cfg), kafkasink.Options{
			Topic:             cfg.Kafka.Topic,
			Structured:        cfg.Kafka.Structured,
			Compression:       cfg.Kafka.Compression,
			BatchTimeout:      cfg.Kafka.BatchTimeout.D(),
			BatchSize:         cfg.Kafka.BatchSize,
			PublishTimeout:    cfg.Ingress.PublishTimeout.D(),
			CreateTopics:      cfg.Kafka.CreateTopics,
			Partitions:        cfg.Kafka.Partitions,
			ReplicationFactor: cfg.Kafka.ReplicationFactor,
			Compact:           cfg.Kafka.Compact,
			Logger:            log,
		})
		if err != nil {
			return nil, fmt.Errorf("kafka topic %s: %w", cfg.Kafka.Topic, err)
		}
		s.sinks = append(s.sinks, named{"kafka", ks})
	}
	if len(s.sinks) == 0 {
		return nil, errors.New("sinks: no broker configured")
	}
	return s, nil
}

// KafkaConn maps the Kafka connection settings of cfg.
func KafkaConn(cfg *config.Config) kafkasink.ConnOptions {
	k := cfg.Kafka
	return kafkasink.ConnOptions{
		Brokers:     k.Brokers,
		ClientID:    k.ClientID,
		TLS:         kafkasink.TLSOptions{Enabled: k.TLS.Enabled, CAFile: k.TLS.CAFile, CertFile: k.TLS.CertFile, KeyFile: k.TLS.KeyFile},
		SASL:        kafkasink.SASLOptions{Mechanism: k.SASL.Mechanism, Username: k.SASL.Username, Password: k.SASL.Password},
		DialTimeout: k.DialTimeout.D(),
	}
}

// NewSet makes a Set of sinks opened elsewhere (tests, other wiring); Close
// closes them.
func NewSet(sinks map[string]Sink) *Set {
	s := &Set{}
	for name, sk := range sinks {
		s.sinks = append(s.sinks, named{name, sk})
	}
	return s
}

// NATSURL is the client URL of the NATS server in use ("" without NATS).
func (s *Set) NATSURL() string { return s.natsURL }

// EmbeddedNATS is the NATS server the Set runs in-process, nil when NATS
// is external or off. Its connections can go through memory
// (natssink.ConnOptions.InProcess), as the Set's own does.
func (s *Set) EmbeddedNATS() nats.InProcessConnProvider {
	if s.embedded == nil {
		return nil
	}
	return s.embedded
}

// NATSConn is the Set's NATS connection (nil without NATS); the Set owns it.
func (s *Set) NATSConn() *nats.Conn { return s.nc }

// JetStream is the JetStream context of the NATS connection (nil without
// NATS).
func (s *Set) JetStream() jetstream.JetStream {
	if s.ns == nil {
		return nil
	}
	return s.ns.JetStream()
}

// Publish sends events to every broker at once and returns nil when all
// acknowledged them, else an error naming each broker that failed. With
// several brokers it first asks each that is a SizeChecker, and when one
// refuses an event as too large it publishes to none and returns that
// refusal (wrapping bridge.ErrTooLarge). Should a broker refuse an event as
// too large only when publishing (its limit was lowered since) while
// another stored it, the refusal is returned without wrapping
// bridge.ErrTooLarge, as a broker failure: the event is stored in part, and
// only a resend can still complete it, which a 413 would tell the sender
// not to try.
func (s *Set) Publish(ctx context.Context, events ...bridge.Event) error {
	if len(s.sinks) == 1 {
		return s.publishTo(ctx, s.sinks[0], events)
	}
	for _, sk := range s.sinks {
		if c, ok := sk.Sink.(SizeChecker); ok {
			if err := c.CheckSize(events...); err != nil {
				return fmt.Errorf("%s: %w", sk.name, err)
			}
		}
	}
	errs := make([]error, len(s.sinks))
	var wg sync.WaitGroup
	for i := 1; i < len(s.sinks); i++ {
		wg.Go(func() { errs[i] = s.publishTo(ctx, s.sinks[i], events) })
	}
	errs[0] = s.publishTo(ctx, s.sinks[0], events)
	wg.Wait()
	if slices.Contains(errs, nil) {
		for i, err := range errs {
			if errors.Is(err, bridge.ErrTooLarge) {
				errs[i] = fmt.Errorf("%v (refused although it fit when checked, and other brokers stored it)", err)
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Set) publishTo(ctx context.Context, sk named, events []bridge.Event) error {
	start := time.Now()
	err := sk.Publish(ctx, events...)
	if s.observe != nil {
		s.observe(sk.name, time.Since(start), err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", sk.name, err)
	}
	return nil
}

// Ready returns nil when every broker is ready, else why not.
func (s *Set) Ready(ctx context.Context) error {
	var errs []error
	for _, sk := range s.sinks {
		if err := sk.Ready(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sk.name, err))
		}
	}
	return errors.Join(errs...)
}

// Close flushes and closes every sink, then the NATS connection, then the
// embedded server, in that order, so nothing acknowledged is cut off. It is
// idempotent.
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, sk := range s.sinks {
			if err := sk.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", sk.name, err))
			}
		}
		if s.nc != nil {
			// The sinks waited for their acks; nothing of ours is pending.
			s.nc.Close()
		}
		if s.embedded != nil {
			s.embedded.Shutdown()
			s.embedded.WaitForShutdown()
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
