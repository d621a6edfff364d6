package northbound

// Neutron VPNaaS v2.0 (issue 13): /v2.0/vpn/ikepolicies, ipsecpolicies,
// vpnservices, endpoint-groups and ipsec-site-connections, with
// neutron-lib's attribute maps and the reference validator's checks. What
// needs the state (references, in use, router and subnets) is checked
// again by the state machine at apply time (fsm/vpnaas_apply.go). The PSK
// of a connection is accepted and stored but never rendered (Neutron
// returns it; we do not) and cannot be filtered on.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"neutrino/fsm"
)

// vpnKind is one VPNaaS (or FWaaS) collection: the generic list, show,
// update, delete and tag handlers, and the create around its build
// function.
type vpnKind[T fsm.Object] struct {
	path     string // below /v2.0, e.g. "vpn/ikepolicies"
	singular string
	plural   string // JSON key of a list
	// specs are the plain attributes, structured the dict ones (lifetime,
	// dpd); filters and fields may name any of both but hidden.
	specs, structured map[string]attrSpec
	hidden            []string
	render            func(T) map[string]any
	get               func(v *fsm.View, id string) (T, bool)
	list              func(v *fsm.View) []T
	notFound          func(id string) error
	copy              func(T) T
	// build sets a new (post) or copied object from a request's
	// attributes, with Neutron's defaults and syntax checks; it may read
	// the state for references.
	build     func(ctx context.Context, v *fsm.View, ident Identity, a attrs, raw map[string]json.RawMessage, obj T, post bool) error
	newObj    func() T
	create    fsm.CommandType
	createReq func(T) any
	update    fsm.CommandType
	updateReq func(T, uint64) any
	del       fsm.CommandType
	// Optional hooks (FWaaS): visible lets a caller read what is not its
	// own (shared objects); prepare runs before a list or a create (a
	// project's default objects); delReq builds the delete body instead of
	// VPNDeleteRequest and may refuse.
	visible func(ident Identity, o T) bool
	prepare func(r *http.Request) error
	delReq  func(ident Identity, o T) (any, error)
}

func (k *vpnKind[T]) known() map[string]attrSpec {
	out := merged(k.specs, k.structured)
	for _, h := range k.hidden {
		delete(out, h)
	}
	return out
}

func (k *vpnKind[T]) canSee(ident Identity, o T) bool {
	return ident.Admin || o.GetMeta().ProjectID == ident.ProjectID || (k.visible != nil && k.visible(ident, o))
}

func (k *vpnKind[T]) lookup(v *fsm.View, ident Identity, id string) (T, error) {
	obj, ok := k.get(v, id)
	if !ok || !k.canSee(ident, obj) {
		var zero T
		return zero, k.notFound(id)
	}
	return obj, nil
}

// lookupOwn is lookup for a change: what the caller sees but does not own
// (a shared object of another project) is refused as Neutron's policy does.
func (k *vpnKind[T]) lookupOwn(v *fsm.View, ident Identity, action, id string) (T, error) {
	obj, err := k.lookup(v, ident, id)
	if err == nil && !ident.Admin && obj.GetMeta().ProjectID != ident.ProjectID {
		var zero T
		return zero, forbidden("rule:%s_%s is disallowed by policy", action, k.singular)
	}
	return obj, err
}

func (k *vpnKind[T]) cas(ctx context.Context, id string) casSpec[T] {
	ident := identityFrom(ctx)
	return casSpec[T]{read: func(v *fsm.View) (T, error) { return k.lookup(v, ident, id) },
		lookup: func(v *fsm.View) (T, error) { return k.lookupOwn(v, ident, "update", id) },
		copy:   k.copy, command: k.update, request: k.updateReq}
}

func registerVPN[T fsm.Object](s *Server, k *vpnKind[T]) {
	base := "/v2.0/" + k.path
	s.neutron("GET "+base, func(w http.ResponseWriter, r *http.Request) error {
		lq, err := parseListQuery(r.URL.Query(), k.plural, k.known())
		if err != nil {
			return err
		}
		if k.prepare != nil {
			if err := k.prepare(r); err != nil {
				return err
			}
		}
		ident := identityFrom(r.Context())
		objs := []map[string]any{}
		for _, o := range k.list(s.view(w)) {
			if k.canSee(ident, o) {
				objs = append(objs, k.render(o))
			}
		}
		return writeList(w, r, lq, k.plural, objs)
	})
	s.neutron("GET "+base+"/{id}", func(w http.ResponseWriter, r *http.Request) error {
		o, err := k.lookup(s.view(w), identityFrom(r.Context()), r.PathValue("id"))
		if err != nil {
			return err
		}
		return writeShow(w, r, k.singular, k.plural, k.known(), k.render(o))
	})
	s.neutron("POST "+base, func(w http.ResponseWriter, r *http.Request) error {
		a, raw, err := k.parse(r, true)
		if err != nil {
			return err
		}
		if k.prepare != nil {
			if err := k.prepare(r); err != nil {
				return err
			}
		}
		ident := identityFrom(r.Context())
		project, err := projectFor(ident, a)
		if err != nil {
			return err
		}
		o := k.newObj()
		m := o.GetMeta()
		ts := now()
		m.ID, m.ProjectID, m.RevisionNumber, m.CreatedAt, m.UpdatedAt = newID(r.Context()), project, 1, ts, ts
		m.Name, _ = a.str("name")
		m.Description, _ = a.str("description")
		if tags, ok := a.strings("tags"); ok {
			if err := validTags(tags); err != nil {
				return err
			}
			m.Tags = dedupTags(tags)
		}
		if err := k.build(r.Context(), s.fsm.State().Read(), ident, a, raw, o, true); err != nil {
			return err
		}
		declare(r.Context(), &outcome{Status: http.StatusCreated, Collection: base, Singular: k.singular, IDs: []string{m.ID}})
		rev, err := s.propose(r.Context(), k.create, k.createReq(o))
		if err != nil {
			return err
		}
		// The state machine sets what it derives (status, addresses).
		if cur, ok := k.get(s.fsm.State().Read(), m.ID); ok {
			o = cur
		}
		setRevision(w, rev)
		writeJSON(w, http.StatusCreated, map[string]any{k.singular: k.render(o)})
		return nil
	})
	s.neutron("PUT "+base+"/{id}", func(w http.ResponseWriter, r *http.Request) error {
		a, raw, err := k.parse(r, false)
		if err != nil {
			return err
		}
		ident := identityFrom(r.Context())
		o, rev, err := casUpdate(s, r.Context(), r, k.cas(r.Context(), r.PathValue("id")), func(v *fsm.View, next T) error {
			m := next.GetMeta()
			if x, ok := a.str("name"); ok {
				m.Name = x
			}
			if x, ok := a.str("description"); ok {
				m.Description = x
			}
			return k.build(r.Context(), v, ident, a, raw, next, false)
		})
		if err != nil {
			return err
		}
		if cur, ok := k.get(s.fsm.State().Read(), o.GetMeta().ID); ok && cur.GetMeta().ModifyIndex >= rev {
			o = cur
		}
		setRevision(w, rev)
		writeJSON(w, http.StatusOK, map[string]any{k.singular: k.render(o)})
		return nil
	})
	s.neutron("DELETE "+base+"/{id}", func(w http.ResponseWriter, r *http.Request) error {
		ident := identityFrom(r.Context())
		o, err := k.lookupOwn(s.fsm.State().Read(), ident, "delete", r.PathValue("id"))
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, o.GetMeta().RevisionNumber); err != nil {
			return err
		}
		var body any = fsm.VPNDeleteRequest{ID: o.GetMeta().ID}
		if k.delReq != nil {
			if body, err = k.delReq(ident, o); err != nil {
				return err
			}
		}
		rev, err := s.propose(r.Context(), k.del, body)
		if err != nil {
			return err
		}
		setRevision(w, rev)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	s.tagRoutes(k.path, tagsVia(s, k.cas))
}

func (k *vpnKind[T]) parse(r *http.Request, post bool) (attrs, map[string]json.RawMessage, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, nil, err
	}
	objs, err := objectsFromBody(body, k.singular, k.plural, false)
	if err != nil {
		return nil, nil, err
	}
	return parseObject(objs[0], k.specs, k.structured, post)
}

// Attributes every VPNaaS resource has.
func vpnCommonAttrs(extra map[string]attrSpec) map[string]attrSpec {
	out := map[string]attrSpec{
		"id":              {Kind: attrString},
		"name":            {Kind: attrString, Post: true, Put: true, MaxLen: 255},
		"description":     {Kind: attrString, Post: true, Put: true, MaxLen: 255},
		"project_id":      {Kind: attrString, Post: true, MaxLen: 255},
		"tenant_id":       {Kind: attrString, Post: true, MaxLen: 255},
		"tags":            {Kind: attrStrings, Post: true},
		"revision_number": {Kind: attrInt},
		"created_at":      {Kind: attrString},
		"updated_at":      {Kind: attrString},
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func renderVPNMeta(m *fsm.Meta, out map[string]any) map[string]any {
	out["id"] = m.ID
	out["name"] = m.Name
	out["description"] = m.Description
	out["project_id"] = m.ProjectID
	out["tenant_id"] = m.ProjectID
	out["tags"] = nonNil(m.Tags)
	out["revision_number"] = m.RevisionNumber
	out["created_at"] = m.CreatedAt
	out["updated_at"] = m.UpdatedAt
	return out
}

// notIn is neutron-lib's type:values failure.
func notIn(name, val string, allowed []string) *apiError {
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = "'" + a + "'"
	}
	return badRequest("Invalid input for %s. Reason: '%s' is not in [%s].", name, val, strings.Join(q, ", "))
}

// setChoice sets *dst from attribute name when present, checked against
// allowed.
func setChoice(a attrs, name string, allowed []string, dst *string) error {
	x, ok := a.str(name)
	if !ok {
		return nil
	}
	if !slices.Contains(allowed, x) {
		return notIn(name, x, allowed)
	}
	*dst = x
	return nil
}

// vpnDict parses a dict attribute (lifetime, dpd) whose keys are strings
// or integers; unknown keys are refused. null or {} changes nothing.
func vpnDict(name string, raw json.RawMessage, strs, ints []string) (map[string]string, map[string]int, error) {
	if raw == nil || isNull(raw) {
		return nil, nil, nil
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, nil, badRequest("Invalid input for %s. Reason: '%s' is not a dictionary.", name, string(raw))
	}
	ss, is := map[string]string{}, map[string]int{}
	for key, val := range m {
		switch {
		case slices.Contains(strs, key):
			x, ok := val.(string)
			if !ok {
				return nil, nil, badRequest("Invalid input for %s. Reason: '%v' is not a valid string.", name, val)
			}
			ss[key] = x
		case slices.Contains(ints, key):
			var n int
			var err error
			switch x := val.(type) {
			case json.Number:
				_, err = fmt.Sscan(x.String(), &n)
				if err == nil && strings.ContainsAny(x.String(), ".eE") {
					err = fmt.Errorf("not an integer")
				}
			case string:
				_, err = fmt.Sscan(x, &n)
			default:
				err = fmt.Errorf("not an integer")
			}
			if err != nil {
				return nil, nil, badRequest("Invalid input for %s. Reason: '%v' is not an integer.", name, val)
			}
			is[key] = n
		default:
			return nil, nil, badRequest("Invalid input for %s. Reason: Unexpected keys supplied: %s.", name, key)
		}
	}
	return ss, is, nil
}

// setLifetime applies a lifetime dict: units seconds, value at least 60.
func setLifetime(raw json.RawMessage, units *string, value *int) error {
	ss, is, err := vpnDict("lifetime", raw, []string{"units"}, []string{"value"})
	if err != nil {
		return err
	}
	if u, ok := ss["units"]; ok {
		if !slices.Contains(fsm.VPNLifetimeUnits, u) {
			return notIn("lifetime", u, fsm.VPNLifetimeUnits)
		}
		*units = u
	}
	if n, ok := is["value"]; ok {
		if n < fsm.VPNMinLifetime {
			return badRequest("Invalid input for lifetime. Reason: '%d' is too small - must be at least '%d'.", n, fsm.VPNMinLifetime)
		}
		*value = n
	}
	return nil
}

func renderLifetime(units string, value int) map[string]any {
	return map[string]any{"units": units, "value": value}
}

var ikePolicyAttrs = vpnCommonAttrs(map[string]attrSpec{
	"auth_algorithm":          {Kind: attrString, Post: true, Put: true},
	"encryption_algorithm":    {Kind: attrString, Post: true, Put: true},
	"phase1_negotiation_mode": {Kind: attrString, Post: true, Put: true},
	"ike_version":             {Kind: attrString, Post: true, Put: true},
	"pfs":                     {Kind: attrString, Post: true, Put: true},
})

var policyStructured = map[string]attrSpec{"lifetime": {Post: true, Put: true}}

var ipsecPolicyAttrs = vpnCommonAttrs(map[string]attrSpec{
	"transform_protocol":   {Kind: attrString, Post: true, Put: true},
	"auth_algorithm":       {Kind: attrString, Post: true, Put: true},
	"encryption_algorithm": {Kind: attrString, Post: true, Put: true},
	"encapsulation_mode":   {Kind: attrString, Post: true, Put: true},
	"pfs":                  {Kind: attrString, Post: true, Put: true},
})

var vpnServiceAttrs = vpnCommonAttrs(map[string]attrSpec{
	"router_id":      {Kind: attrString, Post: true},
	"subnet_id":      {Kind: attrString, Post: true, Nullable: true},
	"admin_state_up": {Kind: attrBool, Post: true, Put: true, Nullable: true},
	"external_v4_ip": {Kind: attrString},
	"external_v6_ip": {Kind: attrString},
	"status":         {Kind: attrString},
	"flavor_id":      {Kind: attrString, Post: true, Nullable: true},
})

var endpointGroupAttrs = vpnCommonAttrs(map[string]attrSpec{
	"type":      {Kind: attrString, Post: true},
	"endpoints": {Kind: attrStrings, Post: true},
})

var siteConnectionAttrs = vpnCommonAttrs(map[string]attrSpec{
	"vpnservice_id":     {Kind: attrString, Post: true},
	"ikepolicy_id":      {Kind: attrString, Post: true},
	"ipsecpolicy_id":    {Kind: attrString, Post: true},
	"peer_address":      {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"peer_id":           {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"local_id":          {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"psk":               {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"peer_cidrs":        {Kind: attrStrings, Post: true, Put: true, Nullable: true},
	"local_ep_group_id": {Kind: attrString, Post: true, Put: true, Nullable: true},
	"peer_ep_group_id":  {Kind: attrString, Post: true, Put: true, Nullable: true},
	"mtu":               {Kind: attrInt, Post: true, Put: true},
	"initiator":         {Kind: attrString, Post: true, Put: true},
	"admin_state_up":    {Kind: attrBool, Post: true, Put: true, Nullable: true},
	"route_mode":        {Kind: attrString},
	"auth_mode":         {Kind: attrString},
	"status":            {Kind: attrString},
})

var siteConnectionStructured = map[string]attrSpec{"dpd": {Post: true, Put: true}}

func renderIKEPolicy(p *fsm.IKEPolicy) map[string]any {
	return renderVPNMeta(&p.Meta, map[string]any{
		"auth_algorithm":          p.AuthAlgorithm,
		"encryption_algorithm":    p.EncryptionAlgorithm,
		"phase1_negotiation_mode": p.Phase1NegotiationMode,
		"ike_version":             p.IKEVersion,
		"pfs":                     p.PFS,
		"lifetime":                renderLifetime(p.LifetimeUnits, p.LifetimeValue),
	})
}

func renderIPsecPolicy(p *fsm.IPsecPolicy) map[string]any {
	return renderVPNMeta(&p.Meta, map[string]any{
		"transform_protocol":   p.TransformProtocol,
		"auth_algorithm":       p.AuthAlgorithm,
		"encryption_algorithm": p.EncryptionAlgorithm,
		"encapsulation_mode":   p.EncapsulationMode,
		"pfs":                  p.PFS,
		"lifetime":             renderLifetime(p.LifetimeUnits, p.LifetimeValue),
	})
}

func renderVPNService(s *fsm.VPNService) map[string]any {
	return renderVPNMeta(&s.Meta, map[string]any{
		"router_id":      s.RouterID,
		"subnet_id":      strOrNil(s.SubnetID),
		"admin_state_up": s.AdminStateUp,
		"external_v4_ip": strOrNil(s.ExternalV4IP),
		"external_v6_ip": strOrNil(s.ExternalV6IP),
		"status":         s.Status,
		"flavor_id":      nil,
	})
}

func renderEndpointGroup(g *fsm.EndpointGroup) map[string]any {
	return renderVPNMeta(&g.Meta, map[string]any{
		"type":      g.Type,
		"endpoints": nonNil(g.Endpoints),
	})
}

// renderSiteConnection renders a connection without its PSK.
func renderSiteConnection(c *fsm.IPsecSiteConnection) map[string]any {
	return renderVPNMeta(&c.Meta, map[string]any{
		"vpnservice_id":     c.VPNServiceID,
		"ikepolicy_id":      c.IKEPolicyID,
		"ipsecpolicy_id":    c.IPsecPolicyID,
		"peer_address":      c.PeerAddress,
		"peer_id":           c.PeerID,
		"local_id":          c.LocalID,
		"peer_cidrs":        nonNil(c.PeerCIDRs),
		"local_ep_group_id": strOrNil(c.LocalEPGroupID),
		"peer_ep_group_id":  strOrNil(c.PeerEPGroupID),
		"mtu":               c.MTU,
		"initiator":         c.Initiator,
		"admin_state_up":    c.AdminStateUp,
		"route_mode":        c.RouteMode,
		"auth_mode":         c.AuthMode,
		"status":            c.Status,
		"dpd":               map[string]any{"action": c.DPDAction, "interval": c.DPDInterval, "timeout": c.DPDTimeout},
	})
}

func buildIKEPolicy(_ context.Context, _ *fsm.View, _ Identity, a attrs, raw map[string]json.RawMessage, p *fsm.IKEPolicy, post bool) error {
	if post {
		p.AuthAlgorithm, p.EncryptionAlgorithm, p.Phase1NegotiationMode = "sha1", "aes-128", "main"
		p.IKEVersion, p.PFS, p.LifetimeUnits, p.LifetimeValue = "v1", "group5", "seconds", 3600
	}
	for _, c := range []struct {
		name    string
		allowed []string
		dst     *string
	}{
		{"auth_algorithm", fsm.VPNAuthAlgorithms, &p.AuthAlgorithm},
		{"encryption_algorithm", fsm.VPNEncryptionAlgorithms, &p.EncryptionAlgorithm},
		{"phase1_negotiation_mode", fsm.VPNPhase1Modes, &p.Phase1NegotiationMode},
		{"ike_version", fsm.VPNIKEVersions, &p.IKEVersion},
		{"pfs", fsm.VPNPFSGroups, &p.PFS},
	} {
		if err := setChoice(a, c.name, c.allowed, c.dst); err != nil {
			return err
		}
	}
	return setLifetime(raw["lifetime"], &p.LifetimeUnits, &p.LifetimeValue)
}

func buildIPsecPolicy(_ context.Context, _ *fsm.View, _ Identity, a attrs, raw map[string]json.RawMessage, p *fsm.IPsecPolicy, post bool) error {
	if post {
		p.TransformProtocol, p.AuthAlgorithm, p.EncryptionAlgorithm = "esp", "sha1", "aes-128"
		p.EncapsulationMode, p.PFS, p.LifetimeUnits, p.LifetimeValue = "tunnel", "group5", "seconds", 3600
	}
	for _, c := range []struct {
		name    string
		allowed []string
		dst     *string
	}{
		{"transform_protocol", fsm.VPNTransformProtocols, &p.TransformProtocol},
		{"auth_algorithm", fsm.VPNAuthAlgorithms, &p.AuthAlgorithm},
		{"encryption_algorithm", fsm.VPNEncryptionAlgorithms, &p.EncryptionAlgorithm},
		{"encapsulation_mode", fsm.VPNEncapsulationModes, &p.EncapsulationMode},
		{"pfs", fsm.VPNPFSGroups, &p.PFS},
	} {
		if err := setChoice(a, c.name, c.allowed, c.dst); err != nil {
			return err
		}
	}
	return setLifetime(raw["lifetime"], &p.LifetimeUnits, &p.LifetimeValue)
}

func buildVPNService(_ context.Context, v *fsm.View, ident Identity, a attrs, _ map[string]json.RawMessage, s *fsm.VPNService, post bool) error {
	if up, ok := a.boolean("admin_state_up"); ok && a["admin_state_up"] != nil {
		s.AdminStateUp = up
	} else if post {
		s.AdminStateUp = true
	}
	if !post {
		return nil
	}
	if f, _ := a.str("flavor_id"); f != "" {
		return badRequest("Invalid input for flavor_id. Reason: flavors are not supported; flavor_id must be null.")
	}
	rid, _ := a.str("router_id")
	if rid == "" {
		return badRequest("Failed to parse request. Required attribute 'router_id' not specified")
	}
	r, err := lookupRouter(v, ident, rid)
	if err != nil {
		return err
	}
	s.RouterID = r.ID
	if sid, _ := a.str("subnet_id"); sid != "" {
		sub, err := lookupSubnet(v, ident, sid)
		if err != nil {
			return err
		}
		s.SubnetID = sub.ID
	}
	return v.CheckVPNServiceRouter(s.RouterID, s.SubnetID)
}

// canonicalCIDR is neutron-lib's validate_subnet: a prefix written as its
// network address.
func canonicalCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return p, fmt.Sprintf("'%s' is not a valid IP subnet", s)
	}
	if p.Masked() != p || p.String() != s {
		return p, fmt.Sprintf("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, p.Masked())
	}
	return p, ""
}

func buildEndpointGroup(_ context.Context, v *fsm.View, ident Identity, a attrs, _ map[string]json.RawMessage, g *fsm.EndpointGroup, post bool) error {
	if !post {
		return nil
	}
	typ, ok := a.str("type")
	if !ok {
		return badRequest("Failed to parse request. Required attribute 'type' not specified")
	}
	if !slices.Contains(fsm.VPNEndpointGroupTypes, typ) {
		return notIn("type", typ, fsm.VPNEndpointGroupTypes)
	}
	eps, _ := a.strings("endpoints")
	if len(eps) == 0 {
		return newError(http.StatusBadRequest, "MissingEndpointForEndpointGroup", "No endpoints specified for endpoint group '%s'", g.ID)
	}
	g.Type = typ
	g.Endpoints = nil
	for _, ep := range eps {
		if typ == fsm.VPNEndpointCIDR {
			if _, msg := canonicalCIDR(ep); msg != "" {
				return newError(http.StatusBadRequest, "InvalidEndpointInEndpointGroup",
					"Invalid input for operation: Endpoint '%s' is invalid for group type 'cidr': Invalid CIDR.", ep)
			}
		} else {
			if !validUUID(ep) {
				return newError(http.StatusBadRequest, "InvalidEndpointInEndpointGroup",
					"Invalid input for operation: Endpoint '%s' is invalid for group type 'subnet': Invalid UUID.", ep)
			}
			if _, err := lookupSubnet(v, ident, ep); err != nil {
				return newError(http.StatusBadRequest, fsm.ErrTypeVPNNonExistingSubnetInGroup,
					"Invalid input for operation: Subnet %s in endpoint group does not exist.", ep)
			}
		}
		if !slices.Contains(g.Endpoints, ep) {
			g.Endpoints = append(g.Endpoints, ep)
		}
	}
	return nil
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// peerResolveTimeout bounds the DNS lookup of a peer given by name.
const peerResolveTimeout = 3 * time.Second

// resolvePeer returns the peer's address: an IP as given, a name resolved
// as Neutron's validator does (the first address; stored resolved).
func resolvePeer(ctx context.Context, addr string) (string, error) {
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.String(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, peerResolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, addr)
	if addr == "" || err != nil || len(ips) == 0 {
		return "", newError(http.StatusBadRequest, "VPNPeerAddressNotResolved",
			"Invalid input for operation: Peer address %s cannot be resolved.", addr)
	}
	a, _ := netip.AddrFromSlice(ips[0].IP)
	return a.Unmap().String(), nil
}

func buildSiteConnection(ctx context.Context, v *fsm.View, ident Identity, a attrs, raw map[string]json.RawMessage, c *fsm.IPsecSiteConnection, post bool) error {
	if post {
		c.MTU, c.Initiator, c.AdminStateUp = 1500, "bi-directional", true
		c.DPDAction, c.DPDInterval, c.DPDTimeout = "hold", 30, 120
		c.RouteMode, c.AuthMode = fsm.VPNRouteModeStatic, fsm.VPNAuthModePSK
		for _, req := range []string{"peer_address", "peer_id", "psk", "vpnservice_id", "ikepolicy_id", "ipsecpolicy_id"} {
			if _, ok := a[req]; !ok {
				return badRequest("Failed to parse request. Required attribute '%s' not specified", req)
			}
		}
		svcID, _ := a.str("vpnservice_id")
		ikeID, _ := a.str("ikepolicy_id")
		ipsecID, _ := a.str("ipsecpolicy_id")
		if _, err := vpnServiceKind.lookup(v, ident, svcID); err != nil {
			return err
		}
		if _, err := ikePolicyKind.lookup(v, ident, ikeID); err != nil {
			return err
		}
		if _, err := ipsecPolicyKind.lookup(v, ident, ipsecID); err != nil {
			return err
		}
		c.VPNServiceID, c.IKEPolicyID, c.IPsecPolicyID = svcID, ikeID, ipsecID
	}
	if x, ok := a.str("peer_address"); ok {
		addr, err := resolvePeer(ctx, x)
		if err != nil {
			return err
		}
		c.PeerAddress = addr
	}
	if x, ok := a.str("peer_id"); ok {
		if x == "" {
			return badRequest("Invalid input for peer_id. Reason: the peer id must not be empty.")
		}
		c.PeerID = x
	}
	if x, ok := a.str("local_id"); ok {
		c.LocalID = x
	}
	if x, ok := a.str("psk"); ok {
		if x == "" {
			return badRequest("Invalid input for psk. Reason: the pre-shared key must not be empty.")
		}
		c.PSK = x
	}
	if _, ok := a["peer_cidrs"]; ok {
		list, _ := a.strings("peer_cidrs")
		c.PeerCIDRs = nil
		for _, p := range list {
			if _, msg := canonicalCIDR(p); msg != "" {
				return badRequest("Invalid input for peer_cidrs. Reason: %s.", msg)
			}
			if !slices.Contains(c.PeerCIDRs, p) {
				c.PeerCIDRs = append(c.PeerCIDRs, p)
			}
		}
	}
	for _, ep := range []struct {
		name string
		dst  *string
	}{{"local_ep_group_id", &c.LocalEPGroupID}, {"peer_ep_group_id", &c.PeerEPGroupID}} {
		x, ok := a.str(ep.name)
		if !ok {
			continue
		}
		if x != "" {
			if _, err := endpointGroupKind.lookup(v, ident, x); err != nil {
				return err
			}
		}
		*ep.dst = x
	}
	if n, ok := a.integer("mtu"); ok {
		if n < 0 {
			return badRequest("Invalid input for mtu. Reason: '%d' should be non-negative.", n)
		}
		c.MTU = n
	}
	if err := setChoice(a, "initiator", fsm.VPNInitiators, &c.Initiator); err != nil {
		return err
	}
	if up, ok := a.boolean("admin_state_up"); ok && a["admin_state_up"] != nil {
		c.AdminStateUp = up
	}
	ss, is, err := vpnDict("dpd", raw["dpd"], []string{"action"}, []string{"interval", "timeout"})
	if err != nil {
		return err
	}
	if x, ok := ss["action"]; ok {
		if !slices.Contains(fsm.VPNDPDActions, x) {
			return notIn("dpd", x, fsm.VPNDPDActions)
		}
		c.DPDAction = x
	}
	for key, dst := range map[string]*int{"interval": &c.DPDInterval, "timeout": &c.DPDTimeout} {
		if n, ok := is[key]; ok {
			if n < 0 {
				return badRequest("Invalid input for dpd. Reason: '%d' should be non-negative.", n)
			}
			*dst = n
		}
	}
	if c.DPDTimeout <= c.DPDInterval {
		return newError(http.StatusBadRequest, "IPsecSiteConnectionDpdIntervalValueError",
			"Invalid input for operation: ipsec_site_connection dpd_timeout is equal to or less than dpd_interval.")
	}
	return v.CheckSiteConnection(c)
}

var ikePolicyKind = &vpnKind[*fsm.IKEPolicy]{
	path: "vpn/ikepolicies", singular: "ikepolicy", plural: "ikepolicies",
	specs: ikePolicyAttrs, structured: policyStructured, render: renderIKEPolicy,
	get:  func(v *fsm.View, id string) (*fsm.IKEPolicy, bool) { p := v.IKEPolicy(id); return p, p != nil },
	list: (*fsm.View).IKEPolicies,
	notFound: func(id string) error {
		return newError(http.StatusNotFound, fsm.ErrTypeIKEPolicyNotFound, "IKEPolicy %s could not be found", id)
	},
	copy: (*fsm.IKEPolicy).Copy, build: buildIKEPolicy, newObj: func() *fsm.IKEPolicy { return &fsm.IKEPolicy{} },
	create:    fsm.CmdVPNIKEPolicyCreate,
	createReq: func(p *fsm.IKEPolicy) any { return fsm.VPNIKEPolicyCreateRequest{Policy: p} },
	update:    fsm.CmdVPNIKEPolicyUpdate,
	updateReq: func(p *fsm.IKEPolicy, prev uint64) any {
		return fsm.VPNIKEPolicyUpdateRequest{Policy: p, PrevIndex: prev}
	},
	del: fsm.CmdVPNIKEPolicyDelete,
}

var ipsecPolicyKind = &vpnKind[*fsm.IPsecPolicy]{
	path: "vpn/ipsecpolicies", singular: "ipsecpolicy", plural: "ipsecpolicies",
	specs: ipsecPolicyAttrs, structured: policyStructured, render: renderIPsecPolicy,
	get:  func(v *fsm.View, id string) (*fsm.IPsecPolicy, bool) { p := v.IPsecPolicy(id); return p, p != nil },
	list: (*fsm.View).IPsecPolicies,
	notFound: func(id string) error {
		return newError(http.StatusNotFound, fsm.ErrTypeIPsecPolicyNotFound, "IPsecPolicy %s could not be found", id)
	},
	copy: (*fsm.IPsecPolicy).Copy, build: buildIPsecPolicy, newObj: func() *fsm.IPsecPolicy { return &fsm.IPsecPolicy{} },
	create:    fsm.CmdVPNIPsecPolicyCreate,
	createReq: func(p *fsm.IPsecPolicy) any { return fsm.VPNIPsecPolicyCreateRequest{Policy: p} },
	update:    fsm.CmdVPNIPsecPolicyUpdate,
	updateReq: func(p *fsm.IPsecPolicy, prev uint64) any {
		return fsm.VPNIPsecPolicyUpdateRequest{Policy: p, PrevIndex: prev}
	},
	del: fsm.CmdVPNIPsecPolicyDelete,
}

var vpnServiceKind = &vpnKind[*fsm.VPNService]{
	path: "vpn/vpnservices", singular: "vpnservice", plural: "vpnservices",
	specs: vpnServiceAttrs, render: renderVPNService,
	get:  func(v *fsm.View, id string) (*fsm.VPNService, bool) { s := v.VPNService(id); return s, s != nil },
	list: (*fsm.View).VPNServices,
	notFound: func(id string) error {
		return newError(http.StatusNotFound, fsm.ErrTypeVPNServiceNotFound, "VPNService %s could not be found", id)
	},
	copy: (*fsm.VPNService).Copy, build: buildVPNService, newObj: func() *fsm.VPNService { return &fsm.VPNService{} },
	create:    fsm.CmdVPNServiceCreate,
	createReq: func(s *fsm.VPNService) any { return fsm.VPNServiceCreateRequest{Service: s} },
	update:    fsm.CmdVPNServiceUpdate,
	updateReq: func(s *fsm.VPNService, prev uint64) any {
		return fsm.VPNServiceUpdateRequest{Service: s, PrevIndex: prev}
	},
	del: fsm.CmdVPNServiceDelete,
}

var endpointGroupKind = &vpnKind[*fsm.EndpointGroup]{
	path: "vpn/endpoint-groups", singular: "endpoint_group", plural: "endpoint_groups",
	specs: endpointGroupAttrs, render: renderEndpointGroup,
	get:  func(v *fsm.View, id string) (*fsm.EndpointGroup, bool) { g := v.EndpointGroup(id); return g, g != nil },
	list: (*fsm.View).EndpointGroups,
	notFound: func(id string) error {
		return newError(http.StatusNotFound, fsm.ErrTypeEndpointGroupNotFound, "Endpoint group %s could not be found", id)
	},
	copy: (*fsm.EndpointGroup).Copy, build: buildEndpointGroup, newObj: func() *fsm.EndpointGroup { return &fsm.EndpointGroup{} },
	create:    fsm.CmdVPNEndpointGroupCreate,
	createReq: func(g *fsm.EndpointGroup) any { return fsm.VPNEndpointGroupCreateRequest{Group: g} },
	update:    fsm.CmdVPNEndpointGroupUpdate,
	updateReq: func(g *fsm.EndpointGroup, prev uint64) any {
		return fsm.VPNEndpointGroupUpdateRequest{Group: g, PrevIndex: prev}
	},
	del: fsm.CmdVPNEndpointGroupDelete,
}

var siteConnectionKind = &vpnKind[*fsm.IPsecSiteConnection]{
	path: "vpn/ipsec-site-connections", singular: "ipsec_site_connection", plural: "ipsec_site_connections",
	specs: siteConnectionAttrs, structured: siteConnectionStructured, hidden: []string{"psk"},
	render: renderSiteConnection,
	get: func(v *fsm.View, id string) (*fsm.IPsecSiteConnection, bool) {
		c := v.IPsecSiteConnection(id)
		return c, c != nil
	},
	list: (*fsm.View).IPsecSiteConnections,
	notFound: func(id string) error {
		return newError(http.StatusNotFound, fsm.ErrTypeIPsecSiteConnectionNotFound, "ipsec_site_connection %s not found", id)
	},
	copy: (*fsm.IPsecSiteConnection).Copy, build: buildSiteConnection,
	newObj:    func() *fsm.IPsecSiteConnection { return &fsm.IPsecSiteConnection{} },
	create:    fsm.CmdVPNSiteConnectionCreate,
	createReq: func(c *fsm.IPsecSiteConnection) any { return fsm.VPNSiteConnectionCreateRequest{Connection: c} },
	update:    fsm.CmdVPNSiteConnectionUpdate,
	updateReq: func(c *fsm.IPsecSiteConnection, prev uint64) any {
		return fsm.VPNSiteConnectionUpdateRequest{Connection: c, PrevIndex: prev}
	},
	del: fsm.CmdVPNSiteConnectionDelete,
}

func (s *Server) vpnRoutes() {
	registerVPN(s, ikePolicyKind)
	registerVPN(s, ipsecPolicyKind)
	registerVPN(s, vpnServiceKind)
	registerVPN(s, endpointGroupKind)
	registerVPN(s, siteConnectionKind)
	s.neutron("PUT /v1/vpn/agent-status", s.vpnAgentStatus)
}

// vpnAgentStatusBody is the body of PUT /v1/vpn/agent-status.
type vpnAgentStatusBody struct {
	Chassis     string            `json:"chassis"`
	Services    map[string]string `json:"services"`
	Connections map[string]string `json:"connections"`
}

// vpnAgentStatus applies a chassis agent's report of its VPN services'
// and connections' status (admin only). A report that would change
// nothing (repeated, or stale: from a chassis the routers are not active
// on) is answered without a Raft write.
func (s *Server) vpnAgentStatus(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("Reporting VPN status requires the admin role.")
	}
	var body vpnAgentStatusBody
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return newError(http.StatusBadRequest, "MalformedRequestBody", "Malformed request body: %v", err)
	}
	if body.Chassis == "" {
		return badRequest("Failed to parse request. Required attribute 'chassis' not specified")
	}
	req := fsm.VPNStatusRequest{Chassis: body.Chassis, Services: body.Services, Connections: body.Connections, UpdatedAt: now()}
	if err := fsm.CheckVPNStatus(&req); err != nil {
		return err
	}
	v := s.fsm.State().Read()
	svcs, conns := v.PlanVPNStatus(&req)
	answer := map[string]any{"services": idsOf(svcs), "connections": idsOf(conns)}
	if len(svcs)+len(conns) == 0 {
		setRevision(w, v.Revision())
		writeJSON(w, http.StatusOK, map[string]any{"changed": answer})
		return nil
	}
	declareBody(r.Context(), http.StatusOK, map[string]any{"changed": answer})
	rev, err := s.propose(r.Context(), fsm.CmdVPNStatus, req)
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"changed": answer})
	return nil
}

func idsOf[T fsm.Object](objs []T) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.GetMeta().ID)
	}
	return out
}
