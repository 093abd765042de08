// Command qodbridge connects CAMARA Quality-on-Demand to NATS and Kafka.
//
//	qodbridge [serve] [-config file]   run the bridge (zero-config default without a file)
//	qodbridge check [-config file]     validate a config, print the effective settings and their origins
//	qodbridge check -env               list the environment variables
//	qodbridge -t -config file          same as check
//	qodbridge sim [-addr a]            run only the QoD simulator
//	qodbridge bench [flags]            load tool (see qodbridge bench -h)
//	qodbridge sessions rebuild         replay the status history into the session view
//	qodbridge version, --version       print version information
//	qodbridge help [command], -h       list the commands, or a command's usage
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

const usage = `qodbridge connects CAMARA Quality-on-Demand to NATS JetStream and Kafka.

usage: qodbridge [command] [flags]

commands:
  serve     run the bridge (the default command); without -config, the
            zero-config default: everything on loopback, an embedded NATS
            server, the built-in QoD simulator
  check     validate the config, print the effective settings (secrets
            masked) and where each came from; -env lists the environment
            variables (also: qodbridge -t)
  sim       run only the QoD simulator
  bench     load tool: drive an ingress, consume from the broker, report
            throughput, latency, lost and duplicate events, and the HTTP and
            broker ceilings
  sessions  sessions rebuild: replay the status history into the session
            view
  version   print the version, the commit and the Go version (also --version)
  help      print this list, or a command's usage: qodbridge help <command>

Every setting is also an environment variable: QODBRIDGE_<SECTION>_<KEY>
(qodbridge check -env lists them). Run "qodbridge <command> -h" for a
command's flags and examples.
`

// run is the whole program: tests drive it in-process. It returns when ctx
// is cancelled (SIGINT/SIGTERM) and shutdown finished, or on an error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		case "-version", "--version":
			return version(args[1:], stdout, stderr)
		}
		if len(args[0]) > 0 && args[0][0] != '-' {
			cmd, args = args[0], args[1:]
		}
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
		return version(args, stdout, stderr)
	case "help":
		switch {
		case len(args) == 0:
			fmt.Fprint(stdout, usage)
			return nil
		case len(args) > 1 || args[0] == "help":
			return usagef("help: want one command, got %q", strings.Join(args, " "))
		}
		// The command's usage, on stdout: it was asked for.
		if err := run(ctx, []string{args[0], "-h"}, stdout, stdout); !errors.Is(err, flag.ErrHelp) {
			return err
		}
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}

// newFlags is a command's flag set whose -h prints head (a usage line, a
// description and examples), then the flags.
func newFlags(name, head string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, head)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(stderr, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args into fs: -h is flag.ErrHelp (exit 0), another
// bad flag or an argument a usage error (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
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

const versionUsage = `usage: qodbridge version
       qodbridge --version

Prints the version of the module, the commit it was built from (from the
build's VCS information; "(modified)" when the work tree had changes) and
the Go version and platform.

examples:
  qodbridge version
  docker run --rm ghcr.io/qodbridge/qodbridge --version
`

func version(args []string, stdout, stderr io.Writer) error {
	if err := parseFlags(newFlags("version", versionUsage, stderr), args); err != nil {
		return err
	}
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
