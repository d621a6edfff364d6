package fsm

import "testing"

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
	bind(last+1, PortBinding{PortID: "core-p01", Chassis: "ch1"}, PortBinding{PortID: "gone", Chassis: "ch1"})
	p := f.State().Read().Port("core-p01")
	if p.BindingHostID != "ch1" || p.BindingVIFType != VIFTypeOVS || p.Status != PortStatusActive || p.RevisionNumber != 2 || p.UpdatedAt != "t" {
		t.Fatalf("after bind: %+v", p)
	}
	// An unplug reported by another chassis does not undo the binding.
	bind(last+2, PortBinding{PortID: "core-p01", FromChassis: "ch2"})
	if p := f.State().Read().Port("core-p01"); p.BindingHostID != "ch1" || p.ModifyIndex != last+1 {
		t.Fatalf("after foreign unbind: %+v", p)
	}
	bind(last+3, PortBinding{PortID: "core-p01", FromChassis: "ch1"})
	p = f.State().Read().Port("core-p01")
	if p.BindingHostID != "" || p.BindingVIFType != VIFTypeUnbound || p.Status != PortStatusDown || p.ModifyIndex != last+3 {
		t.Fatalf("after unbind: %+v", p)
	}
}
