package northbound

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"

	"neutrino/fsm"
)

// subnetAttrs are the plain attributes of a subnet.
var subnetAttrs = map[string]attrSpec{
	"id":                {Kind: attrString},
	"name":              {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":       {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":        {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":         {Kind: attrString, Post: true, MaxLen: 255},
	"network_id":        {Kind: attrString, Post: true, UUID: true},
	"ip_version":        {Kind: attrInt, Post: true},
	"cidr":              {Kind: attrString, Post: true},
	"gateway_ip":        {Kind: attrString, Post: true, Put: true, Nullable: true},
	"enable_dhcp":       {Kind: attrBool, Post: true, Put: true},
	"dns_nameservers":   {Kind: attrStrings, Post: true, Put: true},
	"ipv6_ra_mode":      {Kind: attrString, Post: true, Nullable: true},
	"ipv6_address_mode": {Kind: attrString, Post: true, Nullable: true},
	"subnetpool_id":     {Kind: attrString, Post: true, Nullable: true},
	"segment_id":        {Kind: attrString},
	"service_types":     {Kind: attrStrings},
	"tags":              {Kind: attrStrings, Post: true},
	"revision_number":   {Kind: attrInt},
	"created_at":        {Kind: attrString},
	"updated_at":        {Kind: attrString},
}

// subnetStructured are the subnet attributes that are lists of objects.
var subnetStructured = map[string]attrSpec{
	"allocation_pools": {Post: true, Put: true},
	"host_routes":      {Post: true, Put: true},
}

var subnetKnown = merged(subnetAttrs, subnetStructured)

var ipv6Modes = []string{"slaac", "dhcpv6-stateful", "dhcpv6-stateless"}

func renderSubnet(s *fsm.Subnet) map[string]any {
	pools := make([]map[string]string, 0, len(s.AllocationPools))
	for _, p := range s.AllocationPools {
		pools = append(pools, map[string]string{"start": p.Start, "end": p.End})
	}
	routes := make([]map[string]string, 0, len(s.HostRoutes))
	for _, r := range s.HostRoutes {
		routes = append(routes, map[string]string{"destination": r.Destination, "nexthop": r.NextHop})
	}
	return map[string]any{
		"id":                s.ID,
		"name":              s.Name,
		"description":       s.Description,
		"project_id":        s.ProjectID,
		"tenant_id":         s.ProjectID,
		"network_id":        s.NetworkID,
		"ip_version":        s.IPVersion,
		"cidr":              s.CIDR,
		"gateway_ip":        strOrNil(s.GatewayIP),
		"allocation_pools":  pools,
		"host_routes":       routes,
		"enable_dhcp":       s.EnableDHCP,
		"dns_nameservers":   nonNil(s.DNSNameservers),
		"ipv6_ra_mode":      strOrNil(s.IPv6RAMode),
		"ipv6_address_mode": strOrNil(s.IPv6AddressMode),
		"subnetpool_id":     strOrNil(s.SubnetPoolID),
		"segment_id":        nil,
		"service_types":     []string{},
		"tags":              nonNil(s.Tags),
		"revision_number":   s.RevisionNumber,
		"created_at":        s.CreatedAt,
		"updated_at":        s.UpdatedAt,
	}
}

// subnetIDs lists a network's subnets for the network's `subnets`.
func subnetIDs(v *fsm.View, networkID string) []string {
	out := []string{}
	if v == nil {
		return out
	}
	for _, s := range v.SubnetsOfNetwork(networkID) {
		out = append(out, s.ID)
	}
	return out
}

// subnetVisible: subnets are seen with their network (shared or external
// networks' subnets are visible to all), as in Neutron's policy.
func subnetVisible(v *fsm.View, id Identity, s *fsm.Subnet) bool {
	if id.Admin || s.ProjectID == id.ProjectID {
		return true
	}
	n := v.Network(s.NetworkID)
	return n != nil && (v.NetworkSharedWith(n, id.ProjectID) || v.NetworkExternalFor(n, id.ProjectID))
}

func subnetNotFound(id string) *apiError {
	return newError(http.StatusNotFound, fsm.ErrTypeSubnetNotFound, "Subnet %s could not be found.", id)
}

func lookupSubnet(v *fsm.View, ident Identity, id string) (*fsm.Subnet, error) {
	s := v.Subnet(id)
	if s == nil || !subnetVisible(v, ident, s) {
		return nil, subnetNotFound(id)
	}
	return s, nil
}

// ownedSubnet is a subnet the caller may change: its own or, for an
// admin, any.
func ownedSubnet(v *fsm.View, ident Identity, id, action string) (*fsm.Subnet, error) {
	s, err := lookupSubnet(v, ident, id)
	if err != nil {
		return nil, err
	}
	if !ident.Admin && s.ProjectID != ident.ProjectID {
		return nil, forbidden("(rule:%s_subnet) is disallowed by policy", action)
	}
	return s, nil
}

func (s *Server) subnetRoutes() {
	s.neutron("GET /v2.0/subnets", s.listSubnets)
	s.neutron("POST /v2.0/subnets", s.createSubnets)
	s.neutron("GET /v2.0/subnets/{id}", s.showSubnet)
	s.neutron("PUT /v2.0/subnets/{id}", s.updateSubnet)
	s.neutron("DELETE /v2.0/subnets/{id}", s.deleteSubnet)
	s.tagRoutes("subnets", tagsVia(s, s.subnetCAS))
}

func (s *Server) listSubnets(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "subnets", subnetKnown)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	v := s.view(w)
	var cands []*fsm.Subnet
	if nets, ok := lq.filters["network_id"]; ok {
		for _, n := range slices.Compact(slices.Sorted(slices.Values(nets))) {
			cands = append(cands, v.SubnetsOfNetwork(n)...)
		}
	} else {
		cands = v.Subnets()
	}
	objs := make([]map[string]any, 0, len(cands))
	for _, sub := range cands {
		if subnetVisible(v, ident, sub) {
			objs = append(objs, renderSubnet(sub))
		}
	}
	return writeList(w, r, lq, "subnets", objs)
}

func (s *Server) showSubnet(w http.ResponseWriter, r *http.Request) error {
	v := s.view(w)
	sub, err := lookupSubnet(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "subnet", "subnets", subnetKnown, renderSubnet(sub))
}

func (s *Server) createSubnets(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "subnet", "subnets", true)
	if err != nil {
		return err
	}
	_, bulk := body["subnets"]
	ident := identityFrom(r.Context())
	v := s.fsm.State().Read()
	ts := now()
	hold := s.prefixes.begin()
	defer hold.release()
	subs := make([]*fsm.Subnet, 0, len(objs))
	for _, obj := range objs {
		poolID, err := s.poolSubnet(v, hold, ident, obj)
		if err != nil {
			return err
		}
		a, raw, err := parseObject(obj, subnetAttrs, subnetStructured, true)
		if err != nil {
			return err
		}
		sub, err := newSubnet(r.Context(), v, ident, a, raw, ts)
		if err != nil {
			return err
		}
		sub.SubnetPoolID = poolID
		for _, prev := range subs {
			if prev.NetworkID == sub.NetworkID && prev.Prefix().Overlaps(sub.Prefix()) {
				return invalidInput("Requested subnet with cidr: %s for network: %s overlaps with another subnet.", sub.CIDR, sub.NetworkID)
			}
		}
		subs = append(subs, sub)
	}
	ids := make([]string, len(subs))
	for i, sub := range subs {
		ids[i] = sub.ID
	}
	declareCreated(r.Context(), "subnets", "subnet", bulk, ids...)
	rev, err := s.propose(r.Context(), fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: subs})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	out := make([]map[string]any, len(subs))
	for i, sub := range subs {
		out[i] = renderSubnet(sub)
	}
	writeCreated(w, "subnet", "subnets", bulk, out)
	return nil
}

func newSubnet(ctx context.Context, v *fsm.View, ident Identity, a attrs, raw map[string]json.RawMessage, ts string) (*fsm.Subnet, error) {
	project, err := projectFor(ident, a)
	if err != nil {
		return nil, err
	}
	netID, _ := a.str("network_id")
	if netID == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'network_id' not specified")
	}
	// Neutron requires ip_version (no default in its attribute map) and
	// checks required attributes before it looks anything up.
	ipVersion, ok := a.integer("ip_version")
	if !ok {
		return nil, badRequest("Failed to parse request. Required attribute 'ip_version' not specified")
	}
	n, err := lookupNetwork(v, ident, netID)
	if err != nil {
		return nil, err
	}
	if !ident.Admin && n.ProjectID != ident.ProjectID {
		return nil, forbidden("(rule:create_subnet and rule:create_subnet:network_id) is disallowed by policy")
	}
	cidrStr, _ := a.str("cidr")
	if cidrStr == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'cidr' not specified")
	}
	prefix, err := netip.ParsePrefix(cidrStr)
	if err != nil || prefix.Addr().Zone() != "" {
		return nil, badRequest("Invalid input for cidr. Reason: '%s' is not a valid IP subnet.", cidrStr)
	}
	prefix = prefix.Masked()
	family := 4
	if prefix.Addr().Is6() {
		family = 6
	}
	if ipVersion != 4 && ipVersion != 6 {
		return nil, badRequest("Invalid input for ip_version. Reason: %d is not in [4, 6].", ipVersion)
	}
	if ipVersion != family {
		return nil, invalidInput("Cidr %s does not match ip version %d", prefix, ipVersion)
	}
	sub := &fsm.Subnet{
		Meta:       fsm.Meta{ID: newID(ctx), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		NetworkID:  netID,
		IPVersion:  ipVersion,
		CIDR:       prefix.String(),
		EnableDHCP: true,
	}
	sub.Name, _ = a.str("name")
	sub.Description, _ = a.str("description")
	if b, ok := a.boolean("enable_dhcp"); ok {
		sub.EnableDHCP = b
	}
	sub.IPv6RAMode, _ = a.str("ipv6_ra_mode")
	sub.IPv6AddressMode, _ = a.str("ipv6_address_mode")
	if err := checkIPv6Modes(sub, prefix); err != nil {
		return nil, err
	}
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return nil, err
		}
		sub.Tags = dedupTags(tags)
	}
	var gw netip.Addr
	if _, set := a["gateway_ip"]; !set {
		gw, _ = defaultGateway(prefix)
	} else if gs, _ := a.str("gateway_ip"); gs != "" {
		if gw, err = checkGateway(prefix, gs); err != nil {
			return nil, err
		}
	}
	if gw.IsValid() {
		sub.GatewayIP = gw.String()
	}
	if r, ok := raw["allocation_pools"]; ok && !isNull(r) {
		pools, err := parsePoolsBody(r)
		if err != nil {
			return nil, err
		}
		if sub.AllocationPools, err = validatePools(prefix, pools, gw); err != nil {
			return nil, err
		}
	} else {
		sub.AllocationPools = defaultPools(prefix, gw)
	}
	if err := setSubnetLists(sub, a, raw, prefix); err != nil {
		return nil, err
	}
	if err := v.CheckSubnetOverlap(sub); err != nil {
		return nil, err
	}
	return sub, nil
}

func checkIPv6Modes(sub *fsm.Subnet, prefix netip.Prefix) error {
	ra, addr := sub.IPv6RAMode, sub.IPv6AddressMode
	if ra == "" && addr == "" {
		return nil
	}
	if sub.IPVersion != 6 {
		return invalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False or ip_version is 4.")
	}
	for name, mode := range map[string]string{"ipv6_ra_mode": ra, "ipv6_address_mode": addr} {
		if mode != "" && !slices.Contains(ipv6Modes, mode) {
			return badRequest("Invalid input for %s. Reason: '%s' is not in %v.", name, mode, ipv6Modes)
		}
	}
	if ra != "" && addr != "" && ra != addr {
		return invalidInput("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value.", ra, addr)
	}
	if (addr == "slaac" || addr == "dhcpv6-stateless" || ra == "slaac" || ra == "dhcpv6-stateless") && prefix.Bits() != 64 {
		return invalidInput("Invalid CIDR %s for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64.", prefix)
	}
	return nil
}

// checkGateway: the gateway must be a host address of the subnet.
func checkGateway(prefix netip.Prefix, s string) (netip.Addr, error) {
	gw, err := netip.ParseAddr(s)
	if err != nil || gw.Zone() != "" {
		return netip.Addr{}, badRequest("Invalid input for gateway_ip. Reason: '%s' is not a valid IP address.", s)
	}
	if gw.Is4() != prefix.Addr().Is4() || !prefix.Contains(gw) || gw == prefix.Addr() ||
		(gw.Is4() && gw == lastAddr(prefix) && prefix.Bits() < 31) {
		return netip.Addr{}, invalidInput("Gateway is not valid on subnet %s: %s.", prefix, s)
	}
	return gw, nil
}

func parsePoolsBody(raw json.RawMessage) ([]fsm.IPRange, error) {
	var pools []struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	if err := decodeList("allocation_pools", raw, &pools); err != nil {
		return nil, err
	}
	out := make([]fsm.IPRange, 0, len(pools))
	for _, p := range pools {
		if p.Start == "" || p.End == "" {
			return nil, badRequest("Invalid input for allocation_pools. Reason: every pool needs 'start' and 'end'.")
		}
		out = append(out, fsm.IPRange{Start: p.Start, End: p.End})
	}
	return out, nil
}

// setSubnetLists validates and sets dns_nameservers and host_routes.
func setSubnetLists(sub *fsm.Subnet, a attrs, raw map[string]json.RawMessage, prefix netip.Prefix) error {
	if ns, ok := a.strings("dns_nameservers"); ok {
		out := make([]string, 0, len(ns))
		for _, n := range ns {
			addr, err := netip.ParseAddr(n)
			if err != nil {
				return badRequest("Invalid input for dns_nameservers. Reason: '%s' is not a valid nameserver.", n)
			}
			if slices.Contains(out, addr.String()) {
				return badRequest("Invalid input for dns_nameservers. Reason: Duplicate nameserver '%s'.", n)
			}
			out = append(out, addr.String())
		}
		sub.DNSNameservers = out
	}
	if r, ok := raw["host_routes"]; ok {
		sub.HostRoutes = []fsm.HostRoute{}
		if isNull(r) {
			return nil
		}
		var routes []struct {
			Destination string `json:"destination"`
			NextHop     string `json:"nexthop"`
		}
		if err := decodeList("host_routes", r, &routes); err != nil {
			return err
		}
		for _, rt := range routes {
			dst, err1 := netip.ParsePrefix(rt.Destination)
			hop, err2 := netip.ParseAddr(rt.NextHop)
			if err1 != nil || err2 != nil {
				return badRequest("Invalid input for host_routes. Reason: invalid route %s via %s.", rt.Destination, rt.NextHop)
			}
			if dst.Addr().Is4() != prefix.Addr().Is4() || hop.Is4() != prefix.Addr().Is4() {
				return invalidInput("Host route %s via %s does not match the IP version of subnet %s.", rt.Destination, rt.NextHop, prefix)
			}
			hr := fsm.HostRoute{Destination: dst.Masked().String(), NextHop: hop.String()}
			if slices.Contains(sub.HostRoutes, hr) {
				return badRequest("Invalid input for host_routes. Reason: Duplicate hostroute '%s'.", rt.Destination)
			}
			sub.HostRoutes = append(sub.HostRoutes, hr)
		}
	}
	return nil
}

func (s *Server) subnetCAS(ctx context.Context, id string) casSpec[*fsm.Subnet] {
	ident := identityFrom(ctx)
	return casSpec[*fsm.Subnet]{
		read:    func(v *fsm.View) (*fsm.Subnet, error) { return lookupSubnet(v, ident, id) },
		lookup:  func(v *fsm.View) (*fsm.Subnet, error) { return ownedSubnet(v, ident, id, "update") },
		copy:    (*fsm.Subnet).Copy,
		command: fsm.CmdSubnetUpdate,
		request: func(next *fsm.Subnet, prev uint64) any {
			return fsm.SubnetUpdateRequest{Subnet: next, PrevIndex: prev}
		},
	}
}

func (s *Server) updateSubnet(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "subnet", "subnets", false)
	if err != nil {
		return err
	}
	a, raw, err := parseObject(objs[0], subnetAttrs, subnetStructured, false)
	if err != nil {
		return err
	}
	sub, rev, err := casUpdate(s, r.Context(), r, s.subnetCAS(r.Context(), r.PathValue("id")), func(v *fsm.View, sub *fsm.Subnet) error {
		prefix := sub.Prefix()
		if x, ok := a.str("name"); ok {
			sub.Name = x
		}
		if x, ok := a.str("description"); ok {
			sub.Description = x
		}
		if x, ok := a.boolean("enable_dhcp"); ok {
			sub.EnableDHCP = x
		}
		gw, _ := netip.ParseAddr(sub.GatewayIP)
		if _, set := a["gateway_ip"]; set {
			gw = netip.Addr{}
			if gs, _ := a.str("gateway_ip"); gs != "" {
				var err error
				if gw, err = checkGateway(prefix, gs); err != nil {
					return err
				}
			}
			sub.GatewayIP = ""
			if gw.IsValid() {
				sub.GatewayIP = gw.String()
			}
		}
		pools := sub.AllocationPools
		if rp, ok := raw["allocation_pools"]; ok && !isNull(rp) {
			var err error
			if pools, err = parsePoolsBody(rp); err != nil {
				return err
			}
		}
		var err error
		if sub.AllocationPools, err = validatePools(prefix, pools, gw); err != nil {
			return err
		}
		if err := setSubnetLists(sub, a, raw, prefix); err != nil {
			return err
		}
		cur := v.Subnet(sub.ID)
		return v.CheckPoolsKeepAllocations(cur, sub)
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"subnet": renderSubnet(sub)})
	return nil
}

func (s *Server) deleteSubnet(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	v := s.fsm.State().Read()
	sub, err := ownedSubnet(v, ident, r.PathValue("id"), "delete")
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, sub.RevisionNumber); err != nil {
		return err
	}
	if err := v.CheckSubnetDelete(sub.ID); err != nil {
		return err
	}
	rev, err := s.propose(r.Context(), fsm.CmdSubnetDelete, fsm.SubnetDeleteRequest{ID: sub.ID})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
