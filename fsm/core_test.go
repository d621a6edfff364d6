package fsm

import (
	"fmt"
	"testing"
)

func testSubnet(id, netID, cidr string) *Subnet {
	return &Subnet{
		Meta:      Meta{ID: id, ProjectID: "p1", Name: "sub-" + id, RevisionNumber: 1, CreatedAt: "2026-11-23T00:00:00Z"},
		NetworkID: netID, IPVersion: 4, CIDR: cidr, GatewayIP: "",
		AllocationPools: []IPRange{{Start: "10.0.0.2", End: "10.0.0.254"}},
		EnableDHCP:      true, DNSNameservers: []string{"8.8.8.8"},
		HostRoutes: []HostRoute{{Destination: "10.1.0.0/16", NextHop: "10.0.0.1"}},
	}
}

func testPort(id, netID, mac string, ips []FixedIP, sgs ...string) *Port {
	return &Port{
		Meta:      Meta{ID: id, ProjectID: "p1", RevisionNumber: 1, CreatedAt: "2026-11-23T00:00:00Z"},
		NetworkID: netID, MACAddress: mac, FixedIPs: ips, AdminStateUp: true, Status: "DOWN",
		BindingVIFType: VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
		PortSecurityEnabled: true, SecurityGroups: sgs,
		AllowedAddressPairs: []AddressPair{{IPAddress: "10.9.0.0/24", MACAddress: mac}},
	}
}

func intp(i int) *int { return &i }

func testGroup(id string) *SecurityGroupBundle {
	g := &SecurityGroup{Meta: Meta{ID: id, ProjectID: "p1", Name: "default", RevisionNumber: 1}, Stateful: true, IsDefault: true}
	return &SecurityGroupBundle{Group: g, Rules: []*SecurityGroupRule{
		{Meta: Meta{ID: id + "-r1", ProjectID: "p1"}, SecurityGroupID: id, Direction: DirectionEgress, EtherType: EtherTypeIPv4},
		{Meta: Meta{ID: id + "-r2", ProjectID: "p1"}, SecurityGroupID: id, Direction: DirectionIngress, EtherType: EtherTypeIPv4, RemoteGroupID: id},
		{Meta: Meta{ID: id + "-r3", ProjectID: "p1"}, SecurityGroupID: id, Direction: DirectionIngress, EtherType: EtherTypeIPv4,
			Protocol: "tcp", PortRangeMin: intp(22), PortRangeMax: intp(22), RemoteIPPrefix: "192.0.2.0/24"},
	}}
}

func ip(sub, addr string) []FixedIP { return []FixedIP{{SubnetID: sub, IPAddress: addr}} }

// fillCoreTables puts rows in the subnet, port and security group tables
// starting at index and returns the last index used.
func fillCoreTables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	must := func(r *Result) {
		t.Helper()
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	must(apply(t, f, index, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("core-net", 4000)}}))
	must(apply(t, f, index+1, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("core-sub", "core-net", "10.0.0.0/24")}}))
	var ports []*Port
	for i := 0; i < 20; i++ {
		ports = append(ports, testPort(fmt.Sprintf("core-p%02d", i), "core-net", fmt.Sprintf("fa:16:3e:00:00:%02x", i),
			ip("core-sub", fmt.Sprintf("10.0.0.%d", 10+i)), "core-sg"))
	}
	must(apply(t, f, index+2, CmdPortCreate, PortCreateRequest{Ports: ports, Defaults: []*SecurityGroupBundle{testGroup("core-sg")}}))
	return index + 2
}

func TestApplyCoreLifecycle(t *testing.T) {
	f := New(nil)
	last := fillCoreTables(t, f, 1)
	v := f.State().Read()
	if v.Subnet("core-sub") == nil || len(v.Ports()) != 20 || v.SecurityGroup("core-sg") == nil || len(v.RulesOfSecurityGroup("core-sg")) != 3 {
		t.Fatal("tables not filled")
	}
	if p := v.PortByIP("core-sub", "10.0.0.15"); p == nil || p.ID != "core-p05" {
		t.Fatalf("ip index: %v", p)
	}
	if p := v.PortByMAC("core-net", "FA:16:3E:00:00:07"); p == nil || p.ID != "core-p07" {
		t.Fatalf("mac index: %v", p)
	}
	if n := len(v.PortsOnSubnet("core-sub")); n != 20 {
		t.Fatalf("ports on subnet: %d", n)
	}

	// A second default for the same project is a no-op, not a conflict.
	r := apply(t, f, last+1, CmdSecurityGroupCreate, SecurityGroupCreateRequest{Defaults: []*SecurityGroupBundle{testGroup("core-sg")}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}

	// Moving a port to another address frees the old one.
	p := v.Port("core-p00").Copy()
	p.FixedIPs = ip("core-sub", "10.0.0.200")
	if r := apply(t, f, last+2, CmdPortUpdate, PortUpdateRequest{Port: p, PrevIndex: v.Port("core-p00").ModifyIndex}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v = f.State().Read()
	if v.PortByIP("core-sub", "10.0.0.10") != nil || v.PortByIP("core-sub", "10.0.0.200").ID != "core-p00" {
		t.Fatal("ip index not updated")
	}

	// A DHCP port does not keep the subnet or the network alive.
	dhcp := testPort("dhcp", "core-net", "fa:16:3e:00:01:00", ip("core-sub", "10.0.0.2"))
	dhcp.DeviceOwner = DeviceOwnerDHCP
	if r := apply(t, f, last+3, CmdPortCreate, PortCreateRequest{Ports: []*Port{dhcp}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx := last + 4
	for _, p := range f.State().Read().Ports() {
		if p.ID != "dhcp" {
			if r := apply(t, f, idx, CmdPortDelete, PortDeleteRequest{ID: p.ID}); r.Err != nil {
				t.Fatal(r.Err)
			}
			idx++
		}
	}
	if r := apply(t, f, idx, CmdNetworkDelete, NetworkDeleteRequest{ID: "core-net"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v = f.State().Read()
	if len(v.Ports()) != 0 || len(v.Subnets()) != 0 || v.Network("core-net") != nil {
		t.Fatalf("network delete left %d ports, %d subnets", len(v.Ports()), len(v.Subnets()))
	}
	// The group is free now; deleting it takes its rules.
	if r := apply(t, f, idx+1, CmdSecurityGroupDelete, SecurityGroupDeleteRequest{ID: "core-sg"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if n := len(f.State().Read().SecurityGroupRules()); n != 0 {
		t.Fatalf("%d rules left", n)
	}
}

func TestApplyCoreRejectsAndChangesNothing(t *testing.T) {
	f := New(nil)
	last := fillCoreTables(t, f, 1)
	apply(t, f, last+1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("other-net", 4001)}})
	apply(t, f, last+2, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("other-sub", "other-net", "10.0.0.0/24")}})
	base := last + 2
	v0 := f.State().Read()
	cur := v0.Port("core-p01")
	moved := cur.Copy()
	moved.FixedIPs = ip("core-sub", "10.0.0.12") // held by core-p02
	sub := v0.Subnet("core-sub").Copy()
	sub.AllocationPools = []IPRange{{Start: "10.0.0.100", End: "10.0.0.254"}}
	dupRule := *testGroup("core-sg").Rules[2]
	dupRule.ID = "dup"
	dupRule.PortRangeMin, dupRule.PortRangeMax = intp(22), intp(22)
	cases := []struct {
		name string
		typ  CommandType
		body any
		want string
	}{
		{"overlapping subnet", CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("s2", "core-net", "10.0.0.128/25")}}, ErrTypeInvalidInput},
		{"subnet on missing network", CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("s3", "nope", "10.5.0.0/24")}}, ErrTypeNetworkNotFound},
		{"subnet bulk with one bad", CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("s4", "core-net", "10.6.0.0/24"), testSubnet("s5", "core-net", "10.6.0.0/25")}}, ErrTypeInvalidInput},
		{"pools drop an allocation", CmdSubnetUpdate, SubnetUpdateRequest{Subnet: sub, PrevIndex: sub.ModifyIndex}, ErrTypeSubnetInUse},
		{"subnet in use", CmdSubnetDelete, SubnetDeleteRequest{ID: "core-sub"}, ErrTypeSubnetInUse},
		{"network in use", CmdNetworkDelete, NetworkDeleteRequest{ID: "core-net"}, ErrTypeNetworkInUse},
		{"ip in use", CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("x1", "core-net", "fa:16:3e:01:00:00", ip("core-sub", "10.0.0.10"))}}, ErrTypeIPAddressInUse},
		{"mac in use", CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("x2", "core-net", "fa:16:3e:00:00:01", nil)}}, ErrTypeMacAddressInUse},
		{"ip outside subnet", CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("x3", "core-net", "fa:16:3e:01:00:01", ip("core-sub", "10.1.0.1"))}}, ErrTypeInvalidIPForSubnet},
		{"subnet of another network", CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("x4", "core-net", "fa:16:3e:01:00:02", ip("other-sub", "10.0.0.99"))}}, ErrTypeInvalidInput},
		{"missing security group", CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("x5", "core-net", "fa:16:3e:01:00:03", nil, "nope")}}, ErrTypeSecurityGroupNotFound},
		{"duplicate ip in bulk", CmdPortCreate, PortCreateRequest{Ports: []*Port{
			testPort("x6", "core-net", "fa:16:3e:01:00:04", ip("core-sub", "10.0.0.99")),
			testPort("x7", "core-net", "fa:16:3e:01:00:05", ip("core-sub", "10.0.0.99"))}}, ErrTypeIPAddressInUse},
		{"duplicate mac in bulk (case differs)", CmdPortCreate, PortCreateRequest{Ports: []*Port{
			testPort("x8", "core-net", "fa:16:3e:01:00:0a", ip("core-sub", "10.0.0.97")),
			testPort("x9", "core-net", "FA:16:3E:01:00:0A", ip("core-sub", "10.0.0.98"))}}, ErrTypeMacAddressInUse},
		{"duplicate id in bulk", CmdPortCreate, PortCreateRequest{Ports: []*Port{
			testPort("x10", "core-net", "fa:16:3e:01:00:0b", ip("core-sub", "10.0.0.95")),
			testPort("x10", "core-net", "fa:16:3e:01:00:0c", ip("core-sub", "10.0.0.96"))}}, errTypePortDuplicate},
		{"update to a used ip", CmdPortUpdate, PortUpdateRequest{Port: moved, PrevIndex: cur.ModifyIndex}, ErrTypeIPAddressInUse},
		{"stale port update", CmdPortUpdate, PortUpdateRequest{Port: cur.Copy(), PrevIndex: cur.ModifyIndex - 1}, ErrTypeStaleUpdate},
		{"delete missing port", CmdPortDelete, PortDeleteRequest{ID: "nope"}, ErrTypePortNotFound},
		{"group in use", CmdSecurityGroupDelete, SecurityGroupDeleteRequest{ID: "core-sg"}, ErrTypeSecurityGroupInUse},
		{"duplicate rule", CmdSecurityGroupRuleCreate, SecurityGroupRuleCreateRequest{Rules: []*SecurityGroupRule{&dupRule}}, ErrTypeSecurityGroupRuleDup},
		{"rule of missing group", CmdSecurityGroupRuleCreate, SecurityGroupRuleCreateRequest{Rules: []*SecurityGroupRule{
			{Meta: Meta{ID: "r-x"}, SecurityGroupID: "nope", Direction: DirectionIngress, EtherType: EtherTypeIPv4}}}, ErrTypeSecurityGroupNotFound},
		{"group create with existing id", CmdSecurityGroupCreate, SecurityGroupCreateRequest{Groups: []*SecurityGroupBundle{testGroup("core-sg")}}, errTypeSecurityGroupDuplicat},
		{"delete missing rule", CmdSecurityGroupRuleDelete, SecurityGroupRuleDeleteRequest{ID: "nope"}, ErrTypeSecurityGroupRuleNF},
	}
	count := func() string {
		v := f.State().Read()
		return fmt.Sprint(len(v.Networks()), len(v.Subnets()), len(v.Ports()), len(v.SecurityGroups()), len(v.SecurityGroupRules()))
	}
	before := count()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := apply(t, f, base+1+uint64(i), tc.typ, tc.body)
			fe, ok := AsError(r.Err)
			if !ok || fe.Type != tc.want {
				t.Fatalf("got %v, want %s", r.Err, tc.want)
			}
			v := f.State().Read()
			if r.Revision != base || v.Revision() != base || count() != before {
				t.Fatalf("state changed: revision %d/%d, counts %s -> %s", r.Revision, v.Revision(), before, count())
			}
			if p := v.Port("core-p01"); p.ModifyIndex != cur.ModifyIndex || p.FixedIPs[0].IPAddress != "10.0.0.11" {
				t.Fatalf("port changed: %+v", p)
			}
		})
	}
}
