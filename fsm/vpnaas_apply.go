package fsm

import (
	"net/netip"
	"slices"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

func vpnHandlers() map[CommandType]handler {
	return map[CommandType]handler{
		CmdVPNIKEPolicyCreate:      applyIKEPolicyCreate,
		CmdVPNIKEPolicyUpdate:      applyIKEPolicyUpdate,
		CmdVPNIKEPolicyDelete:      applyIKEPolicyDelete,
		CmdVPNIPsecPolicyCreate:    applyIPsecPolicyCreate,
		CmdVPNIPsecPolicyUpdate:    applyIPsecPolicyUpdate,
		CmdVPNIPsecPolicyDelete:    applyIPsecPolicyDelete,
		CmdVPNServiceCreate:        applyVPNServiceCreate,
		CmdVPNServiceUpdate:        applyVPNServiceUpdate,
		CmdVPNServiceDelete:        applyVPNServiceDelete,
		CmdVPNEndpointGroupCreate:  applyEndpointGroupCreate,
		CmdVPNEndpointGroupUpdate:  applyEndpointGroupUpdate,
		CmdVPNEndpointGroupDelete:  applyEndpointGroupDelete,
		CmdVPNSiteConnectionCreate: applySiteConnectionCreate,
		CmdVPNSiteConnectionUpdate: applySiteConnectionUpdate,
		CmdVPNSiteConnectionDelete: applySiteConnectionDelete,
		CmdVPNStatus:               applyVPNStatus,
	}
}

func vpnCommandName(t CommandType) string { return vpnCommandNames[t] }

var vpnCommandNames = map[CommandType]string{
	CmdVPNIKEPolicyCreate: "VPNIKEPolicyCreate", CmdVPNIKEPolicyUpdate: "VPNIKEPolicyUpdate", CmdVPNIKEPolicyDelete: "VPNIKEPolicyDelete",
	CmdVPNIPsecPolicyCreate: "VPNIPsecPolicyCreate", CmdVPNIPsecPolicyUpdate: "VPNIPsecPolicyUpdate", CmdVPNIPsecPolicyDelete: "VPNIPsecPolicyDelete",
	CmdVPNServiceCreate: "VPNServiceCreate", CmdVPNServiceUpdate: "VPNServiceUpdate", CmdVPNServiceDelete: "VPNServiceDelete",
	CmdVPNEndpointGroupCreate: "VPNEndpointGroupCreate", CmdVPNEndpointGroupUpdate: "VPNEndpointGroupUpdate", CmdVPNEndpointGroupDelete: "VPNEndpointGroupDelete",
	CmdVPNSiteConnectionCreate: "VPNSiteConnectionCreate", CmdVPNSiteConnectionUpdate: "VPNSiteConnectionUpdate", CmdVPNSiteConnectionDelete: "VPNSiteConnectionDelete",
	CmdVPNStatus: "VPNStatus",
}

func vpnDuplicate(what, id string) *Error {
	return Errorf(CodeConflict, ErrTypeVPNDuplicate, "%s %s already exists.", what, id)
}

func ikePolicyNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeIKEPolicyNotFound, "IKEPolicy %s could not be found", id)
}

func ipsecPolicyNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeIPsecPolicyNotFound, "IPsecPolicy %s could not be found", id)
}

func vpnServiceNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeVPNServiceNotFound, "VPNService %s could not be found", id)
}

func endpointGroupNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeEndpointGroupNotFound, "Endpoint group %s could not be found", id)
}

func siteConnectionNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeIPsecSiteConnectionNotFound, "ipsec_site_connection %s not found", id)
}

func staleVPN(what, id string) *Error {
	return Errorf(CodeConflict, ErrTypeStaleUpdate, "%s %s changed concurrently", what, id)
}

func applyIKEPolicyCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNIKEPolicyCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	p := req.Policy
	if v.IKEPolicy(p.ID) != nil {
		return vpnDuplicate("IKEPolicy", p.ID)
	}
	p.CreateIndex, p.ModifyIndex = index, index
	insert(txn, TableVPNIKEPolicies, p, index)
	return nil
}

func applyIKEPolicyUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNIKEPolicyUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	p := req.Policy
	cur := v.IKEPolicy(p.ID)
	if cur == nil {
		return ikePolicyNotFound(p.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return staleVPN("IKEPolicy", p.ID)
	}
	if len(all[*IPsecSiteConnection](txn, TableVPNSiteConnections, "ikepolicy", p.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeIKEPolicyInUse,
			"IKEPolicy %s is in use by existing IPsecSiteConnection and can't be updated or deleted", p.ID)
	}
	p.CreateIndex, p.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableVPNIKEPolicies, p, index)
	return nil
}

func applyIKEPolicyDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.IKEPolicy(req.ID)
	if cur == nil {
		return ikePolicyNotFound(req.ID)
	}
	if len(all[*IPsecSiteConnection](txn, TableVPNSiteConnections, "ikepolicy", req.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeIKEPolicyInUse,
			"IKEPolicy %s is in use by existing IPsecSiteConnection and can't be updated or deleted", req.ID)
	}
	remove(txn, TableVPNIKEPolicies, cur, index)
	return nil
}

func applyIPsecPolicyCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNIPsecPolicyCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	p := req.Policy
	if v.IPsecPolicy(p.ID) != nil {
		return vpnDuplicate("IPsecPolicy", p.ID)
	}
	p.CreateIndex, p.ModifyIndex = index, index
	insert(txn, TableVPNIPsecPolicies, p, index)
	return nil
}

func applyIPsecPolicyUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNIPsecPolicyUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	p := req.Policy
	cur := v.IPsecPolicy(p.ID)
	if cur == nil {
		return ipsecPolicyNotFound(p.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return staleVPN("IPsecPolicy", p.ID)
	}
	if len(all[*IPsecSiteConnection](txn, TableVPNSiteConnections, "ipsecpolicy", p.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeIPsecPolicyInUse,
			"IPsecPolicy %s is in use by existing IPsecSiteConnection and can't be updated or deleted", p.ID)
	}
	p.CreateIndex, p.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableVPNIPsecPolicies, p, index)
	return nil
}

func applyIPsecPolicyDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.IPsecPolicy(req.ID)
	if cur == nil {
		return ipsecPolicyNotFound(req.ID)
	}
	if len(all[*IPsecSiteConnection](txn, TableVPNSiteConnections, "ipsecpolicy", req.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeIPsecPolicyInUse,
			"IPsecPolicy %s is in use by existing IPsecSiteConnection and can't be updated or deleted", req.ID)
	}
	remove(txn, TableVPNIPsecPolicies, cur, index)
	return nil
}

// vpnExternalIPs returns the first IPv4 and IPv6 address of a router's
// gateway port: where its VPN connections are terminated.
func (v *View) vpnExternalIPs(routerID string) (v4, v6 string) {
	gp := v.RouterGatewayPort(routerID)
	if gp == nil {
		return "", ""
	}
	for _, f := range gp.FixedIPs {
		a, err := netip.ParseAddr(f.IPAddress)
		switch {
		case err != nil:
		case a.Is4() && v4 == "":
			v4 = a.String()
		case a.Is6() && v6 == "":
			v6 = a.String()
		}
	}
	return v4, v6
}

// CheckVPNServiceRouter validates a VPN service's router and subnet as
// Neutron does: the router exists and has a gateway, and the subnet, when
// given, is one of its interfaces' subnets.
func (v *View) CheckVPNServiceRouter(routerID, subnetID string) error {
	r := v.Router(routerID)
	if r == nil {
		return routerNotFound(routerID)
	}
	if r.Gateway == nil || v.RouterGatewayPort(routerID) == nil {
		return Errorf(CodeBadRequest, ErrTypeRouterIsNotExternal, "Router %s has no external network gateway set", routerID)
	}
	if subnetID == "" {
		return nil
	}
	if v.Subnet(subnetID) == nil {
		return subnetNotFound(subnetID)
	}
	if !v.routerHasSubnet(routerID, subnetID) {
		return Errorf(CodeBadRequest, ErrTypeSubnetIsNotConnectedRouter, "Subnet %s is not connected to Router %s", subnetID, routerID)
	}
	return nil
}

func (v *View) routerHasSubnet(routerID, subnetID string) bool {
	return slices.ContainsFunc(v.subnetsOfPorts(v.RouterInterfaces(routerID)...), func(s *Subnet) bool { return s.ID == subnetID })
}

// serviceStatus derives a VPN service's status: DOWN when disabled,
// ACTIVE while one of its connections is, else what its agent reported
// last (reported, "" for no new report).
func (v *View) serviceStatus(s *VPNService, reported string, conns []*IPsecSiteConnection) string {
	if !s.AdminStateUp {
		return VPNStatusDown
	}
	if slices.ContainsFunc(conns, func(c *IPsecSiteConnection) bool { return c.Status == VPNStatusActive }) {
		return VPNStatusActive
	}
	if reported != "" {
		return reported
	}
	return s.Status
}

func applyVPNServiceCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNServiceCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	s := req.Service
	if v.VPNService(s.ID) != nil {
		return vpnDuplicate("VPNService", s.ID)
	}
	if err := v.CheckVPNServiceRouter(s.RouterID, s.SubnetID); err != nil {
		return err
	}
	s.ExternalV4IP, s.ExternalV6IP = v.vpnExternalIPs(s.RouterID)
	s.Status = VPNStatusPendingCreate
	if !s.AdminStateUp {
		s.Status = VPNStatusDown
	}
	s.CreateIndex, s.ModifyIndex = index, index
	insert(txn, TableVPNServices, s, index)
	return nil
}

func applyVPNServiceUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNServiceUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	s := req.Service
	cur := v.VPNService(s.ID)
	if cur == nil {
		return vpnServiceNotFound(s.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return staleVPN("VPNService", s.ID)
	}
	if s.RouterID != cur.RouterID || s.SubnetID != cur.SubnetID {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: router_id and subnet_id of a VPN service cannot be changed.")
	}
	s.ExternalV4IP, s.ExternalV6IP, s.Status = cur.ExternalV4IP, cur.ExternalV6IP, cur.Status
	switch {
	case !s.AdminStateUp:
		s.Status = VPNStatusDown
	case !cur.AdminStateUp:
		// Enabled again: unknown until its agent reports.
		s.Status = VPNStatusPendingCreate
	}
	s.CreateIndex, s.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableVPNServices, s, index)
	return nil
}

func applyVPNServiceDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.VPNService(req.ID)
	if cur == nil {
		return vpnServiceNotFound(req.ID)
	}
	if len(v.IPsecSiteConnectionsOfService(req.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeVPNServiceInUse, "VPNService %s is still in use", req.ID)
	}
	remove(txn, TableVPNServices, cur, index)
	return nil
}

// CheckEndpointGroup validates what needs the state: the subnets of a
// subnet group exist.
func (v *View) CheckEndpointGroup(g *EndpointGroup) error {
	if g.Type != VPNEndpointSubnet {
		return nil
	}
	for _, id := range g.Endpoints {
		if v.Subnet(id) == nil {
			return Errorf(CodeBadRequest, ErrTypeVPNNonExistingSubnetInGroup, "Subnet %s in endpoint group does not exist", id)
		}
	}
	return nil
}

func applyEndpointGroupCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNEndpointGroupCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	g := req.Group
	if v.EndpointGroup(g.ID) != nil {
		return vpnDuplicate("Endpoint group", g.ID)
	}
	if err := v.CheckEndpointGroup(g); err != nil {
		return err
	}
	g.CreateIndex, g.ModifyIndex = index, index
	insert(txn, TableVPNEndpointGroups, g, index)
	return nil
}

func applyEndpointGroupUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNEndpointGroupUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	g := req.Group
	cur := v.EndpointGroup(g.ID)
	if cur == nil {
		return endpointGroupNotFound(g.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return staleVPN("Endpoint group", g.ID)
	}
	if g.Type != cur.Type || !slices.Equal(g.Endpoints, cur.Endpoints) {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: type and endpoints of an endpoint group cannot be changed.")
	}
	g.CreateIndex, g.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableVPNEndpointGroups, g, index)
	return nil
}

// endpointGroupUsers returns the connections using an endpoint group.
func (v *View) endpointGroupUsers(id string) []*IPsecSiteConnection {
	return append(all[*IPsecSiteConnection](v.txn, TableVPNSiteConnections, "localep", id),
		all[*IPsecSiteConnection](v.txn, TableVPNSiteConnections, "peerep", id)...)
}

func applyEndpointGroupDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.EndpointGroup(req.ID)
	if cur == nil {
		return endpointGroupNotFound(req.ID)
	}
	if len(v.endpointGroupUsers(req.ID)) > 0 {
		// 400, not 409: Neutron's EndpointGroupInUse is a BadRequest.
		return Errorf(CodeBadRequest, ErrTypeEndpointGroupInUse, "Endpoint group %s is in use and cannot be deleted", req.ID)
	}
	remove(txn, TableVPNEndpointGroups, cur, index)
	return nil
}

// VPNLocalSubnets returns the local subnets of a connection: those of its
// local endpoint group, or its service's subnet (the legacy form).
func (v *View) VPNLocalSubnets(c *IPsecSiteConnection) []*Subnet {
	var ids []string
	if c.LocalEPGroupID != "" {
		if g := v.EndpointGroup(c.LocalEPGroupID); g != nil {
			ids = g.Endpoints
		}
	} else if s := v.VPNService(c.VPNServiceID); s != nil && s.SubnetID != "" {
		ids = []string{s.SubnetID}
	}
	var out []*Subnet
	for _, id := range ids {
		if s := v.Subnet(id); s != nil {
			out = append(out, s)
		}
	}
	return out
}

// VPNPeerCIDRs returns the peer CIDRs of a connection: its own, or its
// peer endpoint group's.
func (v *View) VPNPeerCIDRs(c *IPsecSiteConnection) []string {
	if c.PeerEPGroupID != "" {
		if g := v.EndpointGroup(c.PeerEPGroupID); g != nil {
			return g.Endpoints
		}
		return nil
	}
	return c.PeerCIDRs
}

// CheckSiteConnection validates a connection against the state as
// Neutron's reference validator does: its service and policies exist, a
// service with a subnet takes peer_cidrs and no endpoint groups, one
// without takes both groups and no peer_cidrs; the groups have the right
// types and the local subnets are on the service's router; local subnets,
// peer CIDRs and peer address have one IP version, one the router's
// gateway has an address of. Beyond Neutron, no peer CIDR may overlap a
// local subnet (the traffic selectors would capture local traffic).
func (v *View) CheckSiteConnection(c *IPsecSiteConnection) error {
	s := v.VPNService(c.VPNServiceID)
	if s == nil {
		return vpnServiceNotFound(c.VPNServiceID)
	}
	if v.IKEPolicy(c.IKEPolicyID) == nil {
		return ikePolicyNotFound(c.IKEPolicyID)
	}
	if v.IPsecPolicy(c.IPsecPolicyID) == nil {
		return ipsecPolicyNotFound(c.IPsecPolicyID)
	}
	if err := checkEndpointForm(s, c); err != nil {
		return err
	}
	var locals []*Subnet
	var peers []string
	if s.SubnetID != "" {
		sub := v.Subnet(s.SubnetID)
		if sub == nil {
			return subnetNotFound(s.SubnetID)
		}
		locals, peers = []*Subnet{sub}, c.PeerCIDRs
	} else {
		lg, pg := v.EndpointGroup(c.LocalEPGroupID), v.EndpointGroup(c.PeerEPGroupID)
		if lg == nil {
			return endpointGroupNotFound(c.LocalEPGroupID)
		}
		if pg == nil {
			return endpointGroupNotFound(c.PeerEPGroupID)
		}
		for _, g := range []struct {
			g    *EndpointGroup
			want string
		}{{lg, VPNEndpointSubnet}, {pg, VPNEndpointCIDR}} {
			if g.g.Type != g.want {
				return Errorf(CodeBadRequest, ErrTypeVPNWrongEndpointGroupType,
					"Endpoint group %s type is '%s' and should be '%s'", g.g.ID, g.g.Type, g.want)
			}
		}
		for _, id := range lg.Endpoints {
			sub := v.Subnet(id)
			if sub == nil {
				return Errorf(CodeBadRequest, ErrTypeVPNNonExistingSubnetInGroup, "Subnet %s in endpoint group does not exist", id)
			}
			if !v.routerHasSubnet(s.RouterID, id) {
				return Errorf(CodeBadRequest, ErrTypeSubnetIsNotConnectedRouter, "Subnet %s is not connected to Router %s", id, s.RouterID)
			}
			locals = append(locals, sub)
		}
		peers = pg.Endpoints
	}
	localVer := 0
	for _, l := range locals {
		ver := ipVersion(l.Prefix().Addr())
		if localVer != 0 && ver != localVer {
			return Errorf(CodeBadRequest, ErrTypeVPNMixedEndpoints,
				"Endpoints in group %s do not have the same IP version, as required for IPSec site-to-site connection", c.LocalEPGroupID)
		}
		localVer = ver
	}
	var prefixes []netip.Prefix
	peerVer := 0
	for _, p := range peers {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return Errorf(CodeBadRequest, ErrTypeIPsecSiteConnectionPeerCIDR, "ipsec_site_connection peer cidr %s is invalid CIDR", p)
		}
		ver := ipVersion(pfx.Addr())
		if peerVer != 0 && ver != peerVer {
			if c.PeerEPGroupID != "" {
				return Errorf(CodeBadRequest, ErrTypeVPNMixedEndpoints,
					"Endpoints in group %s do not have the same IP version, as required for IPSec site-to-site connection", c.PeerEPGroupID)
			}
			return Errorf(CodeBadRequest, ErrTypeVPNMixedPeerCIDRs, "Peer CIDRs do not have the same IP version, as required for IPSec site-to-site connection")
		}
		peerVer = ver
		prefixes = append(prefixes, pfx.Masked())
	}
	if localVer != peerVer {
		return Errorf(CodeBadRequest, ErrTypeVPNMixedConnection, "IP versions are not compatible between peer and local endpoints")
	}
	if a, err := netip.ParseAddr(c.PeerAddress); err == nil {
		ver := ipVersion(a)
		if (ver == 4 && s.ExternalV4IP == "") || (ver == 6 && s.ExternalV6IP == "") {
			return Errorf(CodeBadRequest, ErrTypeExternalNetworkHasNoSubnet, "Router's %s external network has no IPv%d subnet", s.RouterID, ver)
		}
	}
	if c.MTU != 0 && c.MTU < minMTU[localVer] {
		return Errorf(CodeBadRequest, ErrTypeIPsecSiteConnectionMTU, "Invalid input for operation: ipsec_site_connection MTU %d is too small for ipv%d.", c.MTU, localVer)
	}
	for _, p := range prefixes {
		for _, l := range locals {
			if p.Overlaps(l.Prefix()) {
				return Errorf(CodeBadRequest, ErrTypeVPNPeerCIDROverlap,
					"Peer CIDR %s overlaps local subnet %s (%s) of the IPsec site connection.", p, l.ID, l.CIDR)
			}
		}
	}
	return nil
}

// minMTU is the smallest MTU per IP version (Neutron's IP_MIN_MTU).
var minMTU = map[int]int{4: 68, 6: 1280}

func ipVersion(a netip.Addr) int {
	if a.Is6() && !a.Is4In6() {
		return 6
	}
	return 4
}

// checkEndpointForm enforces Neutron's two forms of a connection's
// endpoints: legacy (service subnet + peer_cidrs) or endpoint groups.
func checkEndpointForm(s *VPNService, c *IPsecSiteConnection) error {
	var which []string
	if s.SubnetID != "" {
		if len(c.PeerCIDRs) == 0 {
			return Errorf(CodeBadRequest, ErrTypeVPNMissingPeerCIDRs, "Missing peer CIDRs for IPsec site-to-site connection")
		}
		if c.LocalEPGroupID != "" {
			which = append(which, "local")
		}
		if c.PeerEPGroupID != "" {
			which = append(which, "peer")
		}
		if len(which) > 0 {
			return Errorf(CodeBadRequest, ErrTypeVPNInvalidEndpointGroup,
				"Endpoint group%s %s cannot be specified, when VPN Service has subnet specified", plural(which), strings.Join(which, " and "))
		}
		return nil
	}
	if len(c.PeerCIDRs) > 0 {
		return Errorf(CodeBadRequest, ErrTypeVPNPeerCIDRsInvalid, "Peer CIDRs cannot be specified, when using endpoint groups")
	}
	if c.LocalEPGroupID == "" {
		which = append(which, "local")
	}
	if c.PeerEPGroupID == "" {
		which = append(which, "peer")
	}
	if len(which) > 0 {
		return Errorf(CodeBadRequest, ErrTypeVPNMissingRequiredEPGroup,
			"Missing endpoint group%s %s for IPSec site-to-site connection", plural(which), strings.Join(which, " and "))
	}
	return nil
}

func plural(list []string) string {
	if len(list) > 1 {
		return "s"
	}
	return ""
}

func applySiteConnectionCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNSiteConnectionCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	c := req.Connection
	if v.IPsecSiteConnection(c.ID) != nil {
		return vpnDuplicate("IPsec site connection", c.ID)
	}
	if err := v.CheckSiteConnection(c); err != nil {
		return err
	}
	c.Status = VPNStatusPendingCreate
	if !c.AdminStateUp {
		c.Status = VPNStatusDown
	}
	c.CreateIndex, c.ModifyIndex = index, index
	insert(txn, TableVPNSiteConnections, c, index)
	return nil
}

func applySiteConnectionUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNSiteConnectionUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	c := req.Connection
	cur := v.IPsecSiteConnection(c.ID)
	if cur == nil {
		return siteConnectionNotFound(c.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return staleVPN("IPsec site connection", c.ID)
	}
	if c.VPNServiceID != cur.VPNServiceID || c.IKEPolicyID != cur.IKEPolicyID || c.IPsecPolicyID != cur.IPsecPolicyID {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput,
			"Invalid input for operation: vpnservice_id, ikepolicy_id and ipsecpolicy_id of an IPsec site connection cannot be changed.")
	}
	if err := v.CheckSiteConnection(c); err != nil {
		return err
	}
	c.Status = cur.Status
	switch {
	case !c.AdminStateUp:
		c.Status = VPNStatusDown
	case !cur.AdminStateUp:
		c.Status = VPNStatusPendingCreate
	}
	c.CreateIndex, c.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableVPNSiteConnections, c, index)
	return nil
}

func applySiteConnectionDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.IPsecSiteConnection(req.ID)
	if cur == nil {
		return siteConnectionNotFound(req.ID)
	}
	remove(txn, TableVPNSiteConnections, cur, index)
	return nil
}

// CheckVPNStatus validates a report's statuses.
func CheckVPNStatus(req *VPNStatusRequest) error {
	for _, m := range []map[string]string{req.Services, req.Connections} {
		for id, st := range m {
			if !slices.Contains(VPNStatuses, st) {
				return Errorf(CodeBadRequest, ErrTypeInvalidInput,
					"Invalid input for operation: status %q of %s is not one of %s.", st, id, strings.Join(VPNStatuses, ", "))
			}
		}
	}
	return nil
}

// PlanVPNStatus returns the services and connections a report would
// change, as new versions (without indexes and revision bump): only those
// whose router's active gateway is the reporting chassis. A disabled
// connection or service stays DOWN whatever is reported. Empty results
// mean the report changes nothing and need not be proposed.
func (v *View) PlanVPNStatus(req *VPNStatusRequest) ([]*VPNService, []*IPsecSiteConnection) {
	if req.Chassis == "" {
		return nil, nil
	}
	ours := func(serviceID string) bool { return v.VPNServiceChassis(serviceID) == req.Chassis }
	var conns []*IPsecSiteConnection
	changed := map[string]*IPsecSiteConnection{}
	ids := make([]string, 0, len(req.Connections))
	for id := range req.Connections {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		st := req.Connections[id]
		c := v.IPsecSiteConnection(id)
		if c == nil || !ours(c.VPNServiceID) {
			continue
		}
		if !c.AdminStateUp {
			st = VPNStatusDown
		}
		if st == c.Status {
			continue
		}
		n := c.Copy()
		n.Status = st
		conns = append(conns, n)
		changed[id] = n
	}
	// A service's status follows its connections as well as its own
	// report, so every service of a changed connection is looked at.
	svcIDs := map[string]bool{}
	for id := range req.Services {
		svcIDs[id] = true
	}
	for _, c := range conns {
		svcIDs[c.VPNServiceID] = true
	}
	sorted := make([]string, 0, len(svcIDs))
	for id := range svcIDs {
		sorted = append(sorted, id)
	}
	slices.Sort(sorted)
	var svcs []*VPNService
	for _, id := range sorted {
		s := v.VPNService(id)
		if s == nil || !ours(id) {
			continue
		}
		var list []*IPsecSiteConnection
		for _, c := range v.IPsecSiteConnectionsOfService(id) {
			if n := changed[c.ID]; n != nil {
				c = n
			}
			list = append(list, c)
		}
		st := v.serviceStatus(s, req.Services[id], list)
		if st == s.Status {
			continue
		}
		n := s.Copy()
		n.Status = st
		svcs = append(svcs, n)
	}
	return svcs, conns
}

func applyVPNStatus(txn *memdb.Txn, body []byte, index uint64) error {
	var req VPNStatusRequest
	mustDecode(body, &req, index)
	if err := CheckVPNStatus(&req); err != nil {
		return err
	}
	v := View{txn: txn}
	svcs, conns := v.PlanVPNStatus(&req)
	for _, s := range svcs {
		s.RevisionNumber++
		if req.UpdatedAt != "" {
			s.UpdatedAt = req.UpdatedAt
		}
		s.ModifyIndex = index
		insert(txn, TableVPNServices, s, index)
	}
	for _, c := range conns {
		c.RevisionNumber++
		if req.UpdatedAt != "" {
			c.UpdatedAt = req.UpdatedAt
		}
		c.ModifyIndex = index
		insert(txn, TableVPNSiteConnections, c, index)
	}
	return nil
}

// checkRouterVPN refuses deleting a router, or taking its gateway away or
// to another network, while a VPN service uses it (Neutron's
// RouterInUseByVPNService).
func checkRouterVPN(v *View, routerID string) error {
	if svcs := v.VPNServicesOfRouter(routerID); len(svcs) > 0 {
		return Errorf(CodeConflict, ErrTypeRouterInUseByVPNService, "Router %s is used by VPNService %s", routerID, svcs[0].ID)
	}
	return nil
}

// checkInterfaceVPN refuses removing a router interface whose subnet a VPN
// service or a connection's local endpoint group of the router needs.
func checkInterfaceVPN(v *View, routerID string, p *Port) error {
	for _, sub := range v.subnetsOfPorts(p) {
		for _, s := range v.VPNServicesOfRouter(routerID) {
			if s.SubnetID == sub.ID {
				return Errorf(CodeConflict, ErrTypeSubnetInUseByVPNService, "Subnet %s is used by VPNService %s", sub.ID, s.ID)
			}
			for _, c := range v.IPsecSiteConnectionsOfService(s.ID) {
				if g := v.EndpointGroup(c.LocalEPGroupID); g != nil && slices.Contains(g.Endpoints, sub.ID) {
					return Errorf(CodeConflict, ErrTypeSubnetInUseByEndpointGroup,
						"Subnet %s is used by endpoint group %s", sub.ID, g.ID)
				}
			}
		}
	}
	return nil
}

// refreshVPNServices keeps the external addresses of a router's VPN
// services equal to its gateway port's after the port changed.
func refreshVPNServices(txn *memdb.Txn, routerID string, index uint64) {
	v := View{txn: txn}
	v4, v6 := v.vpnExternalIPs(routerID)
	for _, s := range v.VPNServicesOfRouter(routerID) {
		if s.ExternalV4IP == v4 && s.ExternalV6IP == v6 {
			continue
		}
		n := s.Copy()
		n.ExternalV4IP, n.ExternalV6IP = v4, v6
		n.RevisionNumber++
		n.ModifyIndex = index
		insert(txn, TableVPNServices, n, index)
	}
}

// checkSubnetVPN refuses deleting a subnet a VPN service or an endpoint
// group names (Neutron's SubnetInUseByVPNService/ByEndpointGroup).
func checkSubnetVPN(v *View, subnetID string) error {
	if g := first[*EndpointGroup](v.txn, TableVPNEndpointGroups, "endpoint", subnetID); g != nil && g.Type == VPNEndpointSubnet {
		return Errorf(CodeConflict, ErrTypeSubnetInUseByEndpointGroup, "Subnet %s is used by endpoint group %s", subnetID, g.ID)
	}
	for _, s := range v.VPNServices() {
		if s.SubnetID == subnetID {
			return Errorf(CodeConflict, ErrTypeSubnetInUseByVPNService, "Subnet %s is used by VPNService %s", subnetID, s.ID)
		}
	}
	return nil
}

// resetVPNStatus marks the enabled VPN services and connections of a
// router whose gateway moved PENDING_CREATE: what the old chassis reported
// no longer holds, and only the new chassis' agent may say otherwise.
func resetVPNStatus(txn *memdb.Txn, routerID, at string, index uint64) {
	v := View{txn: txn}
	touch := func(m *Meta) {
		m.RevisionNumber++
		if at != "" {
			m.UpdatedAt = at
		}
		m.ModifyIndex = index
	}
	for _, s := range v.VPNServicesOfRouter(routerID) {
		for _, c := range v.IPsecSiteConnectionsOfService(s.ID) {
			if c.AdminStateUp && c.Status != VPNStatusPendingCreate {
				n := c.Copy()
				n.Status = VPNStatusPendingCreate
				touch(&n.Meta)
				insert(txn, TableVPNSiteConnections, n, index)
			}
		}
		if s.AdminStateUp && s.Status != VPNStatusPendingCreate {
			n := s.Copy()
			n.Status = VPNStatusPendingCreate
			touch(&n.Meta)
			insert(txn, TableVPNServices, n, index)
		}
	}
}
