package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

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

// envValue is a valid, non-default value of a setting of kind.
func envValue(kind string, i int) string {
	switch kind {
	case "list":
		return fmt.Sprintf("item-a-%d, item-b-%d", i, i)
	case "duration":
		return "17s"
	case "bool":
		return "true"
	case "int":
		return "7"
	case "number":
		return "2.5"
	case "json":
		return `{"X-Key":"value"}`
	}
	return fmt.Sprintf("env-value-%d", i)
}

// TestEveryKeyFromEnv walks the config structure: every key has its
// variable by the rule, and setting it (a valid non-default value) changes
// that key and only it, with the variable as its origin. A key whose type
// has no environment form fails here (and at start).
func TestEveryKeyFromEnv(t *testing.T) {
	var walk func(t reflect.Type, path []string, out *[]string)
	walk = func(typ reflect.Type, path []string, out *[]string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			p := append(slices.Clone(path), name)
			if section(f.Type) {
				walk(f.Type, p, out)
				continue
			}
			*out = append(*out, strings.Join(p, "."))
		}
	}
	var keys []string
	walk(reflect.TypeFor[Config](), nil, &keys)
	if len(keys) < 90 {
		t.Fatalf("walked only %d keys", len(keys))
	}
	byField := map[string][]EnvVar{}
	for _, e := range EnvVars() {
		byField[e.Field] = append(byField[e.Field], e)
	}
	for _, key := range keys {
		want := "QODBRIDGE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		if !slices.ContainsFunc(byField[key], func(e EnvVar) bool { return e.Name == want && !e.Alias && !e.File }) {
			t.Errorf("%s: no variable %s", key, want)
		}
	}
	dir := t.TempDir()
	for i, e := range EnvVars() {
		t.Run(e.Name, func(t *testing.T) {
			v := envValue(e.Kind, i)
			env := map[string]string{e.Name: v}
			if e.File {
				path := filepath.Join(dir, e.Name)
				if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				env[e.Name] = path
			}
			var c Config
			if err := c.applyEnv(func(k string) string { return env[k] }); err != nil {
				t.Fatal(err)
			}
			got := reflect.ValueOf(c).FieldByIndex(e.index)
			if got.IsZero() {
				t.Fatalf("%s=%q left %s unset", e.Name, v, e.Field)
			}
			var zero Config
			zero.origins, zero.files = c.origins, c.files
			reflect.ValueOf(&zero).Elem().FieldByIndex(e.index).Set(got)
			if !reflect.DeepEqual(zero, c) {
				t.Errorf("%s changed more than %s", e.Name, e.Field)
			}
			wantOrigin := "env:" + e.Name
			if e.File {
				wantOrigin = "file:" + e.Name
			}
			if o := c.Origin(e.Field); o != wantOrigin {
				t.Errorf("origin of %s: %q, want %q", e.Field, o, wantOrigin)
			}
			if e.Kind == "list" && got.Len() != 2 {
				t.Errorf("%s=%q: %v, want two items", e.Name, v, got)
			}
		})
	}
}

// TestEnvNames: names are unique, every secret has a *_FILE variable
// (or its *_file key's), and every name of the README's table still works.
func TestEnvNames(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range EnvNames() {
		if seen[n] {
			t.Errorf("%s twice", n)
		}
		seen[n] = true
	}
	for _, e := range EnvVars() {
		if e.Secret && !e.Alias && !e.File && !seen[e.Name+"_FILE"] {
			t.Errorf("secret %s has no %s_FILE", e.Name, e.Name)
		}
	}
	for _, n := range []string{"QODBRIDGE_HTTP_ADDRESS", "QODBRIDGE_ADMIN_ADDRESS", "QODBRIDGE_ADMIN_UI", "QODBRIDGE_ADMIN_PPROF",
		"QODBRIDGE_AUTH_TOKENS", "QODBRIDGE_ADMIN_TOKENS", "QODBRIDGE_TRUSTED_PROXIES", "QODBRIDGE_NATS_EMBEDDED_PASSWORD",
		"QODBRIDGE_NATS_SYNC", "QODBRIDGE_SESSION_SECRETS", "QODBRIDGE_PUBLIC_URL", "QODBRIDGE_NATS_URL",
		"QODBRIDGE_NATS_EMBEDDED_ADDRESS", "QODBRIDGE_DATA_DIR", "QODBRIDGE_SUBJECT_PREFIX", "QODBRIDGE_KAFKA_BROKERS",
		"QODBRIDGE_QOD_API_URL", "QODBRIDGE_QOD_API_TOKEN", "QODBRIDGE_SIM_ADDRESS", "QODBRIDGE_LOG_LEVEL", "QODBRIDGE_LOG_FORMAT"} {
		if !seen[n] {
			t.Errorf("documented variable %s is gone", n)
		}
	}
}

// TestSecretsAreMarked: a key that names a token, password or secret, or
// that has a *_file key beside it, is marked secret.
func TestSecretsAreMarked(t *testing.T) {
	fields := map[string]bool{}
	for _, e := range EnvVars() {
		fields[e.Field] = true
	}
	for _, e := range EnvVars() {
		last := e.Field[strings.LastIndex(e.Field, ".")+1:]
		named := strings.Contains(last, "token") || strings.Contains(last, "password") || strings.Contains(last, "secret") || strings.Contains(last, "key_headers")
		if strings.HasSuffix(last, "_file") || last == "token_url" {
			named = false
		}
		if (named || fields[e.Field+"_file"]) && !e.Secret {
			t.Errorf("%s is not marked secret", e.Field)
		}
	}
}

func TestEnvErrorsNameVariableAndKey(t *testing.T) {
	for name, val := range map[string]string{
		"QODBRIDGE_NATS_STREAM_DUPLICATE_WINDOW": "soon",
		"QODBRIDGE_ADMIN_UI":                     "maybe",
		"QODBRIDGE_HTTP_MAX_IN_FLIGHT":           "lots",
		"QODBRIDGE_INGRESS_RATE_LIMIT":           "fast",
		"QODBRIDGE_QOD_API_KEY_HEADERS":          "X-Key=v",
	} {
		_, err := Load("", env(map[string]string{name: val}))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != name || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s=%q: error %v does not name the variable", name, val, err)
			continue
		}
		e := EnvVars()[slices.IndexFunc(EnvVars(), func(e EnvVar) bool { return e.Name == name })]
		if !strings.Contains(err.Error(), e.Field) || !e.Secret && !strings.Contains(err.Error(), val) || e.Secret && strings.Contains(err.Error(), val) {
			t.Errorf("%s=%q: error %q does not name %s and the value (unless secret)", name, val, err, e.Field)
		}
	}
	_, err := Load("", env(map[string]string{"QODBRIDGE_PUBLIC_URL": "http://a:1", "QODBRIDGE_HTTP_PUBLIC_URL": "http://b:1"}))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "set one of them") {
		t.Errorf("alias and derived name both set: %v", err)
	}
}

// TestSecretFromFileVariable: a *_FILE variable reads the secret from the
// file, the trailing newline trimmed, and the origin says so.
func TestSecretFromFileVariable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := Load("", env(map[string]string{
		"QODBRIDGE_AUTH_TOKENS":              "env-token-0123456789",
		"QODBRIDGE_AUTH_TOKENS_FILE":         write("tokens", "file-token-0123456789\n"),
		"QODBRIDGE_QOD_TOKEN_FILE":           write("qod", "qod-token\n"),
		"QODBRIDGE_QOD_API_KEY_HEADERS_FILE": write("headers", `{"X-RapidAPI-Key":"k"}`+"\n"),
		"QODBRIDGE_SESSION_SECRETS_FILE":     write("secrets", "session-secret-0123456789\r\n"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Auth.Tokens, []string{"env-token-0123456789", "file-token-0123456789"}) || c.QoD.Token != "qod-token" ||
		c.QoD.APIKeyHeaders["X-RapidAPI-Key"] != "k" || !reflect.DeepEqual(c.Auth.SessionSecrets, []string{"session-secret-0123456789"}) {
		t.Errorf("tokens %q, qod token %q, headers %v, secrets %q", c.Auth.Tokens, c.QoD.Token, c.QoD.APIKeyHeaders, c.Auth.SessionSecrets)
	}
	for key, want := range map[string]string{
		"auth.tokens":          "env:QODBRIDGE_AUTH_TOKENS + file:QODBRIDGE_AUTH_TOKENS_FILE",
		"qod.token":            "file:QODBRIDGE_QOD_TOKEN_FILE",
		"qod.api_key_headers":  "file:QODBRIDGE_QOD_API_KEY_HEADERS_FILE",
		"auth.session_secrets": "file:QODBRIDGE_SESSION_SECRETS_FILE",
		"http.address":         "default",
	} {
		if got := c.Origin(key); got != want {
			t.Errorf("origin of %s: %q, want %q", key, got, want)
		}
	}
	if len(c.SourceFiles()) != 4 {
		t.Errorf("source files %q", c.SourceFiles())
	}
	if _, err := Load("", env(map[string]string{"QODBRIDGE_QOD_TOKEN_FILE": filepath.Join(dir, "missing")})); err == nil || !strings.Contains(err.Error(), "QODBRIDGE_QOD_TOKEN_FILE") {
		t.Errorf("missing file: %v", err)
	}
}

func TestOriginFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("http:\n  address: 127.0.0.1:7000\nnats: {stream: {replicas: 3, name: S}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, env(map[string]string{"QODBRIDGE_NATS_STREAM_REPLICAS": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"http.address":         "file",
		"nats.stream.name":     "file",
		"nats.stream.replicas": "env:QODBRIDGE_NATS_STREAM_REPLICAS",
		"auth.tokens":          "generated",
		"admin.address":        "default",
	} {
		if got := c.Origin(key); got != want {
			t.Errorf("origin of %s: %q, want %q", key, got, want)
		}
	}
	if c.NATS.Stream.Replicas != 1 {
		t.Errorf("replicas %d: the variable must win", c.NATS.Stream.Replicas)
	}
}

func TestCheckEnv(t *testing.T) {
	err := CheckEnv([]string{"PATH=/bin", "QODBRIDGE_HTTP_ADDRESS=x", "QODBRIDGE_SIM_TOKENS=y", "QODBRIDGE_EMPTY=",
		"QODBRIDGE_NATS_STREAM_DUPLICATE_WINDO=1m", "QODBRIDGE_WHATEVER=1"}, "QODBRIDGE_SIM_TOKENS")
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("error %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "QODBRIDGE_NATS_STREAM_DUPLICATE_WINDO: ") || !strings.Contains(msg, "did you mean QODBRIDGE_NATS_STREAM_DUPLICATE_WINDOW?") ||
		!strings.Contains(msg, "QODBRIDGE_WHATEVER") || strings.Contains(msg, "QODBRIDGE_SIM_TOKENS") || strings.Contains(msg, "QODBRIDGE_EMPTY") {
		t.Errorf("error %q", msg)
	}
	if err := CheckEnv([]string{"QODBRIDGE_AUTH_TOKENS_FILE=/x", "QODBRIDGE_QOD_API_TOKEN=y"}); err != nil {
		t.Errorf("known variables: %v", err)
	}
}

// validEnv are values that pass Validate for keys whose kind's generic
// value (envValue) would not, and the settings some keys need beside them.
var (
	validEnv = map[string]string{
		"http.address": "127.0.0.1:7001", "http.path": "/hooks", "http.public_url": "https://bridge.example",
		"http.trusted_proxies": "10.0.0.0/8, 192.0.2.1", "admin.address": "127.0.0.1:7002",
		"admin.trusted_proxies": "10.0.0.0/8", "admin.tokens": "admin-token-0123456789a,admin-token-0123456789b",
		"auth.tokens": "auth-token-0123456789a,auth-token-0123456789b", "auth.session_secrets": "session-secret-0123456789a,session-secret-0123456789b",
		"ingress.allowed_origins": "https://a.example,https://b.example", "ingress.legacy_source": "urn:acme:qod",
		"nats.url": "nats://n1:4222,nats://n2:4222", "nats.embedded.address": "127.0.0.1:7003", "nats.embedded.password": "embedded-password-0123",
		"nats.embedded.sync": "always", "nats.subject_prefix": "acme.qod", "nats.stream.name": "ACME", "nats.stream.replicas": "3",
		"nats.stream.discard": "new", "kafka.brokers": "k1:9092,k2:9092", "kafka.compression": "zstd", "kafka.sasl.mechanism": "PLAIN",
		"qod.api_url": "https://api.example/qod/v1", "qod.dialect": "camara-v0", "qod.oauth2.token_url": "https://auth.example/token",
		"sim.address": "127.0.0.1:7004", "log.format": "text", "log.level": "debug",
	}
	needs = map[string]map[string]string{
		"http.tls.cert_file":          {"QODBRIDGE_HTTP_TLS_KEY_FILE": "key.pem"},
		"http.tls.key_file":           {"QODBRIDGE_HTTP_TLS_CERT_FILE": "cert.pem"},
		"auth.client_ca_file":         {"QODBRIDGE_HTTP_TLS_CERT_FILE": "cert.pem", "QODBRIDGE_HTTP_TLS_KEY_FILE": "key.pem"},
		"nats.embedded.tls.cert_file": {"QODBRIDGE_NATS_EMBEDDED_TLS_KEY_FILE": "key.pem"},
		"nats.embedded.tls.key_file":  {"QODBRIDGE_NATS_EMBEDDED_TLS_CERT_FILE": "cert.pem"},
		"nats.tls.cert_file":          {"QODBRIDGE_NATS_TLS_KEY_FILE": "key.pem"},
		"nats.tls.key_file":           {"QODBRIDGE_NATS_TLS_CERT_FILE": "cert.pem"},
		"nats.password":               {"QODBRIDGE_NATS_USER": "user"},
		"nats.password_file":          {"QODBRIDGE_NATS_USER": "user"},
		"kafka.sasl.mechanism":        {"QODBRIDGE_KAFKA_SASL_USERNAME": "user"},
		"qod.oauth2.token_url":        {"QODBRIDGE_QOD_OAUTH2_CLIENT_ID": "client"},
	}
)

// TestEveryKeyLoadsFromEnv: for every variable, Load with it set to a
// valid non-default value (and only what its key needs beside it) yields
// a configuration whose key differs from Load without it, with the
// variable as the origin. A *_file key is checked by the secret it reads.
func TestEveryKeyLoadsFromEnv(t *testing.T) {
	dir := t.TempDir()
	index := map[string][]int{}
	for _, e := range EnvVars() {
		if !e.File && !e.Alias {
			index[e.Field] = e.index
		}
	}
	for i, e := range EnvVars() {
		t.Run(e.Name, func(t *testing.T) {
			key, origin := e.Field, "env:"+e.Name
			v, ok := validEnv[key]
			if !ok {
				v = envValue(e.Kind, i)
			}
			stem, fileKey := strings.CutSuffix(key, "_file")
			if _, secret := index[stem]; fileKey && secret || e.File {
				content := v
				if fileKey {
					content = cmp.Or(validEnv[stem], "secret-read-from-a-file-0123")
					key = stem
				}
				v = filepath.Join(dir, e.Name)
				if err := os.WriteFile(v, []byte(content+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				origin = "file:" + e.Name
			}
			base := maps.Clone(needs[e.Field])
			if base == nil {
				base = map[string]string{}
			}
			without, err := Load("", env(base))
			if err != nil && strings.HasSuffix(e.Name, "_FILE") && needs[e.Field] != nil {
				// One of a pair (cert and key) is not valid alone: compare
				// with the pair holding another value.
				alt := maps.Clone(base)
				alt[e.Name] = "other.pem"
				without, err = Load("", env(alt))
			}
			if err != nil {
				t.Fatalf("without %s: %v", e.Name, err)
			}
			base[e.Name] = v
			with, err := Load("", env(base))
			if err != nil {
				t.Fatalf("%s=%q: %v", e.Name, v, err)
			}
			got := reflect.ValueOf(*with).FieldByIndex(index[key]).Interface()
			if reflect.DeepEqual(got, reflect.ValueOf(*without).FieldByIndex(index[key]).Interface()) {
				t.Errorf("%s=%q left %s at %v", e.Name, v, key, got)
			}
			if o := with.Origin(key); !strings.Contains(o, origin) {
				t.Errorf("origin of %s: %q, want %q", key, o, origin)
			}
		})
	}
}
