package fsm

import (
	"errors"
	"fmt"
)

// ErrorCode classifies a rejected command so that the API can map it to a
// status code without the state machine knowing about HTTP.
type ErrorCode int

// Error codes.
const (
	CodeBadRequest ErrorCode = iota + 1
	CodeNotFound
	CodeConflict
	CodePreconditionFailed
)

// Error is a validation failure returned by Apply. Type is the Neutron
// error type (e.g. "NetworkNotFound"); the state is left unchanged.
type Error struct {
	Code ErrorCode
	Type string
	Msg  string
}

func (e *Error) Error() string { return e.Type + ": " + e.Msg }

// Errorf builds an *Error.
func Errorf(code ErrorCode, typ, format string, args ...any) *Error {
	return &Error{Code: code, Type: typ, Msg: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error inside err, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// ErrStaleUpdate is returned (wrapped in an *Error with CodeConflict) when a
// compare-and-set update lost a race; the caller recomputes and retries.
const ErrTypeStaleUpdate = "StaleUpdate"
