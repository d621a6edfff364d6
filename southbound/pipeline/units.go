package pipeline

import (
	"net"
	"net/netip"
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
)

// Priorities used in the tables.
const (
	prioDefault   = 0
	prioUnknown   = 50  // unknown unicast flood
	prioLow       = 90  // per-port fallthrough
	prioMatch     = 100 // ordinary match
	prioFromTun   = 110 // flood of packets from a tunnel
	prioOwner     = 110 // ARP from the owner of the address
	prioNDDrop    = 110 // ND from a secured port that no check admitted
	prioNDCheck   = 120 // ND from a secured port with its own addresses
	prioCTState   = 190 // established / related
	prioCTInvalid = 200 // invalid
	prioEcho      = 300 // ICMP echo to a router address
	prioRoute     = 100 // + 2*prefix length (+1 for a connected route)
	macMulticast  = 0x010000000000
)

// unit names a group of flows compiled from one object. Its flows' cookie
// owner is the kind and the object's datapath key (unique per kind: the
// state machine allocates it), so a cookie names one object.
type unit struct {
	kind uint8
	id   string
}

// pipelineUnit holds the tables' fixed flows.
var pipelineUnit = unit{KindPipeline, "pipeline"}

// emitter collects one unit's flows, stamping its cookie.
type emitter struct {
	cookie uint64
	flows  []openflow.Flow
}

func (e *emitter) add(table uint8, prio uint16, m openflow.Match, acts ...openflow.Action) {
	e.flows = append(e.flows, openflow.Flow{Table: table, Priority: uint16(prio), Cookie: e.cookie, Match: m, Actions: acts})
}

// compileUnit returns the flows of u on this chassis (none when the object
// is gone or has no flows here). A rule's come from ruleEntry (recompile),
// with their keys and, when shared, the change from the version before.
func (c *Compiler) compileUnit(u unit) []openflow.Flow {
	e := &emitter{}
	switch u.kind {
	case KindPipeline:
		e.cookie = flowsync.Cookie(KindPipeline, 0)
		c.pipelineFlows(e)
	case KindPort:
		if p := c.v.Port(u.id); p != nil {
			e.cookie = flowsync.Cookie(u.kind, p.DatapathKey)
			c.portFlows(e, p)
		}
	case KindNetwork:
		if n := c.v.Network(u.id); n != nil {
			e.cookie = flowsync.Cookie(u.kind, n.DatapathKey)
			c.networkFlows(e, n)
		}
	case KindRouter:
		if r := c.v.Router(u.id); r != nil {
			e.cookie = flowsync.Cookie(u.kind, r.DatapathKey)
			c.routerFlows(e, r)
		}
	case KindFirewall:
		if g := c.v.FirewallGroup(u.id); g != nil {
			e.cookie = flowsync.Cookie(u.kind, g.Key)
			c.firewallGroupFlows(e, g)
		}
	}
	return e.flows
}

func goTo(t uint8) openflow.GotoTable { return openflow.GotoTable{Table: t} }

var (
	matchFromTunnel = openflow.RegMasked(RegFlags, FlagFromTunnel, FlagFromTunnel)
	matchFromLocal  = openflow.RegMasked(RegFlags, 0, FlagFromTunnel)
	matchMulticast  = openflow.Masked(openflow.FieldEthDst, macMulticast, macMulticast)
)

func netMeta(key uint64) openflow.MatchField { return openflow.Metadata(key, MetadataNetworkMask) }
func writeNet(key uint64) openflow.WriteMetadata {
	return openflow.WriteMetadata{Value: key, Mask: MetadataNetworkMask}
}

// pipelineFlows are the fixed flows: table defaults and the conntrack
// dispatch shared by every port.
func (c *Compiler) pipelineFlows(e *emitter) {
	for _, t := range []uint8{TableClassify, TablePortSecurity, TableEgressACL, TableL2Lookup,
		TableRouting, TableExternal, TableNextHop, TableIngressCT, TableIngressACL, TableOutput} {
		e.add(t, prioDefault, nil) // drop
	}
	// From the external network to a gateway or floating IP MAC, after
	// un-NAT: route.
	e.add(TableGatewayIn, prioDefault, nil, goTo(TableRouting))
	// Egress: only ports with port security reach table 20. IP goes
	// through conntrack in the port's zone; anything else (ARP) passes.
	for _, et := range []uint16{ethIPv4, ethIPv6} {
		e.add(TableEgressCT, prioMatch, openflow.Match{openflow.EthType(et)}, ctRecirc(RegInPort, TableEgressACL))
	}
	e.add(TableEgressCT, prioDefault, nil, goTo(TableARPResponder))
	// Neighbour discovery bypasses conntrack (the kernel does not track
	// it: +inv): router and neighbour solicitations and advertisements
	// were checked by port security; a VM's router advertisement is
	// dropped. Towards a port, solicitations and advertisements pass.
	for _, t := range []uint8{133, 135, 136} {
		e.add(TableEgressCT, prioOwner, icmp6Type(t), goTo(TableARPResponder))
	}
	e.add(TableEgressCT, prioOwner, icmp6Type(134))
	for _, t := range []uint8{135, 136} {
		e.add(TableIngressCT, prioOwner, icmp6Type(t), goTo(TableOutput))
	}
	// Not answered: through the firewall of the router port it may be
	// routed in by, to the L2 lookup.
	e.add(TableARPResponder, prioDefault, nil, goTo(TableFWEgress))
	e.add(TableInPortReply, prioDefault, nil, openflow.Output{Port: openflow.PortInPort})
	firewallPipelineFlows(e)
	// A duplicate address probe (from ::) is never answered: it floods.
	e.add(TableARPResponder, prioOwner, append(icmp6Type(135), openflow.IPv6Src(netip.PrefixFrom(netip.IPv6Unspecified(), 128))), goTo(TableL2Lookup))
	// ND responder, second step: the packet is now an advertisement from
	// the answering MAC (table 30); its target link-layer address option
	// gets that MAC (OVS checks nd_tll's prerequisite, an advertisement,
	// against the match, so this cannot be done in the NS flow).
	e.add(TableNDReply, prioDefault, nil)
	e.add(TableNDReply, prioMatch, icmp6Type(136), move(openflow.FieldEthSrc, openflow.FieldNDTLL), goTo(TableInPortReply))
	for _, acl := range []struct{ table, next uint8 }{{TableEgressACL, TableARPResponder}, {TableIngressACL, TableOutput}} {
		e.add(acl.table, prioCTInvalid, openflow.Match{openflow.CtState(openflow.CtInv|openflow.CtTrk, openflow.CtInv|openflow.CtTrk)})
		e.add(acl.table, prioCTState, openflow.Match{openflow.CtState(openflow.CtEst|openflow.CtTrk, openflow.CtNew|openflow.CtEst|openflow.CtInv|openflow.CtTrk)}, goTo(acl.next))
		e.add(acl.table, prioCTState, openflow.Match{openflow.CtState(openflow.CtRel|openflow.CtTrk, openflow.CtNew|openflow.CtRel|openflow.CtInv|openflow.CtTrk)}, goTo(acl.next))
	}
}

const (
	ethIPv4 = 0x0800
	ethIPv6 = 0x86dd
	ethARP  = 0x0806
)

func isRouterInterface(p *fsm.Port) bool { return p.DeviceOwner == fsm.DeviceOwnerRouterInterface }

// isExternalAddressPort: a router's gateway port and a floating IP's port
// hold addresses that only the chassis serving them answers for; their
// flows are the router's (external.go).
func isExternalAddressPort(p *fsm.Port) bool {
	return p.DeviceOwner == fsm.DeviceOwnerRouterGateway || p.DeviceOwner == fsm.DeviceOwnerFloatingIP
}

// icmp6Type matches ICMPv6 messages of type t.
func icmp6Type(t uint8) openflow.Match {
	return openflow.Match{openflow.EthType(ethIPv6), openflow.IPProto(58), openflow.ICMPv6Type(t)}
}

// ipv6s returns a port's fixed IPv6 addresses.
func ipv6s(p *fsm.Port) []netip.Addr {
	var out []netip.Addr
	for _, f := range p.FixedIPs {
		if a, err := netip.ParseAddr(f.IPAddress); err == nil && a.Is6() && !a.Is4In6() {
			out = append(out, a)
		}
	}
	return out
}

// linkLocal is the EUI-64 link-local address of a MAC (fe80::/64).
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// ipv4s returns a port's fixed IPv4 addresses.
func ipv4s(p *fsm.Port) []netip.Addr {
	var out []netip.Addr
	for _, f := range p.FixedIPs {
		if a, err := netip.ParseAddr(f.IPAddress); err == nil && a.Is4() {
			out = append(out, a)
		}
	}
	return out
}

// portFlows compiles a port as this chassis sees it: local (plugged here),
// remote (bound elsewhere, on a network present here), a router interface
// (distributed: present wherever its network is), or nothing.
func (c *Compiler) portFlows(e *emitter, p *fsm.Port) {
	if p == nil || !c.presentNet[p.NetworkID] || isExternalAddressPort(p) {
		return
	}
	key := NetworkKey(c.v.Network(p.NetworkID))
	mac, err := net.ParseMAC(p.MACAddress)
	if key == 0 || err != nil || len(mac) != 6 {
		return
	}
	meta := netMeta(key)
	ofport := c.localOfport(p)
	switch {
	case isRouterInterface(p):
		// The router's MAC on this network: route (a router without a
		// key has no routes).
		if rk := RouterKey(c.v.Router(p.DeviceID)); rk != 0 {
			e.add(TableL2Lookup, prioMatch, openflow.Match{meta, matchFromLocal, openflow.EthDst(mac)},
				openflow.SetReg(RegRouter, rk), goTo(TableRouting))
		}
		c.firewallPortFlows(e, p, meta, mac)
	case ofport != 0:
		c.localPortFlows(e, p, key, mac, ofport)
	default:
		if ln, ok := c.localnetOf(c.v.Network(p.NetworkID)); ok {
			// A provider network reaches remote ports through the
			// physical network.
			if !p.AdminStateUp || p.BindingHostID == "" || p.BindingHostID == c.f.Chassis {
				return
			}
			for _, m := range portMACs(p, mac) {
				e.add(TableL2Lookup, prioMatch, openflow.Match{meta, matchFromLocal, openflow.EthDst(m)}, ln.out(ln.ofport)...)
			}
			break
		}
		ip, tun := c.remoteOf(p)
		if ip == nil {
			return
		}
		seg := uint64(uint32(key))
		for _, m := range portMACs(p, mac) {
			e.add(TableL2Lookup, prioMatch, openflow.Match{meta, matchFromLocal, openflow.EthDst(m)},
				openflow.SetTunID(seg), setTunDst(ip), openflow.Output{Port: tun})
		}
	}
	// ARP responder: known addresses are answered on the asking chassis.
	for _, a := range ipv4s(p) {
		if ofport != 0 {
			// The owner asking for its own address (gratuitous ARP, a
			// duplicate address probe) is not answered: it floods.
			e.add(TableARPResponder, prioOwner, openflow.Match{openflow.Reg(RegInPort, ofport), openflow.EthType(ethARP), arpTpa(a)}, goTo(TableL2Lookup))
		}
		e.add(TableARPResponder, prioMatch, openflow.Match{meta, openflow.EthType(ethARP), openflow.ARPOp(1), arpTpa(a)}, arpReply(mac, a)...)
	}
	// ND responder: a neighbour solicitation for a known IPv6 address is
	// answered the same way.
	if isRouterInterface(p) {
		routerND(e, p, meta, mac)
	} else {
		for _, a := range ipv6s(p) {
			if ofport != 0 {
				e.add(TableARPResponder, prioOwner, append(icmp6Type(135), openflow.Reg(RegInPort, ofport), openflow.NDTarget(a)), goTo(TableL2Lookup))
			}
			e.add(TableARPResponder, prioMatch, append(icmp6Type(135), meta, openflow.NDTarget(a)), ndAdvert(mac, a)...)
		}
	}
	// Next hop entries for networks routed to from here.
	if len(c.netRouters[p.NetworkID]) > 0 && !isRouterInterface(p) {
		for _, a := range ipv4s(p) {
			e.add(TableNextHop, prioMatch, openflow.Match{meta, openflow.Reg(RegNextHop, ip4u32(a))},
				// Back to an earlier table: resubmit (goto_table only goes forward).
				openflow.SetField{Field: openflow.FieldEthDst, Value: slices.Clone(mac)}, openflow.Resubmit{Table: TableL2Lookup})
		}
		nextHop6Flows(e, p, meta, mac)
	}
}

// portMACs are the MACs a port receives on: its own and those of its
// allowed address pairs.
func portMACs(p *fsm.Port, mac net.HardwareAddr) []net.HardwareAddr {
	out := []net.HardwareAddr{mac}
	for _, ap := range p.AllowedAddressPairs {
		if m, err := net.ParseMAC(ap.MACAddress); err == nil && len(m) == 6 && !slices.ContainsFunc(out, func(x net.HardwareAddr) bool { return x.String() == m.String() }) {
			out = append(out, m)
		}
	}
	return out
}

// portSecured reports whether a port's traffic is filtered (port security
// and security groups).
func portSecured(p *fsm.Port) bool { return p.PortSecurityEnabled }

func (c *Compiler) localPortFlows(e *emitter, p *fsm.Port, key uint64, mac net.HardwareAddr, ofport uint32) {
	meta := netMeta(key)
	inPort := openflow.Reg(RegInPort, ofport)
	outPort := openflow.Reg(RegOutPort, ofport)
	classify := []openflow.Action{openflow.SetReg(RegInPort, ofport)}
	deliver := []openflow.Action{openflow.SetReg(RegOutPort, ofport)}
	if fwg := c.fwGroupOfLocalPort(p); fwg != 0 {
		// The port's firewall group (firewall.go).
		classify = append(classify, openflow.SetReg(RegFWVMEgress, fwg))
		deliver = append(deliver, openflow.SetReg(RegFWVMIngress, fwg))
		firewallVMPortFlows(e, ofport)
	}
	var output []openflow.Action
	w, isSub := c.subportOf(p)
	if pol := c.v.EffectiveQoSPolicy(p); pol != nil && !isSub {
		// QoS (qos.go): egress limit and DSCP on what the port sends,
		// ingress limit on what is delivered to it. A trunk's subports
		// share their parent's interface and get none (not built).
		var dscp *fsm.QoSRule
		classify, output, dscp = qosActions(pol, ofport, classify)
		if dscp != nil {
			for _, et := range []uint16{ethIPv4, ethIPv6} {
				e.add(TableClassify, prioQoSMark, openflow.Match{openflow.InPort(ofport), openflow.EthType(et)},
					append(append([]openflow.Action{openflow.SetUint(openflow.FieldIPDSCP, uint64(dscp.DSCPMark))}, classify...),
						writeNet(key), goTo(TablePortSecurity))...)
			}
		}
	}
	classify = append(classify, writeNet(key), goTo(TablePortSecurity))
	if isSub {
		// Tagged on its parent's interface (trunk.go); no DHCP from the
		// chassis agent, which tells ports apart by their in_port.
		subportFlows(e, w, ofport, classify)
	} else {
		e.add(TableClassify, prioMatch, openflow.Match{openflow.InPort(ofport)}, classify...)
		c.trunkParentFlows(e, p, ofport)
		c.dhcpPortFlows(e, p, inPort)
		e.add(TableOutput, prioMatch, openflow.Match{outPort}, append(output, openflow.Output{Port: ofport})...)
	}
	for _, m := range portMACs(p, mac) {
		e.add(TableL2Lookup, prioMatch, openflow.Match{meta, openflow.EthDst(m)},
			append(slices.Clone(deliver), goTo(TableFWIngress))...)
	}
	if !portSecured(p) {
		e.add(TablePortSecurity, prioMatch, openflow.Match{inPort}, goTo(TableARPResponder))
		e.add(TableIngressCT, prioLow, openflow.Match{outPort}, goTo(TableOutput))
		return
	}
	// Port security: the source MAC and IP must be the port's (or an
	// allowed address pair's); ARP must not lie about either.
	for _, sp := range sourcePairs(p, mac) {
		e.add(TablePortSecurity, prioMatch, openflow.Match{inPort, openflow.EthSrc(sp.mac), openflow.EthType(ethIPv4), openflow.IPv4Src(sp.prefix)}, goTo(TableEgressCT))
		e.add(TablePortSecurity, prioMatch, openflow.Match{inPort, openflow.EthSrc(sp.mac), openflow.EthType(ethARP),
			openflow.MatchField{Field: openflow.FieldARPSha, Value: slices.Clone(sp.mac)}, arpSpaPrefix(sp.prefix)}, goTo(TableEgressCT))
	}
	c.ipv6PortSecurity(e, p, mac, inPort)
	// DHCP discovery comes from 0.0.0.0.
	e.add(TablePortSecurity, prioMatch, openflow.Match{inPort, openflow.EthSrc(mac), openflow.EthType(ethIPv4), openflow.IPProto(17),
		openflow.IPv4Src(net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(32, 32)}), openflow.Exact(openflow.FieldUDPSrc, 68), openflow.Exact(openflow.FieldUDPDst, 67)}, goTo(TableEgressCT))

	// Security groups: IP to and from the port goes through conntrack in
	// the port's zone (its ofport); the first clause of every rule of the
	// port's groups names the port.
	for _, et := range []uint16{ethIPv4, ethIPv6} {
		e.add(TableIngressCT, prioMatch, openflow.Match{outPort, openflow.EthType(et)}, ctRecirc(RegOutPort, TableIngressACL))
	}
	e.add(TableIngressCT, prioLow, openflow.Match{outPort}, goTo(TableOutput))
	var egress, ingress []openflow.Action
	for _, sg := range p.SecurityGroups {
		for _, r := range c.v.RulesOfSecurityGroup(sg) {
			if _, ok := ruleMatches(r); !ok || ConjID(r) == 0 {
				continue
			}
			cj := openflow.Conjunction{ID: ConjID(r), Clause: 1, NClauses: 2}
			if r.Direction == fsm.DirectionEgress {
				egress = append(egress, cj)
			} else {
				ingress = append(ingress, cj)
			}
		}
	}
	if len(egress) > 0 {
		e.add(TableEgressACL, prioMatch, openflow.Match{inPort}, sortConj(egress)...)
	}
	if len(ingress) > 0 {
		e.add(TableIngressACL, prioMatch, openflow.Match{outPort}, sortConj(ingress)...)
	}
}

// ipv6PortSecurity admits IPv6 from the port's MAC and addresses (fixed
// IPv6 addresses, the MAC's EUI-64 link-local address, IPv6 allowed
// address pairs) and checks neighbour discovery: a solicitation's source
// link-layer address and an advertisement's target and target link-layer
// address must be the port's (or zero: no option); a duplicate address
// probe comes from ::, a router solicitation may come from :: too.
func (c *Compiler) ipv6PortSecurity(e *emitter, p *fsm.Port, mac net.HardwareAddr, inPort openflow.MatchField) {
	var zero net.HardwareAddr = make([]byte, 6)
	pairs := sourcePairs6(p, mac)
	for _, sp := range pairs {
		e.add(TablePortSecurity, prioMatch, openflow.Match{inPort, openflow.EthSrc(sp.mac), openflow.EthType(ethIPv6), openflow.IPv6Src(sp.prefix)}, goTo(TableEgressCT))
	}
	unspec := sourcePair6{mac: mac, prefix: netip.PrefixFrom(netip.IPv6Unspecified(), 128)}
	for _, sp := range append(slices.Clone(pairs), unspec) {
		for _, ll := range []net.HardwareAddr{sp.mac, zero} {
			e.add(TablePortSecurity, prioNDCheck, append(icmp6Type(135), inPort, openflow.EthSrc(sp.mac), openflow.IPv6Src(sp.prefix), openflow.NDSLL(ll)), goTo(TableEgressCT))
		}
	}
	for _, sp := range pairs {
		target := openflow.NDTargetPrefix(sp.prefix)
		for _, ll := range []net.HardwareAddr{sp.mac, zero} {
			e.add(TablePortSecurity, prioNDCheck, append(icmp6Type(136), inPort, openflow.EthSrc(sp.mac), target, openflow.NDTLL(ll)), goTo(TableEgressCT))
		}
	}
	e.add(TablePortSecurity, prioNDCheck, append(icmp6Type(133), inPort, openflow.EthSrc(mac)), goTo(TableEgressCT))
	for _, t := range []uint8{135, 136} {
		e.add(TablePortSecurity, prioNDDrop, append(icmp6Type(t), inPort))
	}
}

// sourcePair6 is a (MAC, IPv6 prefix) a port may send from.
type sourcePair6 struct {
	mac    net.HardwareAddr
	prefix netip.Prefix
}

func sourcePairs6(p *fsm.Port, mac net.HardwareAddr) []sourcePair6 {
	var out []sourcePair6
	seen := map[string]bool{}
	add := func(m net.HardwareAddr, pfx netip.Prefix) {
		if !pfx.Addr().Is6() || pfx.Addr().Is4In6() {
			return
		}
		k := m.String() + "|" + pfx.String()
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, sourcePair6{mac: m, prefix: pfx})
	}
	for _, a := range ipv6s(p) {
		add(mac, netip.PrefixFrom(a, 128))
	}
	add(mac, netip.PrefixFrom(linkLocal(mac), 128))
	for _, ap := range p.AllowedAddressPairs {
		m := mac
		if ap.MACAddress != "" {
			pm, err := net.ParseMAC(ap.MACAddress)
			if err != nil || len(pm) != 6 {
				continue
			}
			m = pm
		}
		if pfx, ok := parsePrefix(ap.IPAddress); ok {
			add(m, pfx.Masked())
		}
	}
	return out
}

// sourcePair is a (MAC, IPv4 prefix) a port may send from.
type sourcePair struct {
	mac    net.HardwareAddr
	prefix net.IPNet
}

func sourcePairs(p *fsm.Port, mac net.HardwareAddr) []sourcePair {
	var out []sourcePair
	seen := map[string]bool{}
	addPair := func(m net.HardwareAddr, pfx netip.Prefix) {
		if !pfx.Addr().Is4() {
			return
		}
		k := m.String() + "|" + pfx.String()
		if seen[k] {
			return
		}
		seen[k] = true
		out = append(out, sourcePair{mac: m, prefix: ipNet(pfx)})
	}
	for _, a := range ipv4s(p) {
		addPair(mac, netip.PrefixFrom(a, 32))
	}
	for _, ap := range p.AllowedAddressPairs {
		m := mac
		if ap.MACAddress != "" {
			pm, err := net.ParseMAC(ap.MACAddress)
			if err != nil || len(pm) != 6 {
				continue
			}
			m = pm
		}
		if pfx, ok := parsePrefix(ap.IPAddress); ok {
			addPair(m, pfx.Masked())
		}
	}
	return out
}

// parsePrefix parses "a.b.c.d" or "a.b.c.d/n".
func parsePrefix(s string) (netip.Prefix, bool) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx, true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func arpTpa(a netip.Addr) openflow.MatchField { return openflow.ARPTpa(net.IP(a.AsSlice())) }

func arpSpaPrefix(p net.IPNet) openflow.MatchField {
	m := openflow.ARPSpa(p.IP)
	if ones, bits := p.Mask.Size(); ones != bits {
		m.Mask = slices.Clone([]byte(p.Mask))
	}
	return m
}

func ip4u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// arpReply turns an ARP request for ip into the reply from mac, sent back
// out of the port it came in on.
func arpReply(mac net.HardwareAddr, ip netip.Addr) []openflow.Action {
	return []openflow.Action{
		move(openflow.FieldEthSrc, openflow.FieldEthDst),
		openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(mac)},
		openflow.SetField{Field: openflow.FieldARPOp, Value: []byte{0, 2}},
		move(openflow.FieldARPSha, openflow.FieldARPTha),
		openflow.SetField{Field: openflow.FieldARPSha, Value: slices.Clone(mac)},
		move(openflow.FieldARPSpa, openflow.FieldARPTpa),
		openflow.SetField{Field: openflow.FieldARPSpa, Value: ip.AsSlice()},
		goTo(TableInPortReply),
	}
}

// ndAdvert turns a neighbour solicitation for ip into the solicited
// advertisement from mac (flags solicited and override, the source
// link-layer address option turned into the target one), finished by
// table 31 and sent back out of the port it came in on. The solicitation
// came from a host with an address (DAD probes from :: are not answered),
// so the advertisement goes to the solicitor's address and MAC.
func ndAdvert(mac net.HardwareAddr, ip netip.Addr) []openflow.Action {
	return ndAdvertFlags(mac, ip, ndFlagsSolicitedOverride)
}

// ndAdvertFlags is ndAdvert with the advertisement's flags word.
func ndAdvertFlags(mac net.HardwareAddr, ip netip.Addr, flags uint64) []openflow.Action {
	return []openflow.Action{
		move(openflow.FieldEthSrc, openflow.FieldEthDst),
		openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(mac)},
		move(openflow.FieldIPv6Src, openflow.FieldIPv6Dst),
		openflow.SetIP(openflow.FieldIPv6Src, ip),
		openflow.SetUint(openflow.FieldICMPv6Type, 136),
		openflow.SetUint(openflow.FieldNDReserved, flags),
		openflow.SetUint(openflow.FieldNDOptionsType, 2),
		goTo(TableNDReply),
	}
}

// ndFlagsSolicitedOverride are the S and O flags of a neighbour
// advertisement in its reserved word.
const ndFlagsSolicitedOverride = 0x60000000

// networkFlows: tunnel classify and flooding, on chassis with a local port
// of the network.
func (c *Compiler) networkFlows(e *emitter, n *fsm.Network) {
	if n == nil {
		return
	}
	ln, mapped := c.localnetOf(n)
	local := len(c.localNet[n.ID]) > 0
	if !local && !mapped && !c.presentNet[n.ID] {
		return
	}
	key := NetworkKey(n)
	if key == 0 {
		return
	}
	seg := uint64(uint32(n.SegmentationID))
	tun := c.f.Tunnels[n.NetworkType]
	if tun != 0 {
		// Routed to from here (present) is enough to receive: the gateway
		// chassis of a router gets its networks' packets that leave
		// through it.
		e.add(TableClassify, prioMatch, openflow.Match{openflow.InPort(tun), openflow.TunID(seg)},
			openflow.SetReg(RegFlags, FlagFromTunnel), writeNet(key), goTo(TableL2Lookup))
	}
	if !local && !mapped {
		return
	}
	if mapped {
		c.localnetFlows(e, n, key, ln)
	}
	meta := netMeta(key)
	localOut := c.localOutputs(n.ID)
	flood := slices.Clone(localOut)
	if tun != 0 {
		var ips []net.IP
		for _, name := range c.remoteChassisOf(n) {
			ips = append(ips, tunnelIP(c.v.Chassis(name)))
		}
		if len(ips) > 0 {
			flood = append(flood, openflow.SetTunID(seg))
			for _, ip := range ips {
				flood = append(flood, setTunDst(ip), openflow.Output{Port: tun})
			}
		}
	}
	if mapped {
		flood = append(flood, ln.out(ln.ofport)...)
	}
	// Broadcast, multicast and unknown unicast: from a tunnel (or the
	// localnet port) to the local ports only; from a local port also to
	// every other chassis with a port on the network (or the localnet
	// port).
	e.add(TableL2Lookup, prioFromTun, openflow.Match{meta, matchFromTunnel, matchMulticast}, localOut...)
	e.add(TableL2Lookup, prioMatch, openflow.Match{meta, matchMulticast}, flood...)
	e.add(TableL2Lookup, prioUnknown, openflow.Match{meta, matchFromTunnel}, localOut...)
	e.add(TableL2Lookup, prioUnknown-1, openflow.Match{meta}, flood...)
}

// remoteChassisOf lists, sorted, the other chassis with a bound port of
// the network that this chassis can tunnel to with its encapsulation.
func (c *Compiler) remoteChassisOf(n *fsm.Network) []string {
	var out []string
	for _, p := range c.v.PortsOfNetwork(n.ID) {
		if c.localOfport(p) != 0 || !p.AdminStateUp || isRouterInterface(p) {
			continue
		}
		if ip, _ := c.remoteOf(p); ip == nil {
			continue
		}
		out = append(out, p.BindingHostID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// localOfport is the ofport a port is plugged on here, or 0.
func (c *Compiler) localOfport(p *fsm.Port) uint32 {
	if l, ok := c.local[p.ID]; ok {
		return l.ofport
	}
	return 0
}

// remoteOf returns the tunnel endpoint and local tunnel port through which
// a port bound to another chassis is reached, or nil.
func (c *Compiler) remoteOf(p *fsm.Port) (net.IP, uint32) {
	if !p.AdminStateUp || p.BindingHostID == "" || p.BindingHostID == c.f.Chassis || isRouterInterface(p) {
		return nil, 0
	}
	n := c.v.Network(p.NetworkID)
	if n == nil {
		return nil, 0
	}
	tun := c.f.Tunnels[n.NetworkType]
	ch := c.v.Chassis(p.BindingHostID)
	if tun == 0 || ch == nil || !supports(ch, n.NetworkType) {
		return nil, 0
	}
	ip := tunnelIP(ch)
	if ip == nil {
		return nil, 0
	}
	return ip, tun
}

func setTunDst(ip net.IP) openflow.SetField {
	return openflow.SetField{Field: openflow.FieldTunDst, Value: slices.Clone(ip.To4())}
}

// tunnelIP is a chassis' IPv4 tunnel endpoint, or nil.
func tunnelIP(c *fsm.Chassis) net.IP {
	if c == nil {
		return nil
	}
	ip := net.ParseIP(c.TunnelIP)
	if ip == nil || ip.To4() == nil {
		return nil
	}
	return ip.To4()
}

// supports says whether a chassis announced the encapsulation; one that
// announced none is taken to support every one.
func supports(c *fsm.Chassis, encap string) bool {
	return len(c.Encaps) == 0 || slices.Contains(c.Encaps, encap)
}
