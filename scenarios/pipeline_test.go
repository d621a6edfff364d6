package scenarios_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios/harness"
)

// Traffic scenarios of the OpenFlow pipeline (docs/pipeline.md): routing,
// security groups, port security, tenant isolation and flow removal, each
// on a lab of its own (a netns lab comes up in about 2 s; they kill
// nothing, but a lab of their own keeps one test's objects from
// another's captures and flow checks).

// pipelineTopo is the lab of these scenarios (harness.PipelineTopology).
var pipelineTopo = harness.PipelineTopology

// TestRoutedPing routes between two networks through a router with an
// interface on each: VM A (net1, chassis-1) and VM B (net2, chassis-2)
// with default routes via their subnets' gateways ping each other (TTL
// decremented once: ttl=63), each pings its own gateway (the router
// answers ARP with its interface's MAC and ICMP echo), A reaches a VM of
// net2 on its own chassis, and TCP crosses the router intact.
func TestRoutedPing(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	nc := p.Admin
	ctx, cancel := p.Ctx()
	defer cancel()

	net1, sub1 := p.Network(nc, "routed-1", "10.1.0.0/24")
	net2, sub2 := p.Network(nc, "routed-2", "10.2.0.0/24")
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "routed"}).Extract()
	if err != nil {
		t.Fatalf("create router: %v", err)
	}
	gwMAC := map[string]string{} // gateway IP -> router interface MAC
	for _, sub := range []string{sub1, sub2} {
		info, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: sub}).Extract()
		if err != nil {
			t.Fatalf("add_router_interface subnet %s: %v", sub, err)
		}
		rp, err := ports.Get(ctx, nc, info.PortID).Extract()
		if err != nil {
			t.Fatalf("router interface port %s: %v", info.PortID, err)
		}
		if len(rp.FixedIPs) == 0 {
			t.Fatalf("router interface port %s has no fixed IP", rp.ID)
		}
		gwMAC[rp.FixedIPs[0].IPAddress] = strings.ToLower(rp.MACAddress)
	}
	for _, gw := range []string{"10.1.0.1", "10.2.0.1"} {
		if gwMAC[gw] == "" {
			t.Fatalf("router interfaces: want the subnets' gateways 10.1.0.1 and 10.2.0.1, got %v", gwMAC)
		}
	}

	a := p.Plug("ra", p.Chassis[0], p.Port(nc, ports.CreateOpts{NetworkID: net1, Name: "ra"}))
	b := p.Plug("rb", p.Chassis[1], p.Port(nc, ports.CreateOpts{NetworkID: net2, Name: "rb"}))
	c := p.Plug("rc", p.Chassis[0], p.Port(nc, ports.CreateOpts{NetworkID: net2, Name: "rc"}))
	p.TraceOnFailure(a.Name, "ICMP echo to the gateway", fmt.Sprintf("icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=10.1.0.1,nw_ttl=64,icmp_type=8,icmp_code=0", a.MAC, gwMAC["10.1.0.1"], a.IP))
	p.TraceOnFailure(a.Name, "routed ICMP echo to "+b.Name, fmt.Sprintf("icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64,icmp_type=8,icmp_code=0", a.MAC, gwMAC["10.1.0.1"], a.IP, b.IP))
	if out := p.MustExec(a.Name, "ip", "-4", "route", "show", "default"); !strings.Contains(out, "via 10.1.0.1") {
		t.Fatalf("%s: default route %q, want via 10.1.0.1", a.Name, strings.TrimSpace(out))
	}

	// The router's interface answers ARP and ICMP echo on each network.
	p.PingOK(harness.FirstPacket, a.Name, "10.1.0.1")
	if out := p.MustExec(a.Name, "ip", "neigh", "show", "10.1.0.1"); !strings.Contains(strings.ToLower(out), gwMAC["10.1.0.1"]) {
		t.Errorf("%s: neighbour 10.1.0.1 is %q, want the router interface's MAC %s", a.Name, strings.TrimSpace(out), gwMAC["10.1.0.1"])
	}
	p.PingOK(harness.FirstPacket, b.Name, "10.2.0.1")

	// Routed across chassis, both ways, with one TTL decrement.
	for _, pr := range [][2]harness.VM{{a, b}, {b, a}, {a, c}} {
		out := p.PingOK(harness.FirstPacket, pr[0].Name, pr[1].IP)
		if !strings.Contains(out, "ttl=63") {
			t.Errorf("routed ping %s -> %s (%s): want ttl=63 (one hop), got:\n%s", pr[0].Name, pr[1].Name, pr[1].IP, out)
		}
	}
	// The router's MAC is what A sees for everything off its subnet.
	if out := p.MustExec(a.Name, "ip", "neigh", "show", b.IP); strings.TrimSpace(out) != "" {
		t.Errorf("%s has a neighbour entry for %s (%s): routed traffic must go to the gateway", a.Name, b.IP, strings.TrimSpace(out))
	}

	// TCP through the router: checksums survive MAC rewrite and dec_ttl.
	p.TCPExchange(b.Name, b.IP, a.Name, 5001)
}

// TestSecurityGroups checks security groups with real traffic. B's group
// S allows ICMP and TCP 22 in: A (group G) and C (default group) ping B
// and connect to B:22; B:80 (listening) is denied. B cannot ping A (G lets
// nothing in; the replies to A's own pings are conntrack's). A rule "TCP
// 80 from members of G" lets A reach B:80 while C still cannot. Removing
// the ICMP rule stops new pings while an established TCP connection to
// B:22 keeps carrying data; so it does after the TCP 22 rule itself is
// removed, while new connections to 22 are denied (docs/pipeline.md:
// established traffic passes before any rule).
func TestSecurityGroups(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	nc := p.Admin
	netID, _ := p.Network(nc, "sg", "10.3.0.0/24")
	s := p.Group(nc, "sg-server")
	g := p.Group(nc, "sg-clients")
	icmp := p.Rule(nc, rules.CreateOpts{SecGroupID: s, Direction: rules.DirIngress, Protocol: rules.ProtocolICMP})
	ssh := p.Rule(nc, rules.CreateOpts{SecGroupID: s, Direction: rules.DirIngress, Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22})

	a := p.Plug("sga", p.Chassis[0], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "sga", SecurityGroups: &[]string{g}}))
	b := p.Plug("sgb", p.Chassis[1], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "sgb", SecurityGroups: &[]string{s}}))
	c := p.Plug("sgc", p.Chassis[2], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "sgc"})) // default group

	p.TraceOnFailure(a.Name, "TCP SYN to "+b.Name+":22", fmt.Sprintf("tcp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64,tp_src=40000,tp_dst=22,tcp_flags=0x002", a.MAC, b.MAC, a.IP, b.IP))
	p.PingOK(harness.FirstPacket, a.Name, b.IP)
	p.PingOK(harness.FirstPacket, c.Name, b.IP)
	// -k: one listener serves every connection in turn; what clients
	// send shows in its output.
	l22 := p.Listen(b.Name, 22)
	p.Listen(b.Name, 80)
	p.TCPOK(harness.Change, a.Name, b.IP, 22)
	p.TCPOK(harness.Change, c.Name, b.IP, 22)
	p.TCPDenied(2, a.Name, b.IP, 80)
	p.TCPDenied(1, c.Name, b.IP, 80)
	// Ingress of A's group: nothing but replies.
	p.PingFails(harness.Change, 2, b.Name, a.IP)

	t.Run("remote-group", func(t *testing.T) {
		p := p.Sub(t)
		p.Rule(nc, rules.CreateOpts{SecGroupID: s, Direction: rules.DirIngress, Protocol: rules.ProtocolTCP,
			PortRangeMin: 80, PortRangeMax: 80, RemoteGroupID: g})
		p.TCPOK(harness.Change, a.Name, b.IP, 80)
		p.TCPDenied(3, c.Name, b.IP, 80)
		p.TCPOK(harness.Change, a.Name, b.IP, 80) // still, after C's attempts
	})

	t.Run("rule-removal-keeps-established", func(t *testing.T) {
		p := p.Sub(t)
		// A connection that stays open: nc with its stdin held by us.
		conn := p.Start(a.Name, "nc", b.IP, "22")
		say := func(what string) {
			t.Helper()
			if _, err := fmt.Fprintln(conn.Stdin, what); err != nil {
				t.Fatalf("write %q on the established connection: %v (nc: %s)", what, err, conn.Stderr())
			}
			harness.Poll(t, harness.Change, fmt.Sprintf("%q over the established connection %s -> %s:22", what, a.Name, b.IP), func() error {
				if strings.Contains(l22.Stdout(), what) {
					return nil
				}
				if conn.Exited() {
					return fmt.Errorf("the client's connection ended: %s", conn.Stderr())
				}
				return fmt.Errorf("%s received %q", b.Name, l22.Stdout())
			})
		}
		say("before-removal")

		ctx, cancel := p.Ctx()
		defer cancel()
		if err := rules.Delete(ctx, nc, icmp).ExtractErr(); err != nil {
			t.Fatalf("delete ICMP rule: %v", err)
		}
		p.PingFails(harness.Change, 3, a.Name, b.IP)
		p.PingFails(harness.Change, 1, c.Name, b.IP)
		say("after-removal")
		p.TCPOK(harness.Change, c.Name, b.IP, 22) // new connections to 22: still allowed

		// Established passes before any rule: even removing the rule that
		// admitted the connection leaves it alive, while new ones are denied.
		if err := rules.Delete(ctx, nc, ssh).ExtractErr(); err != nil {
			t.Fatalf("delete TCP 22 rule: %v", err)
		}
		harness.Poll(t, harness.Change, fmt.Sprintf("new tcp %s -> %s:22 denied once its rule is gone", c.Name, b.IP), func() error {
			if p.TCPConnect(c.Name, b.IP, 22, 2) == nil {
				return fmt.Errorf("connected")
			}
			return nil
		})
		say("after-its-rule-removal")
	})
}

// TestPortSecurity checks that a VM cannot send with a source IP or MAC
// other than its port's: a ping from A with a spoofed source IP and one
// from a spoofed MAC never reach B (tcpdump in B), ofproto/trace drops a
// spoofed ARP reply and a spoofed-IP packet at A's chassis while passing
// the genuine ones; with port_security_enabled=false (and no security
// groups) on A's port the same spoofed traffic reaches B.
func TestPortSecurity(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	nc := p.Admin
	netID, _ := p.Network(nc, "ps", "10.4.0.0/24")
	// B lets ICMP in from anywhere: only port security stands in the way.
	open := p.Group(nc, "ps-open")
	p.Rule(nc, rules.CreateOpts{SecGroupID: open, Direction: rules.DirIngress, Protocol: rules.ProtocolICMP, RemoteIPPrefix: "0.0.0.0/0"})
	a := p.Plug("psa", p.Chassis[0], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "psa", SecurityGroups: &[]string{open}}))
	b := p.Plug("psb", p.Chassis[1], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "psb", SecurityGroups: &[]string{open}}))
	p.PingOK(harness.FirstPacket, a.Name, b.IP)

	const spoofIP, spoofMAC = "10.4.0.200", "02:00:0a:04:00:c8"
	p.MustExec(a.Name, "ip", "addr", "add", spoofIP+"/32", "dev", "eth0")
	spoofedIP := func() []string {
		return p.SeenAt(b.Name, "src host "+spoofIP, func() {
			_, _ = p.Exec(a.Name, "ping", "-n", "-c3", "-i0.2", "-W1", "-I", spoofIP, b.IP)
		})
	}
	spoofedMAC := func() []string {
		p.MustExec(a.Name, "ip", "link", "set", "dev", "eth0", "address", spoofMAC)
		defer p.MustExec(a.Name, "ip", "link", "set", "dev", "eth0", "address", a.MAC)
		return p.SeenAt(b.Name, "ether src "+spoofMAC, func() {
			_, _ = p.Exec(a.Name, "ping", "-n", "-c3", "-i0.2", "-W1", b.IP)
		})
	}

	t.Run("enabled", func(t *testing.T) {
		p := p.Sub(t)
		if seen := spoofedIP(); len(seen) > 0 {
			t.Errorf("a ping from %s with spoofed source %s reached %s:\n%s", a.Name, spoofIP, b.Name, strings.Join(seen, "\n"))
		}
		if seen := spoofedMAC(); len(seen) > 0 {
			t.Errorf("frames from %s with spoofed MAC %s reached %s:\n%s", a.Name, spoofMAC, b.Name, strings.Join(seen, "\n"))
		}
		p.PingOK(harness.Change, a.Name, b.IP) // the genuine addresses still work

		icmp := "icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64,icmp_type=8,icmp_code=0"
		arpReply := "arp,arp_op=2,dl_src=%s,dl_dst=%s,arp_sha=%s,arp_spa=%s,arp_tha=%s,arp_tpa=%s"
		p.ExpectTraces(a.Name, []harness.TraceCase{
			{What: "genuine ICMP", Flow: fmt.Sprintf(icmp, a.MAC, b.MAC, a.IP, b.IP), Drop: false},
			{What: "ICMP from a spoofed IP", Flow: fmt.Sprintf(icmp, a.MAC, b.MAC, spoofIP, b.IP), Drop: true},
			{What: "ICMP from a spoofed MAC", Flow: fmt.Sprintf(icmp, spoofMAC, b.MAC, a.IP, b.IP), Drop: true},
			{What: "genuine ARP reply", Flow: fmt.Sprintf(arpReply, a.MAC, b.MAC, a.MAC, a.IP, b.MAC, b.IP), Drop: false},
			{What: "ARP reply claiming another IP", Flow: fmt.Sprintf(arpReply, a.MAC, b.MAC, a.MAC, spoofIP, b.MAC, b.IP), Drop: true},
			{What: "ARP reply claiming another MAC", Flow: fmt.Sprintf(arpReply, a.MAC, b.MAC, spoofMAC, a.IP, b.MAC, b.IP), Drop: true},
		})
	})

	t.Run("disabled", func(t *testing.T) {
		p := p.Sub(t)
		ctx, cancel := p.Ctx()
		defer cancel()
		off := false
		_, err := ports.Update(ctx, nc, a.PortID, portsecurity.PortUpdateOptsExt{
			UpdateOptsBuilder:   ports.UpdateOpts{SecurityGroups: &[]string{}},
			PortSecurityEnabled: &off,
		}).Extract()
		if err != nil {
			t.Fatalf("port %s: port_security_enabled=false, security_groups=[]: %v", a.PortID, err)
		}
		harness.Poll(t, harness.Change, fmt.Sprintf("with port security off, a ping from %s with spoofed source %s reaches %s", a.Name, spoofIP, b.Name), func() error {
			if len(spoofedIP()) == 0 {
				return fmt.Errorf("tcpdump in %s saw nothing from %s", b.Name, spoofIP)
			}
			return nil
		})
		harness.Poll(t, harness.Change, fmt.Sprintf("with port security off, frames from %s with spoofed MAC %s reach %s", a.Name, spoofMAC, b.Name), func() error {
			if len(spoofedMAC()) == 0 {
				return fmt.Errorf("tcpdump in %s saw nothing from %s", b.Name, spoofMAC)
			}
			return nil
		})
		p.PingOK(harness.Change, a.Name, b.IP)
	})
}

// TestTenantIsolation runs two projects with identical networks: the same
// CIDR (10.9.0.0/24), the same addresses and the same MACs on their ports,
// with one VM of each project on chassis-1 and one on chassis-2. Each pair
// pings within its project at once, with a payload size of its own; a
// capture in every VM shows only its own project's echo packets.
func TestTenantIsolation(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	type project struct {
		id   string
		size int // ping payload: tells the projects' packets apart
		a, b harness.VM
	}
	projects := []*project{
		{id: "0a0a0a0a0a0a4a0a8a0a0a0a0a0a0a01", size: 101},
		{id: "0b0b0b0b0b0b4b0b8b0b0b0b0b0b0b02", size: 202},
	}
	macs := [2]string{"fa:16:3e:09:00:0a", "fa:16:3e:09:00:0b"}
	ips := [2]string{"10.9.0.10", "10.9.0.11"}
	for i, pr := range projects {
		nc := harness.NetworkClient(p.D.Endpoints()[i%len(p.D.Endpoints())], pr.id)
		netID, subID := p.Network(nc, "tenant", "10.9.0.0/24")
		var vms [2]harness.VM
		for j := range vms {
			name := fmt.Sprintf("t%d-%c", i+1, 'a'+j)
			port := p.Port(nc, ports.CreateOpts{
				NetworkID: netID, Name: name, MACAddress: macs[j],
				FixedIPs: []ports.IP{{SubnetID: subID, IPAddress: ips[j]}},
			})
			if port.ProjectID != pr.id || port.MACAddress != macs[j] || port.FixedIPs[0].IPAddress != ips[j] {
				t.Fatalf("port %s: project %s mac %s ip %v, want %s %s %s", name, port.ProjectID, port.MACAddress, port.FixedIPs, pr.id, macs[j], ips[j])
			}
			vms[j] = p.Plug(name, p.Chassis[j], port)
		}
		pr.a, pr.b = vms[0], vms[1]
	}
	for _, pr := range projects {
		p.PingOK(harness.FirstPacket, pr.a.Name, pr.b.IP)
		p.PingOK(harness.Change, pr.b.Name, pr.a.IP)
	}

	caps := map[string]*harness.Capture{}
	for _, pr := range projects {
		for _, v := range []harness.VM{pr.a, pr.b} {
			caps[v.Name] = p.Capture(v.Name, "icmp")
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
			t.Errorf("project %d: ping %s -> %s while the other project pings the same addresses: %v", i+1, projects[i].a.Name, projects[i].b.IP, err)
		}
	}
	for i, pr := range projects {
		own := fmt.Sprintf("length %d", pr.size+8)
		other := fmt.Sprintf("length %d", projects[1-i].size+8)
		for _, side := range []struct {
			v    harness.VM
			kind string
		}{{pr.b, "ICMP echo request"}, {pr.a, "ICMP echo reply"}} {
			pk := caps[side.v.Name].Packets()
			if len(harness.Matching(pk, side.kind, own)) == 0 {
				t.Errorf("%s (project %d) saw none of its own project's %ss (%s); captured:\n%s", side.v.Name, i+1, side.kind, own, strings.Join(pk, "\n"))
			}
			if leak := harness.Matching(pk, other); len(leak) > 0 {
				t.Errorf("%s (project %d) saw the other project's packets (%s):\n%s", side.v.Name, i+1, other, strings.Join(leak, "\n"))
			}
		}
	}
}

// TestPortDeleteRemovesFlows deletes a port whose VM stays plugged and
// checks that no chassis keeps a flow carrying the port's cookie (kind 2,
// its datapath key, any round), while the other ports' flows stay on
// the chassis where the network still has ports, and their traffic flows.
func TestPortDeleteRemovesFlows(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	nc := p.Admin
	netID, _ := p.Network(nc, "del", "10.5.0.0/24")
	vms := p.VMOnEachChassis(nc, "del", netID)
	a, b, c := vms[0], vms[1], vms[2]
	p.PingOK(harness.FirstPacket, a.Name, b.IP)
	p.PingOK(harness.FirstPacket, a.Name, c.IP)
	p.PingOK(harness.FirstPacket, c.Name, b.IP)

	// Every chassis has flows of B: local on B's, remote (tunnel) on the others.
	bOwner := p.PortCookie(b.PortID)
	for _, ch := range p.Chassis {
		harness.Poll(t, harness.Change, "flows of port "+b.PortID+" on "+ch, func() error {
			fs, err := p.Flows(ch)
			if err != nil {
				return err
			}
			if len(harness.Owned(fs, bOwner)) == 0 {
				return fmt.Errorf("no flow with cookie owner %#x among:%s", bOwner, harness.FlowTexts(harness.Ours(fs)))
			}
			return nil
		})
	}

	ctx, cancel := p.Ctx()
	defer cancel()
	if err := ports.Delete(ctx, nc, b.PortID).ExtractErr(); err != nil {
		t.Fatalf("delete port %s: %v", b.PortID, err)
	}
	for _, ch := range p.Chassis {
		harness.Poll(t, harness.Change, "flows of deleted port "+b.PortID+" gone from "+ch, func() error {
			fs, err := p.Flows(ch)
			if err != nil {
				return err
			}
			if left := harness.Owned(fs, bOwner); len(left) > 0 {
				return fmt.Errorf("%d flows left:%s", len(left), harness.FlowTexts(left))
			}
			return nil
		})
		if ch == b.Chassis {
			// No port of the network is left there: no flows of it at all.
			continue
		}
		fs, err := p.Flows(ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []harness.VM{a, c} {
			if len(harness.Owned(fs, p.PortCookie(v.PortID))) == 0 {
				t.Errorf("%s lost the flows of port %s (%s) too", ch, v.PortID, v.Name)
			}
		}
	}
	p.PingOK(harness.Change, a.Name, c.IP)
	p.PingFails(harness.Change, 2, a.Name, b.IP)
}
