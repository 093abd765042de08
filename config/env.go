package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// envVar maps an environment variable onto a setting.
type envVar struct {
	name string
	set  func(c *Config, v string) error
}

// Env lists the environment variables Load reads, in the order of the
// README table.
var envVars = []envVar{
	{"QODBRIDGE_HTTP_ADDRESS", func(c *Config, v string) error { c.HTTP.Address = v; return nil }},
	{"QODBRIDGE_ADMIN_ADDRESS", func(c *Config, v string) error { c.Admin.Address = v; return nil }},
	{"QODBRIDGE_ADMIN_UI", func(c *Config, v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: %q is not true or false", ErrInvalid, v)
		}
		c.Admin.UI = &on
		return nil
	}},
	{"QODBRIDGE_ADMIN_PPROF", func(c *Config, v string) error {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: %q is not true or false", ErrInvalid, v)
		}
		c.Admin.Pprof = on
		return nil
	}},
	{"QODBRIDGE_AUTH_TOKENS", func(c *Config, v string) error { c.Auth.Tokens = SplitList(v); return nil }},
	{"QODBRIDGE_ADMIN_TOKENS", func(c *Config, v string) error { c.Admin.Tokens = SplitList(v); return nil }},
	{"QODBRIDGE_TRUSTED_PROXIES", func(c *Config, v string) error { c.HTTP.TrustedProxies = SplitList(v); return nil }},
	{"QODBRIDGE_NATS_EMBEDDED_PASSWORD", func(c *Config, v string) error { c.NATS.Embedded.Password = v; return nil }},
	{"QODBRIDGE_NATS_SYNC", func(c *Config, v string) error { c.NATS.Embedded.Sync = v; return nil }},
	{"QODBRIDGE_SESSION_SECRETS", func(c *Config, v string) error { c.Auth.SessionSecrets = SplitList(v); return nil }},
	{"QODBRIDGE_PUBLIC_URL", func(c *Config, v string) error { c.HTTP.PublicURL = v; return nil }},
	{"QODBRIDGE_NATS_URL", func(c *Config, v string) error { c.NATS.URL = v; return nil }},
	{"QODBRIDGE_NATS_EMBEDDED_ADDRESS", func(c *Config, v string) error { c.NATS.Embedded.Address = v; return nil }},
	{"QODBRIDGE_DATA_DIR", func(c *Config, v string) error { c.NATS.Embedded.DataDir = v; return nil }},
	{"QODBRIDGE_SUBJECT_PREFIX", func(c *Config, v string) error { c.NATS.SubjectPrefix = v; return nil }},
	{"QODBRIDGE_KAFKA_BROKERS", func(c *Config, v string) error { c.Kafka.Brokers = SplitList(v); return nil }},
	{"QODBRIDGE_QOD_API_URL", func(c *Config, v string) error { c.QoD.APIURL = v; return nil }},
	{"QODBRIDGE_QOD_API_TOKEN", func(c *Config, v string) error { c.QoD.Token = v; return nil }},
	{"QODBRIDGE_SIM_ADDRESS", func(c *Config, v string) error { c.Sim.Address = v; return nil }},
	{"QODBRIDGE_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"QODBRIDGE_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
}

// EnvNames returns the environment variables Load reads.
func EnvNames() []string {
	names := make([]string, len(envVars))
	for i, e := range envVars {
		names[i] = e.name
	}
	return names
}

func (c *Config) applyEnv(getenv func(string) string) error {
	for _, e := range envVars {
		if v := getenv(e.name); v != "" {
			if err := e.set(c, v); err != nil {
				return &FieldError{Field: e.name, Err: err}
			}
		}
	}
	return nil
}

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
	if c.Auth.TokensFile != "" {
		lines, err := readLines(c.Auth.TokensFile)
		if err != nil {
			return &FieldError{Field: "auth.tokens_file", Err: err}
		}
		c.Auth.Tokens = append(c.Auth.Tokens, lines...)
		c.Auth.TokensFile = ""
	}
	if c.Admin.TokensFile != "" {
		lines, err := readLines(c.Admin.TokensFile)
		if err != nil {
			return &FieldError{Field: "admin.tokens_file", Err: err}
		}
		c.Admin.Tokens = append(c.Admin.Tokens, lines...)
		c.Admin.TokensFile = ""
	}
	if c.Auth.SessionSecretsFile != "" {
		lines, err := readLines(c.Auth.SessionSecretsFile)
		if err != nil {
			return &FieldError{Field: "auth.session_secrets_file", Err: err}
		}
		c.Auth.SessionSecrets = append(c.Auth.SessionSecrets, lines...)
		c.Auth.SessionSecretsFile = ""
	}
	for _, sf := range []struct {
		field      string
		file, dest *string
	}{
		{"nats.token_file", &c.NATS.TokenFile, &c.NATS.Token},
		{"nats.embedded.password_file", &c.NATS.Embedded.PasswordFile, &c.NATS.Embedded.Password},
		{"nats.password_file", &c.NATS.PasswordFile, &c.NATS.Password},
		{"kafka.sasl.password_file", &c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password},
		{"qod.token_file", &c.QoD.TokenFile, &c.QoD.Token},
		{"qod.oauth2.client_secret_file", &c.QoD.OAuth2.ClientSecretFile, &c.QoD.OAuth2.ClientSecret},
	} {
		if *sf.file == "" {
			continue
		}
		lines, err := readLines(*sf.file)
		if err != nil || len(lines) != 1 {
			if err == nil {
				err = fmt.Errorf("%w: %s must hold exactly one line", ErrInvalid, *sf.file)
			}
			return &FieldError{Field: sf.field, Err: err}
		}
		*sf.dest, *sf.file = lines[0], ""
	}
	return nil
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
