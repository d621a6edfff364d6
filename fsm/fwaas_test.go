package fsm

import (
	"fmt"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

func testFWRule(id string, port int) *FirewallRule {
	return &FirewallRule{Meta: Meta{ID: id, ProjectID: "p1", Name: "rule-" + id, RevisionNumber: 1},
		Protocol: FirewallProtoTCP, IPVersion: 4, DestinationIP: "10.0.0.0/24",
		DestinationPortMin: port, DestinationPortMax: port, Action: FirewallAllow, Enabled: true}
}

func testFWGroup(id string, ports ...string) *FirewallGroup {
	return &FirewallGroup{Meta: Meta{ID: id, ProjectID: "p1", Name: "group-" + id, RevisionNumber: 1},
		IngressPolicyID: "fw-p", Ports: ports, AdminStateUp: true}
}

// fillFWTables adds a row to every FWaaS table: a policy of two rules on
// fillL3Tables' router interface l3-if, and a VM port fw-vm.
func fillFWTables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	vm := testPort("fw-vm", "l3-int", "fa:16:3e:00:20:01", ip("l3-int-sub", "10.0.0.20"))
	vm.DeviceOwner, vm.DeviceID = "compute:nova", "vm-1"
	steps := []struct {
		typ  CommandType
		body any
	}{
		{CmdPortCreate, PortCreateRequest{Ports: []*Port{vm}}},
		{CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule("fw-r1", 22)}},
		{CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule("fw-r2", 80)}},
		{CmdFirewallPolicyCreate, FirewallPolicyCreateRequest{Policy: &FirewallPolicy{
			Meta: Meta{ID: "fw-p", ProjectID: "p1", RevisionNumber: 1}, Rules: []string{"fw-r1", "fw-r2"}, Audited: true}}},
		{CmdFirewallGroupCreate, FirewallGroupCreateRequest{Group: testFWGroup("fw-g", "l3-if")}},
	}
	for i, s := range steps {
		if r := apply(t, f, index+uint64(i), s.typ, s.body); r.Err != nil {
			t.Fatalf("%s: %v", s.typ, r.Err)
		}
	}
	return index + uint64(len(steps)) - 1
}

func fwEnv(t *testing.T) (*FSM, uint64) {
	t.Helper()
	f := New(nil)
	last := fillL3Tables(t, f, 1)
	last = fillFWTables(t, f, last+1)
	return f, last + 1
}

func TestFirewallCreateDerivesState(t *testing.T) {
	f, _ := fwEnv(t)
	v := f.State().Read()
	r1, r2 := v.FirewallRule("fw-r1"), v.FirewallRule("fw-r2")
	if r1.Key != 1 || r2.Key != 2 {
		t.Fatalf("rule keys %d %d, want 1 2", r1.Key, r2.Key)
	}
	g := v.FirewallGroup("fw-g")
	if g.Key != 1 || g.Status != FirewallStatusActive {
		t.Fatalf("group: %+v", g)
	}
	if got := v.FirewallGroupOfPort("l3-if"); got == nil || got.ID != "fw-g" {
		t.Fatalf("group of l3-if: %+v", got)
	}
	if got := v.FirewallGroupOfPort("fw-vm"); got != nil {
		t.Fatalf("fw-vm in %s", got.ID)
	}
	if ps := v.FirewallPoliciesOfRule("fw-r2"); len(ps) != 1 || ps[0].ID != "fw-p" {
		t.Fatalf("policies of fw-r2: %v", ps)
	}
	if CmdFirewallGroupStatus.String() != "FirewallGroupStatus" || CmdFirewallDefaults.String() != "FirewallDefaults" {
		t.Fatalf("command names: %s %s", CmdFirewallGroupStatus, CmdFirewallDefaults)
	}
}

// TestFirewallApplyRejects: every state-dependent rule of the model is
// enforced at apply time, and a rejected command leaves the revision.
func TestFirewallApplyRejects(t *testing.T) {
	f, idx := fwEnv(t)
	v := f.State().Read()
	g := v.FirewallGroup("fw-g")
	p := v.FirewallPolicy("fw-p")
	other := testFWRule("fw-other", 443)
	other.ProjectID = "p2"
	if r := apply(t, f, idx, CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: other}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	foreign := testPort("fw-foreign", "l3-int", "fa:16:3e:00:20:02", ip("l3-int-sub", "10.0.0.21"))
	foreign.ProjectID, foreign.DeviceOwner = "p2", "compute:nova"
	dhcp := testPort("fw-dhcp", "l3-int", "fa:16:3e:00:20:03", ip("l3-int-sub", "10.0.0.22"))
	dhcp.DeviceOwner = DeviceOwnerDHCP
	if r := apply(t, f, idx, CmdPortCreate, PortCreateRequest{Ports: []*Port{foreign, dhcp}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	withRules := func(rules ...string) *FirewallPolicy {
		c := p.Copy()
		c.Rules = rules
		return c
	}
	withPorts := func(ports ...string) *FirewallGroup {
		c := g.Copy()
		c.Ports = ports
		return c
	}
	cur := f.State().Read()
	pIdx, gIdx := cur.FirewallPolicy("fw-p").ModifyIndex, cur.FirewallGroup("fw-g").ModifyIndex
	shared := withRules("fw-r1")
	shared.Shared = true
	cases := []struct {
		name string
		typ  CommandType
		body any
		want string
	}{
		{"rule in use", CmdFirewallRuleDelete, FirewallDeleteRequest{ID: "fw-r1"}, ErrTypeFirewallRuleInUse},
		{"policy in use", CmdFirewallPolicyDelete, FirewallDeleteRequest{ID: "fw-p"}, ErrTypeFirewallPolicyInUse},
		{"group with ports", CmdFirewallGroupDelete, FirewallDeleteRequest{ID: "fw-g"}, ErrTypeFirewallGroupInUse},
		{"missing rule", CmdFirewallRuleDelete, FirewallDeleteRequest{ID: "nope"}, ErrTypeFirewallRuleNotFound},
		{"policy lists missing rule", CmdFirewallPolicyUpdate, FirewallPolicyUpdateRequest{Policy: withRules("fw-r1", "nope"), PrevIndex: pIdx}, ErrTypeFirewallRuleNotFound},
		{"policy lists rule twice", CmdFirewallPolicyUpdate, FirewallPolicyUpdateRequest{Policy: withRules("fw-r1", "fw-r1"), PrevIndex: pIdx}, ErrTypeFirewallRuleAlreadyAssociated},
		{"policy lists foreign rule", CmdFirewallPolicyUpdate, FirewallPolicyUpdateRequest{Policy: withRules("fw-other"), PrevIndex: pIdx}, ErrTypeFirewallRuleConflict},
		{"shared policy unshared rule", CmdFirewallPolicyUpdate, FirewallPolicyUpdateRequest{Policy: shared, PrevIndex: pIdx}, ErrTypeFirewallPolicySharingConflict},
		{"stale policy", CmdFirewallPolicyUpdate, FirewallPolicyUpdateRequest{Policy: withRules("fw-r1"), PrevIndex: pIdx - 1}, ErrTypeStaleUpdate},
		{"port of another project", CmdFirewallGroupUpdate, FirewallGroupUpdateRequest{Group: withPorts("l3-if", "fw-foreign"), PrevIndex: gIdx}, ErrTypeFirewallGroupPortProject},
		{"dhcp port", CmdFirewallGroupUpdate, FirewallGroupUpdateRequest{Group: withPorts("fw-dhcp"), PrevIndex: gIdx}, ErrTypeFirewallGroupPortInvalid},
		{"missing port", CmdFirewallGroupUpdate, FirewallGroupUpdateRequest{Group: withPorts("nope"), PrevIndex: gIdx}, ErrTypePortNotFound},
		{"port in another group", CmdFirewallGroupCreate, FirewallGroupCreateRequest{Group: testFWGroup("fw-g2", "fw-vm", "l3-if")}, ErrTypeFirewallGroupPortInUse},
		{"missing policy", CmdFirewallGroupCreate, FirewallGroupCreateRequest{Group: &FirewallGroup{Meta: Meta{ID: "fw-g3", ProjectID: "p1"}, EgressPolicyID: "nope"}}, ErrTypeFirewallPolicyNotFound},
		{"foreign policy", CmdFirewallGroupCreate, FirewallGroupCreateRequest{Group: &FirewallGroup{Meta: Meta{ID: "fw-g4", ProjectID: "p2"}, EgressPolicyID: "fw-p"}}, ErrTypeFirewallPolicyConflict},
		{"bad status", CmdFirewallGroupStatus, FirewallGroupStatusRequest{Statuses: map[string]string{"fw-g": "BUSY"}}, ErrTypeInvalidInput},
	}
	for _, c := range cases {
		before := f.State().Read().Revision()
		r := apply(t, f, idx, c.typ, c.body)
		idx++
		if fe, ok := AsError(r.Err); !ok || fe.Type != c.want {
			t.Errorf("%s: got %v, want %s", c.name, r.Err, c.want)
		}
		if after := f.State().Read().Revision(); after != before {
			t.Errorf("%s: rejected but revision moved %d -> %d", c.name, before, after)
		}
	}
}

func TestFirewallRuleChangeUnauditsPolicy(t *testing.T) {
	f, idx := fwEnv(t)
	v := f.State().Read()
	r := v.FirewallRule("fw-r2").Copy()
	r.Enabled = false
	r.UpdatedAt = "2026-12-06T00:00:00Z"
	if res := apply(t, f, idx, CmdFirewallRuleUpdate, FirewallRuleUpdateRequest{Rule: r, PrevIndex: v.FirewallRule("fw-r2").ModifyIndex}); res.Err != nil {
		t.Fatal(res.Err)
	}
	v = f.State().Read()
	if p := v.FirewallPolicy("fw-p"); p.Audited || p.RevisionNumber != 2 || p.ModifyIndex != idx {
		t.Fatalf("policy after rule change: %+v", p)
	}
	if got := v.FirewallRule("fw-r2"); got.Key != 2 || got.Enabled {
		t.Fatalf("rule: %+v", got)
	}
}

// TestFirewallPortDeleteLeavesGroup: deleting a port (or removing a router
// interface) takes it out of its group, whose status follows.
func TestFirewallPortDeleteLeavesGroup(t *testing.T) {
	f, idx := fwEnv(t)
	v := f.State().Read()
	g := v.FirewallGroup("fw-g").Copy()
	g.Ports = []string{"l3-if", "fw-vm"}
	if r := apply(t, f, idx, CmdFirewallGroupUpdate, FirewallGroupUpdateRequest{Group: g, PrevIndex: v.FirewallGroup("fw-g").ModifyIndex}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	if r := apply(t, f, idx, CmdPortDelete, PortDeleteRequest{ID: "fw-vm"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	v = f.State().Read()
	if got := v.FirewallGroup("fw-g"); len(got.Ports) != 1 || got.Ports[0] != "l3-if" || got.Status != FirewallStatusActive {
		t.Fatalf("after port delete: %+v", got)
	}
	// The floating IP behind the interface would keep it.
	if r := apply(t, f, idx, CmdFloatingIPDelete, FloatingIPDeleteRequest{ID: "l3-fip"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	rt := v.Router("l3-r").Copy()
	rt.RevisionNumber++
	if r := apply(t, f, idx, CmdRouterInterfaceRemove, RouterInterfaceRemoveRequest{Router: rt, PrevIndex: v.Router("l3-r").ModifyIndex, PortID: "l3-if"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v = f.State().Read()
	if got := v.FirewallGroup("fw-g"); len(got.Ports) != 0 || got.Status != FirewallStatusInactive || v.FirewallGroupOfPort("l3-if") != nil {
		t.Fatalf("after interface remove: %+v", got)
	}
}

// TestFirewallKeys: keys are the lowest free, reused only after a delete,
// and exhaustion is a clear error that changes nothing.
func TestFirewallKeys(t *testing.T) {
	f := New(nil)
	idx := uint64(1)
	mk := func(id string) *Result {
		r := apply(t, f, idx, CmdFirewallGroupCreate, FirewallGroupCreateRequest{Group: &FirewallGroup{Meta: Meta{ID: id, ProjectID: "p1"}, AdminStateUp: true}})
		idx++
		return r
	}
	for i := 0; i < 3; i++ {
		if r := mk(fmt.Sprintf("g%d", i)); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if r := apply(t, f, idx, CmdFirewallGroupDelete, FirewallDeleteRequest{ID: "g1"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	if r := mk("g3"); r.Err != nil {
		t.Fatal(r.Err)
	}
	v := f.State().Read()
	if k := v.FirewallGroup("g3").Key; k != 2 {
		t.Fatalf("g3 key %d, want the freed 2", k)
	}
	if s := v.FirewallGroup("g3").Status; s != FirewallStatusInactive {
		t.Fatalf("portless group status %s", s)
	}
	// Fill the rest of the group key space directly (a test shortcut: one
	// transaction instead of 65k commands).
	txn := f.State().db.Txn(true)
	for k := uint32(4); k <= FirewallGroupKeyMax; k++ {
		insert(txn, TableFWGroups, &FirewallGroup{Meta: Meta{ID: fmt.Sprintf("fill-%d", k)}, Key: k}, idx)
	}
	txn.Commit()
	before := f.State().Read().Revision()
	r := mk("one-too-many")
	if fe, ok := AsError(r.Err); !ok || fe.Type != ErrTypeFirewallKeysExhausted {
		t.Fatalf("got %v, want %s", r.Err, ErrTypeFirewallKeysExhausted)
	}
	if f.State().Read().Revision() != before || f.State().Read().FirewallGroup("one-too-many") != nil {
		t.Fatal("exhausted create changed the state")
	}
}

func TestFirewallDefaultsAndStatus(t *testing.T) {
	f, idx := fwEnv(t)
	rule := func(id string) *FirewallRule {
		return &FirewallRule{Meta: Meta{ID: id, ProjectID: "p1"}, IPVersion: 4, Action: FirewallDeny, Enabled: true}
	}
	req := FirewallDefaultsRequest{
		Rules: []*FirewallRule{rule("d-in"), rule("d-eg")},
		Policies: []*FirewallPolicy{{Meta: Meta{ID: "d-pin", ProjectID: "p1", Name: FirewallDefaultIngressPolicy}, Rules: []string{"d-in"}},
			{Meta: Meta{ID: "d-peg", ProjectID: "p1", Name: FirewallDefaultEgressPolicy}, Rules: []string{"d-eg"}}},
		Group: &FirewallGroup{Meta: Meta{ID: "d-g", ProjectID: "p1", Name: FirewallDefaultGroup}, IngressPolicyID: "d-pin", EgressPolicyID: "d-peg", AdminStateUp: true},
	}
	if r := apply(t, f, idx, CmdFirewallDefaults, req); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	v := f.State().Read()
	if d := v.DefaultFirewallGroup("p1"); d == nil || d.ID != "d-g" || d.Status != FirewallStatusInactive {
		t.Fatalf("default group: %+v", d)
	}
	req.Group = &FirewallGroup{Meta: Meta{ID: "d-g2", ProjectID: "p1", Name: FirewallDefaultGroup}}
	req.Rules, req.Policies = nil, nil
	if r := apply(t, f, idx, CmdFirewallDefaults, req); r.Err == nil {
		t.Fatal("second default group accepted")
	}
	idx++
	if r := apply(t, f, idx, CmdFirewallGroupStatus, FirewallGroupStatusRequest{Statuses: map[string]string{"fw-g": FirewallStatusError, "d-g": FirewallStatusError}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	v = f.State().Read()
	if v.FirewallGroup("fw-g").Status != FirewallStatusError || v.FirewallGroup("d-g").Status != FirewallStatusInactive {
		t.Fatalf("statuses %s %s", v.FirewallGroup("fw-g").Status, v.FirewallGroup("d-g").Status)
	}
	if r := apply(t, f, idx, CmdFirewallGroupDelete, FirewallDeleteRequest{ID: "d-g", WithPolicies: true}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v = f.State().Read()
	if v.FirewallPolicy("d-pin") != nil || v.FirewallPolicy("d-peg") != nil || v.FirewallRule("d-in") == nil {
		t.Fatal("default group delete did not take its policies (and only them)")
	}
}

// fwBenchState has n rules (keys 1..n) and one policy listing them all.
func fwBenchState(b *testing.B, n int) (*FSM, uint64) {
	b.Helper()
	f := New(nil)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("r%05d", i)
		buf, err := Encode(CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule(ids[i], 1+i%65535)})
		if err != nil {
			b.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: uint64(i + 1), Data: buf}).(*Result); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	buf, _ := Encode(CmdFirewallPolicyCreate, FirewallPolicyCreateRequest{Policy: &FirewallPolicy{Meta: Meta{ID: "bench-p", ProjectID: "p1"}, Rules: ids}})
	if r := f.Apply(&raft.Log{Index: uint64(n + 1), Data: buf}).(*Result); r.Err != nil {
		b.Fatal(r.Err)
	}
	return f, uint64(n + 2)
}

// BenchmarkFirewallRuleCreate: creating (and deleting) one rule beside
// 10,000 others; the key allocation walks the key index to the first gap.
func BenchmarkFirewallRuleCreate(b *testing.B) {
	f, idx := fwBenchState(b, 10000)
	create, _ := Encode(CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule("bench-new", 443)})
	del, _ := Encode(CmdFirewallRuleDelete, FirewallDeleteRequest{ID: "bench-new"})
	b.ResetTimer()
	for range b.N {
		if r := f.Apply(&raft.Log{Index: idx, Data: create}).(*Result); r.Err != nil {
			b.Fatal(r.Err)
		}
		if r := f.Apply(&raft.Log{Index: idx + 1, Data: del}).(*Result); r.Err != nil {
			b.Fatal(r.Err)
		}
		idx += 2
	}
}

// BenchmarkFirewallPolicyInsertRule: an insert_rule into a policy of 1,000
// rules (the update the API proposes: the whole new list, checked).
func BenchmarkFirewallPolicyInsertRule(b *testing.B) {
	f, idx := fwBenchState(b, 1000)
	buf, _ := Encode(CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule("bench-new", 443)})
	if r := f.Apply(&raft.Log{Index: idx, Data: buf}).(*Result); r.Err != nil {
		b.Fatal(r.Err)
	}
	idx++
	b.ResetTimer()
	for i := range b.N {
		v := f.State().Read()
		p := v.FirewallPolicy("bench-p").Copy()
		if i%2 == 0 {
			p.Rules = slices.Insert(p.Rules, len(p.Rules)/2, "bench-new")
		} else {
			p.Rules = slices.DeleteFunc(p.Rules, func(id string) bool { return id == "bench-new" })
		}
		buf, err := Encode(CmdFirewallPolicyUpdate, FirewallPolicyUpdateRequest{Policy: p, PrevIndex: v.FirewallPolicy("bench-p").ModifyIndex})
		if err != nil {
			b.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: idx, Data: buf}).(*Result); r.Err != nil {
			b.Fatal(r.Err)
		}
		idx++
	}
}

// TestFirewallRuleKeys: a rule takes one above the highest key, and the
// lowest free once the top key is taken.
func TestFirewallRuleKeys(t *testing.T) {
	f := New(nil)
	idx := uint64(1)
	step := func(typ CommandType, body any) {
		t.Helper()
		if r := apply(t, f, idx, typ, body); r.Err != nil {
			t.Fatal(r.Err)
		}
		idx++
	}
	for _, id := range []string{"a", "b", "c"} {
		step(CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule(id, 22)})
	}
	step(CmdFirewallRuleDelete, FirewallDeleteRequest{ID: "b"})
	step(CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule("d", 22)})
	if k := f.State().Read().FirewallRule("d").Key; k != 4 {
		t.Fatalf("d key %d, want 4 (2 is not reused while there is room above)", k)
	}
	txn := f.State().db.Txn(true)
	insert(txn, TableFWRules, &FirewallRule{Meta: Meta{ID: "top"}, Key: FirewallRuleKeyMax}, idx)
	txn.Commit()
	step(CmdFirewallRuleCreate, FirewallRuleCreateRequest{Rule: testFWRule("e", 22)})
	if k := f.State().Read().FirewallRule("e").Key; k != 2 {
		t.Fatalf("e key %d, want the lowest free 2 once the top is taken", k)
	}
}
