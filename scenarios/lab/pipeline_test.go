package lab_test

import (
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"

	"neutrino/scenarios/harness"
)

// The traffic tests of the OpenFlow pipeline (routing, security groups,
// port security, tenant isolation, flow removal) are scenarios now
// (scenarios/pipeline_test.go), run on every driver; these are the names
// the lab's own data-path tests use for the shared helpers.

// Timeouts: the first packet of a new network waits for flows to reach
// the chassis (and a binding to be committed) — firstPacket; a change to
// an existing path — change.
const (
	firstPacket = harness.FirstPacket
	change      = harness.Change
)

// pipelineTopo is a lab of three servers and three chassis
// (harness.PipelineTopology).
var pipelineTopo = harness.PipelineTopology

// tcpExchange sends a line over TCP from VM client to VM server (at ip)
// and checks the server received it (harness.Env.TCPExchange).
func (p *pipeLab) tcpExchange(server, ip, client string, port int) {
	p.tb.Helper()
	p.e().TCPExchange(server, ip, client, port)
}

// group creates a security group and returns its id.
func (p *pipeLab) group(nc *gophercloud.ServiceClient, name string) string {
	p.tb.Helper()
	return p.e().Group(nc, name)
}

// rule creates a security group rule (IPv4 unless o says) and returns its id.
func (p *pipeLab) rule(nc *gophercloud.ServiceClient, o rules.CreateOpts) string {
	p.tb.Helper()
	return p.e().Rule(nc, o)
}

// sub is p for a subtest: failures go to t.
func (p *pipeLab) sub(t *testing.T) *pipeLab {
	cp := *p
	cp.tb = t
	return &cp
}

// seenAt captures on a VM (pcap filter) while send runs and returns the
// packets captured (harness.Env.SeenAt).
func (p *pipeLab) seenAt(vmName, filter string, send func()) []string {
	p.tb.Helper()
	return p.e().SeenAt(vmName, filter, send)
}
