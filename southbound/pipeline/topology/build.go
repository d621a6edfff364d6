package topology

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
)

// Defaults of a Spec (see the package doc).
const (
	DefaultPortsPerNetwork     = 10
	DefaultNetworksPerRouter   = 10
	DefaultRulesPerPort        = 3
	DefaultNetworksPerGroup    = 10
	DefaultPortsPerChassis     = 20
	DefaultAddressPairEvery    = 10
	DefaultNoPortSecurityEvery = 50
	DefaultRouteEvery          = 3
	DefaultBatch               = 1000
)

// Timestamp is the CreatedAt/UpdatedAt of everything Build creates.
const Timestamp = "2026-01-01T00:00:00Z"

// Spec describes a topology for Build. A zero int field takes its default
// (DefaultSpec); see the package doc for what each one shapes.
type Spec struct {
	// Ports is the number of VM ports (router interfaces come on top).
	Ports int
	// PortsPerNetwork is the number of VM ports per network.
	PortsPerNetwork int
	// NetworksPerRouter is the number of networks of one tenant and its
	// router.
	NetworksPerRouter int
	// RulesPerPort is the number of rules of a port's security group, not
	// counting the remote-group rule; negative: none.
	RulesPerPort int
	// Chassis is the number of chassis; default one per
	// DefaultPortsPerChassis ports.
	Chassis int
	// RemoteGroupRules adds to every group an ingress rule whose remote
	// group is the group itself.
	RemoteGroupRules bool
	// NetworksPerGroup is the number of networks sharing a security group.
	NetworksPerGroup int
	// AddressPairEvery gives every n-th port an allowed address pair;
	// negative: none.
	AddressPairEvery int
	// NoPortSecurityEvery turns port security off on every n-th port;
	// negative: none.
	NoPortSecurityEvery int
	// RouteEvery gives every n-th router an extra route; negative: none.
	RouteEvery int
	// OverlappingCIDRs makes every tenant reuse the same subnet CIDRs.
	OverlappingCIDRs bool
	// DualStack gives every network an IPv6 subnet too (fd00:N::/64),
	// every VM port an address on it, every router an IPv6 interface on
	// it (a port of its own, as Neutron adds one) and, with its IPv4
	// extra route, an IPv6 one.
	DualStack bool
	// Seed drives the ids, MACs and the chassis of each port.
	Seed int64
	// Batch is the number of ports per PortCreateRequest (and bindings per
	// PortBindRequest and PortStatusRequest).
	Batch int
	// BindCommands binds the ports as the control plane does: created
	// unbound, then bound by PortBindRequests and set ACTIVE by
	// PortStatusRequests (three writes per port: Build takes about twice as
	// long). Without it the ports are created already bound and ACTIVE:
	// the same state but for the ports' RevisionNumber and ModifyIndex.
	BindCommands bool
}

// DefaultSpec is the benchmarks' topology for a number of VM ports.
func DefaultSpec(ports int) Spec {
	return Spec{Ports: ports, RemoteGroupRules: true}.Normalize()
}

// Normalize returns the Spec with every zero int field set to its default.
func (s Spec) Normalize() Spec {
	def := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	def(&s.PortsPerNetwork, DefaultPortsPerNetwork)
	def(&s.NetworksPerRouter, DefaultNetworksPerRouter)
	def(&s.RulesPerPort, DefaultRulesPerPort)
	def(&s.Chassis, max(1, ceilDiv(s.Ports, DefaultPortsPerChassis)))
	def(&s.NetworksPerGroup, DefaultNetworksPerGroup)
	def(&s.AddressPairEvery, DefaultAddressPairEvery)
	def(&s.NoPortSecurityEvery, DefaultNoPortSecurityEvery)
	def(&s.RouteEvery, DefaultRouteEvery)
	def(&s.Batch, DefaultBatch)
	return s
}

// Counts are the rows a Spec's topology has.
type Counts struct {
	Chassis          int
	Networks         int
	Subnets          int
	Routers          int
	RouterInterfaces int
	ExtraRoutes      int
	SecurityGroups   int
	Rules            int
	// Ports counts every port: VM ports and router interfaces.
	Ports          int
	VMPorts        int
	AddressPairs   int // VM ports with an allowed address pair
	NoPortSecurity int // VM ports with port security off
}

// Expect returns the rows Build creates for the Spec.
func (s Spec) Expect() Counts {
	s = s.Normalize()
	var c Counts
	c.Chassis = s.Chassis
	c.Networks = ceilDiv(s.Ports, s.PortsPerNetwork)
	c.Subnets = c.Networks
	c.Routers = ceilDiv(c.Networks, s.NetworksPerRouter)
	c.RouterInterfaces = c.Networks
	for r := 0; r < c.Routers; r++ {
		if s.hasRoute(r) {
			c.ExtraRoutes++
		}
	}
	if s.DualStack {
		c.Subnets *= 2
		c.RouterInterfaces *= 2
		c.ExtraRoutes *= 2
	}
	c.SecurityGroups = ceilDiv(c.Networks, s.NetworksPerGroup)
	c.Rules = c.SecurityGroups * s.rulesPerGroup()
	c.VMPorts = s.Ports
	c.Ports = s.Ports + c.RouterInterfaces
	for k := 0; k < s.Ports; k++ {
		switch {
		case s.noPortSecurity(k):
			c.NoPortSecurity++
		case s.addressPair(k):
			c.AddressPairs++
		}
	}
	return c
}

func (s Spec) rulesPerGroup() int {
	n := max(0, s.RulesPerPort)
	if s.RemoteGroupRules {
		n++
	}
	return n
}

func (s Spec) hasRoute(r int) bool { return s.RouteEvery > 0 && r%s.RouteEvery == 0 }

func (s Spec) noPortSecurity(k int) bool {
	return s.NoPortSecurityEvery > 0 && k%s.NoPortSecurityEvery == s.NoPortSecurityEvery-1
}

func (s Spec) addressPair(k int) bool {
	return s.AddressPairEvery > 0 && k%s.AddressPairEvery == 1%s.AddressPairEvery
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// Applier applies commands to an FSM as Raft would, at increasing indexes
// after the FSM's revision.
type Applier struct {
	f     *fsm.FSM
	index uint64
}

// NewApplier applies to f from its current revision on.
func NewApplier(f *fsm.FSM) *Applier { return &Applier{f: f, index: f.State().Read().Revision()} }

// Apply applies one command and returns its index; a refusal is an error.
func (a *Applier) Apply(t fsm.CommandType, body any) (uint64, error) {
	buf, err := fsm.Encode(t, body)
	if err != nil {
		return 0, err
	}
	a.index++
	res, ok := a.f.Apply(&raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: buf}).(*fsm.Result)
	if !ok {
		return 0, fmt.Errorf("%s at index %d: unexpected apply result", t, a.index)
	}
	if res.Err != nil {
		return 0, fmt.Errorf("%s at index %d: %w", t, a.index, res.Err)
	}
	return a.index, nil
}

// subnetPlan is the address layout of one network's subnet.
type subnetPlan struct {
	prefix netip.Prefix
	base   uint32 // network address
	size   uint32 // addresses in the prefix
}

func (p subnetPlan) addr(off uint32) string { return u32Addr(p.base + off).String() }

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// vmOffset is the host offset of a network's first VM port.
const vmOffset = 10

func netTypeOf(i int) (string, int) {
	switch i % 10 {
	case 3:
		return fsm.NetTypeGeneve, 1442
	case 7:
		return fsm.NetTypeGRE, 1458
	}
	return fsm.NetTypeVXLAN, 1450
}

// ChassisName is the name Build gives chassis i.
func ChassisName(i int) string { return fmt.Sprintf("chassis-%d", i) }

func chassisRecord(i int, ts string) *fsm.Chassis {
	name := ChassisName(i)
	encaps := []string{fsm.NetTypeVXLAN, fsm.NetTypeGeneve, fsm.NetTypeGRE}
	if i%16 == 15 {
		encaps = encaps[:2]
	}
	// Every fourth chassis is a gateway; gateways and every other chassis
	// map the external physical networks (ext0-ext7) too: those do
	// distributed floating IPs.
	roles := []string{"compute"}
	mappings := map[string]string{"physnet1": "br-ex"}
	if i%2 == 1 {
		for j := 0; j < 8; j++ {
			mappings[fmt.Sprintf("ext%d", j)] = fmt.Sprintf("br-ext%d", j)
		}
	}
	if i%4 == 3 {
		roles = []string{"gateway"}
	}
	return &fsm.Chassis{
		Meta:           fsm.Meta{ID: name, Name: name, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
		TunnelIP:       fmt.Sprintf("10.250.%d.%d", i/250, i%250+1),
		OVSDB:          "unix:/var/run/openvswitch/db.sock",
		Roles:          roles,
		BridgeMappings: mappings,
		Encaps:         encaps,
		DatapathType:   "system",
		DatapathID:     fsm.ChassisDatapathID(name),
		Up:             true,
		LastSeen:       ts,
	}
}

// Build creates the Spec's topology in a fresh FSM (see the package doc).
func Build(s Spec) (*fsm.FSM, error) {
	s = s.Normalize()
	switch {
	case s.Ports <= 0:
		return nil, errors.New("topology: Spec.Ports must be positive")
	case s.PortsPerNetwork < 0 || s.NetworksPerRouter < 0 || s.Chassis < 0 || s.NetworksPerGroup < 0 || s.Batch < 0:
		return nil, errors.New("topology: negative Spec field")
	case s.Chassis > 250*256:
		return nil, fmt.Errorf("topology: %d chassis do not fit in 10.250.0.0/16", s.Chassis)
	}
	exp := s.Expect()
	g := &gen{Spec: s, rng: rand.New(rand.NewPCG(uint64(s.Seed), 0x70706f6c6f6779)), ts: Timestamp}
	a := NewApplier(fsm.New(slog.New(slog.DiscardHandler)))

	// Subnet layout: the smallest prefix (at most /24) that holds the VM
	// ports after vmOffset plus the VIP, the route nexthop and broadcast.
	bits := 8
	for (1 << bits) < vmOffset+s.PortsPerNetwork+3 {
		bits++
	}
	if bits > 24 {
		return nil, fmt.Errorf("topology: %d ports per network is too many", s.PortsPerNetwork)
	}
	blocks := exp.Networks
	if s.OverlappingCIDRs {
		blocks = min(blocks, s.NetworksPerRouter)
	}
	const base10, top = uint32(10) << 24, uint32(10)<<24 | 250<<16
	if uint64(base10)+uint64(blocks)<<bits > uint64(top) {
		return nil, fmt.Errorf("topology: %d subnets of /%d do not fit in 10.0.0.0-10.249.255.255", blocks, 32-bits)
	}
	plans := make([]subnetPlan, exp.Networks)
	for i := range plans {
		blk := i
		if s.OverlappingCIDRs {
			blk = i % s.NetworksPerRouter
		}
		b := base10 + uint32(blk)<<bits
		plans[i] = subnetPlan{prefix: netip.PrefixFrom(u32Addr(b), 32-bits), base: b, size: 1 << bits}
	}

	// Chassis.
	chassis := make([]*fsm.Chassis, s.Chassis)
	for i := range chassis {
		chassis[i] = chassisRecord(i, g.ts)
	}
	if _, err := a.Apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: chassis}); err != nil {
		return nil, err
	}

	// Projects (one per router) and networks.
	projects := make([]string, exp.Routers)
	for r := range projects {
		projects[r] = g.hexID()
	}
	netIDs := make([]string, exp.Networks)
	subIDs := make([]string, exp.Networks)
	for i := range netIDs {
		netIDs[i], subIDs[i] = g.uuid(), g.uuid()
	}
	project := func(i int) string { return projects[i/s.NetworksPerRouter] }
	for lo := 0; lo < exp.Networks; lo += s.Batch {
		var nets []*fsm.Network
		for i := lo; i < min(lo+s.Batch, exp.Networks); i++ {
			typ, mtu := netTypeOf(i)
			nets = append(nets, &fsm.Network{
				Meta:         g.meta(netIDs[i], project(i), fmt.Sprintf("net-%d", i)),
				AdminStateUp: true, Status: "ACTIVE", MTU: mtu,
				NetworkType: typ, SegmentationID: 1000 + i, PortSecurityEnabled: true,
			})
		}
		if _, err := a.Apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: nets}); err != nil {
			return nil, err
		}
	}
	for lo := 0; lo < exp.Networks; lo += s.Batch {
		var subs []*fsm.Subnet
		for i := lo; i < min(lo+s.Batch, exp.Networks); i++ {
			p := plans[i]
			subs = append(subs, &fsm.Subnet{
				Meta:      g.meta(subIDs[i], project(i), fmt.Sprintf("subnet-%d", i)),
				NetworkID: netIDs[i], IPVersion: 4, CIDR: p.prefix.String(), GatewayIP: p.addr(1),
				AllocationPools: []fsm.IPRange{{Start: p.addr(2), End: p.addr(p.size - 2)}},
				EnableDHCP:      true, DNSNameservers: []string{},
				HostRoutes: []fsm.HostRoute{},
			})
		}
		if _, err := a.Apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: subs}); err != nil {
			return nil, err
		}
	}
	var sub6IDs []string
	plan6 := func(i int) netip.Prefix {
		blk := i
		if s.OverlappingCIDRs {
			blk = i % s.NetworksPerRouter
		}
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, byte(blk >> 24), byte(blk >> 16), byte(blk >> 8), byte(blk)}), 64)
	}
	addr6 := func(i int, host uint16) string {
		b := plan6(i).Addr().As16()
		b[14], b[15] = byte(host>>8), byte(host)
		return netip.AddrFrom16(b).String()
	}
	if s.DualStack {
		sub6IDs = make([]string, exp.Networks)
		for lo := 0; lo < exp.Networks; lo += s.Batch {
			var subs []*fsm.Subnet
			for i := lo; i < min(lo+s.Batch, exp.Networks); i++ {
				sub6IDs[i] = g.uuid()
				subs = append(subs, &fsm.Subnet{
					Meta:      g.meta(sub6IDs[i], project(i), fmt.Sprintf("subnet6-%d", i)),
					NetworkID: netIDs[i], IPVersion: 6, CIDR: plan6(i).String(), GatewayIP: addr6(i, 1),
					AllocationPools: []fsm.IPRange{{Start: addr6(i, 2), End: addr6(i, 0xfffe)}},
					EnableDHCP:      true, DNSNameservers: []string{},
					HostRoutes: []fsm.HostRoute{},
				})
			}
			if _, err := a.Apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: subs}); err != nil {
				return nil, err
			}
		}
	}

	// Security groups.
	groupIDs := make([]string, exp.SecurityGroups)
	var bundles []*fsm.SecurityGroupBundle
	for k := range groupIDs {
		groupIDs[k] = g.uuid()
		bundles = append(bundles, g.groupBundle(k, groupIDs[k], project(k*s.NetworksPerGroup)))
		if len(bundles) == max(1, s.Batch/10) || k == len(groupIDs)-1 {
			if _, err := a.Apply(fsm.CmdSecurityGroupCreate, fsm.SecurityGroupCreateRequest{Groups: bundles}); err != nil {
				return nil, err
			}
			bundles = nil
		}
	}

	// Routers, their interfaces and extra routes.
	for r := 0; r < exp.Routers; r++ {
		rt := &fsm.Router{
			Meta:         g.meta(g.uuid(), projects[r], fmt.Sprintf("router-%d", r)),
			AdminStateUp: true, Status: "ACTIVE", Routes: []fsm.Route{},
		}
		idx, err := a.Apply(fsm.CmdRouterCreate, fsm.RouterCreateRequest{Router: rt})
		if err != nil {
			return nil, err
		}
		first := r * s.NetworksPerRouter
		for i := first; i < min(first+s.NetworksPerRouter, exp.Networks); i++ {
			next := rt.Copy()
			next.RevisionNumber++
			port := &fsm.Port{
				Meta:      g.meta(g.uuid(), projects[r], ""),
				NetworkID: netIDs[i], MACAddress: g.mac(),
				FixedIPs: []fsm.FixedIP{{SubnetID: subIDs[i], IPAddress: plans[i].addr(1)}},
				DeviceID: rt.ID, DeviceOwner: fsm.DeviceOwnerRouterInterface,
				AdminStateUp: true, Status: fsm.PortStatusActive,
				BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
			}
			if idx, err = a.Apply(fsm.CmdRouterInterfaceAdd, fsm.RouterInterfaceAddRequest{Router: next, PrevIndex: idx, Port: port}); err != nil {
				return nil, err
			}
			rt = next
			if !s.DualStack {
				continue
			}
			next = rt.Copy()
			next.RevisionNumber++
			port6 := port.Copy()
			port6.ID, port6.MACAddress = g.uuid(), g.mac()
			port6.FixedIPs = []fsm.FixedIP{{SubnetID: sub6IDs[i], IPAddress: addr6(i, 1)}}
			if idx, err = a.Apply(fsm.CmdRouterInterfaceAdd, fsm.RouterInterfaceAddRequest{Router: next, PrevIndex: idx, Port: port6}); err != nil {
				return nil, err
			}
			rt = next
		}
		if s.hasRoute(r) {
			next := rt.Copy()
			next.RevisionNumber++
			next.Routes = []fsm.Route{{Destination: fmt.Sprintf("192.168.%d.0/24", r%256), NextHop: plans[first].addr(plans[first].size - 2)}}
			if s.DualStack {
				next.Routes = append(next.Routes, fsm.Route{Destination: fmt.Sprintf("fd99:%x::/64", r%65536), NextHop: addr6(first, 0xfffe)})
			}
			if _, err = a.Apply(fsm.CmdRouterUpdate, fsm.RouterUpdateRequest{Router: next, PrevIndex: idx}); err != nil {
				return nil, err
			}
		}
	}

	// VM ports and their bindings. The placement has a generator of its
	// own so that both binding modes give the same state.
	place := rand.New(rand.NewPCG(uint64(s.Seed), 0x706c616365))
	nextOF := make([]int, s.Chassis)
	boundTo := make([]int, s.Ports)
	ofport := make([]int, s.Ports)
	for k := range boundTo {
		c := place.IntN(s.Chassis)
		boundTo[k], ofport[k] = c, firstOFPort+nextOF[c]
		nextOF[c]++
	}
	portIDs := make([]string, s.Ports)
	var ports []*fsm.Port
	for k := 0; k < s.Ports; k++ {
		i, j := k/s.PortsPerNetwork, k%s.PortsPerNetwork
		pl := plans[i]
		portIDs[k] = g.uuid()
		p := &fsm.Port{
			Meta:      g.meta(portIDs[k], project(i), fmt.Sprintf("vm-%d-eth0", k)),
			NetworkID: netIDs[i], MACAddress: g.mac(),
			FixedIPs: []fsm.FixedIP{{SubnetID: subIDs[i], IPAddress: pl.addr(uint32(vmOffset + j))}},
			DeviceID: g.uuid(), DeviceOwner: "compute:nova",
			AdminStateUp: true, Status: fsm.PortStatusDown,
			BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
			PortSecurityEnabled: true,
			SecurityGroups:      []string{groupIDs[i/s.NetworksPerGroup]},
			AllowedAddressPairs: []fsm.AddressPair{},
		}
		if s.DualStack {
			p.FixedIPs = append(p.FixedIPs, fsm.FixedIP{SubnetID: sub6IDs[i], IPAddress: addr6(i, uint16(vmOffset+j))})
		}
		switch {
		case s.noPortSecurity(k):
			p.PortSecurityEnabled, p.SecurityGroups = false, []string{}
		case s.addressPair(k):
			p.AllowedAddressPairs = []fsm.AddressPair{{IPAddress: pl.addr(pl.size - 3), MACAddress: p.MACAddress}}
		}
		if !s.BindCommands {
			p.BindingHostID, p.BindingVIFType, p.BindingOFPort = chassis[boundTo[k]].Name, fsm.VIFTypeOVS, ofport[k]
			p.Status = fsm.PortStatusActive
		}
		ports = append(ports, p)
		if len(ports) == s.Batch || k == s.Ports-1 {
			if _, err := a.Apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ports}); err != nil {
				return nil, err
			}
			ports = nil
		}
	}
	if !s.BindCommands {
		return a.f, nil
	}
	var binds []fsm.PortBinding
	for k, id := range portIDs {
		binds = append(binds, fsm.PortBinding{PortID: id, Chassis: chassis[boundTo[k]].Name, OFPort: ofport[k]})
		if len(binds) == s.Batch || k == len(portIDs)-1 {
			if _, err := a.Apply(fsm.CmdPortBind, fsm.PortBindRequest{Bindings: binds, At: g.ts}); err != nil {
				return nil, err
			}
			binds = nil
		}
	}
	// The chassis realized their ports: ACTIVE, as the leader's
	// controller reports it.
	var status []fsm.PortStatusChange
	for k, id := range portIDs {
		status = append(status, fsm.PortStatusChange{PortID: id, Chassis: chassis[boundTo[k]].Name, Status: fsm.PortStatusActive})
		if len(status) == s.Batch || k == len(portIDs)-1 {
			if _, err := a.Apply(fsm.CmdPortStatus, fsm.PortStatusRequest{Ports: status, At: g.ts}); err != nil {
				return nil, err
			}
			status = nil
		}
	}
	return a.f, nil
}

// firstOFPort is the lowest OpenFlow port number given to a VIF.
const firstOFPort = 10

// gen makes ids, MACs and objects.
type gen struct {
	Spec
	rng  *rand.Rand
	ts   string
	macN uint32
}

func (g *gen) meta(id, project, name string) fsm.Meta {
	return fsm.Meta{ID: id, ProjectID: project, Name: name, RevisionNumber: 1, CreatedAt: g.ts, UpdatedAt: g.ts}
}

func (g *gen) uuid() string { return uuidFrom(g.rng) }

func (g *gen) hexID() string { return fmt.Sprintf("%016x%016x", g.rng.Uint64(), g.rng.Uint64()) }

// mac returns the next of 2^24 distinct MACs in fa:16:3e, in a scrambled
// order (an odd multiplier is a bijection modulo 2^24).
func (g *gen) mac() string {
	v := (g.macN*0x9e3779b1 + uint32(g.Seed)) & 0xffffff
	g.macN++
	return macString(v)
}

func macString(v uint32) string {
	return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", byte(v>>16), byte(v>>8), byte(v))
}

func uuidFrom(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		uint32(a>>32), uint16(a>>16), uint16(a)&0xfff, uint16(b>>48)&0x3fff|0x8000, b&0xffffffffffff)
}

func intp(i int) *int { return &i }

// groupBundle is security group k with its rules (see the package doc).
func (g *gen) groupBundle(k int, id, project string) *fsm.SecurityGroupBundle {
	grp := &fsm.SecurityGroup{Meta: g.meta(id, project, fmt.Sprintf("sg-%d", k)), Stateful: true}
	b := &fsm.SecurityGroupBundle{Group: grp}
	rule := func(dir, proto string, lo, hi *int, prefix, remote string) {
		b.Rules = append(b.Rules, &fsm.SecurityGroupRule{
			Meta:            g.meta(g.uuid(), project, ""),
			SecurityGroupID: id, Direction: dir, EtherType: fsm.EtherTypeIPv4,
			Protocol: proto, PortRangeMin: lo, PortRangeMax: hi, RemoteIPPrefix: prefix, RemoteGroupID: remote,
		})
	}
	for n := 0; n < g.RulesPerPort; n++ {
		switch n {
		case 0:
			rule(fsm.DirectionIngress, "icmp", nil, nil, "0.0.0.0/0", "")
		case 1:
			rule(fsm.DirectionIngress, "tcp", intp(22), intp(22), "", "")
		case 2:
			lo := 8000 + 100*(k%10)
			rule(fsm.DirectionIngress, "tcp", intp(lo), intp(lo+99), "", "")
		case 3:
			rule(fsm.DirectionEgress, "", nil, nil, "", "")
		case 4:
			rule(fsm.DirectionIngress, "udp", intp(53), intp(53), "10.0.0.0/8", "")
		default:
			m := n - 5
			rule(fsm.DirectionIngress, "tcp", intp(1000+m), intp(1000+m), fmt.Sprintf("192.0.2.%d/32", m%256), "")
		}
	}
	if g.RemoteGroupRules {
		rule(fsm.DirectionIngress, "", nil, nil, "", id)
	}
	return b
}

// Bindings returns the ports bound to a chassis: port id -> ofport.
func Bindings(v *fsm.View, chassis string) map[string]uint32 {
	out := map[string]uint32{}
	for _, p := range v.PortsOnChassis(chassis) {
		if p.BindingOFPort > 0 {
			out[p.ID] = uint32(p.BindingOFPort)
		}
	}
	return out
}

// AllBindings returns Bindings for every chassis with a bound port, in one
// pass over the ports.
func AllBindings(v *fsm.View) map[string]map[string]uint32 {
	out := map[string]map[string]uint32{}
	for _, p := range v.Ports() {
		if p.BindingHostID == "" || p.BindingOFPort <= 0 {
			continue
		}
		m := out[p.BindingHostID]
		if m == nil {
			m = map[string]uint32{}
			out[p.BindingHostID] = m
		}
		m[p.ID] = uint32(p.BindingOFPort)
	}
	return out
}

// Physnets returns the localnet ports a chassis would have for its bridge
// mappings in v: physnet -> ofport (60000 up, in name order, clear of the
// ofports Build gives VIFs).
func Physnets(v *fsm.View, chassis string) map[string]uint32 {
	out := map[string]uint32{}
	c := v.Chassis(chassis)
	if c == nil {
		return out
	}
	for i, name := range slices.Sorted(maps.Keys(c.BridgeMappings)) {
		out[name] = uint32(60000 + i)
	}
	return out
}
