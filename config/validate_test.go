package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestValidateNamesFields(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		field string
	}{
		{"non-loopback without auth", map[string]string{"QODBRIDGE_HTTP_ADDRESS": "0.0.0.0:8080"}, "auth.tokens"},
		{"short token", map[string]string{"QODBRIDGE_AUTH_TOKENS": "short"}, "auth.tokens[0]"},
		{"bad address", map[string]string{"QODBRIDGE_HTTP_ADDRESS": "nope"}, "http.address"},
		{"bad nats url", map[string]string{"QODBRIDGE_NATS_URL": "http://x:1"}, "nats.url"},
		{"bad prefix", map[string]string{"QODBRIDGE_SUBJECT_PREFIX": "qod.>"}, "nats.subject_prefix"},
		{"bad public url", map[string]string{"QODBRIDGE_PUBLIC_URL": "ftp://x"}, "http.public_url"},
		{"bad log level", map[string]string{"QODBRIDGE_LOG_LEVEL": "loud"}, "log.level"},
		{"bad admin ui", map[string]string{"QODBRIDGE_ADMIN_UI": "maybe"}, "QODBRIDGE_ADMIN_UI"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("", env(tc.env))
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want a FieldError", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestMaxBatchEvents(t *testing.T) {
	dir := t.TempDir()
	load := func(yaml string) (*Config, error) {
		p := dir + "/c.yaml"
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(p, env(nil))
	}
	// Zero is normalize's default (process.Effective shows it).
	if c, err := load("ingress:\n  max_batch_events: 0\n"); err != nil || c.Ingress.MaxBatchEvents != 0 {
		t.Fatalf("default: %v, %v", c.Ingress.MaxBatchEvents, err)
	}
	if c, err := load("ingress:\n  max_batch_events: 5000\n"); err != nil || c.Ingress.MaxBatchEvents != 5000 {
		t.Fatalf("5000: %v, %v", c.Ingress.MaxBatchEvents, err)
	}
	_, err := load("ingress:\n  max_batch_events: -1\n")
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "ingress.max_batch_events:") {
		t.Fatalf("negative: %v", err)
	}
}

// TestValidateLeavesZeroToThePackages: a setting left zero (or written as
// zero) is the default of the package it is passed to, so it validates; a
// value given is still checked, section by section, naming the field.
func TestValidateLeavesZeroToThePackages(t *testing.T) {
	zeros := "http: {path: \"\", max_body_bytes: 0}\ningress: {publish_timeout: 0s, legacy_source: \"\"}\n" +
		"nats: {subject_prefix: \"\", stream: {name: \"\", replicas: 0, discard: \"\"}}\n" +
		"kafka: {compression: \"\", partitions: 0}\nqod: {dialect: \"\"}\ncommands: {lanes: 0, ack_wait: 0s}\n" +
		"view: {bucket: \"\", topic: \"\", retention: 0s}\n"
	var c Config
	if err := Parse([]byte(zeros), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("zeros: %v", err)
	}
	for _, tc := range []struct{ yaml, field string }{
		{"http: {path: x}", "http.path"},
		{"nats: {stream: {replicas: 6}}", "nats.stream.replicas"},
		{"nats: {stream: {discard: maybe}}", "nats.stream.discard"},
		{"kafka: {compression: brotli}", "kafka.compression"},
		{"kafka: {partitions: -1}", "kafka.partitions"},
		{"qod: {dialect: camara-v9}", "qod.dialect"},
		{"commands: {lanes: -1}", "commands.lanes"},
		{"view: {bucket: a.b}", "view.bucket"},
		{"view: {topic: \"a b\"}", "view.topic"},
		{"view: {retention: 10ms}", "view.retention"},
	} {
		var c Config
		if err := Parse([]byte(tc.yaml), &c); err != nil {
			t.Fatal(err)
		}
		if err := c.Resolve(); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v, want one naming %s", tc.yaml, err, tc.field)
		}
	}
}
