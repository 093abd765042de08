// Package config holds qodbridge's settings: plain structs whose zero value
// means "the zero-config default", strict YAML loading (an unknown key is an
// error naming its path), environment overrides (QODBRIDGE_…, which win over
// the file), secrets from the environment or from *_file keys, and
// validation whose errors name the field.
//
// The order is: Load reads the file and the environment, Resolve fills in
// defaults, Validate checks the result. Load does all three.
package config
