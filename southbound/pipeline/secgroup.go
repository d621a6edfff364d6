package pipeline

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Security groups are conjunctive matches of two clauses per rule
// (conjunction id = ConjID(rule): its datapath key): clause 1 names the ports of the
// rule's group on this chassis (one flow per port, carrying a clause-1
// action for every rule of every group of the port; compiled with the
// port), clause 2 the traffic the rule admits (protocol, port range as
// masked matches, and the remote prefix or one flow per address of the
// remote group's members; compiled with the rule). A group of N ports
// with M remote members costs N + M flows per rule, not N x M. The flow
// matching conj_id commits the connection in the port's zone. Flows of
// two rules with the same clause-2 match are merged into one flow with
// both conjunction actions.

// ruleMatches returns the clause-2 matches of a rule without its remote
// side: ethertype, protocol and port range or ICMP type/code. ok is false
// for a rule this pipeline cannot express (it then admits nothing).
func ruleMatches(r *fsm.SecurityGroupRule) ([]openflow.Match, bool) {
	v6 := r.EtherType == fsm.EtherTypeIPv6
	et := uint16(ethIPv4)
	if v6 {
		et = ethIPv6
	}
	proto, ok := fsm.ProtocolNumber(r.Protocol)
	if !ok {
		return nil, false
	}
	if v6 && proto == 1 {
		proto = 58 // Neutron accepts "icmp" for ICMPv6 rules
	}
	base := openflow.Match{openflow.EthType(et)}
	if proto < 0 {
		return []openflow.Match{base}, true
	}
	base = append(base, openflow.IPProto(uint8(proto)))
	switch proto {
	case 6, 17:
		if r.PortRangeMin == nil {
			return []openflow.Match{base}, true
		}
		lo, hi := *r.PortRangeMin, *r.PortRangeMin
		if r.PortRangeMax != nil {
			hi = *r.PortRangeMax
		}
		if lo < 0 || hi > 65535 || lo > hi {
			return nil, false
		}
		field := openflow.FieldTCPDst
		if proto == 17 {
			field = openflow.FieldUDPDst
		}
		if lo == 0 && hi == 65535 {
			return []openflow.Match{base}, true
		}
		var out []openflow.Match
		for _, pm := range portMasks(uint16(lo), uint16(hi)) {
			out = append(out, append(slices.Clone(base), openflow.Masked(field, uint64(pm.value), uint64(pm.mask))))
		}
		return out, true
	case 1, 58:
		typeField, codeField := openflow.FieldICMPType, openflow.FieldICMPCode
		if proto == 58 {
			typeField, codeField = openflow.FieldICMPv6Type, openflow.FieldICMPv6Code
		}
		m := base
		if r.PortRangeMin != nil {
			m = append(m, openflow.Exact(typeField, uint64(*r.PortRangeMin)))
			if r.PortRangeMax != nil {
				m = append(m, openflow.Exact(codeField, uint64(*r.PortRangeMax)))
			}
		}
		return []openflow.Match{m}, true
	}
	return []openflow.Match{base}, true
}

type portMask struct{ value, mask uint16 }

// portMasks covers [lo, hi] with value/mask pairs (the usual prefix
// decomposition of a range).
func portMasks(lo, hi uint16) []portMask {
	var out []portMask
	l, h := uint32(lo), uint32(hi)
	for l <= h {
		size := uint32(1)
		for l%(size*2) == 0 && l+size*2-1 <= h {
			size *= 2
		}
		out = append(out, portMask{uint16(l), uint16(^(size - 1))})
		l += size
	}
	return out
}

// remotePrefixes is the remote side of a rule: nil for anywhere, or the
// prefixes (the remote group members' addresses) it admits; none means
// the rule admits nothing.
func (c *Compiler) remotePrefixes(r *fsm.SecurityGroupRule) (any bool, out []netip.Prefix) {
	v6 := r.EtherType == fsm.EtherTypeIPv6
	if r.RemoteGroupID != "" {
		return false, c.remoteMembers(r.RemoteGroupID, v6)
	}
	if r.RemoteIPPrefix == "" {
		return true, nil
	}
	pfx, ok := parsePrefix(r.RemoteIPPrefix)
	if !ok || pfx.Addr().Is6() != v6 {
		return false, nil
	}
	if pfx.Bits() == 0 {
		return true, nil
	}
	return false, []netip.Prefix{pfx.Masked()}
}

// groupMembers are the addresses (one per fixed IP, and the allowed
// address pairs' prefixes) of the group's ports in one IP version, sorted.
func groupMembers(v *fsm.View, group string, v6 bool) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	for _, p := range v.PortsOfSecurityGroup(group) {
		for _, f := range p.FixedIPs {
			if a, err := netip.ParseAddr(f.IPAddress); err == nil && a.Is6() == v6 {
				seen[netip.PrefixFrom(a, a.BitLen())] = true
			}
		}
		for _, ap := range p.AllowedAddressPairs {
			if pfx, ok := parsePrefix(ap.IPAddress); ok && pfx.Addr().Is6() == v6 {
				seen[pfx.Masked()] = true
			}
		}
	}
	out := make([]netip.Prefix, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	return out
}

// ruleFlows compiles a rule's second clauses and its commit flow, on
// chassis where its group has a port.
func (c *Compiler) ruleFlows(e *emitter, r *fsm.SecurityGroupRule) {
	if r == nil || c.sgLocal[r.SecurityGroupID] == 0 || ConjID(r) == 0 {
		return
	}
	matches, ok := ruleMatches(r)
	if !ok {
		return
	}
	table, next, reg := TableIngressACL, TableOutput, RegOutPort
	if r.Direction == fsm.DirectionEgress {
		table, next, reg = TableEgressACL, TableARPResponder, RegInPort
	}
	id := ConjID(r)
	clause := openflow.Conjunction{ID: id, Clause: 2, NClauses: 2}
	anywhere, remotes := c.remotePrefixes(r)
	for _, m := range matches {
		if anywhere {
			e.add(table, prioMatch, m, clause)
			continue
		}
		for _, pfx := range remotes {
			e.add(table, prioMatch, append(slices.Clone(m), remoteField(r.Direction, pfx)), clause)
		}
	}
	// ct needs the IP ethertype in the match.
	e.add(table, prioMatch, openflow.Match{openflow.Exact(openflow.FieldConjID, uint64(id)), matches[0][0]}, ctCommit(reg), goTo(next))
}

// remoteField matches the far end of a connection: its source for an
// ingress rule, its destination for an egress rule.
func remoteField(direction string, pfx netip.Prefix) openflow.MatchField {
	n := ipNet(pfx)
	switch {
	case pfx.Addr().Is4() && direction == fsm.DirectionEgress:
		return openflow.IPv4Dst(n)
	case pfx.Addr().Is4():
		return openflow.IPv4Src(n)
	case direction == fsm.DirectionEgress:
		return openflow.IPv6Dst(pfx)
	default:
		return openflow.IPv6Src(pfx)
	}
}

// sortConj orders conjunction actions by id (one flow may carry many).
func sortConj(acts []openflow.Action) []openflow.Action {
	slices.SortFunc(acts, func(a, b openflow.Action) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(acts, func(a, b openflow.Action) bool { return a.String() == b.String() })
}
