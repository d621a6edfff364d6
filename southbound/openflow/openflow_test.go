package openflow_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func adds(flows []openflow.Flow) []openflow.FlowMod {
	mods := make([]openflow.FlowMod, len(flows))
	for i, f := range flows {
		mods[i] = openflow.FlowMod{Command: openflow.CmdAdd, Flow: f}
	}
	return mods
}

// sampleFlows covers every match field and action the package models.
func sampleFlows() []openflow.Flow {
	mac, _ := net.ParseMAC("02:00:00:00:00:0a")
	_, pfx, _ := net.ParseCIDR("10.0.0.0/24")
	_, host, _ := net.ParseCIDR("10.0.1.7/32")
	return []openflow.Flow{
		{Table: 0, Priority: 100, Cookie: 1, Match: openflow.Match{openflow.InPort(1)},
			Actions: []openflow.Action{openflow.GotoTable{Table: 1}, openflow.SetReg(0, 5), openflow.SetTunID(77)}},
		{Table: 1, Priority: 100, Cookie: 2, Match: openflow.Match{openflow.EthDst(mac), openflow.Reg(0, 5)},
			Actions: []openflow.Action{openflow.Output{Port: 2}}},
		{Table: 1, Priority: 90, Cookie: 3, Match: openflow.Match{openflow.RegMasked(1, 0x1234, 0xff), openflow.TunID(9)}},
		{Table: 2, Priority: 90, Cookie: 4, Match: openflow.Match{openflow.EthType(0x0800), openflow.IPv4Dst(*pfx),
			openflow.IPv4Src(*host), openflow.IPProto(6), openflow.Exact(openflow.FieldTCPDst, 80)},
			Actions: []openflow.Action{openflow.DecTTL{}, openflow.WriteMetadata{Value: 1, Mask: 0xff}, openflow.Resubmit{Table: 4},
				openflow.SetField{Field: openflow.FieldTunDst, Value: net.ParseIP("192.0.2.1").To4()}, openflow.GotoTable{Table: 3}}},
		{Table: 2, Priority: 80, Cookie: 5, Match: openflow.Match{openflow.EthType(0x0806), openflow.ARPOp(1),
			openflow.ARPTpa(net.ParseIP("10.0.0.1")), openflow.VlanVID(10)},
			Actions: []openflow.Action{openflow.PopVLAN{}, openflow.PushVLAN{EtherType: 0x8100}, openflow.Output{Port: openflow.PortInPort}}},
		{Table: 3, Priority: 80, Cookie: 6, Match: openflow.Match{openflow.CtState(openflow.CtTrk|openflow.CtEst, openflow.CtTrk|openflow.CtEst|openflow.CtNew),
			openflow.CtZone(5), openflow.Metadata(0x10, 0xf0), openflow.TunDst(net.ParseIP("1.2.3.4")), openflow.TunSrc(net.ParseIP("1.2.3.5"))},
			Actions: []openflow.Action{openflow.Conjunction{ID: 7, Clause: 1, NClauses: 2}}},
		{Table: 4, Priority: 10, Cookie: 7, Match: openflow.Match{openflow.EthType(0x0800), openflow.IPProto(17),
			openflow.Exact(openflow.FieldUDPDst, 53), openflow.Masked(openflow.FieldMetadata, 0, 0)},
			Actions: []openflow.Action{openflow.SetField{Field: openflow.FieldEthDst, Value: mac}, openflow.Output{Port: openflow.PortController}}},
		{Table: 5, Priority: 0x8000, Cookie: 8, Match: openflow.Match{openflow.Masked(openflow.FieldReg(15), 0xffffffff, 0xffffffff)},
			Actions: []openflow.Action{openflow.Output{Port: openflow.PortLocal}}},
	}
}

// masterConn starts a switch with one controller that is MASTER.
func masterConn(t *testing.T, name string) (*oftest.Switch, *openflow.Conn) {
	t.Helper()
	sw := oftest.StartSwitch(t, name)
	conn := sw.Connect(t, oftest.NewController(t, openflow.Options{}))[0]
	if role, _, err := conn.RequestRole(ctxFor(t, 10*time.Second), openflow.RoleMaster, 1); err != nil || role != openflow.RoleMaster {
		t.Fatalf("role = %v, %v; want MASTER", role, err)
	}
	return sw, conn
}

// TestFlowRoundTrip installs every modelled field and action, and checks
// that the switch's dump decodes to the same keys, cookies and actions and
// that String() is exactly what ovs-ofctl prints.
func TestFlowRoundTrip(t *testing.T) {
	sw, conn := masterConn(t, "rt")
	ctx := ctxFor(t, 30*time.Second)
	want := sampleFlows()
	if err := conn.Bundle(ctx, adds(want)); err != nil {
		t.Fatal(err)
	}
	got, err := conn.DumpFlows(ctx, openflow.TableAll, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[openflow.Key]openflow.Flow{}
	for _, f := range got {
		byKey[f.Key()] = f
	}
	if len(got) != len(want) {
		t.Errorf("dumped %d flows, want %d", len(got), len(want))
	}
	for _, w := range want {
		g, ok := byKey[w.Key()]
		switch {
		case !ok:
			t.Errorf("flow not found by key: %s", w.String())
		case g.Cookie != w.Cookie || !g.SameActions(&w):
			t.Errorf("dumped %s\nwant   %s", g.String(), w.String())
		}
	}
	if g, w := sw.OfctlFlows(t), oftest.Expected(want); !slices.Equal(g, w) {
		t.Errorf("ovs-ofctl dump differs from String():\n got %s\nwant %s", strings.Join(g, "\n     "), strings.Join(w, "\n     "))
	}
}

// TestRoleGate: a connection that never got a ROLE_REPLY(MASTER) is EQUAL
// on the switch and could write; our layer refuses.
func TestRoleGate(t *testing.T) {
	sw := oftest.StartSwitch(t, "gate")
	conn := sw.Connect(t, oftest.NewController(t, openflow.Options{}))[0]
	ctx := ctxFor(t, 10*time.Second)
	if err := conn.Bundle(ctx, adds(sampleFlows())); !errors.Is(err, openflow.ErrNotMaster) {
		t.Fatalf("bundle before any role: err = %v, want ErrNotMaster", err)
	}
	if _, _, err := conn.RequestRole(ctx, openflow.RoleSlave, 1); err != nil {
		t.Fatal(err)
	}
	if err := conn.Send(ctx, adds(sampleFlows())); !errors.Is(err, openflow.ErrNotMaster) {
		t.Fatalf("send as slave: err = %v, want ErrNotMaster", err)
	}
	if _, _, err := conn.RequestRole(ctx, openflow.RoleMaster, 2); err != nil {
		t.Fatal(err)
	}
	conn.Demote()
	if err := conn.Bundle(ctx, adds(sampleFlows())); !errors.Is(err, openflow.ErrNotMaster) {
		t.Fatalf("bundle after Demote: err = %v, want ErrNotMaster", err)
	}
	if n := len(sw.OfctlFlows(t)); n != 0 {
		t.Errorf("switch has %d flows, want 0", n)
	}
}

// TestFencing: A is master with g1 and installs; B takes over with g2 > g1
// and installs its own set; A's writes are refused by the switch and then
// by our layer, A's stale request gets STALE, and the switch holds B's set.
func TestFencing(t *testing.T) {
	sw := oftest.StartSwitch(t, "fence")
	conns := sw.Connect(t, oftest.NewController(t, openflow.Options{}), oftest.NewController(t, openflow.Options{}))
	a, b := conns[0], conns[1]
	ctx := ctxFor(t, 30*time.Second)
	const g1, g2 = 1<<32 | 7, 1<<32 | 8

	if role, _, err := a.RequestRole(ctx, openflow.RoleMaster, g1); err != nil || role != openflow.RoleMaster {
		t.Fatalf("A role = %v, %v", role, err)
	}
	setA := sampleFlows()
	if err := a.Bundle(ctx, adds(setA)); err != nil {
		t.Fatal(err)
	}

	if role, _, err := b.RequestRole(ctx, openflow.RoleMaster, g2); err != nil || role != openflow.RoleMaster {
		t.Fatalf("B role = %v, %v", role, err)
	}
	// B's set: A's flows with other cookies and actions, minus one, plus one.
	setB := sampleFlows()[1:]
	for i := range setB {
		setB[i].Cookie += 100
	}
	setB[0].Actions = []openflow.Action{openflow.Output{Port: 3}}
	setB = append(setB, openflow.Flow{Table: 9, Priority: 1, Cookie: 200, Match: openflow.Match{openflow.Reg(3, 3)}})
	mods := adds(setB)
	mods = append(mods, openflow.FlowMod{Command: openflow.CmdDeleteStrict, Flow: setA[0]})
	if err := b.Bundle(ctx, mods); err != nil {
		t.Fatal(err)
	}

	// A still believes it is master; the switch refuses its bundle.
	stray := []openflow.Flow{{Table: 9, Priority: 2, Cookie: 1, Match: openflow.Match{openflow.Reg(3, 4)}}}
	err := a.Bundle(ctx, adds(stray))
	if !errors.Is(err, openflow.ErrNotMaster) {
		t.Fatalf("A's bundle after takeover: err = %v, want IS_SLAVE/ErrNotMaster", err)
	}
	t.Logf("A's bundle refused: %v", err)
	if a.IsMaster() {
		t.Error("A still master after IS_SLAVE")
	}
	// From now on our layer refuses without asking the switch.
	if err := a.Send(ctx, adds(stray)); !errors.Is(err, openflow.ErrNotMaster) {
		t.Errorf("A's flow-mod: err = %v, want ErrNotMaster", err)
	}
	if err := a.Bundle(ctx, adds(stray)); !errors.Is(err, openflow.ErrNotMaster) {
		t.Errorf("A's second bundle: err = %v, want ErrNotMaster", err)
	}
	// A asks for MASTER again with its stale generation id.
	if _, _, err := a.RequestRole(ctx, openflow.RoleMaster, g1); !errors.Is(err, openflow.ErrStale) {
		t.Errorf("A stale role request: err = %v, want ErrStale", err)
	}
	if a.IsMaster() {
		t.Error("A master after STALE")
	}
	if g, w := sw.OfctlFlows(t), oftest.Expected(setB); !slices.Equal(g, w) {
		t.Errorf("switch flows:\n got %s\nwant %s", strings.Join(g, "\n     "), strings.Join(w, "\n     "))
	}
	// B still writes.
	if err := b.Send(ctx, adds(stray)); err != nil {
		t.Errorf("B after fencing A: %v", err)
	}
}

// TestBundleAtomicity: one invalid flow-mod fails the whole bundle, nothing
// is installed, and the error names the bad message.
func TestBundleAtomicity(t *testing.T) {
	sw, conn := masterConn(t, "atom")
	ctx := ctxFor(t, 30*time.Second)
	flows := genFlows(50, 1, 0)
	// tcp_dst without ip_proto=6: OVS refuses the prerequisite.
	bad := openflow.Flow{Table: 3, Priority: 5, Cookie: 9, Match: openflow.Match{openflow.EthType(0x0800), openflow.Exact(openflow.FieldTCPDst, 22)}}
	mods := adds(flows)
	mods = slices.Insert(mods, 17, openflow.FlowMod{Command: openflow.CmdAdd, Flow: bad})
	err := conn.Bundle(ctx, mods)
	var be *openflow.BundleError
	if !errors.As(err, &be) || !errors.Is(err, openflow.ErrBundleFailed) {
		t.Fatalf("err = %v, want a BundleError", err)
	}
	if len(be.Messages) != 1 || be.Messages[0].Index != 17 {
		t.Fatalf("bundle errors = %+v, want message 17", be.Messages)
	}
	if !strings.Contains(err.Error(), "message 17") || !strings.Contains(err.Error(), "tp_dst=22") {
		t.Errorf("error does not name the bad message: %v", err)
	}
	t.Logf("refused as expected: %v", err)
	if n := len(sw.OfctlFlows(t)); n != 0 {
		t.Fatalf("switch has %d flows after a failed bundle, want 0", n)
	}
	// The connection is still usable and the good flows go in.
	if err := conn.Bundle(ctx, adds(flows)); err != nil {
		t.Fatal(err)
	}
	if n := len(sw.OfctlFlows(t)); n != len(flows) {
		t.Fatalf("switch has %d flows, want %d", n, len(flows))
	}
}

// TestDumpMultipart: 20k flows do not fit one flow-stats reply (64 KiB);
// the reassembled dump must hold every flow, equal to what was installed.
func TestDumpMultipart(t *testing.T) {
	sw, conn := masterConn(t, "mp")
	ctx := ctxFor(t, 60*time.Second)
	flows := genFlows(20000, 1, 0)
	if err := conn.Bundle(ctx, adds(flows)); err != nil {
		t.Fatal(err)
	}
	got, err := conn.DumpFlows(ctx, openflow.TableAll, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(flows) {
		t.Fatalf("dumped %d flows, want %d", len(got), len(flows))
	}
	want := map[openflow.Key]string{}
	for _, f := range flows {
		want[f.Key()] = f.String()
	}
	for _, f := range got {
		if w := want[f.Key()]; w != f.String() {
			t.Fatalf("dumped %s, want %s", f.String(), w)
		}
	}
	if n := len(sw.OfctlFlows(t)); n != len(flows) {
		t.Fatalf("ovs-ofctl sees %d flows", n)
	}
	// Cookie filtering is done by the switch.
	sub, err := conn.DumpFlows(ctx, openflow.TableAll, 0x100, 0xff00)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sub {
		if f.Cookie&0xff00 != 0x100 {
			t.Fatalf("cookie filter leaked %s", f.String())
		}
	}
}

// TestEcho: an idle connection stays up through several echo intervals.
func TestEcho(t *testing.T) {
	sw := oftest.StartSwitch(t, "echo")
	conn := sw.Connect(t, oftest.NewController(t, openflow.Options{EchoInterval: 100 * time.Millisecond}))[0]
	deadline := time.Now().Add(time.Second)
	ctx := ctxFor(t, 10*time.Second)
	for time.Now().Before(deadline) {
		if err := conn.Barrier(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-conn.Done():
			t.Fatalf("connection closed: %v", conn.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// genFlows builds n distinct flows in table 10+ (out of any packet path):
// match reg0=i, reg1=variant; actions set reg2 and goto the next table.
func genFlows(n int, cookie uint64, variant uint32) []openflow.Flow {
	out := make([]openflow.Flow, n)
	for i := range out {
		out[i] = openflow.Flow{
			Table: uint8(10 + i%4), Priority: 100, Cookie: cookie,
			Match:   openflow.Match{openflow.Reg(0, uint32(i)), openflow.Reg(1, variant)},
			Actions: []openflow.Action{openflow.SetReg(2, uint32(i)), openflow.GotoTable{Table: 20}},
		}
	}
	return out
}
