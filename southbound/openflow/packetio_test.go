package openflow_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
	"neutrino/southbound/ovsproc"
	"neutrino/southbound/packet"
)

// nextPacketIn waits (with a deadline) for the next packet-in that keep
// accepts.
func nextPacketIn(t *testing.T, conn *openflow.Conn, d time.Duration, keep func(openflow.PacketIn) bool) openflow.PacketIn {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case pi, ok := <-conn.PacketIns():
			if !ok {
				t.Fatalf("connection closed waiting for a packet-in: %v", conn.Err())
			}
			if keep(pi) {
				return pi
			}
		case <-timeout:
			t.Fatalf("no packet-in within %v", d)
		}
	}
}

var (
	routerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	routerIP  = netip.MustParseAddr("192.0.2.1")
)

// TestPacketOutResubmitPacketIn injects an ARP request with a packet-out
// whose only action is resubmit(,10); table 10 sets reg0, reg8, metadata
// and tun_id and sends it to the controller. The packet-in must carry
// reason, table, cookie, in_port CONTROLLER, those fields, and the frame.
func TestPacketOutResubmitPacketIn(t *testing.T) {
	_, conn := masterConn(t, "pio")
	ctx := ctxFor(t, 30*time.Second)
	flows := []openflow.Flow{{Table: 10, Priority: 100, Cookie: 0x4e00000000abcdef,
		Match: openflow.Match{openflow.EthType(0x0806)},
		Actions: []openflow.Action{openflow.SetReg(0, 0xc00002fe), openflow.SetReg(8, 0x42),
			openflow.SetReg(15, 0xffffffff), openflow.SetUint(openflow.FieldMetadata, 0x0000000700000005),
			openflow.SetTunID(0x1234), openflow.Output{Port: openflow.PortController}}}}
	if err := conn.Bundle(ctx, adds(flows)); err != nil {
		t.Fatal(err)
	}
	frame, err := packet.NewARPRequest(routerMAC, routerIP, netip.MustParseAddr("192.0.2.254"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Resubmit{Table: 10}}, Data: frame}); err != nil {
		t.Fatal(err)
	}
	pi := nextPacketIn(t, conn, 10*time.Second, func(openflow.PacketIn) bool { return true })
	t.Logf("packet-in match: %s", pi.Match.String())
	for _, f := range pi.Match {
		t.Logf("  field %s class %#04x code %d value %x mask %x", f.Field.Name(), f.Field.Class(), f.Field.Code(), f.Value, f.Mask)
	}
	if pi.Reason != openflow.ReasonAction || pi.TableID != 10 || pi.Cookie != flows[0].Cookie ||
		pi.InPort != openflow.PortController || pi.BufferID != 0xffffffff || int(pi.TotalLen) != len(frame) {
		t.Errorf("packet-in header: reason %d table %d cookie %#x in_port %#x buffer %#x total_len %d",
			pi.Reason, pi.TableID, pi.Cookie, pi.InPort, pi.BufferID, pi.TotalLen)
	}
	want := [16]uint32{0: 0xc00002fe, 8: 0x42, 15: 0xffffffff}
	if pi.Regs != want || pi.Metadata != 0x0000000700000005 || pi.TunnelID != 0x1234 {
		t.Errorf("packet-in fields: regs %x metadata %#x tun_id %#x", pi.Regs, pi.Metadata, pi.TunnelID)
	}
	if !bytes.Equal(pi.Data, frame) {
		t.Errorf("packet-in data\n got %x\nwant %x", pi.Data, frame)
	}
	a, err := packet.ParseARP(pi.Data)
	if err != nil || a.Op != packet.ARPRequest || a.SPA != routerIP {
		t.Errorf("parse: %+v, %v", a, err)
	}
	if d := conn.PacketInDrops(); d != 0 {
		t.Errorf("%d packet-ins dropped", d)
	}
}

// TestPacketOutErrors: instructions are refused before sending, a bad
// in_port by the switch, and a connection that is not MASTER by us.
func TestPacketOutErrors(t *testing.T) {
	sw, conn := masterConn(t, "poerr")
	ctx := ctxFor(t, 30*time.Second)
	frame, _ := packet.NewGratuitousARP(routerMAC, routerIP, 0)
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.GotoTable{Table: 1}}, Data: frame}); !errors.Is(err, openflow.ErrBadFlow) {
		t.Errorf("goto_table in packet-out: err = %v, want ErrBadFlow", err)
	}
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: 1}}}); !errors.Is(err, openflow.ErrBadFlow) {
		t.Errorf("no data: err = %v, want ErrBadFlow", err)
	}
	err := conn.PacketOut(ctx, openflow.PacketOut{InPort: 0xfff0, Actions: []openflow.Action{openflow.Output{Port: 1}}, Data: frame})
	var oe *openflow.Error
	if !errors.As(err, &oe) {
		t.Errorf("bad in_port: err = %v, want a switch error", err)
	} else {
		t.Logf("bad in_port: %v", err)
	}
	// The connection survives a refused packet-out.
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: 1}}, Data: frame}); err != nil {
		t.Errorf("packet-out to a missing port: %v", err)
	}
	conn.Demote()
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: 1}}, Data: frame}); !errors.Is(err, openflow.ErrNotMaster) {
		t.Errorf("demoted: err = %v, want ErrNotMaster", err)
	}
	_ = sw
}

// TestPacketInQueueFull: with a queue of 2 and nobody reading, further
// packet-ins are dropped and counted, and the connection keeps working.
func TestPacketInQueueFull(t *testing.T) {
	sw := oftest.StartSwitch(t, "piq")
	conn := sw.Connect(t, oftest.NewController(t, openflow.Options{PacketInQueue: 2}))[0]
	ctx := ctxFor(t, 30*time.Second)
	if role, _, err := conn.RequestRole(ctx, openflow.RoleMaster, 1); err != nil || role != openflow.RoleMaster {
		t.Fatalf("role = %v, %v", role, err)
	}
	if err := conn.Bundle(ctx, adds([]openflow.Flow{{Table: 3, Priority: 1, Cookie: 9,
		Actions: []openflow.Action{openflow.Output{Port: openflow.PortController}}}})); err != nil {
		t.Fatal(err)
	}
	frame, _ := packet.NewGratuitousARP(routerMAC, routerIP, 0)
	for range 5 {
		if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Resubmit{Table: 3}}, Data: frame}); err != nil {
			t.Fatal(err)
		}
	}
	// OVS sends packet-ins asynchronously (not ordered with barrier
	// replies): wait for all 5 to be read.
	oftest.Eventually(t, 5*time.Second, "3 packet-ins dropped", func() (bool, error) {
		return conn.PacketInDrops() >= 3, nil
	})
	if d := conn.PacketInDrops(); d != 3 {
		t.Errorf("dropped %d, want 3", d)
	}
	if n := len(conn.PacketIns()); n != 2 {
		t.Errorf("queued %d, want 2", n)
	}
	if err := conn.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestARPResolveRoundTrip is the leader's ARP resolution against a real
// kernel: a workload pings 192.0.2.1; its ARP request reaches us as a
// packet-in with its in_port and the reg0/metadata table 0 set; we answer
// with a packet-out of an ARP reply to its port; the workload then sends
// the echo request to the MAC we gave, which reaches us too. Last, a
// gratuitous ARP moving 192.0.2.1 to another MAC updates the workload's
// neighbour table, and so does an unsolicited NA for an IPv6 address
// (which the kernel accepts only with a correct ICMPv6 checksum).
func TestARPResolveRoundTrip(t *testing.T) {
	sw, conn := masterConn(t, "arp")
	ctx := ctxFor(t, 60*time.Second)
	vmMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	vm, err := sw.PlugVM(ctx, ovsproc.VMSpec{Name: "vm-a", Bridge: oftest.Bridge, MAC: vmMAC.String(), CIDR: "192.0.2.10/24"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := vm.OFPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(p)
	flows := []openflow.Flow{
		{Table: 0, Priority: 100, Cookie: 0x11, Match: openflow.Match{openflow.InPort(port), openflow.EthType(0x0806)},
			Actions: []openflow.Action{openflow.SetReg(0, 0xc0000201), openflow.WriteMetadata{Value: 0x77, Mask: 0xff}, openflow.GotoTable{Table: 5}}},
		{Table: 5, Priority: 100, Cookie: 0x55, Match: openflow.Match{openflow.Metadata(0x77, 0xff)},
			Actions: []openflow.Action{openflow.Output{Port: openflow.PortController}}},
		{Table: 0, Priority: 90, Cookie: 0x22, Match: openflow.Match{openflow.InPort(port), openflow.EthType(0x0800)},
			Actions: []openflow.Action{openflow.Output{Port: openflow.PortController}}},
	}
	if err := conn.Bundle(ctx, adds(flows)); err != nil {
		t.Fatal(err)
	}
	pingDone := make(chan error, 1)
	go func() {
		_, err := vm.Exec(ctx, "ping", "-c", "1", "-W", "5", routerIP.String())
		pingDone <- err
	}()
	t.Cleanup(func() { <-pingDone })

	pi := nextPacketIn(t, conn, 10*time.Second, func(pi openflow.PacketIn) bool { return pi.Cookie == 0x55 })
	t.Logf("packet-in match from a port: %s", pi.Match.String())
	req, err := packet.ParseARP(pi.Data)
	if err != nil {
		t.Fatal(err)
	}
	if pi.InPort != port || pi.Reg(0) != 0xc0000201 || pi.Metadata != 0x77 || pi.TableID != 5 || pi.Reason != openflow.ReasonAction {
		t.Errorf("packet-in: in_port %d (want %d) reg0 %#x metadata %#x table %d reason %d", pi.InPort, port, pi.Reg(0), pi.Metadata, pi.TableID, pi.Reason)
	}
	if req.Op != packet.ARPRequest || req.TPA != routerIP || req.SPA != netip.MustParseAddr("192.0.2.10") || !bytes.Equal(req.SHA, vmMAC) {
		t.Fatalf("ARP request: %+v", req)
	}
	reply, err := packet.NewARPReply(routerMAC, routerIP, req.SHA, req.SPA, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: port}}, Data: reply}); err != nil {
		t.Fatal(err)
	}
	echo := nextPacketIn(t, conn, 10*time.Second, func(pi openflow.PacketIn) bool { return pi.Cookie == 0x22 })
	if !bytes.Equal(echo.Data[0:6], routerMAC) || echo.InPort != port {
		t.Errorf("echo request to %x from port %d, want to %s from %d", echo.Data[0:6], echo.InPort, routerMAC, port)
	}

	// Gratuitous ARP: 192.0.2.1 moves to newMAC.
	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	garp, _ := packet.NewGratuitousARP(newMAC, routerIP, 0)
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: port}}, Data: garp}); err != nil {
		t.Fatal(err)
	}
	waitNeigh(t, vm, "-4", routerIP.String(), newMAC.String())

	// Unsolicited NA: an existing (stale) entry for 2001:db8::1 is
	// overridden with newMAC.
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, args := range [][]string{
		{"ip", "-6", "addr", "add", "2001:db8::10/64", "dev", "eth0", "nodad"},
		{"ip", "-6", "neigh", "replace", v6.String(), "lladdr", routerMAC.String(), "dev", "eth0", "nud", "stale"},
	} {
		if out, err := vm.Exec(ctx, args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	na, _ := packet.NewUnsolicitedNA(newMAC, v6, true, 0)
	if err := conn.PacketOut(ctx, openflow.PacketOut{Actions: []openflow.Action{openflow.Output{Port: port}}, Data: na}); err != nil {
		t.Fatal(err)
	}
	waitNeigh(t, vm, "-6", v6.String(), newMAC.String())
}

// waitNeigh waits until the workload's neighbour entry for ip has mac.
func waitNeigh(t *testing.T, vm *ovsproc.VM, family, ip, mac string) {
	t.Helper()
	var out string
	oftest.Eventually(t, 5*time.Second, "neighbour "+ip+" at "+mac, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		out, err = vm.Exec(ctx, "ip", family, "neigh", "show", ip)
		return strings.Contains(out, "lladdr "+mac), err
	})
	t.Logf("neighbour: %s", strings.TrimSpace(out))
}
