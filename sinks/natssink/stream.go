package natssink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

func streamConfig(o Options) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        o.Stream.Name,
		Description: "qodbridge: QoD session status events, one subject per session",
		Subjects:    []string{o.Prefix + ".status.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Stream.Replicas,
		MaxAge:      o.Stream.MaxAge,
		MaxBytes:    -1,
		MaxMsgs:     -1,
		Discard:     jetstream.DiscardOld,
		Duplicates:  o.Stream.DuplicateWindow,
		// Direct gets let readers fetch one session's last status
		// (GetLastMsgForSubject) from any replica without a consumer.
		AllowDirect: true,
		// Fast-ingest batches (nats-server 2.14+): the Sink's group
		// commit. A server that does not know the setting leaves it out,
		// and the Sink publishes pipelined.
		AllowBatchPublish: true,
	}
	if o.Stream.Memory {
		cfg.Storage = jetstream.MemoryStorage
	}
	if o.Stream.MaxBytes > 0 {
		cfg.MaxBytes = o.Stream.MaxBytes
	}
	if o.Stream.DiscardNew {
		cfg.Discard = jetstream.DiscardNew
	}
	return cfg
}

// ensureStream makes sure the stream exists as configured, creating it when
// missing.
func (s *Sink) ensureStream(ctx context.Context) error {
	select {
	case s.ensureMu <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("natssink: stream %s: %w", s.cfg.Name, ctx.Err())
	}
	defer func() { <-s.ensureMu }()
	return s.ensureStreamLocked(ctx)
}

// ensureStreamLocked is ensureStream for a caller holding ensureMu. A
// failure sets needEnsure, so the next publish looks again.
func (s *Sink) ensureStreamLocked(ctx context.Context) error {
	err := s.lookUpOrCreate(ctx)
	s.needEnsure.Store(err != nil)
	return err
}

func (s *Sink) lookUpOrCreate(ctx context.Context) error {
	name := s.cfg.Name
	st, err := s.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		var created jetstream.Stream
		created, err = s.js.CreateStream(ctx, s.cfg)
		if err != nil && batchFieldUnknown(err) {
			// A server before 2.14 that checks requests strictly (2.11 and
			// later do, by default) refuses the field: create the stream
			// without it, and publish pipelined.
			cfg := s.cfg
			cfg.AllowBatchPublish = false
			created, err = s.js.CreateStream(ctx, cfg)
		}
		switch {
		case err == nil:
			s.maxMsgSize.Store(int64(s.cfg.MaxMsgSize))
			s.batched.Store(created.CachedInfo().Config.AllowBatchPublish)
			s.log.Info("natssink: created stream", "stream", name, "subjects", s.cfg.Subjects, "storage", s.cfg.Storage.String())
			return nil
		case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			// Another instance created it in between: check theirs.
			st, err = s.js.Stream(ctx, name)
		default:
			return s.streamErr("create", err)
		}
	}
	if err != nil {
		return s.streamErr("look up", err)
	}
	return s.checkStream(st.CachedInfo().Config)
}

func (s *Sink) streamErr(step string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("natssink: %s stream %s: %w%s: %w", step, s.cfg.Name, ErrUnavailable, s.connState(), err)
	}
	return fmt.Errorf("natssink: %s stream %s: %w", step, s.cfg.Name, err)
}

// checkStream compares an existing stream with what the sink would create:
// differences that break the contract are an error, others a warning.
func (s *Sink) checkStream(got jetstream.StreamConfig) error {
	want := s.cfg
	var diffs []string
	gs, ws := slices.Sorted(slices.Values(got.Subjects)), want.Subjects
	if !slices.Equal(gs, ws) {
		diffs = append(diffs, fmt.Sprintf("subjects %q, want %q", got.Subjects, ws))
	}
	if got.Storage != want.Storage {
		diffs = append(diffs, fmt.Sprintf("storage %s, want %s", got.Storage, want.Storage))
	}
	if got.Retention != want.Retention {
		diffs = append(diffs, fmt.Sprintf("retention %s, want %s", got.Retention, want.Retention))
	}
	if got.NoAck {
		diffs = append(diffs, "no_ack set, want acknowledged publishes")
	}
	if got.Sealed {
		diffs = append(diffs, "sealed, want writable")
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: stream %s: %s (the bridge never alters an existing stream: fix or delete it, or configure another name)",
			ErrStreamMismatch, want.Name, strings.Join(diffs, "; "))
	}
	// An operator's stream may bound its messages: Publish checks events
	// against it before sending (-1 and 0 mean no bound).
	s.maxMsgSize.Store(int64(got.MaxMsgSize))
	// Group commit needs the stream to take fast-ingest batches; the
	// Sink does not switch that on in a stream it did not create.
	if was := s.batched.Swap(got.AllowBatchPublish); was != got.AllowBatchPublish || !got.AllowBatchPublish {
		s.log.Debug("natssink: publish mode", "stream", want.Name, "group_commit", got.AllowBatchPublish)
	}
	var warns []any
	if got.Replicas != want.Replicas {
		warns = append(warns, "replicas", got.Replicas, "want_replicas", want.Replicas)
	}
	if got.MaxAge != want.MaxAge {
		warns = append(warns, "max_age", got.MaxAge, "want_max_age", want.MaxAge)
	}
	if got.MaxBytes != want.MaxBytes {
		warns = append(warns, "max_bytes", got.MaxBytes, "want_max_bytes", want.MaxBytes)
	}
	if got.Duplicates != want.Duplicates {
		warns = append(warns, "duplicate_window", got.Duplicates, "want_duplicate_window", want.Duplicates)
	}
	if len(warns) > 0 {
		s.log.Warn("natssink: existing stream differs from the configured one; left as it is", append([]any{"stream", want.Name}, warns...)...)
	}
	return nil
}

// batchFieldUnknown reports whether a stream create was refused for its
// allow_batched field, which the server does not know.
func batchFieldUnknown(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrInvalidJSON && strings.Contains(apiErr.Description, "allow_batched")
}

// jsErrInvalidJSON is the server's JSInvalidJSONErr: a request it cannot
// decode, unknown fields included.
const jsErrInvalidJSON = 10025
