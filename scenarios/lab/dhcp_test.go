package lab_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios"
	"neutrino/scenarios/lab"
)

// dhcpLease is the lease the chassis agents give in the DHCP tests: short,
// so renewals (at half of it) happen during a test.
const dhcpLease = 10 * time.Second

// TestDHCP: VMs plugged by `lab vm add` run busybox udhcpc and get from
// their chassis' agent the port's address, the gateway, DNS, the MTU and
// host routes (option 121); they reach a VM of their network on another
// chassis and one of another routed subnet. A DHCP server's packet from a
// VM does not reach its neighbour (port security drops udp 67->68) while
// other UDP does. Changing the port's fixed IP moves the VM at its next
// renewal (NAK, new address). Renewals go on succeeding after the Raft
// leader is killed.
func TestDHCP(t *testing.T) {
	p := upPipelineLab(t, pipelineTopo, "--dhcp-lease-time", dhcpLease.String())
	nc := p.admin
	ctx, cancel := p.ctx()
	defer cancel()

	n1, err := networks.Create(ctx, nc, networks.CreateOpts{Name: "dhcp-1"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	dhcpOn := true
	s1, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n1.ID, CIDR: "10.31.0.0/24", IPVersion: gophercloud.IPv4,
		EnableDHCP: &dhcpOn, DNSNameservers: []string{"10.31.0.53"},
		HostRoutes: []subnets.HostRoute{{DestinationCIDR: "172.31.0.0/16", NextHop: "10.31.0.254"}}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	net2, sub2 := p.network(nc, "dhcp-2", "10.32.0.0/24")
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "dhcp"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{s1.ID, sub2} {
		if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract(); err != nil {
			t.Fatalf("add_router_interface %s: %v", sub, err)
		}
	}
	portA := p.port(nc, ports.CreateOpts{NetworkID: n1.ID, Name: "da"})
	a := p.plug("da", p.chassis[0], portA)
	b := p.plug("db", p.chassis[1], p.port(nc, ports.CreateOpts{NetworkID: net2, Name: "db"}))
	c := p.plug("dc", p.chassis[1], p.port(nc, ports.CreateOpts{NetworkID: n1.ID, Name: "dc"}))

	// What DHCP gave A.
	if out := p.mustExec(a.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+a.IP+"/24 ") {
		t.Fatalf("%s: eth0 %q, want %s/24", a.Name, out, a.IP)
	}
	routes := p.mustExec(a.Name, "ip", "-4", "route")
	for _, want := range []string{"default via 10.31.0.1", "172.31.0.0/16 via 10.31.0.254"} {
		if !strings.Contains(routes, want) {
			t.Errorf("%s: routes\n%s\nwant %q (option 121)", a.Name, routes, want)
		}
	}
	var withMTU struct {
		MTU int `json:"mtu"`
	}
	if err := networks.Get(ctx, nc, n1.ID).ExtractIntoStructPtr(&withMTU, "network"); err != nil || withMTU.MTU == 0 {
		t.Fatalf("network mtu: %v (%d)", err, withMTU.MTU)
	}
	if mtu := p.mustExec(a.Name, "cat", "/sys/class/net/eth0/mtu"); strings.TrimSpace(mtu) != fmt.Sprint(withMTU.MTU) {
		t.Errorf("%s: mtu %s, want the network's %d", a.Name, strings.TrimSpace(mtu), withMTU.MTU)
	}
	resolv, err := os.ReadFile(lab.ResolvConf(p.d.Options.Dir, a.Name))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nameserver 10.31.0.53", "search openstacklocal"} {
		if !strings.Contains(string(resolv), want) {
			t.Errorf("%s: resolv.conf\n%s\nwant %q", a.Name, resolv, want)
		}
	}
	p.pingOK(firstPacket, a.Name, c.IP) // same network, other chassis
	p.pingOK(firstPacket, a.Name, b.IP) // routed, other chassis

	// A rogue DHCP server in C: its offer (udp 67 -> 68) never reaches A;
	// the same datagram from another port does (the capture works).
	capt := p.capture(a.Name, fmt.Sprintf("udp dst port 68 and ether src %s", c.MAC))
	for _, sport := range []string{"1067", "67"} {
		p.mustExec(c.Name, "sh", "-c", fmt.Sprintf("echo rogue-offer-%s | nc -u -w 1 -p %s %s 68", sport, sport, a.IP))
	}
	got := capt.packets()
	if len(got) == 0 {
		t.Fatalf("the capture in %s saw nothing from %s, not even the control datagram", a.Name, c.Name)
	}
	for _, l := range got {
		if strings.Contains(l, ".67 > ") || strings.Contains(l, ".bootps > ") {
			t.Errorf("%s received a DHCP server packet from %s: %s", a.Name, c.Name, l)
		}
	}

	// A new fixed IP reaches A at its next renewal.
	newIP := "10.31.0.77"
	if _, err := ports.Update(ctx, nc, portA.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{SubnetID: s1.ID, IPAddress: newIP}}}).Extract(); err != nil {
		t.Fatalf("update fixed IP: %v", err)
	}
	poll(t, 6*dhcpLease+firstPacket, fmt.Sprintf("%s moves to %s at renewal", a.Name, newIP), func() error {
		out, err := p.exec(a.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, " "+newIP+"/24 ") || strings.Contains(out, " "+a.IP+"/") {
			return fmt.Errorf("eth0: %s", strings.TrimSpace(out))
		}
		return nil
	})
	p.pingOK(firstPacket, a.Name, c.IP)

	// Renewals while the leader is dead: the chassis answer from their
	// own copy of the state.
	leader, _ := p.leaderOf(p.servers(), 30*time.Second)
	log := filepath.Join(p.d.Options.Dir, "vms", a.Name, "resolv.conf.log")
	before := renewals(t, log)
	if err := p.d.KillAgent(ctx, leader); err != nil {
		t.Fatalf("kill leader %s: %v", leader, err)
	}
	t.Logf("killed the leader %s; %d renewals so far", leader, before)
	poll(t, 4*dhcpLease, "two renewals after the leader was killed", func() error {
		if n := renewals(t, log); n < before+2 {
			return fmt.Errorf("%d renewals, want %d", n, before+2)
		}
		return nil
	})
	if out := p.mustExec(a.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+newIP+"/24 ") {
		t.Fatalf("%s lost its address: %s", a.Name, out)
	}
}

// renewals counts the leases (bound or renewed) a VM's DHCP client applied.
func renewals(t *testing.T, log string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "renew ")
}

// TestSLAAC: an IPv6 subnet in slaac mode on a router. A VM's kernel
// solicits routers; its chassis' agent answers with an advertisement from
// the router interface (prefix with the A flag, MTU), and the VM configures
// the port's SLAAC address (EUI-64 of its MAC, as the API allocated it)
// and a default route via the router's link-local address.
func TestSLAAC(t *testing.T) {
	p := upPipelineLab(t, pipelineTopo)
	nc := p.admin
	ctx, cancel := p.ctx()
	defer cancel()
	netID, sub4 := p.network(nc, "slaac", "10.41.0.0/24")
	s6, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: netID, CIDR: "fd00:41::/64", IPVersion: gophercloud.IPv6,
		IPv6RAMode: "slaac", IPv6AddressMode: "slaac", DNSNameservers: []string{"fd00:41::53"}}).Extract()
	if err != nil {
		t.Fatalf("create slaac subnet: %v", err)
	}
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "slaac"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	var routerMAC string
	for _, sub := range []string{sub4, s6.ID} {
		info, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract()
		if err != nil {
			t.Fatalf("add_router_interface %s: %v", sub, err)
		}
		rp, err := ports.Get(ctx, nc, info.PortID).Extract()
		if err != nil {
			t.Fatal(err)
		}
		routerMAC = rp.MACAddress
	}
	port := p.port(nc, ports.CreateOpts{NetworkID: netID, Name: "s6"})
	var want string
	for _, f := range port.FixedIPs {
		if f.SubnetID == s6.ID {
			want = f.IPAddress
		}
	}
	if want == "" {
		t.Fatalf("port has no SLAAC address: %v", port.FixedIPs)
	}
	v := p.plug("s6", p.chassis[0], port)
	poll(t, firstPacket, fmt.Sprintf("%s configures %s from a router advertisement", v.Name, want), func() error {
		out, err := p.exec(v.Name, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if err != nil {
			return err
		}
		if !strings.Contains(out, " "+want+"/64 ") {
			return fmt.Errorf("eth0: %q", strings.TrimSpace(out))
		}
		return nil
	})
	mac, err := net.ParseMAC(routerMAC)
	if err != nil {
		t.Fatal(err)
	}
	ll := netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]}).String()
	if out := p.mustExec(v.Name, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via "+ll) {
		t.Errorf("%s: default route %q, want via the router's link-local %s", v.Name, strings.TrimSpace(out), ll)
	}
}

// TestDHCPv6Stateful: an IPv6 subnet in dhcpv6-stateful mode on a router.
// The VM's DHCPv6 client (the lab's, busybox-static has none) gets the
// port's address from its chassis' agent (IA_NA, Reply to a Solicit with
// rapid commit); the router advertisement says M (no SLAAC address).
func TestDHCPv6Stateful(t *testing.T) {
	p := upPipelineLab(t, pipelineTopo)
	nc := p.admin
	ctx, cancel := p.ctx()
	defer cancel()
	netID, sub4 := p.network(nc, "stateful", "10.42.0.0/24")
	dhcpOn := true
	s6, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: netID, CIDR: "fd00:42::/64", IPVersion: gophercloud.IPv6,
		EnableDHCP: &dhcpOn, IPv6RAMode: "dhcpv6-stateful", IPv6AddressMode: "dhcpv6-stateful"}).Extract()
	if err != nil {
		t.Fatalf("create stateful subnet: %v", err)
	}
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "stateful"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{sub4, s6.ID} {
		if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract(); err != nil {
			t.Fatalf("add_router_interface %s: %v", sub, err)
		}
	}
	port := p.port(nc, ports.CreateOpts{NetworkID: netID, Name: "st6", FixedIPs: []ports.IP{{SubnetID: sub4}, {SubnetID: s6.ID}}})
	var want string
	for _, f := range port.FixedIPs {
		if f.SubnetID == s6.ID {
			want = f.IPAddress
		}
	}
	if want == "" {
		t.Fatalf("port has no address on the stateful subnet: %v", port.FixedIPs)
	}
	v := p.plug("st6", p.chassis[1], port)
	out := p.mustExec(v.Name, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if !strings.Contains(out, " "+want+"/128 ") {
		t.Fatalf("%s: eth0 %q, want the port's %s/128 from DHCPv6", v.Name, strings.TrimSpace(out), want)
	}
	if strings.Contains(out, "/64 ") {
		t.Errorf("%s: a SLAAC address on a stateful subnet: %q", v.Name, strings.TrimSpace(out))
	}
}

// BenchmarkVMAddDHCP: `lab vm add` of a new port until the VM's eth0 has
// its address, by DHCP (the port's flows and binding must reach the
// chassis and its agent first) and, for comparison, written (--static).
func BenchmarkVMAddDHCP(b *testing.B) {
	p := upPipelineLab(b, scenarios.Topology{Servers: 1, Chassis: 1})
	nc := p.admin
	netID, _ := p.network(nc, "bench-dhcp", "10.51.0.0/16")
	for _, mode := range []string{"dhcp", "static"} {
		b.Run(mode, func(b *testing.B) {
			i := 0
			for b.Loop() {
				b.StopTimer()
				i++
				name := fmt.Sprintf("b%s%d", mode[:1], i)
				port := p.port(nc, ports.CreateOpts{NetworkID: netID, Name: name})
				ctx, cancel := p.ctx()
				b.StartTimer()
				err := lab.AddVMWith(ctx, p.d.Options.Dir, name, port.ID, p.chassis[0], lab.VMOptions{Static: mode == "static", Binary: p.d.Options.Binary}, nil)
				b.StopTimer()
				if err != nil {
					cancel()
					b.Fatal(err)
				}
				if err := p.d.DelVM(ctx, name); err != nil {
					b.Fatal(err)
				}
				cancel()
				b.StartTimer()
			}
		})
	}
}
