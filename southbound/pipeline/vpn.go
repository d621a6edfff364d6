package pipeline

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// VPN (Neutron VPNaaS, issue 13). A router's IPsec connections end in a
// namespace on its active gateway chassis (package southbound/vpnaas),
// plugged into br-int by one veth whose iface-id is VPNIfaceID: the
// router's "inside" transit port. The link is a /30 of two fixed
// link-local addresses (VPNRouterIP on the router's side, VPNNamespaceIP in
// the namespace) with fixed MACs derived from the router's key, so neither
// side ever ARPs. The namespace also carries the router's external address:
// charon sends IKE and ESP-in-UDP from it, and the router lets it out
// through its gateway as it is (no SNAT: the source is its own address).
//
// On the active gateway chassis (router unit):
//   - table 0: from the inside port -> RegRouter, to 50 (decrypted traffic
//     is routed to the router's subnets; charon's own packets leave through
//     the gateway, table 51's no-SNAT flow);
//   - table 46: UDP 500/4500 to the gateway address -> the inside port;
//   - table 50: a peer CIDR -> the inside port (TTL decremented, MACs of
//     the transit link), or dropped while the port is missing: traffic to a
//     peer CIDR never falls through to the default route and leaves in the
//     clear (or SNATed).
//
// Elsewhere where the router is present, table 50 sends a peer CIDR to 51,
// which carries it unrouted to the gateway chassis like any packet that
// leaves through the gateway.

// Addresses of the transit link between a router and its VPN namespace.
var (
	VPNRouterIP    = netip.MustParseAddr("169.254.0.1")
	VPNNamespaceIP = netip.MustParseAddr("169.254.0.2")
)

// Ports of IKE and of IKE/ESP with NAT traversal (ESP-in-UDP).
const (
	portIKE   = 500
	portNATT  = 4500
	prioVPNIn = 110 // table 46: IKE to the gateway address, above un-SNAT
)

// VPNIfaceID is the iface-id of a router's VPN namespace port on br-int.
func VPNIfaceID(routerID string) string { return "vpn-" + routerID }

// IsVPNIfaceID reports whether an iface-id names a VPN namespace port.
func IsVPNIfaceID(id string) bool { return strings.HasPrefix(id, "vpn-") }

// VPNRouterMAC is the router's MAC on its VPN transit link (routerKey is
// its datapath key).
func VPNRouterMAC(routerKey uint32) net.HardwareAddr { return vpnMAC(0x00, routerKey) }

// VPNNamespaceMAC is the VPN namespace's MAC on the transit link.
func VPNNamespaceMAC(routerKey uint32) net.HardwareAddr { return vpnMAC(0x01, routerKey) }

// vpnMAC is a locally administered unicast MAC: 0e:<b>:<router key>.
func vpnMAC(b byte, k uint32) net.HardwareAddr {
	return net.HardwareAddr{0x0e, b, byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// VPNPeerCIDRs returns the IPv4 peer CIDRs of every connection of a
// router's VPN services, masked, sorted, without duplicates. A disabled
// connection or service still counts: its peer CIDRs stay off the
// default route.
func VPNPeerCIDRs(v *fsm.View, routerID string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range v.VPNServicesOfRouter(routerID) {
		for _, conn := range v.IPsecSiteConnectionsOfService(s.ID) {
			for _, c := range v.VPNPeerCIDRs(conn) {
				if p, ok := parsePrefix(c); ok && p.Addr().Is4() {
					out = append(out, p.Masked())
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// vpnFlows are a router's VPN flows (part of its unit).
func (c *Compiler) vpnFlows(e *emitter, r *fsm.Router) {
	cidrs := VPNPeerCIDRs(c.v, r.ID)
	if len(cidrs) == 0 {
		return
	}
	g, ok := c.gatewayOf(r)
	if !ok {
		return
	}
	rkey := RouterKey(r)
	rk := openflow.Reg(RegRouter, rkey)
	ip4 := openflow.EthType(ethIPv4)
	if g.chassis != c.f.Chassis {
		for _, p := range cidrs {
			e.add(TableRouting, uint16(prioRoute+2*p.Bits()+1), openflow.Match{rk, ip4, openflow.IPv4Dst(ipNet(p))},
				goTo(TableExternal))
		}
		return
	}
	port := c.f.Bindings[VPNIfaceID(r.ID)]
	toNS := []openflow.Action{
		openflow.SetField{Field: openflow.FieldEthSrc, Value: VPNRouterMAC(rkey)},
		openflow.SetField{Field: openflow.FieldEthDst, Value: VPNNamespaceMAC(rkey)},
		openflow.Output{Port: port},
	}
	for _, p := range cidrs {
		m := openflow.Match{rk, ip4, openflow.IPv4Dst(ipNet(p))}
		if port == 0 {
			e.add(TableRouting, uint16(prioRoute+2*p.Bits()+1), m) // drop
			continue
		}
		e.add(TableRouting, uint16(prioRoute+2*p.Bits()+1), m, append([]openflow.Action{openflow.DecTTL{}}, toNS...)...)
	}
	if port == 0 {
		return
	}
	e.add(TableClassify, prioMatch, openflow.Match{openflow.InPort(port)},
		openflow.SetReg(RegRouter, rkey), openflow.SetReg(RegFlags, 0), goTo(TableRouting))
	for _, udp := range []uint64{portIKE, portNATT} {
		e.add(TableGatewayIn, prioVPNIn, openflow.Match{rk, ip4, openflow.IPProto(17),
			openflow.IPv4Dst(ipNet(netip.PrefixFrom(g.ip, 32))), openflow.Exact(openflow.FieldUDPDst, udp)}, toNS...)
	}
}

// vpnChanged marks the router units a change of the VPN tables or of a
// VPN namespace port's binding touches.
func (c *Compiler) vpnChanged(d *dirty, changes []fsm.Change, oldFacts, f Facts) {
	for _, ch := range changes {
		switch ch.Table {
		case fsm.TableVPNServices, fsm.TableVPNSiteConnections, fsm.TableVPNEndpointGroups:
			// Which routers a connection or group reaches is cheap to
			// recompute; deletes leave no object to follow, so every router
			// with a VPN service, before or after, is marked.
			for _, view := range []*fsm.View{c.prev, c.v} {
				if view == nil {
					continue
				}
				for _, s := range view.VPNServices() {
					d.units[unit{KindRouter, s.RouterID}] = true
				}
			}
		}
	}
	for _, m := range []map[string]uint32{oldFacts.Bindings, f.Bindings} {
		for id := range m {
			if IsVPNIfaceID(id) && oldFacts.Bindings[id] != f.Bindings[id] {
				d.units[unit{KindRouter, strings.TrimPrefix(id, "vpn-")}] = true
			}
		}
	}
}
