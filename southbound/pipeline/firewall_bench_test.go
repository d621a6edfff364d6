package pipeline_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
	"neutrino/southbound/pipeline"
)

// fwBench is benchTopology(10,000 ports) plus a firewall group on every
// interface of the first router (10 networks) whose ingress and egress
// policy is one policy of `rules` TCP rules (allow, deny and reject,
// each a different destination port).
type fwBench struct {
	f     *fsm.FSM
	facts pipeline.Facts
	index uint64
	rules []string
}

func newFWBench(b *testing.B, rules int) *fwBench {
	return newFWBenchOn(b, rules, 0)
}

// newFWBenchOn is newFWBench with the group on vmPorts VM ports plugged on
// the chassis (of the first router's networks) instead of its interfaces
// when vmPorts > 0.
func newFWBenchOn(b *testing.B, rules, vmPorts int) *fwBench {
	f, facts := benchTopology(b, 10000)
	fb := &fwBench{f: f, facts: facts, index: f.State().Read().Revision()}
	v := f.State().Read()
	rt := v.Routers()[0]
	var ports []string
	for _, p := range v.RouterInterfaces(rt.ID) {
		if vmPorts == 0 {
			ports = append(ports, p.ID)
			continue
		}
		for _, vp := range v.PortsOfNetwork(p.NetworkID) {
			if _, local := facts.Bindings[vp.ID]; local && fsm.FirewallPortAllowed(vp) && !slices.Contains(ports, vp.ID) && len(ports) < vmPorts && vp.ProjectID == rt.ProjectID {
				ports = append(ports, vp.ID)
			}
		}
	}
	if vmPorts > 0 && len(ports) < vmPorts {
		b.Fatalf("only %d VM ports for the group, want %d", len(ports), vmPorts)
	}
	actions := []string{fsm.FirewallAllow, fsm.FirewallDeny, fsm.FirewallReject}
	for i := 0; i < rules; i++ {
		id := fmt.Sprintf("bench-rule-%d", i)
		fb.apply(b, fsm.CmdFirewallRuleCreate, fsm.FirewallRuleCreateRequest{Rule: &fsm.FirewallRule{
			Meta: fsm.Meta{ID: id, ProjectID: rt.ProjectID}, Protocol: fsm.FirewallProtoTCP, IPVersion: 4,
			DestinationPortMin: 1 + i, DestinationPortMax: 1 + i, SourceIP: "10.0.0.0/8", Action: actions[i%3], Enabled: true}})
		fb.rules = append(fb.rules, id)
	}
	fb.apply(b, fsm.CmdFirewallPolicyCreate, fsm.FirewallPolicyCreateRequest{Policy: &fsm.FirewallPolicy{
		Meta: fsm.Meta{ID: "bench-policy", ProjectID: rt.ProjectID}, Rules: fb.rules}})
	fb.apply(b, fsm.CmdFirewallGroupCreate, fsm.FirewallGroupCreateRequest{Group: &fsm.FirewallGroup{
		Meta: fsm.Meta{ID: "bench-group", ProjectID: rt.ProjectID}, Ports: ports, AdminStateUp: true,
		IngressPolicyID: "bench-policy", EgressPolicyID: "bench-policy"}})
	return fb
}

func (fb *fwBench) apply(b *testing.B, t fsm.CommandType, body any) {
	b.Helper()
	buf, err := fsm.Encode(t, body)
	if err != nil {
		b.Fatal(err)
	}
	fb.index++
	if r := fb.f.Apply(&raft.Log{Index: fb.index, Data: buf}).(*fsm.Result); r.Err != nil {
		b.Fatal(r.Err)
	}
}

// setRules replaces the policy's rule list.
func (fb *fwBench) setRules(b *testing.B, rules []string) {
	p := fb.f.State().Read().FirewallPolicy("bench-policy").Copy()
	prev := p.ModifyIndex
	p.Rules = rules
	fb.apply(b, fsm.CmdFirewallPolicyUpdate, fsm.FirewallPolicyUpdateRequest{Policy: p, PrevIndex: prev})
}

func firewallFlows(flows []openflow.Flow) int {
	n := 0
	for _, f := range flows {
		if flowsync.CookieKind(f.Cookie) == pipeline.KindFirewall {
			n++
		}
	}
	return n
}

// BenchmarkCompileFirewallFull compiles one chassis fully with a policy
// of 1,000 rules on a 10k-port topology (see newFWBench); flows/rule is
// the group's flows per rule (both directions).
func BenchmarkCompileFirewallFull(b *testing.B) {
	fb := newFWBench(b, 1000)
	v := fb.f.State().Read()
	b.ResetTimer()
	var flows []openflow.Flow
	for i := 0; i < b.N; i++ {
		flows = pipeline.Compile(v, fb.facts)
	}
	b.ReportMetric(float64(len(flows)), "flows")
	b.ReportMetric(float64(firewallFlows(flows))/1000, "flows/rule")
}

// BenchmarkCompileFirewallVMPorts is BenchmarkCompileFirewallFull with
// the group on 10 local VM ports instead of the router's interfaces:
// flows/rule counts the group's rule flows (tables 34, 49).
func BenchmarkCompileFirewallVMPorts(b *testing.B) {
	fb := newFWBenchOn(b, 1000, 10)
	v := fb.f.State().Read()
	b.ResetTimer()
	var flows []openflow.Flow
	for i := 0; i < b.N; i++ {
		flows = pipeline.Compile(v, fb.facts)
	}
	b.ReportMetric(float64(len(flows)), "flows")
	b.ReportMetric(float64(firewallFlows(flows))/1000, "flows/rule")
}

// BenchmarkCompileFirewallInsert inserts one rule at the head of the
// 1,000-rule policy (insert_rule: the policy's new list) and measures the
// incremental compile of that change; the rule is removed again outside
// the timer. flows/delta counts the flows added, changed or removed (a
// rule at the head moves every other rule's priority).
func BenchmarkCompileFirewallInsert(b *testing.B) {
	for _, at := range []string{"head", "tail"} {
		b.Run("at="+at, func(b *testing.B) {
			fb := newFWBench(b, 1000)
			fb.apply(b, fsm.CmdFirewallRuleCreate, fsm.FirewallRuleCreateRequest{Rule: &fsm.FirewallRule{
				Meta:     fsm.Meta{ID: "bench-new", ProjectID: fb.f.State().Read().Routers()[0].ProjectID},
				Protocol: fsm.FirewallProtoTCP, IPVersion: 4, DestinationPortMin: 4000, DestinationPortMax: 4000,
				Action: fsm.FirewallAllow, Enabled: true}})
			with := append([]string{"bench-new"}, fb.rules...)
			if at == "tail" {
				with = append(append([]string{}, fb.rules...), "bench-new")
			}
			c := pipeline.NewCompiler()
			v := fb.f.State().Read()
			c.Update(v, nil, fb.facts)
			rev := v.Revision()
			update := func() int {
				nv := fb.f.State().Read()
				changes, ok := fb.f.ChangesSince(rev)
				if !ok {
					b.Fatal("history lost")
				}
				add, remove := c.Update(nv, changes, fb.facts)
				rev = nv.Revision()
				return len(add) + len(remove)
			}
			var delta int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				fb.setRules(b, with)
				b.StartTimer()
				delta = update()
				b.StopTimer()
				fb.setRules(b, fb.rules)
				update()
				b.StartTimer()
			}
			b.ReportMetric(float64(delta), "flows/delta")
		})
	}
}
