package fsm

import (
	"slices"
	"testing"
)

// trunkPorts creates network n1 with ports a, b, c, d (no addresses).
func trunkPorts(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	applyOK(t, f, index, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("tn1", 700)}})
	var ports []*Port
	for i, id := range []string{"a", "b", "c", "d"} {
		ports = append(ports, testPort(id, "tn1", "fa:16:3e:00:07:0"+string(rune('1'+i)), nil))
	}
	applyOK(t, f, index+1, CmdPortCreate, PortCreateRequest{Ports: ports})
	return index + 1
}

func testTrunk(id, parent string, subs ...SubPort) *Trunk {
	return &Trunk{Meta: Meta{ID: id, ProjectID: "p1", RevisionNumber: 1, CreatedAt: "2026-12-07T00:00:00Z"},
		PortID: parent, AdminStateUp: true, SubPorts: subs}
}

func vlan(port string, id int) SubPort {
	return SubPort{PortID: port, SegmentationType: SegmentationVLAN, SegmentationID: id}
}

// fillTrunkTable adds a trunk for the snapshot round trip.
func fillTrunkTable(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	last := trunkPorts(t, f, index)
	applyOK(t, f, last+1, CmdTrunk, TrunkRequest{Op: OpCreate, Trunk: testTrunk("t1", "a", vlan("b", 10))})
	return last + 1
}

func TestTrunkLifecycle(t *testing.T) {
	f := New(nil)
	last := trunkPorts(t, f, 1)
	applyOK(t, f, last+1, CmdTrunk, TrunkRequest{Op: OpCreate, Trunk: testTrunk("t1", "a", vlan("b", 10))})
	v := f.State().Read()
	if tr := v.TrunkOfSubport("b"); tr == nil || tr.ID != "t1" || v.TrunkOfParent("a") != tr {
		t.Fatalf("trunk of subport b / parent a: %+v", tr)
	}
	if p := v.Port("b"); p.DeviceOwner != DeviceOwnerTrunkSubport || p.DeviceID != "t1" {
		t.Fatalf("subport b: owner %q device %q", p.DeviceOwner, p.DeviceID)
	}

	for name, c := range map[string]struct {
		typ  CommandType
		body any
		want string
	}{
		"parent of two":      {CmdTrunk, TrunkRequest{Op: OpCreate, Trunk: testTrunk("t2", "a")}, ErrTypeTrunkPortInUse},
		"subport as parent":  {CmdTrunk, TrunkRequest{Op: OpCreate, Trunk: testTrunk("t2", "b")}, ErrTypeTrunkPortInUse},
		"missing parent":     {CmdTrunk, TrunkRequest{Op: OpCreate, Trunk: testTrunk("t2", "zz")}, ErrTypePortNotFound},
		"vlan in use":        {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("c", 10)}}, ErrTypeDuplicateSubPort},
		"vlan twice":         {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("c", 11), vlan("d", 11)}}, ErrTypeDuplicateSubPort},
		"port twice":         {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("c", 11), vlan("c", 12)}}, ErrTypeTrunkPortInUse},
		"parent as subport":  {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("a", 11)}}, ErrTypeTrunkPortInUse},
		"vlan 4095":          {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("c", 4095)}}, ErrTypeInvalidInput},
		"vlan 0":             {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("c", 0)}}, ErrTypeInvalidInput},
		"not vlan":           {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{{PortID: "c", SegmentationType: "inherit", SegmentationID: 5}}}, ErrTypeInvalidInput},
		"remove unknown":     {CmdTrunkSubports, TrunkSubportsRequest{Op: OpRemoveSubports, TrunkID: "t1", SubPorts: []SubPort{{PortID: "c"}}}, ErrTypeSubPortNotFound},
		"no such trunk":      {CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t9", SubPorts: []SubPort{vlan("c", 11)}}, ErrTypeTrunkNotFound},
		"delete parent port": {CmdPortDelete, PortDeleteRequest{ID: "a"}, ErrTypePortInUseAsTrunkParent},
		"delete subport":     {CmdPortDelete, PortDeleteRequest{ID: "b"}, ErrTypePortInUseAsSubPort},
		"create no object":   {CmdTrunk, TrunkRequest{Op: OpCreate}, ErrTypeInvalidInput},
	} {
		before := f.State().Read().Revision()
		r := apply(t, f, before+1, c.typ, c.body)
		fe, ok := AsError(r.Err)
		if !ok || fe.Type != c.want {
			t.Fatalf("%s: want %s, got %v", name, c.want, r.Err)
		}
		if f.State().Read().Revision() != before {
			t.Fatalf("%s: a refused command changed the state", name)
		}
	}

	// Add two, remove one: the remaining subports keep their VLANs.
	rev := f.State().Read().Revision()
	applyOK(t, f, rev+1, CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("c", 4094), vlan("d", 1)}})
	applyOK(t, f, rev+2, CmdTrunkSubports, TrunkSubportsRequest{Op: OpRemoveSubports, TrunkID: "t1", SubPorts: []SubPort{{PortID: "b"}}})
	v = f.State().Read()
	if got := v.Trunk("t1").SubPorts; !slices.Equal(got, []SubPort{vlan("c", 4094), vlan("d", 1)}) {
		t.Fatalf("subports: %+v", got)
	}
	if p := v.Port("b"); p.DeviceOwner != "" || p.DeviceID != "" || v.TrunkOfSubport("b") != nil {
		t.Fatalf("removed subport b keeps its trunk: %+v", p)
	}
	// Disabled: subports can be neither added nor removed.
	dis := v.Trunk("t1").Copy()
	dis.AdminStateUp = false
	applyOK(t, f, rev+3, CmdTrunk, TrunkRequest{Op: OpUpdate, Trunk: dis})
	wantErrType(t, apply(t, f, rev+4, CmdTrunkSubports, TrunkSubportsRequest{Op: OpAddSubports, TrunkID: "t1", SubPorts: []SubPort{vlan("b", 7)}}), ErrTypeTrunkDisabled)
	// Delete: the ports are free again and may be deleted.
	applyOK(t, f, rev+5, CmdTrunk, TrunkRequest{Op: OpDelete, ID: "t1"})
	v = f.State().Read()
	if v.Trunk("t1") != nil || v.TrunkOfSubport("c") != nil || v.Port("c").DeviceOwner != "" {
		t.Fatal("trunk delete left its subports marked")
	}
	applyOK(t, f, rev+6, CmdPortDelete, PortDeleteRequest{ID: "a"})
	applyOK(t, f, rev+7, CmdPortDelete, PortDeleteRequest{ID: "c"})
}
