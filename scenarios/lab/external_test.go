package lab_test

import (
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"

	"neutrino/scenarios/harness"
)

// Helpers of the way out (provider networks, SNAT, floating IPs) for the
// lab's tests, against the lab's `outside` node (198.51.100.1 on physnet
// `external`); TestExternal itself is a scenario (scenarios/external_test.go).

// externalTopo is the lab of the way out (harness.ExternalTopology).
var externalTopo = harness.ExternalTopology

// Addresses of the lab's outside node.
const (
	outsideIP     = "198.51.100.1"
	outsideVLANIP = "203.0.113.1"
	externalVLAN  = 101
)

// extNet creates an external provider network with one subnet
// (harness.Env.ExtNet).
func (p *pipeLab) extNet(nc *gophercloud.ServiceClient, name, typ, physnet string, seg int, cidr, gw string) (string, string) {
	p.tb.Helper()
	return p.e().ExtNet(nc, name, typ, physnet, seg, cidr, gw)
}

// openGroup creates a security group admitting ICMP, TCP and UDP from anywhere.
func (p *pipeLab) openGroup(nc *gophercloud.ServiceClient, name string) string {
	p.tb.Helper()
	return p.e().OpenGroup(nc, name)
}

// gatewayRouter creates a router with its gateway on extNet and an
// interface on subnet (harness.Env.GatewayRouter).
func (p *pipeLab) gatewayRouter(nc *gophercloud.ServiceClient, name, extNet, subnet string) (*routers.Router, string) {
	p.tb.Helper()
	return p.e().GatewayRouter(nc, name, extNet, subnet)
}

// floatingIP creates a floating IP on extNet for a port and returns it.
func (p *pipeLab) floatingIP(nc *gophercloud.ServiceClient, extNet, portID string) *floatingips.FloatingIP {
	p.tb.Helper()
	return p.e().FloatingIP(nc, extNet, portID)
}

// activeGateway reads the router's active gateway chassis and list.
func (p *pipeLab) activeGateway(routerID string) (string, []string) {
	p.tb.Helper()
	return p.e().ActiveGateway(routerID)
}

// captureOn is capture on a given interface of a node.
func (p *pipeLab) captureOn(node, iface, filter string) *capture {
	p.tb.Helper()
	c := p.e().CaptureOn(node, iface, filter)
	return &capture{vm: node, filter: filter, proc: &bgProc{c.Proc}}
}

// seenFrom waits (up to 5 s) until the capture printed a packet from
// want, stops it and returns every source address it saw, with the raw
// lines (harness.Capture.SeenFrom).
func (c *capture) seenFrom(want string) ([]string, string) {
	return (&harness.Capture{Node: c.vm, Filter: c.filter, Proc: c.proc.Proc}).SeenFrom(want)
}

// sources returns the IPv4 source addresses of "IP a > b" capture lines.
func sources(lines []string) []string { return harness.Sources(lines) }
