package pipeline

import (
	"net"
	"net/netip"
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// IPv6 east-west routing, the same distributed scheme as IPv4 (router.go):
// table 50 answers ICMPv6 echo to the router's addresses and routes by
// longest prefix (connected IPv6 subnets, then IPv6 extra routes),
// decrementing the hop limit and rewriting the source MAC; the 128-bit
// next hop goes into RegNextHop6 (reg12-reg15, most significant word
// first) because reg0 holds only 32 bits; table 55 resolves it from the
// ports the state knows. North-south IPv6 (gateway, NAT66) is not built:
// an IPv6 packet with no route here is dropped.

// prioEcho6 answers ICMPv6 echo to a router address above every IPv6
// route (100 + 2 x 128 + 1 at most), which prioEcho is not.
const prioEcho6 = 400

// RegNextHop6 is the first of the four registers (reg12..reg15) that hold
// the IPv6 next hop of a routed packet, most significant 32 bits first.
const RegNextHop6 = 12

// ndFlagsRouterSolicitedOverride are the R, S and O flags of a neighbour
// advertisement: the router's interfaces advertise themselves as routers
// (RFC 4861 7.2.4), so a host that learned them as its default router
// keeps them as one.
const ndFlagsRouterSolicitedOverride = 0xe0000000

// routerIface6 is one IPv6 address of a router interface.
type routerIface6 struct {
	mac    net.HardwareAddr
	key    uint64
	ip     netip.Addr
	subnet netip.Prefix
}

func (c *Compiler) routerIfaces6(r *fsm.Router) []routerIface6 {
	var out []routerIface6
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
			if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" || s == nil {
				continue
			}
			pfx := s.Prefix()
			if !pfx.IsValid() || !pfx.Contains(a) {
				continue
			}
			out = append(out, routerIface6{mac: mac, key: key, ip: a, subnet: pfx.Masked()})
		}
	}
	slices.SortFunc(out, func(a, b routerIface6) int { return a.ip.Compare(b.ip) })
	return out
}

// route6Flows are a router's IPv6 flows in table 50.
func (c *Compiler) route6Flows(e *emitter, r *fsm.Router) {
	rk := openflow.Reg(RegRouter, RouterKey(r))
	ifaces := c.routerIfaces6(r)
	echoed := map[netip.Addr]bool{}
	seen := map[netip.Prefix]bool{}
	for _, ifc := range ifaces {
		// ICMPv6 echo to a router address, global or the interface's
		// link-local one: answered here, back out of the port it came
		// from.
		for _, a := range []netip.Addr{ifc.ip, linkLocal(ifc.mac)} {
			if echoed[a] {
				continue
			}
			echoed[a] = true
			e.add(TableRouting, prioEcho6, openflow.Match{rk, openflow.EthType(ethIPv6), openflow.IPProto(58),
				openflow.IPv6Dst(netip.PrefixFrom(a, 128)), openflow.ICMPv6Type(128)}, echoReply6(a)...)
		}
		if seen[ifc.subnet] {
			continue
		}
		seen[ifc.subnet] = true
		acts := []openflow.Action{openflow.DecTTL{}}
		for i := range 4 {
			// ipv6_dst's bit 0 is its least significant: word i (from the
			// top) starts at bit 96-32i.
			acts = append(acts, moveBits(openflow.FieldIPv6Dst, uint16(96-32*i), openflow.FieldReg(RegNextHop6+i), 0, 32))
		}
		acts = append(acts, openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(ifc.mac)}, writeNet(ifc.key), goTo(TableNextHop))
		e.add(TableRouting, uint16(prioRoute+2*ifc.subnet.Bits()+1), openflow.Match{rk, openflow.EthType(ethIPv6), openflow.IPv6Dst(ifc.subnet)}, acts...)
	}
	for _, rt := range ipv6Routes(r) {
		dst, nh := rt.dst, rt.nextHop
		i := slices.IndexFunc(ifaces, func(f routerIface6) bool { return f.subnet.Contains(nh) })
		if i < 0 || seen[dst] {
			continue // next hop on no interface, or a connected route wins
		}
		seen[dst] = true // no ECMP: the first next hop (by address) wins
		ifc := ifaces[i]
		acts := []openflow.Action{openflow.DecTTL{}}
		acts = append(acts, setNextHop6(nh)...)
		acts = append(acts, openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(ifc.mac)}, writeNet(ifc.key), goTo(TableNextHop))
		e.add(TableRouting, uint16(prioRoute+2*dst.Bits()), openflow.Match{rk, openflow.EthType(ethIPv6), openflow.IPv6Dst(dst)}, acts...)
	}
}

// ipv6Routes returns a router's valid IPv6 extra routes in the order
// ipv4Routes defines.
func ipv6Routes(r *fsm.Router) []extraRoute {
	var out []extraRoute
	for _, rt := range sortedRoutes(r) {
		dst, ok := parsePrefix(rt.Destination)
		nh, err := netip.ParseAddr(rt.NextHop)
		if ok && err == nil && dst.Addr().Is6() && !dst.Addr().Is4In6() && nh.Is6() && !nh.Is4In6() && nh.Zone() == "" && dst.Addr().Zone() == "" {
			out = append(out, extraRoute{dst: dst.Masked(), nextHop: nh})
		}
	}
	return out
}

// nextHop6Words splits an IPv6 address into the four 32-bit values of
// RegNextHop6..RegNextHop6+3.
func nextHop6Words(a netip.Addr) [4]uint32 {
	b := a.As16()
	var w [4]uint32
	for i := range w {
		w[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return w
}

func setNextHop6(a netip.Addr) []openflow.Action {
	var out []openflow.Action
	for i, w := range nextHop6Words(a) {
		out = append(out, openflow.SetReg(RegNextHop6+i, w))
	}
	return out
}

// matchNextHop6 matches an IPv6 packet whose next hop is a.
func matchNextHop6(a netip.Addr) openflow.Match {
	m := openflow.Match{openflow.EthType(ethIPv6)}
	for i, w := range nextHop6Words(a) {
		m = append(m, openflow.Reg(RegNextHop6+i, w))
	}
	return m
}

// nextHop6Flows are a port's IPv6 entries in table 55: a packet routed to
// one of its fixed IPv6 addresses gets its MAC and goes back to the L2
// lookup of its network.
func nextHop6Flows(e *emitter, p *fsm.Port, meta openflow.MatchField, mac net.HardwareAddr) {
	for _, a := range ipv6s(p) {
		e.add(TableNextHop, prioMatch, append(matchNextHop6(a), meta),
			openflow.SetField{Field: openflow.FieldEthDst, Value: slices.Clone(mac)}, openflow.Resubmit{Table: TableL2Lookup})
	}
}

// routerND answers neighbour solicitations for a router interface's
// addresses: its fixed IPv6 addresses and the link-local address of its
// MAC (the source of router advertisements, so hosts that learn their
// default router from them resolve it), with the router flag set.
func routerND(e *emitter, p *fsm.Port, meta openflow.MatchField, mac net.HardwareAddr) {
	for _, a := range append(ipv6s(p), linkLocal(mac)) {
		e.add(TableARPResponder, prioMatch, append(icmp6Type(135), meta, openflow.NDTarget(a)), ndAdvertFlags(mac, a, ndFlagsRouterSolicitedOverride)...)
	}
}

// echoReply6 turns an ICMPv6 echo request to ip into the reply, sent back
// out of the port it came in on: MACs swapped (through RegSwap1/RegSwap2),
// addresses swapped, type 129. Setting the ICMPv6 type makes OVS
// recompute the checksum (in the userspace slow path, as for the ND
// responder).
func echoReply6(ip netip.Addr) []openflow.Action {
	return []openflow.Action{
		moveBits(openflow.FieldEthDst, 0, openflow.FieldReg(RegSwap1), 0, 32),
		moveBits(openflow.FieldEthDst, 32, openflow.FieldReg(RegSwap2), 0, 16),
		move(openflow.FieldEthSrc, openflow.FieldEthDst),
		moveBits(openflow.FieldReg(RegSwap1), 0, openflow.FieldEthSrc, 0, 32),
		moveBits(openflow.FieldReg(RegSwap2), 0, openflow.FieldEthSrc, 32, 16),
		move(openflow.FieldIPv6Src, openflow.FieldIPv6Dst),
		openflow.SetIP(openflow.FieldIPv6Src, ip),
		openflow.SetUint(openflow.FieldICMPv6Type, 129),
		goTo(TableInPortReply),
	}
}
