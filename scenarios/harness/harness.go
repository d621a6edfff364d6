// Package harness is what scenario tests share: a running lab seen
// through a scenarios.Driver, Neutron API clients, VMs plugged for ports,
// and checks of traffic, flows and cluster state that fail the test with a
// message saying what did not happen. It knows nothing of any driver's
// internals: every check goes through Driver methods and the API.
package harness

import (
	"fmt"
	"strings"

	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios"
)

// Timeouts of traffic checks: the first packet of a new network waits for
// flows to reach the chassis (and a binding to be committed), FirstPacket;
// a change to an existing path, Change. Generous: the machines running
// scenarios are shared and loaded.
const (
	FirstPacket = 30 * time.Second
	Change      = 15 * time.Second
)

// Env is one running lab of a scenario test.
type Env struct {
	TB  testing.TB
	D   scenarios.Driver
	Lab *scenarios.Lab
	// Admin is a noauth admin client of the first server.
	Admin *gophercloud.ServiceClient
	// Chassis are the compute chassis' names, in order.
	Chassis []string

	vms *vmSet // shared by Sub copies
	// nested are network namespaces a scenario made on a node (a remote
	// VPN site), by name: Exec and Start reach them as they reach nodes.
	nested *nestedSet
}

// nestedSet records namespaces on nodes: name -> [node, pid of the
// process holding the namespace there].
type nestedSet struct {
	mu sync.Mutex
	m  map[string][2]string
}

// target is the node a command for name runs on, and the command: in
// the namespace if name is one a scenario made (AddNamespace).
func (e *Env) target(name string, args []string) (string, []string) {
	e.nested.mu.Lock()
	defer e.nested.mu.Unlock()
	if n, ok := e.nested.m[name]; ok {
		return n[0], append([]string{"nsenter", "-t", n[1], "-n"}, args...)
	}
	return name, args
}

// AddNamespace makes a network namespace on node, held by a process
// started there (unshare -n sleep), and lets Exec and Start reach it as
// name (nsenter on its pid; `ip link set DEV netns PID` moves a device
// in). No name is bound under /run/netns: on a node that is itself a
// namespace under `ip netns exec` (the lab's), such a bind would live in
// that command's private mount namespace only. The test's cleanup ends
// the holder, which frees the namespace once what the test started in it
// has ended (cleanups run last-in first-out). It returns the pid.
func (e *Env) AddNamespace(name, node string) string {
	e.TB.Helper()
	holder := e.Start(node, "unshare", "-n", "sh", "-c", "echo $$; exec sleep infinity")
	var pid string
	Poll(e.TB, 20*time.Second, "the namespace holder of "+name+" on "+node, func() error {
		if holder.Exited() {
			return fmt.Errorf("exited: %s", holder.Stderr())
		}
		if line, _, ok := strings.Cut(holder.Stdout(), "\n"); ok {
			pid = strings.TrimSpace(line)
			return nil
		}
		return fmt.Errorf("no pid yet")
	})
	e.nested.mu.Lock()
	e.nested.m[name] = [2]string{node, pid}
	e.nested.mu.Unlock()
	e.TB.Cleanup(func() {
		e.nested.mu.Lock()
		delete(e.nested.m, name)
		e.nested.mu.Unlock()
	})
	return pid
}

// vmSet records the VMs plugged through an Env, by name.
type vmSet struct {
	mu sync.Mutex
	m  map[string]VM
}

// New wraps a lab the driver d brought up for tb.
func New(tb testing.TB, d scenarios.Driver, l *scenarios.Lab) *Env {
	// A lab with TLS (the netns default) names its CA.
	if ca, ok := d.(interface{ CAFile() string }); ok && ca.CAFile() != "" {
		if err := TrustCA(ca.CAFile()); err != nil {
			tb.Fatal(err)
		}
	}
	e := &Env{TB: tb, D: d, Lab: l, Admin: NetworkClient(d.Endpoint(), ""), vms: &vmSet{m: map[string]VM{}},
		nested: &nestedSet{m: map[string][2]string{}}}
	for _, n := range l.ByKind(scenarios.KindChassis) {
		e.Chassis = append(e.Chassis, n.Name)
	}
	return e
}

// Sub is e for a subtest: failures go to tb.
func (e *Env) Sub(tb testing.TB) *Env {
	cp := *e
	cp.TB = tb
	return &cp
}

// Ctx is a context for one API call or command.
func (e *Env) Ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// NetworkClient is a gophercloud Networking client of one API URL, as
// `openstack --os-auth-type none` uses it. With project empty it is noauth
// admin; otherwise it acts as a member of that project (X-Project-Id,
// X-Roles), as Neutron's keystonecontext reads a request.
func NetworkClient(endpoint, project string) *gophercloud.ServiceClient {
	c := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 60 * time.Second, Transport: Transport(0)}},
		Endpoint:       endpoint + "/",
		ResourceBase:   endpoint + "/v2.0/",
		Type:           "network",
	}
	if project != "" {
		c.MoreHeaders = map[string]string{"X-Project-Id": project, "X-User-Id": "user-" + project, "X-Roles": "member"}
	}
	return c
}

// Poll calls cond until it returns nil or timeout passes, then fails tb
// with cond's last error.
func Poll(tb testing.TB, timeout time.Duration, what string, cond func() error) {
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

// Network creates a network (default type) with one IPv4 subnet and
// returns their ids; the subnet's gateway is the first address.
func (e *Env) Network(nc *gophercloud.ServiceClient, name, cidr string) (netID, subnetID string) {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: name}).Extract()
	if err != nil {
		e.TB.Fatalf("create network %s: %v", name, err)
	}
	s, err := subnets.Create(ctx, nc, subnets.CreateOpts{
		NetworkID: n.ID, CIDR: cidr, IPVersion: gophercloud.IPv4, Name: name,
	}).Extract()
	if err != nil {
		e.TB.Fatalf("create subnet %s on %s: %v", cidr, name, err)
	}
	return n.ID, s.ID
}

// Port creates a port and returns it.
func (e *Env) Port(nc *gophercloud.ServiceClient, opts ports.CreateOptsBuilder) *ports.Port {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	port, err := ports.Create(ctx, nc, opts).Extract()
	if err != nil {
		e.TB.Fatalf("create port: %v", err)
	}
	if len(port.FixedIPs) == 0 {
		e.TB.Fatalf("port %s (%s) has no fixed IP", port.ID, port.Name)
	}
	return port
}

// Group creates a security group and returns its id.
func (e *Env) Group(nc *gophercloud.ServiceClient, name string) string {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	g, err := groups.Create(ctx, nc, groups.CreateOpts{Name: name}).Extract()
	if err != nil {
		e.TB.Fatalf("create security group %s: %v", name, err)
	}
	return g.ID
}

// Rule creates a security group rule (IPv4 unless o says) and returns its id.
func (e *Env) Rule(nc *gophercloud.ServiceClient, o rules.CreateOpts) string {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	if o.EtherType == "" {
		o.EtherType = rules.EtherType4
	}
	r, err := rules.Create(ctx, nc, o).Extract()
	if err != nil {
		e.TB.Fatalf("create rule %+v: %v", o, err)
	}
	return r.ID
}

// OpenGroup creates a security group admitting ICMP, TCP and UDP (IPv4)
// from anywhere.
func (e *Env) OpenGroup(nc *gophercloud.ServiceClient, name string) string {
	e.TB.Helper()
	sg := e.Group(nc, name)
	for _, proto := range []rules.RuleProtocol{rules.ProtocolICMP, rules.ProtocolTCP, rules.ProtocolUDP} {
		e.Rule(nc, rules.CreateOpts{SecGroupID: sg, Direction: rules.DirIngress, EtherType: rules.EtherType4, Protocol: proto})
	}
	return sg
}

// VM is a workload plugged for a Neutron port.
type VM struct {
	Name, Chassis, PortID, IP, MAC string
}

// Plug plugs a VM for port on chassis (Driver.AddVM: MAC, address, default
// route via the subnet's gateway, MTU).
func (e *Env) Plug(name, chassis string, port *ports.Port) VM {
	e.TB.Helper()
	ctx, cancel := e.Ctx()
	defer cancel()
	if err := e.D.AddVM(ctx, name, port.ID, chassis); err != nil {
		e.TB.Fatalf("plug VM %s (port %s) on %s: %v", name, port.ID, chassis, err)
	}
	v := VM{Name: name, Chassis: chassis, PortID: port.ID, IP: port.FixedIPs[0].IPAddress, MAC: port.MACAddress}
	e.vms.mu.Lock()
	e.vms.m[name] = v
	e.vms.mu.Unlock()
	e.TB.Logf("VM %s on %s: port %s, %s, %s", name, chassis, port.ID, v.IP, v.MAC)
	return v
}

// VM returns a VM plugged through e (or a copy of it) by name.
func (e *Env) VM(name string) (VM, bool) {
	e.vms.mu.Lock()
	defer e.vms.mu.Unlock()
	v, ok := e.vms.m[name]
	return v, ok
}

// Exec runs a command on a node or VM.
func (e *Env) Exec(node string, args ...string) (string, error) {
	ctx, cancel := e.Ctx()
	defer cancel()
	node, args = e.target(node, args)
	return e.D.Exec(ctx, node, args...)
}

// MustExec runs a command on a node or VM and fails tb if it fails.
func (e *Env) MustExec(node string, args ...string) string {
	e.TB.Helper()
	out, err := e.Exec(node, args...)
	if err != nil {
		e.TB.Fatalf("%v", err)
	}
	return out
}

// NodeOp applies a Driver fault (KillNode, Partition, Heal, ...) to a
// node and fails tb if it fails.
func (e *Env) NodeOp(what, node string, op func(context.Context, string) error) {
	e.TB.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := op(ctx, node); err != nil {
		e.TB.Fatalf("%s %s: %v", what, node, err)
	}
	e.TB.Logf("%s %s: done in %s", what, node, time.Since(start).Round(time.Millisecond))
}

// Servers are the lab's server names, in order.
func (e *Env) Servers() []string {
	var out []string
	for _, n := range e.Lab.ByKind(scenarios.KindServer) {
		out = append(out, n.Name)
	}
	return out
}

// Node returns a lab node by name (fails tb if there is none).
func (e *Env) Node(name string) scenarios.Node {
	e.TB.Helper()
	for _, n := range e.Lab.Nodes {
		if n.Name == name {
			return n
		}
	}
	e.TB.Fatalf("no node %s in the lab", name)
	return scenarios.Node{}
}

// String names a VM in messages.
func (v VM) String() string { return fmt.Sprintf("%s (%s on %s)", v.Name, v.IP, v.Chassis) }

// Topologies the scenarios and the lab's own tests share.
var (
	// PipelineTopology: three servers (writes forwarded to the leader),
	// three chassis.
	PipelineTopology = scenarios.Topology{Servers: 3, Chassis: 3}
	// ExternalTopology: chassis-1 maps the external physnets (it does its
	// VMs' floating IPs itself), chassis-2 does not (its VMs' floating IPs
	// are served by the router's gateway chassis); two gateways.
	ExternalTopology = scenarios.Topology{Servers: 3, Chassis: 2, Gateways: 2, ExternalChassis: 1}
	// PartitionTopology: three servers and two chassis, a majority of two
	// and a data path between VMs on two chassis that a server partition
	// must not disturb.
	PartitionTopology = scenarios.Topology{Servers: 3, Chassis: 2}
)

// Fault applies a fault to a node (NodeOp) and returns its undo, which
// runs at most once: when the scenario calls it, else when the test ends
// (a scenario stopped half-way leaves no node broken for the next one).
func (e *Env) Fault(what, node string, do func(context.Context, string) error, undoWhat string, undo func(context.Context, string) error) (undoNow func()) {
	e.TB.Helper()
	e.NodeOp(what, node, do)
	var once sync.Once
	undoNow = func() { once.Do(func() { e.NodeOp(undoWhat, node, undo) }) }
	e.TB.Cleanup(undoNow)
	return undoNow
}

// NewVM creates a port on a network (in the security groups sgs, the
// project's default if none) and plugs a VM named name for it on chassis.
func (e *Env) NewVM(nc *gophercloud.ServiceClient, name, chassis, netID string, sgs ...string) VM {
	e.TB.Helper()
	opts := ports.CreateOpts{NetworkID: netID, Name: name}
	if len(sgs) > 0 {
		opts.SecurityGroups = &sgs
	}
	return e.Plug(name, chassis, e.Port(nc, opts))
}

// VMOnEachChassis plugs a VM on every chassis, on one network, named
// prefix1, prefix2, ... in chassis order.
func (e *Env) VMOnEachChassis(nc *gophercloud.ServiceClient, prefix, netID string) []VM {
	e.TB.Helper()
	var vms []VM
	for i, ch := range e.Chassis {
		vms = append(vms, e.NewVM(nc, fmt.Sprintf("%s%d", prefix, i+1), ch, netID))
	}
	return vms
}

// sysctlScript sets sysctl $1. Docker mounts /proc/sys read-only in a
// container that is not privileged: there it remounts it writable in a
// private mount namespace first (the keys a scenario sets are its
// namespace's own: /proc/sys/net follows the writer's network namespace).
const sysctlScript = `sysctl -qw "$1" 2>/dev/null ||
unshare -m sh -c 'mount -o remount,bind,rw /proc/sys && sysctl -qw "$1"' sh "$1"`

// Sysctl sets a sysctl (key=value) on a node or VM and fails tb if it
// cannot.
func (e *Env) Sysctl(node, keyValue string) {
	e.TB.Helper()
	e.MustExec(node, "sh", "-c", sysctlScript, "sh", keyValue)
}
