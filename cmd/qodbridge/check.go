package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

// check validates a config: exit 0 when it is valid (and prints the
// effective settings with secrets masked), 1 when it is not.
func check(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", os.Getenv("QODBRIDGE_CONFIG"), "config file (YAML) to check; none checks the environment alone")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return checkFile(*cfgPath, stdout)
}

func checkFile(path string, stdout io.Writer) error {
	cfg, err := loadChecked(func() (*config.Config, error) { return config.Load(path, os.Getenv) })
	if err != nil {
		return fmt.Errorf("config is invalid:\n%w", err)
	}
	out, err := yaml.Marshal(process.Effective(cfg).Masked())
	if err != nil {
		return err
	}
	name := path
	if name == "" {
		name = "(no file: defaults and environment)"
	}
	fmt.Fprintf(stdout, "# %s: valid. Effective settings, secrets masked:\n%s", name, out)
	return nil
}
