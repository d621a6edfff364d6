package fsm

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// gwEnv is an FSM with an external flat network on physnet1 and chassis,
// for the gateway scheduling tests.
type gwEnv struct {
	t   *testing.T
	f   *FSM
	idx uint64
	n   int // routers created
}

func gatewayChassis(name string, physnets ...string) *Chassis {
	c := testChassis(name, "192.0.2.100")
	c.Roles = []string{ChassisRoleCompute, ChassisRoleGateway}
	c.BridgeMappings = map[string]string{}
	for _, p := range physnets {
		c.BridgeMappings[p] = "br-" + p
	}
	return c
}

func newGwEnv(t *testing.T, chassis ...*Chassis) *gwEnv {
	t.Helper()
	e := &gwEnv{t: t, f: New(nil)}
	ext := testNetwork("ext", 0)
	ext.NetworkType, ext.PhysicalNetwork, ext.External = NetTypeFlat, "physnet1", true
	e.must(CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{ext}})
	sub := testSubnet("ext-sub", "ext", "203.0.113.0/24")
	e.must(CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{sub}})
	if len(chassis) > 0 {
		e.must(CmdChassisUpsert, ChassisUpsertRequest{Chassis: chassis})
	}
	return e
}

func (e *gwEnv) apply(typ CommandType, body any) *Result {
	e.t.Helper()
	e.idx++
	return apply(e.t, e.f, e.idx, typ, body)
}

func (e *gwEnv) must(typ CommandType, body any) {
	e.t.Helper()
	if r := e.apply(typ, body); r.Err != nil {
		e.t.Fatalf("%s: %v", typ, r.Err)
	}
}

func (e *gwEnv) wantErr(typ CommandType, body any, errType string) {
	e.t.Helper()
	rev := e.f.State().Read().Revision()
	r := e.apply(typ, body)
	if fe, ok := AsError(r.Err); !ok || fe.Type != errType || fe.Code != CodeBadRequest {
		e.t.Fatalf("%s: got %v, want a 400 %s", typ, r.Err, errType)
	}
	if got := e.f.State().Read().Revision(); got != rev {
		e.t.Fatalf("rejected %s changed the revision %d -> %d", typ, rev, got)
	}
}

func (e *gwEnv) gwPort(routerID string) *Port {
	e.n++
	p := testPort(routerID+"-gw", "ext", fmt.Sprintf("fa:16:3e:00:20:%02x", e.n), ip("ext-sub", fmt.Sprintf("203.0.113.%d", 10+e.n)))
	p.ProjectID, p.DeviceID, p.DeviceOwner, p.SecurityGroups, p.AllowedAddressPairs = "", routerID, DeviceOwnerRouterGateway, nil, nil
	p.Status = PortStatusActive
	return p
}

// createRouter creates a router with a gateway on ext and the given list.
func (e *gwEnv) createRouter(id string, list []string, preempt bool) *Result {
	e.t.Helper()
	r := &Router{Meta: Meta{ID: id, ProjectID: "p1", RevisionNumber: 1, UpdatedAt: "t0"}, AdminStateUp: true, Status: "ACTIVE",
		Gateway: &ExternalGateway{NetworkID: "ext", EnableSNAT: true}, GatewayChassis: list, GatewayPreempt: preempt}
	return e.apply(CmdRouterCreate, RouterCreateRequest{Router: r, GatewayPort: e.gwPort(id)})
}

// update applies a router update built from the current version.
func (e *gwEnv) update(id string, change func(r *Router)) *Result {
	e.t.Helper()
	cur := e.router(id)
	next := cur.Copy()
	next.RevisionNumber++
	next.UpdatedAt = fmt.Sprintf("u%d", e.idx+1)
	change(next)
	return e.apply(CmdRouterUpdate, RouterUpdateRequest{Router: next, PrevIndex: cur.ModifyIndex})
}

func (e *gwEnv) router(id string) *Router { return e.f.State().Read().Router(id) }

func (e *gwEnv) setState(up bool, names ...string) {
	e.t.Helper()
	e.must(CmdChassisSetState, ChassisSetStateRequest{Names: names, Up: up, At: fmt.Sprintf("at%d", e.idx+1)})
}

// expect checks a router's list and active chassis ("" unbound) and the
// gateway port's binding fields.
func (e *gwEnv) expect(id string, list []string, active string) {
	e.t.Helper()
	v := e.f.State().Read()
	r := v.Router(id)
	if r == nil {
		e.t.Fatalf("router %s not found", id)
	}
	if !slices.Equal(r.GatewayChassis, list) {
		e.t.Errorf("router %s: gateway chassis %v, want %v", id, r.GatewayChassis, list)
	}
	p := v.RouterGatewayPort(id)
	if p == nil {
		e.t.Fatalf("router %s has no gateway port", id)
	}
	if p.BindingHostID != active || v.ActiveGatewayChassis(id) != active {
		e.t.Errorf("router %s: active %q, want %q", id, p.BindingHostID, active)
	}
	wantVIF, wantStatus := VIFTypeOVS, PortStatusActive
	if active == "" {
		wantVIF, wantStatus = VIFTypeUnbound, PortStatusDown
	}
	if p.BindingVIFType != wantVIF || p.Status != wantStatus {
		e.t.Errorf("router %s: gateway port vif %s status %s, want %s %s", id, p.BindingVIFType, p.Status, wantVIF, wantStatus)
	}
}

func TestGatewaySchedulingSpreads(t *testing.T) {
	// gw3 has no mapping for physnet1: it is not a candidate while gw1 and
	// gw2 are; c1 is no gateway at all.
	e := newGwEnv(t, gatewayChassis("gw2", "physnet1"), gatewayChassis("gw1", "physnet1"),
		gatewayChassis("gw3", "physnet2"), testChassis("c1", "192.0.2.9"))
	if r := e.createRouter("r1", nil, false); r.Err != nil {
		t.Fatal(r.Err)
	}
	e.expect("r1", []string{"gw1", "gw2"}, "gw1")
	if r := e.createRouter("r2", nil, false); r.Err != nil {
		t.Fatal(r.Err)
	}
	e.expect("r2", []string{"gw2", "gw1"}, "gw2")
	if r := e.createRouter("r3", nil, false); r.Err != nil {
		t.Fatal(r.Err)
	}
	e.expect("r3", []string{"gw1", "gw2"}, "gw1")
	v := e.f.State().Read()
	if v.GatewayLoad("gw1") != 2 || v.GatewayLoad("gw2") != 1 || v.GatewayLoad("gw3") != 0 {
		t.Errorf("loads %d %d %d", v.GatewayLoad("gw1"), v.GatewayLoad("gw2"), v.GatewayLoad("gw3"))
	}
	// A created gateway port is the create's own version: revision 1.
	if p := v.RouterGatewayPort("r1"); p.RevisionNumber != 1 || p.CreateIndex != p.ModifyIndex {
		t.Errorf("gateway port revision %d", p.RevisionNumber)
	}

	// Without any chassis mapping the physical network, every gateway is a
	// candidate.
	e2 := newGwEnv(t, gatewayChassis("gwa", "other"), gatewayChassis("gwb"))
	e2.createRouter("r1", nil, false)
	e2.expect("r1", []string{"gwa", "gwb"}, "gwa")

	// At most MaxGatewayChassis.
	var many []*Chassis
	for i := 0; i < 7; i++ {
		many = append(many, gatewayChassis(fmt.Sprintf("g%d", i), "physnet1"))
	}
	e3 := newGwEnv(t, many...)
	e3.createRouter("r1", nil, false)
	e3.expect("r1", []string{"g0", "g1", "g2", "g3", "g4"}, "g0")

	// No gateway chassis at all: unbound, empty list.
	e4 := newGwEnv(t, testChassis("c1", "192.0.2.9"))
	e4.createRouter("r1", nil, false)
	e4.expect("r1", nil, "")
}

func TestGatewayFailoverOrder(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"), gatewayChassis("gw3", "physnet1"))
	e.createRouter("r1", []string{"gw1", "gw2", "gw3"}, false)
	e.createRouter("r2", []string{"gw3", "gw1", "gw2"}, false)
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw1")
	e.expect("r2", []string{"gw3", "gw1", "gw2"}, "gw3")
	before := e.router("r1")
	beforePort := e.f.State().Read().RouterGatewayPort("r1")
	rev := e.f.State().Read().Revision()

	e.setState(false, "gw1")
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw2")
	e.expect("r2", []string{"gw3", "gw1", "gw2"}, "gw3") // untouched
	after := e.router("r1")
	p := e.f.State().Read().RouterGatewayPort("r1")
	if after.RevisionNumber != before.RevisionNumber+1 || after.ModifyIndex != e.idx || after.UpdatedAt != fmt.Sprintf("at%d", e.idx) {
		t.Errorf("router not revised: %+v", after.Meta)
	}
	if p.RevisionNumber != beforePort.RevisionNumber+1 || p.ModifyIndex != e.idx || p.UpdatedAt != fmt.Sprintf("at%d", e.idx) {
		t.Errorf("gateway port not revised: %+v", p.Meta)
	}
	changes, ok := e.f.ChangesSince(rev)
	want := []Change{{TableChassis, "gw1"}, {TableRouters, "r1"}, {TablePorts, p.ID}}
	if !ok || !sameChanges(changes, want) {
		t.Errorf("changes %v, want %v", changes, want)
	}

	// Next after gw2 is gw3; r2 stays on gw3.
	e.setState(false, "gw2")
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw3")
	// gw1 comes back: nothing moves (no preemption).
	e.setState(true, "gw1")
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw3")
	e.expect("r2", []string{"gw3", "gw1", "gw2"}, "gw3")
	// gw3 fails: both wrap around to the next up after gw3: gw1.
	e.setState(false, "gw3")
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw1")
	e.expect("r2", []string{"gw3", "gw1", "gw2"}, "gw1")
}

func TestGatewayWrapAround(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"), gatewayChassis("gw3", "physnet1"))
	e.createRouter("r1", []string{"gw2", "gw3", "gw1"}, false)
	e.expect("r1", []string{"gw2", "gw3", "gw1"}, "gw2")
	e.setState(false, "gw2", "gw3")
	e.expect("r1", []string{"gw2", "gw3", "gw1"}, "gw1")
	e.setState(true, "gw2")
	e.setState(false, "gw1")
	// After gw1 (last) comes gw2 (first).
	e.expect("r1", []string{"gw2", "gw3", "gw1"}, "gw2")
}

func TestGatewayPreempt(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"))
	e.createRouter("r1", []string{"gw1", "gw2"}, true)
	e.createRouter("r2", []string{"gw1", "gw2"}, false)
	e.setState(false, "gw1")
	e.expect("r1", []string{"gw1", "gw2"}, "gw2")
	e.expect("r2", []string{"gw1", "gw2"}, "gw2")
	e.setState(true, "gw1")
	e.expect("r1", []string{"gw1", "gw2"}, "gw1") // preempts
	e.expect("r2", []string{"gw1", "gw2"}, "gw2") // does not

	// Turning preemption on moves the gateway at once.
	if r := e.update("r2", func(r *Router) { r.GatewayPreempt = true }); r.Err != nil {
		t.Fatal(r.Err)
	}
	e.expect("r2", []string{"gw1", "gw2"}, "gw1")
	if p := e.f.State().Read().RouterGatewayPort("r2"); p.UpdatedAt != e.router("r2").UpdatedAt || p.ModifyIndex != e.idx {
		t.Errorf("moved gateway port not revised with the router: %+v", p.Meta)
	}
}

func TestGatewayAllDownThenBack(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"))
	e.createRouter("r1", nil, false)
	e.expect("r1", []string{"gw1", "gw2"}, "gw1")
	e.setState(false, "gw1", "gw2")
	e.expect("r1", []string{"gw1", "gw2"}, "")
	if p := e.f.State().Read().RouterGatewayPort("r1"); p.BindingOFPort != 0 {
		t.Errorf("unbound port keeps ofport %d", p.BindingOFPort)
	}
	e.setState(true, "gw2")
	e.expect("r1", []string{"gw1", "gw2"}, "gw2")

	// A router created while no gateway is up is unbound with an empty
	// list; the first gateway to come up gets a list and the gateway.
	e.setState(false, "gw2")
	e.createRouter("r2", nil, false)
	e.expect("r2", nil, "")
	e.setState(true, "gw1")
	e.expect("r2", []string{"gw1"}, "gw1")
	e.expect("r1", []string{"gw1", "gw2"}, "gw1")
}

func TestGatewayFallbackAppends(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"), gatewayChassis("gw3", "physnet1"))
	e.createRouter("r1", []string{"gw1"}, false)
	e.expect("r1", []string{"gw1"}, "gw1")
	e.setState(false, "gw1")
	// Nothing left in the list: the least loaded other candidate.
	e.expect("r1", []string{"gw1", "gw2"}, "gw2")

	// A full list without a usable chassis drops its last entry.
	var cs []*Chassis
	for i := 0; i < 6; i++ {
		cs = append(cs, gatewayChassis(fmt.Sprintf("g%d", i), "physnet1"))
	}
	e2 := newGwEnv(t, cs...)
	e2.createRouter("r1", nil, false)
	e2.expect("r1", []string{"g0", "g1", "g2", "g3", "g4"}, "g0")
	e2.setState(false, "g0", "g1", "g2", "g3", "g4")
	e2.expect("r1", []string{"g0", "g1", "g2", "g3", "g5"}, "g5")
}

func TestGatewayChassisDelete(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"), gatewayChassis("gw3", "physnet1"))
	e.createRouter("r1", []string{"gw1", "gw2", "gw3"}, false)
	e.createRouter("r2", []string{"gw3", "gw2"}, false)
	e.must(CmdChassisDelete, ChassisDeleteRequest{Name: "gw2", At: "del"})
	e.expect("r1", []string{"gw1", "gw3"}, "gw1")
	e.expect("r2", []string{"gw3"}, "gw3")
	if r := e.router("r2"); r.UpdatedAt != "del" {
		t.Errorf("router list change not revised: %+v", r.Meta)
	}
	e.must(CmdChassisDelete, ChassisDeleteRequest{Name: "gw1"})
	e.expect("r1", []string{"gw3"}, "gw3")
	// Deleting the last gateway: unbound, empty list.
	e.must(CmdChassisDelete, ChassisDeleteRequest{Name: "gw3"})
	e.expect("r1", []string{}, "")
	e.expect("r2", []string{}, "")
	// A new gateway chassis (upsert, up) picks them up.
	e.must(CmdChassisUpsert, ChassisUpsertRequest{Chassis: []*Chassis{gatewayChassis("gw4", "physnet1")}})
	e.expect("r1", []string{"gw4"}, "gw4")
	e.expect("r2", []string{"gw4"}, "gw4")
	// An upsert that takes the gateway role away fails the gateway over.
	c := gatewayChassis("gw4", "physnet1")
	c.Roles = []string{ChassisRoleCompute}
	e.must(CmdChassisUpsert, ChassisUpsertRequest{Chassis: []*Chassis{c}})
	e.expect("r1", []string{"gw4"}, "")
}

func TestGatewayChassisValidation(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"), testChassis("c1", "192.0.2.9"))
	bad := [][]string{
		{"nope"},
		{"c1"},
		{"gw1", "gw1"},
		{"gw1", "gw2", "gw1", "gw2", "gw1", "gw2"},
	}
	for _, list := range bad {
		r := &Router{Meta: Meta{ID: "rx", ProjectID: "p1"}, Gateway: &ExternalGateway{NetworkID: "ext"}, GatewayChassis: list}
		e.wantErr(CmdRouterCreate, RouterCreateRequest{Router: r, GatewayPort: e.gwPort("rx")}, ErrTypeInvalidGatewayChassis)
	}
	// A list without a gateway.
	e.wantErr(CmdRouterCreate, RouterCreateRequest{Router: &Router{Meta: Meta{ID: "rx"}, GatewayChassis: []string{"gw1"}}}, ErrTypeInvalidGatewayChassis)
	if e.router("rx") != nil {
		t.Fatal("rejected router stored")
	}
	// The same checks on update.
	e.createRouter("r1", nil, false)
	for _, list := range bad {
		cur := e.router("r1")
		next := cur.Copy()
		next.GatewayChassis = list
		e.wantErr(CmdRouterUpdate, RouterUpdateRequest{Router: next, PrevIndex: cur.ModifyIndex}, ErrTypeInvalidGatewayChassis)
	}
	// A chassis that is down may be named.
	e.setState(false, "gw2")
	if r := e.update("r1", func(r *Router) { r.GatewayChassis = []string{"gw2", "gw1"} }); r.Err != nil {
		t.Fatal(r.Err)
	}
	e.expect("r1", []string{"gw2", "gw1"}, "gw1")
}

func TestGatewayRouterUpdates(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"), gatewayChassis("gw3", "physnet1"))
	e.createRouter("r1", nil, false)
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw1")
	// A new list that keeps the active chassis keeps the gateway there.
	e.update("r1", func(r *Router) { r.GatewayChassis = []string{"gw3", "gw1"} })
	e.expect("r1", []string{"gw3", "gw1"}, "gw1")
	// One without it moves the gateway to its first up chassis.
	e.update("r1", func(r *Router) { r.GatewayChassis = []string{"gw2", "gw3"} })
	e.expect("r1", []string{"gw2", "gw3"}, "gw2")
	// An explicit empty list asks for a scheduled one; the gateway stays.
	e.update("r1", func(r *Router) { r.GatewayChassis = []string{} })
	e.expect("r1", []string{"gw1", "gw3", "gw2"}, "gw2")
	// Other changes leave list and binding alone.
	e.update("r1", func(r *Router) { r.Name = "renamed" })
	e.expect("r1", []string{"gw1", "gw3", "gw2"}, "gw2")
	// Clearing the gateway clears the list (and the port goes).
	e.update("r1", func(r *Router) { r.Gateway = nil })
	if r := e.router("r1"); r.GatewayChassis != nil || e.f.State().Read().RouterGatewayPort("r1") != nil {
		t.Fatalf("cleared gateway: %v", r.GatewayChassis)
	}
	// Setting it again schedules again.
	cur := e.router("r1")
	next := cur.Copy()
	next.Gateway = &ExternalGateway{NetworkID: "ext"}
	e.must(CmdRouterUpdate, RouterUpdateRequest{Router: next, PrevIndex: cur.ModifyIndex, GatewayPort: e.gwPort("r1")})
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw1")
	// A replaced gateway port on the same network (new addresses) keeps
	// the binding, whatever the proposer's copy says.
	cur = e.router("r1")
	next = cur.Copy()
	p := e.f.State().Read().RouterGatewayPort("r1").Copy()
	p.FixedIPs = ip("ext-sub", "203.0.113.99")
	p.BindingHostID, p.Status = "gw3", PortStatusDown
	e.must(CmdRouterUpdate, RouterUpdateRequest{Router: next, PrevIndex: cur.ModifyIndex, GatewayPort: p})
	e.expect("r1", []string{"gw1", "gw2", "gw3"}, "gw1")
}

func TestGatewayPortBind(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw1", "physnet1"), gatewayChassis("gw2", "physnet1"))
	e.createRouter("r1", nil, false)
	pid := e.f.State().Read().RouterGatewayPort("r1").ID
	port := func() *Port { return e.f.State().Read().Port(pid) }
	// Another chassis reporting the port plugged changes nothing.
	e.must(CmdPortBind, PortBindRequest{Bindings: []PortBinding{{PortID: pid, Chassis: "gw2", OFPort: 7}}, At: "b1"})
	if p := port(); p.BindingHostID != "gw1" || p.BindingOFPort != 0 || p.RevisionNumber != 1 {
		t.Fatalf("foreign binding applied: %+v", p)
	}
	// The active chassis sets the ofport.
	e.must(CmdPortBind, PortBindRequest{Bindings: []PortBinding{{PortID: pid, Chassis: "gw1", OFPort: 7}}, At: "b2"})
	if p := port(); p.BindingHostID != "gw1" || p.BindingOFPort != 7 || p.Status != PortStatusActive || p.UpdatedAt != "b2" {
		t.Fatalf("own binding: %+v", p)
	}
	// An unplug clears the ofport, not the binding.
	e.must(CmdPortBind, PortBindRequest{Bindings: []PortBinding{{PortID: pid, FromChassis: "gw1"}}, At: "b3"})
	if p := port(); p.BindingHostID != "gw1" || p.BindingOFPort != 0 || p.BindingVIFType != VIFTypeOVS {
		t.Fatalf("unplug: %+v", p)
	}
}

func sameChanges(got, want []Change) bool {
	a, b := slices.Clone(got), slices.Clone(want)
	less := func(x, y Change) int {
		if x.Table != y.Table {
			if x.Table < y.Table {
				return -1
			}
			return 1
		}
		if x.ID < y.ID {
			return -1
		}
		if x.ID > y.ID {
			return 1
		}
		return 0
	}
	slices.SortFunc(a, less)
	slices.SortFunc(b, less)
	return reflect.DeepEqual(a, b)
}

func TestMacBindings(t *testing.T) {
	f := New(nil)
	must := func(idx uint64, typ CommandType, body any) {
		t.Helper()
		if r := apply(t, f, idx, typ, body); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	must(1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100), testNetwork("n2", 101)}})
	must(2, CmdMacBindingSet, MacBindingSetRequest{At: "t2", Bindings: []MacBinding{
		{NetworkID: "n1", IP: "203.0.113.1", MAC: "FA:16:3E:00:00:01"},
		{NetworkID: "n1", IP: "2001:DB8::1", MAC: "fa:16:3e:00:00:02"},
		{NetworkID: "n2", IP: "203.0.113.1", MAC: "fa:16:3e:00:00:03"},
		{NetworkID: "gone", IP: "203.0.113.1", MAC: "fa:16:3e:00:00:04"},
	}})
	v := f.State().Read()
	m := v.MacBinding("n1", "203.0.113.1")
	if m == nil || m.MAC != "fa:16:3e:00:00:01" || m.UpdatedAt != "t2" || m.ModifyIndex != 2 || m.ID() != "n1/203.0.113.1" {
		t.Fatalf("binding %+v", m)
	}
	if m := v.MacBinding("n1", "2001:db8::1"); m == nil || m.IP != "2001:db8::1" {
		t.Fatalf("IPv6 binding not canonical: %+v", m)
	}
	if len(v.MacBindings()) != 3 || len(v.MacBindingsOfNetwork("n1")) != 2 || len(v.MacBindingsOfNetwork("gone")) != 0 {
		t.Fatalf("bindings %v", v.MacBindings())
	}
	if ch, ok := f.ChangesSince(1); !ok || !sameChanges(ch, []Change{
		{TableMacBindings, "n1/203.0.113.1"}, {TableMacBindings, "n1/2001:db8::1"}, {TableMacBindings, "n2/203.0.113.1"}}) {
		t.Fatalf("changes %v", ch)
	}
	// Unchanged bindings are left alone; a changed one is recorded.
	must(3, CmdMacBindingSet, MacBindingSetRequest{At: "t3", Bindings: []MacBinding{
		{NetworkID: "n1", IP: "203.0.113.1", MAC: "fa:16:3e:00:00:01"},
		{NetworkID: "n2", IP: "203.0.113.1", MAC: "fa:16:3e:00:00:09"},
	}})
	if ch, ok := f.ChangesSince(2); !ok || !reflect.DeepEqual(ch, []Change{{TableMacBindings, "n2/203.0.113.1"}}) {
		t.Fatalf("changes %v", ch)
	}
	v = f.State().Read()
	if m := v.MacBinding("n1", "203.0.113.1"); m.UpdatedAt != "t2" || m.ModifyIndex != 2 {
		t.Fatalf("unchanged binding rewritten: %+v", m)
	}
	if m := v.MacBinding("n2", "203.0.113.1"); m.MAC != "fa:16:3e:00:00:09" || m.UpdatedAt != "t3" || m.ModifyIndex != 3 {
		t.Fatalf("changed binding: %+v", m)
	}
	// Bad input is refused whole.
	for i, b := range []MacBinding{
		{NetworkID: "n1", IP: "nope", MAC: "fa:16:3e:00:00:01"},
		{NetworkID: "n1", IP: "203.0.113.5", MAC: "zz"},
		{NetworkID: "", IP: "203.0.113.5", MAC: "fa:16:3e:00:00:01"},
	} {
		r := apply(t, f, uint64(10+i), CmdMacBindingSet, MacBindingSetRequest{Bindings: []MacBinding{
			{NetworkID: "n1", IP: "203.0.113.7", MAC: "fa:16:3e:00:00:07"}, b}})
		if fe, ok := AsError(r.Err); !ok || fe.Code != CodeBadRequest {
			t.Fatalf("%+v: %v", b, r.Err)
		}
	}
	if f.State().Read().MacBinding("n1", "203.0.113.7") != nil {
		t.Fatal("refused command half applied")
	}
	// An empty MAC removes a binding.
	must(20, CmdMacBindingSet, MacBindingSetRequest{Bindings: []MacBinding{{NetworkID: "n1", IP: "2001:db8::1"}}})
	if f.State().Read().MacBinding("n1", "2001:db8::1") != nil {
		t.Fatal("binding not removed")
	}
	// A network takes its bindings with it.
	must(21, CmdNetworkDelete, NetworkDeleteRequest{ID: "n1"})
	if ch, ok := f.ChangesSince(20); !ok || !sameChanges(ch, []Change{{TableNetworks, "n1"}, {TableMacBindings, "n1/203.0.113.1"}}) {
		t.Fatalf("changes %v", ch)
	}
	v = f.State().Read()
	if len(v.MacBindingsOfNetwork("n1")) != 0 || len(v.MacBindings()) != 1 {
		t.Fatalf("bindings after network delete: %v", v.MacBindings())
	}
}

// fillGatewayTables adds a gateway chassis, a router scheduled on it and
// a MAC binding on the external network of fillL3Tables, starting at
// index; it returns the last index used.
func fillGatewayTables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	if r := apply(t, f, index, CmdChassisUpsert, ChassisUpsertRequest{Chassis: []*Chassis{gatewayChassis("gw-snap", "physnet1")}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if f.State().Read().ActiveGatewayChassis("l3-r") != "gw-snap" {
		t.Fatal("l3-r not scheduled on gw-snap")
	}
	if r := apply(t, f, index+1, CmdMacBindingSet, MacBindingSetRequest{At: "t", Bindings: []MacBinding{
		{NetworkID: "l3-ext", IP: "203.0.113.1", MAC: "fa:16:3e:aa:bb:cc"}}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	return index + 1
}
