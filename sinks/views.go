package sinks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
	"github.com/qodbridge/qodbridge/sinks/kafkaview"
	"github.com/qodbridge/qodbridge/sinks/natsview"
)

var (
	_ bridge.ViewUpdater = (*natsview.View)(nil)
	_ bridge.ViewUpdater = (*kafkaview.View)(nil)
	_ bridge.ViewUpdater = (*Views)(nil)
)

// Views is the session view on every configured broker, as one
// bridge.ViewUpdater: UpdateView updates each at once and returns when all
// answered, with an error naming each that failed. Nil-safe: a nil *Views
// (the view is off) is no ViewUpdater to hand out; see Brokers.View.
type Views struct {
	views   []namedView
	observe func(view string, took time.Duration, err error)
}

type namedView struct {
	name string
	bridge.ViewUpdater
}

// UpdateView implements bridge.ViewUpdater.
func (v *Views) UpdateView(ctx context.Context, received time.Time, events ...bridge.Event) error {
	if len(v.views) == 1 {
		return v.updateOne(ctx, v.views[0], received, events)
	}
	errs := make([]error, len(v.views))
	var wg sync.WaitGroup
	for i := 1; i < len(v.views); i++ {
		wg.Go(func() { errs[i] = v.updateOne(ctx, v.views[i], received, events) })
	}
	errs[0] = v.updateOne(ctx, v.views[0], received, events)
	wg.Wait()
	return errors.Join(errs...)
}

func (v *Views) updateOne(ctx context.Context, nv namedView, received time.Time, events []bridge.Event) error {
	start := time.Now()
	err := nv.UpdateView(ctx, received, events...)
	if v.observe != nil {
		v.observe(nv.name, time.Since(start), err)
	}
	if err != nil {
		return fmt.Errorf("%s view: %w", nv.name, err)
	}
	return nil
}
