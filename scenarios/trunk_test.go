package scenarios_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/trunks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios/harness"
)

// TestTrunkVLANSubport plugs a VM on chassis-1 with a trunk's parent port
// and checks the trunk's data path with 802.1Q-tagged frames made in the
// VM by `neutrino lab vlan-ping` (the lab has no 8021q module for a VLAN
// interface): on the subport's VLAN, the subport's address resolves and
// pings a VM of the subport's network on chassis-2, and answers that VM's
// pings; untagged traffic still reaches the parent's network; a VLAN with
// no subport is dropped; the subport is ACTIVE with its parent and DOWN
// again once removed from the trunk.
func TestTrunkVLANSubport(t *testing.T) {
	e := sharedUp(t, pipelineTopo)
	requireAPI(t, e.D.Endpoint(), "trunks")
	ctx := context.Background()
	nc := e.Admin
	a, b := e.Chassis[0], e.Chassis[1]

	netFor := func(name, cidr string) string {
		n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: name}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: cidr, IPVersion: gophercloud.IPv4}).Extract(); err != nil {
			t.Fatal(err)
		}
		return n.ID
	}
	netP, netS := netFor("trunk-parent", "192.168.70.0/24"), netFor("trunk-sub", "192.168.71.0/24")
	port := func(net, name, mac string) *ports.Port {
		p, err := ports.Create(ctx, nc, ports.CreateOpts{NetworkID: net, Name: name, MACAddress: mac}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	parent := port(netP, "trunk-vm", "")
	// The subport has the parent's MAC, as Neutron lets subports inherit it.
	sub := port(netS, "trunk-sub", parent.MACAddress)
	peerP, peerS := port(netP, "trunk-peer-p", ""), port(netS, "trunk-peer-s", "")
	const vlanX, vlanY = "101", "102"
	tr, err := trunks.Create(ctx, nc, trunks.CreateOpts{PortID: parent.ID, Name: "trunk",
		Subports: []trunks.Subport{{PortID: sub.ID, SegmentationType: "vlan", SegmentationID: 101}}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	vm := e.Plug("trunk-vm", a, parent)
	e.Plug("trunk-peer-p", b, peerP)
	e.Plug("trunk-peer-s", b, peerS)
	subIP, peerSIP := sub.FixedIPs[0].IPAddress, peerS.FixedIPs[0].IPAddress
	vlanPing := func(vlan, mac, ip, target string) (string, error) {
		return e.Exec(vm.Name, e.Lab.Binary, "lab", "vlan-ping", "--vlan", vlan, "--mac", mac, "--ip", ip, "--timeout", "1s", target)
	}

	// Untagged: the parent's own network, as for any port.
	e.PingOK(harness.FirstPacket, vm.Name, peerP.FixedIPs[0].IPAddress)
	// Tagged with the subport's VLAN: the subport's network on the other
	// chassis; the replies come back tagged.
	harness.Poll(t, harness.FirstPacket, "tagged ping from the subport answered", func() error {
		out, err := vlanPing(vlanX, sub.MACAddress, subIP, peerSIP)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "reply from "+peerSIP+" vlan "+vlanX) {
			return &unexpected{out}
		}
		return nil
	})
	// The subport is bound to the parent's chassis and ACTIVE with it.
	harness.Poll(t, harness.Change, "subport ACTIVE on "+a, func() error {
		p, err := ports.Get(ctx, nc, sub.ID).Extract()
		if err != nil {
			return err
		}
		if p.Status != "ACTIVE" {
			return &unexpected{p.Status}
		}
		return nil
	})
	if got, err := trunks.Get(ctx, nc, tr.ID).Extract(); err != nil || got.Status != "ACTIVE" {
		t.Fatalf("trunk status: %+v %v", got, err)
	}
	// The peer's pings reach the subport tagged and its answers come back.
	ans := e.Start(vm.Name, e.Lab.Binary, "lab", "vlan-ping", "--answer", "--vlan", vlanX, "--mac", sub.MACAddress, "--ip", subIP, "--timeout", "20s")
	// If no answer comes: where the peer's echo request went. (It failed
	// three times with the answerer silent: a signal interrupting its wait
	// ended it early, TestTaggedRecvSurvivesSignals; it now says when it
	// starts and when its deadline ends it.)
	peerPing := true
	t.Cleanup(func() {
		if !t.Failed() || !peerPing {
			return
		}
		neigh, _ := e.Exec("trunk-peer-s", "ip", "neigh")
		t.Logf("trunk-peer-s neighbours:\n%s", neigh)
		_, trace := e.TraceVM("trunk-peer-s", fmt.Sprintf("icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,icmp_type=8,icmp_code=0",
			peerS.MACAddress, sub.MACAddress, peerSIP, subIP))
		t.Logf("ofproto/trace on %s of trunk-peer-s's echo request:\n%s", b, trace)
		flows, _ := e.Exec(a, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int")
		var hit []string
		for _, l := range strings.Split(flows, "\n") {
			if !strings.Contains(l, "n_packets=0,") {
				hit = append(hit, l)
			}
		}
		t.Logf("%s's flows that met packets:\n%s", a, strings.Join(hit, "\n"))
	})
	harness.Poll(t, harness.Change, "ping trunk-peer-s -> "+subIP+" answered by the VM on VLAN "+vlanX, func() error {
		if out, err := e.Ping("trunk-peer-s", subIP); err != nil {
			// What the answerer saw so far says which way was lost.
			return fmt.Errorf("%w (%s); answerer: %q %q", err, harness.PacketLoss(out), ans.Stdout(), ans.Stderr())
		}
		return nil
	})
	peerPing = false
	ans.Stop()
	if !strings.Contains(ans.Stdout(), "answered "+peerS.FixedIPs[0].IPAddress) {
		t.Fatalf("answerer: %q %q", ans.Stdout(), ans.Stderr())
	}
	// Another VLAN has no subport: dropped, even for the parent's own
	// addresses (without the drop it would reach the parent's network).
	// Not even ARP is answered (a tagged frame the parent's own pipeline
	// took would get the ARP responder's reply, tag and all).
	if out, err := vlanPing(vlanY, parent.MACAddress, parent.FixedIPs[0].IPAddress, peerP.FixedIPs[0].IPAddress); err == nil || strings.Contains(out, "is-at") {
		t.Fatalf("VLAN %s without a subport was answered: %s", vlanY, out)
	}
	if out, err := vlanPing(vlanY, sub.MACAddress, subIP, peerSIP); err == nil || strings.Contains(out, "is-at") {
		t.Fatalf("VLAN %s reached the subport's network: %s", vlanY, out)
	}
	// The switch says why: the parent's classify drops other tags.
	arpY := fmt.Sprintf("arp,dl_vlan=%s,dl_src=%s,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_sha=%s,arp_spa=%s,arp_tpa=%s",
		vlanY, parent.MACAddress, parent.MACAddress, parent.FixedIPs[0].IPAddress, peerP.FixedIPs[0].IPAddress)
	if actions, full := e.TraceVM(vm.Name, arpY); !harness.Dropped(actions) {
		t.Fatalf("ofproto/trace of an ARP on VLAN %s from the parent: datapath actions %q, want drop; trace:\n%s", vlanY, actions, full)
	}

	// Removed from the trunk: no more tagged path, the port goes DOWN.
	if _, err := trunks.RemoveSubports(ctx, nc, tr.ID, trunks.RemoveSubportsOpts{Subports: []trunks.RemoveSubport{{PortID: sub.ID}}}).Extract(); err != nil {
		t.Fatal(err)
	}
	harness.Poll(t, harness.Change, "removed subport DOWN", func() error {
		p, err := ports.Get(ctx, nc, sub.ID).Extract()
		if err != nil {
			return err
		}
		if p.Status != "DOWN" {
			return &unexpected{p.Status}
		}
		return nil
	})
	if out, err := vlanPing(vlanX, sub.MACAddress, subIP, peerSIP); err == nil || strings.Contains(out, "is-at") {
		t.Fatalf("a removed subport still reaches its network: %s", out)
	}
	e.PingOK(harness.Change, vm.Name, peerP.FixedIPs[0].IPAddress)
}

// unexpected is a poll condition's error: what was seen instead.
type unexpected struct{ got string }

func (u *unexpected) Error() string { return "got " + strings.TrimSpace(u.got) }
