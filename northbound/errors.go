package northbound

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"neutrino/fsm"
)

// apiError is an error that the API reports in Neutron's format:
// {"NeutronError": {"type": ..., "message": ..., "detail": ""}}.
type apiError struct {
	Status int
	Type   string
	Msg    string
}

func (e *apiError) Error() string { return e.Type + ": " + e.Msg }

func newError(status int, typ, format string, args ...any) *apiError {
	return &apiError{Status: status, Type: typ, Msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "HTTPBadRequest", format, args...)
}

func invalidInput(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, "InvalidInput", "Invalid input for operation: "+format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return newError(http.StatusForbidden, "PolicyNotAuthorized", format, args...)
}

var errNoLeader = newError(http.StatusServiceUnavailable, "ServiceUnavailable",
	"The cluster has no leader at the moment; the request was not applied. Retry later.")

// ErrTypeOutcomeUnknown is the Neutron error type of a write whose outcome
// this server cannot know.
const ErrTypeOutcomeUnknown = "OutcomeUnknown"

// errNotApplied is a 503 for a write that certainly was not applied.
func errNotApplied(err error) *apiError {
	return newError(http.StatusServiceUnavailable, "ServiceUnavailable",
		"The request was not applied (%v); retry later.", err)
}

// ErrTypeUpgradeIncomplete is the Neutron error type of a write that needs
// a command some server's version does not know.
const ErrTypeUpgradeIncomplete = "UpgradeIncomplete"

// errUnsupported is the 503 of a write refused because a server runs an
// older version (ErrUnsupported): it was not applied and succeeds once every
// server is upgraded.
func errUnsupported(err error) *apiError {
	detail := err.Error()
	if i := strings.Index(detail, ErrUnsupported.Error()+": "); i >= 0 {
		detail = detail[i+len(ErrUnsupported.Error())+2:]
	}
	return newError(http.StatusServiceUnavailable, ErrTypeUpgradeIncomplete,
		"The request was not applied: %s.", strings.TrimSuffix(detail, "."))
}

// errOutcomeUnknown is the 503 of a write that may or may not have been
// applied: a retry with the same key answers its outcome, or applies it
// once.
func errOutcomeUnknown(key string) *apiError {
	return newError(http.StatusServiceUnavailable, ErrTypeOutcomeUnknown,
		"The outcome of this request is unknown: it may or may not have been applied. "+
			"Retry it with the header %s: %s to apply it at most once and learn its outcome.", HeaderIdempotencyKey, key)
}

// toAPIError maps any error to the status and Neutron type it is reported with.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if fe, ok := fsm.AsError(err); ok {
		status := http.StatusBadRequest
		switch fe.Code {
		case fsm.CodeNotFound:
			status = http.StatusNotFound
		case fsm.CodeConflict:
			status = http.StatusConflict
		case fsm.CodePreconditionFailed:
			status = http.StatusPreconditionFailed
		}
		return &apiError{Status: status, Type: fe.Type, Msg: fe.Msg}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "InternalServerError",
		Msg: "Request Failed: internal server error while processing your request: " + err.Error()}
}

func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	if ae.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, ae.Status, map[string]any{"NeutronError": map[string]any{
		"type": ae.Type, "message": ae.Msg, "detail": "",
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
