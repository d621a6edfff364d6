package scenarios_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios/harness"
)

// Scenarios of the way out (issue 6): provider networks, SNAT, floating
// IPs and gateway failover, against the lab's outside node (the upstream
// router on the external physnet, reachable only through the chassis
// that map it; Lab.External names it and its addresses).

// externalTopo is the lab of the way out (harness.ExternalTopology).
var externalTopo = harness.ExternalTopology

// The VLAN of the external VLAN network and the outside node's address on
// it (Driver.OutsideVLAN).
const (
	externalVLAN  = 101
	outsideVLANIP = "203.0.113.1"
)

// TestExternal: SNAT, floating IPs (central and distributed), floating IP
// reassociation within one realization wait, a VLAN external network.
func TestExternal(t *testing.T) {
	p := up(t, externalTopo)
	nc := p.Admin
	x := p.Lab.External
	if x == nil {
		t.Fatal("the lab has no external side")
	}
	outside, outsideIP := x.Node, x.Gateway
	ext, _ := p.ExtNet(nc, "public", "flat", x.Physnet, 0, x.CIDR, outsideIP)
	tenant, tsub := p.Network(nc, "tenant", "10.10.0.0/24")
	r, gwIP := p.GatewayRouter(nc, "edge", ext, tsub)
	sg := p.OpenGroup(nc, "open")
	active, list := p.ActiveGateway(r.ID)
	t.Logf("router %s: gateway %s on %s (list %v)", r.ID, gwIP, active, list)
	if active == "" || len(list) < 2 || list[0] != active {
		t.Fatalf("router gateway chassis: active %q, list %v: want the first of two gateways", active, list)
	}
	withSG := func(name, netID string) ports.CreateOpts {
		return ports.CreateOpts{NetworkID: netID, Name: name, SecurityGroups: &[]string{sg}}
	}
	// a: no floating IP (SNAT); b: central floating IP (chassis-2 does not
	// map external); c: distributed floating IP (chassis-1 does).
	a := p.Plug("xa", p.Chassis[1], p.Port(nc, withSG("xa", tenant)))
	bPort := p.Port(nc, withSG("xb", tenant))
	b := p.Plug("xb", p.Chassis[1], bPort)
	cPort := p.Port(nc, withSG("xc", tenant))
	c := p.Plug("xc", p.Chassis[0], cPort)
	fb := p.FloatingIP(nc, ext, bPort.ID)
	fc := p.FloatingIP(nc, ext, cPort.ID)

	t.Run("snat", func(t *testing.T) {
		cp := p.CaptureOn(outside, x.NIC, "icmp")
		out := p.PingOK(harness.FirstPacket, a.Name, outsideIP)
		got, raw := cp.SeenFrom(gwIP)
		if !slices.Contains(got, gwIP) || slices.Contains(got, a.IP) {
			t.Fatalf("outside saw ICMP from %v: want the router's gateway address %s, never %s\nping: %s\n%s", got, gwIP, a.IP, out, raw)
		}
	})
	for _, tc := range []struct {
		name string
		vm   harness.VM
		fip  *floatingips.FloatingIP
	}{{"fip-central", b, fb}, {"fip-distributed", c, fc}} {
		t.Run(tc.name, func(t *testing.T) {
			// Inbound: the VM sees the outside host's address.
			cp := p.Capture(tc.vm.Name, "icmp")
			out := p.PingOK(harness.FirstPacket, outside, tc.fip.FloatingIP)
			if !strings.Contains(out, "from "+tc.fip.FloatingIP) {
				t.Errorf("outside's ping of %s answered by something else:\n%s", tc.fip.FloatingIP, out)
			}
			if got, raw := cp.SeenFrom(outsideIP); !slices.Contains(got, outsideIP) {
				t.Errorf("%s saw ICMP from %v, want %s\n%s", tc.vm.Name, got, outsideIP, raw)
			}
			// Outbound: the outside host sees the floating IP.
			cp = p.CaptureOn(outside, x.NIC, "icmp")
			p.PingOK(harness.FirstPacket, tc.vm.Name, outsideIP)
			if got, raw := cp.SeenFrom(tc.fip.FloatingIP); !slices.Contains(got, tc.fip.FloatingIP) || slices.Contains(got, gwIP) || slices.Contains(got, tc.vm.IP) {
				t.Errorf("outside saw ICMP from %v: want %s's floating IP %s only\n%s", got, tc.vm.Name, tc.fip.FloatingIP, raw)
			}
			p.TCPExchange(tc.vm.Name, tc.fip.FloatingIP, outside, 7001)
		})
	}
	t.Run("distributed-on-chassis", func(t *testing.T) {
		// c's floating IP is NATed on chassis-1, not on a gateway.
		if fs := p.FlowsMention(p.Chassis[0], fc.FloatingIP, "distributed floating IP"); len(fs) == 0 {
			t.Fatalf("no flow of %s on %s", fc.FloatingIP, p.Chassis[0])
		}
	})
	t.Run("reassociate", func(t *testing.T) {
		// Move b's floating IP to a; once the write returns with
		// ?wait=realized, the first ping through it reaches a.
		p.PingOK(harness.FirstPacket, outside, fb.FloatingIP)
		cp := p.Capture(a.Name, "icmp")
		p.MustCall(http.StatusOK, http.MethodPut, p.D.Endpoint()+"/v2.0/floatingips/"+fb.ID+"?wait=realized", nil,
			map[string]any{"floatingip": map[string]any{"port_id": a.PortID}})
		if out, err := p.Ping(outside, fb.FloatingIP); err != nil {
			t.Fatalf("first ping of %s after reassociation (realized): %v\n%s", fb.FloatingIP, err, out)
		}
		if got, raw := cp.SeenFrom(outsideIP); !slices.Contains(got, outsideIP) {
			t.Fatalf("%s (new owner of %s) saw ICMP from %v, want %s\n%s", a.Name, fb.FloatingIP, got, outsideIP, raw)
		}
	})
	t.Run("vlan", func(t *testing.T) {
		vid := strconv.Itoa(externalVLAN)
		ctx, cancel := p.Ctx()
		defer cancel()
		if err := p.D.OutsideVLAN(ctx, externalVLAN, outsideVLANIP+"/24"); err != nil {
			t.Fatal(err)
		}
		extv, _ := p.ExtNet(nc, "public-vlan", "vlan", x.VLANPhysnet, externalVLAN, "203.0.113.0/24", outsideVLANIP)
		tv, tvsub := p.Network(nc, "tenant-v", "10.20.0.0/24")
		_, gwv := p.GatewayRouter(nc, "edge-v", extv, tvsub)
		dPort := p.Port(nc, withSG("xd", tv))
		d := p.Plug("xd", p.Chassis[1], dPort)
		// Every interface: how the driver gives the outside node its VLAN
		// address is its business.
		cp := p.CaptureOn(outside, "any", "icmp")
		p.PingOK(harness.FirstPacket, d.Name, outsideVLANIP)
		if got, raw := cp.SeenFrom(gwv); !slices.Contains(got, gwv) {
			t.Errorf("outside (VLAN %s) saw ICMP from %v, want the router's gateway %s\n%s", vid, got, gwv, raw)
		}
		fd := p.FloatingIP(nc, extv, dPort.ID)
		out := p.PingOK(harness.FirstPacket, outside, fd.FloatingIP)
		if !strings.Contains(out, "from "+fd.FloatingIP) {
			t.Errorf("outside's ping of %s (VLAN) answered by something else:\n%s", fd.FloatingIP, out)
		}
	})
}
