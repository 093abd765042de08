package config

import (
	"errors"
	"fmt"
)

// Errors of Load and Validate; each is wrapped with the field path.
var (
	// ErrUnknownKey reports a config file key that no setting has.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalid reports a setting whose value is not acceptable.
	ErrInvalid = errors.New("config: invalid value")
)

// FieldError names the setting that is wrong.
type FieldError struct {
	// Field is the dotted config-file path, e.g. "http.address", or the
	// environment variable name.
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)}
}
