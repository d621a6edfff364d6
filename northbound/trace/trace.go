// Package trace explains the logical path of a packet through Neutrino's
// pipeline, as ovn-trace does for OVN: from a Neutron port to an IPv4
// address, stage by stage in the order the OpenFlow tables of
// docs/pipeline.md meet it (port security, egress security groups,
// routing, NAT, tunnel, ingress security groups, delivery), each stage
// naming the object whose flows decide it. It reads only the replicated
// state (fsm.View), so any server answers the same for the same revision;
// the real switch's view is `ovs-appctl ofproto/trace` on the chassis,
// for which Run also returns the flow to trace.
//
// The trace is of a new connection's first packet: established traffic
// passes conntrack before any rule (docs/pipeline.md, tables 21 and 61).
// Not evaluated: firewall groups (FWaaS), load balancers, VPN, IPv6.
package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"neutrino/fsm"
)

// Query is the packet to trace.
type Query struct {
	// PortID is the Neutron port the packet enters from.
	PortID string
	// Dst is the destination address (IPv4).
	Dst netip.Addr
	// Proto is "icmp" (echo request), "tcp" or "udp".
	Proto string
	// DstPort is the TCP/UDP destination port (0 for ICMP).
	DstPort int
	// Src and SrcMAC override the source (default: the port's first IPv4
	// fixed IP and its MAC), to ask about a spoofed packet.
	Src    netip.Addr
	SrcMAC string
}

// Verdicts of a step and of a whole trace.
const (
	Pass      = "pass"
	Drop      = "drop"
	Delivered = "delivered"
	Dropped   = "dropped"
	Leaves    = "leaves" // out of the cloud through a gateway
	Answered  = "answered"
	// NotEvaluated marks a stage the trace names but does not decide.
	NotEvaluated = "not evaluated"
)

// Step is one stage of the path.
type Step struct {
	Table   int    `json:"table"`
	Stage   string `json:"stage"`
	Chassis string `json:"chassis,omitempty"`
	Verdict string `json:"verdict"`
	// Object names what decided ("security_group_rule <id>", "router <id>").
	Object string `json:"object,omitempty"`
	Detail string `json:"detail"`
}

// OFProto is a flow to hand `ovs-appctl ofproto/trace br-int` on a chassis.
type OFProto struct {
	Chassis string `json:"chassis"`
	Flow    string `json:"flow"`
	// Output, filled by the caller that ran it.
	Output string `json:"output,omitempty"`
	// Actions is the trace's last "Datapath actions:" line.
	Actions string `json:"datapath_actions,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Result is a whole trace.
type Result struct {
	PortID  string    `json:"port_id"`
	Packet  string    `json:"packet"`
	Steps   []Step    `json:"steps"`
	Verdict string    `json:"verdict"`
	OFProto []OFProto `json:"ofproto,omitempty"`
}

// ParseTo parses IP[:PROTO[/PORT]] (PROTO icmp, tcp or udp; tcp and udp
// need a port). No protocol is ICMP echo.
func ParseTo(s string) (dst netip.Addr, proto string, port int, err error) {
	host, rest, _ := strings.Cut(s, ":")
	dst, err = netip.ParseAddr(host)
	if err != nil || !dst.Is4() {
		return dst, "", 0, fmt.Errorf("destination %q: want an IPv4 address, optionally :icmp, :tcp/PORT or :udp/PORT", s)
	}
	if rest == "" {
		return dst, "icmp", 0, nil
	}
	proto, ps, hasPort := strings.Cut(strings.ToLower(rest), "/")
	switch proto {
	case "icmp":
		if hasPort {
			return dst, "", 0, fmt.Errorf("destination %q: icmp takes no port", s)
		}
		return dst, proto, 0, nil
	case "tcp", "udp":
		port, err = strconv.Atoi(ps)
		if !hasPort || err != nil || port < 1 || port > 65535 {
			return dst, "", 0, fmt.Errorf("destination %q: %s needs a port 1-65535 (%s/PORT)", s, proto, proto)
		}
		return dst, proto, port, nil
	}
	return dst, "", 0, fmt.Errorf("destination %q: protocol %q: want icmp, tcp or udp", s, proto)
}

type tracer struct {
	v   *fsm.View
	q   Query
	res *Result
	// l2src and ttl are the packet's source MAC and TTL as it is now
	// (routing rewrites them).
	l2src string
	ttl   int
}

func (t *tracer) step(table int, stage, chassis, verdict, object, format string, args ...any) {
	t.res.Steps = append(t.res.Steps, Step{Table: table, Stage: stage, Chassis: chassis, Verdict: verdict,
		Object: object, Detail: fmt.Sprintf(format, args...)})
}

func (t *tracer) drop(table int, stage, chassis, object, format string, args ...any) *Result {
	t.step(table, stage, chassis, Drop, object, format, args...)
	t.res.Verdict = Dropped
	return t.res
}

// Run traces q against the state. The error is for a query that names no
// port or a port with no IPv4 address to send from.
func Run(v *fsm.View, q Query) (*Result, error) {
	p := v.Port(q.PortID)
	if p == nil {
		return nil, fmt.Errorf("port %s: %w", q.PortID, ErrNoPort)
	}
	if !q.Src.IsValid() {
		q.Src = firstIPv4(p)
		if !q.Src.IsValid() {
			return nil, fmt.Errorf("port %s has no IPv4 address: give a source", p.ID)
		}
	}
	if q.SrcMAC == "" {
		q.SrcMAC = p.MACAddress
	}
	q.SrcMAC = strings.ToLower(q.SrcMAC)
	t := &tracer{v: v, q: q, res: &Result{PortID: p.ID, Packet: describe(q)}, l2src: q.SrcMAC, ttl: 64}
	return t.run(p), nil
}

// ErrNoPort: the query's port does not exist.
var ErrNoPort = fmt.Errorf("no such port")

func describe(q Query) string {
	s := fmt.Sprintf("%s %s (%s) -> %s", q.Proto, q.Src, q.SrcMAC, q.Dst)
	if q.DstPort != 0 {
		s += ":" + strconv.Itoa(q.DstPort)
	}
	if q.Proto == "icmp" {
		s += " echo request"
	}
	return s
}

func firstIPv4(p *fsm.Port) netip.Addr {
	for _, ip := range p.FixedIPs {
		if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

func (t *tracer) run(p *fsm.Port) *Result {
	src := p.BindingHostID
	if src == "" || p.BindingOFPort == 0 {
		return t.drop(0, "classify", "", "port "+p.ID, "the port is plugged on no chassis: no flows take its packets")
	}
	t.step(0, "classify", src, Pass, "port "+p.ID, "in_port %d on %s: network %s", p.BindingOFPort, src, p.NetworkID)
	flow := fmt.Sprintf("in_port=%d,%s", p.BindingOFPort, t.packet())

	// Table 10: port security.
	if !p.PortSecurityEnabled {
		t.step(10, "port security", src, Pass, "port "+p.ID, "port security is off: any source, no security groups")
	} else if why, ok := allowedSource(p, t.q.SrcMAC, t.q.Src); !ok {
		t.addFlow(src, flow, p.MACAddress)
		return t.drop(10, "port security", src, "port "+p.ID, "spoofed source: %s", why)
	} else {
		t.step(10, "port security", src, Pass, "port "+p.ID, "%s", why)
		// Tables 20-21: egress security groups.
		rule, why := t.matchGroups(p, fsm.DirectionEgress, t.q.Dst)
		if rule == nil {
			t.addFlow(src, flow, p.MACAddress)
			return t.drop(21, "security groups (egress)", src, groupsObject(p), "%s", why)
		}
		t.step(21, "security groups (egress)", src, Pass, "security_group_rule "+rule.ID, "%s", why)
	}

	net := t.v.Network(p.NetworkID)
	if net == nil {
		return t.drop(0, "classify", src, "network "+p.NetworkID, "the port's network does not exist")
	}
	// Table 40 (same subnet) or 50 (routed).
	if sub := subnetOf(t.v, p.NetworkID, t.q.Dst); sub != nil {
		dst := portWithIP(t.v, p.NetworkID, t.q.Dst)
		if dst == nil {
			t.addFlow(src, flow, "ff:ff:ff:ff:ff:ff")
			return t.drop(40, "L2 lookup", src, "subnet "+sub.ID, "no port of network %s has %s: nobody answers ARP for it", p.NetworkID, t.q.Dst)
		}
		t.addFlow(src, flow, dst.MACAddress)
		if fsm.IsL3Port(dst) && dst.DeviceOwner == fsm.DeviceOwnerRouterInterface {
			return t.routerAddress(src, dst)
		}
		t.step(40, "L2 lookup", src, Pass, "port "+dst.ID, "%s is port %s (%s) on the same network", t.q.Dst, dst.ID, dst.MACAddress)
		return t.deliver(src, dst, t.q.Src, net)
	}
	return t.route(p, src, flow)
}

// packet is the ofproto/trace match of the packet as it is now, without
// in_port and dl_dst.
func (t *tracer) packet() string {
	f := fmt.Sprintf("%s,dl_src=%s,nw_src=%s,nw_dst=%s,nw_ttl=%d", t.q.Proto, t.l2src, t.q.Src, t.q.Dst, t.ttl)
	switch t.q.Proto {
	case "tcp":
		f += fmt.Sprintf(",tp_src=40000,tp_dst=%d,tcp_flags=0x002", t.q.DstPort)
	case "udp":
		f += fmt.Sprintf(",tp_src=40000,tp_dst=%d", t.q.DstPort)
	default:
		f += ",icmp_type=8,icmp_code=0"
	}
	return f
}

// addFlow records the ofproto/trace flow on the source chassis, with the
// destination MAC the VM would use.
func (t *tracer) addFlow(chassis, flow, dlDst string) {
	t.res.OFProto = append(t.res.OFProto, OFProto{Chassis: chassis, Flow: flow + ",dl_dst=" + strings.ToLower(dlDst)})
}

func (t *tracer) routerAddress(chassis string, rp *fsm.Port) *Result {
	if t.q.Proto == "icmp" {
		t.step(50, "routing", chassis, Pass, "router "+rp.DeviceID, "%s is router %s's interface: the echo request is answered in place", t.q.Dst, rp.DeviceID)
		t.res.Verdict = Answered
		return t.res
	}
	return t.drop(50, "routing", chassis, "router "+rp.DeviceID, "%s is router %s's interface: only ICMP echo to it is answered", t.q.Dst, rp.DeviceID)
}

// route follows the packet through the router of the source's subnet.
func (t *tracer) route(p *fsm.Port, src, flow string) *Result {
	rp, r := t.routerOf(p)
	if r == nil {
		t.addFlow(src, flow, "ff:ff:ff:ff:ff:ff")
		return t.drop(50, "routing", src, "network "+p.NetworkID, "%s is off the port's subnets and no router has an interface on them", t.q.Dst)
	}
	t.addFlow(src, flow, rp.MACAddress)
	ro := "router " + r.ID
	if !r.AdminStateUp {
		return t.drop(50, "routing", src, ro, "router %s is administratively down", r.ID)
	}
	// Longest prefix: a connected subnet outranks an extra route of the
	// same length (table 50: 100 + 2 x length + 1 against 100 + 2 x length).
	var best *fsm.Port
	bestBits := -1
	for _, ip := range t.v.RouterInterfaces(r.ID) {
		for _, fip := range ip.FixedIPs {
			if s := t.v.Subnet(fip.SubnetID); s != nil && s.Prefix().Contains(t.q.Dst) && s.Prefix().Bits() > bestBits {
				best, bestBits = ip, s.Prefix().Bits()
			}
		}
	}
	var route *fsm.Route
	var nhIface, nh *fsm.Port
	for i, rt := range r.Routes {
		pfx, err := netip.ParsePrefix(rt.Destination)
		if err != nil || !pfx.Contains(t.q.Dst) || pfx.Bits() <= bestBits || (route != nil && pfx.Bits() <= netip.MustParsePrefix(route.Destination).Bits()) {
			continue
		}
		hop, err := netip.ParseAddr(rt.NextHop)
		if err != nil {
			continue
		}
		for _, ip := range t.v.RouterInterfaces(r.ID) {
			if subnetOf(t.v, ip.NetworkID, hop) != nil {
				route, nhIface, nh = &r.Routes[i], ip, portWithIP(t.v, ip.NetworkID, hop)
			}
		}
	}
	if route != nil {
		t.step(50, "routing", src, Pass, ro, "router %s: extra route %s via %s (network %s); dec_ttl, source MAC %s", r.ID, route.Destination, route.NextHop, nhIface.NetworkID, nhIface.MACAddress)
		t.l2src, t.ttl = strings.ToLower(nhIface.MACAddress), t.ttl-1
		if nh == nil {
			return t.drop(55, "next hop", src, "network "+nhIface.NetworkID, "no port of network %s has the next hop %s", nhIface.NetworkID, route.NextHop)
		}
		t.step(55, "next hop", src, Pass, "port "+nh.ID, "next hop %s is port %s (%s)", route.NextHop, nh.ID, nh.MACAddress)
		return t.deliver(src, nh, t.q.Src, t.v.Network(nhIface.NetworkID))
	}
	if best != nil {
		if dst := portWithIP(t.v, best.NetworkID, t.q.Dst); dst != nil && dst.ID == best.ID {
			return t.routerAddress(src, best)
		}
		t.step(50, "routing", src, Pass, ro, "router %s: connected subnet of interface %s (network %s), next hop %s; dec_ttl, source MAC %s", r.ID, best.ID, best.NetworkID, t.q.Dst, best.MACAddress)
		t.l2src, t.ttl = strings.ToLower(best.MACAddress), t.ttl-1
		dst := portWithIP(t.v, best.NetworkID, t.q.Dst)
		if dst == nil {
			return t.drop(55, "next hop", src, "network "+best.NetworkID, "no port of network %s has %s", best.NetworkID, t.q.Dst)
		}
		t.step(55, "next hop", src, Pass, "port "+dst.ID, "%s is port %s (%s)", t.q.Dst, dst.ID, dst.MACAddress)
		return t.deliver(src, dst, t.q.Src, t.v.Network(best.NetworkID))
	}
	if r.Gateway == nil {
		return t.drop(50, "routing", src, ro, "router %s has no route to %s (no connected subnet, extra route or external gateway)", r.ID, t.q.Dst)
	}
	gw := t.v.ActiveGatewayChassis(r.ID)
	t.step(50, "routing", src, Pass, ro, "router %s: default route through its external gateway on network %s", r.ID, r.Gateway.NetworkID)
	for _, fip := range t.v.FloatingIPsOfPort(p.ID) {
		if fip.FixedIPAddress == t.q.Src.String() && fip.RouterID == r.ID {
			where := gw
			if c := t.v.Chassis(src); c != nil && c.BridgeMappings != nil && mapsNetwork(t.v, c, r.Gateway.NetworkID) {
				where = src
			}
			t.step(51, "NAT", where, Pass, "floatingip "+fip.ID, "floating IP: source %s becomes %s (stateless 1:1) on %s", t.q.Src, fip.FloatingIPAddress, where)
			if where != src {
				t.tunnel(src, where, "to the chassis doing the floating IP's NAT")
			}
			t.step(65, "output", where, Pass, "network "+r.Gateway.NetworkID, "out of the localnet port of external network %s", r.Gateway.NetworkID)
			t.res.Verdict = Leaves
			return t.res
		}
	}
	if gw == "" {
		return t.drop(51, "NAT", src, ro, "router %s has no active gateway chassis (none usable)", r.ID)
	}
	if c := t.v.Chassis(gw); c != nil && !c.Up {
		return t.drop(51, "NAT", gw, ro, "router %s's gateway chassis %s is down", r.ID, gw)
	}
	if gw != src {
		t.tunnel(src, gw, "unrouted, to router "+r.ID+"'s active gateway chassis, which routes it")
	}
	gp := t.v.RouterGatewayPort(r.ID)
	snat := "no SNAT (enable_snat is false): the source stays " + t.q.Src.String()
	if r.Gateway.EnableSNAT && gp != nil {
		if a := firstIPv4(gp); a.IsValid() {
			snat = "SNAT: source " + t.q.Src.String() + " becomes the gateway address " + a.String() + " (conntrack zone of the router)"
		}
	}
	t.step(51, "NAT", gw, Pass, ro, "%s", snat)
	t.step(65, "output", gw, Pass, "network "+r.Gateway.NetworkID, "out of the localnet port of external network %s", r.Gateway.NetworkID)
	t.res.Verdict = Leaves
	return t.res
}

func mapsNetwork(v *fsm.View, c *fsm.Chassis, netID string) bool {
	n := v.Network(netID)
	if n == nil || n.PhysicalNetwork == "" {
		return false
	}
	_, ok := c.BridgeMappings[n.PhysicalNetwork]
	return ok
}

func (t *tracer) tunnel(from, to, why string) {
	c := t.v.Chassis(to)
	ip := ""
	if c != nil {
		ip = c.TunnelIP
	}
	t.step(40, "tunnel", from, Pass, "chassis "+to, "encapsulated to chassis %s (tunnel IP %s), %s", to, ip, why)
}

// deliver follows the packet from the chassis that sends it to dst.
func (t *tracer) deliver(from string, dst *fsm.Port, srcIP netip.Addr, net *fsm.Network) *Result {
	at := dst.BindingHostID
	if at == "" || dst.BindingOFPort == 0 {
		return t.drop(40, "L2 lookup", from, "port "+dst.ID, "port %s is plugged on no chassis", dst.ID)
	}
	if c := t.v.Chassis(at); c != nil && !c.Up {
		return t.drop(40, "tunnel", from, "chassis "+at, "port %s's chassis %s is down", dst.ID, at)
	}
	if at != from {
		if net != nil && (net.NetworkType == fsm.NetTypeFlat || net.NetworkType == fsm.NetTypeVLAN) {
			t.step(40, "L2 lookup", from, Pass, "network "+net.ID, "out of the localnet port of provider network %s to chassis %s", net.ID, at)
		} else {
			t.tunnel(from, at, "where port "+dst.ID+" is plugged")
			// The destination chassis' switch sees it come from its
			// flow-based tunnel port of the network's type, keyed by the
			// segmentation id (docs/pipeline.md, table 0).
			if net != nil && from != "" {
				if fc, tc := t.v.Chassis(from), t.v.Chassis(at); fc != nil && tc != nil {
					t.res.OFProto = append(t.res.OFProto, OFProto{Chassis: at, Flow: fmt.Sprintf(
						"in_port=tun-%s,tun_id=%d,tun_src=%s,tun_dst=%s,%s,dl_dst=%s",
						net.NetworkType, net.SegmentationID, fc.TunnelIP, tc.TunnelIP, t.packet(), strings.ToLower(dst.MACAddress))})
				}
			}
		}
	} else {
		t.step(40, "L2 lookup", from, Pass, "port "+dst.ID, "port %s is local (ofport %d)", dst.ID, dst.BindingOFPort)
	}
	if dst.PortSecurityEnabled {
		rule, why := t.matchGroups(dst, fsm.DirectionIngress, srcIP)
		if rule == nil {
			return t.drop(61, "security groups (ingress)", at, groupsObject(dst), "%s", why)
		}
		t.step(61, "security groups (ingress)", at, Pass, "security_group_rule "+rule.ID, "%s", why)
	}
	for _, p := range []*fsm.Port{t.v.Port(t.res.PortID), dst} {
		if p == nil {
			continue
		}
		if g := t.v.FirewallGroupOfPort(p.ID); g != nil {
			t.step(47, "firewall group", at, NotEvaluated, "firewall_group "+g.ID, "port %s is in firewall group %s: its policies apply too (tables 32-34, 47-49), which this trace does not evaluate", p.ID, g.ID)
		}
	}
	t.step(65, "output", at, Pass, "port "+dst.ID, "delivered to port %s (ofport %d) on chassis %s", dst.ID, dst.BindingOFPort, at)
	t.res.Verdict = Delivered
	return t.res
}

// routerOf returns the router interface on the port's network whose
// subnet holds the source, and its router.
func (t *tracer) routerOf(p *fsm.Port) (*fsm.Port, *fsm.Router) {
	for _, q := range t.v.PortsOfNetwork(p.NetworkID) {
		if q.DeviceOwner != fsm.DeviceOwnerRouterInterface {
			continue
		}
		for _, fip := range q.FixedIPs {
			if s := t.v.Subnet(fip.SubnetID); s != nil && s.Prefix().Contains(t.q.Src) {
				if r := t.v.Router(q.DeviceID); r != nil {
					return q, r
				}
			}
		}
	}
	return nil, nil
}

// allowedSource is table 10: the source MAC and address must be the
// port's own or one of its allowed address pairs'.
func allowedSource(p *fsm.Port, mac string, ip netip.Addr) (string, bool) {
	own := strings.ToLower(p.MACAddress)
	for _, f := range p.FixedIPs {
		if a, err := netip.ParseAddr(f.IPAddress); err == nil && a == ip && mac == own {
			return fmt.Sprintf("%s / %s is the port's own MAC and fixed IP", mac, ip), true
		}
	}
	for _, pair := range p.AllowedAddressPairs {
		pm := own
		if pair.MACAddress != "" {
			pm = strings.ToLower(pair.MACAddress)
		}
		pfx, err := netip.ParsePrefix(pair.IPAddress)
		if err != nil {
			if a, err2 := netip.ParseAddr(pair.IPAddress); err2 == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if pfx.IsValid() && pfx.Contains(ip) && mac == pm {
			return fmt.Sprintf("%s / %s is allowed address pair %s", mac, ip, pair.IPAddress), true
		}
	}
	var ips []string
	for _, f := range p.FixedIPs {
		ips = append(ips, f.IPAddress)
	}
	return fmt.Sprintf("%s / %s is not the port's MAC %s with one of its addresses [%s] nor an allowed address pair",
		mac, ip, own, strings.Join(ips, " ")), false
}

func groupsObject(p *fsm.Port) string {
	if len(p.SecurityGroups) == 0 {
		return "port " + p.ID
	}
	return "security_group " + strings.Join(p.SecurityGroups, ",")
}

// matchGroups is tables 21 (egress) and 61 (ingress): the first rule of
// the port's groups that admits the packet, whose remote side is remote.
func (t *tracer) matchGroups(p *fsm.Port, dir string, remote netip.Addr) (*fsm.SecurityGroupRule, string) {
	if len(p.SecurityGroups) == 0 {
		return nil, fmt.Sprintf("port %s has port security and no security group: nothing is allowed %s", p.ID, dir)
	}
	var names []string
	for _, gid := range p.SecurityGroups {
		g := t.v.SecurityGroup(gid)
		name := gid
		if g != nil && g.Name != "" {
			name = g.Name + " (" + gid + ")"
		}
		names = append(names, name)
		rules := t.v.RulesOfSecurityGroup(gid)
		slices.SortFunc(rules, func(a, b *fsm.SecurityGroupRule) int { return strings.Compare(a.ID, b.ID) })
		for _, r := range rules {
			if r.Direction != dir || r.EtherType != fsm.EtherTypeIPv4 {
				continue
			}
			if ok, what := t.ruleAdmits(r, remote); ok {
				return r, fmt.Sprintf("rule %s of group %s allows %s %s", r.ID, name, dir, what)
			}
		}
	}
	what := t.q.Proto
	if t.q.DstPort != 0 {
		what += "/" + strconv.Itoa(t.q.DstPort)
	}
	side := "to"
	if dir == fsm.DirectionIngress {
		side = "from"
	}
	return nil, fmt.Sprintf("no %s rule of security group %s allows %s %s %s", dir, strings.Join(names, ", "), what, side, remote)
}

// ruleAdmits says whether the rule's clause 2 (protocol, ports, remote)
// matches the traced packet, and describes the rule.
func (t *tracer) ruleAdmits(r *fsm.SecurityGroupRule, remote netip.Addr) (bool, string) {
	proto, ok := fsm.ProtocolNumber(r.Protocol)
	if !ok {
		return false, ""
	}
	want := map[string]int{"icmp": 1, "tcp": 6, "udp": 17}[t.q.Proto]
	desc := "any protocol"
	if proto >= 0 {
		if proto != want {
			return false, ""
		}
		desc = t.q.Proto
		switch want {
		case 6, 17:
			if r.PortRangeMin != nil {
				lo, hi := *r.PortRangeMin, *r.PortRangeMin
				if r.PortRangeMax != nil {
					hi = *r.PortRangeMax
				}
				if t.q.DstPort < lo || t.q.DstPort > hi {
					return false, ""
				}
				desc += fmt.Sprintf(" ports %d-%d", lo, hi)
			}
		case 1:
			if r.PortRangeMin != nil && *r.PortRangeMin != 8 {
				return false, ""
			}
			if r.PortRangeMax != nil && *r.PortRangeMax != 0 {
				return false, ""
			}
		}
	}
	switch {
	case r.RemoteGroupID != "":
		if !t.inGroup(r.RemoteGroupID, remote) {
			return false, ""
		}
		desc += " with members of group " + r.RemoteGroupID
	case r.RemoteIPPrefix != "":
		pfx, err := netip.ParsePrefix(r.RemoteIPPrefix)
		if err != nil || !pfx.Contains(remote) {
			return false, ""
		}
		desc += " with " + r.RemoteIPPrefix
	}
	return true, desc
}

func (t *tracer) inGroup(gid string, a netip.Addr) bool {
	for _, p := range t.v.Ports() {
		if !slices.Contains(p.SecurityGroups, gid) {
			continue
		}
		for _, f := range p.FixedIPs {
			if f.IPAddress == a.String() {
				return true
			}
		}
	}
	return false
}

func subnetOf(v *fsm.View, netID string, a netip.Addr) *fsm.Subnet {
	for _, s := range v.SubnetsOfNetwork(netID) {
		if s.Prefix().Contains(a) {
			return s
		}
	}
	return nil
}

func portWithIP(v *fsm.View, netID string, a netip.Addr) *fsm.Port {
	for _, p := range v.PortsOfNetwork(netID) {
		for _, f := range p.FixedIPs {
			if f.IPAddress == a.String() {
				return p
			}
		}
	}
	return nil
}
