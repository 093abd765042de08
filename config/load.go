package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the YAML file at path (none when empty), applies the
// environment given by getenv (os.Getenv when nil), fills in defaults and
// validates. Errors name the field.
func Load(path string, getenv func(string) string) (*Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		if err := Parse(b, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c.files = append(c.files, path)
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	if err := c.Resolve(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Parse decodes YAML into c strictly: unknown keys, wrong types and
// several documents are errors naming the key path.
func Parse(b []byte, c *Config) error {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: all defaults
		}
		return fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return fmt.Errorf("config: line %d: a config file holds one YAML document", extra.Line)
	}
	if len(root.Content) == 0 {
		return nil
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return nil
	}
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("config: line %d: want a mapping of settings at the top level", doc.Line)
	}
	lines := map[int]string{}
	var keys []string
	if err := checkKeys(doc, reflect.TypeOf(*c), "", lines, &keys); err != nil {
		return err
	}
	if err := doc.Decode(c); err != nil {
		return namedTypeError(err, lines)
	}
	for _, key := range keys {
		if leafKeys[key] {
			c.setOrigin(key, "file")
		}
	}
	return nil
}

// leafKeys are the keys that hold a value rather than a section.
var leafKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range envVars {
		m[e.Field] = true
	}
	return m
}()

// checkKeys walks the YAML mapping against the struct type and reports the
// first unknown key by its full path. It records which path each line holds,
// so that yaml's own type errors ("line 7: cannot unmarshal…") can be given
// a field name.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string, lines map[int]string, keys *[]string) error {
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			hint := ""
			if s := closest(k.Value, fields); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			return &FieldError{Field: path, Err: fmt.Errorf("%w at line %d%s", ErrUnknownKey, k.Line, hint)}
		}
		lines[v.Line] = path
		*keys = append(*keys, path)
		if f.Type == reflect.TypeOf(Duration(0)) {
			var d Duration
			if err := d.UnmarshalYAML(v); err != nil {
				return &FieldError{Field: path, Err: fmt.Errorf("%w at line %d: %w", ErrInvalid, v.Line, err)}
			}
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			if v.Kind != yaml.MappingNode && !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
				return fieldErr(path, "want a mapping, got %s", kindName(v))
			}
			if err := checkKeys(v, f.Type, path, lines, keys); err != nil {
				return err
			}
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

func namedTypeError(err error, lines map[int]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config: %w", err)
	}
	var errs []error
	for _, msg := range te.Errors {
		m := yamlLine.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, msg))
			continue
		}
		ln, _ := strconv.Atoi(m[1])
		field := lines[ln]
		if field == "" {
			field = "line " + m[1]
		}
		errs = append(errs, &FieldError{Field: field, Err: fmt.Errorf("%w at line %s: %s", ErrInvalid, m[1], m[2])})
	}
	return errors.Join(errs...)
}

// closest suggests a known key for a misspelt one.
func closest(key string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(key, name); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
