package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                        "nats://127.0.0.1:4222",
		"nats://user:pass@nats:4222":                   "nats://***@nats:4222",
		"nats://s3cr3t-token@nats:4222":                "nats://***@nats:4222",
		"nats://a:b@n1:4222, nats://n2:4222":           "nats://***@n1:4222,nats://n2:4222",
		"https://client:secret@qod.example/qod/v1?x=1": "https://***@qod.example/qod/v1?x=1",
		"not a url with pass@word":                     "***@word",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMaskedHidesEverySecret: what `qodbridge check` prints holds no
// credential: tokens, passwords, and the user info of every URL.
func TestMaskedHidesEverySecret(t *testing.T) {
	env := map[string]string{
		"QODBRIDGE_AUTH_TOKENS":            "sender-token-0123456789",
		"QODBRIDGE_ADMIN_TOKENS":           "admin-token-0123456789",
		"QODBRIDGE_NATS_URL":               "nats://natsuser:nats-secret-0123@nats:4222",
		"QODBRIDGE_QOD_API_URL":            "https://apiuser:api-secret-0123@qod.example/qod/v1",
		"QODBRIDGE_QOD_API_TOKEN":          "qod-token-0123456789",
		"QODBRIDGE_NATS_EMBEDDED_PASSWORD": "embedded-pass-0123456789",
	}
	c, err := Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("%+v", c.Masked())
	for _, secret := range []string{"sender-token", "admin-token", "nats-secret", "natsuser", "api-secret", "apiuser", "qod-token", "embedded-pass"} {
		if strings.Contains(out, secret) {
			t.Errorf("Masked shows %q", secret)
		}
	}
}
