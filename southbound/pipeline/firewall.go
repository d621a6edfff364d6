package pipeline

import (
	"net"
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Firewall groups (Neutron FWaaS v2) on router interface ports and VM
// ports.
//
// A router interface port's group applies its egress policy to what enters
// the router through the port (from the port's subnet) and its ingress
// policy to what leaves the router through it (into the subnet), as
// neutron-fwaas' L3 driver does (-i / -o of the router's qr- device). A VM
// port's group applies its ingress policy to what is delivered to the VM
// and its egress policy to what the VM sends, as neutron-fwaas' L2 (OVS)
// driver does (since its commit 66d4431f9: ingress rules in the table that
// outputs to the port).
//
// The router is distributed, and the two directions of a routed connection
// are routed on different chassis (each by the chassis of its sender), so a
// stateful firewall in the routing stage would see only one direction per
// chassis. The firewall therefore runs at the edge, on the chassis of the
// VM (or service) port a packet comes from or goes to: that chassis sees
// both directions of every connection of its ports.
//
//   - Egress side (tables 32, 33, 34): a packet from a local port goes
//     through conntrack (in the port's firewall zone) when it is routed by a
//     router interface in a group (table 30's default: metadata + dl_dst =
//     the interface MAC; RegFWGroup = that group's Key) or when its port is
//     in a group (reg6; RegFWVMEgress = that group's Key, set by the
//     port's classify flow in table 0). Table 33 passes established and
//     related packets, then applies the router interface group's egress
//     policy (its enabled rules in order at prioFWRule - position: first
//     match wins; then the implicit deny); what it allows goes on to table
//     34, which applies the VM port group's egress policy the same way and
//     commits what it allows. A packet must pass both groups and is
//     committed once.
//   - Ingress side (tables 47, 48, 49): a packet delivered to a local port
//     (table 40, which sets RegFWVMIngress for a port in a group) is
//     classified the same way by its source MAC (a router interface:
//     routed into the subnet, here or on another chassis, floating IP
//     traffic from outside included) or by its port (reg7); table 48 holds
//     the router interface group's ingress policy, table 49 the VM port
//     group's.
//
// The firewall zone of a port is FirewallZoneBase | its ofport, separate
// from its security group zone (its ofport): a packet must pass both, and a
// connection one of them refuses is committed by neither.
//
// Reject sends the packet to the chassis agent (controller(id=
// ChassisControllerID)); the agent answers a TCP RST or an ICMP(v6) port
// unreachable (southbound/dhcp's responder, reject.go): back out of the
// port on the egress side, back through the pipeline toward the sender on
// the ingress side.

// FirewallZoneBase is the first conntrack zone of the firewall stage: a
// port's firewall zone is FirewallZoneBase | its ofport (ofports below
// 0x7000, so the zone stays under the router zones).
const FirewallZoneBase = 0x8000

// Priorities of the firewall tables.
const (
	prioFWInvalid  = 65100 // +inv: drop
	prioFWState    = 65000 // established / related: pass
	prioFWRule     = 60000 // minus the rule's position in its policy
	prioFWDeny     = 1     // the group's implicit deny
	prioFWND       = 110   // neighbour discovery: not tracked, passes
	prioFWClassify = 100
	prioFWVM       = 90 // a VM port's classify flow, below its router's
	// maxFWRules is the number of rules of a policy the tables can order;
	// rules past it are not compiled (the implicit deny applies).
	maxFWRules = prioFWRule - prioFWDeny - 1
)

// fwSide is one direction of the firewall stage.
type fwSide struct {
	classify, acl, vmACL, next uint8
	macField                   openflow.Field // the router interface MAC: dl_dst or dl_src
	portReg                    int            // the local port: RegInPort or RegOutPort
	vmReg                      int            // the VM port's group: RegFWVMEgress or RegFWVMIngress
}

var (
	fwEgress  = fwSide{TableFWEgress, TableFWEgressACL, TableFWVMEgress, TableL2Lookup, openflow.FieldEthDst, RegInPort, RegFWVMEgress}
	fwIngress = fwSide{TableFWIngress, TableFWIngressACL, TableFWVMIngress, TableIngressCT, openflow.FieldEthSrc, RegOutPort, RegFWVMIngress}
)

// fwZone is the firewall zone, from RegFWZone.
func fwZone() openflow.Subfield { return openflow.Bits(openflow.FieldReg(RegFWZone), 0, 16) }

// fwEnforced returns the policy ids a group enforces (ingress, egress; ""
// for none), or false when it enforces nothing: admin down, or no policy.
func fwEnforced(g *fsm.FirewallGroup) (ingress, egress string, ok bool) {
	if g == nil || !g.AdminStateUp || g.Key == 0 || g.Key > 0xffff {
		return "", "", false
	}
	return g.IngressPolicyID, g.EgressPolicyID, g.IngressPolicyID != "" || g.EgressPolicyID != ""
}

// firewallPipelineFlows are the firewall tables' fixed flows.
func firewallPipelineFlows(e *emitter) {
	for _, s := range []fwSide{fwEgress, fwIngress} {
		// Not classified (no firewall on the router port or the VM port,
		// not routed): on to the next stage.
		e.add(s.classify, prioDefault, nil, goTo(s.next))
		// Neighbour discovery is not tracked by conntrack (+inv).
		for _, t := range []uint8{133, 134, 135, 136} {
			e.add(s.classify, prioFWND, icmp6Type(t), goTo(s.next))
		}
		e.add(s.acl, prioDefault, nil)
		e.add(s.acl, prioFWInvalid, openflow.Match{openflow.CtState(openflow.CtInv|openflow.CtTrk, openflow.CtInv|openflow.CtTrk)})
		e.add(s.acl, prioFWState, openflow.Match{openflow.CtState(openflow.CtEst|openflow.CtTrk, openflow.CtNew|openflow.CtEst|openflow.CtInv|openflow.CtTrk)}, goTo(s.next))
		e.add(s.acl, prioFWState, openflow.Match{openflow.CtState(openflow.CtRel|openflow.CtTrk, openflow.CtNew|openflow.CtRel|openflow.CtInv|openflow.CtTrk)}, goTo(s.next))
		// Classified by the VM port only: no router interface group.
		e.add(s.acl, prioFWDeny, openflow.Match{openflow.Reg(RegFWGroup, 0)}, goTo(s.vmACL))
		// The VM port's group: none, the router interface group allowed
		// the packet: commit (ct needs the IP ethertype in the match).
		e.add(s.vmACL, prioDefault, nil)
		for _, et := range []uint16{ethIPv4, ethIPv6} {
			e.add(s.vmACL, prioFWDeny, openflow.Match{openflow.Reg(s.vmReg, 0), openflow.EthType(et)},
				openflow.CT{Commit: true, ZoneSrc: fwZone()}, goTo(s.next))
		}
	}
}

// fwGroupOfLocalPort returns the Key of the enforced firewall group of a
// local VM port, or 0.
func (c *Compiler) fwGroupOfLocalPort(p *fsm.Port) uint32 {
	g := c.v.FirewallGroupOfPort(p.ID)
	if _, _, ok := fwEnforced(g); !ok || isRouterInterface(p) {
		return 0
	}
	return g.Key
}

// firewallVMPortFlows classifies what local VM port p (at ofport) sends
// and receives into its group's policies (tables 32, 47); its classify
// (table 0) and L2 (table 40) flows set the group's Key (RegFWVMEgress,
// RegFWVMIngress). The port's part of the firewall, compiled with it, so a
// port never carries traffic without its firewall.
func firewallVMPortFlows(e *emitter, ofport uint32) {
	for _, s := range []fwSide{fwEgress, fwIngress} {
		for _, et := range []uint16{ethIPv4, ethIPv6} {
			e.add(s.classify, prioFWVM, openflow.Match{openflow.Reg(s.portReg, ofport), openflow.EthType(et)},
				// A packet routed on this chassis may carry the router
				// interface group of its egress side.
				openflow.SetReg(RegFWGroup, 0),
				openflow.SetReg(RegFWZone, FirewallZoneBase|ofport),
				openflow.CT{ZoneSrc: fwZone(), Recirc: true, Table: s.acl})
		}
	}
}

// firewallPortFlows classifies the traffic routed through router interface
// port p (MAC mac, network metadata meta) into its group's policies: the
// interface's part of the firewall, compiled with the port.
func (c *Compiler) firewallPortFlows(e *emitter, p *fsm.Port, meta openflow.MatchField, mac net.HardwareAddr) {
	g := c.v.FirewallGroupOfPort(p.ID)
	if _, _, ok := fwEnforced(g); !ok {
		return
	}
	// Both sides even when one direction has no policy: that direction
	// allows all, statefully, so the replies to what it let through pass
	// the other direction's policy.
	for _, s := range []fwSide{fwEgress, fwIngress} {
		for _, et := range []uint16{ethIPv4, ethIPv6} {
			e.add(s.classify, prioFWClassify,
				openflow.Match{meta, openflow.MatchField{Field: s.macField, Value: slices.Clone(mac)}, openflow.EthType(et)},
				openflow.SetReg(RegFWGroup, g.Key),
				openflow.SetReg(RegFWZone, FirewallZoneBase),
				moveBits(openflow.FieldReg(s.portReg), 0, openflow.FieldReg(RegFWZone), 0, 15),
				openflow.CT{ZoneSrc: fwZone(), Recirc: true, Table: s.acl})
		}
	}
}

// firewallGroupPresent says whether a group has flows here: one of its
// ports is a router interface on a network present here (router) or a VM
// port plugged here (vm).
func (c *Compiler) firewallGroupPresent(g *fsm.FirewallGroup) (router, vm bool) {
	for _, id := range g.Ports {
		p := c.v.Port(id)
		switch {
		case p == nil:
		case isRouterInterface(p):
			router = router || c.presentNet[p.NetworkID]
		default:
			_, local := c.local[id]
			vm = vm || local
		}
	}
	return router, vm
}

// firewallGroupFlows compiles a group's policies into its ACL tables: the
// router interface tables (33, 48) where one of its router interfaces is
// present, the VM port tables (34, 49) where one of its VM ports is
// plugged.
func (c *Compiler) firewallGroupFlows(e *emitter, g *fsm.FirewallGroup) {
	ingress, egress, ok := fwEnforced(g)
	if !ok {
		return
	}
	router, vm := c.firewallGroupPresent(g)
	for _, side := range []struct {
		s      fwSide
		policy string
	}{{fwEgress, egress}, {fwIngress, ingress}} {
		s := side.s
		if router {
			// What the router interface group allows goes on to the VM
			// port's group, which commits it.
			c.firewallPolicyFlows(e, s.acl, openflow.Reg(RegFWGroup, g.Key), side.policy, []openflow.Action{goTo(s.vmACL)})
		}
		if vm {
			c.firewallPolicyFlows(e, s.vmACL, openflow.Reg(s.vmReg, g.Key), side.policy,
				[]openflow.Action{openflow.CT{Commit: true, ZoneSrc: fwZone()}, goTo(s.next)})
		}
	}
}

// firewallPolicyFlows compiles one direction's policy of a group (key:
// the group's register match) into an ACL table: its enabled rules in
// policy order, allow doing allow; then the implicit deny. Without a
// policy everything is allowed (priority prioFWDeny).
func (c *Compiler) firewallPolicyFlows(e *emitter, table uint8, key openflow.MatchField, policy string, allow []openflow.Action) {
	if policy == "" {
		// ct needs the IP ethertype in the match.
		for _, et := range []uint16{ethIPv4, ethIPv6} {
			e.add(table, prioFWDeny, openflow.Match{key, openflow.EthType(et)}, allow...)
		}
		return
	}
	// The implicit deny at the end of the policy.
	e.add(table, prioFWDeny, openflow.Match{key})
	pol := c.v.FirewallPolicy(policy)
	if pol == nil {
		return
	}
	for i, id := range pol.Rules {
		if i >= maxFWRules {
			break
		}
		r := c.v.FirewallRule(id)
		if r == nil || !r.Enabled {
			continue
		}
		var acts []openflow.Action
		switch r.Action {
		case fsm.FirewallAllow:
			acts = allow
		case fsm.FirewallReject:
			acts = []openflow.Action{openflow.Controller{ID: ChassisControllerID}}
		default: // deny: drop
		}
		prio := uint16(prioFWRule - i)
		for _, m := range firewallRuleMatches(r) {
			e.add(table, prio, append(openflow.Match{key}, m...), acts...)
		}
	}
}

// firewallRuleMatches returns the matches of a rule's traffic: ethertype,
// protocol, addresses and port ranges (the cross product of the source and
// destination ranges' masked matches). None for a rule this pipeline cannot
// express (it then matches nothing and the policy goes on).
func firewallRuleMatches(r *fsm.FirewallRule) []openflow.Match {
	v6 := r.IPVersion == 6
	base := openflow.Match{openflow.EthType(ethIPv4)}
	if v6 {
		base = openflow.Match{openflow.EthType(ethIPv6)}
	}
	for _, a := range []struct {
		s   string
		src bool
	}{{r.SourceIP, true}, {r.DestinationIP, false}} {
		if a.s == "" {
			continue
		}
		pfx, ok := parsePrefix(a.s)
		if !ok || pfx.Addr().Is6() != v6 {
			return nil
		}
		pfx = pfx.Masked()
		if pfx.Bits() == 0 {
			continue
		}
		switch {
		case !v6 && a.src:
			base = append(base, openflow.IPv4Src(ipNet(pfx)))
		case !v6:
			base = append(base, openflow.IPv4Dst(ipNet(pfx)))
		case a.src:
			base = append(base, openflow.IPv6Src(pfx))
		default:
			base = append(base, openflow.IPv6Dst(pfx))
		}
	}
	var proto uint8
	switch r.Protocol {
	case "":
		return []openflow.Match{base}
	case fsm.FirewallProtoTCP:
		proto = 6
	case fsm.FirewallProtoUDP:
		proto = 17
	case fsm.FirewallProtoICMP:
		proto = 1
		if v6 {
			proto = 58
		}
		return []openflow.Match{append(base, openflow.IPProto(proto))}
	default:
		return nil
	}
	base = append(base, openflow.IPProto(proto))
	srcField, dstField := openflow.FieldTCPSrc, openflow.FieldTCPDst
	if proto == 17 {
		srcField, dstField = openflow.FieldUDPSrc, openflow.FieldUDPDst
	}
	srcs, ok := portRangeMatches(srcField, r.SourcePortMin, r.SourcePortMax)
	if !ok {
		return nil
	}
	dsts, ok := portRangeMatches(dstField, r.DestinationPortMin, r.DestinationPortMax)
	if !ok {
		return nil
	}
	var out []openflow.Match
	for _, s := range srcs {
		for _, d := range dsts {
			m := slices.Clone(base)
			if s.Field != 0 {
				m = append(m, s)
			}
			if d.Field != 0 {
				m = append(m, d)
			}
			out = append(out, m)
		}
	}
	return out
}

// portRangeMatches covers [lo, hi] with masked matches of field; one empty
// match for any port (0,0 or the whole range).
func portRangeMatches(field openflow.Field, lo, hi int) ([]openflow.MatchField, bool) {
	if lo == 0 && hi == 0 {
		return []openflow.MatchField{{}}, true
	}
	if hi == 0 {
		hi = lo
	}
	if lo < 0 || hi > 65535 || lo > hi {
		return nil, false
	}
	if lo == 0 && hi == 65535 {
		return []openflow.MatchField{{}}, true
	}
	var out []openflow.MatchField
	for _, pm := range portMasks(uint16(lo), uint16(hi)) {
		out = append(out, openflow.Masked(field, uint64(pm.value), uint64(pm.mask)))
	}
	return out, true
}

// firewallChanged marks the units an FWaaS object's change touches: a
// group's own unit and its router interface ports (classify flows), for
// the group itself or the groups using a changed policy or rule, before
// and after the change.
func (c *Compiler) firewallChanged(d *dirty, table, id string) {
	groups := map[string]bool{}
	for _, view := range []*fsm.View{c.prev, c.v} {
		switch table {
		case fsm.TableFWGroups:
			groups[id] = true
		case fsm.TableFWPolicies:
			for _, g := range view.FirewallGroupsOfPolicy(id) {
				groups[g.ID] = true
			}
		case fsm.TableFWRules:
			for _, p := range view.FirewallPoliciesOfRule(id) {
				for _, g := range view.FirewallGroupsOfPolicy(p.ID) {
					groups[g.ID] = true
				}
			}
		}
	}
	for gid := range groups {
		d.units[unit{KindFirewall, gid}] = true
		if table != fsm.TableFWGroups {
			continue // the ports' classify flows depend on the group only
		}
		for _, view := range []*fsm.View{c.prev, c.v} {
			if g := view.FirewallGroup(gid); g != nil {
				for _, p := range g.Ports {
					d.units[unit{KindPort, p}] = true
				}
			}
		}
	}
}

// markFirewallOfPort marks the group unit of a router interface port (its
// presence depends on the port's network).
func (c *Compiler) markFirewallOfPort(d *dirty, id string) {
	for _, view := range []*fsm.View{c.prev, c.v} {
		if view == nil {
			continue
		}
		if g := view.FirewallGroupOfPort(id); g != nil {
			d.units[unit{KindFirewall, g.ID}] = true
		}
	}
}
