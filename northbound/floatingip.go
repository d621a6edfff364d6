package northbound

import (
	"context"
	"net/http"
	"net/netip"

	"neutrino/fsm"
)

// floatingIPAttrs are the attributes of a floating IP.
var floatingIPAttrs = map[string]attrSpec{
	"id":                  {Kind: attrString},
	"description":         {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":          {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":           {Kind: attrString, Post: true, MaxLen: 255},
	"floating_network_id": {Kind: attrString, Post: true, UUID: true},
	"floating_ip_address": {Kind: attrString, Post: true},
	"subnet_id":           {Kind: attrString, Post: true, Nullable: true},
	"port_id":             {Kind: attrString, Post: true, Put: true, Nullable: true, UUID: true},
	"fixed_ip_address":    {Kind: attrString, Post: true, Put: true, Nullable: true},
	"router_id":           {Kind: attrString},
	"status":              {Kind: attrString},
	"port_forwardings":    {Kind: attrStrings},
	"tags":                {Kind: attrStrings, Post: true},
	"revision_number":     {Kind: attrInt},
	"created_at":          {Kind: attrString},
	"updated_at":          {Kind: attrString},
}

func renderFloatingIP(f *fsm.FloatingIP) map[string]any {
	return map[string]any{
		"id":                  f.ID,
		"description":         f.Description,
		"project_id":          f.ProjectID,
		"tenant_id":           f.ProjectID,
		"floating_network_id": f.FloatingNetworkID,
		"floating_ip_address": f.FloatingIPAddress,
		"port_id":             strOrNil(f.PortID),
		"fixed_ip_address":    strOrNil(f.FixedIPAddress),
		"router_id":           strOrNil(f.RouterID),
		"status":              f.Status,
		"port_forwardings":    []string{},
		"tags":                nonNil(f.Tags),
		"revision_number":     f.RevisionNumber,
		"created_at":          f.CreatedAt,
		"updated_at":          f.UpdatedAt,
	}
}

func floatingIPNotFound(id string) *apiError {
	return newError(http.StatusNotFound, fsm.ErrTypeFloatingIPNotFound, "Floating IP %s could not be found", id)
}

// lookupFloatingIP returns a floating IP of the caller's project (any,
// for an admin), or a 404.
func lookupFloatingIP(v *fsm.View, ident Identity, id string) (*fsm.FloatingIP, error) {
	f := v.FloatingIP(id)
	if f == nil || !(ident.Admin || f.ProjectID == ident.ProjectID) {
		return nil, floatingIPNotFound(id)
	}
	return f, nil
}

func (s *Server) floatingIPRoutes() {
	s.neutron("GET /v2.0/floatingips", s.listFloatingIPs)
	s.neutron("POST /v2.0/floatingips", s.createFloatingIP)
	s.neutron("GET /v2.0/floatingips/{id}", s.showFloatingIP)
	s.neutron("PUT /v2.0/floatingips/{id}", s.updateFloatingIP)
	s.neutron("DELETE /v2.0/floatingips/{id}", s.deleteFloatingIP)
	s.tagRoutes("floatingips", tagsVia(s, s.floatingIPCAS))
}

func (s *Server) listFloatingIPs(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "floatingips", floatingIPAttrs)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	v := s.view(w)
	objs := []map[string]any{}
	for _, f := range v.FloatingIPs() {
		if ident.Admin || f.ProjectID == ident.ProjectID {
			objs = append(objs, renderFloatingIP(f))
		}
	}
	return writeList(w, r, lq, "floatingips", objs)
}

func (s *Server) showFloatingIP(w http.ResponseWriter, r *http.Request) error {
	f, err := lookupFloatingIP(s.view(w), identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "floatingip", "floatingips", floatingIPAttrs, renderFloatingIP(f))
}

// associate sets the floating IP's port and fixed address from a request
// and derives router_id and status, refusing what Neutron refuses: a port
// of another project (404, as if unseen), an address the port does not
// have, a port no router connects to the floating IP's network.
func associate(v *fsm.View, ident Identity, f *fsm.FloatingIP, portID string, fixed string, fixedSet bool) error {
	if portID == "" {
		f.PortID, f.FixedIPAddress, f.RouterID, f.Status = "", "", "", fsm.FloatingIPDown
		return nil
	}
	p, err := lookupPort(v, ident, portID)
	if err != nil {
		return err
	}
	if !ident.Admin && p.ProjectID != f.ProjectID {
		return portNotFound(portID)
	}
	if fixedSet && fixed != "" {
		a, err := netip.ParseAddr(fixed)
		if err != nil {
			return badRequest("Invalid input for fixed_ip_address. Reason: '%s' is not a valid IP address.", fixed)
		}
		fixed = a.String()
	} else {
		var v4 []string
		for _, ip := range p.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is4() {
				v4 = append(v4, a.String())
			}
		}
		switch len(v4) {
		case 0:
			return newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
				"Bad floatingip request: Cannot add floating IP to port %s that has no fixed IPv4 addresses.", p.ID)
		case 1:
			fixed = v4[0]
		default:
			return newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
				"Bad floatingip request: Port %s has multiple fixed IPv4 addresses. Must provide a specific IPv4 address when assigning a floating IP.", p.ID)
		}
	}
	f.PortID, f.FixedIPAddress = p.ID, fixed
	rid, err := v.FloatingIPRouter(f)
	if err != nil {
		return err
	}
	f.RouterID, f.Status = rid, fsm.FloatingIPActive
	return nil
}

// floatingPort builds the port that holds a floating IP's address on the
// external network: the requested address (admin only, as Neutron's
// policy), else one allocated from the requested or the first IPv4
// subnet with room.
func (b *portBuild) floatingPort(f *fsm.FloatingIP, subnetID, address string) (*fsm.Port, error) {
	p := &fsm.Port{
		Meta:            fsm.Meta{ID: b.newID(), RevisionNumber: 1, CreatedAt: b.ts, UpdatedAt: b.ts},
		NetworkID:       f.FloatingNetworkID,
		DeviceID:        f.ID,
		DeviceOwner:     fsm.DeviceOwnerFloatingIP,
		AdminStateUp:    true,
		Status:          "N/A",
		BindingVIFType:  fsm.VIFTypeUnbound,
		BindingVNICType: "normal",
		BindingProfile:  "{}",
	}
	var err error
	if p.MACAddress, err = b.lease.allocateMAC(f.FloatingNetworkID); err != nil {
		return nil, err
	}
	if address != "" || subnetID != "" {
		ips, err := b.assignIPs(p, []fixedIPRequest{{SubnetID: subnetID, IPAddress: address}}, nil)
		if err != nil {
			return nil, err
		}
		if a, _ := netip.ParseAddr(ips[0].IPAddress); !a.Is4() {
			return nil, newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
				"Bad floatingip request: floating IPs are IPv4 addresses, subnet %s is not IPv4.", ips[0].SubnetID)
		}
		p.FixedIPs = ips
		return p, nil
	}
	var lastErr error = newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
		"Bad floatingip request: Network %s does not contain any IPv4 subnet.", f.FloatingNetworkID)
	for _, sub := range b.v.SubnetsOfNetwork(f.FloatingNetworkID) {
		if sub.IPVersion != 4 {
			continue
		}
		ip, err := b.allocateOn(p, sub)
		if err == nil {
			p.FixedIPs = []fsm.FixedIP{ip}
			return p, nil
		}
		lastErr = err
		if ae, ok := err.(*apiError); !ok || ae.Type != fsm.ErrTypeIPAddressGenerationErr {
			return nil, err
		}
	}
	return nil, lastErr
}

func (s *Server) createFloatingIP(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "floatingip", "floatingips", false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	a, err := parseAttrs(objs[0], floatingIPAttrs, true)
	if err != nil {
		return err
	}
	project, err := projectFor(ident, a)
	if err != nil {
		return err
	}
	netID, _ := a.str("floating_network_id")
	if netID == "" {
		return badRequest("Failed to parse request. Required attribute 'floating_network_id' not specified")
	}
	address, _ := a.str("floating_ip_address")
	if address != "" && !ident.Admin {
		return forbidden("(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy")
	}
	subnetID, _ := a.str("subnet_id")
	portID, _ := a.str("port_id")
	fixed, fixedSet := a.str("fixed_ip_address")
	ts := now()
	base := &fsm.FloatingIP{
		Meta:   fsm.Meta{ID: newID(r.Context()), ProjectID: project, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		Status: fsm.FloatingIPDown,
	}
	base.Description, _ = a.str("description")
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return err
		}
		base.Tags = dedupTags(tags)
	}
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		if _, err := lookupNetwork(v, ident, netID); err != nil {
			return err
		}
		if err := v.CheckGatewayNetwork(netID, "floatingip"); err != nil {
			return err
		}
		if subnetID != "" {
			if sub := v.Subnet(subnetID); sub == nil || sub.NetworkID != netID {
				return newError(http.StatusBadRequest, fsm.ErrTypeBadRequest,
					"Bad floatingip request: Subnet %s is not a subnet of network %s.", subnetID, netID)
			}
		}
		f := base.Copy()
		f.FloatingNetworkID = netID
		if err := associate(v, ident, f, portID, fixed, fixedSet); err != nil {
			return err
		}
		ls := s.ipam.begin()
		b := &portBuild{s: s, v: v, lease: ls, ident: ident, ts: ts, ctx: r.Context()}
		p, err := b.floatingPort(f, subnetID, address)
		if err != nil {
			ls.release()
			return err
		}
		f.FloatingPortID = p.ID
		f.FloatingSubnetID, f.FloatingIPAddress = p.FixedIPs[0].SubnetID, p.FixedIPs[0].IPAddress
		declareCreated(r.Context(), "floatingips", "floatingip", false, f.ID)
		rev, err := s.propose(r.Context(), fsm.CmdFloatingIPCreate, fsm.FloatingIPCreateRequest{FloatingIP: f, Port: p})
		ls.release()
		if fe, ok := fsm.AsError(err); ok && attempt < maxAllocRetries && address == "" &&
			(fe.Type == fsm.ErrTypeIPAddressInUse || fe.Type == fsm.ErrTypeMacAddressInUse) {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		writeJSON(w, http.StatusCreated, map[string]any{"floatingip": renderFloatingIP(f)})
		return nil
	}
}

func (s *Server) floatingIPCAS(ctx context.Context, id string) casSpec[*fsm.FloatingIP] {
	ident := identityFrom(ctx)
	lookup := func(v *fsm.View) (*fsm.FloatingIP, error) { return lookupFloatingIP(v, ident, id) }
	return casSpec[*fsm.FloatingIP]{
		read:    lookup,
		lookup:  lookup,
		copy:    (*fsm.FloatingIP).Copy,
		command: fsm.CmdFloatingIPUpdate,
		request: func(next *fsm.FloatingIP, prev uint64) any {
			return fsm.FloatingIPUpdateRequest{FloatingIP: next, PrevIndex: prev}
		},
	}
}

func (s *Server) updateFloatingIP(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "floatingip", "floatingips", false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	a, err := parseAttrs(objs[0], floatingIPAttrs, false)
	if err != nil {
		return err
	}
	f, rev, err := casUpdate(s, r.Context(), r, s.floatingIPCAS(r.Context(), r.PathValue("id")), func(v *fsm.View, f *fsm.FloatingIP) error {
		if x, ok := a.str("description"); ok {
			f.Description = x
		}
		portID, portSet := a.str("port_id")
		fixed, fixedSet := a.str("fixed_ip_address")
		if !portSet && !fixedSet {
			return nil
		}
		if !portSet {
			portID = f.PortID
		}
		return associate(v, ident, f, portID, fixed, fixedSet)
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"floatingip": renderFloatingIP(f)})
	return nil
}

func (s *Server) deleteFloatingIP(w http.ResponseWriter, r *http.Request) error {
	f, err := lookupFloatingIP(s.fsm.State().Read(), identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, f.RevisionNumber); err != nil {
		return err
	}
	rev, err := s.propose(r.Context(), fsm.CmdFloatingIPDelete, fsm.FloatingIPDeleteRequest{ID: f.ID})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
