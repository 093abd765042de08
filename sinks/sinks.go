// Package sinks is where the bridge meets its brokers. Brokers (Open) is
// the one place that maps the configuration onto each broker's options and
// builds everything that runs on a broker: the status sinks, published to
// as one Set; the command intakes; the command store; the console's feed.
// Nothing outside takes a connection out of it; Effective shows the broker
// settings as Brokers runs them, the packages' defaults filled in. The
// broker packages below (natssink, kafkasink, natscmd, kafkacmd,
// natsconsole) each do one job on one broker and know nothing of the
// configuration.
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
//
// It imports bridge and config, never cmd.
package sinks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
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

// named pairs a sink with the name errors and readiness report it by, and
// with what a trace span says of its messages (nil: the name only).
type named struct {
	name     string
	describe func(events []bridge.Event) bridge.Messaging
	Sink
}

// Set publishes to every configured broker as one bridge.Publisher.
type Set struct {
	sinks []named

	closeOnce sync.Once
	closeErr  error

	observe func(sink string, took time.Duration, err error)
	send    func(ctx context.Context, m bridge.Messaging, events []bridge.Event) (context.Context, func(error))
}

var _ bridge.Publisher = (*Set)(nil)

// NewSet makes a Set of sinks opened elsewhere (tests, other wiring); Close
// closes them.
func NewSet(sinks map[string]Sink) *Set {
	s := &Set{}
	for name, sk := range sinks {
		s.sinks = append(s.sinks, named{name: name, Sink: sk})
	}
	return s
}

// add appends a sink the Set publishes to, reported as name, its messages
// described to tracing by describe.
func (s *Set) add(name string, sk Sink, describe func([]bridge.Event) bridge.Messaging) {
	s.sinks = append(s.sinks, named{name: name, describe: describe, Sink: sk})
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
				// Not wrapped: this is a broker failure (503), not an
				// input too large (413), or the resend that completes
				// the event would be told not to come.
				errs[i] = errors.New(err.Error() + " (refused although it fit when checked, and other brokers stored it)")
			}
		}
	}
	return errors.Join(errs...)
}

// publishTo publishes to one broker, inside the Send hook's span when
// there is one.
func (s *Set) publishTo(ctx context.Context, sk named, events []bridge.Event) error {
	if s.send == nil {
		return s.publishOne(ctx, sk, events)
	}
	m := bridge.Messaging{System: sk.name, Count: len(events)}
	if sk.describe != nil {
		m = sk.describe(events)
	}
	ctx, end := s.send(ctx, m, events)
	err := s.publishOne(ctx, sk, events)
	end(err)
	return err
}

func (s *Set) publishOne(ctx context.Context, sk named, events []bridge.Event) error {
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

// Close flushes and closes every sink. It is idempotent.
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, sk := range s.sinks {
			if err := sk.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", sk.name, err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
