package pipeline

import (
	"net"
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Firewall groups (Neutron FWaaS v2) on router interface ports.
//
// A router interface port's group applies its egress policy to what enters
// the router through the port (from the port's subnet) and its ingress
// policy to what leaves the router through it (into the subnet), as
// neutron-fwaas' L3 driver does (-i / -o of the router's qr- device).
//
// The router is distributed, and the two directions of a routed connection
// are routed on different chassis (each by the chassis of its sender), so a
// stateful firewall in the routing stage would see only one direction per
// chassis. The firewall therefore runs at the edge, on the chassis of the
// VM (or service) port a routed packet comes from or goes to: that chassis
// sees both directions of every connection of its ports.
//
//   - Egress side (tables 32, 33): a packet from a local port to a router
//     interface MAC (table 30's default) is classified by the interface
//     (metadata + dl_dst): RegFWGroup = the group's Key, RegFWZone = the
//     port's firewall zone, ct(table=33). Table 33 passes established and
//     related packets, then the egress policy's enabled rules in order
//     (priority prioFWRule - position: first match wins), then the
//     implicit deny of the group. An allowed packet is committed.
//   - Ingress side (tables 47, 48): a packet delivered to a local port
//     (table 40) whose source MAC is a router interface MAC (routed into
//     the subnet, here or on another chassis, floating IP traffic from
//     outside included) is classified the same way by dl_src; table 48
//     holds the ingress policy.
//
// The firewall zone of a port is FirewallZoneBase | its ofport, separate
// from its security group zone (its ofport): a packet must pass both, and a
// connection one of them refuses is committed by neither.
//
// Reject sends the packet to the chassis agent (controller(id=
// ChassisControllerID)); the agent answers a TCP RST or an ICMP(v6) port
// unreachable (southbound/dhcp's responder, fwreject.go).

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
	// maxFWRules is the number of rules of a policy the tables can order;
	// rules past it are not compiled (the implicit deny applies).
	maxFWRules = prioFWRule - prioFWDeny - 1
)

// fwSide is one direction of the firewall stage.
type fwSide struct {
	classify, acl, next uint8
	macField            openflow.Field // the router interface MAC: dl_dst or dl_src
	portReg             int            // the local port: RegInPort or RegOutPort
}

var (
	fwEgress  = fwSide{TableFWEgress, TableFWEgressACL, TableL2Lookup, openflow.FieldEthDst, RegInPort}
	fwIngress = fwSide{TableFWIngress, TableFWIngressACL, TableIngressCT, openflow.FieldEthSrc, RegOutPort}
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
		// Not classified (no firewall on the router port, not routed):
		// on to the next stage.
		e.add(s.classify, prioDefault, nil, goTo(s.next))
		// Neighbour discovery is not tracked by conntrack (+inv).
		for _, t := range []uint8{133, 134, 135, 136} {
			e.add(s.classify, prioFWND, icmp6Type(t), goTo(s.next))
		}
		e.add(s.acl, prioDefault, nil)
		e.add(s.acl, prioFWInvalid, openflow.Match{openflow.CtState(openflow.CtInv|openflow.CtTrk, openflow.CtInv|openflow.CtTrk)})
		e.add(s.acl, prioFWState, openflow.Match{openflow.CtState(openflow.CtEst|openflow.CtTrk, openflow.CtNew|openflow.CtEst|openflow.CtInv|openflow.CtTrk)}, goTo(s.next))
		e.add(s.acl, prioFWState, openflow.Match{openflow.CtState(openflow.CtRel|openflow.CtTrk, openflow.CtNew|openflow.CtRel|openflow.CtInv|openflow.CtTrk)}, goTo(s.next))
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
// ports is a router interface on a network present here.
func (c *Compiler) firewallGroupPresent(g *fsm.FirewallGroup) bool {
	for _, id := range g.Ports {
		if p := c.v.Port(id); p != nil && isRouterInterface(p) && c.presentNet[p.NetworkID] {
			return true
		}
	}
	return false
}

// firewallGroupFlows compiles a group's policies into its ACL tables.
func (c *Compiler) firewallGroupFlows(e *emitter, g *fsm.FirewallGroup) {
	ingress, egress, ok := fwEnforced(g)
	if !ok || !c.firewallGroupPresent(g) {
		return
	}
	key := openflow.Reg(RegFWGroup, g.Key)
	for _, side := range []struct {
		s      fwSide
		policy string
	}{{fwEgress, egress}, {fwIngress, ingress}} {
		s := side.s
		allow := []openflow.Action{openflow.CT{Commit: true, ZoneSrc: fwZone()}, goTo(s.next)}
		if side.policy == "" {
			// ct needs the IP ethertype in the match.
			for _, et := range []uint16{ethIPv4, ethIPv6} {
				e.add(s.acl, prioFWDeny, openflow.Match{key, openflow.EthType(et)}, allow...)
			}
			continue
		}
		// The implicit deny at the end of the policy.
		e.add(s.acl, prioFWDeny, openflow.Match{key})
		pol := c.v.FirewallPolicy(side.policy)
		if pol == nil {
			continue
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
				e.add(s.acl, prio, append(openflow.Match{key}, m...), acts...)
			}
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
