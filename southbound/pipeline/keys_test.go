package pipeline

import (
	"fmt"
	"hash/fnv"
	"strings"
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
)

// Two UUIDs with the same FNV-1a-32 hash (979072629), which the pipeline
// used before keys were allocated (router register, SNAT zone, conjunction
// id, cookie). Found once by brute force: random version 4 UUIDs from
// math/rand/v2 PCG(17, 17), hashed until two matched (after 25012).
const (
	collidingID1 = "56ce7211-e8a6-4fc0-94d2-0f600809129a"
	collidingID2 = "49558905-9159-4f0d-94c8-aaf7be3885e4"
)

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// collidingTenants builds two tenants with the same layout and
// overlapping addresses on ch1: each a router (ids colliding under FNV)
// joining 10.0.0.0/24 and 10.1.0.0/24, a VM port on the first network
// (port ids colliding) in a group with one ingress rule (rule ids
// colliding): tenant 1 allows TCP 22, tenant 2 ICMP.
func collidingTenants(t *testing.T) *fsm.View {
	s := newState(t)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{chassis("ch1", "192.0.2.1")}})
	for i, id := range []string{collidingID1, collidingID2} {
		tenant := fmt.Sprintf("t%d", i+1)
		n1, n2 := tenant+"-n1", tenant+"-n2"
		s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{
			network(n1, fsm.NetTypeVXLAN, 100+2*i), network(n2, fsm.NetTypeVXLAN, 101+2*i)}})
		s.apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: []*fsm.Subnet{
			{Meta: fsm.Meta{ID: n1 + "-s", ProjectID: tenant}, NetworkID: n1, IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1"},
			{Meta: fsm.Meta{ID: n2 + "-s", ProjectID: tenant}, NetworkID: n2, IPVersion: 4, CIDR: "10.1.0.0/24", GatewayIP: "10.1.0.1"},
		}})
		rule := &fsm.SecurityGroupRule{Meta: fsm.Meta{ID: id, ProjectID: tenant}, SecurityGroupID: tenant + "-sg",
			Direction: fsm.DirectionIngress, EtherType: fsm.EtherTypeIPv4, Protocol: "tcp", PortRangeMin: intp(22), PortRangeMax: intp(22)}
		if i == 1 {
			rule.Protocol, rule.PortRangeMin, rule.PortRangeMax = "icmp", nil, nil
		}
		s.apply(fsm.CmdSecurityGroupCreate, fsm.SecurityGroupCreateRequest{Groups: []*fsm.SecurityGroupBundle{{
			Group: &fsm.SecurityGroup{Meta: fsm.Meta{ID: tenant + "-sg", ProjectID: tenant}, Stateful: true},
			Rules: []*fsm.SecurityGroupRule{rule},
		}}})
		vm := port(id, n1, fmt.Sprintf("fa:16:3e:00:0%d:10", i), "ch1")
		vm.ProjectID, vm.PortSecurityEnabled, vm.SecurityGroups = tenant, true, []string{tenant + "-sg"}
		vm.FixedIPs = []fsm.FixedIP{{SubnetID: n1 + "-s", IPAddress: "10.0.0.10"}}
		s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{vm}})
		s.apply(fsm.CmdRouterCreate, fsm.RouterCreateRequest{Router: &fsm.Router{Meta: fsm.Meta{ID: id, ProjectID: tenant}, AdminStateUp: true}})
		for j, n := range []string{n1, n2} {
			r := s.f.State().Read().Router(id)
			p := port(fmt.Sprintf("%s-ri%d", tenant, j), n, fmt.Sprintf("fa:16:3e:ff:0%d:0%d", i, j), "")
			p.ProjectID, p.DeviceOwner, p.DeviceID = tenant, fsm.DeviceOwnerRouterInterface, id
			p.FixedIPs = []fsm.FixedIP{{SubnetID: n + "-s", IPAddress: fmt.Sprintf("10.%d.0.1", j)}}
			s.apply(fsm.CmdRouterInterfaceAdd, fsm.RouterInterfaceAddRequest{Router: r.Copy(), PrevIndex: r.ModifyIndex, Port: p})
		}
	}
	return s.f.State().Read()
}

// TestCollidingIDsGetDistinctKeys: objects whose ids collide under the
// old FNV hash get distinct router keys, SNAT zones, conjunction ids and
// cookies, and the compiled flows keep the tenants apart.
func TestCollidingIDsGetDistinctKeys(t *testing.T) {
	if fnv32(collidingID1) != fnv32(collidingID2) {
		t.Fatal("the two ids no longer collide under FNV-1a-32: the test would prove nothing")
	}
	v := collidingTenants(t)
	r1, r2 := v.Router(collidingID1), v.Router(collidingID2)
	if RouterKey(r1) == 0 || RouterKey(r1) == RouterKey(r2) {
		t.Fatalf("router keys %d and %d", RouterKey(r1), RouterKey(r2))
	}
	if z1, z2 := RouterZone(r1), RouterZone(r2); z1 <= MaxPortZone || z2 <= MaxPortZone || z1 == z2 {
		t.Fatalf("SNAT zones %#x and %#x", z1, z2)
	}
	ru1, ru2 := v.SecurityGroupRule(collidingID1), v.SecurityGroupRule(collidingID2)
	if ConjID(ru1) == 0 || ConjID(ru1) == ConjID(ru2) {
		t.Fatalf("conjunction ids %d and %d", ConjID(ru1), ConjID(ru2))
	}
	p1, p2 := v.Port(collidingID1), v.Port(collidingID2)
	c1, c2 := flowsync.Cookie(KindPort, p1.DatapathKey), flowsync.Cookie(KindPort, p2.DatapathKey)
	if c1 == c2 {
		t.Fatalf("port cookies %#x and %#x", c1, c2)
	}

	flows := Compile(v, Facts{Chassis: "ch1", Bindings: map[string]uint32{collidingID1: 5, collidingID2: 6}, Tunnels: map[string]uint32{"vxlan": 1}})
	text := render(flows)
	// Each router routes its own 10.1.0.0/24: two flows, one per key, not
	// one flow both routers wrote.
	for _, k := range []uint32{RouterKey(r1), RouterKey(r2)} {
		want := fmt.Sprintf("table=50, priority=149,ip,reg8=%#x,nw_dst=10.1.0.0/24", k)
		if n := strings.Count(text, want); n != 1 {
			t.Errorf("%d flows %q, want 1", n, want)
		}
	}
	// Each port's first clause names its own group's rule only.
	for _, c := range []struct {
		ofport uint32
		conj   uint32
		other  uint32
	}{{5, ConjID(ru1), ConjID(ru2)}, {6, ConjID(ru2), ConjID(ru1)}} {
		want := fmt.Sprintf("table=61, priority=100,reg7=%#x actions=conjunction(%d,1/2)\n", c.ofport, c.conj)
		if !strings.Contains(text, want) {
			t.Errorf("no flow %q", strings.TrimSpace(want))
		}
		if bad := fmt.Sprintf("reg7=%#x actions=conjunction(%d,", c.ofport, c.other); strings.Contains(text, bad) {
			t.Errorf("port %d joins the other tenant's rule: %q", c.ofport, bad)
		}
	}
	// Every flow of a port carries that port's cookie: none is shared.
	for _, f := range flows {
		if f.Cookie == c1 && strings.Contains(f.String(), "reg6=0x6") || f.Cookie == c2 && strings.Contains(f.String(), "reg6=0x5") {
			t.Errorf("flow of one port with the other's cookie: %s", f.String())
		}
	}
	if t.Failed() {
		t.Logf("flows:\n%s", text)
	}
}

// TestKeylessObjectsGetNoFlows: a router or rule without a key (0) gets
// no flows rather than a shared value.
func TestKeylessObjectsGetNoFlows(t *testing.T) {
	if RouterKey(&fsm.Router{}) != 0 || RouterZone(&fsm.Router{}) != 0 || ConjID(&fsm.SecurityGroupRule{}) != 0 {
		t.Fatal("a keyless object has a key")
	}
	// Every router key has a zone of its own, above the ports' zones and
	// outside 0x8000-0xefff (zones derived from ofports).
	seen := map[uint16]uint32{}
	for k := uint32(1); k <= fsm.MaxRouterKey; k++ {
		z := RouterZone(&fsm.Router{DatapathKey: k})
		if z <= MaxPortZone || z >= 0x8000 && z < 0xf000 || z > 0xfeff {
			t.Fatalf("router key %d: zone %#x outside the router ranges", k, z)
		}
		if other, dup := seen[z]; dup {
			t.Fatalf("router keys %d and %d share zone %#x", other, k, z)
		}
		seen[z] = k
	}
	if RouterZone(&fsm.Router{DatapathKey: fsm.MaxRouterKey + 1}) != 0 {
		t.Fatal("a key beyond MaxRouterKey has a zone")
	}
	n := &fsm.Network{NetworkType: fsm.NetTypeFlat, PhysicalNetwork: "physnet1"}
	if NetworkKey(n) != 0 {
		t.Fatal("a provider network without a key has a network key")
	}
	n.DatapathKey = 7
	if NetworkKey(n) != 4<<32|7 {
		t.Fatalf("network key %#x", NetworkKey(n))
	}
}
