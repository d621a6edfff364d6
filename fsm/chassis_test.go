package fsm

import (
	"fmt"
	"reflect"
	"testing"
)

func testChassis(name, ip string) *Chassis {
	return &Chassis{
		Meta:     Meta{ID: name, Name: name, RevisionNumber: 1, CreatedAt: "2026-11-23T00:00:00Z", UpdatedAt: "2026-11-23T00:00:00Z"},
		TunnelIP: ip, OVSDB: "unix:/run/" + name + "/db.sock", Roles: []string{"compute"},
		BridgeMappings: map[string]string{"physnet1": "br-phy"}, Encaps: []string{"vxlan", "geneve"},
		DatapathType: "netdev", DatapathID: ChassisDatapathID(name), Up: true, LastSeen: "2026-11-23T00:00:00Z",
	}
}

// fillChassisTable puts two chassis in the chassis table at index and
// returns the index used.
func fillChassisTable(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	r := apply(t, f, index, CmdChassisUpsert, ChassisUpsertRequest{Chassis: []*Chassis{testChassis("ch1", "192.0.2.1"), testChassis("ch2", "192.0.2.2")}})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return index
}

func TestChassisLifecycle(t *testing.T) {
	f := New(nil)
	fillChassisTable(t, f, 1)
	v := f.State().Read()
	if c := v.Chassis("ch1"); c == nil || !c.Up || c.CreateIndex != 1 || c.TunnelIP != "192.0.2.1" {
		t.Fatalf("after upsert: %+v", c)
	}
	if c := v.ChassisByDatapathID(ChassisDatapathID("ch2")); c == nil || c.Name != "ch2" {
		t.Fatalf("by datapath id: %+v", c)
	}

	// An upsert of an existing chassis keeps its creation.
	upd := testChassis("ch1", "192.0.2.11")
	upd.CreatedAt = "later"
	if r := apply(t, f, 2, CmdChassisUpsert, ChassisUpsertRequest{Chassis: []*Chassis{upd}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	c := f.State().Read().Chassis("ch1")
	if c.TunnelIP != "192.0.2.11" || c.CreateIndex != 1 || c.ModifyIndex != 2 || c.CreatedAt != "2026-11-23T00:00:00Z" || c.RevisionNumber != 2 {
		t.Fatalf("after second upsert: %+v", c)
	}

	if r := apply(t, f, 3, CmdChassisSetState, ChassisSetStateRequest{Names: []string{"ch1"}, Up: false, At: "t3"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if c := f.State().Read().Chassis("ch1"); c.Up || c.LastSeen != "t3" || c.ModifyIndex != 3 {
		t.Fatalf("after mark down: %+v", c)
	}
	if r := apply(t, f, 4, CmdChassisSetState, ChassisSetStateRequest{Names: []string{"nope"}, Up: true}); r.Err == nil {
		t.Fatal("mark up of a missing chassis accepted")
	}
	if r := apply(t, f, 5, CmdChassisDelete, ChassisDeleteRequest{Name: "ch1"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if f.State().Read().Chassis("ch1") != nil || len(f.State().Read().ChassisList()) != 1 {
		t.Fatal("chassis not deleted")
	}
	if r := apply(t, f, 6, CmdChassisDelete, ChassisDeleteRequest{Name: "ch1"}); r.Err == nil {
		t.Fatal("second delete accepted")
	}
	if r := apply(t, f, 7, CmdChassisUpsert, ChassisUpsertRequest{Chassis: []*Chassis{{Meta: Meta{ID: "a", Name: "b"}}}}); r.Err == nil {
		t.Fatal("chassis with ID != Name accepted")
	}
}

func TestPortBind(t *testing.T) {
	f := New(nil)
	last := fillCoreTables(t, f, 1)
	bind := func(idx uint64, b ...PortBinding) {
		t.Helper()
		if r := apply(t, f, idx, CmdPortBind, PortBindRequest{Bindings: b, At: "t"}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	bind(last+1, PortBinding{PortID: "core-p01", Chassis: "ch1", OFPort: 5}, PortBinding{PortID: "gone", Chassis: "ch1"})
	p := f.State().Read().Port("core-p01")
	// Bound is not yet realized: the port stays DOWN until CmdPortStatus.
	if p.BindingHostID != "ch1" || p.BindingVIFType != VIFTypeOVS || p.Status != PortStatusDown || p.RevisionNumber != 2 ||
		p.UpdatedAt != "t" || p.BindingOFPort != 5 {
		t.Fatalf("after bind: %+v", p)
	}
	if ps := f.State().Read().PortsOnChassis("ch1"); len(ps) != 1 || ps[0].ID != "core-p01" {
		t.Fatalf("ports on ch1: %v", ps)
	}
	setStatus(t, f, last+2, PortStatusChange{PortID: "core-p01", Chassis: "ch1", Status: PortStatusActive})
	if p := f.State().Read().Port("core-p01"); p.Status != PortStatusActive {
		t.Fatalf("after status: %+v", p)
	}
	// The same binding again keeps the status; a changed one resets it.
	bind(last+3, PortBinding{PortID: "core-p01", Chassis: "ch1", OFPort: 5})
	if p := f.State().Read().Port("core-p01"); p.Status != PortStatusActive || p.ModifyIndex != last+2 {
		t.Fatalf("after same bind: %+v", p)
	}
	bind(last+4, PortBinding{PortID: "core-p01", Chassis: "ch1", OFPort: 6})
	if p := f.State().Read().Port("core-p01"); p.Status != PortStatusDown || p.BindingOFPort != 6 || p.ModifyIndex != last+4 {
		t.Fatalf("after ofport change: %+v", p)
	}
	setStatus(t, f, last+5, PortStatusChange{PortID: "core-p01", Chassis: "ch1", Status: PortStatusActive})
	// An unplug reported by another chassis does not undo the binding.
	bind(last+6, PortBinding{PortID: "core-p01", FromChassis: "ch2"})
	if p := f.State().Read().Port("core-p01"); p.BindingHostID != "ch1" || p.ModifyIndex != last+5 || p.Status != PortStatusActive {
		t.Fatalf("after foreign unbind: %+v", p)
	}
	bind(last+7, PortBinding{PortID: "core-p01", FromChassis: "ch1"})
	p = f.State().Read().Port("core-p01")
	if p.BindingHostID != "" || p.BindingVIFType != VIFTypeUnbound || p.Status != PortStatusDown || p.ModifyIndex != last+7 {
		t.Fatalf("after unbind: %+v", p)
	}
	if ps := f.State().Read().PortsOnChassis("ch1"); len(ps) != 0 {
		t.Fatalf("ports on ch1 after unbind: %v", ps)
	}
	// A move to another chassis resets the status too.
	bind(last+8, PortBinding{PortID: "core-p02", Chassis: "ch1", OFPort: 1})
	setStatus(t, f, last+9, PortStatusChange{PortID: "core-p02", Chassis: "ch1", Status: PortStatusActive})
	bind(last+10, PortBinding{PortID: "core-p02", Chassis: "ch2", OFPort: 1})
	if p := f.State().Read().Port("core-p02"); p.Status != PortStatusDown || p.BindingHostID != "ch2" {
		t.Fatalf("after move: %+v", p)
	}
}

// TestPortsDownWithChassis: a chassis marked down takes its ACTIVE ports
// DOWN (binding kept); marked up again it changes nothing (its controller
// sets them ACTIVE once realized).
func TestPortsDownWithChassis(t *testing.T) {
	f := New(nil)
	last := fillChassisTable(t, f, fillCoreTables(t, f, 1)+1)
	if r := apply(t, f, last+1, CmdPortBind, PortBindRequest{Bindings: []PortBinding{
		{PortID: "core-p01", Chassis: "ch1", OFPort: 5}, {PortID: "core-p02", Chassis: "ch2", OFPort: 6}}, At: "t"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	setStatus(t, f, last+2, PortStatusChange{PortID: "core-p01", Chassis: "ch1", Status: PortStatusActive},
		PortStatusChange{PortID: "core-p02", Chassis: "ch2", Status: PortStatusActive})
	if r := apply(t, f, last+3, CmdChassisSetState, ChassisSetStateRequest{Names: []string{"ch1"}, Up: false, At: "t3"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v := f.State().Read()
	if p := v.Port("core-p01"); p.Status != PortStatusDown || p.BindingHostID != "ch1" || p.ModifyIndex != last+3 || p.UpdatedAt != "t3" {
		t.Fatalf("port of the down chassis: %+v", p)
	}
	if p := v.Port("core-p02"); p.Status != PortStatusActive || p.ModifyIndex != last+2 {
		t.Fatalf("port of the live chassis: %+v", p)
	}
	if r := apply(t, f, last+4, CmdChassisSetState, ChassisSetStateRequest{Names: []string{"ch1"}, Up: true, At: "t4"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if p := f.State().Read().Port("core-p01"); p.Status != PortStatusDown || p.ModifyIndex != last+3 {
		t.Fatalf("after the chassis is up again: %+v", p)
	}
	setStatus(t, f, last+5, PortStatusChange{PortID: "core-p01", Chassis: "ch1", Status: PortStatusActive})
}

func setStatus(t *testing.T, f *FSM, idx uint64, cs ...PortStatusChange) *Result {
	t.Helper()
	r := apply(t, f, idx, CmdPortStatus, PortStatusRequest{Ports: cs, At: fmt.Sprintf("t%d", idx)})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return r
}

func TestPortStatus(t *testing.T) {
	f := New(nil)
	last := fillCoreTables(t, f, 1)
	if r := apply(t, f, last+1, CmdPortBind, PortBindRequest{At: "t", Bindings: []PortBinding{
		{PortID: "core-p01", Chassis: "ch1", OFPort: 1}, {PortID: "core-p02", Chassis: "ch2", OFPort: 1},
	}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	before := f.State().Read().Port("core-p01")

	// Missing ports, ports bound elsewhere and unbound ports are skipped.
	setStatus(t, f, last+2,
		PortStatusChange{PortID: "core-p01", Chassis: "ch1", Status: PortStatusActive},
		PortStatusChange{PortID: "core-p02", Chassis: "ch1", Status: PortStatusActive},
		PortStatusChange{PortID: "core-p03", Chassis: "ch1", Status: PortStatusActive},
		PortStatusChange{PortID: "core-p04", Chassis: "", Status: PortStatusActive},
		PortStatusChange{PortID: "gone", Chassis: "ch1", Status: PortStatusActive})
	v := f.State().Read()
	p := v.Port("core-p01")
	if p.Status != PortStatusActive || p.RevisionNumber != before.RevisionNumber+1 || p.UpdatedAt != fmt.Sprintf("t%d", last+2) ||
		p.ModifyIndex != last+2 {
		t.Fatalf("core-p01: %+v", p)
	}
	for _, id := range []string{"core-p02", "core-p03", "core-p04"} {
		if p := v.Port(id); p.Status == PortStatusActive || p.ModifyIndex == last+2 {
			t.Fatalf("%s changed: %+v", id, p)
		}
	}
	if changes, ok := f.ChangesSince(last + 1); !ok || !reflect.DeepEqual(changes, []Change{{TablePorts, "core-p01"}}) {
		t.Fatalf("changes %v %v", changes, ok)
	}

	// Setting the status it has is a no-op, not an error.
	r := setStatus(t, f, last+3, PortStatusChange{PortID: "core-p01", Chassis: "ch1", Status: PortStatusActive})
	if p := f.State().Read().Port("core-p01"); p.ModifyIndex != last+2 || p.RevisionNumber != before.RevisionNumber+1 || r.Revision != last+3 {
		t.Fatalf("no-op changed the port: %+v", p)
	}
	if changes, ok := f.ChangesSince(last + 2); !ok || len(changes) != 0 {
		t.Fatalf("no-op changes %v %v", changes, ok)
	}

	// An unknown status is refused, all or nothing.
	r = apply(t, f, last+4, CmdPortStatus, PortStatusRequest{Ports: []PortStatusChange{
		{PortID: "core-p02", Chassis: "ch2", Status: PortStatusActive},
		{PortID: "core-p01", Chassis: "ch1", Status: "UP"},
	}})
	if fe, ok := AsError(r.Err); !ok || fe.Code != CodeBadRequest || r.Revision != last+3 {
		t.Fatalf("bad status: %+v", r)
	}
	if p := f.State().Read().Port("core-p02"); p.Status != PortStatusDown {
		t.Fatalf("refused request changed core-p02: %+v", p)
	}
	setStatus(t, f, last+5, PortStatusChange{PortID: "core-p01", Chassis: "ch1", Status: PortStatusError})
	if p := f.State().Read().Port("core-p01"); p.Status != PortStatusError {
		t.Fatalf("error status: %+v", p)
	}
	// Without a time, updated_at stays.
	if r := apply(t, f, last+6, CmdPortStatus, PortStatusRequest{Ports: []PortStatusChange{
		{PortID: "core-p01", Chassis: "ch1", Status: PortStatusDown}}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if p := f.State().Read().Port("core-p01"); p.Status != PortStatusDown || p.UpdatedAt != fmt.Sprintf("t%d", last+5) {
		t.Fatalf("status without a time: %+v", p)
	}
	if CmdPortStatus.String() != "PortStatus" {
		t.Fatal(CmdPortStatus.String())
	}
}
