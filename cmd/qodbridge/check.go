package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/qodbridge/qodbridge/cmd/qodbridge/internal/process"
	"github.com/qodbridge/qodbridge/config"
)

const checkUsage = `usage: qodbridge check [-config file]
       qodbridge check -env

Validates the configuration (the file, if any, and the environment) and
prints the effective settings, secrets masked, each with where its value
came from: default, file (the config file), env:VAR, file:VAR (the file a
*_FILE variable names), file:KEY (the file a *_file key names) or
generated. Exit status 0 when valid, 1 when not. -env lists every
environment variable instead: QODBRIDGE_<SECTION>_<KEY> for every key.

examples:
  qodbridge check -config /etc/qodbridge/qodbridge.yaml
  QODBRIDGE_NATS_URL=nats://nats:4222 qodbridge check
  qodbridge -t -config qodbridge.yaml
  qodbridge check -env
`

// check validates a config: exit 0 when it is valid (and prints the
// effective settings with secrets masked), 1 when it is not.
func check(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", checkUsage, stderr)
	cfgPath := fs.String("config", os.Getenv("QODBRIDGE_CONFIG"), "config `file` (YAML) to check (default $QODBRIDGE_CONFIG); none checks the environment alone")
	env := fs.Bool("env", false, "list the environment variables and the keys they set, and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *env {
		return writeEnvTable(stdout)
	}
	return checkFile(*cfgPath, stdout)
}

func checkFile(path string, stdout io.Writer) error {
	cfg, err := loadChecked(func() (*config.Config, error) { return config.Load(path, os.Getenv) })
	if err != nil {
		return fmt.Errorf("config is invalid:\n%w", err)
	}
	var doc yaml.Node
	if err := doc.Encode(process.Effective(cfg).Masked()); err != nil {
		return err
	}
	leaf := map[string]bool{}
	for _, e := range config.EnvVars() {
		leaf[e.Field] = true
	}
	annotate(&doc, "", leaf, cfg.Origin)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	name := path
	if name == "" {
		name = "(no file: defaults and environment)"
	}
	fmt.Fprintf(stdout, "# %s: valid. Effective settings, secrets masked, each with its origin:\n%s", name, out)
	return nil
}

// annotate writes the origin of each setting of the mapping n (whose keys
// are under prefix) as its line comment.
func annotate(n *yaml.Node, prefix string, leaf map[string]bool, origin func(string) string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := strings.TrimPrefix(prefix+"."+k.Value, ".")
		if !leaf[key] {
			annotate(v, key, leaf, origin)
			continue
		}
		// A block list or mapping takes the comment on its key's line; a
		// scalar or an empty flow one after its value.
		o := origin(key)
		if stem, ok := strings.CutSuffix(key, "_file"); ok && leaf[stem] && v.Value == "" && o != "default" {
			o += ", read into " + stem // a *_file key is cleared once read
		}
		if v.Kind == yaml.ScalarNode || len(v.Content) == 0 {
			v.LineComment = o
		} else {
			k.LineComment = o
		}
	}
}

// writeEnvTable lists the environment variables: name, key, kind.
func writeEnvTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tKEY\tVALUE")
	secret := map[string]bool{}
	for _, e := range config.EnvVars() {
		secret[e.Field] = e.Secret
	}
	for _, e := range config.EnvVars() {
		kind := e.Kind
		stem, isFileKey := strings.CutSuffix(e.Field, "_file")
		switch {
		case e.File:
			kind = "path of a file holding " + e.Field
		case isFileKey && secret[stem]:
			kind = "path of a file holding " + stem
		case e.Kind == "list":
			kind = "comma-separated list"
		case e.Kind == "duration":
			kind = "duration (30s, 5m)"
		case e.Kind == "json":
			kind = "JSON object"
		}
		if e.Secret {
			kind += ", secret"
		}
		if e.Alias {
			kind += " (older name)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, e.Field, kind)
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\n", "QODBRIDGE_CONFIG", "(-config)", "path of the config file")
	return tw.Flush()
}
