package northbound

import (
	"net/http"
	"slices"

	"neutrino/fsm"
)

// QoS (Neutron's qos, qos-bw-limit-direction, qos-default and
// qos-rule-type-details extensions): policies with bandwidth-limit rules
// (one per direction) and a DSCP-marking rule, attached to ports and
// networks with qos_policy_id. Policy as Neutron's defaults: only an admin
// creates, changes and deletes policies and rules; a project sees its own
// policies and shared ones, and may attach those to its ports and
// networks. A policy in use cannot be deleted (409 QosPolicyInUse, checked
// again by the state machine). The data path enforcing the rules is the
// chassis pipeline's (docs/pipeline.md, "QoS").

var qosPolicyAttrs = map[string]attrSpec{
	"id":              {Kind: attrString},
	"name":            {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":     {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":      {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":       {Kind: attrString, Post: true, MaxLen: 255},
	"shared":          {Kind: attrBool, Post: true, Put: true},
	"is_default":      {Kind: attrBool, Post: true, Put: true},
	"tags":            {Kind: attrStrings, Post: true},
	"rules":           {Kind: attrStrings},
	"revision_number": {Kind: attrInt},
	"created_at":      {Kind: attrString},
	"updated_at":      {Kind: attrString},
}

var bwLimitRuleAttrs = map[string]attrSpec{
	"id":             {Kind: attrString},
	"qos_policy_id":  {Kind: attrString},
	"max_kbps":       {Kind: attrInt, Post: true, Put: true},
	"max_burst_kbps": {Kind: attrInt, Post: true, Put: true},
	"direction":      {Kind: attrString, Post: true, Put: true},
}

var dscpRuleAttrs = map[string]attrSpec{
	"id":            {Kind: attrString},
	"qos_policy_id": {Kind: attrString},
	"dscp_mark":     {Kind: attrInt, Post: true, Put: true},
}

// validDSCPMarks are the marks Neutron accepts (neutron_lib's
// VALID_DSCP_MARKS): 0 and the standard class selectors and PHBs.
var validDSCPMarks = []int{0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 44, 46, 48, 56}

// maxQoSKbps bounds max_kbps and max_burst_kbps (Neutron's 2^31-1).
const maxQoSKbps = 1<<31 - 1

// qosRuleKind describes one rule collection under a policy.
type qosRuleKind struct {
	typ      string // fsm.QoSRule.Type
	singular string // bandwidth_limit_rule
	plural   string // bandwidth_limit_rules
	attrs    map[string]attrSpec
}

var qosRuleKinds = []qosRuleKind{
	{fsm.QoSRuleBandwidthLimit, "bandwidth_limit_rule", "bandwidth_limit_rules", bwLimitRuleAttrs},
	{fsm.QoSRuleDSCPMarking, "dscp_marking_rule", "dscp_marking_rules", dscpRuleAttrs},
}

func (s *Server) qosRoutes() {
	s.neutron("GET /v2.0/qos/policies", s.listQoSPolicies)
	s.neutron("POST /v2.0/qos/policies", s.createQoSPolicy)
	s.neutron("GET /v2.0/qos/policies/{id}", s.showQoSPolicy)
	s.neutron("PUT /v2.0/qos/policies/{id}", s.updateQoSPolicy)
	s.neutron("DELETE /v2.0/qos/policies/{id}", s.deleteQoSPolicy)
	s.neutron("GET /v2.0/qos/rule-types", s.listQoSRuleTypes)
	s.neutron("GET /v2.0/qos/rule-types/{type}", s.showQoSRuleType)
	for _, k := range qosRuleKinds {
		base := "/v2.0/qos/policies/{id}/" + k.plural
		s.neutron("GET "+base, s.listQoSRules(k))
		s.neutron("POST "+base, s.createQoSRule(k))
		s.neutron("GET "+base+"/{rule}", s.showQoSRule(k))
		s.neutron("PUT "+base+"/{rule}", s.updateQoSRule(k))
		s.neutron("DELETE "+base+"/{rule}", s.deleteQoSRule(k))
	}
}

func renderQoSRule(policyID string, r fsm.QoSRule, withType bool) map[string]any {
	out := map[string]any{"id": r.ID, "qos_policy_id": policyID}
	switch r.Type {
	case fsm.QoSRuleBandwidthLimit:
		out["max_kbps"], out["max_burst_kbps"], out["direction"] = r.MaxKbps, r.MaxBurstKbps, r.Direction
	case fsm.QoSRuleDSCPMarking:
		out["dscp_mark"] = r.DSCPMark
	}
	if withType {
		out["type"] = r.Type
	}
	return out
}

func renderQoSPolicy(p *fsm.QoSPolicy) map[string]any {
	rules := make([]map[string]any, 0, len(p.Rules))
	for _, r := range p.Rules {
		rules = append(rules, renderQoSRule(p.ID, r, true))
	}
	return map[string]any{
		"id":              p.ID,
		"name":            p.Name,
		"description":     p.Description,
		"project_id":      p.ProjectID,
		"tenant_id":       p.ProjectID,
		"shared":          p.Shared,
		"is_default":      p.IsDefault,
		"rules":           rules,
		"tags":            nonNil(p.Tags),
		"revision_number": p.RevisionNumber,
		"created_at":      p.CreatedAt,
		"updated_at":      p.UpdatedAt,
	}
}

func qosPolicyVisible(ident Identity, p *fsm.QoSPolicy) bool {
	return ident.Admin || p.Shared || p.ProjectID == ident.ProjectID
}

func qosPolicyNotFound(id string) error {
	return newError(http.StatusNotFound, fsm.ErrTypeQoSPolicyNotFound, "QoS policy %s could not be found.", id)
}

func lookupQoSPolicy(v *fsm.View, ident Identity, id string) (*fsm.QoSPolicy, error) {
	p := v.QoSPolicy(id)
	if p == nil || !qosPolicyVisible(ident, p) {
		return nil, qosPolicyNotFound(id)
	}
	return p, nil
}

// checkQoSAttach validates a qos_policy_id set on a port or network of
// project: the policy exists and the project may use it (its own or a
// shared one), else 404 as Neutron answers.
func checkQoSAttach(v *fsm.View, ident Identity, project, id string) error {
	if id == "" {
		return nil
	}
	p := v.QoSPolicy(id)
	if p == nil || !(ident.Admin || p.Shared || p.ProjectID == project) {
		return qosPolicyNotFound(id)
	}
	return nil
}

func qosAdminOnly(ident Identity, action, what string) error {
	if !ident.Admin {
		return forbidden("rule:%s_%s is disallowed by policy", action, what)
	}
	return nil
}

func (s *Server) listQoSPolicies(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "policies", qosPolicyAttrs)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	var objs []map[string]any
	for _, p := range s.view(w).QoSPolicies() {
		if qosPolicyVisible(ident, p) {
			objs = append(objs, renderQoSPolicy(p))
		}
	}
	return writeList(w, r, lq, "policies", objs)
}

func (s *Server) showQoSPolicy(w http.ResponseWriter, r *http.Request) error {
	p, err := lookupQoSPolicy(s.view(w), identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "policy", "policies", qosPolicyAttrs, renderQoSPolicy(p))
}

func setQoSPolicyAttrs(p *fsm.QoSPolicy, a attrs) error {
	if v, ok := a.str("name"); ok {
		p.Name = v
	}
	if v, ok := a.str("description"); ok {
		p.Description = v
	}
	if v, ok := a.boolean("shared"); ok {
		p.Shared = v
	}
	if v, ok := a.boolean("is_default"); ok {
		p.IsDefault = v
	}
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return err
		}
		p.Tags = dedupTags(tags)
	}
	return nil
}

func (s *Server) createQoSPolicy(w http.ResponseWriter, r *http.Request) error {
	a, err := readOne(r, "policy", "policies", qosPolicyAttrs, true)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	if err := qosAdminOnly(ident, "create", "policy"); err != nil {
		return err
	}
	project, err := projectFor(ident, a)
	if err != nil {
		return err
	}
	ts := now()
	p := &fsm.QoSPolicy{Meta: fsm.Meta{ID: newID(r.Context()), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts}}
	if err := setQoSPolicyAttrs(p, a); err != nil {
		return err
	}
	if err := checkDefaultQoS(s.fsm.State().Read(), p); err != nil {
		return err
	}
	return s.createOne(w, r, "policy", "policies", p.ID, fsm.CmdQoSPolicy,
		fsm.QoSPolicyRequest{Op: fsm.OpCreate, Policy: p}, func() map[string]any { return renderQoSPolicy(p) })
}

// checkDefaultQoS: a project has at most one default policy (Neutron's
// QoSPolicyDefaultAlreadyExists, 409).
func checkDefaultQoS(v *fsm.View, p *fsm.QoSPolicy) error {
	if d := v.DefaultQoSPolicy(p.ProjectID); p.IsDefault && d != nil && d.ID != p.ID {
		return newError(http.StatusConflict, "QoSPolicyDefaultAlreadyExists",
			"A default QoS policy exists for project %s.", p.ProjectID)
	}
	return nil
}

// changeQoSPolicy applies change to the current policy and proposes it
// (compare-and-set, retried when another change came first).
func (s *Server) changeQoSPolicy(r *http.Request, id string, change func(v *fsm.View, p *fsm.QoSPolicy) error) (*fsm.QoSPolicy, uint64, error) {
	ident := identityFrom(r.Context())
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		cur, err := lookupQoSPolicy(v, ident, id)
		if err != nil {
			return nil, 0, err
		}
		if err := checkIfMatch(r, cur.RevisionNumber); err != nil {
			return nil, 0, err
		}
		p := cur.Copy()
		if err := change(v, p); err != nil {
			return nil, 0, err
		}
		p.RevisionNumber, p.UpdatedAt = cur.RevisionNumber+1, now()
		rev, err := s.propose(r.Context(), fsm.CmdQoSPolicy, fsm.QoSPolicyRequest{Op: fsm.OpUpdate, Policy: p, PrevIndex: cur.ModifyIndex})
		if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeStaleUpdate && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return p, rev, nil
	}
}

func (s *Server) updateQoSPolicy(w http.ResponseWriter, r *http.Request) error {
	a, err := readOne(r, "policy", "policies", qosPolicyAttrs, false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	if _, err := lookupQoSPolicy(s.fsm.State().Read(), ident, r.PathValue("id")); err != nil {
		return err
	}
	if err := qosAdminOnly(ident, "update", "policy"); err != nil {
		return err
	}
	p, rev, err := s.changeQoSPolicy(r, r.PathValue("id"), func(v *fsm.View, p *fsm.QoSPolicy) error {
		if err := setQoSPolicyAttrs(p, a); err != nil {
			return err
		}
		return checkDefaultQoS(v, p)
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"policy": renderQoSPolicy(p)})
	return nil
}

func (s *Server) deleteQoSPolicy(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	id := r.PathValue("id")
	cur, err := lookupQoSPolicy(s.fsm.State().Read(), ident, id)
	if err != nil {
		return err
	}
	if err := qosAdminOnly(ident, "delete", "policy"); err != nil {
		return err
	}
	if err := checkIfMatch(r, cur.RevisionNumber); err != nil {
		return err
	}
	return s.commitAnswer(w, r, fsm.CmdQoSPolicy, fsm.QoSPolicyRequest{Op: fsm.OpDelete, ID: id}, http.StatusNoContent, nil)
}

// qosRuleTypes are the rule types this data path enforces, with the
// parameters Neutron's rule-type details name.
var qosRuleTypes = []struct {
	typ    string
	params []map[string]any
}{
	{fsm.QoSRuleBandwidthLimit, []map[string]any{
		{"parameter_name": "max_kbps", "parameter_type": "range", "parameter_values": map[string]any{"start": 0, "end": maxQoSKbps}},
		{"parameter_name": "max_burst_kbps", "parameter_type": "range", "parameter_values": map[string]any{"start": 0, "end": maxQoSKbps}},
		{"parameter_name": "direction", "parameter_type": "choices", "parameter_values": []string{fsm.QoSEgress, fsm.QoSIngress}},
	}},
	{fsm.QoSRuleDSCPMarking, []map[string]any{
		{"parameter_name": "dscp_mark", "parameter_type": "choices", "parameter_values": validDSCPMarks},
	}},
}

func (s *Server) listQoSRuleTypes(w http.ResponseWriter, r *http.Request) error {
	out := make([]map[string]any, 0, len(qosRuleTypes))
	for _, t := range qosRuleTypes {
		out = append(out, map[string]any{"type": t.typ})
	}
	writeJSON(w, http.StatusOK, map[string]any{"rule_types": out})
	return nil
}

func (s *Server) showQoSRuleType(w http.ResponseWriter, r *http.Request) error {
	for _, t := range qosRuleTypes {
		if t.typ == r.PathValue("type") {
			writeJSON(w, http.StatusOK, map[string]any{"rule_type": map[string]any{"type": t.typ,
				"drivers": []map[string]any{{"name": "neutrino", "supported_parameters": t.params}}}})
			return nil
		}
	}
	return newError(http.StatusNotFound, "QosRuleTypeNotFound", "QoS rule type %s could not be found.", r.PathValue("type"))
}

func qosRuleNotFound(ruleID, policyID string) error {
	return newError(http.StatusNotFound, fsm.ErrTypeQoSRuleNotFound,
		"QoS rule %s for policy %s could not be found.", ruleID, policyID)
}

func (s *Server) listQoSRules(k qosRuleKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		lq, err := parseListQuery(r.URL.Query(), k.plural, k.attrs)
		if err != nil {
			return err
		}
		p, err := lookupQoSPolicy(s.view(w), identityFrom(r.Context()), r.PathValue("id"))
		if err != nil {
			return err
		}
		var objs []map[string]any
		for _, rule := range p.Rules {
			if rule.Type == k.typ {
				objs = append(objs, renderQoSRule(p.ID, rule, false))
			}
		}
		return writeList(w, r, lq, k.plural, objs)
	}
}

func (s *Server) showQoSRule(k qosRuleKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := lookupQoSPolicy(s.view(w), identityFrom(r.Context()), r.PathValue("id"))
		if err != nil {
			return err
		}
		rule := p.Rule(k.typ, r.PathValue("rule"))
		if rule == nil {
			return qosRuleNotFound(r.PathValue("rule"), p.ID)
		}
		return writeShow(w, r, k.singular, k.plural, k.attrs, renderQoSRule(p.ID, *rule, false))
	}
}

// setQoSRule validates a rule's attributes as Neutron does and checks the
// policy has no other rule of its type (and direction).
func setQoSRule(p *fsm.QoSPolicy, rule *fsm.QoSRule, a attrs) error {
	switch rule.Type {
	case fsm.QoSRuleBandwidthLimit:
		for _, k := range []string{"max_kbps", "max_burst_kbps"} {
			if n, ok := a.integer(k); ok && (n < 0 || n > maxQoSKbps) {
				return badRequest("Invalid input for %s. Reason: %d is not in range 0 through %d.", k, n, maxQoSKbps)
			}
		}
		if n, ok := a.integer("max_kbps"); ok {
			rule.MaxKbps = n
		}
		if n, ok := a.integer("max_burst_kbps"); ok {
			rule.MaxBurstKbps = n
		}
		if d, ok := a.str("direction"); ok {
			if d != fsm.QoSEgress && d != fsm.QoSIngress {
				return badRequest("Invalid input for direction. Reason: %s is not in valid_values.", d)
			}
			rule.Direction = d
		}
	case fsm.QoSRuleDSCPMarking:
		if n, ok := a.integer("dscp_mark"); ok {
			if !slices.Contains(validDSCPMarks, n) {
				return badRequest("Invalid input for dscp_mark. Reason: %d is not in valid_values.", n)
			}
			rule.DSCPMark = n
		}
	}
	for _, o := range p.Rules {
		if o.ID != rule.ID && o.Type == rule.Type && (o.Type != fsm.QoSRuleBandwidthLimit || o.Direction == rule.Direction) {
			return newError(http.StatusConflict, "QoSRulesConflict",
				"Rule %s conflicts with rule %s which already exists in QoS Policy %s.", rule.Type, o.ID, p.ID)
		}
	}
	return nil
}

func (s *Server) createQoSRule(k qosRuleKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := readOne(r, k.singular, k.plural, k.attrs, true)
		if err != nil {
			return err
		}
		ident := identityFrom(r.Context())
		policyID := r.PathValue("id")
		if _, err := lookupQoSPolicy(s.fsm.State().Read(), ident, policyID); err != nil {
			return err
		}
		if err := qosAdminOnly(ident, "create", "policy_"+k.singular); err != nil {
			return err
		}
		required := "dscp_mark"
		if k.typ == fsm.QoSRuleBandwidthLimit {
			required = "max_kbps"
		}
		if _, ok := a[required]; !ok || a[required] == nil {
			return badRequest("Failed to parse request. Required attribute '%s' not specified", required)
		}
		rule := fsm.QoSRule{ID: newID(r.Context()), Type: k.typ}
		if k.typ == fsm.QoSRuleBandwidthLimit {
			rule.Direction = fsm.QoSEgress
		}
		declareCreated(r.Context(), k.plural, k.singular, false, rule.ID)
		_, rev, err := s.changeQoSPolicy(r, policyID, func(_ *fsm.View, p *fsm.QoSPolicy) error {
			nr := rule
			if err := setQoSRule(p, &nr, a); err != nil {
				return err
			}
			p.Rules = append(p.Rules, nr)
			rule = nr
			return nil
		})
		if err != nil {
			return err
		}
		setRevision(w, rev)
		writeCreated(w, k.singular, k.plural, false, []map[string]any{renderQoSRule(policyID, rule, false)})
		return nil
	}
}

func (s *Server) updateQoSRule(k qosRuleKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := readOne(r, k.singular, k.plural, k.attrs, false)
		if err != nil {
			return err
		}
		ident := identityFrom(r.Context())
		policyID, ruleID := r.PathValue("id"), r.PathValue("rule")
		if _, err := lookupQoSPolicy(s.fsm.State().Read(), ident, policyID); err != nil {
			return err
		}
		if err := qosAdminOnly(ident, "update", "policy_"+k.singular); err != nil {
			return err
		}
		var out fsm.QoSRule
		_, rev, err := s.changeQoSPolicy(r, policyID, func(_ *fsm.View, p *fsm.QoSPolicy) error {
			rule := p.Rule(k.typ, ruleID)
			if rule == nil {
				return qosRuleNotFound(ruleID, policyID)
			}
			nr := *rule
			if err := setQoSRule(p, &nr, a); err != nil {
				return err
			}
			*rule, out = nr, nr
			return nil
		})
		if err != nil {
			return err
		}
		setRevision(w, rev)
		writeJSON(w, http.StatusOK, map[string]any{k.singular: renderQoSRule(policyID, out, false)})
		return nil
	}
}

func (s *Server) deleteQoSRule(k qosRuleKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		ident := identityFrom(r.Context())
		policyID, ruleID := r.PathValue("id"), r.PathValue("rule")
		if _, err := lookupQoSPolicy(s.fsm.State().Read(), ident, policyID); err != nil {
			return err
		}
		if err := qosAdminOnly(ident, "delete", "policy_"+k.singular); err != nil {
			return err
		}
		_, rev, err := s.changeQoSPolicy(r, policyID, func(_ *fsm.View, p *fsm.QoSPolicy) error {
			i := slices.IndexFunc(p.Rules, func(x fsm.QoSRule) bool { return x.ID == ruleID && x.Type == k.typ })
			if i < 0 {
				return qosRuleNotFound(ruleID, policyID)
			}
			p.Rules = slices.Delete(p.Rules, i, i+1)
			return nil
		})
		if err != nil {
			return err
		}
		setRevision(w, rev)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
