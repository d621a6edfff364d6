package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios"
	"neutrino/scenarios/lab"
)

// This file is the harness of the data-path tests (pipeline_test.go,
// realized_test.go): a lab brought up through the netns driver, API
// clients, VMs, and traffic helpers that fail the test with a message
// saying what did not happen.

// pipeLab is one running lab of a data-path test.
type pipeLab struct {
	tb      testing.TB
	d       *lab.Driver
	admin   *gophercloud.ServiceClient // noauth admin, first server
	chassis []string                   // chassis names, in order
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
	tb.Cleanup(func() {
		if tb.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "*", "agent.log"))
			for _, l := range logs {
				tb.Logf("%s (tail): %s", l, tailFile(l, 25))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Down(ctx); err != nil && !errors.Is(err, lab.ErrNoLab) {
			tb.Errorf("lab down: %v", err)
		}
		if ents, err := os.ReadDir("/run/netns"); err == nil {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), prefix) {
					tb.Errorf("lab down left namespace %s", e.Name())
				}
			}
		}
		os.RemoveAll(tmp)
	})
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
	p := &pipeLab{tb: tb, d: d, admin: apiNetworkClient(d.Endpoint(), "")}
	for _, n := range l.ByKind(scenarios.KindChassis) {
		p.chassis = append(p.chassis, n.Name)
	}
	if len(p.chassis) < topo.Chassis {
		tb.Fatalf("lab: want %d chassis, got %v", topo.Chassis, p.chassis)
	}
	return p
}

func tailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return "\n" + strings.Join(ls, "\n")
}

// apiNetworkClient is a gophercloud Networking client of one API URL.
// With project empty it is noauth admin; otherwise it acts as a member of
// that project (X-Project-Id, X-Roles), as Neutron's keystonecontext reads
// a request.
func apiNetworkClient(endpoint, project string) *gophercloud.ServiceClient {
	c := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 60 * time.Second}},
		Endpoint:       endpoint + "/",
		ResourceBase:   endpoint + "/v2.0/",
		Type:           "network",
	}
	if project != "" {
		c.MoreHeaders = map[string]string{"X-Project-Id": project, "X-User-Id": "user-" + project, "X-Roles": "member"}
	}
	return c
}

// ctx is a context for one API call or command.
func (p *pipeLab) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// network creates a network (default type) with one IPv4 subnet and
// returns their ids; the subnet's gateway is the first address.
func (p *pipeLab) network(nc *gophercloud.ServiceClient, name, cidr string) (netID, subnetID string) {
	p.tb.Helper()
	ctx, cancel := p.ctx()
	defer cancel()
	n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: name}).Extract()
	if err != nil {
		p.tb.Fatalf("create network %s: %v", name, err)
	}
	s, err := subnets.Create(ctx, nc, subnets.CreateOpts{
		NetworkID: n.ID, CIDR: cidr, IPVersion: gophercloud.IPv4, Name: name,
	}).Extract()
	if err != nil {
		p.tb.Fatalf("create subnet %s on %s: %v", cidr, name, err)
	}
	return n.ID, s.ID
}

// port creates a port and returns it.
func (p *pipeLab) port(nc *gophercloud.ServiceClient, opts ports.CreateOptsBuilder) *ports.Port {
	p.tb.Helper()
	ctx, cancel := p.ctx()
	defer cancel()
	port, err := ports.Create(ctx, nc, opts).Extract()
	if err != nil {
		p.tb.Fatalf("create port: %v", err)
	}
	if len(port.FixedIPs) == 0 {
		p.tb.Fatalf("port %s (%s) has no fixed IP", port.ID, port.Name)
	}
	return port
}

// vm is a workload plugged for a Neutron port.
type vm struct {
	Name, Chassis, PortID, IP, MAC string
}

// plug plugs a VM for port on chassis (AddVM: MAC, address, default
// route via the subnet's gateway, MTU, TX offload off).
func (p *pipeLab) plug(name, chassis string, port *ports.Port) vm {
	p.tb.Helper()
	ctx, cancel := p.ctx()
	defer cancel()
	if err := p.d.AddVM(ctx, name, port.ID, chassis); err != nil {
		p.tb.Fatalf("plug VM %s (port %s) on %s: %v", name, port.ID, chassis, err)
	}
	v := vm{Name: name, Chassis: chassis, PortID: port.ID, IP: port.FixedIPs[0].IPAddress, MAC: port.MACAddress}
	p.tb.Logf("VM %s on %s: port %s, %s, %s", name, chassis, port.ID, v.IP, v.MAC)
	return v
}

// exec runs a command on a node or VM.
func (p *pipeLab) exec(node string, args ...string) (string, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	return p.d.Exec(ctx, node, args...)
}

// mustExec runs a command on a node or VM and fails tb if it fails.
func (p *pipeLab) mustExec(node string, args ...string) string {
	p.tb.Helper()
	out, err := p.exec(node, args...)
	if err != nil {
		p.tb.Fatalf("%v", err)
	}
	return out
}

// ping sends one echo request from a VM and waits a second for the reply.
func (p *pipeLab) ping(from, to string, extra ...string) (string, error) {
	return p.exec(from, append(append([]string{"ping", "-n", "-c1", "-W1"}, extra...), to)...)
}

// pingOK polls a ping from a VM until it is answered: flows reach the
// chassis asynchronously. It returns the successful ping's output.
func (p *pipeLab) pingOK(timeout time.Duration, from, to string, extra ...string) string {
	p.tb.Helper()
	var out string
	what := strings.TrimSpace(fmt.Sprintf("ping %s -> %s %s", from, to, strings.Join(extra, " "))) + " answered"
	poll(p.tb, timeout, what, func() error {
		var err error
		if out, err = p.ping(from, to, extra...); err != nil {
			return fmt.Errorf("%w (%s)", err, packetLoss(out))
		}
		return nil
	})
	return out
}

// pingFails checks that pings from a VM get no answer, attempts times in a
// row (each waits a second), after a first failure within timeout: a
// denial may take a moment to be realized, and must then hold.
func (p *pipeLab) pingFails(timeout time.Duration, attempts int, from, to string, extra ...string) {
	p.tb.Helper()
	what := strings.TrimSpace(fmt.Sprintf("ping %s -> %s %s", from, to, strings.Join(extra, " "))) + " denied"
	poll(p.tb, timeout, what, func() error {
		if out, err := p.ping(from, to, extra...); err == nil {
			return fmt.Errorf("answered: %s", lastLine(out))
		}
		return nil
	})
	for i := 0; i < attempts; i++ {
		if out, err := p.ping(from, to, extra...); err == nil {
			p.tb.Fatalf("%s: answered again (attempt %d after it was denied): %s", what, i+1, lastLine(out))
		}
	}
}

// tcpConnect opens (and closes) a TCP connection from a VM to ip:port,
// giving up after wait seconds.
func (p *pipeLab) tcpConnect(from, ip string, port, wait int) error {
	_, err := p.exec(from, "nc", "-z", "-v", "-w", fmt.Sprint(wait), ip, fmt.Sprint(port))
	return err
}

// tcpOK polls a TCP connect from a VM until it succeeds.
func (p *pipeLab) tcpOK(timeout time.Duration, from, ip string, port int) {
	p.tb.Helper()
	poll(p.tb, timeout, fmt.Sprintf("tcp %s -> %s:%d connects", from, ip, port), func() error {
		return p.tcpConnect(from, ip, port, 2)
	})
}

// tcpDenied checks that TCP connects from a VM to ip:port fail, attempts
// times in a row (each gives up after 2 s).
func (p *pipeLab) tcpDenied(attempts int, from, ip string, port int) {
	p.tb.Helper()
	for i := 0; i < attempts; i++ {
		start := time.Now()
		if err := p.tcpConnect(from, ip, port, 2); err == nil {
			p.tb.Fatalf("tcp %s -> %s:%d: connected (attempt %d), want it denied", from, ip, port, i+1)
		} else if i == 0 {
			p.tb.Logf("tcp %s -> %s:%d denied after %s: %v", from, ip, port, time.Since(start).Round(time.Millisecond), err)
		}
	}
}

// listen starts a TCP listener (`nc -k -l -p PORT`) in a VM, waits until
// the socket listens, and returns it; what clients send shows in its output.
func (p *pipeLab) listen(vmName string, port int) *bgProc {
	p.tb.Helper()
	l := p.start(vmName, "nc", "-k", "-l", "-p", fmt.Sprint(port))
	poll(p.tb, 10*time.Second, fmt.Sprintf("%s listens on tcp %d", vmName, port), func() error {
		if l.exited() {
			return fmt.Errorf("nc exited: %s", l.stderr())
		}
		out, err := p.exec(vmName, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if err != nil {
			return err
		}
		if !strings.Contains(out, "LISTEN") {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	return l
}

// bgProc is a long-running command in a VM or node (nc, tcpdump), ended
// when the test ends at the latest (before the lab goes down: cleanups
// run last-in first-out).
type bgProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    lockedBuffer
	err    lockedBuffer
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(b)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start starts a long-running command on a node or VM.
func (p *pipeLab) start(node string, args ...string) *bgProc {
	p.tb.Helper()
	st := p.d.State()
	if st == nil {
		p.tb.Fatal("lab: not up")
	}
	return startOn(p.tb, st, node, args...)
}

// startOn starts a long-running command on a node, VM, outside or
// underlay of the lab st; the test's cleanup stops it.
func startOn(tb testing.TB, st *lab.State, node string, args ...string) *bgProc {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd, err := lab.Command(ctx, st, node, args...)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	bp := &bgProc{cmd: cmd, cancel: cancel, done: make(chan struct{})}
	// `ip netns exec` execs in place: the PID is the command's. SIGTERM
	// first so tcpdump flushes; SIGKILL after WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	cmd.Stdout, cmd.Stderr = &bp.out, &bp.err
	if bp.stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start %s on %s: %v", strings.Join(args, " "), node, err)
	}
	go func() {
		_ = cmd.Wait()
		close(bp.done)
	}()
	tb.Cleanup(bp.stop)
	return bp
}

// stop ends the command and waits for it; its output stays readable.
func (b *bgProc) stop() {
	b.once.Do(func() {
		b.cancel()
		<-b.done
	})
}

func (b *bgProc) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func (b *bgProc) stdout() string { return b.out.String() }
func (b *bgProc) stderr() string { return strings.TrimSpace(b.err.String()) }

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
	c.proc.stop()
	var out []string
	for _, l := range strings.Split(c.proc.stdout(), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// poll calls cond until it returns nil or timeout passes, then fails tb
// with cond's last error.
func poll(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// packetLoss is ping's summary line ("1 packets transmitted, 0 received").
func packetLoss(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			return strings.TrimSpace(l)
		}
	}
	return lastLine(out)
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

// matching returns the lines that contain every one of subs.
func matching(lines []string, subs ...string) []string {
	var out []string
next:
	for _, l := range lines {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}
