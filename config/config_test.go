package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestZeroConfigDefaults(t *testing.T) {
	c, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Address != DefaultHTTPAddress || c.Admin.Address != DefaultAdminAddress ||
		c.NATS.Embedded.Address != DefaultNATSAddress || c.NATS.Embedded.DataDir != DefaultDataDir {
		t.Errorf("addresses = %s %s %s %s", c.HTTP.Address, c.Admin.Address, c.NATS.Embedded.Address, c.NATS.Embedded.DataDir)
	}
	if !c.NATSEmbedded() || c.NATSOff() {
		t.Error("zero config must run embedded NATS")
	}
	if c.GeneratedToken == "" || len(c.Auth.Tokens) != 1 || c.Auth.Tokens[0] != c.GeneratedToken {
		t.Errorf("zero config must generate one token, got %v", c.Auth.Tokens)
	}
	if c.HTTP.PublicURL != "http://127.0.0.1:8080" {
		t.Errorf("public url %q", c.HTTP.PublicURL)
	}
	// The packages that take these apply their defaults (process.Effective
	// shows them, and its tests check them).
	if c.Ingress.PublishTimeout != 0 || c.HTTP.MaxBodyBytes != 0 || c.NATS.SubjectPrefix != "" || c.Kafka.Topic != "" {
		t.Errorf("config wrote a package's default: publish timeout %v, max body %d, prefix %q, topic %q",
			c.Ingress.PublishTimeout, c.HTTP.MaxBodyBytes, c.NATS.SubjectPrefix, c.Kafka.Topic)
	}
	if c.Sim.Address != DefaultSimAddress || c.Log.Format != DefaultLogFormat || c.Log.Level != DefaultLogLevel ||
		c.ShutdownTimeout.D() != DefaultShutdownTimeout {
		t.Errorf("sim %s, log %s %s, shutdown %s", c.Sim.Address, c.Log.Format, c.Log.Level, c.ShutdownTimeout)
	}
	if !c.Admin.UIOn() {
		t.Error("the console must be on by default")
	}
	if c, err := Load("", env(map[string]string{"QODBRIDGE_ADMIN_UI": "false"})); err != nil || c.Admin.UIOn() {
		t.Errorf("QODBRIDGE_ADMIN_UI=false: on %v, %v", c != nil && c.Admin.UIOn(), err)
	}
}

// TestExampleDocumentsEveryKey parses example.yaml and checks that it names
// every settable key of Config, so the example cannot fall behind the code.
func TestExampleDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := Parse(b, &c); err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	if err := c.Resolve(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("example.yaml does not validate: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := strings.TrimPrefix(prefix+"."+n.Content[i].Value, ".")
			present[p] = true
			walk(n.Content[i+1], p)
		}
	}
	walk(root.Content[0], "")
	var keys func(t reflect.Type, prefix string) []string
	keys = func(t reflect.Type, prefix string) []string {
		var out []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := strings.TrimPrefix(prefix+"."+name, ".")
			out = append(out, p)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
				out = append(out, keys(f.Type, p)...)
			}
		}
		return out
	}
	all := keys(reflect.TypeOf(Config{}), "")
	if len(all) < 40 {
		t.Fatalf("walked only %d keys", len(all))
	}
	for _, k := range all {
		if !present[k] {
			t.Errorf("example.yaml does not document %s", k)
		}
	}
}

func TestStrictErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, yaml, field string
		is                error
		contains          string
	}{
		{"unknown top key", "htp:\n  address: x\n", "htp", ErrUnknownKey, `did you mean "http"`},
		{"unknown nested key", "http:\n  adress: 127.0.0.1:1\n", "http.adress", ErrUnknownKey, `did you mean "address"`},
		{"deep unknown key", "nats:\n  stream:\n    nme: X\n", "nats.stream.nme", ErrUnknownKey, "line 3"},
		{"wrong type", "http:\n  max_in_flight: lots\n", "http.max_in_flight", ErrInvalid, "lots"},
		{"bare number duration", "shutdown_timeout: 30\n", "shutdown_timeout", ErrInvalid, "duration string"},
		{"bad duration", "ingress:\n  publish_timeout: soon\n", "ingress.publish_timeout", ErrInvalid, "soon"},
		{"scalar for section", "http: yes\n", "http", ErrInvalid, "want a mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			err := Parse([]byte(tc.yaml), &c)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("error %v does not name field %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("error %q does not contain %q", err, tc.contains)
			}
		})
	}
}

func TestParseRejectsShapes(t *testing.T) {
	for _, in := range []string{"- a\n- b\n", "a: 1\n---\nb: 2\n", "http: [\n"} {
		var c Config
		if err := Parse([]byte(in), &c); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
	for _, in := range []string{"", "\n", "# only a comment\n", "~\n"} {
		var c Config
		if err := Parse([]byte(in), &c); err != nil {
			t.Errorf("Parse(%q) = %v, want defaults", in, err)
		}
	}
}

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

func TestEnvWinsOverFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	tokFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokFile, []byte("# rotation\nfile-token-0123456789\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "http:\n  address: 127.0.0.1:7000\nauth:\n  tokens_file: " + tokFile + "\nnats:\n  subject_prefix: file\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, env(map[string]string{
		"QODBRIDGE_SUBJECT_PREFIX": "envp",
		"QODBRIDGE_AUTH_TOKENS":    "env-token-0123456789, second-token-0123456789",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Address != "127.0.0.1:7000" || c.NATS.SubjectPrefix != "envp" {
		t.Errorf("address %s prefix %s", c.HTTP.Address, c.NATS.SubjectPrefix)
	}
	want := []string{"env-token-0123456789", "second-token-0123456789", "file-token-0123456789"}
	if !reflect.DeepEqual(c.Auth.Tokens, want) {
		t.Errorf("tokens %v, want %v", c.Auth.Tokens, want)
	}
	if c.GeneratedToken != "" {
		t.Error("a token was generated although tokens were configured")
	}
	m := c.Masked()
	for _, tok := range m.Auth.Tokens {
		if tok != "***" {
			t.Errorf("Masked kept %q", tok)
		}
	}
	if c.Auth.Tokens[0] == "***" {
		t.Error("Masked changed the original")
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), env(nil))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want ErrNotExist", err)
	}
}

func FuzzParse(f *testing.F) {
	b, err := os.ReadFile("example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("http:\n  address: 1\n"))
	f.Add([]byte("nats: {stream: {name: [x]}}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var c Config
		if err := Parse(in, &c); err != nil {
			return
		}
		if err := c.Resolve(); err != nil {
			return
		}
		_ = c.Validate() // must not panic
	})
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
