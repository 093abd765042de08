// Command qodbridge connects CAMARA Quality-on-Demand to NATS and Kafka.
//
//	qodbridge [serve] [-config file]   run the bridge (zero-config default without a file)
//	qodbridge check -config file       validate a config and print the effective settings
//	qodbridge -t -config file          same as check
//	qodbridge sim [-addr a]            run only the QoD simulator
//	qodbridge bench [flags]            load tool (see qodbridge bench -h)
//	qodbridge sessions rebuild         replay the status history into the session view
//	qodbridge version                  print version information
//
// Exit status: 0 on a clean shutdown, 1 on a runtime error, 2 on bad flags
// or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a bad flag or config: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "qodbridge:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const usage = `usage: qodbridge [command] [flags]

commands:
  serve     run the bridge (default); -config file, or the zero-config default
  check     validate a config file and print the effective settings (also -t)
  sim       run only the QoD simulator
  bench     load tool: drive an ingress, consume from the broker, report throughput,
            latency, lost and duplicate events, and the HTTP and broker ceilings
  sessions  sessions rebuild: replay the status history into the session view
  version   print version information

Run "qodbridge <command> -h" for a command's flags.
`

// run is the whole program: tests drive it in-process. It returns when ctx
// is cancelled (SIGINT/SIGTERM) and shutdown finished, or on an error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "check":
		return check(args, stdout, stderr)
	case "sim":
		return sim(ctx, args, stdout, stderr)
	case "bench":
		err := bench.Main(ctx, versionString(), args, stdout, stderr)
		if errors.Is(err, bench.ErrUsage) {
			return usageError{err}
		}
		return err
	case "sessions":
		return sessions(ctx, args, stdout, stderr)
	case "version":
		return version(stdout)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}

// Set at build time with -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

// versionString is the version alone ("(devel)" for a source build).
func versionString() string {
	v := buildVersion
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = bi.Main.Version
	}
	if v == "" || v == "(devel)" {
		return "0.0.0-devel"
	}
	return strings.TrimPrefix(v, "v")
}

func version(stdout io.Writer) error {
	v, commit, modified := buildVersion, "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if modified {
		commit += " (modified)"
	}
	fmt.Fprintf(stdout, "qodbridge %s\ncommit %s\n%s %s/%s\n", v, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
