package config

import (
	"os"
	"path/filepath"
	"reflect"
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
