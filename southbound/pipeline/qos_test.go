package pipeline

import (
	"fmt"
	"strings"
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// TestQoSFlowsAndMeters: a port with a policy of its own (egress and
// ingress limits, DSCP) gets meters on its classify and output flows and
// DSCP-marking classify flows; a port taking its network's policy (egress
// only) gets that meter; a DHCP port on the network gets nothing; the
// meter table holds exactly the meters the flows name, and incremental
// compiles follow rule and attachment changes.
func TestQoSFlowsAndMeters(t *testing.T) {
	s := newState(t)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{chassis("ch1", "192.0.2.1", "vxlan")}})
	s.apply(fsm.CmdQoSPolicy, fsm.QoSPolicyRequest{Op: fsm.OpCreate, Policy: &fsm.QoSPolicy{Meta: fsm.Meta{ID: "q-own"}, Rules: []fsm.QoSRule{
		{ID: "r1", Type: fsm.QoSRuleBandwidthLimit, MaxKbps: 20000, MaxBurstKbps: 2000, Direction: fsm.QoSEgress},
		{ID: "r2", Type: fsm.QoSRuleBandwidthLimit, MaxKbps: 5000, Direction: fsm.QoSIngress},
		{ID: "r3", Type: fsm.QoSRuleDSCPMarking, DSCPMark: 26},
	}}})
	s.apply(fsm.CmdQoSPolicy, fsm.QoSPolicyRequest{Op: fsm.OpCreate, Policy: &fsm.QoSPolicy{Meta: fsm.Meta{ID: "q-net"}, Rules: []fsm.QoSRule{
		{ID: "r4", Type: fsm.QoSRuleBandwidthLimit, MaxKbps: 1000, Direction: fsm.QoSEgress},
	}}})
	n := network("net-a", fsm.NetTypeVXLAN, 1001)
	n.QoSPolicyID = "q-net"
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{n}})
	own := port("p-own", "net-a", "fa:16:3e:00:00:01", "ch1")
	own.QoSPolicyID = "q-own"
	dhcp := port("p-dhcp", "net-a", "fa:16:3e:00:00:03", "ch1")
	dhcp.DeviceOwner = fsm.DeviceOwnerDHCP
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{own, port("p-net", "net-a", "fa:16:3e:00:00:02", "ch1"), dhcp}})
	facts := Facts{Chassis: "ch1", Bindings: map[string]uint32{"p-own": 1, "p-net": 2, "p-dhcp": 3},
		Tunnels: map[string]uint32{"vxlan": 10}, Physnets: map[string]uint32{}}
	v := s.f.State().Read()
	c := NewCompiler()
	c.Update(v, nil, facts)
	dump := render(c.Flows())
	for _, want := range []string{
		"cookie=0x200000001, priority=100,in_port=1 actions=meter:2,set_field:0x1->reg6,",
		"cookie=0x200000001, priority=101,ip,in_port=1 actions=meter:2,set_field:26->ip_dscp,set_field:0x1->reg6,",
		"cookie=0x200000001, priority=101,ipv6,in_port=1 actions=meter:2,set_field:26->ip_dscp,set_field:0x1->reg6,",
		"table=65, priority=100,reg7=0x1 actions=meter:3,output:1\n",
		"cookie=0x200000002, priority=100,in_port=2 actions=meter:4,set_field:0x2->reg6,",
		"cookie=0x200000003, priority=100,in_port=3 actions=set_field:0x3->reg6,",
		"table=65, priority=100,reg7=0x3 actions=output:3\n",
	} {
		if !strings.Contains(dump, want) {
			t.Errorf("no flow %q in:\n%s", want, dump)
		}
	}
	want := map[uint32]openflow.MeterBand{2: {RateKbps: 20000, BurstKbit: 2000}, 3: {RateKbps: 5000, BurstKbit: 4000}, 4: {RateKbps: 1000, BurstKbit: 800}}
	if got := Meters(v, facts); len(got) != len(want) || got[2] != want[2] || got[3] != want[3] || got[4] != want[4] {
		t.Fatalf("meters %v, want %v", got, want)
	}

	// The port's policy loses its limits: an incremental compile drops
	// the meters from its flows, as a full one would.
	rev := v.Revision()
	s.apply(fsm.CmdQoSPolicy, fsm.QoSPolicyRequest{Op: fsm.OpUpdate, PrevIndex: v.QoSPolicy("q-own").ModifyIndex,
		Policy: &fsm.QoSPolicy{Meta: fsm.Meta{ID: "q-own"}, Rules: []fsm.QoSRule{{ID: "r3", Type: fsm.QoSRuleDSCPMarking, DSCPMark: 26}}}})
	v = s.f.State().Read()
	changes, ok := s.f.ChangesBetween(rev, v.Revision())
	if !ok {
		t.Fatal("no change history")
	}
	c.Update(v, changes, facts)
	if d := Diff(c.Flows(), Compile(v, facts)); d != "" {
		t.Fatalf("incremental differs from full:\n%s", d)
	}
	if strings.Contains(render(c.Flows()), "meter:2") || strings.Contains(render(c.Flows()), "meter:3") {
		t.Fatalf("meters of removed rules still named:\n%s", render(c.Flows()))
	}
	if got := Meters(v, facts); len(got) != 1 || got[4] != want[4] {
		t.Fatalf("meters after the update %v", got)
	}
}

// BenchmarkQoSMeters: the meter table of a chassis with 1,000 bound ports,
// every other one with a policy (its network's) of two limits; the worker
// computes it on every pass.
func BenchmarkQoSMeters(b *testing.B) {
	s := newState(b)
	s.apply(fsm.CmdQoSPolicy, fsm.QoSPolicyRequest{Op: fsm.OpCreate, Policy: &fsm.QoSPolicy{Meta: fsm.Meta{ID: "q"}, Rules: []fsm.QoSRule{
		{ID: "e", Type: fsm.QoSRuleBandwidthLimit, MaxKbps: 20000, Direction: fsm.QoSEgress},
		{ID: "i", Type: fsm.QoSRuleBandwidthLimit, MaxKbps: 10000, Direction: fsm.QoSIngress},
	}}})
	withQoS, without := network("n1", fsm.NetTypeVXLAN, 1), network("n2", fsm.NetTypeVXLAN, 2)
	withQoS.QoSPolicyID = "q"
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{withQoS, without}})
	var ps []*fsm.Port
	facts := Facts{Chassis: "ch1", Bindings: map[string]uint32{}}
	for i := range 1000 {
		id := fmt.Sprintf("p%04d", i)
		ps = append(ps, port(id, []string{"n1", "n2"}[i%2], fmt.Sprintf("fa:16:3e:00:%02x:%02x", i>>8, i&0xff), "ch1"))
		facts.Bindings[id] = uint32(i + 1)
	}
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ps})
	v := s.f.State().Read()
	b.ResetTimer()
	for b.Loop() {
		if m := Meters(v, facts); len(m) != 1000 {
			b.Fatalf("%d meters", len(m))
		}
	}
}
