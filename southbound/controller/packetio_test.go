package controller_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
	"neutrino/southbound/controller"
	"neutrino/southbound/openflow"
	"neutrino/southbound/ovsproc"
	"neutrino/southbound/packet"
)

// fsmApplier applies commands straight to an FSM, as a one-node Raft would.
type fsmApplier struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (a *fsmApplier) apply(_ context.Context, cmd []byte) (*fsm.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.index++
	return a.f.Apply(&raft.Log{Index: a.index, Data: cmd}).(*fsm.Result), nil
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %v", d, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// oneChassis starts a real OVS (skipping without one), commits it as the
// up chassis hv1 in a fresh FSM, and gives a temporary dir for sockets;
// all are removed when the test ends.
func oneChassis(ctx context.Context, t *testing.T, name string) (*ovsproc.Instance, *fsm.FSM, *fsmApplier, string) {
	t.Helper()
	if err := ovsproc.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	inst, err := ovsproc.Start(ctx, ovsproc.Options{Name: fmt.Sprintf("ct%d-%s", os.Getpid()%100000, name)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("stop ovs: %v", err)
		}
	})
	f := fsm.New(nil)
	ap := &fsmApplier{f: f}
	cmd, err := fsm.Encode(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{{
		Meta: fsm.Meta{ID: "hv1", Name: "hv1"}, OVSDB: inst.DBEndpoint(), DatapathType: "netdev",
		DatapathID: fsm.ChassisDatapathID("hv1"), Up: true, Roles: []string{"compute"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := ap.apply(ctx, cmd); res.Err != nil {
		t.Fatal(res.Err)
	}
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return inst, f, ap, dir
}

// TestPacketInOut runs a leading controller against one real chassis:
// Controller.PacketOut injects a gratuitous ARP that resubmits to a table
// whose flow (added with ovs-ofctl) sends it to the controller, and
// Config.OnPacketIn receives it with the chassis' name. Without MASTER
// (unknown chassis, leadership lost) PacketOut fails with ErrNoMaster.
func TestPacketInOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	inst, f, ap, dir := oneChassis(ctx, t, "pio")
	sock := filepath.Join(dir, "of.sock")
	ln, err := openflow.Listen("unix", sock, openflow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		chassis string
		pi      openflow.PacketIn
	}
	pis := make(chan got, 16)
	c := controller.New(controller.Config{
		FSM: f, Apply: ap.apply, Listener: ln,
		Controllers: func() []string { return []string{"unix:" + sock} },
		Term:        func() uint64 { return 1 },
		OnPacketIn:  func(ch string, pi openflow.PacketIn) { pis <- got{ch, pi} },
	})
	runCtx, stop := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		c.Run(runCtx)
	}()
	t.Cleanup(func() { stop(); <-runDone })
	c.SetLeadership(true, 1)

	waitFor(t, 30*time.Second, "MASTER connection to hv1", func() error {
		for _, st := range c.Status() {
			if st.Chassis == "hv1" && st.Master && st.Realized > 0 {
				return nil
			}
		}
		return fmt.Errorf("status %+v", c.Status())
	})
	if _, err := inst.Ofctl(ctx, "add-flow", "br-int", "table=250,priority=1,cookie=0x99,actions=load:0x2a->NXM_NX_REG8[],controller"); err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	garp, _ := packet.NewGratuitousARP(mac, netip.MustParseAddr("192.0.2.1"), 0)
	if err := c.PacketOut(ctx, "hv1", openflow.PacketOut{Actions: []openflow.Action{openflow.Resubmit{Table: 250}}, Data: garp}); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-pis:
		if g.chassis != "hv1" || g.pi.Cookie != 0x99 || g.pi.TableID != 250 || g.pi.Reg(8) != 0x2a || !bytes.Equal(g.pi.Data, garp) {
			t.Errorf("packet-in from %s: table %d cookie %#x reg8 %#x data %x", g.chassis, g.pi.TableID, g.pi.Cookie, g.pi.Reg(8), g.pi.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no packet-in")
	}

	if err := c.PacketOut(ctx, "nosuch", openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: 1}}, Data: garp}); !errors.Is(err, controller.ErrNoMaster) {
		t.Errorf("unknown chassis: err = %v, want ErrNoMaster", err)
	}
	c.SetLeadership(false, 1)
	if err := c.PacketOut(ctx, "hv1", openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: 1}}, Data: garp}); !errors.Is(err, controller.ErrNoMaster) {
		t.Errorf("after losing leadership: err = %v, want ErrNoMaster", err)
	}
}
