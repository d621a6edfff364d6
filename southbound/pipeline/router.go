package pipeline

import (
	"cmp"
	"net"
	"net/netip"
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Distributed routing: every chassis where a router is present (it has an
// interface on a network with a local port) routes for it. A packet to a
// router interface MAC gets RegRouter (table 40); table 50 answers ICMP
// echo to the router's addresses and picks the route by longest prefix
// (connected subnets, then extra routes), decrements the TTL, rewrites the
// source MAC to the router's MAC on the next network, sets that network
// and the next hop (RegNextHop); table 55 resolves the next hop to a MAC
// from the ports the state knows (no ARP on the wire) and goes back to the
// L2 lookup of the next network, which outputs locally or tunnels straight
// to the destination chassis.

// routerIface is one IPv4 address of a router interface.
type routerIface struct {
	mac    net.HardwareAddr
	key    uint64
	net    string
	ip     netip.Addr
	subnet netip.Prefix
}

func (c *Compiler) routerIfaces(r *fsm.Router) []routerIface {
	var out []routerIface
	for _, p := range c.v.PortsOfDevice(r.ID) {
		if !isRouterInterface(p) || !c.presentNet[p.NetworkID] {
			continue
		}
		key := NetworkKey(c.v.Network(p.NetworkID))
		mac, err := net.ParseMAC(p.MACAddress)
		if key == 0 || err != nil || len(mac) != 6 {
			continue
		}
		for _, f := range p.FixedIPs {
			a, err := netip.ParseAddr(f.IPAddress)
			s := c.v.Subnet(f.SubnetID)
			if err != nil || !a.Is4() || s == nil {
				continue
			}
			pfx := s.Prefix()
			if !pfx.IsValid() || !pfx.Contains(a) {
				continue
			}
			out = append(out, routerIface{mac: mac, key: key, net: p.NetworkID, ip: a, subnet: pfx.Masked()})
		}
	}
	slices.SortFunc(out, func(a, b routerIface) int { return a.ip.Compare(b.ip) })
	return out
}

func (c *Compiler) routerFlows(e *emitter, r *fsm.Router) {
	// A router without a key (or beyond the zone range) gets no flows:
	// two routers must never share a register value or a SNAT zone.
	if r == nil || !r.AdminStateUp || !c.presentRouter[r.ID] || RouterZone(r) == 0 {
		return
	}
	rk := openflow.Reg(RegRouter, RouterKey(r))
	ifaces := c.routerIfaces(r)
	seen := map[netip.Prefix]bool{}
	for _, ifc := range ifaces {
		// ICMP echo to a router address: answered here, back out of the
		// port it came from.
		e.add(TableRouting, prioEcho, openflow.Match{rk, openflow.EthType(ethIPv4), openflow.IPProto(1),
			openflow.IPv4Dst(ipNet(netip.PrefixFrom(ifc.ip, 32))), openflow.Exact(openflow.FieldICMPType, 8)},
			echoReply(ifc.ip)...)
		if seen[ifc.subnet] {
			continue
		}
		seen[ifc.subnet] = true
		e.add(TableRouting, uint16(prioRoute+2*ifc.subnet.Bits()+1), openflow.Match{rk, openflow.EthType(ethIPv4), openflow.IPv4Dst(ipNet(ifc.subnet))},
			openflow.DecTTL{}, move(openflow.FieldIPv4Dst, openflow.FieldReg(RegNextHop)),
			openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(ifc.mac)}, writeNet(ifc.key), goTo(TableNextHop))
	}
	for _, rt := range ipv4Routes(r) {
		dst, nh := rt.dst, rt.nextHop
		i := slices.IndexFunc(ifaces, func(f routerIface) bool { return f.subnet.Contains(nh) })
		if i < 0 || seen[dst] {
			continue // next hop on no interface, or a connected route wins
		}
		seen[dst] = true // no ECMP: the first next hop (by address) wins
		ifc := ifaces[i]
		e.add(TableRouting, uint16(prioRoute+2*dst.Bits()), openflow.Match{rk, openflow.EthType(ethIPv4), openflow.IPv4Dst(ipNet(dst))},
			openflow.DecTTL{}, openflow.SetReg(RegNextHop, ip4u32(nh)),
			openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(ifc.mac)}, writeNet(ifc.key), goTo(TableNextHop))
	}
	c.route6Flows(e, r)
	c.externalFlows(e, r, ifaces, seen)
	c.vpnFlows(e, r)
}

// extraRoute is a router's extra route, parsed.
type extraRoute struct {
	dst     netip.Prefix // masked
	nextHop netip.Addr
}

// ipv4Routes returns a router's valid IPv4 extra routes, sorted by
// destination then next hop (as strings: the order the lowest-next-hop
// rule is defined by).
func ipv4Routes(r *fsm.Router) []extraRoute {
	routes := sortedRoutes(r)
	out := make([]extraRoute, 0, len(routes))
	for _, rt := range routes {
		dst, ok := parsePrefix(rt.Destination)
		nh, err := netip.ParseAddr(rt.NextHop)
		if ok && err == nil && dst.Addr().Is4() && nh.Is4() {
			out = append(out, extraRoute{dst: dst.Masked(), nextHop: nh})
		}
	}
	return out
}

// sortedRoutes are a router's extra routes sorted by destination then
// next hop.
func sortedRoutes(r *fsm.Router) []fsm.Route {
	routes := slices.Clone(r.Routes)
	slices.SortFunc(routes, func(a, b fsm.Route) int {
		return cmp.Or(cmp.Compare(a.Destination, b.Destination), cmp.Compare(a.NextHop, b.NextHop))
	})
	return routes
}

// echoReply turns an ICMP echo request to ip into the reply, sent back out
// of the port it came in on: MACs swapped (through RegSwap1/RegSwap2),
// addresses swapped, type 0.
func echoReply(ip netip.Addr) []openflow.Action {
	return []openflow.Action{
		moveBits(openflow.FieldEthDst, 0, openflow.FieldReg(RegSwap1), 0, 32),
		moveBits(openflow.FieldEthDst, 32, openflow.FieldReg(RegSwap2), 0, 16),
		move(openflow.FieldEthSrc, openflow.FieldEthDst),
		moveBits(openflow.FieldReg(RegSwap1), 0, openflow.FieldEthSrc, 0, 32),
		moveBits(openflow.FieldReg(RegSwap2), 0, openflow.FieldEthSrc, 32, 16),
		move(openflow.FieldIPv4Src, openflow.FieldIPv4Dst),
		openflow.SetField{Field: openflow.FieldIPv4Src, Value: ip.AsSlice()},
		openflow.SetField{Field: openflow.FieldICMPType, Value: []byte{0}},
		goTo(TableInPortReply),
	}
}
