package pipeline

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// state builds an FSM by applying commands, as Raft would.
type state struct {
	t     testing.TB
	f     *fsm.FSM
	index uint64
}

func newState(t testing.TB) *state { return &state{t: t, f: fsm.New(nil)} }

func (s *state) apply(typ fsm.CommandType, body any) {
	s.t.Helper()
	buf, err := fsm.Encode(typ, body)
	if err != nil {
		s.t.Fatal(err)
	}
	s.index++
	if r := s.f.Apply(&raft.Log{Index: s.index, Data: buf}).(*fsm.Result); r.Err != nil {
		s.t.Fatalf("%s: %v", typ, r.Err)
	}
}

func network(id, typ string, seg int) *fsm.Network {
	return &fsm.Network{Meta: fsm.Meta{ID: id, ProjectID: "p"}, NetworkType: typ, SegmentationID: seg, AdminStateUp: true}
}

func port(id, netID, mac, host string) *fsm.Port {
	p := &fsm.Port{Meta: fsm.Meta{ID: id, ProjectID: "p"}, NetworkID: netID, MACAddress: mac, AdminStateUp: true, Status: "DOWN"}
	if host != "" {
		p.BindingHostID, p.BindingVIFType, p.Status = host, fsm.VIFTypeOVS, fsm.PortStatusActive
	}
	return p
}

func chassis(name, ip string, encaps ...string) *fsm.Chassis {
	return &fsm.Chassis{Meta: fsm.Meta{ID: name, Name: name}, TunnelIP: ip, Encaps: encaps, Up: true, DatapathID: fsm.ChassisDatapathID(name)}
}

// topology: three chassis; a VXLAN network spread over all of them, a GRE
// network on ch1 and ch2, a Geneve network only on ch3 (no flows on ch1),
// a VLAN network (not carried yet) and an unbound port.
func topology(t testing.TB) *fsm.View {
	s := newState(t)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{
		chassis("ch1", "192.0.2.1"), chassis("ch2", "192.0.2.2", "vxlan", "gre"), chassis("ch3", "192.0.2.3", "vxlan", "geneve"),
	}})
	vlan := network("net-vlan", fsm.NetTypeVLAN, 10)
	vlan.PhysicalNetwork = "physnet1"
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{
		network("net-a", fsm.NetTypeVXLAN, 1001), network("net-b", fsm.NetTypeGRE, 1001),
		network("net-c", fsm.NetTypeGeneve, 5000), vlan,
	}})
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{
		port("pa1", "net-a", "fa:16:3e:00:00:01", "ch1"),
		port("pa2", "net-a", "fa:16:3e:00:00:02", "ch1"),
		port("pa3", "net-a", "fa:16:3e:00:00:03", "ch2"),
		port("pa4", "net-a", "fa:16:3e:00:00:04", "ch3"),
		port("pa5", "net-a", "fa:16:3e:00:00:05", ""),
		port("pb1", "net-b", "fa:16:3e:00:01:01", "ch1"),
		port("pb2", "net-b", "fa:16:3e:00:01:02", "ch2"),
		port("pb3", "net-b", "fa:16:3e:00:01:03", "ch3"), // ch3 has no GRE
		port("pc1", "net-c", "fa:16:3e:00:02:01", "ch3"),
		port("pv1", "net-vlan", "fa:16:3e:00:03:01", "ch1"),
	}})
	return s.f.State().Read()
}

func intp(i int) *int { return &i }

// routedTopology: two tenant networks (VXLAN 10.0.1.0/24 and Geneve
// 10.0.2.0/24) joined by a router with an extra route; a security group
// "web" (ICMP, TCP 22, TCP 80 from its own members, any egress); a port
// with an allowed address pair and one without port security. Both
// networks also have an IPv6 subnet (fd00:a::/64, fd00:b::/64) on which
// pa2 and pb2 have addresses; r1 has an IPv6 interface on each (ports of
// their own, as Neutron adds them) and an IPv6 extra route.
func routedTopology(t testing.TB) *fsm.View {
	s := newState(t)
	buildRouted(s)
	return s.f.State().Read()
}

func buildRouted(s *state) {
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{
		chassis("ch1", "192.0.2.1"), chassis("ch2", "192.0.2.2"), chassis("ch3", "192.0.2.3"),
	}})
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{
		network("net-a", fsm.NetTypeVXLAN, 1001), network("net-b", fsm.NetTypeGeneve, 2002),
	}})
	subnet := func(id, netID, cidr, gw string) *fsm.Subnet {
		return &fsm.Subnet{Meta: fsm.Meta{ID: id, ProjectID: "p"}, NetworkID: netID, IPVersion: 4, CIDR: cidr, GatewayIP: gw}
	}
	s.apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: []*fsm.Subnet{
		subnet("sub-a", "net-a", "10.0.1.0/24", "10.0.1.1"), subnet("sub-b", "net-b", "10.0.2.0/24", "10.0.2.1"),
	}})
	sub6 := subnet("sub-a6", "net-a", "fd00:a::/64", "fd00:a::1")
	sub6b := subnet("sub-b6", "net-b", "fd00:b::/64", "fd00:b::1")
	sub6.IPVersion, sub6b.IPVersion = 6, 6
	s.apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: []*fsm.Subnet{sub6, sub6b}})
	rule := func(id, dir, proto string, lo, hi *int, remoteGroup string) *fsm.SecurityGroupRule {
		return &fsm.SecurityGroupRule{Meta: fsm.Meta{ID: id, ProjectID: "p"}, SecurityGroupID: "web", Direction: dir,
			EtherType: fsm.EtherTypeIPv4, Protocol: proto, PortRangeMin: lo, PortRangeMax: hi, RemoteGroupID: remoteGroup}
	}
	s.apply(fsm.CmdSecurityGroupCreate, fsm.SecurityGroupCreateRequest{Groups: []*fsm.SecurityGroupBundle{{
		Group: &fsm.SecurityGroup{Meta: fsm.Meta{ID: "web", ProjectID: "p"}, Stateful: true},
		Rules: []*fsm.SecurityGroupRule{
			rule("r-icmp", fsm.DirectionIngress, "icmp", nil, nil, ""),
			rule("r-ssh", fsm.DirectionIngress, "tcp", intp(22), intp(22), ""),
			rule("r-web", fsm.DirectionIngress, "tcp", intp(80), intp(81), "web"),
			rule("r-out", fsm.DirectionEgress, "", nil, nil, ""),
		},
	}}})
	vm := func(id, netID, sub, ip, mac, host string, secured bool) *fsm.Port {
		p := port(id, netID, mac, host)
		p.FixedIPs = []fsm.FixedIP{{SubnetID: sub, IPAddress: ip}}
		if secured {
			p.PortSecurityEnabled, p.SecurityGroups = true, []string{"web"}
		}
		return p
	}
	pa1 := vm("pa1", "net-a", "sub-a", "10.0.1.10", "fa:16:3e:00:00:01", "ch1", true)
	pa1.AllowedAddressPairs = []fsm.AddressPair{{IPAddress: "10.0.1.100"}}
	// pa2 also has an IPv6 address (port security, ND responder).
	pa2 := vm("pa2", "net-a", "sub-a", "10.0.1.11", "fa:16:3e:00:00:02", "ch2", true)
	pa2.FixedIPs = append(pa2.FixedIPs, fsm.FixedIP{SubnetID: "sub-a6", IPAddress: "fd00:a::11"})
	pb2 := vm("pb2", "net-b", "sub-b", "10.0.2.20", "fa:16:3e:00:01:02", "ch3", true)
	pb2.FixedIPs = append(pb2.FixedIPs, fsm.FixedIP{SubnetID: "sub-b6", IPAddress: "fd00:b::20"})
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{
		pa1,
		pa2,
		vm("pb1", "net-b", "sub-b", "10.0.2.10", "fa:16:3e:00:01:01", "ch2", false),
		pb2,
	}})
	s.apply(fsm.CmdRouterCreate, fsm.RouterCreateRequest{Router: &fsm.Router{Meta: fsm.Meta{ID: "r1", ProjectID: "p"}, AdminStateUp: true}})
	for i, sub := range []string{"sub-a", "sub-b", "sub-a6", "sub-b6"} {
		net, ip := []string{"net-a", "net-b", "net-a", "net-b"}[i], []string{"10.0.1.1", "10.0.2.1", "fd00:a::1", "fd00:b::1"}[i]
		id := "ri-" + net
		if i >= 2 {
			id = "ri6-" + net
		}
		r := s.f.State().Read().Router("r1")
		p := port(id, net, fmt.Sprintf("fa:16:3e:ff:00:0%d", i+1), "")
		p.DeviceOwner, p.DeviceID = fsm.DeviceOwnerRouterInterface, "r1"
		p.FixedIPs = []fsm.FixedIP{{SubnetID: sub, IPAddress: ip}}
		s.apply(fsm.CmdRouterInterfaceAdd, fsm.RouterInterfaceAddRequest{Router: r.Copy(), PrevIndex: r.ModifyIndex, Port: p})
	}
	r := s.f.State().Read().Router("r1")
	nr := r.Copy()
	nr.Routes = []fsm.Route{{Destination: "192.168.0.0/24", NextHop: "10.0.2.20"}, {Destination: "fd00:c::/64", NextHop: "fd00:b::20"}}
	s.apply(fsm.CmdRouterUpdate, fsm.RouterUpdateRequest{Router: nr, PrevIndex: r.ModifyIndex})
}

// externalTopology is routedTopology with an external flat network
// (physnet "external", 198.51.100.0/24 via 198.51.100.1) as r1's gateway
// (SNAT on), bound to gateway chassis gw1; ch1 maps the physnet too, so
// pa1's floating IP is distributed (NAT on ch1) while pb1's (on ch2, which
// does not map it) is served by gw1. A VLAN external network (physnet
// "external-vlan", VLAN 101) has a port of a VM on ch1.
func externalTopology(t testing.TB) *fsm.View {
	s := newState(t)
	buildExternal(s)
	return s.f.State().Read()
}

func buildExternal(s *state) {
	buildRouted(s)
	gw := chassis("gw1", "192.0.2.9")
	gw.Roles = []string{"gateway"}
	gw.BridgeMappings = map[string]string{"external": "br-ex", "external-vlan": "br-vlan"}
	ch1 := chassis("ch1", "192.0.2.1")
	ch1.BridgeMappings = map[string]string{"external": "br-ex", "external-vlan": "br-vlan"}
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{gw, ch1}})
	ext := network("ext", fsm.NetTypeFlat, 0)
	ext.PhysicalNetwork, ext.External = "external", true
	extv := network("extv", fsm.NetTypeVLAN, 101)
	extv.PhysicalNetwork = "external-vlan"
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{ext, extv}})
	s.apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: []*fsm.Subnet{
		{Meta: fsm.Meta{ID: "sub-ext", ProjectID: "p"}, NetworkID: "ext", IPVersion: 4, CIDR: "198.51.100.0/24", GatewayIP: "198.51.100.1"},
		{Meta: fsm.Meta{ID: "sub-extv", ProjectID: "p"}, NetworkID: "extv", IPVersion: 4, CIDR: "203.0.113.0/24", GatewayIP: "203.0.113.1"},
	}})
	pv := port("pv1", "extv", "fa:16:3e:00:03:01", "ch1")
	pv.FixedIPs = []fsm.FixedIP{{SubnetID: "sub-extv", IPAddress: "203.0.113.10"}}
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{pv}})
	r := s.f.State().Read().Router("r1")
	nr := r.Copy()
	nr.Gateway = &fsm.ExternalGateway{NetworkID: "ext", EnableSNAT: true}
	gp := port("gw-r1", "ext", "fa:16:3e:ee:00:01", "")
	gp.DeviceOwner, gp.DeviceID = fsm.DeviceOwnerRouterGateway, "r1"
	gp.FixedIPs = []fsm.FixedIP{{SubnetID: "sub-ext", IPAddress: "198.51.100.2"}}
	s.apply(fsm.CmdRouterUpdate, fsm.RouterUpdateRequest{Router: nr, PrevIndex: r.ModifyIndex, GatewayPort: gp})
	if got := s.f.State().Read().Port("gw-r1"); got.BindingHostID == "" {
		s.apply(fsm.CmdPortBind, fsm.PortBindRequest{Bindings: []fsm.PortBinding{{PortID: "gw-r1", Chassis: "gw1"}}})
	}
	for i, fp := range []struct{ vm, fixed string }{{"pa1", "10.0.1.10"}, {"pb1", "10.0.2.10"}} {
		id := fmt.Sprintf("fip%d", i+1)
		addr := fmt.Sprintf("198.51.100.%d", 51+i)
		p := port("fp-"+id, "ext", fmt.Sprintf("fa:16:3e:ee:01:0%d", i+1), "")
		p.DeviceOwner, p.DeviceID = fsm.DeviceOwnerFloatingIP, id
		p.FixedIPs = []fsm.FixedIP{{SubnetID: "sub-ext", IPAddress: addr}}
		s.apply(fsm.CmdFloatingIPCreate, fsm.FloatingIPCreateRequest{Port: p, FloatingIP: &fsm.FloatingIP{
			Meta: fsm.Meta{ID: id, ProjectID: "p"}, FloatingNetworkID: "ext", FloatingSubnetID: "sub-ext",
			FloatingIPAddress: addr, FloatingPortID: p.ID, PortID: fp.vm, FixedIPAddress: fp.fixed}})
	}
	s.apply(fsm.CmdMacBindingSet, fsm.MacBindingSetRequest{Bindings: []fsm.MacBinding{{NetworkID: "ext", IP: "198.51.100.1", MAC: "02:00:00:00:01:01"}}})
}

func render(flows []openflow.Flow) string {
	var sb strings.Builder
	for i := range flows {
		sb.WriteString(flows[i].String())
		sb.WriteByte('\n')
	}
	return sb.String()
}

func TestCompileGolden(t *testing.T) {
	v := topology(t)
	routed := routedTopology(t)
	views := map[string]*fsm.View{}
	cases := map[string]Facts{
		// Routed: ch1 has pa1 (net-a) only, so net-b is present through
		// the router; ch2 has pa2 (net-a) and pb1 (no port security).
		"routed-ch1": {Chassis: "ch1", Bindings: map[string]uint32{"pa1": 5},
			Tunnels: map[string]uint32{"vxlan": 1, "geneve": 3}},
		"routed-ch2": {Chassis: "ch2", Bindings: map[string]uint32{"pa2": 5, "pb1": 6},
			Tunnels: map[string]uint32{"vxlan": 1, "geneve": 3}},
		"ch1": {Chassis: "ch1",
			Bindings: map[string]uint32{"pa1": 1, "pa2": 2, "pb1": 3, "pv1": 4},
			Tunnels:  map[string]uint32{"vxlan": 10, "gre": 11, "geneve": 12}},
		// ch2 has a binding the state does not know yet (plugged, not
		// committed): local flows come from facts alone.
		"ch2": {Chassis: "ch2",
			Bindings: map[string]uint32{"pa3": 7, "pb2": 8},
			Tunnels:  map[string]uint32{"vxlan": 1, "gre": 2}},
		// ch3 has no tunnel ports yet: local delivery only.
		"ch3": {Chassis: "ch3", Bindings: map[string]uint32{"pa4": 1, "pc1": 2}},
		// External: gw1 is r1's gateway and serves pb1's floating IP; ch1
		// does pa1's floating IP itself and has a VM on the VLAN network;
		// ch2 sends what leaves through the gateway to gw1.
		"external-gw1": {Chassis: "gw1", Bindings: map[string]uint32{},
			Tunnels: map[string]uint32{"vxlan": 1, "geneve": 3}, Physnets: map[string]uint32{"external": 9, "external-vlan": 10}},
		"external-ch1": {Chassis: "ch1", Bindings: map[string]uint32{"pa1": 5, "pv1": 6},
			Tunnels: map[string]uint32{"vxlan": 1, "geneve": 3}, Physnets: map[string]uint32{"external": 9, "external-vlan": 10}},
		"external-ch2": {Chassis: "ch2", Bindings: map[string]uint32{"pa2": 5, "pb1": 6},
			Tunnels: map[string]uint32{"vxlan": 1, "geneve": 3}},
	}
	external := externalTopology(t)
	for name, facts := range cases {
		views[name] = v
		if strings.HasPrefix(name, "routed") {
			views[name] = routed
		}
		if strings.HasPrefix(name, "external") {
			views[name] = external
		}
		t.Run(name, func(t *testing.T) {
			v := views[name]
			flows := Compile(v, facts)
			for i := range flows {
				if err := flows[i].Validate(); err != nil {
					t.Fatalf("flow %s: %v", flows[i].String(), err)
				}
			}
			got := render(flows)
			if again := render(Compile(v, facts)); again != got {
				t.Fatalf("not deterministic:\n%s\nvs\n%s", got, again)
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Fatalf("flows differ from %s (run with -update if intended):\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}

// BenchmarkCompile compiles one chassis' flows for 1k and 10k ports spread
// over 100 networks and 50 chassis.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			s := newState(b)
			var chs []*fsm.Chassis
			for i := 0; i < 50; i++ {
				chs = append(chs, chassis(fmt.Sprintf("ch%02d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)))
			}
			s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: chs})
			var nets []*fsm.Network
			for i := 0; i < 100; i++ {
				nets = append(nets, network(fmt.Sprintf("net%03d", i), fsm.NetTypeVXLAN, 1000+i))
			}
			s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: nets})
			facts := Facts{Chassis: "ch00", Bindings: map[string]uint32{}, Tunnels: map[string]uint32{"vxlan": 1}}
			var ports []*fsm.Port
			for i := 0; i < n; i++ {
				host := fmt.Sprintf("ch%02d", i%50)
				id := fmt.Sprintf("port%05d", i)
				ports = append(ports, port(id, fmt.Sprintf("net%03d", i%100), fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff), host))
				if host == "ch00" {
					facts.Bindings[id] = uint32(len(facts.Bindings) + 2)
				}
			}
			s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ports})
			v := s.f.State().Read()
			b.ResetTimer()
			var flows int
			for i := 0; i < b.N; i++ {
				flows = len(Compile(v, facts))
			}
			b.ReportMetric(float64(flows), "flows")
		})
	}
}
