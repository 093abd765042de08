package natscmd

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/qodbridge/qodbridge/bridge/command"
)

// KVStore is a command.Store on a JetStream key-value bucket, shared by
// every bridge instance on the same NATS system, so a create, extend or
// delete redelivered to another instance is still answered from it.
type KVStore struct {
	kv jetstream.KeyValue
}

var _ command.Store = (*KVStore)(nil)

// DefaultRequestBucket holds the outcomes of create, extend and delete
// commands, keyed by (a digest of) their requestId.
const DefaultRequestBucket = "QOD_REQUESTS"

// KVStoreOptions configure NewKVStore. Zero values take the defaults
// named.
type KVStoreOptions struct {
	// Bucket names the bucket. Default DefaultRequestBucket.
	Bucket string
	// TTL is how long an entry is kept: a command redelivered later than
	// that is treated as new (the API's 409 still keeps a create from
	// making a second session). Default 24h.
	TTL time.Duration
	// Memory keeps the bucket in memory. Default false (files).
	Memory bool
	// Replicas of the bucket in a cluster. Default 1.
	Replicas int
}

// NewKVStore opens (creating if missing) the bucket.
func NewKVStore(ctx context.Context, js jetstream.JetStream, o KVStoreOptions) (*KVStore, error) {
	bucket := cmp.Or(o.Bucket, DefaultRequestBucket)
	storage := jetstream.FileStorage
	if o.Memory {
		storage = jetstream.MemoryStorage
	}
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, TTL: cmp.Or(o.TTL, 24*time.Hour), Storage: storage,
			Replicas: max(o.Replicas, 1), Description: "qodbridge: outcomes of create, extend and delete commands by requestId"})
	}
	if err != nil {
		return nil, fmt.Errorf("natscmd: key-value bucket %s: %w", bucket, err)
	}
	return &KVStore{kv: kv}, nil
}

// key maps any store key onto a valid KV key.
func key(k string) string {
	sum := sha256.Sum256([]byte(k))
	return hex.EncodeToString(sum[:])
}

// Get implements command.Store.
func (s *KVStore) Get(ctx context.Context, k string) ([]byte, bool, error) {
	e, err := s.kv.Get(ctx, key(k))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return e.Value(), true, nil
}

// Put implements command.Store.
func (s *KVStore) Put(ctx context.Context, k string, value []byte) error {
	_, err := s.kv.Put(ctx, key(k), value)
	return err
}
