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
// Files, by concern:
//   - types.go: Config and its sections, with the field docs; Duration.
//   - load.go: Load and Parse, strict decoding with field paths.
//   - env.go: the QODBRIDGE_* overrides and the *_file secrets.
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
