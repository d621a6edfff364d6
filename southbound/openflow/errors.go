package openflow

import (
	"errors"
	"fmt"
	"strings"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Sentinel errors callers branch on.
var (
	// ErrNotMaster: this connection may not write flows (no ROLE_REPLY said
	// MASTER, the switch answered IS_SLAVE, or the caller demoted it).
	ErrNotMaster = errors.New("openflow: not master")
	// ErrStale: the switch refused a role request because a controller with
	// a higher generation id has asked for a role (we are fenced).
	ErrStale = errors.New("openflow: stale generation id")
	// ErrClosed: the connection is closed.
	ErrClosed = errors.New("openflow: connection closed")
	// ErrBundleFailed: a bundle was refused; nothing of it was installed.
	ErrBundleFailed = errors.New("openflow: bundle failed")
	// ErrBadFlow: a flow cannot be encoded (a bug in the caller's flow).
	ErrBadFlow = errors.New("openflow: bad flow")
	// ErrDecode: the switch sent something we could not parse.
	ErrDecode = errors.New("openflow: decode")
	// ErrHandshake: HELLO/FEATURES exchange failed.
	ErrHandshake = errors.New("openflow: handshake")
	// ErrEchoTimeout: the switch did not answer keepalives in time.
	ErrEchoTimeout = errors.New("openflow: echo timeout")
)

// OpenFlow error codes we branch on (ofp_role_request_failed_code and
// ofp_bad_request_code); the codec lacks the role ones.
const (
	roleRequestFailedStale = 0
	badRequestIsSlave      = of13.BRC_IS_SLAVE
)

// Error is an OFPT_ERROR message the switch sent in answer to one of ours.
type Error struct {
	Type, Code uint16
	Xid        uint32
	// Data is the start of the offending message as the switch echoed it.
	Data []byte
}

var errTypeNames = map[uint16]string{
	of13.ET_HELLO_FAILED:        "HELLO_FAILED",
	of13.ET_BAD_REQUEST:         "BAD_REQUEST",
	of13.ET_BAD_ACTION:          "BAD_ACTION",
	of13.ET_BAD_INSTRUCTION:     "BAD_INSTRUCTION",
	of13.PET_BAD_MATCH:          "BAD_MATCH",
	of13.ET_FLOW_MOD_FAILED:     "FLOW_MOD_FAILED",
	of13.ET_GROUP_MOD_FAILED:    "GROUP_MOD_FAILED",
	of13.ET_ROLE_REQUEST_FAILED: "ROLE_REQUEST_FAILED",
	of13.ET_EXPERIMENTER:        "EXPERIMENTER",
}

func (e *Error) Error() string {
	name, ok := errTypeNames[e.Type]
	if !ok {
		name = fmt.Sprintf("type %d", e.Type)
	}
	switch {
	case e.Type == of13.ET_BAD_REQUEST && e.Code == badRequestIsSlave:
		return "openflow: switch error BAD_REQUEST/IS_SLAVE"
	case e.Type == of13.ET_ROLE_REQUEST_FAILED && e.Code == roleRequestFailedStale:
		return "openflow: switch error ROLE_REQUEST_FAILED/STALE"
	case e.Type == of13.ET_EXPERIMENTER || e.Type == of13.ET_BAD_REQUEST && e.Code >= of13.BEC_UNKNOWN:
		if s := of13.ParseBundleError(e.Code); s != nil {
			return fmt.Sprintf("openflow: switch error %s code %d (%v)", name, e.Code, s)
		}
	}
	return fmt.Sprintf("openflow: switch error %s code %d", name, e.Code)
}

// Is maps switch errors onto the sentinels so callers can use errors.Is.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotMaster:
		return e.Type == of13.ET_BAD_REQUEST && e.Code == badRequestIsSlave
	case ErrStale:
		return e.Type == of13.ET_ROLE_REQUEST_FAILED && e.Code == roleRequestFailedStale
	}
	return false
}

// MessageError names one flow-mod of a bundle the switch refused.
type MessageError struct {
	Index int // position in the slice given to Bundle
	Mod   FlowMod
	Err   error
}

// BundleError reports a refused bundle: the per-message errors and the
// error of the control message (open/commit) if any.
type BundleError struct {
	Messages []MessageError
	Control  error
}

func (e *BundleError) Error() string {
	var sb strings.Builder
	sb.WriteString(ErrBundleFailed.Error())
	for i, m := range e.Messages {
		if i == 5 {
			fmt.Fprintf(&sb, "; and %d more", len(e.Messages)-5)
			break
		}
		fmt.Fprintf(&sb, "; message %d (%s): %v", m.Index, m.Mod.Flow.String(), m.Err)
	}
	if e.Control != nil {
		fmt.Fprintf(&sb, "; %v", e.Control)
	}
	return sb.String()
}

// Unwrap exposes ErrBundleFailed and the underlying errors (so
// errors.Is(err, ErrNotMaster) holds when the switch said IS_SLAVE).
func (e *BundleError) Unwrap() []error {
	errs := []error{ErrBundleFailed}
	if e.Control != nil {
		errs = append(errs, e.Control)
	}
	for _, m := range e.Messages {
		errs = append(errs, m.Err)
	}
	return errs
}
