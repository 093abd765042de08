package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
