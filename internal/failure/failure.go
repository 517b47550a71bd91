// Package failure defines the error type that every domain package returns
// when the caller, not the system, is at fault or when a dependency is down.
//
// It imports nothing of the project, so the domain packages (image, auth)
// share one vocabulary and the HTTP adapter maps it to statuses in one place.
package failure

import (
	"errors"
	"fmt"
)

// Kind classifies an error by what the client can do about it.
type Kind int

// The kinds of error the domain reports. Internal is the zero value so that a
// plain error never leaks as a client error by accident.
const (
	Internal      Kind = iota // a bug or an unexpected dependency answer
	Invalid                   // malformed request
	Unauthorized              // missing, invalid or expired credentials
	Forbidden                 // authenticated but not allowed
	NotFound                  // no such resource, or not the caller's
	Conflict                  // state conflict, such as an email already taken
	TooLarge                  // body over the configured limit
	Unsupported               // media type not accepted
	Unprocessable             // well-formed but cannot be accepted
	Unavailable               // a dependency is down; retry later
	Timeout                   // the client sent its request too slowly
	Gone                      // it existed, and its time ran out
)

// Error is a domain error with a stable machine-readable code and a message
// that is safe to show to the client.
type Error struct {
	Kind    Kind
	Code    string // snake_case, stable across versions
	Message string // human text, no internal details
	Err     error  // optional cause, never shown to clients
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Kind and Code, so that
// errors.Is(err, image.ErrTooManyPixels) holds for an error built with a
// message of its own (the pixel count, the limit) under the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && e.Kind == t.Kind && e.Code == t.Code
}

// New returns an Error of the given kind.
func New(kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Wrap returns an Error of the given kind that keeps err as its cause.
func Wrap(kind Kind, code, message string, err error) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: err}
}

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return nil
}

// KindOf returns the Kind of err, Internal when err carries none.
func KindOf(err error) Kind {
	if fe := As(err); fe != nil {
		return fe.Kind
	}
	return Internal
}

// CodeOf returns the code of err, "" when err carries none.
func CodeOf(err error) string {
	if fe := As(err); fe != nil {
		return fe.Code
	}
	return ""
}
