package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qodbridge/qodbridge/config"
)

var commands = []string{"serve", "check", "sim", "bench", "version"}

// TestHelpListsCommands: qodbridge -h, --help and help list every command
// on stdout and exit 0.
func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		var out, errOut strings.Builder
		err := run(context.Background(), args, &out, &errOut)
		if code := exitCode(err, io.Discard); code != 0 {
			t.Fatalf("%q: exit %d (%v)", args, code, err)
		}
		for _, c := range append(commands, "help") {
			if !strings.Contains(out.String(), "\n  "+c+" ") {
				t.Errorf("%q does not list %s:\n%s", args, c, out.String())
			}
		}
		if errOut.Len() > 0 {
			t.Errorf("%q wrote to stderr: %s", args, errOut.String())
		}
	}
	if code := exitCode(run(context.Background(), []string{"help", "frobnicate"}, io.Discard, io.Discard), io.Discard); code != 2 {
		t.Errorf("help of an unknown command: exit %d", code)
	}
}

// TestCommandHelp: every command's -h (and help <command>) has a usage
// line and examples, and exits 0.
func TestCommandHelp(t *testing.T) {
	for _, c := range commands {
		var stderr strings.Builder
		err := run(context.Background(), []string{c, "-h"}, io.Discard, &stderr)
		if code := exitCode(err, io.Discard); code != 0 {
			t.Errorf("%s -h: exit %d (%v)", c, code, err)
		}
		var stdout strings.Builder
		if err := run(context.Background(), []string{"help", c}, &stdout, io.Discard); err != nil {
			t.Errorf("help %s: %v", c, err)
		}
		for name, out := range map[string]string{c + " -h": stderr.String(), "help " + c: stdout.String()} {
			if !strings.HasPrefix(out, "usage: qodbridge ") || !strings.Contains(out, "\nexamples:\n  qodbridge") && !strings.Contains(out, "\nexamples:\n  docker") {
				t.Errorf("%s: no usage line or examples:\n%s", name, out)
			}
		}
	}
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		var out strings.Builder
		if err := run(context.Background(), args, &out, io.Discard); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if lines := strings.Split(out.String(), "\n"); len(lines) < 3 || !strings.HasPrefix(lines[0], "qodbridge ") ||
			!strings.HasPrefix(lines[1], "commit ") || !strings.HasPrefix(lines[2], "go1.") {
			t.Errorf("%q: %q", args, out.String())
		}
	}
	if code := exitCode(run(context.Background(), []string{"version", "extra"}, io.Discard, io.Discard), io.Discard); code != 2 {
		t.Errorf("version extra: exit %d", code)
	}
}

// TestCheckShowsOrigins: check prints each effective value with where it
// came from, secrets masked.
func TestCheckShowsOrigins(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	secret := filepath.Join(dir, "qod-token")
	if err := os.WriteFile(cfg, []byte("nats:\n  subject_prefix: fromfile\n  stream:\n    replicas: 2\nqod:\n  token_file: "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("qod-secret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QODBRIDGE_AUTH_TOKENS", "a-secret-token-0123456789")
	t.Setenv("QODBRIDGE_NATS_STREAM_REPLICAS", "3")
	t.Setenv("QODBRIDGE_INGRESS_RATE_LIMIT", "2.5")
	var out strings.Builder
	if err := run(context.Background(), []string{"check", "-config", cfg}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"address: 127.0.0.1:8080 # default\n",
		"subject_prefix: fromfile # file\n",
		"replicas: 3 # env:QODBRIDGE_NATS_STREAM_REPLICAS\n",
		"rate_limit: 2.5 # env:QODBRIDGE_INGRESS_RATE_LIMIT\n",
		"tokens: # env:QODBRIDGE_AUTH_TOKENS\n",
		"token: '***' # file:qod.token_file\n",
		"token_file: \"\" # file, read into qod.token\n",
		"session_secrets: # generated\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	if s := out.String(); strings.Contains(s, "a-secret-token") || strings.Contains(s, "qod-secret-token") {
		t.Errorf("check output shows a secret:\n%s", s)
	}
	if t.Failed() {
		t.Log(out.String())
	}
}

func TestCheckEnvListsEveryVariable(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"check", "-env"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, e := range config.EnvVars() {
		if !strings.Contains(out.String(), "\n"+e.Name+" ") {
			t.Errorf("check -env does not list %s", e.Name)
		}
	}
}

// TestUnknownVariableIsAConfigError: a QODBRIDGE_ variable no setting has
// (misspelt, most likely) stops serve with exit 2 and fails check, naming
// the variable and the one meant.
func TestUnknownVariableIsAConfigError(t *testing.T) {
	t.Setenv("QODBRIDGE_NATS_STREAM_DUPLICATE_WINDO", "5m")
	const want = "QODBRIDGE_NATS_STREAM_DUPLICATE_WINDO: config: unknown key: no setting is read from this environment variable (did you mean QODBRIDGE_NATS_STREAM_DUPLICATE_WINDOW?)"
	var stderr strings.Builder
	if code := exitCode(run(context.Background(), nil, io.Discard, io.Discard), &stderr); code != 2 || !strings.Contains(stderr.String(), want) {
		t.Fatalf("serve: exit %d, %q", code, stderr.String())
	}
	err := run(context.Background(), []string{"check"}, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != 1 || !strings.Contains(err.Error(), want) {
		t.Fatalf("check: exit %d, %v", code, err)
	}
}
