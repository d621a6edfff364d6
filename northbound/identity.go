package northbound

import (
	"context"
	"net/http"
	"strings"
)

// Identity is who a request acts as.
type Identity struct {
	ProjectID string
	UserID    string
	Roles     []string
	Admin     bool
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
	return id
}
