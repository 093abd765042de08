// Package natsview keeps the session view (bridge/view.go) in a JetStream
// key-value bucket, QOD_SESSIONS by default: one key per session holding
// its current status under the bridge's rule, beside the full history in
// the status stream.
//
// Key: bridge.SessionToken(sessionId) with '%' written as '=' (Key): a
// KV key admits [-/_=.A-Za-z0-9], and SessionToken's output never has '=',
// so the mapping stays reversible; ordinary ids (UUIDs) are their own key.
// Value: the JSON of bridge.ViewEntry (sessionId, qosStatus, statusInfo,
// time, id, source, final, receivedAt).
//
// Concurrency: every write is a compare-and-set on the key's revision
// (kv.Create for a new or deleted key; an update expecting the revision
// read, otherwise), retried on a wrong-last-sequence answer with a fresh
// read, at most MaxAttempts times. The revision read is this instance's
// own last one when it has it (a bounded cache, Options.CacheSize): since
// the view only advances, an event that does not advance the cached entry
// does not advance the bucket's, and one that does is written expecting
// the cached revision, so a cache that is behind costs a conflict and a
// read, never a lost update. So any number of bridge instances may
// update the same session at once and none loses an update: the bucket
// ends at the maximum of what they wrote, whatever the interleaving.
//
// Retention: an ended session's entry (final under the rule) is written
// with a per-key TTL of Options.Retention (default 24h; the bucket then
// has LimitMarkerTTL, which needs nats-server 2.11 or later), so it
// disappears that long after the session ended, with a delete marker that
// watchers see. An event of that session arriving after its entry expired
// creates a new entry: keep Retention longer than any platform retries.
// Entries of sessions that never end are kept until deleted (nats kv del).
//
// Reading: nats kv get QOD_SESSIONS <key>, nats kv watch QOD_SESSIONS, or
// jetstream.KeyValue.Get / WatchAll in Go (see Get, GetMany). The view is
// updated after the history publish was acknowledged, so it may trail the
// stream by one write; a bridge that stopped between the two leaves the
// entry behind until the session's next event or Rebuild.
//
// Imports: bridge of ours.
package natsview

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge"
)

// Defaults of Options.
const (
	DefaultBucket    = "QOD_SESSIONS"
	DefaultRetention = 24 * time.Hour
	DefaultTimeout   = 5 * time.Second
	// MaxAttempts bounds the compare-and-set retries of one entry.
	MaxAttempts = 32
	// DefaultCacheSize is Options.CacheSize's default: about 30 MB at
	// most.
	DefaultCacheSize = 100_000
)

// ErrContended is wrapped when an entry's compare-and-set failed
// MaxAttempts times in a row: other writers kept changing it.
var ErrContended = errors.New("natsview: entry kept changing under the update")

// ErrBucketMismatch is returned by Open when the bucket exists with
// settings the options contradict (it is never altered).
var ErrBucketMismatch = errors.New("natsview: bucket exists with other settings")

// Options configure Open. Zero values take the defaults named.
type Options struct {
	// Bucket names the key-value bucket. Default QOD_SESSIONS.
	Bucket string
	// Retention is how long an ended session's entry is kept after it
	// ended. Default 24h; negative keeps entries until deleted (and the
	// bucket needs no TTL support).
	Retention time.Duration
	// Memory keeps the bucket in memory. Default false (files).
	Memory bool
	// Replicas of the bucket in a cluster. Default 1.
	Replicas int
	// Timeout bounds one UpdateView call. Default 5s.
	Timeout time.Duration
	// CacheSize bounds the entries (and their revisions) this instance
	// remembers, so that an event of a session it has seen is decided
	// without reading the bucket first. Default DefaultCacheSize; negative
	// turns the cache off.
	CacheSize int
	// OnStale is called for each event that did not advance its entry,
	// with the rule's reason. It must not block. Nil: not counted.
	OnStale func(bridge.StaleReason)
	// Logger gets the CAS retries at Debug. Nil discards.
	Logger *slog.Logger
}

// View is the session view on a JetStream key-value bucket. It borrows its
// JetStream context.
type View struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	pre string // subject prefix of the bucket's keys: $KV.<bucket>.
	o   Options
	log *slog.Logger

	mu    sync.Mutex
	cache map[string]cached // by key; at most o.CacheSize
}

// cached is an entry as this instance last read or wrote it. The view
// only advances, so an event that does not advance it does not advance
// the bucket's either; one that does is written expecting rev, and a
// conflict reads the bucket again.
type cached struct {
	e   bridge.ViewEntry
	rev uint64
}

var _ bridge.ViewUpdater = (*View)(nil)

// Open opens the bucket, creating it when missing. An existing bucket is
// used as it is, unless Retention asks for per-key TTLs it cannot hold
// (ErrBucketMismatch).
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*View, error) {
	o.Bucket = cmp.Or(o.Bucket, DefaultBucket)
	o.Retention = cmp.Or(o.Retention, DefaultRetention)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := js.KeyValue(ctx, o.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		cfg := jetstream.KeyValueConfig{Bucket: o.Bucket, Storage: jetstream.FileStorage, Replicas: max(o.Replicas, 1),
			Description: "qodbridge: current status of every QoD session (the session view)"}
		if o.Memory {
			cfg.Storage = jetstream.MemoryStorage
		}
		if o.Retention > 0 {
			cfg.LimitMarkerTTL = o.Retention
		}
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) { // another instance was first
			kv, err = js.KeyValue(ctx, o.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsview: key-value bucket %s: %w", o.Bucket, err)
	}
	if o.Retention > 0 {
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("natsview: key-value bucket %s: status: %w", o.Bucket, err)
		}
		if js, ok := st.(*jetstream.KeyValueBucketStatus); ok && !js.StreamInfo().Config.AllowMsgTTL {
			return nil, fmt.Errorf("%w: %s has no per-key TTL, which retention %s needs (delete the bucket to have it recreated, or set a negative retention)",
				ErrBucketMismatch, o.Bucket, o.Retention)
		}
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	return &View{js: js, kv: kv, pre: "$KV." + o.Bucket + ".", o: o, log: o.Logger, cache: make(map[string]cached)}, nil
}

// Bucket is the key-value bucket the view lives in.
func (v *View) Bucket() jetstream.KeyValue { return v.kv }

// Key is the bucket key of a session: bridge.SessionToken with '%' written
// as '='.
func Key(sessionID string) string {
	return strings.ReplaceAll(bridge.SessionToken(sessionID), "%", "=")
}

// SessionOf reverses Key.
func SessionOf(key string) (string, error) {
	return bridge.ParseToken(strings.ReplaceAll(key, "=", "%"))
}

// UpdateView implements bridge.ViewUpdater: each event's entry is replaced
// when the event advances it, by compare-and-set. Events are applied one
// after another; the error joins each one that failed.
func (v *View) UpdateView(ctx context.Context, received time.Time, events ...bridge.Event) error {
	ctx, cancel := context.WithTimeout(ctx, v.o.Timeout)
	defer cancel()
	var errs []error
	for i := range events {
		if err := v.update(ctx, bridge.EntryOf(&events[i], received)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// update is one compare-and-set loop: read, apply the rule, write expecting
// the revision read.
func (v *View) update(ctx context.Context, next bridge.ViewEntry) error {
	key := Key(next.SessionID)
	cur, rev, ok := v.cached(key)
	for range MaxAttempts {
		if !ok {
			var err error
			if cur, rev, err = v.get(ctx, key); err != nil {
				return err
			}
			v.remember(key, cur, rev)
		}
		if ok, reason := bridge.Advances(cur, next); !ok {
			if v.o.OnStale != nil {
				v.o.OnStale(reason)
			}
			return nil
		}
		newRev, err := v.write(ctx, key, next, rev)
		if err == nil {
			v.remember(key, next, newRev)
			return nil
		}
		if !conflict(err) {
			v.forget(key)
			return fmt.Errorf("natsview: write %s: %w", key, err)
		}
		v.log.Debug("natsview: entry changed under the update; reading it again", "key", key)
		ok = false
	}
	v.forget(key)
	return fmt.Errorf("natsview: write %s: %w", key, ErrContended)
}

// write puts next at key expecting revision rev (0: the key has no entry),
// with the retention as its TTL when it is final, and returns the new
// revision.
func (v *View) write(ctx context.Context, key string, next bridge.ViewEntry, rev uint64) (uint64, error) {
	data, err := json.Marshal(next)
	if err != nil {
		return 0, fmt.Errorf("natsview: encode %s: %w", key, err)
	}
	var ttl time.Duration
	if next.IsFinal() && v.o.Retention > 0 {
		ttl = v.o.Retention
	}
	if rev == 0 {
		var opts []jetstream.KVCreateOpt
		if ttl > 0 {
			opts = append(opts, jetstream.KeyTTL(ttl))
		}
		return v.kv.Create(ctx, key, data, opts...)
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(ttl))
	}
	// kv.Update, plus the TTL it has no option for: the same message on
	// the key's subject.
	ack, err := v.js.PublishMsg(ctx, &nats.Msg{Subject: v.pre + key, Data: data}, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// cached returns what this instance knows of key, ok false when nothing
// (or an ended entry the bucket has expired since).
func (v *View) cached(key string) (bridge.ViewEntry, uint64, bool) {
	if v.o.CacheSize < 0 {
		return bridge.ViewEntry{}, 0, false
	}
	v.mu.Lock()
	c, ok := v.cache[key]
	v.mu.Unlock()
	if !ok || c.rev == 0 {
		return bridge.ViewEntry{}, 0, false
	}
	if c.e.IsFinal() && v.o.Retention > 0 && time.Since(c.e.ReceivedAt) > v.o.Retention/2 {
		return bridge.ViewEntry{}, 0, false // it may have expired: ask the bucket
	}
	return c.e, c.rev, true
}

// remember caches key's entry at rev, evicting an arbitrary entry when
// the cache is full.
func (v *View) remember(key string, e bridge.ViewEntry, rev uint64) {
	if v.o.CacheSize < 0 || rev == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.cache[key]; !ok && len(v.cache) >= v.o.CacheSize {
		for k := range v.cache {
			delete(v.cache, k)
			break
		}
	}
	v.cache[key] = cached{e, rev}
}

func (v *View) forget(key string) {
	v.mu.Lock()
	delete(v.cache, key)
	v.mu.Unlock()
}

// get reads the entry of key and its revision: revision 0 and an empty
// entry when it has none (never written, deleted or expired).
func (v *View) get(ctx context.Context, key string) (bridge.ViewEntry, uint64, error) {
	e, err := v.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bridge.ViewEntry{}, 0, nil
	}
	if err != nil {
		return bridge.ViewEntry{}, 0, fmt.Errorf("natsview: read %s: %w", key, err)
	}
	var cur bridge.ViewEntry
	if err := json.Unmarshal(e.Value(), &cur); err != nil || cur.SessionID == "" {
		// Not ours (written by hand?): the next event replaces it.
		v.log.Warn("natsview: undecodable entry is replaced", "key", key, "err", err)
		return bridge.ViewEntry{}, e.Revision(), nil
	}
	return cur, e.Revision(), nil
}

// conflict reports a compare-and-set that lost: the key changed (or was
// created) since it was read.
func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Get returns the entry of sessionID, ok false when it has none.
func (v *View) Get(ctx context.Context, sessionID string) (bridge.ViewEntry, bool, error) {
	cur, rev, err := v.get(ctx, Key(sessionID))
	return cur, err == nil && rev != 0 && cur.SessionID != "", err
}

// Entries returns the entry of every session in the view (a snapshot:
// the watch's initial values), in key order, at most limit (0: all).
func (v *View) Entries(ctx context.Context, limit int) ([]bridge.ViewEntry, error) {
	w, err := v.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("natsview: watch %s: %w", v.o.Bucket, err)
	}
	defer func() { _ = w.Stop() }()
	var out []bridge.ViewEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil { // initial values done
				return out, nil
			}
			var ve bridge.ViewEntry
			if json.Unmarshal(e.Value(), &ve) == nil && ve.SessionID != "" {
				out = append(out, ve)
				if limit > 0 && len(out) >= limit {
					return out, nil
				}
			}
		case <-ctx.Done():
			return out, fmt.Errorf("natsview: watch %s: %w", v.o.Bucket, ctx.Err())
		}
	}
}
