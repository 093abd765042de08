package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable of the bridge.
const EnvPrefix = "QODBRIDGE_"

// EnvVar is one environment variable Load reads.
type EnvVar struct {
	// Name is the variable, e.g. QODBRIDGE_NATS_STREAM_DUPLICATE_WINDOW.
	Name string
	// Field is the config key it sets, e.g. nats.stream.duplicate_window.
	Field string
	// Kind says how the value is written: string; list (comma-separated);
	// duration (Go syntax, "30s"); bool (strconv.ParseBool: true, false, 1,
	// 0); int; number; json (a JSON object).
	Kind string
	// Secret marks a credential: give it by environment or file, never in
	// a committed file; it is masked wherever settings are printed.
	Secret bool
	// File marks a *_FILE variable: it names a file whose contents (the
	// trailing newline trimmed) are the value of Field.
	File bool
	// Alias marks a name kept from before the rule, beside the derived
	// one; both set is an error.
	Alias bool

	index []int // of Field in Config
}

// envAliases are the documented names that predate the rule, kept working.
var envAliases = []struct{ name, field string }{
	{"QODBRIDGE_PUBLIC_URL", "http.public_url"},
	{"QODBRIDGE_TRUSTED_PROXIES", "http.trusted_proxies"},
	{"QODBRIDGE_SESSION_SECRETS", "auth.session_secrets"},
	{"QODBRIDGE_SESSION_SECRETS_FILE", "auth.session_secrets_file"},
	{"QODBRIDGE_SUBJECT_PREFIX", "nats.subject_prefix"},
	{"QODBRIDGE_DATA_DIR", "nats.embedded.data_dir"},
	{"QODBRIDGE_NATS_SYNC", "nats.embedded.sync"},
	{"QODBRIDGE_QOD_API_TOKEN", "qod.token"},
	{"QODBRIDGE_QOD_API_TOKEN_FILE", "qod.token_file"},
}

var envVars = deriveEnv()

// EnvVars lists every environment variable Load reads, in the order of
// the config structure, then the aliases. The rule: a key's path in the
// config file, sections joined by "_", upper-cased, after QODBRIDGE_:
// nats.stream.duplicate_window is QODBRIDGE_NATS_STREAM_DUPLICATE_WINDOW.
// A secret's *_file key is its *_FILE variable by the same rule
// (auth.tokens_file: QODBRIDGE_AUTH_TOKENS_FILE); a secret with no such
// key gets a *_FILE variable of its own.
func EnvVars() []EnvVar { return slices.Clone(envVars) }

// EnvNames returns the names of EnvVars.
func EnvNames() []string {
	names := make([]string, len(envVars))
	for i, e := range envVars {
		names[i] = e.Name
	}
	return names
}

var durationType = reflect.TypeFor[Duration]()

// section reports whether a field of type t is a section of keys rather
// than a value.
func section(t reflect.Type) bool { return t.Kind() == reflect.Struct && t != durationType }

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func deriveEnv() []EnvVar {
	var out []EnvVar
	var walk func(t reflect.Type, path []string, index []int)
	walk = func(t reflect.Type, path []string, index []int) {
		names := map[string]bool{}
		for i := range t.NumField() {
			names[yamlName(t.Field(i))] = true
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			p := append(slices.Clone(path), name)
			idx := append(slices.Clone(index), i)
			if section(f.Type) {
				walk(f.Type, p, idx)
				continue
			}
			e := EnvVar{
				Name:   EnvPrefix + strings.ToUpper(strings.Join(p, "_")),
				Field:  strings.Join(p, "."),
				Kind:   kindOf(f.Type),
				Secret: f.Tag.Get("secret") == "true",
				index:  idx,
			}
			out = append(out, e)
			if e.Secret && !names[name+"_file"] {
				e.Name += "_FILE"
				e.File = true
				out = append(out, e)
			}
		}
	}
	walk(reflect.TypeFor[Config](), nil, nil)
	for _, a := range envAliases {
		i := slices.IndexFunc(out, func(e EnvVar) bool { return e.Field == a.field && !e.File })
		if i < 0 {
			panic("config: alias " + a.name + " of unknown key " + a.field)
		}
		e := out[i]
		e.Name, e.Alias = a.name, true
		out = append(out, e)
	}
	return out
}

func kindOf(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool, t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "int"
	case t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list"
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String:
		return "json"
	}
	panic(fmt.Sprintf("config: no environment form for a setting of type %s", t))
}

// setValue writes s, written as kind says, into v.
func setValue(v reflect.Value, kind, s string) error {
	switch kind {
	case "string":
		v.SetString(s)
	case "list":
		v.Set(reflect.ValueOf(SplitList(s)))
	case "duration":
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return fmt.Errorf("want a duration such as \"30s\", got %q", s)
		}
		v.SetInt(int64(d))
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		if v.Kind() == reflect.Pointer {
			v.Set(reflect.ValueOf(&b))
		} else {
			v.SetBool(b)
		}
	case "int":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(n)
	case "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case "json":
		m := map[string]string{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return fmt.Errorf("want a JSON object of strings such as {\"X-Key\":\"…\"}: %w", err)
		}
		v.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("no environment form for %s", kind)
	}
	return nil
}

// applyEnv sets every setting whose variable getenv has (an empty value
// is no value), recording where it came from. Errors name the variable
// and the key.
func (c *Config) applyEnv(getenv func(string) string) error {
	root := reflect.ValueOf(c).Elem()
	by := map[string]string{} // key → the variable that set it
	var errs []error
	for _, e := range envVars {
		s := getenv(e.Name)
		if s == "" {
			continue
		}
		if prev, ok := by[e.Field]; ok {
			errs = append(errs, &FieldError{Field: e.Name, Err: fmt.Errorf("%w: %s sets %s too: set one of them", ErrInvalid, prev, e.Field)})
			continue
		}
		by[e.Field] = e.Name
		origin := "env:" + e.Name
		if e.File {
			b, err := os.ReadFile(s)
			if err != nil {
				errs = append(errs, &FieldError{Field: e.Name, Err: fmt.Errorf("%s: %w", e.Field, err)})
				continue
			}
			c.files = append(c.files, s)
			s, origin = strings.TrimRight(string(b), "\r\n"), "file:"+e.Name
		}
		if err := setValue(root.FieldByIndex(e.index), e.Kind, s); err != nil {
			errs = append(errs, &FieldError{Field: e.Name, Err: fmt.Errorf("%w for %s: %w", ErrInvalid, e.Field, err)})
			continue
		}
		c.setOrigin(e.Field, origin)
	}
	return errors.Join(errs...)
}

// CheckEnv reports the variables of environ (KEY=value, as os.Environ
// gives them) that start with QODBRIDGE_, have a value and are neither a
// setting's (EnvVars) nor one of also (those a command reads itself):
// most likely a misspelt setting, which would otherwise be ignored.
// Each error wraps ErrUnknownKey and names the variable.
func CheckEnv(environ []string, also ...string) error {
	known := map[string]bool{}
	for _, n := range append(EnvNames(), also...) {
		known[n] = true
	}
	var errs []error
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) || v == "" || known[k] {
			continue
		}
		hint := ""
		if s := closestName(k, known); s != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		}
		errs = append(errs, &FieldError{Field: k, Err: fmt.Errorf("%w: no setting is read from this environment variable%s", ErrUnknownKey, hint)})
	}
	return errors.Join(errs...)
}

func closestName(name string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(name, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	return best
}

// setOrigin records where key's value came from.
func (c *Config) setOrigin(key, origin string) {
	if c.origins == nil {
		c.origins = map[string]string{}
	}
	c.origins[key] = origin
}

// addOrigin records a further source of key's value (a list read from
// the environment and a file).
func (c *Config) addOrigin(key, origin string) {
	if prev := c.origins[key]; prev != "" && prev != origin {
		origin = prev + " + " + origin
	}
	c.setOrigin(key, origin)
}

// Origin says where the value of key (a dotted config key such as
// "http.address") came from: "default" (not set: the default applies),
// "file" (the config file), "env:VAR", "file:VAR" (read from the file a
// *_FILE variable names), "file:KEY" (read from the file a *_file key of
// the config file names), "generated" (made at start), or several joined
// by " + " for a list gathered from more than one.
func (c *Config) Origin(key string) string {
	if o := c.origins[key]; o != "" {
		return o
	}
	return "default"
}

func (c *Config) setSecretFile(key, path string) {
	if c.secretFiles == nil {
		c.secretFiles = map[string]string{}
	}
	c.secretFiles[key] = path
}

// SecretFile is the file the secret key (such as "auth.tokens") was read
// from, named by its *_file key or *_FILE variable; "" when none.
func (c *Config) SecretFile(key string) string { return c.secretFiles[key] }

// SourceFiles are the files the settings were read from: the config file
// and the secret files. A process that watches them reloads what can be
// reloaded when one changes.
func (c *Config) SourceFiles() []string { return slices.Clone(c.files) }

// SplitList splits a comma-separated setting (an environment variable's
// list of tokens, brokers, URLs), trimming each item and dropping empty
// ones.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// readSecretFiles moves the secrets of the *_file keys into their settings
// and clears the file keys, so that a second call reads nothing twice.
func (c *Config) readSecretFiles() error {
	for _, lf := range []struct {
		field, dest string
		file        *string
		list        *[]string
	}{
		{"auth.tokens_file", "auth.tokens", &c.Auth.TokensFile, &c.Auth.Tokens},
		{"admin.tokens_file", "admin.tokens", &c.Admin.TokensFile, &c.Admin.Tokens},
		{"auth.session_secrets_file", "auth.session_secrets", &c.Auth.SessionSecretsFile, &c.Auth.SessionSecrets},
	} {
		if *lf.file == "" {
			continue
		}
		lines, err := readLines(*lf.file)
		if err != nil {
			return c.keyErr(lf.field, err)
		}
		*lf.list = append(*lf.list, lines...)
		c.addOrigin(lf.dest, c.fileOrigin(lf.field))
		c.files = append(c.files, *lf.file)
		c.setSecretFile(lf.dest, *lf.file)
		*lf.file = ""
	}
	for _, sf := range []struct {
		field, dest string
		file, val   *string
	}{
		{"nats.token_file", "nats.token", &c.NATS.TokenFile, &c.NATS.Token},
		{"nats.embedded.password_file", "nats.embedded.password", &c.NATS.Embedded.PasswordFile, &c.NATS.Embedded.Password},
		{"nats.password_file", "nats.password", &c.NATS.PasswordFile, &c.NATS.Password},
		{"kafka.sasl.password_file", "kafka.sasl.password", &c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password},
		{"qod.token_file", "qod.token", &c.QoD.TokenFile, &c.QoD.Token},
		{"qod.oauth2.client_secret_file", "qod.oauth2.client_secret", &c.QoD.OAuth2.ClientSecretFile, &c.QoD.OAuth2.ClientSecret},
	} {
		if *sf.file == "" {
			continue
		}
		lines, err := readLines(*sf.file)
		if err != nil || len(lines) != 1 {
			if err == nil {
				err = fmt.Errorf("%w: %s must hold exactly one line", ErrInvalid, *sf.file)
			}
			return c.keyErr(sf.field, err)
		}
		c.setOrigin(sf.dest, c.fileOrigin(sf.field))
		c.files = append(c.files, *sf.file)
		c.setSecretFile(sf.dest, *sf.file)
		*sf.val, *sf.file = lines[0], ""
	}
	return nil
}

// keyErr names key in an error, and the variable that set it if one did.
func (c *Config) keyErr(key string, err error) error {
	if v, ok := strings.CutPrefix(c.Origin(key), "env:"); ok {
		return &FieldError{Field: v, Err: fmt.Errorf("%s: %w", key, err)}
	}
	return &FieldError{Field: key, Err: err}
}

// fileOrigin is the origin of a value read from the file that key names:
// by the variable that named it, or by the key.
func (c *Config) fileOrigin(key string) string {
	if o, ok := strings.CutPrefix(c.Origin(key), "env:"); ok {
		return "file:" + o
	}
	return "file:" + key
}

func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s holds no secret", ErrInvalid, path)
	}
	return out, nil
}
