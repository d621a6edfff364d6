package scenarios_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios/harness"
)

// TestDHCP: VMs run busybox udhcpc (harness.Env.DHCP) and get from
// their chassis' agent the port's address, the gateway, DNS, the MTU and
// host routes (option 121); they reach a VM of their network on another
// chassis and one of another routed subnet. A DHCP server's packet from a
// VM does not reach its neighbour (port security drops udp 67->68) while
// other UDP does. A client claiming another port's client id and address
// gets its own port's; a subnet with enable_dhcp=false gets no answer.
// Changing the port's fixed IP moves the VM at its next
// renewal (NAK, new address). Renewals go on succeeding after the Raft
// leader is killed (its agent restarts when the test ends). Renewals are
// asked for with SIGUSR1 (what udhcpc does at half of the lease) rather
// than waited for: the shared lab's agents keep the default lease time.
func TestDHCP(t *testing.T) {
	e := sharedUp(t, pipelineTopo)
	nc := e.Admin
	ctx, cancel := e.Ctx()
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
	net2, sub2 := e.Network(nc, "dhcp-2", "10.32.0.0/24")
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "dhcp"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{s1.ID, sub2} {
		if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract(); err != nil {
			t.Fatalf("add_router_interface %s: %v", sub, err)
		}
	}
	portA := e.Port(nc, ports.CreateOpts{NetworkID: n1.ID, Name: "da"})
	a := e.Plug("da", e.Chassis[0], portA)
	b := e.Plug("db", e.Chassis[1], e.Port(nc, ports.CreateOpts{NetworkID: net2, Name: "db"}))
	c := e.Plug("dc", e.Chassis[1], e.Port(nc, ports.CreateOpts{NetworkID: n1.ID, Name: "dc"}))
	dhcpA := e.DHCP(a.Name)
	e.DHCP(c.Name)

	// What DHCP gave A.
	if out := e.MustExec(a.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+a.IP+"/24 ") {
		t.Fatalf("%s: eth0 %q, want %s/24", a.Name, out, a.IP)
	}
	routes := e.MustExec(a.Name, "ip", "-4", "route")
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
	if mtu := e.MustExec(a.Name, "cat", "/sys/class/net/eth0/mtu"); strings.TrimSpace(mtu) != fmt.Sprint(withMTU.MTU) {
		t.Errorf("%s: mtu %s, want the network's %d", a.Name, strings.TrimSpace(mtu), withMTU.MTU)
	}
	resolv := dhcpA.ResolvConf()
	for _, want := range []string{"nameserver 10.31.0.53", "search openstacklocal"} {
		if !strings.Contains(string(resolv), want) {
			t.Errorf("%s: resolv.conf\n%s\nwant %q", a.Name, resolv, want)
		}
	}
	e.PingOK(harness.FirstPacket, a.Name, c.IP) // same network, other chassis
	e.PingOK(harness.FirstPacket, a.Name, b.IP) // routed, other chassis

	// A rogue DHCP server in C: its offer (udp 67 -> 68) never reaches A;
	// the same datagram from another port does (the capture works).
	capt := e.Capture(a.Name, fmt.Sprintf("udp dst port 68 and ether src %s", c.MAC))
	for _, sport := range []string{"1067", "67"} {
		e.MustExec(c.Name, "sh", "-c", fmt.Sprintf("echo rogue-offer-%s | nc -u -w 1 -p %s %s 68", sport, sport, a.IP))
	}
	got := capt.Packets()
	if len(got) == 0 {
		t.Fatalf("the capture in %s saw nothing from %s, not even the control datagram", a.Name, c.Name)
	}
	for _, l := range got {
		if strings.Contains(l, ".67 > ") || strings.Contains(l, ".bootps > ") {
			t.Errorf("%s received a DHCP server packet from %s: %s", a.Name, c.Name, l)
		}
	}

	// A client lying about its identity (C's client id, asking for C's
	// address) still gets A's address: answers are keyed by the port.
	lie := e.MustExec(a.Name, "sh", "-c", fmt.Sprintf("busybox udhcpc -i eth0 -n -q -f -t 5 -T 1 -r %s -x 61:01%s -s /bin/true 2>&1",
		c.IP, strings.ReplaceAll(c.MAC, ":", "")))
	if !strings.Contains(lie, "lease of "+a.IP+" ") || strings.Contains(lie, "lease of "+c.IP+" ") {
		t.Fatalf("%s asking for %s as %s: %s", a.Name, c.IP, c.Name, lie)
	}

	// A subnet with enable_dhcp=false gets no answer.
	n3, err := networks.Create(ctx, nc, networks.CreateOpts{Name: "dhcp-off"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	dhcpOff := false
	if _, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n3.ID, CIDR: "10.33.0.0/24", IPVersion: gophercloud.IPv4,
		EnableDHCP: &dhcpOff}).Extract(); err != nil {
		t.Fatal(err)
	}
	d := e.Plug("dd", e.Chassis[0], e.Port(nc, ports.CreateOpts{NetworkID: n3.ID, Name: "dd"}))
	// ACTIVE: the chassis acknowledged the port's flows.
	harness.Poll(t, harness.FirstPacket, d.Name+"'s port ACTIVE", func() error {
		pd, err := ports.Get(ctx, nc, d.PortID).Extract()
		if err != nil {
			return err
		}
		if pd.Status != "ACTIVE" {
			return fmt.Errorf("status %s", pd.Status)
		}
		return nil
	})
	if out, err := e.Exec(d.Name, "sh", "-c", "busybox udhcpc -i eth0 -n -q -f -t 3 -T 1 -s /bin/true 2>&1"); err == nil || strings.Contains(out, "lease of") {
		t.Fatalf("%s got a DHCP answer with enable_dhcp=false: %v %s", d.Name, err, out)
	}

	// A new fixed IP reaches A at its next renewal.
	newIP := "10.31.0.77"
	if _, err := ports.Update(ctx, nc, portA.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{SubnetID: s1.ID, IPAddress: newIP}}}).Extract(); err != nil {
		t.Fatalf("update fixed IP: %v", err)
	}
	// Renew until it moves: the update is committed, but the chassis'
	// agent may answer a renewal from its watch before the new address
	// reaches it (an ACK of the old one, and the next renewal would be
	// hours away).
	var renewed time.Time
	harness.Poll(t, harness.FirstPacket, fmt.Sprintf("%s moves to %s at renewal", a.Name, newIP), func() error {
		out, err := e.Exec(a.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, " "+newIP+"/24 ") || strings.Contains(out, " "+a.IP+"/") {
			if time.Since(renewed) > time.Second {
				dhcpA.Renew()
				renewed = time.Now()
			}
			return fmt.Errorf("eth0: %s", strings.TrimSpace(out))
		}
		return nil
	})
	e.PingOK(harness.FirstPacket, a.Name, c.IP)

	// Renewals while the leader is dead: the chassis answer from their
	// own copy of the state.
	leader, _ := e.LeaderOf(e.Servers(), 30*time.Second)
	before := dhcpA.Leases()
	e.Fault("kill the leader's agent", leader, e.D.KillAgent, "start the agent", e.D.StartAgent)
	t.Logf("killed the leader %s; %d leases so far", leader, before)
	for i := 1; i <= 2; i++ {
		dhcpA.Renew()
		harness.Poll(t, harness.Change, fmt.Sprintf("renewal %d after the leader was killed", i), func() error {
			if n := dhcpA.Leases(); n < before+i {
				return fmt.Errorf("%d leases, want %d", n, before+i)
			}
			return nil
		})
	}
	if out := e.MustExec(a.Name, "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, " "+newIP+"/24 ") {
		t.Fatalf("%s lost its address: %s", a.Name, out)
	}
}

// TestIPv6SLAACAndDHCPv6: a router with two IPv6 subnets, one in slaac
// mode and one in dhcpv6-stateful mode, each with an IPv4 subnet beside it.
// A VM on the first (chassis 1) solicits routers; its chassis' agent
// answers with an advertisement from the router interface (prefix with the
// A flag, MTU) and the kernel configures the port's SLAAC address (the
// EUI-64 of its MAC, as the API allocated it) and a default route via the
// router's link-local address. A VM on the second (chassis 2) gets the
// port's address from `neutrino lab dhcp6-client` (IA_NA, Reply to a
// Solicit with rapid commit; harness.Env.DHCPv6), and no SLAAC address (the advertisement says M, no
// A flag). The two ping6 each other across the router, one hop.
func TestIPv6SLAACAndDHCPv6(t *testing.T) {
	e := sharedUp(t, pipelineTopo)
	nc := e.Admin
	ctx, cancel := e.Ctx()
	defer cancel()
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "v6modes"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	dhcpOn := true
	var routerMAC string
	subnet6 := func(name, cidr4, cidr6, mode string) (netID, sub4, sub6 string) {
		netID, sub4 = e.Network(nc, name, cidr4)
		s6, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: netID, CIDR: cidr6, IPVersion: gophercloud.IPv6,
			EnableDHCP: &dhcpOn, IPv6RAMode: mode, IPv6AddressMode: mode}).Extract()
		if err != nil {
			t.Fatalf("create %s subnet: %v", mode, err)
		}
		for _, sub := range []string{sub4, s6.ID} {
			info, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract()
			if err != nil {
				t.Fatalf("add_router_interface %s: %v", sub, err)
			}
			if sub == s6.ID && mode == "slaac" {
				rp, err := ports.Get(ctx, nc, info.PortID).Extract()
				if err != nil {
					t.Fatal(err)
				}
				routerMAC = rp.MACAddress
			}
		}
		return netID, sub4, s6.ID
	}
	net1, _, slaac := subnet6("slaac", "10.41.0.0/24", "fd00:41::/64", "slaac")
	net2, st4, stateful := subnet6("stateful", "10.42.0.0/24", "fd00:42::/64", "dhcpv6-stateful")

	addrOn := func(port *ports.Port, sub string) string {
		for _, f := range port.FixedIPs {
			if f.SubnetID == sub {
				return f.IPAddress
			}
		}
		t.Fatalf("port %s has no address on subnet %s: %v", port.Name, sub, port.FixedIPs)
		return ""
	}
	pa := e.Port(nc, ports.CreateOpts{NetworkID: net1, Name: "sl6"})
	// The API allocates on one IPv4 subnet and every SLAAC subnet by
	// default: ask for the stateful address.
	pb := e.Port(nc, ports.CreateOpts{NetworkID: net2, Name: "st6", FixedIPs: []ports.IP{{SubnetID: st4}, {SubnetID: stateful}}})
	ipA, ipB := addrOn(pa, slaac), addrOn(pb, stateful)
	a := e.Plug("sl6", e.Chassis[0], pa)
	b := e.Plug("st6", e.Chassis[1], pb)

	harness.Poll(t, harness.FirstPacket, fmt.Sprintf("%s configures %s from a router advertisement", a.Name, ipA), func() error {
		out, err := e.Exec(a.Name, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
		if err != nil {
			return err
		}
		if !strings.Contains(out, " "+ipA+"/64 ") {
			return fmt.Errorf("eth0: %q", strings.TrimSpace(out))
		}
		return nil
	})
	mac, err := net.ParseMAC(routerMAC)
	if err != nil {
		t.Fatal(err)
	}
	if out := e.MustExec(a.Name, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via "+harness.EUI64LinkLocal(mac).String()) {
		t.Errorf("%s: default route %q, want via the router's link-local %s", a.Name, strings.TrimSpace(out), harness.EUI64LinkLocal(mac))
	}

	e.DHCPv6(b.Name)
	out := e.MustExec(b.Name, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if !strings.Contains(out, " "+ipB+"/128 ") {
		t.Fatalf("%s: eth0 %q, want the port's %s/128 from DHCPv6", b.Name, strings.TrimSpace(out), ipB)
	}
	if strings.Contains(out, "/64 ") {
		t.Errorf("%s: a SLAAC address on a stateful subnet: %q", b.Name, strings.TrimSpace(out))
	}

	// Across the router (ipv6-route's routing), both ways.
	for _, pr := range [][3]string{{a.Name, ipB, b.Name}, {b.Name, ipA, a.Name}} {
		if out := e.PingOK(harness.FirstPacket, pr[0], pr[1]); !strings.Contains(out, "ttl=63") {
			t.Errorf("ping6 %s -> %s (%s): want one hop (ttl=63), got:\n%s", pr[0], pr[2], pr[1], out)
		}
	}
}
