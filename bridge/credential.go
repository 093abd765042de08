package bridge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Per-session notification credentials. The command engine gives each
// session it creates the sink <public_url>/notifications/<key> and the
// bearer token SinkToken(secret, key); the ingress recomputes the token, so
// no per-session state is needed to verify one, and any instance that
// shares the secret can. The key carries its expiry (NewSinkKey): the
// token, a MAC over the key, covers it, so an expiry cannot be changed
// without the token failing. Rotation: the engine signs with the newest
// secret and the ingress accepts every configured one, so sessions issued
// under the previous secret keep working until they expire.

// sinkKeyVersion starts every key NewSinkKey makes; a key without it is
// not one of ours (keys of qodbridge before expiring keys had none).
const sinkKeyVersion = "k1"

// sinkKeyLen is the length of a key: the version and the unpadded
// base64url of 8 bytes of expiry and 12 random bytes.
var sinkKeyLen = len(sinkKeyVersion) + base64.RawURLEncoding.EncodedLen(8+12)

// NewSinkKey returns a new random per-session key that expires at expires
// (kept to the second).
func NewSinkKey(expires time.Time) string {
	var b [8 + 12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(expires.Unix()))
	_, _ = rand.Read(b[8:]) // crypto/rand does not fail
	return sinkKeyVersion + base64.RawURLEncoding.EncodeToString(b[:])
}

// ErrSinkKey is wrapped by SinkKeyExpiry's error for a key NewSinkKey did
// not make.
var ErrSinkKey = errors.New("bridge: not a per-session key")

// SinkKeyExpiry returns when key expires. It does not authenticate the
// key: check the token (SinkToken) first.
func SinkKeyExpiry(key string) (time.Time, error) {
	if len(key) != sinkKeyLen || key[:len(sinkKeyVersion)] != sinkKeyVersion {
		return time.Time{}, fmt.Errorf("%w: want %d characters starting %q", ErrSinkKey, sinkKeyLen, sinkKeyVersion)
	}
	b, err := base64.RawURLEncoding.DecodeString(key[len(sinkKeyVersion):])
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrSinkKey, err)
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[:8])), 0), nil
}

// SinkToken derives the per-session bearer token for key: the unpadded
// base64url of HMAC-SHA256(secret, key).
func SinkToken(secret []byte, key string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(key))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ValidSinkKey reports whether key may name a per-session notification path:
// 1 to 128 bytes of [A-Za-z0-9_-].
func ValidSinkKey(key string) bool {
	if key == "" || len(key) > 128 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if !tokenSafe(key[i]) {
			return false
		}
	}
	return true
}
