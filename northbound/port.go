package northbound

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"neutrino/fsm"
)

// portAttrs are the plain attributes of a port (with the binding,
// port-security and security-group extensions).
var portAttrs = map[string]attrSpec{
	"id":                    {Kind: attrString},
	"name":                  {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"description":           {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"project_id":            {Kind: attrString, Post: true, MaxLen: 255},
	"tenant_id":             {Kind: attrString, Post: true, MaxLen: 255},
	"network_id":            {Kind: attrString, Post: true, UUID: true},
	"mac_address":           {Kind: attrString, Post: true, Put: true},
	"admin_state_up":        {Kind: attrBool, Post: true, Put: true},
	"status":                {Kind: attrString},
	"device_id":             {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"device_owner":          {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"binding:host_id":       {Kind: attrString, Post: true, Put: true, MaxLen: 255},
	"binding:vif_type":      {Kind: attrString},
	"binding:vnic_type":     {Kind: attrString, Post: true, Put: true},
	"port_security_enabled": {Kind: attrBool, Post: true, Put: true},
	"security_groups":       {Kind: attrStrings, Post: true, Put: true, Nullable: true},
	"tags":                  {Kind: attrStrings, Post: true},
	"revision_number":       {Kind: attrInt},
	"created_at":            {Kind: attrString},
	"updated_at":            {Kind: attrString},
	"binding:vif_details":   {Kind: attrString},
	"ip_allocation":         {Kind: attrString},
	"qos_policy_id":         {Kind: attrString, Post: true, Put: true, Nullable: true, UUID: true},
}

// portStructured are the port attributes that are lists of objects or dicts.
var portStructured = map[string]attrSpec{
	"fixed_ips":             {Post: true, Put: true},
	"allowed_address_pairs": {Post: true, Put: true},
	"binding:profile":       {Post: true, Put: true},
	"extra_dhcp_opts":       {Post: true, Put: true},
	"trunk_details":         {},
}

var portKnown = merged(portAttrs, portStructured)

var vnicTypes = []string{"normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic", "vdpa", "remote-managed"}

// maxAddressPairs is Neutron's max_allowed_address_pair default.
const maxAddressPairs = 10

func renderPort(p *fsm.Port) map[string]any {
	ips := make([]map[string]string, 0, len(p.FixedIPs))
	for _, ip := range p.FixedIPs {
		ips = append(ips, map[string]string{"subnet_id": ip.SubnetID, "ip_address": ip.IPAddress})
	}
	pairs := make([]map[string]string, 0, len(p.AllowedAddressPairs))
	for _, ap := range p.AllowedAddressPairs {
		pairs = append(pairs, map[string]string{"ip_address": ap.IPAddress, "mac_address": ap.MACAddress})
	}
	profile := json.RawMessage(`{}`)
	if p.BindingProfile != "" {
		profile = json.RawMessage(p.BindingProfile)
	}
	details := map[string]any{}
	if p.BindingVIFType == fsm.VIFTypeOVS {
		details = map[string]any{"port_filter": true, "bridge_name": "br-int", "ofport": p.BindingOFPort}
	}
	return map[string]any{
		"id":                    p.ID,
		"name":                  p.Name,
		"description":           p.Description,
		"project_id":            p.ProjectID,
		"tenant_id":             p.ProjectID,
		"network_id":            p.NetworkID,
		"mac_address":           p.MACAddress,
		"admin_state_up":        p.AdminStateUp,
		"status":                p.Status,
		"device_id":             p.DeviceID,
		"device_owner":          p.DeviceOwner,
		"fixed_ips":             ips,
		"allowed_address_pairs": pairs,
		"extra_dhcp_opts":       renderDHCPOpts(p.ExtraDHCPOpts),
		"security_groups":       nonNil(p.SecurityGroups),
		"port_security_enabled": p.PortSecurityEnabled,
		"binding:host_id":       p.BindingHostID,
		"binding:vif_type":      p.BindingVIFType,
		"binding:vif_details":   details,
		"binding:vnic_type":     p.BindingVNICType,
		"binding:profile":       profile,
		"ip_allocation":         "immediate",
		"qos_policy_id":         strOrNil(p.QoSPolicyID),
		"tags":                  nonNil(p.Tags),
		"revision_number":       p.RevisionNumber,
		"created_at":            p.CreatedAt,
		"updated_at":            p.UpdatedAt,
	}
}

// portVisible: a port is seen by its project and by its network's owner.
func portVisible(v *fsm.View, id Identity, p *fsm.Port) bool {
	if id.Admin || p.ProjectID == id.ProjectID {
		return true
	}
	n := v.Network(p.NetworkID)
	return n != nil && n.ProjectID == id.ProjectID
}

func portNotFound(id string) *apiError {
	return newError(http.StatusNotFound, fsm.ErrTypePortNotFound, "Port %s could not be found.", id)
}

func lookupPort(v *fsm.View, ident Identity, id string) (*fsm.Port, error) {
	p := v.Port(id)
	if p == nil || !portVisible(v, ident, p) {
		return nil, portNotFound(id)
	}
	return p, nil
}

func ownedPort(v *fsm.View, ident Identity, id, action string) (*fsm.Port, error) {
	p, err := lookupPort(v, ident, id)
	if err != nil {
		return nil, err
	}
	if !ident.Admin && p.ProjectID != ident.ProjectID {
		return nil, forbidden("(rule:%s_port) is disallowed by policy", action)
	}
	return p, nil
}

func (s *Server) portRoutes() {
	s.neutron("GET /v2.0/ports", s.listPorts)
	s.neutron("POST /v2.0/ports", s.createPorts)
	s.neutron("GET /v2.0/ports/{id}", s.showPort)
	s.neutron("PUT /v2.0/ports/{id}", s.updatePort)
	s.neutron("DELETE /v2.0/ports/{id}", s.deletePort)
	s.tagRoutes("ports", tagsVia(s, s.portCAS))
}

// fixedIPFilter is Neutron's fixed_ips=ip_address=X / subnet_id=Y filter.
type fixedIPFilter struct {
	ips, subnets, substr []string
}

func parseFixedIPFilter(vals []string) (*fixedIPFilter, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	f := &fixedIPFilter{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		switch {
		case ok && k == "ip_address":
			if a, err := netip.ParseAddr(val); err == nil {
				val = a.String()
			}
			f.ips = append(f.ips, val)
		case ok && k == "subnet_id":
			f.subnets = append(f.subnets, val)
		case ok && k == "ip_address_substr":
			f.substr = append(f.substr, val)
		default:
			return nil, badRequest("Invalid fixed_ips filter '%s': use ip_address=, subnet_id= or ip_address_substr=", v)
		}
	}
	return f, nil
}

func (f *fixedIPFilter) match(p *fsm.Port) bool {
	for _, ip := range p.FixedIPs {
		if len(f.ips) > 0 && !slices.Contains(f.ips, ip.IPAddress) {
			continue
		}
		if len(f.subnets) > 0 && !slices.Contains(f.subnets, ip.SubnetID) {
			continue
		}
		if len(f.substr) > 0 && !slices.ContainsFunc(f.substr, func(s string) bool { return strings.Contains(ip.IPAddress, s) }) {
			continue
		}
		return true
	}
	return false
}

func (s *Server) listPorts(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "ports", portKnown)
	if err != nil {
		return err
	}
	fip, err := parseFixedIPFilter(lq.filters["fixed_ips"])
	if err != nil {
		return err
	}
	delete(lq.filters, "fixed_ips")
	sgFilter := splitValues(lq.filters["security_groups"])
	delete(lq.filters, "security_groups")

	ident := identityFrom(r.Context())
	v := s.view(w)
	// Narrow the candidates with an index when the filter allows it; the
	// generic filter still runs on what is left.
	var cands []*fsm.Port
	switch {
	case len(lq.filters["id"]) > 0:
		for _, id := range uniq(lq.filters["id"]) {
			if p := v.Port(id); p != nil {
				cands = append(cands, p)
			}
		}
	case len(lq.filters["device_id"]) > 0:
		for _, d := range uniq(lq.filters["device_id"]) {
			cands = append(cands, v.PortsOfDevice(d)...)
		}
	case len(lq.filters["network_id"]) > 0:
		for _, n := range uniq(lq.filters["network_id"]) {
			cands = append(cands, v.PortsOfNetwork(n)...)
		}
	case fip != nil && len(fip.subnets) > 0:
		seen := map[string]bool{}
		for _, sub := range uniq(fip.subnets) {
			for _, p := range v.PortsOnSubnet(sub) {
				if !seen[p.ID] {
					seen[p.ID] = true
					cands = append(cands, p)
				}
			}
		}
	case !ident.Admin:
		cands = v.PortsOfProject(ident.ProjectID)
		for _, n := range v.Networks() {
			if n.ProjectID == ident.ProjectID {
				for _, p := range v.PortsOfNetwork(n.ID) {
					if p.ProjectID != ident.ProjectID {
						cands = append(cands, p)
					}
				}
			}
		}
	default:
		cands = v.Ports()
	}
	objs := make([]map[string]any, 0, len(cands))
	for _, p := range cands {
		if !portVisible(v, ident, p) || (fip != nil && !fip.match(p)) {
			continue
		}
		if len(sgFilter) > 0 && !slices.ContainsFunc(p.SecurityGroups, func(g string) bool { return slices.Contains(sgFilter, g) }) {
			continue
		}
		objs = append(objs, renderPortIn(v, p))
	}
	return writeList(w, r, lq, "ports", objs)
}

func uniq(vals []string) []string {
	return slices.Compact(slices.Sorted(slices.Values(vals)))
}

func (s *Server) showPort(w http.ResponseWriter, r *http.Request) error {
	v := s.view(w)
	p, err := lookupPort(v, identityFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "port", "ports", portKnown, renderPortIn(v, p))
}

// maxAllocRetries bounds how often a create is rebuilt when the state
// machine refused an address or MAC the leader chose (a race the pending
// set cannot see, such as a leader change).
const maxAllocRetries = 3

func (s *Server) createPorts(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "port", "ports", true)
	if err != nil {
		return err
	}
	_, bulk := body["ports"]
	ident := identityFrom(r.Context())
	parsed := make([]struct {
		a   attrs
		raw map[string]json.RawMessage
	}, len(objs))
	for i, obj := range objs {
		if parsed[i].a, parsed[i].raw, err = parseObject(obj, portAttrs, portStructured, true); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		ls := s.ipam.begin()
		v := s.fsm.State().Read()
		ts := now()
		b := &portBuild{s: s, v: v, lease: ls, ident: ident, ts: ts, defaults: map[string]*fsm.SecurityGroupBundle{}, ctx: r.Context()}
		ports := make([]*fsm.Port, 0, len(objs))
		for _, pa := range parsed {
			p, err := b.newPort(pa.a, pa.raw)
			if err != nil {
				ls.release()
				return err
			}
			ports = append(ports, p)
		}
		req := fsm.PortCreateRequest{Ports: ports}
		for _, d := range b.defaults {
			req.Defaults = append(req.Defaults, d)
		}
		ids := make([]string, len(ports))
		for i, p := range ports {
			ids[i] = p.ID
		}
		declareCreated(r.Context(), "ports", "port", bulk, ids...)
		rev, err := s.propose(r.Context(), fsm.CmdPortCreate, req)
		ls.release()
		if fe, ok := fsm.AsError(err); ok && attempt < maxAllocRetries &&
			(fe.Type == fsm.ErrTypeIPAddressInUse || fe.Type == fsm.ErrTypeMacAddressInUse) {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		out := make([]map[string]any, len(ports))
		for i, p := range ports {
			out[i] = renderPort(p)
		}
		writeCreated(w, "port", "ports", bulk, out)
		return nil
	}
}

// portBuild holds what building the ports of one request shares.
type portBuild struct {
	s        *Server
	v        *fsm.View
	lease    *lease
	ident    Identity
	ts       string
	defaults map[string]*fsm.SecurityGroupBundle // by project
	// ctx carries the request identity new object ids derive from.
	ctx context.Context
}

// newID returns the next object id of the build's request (see newID).
func (b *portBuild) newID() string {
	if b.ctx == nil {
		return newUUID()
	}
	return newID(b.ctx)
}

// isNetworkOwner: the caller may set addresses and MACs on the network.
func isNetworkOwner(ident Identity, n *fsm.Network) bool {
	return ident.Admin || n.ProjectID == ident.ProjectID
}

func (b *portBuild) newPort(a attrs, raw map[string]json.RawMessage) (*fsm.Port, error) {
	ident := b.ident
	project, err := projectFor(ident, a)
	if err != nil {
		return nil, err
	}
	netID, _ := a.str("network_id")
	if netID == "" {
		return nil, badRequest("Failed to parse request. Required attribute 'network_id' not specified")
	}
	n, err := lookupNetwork(b.v, ident, netID)
	if err != nil {
		return nil, err
	}
	owner := isNetworkOwner(ident, n)
	if !owner && !b.v.NetworkSharedWith(n, ident.ProjectID) {
		return nil, forbidden("(rule:create_port and rule:create_port:network_id) is disallowed by policy")
	}
	if err := checkPortPolicy(ident, owner, a, raw, "create"); err != nil {
		return nil, err
	}
	p := &fsm.Port{
		Meta:                fsm.Meta{ID: b.newID(), ProjectID: project, RevisionNumber: 1, CreatedAt: b.ts, UpdatedAt: b.ts},
		NetworkID:           netID,
		AdminStateUp:        true,
		Status:              "DOWN",
		BindingVIFType:      fsm.VIFTypeUnbound,
		BindingVNICType:     "normal",
		BindingProfile:      "{}",
		PortSecurityEnabled: n.PortSecurityEnabled,
	}
	p.Name, _ = a.str("name")
	p.Description, _ = a.str("description")
	if x, ok := a.boolean("admin_state_up"); ok {
		p.AdminStateUp = x
	}
	p.DeviceID, _ = a.str("device_id")
	p.DeviceOwner, _ = a.str("device_owner")
	if x, ok := a.boolean("port_security_enabled"); ok {
		p.PortSecurityEnabled = x
	}
	if id, ok := a.str("qos_policy_id"); ok {
		if err := checkQoSAttach(b.v, ident, project, id); err != nil {
			return nil, err
		}
		p.QoSPolicyID = id
	}
	if tags, ok := a.strings("tags"); ok {
		if err := validTags(tags); err != nil {
			return nil, err
		}
		p.Tags = dedupTags(tags)
	}
	if err := setBinding(p, a, raw); err != nil {
		return nil, err
	}
	if mac, ok := a.str("mac_address"); ok && mac != "" {
		if p.MACAddress, err = parseMAC(mac); err != nil {
			return nil, err
		}
		if err := b.lease.claimMAC(netID, p.MACAddress, p.ID); err != nil {
			return nil, err
		}
	} else if p.MACAddress, err = b.lease.allocateMAC(netID); err != nil {
		return nil, err
	}
	if r, ok := raw["fixed_ips"]; ok && !isNull(r) {
		reqs, err := parseFixedIPs(r)
		if err != nil {
			return nil, err
		}
		if p.FixedIPs, err = b.assignIPs(p, reqs, nil); err != nil {
			return nil, err
		}
	} else if p.FixedIPs, err = b.defaultIPs(p); err != nil {
		return nil, err
	}
	if err := setAddressPairs(p, raw); err != nil {
		return nil, err
	}
	if err := setExtraDHCPOpts(p, raw); err != nil {
		return nil, err
	}
	sgs, sgSet := a.strings("security_groups")
	if !sgSet || a["security_groups"] == nil {
		if p.PortSecurityEnabled && len(p.FixedIPs) > 0 {
			p.SecurityGroups = []string{b.defaultGroup(project)}
		}
	} else if err := b.setSecurityGroups(p, sgs); err != nil {
		return nil, err
	}
	return p, checkPortSecurity(p, false)
}

// checkPortPolicy applies Neutron's per-attribute port policy.
func checkPortPolicy(ident Identity, netOwner bool, a attrs, raw map[string]json.RawMessage, action string) error {
	if !ident.Admin {
		for _, k := range []string{"binding:host_id", "binding:profile"} {
			_, inA := a[k]
			_, inRaw := raw[k]
			if inA || inRaw {
				return forbidden("(rule:%s_port and rule:%s_port:%s) is disallowed by policy", action, action, k)
			}
		}
	}
	if netOwner {
		return nil
	}
	if _, ok := a["mac_address"]; ok {
		return forbidden("(rule:%s_port and rule:%s_port:mac_address) is disallowed by policy", action, action)
	}
	if owner, _ := a.str("device_owner"); strings.HasPrefix(owner, "network:") {
		return forbidden("(rule:%s_port and rule:%s_port:device_owner) is disallowed by policy", action, action)
	}
	if r, ok := raw["fixed_ips"]; ok && bytes.Contains(r, []byte(`"ip_address"`)) {
		return forbidden("(rule:%s_port and rule:%s_port:fixed_ips:ip_address) is disallowed by policy", action, action)
	}
	// Either would let a project on another's shared network spoof
	// addresses; Neutron keeps both to the admin and the network owner.
	if _, ok := a["port_security_enabled"]; ok {
		return forbidden("(rule:%s_port and rule:%s_port:port_security_enabled) is disallowed by policy", action, action)
	}
	if _, ok := raw["allowed_address_pairs"]; ok {
		return forbidden("(rule:%s_port and rule:%s_port:allowed_address_pairs) is disallowed by policy", action, action)
	}
	return nil
}

func setBinding(p *fsm.Port, a attrs, raw map[string]json.RawMessage) error {
	if h, ok := a.str("binding:host_id"); ok {
		p.BindingHostID = h
		p.BindingVIFType = fsm.VIFTypeUnbound
		if h != "" {
			p.BindingVIFType = fsm.VIFTypeOVS
		}
	}
	if vt, ok := a.str("binding:vnic_type"); ok {
		if !slices.Contains(vnicTypes, vt) {
			return badRequest("Invalid input for binding:vnic_type. Reason: '%s' is not in %v.", vt, vnicTypes)
		}
		p.BindingVNICType = vt
	}
	if r, ok := raw["binding:profile"]; ok {
		p.BindingProfile = "{}"
		if !isNull(r) {
			var m map[string]any
			if err := json.Unmarshal(r, &m); err != nil || m == nil {
				return badRequest("Invalid input for binding:profile. Reason: '%s' is not a dictionary.", string(r))
			}
			canon, _ := json.Marshal(m)
			p.BindingProfile = string(canon)
		}
	}
	return nil
}

// fixedIPRequest is one element of a request's fixed_ips.
type fixedIPRequest struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

func parseFixedIPs(raw json.RawMessage) ([]fixedIPRequest, error) {
	var reqs []fixedIPRequest
	if err := decodeList("fixed_ips", raw, &reqs); err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if r.SubnetID == "" && r.IPAddress == "" {
			return nil, badRequest("Invalid input for fixed_ips. Reason: every entry needs subnet_id or ip_address.")
		}
	}
	return reqs, nil
}

func invalidIPForSubnet(a string) *apiError {
	return newError(http.StatusBadRequest, fsm.ErrTypeInvalidIPForSubnet,
		"IP address %s is not a valid IP for the specified subnet.", a)
}

// assignIPs turns requested fixed IPs into addresses: explicit ones are
// checked and claimed, subnet-only ones allocated. keep are the port's
// current addresses (on update): asking for one of them keeps it.
func (b *portBuild) assignIPs(p *fsm.Port, reqs []fixedIPRequest, keep []fsm.FixedIP) ([]fsm.FixedIP, error) {
	out := []fsm.FixedIP{}
	used := func(f fsm.FixedIP) bool { return slices.Contains(out, f) }
	for _, rq := range reqs {
		var sub *fsm.Subnet
		var addr netip.Addr
		if rq.IPAddress != "" {
			var err error
			if addr, err = netip.ParseAddr(rq.IPAddress); err != nil || addr.Zone() != "" {
				return nil, badRequest("Invalid input for fixed_ips. Reason: '%s' is not a valid IP address.", rq.IPAddress)
			}
		}
		if rq.SubnetID != "" {
			sub = b.v.Subnet(rq.SubnetID)
			if sub == nil {
				return nil, subnetNotFound(rq.SubnetID)
			}
			if sub.NetworkID != p.NetworkID {
				return nil, invalidInput("Failed to create port on network %s, because fixed_ips included invalid subnet %s", p.NetworkID, sub.ID)
			}
		} else {
			for _, s := range b.v.SubnetsOfNetwork(p.NetworkID) {
				if s.Prefix().Contains(addr) {
					sub = s
					break
				}
			}
			if sub == nil {
				return nil, newError(http.StatusBadRequest, "InvalidIpForNetwork",
					"IP address %s is not a valid IP for any of the subnets on the specified network.", rq.IPAddress)
			}
		}
		if !addr.IsValid() {
			// subnet only: keep the port's address there, else allocate.
			if i := slices.IndexFunc(keep, func(f fsm.FixedIP) bool { return f.SubnetID == sub.ID && !used(f) }); i >= 0 {
				out = append(out, keep[i])
				continue
			}
			f, err := b.allocateOn(p, sub)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		prefix := sub.Prefix()
		if !prefix.Contains(addr) || addr == prefix.Masked().Addr() && prefix.Bits() < prefix.Addr().BitLen() ||
			(addr.Is4() && addr == lastAddr(prefix) && prefix.Bits() < 31) {
			return nil, invalidIPForSubnet(rq.IPAddress)
		}
		f := fsm.FixedIP{SubnetID: sub.ID, IPAddress: addr.String()}
		if used(f) {
			return nil, invalidInput("Duplicate IP address %s in fixed_ips.", f.IPAddress)
		}
		if isAutoAddressSubnet(sub) && !slices.Contains(keep, f) {
			return nil, invalidInput("IPv6 address %s cannot be directly assigned to a port on subnet %s since the subnet is configured for automatic addresses", f.IPAddress, sub.ID)
		}
		if err := b.lease.claimIP(sub, addr, p.ID); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// allocateOn picks an address for the port on one subnet: the EUI-64
// address on SLAAC subnets, the next free pool address otherwise.
func (b *portBuild) allocateOn(p *fsm.Port, sub *fsm.Subnet) (fsm.FixedIP, error) {
	if isAutoAddressSubnet(sub) {
		a, err := eui64(sub.Prefix(), p.MACAddress)
		if err != nil {
			return fsm.FixedIP{}, invalidInput("%v", err)
		}
		if err := b.lease.claimIP(sub, a, p.ID); err != nil {
			return fsm.FixedIP{}, err
		}
		return fsm.FixedIP{SubnetID: sub.ID, IPAddress: a.String()}, nil
	}
	a, err := b.lease.allocateIP(sub)
	if err != nil {
		return fsm.FixedIP{}, err
	}
	return fsm.FixedIP{SubnetID: sub.ID, IPAddress: a.String()}, nil
}

// defaultIPs allocates the addresses of a port created without fixed_ips,
// as Neutron does: one IPv4 address from the first IPv4 subnet with room
// (or, without IPv4 subnets, one from the first stateful IPv6 subnet), and
// the SLAAC address on every SLAAC subnet.
func (b *portBuild) defaultIPs(p *fsm.Port) ([]fsm.FixedIP, error) {
	subs := b.v.SubnetsOfNetwork(p.NetworkID)
	out := []fsm.FixedIP{}
	var stateful []*fsm.Subnet
	hasV4 := false
	for _, s := range subs {
		if s.IPVersion == 4 {
			hasV4 = true
		}
	}
	for _, s := range subs {
		if isAutoAddressSubnet(s) {
			f, err := b.allocateOn(p, s)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		} else if s.IPVersion == 4 || !hasV4 {
			stateful = append(stateful, s)
		}
	}
	if len(stateful) == 0 {
		return out, nil
	}
	var lastErr error
	for _, s := range stateful {
		f, err := b.allocateOn(p, s)
		if err == nil {
			return append(out, f), nil
		}
		lastErr = err
		if ae, ok := err.(*apiError); !ok || ae.Type != fsm.ErrTypeIPAddressGenerationErr {
			return nil, err
		}
	}
	return nil, lastErr
}

func setAddressPairs(p *fsm.Port, raw map[string]json.RawMessage) error {
	r, ok := raw["allowed_address_pairs"]
	if !ok {
		return nil
	}
	p.AllowedAddressPairs = []fsm.AddressPair{}
	if isNull(r) {
		return nil
	}
	var pairs []struct {
		IPAddress  string `json:"ip_address"`
		MACAddress string `json:"mac_address"`
	}
	if err := decodeList("allowed_address_pairs", r, &pairs); err != nil {
		return err
	}
	if len(pairs) > maxAddressPairs {
		return newError(http.StatusBadRequest, "AllowedAddressPairExhausted",
			"The number of allowed address pair exceeds the maximum %d.", maxAddressPairs)
	}
	for _, ap := range pairs {
		if ap.IPAddress == "" {
			return newError(http.StatusBadRequest, "AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address")
		}
		ipStr := ap.IPAddress
		if pf, err := netip.ParsePrefix(ipStr); err == nil {
			ipStr = pf.Masked().String()
		} else if a, err := netip.ParseAddr(ipStr); err == nil {
			ipStr = a.String()
		} else {
			return badRequest("Invalid input for allowed_address_pairs. Reason: '%s' is not a valid IP address or CIDR.", ap.IPAddress)
		}
		mac := p.MACAddress
		if ap.MACAddress != "" {
			var err error
			if mac, err = parseMAC(ap.MACAddress); err != nil {
				return err
			}
		}
		pair := fsm.AddressPair{IPAddress: ipStr, MACAddress: mac}
		if slices.Contains(p.AllowedAddressPairs, pair) {
			return newError(http.StatusBadRequest, "DuplicateAddressPairInRequest",
				"Request contains duplicate address pair: mac_address %s ip_address %s.", mac, ipStr)
		}
		p.AllowedAddressPairs = append(p.AllowedAddressPairs, pair)
	}
	return nil
}

// setSecurityGroups sets explicit groups: each must exist and belong to
// the port's project (an admin may use any).
func (b *portBuild) setSecurityGroups(p *fsm.Port, ids []string) error {
	p.SecurityGroups = []string{}
	for _, id := range uniq(ids) {
		g := b.v.SecurityGroup(id)
		if g == nil && id == defaultGroupID(p.ProjectID) {
			b.defaultGroup(p.ProjectID)
		} else if g == nil || (!b.ident.Admin && g.ProjectID != p.ProjectID) {
			return sgNotFound(id)
		}
		p.SecurityGroups = append(p.SecurityGroups, id)
	}
	return nil
}

// defaultGroup returns the id of the project's default group, adding the
// group to the command when the state does not have it yet.
func (b *portBuild) defaultGroup(project string) string {
	id := defaultGroupID(project)
	if b.v.SecurityGroup(id) == nil && b.defaults[project] == nil {
		b.defaults[project] = defaultGroupBundle(project, b.ts)
	}
	return id
}

// checkPortSecurity: without port security a port has no security groups
// and no allowed address pairs; security groups also need an address.
// update says whether the groups were already on the port.
func checkPortSecurity(p *fsm.Port, update bool) error {
	if len(p.SecurityGroups) > 0 && (!p.PortSecurityEnabled || len(p.FixedIPs) == 0) {
		if update {
			return newError(http.StatusConflict, "PortSecurityPortHasSecurityGroup",
				"Port has security group associated. Cannot disable port security or IP address until security group is removed")
		}
		return newError(http.StatusBadRequest, "PortSecurityAndIPRequiredForSecurityGroups",
			"Port security must be enabled and port must have an IP address in order to use security groups.")
	}
	if len(p.AllowedAddressPairs) > 0 && !p.PortSecurityEnabled {
		return newError(http.StatusConflict, "AddressPairAndPortSecurityRequired",
			"Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	return nil
}

func (s *Server) portCAS(ctx context.Context, id string) casSpec[*fsm.Port] {
	ident := identityFrom(ctx)
	return casSpec[*fsm.Port]{
		read:    func(v *fsm.View) (*fsm.Port, error) { return lookupPort(v, ident, id) },
		lookup:  func(v *fsm.View) (*fsm.Port, error) { return ownedPort(v, ident, id, "update") },
		copy:    (*fsm.Port).Copy,
		command: fsm.CmdPortUpdate,
		request: func(next *fsm.Port, prev uint64) any { return fsm.PortUpdateRequest{Port: next, PrevIndex: prev} },
	}
}

func (s *Server) updatePort(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "port", "ports", false)
	if err != nil {
		return err
	}
	a, raw, err := parseObject(objs[0], portAttrs, portStructured, false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	ls := s.ipam.begin()
	defer ls.release()
	p, rev, err := casUpdate(s, r.Context(), r, s.portCAS(r.Context(), r.PathValue("id")), func(v *fsm.View, p *fsm.Port) error {
		n := v.Network(p.NetworkID)
		if n == nil {
			return networkNotFound(p.NetworkID)
		}
		if err := checkPortPolicy(ident, isNetworkOwner(ident, n), a, raw, "update"); err != nil {
			return err
		}
		b := &portBuild{s: s, v: v, lease: ls, ident: ident, ts: now(), defaults: map[string]*fsm.SecurityGroupBundle{}, ctx: r.Context()}
		if x, ok := a.str("name"); ok {
			p.Name = x
		}
		if x, ok := a.str("description"); ok {
			p.Description = x
		}
		if x, ok := a.boolean("admin_state_up"); ok {
			p.AdminStateUp = x
		}
		if x, ok := a.str("device_id"); ok {
			p.DeviceID = x
		}
		if x, ok := a.str("device_owner"); ok {
			p.DeviceOwner = x
		}
		if x, ok := a.boolean("port_security_enabled"); ok {
			p.PortSecurityEnabled = x
		}
		if id, ok := a.str("qos_policy_id"); ok {
			if err := checkQoSAttach(v, ident, p.ProjectID, id); err != nil {
				return err
			}
			p.QoSPolicyID = id
		}
		if err := setBinding(p, a, raw); err != nil {
			return err
		}
		if mac, ok := a.str("mac_address"); ok {
			m, err := parseMAC(mac)
			if err != nil {
				return err
			}
			if m != p.MACAddress {
				if p.BindingHostID != "" {
					return newError(http.StatusConflict, "PortBound",
						"Unable to complete operation on port %s, port is already bound, port type: %s, old_mac %s, new_mac %s.", p.ID, p.BindingVIFType, p.MACAddress, m)
				}
				if err := ls.claimMAC(p.NetworkID, m, p.ID); err != nil {
					return err
				}
				p.MACAddress = m
			}
		}
		if rf, ok := raw["fixed_ips"]; ok {
			reqs := []fixedIPRequest{}
			if !isNull(rf) {
				var err error
				if reqs, err = parseFixedIPs(rf); err != nil {
					return err
				}
			}
			keep := p.FixedIPs
			var err error
			if p.FixedIPs, err = b.assignIPs(p, reqs, keep); err != nil {
				return err
			}
		}
		if err := setAddressPairs(p, raw); err != nil {
			return err
		}
		if err := setExtraDHCPOpts(p, raw); err != nil {
			return err
		}
		sgs, sgSet := a.strings("security_groups")
		if sgSet {
			if err := b.setSecurityGroups(p, sgs); err != nil {
				return err
			}
			if len(b.defaults) > 0 {
				return sgNotFound(defaultGroupID(p.ProjectID))
			}
		}
		return checkPortSecurity(p, !sgSet)
	})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"port": renderPortIn(s.fsm.State().Read(), p)})
	return nil
}

func (s *Server) deletePort(w http.ResponseWriter, r *http.Request) error {
	v := s.fsm.State().Read()
	p, err := ownedPort(v, identityFrom(r.Context()), r.PathValue("id"), "delete")
	if err != nil {
		return err
	}
	if err := checkIfMatch(r, p.RevisionNumber); err != nil {
		return err
	}
	rev, err := s.propose(r.Context(), fsm.CmdPortDelete, fsm.PortDeleteRequest{ID: p.ID})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
