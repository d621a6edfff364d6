package client

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Error is an error status from the API, with Neutron's error body decoded:
// {"NeutronError": {"type": "NetworkNotFound", "message": "...", "detail": ""}}.
type Error struct {
	Status  int
	Type    string
	Message string
	Detail  string
	// Revision is the X-Neutrino-Revision of the answer, 0 when absent:
	// a RealizationTimeout was committed at this revision.
	Revision uint64
}

// Error reports the type and message, as the openstack CLI shows them.
func (e *Error) Error() string {
	typ := e.Type
	if typ == "" {
		typ = http.StatusText(e.Status)
	}
	msg := typ
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// IsNotFound reports whether err is an API error with status 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsRealizationTimeout reports whether err is a write that was committed
// but not realized on every chassis within the wait timeout.
func IsRealizationTimeout(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Type == ErrTypeRealizationTimeout
}

// maxErrorText caps how much of a non-JSON error body ends up in a message:
// a proxy's HTML error page is not worth printing whole.
const maxErrorText = 512

// HeaderErrorType carries the Neutron error type of an answer whose body
// is another API's (Octavia's fault body has no type).
const HeaderErrorType = "X-Neutrino-Error-Type"

// decodeErrorResponse is decodeError with the type from HeaderErrorType
// when the body has none.
func decodeErrorResponse(resp *http.Response, body []byte) *Error {
	e := decodeError(resp.StatusCode, body)
	if e.Type == "" {
		e.Type = resp.Header.Get(HeaderErrorType)
	}
	return e
}

// decodeError turns an error response into *Error. Bodies that are not
// Neutron's (a proxy in between, a panic page) keep their text as the
// message so the caller still sees what went wrong.
func decodeError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var env struct {
		NeutronError *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Detail  any    `json:"detail"`
		} `json:"NeutronError"`
	}
	if err := json.Unmarshal(body, &env); err == nil && env.NeutronError != nil {
		e.Type = env.NeutronError.Type
		e.Message = env.NeutronError.Message
		switch d := env.NeutronError.Detail.(type) {
		case nil:
		case string:
			e.Detail = d
		default:
			// Neutron documents detail as a string; keep anything richer readable.
			b, _ := json.Marshal(d)
			e.Detail = string(b)
		}
		return e
	}
	// Octavia's fault body (the load balancing API).
	var fault struct {
		Faultstring *string `json:"faultstring"`
	}
	if err := json.Unmarshal(body, &fault); err == nil && fault.Faultstring != nil {
		e.Message = *fault.Faultstring
		return e
	}
	text := strings.TrimSpace(string(body))
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "..."
	}
	e.Message = text
	return e
}
