package pipeline

import (
	"net"
	"net/netip"
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Provider networks and the way out.
//
// A flat or VLAN network is carried on a chassis that maps its physical
// network (Facts.Physnets: the patch port toward the bridge mapped to it,
// its "localnet" port). Packets from the localnet port are classified by
// VLAN tag and delivered locally only (the physical network delivered
// them to every chassis); flooding from a local port goes to local ports
// and the localnet port, never to a tunnel.
//
// A router's external gateway is its gateway port on an external network.
// The port is bound to one gateway chassis (the FSM chooses it from the
// router's priority list). That chassis answers ARP for the gateway
// address, un-SNATs (table 46) and SNATs (table 51) with conntrack in the
// router's zone. Every other chassis where the router is present sends a
// packet that leaves through the gateway unrouted (TTL, MACs untouched)
// over the tunnel of its network to the gateway chassis, which routes it
// as if it came from a local port.
//
// A floating IP is 1:1 stateless NAT: on the chassis of its port when that
// chassis maps the external network (distributed), else on the gateway
// chassis. That chassis answers ARP for the floating address with the
// floating IP port's MAC, rewrites the destination (table 46) and the
// source (table 51).

// Priorities of the external stages.
const (
	prioLocalnetARP = 105 // ARP/ND from the localnet port: not proxied
	prioExternalARP = 108 // ARP for an address served here
	prioFIP         = 200 // table 51: a floating IP's source
	prioSNAT        = 100 // table 51: SNAT from a router subnet / redirect
	prioNoSNAT      = 90  // table 51: leave through the gateway unchanged
	prioEchoExt     = 301 // ICMP echo to the gateway address from outside
	prioMissNextHop = 1   // table 55: next hop unknown on an external network
)

// Conntrack zones: a port's zone is its ofport (1 to MaxPortZone; a port
// plugged at a higher ofport gets no flows, so no zone is shared); a
// router's SNAT zone is one per router key: ZoneRouterBase + key - 1
// (0xf000-0xfeff) for keys 1-0xf00, then ZoneRouterBase2 + key - 0xf01
// (0x7000-0x7fff) up to fsm.MaxRouterKey (7936). 0x8000-0xefff stay free
// for zones derived from ofports (the firewall's 0x8000 | ofport).
const (
	ZoneRouterBase  = 0xf000
	ZoneRouterBase2 = 0x7000
	// MaxPortZone is the largest ofport (and so conntrack zone) a local
	// port may have.
	MaxPortZone = 0x6fff
)

// RouterZone is the conntrack zone of a router's SNAT, 0 for a router
// without a key.
func RouterZone(r *fsm.Router) uint16 {
	k := RouterKey(r)
	switch {
	case k == 0 || k > fsm.MaxRouterKey:
		return 0
	case k <= 0xf00:
		return uint16(ZoneRouterBase + k - 1)
	}
	return uint16(ZoneRouterBase2 + k - 0xf01)
}

// localnet is how a provider network leaves this chassis.
type localnet struct {
	ofport uint32
	vlan   uint16 // 0: untagged
}

// localnetOf returns the localnet port of a provider network on this
// chassis.
func (c *Compiler) localnetOf(n *fsm.Network) (localnet, bool) {
	if n == nil || (n.NetworkType != fsm.NetTypeFlat && n.NetworkType != fsm.NetTypeVLAN) || n.PhysicalNetwork == "" {
		return localnet{}, false
	}
	of := c.f.Physnets[n.PhysicalNetwork]
	if of == 0 {
		return localnet{}, false
	}
	ln := localnet{ofport: of}
	if n.NetworkType == fsm.NetTypeVLAN {
		if n.SegmentationID < 1 || n.SegmentationID > 4094 {
			return localnet{}, false
		}
		ln.vlan = uint16(n.SegmentationID)
	}
	return ln, true
}

// out sends the packet out of the localnet port (tagged for VLAN). It
// comes last in an action list: the tag stays on the packet.
func (ln localnet) out(port uint32) []openflow.Action {
	if ln.vlan == 0 {
		return []openflow.Action{openflow.Output{Port: port}}
	}
	return []openflow.Action{openflow.PushVLAN{EtherType: 0x8100},
		openflow.SetUint(openflow.FieldVlanVID, uint64(ln.vlan)|0x1000), openflow.Output{Port: port}}
}

// localnetFlows are a provider network's flows on a chassis that maps its
// physical network: classify from the localnet port, no proxy ARP for
// packets from it, output to it (table 65, back out of IN_PORT when it
// came from there), and, on an external network, next hops learned by ARP
// (MAC bindings) or a packet-in when none is known.
func (c *Compiler) localnetFlows(e *emitter, n *fsm.Network, key uint64, ln localnet) {
	meta := netMeta(key)
	in := openflow.Match{openflow.InPort(ln.ofport), openflow.Exact(openflow.FieldVlanVID, 0)}
	var classify []openflow.Action
	if ln.vlan != 0 {
		in = openflow.Match{openflow.InPort(ln.ofport), openflow.VlanVID(ln.vlan)}
		classify = append(classify, openflow.PopVLAN{})
	}
	classify = append(classify, openflow.SetReg(RegFlags, FlagFromTunnel), writeNet(key), goTo(TableARPResponder))
	e.add(TableClassify, prioMatch, in, classify...)
	// ARP and ND from the physical network are answered only for addresses
	// served here (router unit, higher priority), never by proxy.
	e.add(TableARPResponder, prioLocalnetARP, openflow.Match{meta, matchFromTunnel}, goTo(TableL2Lookup))
	out := openflow.Reg(RegOutPort, ln.ofport)
	e.add(TableOutput, prioFromTun, openflow.Match{out, meta, openflow.InPort(ln.ofport)}, ln.out(openflow.PortInPort)...)
	e.add(TableOutput, prioMatch, openflow.Match{out, meta}, ln.out(ln.ofport)...)
	if !n.External {
		return
	}
	for _, mb := range c.v.MacBindingsOfNetwork(n.ID) {
		a, err := netip.ParseAddr(mb.IP)
		mac, merr := net.ParseMAC(mb.MAC)
		if err != nil || !a.Is4() || merr != nil || len(mac) != 6 {
			continue
		}
		e.add(TableNextHop, prioMatch, openflow.Match{meta, openflow.Reg(RegNextHop, ip4u32(a))},
			openflow.SetField{Field: openflow.FieldEthDst, Value: slices.Clone(mac)}, openflow.Resubmit{Table: TableL2Lookup})
	}
	// Unknown next hop: the leader ARPs for it (the packet is lost).
	e.add(TableNextHop, prioMissNextHop, openflow.Match{meta}, openflow.Output{Port: openflow.PortController})
}

// extGateway is a router's external gateway as this chassis compiles it.
type extGateway struct {
	port    *fsm.Port
	net     *fsm.Network
	key     uint64
	mac     net.HardwareAddr
	ip      netip.Addr   // the gateway address
	subnet  netip.Prefix // its subnet
	nexthop netip.Addr   // the subnet's gateway_ip (invalid: none)
	snat    bool
	chassis string // the active gateway chassis ("" unbound)
	ln      localnet
	mapped  bool // this chassis maps the external network
}

// gatewayOf returns a router's external gateway, or false.
func (c *Compiler) gatewayOf(r *fsm.Router) (extGateway, bool) {
	if r == nil || r.Gateway == nil {
		return extGateway{}, false
	}
	gp := c.v.RouterGatewayPort(r.ID)
	if gp == nil {
		return extGateway{}, false
	}
	n := c.v.Network(gp.NetworkID)
	key := NetworkKey(n)
	mac, err := net.ParseMAC(gp.MACAddress)
	if key == 0 || err != nil || len(mac) != 6 {
		return extGateway{}, false
	}
	g := extGateway{port: gp, net: n, key: key, mac: mac, snat: r.Gateway.EnableSNAT, chassis: gp.BindingHostID}
	for _, f := range gp.FixedIPs {
		a, err := netip.ParseAddr(f.IPAddress)
		s := c.v.Subnet(f.SubnetID)
		if err != nil || !a.Is4() || s == nil || !s.Prefix().Contains(a) {
			continue
		}
		g.ip, g.subnet = a, s.Prefix().Masked()
		if nh, err := netip.ParseAddr(s.GatewayIP); err == nil && nh.Is4() {
			g.nexthop = nh
		}
		break
	}
	if !g.ip.IsValid() {
		return extGateway{}, false
	}
	g.ln, g.mapped = c.localnetOf(n)
	return g, true
}

// here reports whether this chassis is the router's active gateway and can
// reach the external network.
func (g extGateway) here(chassis string) bool { return g.chassis == chassis && g.mapped }

// gwHere reports whether the router's gateway port is bound to this
// chassis (which makes the router present here).
func (c *Compiler) gwHere(routerID string) bool {
	gp := c.v.RouterGatewayPort(routerID)
	return gp != nil && gp.BindingHostID != "" && gp.BindingHostID == c.f.Chassis
}

// fipServer is the chassis that does a floating IP's NAT: its port's
// chassis when that chassis maps the external network (distributed), else
// the router's gateway chassis.
func (c *Compiler) fipServer(port *fsm.Port, g extGateway) string {
	if port != nil && port.AdminStateUp && port.BindingHostID != "" {
		if ch := c.v.Chassis(port.BindingHostID); ch != nil && ch.BridgeMappings[g.net.PhysicalNetwork] != "" {
			return ch.Name
		}
	}
	return g.chassis
}

// floatingIP is one associated floating IP of a router.
type floatingIP struct {
	addr, fixed netip.Addr
	mac         net.HardwareAddr // the floating IP port's
	fixedKey    uint64           // the fixed address' network
	server      string
}

func (c *Compiler) floatingIPs(r *fsm.Router, g extGateway) []floatingIP {
	var out []floatingIP
	for _, f := range c.v.FloatingIPsOfRouter(r.ID) {
		if f.PortID == "" {
			continue
		}
		addr, err1 := netip.ParseAddr(f.FloatingIPAddress)
		fixed, err2 := netip.ParseAddr(f.FixedIPAddress)
		fp, vp := c.v.Port(f.FloatingPortID), c.v.Port(f.PortID)
		if err1 != nil || err2 != nil || !addr.Is4() || !fixed.Is4() || fp == nil || vp == nil {
			continue
		}
		mac, err := net.ParseMAC(fp.MACAddress)
		key := NetworkKey(c.v.Network(vp.NetworkID))
		if err != nil || len(mac) != 6 || key == 0 {
			continue
		}
		out = append(out, floatingIP{addr: addr, fixed: fixed, mac: mac, fixedKey: key, server: c.fipServer(vp, g)})
	}
	slices.SortFunc(out, func(a, b floatingIP) int { return a.addr.Compare(b.addr) })
	return out
}

// externalFlows are a router's flows for its external gateway: the routes
// through it (table 50), the way out (51) and in (40, 46), ARP for the
// addresses served here, ICMP echo to the gateway address.
func (c *Compiler) externalFlows(e *emitter, r *fsm.Router, ifaces []routerIface, seen map[netip.Prefix]bool) {
	g, ok := c.gatewayOf(r)
	if !ok {
		return
	}
	rkey := RouterKey(r)
	rk := openflow.Reg(RegRouter, rkey)
	ip4 := openflow.EthType(ethIPv4)
	extMeta := netMeta(g.key)

	// Routes through the gateway: its subnet, the default route via the
	// subnet's gateway, extra routes with a next hop on its subnet. Table
	// 51 decides what happens to them.
	if !seen[g.subnet] {
		seen[g.subnet] = true
		e.add(TableRouting, uint16(prioRoute+2*g.subnet.Bits()+1), openflow.Match{rk, ip4, openflow.IPv4Dst(ipNet(g.subnet))},
			move(openflow.FieldIPv4Dst, openflow.FieldReg(RegNextHop)), goTo(TableExternal))
	}
	for _, rt := range ipv4Routes(r) {
		dst, nh := rt.dst, rt.nextHop
		if !g.subnet.Contains(nh) {
			continue
		}
		if seen[dst] {
			continue
		}
		seen[dst] = true
		e.add(TableRouting, uint16(prioRoute+2*dst.Bits()), openflow.Match{rk, ip4, openflow.IPv4Dst(ipNet(dst))},
			openflow.SetReg(RegNextHop, ip4u32(nh)), goTo(TableExternal))
	}
	def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if g.nexthop.IsValid() && !seen[def] {
		seen[def] = true
		e.add(TableRouting, prioRoute, openflow.Match{rk, ip4}, openflow.SetReg(RegNextHop, ip4u32(g.nexthop)), goTo(TableExternal))
	}
	// ICMP echo to the gateway address: from the inside as any router
	// address (answered by the sender's chassis), from outside by the
	// gateway chassis, back out of the physical network.
	e.add(TableRouting, prioEcho, openflow.Match{rk, ip4, openflow.IPProto(1),
		openflow.IPv4Dst(ipNet(netip.PrefixFrom(g.ip, 32))), openflow.Exact(openflow.FieldICMPType, 8)}, echoReply(g.ip)...)

	here := g.here(c.f.Chassis)
	// Floating IPs served here.
	for _, f := range c.floatingIPs(r, g) {
		if f.server != c.f.Chassis || !g.mapped {
			continue
		}
		e.add(TableExternal, prioFIP, openflow.Match{rk, netMeta(f.fixedKey), ip4, openflow.IPv4Src(ipNet(netip.PrefixFrom(f.fixed, 32)))},
			openflow.DecTTL{}, openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(f.mac)},
			openflow.SetIP(openflow.FieldIPv4Src, f.addr), openflow.SetUint(openflow.FieldMetadata, g.key), goTo(TableNextHop))
		c.servedAddress(e, rkey, g, f.mac, f.addr)
		e.add(TableGatewayIn, prioMatch, openflow.Match{rk, ip4, openflow.IPv4Dst(ipNet(netip.PrefixFrom(f.addr, 32)))},
			openflow.SetIP(openflow.FieldIPv4Dst, f.fixed), goTo(TableRouting))
	}
	if here {
		c.servedAddress(e, rkey, g, g.mac, g.ip)
		zone := RouterZone(r)
		// Replies to SNATed connections: un-SNAT, then route.
		e.add(TableGatewayIn, prioMatch, openflow.Match{rk, ip4, openflow.IPv4Dst(ipNet(netip.PrefixFrom(g.ip, 32)))},
			openflow.CT{Zone: zone, Recirc: true, Table: TableRouting, Actions: []openflow.Action{openflow.NAT{Kind: openflow.NATExisting}}})
		e.add(TableRouting, prioEchoExt, openflow.Match{rk, extMeta, ip4, openflow.IPProto(1),
			openflow.IPv4Dst(ipNet(netip.PrefixFrom(g.ip, 32))), openflow.Exact(openflow.FieldICMPType, 8)},
			echoReplyTo(g.ip, g.ln.ofport)...)
		out := []openflow.Action{openflow.DecTTL{}, openflow.SetField{Field: openflow.FieldEthSrc, Value: slices.Clone(g.mac)},
			openflow.SetUint(openflow.FieldMetadata, g.key)}
		if g.snat {
			subnets := map[netip.Prefix]bool{}
			for _, ifc := range ifaces {
				if subnets[ifc.subnet] {
					continue
				}
				subnets[ifc.subnet] = true
				e.add(TableExternal, prioSNAT, openflow.Match{rk, ip4, openflow.IPv4Src(ipNet(ifc.subnet))},
					append(slices.Clone(out), openflow.CT{Commit: true, Zone: zone, Recirc: true, Table: TableNextHop,
						Actions: []openflow.Action{openflow.SNAT(g.ip)}})...)
			}
		}
		e.add(TableExternal, prioNoSNAT, openflow.Match{rk, ip4}, append(out, goTo(TableNextHop))...)
		// Packets the other chassis send here to leave through the
		// gateway arrive unrouted, to the router's MAC on their network.
		done := map[uint64]bool{}
		for _, ifc := range ifaces {
			if done[ifc.key] {
				continue
			}
			done[ifc.key] = true
			e.add(TableL2Lookup, prioMatch, openflow.Match{netMeta(ifc.key), matchFromTunnel, openflow.EthDst(ifc.mac)},
				openflow.SetReg(RegRouter, rkey), openflow.SetReg(RegFlags, 0), goTo(TableRouting))
		}
		return
	}
	// Elsewhere: send the packet, unrouted, to the gateway chassis over the
	// tunnel of its network.
	gw := c.v.Chassis(g.chassis)
	gwIP := tunnelIP(gw)
	if gw == nil || !gw.Up || gwIP == nil {
		return
	}
	done := map[uint64]bool{}
	for _, ifc := range ifaces {
		n := c.v.Network(ifc.net)
		if n == nil || done[ifc.key] {
			continue
		}
		done[ifc.key] = true
		tun := c.f.Tunnels[n.NetworkType]
		if tun == 0 || !supports(gw, n.NetworkType) {
			continue
		}
		e.add(TableExternal, prioSNAT, openflow.Match{rk, netMeta(ifc.key)},
			openflow.SetTunID(uint64(uint32(ifc.key))), setTunDst(gwIP), openflow.Output{Port: tun})
	}
}

// servedAddress makes this chassis the owner of an external address: ARP
// requests for it are answered (and copied to the leader, which learns the
// asker's MAC), ARP replies to it go to the leader, and packets to its MAC
// enter the router at table 46.
func (c *Compiler) servedAddress(e *emitter, rkey uint32, g extGateway, mac net.HardwareAddr, a netip.Addr) {
	meta := netMeta(g.key)
	e.add(TableARPResponder, prioExternalARP, openflow.Match{meta, openflow.EthType(ethARP), openflow.ARPOp(1), arpTpa(a)},
		append([]openflow.Action{openflow.Output{Port: openflow.PortController}}, arpReplyTo(mac, a, g.ln.ofport)...)...)
	e.add(TableARPResponder, prioExternalARP, openflow.Match{meta, openflow.EthType(ethARP), openflow.ARPOp(2), arpTpa(a)},
		openflow.Output{Port: openflow.PortController})
	e.add(TableL2Lookup, prioMatch, openflow.Match{meta, openflow.EthDst(mac)},
		openflow.SetReg(RegRouter, rkey), openflow.SetReg(RegFlags, 0), goTo(TableGatewayIn))
}

// arpReplyTo is arpReply sent through the output table to the localnet
// port (which tags it and sends it back where it came from).
func arpReplyTo(mac net.HardwareAddr, ip netip.Addr, ofport uint32) []openflow.Action {
	acts := arpReply(mac, ip)
	return append(acts[:len(acts)-1], openflow.SetReg(RegOutPort, ofport), goTo(TableOutput))
}

// echoReplyTo is echoReply sent through the output table to the localnet
// port.
func echoReplyTo(ip netip.Addr, ofport uint32) []openflow.Action {
	acts := echoReply(ip)
	return append(acts[:len(acts)-1], openflow.SetReg(RegOutPort, ofport), goTo(TableOutput))
}

// Announcement is an external address a chassis serves: after it starts
// serving it, the leader announces it on the external network with a
// gratuitous ARP, so that the physical network's switches and the
// upstream router's ARP cache point at this chassis.
type Announcement struct {
	NetworkKey uint64
	MAC        net.HardwareAddr
	IP         netip.Addr
}

// Announcements lists, sorted, the external addresses chassis f.Chassis
// serves in state v: the gateway addresses of the routers whose active
// gateway it is, and the floating IPs it does the NAT of.
func Announcements(v *fsm.View, f Facts) []Announcement {
	c := &Compiler{v: v, f: f}
	var out []Announcement
	for _, r := range v.Routers() {
		if !r.AdminStateUp {
			continue
		}
		g, ok := c.gatewayOf(r)
		if !ok || !g.mapped {
			continue
		}
		if g.chassis == f.Chassis {
			out = append(out, Announcement{NetworkKey: g.key, MAC: g.mac, IP: g.ip})
		}
		for _, fip := range c.floatingIPs(r, g) {
			if fip.server == f.Chassis {
				out = append(out, Announcement{NetworkKey: g.key, MAC: fip.mac, IP: fip.addr})
			}
		}
	}
	slices.SortFunc(out, func(a, b Announcement) int { return a.IP.Compare(b.IP) })
	return out
}
