package northbound

import (
	"net/http"

	"neutrino/fsm"
)

// RBAC policies (Neutron's rbac-policies extension) on networks. Policy as
// Neutron's defaults: a member creates, sees, changes and deletes the
// policies of its own networks; a wildcard target ("*") needs the admin
// role (rule:restrict_wildcard). The state machine refuses removing a
// policy a project still relies on (fsm/rbac.go).
//
// Unlike Neutron, a network created with shared=True (or
// router:external=True) has no implicit "*" policy in the list: those
// attributes are kept on the network itself.

var rbacAttrs = map[string]attrSpec{
	"id":            {Kind: attrString},
	"project_id":    {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":     {Kind: attrString, Post: true, MaxLen: 255},
	"object_type":   {Kind: attrString, Post: true},
	"object_id":     {Kind: attrString, Post: true},
	"action":        {Kind: attrString, Post: true},
	"target_tenant": {Kind: attrString, Post: true, Put: true, MaxLen: 255},
}

func (s *Server) rbacRoutes() {
	s.neutron("GET /v2.0/rbac-policies", s.listRBAC)
	s.neutron("POST /v2.0/rbac-policies", s.createRBAC)
	s.neutron("GET /v2.0/rbac-policies/{id}", s.showRBAC)
	s.neutron("PUT /v2.0/rbac-policies/{id}", s.updateRBAC)
	s.neutron("DELETE /v2.0/rbac-policies/{id}", s.deleteRBAC)
}

func renderRBAC(p *fsm.RBACPolicy) map[string]any {
	return map[string]any{
		"id":            p.ID,
		"project_id":    p.ProjectID,
		"tenant_id":     p.ProjectID,
		"object_type":   p.ObjectType,
		"object_id":     p.ObjectID,
		"action":        p.Action,
		"target_tenant": p.TargetTenant,
	}
}

func rbacNotFound(id string) error {
	return newError(http.StatusNotFound, fsm.ErrTypeRBACNotFound, "RBAC policy of type network with ID %s not found.", id)
}

// lookupRBAC returns a policy the caller owns (or any, for an admin).
func lookupRBAC(v *fsm.View, ident Identity, id string) (*fsm.RBACPolicy, error) {
	p := v.RBACPolicy(id)
	if p == nil || !(ident.Admin || p.ProjectID == ident.ProjectID) {
		return nil, rbacNotFound(id)
	}
	return p, nil
}

func (s *Server) listRBAC(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "rbac_policies", rbacAttrs)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	var objs []map[string]any
	for _, p := range s.view(w).RBACPolicies() {
		if ident.Admin || p.ProjectID == ident.ProjectID {
			objs = append(objs, renderRBAC(p))
		}
	}
	return writeList(w, r, lq, "rbac_policies", objs)
}

func (s *Server) showRBAC(w http.ResponseWriter, r *http.Request) error {
	p, err := lookupRBAC(s.view(w), identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "rbac_policy", "rbac_policies", rbacAttrs, renderRBAC(p))
}

// checkRBACTarget validates a target project: "*" only for an admin.
func checkRBACTarget(ident Identity, target string) error {
	if target == "" {
		return badRequest("Failed to parse request. Required attribute 'target_tenant' not specified")
	}
	if target == fsm.RBACTargetAll && !ident.Admin {
		return forbidden("(rule:create_rbac_policy and rule:create_rbac_policy:target_tenant) is disallowed by policy")
	}
	return nil
}

func (s *Server) createRBAC(w http.ResponseWriter, r *http.Request) error {
	a, err := readOne(r, "rbac_policy", "rbac_policies", rbacAttrs, true)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	project, err := projectFor(ident, a)
	if err != nil {
		return err
	}
	objType, _ := a.str("object_type")
	objID, _ := a.str("object_id")
	action, _ := a.str("action")
	target, _ := a.str("target_tenant")
	for name, val := range map[string]string{"object_type": objType, "object_id": objID, "action": action} {
		if val == "" {
			return badRequest("Failed to parse request. Required attribute '%s' not specified", name)
		}
	}
	if objType != fsm.RBACObjectNetwork {
		return badRequest("Invalid input for object_type. Reason: %s is not in valid_values [network].", objType)
	}
	if action != fsm.RBACAccessAsShared && action != fsm.RBACAccessAsExternal {
		return badRequest("Invalid input for action. Reason: %s is not in valid_values [access_as_shared, access_as_external].", action)
	}
	if err := checkRBACTarget(ident, target); err != nil {
		return err
	}
	v := s.fsm.State().Read()
	// Neutron answers for an object the caller cannot act on as for one
	// that does not exist.
	n := v.Network(objID)
	if n == nil || !(ident.Admin || n.ProjectID == ident.ProjectID) {
		return newError(http.StatusNotFound, "NotFound", "Network %s could not be found.", objID)
	}
	p := &fsm.RBACPolicy{Meta: fsm.Meta{ID: newID(r.Context()), ProjectID: project},
		ObjectType: objType, ObjectID: objID, Action: action, TargetTenant: target}
	return s.createOne(w, r, "rbac_policy", "rbac_policies", p.ID, fsm.CmdRBACPolicy,
		fsm.RBACPolicyRequest{Op: fsm.OpCreate, Policy: p}, func() map[string]any { return renderRBAC(p) })
}

// createOne proposes the create of one object (id) of a collection with
// no bulk form and answers 201 with its rendering once it is committed.
func (s *Server) createOne(w http.ResponseWriter, r *http.Request, singular, plural, id string, cmd fsm.CommandType, req any, render func() map[string]any) error {
	declareCreated(r.Context(), plural, singular, false, id)
	rev, err := s.propose(r.Context(), cmd, req)
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeCreated(w, singular, plural, false, []map[string]any{render()})
	return nil
}

// commitAnswer proposes one command and, once it is committed, answers
// status with what body renders then (nothing when body is nil: a 204).
func (s *Server) commitAnswer(w http.ResponseWriter, r *http.Request, cmd fsm.CommandType, req any, status int, body func() map[string]any) error {
	rev, err := s.propose(r.Context(), cmd, req)
	if err != nil {
		return err
	}
	setRevision(w, rev)
	if body == nil {
		w.WriteHeader(status)
		return nil
	}
	writeJSON(w, status, body())
	return nil
}

func (s *Server) updateRBAC(w http.ResponseWriter, r *http.Request) error {
	a, err := readOne(r, "rbac_policy", "rbac_policies", rbacAttrs, false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	cur, err := lookupRBAC(s.fsm.State().Read(), ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	p := *cur
	if target, ok := a.str("target_tenant"); ok {
		if err := checkRBACTarget(ident, target); err != nil {
			return err
		}
		p.TargetTenant = target
	}
	return s.commitAnswer(w, r, fsm.CmdRBACPolicy, fsm.RBACPolicyRequest{Op: fsm.OpUpdate, Policy: &p}, http.StatusOK,
		func() map[string]any { return map[string]any{"rbac_policy": renderRBAC(&p)} })
}

func (s *Server) deleteRBAC(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, err := lookupRBAC(s.fsm.State().Read(), identityFrom(r.Context()), id); err != nil {
		return err
	}
	return s.commitAnswer(w, r, fsm.CmdRBACPolicy, fsm.RBACPolicyRequest{Op: fsm.OpDelete, ID: id}, http.StatusNoContent, nil)
}
