package topology

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
)

// Ops applies random Neutron operations to an FSM (see the package doc).
// It is not safe for concurrent use.
type Ops struct {
	f     *fsm.FSM
	rng   *rand.Rand
	index uint64
	steps int
	ops   []weightedOp
	v     *fsm.View // the view of the current step

	// IPv6Percent is the share of new subnets that are IPv6 (8 when 0).
	IPv6Percent int
}

type opFunc func(o *Ops) (desc string, t fsm.CommandType, body any)

type weightedOp struct {
	name   string
	weight int
	fn     opFunc
}

// NewOps returns a driver of f seeded with seed. Its first command gets
// the index after f's revision.
func NewOps(f *fsm.FSM, seed int64) *Ops {
	o := &Ops{
		f:     f,
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x6f7073)),
		index: f.State().Read().Revision(),
	}
	o.ops = []weightedOp{
		{"chassis-add", 1, (*Ops).chassisAdd},
		{"chassis-state", 3, (*Ops).chassisState},
		{"chassis-tunnel", 2, (*Ops).chassisTunnel},
		{"network-create", 5, (*Ops).networkCreate},
		{"network-delete", 3, (*Ops).networkDelete},
		{"subnet-create", 5, (*Ops).subnetCreate},
		{"subnet-delete", 2, (*Ops).subnetDelete},
		{"port-create", 14, (*Ops).portCreate},
		{"port-update", 12, (*Ops).portUpdate},
		{"port-delete", 4, (*Ops).portDelete},
		{"port-bind", 10, (*Ops).portBind},
		{"port-unbind", 4, (*Ops).portUnbind},
		{"port-move", 4, (*Ops).portMove},
		{"port-status", 3, (*Ops).portStatus},
		{"sg-create", 3, (*Ops).sgCreate},
		{"sg-delete", 2, (*Ops).sgDelete},
		{"rule-create", 6, (*Ops).ruleCreate},
		{"rule-delete", 3, (*Ops).ruleDelete},
		{"router-create", 2, (*Ops).routerCreate},
		{"router-if-add", 5, (*Ops).routerIfAdd},
		{"router-if-remove", 2, (*Ops).routerIfRemove},
		{"router-routes", 2, (*Ops).routerRoutes},
		{"router-gateway", 2, (*Ops).routerGateway},
		{"router-delete", 1, (*Ops).routerDelete},
		{"fip-create", 2, (*Ops).fipCreate},
		{"fip-update", 1, (*Ops).fipUpdate},
		{"fip-delete", 1, (*Ops).fipDelete},
		{"fw-rule-create", 3, (*Ops).fwRuleCreate},
		{"fw-rule-update", 2, (*Ops).fwRuleUpdate},
		{"fw-rule-delete", 1, (*Ops).fwRuleDelete},
		{"fw-policy-create", 2, (*Ops).fwPolicyCreate},
		{"fw-policy-update", 3, (*Ops).fwPolicyUpdate},
		{"fw-policy-delete", 1, (*Ops).fwPolicyDelete},
		{"fw-group-create", 2, (*Ops).fwGroupCreate},
		{"fw-group-update", 3, (*Ops).fwGroupUpdate},
		{"fw-group-delete", 1, (*Ops).fwGroupDelete},
		{"invalid", 2, (*Ops).invalid},
	}
	return o
}

// Index is the Raft index of the last command Ops applied.
func (o *Ops) Index() uint64 { return o.index }

// Chassis returns the names of the FSM's chassis, sorted.
func (o *Ops) Chassis() []string {
	var out []string
	for _, c := range o.f.State().Read().ChassisList() {
		out = append(out, c.Name)
	}
	return out
}

// Step applies one random operation. desc says what it was; err is the
// FSM's rejection of it (an *fsm.Error), nil when it was applied.
func (o *Ops) Step() (desc string, err error) {
	o.steps++
	o.v = o.f.State().Read()
	defer func() { o.v = nil }()
	var t fsm.CommandType
	var body any
	switch {
	case len(o.v.ChassisList()) < 2:
		desc, t, body = o.chassisAdd()
		desc = "chassis-add: " + desc
	case len(o.v.Networks()) < 2:
		desc, t, body = o.networkCreate()
		desc = "network-create: " + desc
	default:
		total := 0
		for _, w := range o.ops {
			total += w.weight
		}
		for desc == "" {
			n := o.rng.IntN(total)
			for _, w := range o.ops {
				if n -= w.weight; n < 0 {
					desc, t, body = w.fn(o)
					if desc != "" {
						desc = w.name + ": " + desc
					}
					break
				}
			}
		}
	}
	return desc, o.apply(t, body)
}

func (o *Ops) apply(t fsm.CommandType, body any) error {
	buf, err := fsm.Encode(t, body)
	if err != nil {
		return err
	}
	o.index++
	res := o.f.Apply(&raft.Log{Index: o.index, Term: 1, Type: raft.LogCommand, Data: buf}).(*fsm.Result)
	return res.Err
}

// ---- helpers ----

func (o *Ops) ts() string {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(o.steps) * time.Second).Format(time.RFC3339)
}

func (o *Ops) uuid() string { return uuidFrom(o.rng) }

func (o *Ops) chance(pct int) bool { return o.rng.IntN(100) < pct }

func (o *Ops) meta(project, name string) fsm.Meta {
	ts := o.ts()
	return fsm.Meta{ID: o.uuid(), ProjectID: project, Name: name, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts}
}

func (o *Ops) mac() string { return macString(o.rng.Uint32() & 0xffffff) }

func pick[T any](o *Ops, xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	return xs[o.rng.IntN(len(xs))]
}

func filter[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

func (o *Ops) project() string {
	nets := o.v.Networks()
	if len(nets) == 0 || o.chance(10) {
		return fmt.Sprintf("%032x", o.rng.Uint64()%4)
	}
	return pick(o, nets).ProjectID
}

func isVM(p *fsm.Port) bool { return p.DeviceOwner == "compute:nova" }

func (o *Ops) vmPorts() []*fsm.Port { return filter(o.v.Ports(), isVM) }

// freeIP returns an unused address of a subnet's pools (or of its
// prefix), or "" after a few tries.
func (o *Ops) freeIP(s *fsm.Subnet) string {
	pfx := s.Prefix()
	if !pfx.IsValid() {
		return ""
	}
	for range 8 {
		var a netip.Addr
		if pfx.Addr().Is4() {
			hostBits := 32 - pfx.Bits()
			if hostBits < 2 {
				return ""
			}
			b := pfx.Addr().As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			v += 1 + uint32(o.rng.Uint64N(uint64(1)<<hostBits-2))
			a = u32Addr(v)
		} else {
			b := pfx.Addr().As16()
			for i := 8; i < 16; i++ {
				b[i] = byte(o.rng.Uint32())
			}
			a = netip.AddrFrom16(b)
		}
		if a.String() == s.GatewayIP || o.v.PortByIP(s.ID, a.String()) != nil {
			continue
		}
		return a.String()
	}
	return ""
}

// ofAlloc hands out the lowest ofports from 10 not bound on a chassis.
type ofAlloc struct {
	used map[string]map[int]bool
	v    *fsm.View
}

func (a *ofAlloc) next(chassis string) int {
	if a.used == nil {
		a.used = map[string]map[int]bool{}
	}
	u, ok := a.used[chassis]
	if !ok {
		u = map[int]bool{}
		for _, p := range a.v.PortsOnChassis(chassis) {
			u[p.BindingOFPort] = true
		}
		a.used[chassis] = u
	}
	n := firstOFPort
	for u[n] {
		n++
	}
	u[n] = true
	return n
}

func (o *Ops) ipv4Subnets() []*fsm.Subnet {
	return filter(o.v.Subnets(), func(s *fsm.Subnet) bool { return s.IPVersion == 4 })
}

// ---- chassis ----

func (o *Ops) chassisAdd() (string, fsm.CommandType, any) {
	list := o.v.ChassisList()
	if len(list) >= 8 {
		return "", 0, nil
	}
	i := 0
	for o.v.Chassis(ChassisName(i)) != nil {
		i++
	}
	c := chassisRecord(i, o.ts())
	c.TunnelIP = fmt.Sprintf("10.250.0.%d", 1+o.rng.IntN(250))
	c.Encaps = o.encaps()
	return c.Name + " " + c.TunnelIP, fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{c}}
}

func (o *Ops) encaps() []string {
	switch o.rng.IntN(6) {
	case 0:
		return []string{fsm.NetTypeVXLAN}
	case 1:
		return []string{fsm.NetTypeVXLAN, fsm.NetTypeGeneve}
	case 2:
		return nil // announces none: every one
	}
	return []string{fsm.NetTypeVXLAN, fsm.NetTypeGeneve, fsm.NetTypeGRE}
}

func (o *Ops) chassisState() (string, fsm.CommandType, any) {
	c := pick(o, o.v.ChassisList())
	up := !c.Up
	if o.chance(10) {
		up = c.Up // no change but a new LastSeen
	}
	return fmt.Sprintf("%s up=%v", c.Name, up), fsm.CmdChassisSetState, fsm.ChassisSetStateRequest{Names: []string{c.Name}, Up: up, At: o.ts()}
}

func (o *Ops) chassisTunnel() (string, fsm.CommandType, any) {
	c := pick(o, o.v.ChassisList()).Copy()
	switch {
	case o.chance(10):
		c.TunnelIP = ""
	case o.chance(20):
		c.Encaps = o.encaps()
	default:
		c.TunnelIP = fmt.Sprintf("10.250.%d.%d", 1+o.rng.IntN(3), 1+o.rng.IntN(250))
	}
	c.UpdatedAt = o.ts()
	return fmt.Sprintf("%s tunnel=%q encaps=%v", c.Name, c.TunnelIP, c.Encaps), fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{c}}
}

// ---- networks and subnets ----

func (o *Ops) networkCreate() (string, fsm.CommandType, any) {
	n := &fsm.Network{
		Meta:         o.meta(o.project(), fmt.Sprintf("net-%d", o.steps)),
		AdminStateUp: true, Status: "ACTIVE", PortSecurityEnabled: true,
	}
	if o.chance(15) {
		n.External, n.Shared = true, true
		if o.chance(50) {
			n.NetworkType, n.PhysicalNetwork, n.SegmentationID, n.MTU = fsm.NetTypeVLAN, "physnet1", 100+o.rng.IntN(3900), 1500
		} else {
			n.NetworkType, n.PhysicalNetwork, n.MTU = fsm.NetTypeFlat, fmt.Sprintf("ext%d", o.rng.IntN(8)), 1500
		}
	} else {
		switch o.rng.IntN(5) {
		case 0:
			n.NetworkType, n.MTU = fsm.NetTypeGRE, 1458
		case 1:
			n.NetworkType, n.MTU = fsm.NetTypeGeneve, 1442
		default:
			n.NetworkType, n.MTU = fsm.NetTypeVXLAN, 1450
		}
		n.SegmentationID = 1 + o.rng.IntN(3000)
		// Mostly a free segment; now and then a taken one (rejected).
		for try := 0; try < 5 && o.v.NetworkBySegment(n.SegmentKey()) != nil && !o.chance(5); try++ {
			n.SegmentationID = 1 + o.rng.IntN(3000)
		}
	}
	if o.chance(10) {
		n.PortSecurityEnabled = false
	}
	return fmt.Sprintf("%s %s/%d ext=%v", n.ID, n.NetworkType, n.SegmentationID, n.External),
		fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{n}}
}

// deletable reports whether only service ports are on a network.
func (o *Ops) networkEmpty(id string) bool {
	for _, p := range o.v.PortsOfNetwork(id) {
		if !fsm.IsServicePort(p) {
			return false
		}
	}
	return true
}

func (o *Ops) networkDelete() (string, fsm.CommandType, any) {
	nets := o.v.Networks()
	if empty := filter(nets, func(n *fsm.Network) bool { return o.networkEmpty(n.ID) }); len(empty) > 0 && o.chance(85) {
		nets = empty
	}
	n := pick(o, nets)
	return n.ID, fsm.CmdNetworkDelete, fsm.NetworkDeleteRequest{ID: n.ID}
}

func (o *Ops) subnetCreate() (string, fsm.CommandType, any) {
	nets := o.v.Networks()
	if bare := filter(nets, func(n *fsm.Network) bool { return len(o.v.SubnetsOfNetwork(n.ID)) == 0 }); len(bare) > 0 && o.chance(70) {
		nets = bare
	}
	n := pick(o, nets)
	var pfx netip.Prefix
	subs := o.v.Subnets()
	switch r := o.rng.IntN(100); {
	case r < cmp.Or(o.IPv6Percent, 8):
		pfx = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, byte(o.rng.IntN(256)), byte(o.rng.IntN(256))}), 64)
	case r < 25 && len(subs) > 0:
		// An address range another network (maybe this one) uses.
		pfx = pick(o, subs).Prefix()
	case r < 35:
		pfx = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(o.rng.IntN(256)), byte(16 * o.rng.IntN(16))}), 28)
	default:
		pfx = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + o.rng.IntN(100)), byte(o.rng.IntN(256)), 0}), 24)
	}
	s := &fsm.Subnet{
		Meta:      o.meta(n.ProjectID, fmt.Sprintf("subnet-%d", o.steps)),
		NetworkID: n.ID, IPVersion: 4, CIDR: pfx.String(), EnableDHCP: true,
		DNSNameservers: []string{}, HostRoutes: []fsm.HostRoute{},
	}
	if pfx.Addr().Is6() {
		s.IPVersion = 6
		s.GatewayIP = pfx.Addr().Next().String()
		s.AllocationPools = []fsm.IPRange{{Start: pfx.Addr().Next().Next().String(), End: lastAddr(pfx).String()}}
	} else {
		last := lastAddr(pfx)
		s.GatewayIP = pfx.Addr().Next().String()
		s.AllocationPools = []fsm.IPRange{{Start: pfx.Addr().Next().Next().String(), End: last.Prev().String()}}
	}
	return fmt.Sprintf("%s %s on %s", s.ID, s.CIDR, n.ID), fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: []*fsm.Subnet{s}}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (o *Ops) subnetDelete() (string, fsm.CommandType, any) {
	subs := o.v.Subnets()
	if len(subs) == 0 {
		return "", 0, nil
	}
	if free := filter(subs, func(s *fsm.Subnet) bool { return o.v.CheckSubnetDelete(s.ID) == nil }); len(free) > 0 && o.chance(85) {
		subs = free
	}
	s := pick(o, subs)
	return s.ID, fsm.CmdSubnetDelete, fsm.SubnetDeleteRequest{ID: s.ID}
}

// ---- ports ----

func (o *Ops) groupIDs(n int) []string {
	groups := o.v.SecurityGroups()
	out := []string{}
	for range n {
		if len(groups) == 0 {
			break
		}
		if id := pick(o, groups).ID; !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func (o *Ops) randomGroups() []string {
	switch r := o.rng.IntN(100); {
	case r < 70:
		return o.groupIDs(1)
	case r < 85:
		return o.groupIDs(2)
	}
	return []string{}
}

func (o *Ops) addressPairs(p *fsm.Port) []fsm.AddressPair {
	out := []fsm.AddressPair{}
	for range 1 + o.rng.IntN(2) {
		ap := fsm.AddressPair{MACAddress: p.MACAddress}
		if o.chance(20) {
			ap.MACAddress = o.mac()
		}
		var subnet *fsm.Subnet
		if len(p.FixedIPs) > 0 {
			subnet = o.v.Subnet(p.FixedIPs[0].SubnetID)
		}
		switch {
		case subnet != nil && o.chance(70):
			if a, err := netip.ParseAddr(o.freeIP(subnet)); err == nil {
				ap.IPAddress = a.String()
			}
		case o.chance(50):
			ap.IPAddress = fmt.Sprintf("10.%d.%d.0/28", 100+o.rng.IntN(100), o.rng.IntN(256))
		default:
			ap.IPAddress = fmt.Sprintf("192.168.%d.%d", o.rng.IntN(256), 1+o.rng.IntN(254))
		}
		if ap.IPAddress != "" && !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	return out
}

// fixedIPs picks addresses on the network's subnets: usually one on one
// subnet, sometimes one per subnet.
func (o *Ops) fixedIPs(netID string) []fsm.FixedIP {
	subs := o.v.SubnetsOfNetwork(netID)
	out := []fsm.FixedIP{}
	if len(subs) == 0 {
		return out
	}
	if !o.chance(20) {
		subs = []*fsm.Subnet{pick(o, subs)}
	}
	for _, s := range subs {
		if ip := o.freeIP(s); ip != "" {
			out = append(out, fsm.FixedIP{SubnetID: s.ID, IPAddress: ip})
		}
	}
	return out
}

func (o *Ops) portMAC(netID string) string {
	ports := o.v.Ports()
	switch r := o.rng.IntN(100); {
	case r < 10:
		// The MAC of a port on another network: allowed.
		if other := filter(ports, func(p *fsm.Port) bool { return p.NetworkID != netID }); len(other) > 0 {
			return pick(o, other).MACAddress
		}
	case r < 12:
		// The MAC of a port on the same network: rejected.
		if same := o.v.PortsOfNetwork(netID); len(same) > 0 {
			return pick(o, same).MACAddress
		}
	}
	return o.mac()
}

func (o *Ops) portCreate() (string, fsm.CommandType, any) {
	nets := filter(o.v.Networks(), func(n *fsm.Network) bool { return !n.External })
	if withSub := filter(nets, func(n *fsm.Network) bool { return len(o.v.SubnetsOfNetwork(n.ID)) > 0 }); len(withSub) > 0 && o.chance(90) {
		nets = withSub
	}
	if len(nets) == 0 {
		return "", 0, nil
	}
	n := pick(o, nets)
	p := &fsm.Port{
		Meta:      o.meta(n.ProjectID, fmt.Sprintf("vm-%d", o.steps)),
		NetworkID: n.ID, MACAddress: o.portMAC(n.ID), FixedIPs: o.fixedIPs(n.ID),
		DeviceID: o.uuid(), DeviceOwner: "compute:nova",
		AdminStateUp: true, Status: fsm.PortStatusDown,
		BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
		PortSecurityEnabled: n.PortSecurityEnabled && !o.chance(10),
		SecurityGroups:      []string{}, AllowedAddressPairs: []fsm.AddressPair{},
	}
	if p.PortSecurityEnabled {
		p.SecurityGroups = o.randomGroups()
		if o.chance(20) {
			p.AllowedAddressPairs = o.addressPairs(p)
		}
	}
	return fmt.Sprintf("%s on %s mac %s ips %v", p.ID, n.ID, p.MACAddress, p.FixedIPs),
		fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{p}}
}

func (o *Ops) portUpdate() (string, fsm.CommandType, any) {
	ports := o.vmPorts()
	if len(ports) == 0 {
		return "", 0, nil
	}
	cur := pick(o, ports)
	p := cur.Copy()
	p.RevisionNumber++
	p.UpdatedAt = o.ts()
	var what string
	switch r := o.rng.IntN(100); {
	case r < 20:
		what = "security groups"
		p.SecurityGroups = o.randomGroups()
		if len(p.SecurityGroups) > 0 {
			p.PortSecurityEnabled = true
		}
	case r < 35:
		what = "address pairs"
		p.AllowedAddressPairs = []fsm.AddressPair{}
		if o.chance(70) {
			p.AllowedAddressPairs = o.addressPairs(p)
			p.PortSecurityEnabled = true
		}
	case r < 50:
		what = "port security"
		p.PortSecurityEnabled = !p.PortSecurityEnabled
		if !p.PortSecurityEnabled {
			p.SecurityGroups, p.AllowedAddressPairs = []string{}, []fsm.AddressPair{}
		} else {
			p.SecurityGroups = o.groupIDs(1)
		}
	case r < 70:
		what = "fixed ips"
		switch {
		case o.chance(15):
			p.FixedIPs = []fsm.FixedIP{}
		case o.chance(30) && len(p.FixedIPs) > 0:
			// One more address on a subnet of the network.
			if s := pick(o, o.v.SubnetsOfNetwork(p.NetworkID)); s != nil {
				if ip := o.freeIP(s); ip != "" {
					p.FixedIPs = append(p.FixedIPs, fsm.FixedIP{SubnetID: s.ID, IPAddress: ip})
				}
			}
		default:
			p.FixedIPs = o.fixedIPs(p.NetworkID)
		}
	case r < 82:
		what = "admin state"
		p.AdminStateUp = !p.AdminStateUp
	case r < 92:
		what = "mac"
		p.MACAddress = o.portMAC(p.NetworkID)
		for i := range p.AllowedAddressPairs {
			if p.AllowedAddressPairs[i].MACAddress == cur.MACAddress {
				p.AllowedAddressPairs[i].MACAddress = p.MACAddress
			}
		}
	default:
		what = "name"
		p.Name = fmt.Sprintf("renamed-%d", o.steps)
	}
	return fmt.Sprintf("%s %s", cur.ID, what), fsm.CmdPortUpdate, fsm.PortUpdateRequest{Port: p, PrevIndex: cur.ModifyIndex}
}

func (o *Ops) portDelete() (string, fsm.CommandType, any) {
	ports := o.vmPorts()
	if o.chance(5) || len(ports) == 0 {
		ports = o.v.Ports() // router ports are refused
	}
	if len(ports) == 0 {
		return "", 0, nil
	}
	p := pick(o, ports)
	return p.ID, fsm.CmdPortDelete, fsm.PortDeleteRequest{ID: p.ID}
}

func (o *Ops) upChassis() []*fsm.Chassis {
	list := o.v.ChassisList()
	if up := filter(list, func(c *fsm.Chassis) bool { return c.Up }); len(up) > 0 && o.chance(90) {
		return up
	}
	return list
}

func (o *Ops) portBind() (string, fsm.CommandType, any) {
	unbound := filter(o.vmPorts(), func(p *fsm.Port) bool { return p.BindingHostID == "" })
	if len(unbound) == 0 {
		return "", 0, nil
	}
	alloc := &ofAlloc{v: o.v}
	req := fsm.PortBindRequest{At: o.ts()}
	var desc string
	for range 1 + o.rng.IntN(3) {
		p := pick(o, unbound)
		if slices.ContainsFunc(req.Bindings, func(b fsm.PortBinding) bool { return b.PortID == p.ID }) {
			continue
		}
		c := pick(o, o.upChassis()).Name
		b := fsm.PortBinding{PortID: p.ID, Chassis: c, OFPort: alloc.next(c)}
		req.Bindings = append(req.Bindings, b)
		desc += fmt.Sprintf(" %s->%s:%d", p.ID, c, b.OFPort)
	}
	return desc[1:], fsm.CmdPortBind, req
}

func (o *Ops) portUnbind() (string, fsm.CommandType, any) {
	bound := filter(o.vmPorts(), func(p *fsm.Port) bool { return p.BindingHostID != "" })
	if len(bound) == 0 {
		return "", 0, nil
	}
	p := pick(o, bound)
	from := p.BindingHostID
	if o.chance(10) {
		from = pick(o, o.v.ChassisList()).Name // maybe stale: then a no-op
	}
	return fmt.Sprintf("%s from %s", p.ID, from), fsm.CmdPortBind,
		fsm.PortBindRequest{Bindings: []fsm.PortBinding{{PortID: p.ID, FromChassis: from}}, At: o.ts()}
}

func (o *Ops) portMove() (string, fsm.CommandType, any) {
	bound := filter(o.vmPorts(), func(p *fsm.Port) bool { return p.BindingHostID != "" })
	if len(bound) == 0 {
		return "", 0, nil
	}
	p := pick(o, bound)
	c := p.BindingHostID // re-plugged on the same chassis: a new ofport
	if o.chance(75) {
		c = pick(o, o.upChassis()).Name
	}
	of := (&ofAlloc{v: o.v}).next(c)
	return fmt.Sprintf("%s %s:%d -> %s:%d", p.ID, p.BindingHostID, p.BindingOFPort, c, of), fsm.CmdPortBind,
		fsm.PortBindRequest{Bindings: []fsm.PortBinding{{PortID: p.ID, Chassis: c, OFPort: of}}, At: o.ts()}
}

// portStatus reports the realization of bound ports, now and then from a
// chassis the port is no longer bound to (skipped by the FSM).
func (o *Ops) portStatus() (string, fsm.CommandType, any) {
	bound := filter(o.vmPorts(), func(p *fsm.Port) bool { return p.BindingHostID != "" })
	if len(bound) == 0 {
		return "", 0, nil
	}
	req := fsm.PortStatusRequest{At: o.ts()}
	var desc string
	for range 1 + o.rng.IntN(3) {
		p := pick(o, bound)
		c := fsm.PortStatusChange{PortID: p.ID, Chassis: p.BindingHostID, Status: fsm.PortStatusActive}
		if o.chance(10) {
			c.Status = fsm.PortStatusError
		}
		if o.chance(10) {
			c.Chassis = pick(o, o.v.ChassisList()).Name
		}
		req.Ports = append(req.Ports, c)
		desc += fmt.Sprintf(" %s@%s=%s", c.PortID, c.Chassis, c.Status)
	}
	return desc[1:], fsm.CmdPortStatus, req
}

// ---- security groups ----

func (o *Ops) randomRule(groupID, project string) *fsm.SecurityGroupRule {
	r := &fsm.SecurityGroupRule{
		Meta:            o.meta(project, ""),
		SecurityGroupID: groupID, Direction: fsm.DirectionIngress, EtherType: fsm.EtherTypeIPv4,
	}
	if o.chance(30) {
		r.Direction = fsm.DirectionEgress
	}
	v6 := o.chance(10)
	if v6 {
		r.EtherType = fsm.EtherTypeIPv6
	}
	switch x := o.rng.IntN(100); {
	case x < 15:
		r.Protocol = ""
	case x < 20:
		r.Protocol = "any"
	case x < 35:
		r.Protocol = "icmp"
		if v6 {
			r.Protocol = "ipv6-icmp"
		}
		switch o.rng.IntN(3) {
		case 1:
			r.PortRangeMin = intp(8)
		case 2:
			r.PortRangeMin, r.PortRangeMax = intp(8), intp(0)
		}
	case x < 70, x < 80 && o.chance(50):
		r.Protocol = "tcp"
		if x >= 70 {
			r.Protocol = "6"
		}
		r.PortRangeMin, r.PortRangeMax = o.portRange()
	default:
		r.Protocol = "udp"
		r.PortRangeMin, r.PortRangeMax = o.portRange()
	}
	switch x := o.rng.IntN(100); {
	case x < 40:
	case x < 75:
		if v6 {
			r.RemoteIPPrefix = pick(o, []string{"::/0", "fd00::/8", "2001:db8::/32"})
		} else {
			r.RemoteIPPrefix = pick(o, []string{"0.0.0.0/0", "10.0.0.0/8",
				fmt.Sprintf("10.%d.0.0/16", o.rng.IntN(256)), fmt.Sprintf("192.0.2.%d/32", o.rng.IntN(256))})
		}
	default:
		if o.chance(30) {
			r.RemoteGroupID = groupID
		} else if ids := o.groupIDs(1); len(ids) > 0 {
			r.RemoteGroupID = ids[0]
		}
	}
	return r
}

func (o *Ops) portRange() (*int, *int) {
	switch o.rng.IntN(10) {
	case 0, 1:
		return nil, nil
	case 2, 3, 4, 5:
		p := pick(o, []int{22, 53, 80, 443, 3306, 5432, 6443, 1 + o.rng.IntN(65535)})
		return intp(p), intp(p)
	}
	lo := 1 + o.rng.IntN(65000)
	return intp(lo), intp(lo + o.rng.IntN(536))
}

func (o *Ops) sgCreate() (string, fsm.CommandType, any) {
	project := o.project()
	g := &fsm.SecurityGroup{Meta: o.meta(project, fmt.Sprintf("sg-%d", o.steps)), Stateful: !o.chance(10)}
	b := &fsm.SecurityGroupBundle{Group: g, Rules: []*fsm.SecurityGroupRule{}}
	keys := map[string]bool{}
	for range o.rng.IntN(4) {
		r := o.randomRule(g.ID, project)
		if r.RemoteGroupID != "" && r.RemoteGroupID != g.ID && o.v.SecurityGroup(r.RemoteGroupID) == nil {
			continue
		}
		if !keys[r.Key()] {
			keys[r.Key()] = true
			b.Rules = append(b.Rules, r)
		}
	}
	return fmt.Sprintf("%s with %d rules", g.ID, len(b.Rules)), fsm.CmdSecurityGroupCreate,
		fsm.SecurityGroupCreateRequest{Groups: []*fsm.SecurityGroupBundle{b}}
}

func (o *Ops) sgDelete() (string, fsm.CommandType, any) {
	groups := o.v.SecurityGroups()
	if len(groups) == 0 {
		return "", 0, nil
	}
	if unused := filter(groups, func(g *fsm.SecurityGroup) bool { return o.v.PortUsingSecurityGroup(g.ID) == nil }); len(unused) > 0 && o.chance(85) {
		groups = unused
	}
	g := pick(o, groups)
	return g.ID, fsm.CmdSecurityGroupDelete, fsm.SecurityGroupDeleteRequest{ID: g.ID}
}

func (o *Ops) ruleCreate() (string, fsm.CommandType, any) {
	g := pick(o, o.v.SecurityGroups())
	if g == nil {
		return "", 0, nil
	}
	r := o.randomRule(g.ID, g.ProjectID)
	return fmt.Sprintf("%s %s %s %s %v-%v %q remote=%s", r.ID, r.Direction, r.EtherType, r.Protocol,
			deref(r.PortRangeMin), deref(r.PortRangeMax), r.RemoteIPPrefix, r.RemoteGroupID),
		fsm.CmdSecurityGroupRuleCreate, fsm.SecurityGroupRuleCreateRequest{Rules: []*fsm.SecurityGroupRule{r}}
}

func deref(p *int) any {
	if p == nil {
		return "nil"
	}
	return *p
}

func (o *Ops) ruleDelete() (string, fsm.CommandType, any) {
	r := pick(o, o.v.SecurityGroupRules())
	if r == nil {
		return "", 0, nil
	}
	return r.ID, fsm.CmdSecurityGroupRuleDelete, fsm.SecurityGroupRuleDeleteRequest{ID: r.ID}
}

// ---- routers ----

func (o *Ops) routerCreate() (string, fsm.CommandType, any) {
	rt := &fsm.Router{Meta: o.meta(o.project(), fmt.Sprintf("router-%d", o.steps)), AdminStateUp: true, Status: "ACTIVE", Routes: []fsm.Route{}}
	return rt.ID, fsm.CmdRouterCreate, fsm.RouterCreateRequest{Router: rt}
}

func (o *Ops) nextRouter(cur *fsm.Router) *fsm.Router {
	n := cur.Copy()
	n.RevisionNumber++
	n.UpdatedAt = o.ts()
	return n
}

func (o *Ops) routerIfAdd() (string, fsm.CommandType, any) {
	rt := pick(o, o.v.Routers())
	if rt == nil {
		return "", 0, nil
	}
	subs := filter(o.v.Subnets(), func(s *fsm.Subnet) bool {
		n := o.v.Network(s.NetworkID)
		return n != nil && !n.External && s.GatewayIP != ""
	})
	if ok := filter(subs, func(s *fsm.Subnet) bool { return o.v.CheckInterfaceSubnet(rt.ID, s) == nil }); len(ok) > 0 && o.chance(90) {
		subs = ok
	}
	s := pick(o, subs)
	if s == nil {
		return "", 0, nil
	}
	ip := s.GatewayIP
	if o.v.PortByIP(s.ID, ip) != nil {
		if ip = o.freeIP(s); ip == "" {
			return "", 0, nil
		}
	}
	p := &fsm.Port{
		Meta:      o.meta(rt.ProjectID, ""),
		NetworkID: s.NetworkID, MACAddress: o.mac(),
		FixedIPs: []fsm.FixedIP{{SubnetID: s.ID, IPAddress: ip}},
		DeviceID: rt.ID, DeviceOwner: fsm.DeviceOwnerRouterInterface,
		AdminStateUp: true, Status: fsm.PortStatusActive,
		BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
	}
	return fmt.Sprintf("%s on %s %s", rt.ID, s.ID, ip), fsm.CmdRouterInterfaceAdd,
		fsm.RouterInterfaceAddRequest{Router: o.nextRouter(rt), PrevIndex: rt.ModifyIndex, Port: p}
}

func (o *Ops) routersWithInterfaces() []*fsm.Router {
	return filter(o.v.Routers(), func(r *fsm.Router) bool { return len(o.v.RouterInterfaces(r.ID)) > 0 })
}

func (o *Ops) routerIfRemove() (string, fsm.CommandType, any) {
	rt := pick(o, o.routersWithInterfaces())
	if rt == nil {
		return "", 0, nil
	}
	p := pick(o, o.v.RouterInterfaces(rt.ID))
	return fmt.Sprintf("%s port %s", rt.ID, p.ID), fsm.CmdRouterInterfaceRemove,
		fsm.RouterInterfaceRemoveRequest{Router: o.nextRouter(rt), PrevIndex: rt.ModifyIndex, PortID: p.ID}
}

func (o *Ops) routerRoutes() (string, fsm.CommandType, any) {
	rt := pick(o, o.routersWithInterfaces())
	if rt == nil {
		return "", 0, nil
	}
	next := o.nextRouter(rt)
	next.Routes = []fsm.Route{}
	ifs := o.v.RouterInterfaces(rt.ID)
	for range o.rng.IntN(3) {
		p := pick(o, ifs)
		s := o.v.Subnet(p.FixedIPs[0].SubnetID)
		if s == nil {
			continue
		}
		hop := o.freeIP(s)
		if hop == "" {
			continue
		}
		dst := fmt.Sprintf("192.168.%d.0/24", o.rng.IntN(256))
		if s.IPVersion == 6 {
			dst = fmt.Sprintf("fd%02x::/64", o.rng.IntN(256))
		}
		next.Routes = append(next.Routes, fsm.Route{Destination: dst, NextHop: hop})
	}
	return fmt.Sprintf("%s %v", rt.ID, next.Routes), fsm.CmdRouterUpdate, fsm.RouterUpdateRequest{Router: next, PrevIndex: rt.ModifyIndex}
}

// externalSubnets are the IPv4 subnets of external networks.
func (o *Ops) externalSubnets() []*fsm.Subnet {
	return filter(o.ipv4Subnets(), func(s *fsm.Subnet) bool {
		n := o.v.Network(s.NetworkID)
		return n != nil && n.External
	})
}

func (o *Ops) routerGateway() (string, fsm.CommandType, any) {
	rt := pick(o, o.v.Routers())
	if rt == nil {
		return "", 0, nil
	}
	next := o.nextRouter(rt)
	if rt.Gateway != nil && o.chance(30) {
		next.Gateway = nil
		return rt.ID + " clear gateway", fsm.CmdRouterUpdate, fsm.RouterUpdateRequest{Router: next, PrevIndex: rt.ModifyIndex}
	}
	s := pick(o, o.externalSubnets())
	if s == nil {
		return "", 0, nil
	}
	ip := o.freeIP(s)
	if ip == "" {
		return "", 0, nil
	}
	next.Gateway = &fsm.ExternalGateway{NetworkID: s.NetworkID, EnableSNAT: !o.chance(20)}
	gw := &fsm.Port{
		Meta:      o.meta("", ""),
		NetworkID: s.NetworkID, MACAddress: o.mac(),
		FixedIPs: []fsm.FixedIP{{SubnetID: s.ID, IPAddress: ip}},
		DeviceID: rt.ID, DeviceOwner: fsm.DeviceOwnerRouterGateway,
		AdminStateUp: true, Status: fsm.PortStatusActive,
		BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
	}
	return fmt.Sprintf("%s gateway %s %s", rt.ID, s.NetworkID, ip), fsm.CmdRouterUpdate,
		fsm.RouterUpdateRequest{Router: next, PrevIndex: rt.ModifyIndex, GatewayPort: gw}
}

func (o *Ops) routerDelete() (string, fsm.CommandType, any) {
	routers := o.v.Routers()
	if len(routers) == 0 {
		return "", 0, nil
	}
	if bare := filter(routers, func(r *fsm.Router) bool {
		return len(o.v.RouterInterfaces(r.ID)) == 0 && len(o.v.FloatingIPsOfRouter(r.ID)) == 0
	}); len(bare) > 0 && o.chance(85) {
		routers = bare
	}
	rt := pick(o, routers)
	return rt.ID, fsm.CmdRouterDelete, fsm.RouterDeleteRequest{ID: rt.ID}
}

// ---- floating IPs ----

// fipTarget picks a VM port address reachable from an external network
// through a router, or returns nil.
func (o *Ops) fipTarget(extNet string) (*fsm.Port, string) {
	var cands []*fsm.Port
	var addrs []string
	for _, rt := range o.v.Routers() {
		if rt.Gateway == nil || rt.Gateway.NetworkID != extNet {
			continue
		}
		for _, ifp := range o.v.RouterInterfaces(rt.ID) {
			for _, p := range o.v.PortsOnSubnet(ifp.FixedIPs[0].SubnetID) {
				if !isVM(p) {
					continue
				}
				for _, f := range p.FixedIPs {
					if f.SubnetID == ifp.FixedIPs[0].SubnetID {
						cands, addrs = append(cands, p), append(addrs, f.IPAddress)
					}
				}
			}
		}
	}
	if len(cands) == 0 {
		return nil, ""
	}
	i := o.rng.IntN(len(cands))
	return cands[i], addrs[i]
}

func (o *Ops) fipCreate() (string, fsm.CommandType, any) {
	s := pick(o, o.externalSubnets())
	if s == nil {
		return "", 0, nil
	}
	ip := o.freeIP(s)
	if ip == "" {
		return "", 0, nil
	}
	project := o.project()
	f := &fsm.FloatingIP{
		Meta:              o.meta(project, ""),
		FloatingNetworkID: s.NetworkID, FloatingSubnetID: s.ID, FloatingIPAddress: ip,
		Status: fsm.FloatingIPDown,
	}
	p := &fsm.Port{
		Meta:      o.meta("", ""),
		NetworkID: s.NetworkID, MACAddress: o.mac(),
		FixedIPs: []fsm.FixedIP{{SubnetID: s.ID, IPAddress: ip}},
		DeviceID: f.ID, DeviceOwner: fsm.DeviceOwnerFloatingIP,
		AdminStateUp: true, Status: "N/A",
		BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
	}
	f.FloatingPortID = p.ID
	if o.chance(60) {
		if tp, addr := o.fipTarget(s.NetworkID); tp != nil {
			f.PortID, f.FixedIPAddress = tp.ID, addr
		}
	}
	return fmt.Sprintf("%s %s -> %s %s", f.ID, ip, f.PortID, f.FixedIPAddress), fsm.CmdFloatingIPCreate,
		fsm.FloatingIPCreateRequest{FloatingIP: f, Port: p}
}

func (o *Ops) fipUpdate() (string, fsm.CommandType, any) {
	cur := pick(o, o.v.FloatingIPs())
	if cur == nil {
		return "", 0, nil
	}
	f := cur.Copy()
	f.RevisionNumber++
	f.UpdatedAt = o.ts()
	f.PortID, f.FixedIPAddress = "", ""
	if cur.PortID == "" || o.chance(30) {
		if tp, addr := o.fipTarget(cur.FloatingNetworkID); tp != nil {
			f.PortID, f.FixedIPAddress = tp.ID, addr
		}
	}
	return fmt.Sprintf("%s -> %q %s", f.ID, f.PortID, f.FixedIPAddress), fsm.CmdFloatingIPUpdate,
		fsm.FloatingIPUpdateRequest{FloatingIP: f, PrevIndex: cur.ModifyIndex}
}

func (o *Ops) fipDelete() (string, fsm.CommandType, any) {
	f := pick(o, o.v.FloatingIPs())
	if f == nil {
		return "", 0, nil
	}
	return f.ID, fsm.CmdFloatingIPDelete, fsm.FloatingIPDeleteRequest{ID: f.ID}
}

// ---- invalid on purpose ----

func (o *Ops) invalid() (string, fsm.CommandType, any) {
	switch o.rng.IntN(4) {
	case 0:
		id := o.uuid()
		return "delete unknown port " + id, fsm.CmdPortDelete, fsm.PortDeleteRequest{ID: id}
	case 1:
		p := pick(o, o.vmPorts())
		if p == nil {
			return "", 0, nil
		}
		c := p.Copy()
		c.AdminStateUp = !c.AdminStateUp
		return "stale update of port " + p.ID, fsm.CmdPortUpdate, fsm.PortUpdateRequest{Port: c, PrevIndex: p.ModifyIndex - 1}
	case 2:
		s := pick(o, o.ipv4Subnets())
		if s == nil {
			return "", 0, nil
		}
		p := &fsm.Port{
			Meta:      o.meta("", ""),
			NetworkID: s.NetworkID, MACAddress: o.mac(), DeviceOwner: "compute:nova", DeviceID: o.uuid(),
			FixedIPs: []fsm.FixedIP{{SubnetID: s.ID, IPAddress: "203.0.113.7"}}, AdminStateUp: true,
			BindingVIFType: fsm.VIFTypeUnbound,
		}
		return "port outside its subnet on " + s.ID, fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{p}}
	}
	g := pick(o, o.v.SecurityGroups())
	if g == nil {
		return "", 0, nil
	}
	r := o.randomRule(g.ID, g.ProjectID)
	r.RemoteIPPrefix, r.RemoteGroupID = "", o.uuid()
	return "rule with unknown remote group in " + g.ID, fsm.CmdSecurityGroupRuleCreate,
		fsm.SecurityGroupRuleCreateRequest{Rules: []*fsm.SecurityGroupRule{r}}
}
