package northbound

import (
	"net/http"
	"strings"
)

// Readiness is what GET /readyz reports and the readiness gate enforces.
type Readiness struct {
	// Ready: every condition holds.
	Ready bool
	// Serve: API requests may be let in. It is Ready, or a server that
	// has restored its state and joined and only lacks a leader, being
	// caught up, or its barrier as leader: a request then waits for a
	// leader for about an election (Config.LeaderWait), and a write on a
	// new leader for its barrier, within the request's deadline.
	Serve bool
	// Missing names the conditions that do not hold.
	Missing []ReadyCondition
}

// ReadyCondition is one readiness condition that does not hold.
type ReadyCondition struct {
	Condition string `json:"condition"`
	Detail    string `json:"detail"`
}

// ungated are the paths served before the server is ready: liveness,
// readiness, the cluster views that explain why it is not ready, and
// the metrics.
var ungated = map[string]bool{"/healthz": true, "/readyz": true, "/v1/cluster": true, "/v1/cluster/members": true,
	"/metrics": true}

// gate answers every request but the ungated ones with 503 and Retry-After
// at once while the server cannot serve, so that a client never waits on a
// server that is restoring or has not joined.
func (s *Server) gate(next http.Handler) http.Handler {
	if s.cfg.Readiness == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ungated[r.URL.Path] || strings.HasPrefix(r.URL.Path, "/v1/gossip/keyring") {
			next.ServeHTTP(w, r)
			return
		}
		rd := s.cfg.Readiness()
		if rd.Serve {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, newError(http.StatusServiceUnavailable, "ServiceUnavailable",
			"This server is not ready to serve (%s); retry, or use another server.", missingText(rd.Missing)))
	})
}

// readyz answers 200 when the server is ready, else 503 with the missing
// conditions, e.g. {"ready": false, "missing": [{"condition": "restored",
// "detail": "..."}]}.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := Readiness{Ready: true, Serve: true}
	if s.cfg.Readiness != nil {
		rd = s.cfg.Readiness()
	}
	missing := rd.Missing
	if missing == nil {
		missing = []ReadyCondition{}
	}
	body := map[string]any{"ready": rd.Ready, "node": s.cfg.NodeName, "missing": missing}
	if !rd.Ready {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func missingText(m []ReadyCondition) string {
	parts := make([]string, len(m))
	for i, c := range m {
		parts[i] = c.Condition + ": " + c.Detail
	}
	return strings.Join(parts, "; ")
}
