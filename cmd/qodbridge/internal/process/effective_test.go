package process

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qodbridge/qodbridge/bridge/normalize"
	"github.com/qodbridge/qodbridge/config"
)

func loadEnv(t *testing.T, yamlText string, env map[string]string) (*config.Config, error) {
	t.Helper()
	path := ""
	if yamlText != "" {
		path = filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return config.Load(path, func(k string) string { return env[k] })
}

// flatten maps each leaf key path of c as YAML ("nats.stream.name") to its
// value as YAML writes it.
func flatten(t *testing.T, c *config.Config) map[string]string {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			for k, v := range sub {
				walk(strings.TrimPrefix(prefix+"."+k, "."), v)
			}
			return
		}
		out[prefix] = fmt.Sprint(v)
	}
	walk("", m)
	return out
}

// TestExampleShowsTheEffectiveDefaults: config/example.yaml documents every
// key with its default; each value it shows must be what a bridge with no
// configuration runs on, so the documentation cannot drift from the
// packages' defaults.
func TestExampleShowsTheEffectiveDefaults(t *testing.T) {
	b, err := os.ReadFile("../../../../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var example config.Config
	if err := config.Parse(b, &example); err != nil {
		t.Fatal(err)
	}
	zero, err := loadEnv(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	shown, effective := flatten(t, &example), flatten(t, Effective(zero))
	// Generated per process, or derived from another setting: the example
	// shows them empty, with a comment saying so.
	derived := map[string]bool{"auth.tokens": true, "auth.session_secrets": true, "http.public_url": true}
	if len(shown) < 40 || len(shown) != len(effective) {
		t.Fatalf("example.yaml has %d settings, the effective config %d", len(shown), len(effective))
	}
	for k, want := range effective {
		if derived[k] {
			continue
		}
		if got, ok := shown[k]; !ok || got != want {
			t.Errorf("example.yaml shows %s: %s, the effective default is %s", k, got, want)
		}
	}
}

// TestEffectiveDefaults: a setting config leaves zero is shown with the
// default of the package that applies it (moved here from config, which
// no longer writes these defaults).
func TestEffectiveDefaults(t *testing.T) {
	c, err := loadEnv(t, "ingress:\n  max_batch_events: 0\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ingress.PublishTimeout != 0 || c.HTTP.MaxBodyBytes != 0 || c.Ingress.MaxBatchEvents != 0 {
		t.Errorf("config wrote a package's default: publish timeout %v, max body %d, max batch %d",
			c.Ingress.PublishTimeout, c.HTTP.MaxBodyBytes, c.Ingress.MaxBatchEvents)
	}
	e := Effective(c)
	if e.Ingress.PublishTimeout.D() != 5*time.Second || e.HTTP.MaxBodyBytes != 1<<20 {
		t.Errorf("publish timeout %v, max body %d", e.Ingress.PublishTimeout, e.HTTP.MaxBodyBytes)
	}
	if e.Ingress.MaxBatchEvents != normalize.DefaultMaxBatchEvents {
		t.Errorf("max_batch_events %d, want %d", e.Ingress.MaxBatchEvents, normalize.DefaultMaxBatchEvents)
	}
	if c, err = loadEnv(t, "ingress:\n  max_batch_events: 5000\n", nil); err != nil || Effective(c).Ingress.MaxBatchEvents != 5000 {
		t.Fatalf("max_batch_events 5000: %v", err)
	}
	if e.Commands.Micro == nil || !*e.Commands.Micro || e.Admin.UI == nil || !*e.Admin.UI {
		t.Error("commands.micro and admin.ui are on by default")
	}
	again := Effective(e)
	if fmt.Sprint(flatten(t, again)) != fmt.Sprint(flatten(t, e)) {
		t.Error("Effective is not idempotent")
	}
	if c.Kafka.Topic != "" || c.Commands.Micro != nil {
		t.Error("Effective changed its argument")
	}
}

// TestCheckAckWaitExceedsMaxElapsed: the rule spans the NATS intake's
// ack_wait and the command engine's max_elapsed, and holds for their
// defaults too (ack_wait 30s against the default max_elapsed 60s).
func TestCheckAckWaitExceedsMaxElapsed(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
	}{
		{"", ""},
		{"commands:\n  ack_wait: 10s\n  max_elapsed: 1m\n", "commands.ack_wait: config: invalid value: 10s must exceed commands.max_elapsed 1m0s, or commands still being retried are redelivered"},
		{"commands:\n  ack_wait: 30s\n", "commands.ack_wait: config: invalid value: 30s must exceed commands.max_elapsed 1m0s, or commands still being retried are redelivered"},
		{"commands:\n  max_elapsed: 5m\n", "commands.ack_wait: config: invalid value: 3m0s must exceed commands.max_elapsed 5m0s, or commands still being retried are redelivered"},
		{"commands:\n  ack_wait: 4s\n  max_elapsed: 2s\n", ""},
	} {
		c, err := loadEnv(t, tc.yaml, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		err = Check(c)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != "commands.ack_wait" || !errors.Is(err, config.ErrInvalid) || err.Error() != tc.want {
			t.Errorf("%q: error %v, want %s", tc.yaml, err, tc.want)
		}
		if _, err := New(c, Options{}); err == nil || err.Error() != tc.want {
			t.Errorf("%q: New: %v", tc.yaml, err)
		}
	}
}
