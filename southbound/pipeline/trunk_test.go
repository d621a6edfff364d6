package pipeline

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
)

// TestTrunkSubportFlows: a subport of a trunk whose parent is plugged on
// ch1 is classified from the parent's interface by its VLAN (tag popped),
// delivered tagged on it, flooded tagged, answered tagged; other tags on
// the parent are dropped. After every change the incremental flow set
// equals a full compile, and a removed subport or an unplugged parent
// takes the flows away.
func TestTrunkSubportFlows(t *testing.T) {
	s := newState(t)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{chassis("ch1", "192.0.2.1"), chassis("ch2", "192.0.2.2")}})
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{
		network("net-p", fsm.NetTypeVXLAN, 100), network("net-s", fsm.NetTypeVXLAN, 200)}})
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{
		port("parent", "net-p", "fa:16:3e:00:00:01", "ch1"),
		port("sub", "net-s", "fa:16:3e:00:00:01", "ch1"), // the parent's MAC, on another network
		port("remote", "net-s", "fa:16:3e:00:00:03", "ch2"),
	}})
	sub := SubportOfportMin
	cc := NewCompiler()
	rev := uint64(0)
	compile := func(bindings map[string]uint32) string {
		t.Helper()
		v := s.f.State().Read()
		facts := Facts{Chassis: "ch1", Bindings: bindings, Tunnels: map[string]uint32{"vxlan": 1}}
		var changes []fsm.Change
		if rev != 0 {
			ch, ok := s.f.ChangesSince(rev)
			if !ok {
				t.Fatal("change history lost")
			}
			changes = append([]fsm.Change{}, ch...)
		}
		cc.Update(v, changes, facts)
		rev = v.Revision()
		full := Compile(v, facts)
		if d := Diff(cc.Flows(), full); d != "" {
			t.Fatalf("incremental != full: %s", d)
		}
		return render(full)
	}
	want := []string{
		"priority=110,in_port=3,dl_vlan=100 actions=pop_vlan,set_field:0x6000->reg6",
		"priority=105,in_port=3,vlan_vid=0x1000/0x1000 actions=drop",
		"table=65, priority=110,reg7=0x6000,in_port=3 actions=push_vlan:0x8100,set_field:4196->vlan_vid,IN_PORT",
		"table=65, priority=100,reg7=0x6000 actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:3",
		"table=66, priority=100,reg6=0x6000 actions=push_vlan:0x8100,set_field:4196->vlan_vid,IN_PORT",
		"push_vlan:0x8100,set_field:4196->vlan_vid,output:3,pop_vlan",
		"table=40, priority=100,metadata=0x1000000c8/0xffffffffff,dl_dst=fa:16:3e:00:00:01 actions=set_field:0x6000->reg7",
	}
	check := func(flows string, present bool) {
		t.Helper()
		for _, w := range want {
			if strings.Contains(flows, w) != present {
				t.Fatalf("flow %q present=%v, want %v:\n%s", w, !present, present, flows)
			}
		}
	}

	check(compile(map[string]uint32{"parent": 3}), false)
	s.apply(fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpCreate, Trunk: &fsm.Trunk{Meta: fsm.Meta{ID: "t1", ProjectID: "p"}, PortID: "parent", AdminStateUp: true,
		SubPorts: []fsm.SubPort{{PortID: "sub", SegmentationType: fsm.SegmentationVLAN, SegmentationID: 100}}}})
	// The controller has not numbered the subport yet: no flows for it,
	// but the parent already drops tagged frames.
	flows := compile(map[string]uint32{"parent": 3})
	if strings.Contains(flows, "reg6=0x6000") || !strings.Contains(flows, want[1]) {
		t.Fatalf("before the subport's number:\n%s", flows)
	}
	check(compile(map[string]uint32{"parent": 3, "sub": sub}), true)
	// Unplugged parent: the subport goes with it even if still numbered.
	check(compile(map[string]uint32{"sub": sub}), false)
	check(compile(map[string]uint32{"parent": 3, "sub": sub}), true)
	s.apply(fsm.CmdTrunkSubports, fsm.TrunkSubportsRequest{Op: fsm.OpRemoveSubports, TrunkID: "t1", SubPorts: []fsm.SubPort{{PortID: "sub"}}})
	flows = compile(map[string]uint32{"parent": 3, "sub": sub})
	if strings.Contains(flows, "dl_vlan=100") || strings.Contains(flows, "push_vlan") {
		t.Fatalf("a removed subport keeps its tagged flows:\n%s", flows)
	}
}

// BenchmarkCompileTrunks compiles a chassis with 20 VMs, each the parent
// of a trunk with 50 subports on 50 networks (1,000 subports carried on
// the parents' interfaces).
func BenchmarkCompileTrunks(b *testing.B) {
	s := newState(b)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{chassis("ch1", "192.0.2.1"), chassis("ch2", "192.0.2.2")}})
	var nets []*fsm.Network
	for i := 0; i < 51; i++ {
		nets = append(nets, network(fmt.Sprintf("net%02d", i), fsm.NetTypeVXLAN, 100+i))
	}
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: nets})
	facts := Facts{Chassis: "ch1", Bindings: map[string]uint32{}, Tunnels: map[string]uint32{"vxlan": 1}}
	var ports []*fsm.Port
	for vm := 0; vm < 20; vm++ {
		mac := fmt.Sprintf("fa:16:3e:00:%02x:00", vm)
		ports = append(ports, port(fmt.Sprintf("parent%02d", vm), "net00", mac, "ch1"))
		facts.Bindings[fmt.Sprintf("parent%02d", vm)] = uint32(vm + 2)
		for i := 1; i <= 50; i++ {
			id := fmt.Sprintf("sub%02d-%02d", vm, i)
			ports = append(ports, port(id, fmt.Sprintf("net%02d", i), fmt.Sprintf("fa:16:3e:01:%02x:%02x", vm, i), "ch1"))
			facts.Bindings[id] = SubportOfportMin + uint32(vm*50+i)
		}
		ports = append(ports, port(fmt.Sprintf("remote%02d", vm), "net01", fmt.Sprintf("fa:16:3e:02:%02x:00", vm), "ch2"))
	}
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ports})
	for vm := 0; vm < 20; vm++ {
		t := &fsm.Trunk{Meta: fsm.Meta{ID: fmt.Sprintf("t%02d", vm), ProjectID: "p"}, PortID: fmt.Sprintf("parent%02d", vm), AdminStateUp: true}
		for i := 1; i <= 50; i++ {
			t.SubPorts = append(t.SubPorts, fsm.SubPort{PortID: fmt.Sprintf("sub%02d-%02d", vm, i), SegmentationType: fsm.SegmentationVLAN, SegmentationID: i})
		}
		s.apply(fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpCreate, Trunk: t})
	}
	v := s.f.State().Read()
	flows := Compile(v, facts)
	if !strings.Contains(render(flows), "dl_vlan=50 actions=pop_vlan") {
		b.Fatal("no subport flows compiled")
	}
	for b.Loop() {
		Compile(v, facts)
	}
	b.ReportMetric(float64(len(flows)), "flows")
}

// TestTrunkIncrementalEqualsFull: 300 random trunk changes (create and
// delete trunks, add and remove subports, plug and unplug parents, parent
// admin state, subport port security) on two chassis; after each, every
// chassis' incremental flow set equals a full compile.
func TestTrunkIncrementalEqualsFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 19))
	s := newState(t)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{chassis("ch1", "192.0.2.1"), chassis("ch2", "192.0.2.2")}})
	var nets []*fsm.Network
	for i := 0; i < 4; i++ {
		nets = append(nets, network(fmt.Sprintf("net%d", i), fsm.NetTypeVXLAN, 300+i))
	}
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: nets})
	var ports []*fsm.Port
	host := map[string]string{}
	for i := 0; i < 12; i++ {
		id := fmt.Sprintf("p%02d", i)
		host[id] = []string{"ch1", "ch2"}[i%2]
		p := port(id, fmt.Sprintf("net%d", i%4), fmt.Sprintf("fa:16:3e:00:00:%02x", i), host[id])
		p.PortSecurityEnabled = i%3 == 0
		ports = append(ports, p)
	}
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ports})
	plugged := map[string]bool{}
	for id := range host {
		plugged[id] = true
	}
	// bindings: as the controller gives them, plugged ports at their index
	// + 2, subports of a plugged parent from SubportOfportMin.
	bindings := func(v *fsm.View, ch string) map[string]uint32 {
		out := map[string]uint32{}
		for i := 0; i < 12; i++ {
			id := fmt.Sprintf("p%02d", i)
			if host[id] == ch && plugged[id] && v.TrunkOfSubport(id) == nil {
				out[id] = uint32(i + 2)
			}
		}
		for id := range out {
			if tr := v.TrunkOfParent(id); tr != nil {
				for _, sp := range tr.SubPorts {
					var n int
					fmt.Sscanf(sp.PortID, "p%d", &n)
					out[sp.PortID] = SubportOfportMin + uint32(n)
				}
			}
		}
		return out
	}
	compilers := map[string]*Compiler{"ch1": NewCompiler(), "ch2": NewCompiler()}
	revs := map[string]uint64{}
	trunkN, subportFlows := 0, 0
	try := func(typ fsm.CommandType, body any) {
		buf, err := fsm.Encode(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		s.index++
		s.f.Apply(&raft.Log{Index: s.index, Data: buf}) // refusals are part of the walk
	}
	pick := func() string { return fmt.Sprintf("p%02d", rng.IntN(12)) }
	for step := 0; step < 300; step++ {
		v := s.f.State().Read()
		var desc string
		switch op := rng.IntN(6); op {
		case 0:
			trunkN++
			id := fmt.Sprintf("t%d", trunkN)
			parent := pick()
			if rng.IntN(4) != 0 {
				parent = fmt.Sprintf("p%02d", rng.IntN(2)) // mostly the two VMs' ports, one per chassis
			}
			desc = "create " + id + " on " + parent
			try(fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpCreate, Trunk: &fsm.Trunk{Meta: fsm.Meta{ID: id, ProjectID: "p"}, PortID: parent, AdminStateUp: true}})
		case 1:
			if ts := v.Trunks(); len(ts) > 0 && rng.IntN(3) == 0 {
				tr := ts[rng.IntN(len(ts))]
				desc = "delete " + tr.ID
				try(fsm.CmdTrunk, fsm.TrunkRequest{Op: fsm.OpDelete, ID: tr.ID})
			}
		case 2, 3:
			if ts := v.Trunks(); len(ts) > 0 {
				tr := ts[rng.IntN(len(ts))]
				sub := fmt.Sprintf("p%02d", 2+rng.IntN(10))
				if op == 2 {
					desc = "add " + sub + " to " + tr.ID
					try(fsm.CmdTrunkSubports, fsm.TrunkSubportsRequest{Op: fsm.OpAddSubports, TrunkID: tr.ID,
						SubPorts: []fsm.SubPort{{PortID: sub, SegmentationType: fsm.SegmentationVLAN, SegmentationID: 1 + rng.IntN(6)}}})
				} else if len(tr.SubPorts) > 0 {
					sub = tr.SubPorts[rng.IntN(len(tr.SubPorts))].PortID
					desc = "remove " + sub + " from " + tr.ID
					try(fsm.CmdTrunkSubports, fsm.TrunkSubportsRequest{Op: fsm.OpRemoveSubports, TrunkID: tr.ID, SubPorts: []fsm.SubPort{{PortID: sub}}})
				}
			}
		case 4:
			id := pick()
			if rng.IntN(2) == 0 {
				id = fmt.Sprintf("p%02d", rng.IntN(2))
			}
			plugged[id] = !plugged[id]
			desc = fmt.Sprintf("plugged %s %v", id, plugged[id])
		case 5:
			id := pick()
			if ts := v.Trunks(); len(ts) > 0 && rng.IntN(2) == 0 {
				id = ts[rng.IntN(len(ts))].PortID // a parent's admin state moves its subports
			}
			p := v.Port(id).Copy()
			if rng.IntN(2) == 0 {
				p.AdminStateUp = !p.AdminStateUp
			} else {
				p.PortSecurityEnabled = !p.PortSecurityEnabled
			}
			desc = fmt.Sprintf("update %s up=%v secured=%v", p.ID, p.AdminStateUp, p.PortSecurityEnabled)
			try(fsm.CmdPortUpdate, fsm.PortUpdateRequest{Port: p, PrevIndex: v.Port(p.ID).ModifyIndex})
		}
		v = s.f.State().Read()
		for _, ch := range []string{"ch1", "ch2"} {
			facts := Facts{Chassis: ch, Bindings: bindings(v, ch), Tunnels: map[string]uint32{"vxlan": 1}}
			var changes []fsm.Change
			if revs[ch] != 0 {
				c, ok := s.f.ChangesSince(revs[ch])
				if !ok {
					t.Fatal("change history lost")
				}
				changes = append([]fsm.Change{}, c...)
			}
			cc := compilers[ch]
			cc.Update(v, changes, facts)
			revs[ch] = v.Revision()
			full := Compile(v, facts)
			if d := Diff(cc.Flows(), full); d != "" {
				t.Fatalf("step %d (%s), %s: incremental != full: %s", step, desc, ch, d)
			}
			for _, f := range full {
				if f.Table == TableInPortReply && f.Priority == prioMatch {
					subportFlows++
				}
			}
		}
	}
	if subportFlows == 0 {
		t.Fatal("no subport was ever carried: the walk tested nothing")
	}
	t.Logf("%d subport reply flows seen over the walk", subportFlows)
}
