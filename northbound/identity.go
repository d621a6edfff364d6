package northbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Identity is who a request acts as.
type Identity struct {
	ProjectID string
	UserID    string
	Roles     []string
	Admin     bool
	// ReadOnly: the roles allow listing and showing, not writing
	// (Neutron's reader role).
	ReadOnly bool
}

// readerOnly is the noauth and token strategies' rule: the reader role
// without member or admin is read-only; no role at all keeps writing, as
// before roles were checked.
func readerOnly(roles []string) bool {
	return hasRole(roles, "reader") && !hasRole(roles, "member") && !hasRole(roles, "admin")
}

type identityKey struct{}

func identityFrom(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// noauthIdentity reads the identity from headers as Neutron's
// keystonecontext does. A request that names no project acts as admin in
// the default project, as stock Neutron does with noauth.
func noauthIdentity(r *http.Request, defaultProject string) Identity {
	project := r.Header.Get("X-Project-Id")
	if project == "" {
		project = r.Header.Get("X-Tenant-Id")
	}
	if project == "" {
		return Identity{ProjectID: defaultProject, Roles: []string{"admin"}, Admin: true}
	}
	id := Identity{ProjectID: project, UserID: r.Header.Get("X-User-Id")}
	for _, role := range strings.Split(r.Header.Get("X-Roles"), ",") {
		role = strings.TrimSpace(role)
		if role == "" {
			continue
		}
		id.Roles = append(id.Roles, role)
		if role == "admin" {
			id.Admin = true
		}
	}
	id.ReadOnly = readerOnly(id.Roles)
	return id
}

// Auth strategies.
const (
	AuthNoAuth = "noauth"
	AuthToken  = "token"
)

// TokenEntry is what a token stands for in the tokens file.
type TokenEntry struct {
	ProjectID string   `json:"project_id"`
	UserID    string   `json:"user_id"`
	Roles     []string `json:"roles"`
}

// LoadTokens reads a tokens file: {"tokens": {"TOKEN": {"project_id": ...,
// "user_id": ..., "roles": ["member"]}}}.
func LoadTokens(path string) (map[string]TokenEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	var f struct {
		Tokens map[string]TokenEntry `json:"tokens"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	for tok, e := range f.Tokens {
		if tok == "" || e.ProjectID == "" {
			return nil, fmt.Errorf("tokens file %s: every token needs a non-empty token and project_id", path)
		}
	}
	return f.Tokens, nil
}

var errUnauthenticated = newError(http.StatusUnauthorized, "HTTPUnauthorized",
	"The request you have made requires authentication.")

// identify resolves who a request acts as under the configured strategy.
func (s *Server) identify(r *http.Request) (Identity, error) {
	if s.cfg.AuthStrategy == AuthKeystone {
		if s.keystone == nil {
			return Identity{}, keystoneUnavailable(errors.New("keystone is not configured"))
		}
		return s.keystone.identify(r.Context(), r.Header.Get("X-Auth-Token"))
	}
	if s.cfg.AuthStrategy != AuthToken {
		return noauthIdentity(r, s.cfg.DefaultProject), nil
	}
	tok := r.Header.Get("X-Auth-Token")
	e, ok := s.cfg.Tokens[tok]
	if tok == "" || !ok {
		return Identity{}, errUnauthenticated
	}
	id := Identity{ProjectID: e.ProjectID, UserID: e.UserID, Roles: e.Roles}
	for _, role := range e.Roles {
		if role == "admin" {
			id.Admin = true
		}
	}
	id.ReadOnly = readerOnly(id.Roles)
	return id, nil
}
