package config

import "testing"

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
