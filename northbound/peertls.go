package northbound

import (
	"encoding/json"
	"io"
	"net/http"
)

// checkForwarder refuses a request that claims to come from a forwarding
// server (HeaderForwarded) when Config.VerifyForwarder rejects its
// connection: forwarded requests are trusted with the caller's identity
// headers and request id, so with TLS only a server certificate may
// forward. Without VerifyForwarder it changes nothing.
func (s *Server) checkForwarder(next http.Handler) http.Handler {
	if s.cfg.VerifyForwarder == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HeaderForwarded) != "" {
			if err := s.cfg.VerifyForwarder(r.TLS); err != nil {
				s.log.Warn("refused a forwarded request", "from", r.RemoteAddr,
					"forwarded_by", r.Header.Get(HeaderForwarded), "err", err)
				writeError(w, newError(http.StatusForbidden, "HTTPForbidden",
					"Only a server of this cluster may forward requests: %v.", err))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// scheme is how the client reached us, for the links we answer with.
func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// Keyring is this node's gossip keyring (cluster.Cluster), changed one node
// at a time: `neutrino gossip keyring` calls every member's API in turn.
type Keyring interface {
	Keyring() ([]string, error)
	KeyringInstall(key string) error
	KeyringUse(key string) error
	KeyringRemove(key string) error
}

// keyringRoutes serve this node's own keyring; never forwarded (every node
// has its own), admin only.
func (s *Server) keyringRoutes() {
	s.mux.HandleFunc("GET /v1/gossip/keyring", s.keyringHandler(s.listKeyring))
	s.mux.HandleFunc("POST /v1/gossip/keyring/{op}", s.keyringHandler(s.changeKeyring))
}

func (s *Server) keyringHandler(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ident, err := s.identify(r)
		if err == nil && !ident.Admin {
			err = forbidden("The gossip keyring requires the admin role.")
		}
		if err == nil && s.cfg.Keyring == nil {
			err = newError(http.StatusServiceUnavailable, "ServiceUnavailable", "This node has no gossip keyring.")
		}
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			writeError(w, err)
		}
	}
}

func (s *Server) listKeyring(w http.ResponseWriter, _ *http.Request) error {
	keys, err := s.cfg.Keyring.Keyring()
	if err != nil {
		return badRequest("%v", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"node": s.cfg.NodeName, "primary": keys[0], "keys": keys})
	return nil
}

func (s *Server) changeKeyring(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil || body.Key == "" {
		return badRequest(`Expected a body {"key": "BASE64"}.`)
	}
	var op func(string) error
	switch r.PathValue("op") {
	case "install":
		op = s.cfg.Keyring.KeyringInstall
	case "use":
		op = s.cfg.Keyring.KeyringUse
	case "remove":
		op = s.cfg.Keyring.KeyringRemove
	default:
		return newError(http.StatusNotFound, "HTTPNotFound", "Unknown keyring operation %q: want install, use or remove.", r.PathValue("op"))
	}
	if err := op(body.Key); err != nil {
		return badRequest("%v", err)
	}
	return s.listKeyring(w, r)
}
