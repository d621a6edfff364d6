package openflow_test

import (
	"net/netip"
	"testing"

	of "neutrino/southbound/openflow"
)

// sameActionsCases are pairs of action lists and whether OVS would see
// the same actions: the element-wise fast path must never call equal what
// the canonical strings call different, and the strings decide what it
// cannot (another order of stages).
var sameActionsCases = []struct {
	name string
	a, b []of.Action
	same bool
}{
	{"empty", nil, nil, true},
	{"drop vs output", nil, []of.Action{of.Output{Port: 1}}, false},
	{"set_field equal", []of.Action{of.SetReg(6, 5), of.GotoTable{Table: 10}}, []of.Action{of.SetReg(6, 5), of.GotoTable{Table: 10}}, true},
	{"set_field value", []of.Action{of.SetReg(6, 5)}, []of.Action{of.SetReg(6, 6)}, false},
	{"set_field register", []of.Action{of.SetReg(6, 5)}, []of.Action{of.SetReg(7, 5)}, false},
	{"stage order", []of.Action{of.GotoTable{Table: 10}, of.SetReg(6, 5)}, []of.Action{of.SetReg(6, 5), of.GotoTable{Table: 10}}, true},
	{"apply order", []of.Action{of.Output{Port: 1}, of.Output{Port: 2}}, []of.Action{of.Output{Port: 2}, of.Output{Port: 1}}, false},
	{"ct equal", []of.Action{of.CT{Commit: true, Zone: 3, Actions: []of.Action{of.SNAT(netip.MustParseAddr("192.0.2.1"))}}},
		[]of.Action{of.CT{Commit: true, Zone: 3, Actions: []of.Action{of.SNAT(netip.MustParseAddr("192.0.2.1"))}}}, true},
	{"ct nat address", []of.Action{of.CT{Commit: true, Zone: 3, Actions: []of.Action{of.SNAT(netip.MustParseAddr("192.0.2.1"))}}},
		[]of.Action{of.CT{Commit: true, Zone: 3, Actions: []of.Action{of.SNAT(netip.MustParseAddr("192.0.2.2"))}}}, false},
	{"ct zone", []of.Action{of.CT{Recirc: true, Table: 21, Zone: 3}}, []of.Action{of.CT{Recirc: true, Table: 21, Zone: 4}}, false},
	{"type", []of.Action{of.Resubmit{Table: 3}}, []of.Action{of.GotoTable{Table: 3}}, false},
	{"conjunction", []of.Action{of.Conjunction{ID: 7, Clause: 1, NClauses: 2}}, []of.Action{of.Conjunction{ID: 7, Clause: 2, NClauses: 2}}, false},
	{"raw", []of.Action{of.RawAction{Bytes: []byte{1, 2}}}, []of.Action{of.RawAction{Bytes: []byte{1, 2}}}, true},
}

// TestSameActions: SameActions agrees with the canonical strings on every
// case, both ways round.
func TestSameActions(t *testing.T) {
	for _, c := range sameActionsCases {
		f, g := &of.Flow{Actions: c.a}, &of.Flow{Actions: c.b}
		if byString := f.ActionsString() == g.ActionsString(); byString != c.same {
			t.Fatalf("%s: the case is wrong: strings %q vs %q", c.name, f.ActionsString(), g.ActionsString())
		}
		if got := f.SameActions(g); got != c.same {
			t.Errorf("%s: SameActions(%q, %q) = %v, want %v", c.name, f.ActionsString(), g.ActionsString(), got, c.same)
		}
		if got := g.SameActions(f); got != c.same {
			t.Errorf("%s, reversed: SameActions = %v, want %v", c.name, got, c.same)
		}
	}
}

// BenchmarkSameActions compares a typical unchanged flow (a tunnel
// output: set_field tun_id, set_field tun_dst, output) with its copy, as
// a recompile does for every flow of a unit it recompiles.
func BenchmarkSameActions(b *testing.B) {
	mk := func() *of.Flow {
		return &of.Flow{Actions: []of.Action{of.SetField{Field: of.FieldTunID, Value: []byte{0, 0, 0, 0, 0, 0, 3, 0xe9}},
			of.SetReg(6, 5), of.Output{Port: 2}}}
	}
	f, g := mk(), mk()
	b.ReportAllocs()
	for b.Loop() {
		if !f.SameActions(g) {
			b.Fatal("not the same")
		}
	}
}
