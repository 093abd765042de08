package process

import (
	"context"
	"log/slog"
	"time"

	"github.com/qodbridge/qodbridge/bridge"
)

// viewedPublisher publishes, and after the brokers acknowledged, folds
// the events into the session view, as the ingress does: the command
// engine's REQUESTED events go through it. A view failure is logged, not
// returned (the events are stored; the next event or a rebuild repairs
// the view).
type viewedPublisher struct {
	pub  bridge.Publisher
	view bridge.ViewUpdater
	log  *slog.Logger
}

func withView(pub bridge.Publisher, view bridge.ViewUpdater, log *slog.Logger) bridge.Publisher {
	if view == nil {
		return pub
	}
	return viewedPublisher{pub: pub, view: view, log: log}
}

func (p viewedPublisher) Publish(ctx context.Context, events ...bridge.Event) error {
	received := time.Now()
	if err := p.pub.Publish(ctx, events...); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	if err := p.view.UpdateView(context.WithoutCancel(ctx), received, events...); err != nil {
		p.log.Warn("view update failed; the events are stored, the view is repaired by the session's next event or a rebuild",
			"event_id", bridge.Quote(events[0].ID), "session_id", bridge.Quote(events[0].SessionID), "err", err)
	}
	return nil
}
