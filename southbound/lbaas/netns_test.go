package lbaas

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"neutrino/southbound/hostnet"
	"neutrino/southbound/ovsproc"
)

// TestPlug plugs a VIP into a real OVS (netdev datapath) in a namespace of
// its own: the port carries the iface-id and gets an ofport, the VIP
// namespace has the MAC, address, MTU and default route; Up again
// rebuilds, Down removes the port and the namespace.
func TestPlug(t *testing.T) {
	if err := ovsproc.Available(); err != nil {
		t.Skip(err)
	}
	needHAProxy(t)
	ctx := context.Background()
	ns := testNS(t) // holds the VIP; the namespace itself is rebuilt by Up
	inst, err := ovsproc.Start(ctx, ovsproc.Options{Name: fmt.Sprintf("lbplug%d", os.Getpid()%100000)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop() })
	if _, err := inst.Vsctl(ctx, "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	p := Plug{Namespace: ns, HostIface: HostIfaceName("0123456789abcdef"), HostNS: inst.Namespace(),
		OVSDB: inst.DBEndpoint(), Bridge: "br-int", PortID: "0123456789abcdef", MAC: "fa:16:3e:11:22:33",
		CIDR: "10.9.0.10/24", Gateway: "10.9.0.1", MTU: 1442}
	t.Cleanup(func() { _ = p.Down(context.Background()) })
	for range 2 { // the second Up rebuilds what the first made
		if err := p.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	id, err := inst.Vsctl(ctx, "get", "Interface", p.HostIface, "external_ids:iface-id")
	if err != nil || strings.Trim(strings.TrimSpace(id), `"`) != p.PortID {
		t.Fatalf("iface-id %q, %v", id, err)
	}
	eventually(t, 10*time.Second, "an ofport", func() error {
		out, err := inst.Vsctl(ctx, "get", "Interface", p.HostIface, "ofport")
		if err != nil {
			return err
		}
		if o := strings.TrimSpace(out); o == "[]" || o == "-1" {
			return errStr("ofport " + o)
		}
		return nil
	})
	link, err := hostnet.Exec(ctx, p.Namespace, "ip", "-o", "link", "show", VIPInterface)
	if err != nil || !strings.Contains(link, p.MAC) || !strings.Contains(link, "mtu 1442") {
		t.Fatalf("vip link: %q, %v", link, err)
	}
	addr, _ := hostnet.Exec(ctx, p.Namespace, "ip", "-o", "addr", "show", VIPInterface)
	route, _ := hostnet.Exec(ctx, p.Namespace, "ip", "route", "show", "default")
	if !strings.Contains(addr, "10.9.0.10/24") || !strings.Contains(route, "via 10.9.0.1") {
		t.Fatalf("vip address %q, default route %q", addr, route)
	}
	if err := p.Announce(ctx); err != nil {
		t.Fatalf("gratuitous ARP: %v", err)
	}
	if err := p.SetVIP(ctx, false); err != nil {
		t.Fatal(err)
	}
	if link, _ := hostnet.Exec(ctx, p.Namespace, "ip", "-o", "link", "show", VIPInterface); strings.Contains(link, ",UP") {
		t.Fatalf("after SetVIP(false): %s", link)
	}
	if err := p.SetVIP(ctx, true); err != nil {
		t.Fatal(err)
	}
	if route, _ := hostnet.Exec(ctx, p.Namespace, "ip", "route", "show", "default"); !strings.Contains(route, "via 10.9.0.1") {
		t.Fatalf("after SetVIP(true) the default route is %q: members on other subnets are unreachable", route)
	}
	// A leftover process (an HAProxy worker whose master died) goes too.
	left := hostnet.Command(context.Background(), p.Namespace, "sleep", "60")
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = left.Wait(); close(exited) }()
	if err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = left.Process.Kill()
		t.Fatal("a process in the namespace survived Down")
	}
	if hostnet.NamespaceExists(p.Namespace) {
		t.Fatal("namespace left after Down")
	}
	if out, _ := inst.Vsctl(ctx, "list-ports", "br-int"); strings.Contains(out, p.HostIface) {
		t.Fatalf("port left after Down: %s", out)
	}
}

type errStr string

func (e errStr) Error() string { return string(e) }
