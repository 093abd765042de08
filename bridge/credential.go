package bridge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// SinkToken derives the per-session bearer token for the notification path
// <public_url>/notifications/<key>: the unpadded base64url of
// HMAC-SHA256(secret, key). The command engine gives it to the QoD platform
// as the session's sink credential; the ingress recomputes it, so no
// per-session state is stored anywhere and any instance sharing the secret
// can verify it.
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
