package fsm

import (
	"fmt"
	"slices"
	"testing"
)

// lbEnv is a gateway environment with a tenant network for load balancers.
type lbEnv struct {
	*gwEnv
	mac int
}

func newLBEnv(t *testing.T, chassis ...*Chassis) *lbEnv {
	t.Helper()
	e := &lbEnv{gwEnv: newGwEnv(t, chassis...)}
	e.must(CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("tn", 77)}})
	e.must(CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("tsub", "tn", "10.0.0.0/24")}})
	return e
}

func lbMeta(id string) Meta {
	return Meta{ID: id, ProjectID: "p1", Name: id, CreatedAt: "t0", UpdatedAt: "t0"}
}

// lbCreate builds the create request of load balancer id with VIP vip and
// a tree: listener id-l (HTTP 80) -> pool id-p (3 members, a monitor),
// plus an L7 policy on the listener with one rule.
func (e *lbEnv) lbCreate(id, vip string, withTree bool) LBCreateRequest {
	e.mac++
	p := testPort("vip-"+id, "tn", fmt.Sprintf("fa:16:3e:00:30:%02x", e.mac), ip("tsub", vip))
	p.DeviceID, p.DeviceOwner, p.SecurityGroups, p.AllowedAddressPairs, p.PortSecurityEnabled = LBVIPDeviceID(id), DeviceOwnerLBVIP, nil, nil, false
	req := LBCreateRequest{At: "t1", VipPort: p, LoadBalancer: &LoadBalancer{Meta: lbMeta(id), VipNetworkID: "tn", VipSubnetID: "tsub",
		VipAddress: vip, Provider: LBProvider, AdminStateUp: true}}
	if !withTree {
		return req
	}
	req.Tree = LBTree{
		Listeners: []*Listener{{Meta: lbMeta(id + "-l"), LoadBalancerID: id, Protocol: LBProtocolHTTP, ProtocolPort: 80, DefaultPoolID: id + "-p", ConnectionLimit: -1, AdminStateUp: true}},
		Pools:     []*Pool{{Meta: lbMeta(id + "-p"), LoadBalancerID: id, Protocol: LBProtocolHTTP, LBAlgorithm: LBRoundRobin, AdminStateUp: true}},
		HealthMonitors: []*HealthMonitor{{Meta: lbMeta(id + "-h"), LoadBalancerID: id, PoolID: id + "-p", Type: LBMonitorHTTP, Delay: 2, Timeout: 1,
			MaxRetries: 2, MaxRetriesDown: 2, HTTPMethod: "GET", URLPath: "/", ExpectedCodes: "200", AdminStateUp: true}},
		L7Policies: []*L7Policy{{Meta: lbMeta(id + "-7p"), LoadBalancerID: id, ListenerID: id + "-l", Action: LBReject, Position: 1, AdminStateUp: true}},
		L7Rules: []*L7Rule{{Meta: lbMeta(id + "-7r"), LoadBalancerID: id, ListenerID: id + "-l", L7PolicyID: id + "-7p", Type: LBRulePath,
			CompareType: LBCompareStarts, Value: "/admin", AdminStateUp: true}},
	}
	for i := range 3 {
		req.Tree.Members = append(req.Tree.Members, &Member{Meta: lbMeta(fmt.Sprintf("%s-m%d", id, i)), LoadBalancerID: id, PoolID: id + "-p",
			Address: fmt.Sprintf("10.0.0.%d", 20+i), ProtocolPort: 8080, Weight: 1, SubnetID: "tsub", AdminStateUp: true})
	}
	return req
}

func (e *lbEnv) lb(id string) *LoadBalancer { return e.f.State().Read().LoadBalancer(id) }

// report plays the agent on the active chassis for the current revision.
func (e *lbEnv) report(id, errMsg string, op map[string]string) *Result {
	e.t.Helper()
	lb := e.lb(id)
	return e.apply(CmdLBStatus, LBStatusRequest{LoadBalancerID: id, Chassis: lb.ActiveChassis, ConfigRevision: lb.ConfigRevision, Error: errMsg, Operating: op, At: "t2"})
}

// wantRejected applies a command that must fail with errType (any code)
// and leave the revision unchanged.
func (e *lbEnv) wantRejected(typ CommandType, body any, errType string) {
	e.t.Helper()
	rev := e.f.State().Read().Revision()
	r := e.apply(typ, body)
	if fe, ok := AsError(r.Err); !ok || fe.Type != errType {
		e.t.Fatalf("%s: got %v, want %s", typ, r.Err, errType)
	}
	if got := e.f.State().Read().Revision(); got != rev {
		e.t.Fatalf("rejected %s changed the revision %d -> %d", typ, rev, got)
	}
}

func treeStatuses(v *View, lbID string) map[string]string {
	out := map[string]string{}
	lb := v.LoadBalancer(lbID)
	if lb == nil {
		return out
	}
	for _, o := range append([]lbObject{lb}, v.lbTreeObjects(lbID)...) {
		ps, _ := o.lbStatus()
		out[o.GetMeta().ID] = *ps
	}
	return out
}

func TestLBCreatePlacementAndStatus(t *testing.T) {
	e := newLBEnv(t, gatewayChassis("gw-a"), gatewayChassis("gw-b"), gatewayChassis("gw-c"), testChassis("cmp", "192.0.2.7"))
	e.must(CmdLBCreate, e.lbCreate("lb1", "10.0.0.100", true))
	lb := e.lb("lb1")
	if !slices.Equal(lb.GatewayChassis, []string{"gw-a", "gw-b"}) || lb.ActiveChassis != "gw-a" || lb.ConfigRevision != e.idx {
		t.Fatalf("placement %v active %q config %d (index %d)", lb.GatewayChassis, lb.ActiveChassis, lb.ConfigRevision, e.idx)
	}
	v := e.f.State().Read()
	if p := v.Port("vip-lb1"); p.BindingHostID != "gw-a" || p.DeviceOwner != DeviceOwnerLBVIP {
		t.Fatalf("vip port bound to %q owner %q", p.BindingHostID, p.DeviceOwner)
	}
	// The VIP port is the load balancer's: not deleted or moved directly.
	e.wantRejected(CmdPortDelete, PortDeleteRequest{ID: "vip-lb1"}, ErrTypeL3PortInUse)
	moved := v.Port("vip-lb1").Copy()
	moved.DeviceID = "elsewhere"
	e.wantRejected(CmdPortUpdate, PortUpdateRequest{Port: moved, PrevIndex: moved.ModifyIndex}, ErrTypeL3PortInUse)
	for id, s := range treeStatuses(v, "lb1") {
		if s != LBPendingCreate {
			t.Fatalf("%s is %s after create", id, s)
		}
	}
	if p := v.LBPool("lb1-p"); !slices.Equal(p.ListenerIDs, []string{"lb1-l"}) || p.HealthMonitorID != "lb1-h" {
		t.Fatalf("pool derived listeners %v monitor %q", p.ListenerIDs, p.HealthMonitorID)
	}
	if m := v.Member("lb1-m0"); m.OperatingStatus != LBOffline {
		t.Fatalf("member of a monitored pool starts %s", m.OperatingStatus)
	}
	// The second load balancer goes to the least loaded chassis.
	e.must(CmdLBCreate, e.lbCreate("lb2", "10.0.0.101", false))
	if lb2 := e.lb("lb2"); !slices.Equal(lb2.GatewayChassis, []string{"gw-b", "gw-c"}) || lb2.ActiveChassis != "gw-b" {
		t.Fatalf("lb2 placed on %v active %q", lb2.GatewayChassis, lb2.ActiveChassis)
	}

	// A write while pending is refused.
	e.wantRejected(CmdLBUpdate, LBUpdateRequest{LoadBalancer: lb, PrevIndex: lb.ModifyIndex}, ErrTypeLBImmutable)
	// A chassis' iface-id claim never moves the VIP port: the standby's
	// is ignored, the active one's sets only the ofport.
	e.must(CmdPortBind, PortBindRequest{At: "t1", Bindings: []PortBinding{{PortID: "vip-lb1", Chassis: "gw-b", OFPort: 7}}})
	if p := e.f.State().Read().Port("vip-lb1"); p.BindingHostID != "gw-a" || p.BindingOFPort != 0 {
		t.Fatalf("standby's claim: vip on %q ofport %d", p.BindingHostID, p.BindingOFPort)
	}
	e.must(CmdPortBind, PortBindRequest{At: "t1", Bindings: []PortBinding{{PortID: "vip-lb1", Chassis: "gw-a", OFPort: 9}}})
	if p := e.f.State().Read().Port("vip-lb1"); p.BindingHostID != "gw-a" || p.BindingOFPort != 9 {
		t.Fatalf("active's claim: vip on %q ofport %d", p.BindingHostID, p.BindingOFPort)
	}
	lb = e.lb("lb1")

	// Reports from a standby, or for an older revision, are stale.
	e.wantRejected(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-b", ConfigRevision: lb.ConfigRevision}, ErrTypeLBStaleStatus)
	e.wantRejected(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: lb.ConfigRevision - 1}, ErrTypeLBStatusUnchanged)
	// An old revision's report still carries health.
	r := e.apply(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: lb.ConfigRevision - 1,
		Operating: map[string]string{"lb1-m1": LBOpError}})
	if r.Err != nil || e.f.State().Read().Member("lb1-m1").OperatingStatus != LBOpError || e.lb("lb1").ProvisioningStatus != LBPendingCreate {
		t.Fatalf("health on an old revision: %v", r.Err)
	}
	if r := e.report("lb1", "", map[string]string{"lb1": LBOnline, "lb1-m1": LBOnline}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v = e.f.State().Read()
	for id, s := range treeStatuses(v, "lb1") {
		if s != LBActive {
			t.Fatalf("%s is %s after the report", id, s)
		}
	}
	if v.LoadBalancer("lb1").OperatingStatus != LBOnline || v.Member("lb1-m1").OperatingStatus != LBOnline {
		t.Fatal("operating status not applied")
	}
	// The same report again changes nothing and is refused as such.
	e.wantRejected(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: lb.ConfigRevision,
		Operating: map[string]string{"lb1": LBOnline}}, ErrTypeLBStatusUnchanged)

	// A config error puts the pending objects in ERROR with the reason.
	cur := e.lb("lb1")
	upd := cur.Copy()
	upd.Name = "renamed"
	e.must(CmdLBUpdate, LBUpdateRequest{LoadBalancer: upd, PrevIndex: cur.ModifyIndex, At: "t3"})
	if r := e.report("lb1", "haproxy -c: bad", nil); r.Err != nil {
		t.Fatal(r.Err)
	}
	if lb := e.lb("lb1"); lb.ProvisioningStatus != LBError || lb.StatusReason != "haproxy -c: bad" || lb.Name != "renamed" {
		t.Fatalf("after an error report: %s %q", lb.ProvisioningStatus, lb.StatusReason)
	}
}

func TestLBFailover(t *testing.T) {
	e := newLBEnv(t, gatewayChassis("gw-a"), gatewayChassis("gw-b"))
	e.must(CmdLBCreate, e.lbCreate("lb1", "10.0.0.100", true))
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: e.lb("lb1").ConfigRevision})
	rev := e.lb("lb1").ConfigRevision

	// Chassis down: one commit moves the active chassis and the VIP port.
	e.must(CmdChassisSetState, ChassisSetStateRequest{Names: []string{"gw-a"}, Up: false, At: "t5"})
	lb, v := e.lb("lb1"), e.f.State().Read()
	if lb.ActiveChassis != "gw-b" || v.Port("vip-lb1").BindingHostID != "gw-b" || lb.ModifyIndex != e.idx {
		t.Fatalf("after gw-a down: active %q vip on %q", lb.ActiveChassis, v.Port("vip-lb1").BindingHostID)
	}
	if lb.ConfigRevision != rev || lb.ProvisioningStatus != LBActive {
		t.Fatalf("a failover changed the config: %d -> %d, %s", rev, lb.ConfigRevision, lb.ProvisioningStatus)
	}
	// gw-a back: nothing moves back.
	e.must(CmdChassisSetState, ChassisSetStateRequest{Names: []string{"gw-a"}, Up: true, At: "t6"})
	if e.lb("lb1").ActiveChassis != "gw-b" {
		t.Fatal("load balancer moved back to gw-a")
	}
	// The API's failover moves to the next one and asks for a report.
	e.must(CmdLBFailover, LBFailoverRequest{ID: "lb1", At: "t7"})
	lb = e.lb("lb1")
	if lb.ActiveChassis != "gw-a" || lb.ConfigRevision != e.idx || lb.ProvisioningStatus != LBPendingUpdate ||
		e.f.State().Read().Port("vip-lb1").BindingHostID != "gw-a" {
		t.Fatalf("after failover: active %q config %d status %s", lb.ActiveChassis, lb.ConfigRevision, lb.ProvisioningStatus)
	}
	e.wantRejected(CmdLBFailover, LBFailoverRequest{ID: "lb1"}, ErrTypeLBImmutable)
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: lb.ConfigRevision})

	// No gateway at all: ERROR "no gateway chassis", placed again when one
	// comes back.
	e.must(CmdChassisSetState, ChassisSetStateRequest{Names: []string{"gw-a", "gw-b"}, Up: false, At: "t8"})
	lb = e.lb("lb1")
	if lb.ActiveChassis != "" || lb.ProvisioningStatus != LBError || lb.StatusReason != LBStatusNoGateway ||
		e.f.State().Read().Port("vip-lb1").BindingHostID != "" {
		t.Fatalf("without gateways: active %q %s %q", lb.ActiveChassis, lb.ProvisioningStatus, lb.StatusReason)
	}
	e.must(CmdChassisSetState, ChassisSetStateRequest{Names: []string{"gw-b"}, Up: true, At: "t9"})
	lb = e.lb("lb1")
	if lb.ActiveChassis != "gw-b" || lb.ProvisioningStatus != LBPendingUpdate || lb.ConfigRevision != e.idx || lb.StatusReason != "" {
		t.Fatalf("gateway back: active %q %s config %d", lb.ActiveChassis, lb.ProvisioningStatus, lb.ConfigRevision)
	}

	// Created without any gateway: ERROR at once.
	e2 := newLBEnv(t, testChassis("cmp", "192.0.2.7"))
	e2.must(CmdLBCreate, e2.lbCreate("lb9", "10.0.0.100", false))
	if lb := e2.lb("lb9"); lb.ProvisioningStatus != LBError || lb.StatusReason != LBStatusNoGateway {
		t.Fatalf("without gateways: %s %q", lb.ProvisioningStatus, lb.StatusReason)
	}
}

func TestLBTreeChangeAndDelete(t *testing.T) {
	e := newLBEnv(t, gatewayChassis("gw-a"), gatewayChassis("gw-b"))
	e.must(CmdLBCreate, e.lbCreate("lb1", "10.0.0.100", true))
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: e.lb("lb1").ConfigRevision})
	v := e.f.State().Read()

	// Bad input changes nothing.
	dupPort := &Listener{Meta: lbMeta("l2"), LoadBalancerID: "lb1", Protocol: LBProtocolTCP, ProtocolPort: 80}
	e.wantRejected(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Create: LBTree{Listeners: []*Listener{dupPort}}}, ErrTypeLBDuplicate)
	noPool := &Listener{Meta: lbMeta("l2"), LoadBalancerID: "lb1", Protocol: LBProtocolTCP, ProtocolPort: 81, DefaultPoolID: "nope"}
	e.wantRejected(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Create: LBTree{Listeners: []*Listener{noPool}}}, ErrTypeLBNotFound)
	dupMember := v.Member("lb1-m0").Copy()
	dupMember.ID = "m-dup"
	e.wantRejected(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Create: LBTree{Members: []*Member{dupMember}}}, ErrTypeLBDuplicate)
	hm2 := v.HealthMonitor("lb1-h").Copy()
	hm2.ID = "h2"
	e.wantRejected(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Create: LBTree{HealthMonitors: []*HealthMonitor{hm2}}}, ErrTypeLBDuplicate)

	// A second pool used by a redirect policy cannot go while used.
	p2 := &Pool{Meta: lbMeta("p2"), LoadBalancerID: "lb1", Protocol: LBProtocolHTTP, LBAlgorithm: LBRoundRobin}
	pol := &L7Policy{Meta: lbMeta("pol2"), LoadBalancerID: "lb1", ListenerID: "lb1-l", Action: LBRedirectToPool, RedirectPoolID: "p2", Position: 1}
	e.must(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", At: "t3", Create: LBTree{Pools: []*Pool{p2}, L7Policies: []*L7Policy{pol}}})
	v = e.f.State().Read()
	if e.lb("lb1").ProvisioningStatus != LBPendingUpdate || v.LBPool("p2").ProvisioningStatus != LBPendingCreate {
		t.Fatal("tree change did not go pending")
	}
	// The new policy at position 1 goes before the older one.
	if v.L7Policy("pol2").Position != 1 || v.L7Policy("lb1-7p").Position != 2 {
		t.Fatalf("positions %d %d", v.L7Policy("pol2").Position, v.L7Policy("lb1-7p").Position)
	}
	e.wantRejected(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Delete: []LBRef{{TableLBMembers, "lb1-m0"}}}, ErrTypeLBImmutable)
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: e.lb("lb1").ConfigRevision})
	e.wantRejected(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Delete: []LBRef{{TableLBPools, "p2"}}}, ErrTypeLBInUse)

	// Update with compare-and-set, then deleting the default pool takes
	// its members and monitor and unsets the listener's default pool.
	m := v.Member("lb1-m1").Copy()
	m.Weight = 5
	e.wantRejected(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Update: LBTree{Members: []*Member{m}}, PrevIndex: map[string]uint64{"lb1-m1": 1}}, ErrTypeStaleUpdate)
	e.must(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Update: LBTree{Members: []*Member{m}}, PrevIndex: map[string]uint64{"lb1-m1": m.ModifyIndex}})
	if mm := e.f.State().Read().Member("lb1-m1"); mm.Weight != 5 || mm.ProvisioningStatus != LBPendingUpdate {
		t.Fatalf("member update: weight %d %s", mm.Weight, mm.ProvisioningStatus)
	}
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: e.lb("lb1").ConfigRevision})
	e.must(CmdLBTreeChange, LBTreeChangeRequest{LoadBalancerID: "lb1", Delete: []LBRef{{TableLBPools, "lb1-p"}}})
	v = e.f.State().Read()
	if v.Member("lb1-m2").ProvisioningStatus != LBPendingDelete || v.HealthMonitor("lb1-h").ProvisioningStatus != LBPendingDelete ||
		v.Listener("lb1-l").DefaultPoolID != "" {
		t.Fatal("pool delete did not cascade")
	}
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: e.lb("lb1").ConfigRevision})
	v = e.f.State().Read()
	if v.LBPool("lb1-p") != nil || v.Member("lb1-m2") != nil || v.HealthMonitor("lb1-h") != nil || len(v.MembersOfLB("lb1")) != 0 {
		t.Fatal("pending deletes not removed by the report")
	}

	// Delete needs cascade while children exist; cascade waits for the
	// agent, then the tree and the VIP port go.
	e.wantRejected(CmdLBDelete, LBDeleteRequest{ID: "lb1"}, ErrTypeLBValidation)
	e.must(CmdLBDelete, LBDeleteRequest{ID: "lb1", Cascade: true, At: "t9"})
	for id, s := range treeStatuses(e.f.State().Read(), "lb1") {
		if s != LBPendingDelete {
			t.Fatalf("%s is %s during a cascade delete", id, s)
		}
	}
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb1", Chassis: "gw-a", ConfigRevision: e.lb("lb1").ConfigRevision})
	v = e.f.State().Read()
	if v.LoadBalancer("lb1") != nil || v.Port("vip-lb1") != nil || len(v.Listeners()) != 0 || len(v.LBPools()) != 0 || len(v.L7Rules()) != 0 {
		t.Fatal("cascade delete left objects")
	}

	// Without a usable chassis, deletion completes at once.
	e.must(CmdLBCreate, e.lbCreate("lb3", "10.0.0.103", false))
	e.must(CmdChassisSetState, ChassisSetStateRequest{Names: []string{"gw-a", "gw-b"}, Up: false, At: "t10"})
	e.must(CmdLBDelete, LBDeleteRequest{ID: "lb3"})
	if e.lb("lb3") != nil || e.f.State().Read().Port("vip-lb3") != nil {
		t.Fatal("delete without a chassis did not complete")
	}
	// And an expired pending delete completes.
	e.must(CmdChassisSetState, ChassisSetStateRequest{Names: []string{"gw-a"}, Up: true, At: "t11"})
	e.must(CmdLBCreate, e.lbCreate("lb4", "10.0.0.104", false))
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb4", Chassis: "gw-a", ConfigRevision: e.lb("lb4").ConfigRevision})
	e.must(CmdLBDelete, LBDeleteRequest{ID: "lb4"})
	e.wantRejected(CmdLBDeleteExpire, LBDeleteExpireRequest{ID: "lb4", ConfigRevision: 1}, ErrTypeLBStaleStatus)
	e.must(CmdLBDeleteExpire, LBDeleteExpireRequest{ID: "lb4", ConfigRevision: e.lb("lb4").ConfigRevision})
	if e.lb("lb4") != nil {
		t.Fatal("expired delete did not complete")
	}

	// An adopted VIP port is released, not deleted.
	own := testPort("own-port", "tn", "fa:16:3e:00:31:01", ip("tsub", "10.0.0.120"))
	e.must(CmdPortCreate, PortCreateRequest{Ports: []*Port{own}})
	cur := e.f.State().Read().Port("own-port")
	adopt := e.lbCreate("lb5", "10.0.0.120", false)
	adopt.VipPort, adopt.VipPortPrevIndex = cur.Copy(), cur.ModifyIndex
	adopt.VipPort.DeviceID, adopt.VipPort.DeviceOwner = LBVIPDeviceID("lb5"), DeviceOwnerLBVIP
	e.must(CmdLBCreate, adopt)
	if p := e.f.State().Read().Port("own-port"); p.BindingHostID != "gw-a" || !e.lb("lb5").VipPortAdopted {
		t.Fatalf("adopted port bound to %q", p.BindingHostID)
	}
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb5", Chassis: "gw-a", ConfigRevision: e.lb("lb5").ConfigRevision})
	e.must(CmdLBDelete, LBDeleteRequest{ID: "lb5"})
	e.must(CmdLBStatus, LBStatusRequest{LoadBalancerID: "lb5", Chassis: "gw-a", ConfigRevision: e.lb("lb5").ConfigRevision})
	if p := e.f.State().Read().Port("own-port"); p == nil || p.DeviceID != "" || p.DeviceOwner != "" || p.BindingHostID != "" {
		t.Fatalf("adopted port after delete: %+v", p)
	}
}

// fillLBTables puts objects in every LBaaS table for the snapshot
// round-trip tests (needs core-net/core-sub and the gateway gw-snap).
func fillLBTables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	e := &lbEnv{gwEnv: &gwEnv{t: t, f: f, idx: index - 1}, mac: 200}
	req := e.lbCreate("snap-lb", "10.0.0.200", true)
	req.VipPort.NetworkID, req.VipPort.FixedIPs = "core-net", ip("core-sub", "10.0.0.200")
	req.LoadBalancer.VipNetworkID, req.LoadBalancer.VipSubnetID = "core-net", "core-sub"
	req.Tree.Pools[0].SessionPersistence = &SessionPersistence{Type: LBPersistAppCookie, CookieName: "c"}
	req.Tree.Listeners[0].InsertHeaders = map[string]string{"X-Forwarded-For": "true"}
	for _, m := range req.Tree.Members {
		m.SubnetID = "core-sub"
	}
	e.must(CmdLBCreate, req)
	if lb := e.lb("snap-lb"); lb.ActiveChassis != "gw-snap" {
		t.Fatalf("snap-lb placed on %q", lb.ActiveChassis)
	}
	return e.idx
}
