package controller

import (
	"neutrino/fsm"
	"neutrino/southbound/pipeline"
)

// subportBindings adds to a chassis' bindings (port id -> ofport, what OVSDB
// shows) the subports of the trunks whose parent is plugged there, each
// with a virtual ofport from pipeline.SubportOfportMin up (pipeline/trunk.go):
// so they are bound to the parent's chassis, carried as local ports and
// shown ACTIVE or DOWN with it. prev holds the numbers given on earlier
// passes, which a subport keeps (its conntrack zone) while it stays; it
// is updated in place. Real ofports in the range are skipped.
func subportBindings(v *fsm.View, bindings, prev map[string]uint32) {
	used := map[uint32]bool{}
	for _, n := range bindings {
		used[n] = true
	}
	want := map[string]bool{}
	for id, n := range bindings {
		if n >= pipeline.SubportOfportMin {
			continue
		}
		t := v.TrunkOfParent(id)
		if t == nil {
			continue
		}
		for _, sp := range t.SubPorts {
			want[sp.PortID] = true
		}
	}
	for id, n := range prev {
		if !want[id] || used[n] {
			delete(prev, id)
			continue
		}
		used[n] = true
	}
	next := pipeline.SubportOfportMin
	for _, id := range sortedKeys(want) {
		n, ok := prev[id]
		if !ok {
			for used[next] && next <= pipeline.MaxPortZone {
				next++
			}
			if next > pipeline.MaxPortZone {
				continue // more subports than numbers: not carried
			}
			n = next
			used[n] = true
			prev[id] = n
		}
		bindings[id] = n
	}
}
