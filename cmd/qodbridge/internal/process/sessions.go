package process

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/qodbridge/qodbridge/config"
	"github.com/qodbridge/qodbridge/sinks"
)

// RebuildSessions is `qodbridge sessions rebuild`: it connects to the
// brokers cfg names (starting the embedded NATS server on its data
// directory when cfg has no NATS URL, so a bridge using that directory
// must be stopped, or the command pointed at its server with
// QODBRIDGE_NATS_URL), replays each broker's status history into its
// session view, and writes what it read to w. Running bridges need not
// stop: the view's rule lets entries only advance, so a rebuild and live
// updates converge to the same view.
func RebuildSessions(ctx context.Context, cfg *config.Config, log *slog.Logger, w io.Writer) error {
	if err := Check(cfg); err != nil {
		return err
	}
	cfg = Effective(cfg)
	if cfg.View.Disabled {
		return fmt.Errorf("sessions rebuild: %w", sinks.ErrViewOff)
	}
	b, err := sinks.Open(ctx, cfg, log, sinks.Hooks{})
	if err != nil {
		return fmt.Errorf("sessions rebuild: %w", err)
	}
	defer func() { _ = b.Close() }()
	res, err := b.RebuildView(ctx)
	for _, r := range res {
		fmt.Fprintf(w, "%s: replayed %d messages of %s into the session view (%d undecodable, skipped)\n", r.View, r.Read, r.History, r.Undecodable)
	}
	if err != nil {
		return fmt.Errorf("sessions rebuild: %w", err)
	}
	return nil
}
