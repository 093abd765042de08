package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qodbridge/qodbridge/sinks/natssink/natstest"
)

// TestBenchExitStatus: `qodbridge bench` keeps its exit statuses now that
// the load tool lives in its own package: 0 for -h, 2 for a bad flag, 1
// when an acknowledged event was lost.
func TestBenchExitStatus(t *testing.T) {
	var stderr strings.Builder
	if code := exitCode(run(context.Background(), []string{"bench", "-h"}, io.Discard, &stderr), io.Discard); code != 0 ||
		!strings.Contains(stderr.String(), "usage: qodbridge bench") {
		t.Errorf("bench -h: exit %d, stderr %q", code, stderr.String())
	}
	for _, args := range [][]string{{"-c", "0"}, {"-nope"}, {"extra"}} {
		stderr.Reset()
		err := run(context.Background(), append([]string{"bench"}, args...), io.Discard, io.Discard)
		if code := exitCode(err, &stderr); code != 2 || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("bench %v: exit %d, %q; want 2 and one line", args, code, stderr.String())
		}
	}

	// An ingress that acknowledges and publishes nothing loses every event.
	ns := natstest.Embedded(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard against hangs
	defer cancel()
	stderr.Reset()
	err := run(ctx, []string{"bench", "-url", srv.URL, "-nats", ns.ClientURL(), "-n", "5", "-c", "1", "-drain", "100ms", "-progress", "0", "-json"},
		io.Discard, io.Discard)
	if code := exitCode(err, &stderr); code != 1 || !strings.Contains(stderr.String(), "5 lost") {
		t.Errorf("bench losing events: exit %d, %q; want 1 and the loss", code, stderr.String())
	}
}

// TestBenchImports: the load tool is beside the product, not in it.
// Nothing but cmd/qodbridge imports it, and the qodbridge binary links
// one Kafka client, kafka-go: franz-go is for tests (kfake) only.
func TestBenchImports(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list packages with:", err)
	}
	const mod = "github.com/qodbridge/qodbridge"
	list := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command(goCmd, append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	for _, line := range list("-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"/...") {
		pkg, imports, _ := strings.Cut(line, " ")
		if pkg != mod+"/cmd/qodbridge" && strings.Contains(" "+imports+" ", " "+mod+"/cmd/qodbridge/internal/bench ") {
			t.Errorf("%s imports the load tool", pkg)
		}
	}
	kafkaGo := false
	for _, dep := range list("-deps", mod+"/cmd/qodbridge") {
		if strings.HasPrefix(dep, "github.com/twmb/franz-go") {
			t.Errorf("qodbridge links %s", dep)
		}
		kafkaGo = kafkaGo || dep == "github.com/segmentio/kafka-go"
	}
	if !kafkaGo {
		t.Error("qodbridge does not link kafka-go: is the list of its packages complete?")
	}
}
