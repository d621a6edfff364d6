package northbound

import (
	"context"
	"maps"
	"net/http"

	"neutrino/fsm"
)

// Quotas (Neutron's quotasv2 and quota_details extensions). The limits are
// replicated state and are enforced by the state machine when a create is
// applied (fsm/quota.go); the API only reads and sets them.

// quotaAttrs are the attributes a PUT may set: one limit per resource.
var quotaAttrs = func() map[string]attrSpec {
	out := map[string]attrSpec{}
	for _, name := range fsm.QuotaResourceNames() {
		out[name] = attrSpec{Kind: attrInt, Put: true}
	}
	return out
}()

func (s *Server) quotaRoutes() {
	s.neutron("GET /v2.0/quotas", s.listQuotas)
	s.neutron("GET /v2.0/quotas/{project}", s.showQuota)
	s.neutron("GET /v2.0/quotas/{project}/default", s.showQuotaDefault)
	s.neutron("GET /v2.0/quotas/{project}/details", s.showQuotaDetails)
	s.neutron("PUT /v2.0/quotas/{project}", s.updateQuota)
	s.neutron("DELETE /v2.0/quotas/{project}", s.deleteQuota)
	if s.cfg.AuthStrategy == AuthNoAuth {
		s.mux.HandleFunc("GET /projects/{id}", s.noauthProject)
		s.mux.HandleFunc("GET /v3/projects/{id}", s.noauthProject)
	}
}

// noauthProject answers Keystone's GET /v3/projects/{id} without Keystone
// (noauth only): any project id names a project, as it does for every
// other request in noauth. The openstack CLI resolves a project through
// the identity API before `quota set` and `quota list --project`, and with
// --os-endpoint that API is this server.
func (s *Server) noauthProject(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if validQuotaProject(id) != nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{
			"code": 404, "title": "Not Found", "message": "Could not find project: " + id + "."}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": map[string]any{
		"id": id, "name": id, "domain_id": "default", "enabled": true, "description": "", "is_domain": false,
		"parent_id": "default", "tags": []string{}}})
}

func renderLimits(limits map[string]int) map[string]any {
	out := make(map[string]any, len(limits))
	for k, v := range limits {
		out[k] = v
	}
	return out
}

// quotaReadable applies Neutron's policy: admins read any project's
// quota, members only their own.
func quotaReadable(r *http.Request, project string) error {
	ident := identityFrom(r.Context())
	if !ident.Admin && ident.ProjectID != project {
		return forbidden("(rule:get_quota) is disallowed by policy")
	}
	return nil
}

func validQuotaProject(project string) error {
	if project == "" || project == fsm.QuotaDefaultsID || len(project) > 255 {
		return badRequest("Invalid input for project_id. Reason: '%s' is not a valid project id.", project)
	}
	return nil
}

// listQuotas is GET /v2.0/quotas: the projects with explicit limits.
func (s *Server) listQuotas(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("(rule:get_quota) is disallowed by policy")
	}
	v := s.view(w)
	out := []map[string]any{}
	for _, p := range v.QuotaProjects() {
		q := renderLimits(v.QuotaOf(p))
		q["project_id"], q["tenant_id"] = p, p
		out = append(out, q)
	}
	writeJSON(w, http.StatusOK, map[string]any{"quotas": out})
	return nil
}

func (s *Server) showQuota(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("project")
	if err := validQuotaProject(p); err != nil {
		return err
	}
	if err := quotaReadable(r, p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota": renderLimits(s.view(w).QuotaOf(p))})
	return nil
}

func (s *Server) showQuotaDefault(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("project")
	if err := validQuotaProject(p); err != nil {
		return err
	}
	if err := quotaReadable(r, p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota": renderLimits(s.view(w).QuotaDefaults())})
	return nil
}

// showQuotaDetails is quota_details' GET: limit, use and reservations
// (none: a create is checked and applied in one step) per resource.
func (s *Server) showQuotaDetails(w http.ResponseWriter, r *http.Request) error {
	p := r.PathValue("project")
	if err := validQuotaProject(p); err != nil {
		return err
	}
	if err := quotaReadable(r, p); err != nil {
		return err
	}
	v := s.view(w)
	out := map[string]any{}
	for name, limit := range v.QuotaOf(p) {
		out[name] = map[string]any{"limit": limit, "used": v.QuotaUsage(p, name), "reserved": 0}
	}
	writeJSON(w, http.StatusOK, map[string]any{"quota": out})
	return nil
}

func (s *Server) updateQuota(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("(rule:update_quota) is disallowed by policy")
	}
	p := r.PathValue("project")
	if err := validQuotaProject(p); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "quota", "quotas", false)
	if err != nil {
		return err
	}
	a, err := parseAttrs(objs[0], quotaAttrs, false)
	if err != nil {
		return err
	}
	limits := map[string]int{}
	for name := range a {
		limits[name], _ = a.integer(name)
	}
	if err := fsm.CheckQuotaLimits(limits); err != nil {
		return err
	}
	rev, err := s.propose(r.Context(), fsm.CmdQuotaSet, fsm.QuotaSetRequest{ProjectID: p, Limits: limits})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"quota": renderLimits(s.fsm.State().Read().QuotaOf(p))})
	return nil
}

func (s *Server) deleteQuota(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("(rule:delete_quota) is disallowed by policy")
	}
	p := r.PathValue("project")
	if err := validQuotaProject(p); err != nil {
		return err
	}
	rev, err := s.propose(r.Context(), fsm.CmdQuotaDelete, fsm.QuotaDeleteRequest{ProjectID: p})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// SyncQuotaDefaults commits the configured default limits
// (Config.QuotaDefaults) when the replicated ones differ; the agent calls
// it on the leader when it gains leadership, so the leader's
// configuration is the one in force.
func (s *Server) SyncQuotaDefaults(ctx context.Context) error {
	want := map[string]int{}
	for _, name := range fsm.QuotaResourceNames() {
		want[name] = fsm.QuotaUnlimited
	}
	maps.Copy(want, s.cfg.QuotaDefaults)
	if maps.Equal(want, s.fsm.State().Read().QuotaDefaults()) {
		return nil
	}
	_, err := s.propose(ctx, fsm.CmdQuotaDefaults, fsm.QuotaDefaultsRequest{Limits: want})
	return err
}
