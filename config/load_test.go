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
