package sim

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"neutrino/southbound/openflow"
)

// connect starts a simulated switch with datapath id dpid dialling n
// controller listeners (the controller's own openflow package) and
// returns the controller-side connections.
func connect(t *testing.T, dpid uint64, n int) (*Switch, []*openflow.Conn) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sw := newSwitch(log)
	sw.dpid = dpid
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var conns []*openflow.Conn
	for range n {
		l, err := openflow.Listen("tcp", "127.0.0.1:0", openflow.Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go sw.dial(ctx, "tcp:"+l.Addr().String())
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := l.Accept(actx)
		acancel()
		if err != nil {
			t.Fatalf("accept: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return sw, conns
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testFlows() []openflow.Flow {
	mac := []byte{0xfa, 0x16, 0x3e, 0, 0, 1}
	return []openflow.Flow{
		{Table: 0, Priority: 100, Cookie: 0x4e00010000000001, Match: openflow.Match{openflow.InPort(1)},
			Actions: []openflow.Action{openflow.SetReg(0, 5), openflow.GotoTable{Table: 10}}},
		{Table: 40, Priority: 50, Cookie: 0x4e00010000000002, Match: openflow.Match{openflow.Metadata(7, ^uint64(0)), openflow.Exact(openflow.FieldEthDst, 0xfa163e000001)},
			Actions: []openflow.Action{openflow.SetField{Field: openflow.FieldEthDst, Value: mac}, openflow.Output{Port: 3}}},
		{Table: 40, Priority: 0, Cookie: 0x4e00020000000003},
	}
}

func keys(fs []openflow.Flow) []string {
	var out []string
	for _, f := range fs {
		f.Match = f.Match.Canonical()
		out = append(out, f.String())
	}
	slices.Sort(out)
	return out
}

// TestSwitchSpeaksTheControllerProtocol drives the simulated switch with
// the controller's own OpenFlow client: features, roles with generation
// ids (fencing), bundles, flow dumps, cookie-masked deletes, echo.
func TestSwitchSpeaksTheControllerProtocol(t *testing.T) {
	sw, conns := connect(t, 0xabc, 2)
	a, b := conns[0], conns[1]
	if a.DatapathID() != 0xabc {
		t.Fatalf("datapath id %#x, want 0xabc", a.DatapathID())
	}
	ctx := tctx(t)

	// A connection that never asked for a role is EQUAL; the controller
	// refuses to write before MASTER, so ask.
	if role, gen, err := a.RequestRole(ctx, openflow.RoleMaster, 5); err != nil || role != openflow.RoleMaster || gen != 5 {
		t.Fatalf("master request: role %v gen %d err %v", role, gen, err)
	}
	if role, _, err := b.RequestRole(ctx, openflow.RoleSlave, 5); err != nil || role != openflow.RoleSlave {
		t.Fatalf("slave request: role %v err %v", role, err)
	}
	flows := testFlows()
	var mods []openflow.FlowMod
	for _, f := range flows {
		mods = append(mods, openflow.FlowMod{Command: openflow.CmdAdd, Flow: f})
	}
	if err := a.Bundle(ctx, mods); err != nil {
		t.Fatalf("bundle: %v", err)
	}
	dumped, err := a.DumpFlows(ctx, openflow.TableAll, 0x4e<<56, 0xff<<56)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	if got, want := keys(dumped), keys(flows); !slices.Equal(got, want) {
		t.Fatalf("dump:\n%v\nwant\n%v", got, want)
	}
	if got := keys(sw.Flows()); !slices.Equal(got, keys(flows)) {
		t.Fatalf("table:\n%v\nwant\n%v", got, keys(flows))
	}
	// A dump filtered by table and cookie.
	if d, err := a.DumpFlows(ctx, 40, 0x4e00020000000000, 0xffffff0000000000); err != nil || len(d) != 1 {
		t.Fatalf("filtered dump: %d flows, err %v; want 1", len(d), err)
	}

	// A slave's writes are refused; so is a stale generation id.
	b.Demote()
	if _, _, err := b.RequestRole(ctx, openflow.RoleMaster, 4); !errors.Is(err, openflow.ErrStale) {
		t.Fatalf("stale master request: %v, want ErrStale", err)
	}
	// A newer generation takes over: the old master becomes SLAVE and its
	// next bundle is refused by the switch, not only by its own flag.
	if role, _, err := b.RequestRole(ctx, openflow.RoleMaster, 6); err != nil || role != openflow.RoleMaster {
		t.Fatalf("takeover: role %v err %v", role, err)
	}
	if sw.MasterCount() != 1 {
		t.Fatalf("%d masters, want 1", sw.MasterCount())
	}
	if !a.IsMaster() {
		t.Fatalf("the old master learnt of the takeover before writing (conn err %v): the refusal below would not be the switch's", a.Err())
	}
	extra := openflow.Flow{Table: 1, Priority: 1, Cookie: 0x4e00030000000009}
	if err := a.Send(ctx, []openflow.FlowMod{{Command: openflow.CmdAdd, Flow: extra}}); !errors.Is(err, openflow.ErrNotMaster) {
		t.Fatalf("a deposed master's write: %v, want the switch's IS_SLAVE", err)
	}
	if role, _, err := a.RequestRole(ctx, openflow.Role(0), 0); err != nil || role != openflow.RoleSlave {
		t.Fatalf("old master's role: %v err %v, want slave", role, err)
	}

	// A bundle with one refused message installs nothing.
	bad := []openflow.FlowMod{{Command: openflow.CmdAdd, Flow: extra},
		{Command: openflow.CmdAdd, Flow: openflow.Flow{Table: openflow.TableAll, Priority: 1}}}
	if err := b.Bundle(ctx, bad); err == nil {
		t.Fatal("bundle with an add to table 255 succeeded")
	}
	if n := sw.FlowCount(); n != len(flows) {
		t.Fatalf("%d flows after a failed bundle, want %d", n, len(flows))
	}

	// Strict delete of one flow, then a non-strict delete by cookie mask.
	if err := b.Bundle(ctx, []openflow.FlowMod{{Command: openflow.CmdDeleteStrict, Flow: flows[0], CookieMask: ^uint64(0)}}); err != nil {
		t.Fatal(err)
	}
	if n := sw.FlowCount(); n != 2 {
		t.Fatalf("%d flows after a strict delete, want 2", n)
	}
	prune := openflow.FlowMod{Command: openflow.CmdDelete, Flow: openflow.Flow{Table: openflow.TableAll, Cookie: 0x4e00020000000000},
		CookieMask: 0xffffff0000000000}
	if err := b.Bundle(ctx, []openflow.FlowMod{prune}); err != nil {
		t.Fatal(err)
	}
	if got := keys(sw.Flows()); len(got) != 1 || got[0] != keys(flows[1:2])[0] {
		t.Fatalf("after prune: %v", got)
	}
	if err := b.Barrier(ctx); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	// Three committed bundles (the refused one counts nothing), 3 + 1 + 1
	// flow-mods in them.
	if st := sw.Stats(); st.Bundles != 3 || st.FlowMods != 5 {
		t.Fatalf("stats %+v, want 3 bundles and 5 flow-mods", st)
	}
}

// TestSwitchPacketIn: a packet-in reaches the master with its pipeline
// fields, as the controller's packet-in decoder reads them.
func TestSwitchPacketIn(t *testing.T) {
	sw, conns := connect(t, 1, 1)
	ctx := tctx(t)
	if _, _, err := conns[0].RequestRole(ctx, openflow.RoleMaster, 1); err != nil {
		t.Fatal(err)
	}
	pi := openflow.PacketIn{Reason: openflow.ReasonAction, TableID: 31, Cookie: 0x4e01, InPort: 7, Metadata: 9,
		Data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0}}
	pi.Regs[6] = 42
	if n, err := sw.PacketIn(pi); err != nil || n != 1 {
		t.Fatalf("packet-in sent to %d connections, err %v", n, err)
	}
	select {
	case got := <-conns[0].PacketIns():
		if got.InPort != 7 || got.Metadata != 9 || got.Reg(6) != 42 || got.TableID != 31 || got.Cookie != 0x4e01 ||
			!slices.Equal(got.Data, pi.Data) {
			t.Fatalf("packet-in %+v, want %+v", got, pi)
		}
	case <-ctx.Done():
		t.Fatal("no packet-in")
	}
}
