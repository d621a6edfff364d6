package northbound

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers and values of waiting for realization.
const (
	// HeaderWait: "realized" makes a write answer only once every chassis
	// realized the revision it committed (as the query parameter
	// wait=realized does).
	HeaderWait = "X-Neutrino-Wait"
	// HeaderWaitTimeout bounds that wait, in seconds (DefaultWaitTimeout
	// when absent).
	HeaderWaitTimeout = "X-Neutrino-Wait-Timeout"
	// WaitRealized is the one value of HeaderWait and of the wait parameter.
	WaitRealized = "realized"
	// ErrTypeRealizationTimeout is the NeutronError type of a write that was
	// committed but not realized everywhere within the wait timeout (504).
	ErrTypeRealizationTimeout = "RealizationTimeout"
	// ErrTypeRealizationFailed is the type of a write that was committed but
	// whose realization could not be waited for (504), e.g. because the
	// server lost its leadership meanwhile.
	ErrTypeRealizationFailed = "RealizationFailed"
)

// DefaultWaitTimeout bounds waiting for realization when the request does
// not say.
const DefaultWaitTimeout = 30 * time.Second

// maxWaitTimeout caps X-Neutrino-Wait-Timeout.
const maxWaitTimeout = time.Hour

// Realizer is what the API needs from the leader's southbound controller.
type Realizer interface {
	// Realization reports each chassis the controller programs.
	Realization() []ChassisRealization
	// WaitRealized blocks until every chassis the leader programs has
	// realized revision rev, or ctx ends; it fails at once when this
	// server does not lead.
	WaitRealized(ctx context.Context, rev uint64) error
}

// ChassisRealization is one chassis in GET /v1/realization.
type ChassisRealization struct {
	Chassis string `json:"chassis"`
	// RealizedRevision is the highest state revision the chassis'
	// switch acknowledged.
	RealizedRevision uint64 `json:"realized_revision"`
	Connected        bool   `json:"connected"`
	Master           bool   `json:"master"`
	// Error is the controller's last error programming the chassis.
	Error string `json:"error"`
}

// RealizationStatus is the body of GET /v1/realization.
type RealizationStatus struct {
	// Revision is the leader's state revision when it answered.
	Revision uint64               `json:"revision"`
	Leader   string               `json:"leader"`
	Chassis  []ChassisRealization `json:"chassis"`
}

// realization answers GET /v1/realization. Only the leader programs the
// chassis, so a follower forwards the request.
func (s *Server) realization(w http.ResponseWriter, r *http.Request) {
	if !s.be.IsLeader() && s.forward(w, r, "", 0) {
		return
	}
	st := RealizationStatus{Revision: s.view(w).Revision(), Leader: s.cfg.NodeName, Chassis: []ChassisRealization{}}
	if s.cfg.Realizer != nil {
		if cs := s.cfg.Realizer.Realization(); cs != nil {
			st.Chassis = cs
		}
	}
	w.Header().Set(HeaderServedBy, s.cfg.NodeName)
	writeJSON(w, http.StatusOK, st)
}

// waitRequest is a write's request to wait for realization.
type waitRequest struct {
	timeout time.Duration
}

// parseWait reads the wait parameter and headers of a write: nil when it
// does not ask to wait.
func parseWait(r *http.Request) (*waitRequest, error) {
	var vals []string
	vals = append(vals, r.URL.Query()["wait"]...)
	vals = append(vals, r.Header.Values(HeaderWait)...)
	if len(vals) == 0 {
		return nil, nil
	}
	for _, v := range vals {
		if !strings.EqualFold(strings.TrimSpace(v), WaitRealized) {
			return nil, newError(http.StatusBadRequest, "HTTPBadRequest",
				"Invalid wait %q: the only value is %q.", v, WaitRealized)
		}
	}
	wr := &waitRequest{timeout: DefaultWaitTimeout}
	if v := strings.TrimSpace(r.Header.Get(HeaderWaitTimeout)); v != "" {
		d, err := parseSeconds(v)
		if err != nil || d <= 0 || d > maxWaitTimeout {
			return nil, newError(http.StatusBadRequest, "HTTPBadRequest",
				"Invalid %s %q: want a number of seconds, more than 0 and at most %d.",
				HeaderWaitTimeout, v, int(maxWaitTimeout/time.Second))
		}
		wr.timeout = d
	}
	return wr, nil
}

// parseSeconds reads "2.5" as 2.5 s; a Go duration ("1m") is accepted too.
func parseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f != f || f > float64(maxWaitTimeout/time.Second)*2 {
			return 0, errors.New("out of range")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// bufferedResponse holds a handler's status and body while the server
// waits for realization; headers go to the real writer's map, unsent.
type bufferedResponse struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.w.Header() }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) flush() {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.w.WriteHeader(b.status)
	_, _ = b.w.Write(b.body.Bytes())
}

// serveWaiting runs a write handler and, when it succeeded, holds its
// answer until the committed revision is realized or the wait times out;
// then the answer is a 504 that still carries the revision.
func (s *Server) serveWaiting(w http.ResponseWriter, r *http.Request, wr *waitRequest, run func(http.ResponseWriter)) {
	buf := &bufferedResponse{w: w}
	run(buf)
	if buf.status >= 300 {
		buf.flush()
		return
	}
	rev, err := strconv.ParseUint(w.Header().Get(HeaderRevision), 10, 64)
	if err != nil || rev == 0 {
		// Every write sets the header; if one did not, the write was
		// applied here before it answered, so the current revision covers it.
		rev = s.fsm.State().Read().Revision()
		setRevision(w, rev)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wr.timeout)
	defer cancel()
	err = s.cfg.Realizer.WaitRealized(ctx, rev)
	switch {
	case err == nil:
		buf.flush()
		return
	case r.Context().Err() != nil:
		// The client is gone; nobody reads the answer.
		return
	}
	var ae *apiError
	if ctx.Err() != nil {
		ae = newError(http.StatusGatewayTimeout, ErrTypeRealizationTimeout,
			"The change was committed at revision %d but was not realized on every chassis within %s.", rev, wr.timeout)
	} else {
		ae = newError(http.StatusGatewayTimeout, ErrTypeRealizationFailed,
			"The change was committed at revision %d but its realization could not be confirmed: %v", rev, err)
	}
	s.log.Warn("write not realized", "method", r.Method, "path", r.URL.Path, "revision", rev, "err", err)
	hdr := w.Header()
	for _, k := range []string{"Location", "Content-Length", "Etag"} {
		hdr.Del(k)
	}
	writeError(w, ae)
}
