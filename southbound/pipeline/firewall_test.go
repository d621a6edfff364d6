package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// buildFirewall adds to routedTopology a firewall group "fwg" on r1's
// interface on net-a (ri-net-a, MAC fa:16:3e:ff:00:01) with policy "pol"
// as both ingress and egress policy: deny TCP 80, allow TCP 22, reject
// UDP, allow IPv6 ICMP, in that order.
func buildFirewall(s *state) {
	meta := func(id string) fsm.Meta { return fsm.Meta{ID: id, ProjectID: "p"} }
	for _, r := range []*fsm.FirewallRule{
		{Meta: meta("fr-80"), Protocol: "tcp", IPVersion: 4, DestinationPortMin: 80, DestinationPortMax: 80, Action: fsm.FirewallDeny, Enabled: true},
		{Meta: meta("fr-22"), Protocol: "tcp", IPVersion: 4, DestinationPortMin: 22, DestinationPortMax: 22, Action: fsm.FirewallAllow, Enabled: true},
		{Meta: meta("fr-udp"), Protocol: "udp", IPVersion: 4, SourceIP: "10.0.2.0/24", Action: fsm.FirewallReject, Enabled: true},
		{Meta: meta("fr-icmp6"), Protocol: "icmp", IPVersion: 6, Action: fsm.FirewallAllow, Enabled: true},
	} {
		s.apply(fsm.CmdFirewallRuleCreate, fsm.FirewallRuleCreateRequest{Rule: r})
	}
	s.apply(fsm.CmdFirewallPolicyCreate, fsm.FirewallPolicyCreateRequest{Policy: &fsm.FirewallPolicy{Meta: meta("pol"),
		Rules: []string{"fr-80", "fr-22", "fr-udp", "fr-icmp6"}}})
	s.apply(fsm.CmdFirewallGroupCreate, fsm.FirewallGroupCreateRequest{Group: &fsm.FirewallGroup{Meta: meta("fwg"),
		IngressPolicyID: "pol", EgressPolicyID: "pol", Ports: []string{"ri-net-a"}, AdminStateUp: true}})
}

// TestCompileFirewall checks the firewall tables of a group on a router
// interface: the interface's classify flows on both sides, the policy's
// rules in order with the implicit deny, and what changes do: a disabled
// rule, a rule moved first, a port removed from the group, the group
// admin down. Each incremental result equals a full compile.
func TestCompileFirewall(t *testing.T) {
	s := newState(t)
	buildRouted(s)
	f := Facts{Chassis: "ch1", Bindings: map[string]uint32{"pa1": 5}, Tunnels: map[string]uint32{"vxlan": 1, "gre": 2, "geneve": 3}}
	step := incrementalSteps(t, s, &f)
	if got := flowsMatching(step("before"), "reg9=0x"); len(got) != 0 {
		t.Fatalf("firewall flows without a group: %v", got)
	}
	buildFirewall(s)
	flows := step("group created")
	key := s.f.State().Read().FirewallGroup("fwg").Key
	reg9 := fmt.Sprintf("reg9=0x%x", key)
	for _, want := range [][]string{
		{"table=32", "priority=100,ip,", "dl_dst=fa:16:3e:ff:00:01", fmt.Sprintf("set_field:0x%x->reg9", key), "set_field:0x8000->reg3",
			"move:NXM_NX_REG6[0..14]->NXM_NX_REG3[0..14]", "ct(table=33,zone=NXM_NX_REG3[0..15])"},
		{"table=32", "priority=100,ipv6,", "dl_dst=fa:16:3e:ff:00:01", "ct(table=33,"},
		{"table=47", "priority=100,ip,", "dl_src=fa:16:3e:ff:00:01", "move:NXM_NX_REG7[0..14]->NXM_NX_REG3[0..14]", "ct(table=48,zone=NXM_NX_REG3[0..15])"},
		{"table=33", "priority=60000,tcp", reg9, "tp_dst=80", "actions=drop"},
		// Allowed: on to the VM port's group (table 34), which commits.
		{"table=33", "priority=59999,tcp", reg9, "tp_dst=22", "actions=goto_table:34"},
		{"table=33", "priority=59998,udp", reg9, "nw_src=10.0.2.0/24", "controller(id=20036)"},
		{"table=33", "priority=59997,icmp6", reg9, "goto_table:34"},
		{"table=33", "priority=1," + reg9, "actions=drop"},
		{"table=48", "priority=59999,tcp", reg9, "tp_dst=22", "actions=goto_table:49"},
		// No VM port group: table 34 and 49 commit.
		{"table=34", "priority=1,ip,reg4=0", "ct(commit,zone=NXM_NX_REG3[0..15]),goto_table:40"},
		{"table=49", "priority=1,ipv6,reg5=0", "ct(commit,zone=NXM_NX_REG3[0..15]),goto_table:60"},
		{"table=48", "priority=1," + reg9, "actions=drop"},
	} {
		if got := flowsMatching(flows, want...); len(got) != 1 {
			t.Errorf("want one flow with %v, got %v\nall: %v", want, got, flowsMatching(flows, "table=33"))
		}
	}
	// The interface on net-b is in no group: no classify flow for it.
	if got := flowsMatching(flows, "table=32", "dl_dst=fa:16:3e:ff:00:02"); len(got) != 0 {
		t.Errorf("net-b's interface is classified: %v", got)
	}
	// A chassis where net-a is not present has none of the group's flows.
	if got := flowsMatching(Compile(s.f.State().Read(), Facts{Chassis: "ch9", Tunnels: f.Tunnels}), reg9); len(got) != 0 {
		t.Errorf("group flows on a chassis without net-a: %v", got)
	}

	// Disabling the SSH rule removes its flows only.
	r := s.f.State().Read().FirewallRule("fr-22").Copy()
	r.Enabled = false
	s.apply(fsm.CmdFirewallRuleUpdate, fsm.FirewallRuleUpdateRequest{Rule: r, PrevIndex: s.f.State().Read().FirewallRule("fr-22").ModifyIndex})
	flows = step("rule disabled")
	if got := flowsMatching(flows, reg9, "tp_dst=22"); len(got) != 0 {
		t.Errorf("disabled rule still compiled: %v", got)
	}
	if got := flowsMatching(flows, "table=33", reg9, "tp_dst=80"); len(got) != 1 {
		t.Errorf("deny rule lost: %v", got)
	}

	// Moving the ICMPv6 rule first gives it the highest priority.
	p := s.f.State().Read().FirewallPolicy("pol")
	np := p.Copy()
	np.Rules = []string{"fr-icmp6", "fr-80", "fr-22", "fr-udp"}
	s.apply(fsm.CmdFirewallPolicyUpdate, fsm.FirewallPolicyUpdateRequest{Policy: np, PrevIndex: p.ModifyIndex})
	flows = step("rule moved")
	if got := flowsMatching(flows, "table=33", "priority=60000,icmp6", reg9); len(got) != 1 {
		t.Errorf("moved rule not first: %v", flowsMatching(flows, "table=33", reg9))
	}

	// Removing the port from the group removes every flow of it here.
	g := s.f.State().Read().FirewallGroup("fwg")
	ng := g.Copy()
	ng.Ports = nil
	s.apply(fsm.CmdFirewallGroupUpdate, fsm.FirewallGroupUpdateRequest{Group: ng, PrevIndex: g.ModifyIndex})
	if got := flowsMatching(step("port removed"), reg9); len(got) != 0 {
		t.Errorf("flows left after the port left the group: %v", got)
	}
	g = s.f.State().Read().FirewallGroup("fwg")
	ng = g.Copy()
	ng.Ports = []string{"ri-net-a"}
	s.apply(fsm.CmdFirewallGroupUpdate, fsm.FirewallGroupUpdateRequest{Group: ng, PrevIndex: g.ModifyIndex})
	if got := flowsMatching(step("port back"), reg9); len(got) == 0 {
		t.Error("no flows after the port came back")
	}
	// Admin down enforces nothing.
	g = s.f.State().Read().FirewallGroup("fwg")
	ng = g.Copy()
	ng.AdminStateUp = false
	s.apply(fsm.CmdFirewallGroupUpdate, fsm.FirewallGroupUpdateRequest{Group: ng, PrevIndex: g.ModifyIndex})
	if got := flowsMatching(step("admin down"), reg9); len(got) != 0 {
		t.Errorf("admin-down group compiled: %v", got)
	}
}

// TestCompileFirewallVMPort checks a group on a VM port: the port's
// classify flows (its group's Key in reg4 from table 0, in reg5 from table
// 40; tables 32 and 47 by reg6 / reg7), the ingress policy in table 49,
// allow-all (committed) egress in table 34 for a group without an egress
// policy, the router interface group's tables handing allowed packets on to
// the VM port's, and the flows leaving with the port (out of the group,
// unplugged). Each incremental result equals a full compile.
func TestCompileFirewallVMPort(t *testing.T) {
	s := newState(t)
	buildRouted(s)
	buildFirewall(s)
	vm := port("vm1", "net-a", "fa:16:3e:00:00:07", "ch1")
	vm.DeviceOwner = "compute:nova"
	vm.FixedIPs = []fsm.FixedIP{{SubnetID: "sub-a", IPAddress: "10.0.1.7"}}
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{vm}})
	f := Facts{Chassis: "ch1", Bindings: map[string]uint32{"pa1": 5, "vm1": 7}, Tunnels: map[string]uint32{"vxlan": 1, "gre": 2, "geneve": 3}}
	step := incrementalSteps(t, s, &f)
	meta := fsm.Meta{ID: "fwv", ProjectID: "p"}
	s.apply(fsm.CmdFirewallGroupCreate, fsm.FirewallGroupCreateRequest{Group: &fsm.FirewallGroup{Meta: meta,
		IngressPolicyID: "pol", Ports: []string{"vm1"}, AdminStateUp: true}})
	flows := step("group created")
	key := s.f.State().Read().FirewallGroup("fwv").Key
	reg5 := fmt.Sprintf("reg5=0x%x", key)
	for _, want := range [][]string{
		{"priority=100,in_port=7", fmt.Sprintf("set_field:0x%x->reg4", key), "goto_table:10"},
		{"table=40", "dl_dst=fa:16:3e:00:00:07", fmt.Sprintf("set_field:0x%x->reg5", key), "goto_table:47"},
		{"table=32", "priority=90,ip,reg6=0x7", "set_field:0->reg9", "set_field:0x8007->reg3", "ct(table=33,zone=NXM_NX_REG3[0..15])"},
		{"table=32", "priority=90,ipv6,reg6=0x7", "ct(table=33,"},
		{"table=47", "priority=90,ip,reg7=0x7", "set_field:0->reg9", "set_field:0x8007->reg3", "ct(table=48,zone=NXM_NX_REG3[0..15])"},
		// Ingress: the policy in order, then the implicit deny.
		{"table=49", "priority=60000,tcp", reg5, "tp_dst=80", "actions=drop"},
		{"table=49", "priority=59999,tcp", reg5, "tp_dst=22", "ct(commit,zone=NXM_NX_REG3[0..15]),goto_table:60"},
		{"table=49", "priority=59998,udp", reg5, "controller(id=20036)"},
		{"table=49", "priority=1," + reg5, "actions=drop"},
		// Egress: no policy, everything allowed and committed.
		{"table=34", fmt.Sprintf("priority=1,ip,reg4=0x%x", key), "ct(commit,zone=NXM_NX_REG3[0..15]),goto_table:40"},
		{"table=34", fmt.Sprintf("priority=1,ipv6,reg4=0x%x", key), "ct(commit,"},
	} {
		if got := flowsMatching(flows, want...); len(got) != 1 {
			t.Errorf("want one flow with %v, got %v\nall: %v", want, got, flowsMatching(flows, "table=49"))
		}
	}
	// The VM port's group has no router interface flows (tables 33, 48).
	if got := flowsMatching(flows, fmt.Sprintf("reg9=0x%x", key)); len(got) != 0 {
		t.Errorf("router interface flows of a VM port group: %v", got)
	}
	// A chassis where vm1 is not plugged has none of the group's flows.
	f2 := Facts{Chassis: "ch2", Bindings: map[string]uint32{"pa2": 5}, Tunnels: f.Tunnels}
	if got := flowsMatching(Compile(s.f.State().Read(), f2), reg5); len(got) != 0 {
		t.Errorf("group flows on a chassis without vm1: %v", got)
	}

	// The port leaves the group: its flows go, the group's too.
	g := s.f.State().Read().FirewallGroup("fwv")
	ng := g.Copy()
	ng.Ports = nil
	s.apply(fsm.CmdFirewallGroupUpdate, fsm.FirewallGroupUpdateRequest{Group: ng, PrevIndex: g.ModifyIndex})
	flows = step("port removed")
	if got := flowsMatching(flows, fmt.Sprintf("0x%x->reg", key)); len(got) != 0 {
		t.Errorf("classify flows left after the port left the group: %v", got)
	}
	if got := append(flowsMatching(flows, reg5), flowsMatching(flows, "reg6=0x7", "table=32")...); len(got) != 0 {
		t.Errorf("flows left after the port left the group: %v", got)
	}
	g = s.f.State().Read().FirewallGroup("fwv")
	ng = g.Copy()
	ng.Ports = []string{"vm1"}
	s.apply(fsm.CmdFirewallGroupUpdate, fsm.FirewallGroupUpdateRequest{Group: ng, PrevIndex: g.ModifyIndex})
	if got := flowsMatching(step("port back"), reg5); len(got) == 0 {
		t.Fatal("no flows after the port came back")
	}
	// Unplugged: nothing of the group is left here.
	f = Facts{Chassis: "ch1", Bindings: map[string]uint32{"pa1": 5}, Tunnels: f.Tunnels}
	s.apply(fsm.CmdFirewallRuleUpdate, fsm.FirewallRuleUpdateRequest{Rule: s.f.State().Read().FirewallRule("fr-80").Copy(),
		PrevIndex: s.f.State().Read().FirewallRule("fr-80").ModifyIndex})
	if got := flowsMatching(step("unplugged"), reg5); len(got) != 0 {
		t.Errorf("group flows after vm1 was unplugged: %v", got)
	}
}

// TestFirewallRuleMatches: protocols, addresses and port ranges (the cross
// product of source and destination ranges), and rules that cannot match.
func TestFirewallRuleMatches(t *testing.T) {
	str := func(ms []openflow.Match) []string {
		var out []string
		for _, m := range ms {
			f := openflow.Flow{Match: m}
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(f.String(), "cookie=0x0, priority=0,"), " actions=drop"))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		r    fsm.FirewallRule
		want []string
	}{
		{fsm.FirewallRule{IPVersion: 4}, []string{"ip"}},
		{fsm.FirewallRule{IPVersion: 6, Protocol: "icmp"}, []string{"icmp6"}},
		{fsm.FirewallRule{IPVersion: 4, Protocol: "tcp", DestinationPortMin: 22, DestinationPortMax: 22, DestinationIP: "10.0.2.0/24"},
			[]string{"tcp,nw_dst=10.0.2.0/24,tp_dst=22"}},
		{fsm.FirewallRule{IPVersion: 4, Protocol: "udp", SourcePortMin: 1000, SourcePortMax: 1001, DestinationPortMin: 52, DestinationPortMax: 53},
			[]string{"udp,tp_src=0x3e8/0xfffe,tp_dst=0x34/0xfffe"}},
		{fsm.FirewallRule{IPVersion: 6, Protocol: "tcp", SourceIP: "2001:db8::/64", DestinationPortMin: 80, DestinationPortMax: 81},
			[]string{"tcp6,ipv6_src=2001:db8::/64,tp_dst=0x50/0xfffe"}},
		{fsm.FirewallRule{IPVersion: 4, SourceIP: "2001:db8::/64"}, nil}, // wrong family
		{fsm.FirewallRule{IPVersion: 4, Protocol: "tcp", DestinationPortMin: 90, DestinationPortMax: 80}, nil},
	} {
		if got := str(firewallRuleMatches(&tc.r)); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: got %q, want %q", tc.r, got, tc.want)
		}
	}
}

// incrementalSteps compiles s for the facts *f (read at each step, so a
// test may change them) and returns a step: it feeds the compiler the
// changes since the last step, fails t unless the incremental flows equal
// a full compile, and returns the full compile.
func incrementalSteps(t *testing.T, s *state, f *Facts) func(what string) []openflow.Flow {
	c := NewCompiler()
	rev := s.f.State().Read().Revision()
	c.Update(s.f.State().Read(), nil, *f)
	return func(what string) []openflow.Flow {
		t.Helper()
		v := s.f.State().Read()
		ch, ok := s.f.ChangesSince(rev)
		if !ok {
			t.Fatalf("%s: history lost", what)
		}
		rev = v.Revision()
		c.Update(v, append([]fsm.Change{}, ch...), *f)
		full := Compile(v, *f)
		if d := Diff(c.Flows(), full); d != "" {
			t.Fatalf("%s: incremental != full: %s", what, d)
		}
		return full
	}
}
