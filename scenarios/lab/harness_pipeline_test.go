package lab_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios"
	"neutrino/scenarios/harness"
	"neutrino/scenarios/lab"
)

// This file is the harness of the lab's data-path tests: a lab brought up
// through the netns driver, and the helpers of package harness (shared
// with the driver-agnostic scenarios) under the names these tests use.

// pipeLab is one running lab of a data-path test.
type pipeLab struct {
	tb      testing.TB
	d       *lab.Driver
	admin   *gophercloud.ServiceClient // noauth admin, first server
	chassis []string                   // chassis names, in order
	env     *harness.Env               // the same lab through the shared scenario harness
}

// upPipelineLab brings a lab up for tb and takes it down when tb ends,
// whatever happened; it skips when the machine cannot run a lab (not
// root, no OVS) and, for a benchmark, when the lab does not come up.
func upPipelineLab(tb testing.TB, topo scenarios.Topology, agentArgs ...string) *pipeLab {
	tb.Helper()
	if skipWhy != nil {
		tb.Skipf("lab needs root and Open vSwitch: %v", skipWhy)
	}
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	// Not tb.TempDir(): OVS socket paths under it can exceed 108 bytes.
	tmp, err := os.MkdirTemp("", "lp")
	if err != nil {
		tb.Fatal(err)
	}
	prefix := fmt.Sprintf("lp%d-%d-", os.Getpid()%100000, labSeq.Add(1))
	dir := filepath.Join(tmp, "lab")
	d := lab.NewDriver(dir, prefix, binary, nil)
	d.Options.AgentArgs = agentArgs
	d.DownWhenDone(tb, tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := d.Up(ctx, topo)
	if err != nil {
		if _, bench := tb.(*testing.B); bench {
			tb.Skipf("lab cannot come up: %v", err)
		}
		tb.Fatalf("lab up: %v", err)
	}
	tb.Logf("lab up (%d servers, %d chassis) in %s", topo.Servers, topo.Chassis, time.Since(start).Round(time.Millisecond))
	env := harness.New(tb, d, l)
	p := &pipeLab{tb: tb, d: d, admin: env.Admin, chassis: env.Chassis, env: env}
	if len(p.chassis) < topo.Chassis {
		tb.Fatalf("lab: want %d chassis, got %v", topo.Chassis, p.chassis)
	}
	return p
}

// apiNetworkClient is a gophercloud Networking client of one API URL
// (harness.NetworkClient).
func apiNetworkClient(endpoint, project string) *gophercloud.ServiceClient {
	return harness.NetworkClient(endpoint, project)
}

// ctx is a context for one API call or command.
func (p *pipeLab) ctx() (context.Context, context.CancelFunc) { return p.env.Ctx() }

// e is the shared harness reporting to p's test.
func (p *pipeLab) e() *harness.Env { return p.env.Sub(p.tb) }

// network creates a network with one IPv4 subnet (harness.Env.Network).
func (p *pipeLab) network(nc *gophercloud.ServiceClient, name, cidr string) (netID, subnetID string) {
	p.tb.Helper()
	return p.e().Network(nc, name, cidr)
}

// port creates a port and returns it.
func (p *pipeLab) port(nc *gophercloud.ServiceClient, opts ports.CreateOptsBuilder) *ports.Port {
	p.tb.Helper()
	return p.e().Port(nc, opts)
}

// vm is a workload plugged for a Neutron port.
type vm = harness.VM

// plug plugs a VM for port on chassis (harness.Env.Plug).
func (p *pipeLab) plug(name, chassis string, port *ports.Port) vm {
	p.tb.Helper()
	return p.e().Plug(name, chassis, port)
}

// exec runs a command on a node or VM.
func (p *pipeLab) exec(node string, args ...string) (string, error) { return p.env.Exec(node, args...) }

// mustExec runs a command on a node or VM and fails tb if it fails.
func (p *pipeLab) mustExec(node string, args ...string) string {
	p.tb.Helper()
	return p.e().MustExec(node, args...)
}

// ping sends one echo request from a VM and waits a second for the reply.
func (p *pipeLab) ping(from, to string, extra ...string) (string, error) {
	return p.env.Ping(from, to, extra...)
}

// pingOK polls a ping from a VM until it is answered.
func (p *pipeLab) pingOK(timeout time.Duration, from, to string, extra ...string) string {
	p.tb.Helper()
	return p.e().PingOK(timeout, from, to, extra...)
}

// pingFails checks that pings from a VM get no answer (harness.Env.PingFails).
func (p *pipeLab) pingFails(timeout time.Duration, attempts int, from, to string, extra ...string) {
	p.tb.Helper()
	p.e().PingFails(timeout, attempts, from, to, extra...)
}

// tcpConnect opens (and closes) a TCP connection from a VM to ip:port,
// giving up after wait seconds.
func (p *pipeLab) tcpConnect(from, ip string, port, wait int) error {
	return p.env.TCPConnect(from, ip, port, wait)
}

// tcpOK polls a TCP connect from a VM until it succeeds.
func (p *pipeLab) tcpOK(timeout time.Duration, from, ip string, port int) {
	p.tb.Helper()
	p.e().TCPOK(timeout, from, ip, port)
}

// tcpDenied checks that TCP connects from a VM to ip:port fail, attempts
// times in a row.
func (p *pipeLab) tcpDenied(attempts int, from, ip string, port int) {
	p.tb.Helper()
	p.e().TCPDenied(attempts, from, ip, port)
}

// listen starts a TCP listener in a VM (harness.Env.Listen).
func (p *pipeLab) listen(vmName string, port int) *bgProc {
	p.tb.Helper()
	return &bgProc{p.e().Listen(vmName, port)}
}

// bgProc is a long-running command in a VM or node (harness.Proc).
type bgProc struct{ *harness.Proc }

func (b *bgProc) stop()          { b.Stop() }
func (b *bgProc) exited() bool   { return b.Exited() }
func (b *bgProc) stdout() string { return b.Stdout() }
func (b *bgProc) stderr() string { return b.Stderr() }

// start starts a long-running command on a node or VM.
func (p *pipeLab) start(node string, args ...string) *bgProc {
	p.tb.Helper()
	return &bgProc{p.e().Start(node, args...)}
}

// startOn starts a long-running command on a node, VM, outside or
// underlay of the lab st; the test's cleanup stops it.
func startOn(tb testing.TB, st *lab.State, node string, args ...string) *bgProc {
	tb.Helper()
	return &bgProc{harness.Start(tb, strings.Join(args, " ")+" on "+node, func(ctx context.Context) (*exec.Cmd, error) {
		return lab.Command(ctx, st, node, args...)
	})}
}

// capture is tcpdump running on a VM's eth0.
type capture struct {
	vm, filter string
	proc       *bgProc
}

// capture starts tcpdump on a VM's eth0 with a pcap filter and returns
// once it is capturing.
func (p *pipeLab) capture(vmName, filter string) *capture {
	p.tb.Helper()
	return p.captureOn(vmName, "eth0", filter)
}

// packets stops the capture and returns the packets it saw, one line each.
func (c *capture) packets() []string {
	return (&harness.Capture{Node: c.vm, Filter: c.filter, Proc: c.proc.Proc}).Packets()
}

// poll calls cond until it returns nil or timeout passes (harness.Poll).
func poll(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	harness.Poll(tb, timeout, what, cond)
}

// packetLoss is ping's summary line ("1 packets transmitted, 0 received").
func packetLoss(out string) string { return harness.PacketLoss(out) }

func lastLine(s string) string { return harness.LastLine(s) }

// matching returns the lines that contain every one of subs.
func matching(lines []string, subs ...string) []string { return harness.Matching(lines, subs...) }
