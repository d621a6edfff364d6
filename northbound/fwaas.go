package northbound

// Neutron FWaaS v2 (issue 16): /v2.0/fwaas/firewall_rules,
// firewall_policies (with insert_rule / remove_rule) and firewall_groups,
// with neutron-lib's firewall_v2 attribute maps and neutron-fwaas'
// checks. The collections share the VPNaaS handlers (vpnKind) with three
// hooks: shared objects are visible to every project, a project's default
// firewall group is made on its first list or create of groups, and the
// default group is protected as neutron-fwaas protects it. What needs the
// state (references, in use, ports) is checked again by the state machine
// at apply time (fsm/fwaas_apply.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"neutrino/fsm"
)

func fwCommonAttrs(extra map[string]attrSpec) map[string]attrSpec {
	return vpnCommonAttrs(merged(map[string]attrSpec{
		"shared": {Kind: attrBool, Post: true, Put: true},
	}, extra))
}

var firewallRuleAttrs = fwCommonAttrs(map[string]attrSpec{
	"protocol":                      {Kind: attrString, Post: true, Put: true, Nullable: true},
	"ip_version":                    {Kind: attrInt, Post: true, Put: true},
	"source_ip_address":             {Kind: attrString, Post: true, Put: true, Nullable: true},
	"destination_ip_address":        {Kind: attrString, Post: true, Put: true, Nullable: true},
	"action":                        {Kind: attrString, Post: true, Put: true},
	"enabled":                       {Kind: attrBool, Post: true, Put: true},
	"firewall_policy_id":            {Kind: attrStrings},
	"source_firewall_group_id":      {Kind: attrString, Post: true, Put: true, Nullable: true},
	"destination_firewall_group_id": {Kind: attrString, Post: true, Put: true, Nullable: true},
})

// Ports are strings ("80", "80:90") or integers: structured.
var firewallRuleStructured = map[string]attrSpec{
	"source_port":      {Post: true, Put: true},
	"destination_port": {Post: true, Put: true},
}

var firewallPolicyAttrs = fwCommonAttrs(map[string]attrSpec{
	"firewall_rules": {Kind: attrStrings, Post: true, Put: true, Nullable: true},
	"audited":        {Kind: attrBool, Post: true, Put: true},
})

var firewallGroupAttrs = fwCommonAttrs(map[string]attrSpec{
	"ingress_firewall_policy_id": {Kind: attrString, Post: true, Put: true, Nullable: true},
	"egress_firewall_policy_id":  {Kind: attrString, Post: true, Put: true, Nullable: true},
	"ports":                      {Kind: attrStrings, Post: true, Put: true, Nullable: true},
	"admin_state_up":             {Kind: attrBool, Post: true, Put: true},
	"status":                     {Kind: attrString},
})

var firewallProtocols = []string{fsm.FirewallProtoTCP, fsm.FirewallProtoUDP, fsm.FirewallProtoICMP, "any"}

var firewallActions = []string{fsm.FirewallAllow, fsm.FirewallDeny, fsm.FirewallReject}

func firewallError(status int, typ, format string, args ...any) *apiError {
	return newError(status, typ, format, args...)
}

// parsePortRange reads a rule port: "N", "N:M" or an integer, 1-65535.
func parsePortRange(name string, raw json.RawMessage) (lo, hi int, err error) {
	if raw == nil || isNull(raw) {
		return 0, 0, nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return 0, 0, badRequest("Invalid input for %s. Reason: '%s' is not a valid port range.", name, string(raw))
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return 0, 0, badRequest("Invalid input for %s. Reason: '%s' is not a valid port range.", name, string(raw))
	}
	if s == "" {
		return 0, 0, nil
	}
	bad := firewallError(http.StatusBadRequest, "FirewallRuleInvalidPortValue", "Invalid value for port %s.", s)
	a, b, ranged := strings.Cut(s, ":")
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, bad
	}
	hi = lo
	if ranged {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, bad
		}
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, bad
	}
	return lo, hi, nil
}

func renderPortRange(lo, hi int) any {
	switch {
	case lo == 0 && hi == 0:
		return nil
	case lo == hi:
		return strconv.Itoa(lo)
	}
	return fmt.Sprintf("%d:%d", lo, hi)
}

// canonicalFWAddress reads a rule address: an address (stored as a host
// prefix) or a CIDR, as its canonical network prefix.
func canonicalFWAddress(name, s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, badRequest("Invalid input for %s. Reason: '%s' is neither a valid IP address, nor is it a valid IP subnet.", name, s)
	}
	return p.Masked(), nil
}

func buildFirewallRule(_ context.Context, _ *fsm.View, ident Identity, a attrs, raw map[string]json.RawMessage, r *fsm.FirewallRule, post bool) error {
	if post {
		r.IPVersion, r.Action, r.Enabled = 4, fsm.FirewallDeny, true
	}
	if x, ok := a.str("protocol"); ok {
		switch {
		case x == "" && a["protocol"] == nil, x == "any":
			r.Protocol = ""
		case slices.Contains(firewallProtocols, strings.ToLower(x)):
			r.Protocol = strings.ToLower(x)
		default:
			return firewallError(http.StatusBadRequest, "FirewallRuleInvalidProtocol",
				"Firewall rule protocol %s is not supported. Only protocol values tcp, udp, icmp and any (or null) are supported.", x)
		}
	}
	if n, ok := a.integer("ip_version"); ok {
		if n != 4 && n != 6 {
			return badRequest("Invalid input for ip_version. Reason: '%d' is not in [4, 6].", n)
		}
		r.IPVersion = n
	}
	if err := setChoice(a, "action", firewallActions, &r.Action); err != nil {
		return err
	}
	if x, ok := a.boolean("enabled"); ok {
		r.Enabled = x
	}
	if x, ok := a.boolean("shared"); ok {
		if x && !ident.Admin {
			return forbidden("(rule:create_firewall_rule and rule:create_firewall_rule:shared) is disallowed by policy")
		}
		r.Shared = x
	}
	for _, k := range []string{"source_firewall_group_id", "destination_firewall_group_id"} {
		if x, _ := a.str(k); x != "" {
			return badRequest("Invalid input for %s. Reason: remote firewall groups are not supported by this endpoint.", k)
		}
	}
	for name, dst := range map[string]*string{"source_ip_address": &r.SourceIP, "destination_ip_address": &r.DestinationIP} {
		if x, ok := a.str(name); ok {
			*dst = ""
			if x != "" {
				p, err := canonicalFWAddress(name, x)
				if err != nil {
					return err
				}
				*dst = p.String()
			}
		}
	}
	var err error
	if raw, ok := raw["source_port"]; ok {
		if r.SourcePortMin, r.SourcePortMax, err = parsePortRange("source_port", raw); err != nil {
			return err
		}
	}
	if raw, ok := raw["destination_port"]; ok {
		if r.DestinationPortMin, r.DestinationPortMax, err = parsePortRange("destination_port", raw); err != nil {
			return err
		}
	}
	return checkFirewallRule(r)
}

// checkFirewallRule is neutron-fwaas' consistency check of a whole rule
// (after an update's changes too).
func checkFirewallRule(r *fsm.FirewallRule) error {
	hasPorts := r.SourcePortMax != 0 || r.DestinationPortMax != 0
	switch {
	case hasPorts && r.Protocol == fsm.FirewallProtoICMP:
		return firewallError(http.StatusBadRequest, "FirewallRuleInvalidICMPParameter",
			"Source, destination port are not allowed when protocol is set to ICMP.")
	case hasPorts && r.Protocol == "":
		return firewallError(http.StatusBadRequest, "FirewallRuleWithPortWithoutProtocolInvalid",
			"Source/destination port requires a protocol.")
	}
	for _, s := range []string{r.SourceIP, r.DestinationIP} {
		if s == "" {
			continue
		}
		if p := netip.MustParsePrefix(s); (p.Addr().Is4() && r.IPVersion != 4) || (p.Addr().Is6() && r.IPVersion != 6) {
			return firewallError(http.StatusBadRequest, "FirewallIpAddressConflict",
				"Invalid input - IP addresses do not agree with IP Version.")
		}
	}
	return nil
}

func isDefaultPolicyName(n string) bool {
	return n == fsm.FirewallDefaultIngressPolicy || n == fsm.FirewallDefaultEgressPolicy
}

// checkNotDefaultName refuses the names neutron-fwaas reserves for a
// project's default objects.
func checkNotDefaultName(a attrs, what string, reserved ...string) error {
	if x, ok := a.str("name"); ok && slices.Contains(reserved, x) {
		return firewallError(http.StatusConflict, fsm.ErrTypeFirewallDefaultExists,
			"Default %s with name %s already exists.", what, x)
	}
	return nil
}

func buildFirewallPolicy(_ context.Context, v *fsm.View, ident Identity, a attrs, _ map[string]json.RawMessage, p *fsm.FirewallPolicy, post bool) error {
	if cur := v.FirewallPolicy(p.ID); !post && cur != nil && isDefaultPolicyName(cur.Name) {
		return firewallError(http.StatusConflict, fsm.ErrTypeFirewallDefaultRestricted,
			"Operation cannot be performed on default firewall policy %s.", p.ID)
	}
	if err := checkNotDefaultName(a, "Firewall Policy", fsm.FirewallDefaultIngressPolicy, fsm.FirewallDefaultEgressPolicy); err != nil {
		return err
	}
	if x, ok := a.boolean("shared"); ok {
		if x && !ident.Admin {
			return forbidden("(rule:create_firewall_policy and rule:create_firewall_policy:shared) is disallowed by policy")
		}
		p.Shared = x
	}
	if rules, ok := a.strings("firewall_rules"); ok {
		for _, id := range rules {
			if r := v.FirewallRule(id); r == nil || !(ident.Admin || r.ProjectID == ident.ProjectID || r.Shared) {
				return firewallError(http.StatusNotFound, fsm.ErrTypeFirewallRuleNotFound, "Firewall rule %s could not be found.", id)
			}
		}
		p.Rules = rules
	}
	// Any change makes a policy unaudited unless the change says audited
	// (neutron-fwaas).
	p.Audited, _ = a.boolean("audited")
	return nil
}

func buildFirewallGroup(_ context.Context, v *fsm.View, ident Identity, a attrs, _ map[string]json.RawMessage, g *fsm.FirewallGroup, post bool) error {
	if post {
		g.AdminStateUp = true
		if err := checkNotDefaultName(a, "Firewall Group", fsm.FirewallDefaultGroup); err != nil {
			return err
		}
	} else if cur := v.FirewallGroup(g.ID); cur != nil && cur.IsDefault() {
		// The generic update has set the name already: judge by the stored
		// group.
		restricted := []string{"name", "description", "admin_state_up", "ingress_firewall_policy_id", "egress_firewall_policy_id"}
		if ident.Admin {
			restricted = []string{"name"}
		}
		for _, k := range restricted {
			if _, ok := a[k]; ok {
				return firewallError(http.StatusConflict, fsm.ErrTypeFirewallDefaultRestricted,
					"Operation %s cannot be performed on Default Firewall Group %s.", k, g.ID)
			}
		}
	} else if err := checkNotDefaultName(a, "Firewall Group", fsm.FirewallDefaultGroup); err != nil {
		return err
	}
	if x, ok := a.boolean("shared"); ok {
		if x && !ident.Admin {
			return forbidden("(rule:create_firewall_group and rule:create_firewall_group:shared) is disallowed by policy")
		}
		g.Shared = x
	}
	if x, ok := a.boolean("admin_state_up"); ok {
		g.AdminStateUp = x
	}
	for name, dst := range map[string]*string{"ingress_firewall_policy_id": &g.IngressPolicyID, "egress_firewall_policy_id": &g.EgressPolicyID} {
		if x, ok := a.str(name); ok {
			if x != "" {
				if p := v.FirewallPolicy(x); p == nil || !(ident.Admin || p.ProjectID == ident.ProjectID || p.Shared) {
					return firewallError(http.StatusNotFound, fsm.ErrTypeFirewallPolicyNotFound, "Firewall policy %s could not be found.", x)
				}
			}
			*dst = x
		}
	}
	if ports, ok := a.strings("ports"); ok {
		for _, id := range ports {
			// Another project's port is invisible to a member: not found,
			// as Neutron's get_port answers in the member's context.
			if p := v.Port(id); p == nil || !(ident.Admin || p.ProjectID == ident.ProjectID) {
				return newError(http.StatusNotFound, fsm.ErrTypePortNotFound, "Port %s could not be found.", id)
			}
		}
		g.Ports = nonNil(ports)
	}
	return nil
}

func renderFirewallRule(v *fsm.View, r *fsm.FirewallRule) map[string]any {
	policies := []string{}
	for _, p := range v.FirewallPoliciesOfRule(r.ID) {
		policies = append(policies, p.ID)
	}
	proto := any(nil)
	if r.Protocol != "" {
		proto = r.Protocol
	}
	return renderVPNMeta(&r.Meta, map[string]any{
		"protocol":                      proto,
		"ip_version":                    r.IPVersion,
		"source_ip_address":             strOrNil(r.SourceIP),
		"destination_ip_address":        strOrNil(r.DestinationIP),
		"source_port":                   renderPortRange(r.SourcePortMin, r.SourcePortMax),
		"destination_port":              renderPortRange(r.DestinationPortMin, r.DestinationPortMax),
		"action":                        r.Action,
		"enabled":                       r.Enabled,
		"shared":                        r.Shared,
		"firewall_policy_id":            policies,
		"source_firewall_group_id":      nil,
		"destination_firewall_group_id": nil,
	})
}

func renderFirewallPolicy(p *fsm.FirewallPolicy) map[string]any {
	return renderVPNMeta(&p.Meta, map[string]any{
		"firewall_rules": nonNil(p.Rules),
		"audited":        p.Audited,
		"shared":         p.Shared,
	})
}

func renderFirewallGroup(g *fsm.FirewallGroup) map[string]any {
	return renderVPNMeta(&g.Meta, map[string]any{
		"ingress_firewall_policy_id": strOrNil(g.IngressPolicyID),
		"egress_firewall_policy_id":  strOrNil(g.EgressPolicyID),
		"ports":                      nonNil(g.Ports),
		"admin_state_up":             g.AdminStateUp,
		"shared":                     g.Shared,
		"status":                     g.Status,
	})
}

// found adapts a View reader that answers nil for a missing object.
func found[P comparable](get func(*fsm.View, string) P) func(*fsm.View, string) (P, bool) {
	return func(v *fsm.View, id string) (P, bool) {
		var zero P
		o := get(v, id)
		return o, o != zero
	}
}

func newOf[E any]() *E { return new(E) }

func fwNotFound(typ, what string) func(string) error {
	return func(id string) error {
		return newError(http.StatusNotFound, typ, "%s %s could not be found.", what, id)
	}
}

func fwDelete[T fsm.Object](_ Identity, o T) (any, error) {
	return fsm.FirewallDeleteRequest{ID: o.GetMeta().ID}, nil
}

func (s *Server) firewallRoutes() {
	// neutron-fwaas makes the project's default group on a list of any of
	// the three, and on a create of a group.
	prepare := func(r *http.Request) error {
		if r.Method == http.MethodPost && !strings.HasSuffix(r.URL.Path, "firewall_groups") {
			return nil
		}
		return s.ensureDefaultFirewallGroup(r.Context(), identityFrom(r.Context()).ProjectID)
	}
	rules := &vpnKind[*fsm.FirewallRule]{
		path: "fwaas/firewall_rules", singular: "firewall_rule", plural: "firewall_rules",
		specs: firewallRuleAttrs, structured: firewallRuleStructured,
		render: func(r *fsm.FirewallRule) map[string]any { return renderFirewallRule(s.fsm.State().Read(), r) },
		get:    found((*fsm.View).FirewallRule), list: (*fsm.View).FirewallRules,
		notFound: fwNotFound(fsm.ErrTypeFirewallRuleNotFound, "Firewall rule"),
		copy:     (*fsm.FirewallRule).Copy, build: buildFirewallRule, newObj: newOf[fsm.FirewallRule],
		create:    fsm.CmdFirewallRuleCreate,
		createReq: func(r *fsm.FirewallRule) any { return fsm.FirewallRuleCreateRequest{Rule: r} },
		update:    fsm.CmdFirewallRuleUpdate,
		updateReq: func(r *fsm.FirewallRule, prev uint64) any {
			return fsm.FirewallRuleUpdateRequest{Rule: r, PrevIndex: prev}
		},
		del:     fsm.CmdFirewallRuleDelete,
		visible: func(_ Identity, r *fsm.FirewallRule) bool { return r.Shared },
		delReq:  fwDelete[*fsm.FirewallRule], prepare: prepare,
	}
	policies := &vpnKind[*fsm.FirewallPolicy]{
		path: "fwaas/firewall_policies", singular: "firewall_policy", plural: "firewall_policies",
		specs: firewallPolicyAttrs, render: renderFirewallPolicy,
		get: found((*fsm.View).FirewallPolicy), list: (*fsm.View).FirewallPolicies,
		notFound: fwNotFound(fsm.ErrTypeFirewallPolicyNotFound, "Firewall policy"),
		copy:     (*fsm.FirewallPolicy).Copy, build: buildFirewallPolicy, newObj: newOf[fsm.FirewallPolicy],
		create:    fsm.CmdFirewallPolicyCreate,
		createReq: func(p *fsm.FirewallPolicy) any { return fsm.FirewallPolicyCreateRequest{Policy: p} },
		update:    fsm.CmdFirewallPolicyUpdate,
		updateReq: func(p *fsm.FirewallPolicy, prev uint64) any {
			return fsm.FirewallPolicyUpdateRequest{Policy: p, PrevIndex: prev}
		},
		del:     fsm.CmdFirewallPolicyDelete,
		visible: func(_ Identity, p *fsm.FirewallPolicy) bool { return p.Shared },
		delReq:  fwDelete[*fsm.FirewallPolicy], prepare: prepare,
	}
	groups := &vpnKind[*fsm.FirewallGroup]{
		path: "fwaas/firewall_groups", singular: "firewall_group", plural: "firewall_groups",
		specs: firewallGroupAttrs, render: renderFirewallGroup,
		get: found((*fsm.View).FirewallGroup), list: (*fsm.View).FirewallGroups,
		notFound: fwNotFound(fsm.ErrTypeFirewallGroupNotFound, "Firewall group"),
		copy:     (*fsm.FirewallGroup).Copy, build: buildFirewallGroup, newObj: newOf[fsm.FirewallGroup],
		create:    fsm.CmdFirewallGroupCreate,
		createReq: func(g *fsm.FirewallGroup) any { return fsm.FirewallGroupCreateRequest{Group: g} },
		update:    fsm.CmdFirewallGroupUpdate,
		updateReq: func(g *fsm.FirewallGroup, prev uint64) any {
			return fsm.FirewallGroupUpdateRequest{Group: g, PrevIndex: prev}
		},
		del:     fsm.CmdFirewallGroupDelete,
		visible: func(_ Identity, g *fsm.FirewallGroup) bool { return g.Shared },
		prepare: prepare,
		delReq: func(ident Identity, g *fsm.FirewallGroup) (any, error) {
			if g.IsDefault() && !ident.Admin {
				return nil, firewallError(http.StatusConflict, fsm.ErrTypeFirewallCannotRemoveDefault, "Deleting default firewall group not allowed.")
			}
			return fsm.FirewallDeleteRequest{ID: g.ID, WithPolicies: g.IsDefault()}, nil
		},
	}
	registerVPN(s, rules)
	registerVPN(s, policies)
	registerVPN(s, groups)
	s.neutron("PUT /v2.0/fwaas/firewall_policies/{id}/insert_rule", func(w http.ResponseWriter, r *http.Request) error {
		return s.policyRuleAction(w, r, policies, true)
	})
	s.neutron("PUT /v2.0/fwaas/firewall_policies/{id}/remove_rule", func(w http.ResponseWriter, r *http.Request) error {
		return s.policyRuleAction(w, r, policies, false)
	})
}

// policyRuleAction is insert_rule (insert_before, else insert_after, else
// at the top) and remove_rule; both answer the bare policy as Neutron's
// member actions do, and leave it unaudited.
func (s *Server) policyRuleAction(w http.ResponseWriter, r *http.Request, k *vpnKind[*fsm.FirewallPolicy], insert bool) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	str := func(key string) (string, error) {
		raw, ok := body[key]
		if !ok || isNull(raw) {
			return "", nil
		}
		var x string
		if json.Unmarshal(raw, &x) != nil {
			return "", badRequest("Invalid input for %s. Reason: '%s' is not a valid string.", key, string(raw))
		}
		return x, nil
	}
	ruleID, err := str("firewall_rule_id")
	if err != nil {
		return err
	}
	before, err := str("insert_before")
	if err != nil {
		return err
	}
	after, err := str("insert_after")
	if err != nil {
		return err
	}
	if ruleID == "" {
		return firewallError(http.StatusBadRequest, "FirewallRuleInfoMissing", "Missing rule info argument for insert/remove rule operation.")
	}
	ident := identityFrom(r.Context())
	p, rev, err := policyRuleUpdate(s, r, k, func(v *fsm.View, next *fsm.FirewallPolicy) error {
		if rule := v.FirewallRule(ruleID); rule == nil || !(ident.Admin || rule.ProjectID == ident.ProjectID || rule.Shared) {
			return firewallError(http.StatusNotFound, fsm.ErrTypeFirewallRuleNotFound, "Firewall rule %s could not be found.", ruleID)
		}
		next.Audited = false
		at := slices.Index(next.Rules, ruleID)
		if !insert {
			if at < 0 {
				return firewallError(http.StatusBadRequest, fsm.ErrTypeFirewallRuleNotAssociated,
					"Firewall rule %s is not associated with firewall policy %s.", ruleID, next.ID)
			}
			next.Rules = slices.Delete(next.Rules, at, at+1)
			return nil
		}
		if at >= 0 {
			return firewallError(http.StatusConflict, fsm.ErrTypeFirewallRuleAlreadyAssociated,
				"Operation cannot be performed since firewall rule %s is already associated with firewall policy %s.", ruleID, next.ID)
		}
		pos := 0
		if ref, offset := before, 0; ref != "" || after != "" {
			if ref == "" {
				ref, offset = after, 1
			}
			i := slices.Index(next.Rules, ref)
			if i < 0 {
				return firewallError(http.StatusBadRequest, fsm.ErrTypeFirewallRuleNotAssociated,
					"Firewall rule %s is not associated with firewall policy %s.", ref, next.ID)
			}
			pos = i + offset
		}
		next.Rules = slices.Insert(next.Rules, pos, ruleID)
		return nil
	}, func(next *fsm.FirewallPolicy) {
		// A repeat of the request answers the bare policy too.
		declareBody(r.Context(), http.StatusOK, renderFirewallPolicy(next))
	})
	if err != nil {
		return err
	}
	if cur := s.fsm.State().Read().FirewallPolicy(p.ID); cur != nil && cur.ModifyIndex >= rev {
		p = cur
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, renderFirewallPolicy(p))
	return nil
}

// policyRuleUpdate is casUpdate with the request's answer declared from
// the policy about to be proposed (its revision and update time as
// casUpdate sets them).
func policyRuleUpdate(s *Server, r *http.Request, k *vpnKind[*fsm.FirewallPolicy], change func(*fsm.View, *fsm.FirewallPolicy) error, answer func(*fsm.FirewallPolicy)) (*fsm.FirewallPolicy, uint64, error) {
	return casUpdate(s, r.Context(), r, k.cas(r.Context(), r.PathValue("id")), func(v *fsm.View, next *fsm.FirewallPolicy) error {
		if err := change(v, next); err != nil {
			return err
		}
		a := next.Copy()
		a.RevisionNumber++
		a.UpdatedAt = now()
		answer(a)
		return nil
	})
}

// Default firewall objects as neutron-fwaas makes them
// (_ensure_default_firewall_group with its default configuration): an
// ingress policy denying all IPv4 and IPv6, an egress policy allowing all,
// and an INACTIVE group "default" with no ports. Their ids derive from the
// project, so concurrent first uses agree.
func defaultFirewallRequest(project, ts string) fsm.FirewallDefaultsRequest {
	meta := func(kind, name, desc string) fsm.Meta {
		return fsm.Meta{ID: nameUUID("firewall/default/" + kind + "/" + project), ProjectID: project, Name: name,
			Description: desc, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts}
	}
	var req fsm.FirewallDefaultsRequest
	var policyRules [2][]string
	for i, dir := range []string{"ingress", "egress"} {
		action := fsm.FirewallDeny
		if dir == "egress" {
			action = fsm.FirewallAllow
		}
		for _, ver := range []int{4, 6} {
			m := meta(fmt.Sprintf("rule/%s/%d", dir, ver), fmt.Sprintf("default %s ipv%d", dir, ver),
				fmt.Sprintf("default %s rule for IPv%d", dir, ver))
			req.Rules = append(req.Rules, &fsm.FirewallRule{Meta: m, IPVersion: ver, Action: action, Enabled: true})
			policyRules[i] = append(policyRules[i], m.ID)
		}
	}
	in := &fsm.FirewallPolicy{Meta: meta("policy/ingress", fsm.FirewallDefaultIngressPolicy, "Ingress firewall policy"), Rules: policyRules[0]}
	eg := &fsm.FirewallPolicy{Meta: meta("policy/egress", fsm.FirewallDefaultEgressPolicy, "Egress firewall policy"), Rules: policyRules[1]}
	req.Policies = []*fsm.FirewallPolicy{in, eg}
	req.Group = &fsm.FirewallGroup{Meta: meta("group", fsm.FirewallDefaultGroup, "Default firewall group"),
		IngressPolicyID: in.ID, EgressPolicyID: eg.ID, AdminStateUp: true}
	return req
}

// ensureDefaultFirewallGroup creates the project's default firewall group
// if it is missing (neutron-fwaas does so on a project's first list or
// create of groups). Only the leader can; a concurrent first use loses
// the race harmlessly.
func (s *Server) ensureDefaultFirewallGroup(ctx context.Context, project string) error {
	if project == "" || s.fsm.State().Read().DefaultFirewallGroup(project) != nil || !s.be.IsLeader() {
		return nil
	}
	_, err := s.propose(withoutRequest(ctx), fsm.CmdFirewallDefaults, defaultFirewallRequest(project, now()))
	if fe, ok := fsm.AsError(err); ok && (fe.Type == fsm.ErrTypeFirewallDefaultExists || fe.Type == fsm.ErrTypeFirewallDuplicate) {
		return nil
	}
	return err
}
