package fsm

import (
	"testing"
)

func rbacPolicy(id, netID, action, target string) *RBACPolicy {
	return &RBACPolicy{Meta: Meta{ID: id, ProjectID: "p1"}, ObjectType: RBACObjectNetwork, ObjectID: netID,
		Action: action, TargetTenant: target}
}

func testPool(id string, prefixes ...string) *SubnetPool {
	return &SubnetPool{Meta: Meta{ID: id, ProjectID: "p1", RevisionNumber: 1}, IPVersion: 4, Prefixes: prefixes,
		DefaultPrefixLen: 24, MinPrefixLen: 8, MaxPrefixLen: 30}
}

// fillRBACAndPoolTables adds a policy and a pool for the snapshot round
// trip (network n01 exists there).
func fillRBACAndPoolTables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	if r := apply(t, f, index, CmdRBACPolicy, RBACPolicyRequest{Op: OpCreate, Policy: rbacPolicy("r1", "n01", RBACAccessAsShared, "p2")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, f, index+1, CmdSubnetPool, SubnetPoolRequest{Op: OpCreate, Pool: testPool("sp1", "10.200.0.0/16")}); r.Err != nil {
		t.Fatal(r.Err)
	}
	return index + 1
}

func applyOK(t *testing.T, f *FSM, index uint64, typ CommandType, body any) {
	t.Helper()
	if r := apply(t, f, index, typ, body); r.Err != nil {
		t.Fatalf("command %s at %d: %v", typ, index, r.Err)
	}
}

func wantErrType(t *testing.T, r *Result, typ string) {
	t.Helper()
	fe, ok := AsError(r.Err)
	if !ok || fe.Type != typ {
		t.Fatalf("want %s, got %v", typ, r.Err)
	}
}

func TestRBACSharedInUse(t *testing.T) {
	f := New(nil)
	applyOK(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})
	applyOK(t, f, 2, CmdRBACPolicy, RBACPolicyRequest{Op: OpCreate, Policy: rbacPolicy("r1", "n1", RBACAccessAsShared, "p2")})
	v := f.State().Read()
	n := v.Network("n1")
	if !v.NetworkSharedWith(n, "p2") || v.NetworkSharedWith(n, "p3") {
		t.Fatal("policy shares with p2 only")
	}
	wantErrType(t, apply(t, f, 3, CmdRBACPolicy, RBACPolicyRequest{Op: OpCreate, Policy: rbacPolicy("r2", "n1", RBACAccessAsShared, "p2")}), ErrTypeRBACDuplicate)

	p := testPort("port1", "n1", "fa:16:3e:00:00:01", nil)
	p.ProjectID = "p2"
	applyOK(t, f, 4, CmdPortCreate, PortCreateRequest{Ports: []*Port{p}})
	wantErrType(t, apply(t, f, 5, CmdRBACPolicy, RBACPolicyRequest{Op: OpDelete, ID: "r1"}), ErrTypeRBACInUse)
	// Retargeting away from p2 is a removal for p2 too.
	upd := rbacPolicy("r1", "n1", RBACAccessAsShared, "p3")
	wantErrType(t, apply(t, f, 6, CmdRBACPolicy, RBACPolicyRequest{Op: OpUpdate, Policy: upd}), ErrTypeRBACInUse)
	// A wildcard policy keeps p2's access: r1 may go.
	applyOK(t, f, 7, CmdRBACPolicy, RBACPolicyRequest{Op: OpCreate, Policy: rbacPolicy("r3", "n1", RBACAccessAsShared, RBACTargetAll)})
	applyOK(t, f, 8, CmdRBACPolicy, RBACPolicyRequest{Op: OpDelete, ID: "r1"})
	wantErrType(t, apply(t, f, 9, CmdRBACPolicy, RBACPolicyRequest{Op: OpDelete, ID: "r3"}), ErrTypeRBACInUse)
	applyOK(t, f, 10, CmdPortDelete, PortDeleteRequest{ID: "port1"})
	applyOK(t, f, 11, CmdRBACPolicy, RBACPolicyRequest{Op: OpDelete, ID: "r3"})
	if len(f.State().Read().RBACPolicies()) != 0 {
		t.Fatal("policies left")
	}
	// A network's policies go with it.
	applyOK(t, f, 12, CmdRBACPolicy, RBACPolicyRequest{Op: OpCreate, Policy: rbacPolicy("r4", "n1", RBACAccessAsShared, "p2")})
	applyOK(t, f, 13, CmdNetworkDelete, NetworkDeleteRequest{ID: "n1"})
	if len(f.State().Read().RBACPolicies()) != 0 {
		t.Fatal("policy of a deleted network left")
	}
}

func TestRBACExternalConvertsNetwork(t *testing.T) {
	f := New(nil)
	applyOK(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})
	applyOK(t, f, 2, CmdRBACPolicy, RBACPolicyRequest{Op: OpCreate, Policy: rbacPolicy("r1", "n1", RBACAccessAsExternal, "p2")})
	v := f.State().Read()
	n := v.Network("n1")
	if !n.External || !n.ExternalRestricted || n.RevisionNumber != 2 {
		t.Fatalf("network not made external for targets: %+v", n)
	}
	if !v.NetworkExternalFor(n, "p2") || !v.NetworkExternalFor(n, "p1") || v.NetworkExternalFor(n, "p3") {
		t.Fatal("external for p1 (owner) and p2 only")
	}
	applyOK(t, f, 3, CmdRBACPolicy, RBACPolicyRequest{Op: OpDelete, ID: "r1"})
	if n := f.State().Read().Network("n1"); n.External || n.ExternalRestricted {
		t.Fatalf("network still external after its last policy: %+v", n)
	}
}

func TestSubnetPoolAllocationChecked(t *testing.T) {
	f := New(nil)
	applyOK(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100), testNetwork("n2", 101)}})
	applyOK(t, f, 2, CmdSubnetPool, SubnetPoolRequest{Op: OpCreate, Pool: testPool("sp1", "10.200.0.0/16")})
	s1 := testSubnet("s1", "n1", "10.200.0.0/24")
	s1.SubnetPoolID = "sp1"
	applyOK(t, f, 3, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{s1}})
	// Same prefix on another network: fine without a pool, refused in one.
	s2 := testSubnet("s2", "n2", "10.200.0.0/25")
	s2.SubnetPoolID = "sp1"
	wantErrType(t, apply(t, f, 4, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{s2}}), ErrTypeSubnetPoolOverlap)
	out := testSubnet("s3", "n2", "10.201.0.0/24")
	out.SubnetPoolID = "sp1"
	wantErrType(t, apply(t, f, 5, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{out}}), ErrTypeSubnetPoolOverlap)
	wantErrType(t, apply(t, f, 6, CmdSubnetPool, SubnetPoolRequest{Op: OpDelete, ID: "sp1"}), ErrTypeSubnetPoolInUse)
	// Shrinking the prefixes below an allocated subnet is refused.
	shrunk := testPool("sp1", "10.201.0.0/16")
	wantErrType(t, apply(t, f, 7, CmdSubnetPool, SubnetPoolRequest{Op: OpUpdate, Pool: shrunk, PrevIndex: 2}), ErrTypeInvalidInput)
	applyOK(t, f, 8, CmdSubnetDelete, SubnetDeleteRequest{ID: "s1"})
	applyOK(t, f, 9, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{s2}})
	// One default pool per IP version.
	d1 := testPool("sp2", "10.50.0.0/16")
	d1.IsDefault = true
	applyOK(t, f, 10, CmdSubnetPool, SubnetPoolRequest{Op: OpCreate, Pool: d1})
	d2 := testPool("sp3", "10.60.0.0/16")
	d2.IsDefault = true
	wantErrType(t, apply(t, f, 11, CmdSubnetPool, SubnetPoolRequest{Op: OpCreate, Pool: d2}), "BadRequest")
	if got := f.State().Read().DefaultSubnetPool(4); got == nil || got.ID != "sp2" {
		t.Fatalf("default pool %+v", got)
	}
}
