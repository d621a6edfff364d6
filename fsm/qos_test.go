package fsm

import "testing"

func testQoSPolicy(id string, rules ...QoSRule) *QoSPolicy {
	return &QoSPolicy{Meta: Meta{ID: id, ProjectID: "p1", RevisionNumber: 1}, Rules: rules}
}

// fillQoSTable adds a policy for the snapshot round trip.
func fillQoSTable(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	applyOK(t, f, index, CmdQoSPolicy, QoSPolicyRequest{Op: OpCreate, Policy: testQoSPolicy("q1",
		QoSRule{ID: "r1", Type: QoSRuleBandwidthLimit, MaxKbps: 1000, Direction: QoSEgress},
		QoSRule{ID: "r2", Type: QoSRuleDSCPMarking, DSCPMark: 26})})
	return index
}

func TestQoSPolicyInUseAndEffective(t *testing.T) {
	f := New(nil)
	applyOK(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})
	// A port naming a policy that does not exist is refused.
	p := testPort("vm1", "n1", "fa:16:3e:00:00:01", nil)
	p.QoSPolicyID = "q1"
	wantErrType(t, apply(t, f, 2, CmdPortCreate, PortCreateRequest{Ports: []*Port{p}}), ErrTypeQoSPolicyNotFound)
	applyOK(t, f, 3, CmdQoSPolicy, QoSPolicyRequest{Op: OpCreate, Policy: testQoSPolicy("q1",
		QoSRule{ID: "r1", Type: QoSRuleBandwidthLimit, MaxKbps: 1000, Direction: QoSEgress})})
	applyOK(t, f, 4, CmdQoSPolicy, QoSPolicyRequest{Op: OpCreate, Policy: testQoSPolicy("q2")})
	applyOK(t, f, 5, CmdPortCreate, PortCreateRequest{Ports: []*Port{p}})
	dhcp := testPort("dhcp", "n1", "fa:16:3e:00:00:02", nil)
	dhcp.DeviceOwner = DeviceOwnerDHCP
	vm2 := testPort("vm2", "n1", "fa:16:3e:00:00:03", nil)
	applyOK(t, f, 6, CmdPortCreate, PortCreateRequest{Ports: []*Port{dhcp, vm2}})
	n := f.State().Read().Network("n1").Copy()
	n.QoSPolicyID = "q2"
	applyOK(t, f, 7, CmdNetworkUpdate, NetworkUpdateRequest{Network: n, PrevIndex: 1})

	v := f.State().Read()
	for id, want := range map[string]string{"vm1": "q1", "vm2": "q2", "dhcp": ""} {
		got := ""
		if pol := v.EffectiveQoSPolicy(v.Port(id)); pol != nil {
			got = pol.ID
		}
		if got != want {
			t.Errorf("port %s: effective policy %q, want %q", id, got, want)
		}
	}
	// In use by a port, then by the network: 409 each time.
	wantErrType(t, apply(t, f, 8, CmdQoSPolicy, QoSPolicyRequest{Op: OpDelete, ID: "q1"}), ErrTypeQoSPolicyInUse)
	wantErrType(t, apply(t, f, 9, CmdQoSPolicy, QoSPolicyRequest{Op: OpDelete, ID: "q2"}), ErrTypeQoSPolicyInUse)
	applyOK(t, f, 10, CmdPortDelete, PortDeleteRequest{ID: "vm1"})
	applyOK(t, f, 11, CmdQoSPolicy, QoSPolicyRequest{Op: OpDelete, ID: "q1"})
	if f.State().Read().QoSPolicy("q1") != nil {
		t.Fatal("deleted policy still there")
	}
	wantErrType(t, apply(t, f, 12, CmdQoSPolicy, QoSPolicyRequest{Op: OpDelete, ID: "q1"}), ErrTypeQoSPolicyNotFound)
}

func TestQoSPolicyRulesChecked(t *testing.T) {
	f := New(nil)
	applyOK(t, f, 1, CmdQoSPolicy, QoSPolicyRequest{Op: OpCreate, Policy: testQoSPolicy("q1")})
	cur := f.State().Read().QoSPolicy("q1")
	two := cur.Copy()
	two.Rules = []QoSRule{{ID: "a", Type: QoSRuleBandwidthLimit, MaxKbps: 1, Direction: QoSEgress},
		{ID: "b", Type: QoSRuleBandwidthLimit, MaxKbps: 2, Direction: QoSEgress}}
	r := apply(t, f, 2, CmdQoSPolicy, QoSPolicyRequest{Op: OpUpdate, Policy: two, PrevIndex: cur.ModifyIndex})
	if r.Err == nil {
		t.Fatal("two egress limits in one policy were accepted")
	}
	one := cur.Copy()
	one.Rules = two.Rules[:1]
	applyOK(t, f, 3, CmdQoSPolicy, QoSPolicyRequest{Op: OpUpdate, Policy: one, PrevIndex: cur.ModifyIndex})
	// A second update from the same read loses the compare-and-set.
	wantErrType(t, apply(t, f, 4, CmdQoSPolicy, QoSPolicyRequest{Op: OpUpdate, Policy: one, PrevIndex: cur.ModifyIndex}), ErrTypeStaleUpdate)
	if got := f.State().Read().QoSPolicy("q1").BandwidthLimit(QoSEgress); got == nil || got.MaxKbps != 1 {
		t.Fatalf("egress limit %+v", got)
	}
	wantErrType(t, apply(t, f, 5, CmdQoSPolicy, QoSPolicyRequest{Op: OpUpdate}), ErrTypeInvalidInput)
}
