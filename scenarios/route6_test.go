package scenarios_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios/harness"
)

// TestRoutedPing6 routes IPv6 between two subnets of a router
// (fd00:61::/64 and fd00:62::/64, IPv6 only, addresses configured in the
// VMs by hand from their ports' fixed IPs, default route via the
// subnets' gateways), in two projects with the same prefixes, addresses
// and VM MACs:
//
//   - a VM resolves its gateway by the router's neighbour advertisement
//     (router flag: `ip -6 neigh` says "router") and pings it, the
//     router's other interface and the interface's link-local address;
//   - ping6 across the router between chassis, both ways, and to a VM of
//     the other subnet on the same chassis, with the hop limit decremented
//     once (ttl=63); hop limit 1 does not cross (dropped, no ICMPv6 time
//     exceeded: as IPv4); TCP crosses intact; an IPv6 extra route leads
//     to a prefix behind a VM;
//   - a VM that takes the router's address cannot use it: its packets
//     from that address and its advertisements for it are dropped (port
//     security), and the other VMs keep the router's MAC for it;
//   - each project's pings reach only its own VMs (captures), and an
//     address only the other project has is unreachable.
func TestRoutedPing6(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	type project struct {
		id      string
		size    int // ping payload: tells the projects' packets apart
		gwMAC   map[string]string
		router  string
		a, b, c harness.VM
	}
	projects := []*project{
		{id: "0a0a0a0a0a0a4a0a8a0a0a0a0a0a0a61", size: 111},
		{id: "0b0b0b0b0b0b4b0b8b0b0b0b0b0b0b62", size: 222},
	}
	const gw1, gw2 = "fd00:61::1", "fd00:62::1"
	for i, pr := range projects {
		nc := harness.NetworkClient(p.D.Endpoints()[i%len(p.D.Endpoints())], pr.id)
		open := p.Group(nc, "open6")
		p.Rule(nc, rules.CreateOpts{SecGroupID: open, Direction: rules.DirIngress, EtherType: rules.EtherType6})
		net1, sub1 := network6(p, nc, "r6-1", "fd00:61::/64")
		net2, sub2 := network6(p, nc, "r6-2", "fd00:62::/64")
		pr.router, pr.gwMAC = router6(p, nc, sub1, sub2)
		for _, gw := range []string{gw1, gw2} {
			if pr.gwMAC[gw] == "" {
				t.Fatalf("project %d: router interfaces %v, want the subnets' gateways %s and %s", i+1, pr.gwMAC, gw1, gw2)
			}
		}
		plug := func(name, netID, subID, ip, mac, chassis string) harness.VM {
			t.Helper()
			port := p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: name, MACAddress: mac, SecurityGroups: &[]string{open},
				FixedIPs: []ports.IP{{SubnetID: subID, IPAddress: ip}}})
			v := p.Plug(name, chassis, port)
			gw := gw1
			if netID == net2 {
				gw = gw2
			}
			p.MustExec(name, "ip", "-6", "addr", "add", ip+"/64", "dev", "eth0", "nodad")
			p.MustExec(name, "ip", "-6", "route", "add", "default", "via", gw, "dev", "eth0")
			return v
		}
		pr.a = plug(fmt.Sprintf("p%d-a", i+1), net1, sub1, "fd00:61::10", "fa:16:3e:06:00:0a", p.Chassis[0])
		pr.b = plug(fmt.Sprintf("p%d-b", i+1), net2, sub2, "fd00:62::10", "fa:16:3e:06:00:0b", p.Chassis[1])
		pr.c = plug(fmt.Sprintf("p%d-c", i+1), net2, sub2, "fd00:62::11", "fa:16:3e:06:00:0c", p.Chassis[0])
	}
	a, b, c := projects[0].a, projects[0].b, projects[0].c
	gwMAC := projects[0].gwMAC
	p.TraceOnFailure(a.Name, "routed ICMPv6 echo to "+b.Name, fmt.Sprintf("icmp6,dl_src=%s,dl_dst=%s,ipv6_src=%s,ipv6_dst=%s,nw_ttl=64,icmpv6_type=128,icmpv6_code=0", a.MAC, gwMAC[gw1], a.IP, b.IP))
	p.TraceOnFailure(a.Name, "ICMPv6 echo to the gateway", fmt.Sprintf("icmp6,dl_src=%s,dl_dst=%s,ipv6_src=%s,ipv6_dst=%s,nw_ttl=64,icmpv6_type=128,icmpv6_code=0", a.MAC, gwMAC[gw1], a.IP, gw1))

	// The router's interfaces: neighbour discovery and echo.
	p.PingOK(harness.FirstPacket, a.Name, gw1)
	if out := p.MustExec(a.Name, "ip", "-6", "neigh", "show", gw1); !strings.Contains(strings.ToLower(out), gwMAC[gw1]) || !strings.Contains(out, "router") {
		t.Errorf("%s: neighbour %s is %q, want the router interface's MAC %s flagged router", a.Name, gw1, strings.TrimSpace(out), gwMAC[gw1])
	}
	p.PingOK(harness.Change, a.Name, gw2)
	p.PingOK(harness.FirstPacket, b.Name, gw2)
	mac, err := net.ParseMAC(gwMAC[gw1])
	if err != nil {
		t.Fatal(err)
	}
	p.PingOK(harness.Change, a.Name, harness.EUI64LinkLocal(mac).String()+"%eth0")

	// Routed across chassis, both ways, and within a chassis, one hop.
	for _, pr := range [][2]harness.VM{{a, b}, {b, a}, {a, c}, {c, a}} {
		out := p.PingOK(harness.FirstPacket, pr[0].Name, pr[1].IP)
		if !strings.Contains(out, "ttl=63") {
			t.Errorf("routed ping6 %s -> %s (%s): want ttl=63 (one hop), got:\n%s", pr[0].Name, pr[1].Name, pr[1].IP, out)
		}
	}
	if out := p.MustExec(a.Name, "ip", "-6", "neigh", "show", b.IP); strings.TrimSpace(out) != "" {
		t.Errorf("%s has a neighbour entry for %s (%s): routed traffic must go to the gateway", a.Name, b.IP, strings.TrimSpace(out))
	}
	// Hop limit 2 crosses the router, 1 does not.
	p.PingOK(harness.Change, a.Name, b.IP, "-t", "2")
	p.PingFails(harness.Change, 2, a.Name, b.IP, "-t", "1")

	tcpExchange6(p, b.Name, b.IP, a.Name, 5006)

	// An IPv6 extra route: fd00:99::/64 via c, which holds fd00:99::1 and
	// may send from the prefix (an allowed address pair).
	ctx, cancel := p.Ctx()
	nc1 := harness.NetworkClient(p.D.Endpoint(), projects[0].id)
	if _, err := ports.Update(ctx, nc1, c.PortID, ports.UpdateOpts{AllowedAddressPairs: &[]ports.AddressPair{{IPAddress: "fd00:99::/64"}}}).Extract(); err != nil {
		t.Fatalf("allowed address pair on %s: %v", c.Name, err)
	}
	routes := []routers.Route{{DestinationCIDR: "fd00:99::/64", NextHop: c.IP}}
	if _, err := routers.Update(ctx, nc1, projects[0].router, routers.UpdateOpts{Routes: &routes}).Extract(); err != nil {
		t.Fatalf("router routes %v: %v", routes, err)
	}
	cancel()
	p.MustExec(c.Name, "ip", "-6", "addr", "add", "fd00:99::1/128", "dev", "lo")
	if out := p.PingOK(harness.Change, a.Name, "fd00:99::1"); !strings.Contains(out, "ttl=63") {
		t.Errorf("ping6 %s -> fd00:99::1 (extra route via %s): want ttl=63, got:\n%s", a.Name, c.Name, out)
	}

	// A VM taking the router's address gets nothing from it.
	x := p.Plug("p1-x", p.Chassis[1], p.Port(harness.NetworkClient(p.D.Endpoint(), projects[0].id), ports.CreateOpts{
		NetworkID: networkOf(p, a), Name: "p1-x", SecurityGroups: &[]string{groupOf(p, a)},
		FixedIPs: []ports.IP{{SubnetID: subnetOf(p, a), IPAddress: "fd00:61::66"}}}))
	p.MustExec(x.Name, "ip", "-6", "addr", "add", "fd00:61::66/64", "dev", "eth0", "nodad")
	p.PingOK(harness.FirstPacket, x.Name, a.IP)
	// ndisc_notify: taking the address sends unsolicited advertisements
	// for it.
	p.Sysctl(x.Name, "net.ipv6.conf.eth0.ndisc_notify=1")
	seen := p.SeenAt(a.Name, fmt.Sprintf("ip6 and ether src %s and (src host %s or icmp6)", x.MAC, gw1), func() {
		p.MustExec(x.Name, "ip", "-6", "addr", "add", gw1+"/128", "dev", "eth0", "nodad")
		_, _ = p.Exec(x.Name, "ping", "-n", "-c3", "-i0.2", "-W1", "-I", gw1, a.IP)
	})
	// gw1 as a whole address (not the prefix of a's fd00:61::10).
	gwRE := regexp.MustCompile(regexp.QuoteMeta(gw1) + `([^0-9a-f:]|$)`)
	var leak []string
	for _, l := range seen {
		if gwRE.MatchString(l) {
			leak = append(leak, l)
		}
	}
	if len(leak) > 0 {
		t.Errorf("packets from or about %s (the router's address) sent by %s reached %s:\n%s", gw1, x.Name, a.Name, strings.Join(leak, "\n"))
	}
	p.MustExec(a.Name, "ip", "-6", "neigh", "flush", "all")
	p.PingOK(harness.Change, a.Name, gw1)
	if out := p.MustExec(a.Name, "ip", "-6", "neigh", "show", gw1); !strings.Contains(strings.ToLower(out), gwMAC[gw1]) {
		t.Errorf("%s: neighbour %s is %q after %s took the address, want the router's MAC %s", a.Name, gw1, strings.TrimSpace(out), x.Name, gwMAC[gw1])
	}
	na := "icmp6,dl_src=%s,dl_dst=33:33:00:00:00:01,ipv6_src=%s,ipv6_dst=ff02::1,nw_ttl=255,icmpv6_type=136,icmpv6_code=0,nd_target=%s,nd_tll=%s"
	ra := "icmp6,dl_src=%s,dl_dst=33:33:00:00:00:01,ipv6_src=%s,ipv6_dst=ff02::1,nw_ttl=255,icmpv6_type=134,icmpv6_code=0"
	for _, tc := range []struct{ what, flow string }{
		{"NA for the router's address", fmt.Sprintf(na, x.MAC, "fd00:61::66", gw1, x.MAC)},
		{"NA for the router's link-local address", fmt.Sprintf(na, x.MAC, "fd00:61::66", harness.EUI64LinkLocal(mac), x.MAC)},
		{"echo from the router's address", fmt.Sprintf("icmp6,dl_src=%s,dl_dst=%s,ipv6_src=%s,ipv6_dst=%s,nw_ttl=64,icmpv6_type=128,icmpv6_code=0", x.MAC, a.MAC, gw1, a.IP)},
		{"router advertisement", fmt.Sprintf(ra, x.MAC, harness.EUI64LinkLocal(mustMAC(t, x.MAC)))},
	} {
		if actions, full := p.TraceVM(x.Name, tc.flow); !harness.Dropped(actions) {
			t.Errorf("ofproto/trace of %s from %s: datapath actions %q, want drop; trace:\n%s", tc.what, x.Name, actions, full)
		}
	}

	// Tenant isolation: both projects ping the same addresses at once.
	for _, pr := range projects[1:] {
		p.PingOK(harness.FirstPacket, pr.a.Name, pr.b.IP)
	}
	caps := map[string]*harness.Capture{}
	for _, pr := range projects {
		for _, v := range []harness.VM{pr.a, pr.b} {
			caps[v.Name] = p.Capture(v.Name, "icmp6")
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(projects))
	for i, pr := range projects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Exec(pr.a.Name, "ping", "-n", "-c5", "-i0.2", "-W1", "-s", fmt.Sprint(pr.size), pr.b.IP)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("project %d: ping6 %s -> %s while the other project pings the same addresses: %v", i+1, projects[i].a.Name, projects[i].b.IP, err)
		}
	}
	for i, pr := range projects {
		own := fmt.Sprintf("length %d", pr.size+8)
		other := fmt.Sprintf("length %d", projects[1-i].size+8)
		for _, side := range []struct {
			v    harness.VM
			kind string
		}{{pr.b, "echo request"}, {pr.a, "echo reply"}} {
			pk := caps[side.v.Name].Packets()
			if len(harness.Matching(pk, side.kind, own)) == 0 {
				t.Errorf("%s (project %d) saw none of its own project's %ss (%s); captured:\n%s", side.v.Name, i+1, side.kind, own, strings.Join(pk, "\n"))
			}
			if leak := harness.Matching(pk, other); len(leak) > 0 {
				t.Errorf("%s (project %d) saw the other project's packets (%s):\n%s", side.v.Name, i+1, other, strings.Join(leak, "\n"))
			}
		}
	}
	// An address only project 2 has: project 1 does not reach it.
	pb := projects[1]
	nc2 := harness.NetworkClient(p.D.Endpoint(), pb.id)
	d := p.Plug("p2-d", p.Chassis[2], p.Port(nc2, ports.CreateOpts{NetworkID: networkOf(p, pb.b), Name: "p2-d",
		SecurityGroups: &[]string{groupOf(p, pb.b)}, FixedIPs: []ports.IP{{SubnetID: subnetOf(p, pb.b), IPAddress: "fd00:62::99"}}}))
	p.MustExec(d.Name, "ip", "-6", "addr", "add", "fd00:62::99/64", "dev", "eth0", "nodad")
	p.MustExec(d.Name, "ip", "-6", "route", "add", "default", "via", gw2, "dev", "eth0")
	p.PingOK(harness.FirstPacket, pb.a.Name, d.IP)
	p.PingFails(harness.Change, 3, a.Name, d.IP)
}

// network6 creates a network with one IPv6 subnet (gateway: the prefix's
// first address, no address mode: addresses are set in the VMs) and
// returns their ids.
func network6(p *harness.Env, nc *gophercloud.ServiceClient, name, cidr string) (netID, subnetID string) {
	p.TB.Helper()
	ctx, cancel := p.Ctx()
	defer cancel()
	n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: name}).Extract()
	if err != nil {
		p.TB.Fatalf("create network %s: %v", name, err)
	}
	s, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: cidr, IPVersion: gophercloud.IPv6, Name: name}).Extract()
	if err != nil {
		p.TB.Fatalf("create subnet %s: %v", cidr, err)
	}
	return n.ID, s.ID
}

// router6 creates a router with an interface on each subnet and returns
// its id and the interfaces' MACs by address.
func router6(p *harness.Env, nc *gophercloud.ServiceClient, subs ...string) (string, map[string]string) {
	p.TB.Helper()
	ctx, cancel := p.Ctx()
	defer cancel()
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "r6"}).Extract()
	if err != nil {
		p.TB.Fatalf("create router: %v", err)
	}
	macs := map[string]string{}
	for _, sub := range subs {
		info, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract()
		if err != nil {
			p.TB.Fatalf("add_router_interface subnet %s: %v", sub, err)
		}
		rp, err := ports.Get(ctx, nc, info.PortID).Extract()
		if err != nil {
			p.TB.Fatalf("router interface port %s: %v", info.PortID, err)
		}
		for _, f := range rp.FixedIPs {
			macs[f.IPAddress] = strings.ToLower(rp.MACAddress)
		}
	}
	return r.ID, macs
}

// getPort reads a VM's port as admin.
func getPort(p *harness.Env, v harness.VM) *ports.Port {
	p.TB.Helper()
	ctx, cancel := p.Ctx()
	defer cancel()
	port, err := ports.Get(ctx, p.Admin, v.PortID).Extract()
	if err != nil {
		p.TB.Fatalf("port %s of %s: %v", v.PortID, v.Name, err)
	}
	return port
}

func networkOf(p *harness.Env, v harness.VM) string { return getPort(p, v).NetworkID }
func subnetOf(p *harness.Env, v harness.VM) string  { return getPort(p, v).FixedIPs[0].SubnetID }
func groupOf(p *harness.Env, v harness.VM) string   { return getPort(p, v).SecurityGroups[0] }

// tcpExchange6 is tcpExchange over IPv6 (nc listens on IPv6 with -6).
func tcpExchange6(p *harness.Env, server, ip, client string, port int) {
	p.TB.Helper()
	l := p.Start(server, "nc", "-6", "-k", "-l", "-p", fmt.Sprint(port))
	harness.Poll(p.TB, 10*time.Second, fmt.Sprintf("%s listens on tcp6 %d", server, port), func() error {
		if l.Exited() {
			return fmt.Errorf("nc exited: %s", l.Stderr())
		}
		out, err := p.Exec(server, "ss", "-Hltn6", fmt.Sprintf("sport = :%d", port))
		if err != nil {
			return err
		}
		if !strings.Contains(out, "LISTEN") {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	msg := fmt.Sprintf("hello6-from-%s-%d", client, time.Now().UnixNano())
	harness.Poll(p.TB, harness.Change, fmt.Sprintf("tcp6 %s -> [%s]:%d carries a line", client, ip, port), func() error {
		if _, err := p.Exec(client, "sh", "-c", fmt.Sprintf("echo %s | nc -N -w 3 %s %d", msg, ip, port)); err != nil {
			return err
		}
		if !strings.Contains(l.Stdout(), msg) {
			return fmt.Errorf("connected, but %s received %q", server, l.Stdout())
		}
		return nil
	})
	l.Stop()
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
