// Package config holds qodbridge's settings: the structs a config file maps
// onto, strict YAML loading (an unknown key is an error naming its path),
// environment overrides (QODBRIDGE_…, which win over the file), secrets
// from the environment or from *_file keys, the zero-config resolution and
// validation whose errors name the field (FieldError). It imports nothing
// of ours, so any package may read its own settings here without pulling
// in another.
//
// The order is: Load reads the file and the environment, Resolve fills in
// defaults, Validate checks the result. Load does all three.
//
// # Environment
//
// Every key is an environment variable, by one rule derived from the
// structure: QODBRIDGE_ and the key's path, sections joined by "_",
// upper-cased: nats.stream.duplicate_window is
// QODBRIDGE_NATS_STREAM_DUPLICATE_WINDOW. Values are written as their kind
// says (EnvVar.Kind): lists comma-separated, durations in Go syntax
// ("30s"), booleans as strconv.ParseBool reads them, qod.api_key_headers
// as a JSON object; an empty variable counts as unset. A variable wins
// over the file; for a list it replaces the file's list. Every secret has
// a *_FILE variable naming a file that holds it: for the secrets with a
// *_file key it is that key's variable (QODBRIDGE_AUTH_TOKENS_FILE, one
// token per line; QODBRIDGE_QOD_TOKEN_FILE, one line), for the others its
// own (QODBRIDGE_QOD_API_KEY_HEADERS_FILE; the contents, trailing newline
// trimmed). Names from before the rule are kept as aliases
// (QODBRIDGE_PUBLIC_URL, QODBRIDGE_TRUSTED_PROXIES,
// QODBRIDGE_SESSION_SECRETS, QODBRIDGE_SUBJECT_PREFIX, QODBRIDGE_DATA_DIR,
// QODBRIDGE_NATS_SYNC, QODBRIDGE_QOD_API_TOKEN and the secrets' _FILE);
// an alias and its derived name both set is an error. EnvVars lists them
// all (`qodbridge check -env` prints it); a test sets each one and checks
// that its key changed, so a key cannot be added without its variable.
// CheckEnv finds QODBRIDGE_ variables that no setting has.
//
// Config.Origin tells where each value came from (default, the file, a
// variable, a secret file, generated), and Config.SourceFiles which files
// were read, for a process that reloads its credentials when they change.
//
// Files, by concern:
//   - types.go: Config and its sections, with the field docs; Duration.
//   - load.go: Load and Parse, strict decoding with field paths.
//   - env.go: the QODBRIDGE_* variables derived from the structure, the
//     *_file secrets, the origins of the values.
//   - resolve.go: Resolve, the zero-config start: listener addresses, the
//     public URL derived from the ingress address, the loopback rules, the
//     generated token and session secret.
//   - validate.go: Validate; each section checks its own fields.
//   - errors.go: ErrUnknownKey, ErrInvalid, FieldError.
//   - masked.go: Masked, the settings with secrets hidden, for printing.
//   - example.yaml: every key with its default, parsed by the tests.
//
// Defaults: config writes only those its own rules read (the listener
// addresses, the embedded NATS server's place, logging, the shutdown
// bound). Every other setting it leaves zero, and the package the setting
// is passed to applies its own default, which process.Effective shows.
package config
