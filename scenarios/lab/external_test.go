package lab_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios"
)

// Tests of the way out (issue 6): provider networks, SNAT, floating IPs
// and gateway failover, against the lab's `outside` node (198.51.100.1 on
// physnet `external`, reachable only through the chassis that map it).

// externalTopo: chassis-1 maps the external physnets (it does its VMs'
// floating IPs itself), chassis-2 does not (its VMs' floating IPs are
// served by the router's gateway chassis); two gateways.
var externalTopo = scenarios.Topology{Servers: 3, Chassis: 2, Gateways: 2, ExternalChassis: 1}

// Addresses of the lab's outside node.
const (
	outsideIP     = "198.51.100.1"
	outsideVLANIP = "203.0.113.1"
	externalVLAN  = 101
)

// extNet creates an external provider network with one subnet (no DHCP,
// gateway = the outside node) and returns their ids.
func (p *pipeLab) extNet(nc *gophercloud.ServiceClient, name, typ, physnet string, seg int, cidr, gw string) (string, string) {
	p.tb.Helper()
	ctx, cancel := p.ctx()
	defer cancel()
	body := map[string]any{"name": name, "router:external": true,
		"provider:network_type": typ, "provider:physical_network": physnet}
	if seg != 0 {
		body["provider:segmentation_id"] = seg
	}
	res := p.mustCall(http.StatusCreated, http.MethodPost, p.d.Endpoint()+"/v2.0/networks", nil, map[string]any{"network": body})
	var created struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	if err := json.Unmarshal(res.Body, &created); err != nil {
		p.tb.Fatalf("create external network %s: %v", name, err)
	}
	n := created.Network
	no := false
	s, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: cidr, IPVersion: gophercloud.IPv4,
		GatewayIP: &gw, EnableDHCP: &no, Name: name + "-subnet"}).Extract()
	if err != nil {
		p.tb.Fatalf("create subnet %s on %s: %v", cidr, name, err)
	}
	return n.ID, s.ID
}

// openGroup creates a security group admitting ICMP and TCP from anywhere.
func (p *pipeLab) openGroup(nc *gophercloud.ServiceClient, name string) string {
	sg := p.group(nc, name)
	for _, proto := range []rules.RuleProtocol{rules.ProtocolICMP, rules.ProtocolTCP, rules.ProtocolUDP} {
		p.rule(nc, rules.CreateOpts{SecGroupID: sg, Direction: rules.DirIngress, EtherType: rules.EtherType4, Protocol: proto})
	}
	return sg
}

// gatewayRouter creates a router with its gateway on extNet (SNAT on) and
// an interface on subnet, and returns it and its gateway address.
func (p *pipeLab) gatewayRouter(nc *gophercloud.ServiceClient, name, extNet, subnet string) (*routers.Router, string) {
	p.tb.Helper()
	ctx, cancel := p.ctx()
	defer cancel()
	yes := true
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: name,
		GatewayInfo: &routers.GatewayInfo{NetworkID: extNet, EnableSNAT: &yes}}).Extract()
	if err != nil {
		p.tb.Fatalf("create router %s: %v", name, err)
	}
	if len(r.GatewayInfo.ExternalFixedIPs) == 0 {
		p.tb.Fatalf("router %s: no external fixed IP in %+v", name, r.GatewayInfo)
	}
	if _, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: subnet}).Extract(); err != nil {
		p.tb.Fatalf("add_router_interface %s: %v", subnet, err)
	}
	return r, r.GatewayInfo.ExternalFixedIPs[0].IPAddress
}

// floatingIP creates a floating IP on extNet for a port and returns it.
func (p *pipeLab) floatingIP(nc *gophercloud.ServiceClient, extNet, portID string) *floatingips.FloatingIP {
	p.tb.Helper()
	ctx, cancel := p.ctx()
	defer cancel()
	f, err := floatingips.Create(ctx, nc, floatingips.CreateOpts{FloatingNetworkID: extNet, PortID: portID}).Extract()
	if err != nil {
		p.tb.Fatalf("create floating IP for %s: %v", portID, err)
	}
	p.tb.Logf("floating IP %s -> %s (port %s)", f.FloatingIP, f.FixedIP, portID)
	return f
}

// activeGateway reads the router's active gateway chassis from its API
// body (extension attribute neutrino:active_gateway_chassis).
func (p *pipeLab) activeGateway(routerID string) (string, []string) {
	p.tb.Helper()
	res := p.mustCall(http.StatusOK, http.MethodGet, p.d.Endpoint()+"/v2.0/routers/"+routerID, nil, nil)
	var body struct {
		Router struct {
			Active string   `json:"neutrino:active_gateway_chassis"`
			List   []string `json:"neutrino:gateway_chassis"`
		} `json:"router"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		p.tb.Fatalf("router %s: %v", routerID, err)
	}
	return body.Router.Active, body.Router.List
}

// captureOn is capture on a given interface of a node.
func (p *pipeLab) captureOn(node, iface, filter string) *capture {
	p.tb.Helper()
	args := append([]string{"tcpdump", "-i", iface, "-nn", "-e", "-l", "-Z", "root"}, strings.Fields(filter)...)
	c := &capture{vm: node, filter: filter, proc: p.start(node, args...)}
	poll(p.tb, 10*time.Second, "tcpdump on "+node+" capturing", func() error {
		if strings.Contains(c.proc.stderr(), "listening on") {
			return nil
		}
		if c.proc.exited() {
			return fmt.Errorf("tcpdump exited: %s", c.proc.stderr())
		}
		return fmt.Errorf("not yet")
	})
	return c
}

// seenFrom waits (up to 5 s: tcpdump prints asynchronously) until the
// capture printed a packet from want, stops it and returns every source
// address it saw, with the raw lines.
func (c *capture) seenFrom(want string) ([]string, string) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !slices.Contains(sources(strings.Split(c.proc.stdout(), "\n")), want) {
		time.Sleep(20 * time.Millisecond) // polling tcpdump's output, bounded by the deadline
	}
	lines := c.packets()
	return sources(lines), strings.Join(lines, "\n")
}

// sources returns the IPv4 source addresses of "IP a > b" capture lines.
func sources(lines []string) []string {
	re := regexp.MustCompile(`(?:IP |: )(\d+\.\d+\.\d+\.\d+)(\.\d+)? > \d+\.\d+\.\d+\.\d+`)
	var out []string
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestExternal: SNAT, floating IPs (central and distributed), floating IP
// reassociation within one realization wait, a VLAN external network.
func TestExternal(t *testing.T) {
	p := upPipelineLab(t, externalTopo)
	nc := p.admin
	ext, _ := p.extNet(nc, "public", "flat", "external", 0, "198.51.100.0/24", outsideIP)
	tenant, tsub := p.network(nc, "tenant", "10.10.0.0/24")
	r, gwIP := p.gatewayRouter(nc, "edge", ext, tsub)
	sg := p.openGroup(nc, "open")
	active, list := p.activeGateway(r.ID)
	t.Logf("router %s: gateway %s on %s (list %v)", r.ID, gwIP, active, list)
	if active == "" || len(list) < 2 || list[0] != active {
		t.Fatalf("router gateway chassis: active %q, list %v: want the first of two gateways", active, list)
	}
	withSG := func(name, netID string) ports.CreateOpts {
		return ports.CreateOpts{NetworkID: netID, Name: name, SecurityGroups: &[]string{sg}}
	}
	// a: no floating IP (SNAT); b: central floating IP (chassis-2 does not
	// map external); c: distributed floating IP (chassis-1 does).
	a := p.plug("xa", p.chassis[1], p.port(nc, withSG("xa", tenant)))
	bPort := p.port(nc, withSG("xb", tenant))
	b := p.plug("xb", p.chassis[1], bPort)
	cPort := p.port(nc, withSG("xc", tenant))
	c := p.plug("xc", p.chassis[0], cPort)
	fb := p.floatingIP(nc, ext, bPort.ID)
	fc := p.floatingIP(nc, ext, cPort.ID)

	t.Run("snat", func(t *testing.T) {
		cp := p.captureOn("outside", "eth0", "icmp")
		out := p.pingOK(firstPacket, a.Name, outsideIP)
		got, raw := cp.seenFrom(gwIP)
		if !slices.Contains(got, gwIP) || slices.Contains(got, a.IP) {
			t.Fatalf("outside saw ICMP from %v: want the router's gateway address %s, never %s\nping: %s\n%s", got, gwIP, a.IP, out, raw)
		}
	})
	for _, tc := range []struct {
		name string
		vm   vm
		fip  *floatingips.FloatingIP
	}{{"fip-central", b, fb}, {"fip-distributed", c, fc}} {
		t.Run(tc.name, func(t *testing.T) {
			// Inbound: the VM sees the outside host's address.
			cp := p.capture(tc.vm.Name, "icmp")
			out := p.pingOK(firstPacket, "outside", tc.fip.FloatingIP)
			if !strings.Contains(out, "from "+tc.fip.FloatingIP) {
				t.Errorf("outside's ping of %s answered by something else:\n%s", tc.fip.FloatingIP, out)
			}
			if got, raw := cp.seenFrom(outsideIP); !slices.Contains(got, outsideIP) {
				t.Errorf("%s saw ICMP from %v, want %s\n%s", tc.vm.Name, got, outsideIP, raw)
			}
			// Outbound: the outside host sees the floating IP.
			cp = p.captureOn("outside", "eth0", "icmp")
			p.pingOK(firstPacket, tc.vm.Name, outsideIP)
			if got, raw := cp.seenFrom(tc.fip.FloatingIP); !slices.Contains(got, tc.fip.FloatingIP) || slices.Contains(got, gwIP) || slices.Contains(got, tc.vm.IP) {
				t.Errorf("outside saw ICMP from %v: want %s's floating IP %s only\n%s", got, tc.vm.Name, tc.fip.FloatingIP, raw)
			}
			p.tcpExchange(tc.vm.Name, tc.fip.FloatingIP, "outside", 7001)
		})
	}
	t.Run("distributed-on-chassis", func(t *testing.T) {
		// c's floating IP is NATed on chassis-1, not on a gateway.
		if fs := p.flowsMention(p.chassis[0], fc.FloatingIP, "distributed floating IP"); len(fs) == 0 {
			t.Fatalf("no flow of %s on %s", fc.FloatingIP, p.chassis[0])
		}
	})
	t.Run("reassociate", func(t *testing.T) {
		// Move b's floating IP to a; once the write returns with
		// ?wait=realized, the first ping through it reaches a.
		p.pingOK(firstPacket, "outside", fb.FloatingIP)
		cp := p.capture(a.Name, "icmp")
		p.mustCall(http.StatusOK, http.MethodPut, p.d.Endpoint()+"/v2.0/floatingips/"+fb.ID+"?wait=realized", nil,
			map[string]any{"floatingip": map[string]any{"port_id": a.PortID}})
		if out, err := p.ping("outside", fb.FloatingIP); err != nil {
			t.Fatalf("first ping of %s after reassociation (realized): %v\n%s", fb.FloatingIP, err, out)
		}
		if got, raw := cp.seenFrom(outsideIP); !slices.Contains(got, outsideIP) {
			t.Fatalf("%s (new owner of %s) saw ICMP from %v, want %s\n%s", a.Name, fb.FloatingIP, got, outsideIP, raw)
		}
	})
	t.Run("vlan", func(t *testing.T) {
		vid := strconv.Itoa(externalVLAN)
		// The kernel here cannot tag: outside's own OVS puts an access
		// port on VLAN vid (lab.OutsideVLAN).
		ctx, cancel := p.ctx()
		defer cancel()
		if err := p.d.OutsideVLAN(ctx, externalVLAN, outsideVLANIP+"/24"); err != nil {
			t.Fatal(err)
		}
		iface := "vlan" + vid
		extv, _ := p.extNet(nc, "public-vlan", "vlan", "external-vlan", externalVLAN, "203.0.113.0/24", outsideVLANIP)
		tv, tvsub := p.network(nc, "tenant-v", "10.20.0.0/24")
		_, gwv := p.gatewayRouter(nc, "edge-v", extv, tvsub)
		dPort := p.port(nc, withSG("xd", tv))
		d := p.plug("xd", p.chassis[1], dPort)
		cp := p.captureOn("outside", iface, "icmp")
		p.pingOK(firstPacket, d.Name, outsideVLANIP)
		if got, raw := cp.seenFrom(gwv); !slices.Contains(got, gwv) {
			t.Errorf("outside (VLAN %s) saw ICMP from %v, want the router's gateway %s\n%s", vid, got, gwv, raw)
		}
		fd := p.floatingIP(nc, extv, dPort.ID)
		out := p.pingOK(firstPacket, "outside", fd.FloatingIP)
		if !strings.Contains(out, "from "+fd.FloatingIP) {
			t.Errorf("outside's ping of %s (VLAN) answered by something else:\n%s", fd.FloatingIP, out)
		}
	})
}
