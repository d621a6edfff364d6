package openflow_test

import (
	"testing"

	"neutrino/southbound/openflow"
)

// TestSwitchSideCodec: what the controller encodes, the switch side
// decodes to the same flow, and a flow-stats entry the switch side encodes
// decodes (as a dump does) to the same flow.
func TestSwitchSideCodec(t *testing.T) {
	for _, f := range sampleFlows() {
		want := f
		want.Match = want.Match.Canonical()
		for _, cmd := range []uint8{openflow.CmdAdd, openflow.CmdModifyStrict, openflow.CmdDeleteStrict} {
			m := openflow.FlowMod{Command: cmd, Flow: f, CookieMask: 0xff00}
			b, err := openflow.EncodeFlowModForTest(&m, 7)
			if err != nil {
				t.Fatalf("encode %s: %v", f.String(), err)
			}
			got, err := openflow.DecodeFlowMod(b)
			if err != nil {
				t.Fatalf("decode %s: %v", f.String(), err)
			}
			if got.Command != cmd || got.CookieMask != 0xff00 || got.Flow.Key() != want.Key() || got.Flow.Cookie != f.Cookie {
				t.Fatalf("command %d: decoded %s (mask %#x), want %s", cmd, got.Flow.String(), got.CookieMask, want.String())
			}
			if cmd != openflow.CmdDeleteStrict && !got.Flow.SameActions(&want) {
				t.Fatalf("actions: decoded %s, want %s", got.Flow.String(), want.String())
			}
		}
		e, err := openflow.EncodeFlowStats(f)
		if err != nil {
			t.Fatal(err)
		}
		back, err := openflow.DecodeFlowStatsEntries(append(e, e...))
		if err != nil || len(back) != 2 {
			t.Fatalf("flow stats of %s: %d flows, err %v", f.String(), len(back), err)
		}
		if back[1].String() != want.String() {
			t.Fatalf("flow stats: %s, want %s", back[1].String(), want.String())
		}
	}
	if _, err := openflow.DecodeFlowMod([]byte{4, 14, 0, 8, 0, 0, 0, 1}); err == nil {
		t.Fatal("a truncated flow-mod decoded")
	}
}

// TestMatchSubsumes: a non-strict match selects flows holding each of its
// fields; the empty match selects every flow.
func TestMatchSubsumes(t *testing.T) {
	f := openflow.Match{openflow.InPort(1), openflow.Reg(0, 5)}
	for _, c := range []struct {
		m    openflow.Match
		want bool
	}{
		{nil, true},
		{openflow.Match{openflow.InPort(1)}, true},
		{openflow.Match{openflow.Reg(0, 5), openflow.InPort(1)}, true},
		{openflow.Match{openflow.InPort(2)}, false},
		{openflow.Match{openflow.InPort(1), openflow.Reg(1, 5)}, false},
	} {
		if got := c.m.Subsumes(f); got != c.want {
			t.Errorf("%v subsumes %v: %v, want %v", c.m, f, got, c.want)
		}
	}
}
