package northbound

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"

	"neutrino/fsm"
)

// routerAttrs are the plain attributes of a router (with the dvr, l3-ha,
// standard-attr and tag extensions).
var routerAttrs = map[string]attrSpec{
	"id":                      {Kind: attrString},
	"name":                    {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":             {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":              {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":               {Kind: attrString, Post: true, MaxLen: 255},
	"admin_state_up":          {Kind: attrBool, Post: true, Put: true},
	"status":                  {Kind: attrString},
	"distributed":             {Kind: attrBool, Post: true, Put: true},
	"ha":                      {Kind: attrBool, Post: true, Put: true},
	"availability_zone_hints": {Kind: attrStrings, Post: true},
	"availability_zones":      {Kind: attrStrings},
	"tags":                    {Kind: attrStrings, Post: true},
	"revision_number":         {Kind: attrInt},
	"created_at":              {Kind: attrString},
	"updated_at":              {Kind: attrString},
	// The neutrino-gateway-chassis extension (admin only).
	attrGatewayChassis:       {Kind: attrStrings, Post: true, Put: true, Nullable: true},
	attrActiveGatewayChassis: {Kind: attrString},
	attrGatewayPreempt:       {Kind: attrBool, Post: true, Put: true},
}

// Attributes of the neutrino-gateway-chassis extension: the priority list
// of gateway chassis of the router's external gateway (settable by admins;
// empty or null asks for a scheduled list), the chassis the gateway is
// active on (read-only, null while unbound), and whether a recovered
// chassis of higher priority takes the gateway back.
const (
	attrGatewayChassis       = "neutrino:gateway_chassis"
	attrActiveGatewayChassis = "neutrino:active_gateway_chassis"
	attrGatewayPreempt       = "neutrino:gateway_preempt"
)

// routerStructured: external_gateway_info (ext-gw-mode) and routes
// (extraroute, settable by PUT only, as in Neutron).
var routerStructured = map[string]attrSpec{
	"external_gateway_info": {Post: true, Put: true},
	"routes":                {Put: true},
}

var routerKnown = merged(routerAttrs, routerStructured)

// maxRoutes is Neutron's max_routes default.
const maxRoutes = 30

func renderRouter(v *fsm.View, r *fsm.Router, gw *fsm.Port, ident Identity) map[string]any {
	var gwInfo any
	if r.Gateway != nil {
		ips := []map[string]string{}
		if gw != nil {
			for _, ip := range gw.FixedIPs {
				ips = append(ips, map[string]string{"subnet_id": ip.SubnetID, "ip_address": ip.IPAddress})
			}
		}
		gwInfo = map[string]any{"network_id": r.Gateway.NetworkID, "enable_snat": r.Gateway.EnableSNAT, "external_fixed_ips": ips}
	}
	routes := make([]map[string]string, 0, len(r.Routes))
	for _, rt := range r.Routes {
		routes = append(routes, map[string]string{"destination": rt.Destination, "nexthop": rt.NextHop})
	}
	out := map[string]any{
		"id":                      r.ID,
		"name":                    r.Name,
		"description":             r.Description,
		"project_id":              r.ProjectID,
		"tenant_id":               r.ProjectID,
		"admin_state_up":          r.AdminStateUp,
		"status":                  r.Status,
		"external_gateway_info":   gwInfo,
		"routes":                  routes,
		"availability_zone_hints": nonNil(r.AvailabilityZoneHints),
		"availability_zones":      zonesOf(v, r.GatewayChassis),
		"tags":                    nonNil(r.Tags),
		"revision_number":         r.RevisionNumber,
		"created_at":              r.CreatedAt,
		"updated_at":              r.UpdatedAt,
	}
	// Neutron's policy shows distributed and ha to admins only; where a
	// router's gateway runs is the operator's business too.
	if ident.Admin {
		out["distributed"] = r.Distributed
		out["ha"] = r.HA
		var active any
		if gw != nil && gw.BindingHostID != "" {
			active = gw.BindingHostID
		}
		out[attrGatewayChassis] = nonNil(r.GatewayChassis)
		out[attrActiveGatewayChassis] = active
		out[attrGatewayPreempt] = r.GatewayPreempt
	}
	return out
}

// renderCommitted renders a router as the state machine stored it (the
// scheduler chose its gateway chassis at apply time), or as proposed when
// a later change already removed it.
func (s *Server) renderCommitted(next *fsm.Router, gw *fsm.Port, ident Identity) map[string]any {
	v := s.fsm.State().Read()
	if rt := v.Router(next.ID); rt != nil {
		return renderRouter(v, rt, v.RouterGatewayPort(rt.ID), ident)
	}
	return renderRouter(v, next, gw, ident)
}

func routerNotFound(id string) *apiError {
	return newError(http.StatusNotFound, fsm.ErrTypeRouterNotFound, "Router %s could not be found", id)
}

// lookupRouter returns a router of the caller's project (any, for an
// admin), or a 404: routers are never shared.
func lookupRouter(v *fsm.View, ident Identity, id string) (*fsm.Router, error) {
	r := v.Router(id)
	if r == nil || !(ident.Admin || r.ProjectID == ident.ProjectID) {
		return nil, routerNotFound(id)
	}
	return r, nil
}

func (s *Server) routerRoutes() {
	s.neutron("GET /v2.0/routers", s.listRouters)
	s.neutron("POST /v2.0/routers", s.createRouter)
	s.neutron("GET /v2.0/routers/{id}", s.showRouter)
	s.neutron("PUT /v2.0/routers/{id}", s.updateRouter)
	s.neutron("DELETE /v2.0/routers/{id}", s.deleteRouter)
	s.neutron("PUT /v2.0/routers/{id}/add_router_interface", s.addRouterInterface)
	s.neutron("PUT /v2.0/routers/{id}/remove_router_interface", s.removeRouterInterface)
	s.tagRoutes("routers", tagsVia(s, s.routerCAS))
}

func (s *Server) listRouters(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "routers", routerKnown)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	v := s.view(w)
	objs := []map[string]any{}
	for _, rt := range v.Routers() {
		if ident.Admin || rt.ProjectID == ident.ProjectID {
			objs = append(objs, renderRouter(v, rt, v.RouterGatewayPort(rt.ID), ident))
		}
	}
	return writeList(w, r, lq, "routers", objs)
}

func (s *Server) showRouter(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	v := s.view(w)
	rt, err := lookupRouter(v, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "router", "routers", routerKnown, renderRouter(v, rt, v.RouterGatewayPort(rt.ID), ident))
}

// gatewayRequest is a parsed external_gateway_info; nil means "none".
type gatewayRequest struct {
	NetworkID        string            `json:"network_id"`
	EnableSNAT       *bool             `json:"enable_snat"`
	ExternalFixedIPs *[]fixedIPRequest `json:"external_fixed_ips"`
}

func parseGateway(raw json.RawMessage, ident Identity, action string) (*gatewayRequest, error) {
	if isNull(raw) {
		return nil, nil
	}
	var g gatewayRequest
	if err := decodeList("external_gateway_info", raw, &g); err != nil {
		return nil, err
	}
	if g.NetworkID == "" {
		if g.EnableSNAT != nil || g.ExternalFixedIPs != nil {
			return nil, badRequest("Invalid input for external_gateway_info. Reason: network_id is required.")
		}
		return nil, nil // {} clears the gateway, as in Neutron
	}
	if !ident.Admin {
		if g.EnableSNAT != nil {
			return nil, forbidden("(rule:%s_router and rule:%s_router:external_gateway_info:enable_snat) is disallowed by policy", action, action)
		}
		if g.ExternalFixedIPs != nil {
			return nil, forbidden("(rule:%s_router and rule:%s_router:external_gateway_info:external_fixed_ips) is disallowed by policy", action, action)
		}
	}
	if g.ExternalFixedIPs != nil {
		for _, f := range *g.ExternalFixedIPs {
			if f.SubnetID == "" && f.IPAddress == "" {
				return nil, badRequest("Invalid input for external_fixed_ips. Reason: every entry needs subnet_id or ip_address.")
			}
		}
	}
	return &g, nil
}

// gatewayPort builds the router's gateway port on the request's network:
// addresses as requested, else allocated by IPAM like any port's. cur is
// the router's current gateway port, kept (with new addresses) when the
// network does not change.
func (b *portBuild) gatewayPort(rt *fsm.Router, g *gatewayRequest, cur *fsm.Port) (*fsm.Port, error) {
	var p *fsm.Port
	var keep []fsm.FixedIP
	if cur != nil && cur.NetworkID == g.NetworkID {
		p = cur.Copy()
		p.RevisionNumber++
		p.UpdatedAt = b.ts
		keep = cur.FixedIPs
	} else {
		p = &fsm.Port{
			Meta:            fsm.Meta{ID: b.newID(), RevisionNumber: 1, CreatedAt: b.ts, UpdatedAt: b.ts},
			NetworkID:       g.NetworkID,
			DeviceID:        rt.ID,
			DeviceOwner:     fsm.DeviceOwnerRouterGateway,
			AdminStateUp:    true,
			Status:          fsm.PortStatusActive,
			BindingVIFType:  fsm.VIFTypeUnbound,
			BindingVNICType: "normal",
			BindingProfile:  "{}",
		}
		var err error
		if p.MACAddress, err = b.lease.allocateMAC(g.NetworkID); err != nil {
			return nil, err
		}
	}
	var err error
	switch {
	case g.ExternalFixedIPs != nil:
		p.FixedIPs, err = b.assignIPs(p, *g.ExternalFixedIPs, keep)
	case keep != nil:
		return p, nil
	default:
		p.FixedIPs, err = b.defaultIPs(p)
	}
	if err != nil {
		return nil, err
	}
	if len(p.FixedIPs) == 0 {
		return nil, newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
			"Bad router request: No IPs available for external network %s.", g.NetworkID)
	}
	return p, nil
}

// setGateway applies a gateway request to next and returns the gateway
// port to propose (nil: keep the current one or, without a gateway, none).
func (b *portBuild) setGateway(next *fsm.Router, g *gatewayRequest) (*fsm.Port, error) {
	cur := b.v.RouterGatewayPort(next.ID)
	if g == nil {
		next.Gateway = nil
		return nil, nil
	}
	if _, err := lookupNetwork(b.v, b.ident, g.NetworkID); err != nil {
		return nil, err
	}
	if err := b.v.CheckGatewayNetwork(g.NetworkID, "router"); err != nil {
		return nil, err
	}
	snat := true
	if next.Gateway != nil && next.Gateway.NetworkID == g.NetworkID {
		snat = next.Gateway.EnableSNAT
	}
	if g.EnableSNAT != nil {
		snat = *g.EnableSNAT
	}
	if next.Gateway != nil && next.Gateway.NetworkID != g.NetworkID && len(b.v.FloatingIPsOfRouter(next.ID)) > 0 {
		return nil, newError(http.StatusConflict, fsm.ErrTypeGatewayInUseByFloatingIP,
			"Gateway %s of router %s cannot be updated, as it is required by one or more floating IPs.", next.Gateway.NetworkID, next.ID)
	}
	next.Gateway = &fsm.ExternalGateway{NetworkID: g.NetworkID, EnableSNAT: snat}
	if cur != nil && cur.NetworkID == g.NetworkID && g.ExternalFixedIPs == nil {
		return nil, nil
	}
	return b.gatewayPort(next, g, cur)
}

// gatewayChassisAttr reads neutrino:gateway_chassis (null: an empty list,
// which asks for a scheduled one) and validates it against the state.
// ok is false when the request does not set it.
func gatewayChassisAttr(v *fsm.View, a attrs) (list []string, ok bool, err error) {
	if _, ok = a[attrGatewayChassis]; !ok {
		return nil, false, nil
	}
	list, _ = a.strings(attrGatewayChassis)
	if list == nil {
		list = []string{}
	}
	if err := v.CheckGatewayChassis(list); err != nil {
		return nil, true, err
	}
	return list, true, nil
}

// checkGatewayChassisNeedsGateway: a gateway chassis list needs a gateway.
func checkGatewayChassisNeedsGateway(rt *fsm.Router, list []string) error {
	if rt.Gateway == nil && len(list) > 0 {
		return newError(http.StatusBadRequest, fsm.ErrTypeInvalidGatewayChassis,
			"Invalid input for %s. Reason: the router has no external gateway.", attrGatewayChassis)
	}
	return nil
}

// parseRoutes reads extraroute's routes: canonical, unique, at most
// maxRoutes, destination and nexthop of one IP version.
func parseRoutes(raw json.RawMessage) ([]fsm.Route, error) {
	out := []fsm.Route{}
	if isNull(raw) {
		return out, nil
	}
	var routes []struct {
		Destination string `json:"destination"`
		NextHop     string `json:"nexthop"`
	}
	if err := decodeList("routes", raw, &routes); err != nil {
		return nil, err
	}
	if len(routes) > maxRoutes {
		return nil, newError(http.StatusBadRequest, "RoutesExhausted",
			"Unable to complete operation for router. The number of routes exceeds the maximum %d.", maxRoutes)
	}
	for _, rt := range routes {
		dst, err1 := netip.ParsePrefix(rt.Destination)
		hop, err2 := netip.ParseAddr(rt.NextHop)
		if err1 != nil || err2 != nil || dst.Addr().Zone() != "" || hop.Zone() != "" || dst.Addr().Is4() != hop.Is4() {
			return nil, newError(http.StatusBadRequest, fsm.ErrTypeInvalidRoutes,
				"Invalid format for routes: %s via %s, the destination must be a CIDR and the nexthop an address of the same IP version.", rt.Destination, rt.NextHop)
		}
		r := fsm.Route{Destination: dst.Masked().String(), NextHop: hop.String()}
		if slices.Contains(out, r) {
			return nil, newError(http.StatusBadRequest, fsm.ErrTypeInvalidRoutes,
				"Invalid format for routes: duplicate route %s via %s.", r.Destination, r.NextHop)
		}
		out = append(out, r)
	}
	return out, nil
}

func checkRouterAdminAttrs(ident Identity, a attrs, action string) error {
	if ident.Admin {
		return nil
	}
	for _, k := range []string{"distributed", "ha", attrGatewayChassis, attrGatewayPreempt} {
		if _, ok := a[k]; ok {
			return forbidden("(rule:%s_router and rule:%s_router:%s) is disallowed by policy", action, action, k)
		}
	}
	return nil
}

func (s *Server) createRouter(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "router", "routers", false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	a, raw, err := parseObject(objs[0], routerAttrs, routerStructured, true)
	if err != nil {
		return err
	}
	if err := checkRouterAdminAttrs(ident, a, "create"); err != nil {
		return err
	}
	project, err := projectFor(ident, a)
	if err != nil {
		return err
	}
	var g *gatewayRequest
	if rg, ok := raw["external_gateway_info"]; ok {
		if g, err = parseGateway(rg, ident, "create"); err != nil {
			return err
		}
	}
	ts := now()
	rt := &fsm.Router{
		Meta:         fsm.Meta{ID: newID(r.Context()), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		AdminStateUp: true,
		Status:       "ACTIVE",
		Routes:       []fsm.Route{},
	}
	rt.Name, _ = a.str("name")
	rt.Description, _ = a.str("description")
	if x, ok := a.boolean("admin_state_up"); ok {
		rt.AdminStateUp = x
	}
	rt.Distributed, _ = a.boolean("distributed")
	rt.HA, _ = a.boolean("ha")
	rt.AvailabilityZoneHints, _ = a.strings("availability_zone_hints")
	if err := checkZoneHints(s.fsm.State().Read(), rt.AvailabilityZoneHints); err != nil {
		return err
	}
	rt.GatewayPreempt, _ = a.boolean(attrGatewayPreempt)
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return err
		}
		rt.Tags = dedupTags(tags)
	}
	for attempt := 0; ; attempt++ {
		ls := s.ipam.begin()
		b := &portBuild{s: s, v: s.fsm.State().Read(), lease: ls, ident: ident, ts: ts, ctx: r.Context()}
		next := rt.Copy()
		gw, err := b.setGateway(next, g)
		if err == nil {
			var list []string
			if list, _, err = gatewayChassisAttr(b.v, a); err == nil {
				next.GatewayChassis = list
				err = checkGatewayChassisNeedsGateway(next, list)
			}
		}
		if err != nil {
			ls.release()
			return err
		}
		declareCreated(r.Context(), "routers", "router", false, next.ID)
		rev, err := s.propose(r.Context(), fsm.CmdRouterCreate, fsm.RouterCreateRequest{Router: next, GatewayPort: gw})
		ls.release()
		if fe, ok := fsm.AsError(err); ok && attempt < maxAllocRetries &&
			(fe.Type == fsm.ErrTypeIPAddressInUse || fe.Type == fsm.ErrTypeMacAddressInUse) {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		writeJSON(w, http.StatusCreated, map[string]any{"router": s.renderCommitted(next, gw, ident)})
		return nil
	}
}

// routerCAS is the compare-and-set spec of plain router updates (tags):
// the gateway port stays as it is.
func (s *Server) routerCAS(ctx context.Context, id string) casSpec[*fsm.Router] {
	ident := identityFrom(ctx)
	lookup := func(v *fsm.View) (*fsm.Router, error) { return lookupRouter(v, ident, id) }
	return casSpec[*fsm.Router]{
		read:    lookup,
		lookup:  lookup,
		copy:    (*fsm.Router).Copy,
		command: fsm.CmdRouterUpdate,
		request: func(next *fsm.Router, prev uint64) any {
			return fsm.RouterUpdateRequest{Router: next, PrevIndex: prev}
		},
	}
}

// changeRouter runs one compare-and-set change of a router: build turns
// the current version into the command to propose (with next, the new
// router version, already revised); it is rebuilt when a concurrent write
// won the race or the state machine refused an address IPAM chose.
func (s *Server) changeRouter(ctx context.Context, r *http.Request, id string,
	build func(b *portBuild, cur, next *fsm.Router) (fsm.CommandType, any, error)) (*fsm.Router, uint64, error) {
	ident := identityFrom(ctx)
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		cur, err := lookupRouter(v, ident, id)
		if err != nil {
			return nil, 0, err
		}
		if err := checkIfMatch(r, cur.RevisionNumber); err != nil {
			return nil, 0, err
		}
		ls := s.ipam.begin()
		b := &portBuild{s: s, v: v, lease: ls, ident: ident, ts: now(), ctx: ctx}
		next := cur.Copy()
		next.RevisionNumber = cur.RevisionNumber + 1
		next.UpdatedAt = b.ts
		typ, body, err := build(b, cur, next)
		if err != nil {
			ls.release()
			return nil, 0, err
		}
		rev, err := s.propose(ctx, typ, body)
		ls.release()
		if fe, ok := fsm.AsError(err); ok && attempt < maxUpdateRetries &&
			(fe.Type == fsm.ErrTypeStaleUpdate || fe.Type == fsm.ErrTypeIPAddressInUse || fe.Type == fsm.ErrTypeMacAddressInUse) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return next, rev, nil
	}
}

func (s *Server) updateRouter(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "router", "routers", false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	a, raw, err := parseObject(objs[0], routerAttrs, routerStructured, false)
	if err != nil {
		return err
	}
	if err := checkRouterAdminAttrs(ident, a, "update"); err != nil {
		return err
	}
	var (
		g        *gatewayRequest
		gwChange bool
		routes   []fsm.Route
	)
	if rg, ok := raw["external_gateway_info"]; ok {
		gwChange = true
		if g, err = parseGateway(rg, ident, "update"); err != nil {
			return err
		}
	}
	if rr, ok := raw["routes"]; ok {
		if routes, err = parseRoutes(rr); err != nil {
			return err
		}
	}
	var gwPort *fsm.Port
	rt, rev, err := s.changeRouter(r.Context(), r, r.PathValue("id"), func(b *portBuild, cur, next *fsm.Router) (fsm.CommandType, any, error) {
		if x, ok := a.str("name"); ok {
			next.Name = x
		}
		if x, ok := a.str("description"); ok {
			next.Description = x
		}
		if x, ok := a.boolean("admin_state_up"); ok {
			next.AdminStateUp = x
		}
		for _, k := range []struct {
			name string
			dst  *bool
		}{{"distributed", &next.Distributed}, {"ha", &next.HA}} {
			if x, ok := a.boolean(k.name); ok && x != *k.dst {
				if cur.AdminStateUp {
					return 0, nil, newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
						"Bad router request: Cannot change the %s attribute of an active router. Set admin_state_up to False first.", k.name)
				}
				*k.dst = x
			}
		}
		gwPort = b.v.RouterGatewayPort(cur.ID)
		var newPort *fsm.Port
		if gwChange {
			var err error
			if newPort, err = b.setGateway(next, g); err != nil {
				return 0, nil, err
			}
			switch {
			case next.Gateway == nil:
				if cur.Gateway != nil && len(b.v.FloatingIPsOfRouter(cur.ID)) > 0 {
					return 0, nil, newError(http.StatusConflict, fsm.ErrTypeGatewayInUseByFloatingIP,
						"Gateway %s of router %s cannot be updated, as it is required by one or more floating IPs.", cur.Gateway.NetworkID, cur.ID)
				}
				gwPort = nil
			case newPort != nil:
				gwPort = newPort
			}
		}
		if routes != nil {
			next.Routes = routes
		}
		if x, ok := a.boolean(attrGatewayPreempt); ok {
			next.GatewayPreempt = x
		}
		list, ok, err := gatewayChassisAttr(b.v, a)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			if err := checkGatewayChassisNeedsGateway(next, list); err != nil {
				return 0, nil, err
			}
			next.GatewayChassis = list
		}
		ports := []*fsm.Port{gwPort}
		ports = append(ports, b.v.RouterInterfaces(cur.ID)...)
		if err := b.v.CheckRoutes(next.Routes, ports); err != nil {
			return 0, nil, err
		}
		return fsm.CmdRouterUpdate, fsm.RouterUpdateRequest{Router: next, PrevIndex: cur.ModifyIndex, GatewayPort: newPort}, nil
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"router": s.renderCommitted(rt, gwPort, ident)})
	return nil
}

func (s *Server) deleteRouter(w http.ResponseWriter, r *http.Request) error {
	v := s.fsm.State().Read()
	rt, err := lookupRouter(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, rt.RevisionNumber); err != nil {
		return err
	}
	if len(v.RouterInterfaces(rt.ID)) > 0 {
		return newError(http.StatusConflict, fsm.ErrTypeRouterInUse, "Router %s still has ports", rt.ID)
	}
	rev, err := s.propose(r.Context(), fsm.CmdRouterDelete, fsm.RouterDeleteRequest{ID: rt.ID})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// interfaceBody reads {"subnet_id": ...} and/or {"port_id": ...}.
func interfaceBody(r *http.Request) (subnetID, portID string, err error) {
	body, err := readBody(r)
	if err != nil {
		return "", "", err
	}
	for k, raw := range body {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", "", badRequest("Invalid input for %s. Reason: '%s' is not a valid string.", k, string(raw))
		}
		switch k {
		case "subnet_id":
			subnetID = s
		case "port_id":
			portID = s
		default:
			return "", "", badRequest("Unrecognized attribute(s) '%s'", k)
		}
	}
	if subnetID == "" && portID == "" {
		return "", "", newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
			"Bad router request: Either subnet_id or port_id must be specified.")
	}
	return subnetID, portID, nil
}

func interfaceInfo(rt *fsm.Router, p *fsm.Port) map[string]any {
	subs := []string{}
	for _, ip := range p.FixedIPs {
		subs = append(subs, ip.SubnetID)
	}
	sub := ""
	if len(subs) > 0 {
		sub = subs[0]
	}
	return map[string]any{"id": rt.ID, "tenant_id": rt.ProjectID, "project_id": rt.ProjectID,
		"port_id": p.ID, "network_id": p.NetworkID, "subnet_id": sub, "subnet_ids": subs}
}

// interfaceSubnet is a subnet the caller may attach to its router: its
// own (or, for an admin, any) or one on a shared network.
func interfaceSubnet(v *fsm.View, ident Identity, rt *fsm.Router, id string) (*fsm.Subnet, error) {
	sub, err := lookupSubnet(v, ident, id)
	if err != nil {
		return nil, err
	}
	n := v.Network(sub.NetworkID)
	if !ident.Admin && sub.ProjectID != rt.ProjectID && (n == nil || !v.NetworkSharedWith(n, rt.ProjectID)) {
		return nil, subnetNotFound(id)
	}
	return sub, nil
}

func (s *Server) addRouterInterface(w http.ResponseWriter, r *http.Request) error {
	subnetID, portID, err := interfaceBody(r)
	if err != nil {
		return err
	}
	if subnetID != "" && portID != "" {
		return newError(http.StatusBadRequest, fsm.ErrTypeBadRequest, "Bad router request: Cannot specify both subnet-id and port-id.")
	}
	ident := identityFrom(r.Context())
	var port *fsm.Port
	rt, rev, err := s.changeRouter(r.Context(), r, r.PathValue("id"), func(b *portBuild, cur, next *fsm.Router) (fsm.CommandType, any, error) {
		v := b.v
		var prevIndex uint64
		if subnetID != "" {
			sub, err := interfaceSubnet(v, ident, cur, subnetID)
			if err != nil {
				return 0, nil, err
			}
			if sub.GatewayIP == "" {
				return 0, nil, newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
					"Bad router request: Subnet for router interface must have a gateway IP.")
			}
			if err := checkInterfaceSubnet(v, cur.ID, sub); err != nil {
				return 0, nil, err
			}
			gw := netip.MustParseAddr(sub.GatewayIP)
			if err := b.lease.claimIP(sub, gw, ""); err != nil {
				return 0, nil, err
			}
			port = &fsm.Port{
				Meta:            fsm.Meta{ID: b.newID(), ProjectID: cur.ProjectID, RevisionNumber: 1, CreatedAt: b.ts, UpdatedAt: b.ts},
				NetworkID:       sub.NetworkID,
				FixedIPs:        []fsm.FixedIP{{SubnetID: sub.ID, IPAddress: gw.String()}},
				DeviceID:        cur.ID,
				DeviceOwner:     fsm.DeviceOwnerRouterInterface,
				AdminStateUp:    true,
				Status:          fsm.PortStatusActive,
				BindingVIFType:  fsm.VIFTypeUnbound,
				BindingVNICType: "normal",
				BindingProfile:  "{}",
			}
			var err2 error
			if port.MACAddress, err2 = b.lease.allocateMAC(sub.NetworkID); err2 != nil {
				return 0, nil, err2
			}
		} else {
			p, err := lookupPort(v, ident, portID)
			if err != nil {
				return 0, nil, err
			}
			if !ident.Admin && p.ProjectID != cur.ProjectID {
				return 0, nil, portNotFound(portID)
			}
			if p.DeviceID != "" {
				return 0, nil, newError(http.StatusConflict, fsm.ErrTypePortInUse,
					"Unable to complete operation on port %s for network %s. Port already has an attached device %s.", p.ID, p.NetworkID, p.DeviceID)
			}
			if len(p.FixedIPs) != 1 {
				return 0, nil, newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
					"Bad router request: Router port %s must have exactly one fixed IP, it has %d.", p.ID, len(p.FixedIPs))
			}
			sub := v.Subnet(p.FixedIPs[0].SubnetID)
			if sub == nil {
				return 0, nil, subnetNotFound(p.FixedIPs[0].SubnetID)
			}
			if err := checkInterfaceSubnet(v, cur.ID, sub); err != nil {
				return 0, nil, err
			}
			port = p.Copy()
			port.DeviceID, port.DeviceOwner = cur.ID, fsm.DeviceOwnerRouterInterface
			port.RevisionNumber++
			port.UpdatedAt = b.ts
			prevIndex = p.ModifyIndex
		}
		declareBody(r.Context(), http.StatusOK, interfaceInfo(next, port))
		return fsm.CmdRouterInterfaceAdd, fsm.RouterInterfaceAddRequest{Router: next, PrevIndex: cur.ModifyIndex, Port: port, PortPrevIndex: prevIndex}, nil
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, interfaceInfo(rt, port))
	return nil
}

// checkInterfaceSubnet: not a subnet of an external network (that is
// what a gateway is for), not an IPv6 subnet whose hosts are to take
// their router advertisements from an external router (address mode set,
// RA mode not: Neutron refuses it), and not one the router already has
// or overlaps.
func checkInterfaceSubnet(v *fsm.View, routerID string, sub *fsm.Subnet) error {
	if n := v.Network(sub.NetworkID); n != nil && n.External {
		return newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
			"Bad router request: Subnet %s is on external network %s; use it as the router's gateway.", sub.ID, n.ID)
	}
	if sub.IPVersion == 6 && sub.IPv6RAMode == "" && sub.IPv6AddressMode != "" {
		return newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
			"Bad router request: IPv6 subnet %s configured to receive RAs from an external router cannot be added to Neutron Router.", sub.ID)
	}
	return v.CheckInterfaceSubnet(routerID, sub)
}

func (s *Server) removeRouterInterface(w http.ResponseWriter, r *http.Request) error {
	subnetID, portID, err := interfaceBody(r)
	if err != nil {
		return err
	}
	var port *fsm.Port
	rt, rev, err := s.changeRouter(r.Context(), r, r.PathValue("id"), func(b *portBuild, cur, next *fsm.Router) (fsm.CommandType, any, error) {
		port = nil
		for _, p := range b.v.RouterInterfaces(cur.ID) {
			onSubnet := slices.ContainsFunc(p.FixedIPs, func(f fsm.FixedIP) bool { return f.SubnetID == subnetID })
			if (portID == "" || p.ID == portID) && (subnetID == "" || onSubnet) {
				port = p
				break
			}
		}
		if port == nil {
			if portID != "" {
				if subnetID != "" {
					if p := b.v.Port(portID); p != nil && p.DeviceID == cur.ID && p.DeviceOwner == fsm.DeviceOwnerRouterInterface {
						return 0, nil, newError(http.StatusConflict, "SubnetMismatchForPort",
							"Subnet on port %s does not match the requested subnet %s.", portID, subnetID)
					}
				}
				return 0, nil, newError(http.StatusNotFound, fsm.ErrTypeRouterInterfaceNotFound,
					"Router %s does not have an interface with id %s", cur.ID, portID)
			}
			return 0, nil, newError(http.StatusNotFound, fsm.ErrTypeRouterInterfaceNotFoundSubnet,
				"Router %s has no interface on subnet %s", cur.ID, subnetID)
		}
		if err := b.v.CheckInterfaceRemove(cur, port); err != nil {
			return 0, nil, err
		}
		declareBody(r.Context(), http.StatusOK, interfaceInfo(next, port))
		return fsm.CmdRouterInterfaceRemove, fsm.RouterInterfaceRemoveRequest{Router: next, PrevIndex: cur.ModifyIndex, PortID: port.ID}, nil
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, interfaceInfo(rt, port))
	return nil
}
