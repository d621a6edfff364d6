package scenarios_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios/harness"
)

// TestIPv6PortSecurity: a network with an IPv4 and an IPv6 subnet
// (fd00:1::/64, no ipv6_address_mode: the addresses are configured in the
// VMs by hand), two VMs with port security on different chassis and a
// group admitting ICMPv6. Their neighbour solicitations are answered by
// the ND responder of their own chassis (table 30) and ping6 works both
// ways; a ping6 from a spoofed IPv6 source never reaches the other VM
// (tcpdump), and ofproto/trace drops neighbour advertisements and
// solicitations that lie about the sender's addresses.
func TestIPv6PortSecurity(t *testing.T) {
	p := sharedUp(t, pipelineTopo)
	nc := p.Admin
	netID, sub4 := p.Network(nc, "v6", "10.6.0.0/24")
	ctx, cancel := p.Ctx()
	defer cancel()
	s6, err := subnets.Create(ctx, nc, subnets.CreateOpts{
		NetworkID: netID, CIDR: "fd00:1::/64", IPVersion: gophercloud.IPv6, Name: "v6-6",
	}).Extract()
	if err != nil {
		t.Fatalf("create IPv6 subnet: %v", err)
	}
	open := p.Group(nc, "v6-open")
	p.Rule(nc, rules.CreateOpts{SecGroupID: open, Direction: rules.DirIngress, EtherType: rules.EtherType6, Protocol: rules.ProtocolIPv6ICMP})

	type vm6 struct {
		harness.VM
		ip6 string
	}
	plug := func(name, chassis string) vm6 {
		t.Helper()
		port := p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: name, SecurityGroups: &[]string{open},
			FixedIPs: []ports.IP{{SubnetID: sub4}, {SubnetID: s6.ID}}})
		v := vm6{VM: p.Plug(name, chassis, port)}
		for _, f := range port.FixedIPs {
			if a, err := netip.ParseAddr(f.IPAddress); err == nil && a.Is6() {
				v.ip6 = a.String()
			}
		}
		if v.ip6 == "" {
			t.Fatalf("port %s has no IPv6 address: %+v", port.ID, port.FixedIPs)
		}
		p.MustExec(name, "ip", "-6", "addr", "add", v.ip6+"/64", "dev", "eth0", "nodad")
		t.Logf("VM %s: %s", name, v.ip6)
		return v
	}
	a := plug("v6a", p.Chassis[0])
	b := plug("v6b", p.Chassis[1])

	p.TraceOnFailure(a.Name, "NS for "+b.ip6, fmt.Sprintf("icmp6,dl_src=%s,dl_dst=33:33:ff:00:00:01,ipv6_src=%s,ipv6_dst=ff02::1:ff00:1,nw_ttl=255,icmpv6_type=135,icmpv6_code=0,nd_target=%s,nd_sll=%s", a.MAC, a.ip6, b.ip6, a.MAC))
	p.PingOK(harness.FirstPacket, a.Name, b.ip6)
	p.PingOK(harness.Change, b.Name, a.ip6)
	// The neighbour entries come from the ND responder: B's MAC for B's
	// address in A.
	if out := p.MustExec(a.Name, "ip", "-6", "neigh", "show", b.ip6); !strings.Contains(out, b.MAC) {
		t.Errorf("A's neighbour entry for %s: %q, want %s", b.ip6, out, b.MAC)
	}

	const spoof6, spoofMAC = "fd00:1::200", "02:00:0a:06:00:c8"
	p.MustExec(a.Name, "ip", "-6", "addr", "add", spoof6+"/128", "dev", "eth0", "nodad")
	seen := p.SeenAt(b.Name, "ip6 and src host "+spoof6, func() {
		_, _ = p.Exec(a.Name, "ping", "-n", "-c3", "-i0.2", "-W1", "-I", spoof6, b.ip6)
	})
	if len(seen) > 0 {
		t.Errorf("a ping6 from %s with spoofed source %s reached %s:\n%s", a.Name, spoof6, b.Name, strings.Join(seen, "\n"))
	}
	// The /128 would be the preferred source (longest matching prefix):
	// remove it, the genuine address still works.
	p.MustExec(a.Name, "ip", "-6", "addr", "del", spoof6+"/128", "dev", "eth0")
	p.PingOK(harness.Change, a.Name, b.ip6, "-I", a.ip6)

	echo := "icmp6,dl_src=%s,dl_dst=%s,ipv6_src=%s,ipv6_dst=%s,nw_ttl=64,icmpv6_type=128,icmpv6_code=0"
	na := "icmp6,dl_src=%s,dl_dst=%s,ipv6_src=%s,ipv6_dst=%s,nw_ttl=255,icmpv6_type=136,icmpv6_code=0,nd_target=%s,nd_tll=%s"
	ns := "icmp6,dl_src=%s,dl_dst=33:33:ff:00:00:01,ipv6_src=%s,ipv6_dst=ff02::1:ff00:1,nw_ttl=255,icmpv6_type=135,icmpv6_code=0,nd_target=%s,nd_sll=%s"
	p.ExpectTraces(a.Name, []harness.TraceCase{
		{What: "genuine ICMPv6 echo", Flow: fmt.Sprintf(echo, a.MAC, b.MAC, a.ip6, b.ip6), Drop: false},
		{What: "ICMPv6 echo from a spoofed IPv6 source", Flow: fmt.Sprintf(echo, a.MAC, b.MAC, spoof6, b.ip6), Drop: true},
		{What: "ICMPv6 echo from a spoofed MAC", Flow: fmt.Sprintf(echo, spoofMAC, b.MAC, a.ip6, b.ip6), Drop: true},
		{What: "genuine NA", Flow: fmt.Sprintf(na, a.MAC, b.MAC, a.ip6, b.ip6, a.ip6, a.MAC), Drop: false},
		{What: "NA claiming another address", Flow: fmt.Sprintf(na, a.MAC, b.MAC, a.ip6, b.ip6, spoof6, a.MAC), Drop: true},
		{What: "NA claiming another MAC", Flow: fmt.Sprintf(na, a.MAC, b.MAC, a.ip6, b.ip6, a.ip6, spoofMAC), Drop: true},
		{What: "NS answered by the responder", Flow: fmt.Sprintf(ns, a.MAC, a.ip6, b.ip6, a.MAC), Drop: false},
		{What: "NS with a spoofed source link-layer address", Flow: fmt.Sprintf(ns, a.MAC, a.ip6, b.ip6, spoofMAC), Drop: true},
	})
}
