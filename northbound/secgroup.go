package northbound

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"neutrino/fsm"
)

// securityGroupAttrs are the attributes of a security group.
var securityGroupAttrs = map[string]attrSpec{
	"id":                   {Kind: attrString},
	"name":                 {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":          {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":           {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":            {Kind: attrString, Post: true, MaxLen: 255},
	"stateful":             {Kind: attrBool, Post: true},
	"shared":               {Kind: attrBool},
	"security_group_rules": {Kind: attrStrings},
	"tags":                 {Kind: attrStrings, Post: true},
	"revision_number":      {Kind: attrInt},
	"created_at":           {Kind: attrString},
	"updated_at":           {Kind: attrString},
}

// securityGroupRuleAttrs are the plain attributes of a rule.
var securityGroupRuleAttrs = map[string]attrSpec{
	"id":                      {Kind: attrString},
	"security_group_id":       {Kind: attrString, Post: true, UUID: true},
	"direction":               {Kind: attrString, Post: true},
	"ethertype":               {Kind: attrString, Post: true},
	"port_range_min":          {Kind: attrInt, Post: true, Nullable: true},
	"port_range_max":          {Kind: attrInt, Post: true, Nullable: true},
	"remote_ip_prefix":        {Kind: attrString, Post: true, Nullable: true},
	"remote_group_id":         {Kind: attrString, Post: true, Nullable: true, UUID: true},
	"remote_address_group_id": {Kind: attrString},
	"normalized_cidr":         {Kind: attrString},
	"belongs_to_default_sg":   {Kind: attrBool},
	"description":             {Kind: attrString, Post: true, MaxLen: 255},
	"project_id":              {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":               {Kind: attrString, Post: true, MaxLen: 255},
	"revision_number":         {Kind: attrInt},
	"created_at":              {Kind: attrString},
	"updated_at":              {Kind: attrString},
}

// protocol may be a name, a number or a numeric string.
var securityGroupRuleStructured = map[string]attrSpec{"protocol": {Post: true}}

var securityGroupRuleKnown = merged(securityGroupRuleAttrs, securityGroupRuleStructured)

// portRangeProtocols take port ranges (Neutron's SG_PORT_PROTO_NUMS).
var portRangeProtocols = map[int]bool{6: true, 17: true, 33: true, 132: true, 136: true}

func defaultGroupID(project string) string { return nameUUID("security-group/default/" + project) }

// defaultGroupBundle is a project's default group with Neutron's default
// rules: all egress, and ingress from members of the group itself. Its
// ids derive from the project so concurrent first uses agree.
func defaultGroupBundle(project, ts string) *fsm.SecurityGroupBundle {
	id := defaultGroupID(project)
	g := &fsm.SecurityGroup{
		Meta:     fsm.Meta{ID: id, ProjectID: project, Name: "default", Description: "Default security group", RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		Stateful: true, IsDefault: true,
	}
	b := &fsm.SecurityGroupBundle{Group: g}
	i := 0
	for _, dir := range []string{fsm.DirectionEgress, fsm.DirectionIngress} {
		for _, et := range []string{fsm.EtherTypeIPv4, fsm.EtherTypeIPv6} {
			r := &fsm.SecurityGroupRule{
				Meta:            fsm.Meta{ID: nameUUID("security-group/default/" + project + "/rule/" + strconv.Itoa(i)), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
				SecurityGroupID: id, Direction: dir, EtherType: et,
			}
			if dir == fsm.DirectionIngress {
				r.RemoteGroupID = id
			}
			b.Rules = append(b.Rules, r)
			i++
		}
	}
	return b
}

func renderRule(r *fsm.SecurityGroupRule, g *fsm.SecurityGroup) map[string]any {
	var min, max any
	if r.PortRangeMin != nil {
		min = *r.PortRangeMin
	}
	if r.PortRangeMax != nil {
		max = *r.PortRangeMax
	}
	return map[string]any{
		"id":                      r.ID,
		"security_group_id":       r.SecurityGroupID,
		"direction":               r.Direction,
		"ethertype":               r.EtherType,
		"protocol":                strOrNil(r.Protocol),
		"port_range_min":          min,
		"port_range_max":          max,
		"remote_ip_prefix":        strOrNil(r.RemoteIPPrefix),
		"normalized_cidr":         strOrNil(r.RemoteIPPrefix),
		"remote_group_id":         strOrNil(r.RemoteGroupID),
		"remote_address_group_id": nil,
		"belongs_to_default_sg":   g != nil && g.IsDefault,
		"description":             r.Description,
		"project_id":              r.ProjectID,
		"tenant_id":               r.ProjectID,
		"revision_number":         r.RevisionNumber,
		"created_at":              r.CreatedAt,
		"updated_at":              r.UpdatedAt,
	}
}

func renderGroup(v *fsm.View, g *fsm.SecurityGroup) map[string]any {
	rules := []map[string]any{}
	for _, r := range v.RulesOfSecurityGroup(g.ID) {
		rules = append(rules, renderRule(r, g))
	}
	return renderGroupRules(g, rules)
}

func renderGroupRules(g *fsm.SecurityGroup, rules []map[string]any) map[string]any {
	return map[string]any{
		"id":                   g.ID,
		"name":                 g.Name,
		"description":          g.Description,
		"project_id":           g.ProjectID,
		"tenant_id":            g.ProjectID,
		"stateful":             g.Stateful,
		"shared":               false,
		"security_group_rules": rules,
		"tags":                 nonNil(g.Tags),
		"revision_number":      g.RevisionNumber,
		"created_at":           g.CreatedAt,
		"updated_at":           g.UpdatedAt,
	}
}

func sgVisible(id Identity, g *fsm.SecurityGroup) bool {
	return id.Admin || g.ProjectID == id.ProjectID
}

func sgNotFound(id string) *apiError {
	return newError(http.StatusNotFound, fsm.ErrTypeSecurityGroupNotFound, "Security group %s does not exist", id)
}

func lookupGroup(v *fsm.View, ident Identity, id string) (*fsm.SecurityGroup, error) {
	g := v.SecurityGroup(id)
	if g == nil || !sgVisible(ident, g) {
		return nil, sgNotFound(id)
	}
	return g, nil
}

func ruleVisible(v *fsm.View, id Identity, r *fsm.SecurityGroupRule) bool {
	if id.Admin || r.ProjectID == id.ProjectID {
		return true
	}
	g := v.SecurityGroup(r.SecurityGroupID)
	return g != nil && g.ProjectID == id.ProjectID
}

func (s *Server) securityGroupRoutes() {
	s.neutron("GET /v2.0/security-groups", s.listGroups)
	s.neutron("POST /v2.0/security-groups", s.createGroups)
	s.neutron("GET /v2.0/security-groups/{id}", s.showGroup)
	s.neutron("PUT /v2.0/security-groups/{id}", s.updateGroup)
	s.neutron("DELETE /v2.0/security-groups/{id}", s.deleteGroup)
	s.tagRoutes("security-groups", tagsVia(s, s.groupCAS))
	s.neutron("GET /v2.0/security-group-rules", s.listRules)
	s.neutron("POST /v2.0/security-group-rules", s.createRules)
	s.neutron("GET /v2.0/security-group-rules/{id}", s.showRule)
	s.neutron("DELETE /v2.0/security-group-rules/{id}", s.deleteRule)
}

// ensureDefaultGroup creates the project's default group if it is missing
// (Neutron does so on a project's first security group request). Only the
// leader can; a stale read on a follower shows what is there.
func (s *Server) ensureDefaultGroup(ctx context.Context, project string) error {
	if s.fsm.State().Read().SecurityGroup(defaultGroupID(project)) != nil || !s.be.IsLeader() {
		return nil
	}
	// Not the request's own command: without its identity (the group's
	// id is fixed per project, so a repeat is refused, not doubled).
	_, err := s.propose(withoutRequest(ctx), fsm.CmdSecurityGroupCreate, fsm.SecurityGroupCreateRequest{
		Defaults: []*fsm.SecurityGroupBundle{defaultGroupBundle(project, now())}})
	return err
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "security_groups", securityGroupAttrs)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	if err := s.ensureDefaultGroup(r.Context(), ident.ProjectID); err != nil {
		return err
	}
	v := s.view(w)
	var objs []map[string]any
	for _, g := range v.SecurityGroups() {
		if sgVisible(ident, g) {
			objs = append(objs, renderGroup(v, g))
		}
	}
	return writeList(w, r, lq, "security_groups", objs)
}

func (s *Server) showGroup(w http.ResponseWriter, r *http.Request) error {
	v := s.view(w)
	g, err := lookupGroup(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "security_group", "security_groups", securityGroupAttrs, renderGroup(v, g))
}

func (s *Server) createGroups(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "security_group", "security_groups", true)
	if err != nil {
		return err
	}
	_, bulk := body["security_groups"]
	ident := identityFrom(r.Context())
	v := s.fsm.State().Read()
	ts := now()
	req := fsm.SecurityGroupCreateRequest{}
	seenDefault := map[string]bool{}
	for _, obj := range objs {
		a, err := parseAttrs(obj, securityGroupAttrs, true)
		if err != nil {
			return err
		}
		project, err := projectFor(ident, a)
		if err != nil {
			return err
		}
		if !seenDefault[project] && v.SecurityGroup(defaultGroupID(project)) == nil {
			seenDefault[project] = true
			req.Defaults = append(req.Defaults, defaultGroupBundle(project, ts))
		}
		g := &fsm.SecurityGroup{
			Meta:     fsm.Meta{ID: newID(r.Context()), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
			Stateful: true,
		}
		g.Name, _ = a.str("name")
		if g.Name == "default" {
			return newError(http.StatusConflict, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
		}
		g.Description, _ = a.str("description")
		if x, ok := a.boolean("stateful"); ok {
			g.Stateful = x
		}
		if tags, ok := a.strings("tags"); ok {
			if err := validTags(tags); err != nil {
				return err
			}
			g.Tags = dedupTags(tags)
		}
		b := &fsm.SecurityGroupBundle{Group: g}
		// Every new group lets everything out, as in Neutron.
		for _, et := range []string{fsm.EtherTypeIPv4, fsm.EtherTypeIPv6} {
			b.Rules = append(b.Rules, &fsm.SecurityGroupRule{
				Meta:            fsm.Meta{ID: newID(r.Context()), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
				SecurityGroupID: g.ID, Direction: fsm.DirectionEgress, EtherType: et,
			})
		}
		req.Groups = append(req.Groups, b)
	}
	ids := make([]string, len(req.Groups))
	for i, b := range req.Groups {
		ids[i] = b.Group.ID
	}
	declareCreated(r.Context(), "security-groups", "security_group", bulk, ids...)
	rev, err := s.propose(r.Context(), fsm.CmdSecurityGroupCreate, req)
	if err != nil {
		return err
	}
	setRevision(w, rev)
	out := make([]map[string]any, len(req.Groups))
	for i, b := range req.Groups {
		rules := make([]map[string]any, 0, len(b.Rules))
		for _, rl := range b.Rules {
			rules = append(rules, renderRule(rl, b.Group))
		}
		out[i] = renderGroupRules(b.Group, rules)
	}
	writeCreated(w, "security_group", "security_groups", bulk, out)
	return nil
}

func (s *Server) groupCAS(ctx context.Context, id string) casSpec[*fsm.SecurityGroup] {
	ident := identityFrom(ctx)
	return casSpec[*fsm.SecurityGroup]{
		read:    func(v *fsm.View) (*fsm.SecurityGroup, error) { return lookupGroup(v, ident, id) },
		lookup:  func(v *fsm.View) (*fsm.SecurityGroup, error) { return lookupGroup(v, ident, id) },
		copy:    (*fsm.SecurityGroup).Copy,
		command: fsm.CmdSecurityGroupUpdate,
		request: func(next *fsm.SecurityGroup, prev uint64) any {
			return fsm.SecurityGroupUpdateRequest{Group: next, PrevIndex: prev}
		},
	}
}

func (s *Server) updateGroup(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "security_group", "security_groups", false)
	if err != nil {
		return err
	}
	a, err := parseAttrs(objs[0], securityGroupAttrs, false)
	if err != nil {
		return err
	}
	g, rev, err := casUpdate(s, r.Context(), r, s.groupCAS(r.Context(), r.PathValue("id")), func(_ *fsm.View, g *fsm.SecurityGroup) error {
		if x, ok := a.str("name"); ok && x != g.Name {
			if g.IsDefault {
				return newError(http.StatusConflict, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
			}
			if x == "default" {
				return newError(http.StatusConflict, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
			}
			g.Name = x
		}
		if x, ok := a.str("description"); ok {
			g.Description = x
		}
		return nil
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"security_group": renderGroup(s.fsm.State().Read(), g)})
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	v := s.fsm.State().Read()
	g, err := lookupGroup(v, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, g.RevisionNumber); err != nil {
		return err
	}
	if g.IsDefault && !ident.Admin {
		return newError(http.StatusConflict, "SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
	}
	if err := v.CheckSecurityGroupDelete(g.ID); err != nil {
		return err
	}
	rev, err := s.propose(r.Context(), fsm.CmdSecurityGroupDelete, fsm.SecurityGroupDeleteRequest{ID: g.ID})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "security_group_rules", securityGroupRuleKnown)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	if err := s.ensureDefaultGroup(r.Context(), ident.ProjectID); err != nil {
		return err
	}
	v := s.view(w)
	var cands []*fsm.SecurityGroupRule
	if ids, ok := lq.filters["security_group_id"]; ok {
		for _, id := range uniq(ids) {
			cands = append(cands, v.RulesOfSecurityGroup(id)...)
		}
	} else {
		cands = v.SecurityGroupRules()
	}
	objs := make([]map[string]any, 0, len(cands))
	for _, rl := range cands {
		if ruleVisible(v, ident, rl) {
			objs = append(objs, renderRule(rl, v.SecurityGroup(rl.SecurityGroupID)))
		}
	}
	return writeList(w, r, lq, "security_group_rules", objs)
}

func lookupRule(v *fsm.View, ident Identity, id string) (*fsm.SecurityGroupRule, error) {
	rl := v.SecurityGroupRule(id)
	if rl == nil || !ruleVisible(v, ident, rl) {
		return nil, newError(http.StatusNotFound, fsm.ErrTypeSecurityGroupRuleNF, "Security group rule %s does not exist", id)
	}
	return rl, nil
}

func (s *Server) showRule(w http.ResponseWriter, r *http.Request) error {
	v := s.view(w)
	rl, err := lookupRule(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "security_group_rule", "security_group_rules", securityGroupRuleKnown, renderRule(rl, v.SecurityGroup(rl.SecurityGroupID)))
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	v := s.fsm.State().Read()
	rl, err := lookupRule(v, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	if g := v.SecurityGroup(rl.SecurityGroupID); !ident.Admin && g != nil && g.ProjectID != ident.ProjectID {
		return forbidden("(rule:delete_security_group_rule) is disallowed by policy")
	}
	rev, err := s.propose(r.Context(), fsm.CmdSecurityGroupRuleDelete, fsm.SecurityGroupRuleDeleteRequest{ID: rl.ID})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) createRules(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "security_group_rule", "security_group_rules", true)
	if err != nil {
		return err
	}
	_, bulk := body["security_group_rules"]
	ident := identityFrom(r.Context())
	v := s.fsm.State().Read()
	ts := now()
	var rules []*fsm.SecurityGroupRule
	keys := map[string]bool{}
	for _, obj := range objs {
		a, raw, err := parseObject(obj, securityGroupRuleAttrs, securityGroupRuleStructured, true)
		if err != nil {
			return err
		}
		rl, err := newRule(r.Context(), v, ident, a, raw, ts)
		if err != nil {
			return err
		}
		if err := v.CheckSecurityGroupRule(rl); err != nil {
			return err
		}
		if keys[rl.Key()] {
			return newError(http.StatusConflict, fsm.ErrTypeSecurityGroupRuleDup, "Duplicate Security Group Rule in POST.")
		}
		keys[rl.Key()] = true
		rules = append(rules, rl)
	}
	ids := make([]string, len(rules))
	for i, rl := range rules {
		ids[i] = rl.ID
	}
	declareCreated(r.Context(), "security-group-rules", "security_group_rule", bulk, ids...)
	rev, err := s.propose(r.Context(), fsm.CmdSecurityGroupRuleCreate, fsm.SecurityGroupRuleCreateRequest{Rules: rules})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	v = s.fsm.State().Read()
	out := make([]map[string]any, len(rules))
	for i, rl := range rules {
		out[i] = renderRule(rl, v.SecurityGroup(rl.SecurityGroupID))
	}
	writeCreated(w, "security_group_rule", "security_group_rules", bulk, out)
	return nil
}

func ruleError(typ, format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, typ, format, args...)
}

func newRule(ctx context.Context, v *fsm.View, ident Identity, a attrs, raw map[string]json.RawMessage, ts string) (*fsm.SecurityGroupRule, error) {
	sgID, _ := a.str("security_group_id")
	if sgID == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'security_group_id' not specified")
	}
	g, err := lookupGroup(v, ident, sgID)
	if err != nil {
		return nil, err
	}
	project, err := projectFor(ident, a)
	if err != nil {
		return nil, err
	}
	rl := &fsm.SecurityGroupRule{
		Meta:            fsm.Meta{ID: newID(ctx), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		SecurityGroupID: g.ID,
		EtherType:       fsm.EtherTypeIPv4,
	}
	rl.Description, _ = a.str("description")
	rl.Direction, _ = a.str("direction")
	if rl.Direction != fsm.DirectionIngress && rl.Direction != fsm.DirectionEgress {
		return nil, badRequest("Invalid input for direction. Reason: '%s' is not in ['ingress', 'egress'].", rl.Direction)
	}
	if et, ok := a.str("ethertype"); ok {
		switch strings.ToLower(et) {
		case "ipv4":
			rl.EtherType = fsm.EtherTypeIPv4
		case "ipv6":
			rl.EtherType = fsm.EtherTypeIPv6
		default:
			return nil, ruleError("SecurityGroupRuleInvalidEtherType",
				"Security group rule for ethertype '%s' not supported. Allowed values are ['IPv4', 'IPv6'].", et)
		}
	}
	proto, num, err := parseProtocol(raw["protocol"])
	if err != nil {
		return nil, err
	}
	rl.Protocol = proto
	if (num == 58) && rl.EtherType == fsm.EtherTypeIPv4 {
		return nil, ruleError("SecurityGroupEthertypeConflictWithProtocol",
			"Invalid ethertype IPv4 for protocol %s.", proto)
	}
	for _, k := range []string{"port_range_min", "port_range_max"} {
		if x, ok := a.integer(k); ok && a[k] != nil {
			if x < 0 || x > 65535 {
				return nil, ruleError("SecurityGroupInvalidPortValue", "Invalid value for port %d.", x)
			}
			if k == "port_range_min" {
				rl.PortRangeMin = &x
			} else {
				rl.PortRangeMax = &x
			}
		}
	}
	if err := checkPortRange(rl, num); err != nil {
		return nil, err
	}
	if p, ok := a.str("remote_ip_prefix"); ok && p != "" {
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, badRequest("Invalid input for remote_ip_prefix. Reason: '%s' is not a valid IP prefix.", p)
			}
			pf = netip.PrefixFrom(addr, addr.BitLen())
		}
		pf = pf.Masked()
		if pf.Addr().Is4() != (rl.EtherType == fsm.EtherTypeIPv4) {
			return nil, ruleError("SecurityGroupRuleParameterConflict",
				"Conflicting value ethertype %s for CIDR %s", rl.EtherType, pf)
		}
		rl.RemoteIPPrefix = pf.String()
	}
	if rg, ok := a.str("remote_group_id"); ok && rg != "" {
		if rl.RemoteIPPrefix != "" {
			return nil, ruleError("SecurityGroupRemoteGroupAndRemoteIpPrefix",
				"Only remote_ip_prefix or remote_group_id may be provided.")
		}
		if _, err := lookupGroup(v, ident, rg); err != nil {
			return nil, err
		}
		rl.RemoteGroupID = rg
	}
	if !ident.Admin && g.ProjectID != ident.ProjectID {
		return nil, sgNotFound(sgID)
	}
	return rl, nil
}

// parseProtocol reads a protocol given as a name, a number or a numeric
// string; it returns the stored form and the number (-1 for any).
func parseProtocol(raw json.RawMessage) (string, int, error) {
	if raw == nil || isNull(raw) {
		return "", -1, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", 0, badRequest("Invalid input for protocol. Reason: %v.", err)
	}
	var s string
	switch x := v.(type) {
	case string:
		s = strings.ToLower(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return "", 0, ruleError("SecurityGroupRuleInvalidProtocol",
			"Security group rule protocol %s not supported. Only protocol values [None, tcp, udp, icmp, icmpv6, ...] and integer representations [0 to 255] are supported.", string(raw))
	}
	num, ok := fsm.ProtocolNumber(s)
	if !ok {
		return "", 0, ruleError("SecurityGroupRuleInvalidProtocol",
			"Security group rule protocol %s not supported. Only protocol values [None, tcp, udp, icmp, icmpv6, ...] and integer representations [0 to 255] are supported.", s)
	}
	if s == "any" {
		s = ""
	}
	return s, num, nil
}

// checkPortRange is Neutron's _validate_port_range.
func checkPortRange(rl *fsm.SecurityGroupRule, proto int) error {
	min, max := rl.PortRangeMin, rl.PortRangeMax
	if min == nil && max == nil {
		return nil
	}
	if proto < 0 {
		return ruleError("SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
	}
	switch {
	case portRangeProtocols[proto]:
		if (min != nil && *min == 0) || (max != nil && *max == 0) {
			return ruleError("SecurityGroupInvalidPortValue", "Invalid value for port 0.")
		}
		if min != nil && max != nil && *min <= *max {
			return nil
		}
		return ruleError("SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
	case proto == 1 || proto == 58:
		for _, x := range []struct {
			v     *int
			field string
		}{{min, "type"}, {max, "code"}} {
			if x.v != nil && (*x.v < 0 || *x.v > 255) {
				return ruleError("SecurityGroupInvalidIcmpValue", "Invalid value for ICMP %s: %d. It must be 0 to 255.", x.field, *x.v)
			}
		}
		if min == nil {
			return ruleError("SecurityGroupMissingIcmpType", "ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", *max)
		}
		return nil
	}
	return ruleError("SecurityGroupInvalidProtocolForPort", "Invalid protocol %s for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP.", rl.Protocol)
}
