// Package vagrant is the Vagrant driver of package scenarios: the
// repository's Vagrantfile brought up with the docker provider, one
// container per host (servers, chassis, gateways, the outside router),
// each with its own addresses on Docker networks, its own OVS (userspace
// datapath) and its own `neutrino agent` (scenarios/vagrant/provision.sh).
package vagrant

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"neutrino/northbound/client"
	"neutrino/scenarios"
	"neutrino/scenarios/lab"
)

// Timeouts of the driver's waits (deadlines, polled).
const (
	// ReadyTimeout bounds how long Up waits, after `vagrant up`, for a
	// leader, every node alive in gossip and every chassis committed up.
	ReadyTimeout = 3 * time.Minute
	// AliveTimeout bounds how long ReviveNode and Heal wait for the live
	// servers to see the node alive again.
	AliveTimeout = 90 * time.Second
	// BrIntTimeout bounds how long AddVM waits for the controller's br-int.
	BrIntTimeout = 60 * time.Second
)

// Names and numbers the Vagrantfile and provision.sh use too.
const (
	outsideName = "outside"
	physnet     = "external"
	extBridge   = "br-ex"
	vlanPhysnet = "external-vlan"
	vlanBridge  = "br-vlan"
	vlanMin     = 100 // the servers' --vlan-ranges external-vlan:100:199
	vlanMax     = 199
	httpPort    = 9696
	scriptDir   = "/opt/neutrino/scripts"
	// hostBinary and dataDir are where provision.sh installs neutrino
	// and the agent's --data-dir.
	hostBinary = "/usr/local/bin/neutrino"
	dataDir    = "/var/lib/neutrino"
)

// Options configure a Driver.
type Options struct {
	// Root is the directory holding the Vagrantfile (the repository root).
	Root string
	// StateDir holds Vagrant's machine state (VAGRANT_DOTFILE_PATH); one
	// per cluster. Down removes it.
	StateDir string
	// Binary is the built neutrino binary the hosts install.
	Binary string
	// Prefix starts every container name (default "nv-").
	Prefix string
	// Net is the /16 of the cluster's networks, two octets (default
	// "10.213"): management Net.0.0/24, underlay Net.1.0/24, external
	// Net.2.0/24.
	Net string
	// Logger gets progress (default: discard).
	Logger *slog.Logger
}

// Driver drives the Vagrant cluster. Its methods are safe for concurrent use.
type Driver struct {
	o Options

	mu   sync.Mutex
	topo scenarios.Topology // of the last Up (Down and Status need the machine names)
	lab  *scenarios.Lab
	vms  map[string]*vm // by name
	// kill holds the nodes whose agent is killed or cut off (KillAgent,
	// KillNode, Partition): waits do not ask those servers.
	kill map[string]bool
}

// vm is a workload: a network namespace in a chassis container.
type vm struct {
	name, chassis, portID, tap string
	spec                       lab.VMSpec
}

var _ scenarios.Driver = (*Driver)(nil)

// NewDriver returns a driver of the Vagrantfile in o.Root.
func NewDriver(o Options) *Driver {
	if o.Prefix == "" {
		o.Prefix = "nv-"
	}
	if o.Net == "" {
		o.Net = "10.213"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{o: o, vms: map[string]*vm{}, kill: map[string]bool{}}
}

// vagrant runs a vagrant command on the cluster's Vagrantfile with the
// topology in env and returns its combined output.
func (d *Driver) vagrant(ctx context.Context, t scenarios.Topology, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "vagrant", args...)
	cmd.Dir = d.o.Root
	cmd.Env = append(os.Environ(),
		"VAGRANT_CWD="+d.o.Root,
		"VAGRANT_DOTFILE_PATH="+d.o.StateDir,
		"VAGRANT_DEFAULT_PROVIDER=docker",
		"VAGRANT_NO_COLOR=1",
		"NEUTRINO_VAGRANT_SERVERS="+strconv.Itoa(t.Servers),
		"NEUTRINO_VAGRANT_CHASSIS="+strconv.Itoa(t.Chassis),
		"NEUTRINO_VAGRANT_GATEWAYS="+strconv.Itoa(t.Gateways),
		"NEUTRINO_VAGRANT_EXTERNAL_CHASSIS="+strconv.Itoa(t.ExternalChassis),
		"NEUTRINO_VAGRANT_NET="+d.o.Net,
		"NEUTRINO_VAGRANT_PREFIX="+d.o.Prefix,
		"NEUTRINO_VAGRANT_BINARY="+d.o.Binary,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vagrant %s: %w: %s", strings.Join(args, " "), err, tail(string(out), 25))
	}
	return string(out), nil
}

// Up brings the cluster up with `vagrant up --provider=docker` and waits
// until every server names a leader, gossip sees every node alive and
// the leader has committed every chassis up.
func (d *Driver) Up(ctx context.Context, t scenarios.Topology) (*scenarios.Lab, error) {
	if t.Servers < 1 || t.Servers > 9 || t.Chassis > 89 || t.Gateways > 49 || t.ExternalChassis > t.Chassis {
		return nil, fmt.Errorf("vagrant: topology %+v: want 1-9 servers, at most 89 chassis and 49 gateways", t)
	}
	if err := Available(ctx); err != nil {
		return nil, err
	}
	if _, err := os.Stat(d.o.Binary); err != nil {
		return nil, fmt.Errorf("vagrant: binary: %w", err)
	}
	if err := os.MkdirAll(d.o.StateDir, 0o755); err != nil {
		return nil, err
	}
	l := d.plan(t)
	d.mu.Lock()
	d.lab, d.topo = l, t
	d.mu.Unlock()
	start := time.Now()
	if _, err := d.vagrant(ctx, t, "up", "--provider=docker", "--parallel"); err != nil {
		return nil, err
	}
	d.o.Logger.Info("vagrant up", "took", time.Since(start).Round(time.Millisecond))
	if l.External != nil {
		if err := poll(ctx, ReadyTimeout, func() (bool, string) {
			_, err := d.Exec(ctx, outsideName, "test", "-f", "/run/neutrino/provisioned")
			return err == nil, "outside is not provisioned yet"
		}); err != nil {
			return nil, fmt.Errorf("vagrant: %w", err)
		}
		nic, mac, err := d.outsideNIC(ctx)
		if err != nil {
			return nil, err
		}
		vnic, vmac, err := d.outsideVLANNIC(ctx)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		l.External.NIC, l.External.MAC = nic, mac
		l.External.VLANNIC, l.External.VLANMAC = vnic, vmac
		d.mu.Unlock()
	}
	if err := d.waitReady(ctx); err != nil {
		return nil, err
	}
	return d.Lab(), nil
}

// plan is the cluster the Vagrantfile builds for t: names and addresses.
func (d *Driver) plan(t scenarios.Topology) *scenarios.Lab {
	l := &scenarios.Lab{Binary: hostBinary}
	add := func(kind, name string, host int) {
		n := scenarios.Node{Name: name, Kind: kind, Address: d.ip(1, host), DataDir: dataDir}
		if kind == scenarios.KindServer {
			scheme := "http"
			if d.CAFile() != "" {
				scheme = "https"
			}
			n.API = fmt.Sprintf("%s://%s:%d", scheme, d.ip(0, host), httpPort)
		}
		l.Nodes = append(l.Nodes, n)
	}
	for i := 1; i <= t.Servers; i++ {
		add(scenarios.KindServer, fmt.Sprintf("server-%d", i), 10+i)
	}
	for i := 1; i <= t.Chassis; i++ {
		add(scenarios.KindChassis, fmt.Sprintf("chassis-%d", i), 100+i)
	}
	for i := 1; i <= t.Gateways; i++ {
		add(scenarios.KindGateway, fmt.Sprintf("gateway-%d", i), 200+i)
	}
	x := &scenarios.External{Physnet: physnet, Bridge: extBridge, Node: outsideName,
		CIDR: d.ip(2, 0) + "/24", Gateway: d.ip(2, 1),
		VLANPhysnet: vlanPhysnet, VLANBridge: vlanBridge, VLANMin: vlanMin, VLANMax: vlanMax}
	for i := 1; i <= t.ExternalChassis; i++ {
		x.Chassis = append(x.Chassis, fmt.Sprintf("chassis-%d", i))
	}
	for i := 1; i <= t.Gateways; i++ {
		x.Chassis = append(x.Chassis, fmt.Sprintf("gateway-%d", i))
	}
	l.External = x
	return l
}

// ip is the address of host on network n (0 management, 1 underlay, 2 external).
func (d *Driver) ip(n, host int) string { return fmt.Sprintf("%s.%d.%d", d.o.Net, n, host) }

// Lab is the running cluster as scenarios see it (nil before Up).
func (d *Driver) Lab() *scenarios.Lab {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lab == nil {
		return nil
	}
	cp := *d.lab
	cp.Nodes = append([]scenarios.Node(nil), d.lab.Nodes...)
	if d.lab.External != nil {
		x := *d.lab.External
		x.Chassis = append([]string(nil), x.Chassis...)
		cp.External = &x
	}
	return &cp
}

// outsideNIC is the outside host's NIC on the external network (it
// carries the gateway address) and its MAC.
func (d *Driver) outsideNIC(ctx context.Context) (nic, mac string, err error) {
	ip := d.ip(2, 1)
	out, err := d.Exec(ctx, outsideName, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], ip+"/") {
			nic = f[1]
		}
	}
	if nic == "" {
		return "", "", fmt.Errorf("vagrant: outside has no NIC with %s", ip)
	}
	out, err = d.Exec(ctx, outsideName, "cat", "/sys/class/net/"+nic+"/address")
	return nic, strings.TrimSpace(out), err
}

// outsideVLANNIC is the outside host's trunk NIC on external-vlan (the
// port of its bridge br-out) and its MAC.
func (d *Driver) outsideVLANNIC(ctx context.Context) (nic, mac string, err error) {
	out, err := d.Exec(ctx, outsideName, "ovs-vsctl", "--timeout=10", "list-ports", "br-out")
	if err != nil {
		return "", "", err
	}
	for _, p := range strings.Fields(out) {
		if strings.HasPrefix(p, "eth") {
			nic = p
		}
	}
	if nic == "" {
		return "", "", fmt.Errorf("vagrant: outside's br-out has no NIC: %q", out)
	}
	out, err = d.Exec(ctx, outsideName, "cat", "/sys/class/net/"+nic+"/address")
	return nic, strings.TrimSpace(out), err
}

// waitReady waits for a leader, gossip and chassis records.
func (d *Driver) waitReady(ctx context.Context) error {
	l := d.Lab()
	var want []string
	for _, n := range l.Nodes {
		want = append(want, n.Name)
	}
	return poll(ctx, ReadyTimeout, func() (bool, string) {
		for _, n := range l.ByKind(scenarios.KindServer) {
			c := d.apiClient(n.API)
			cs, err := c.Cluster(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.Name, err)
			}
			if cs.Leader == "" {
				return false, n.Name + " sees no leader"
			}
			if ok, why := seesAlive(ctx, c, n.Name, want...); !ok {
				return false, why
			}
		}
		list, err := d.apiClient(d.Endpoint()).List(ctx, "chassis", nil)
		if err != nil {
			return false, fmt.Sprintf("chassis list: %v", err)
		}
		up := map[string]bool{}
		for _, ch := range list {
			name, _ := ch["name"].(string)
			u, _ := ch["up"].(bool)
			up[name] = u
		}
		for _, n := range l.Nodes {
			if n.Kind != scenarios.KindServer && !up[n.Name] {
				return false, fmt.Sprintf("chassis %s is not committed up yet", n.Name)
			}
		}
		return true, ""
	})
}

// seesAlive reports whether server (client c) lists every node alive.
func seesAlive(ctx context.Context, c *client.Client, server string, nodes ...string) (bool, string) {
	members, err := c.Members(ctx)
	if err != nil {
		return false, fmt.Sprintf("%s: members: %v", server, err)
	}
	alive := map[string]bool{}
	for _, m := range members {
		alive[m.Name] = m.Status == "alive"
	}
	for _, w := range nodes {
		if !alive[w] {
			return false, fmt.Sprintf("%s does not see %s alive in gossip", server, w)
		}
	}
	return true, ""
}

// waitAlive waits until every server that is not killed or partitioned
// (or is name itself) sees name alive in gossip.
func (d *Driver) waitAlive(ctx context.Context, name string) error {
	return poll(ctx, AliveTimeout, func() (bool, string) {
		asked := 0
		for _, n := range d.Lab().ByKind(scenarios.KindServer) {
			d.mu.Lock()
			cut := d.kill[n.Name]
			d.mu.Unlock()
			if cut && n.Name != name {
				continue
			}
			asked++
			if ok, why := seesAlive(ctx, d.apiClient(n.API), n.Name, name); !ok {
				return false, why
			}
		}
		if asked == 0 {
			return false, "no live server to ask"
		}
		return true, ""
	})
}

// Down removes the cluster, also after a failed Up: its containers with
// `docker rm -f` (2-5 s here, where `vagrant destroy` stops each
// gracefully: 40-60 s for 7 machines), its Docker networks, and Vagrant's
// state dir with it. The base image stays. (`make vagrant-down` runs `vagrant
// destroy` for a cluster of `make vagrant-up`, whose state dir stays.)
func (d *Driver) Down(ctx context.Context) error {
	var errs []error
	if err := Sweep(ctx, d.o.Prefix, d.o.Net); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(d.o.StateDir); err != nil {
		errs = append(errs, err)
	}
	d.mu.Lock()
	d.lab, d.topo, d.vms, d.kill = nil, scenarios.Topology{}, map[string]*vm{}, map[string]bool{}
	d.mu.Unlock()
	return errors.Join(errs...)
}

// Sweep removes every container whose name starts with prefix and the
// Docker networks Vagrant made for the cluster on net: what Down does, and
// what a run killed before its cleanup needs.
func Sweep(ctx context.Context, prefix, net string) error {
	var errs []error
	out, err := docker(ctx, "ps", "-a", "--format", "{{.Names}}", "--filter", "name=^"+prefix)
	if err != nil {
		return err
	}
	names := strings.Fields(out)
	// One at a time: Docker 20.10 loses a network's endpoint count when
	// containers on it go concurrently (its log says "Fixing inconsistent
	// endpoint_cnt" at the next start), and then refuses to remove the
	// network: "has active endpoints".
	for _, n := range names {
		if _, err := docker(ctx, "rm", "-f", "-v", n); err != nil {
			errs = append(errs, err)
		}
	}
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("vagrant_network_%s.%d.0/24", net, i)
		if _, err := docker(ctx, "network", "inspect", name); err != nil {
			continue // not there
		}
		if err := removeNetwork(ctx, name, names); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeNetwork removes a Docker network whose containers are gone,
// retrying for a while: Docker may still be releasing their endpoints; a
// forced disconnect of a container's name drops an endpoint it kept.
func removeNetwork(ctx context.Context, network string, containers []string) error {
	var last error
	err := poll(ctx, 15*time.Second, func() (bool, string) {
		if _, last = docker(ctx, "network", "rm", network); last == nil {
			return true, ""
		}
		for _, c := range containers {
			_, _ = docker(ctx, "network", "disconnect", "-f", network, c)
		}
		return false, last.Error()
	})
	if err != nil {
		return fmt.Errorf("vagrant: remove network %s: %w", network, err)
	}
	return nil
}

// topology is the last Up's topology, or the Vagrantfile's default.
func (d *Driver) topology() scenarios.Topology {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.topo.Servers == 0 {
		return scenarios.Topology{Servers: 3, Chassis: 2, Gateways: 2}
	}
	return d.topo
}

// Endpoint is the first server's API URL on the management network.
func (d *Driver) Endpoint() string {
	if e := d.Endpoints(); len(e) > 0 {
		return e[0]
	}
	return ""
}

// Endpoints are every server's API URL on the management network, which
// Partition leaves up.
func (d *Driver) Endpoints() []string {
	l := d.Lab()
	if l == nil {
		return nil
	}
	var out []string
	for _, n := range l.ByKind(scenarios.KindServer) {
		out = append(out, n.API)
	}
	return out
}

// Status is `vagrant status`: every machine and its state, e.g.
// "server-1": "running".
func (d *Driver) Status(ctx context.Context) (map[string]string, error) {
	out, err := d.vagrant(ctx, d.topology(), "status", "--machine-readable")
	if err != nil {
		return nil, err
	}
	st := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		// timestamp,target,type,data
		f := strings.SplitN(line, ",", 4)
		if len(f) == 4 && f[2] == "state" && f[3] != "not_created" {
			st[f[1]] = f[3]
		}
	}
	return st, nil
}

// container is the Docker id of a machine, from Vagrant's state (the
// container name if Vagrant has none yet).
func (d *Driver) container(name string) string {
	b, err := os.ReadFile(filepath.Join(d.o.StateDir, "machines", name, "docker", "id"))
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b))
	}
	return d.o.Prefix + name
}

// Exec runs a command on a host (docker exec) or in a VM's namespace on
// its chassis and returns its standard output; a failure's error carries
// standard error.
func (d *Driver) Exec(ctx context.Context, node string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("vagrant: exec: no command")
	}
	id, full := d.target(node, args)
	out, err := docker(ctx, append([]string{"exec", id}, full...)...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", node, err)
	}
	return out, nil
}

// target is the container and in-container command line of a host or VM.
func (d *Driver) target(node string, args []string) (string, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v := d.vms[node]; v != nil {
		return d.container(v.chassis), append([]string{"ip", "netns", "exec", "vm-" + v.name}, args...)
	}
	return d.container(node), args
}

// commandScript runs `docker exec -i` in the background and, on SIGTERM,
// sends SIGTERM to the command inside the container: `docker exec` passes
// no signal on, and a command left running there would outlive its caller
// (and keep output, e.g. tcpdump's, unflushed). $1 is the container, $2 a
// unique tag, the rest the command.
const commandScript = `id=$1 tag=$2; shift 2
pidfile=/run/neutrino/cmd-$tag.pid
stop() { docker exec "$id" sh -c "kill -TERM \$(cat $pidfile) 2>/dev/null; rm -f $pidfile" >/dev/null 2>&1; }
trap stop TERM INT
exec 3<&0
docker exec -i "$id" sh -c 'mkdir -p /run/neutrino; echo $$ >'"$pidfile"'; exec "$@"' sh "$@" 0<&3 &
child=$!
wait $child
rc=$?
if kill -0 $child 2>/dev/null; then wait $child; rc=$?; fi
exit $rc`

// Command is Exec not yet started, for a long-running command; cancelling
// ctx (or SIGTERM to the returned process) ends the command inside the
// container too.
func (d *Driver) Command(ctx context.Context, node string, args ...string) (*exec.Cmd, error) {
	if len(args) == 0 {
		return nil, errors.New("vagrant: command: no command")
	}
	id, full := d.target(node, args)
	tag := strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.Itoa(int(cmdSeq.Add(1)))
	cmd := exec.CommandContext(ctx, "bash", append([]string{"-c", commandScript, "vagrant-command", id, tag}, full...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

var cmdSeq atomic.Int64

// script runs provision.sh with args on a host.
func (d *Driver) script(ctx context.Context, node string, args ...string) (string, error) {
	return d.Exec(ctx, node, append([]string{"bash", scriptDir + "/provision.sh"}, args...)...)
}

// KillAgent SIGKILLs a node's agent (provision.sh agent-kill).
func (d *Driver) KillAgent(ctx context.Context, node string) error {
	if _, err := d.script(ctx, node, "agent-kill"); err != nil {
		return err
	}
	d.mu.Lock()
	d.kill[node] = true
	d.mu.Unlock()
	return nil
}

// StartAgent starts a node's agent again (provision.sh agent-start).
func (d *Driver) StartAgent(ctx context.Context, node string) error {
	if _, err := d.script(ctx, node, "agent-start"); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.kill, node)
	d.mu.Unlock()
	return nil
}

// KillNode kills a host as a machine dies: `docker kill` (SIGKILL to
// every process of the container at once; its links go with its network
// namespace). Its disk (OVS database, agent data dir) stays.
func (d *Driver) KillNode(ctx context.Context, node string) error {
	if _, err := docker(ctx, "kill", d.container(node)); err != nil {
		return err
	}
	d.mu.Lock()
	d.kill[node] = true
	d.mu.Unlock()
	return nil
}

// ReviveNode boots a killed host again: `docker start` runs provision.sh
// on the disk it kept (OVS on its database, br-phy, the agent), then the
// host's VMs are plugged again, as a hypervisor restarts its guests. It
// returns once the live servers see the node alive in gossip.
func (d *Driver) ReviveNode(ctx context.Context, node string) error {
	if _, err := docker(ctx, "start", d.container(node)); err != nil {
		return err
	}
	if err := poll(ctx, AliveTimeout, func() (bool, string) {
		_, err := d.Exec(ctx, node, "test", "-f", "/run/neutrino/provisioned")
		return err == nil, "not provisioned yet"
	}); err != nil {
		return fmt.Errorf("vagrant: %s: %w", node, err)
	}
	d.mu.Lock()
	var vms []*vm
	for _, v := range d.vms {
		if v.chassis == node {
			vms = append(vms, v)
		}
	}
	d.mu.Unlock()
	for _, v := range vms {
		if err := d.plug(ctx, v); err != nil {
			return fmt.Errorf("vagrant: replug VM %s on %s: %w", v.name, node, err)
		}
	}
	d.mu.Lock()
	delete(d.kill, node)
	d.mu.Unlock()
	return d.waitAlive(ctx, node)
}

// Partition takes the node's underlay NIC down inside its container: its
// processes keep running and its management and external NICs stay up.
// A link down is what cuts the netdev datapath's tunnels too: OVS sends
// them on the NIC through a packet socket, past iptables; `docker network
// disconnect` would delete the NIC (a port of br-phy) and its address.
func (d *Driver) Partition(ctx context.Context, node string) error {
	if _, err := d.script(ctx, node, "underlay-down"); err != nil {
		return err
	}
	d.mu.Lock()
	d.kill[node] = true
	d.mu.Unlock()
	return nil
}

// RestartOVS kills a chassis' ovsdb-server and ovs-vswitchd and starts
// them again on the database (provision.sh ovs-restart), the agent
// running on; it returns once ovs-vswitchd answers.
func (d *Driver) RestartOVS(ctx context.Context, node string) error {
	_, err := d.script(ctx, node, "ovs-restart")
	return err
}

// Isolate cuts a server off from the other servers only: blackhole routes
// to their underlay addresses on it and to its address on them, as the
// lab does (chassis still reach it; the test still reaches its API).
func (d *Driver) Isolate(ctx context.Context, node string) error {
	self, others, err := d.serverPeers(node)
	if err != nil {
		return err
	}
	if _, err := d.script(ctx, node, append([]string{"blackhole-add"}, addresses(others)...)...); err != nil {
		return err
	}
	for _, o := range others {
		if _, err := d.script(ctx, o.Name, "blackhole-add", self.Address); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.kill[node] = true
	d.mu.Unlock()
	return nil
}

// serverPeers returns server node and the other servers.
func (d *Driver) serverPeers(node string) (self scenarios.Node, others []scenarios.Node, err error) {
	l := d.Lab()
	if l == nil {
		return self, nil, errors.New("vagrant: not up")
	}
	found := false
	for _, n := range l.ByKind(scenarios.KindServer) {
		if n.Name == node {
			self, found = n, true
		} else {
			others = append(others, n)
		}
	}
	if !found {
		return self, nil, fmt.Errorf("vagrant: %s is not a server", node)
	}
	return self, others, nil
}

func addresses(nodes []scenarios.Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Address)
	}
	return out
}

// Heal undoes Partition and Isolate (underlay NIC up, blackhole routes
// gone) and returns once the live servers see the node alive in gossip.
func (d *Driver) Heal(ctx context.Context, node string) error {
	if _, err := d.script(ctx, node, "underlay-up"); err != nil {
		return err
	}
	if self, others, err := d.serverPeers(node); err == nil {
		if _, err := d.script(ctx, node, append([]string{"blackhole-del"}, addresses(others)...)...); err != nil {
			return err
		}
		for _, o := range others {
			if _, err := d.script(ctx, o.Name, "blackhole-del", self.Address); err != nil {
				return err
			}
		}
	}
	d.mu.Lock()
	delete(d.kill, node)
	d.mu.Unlock()
	return d.waitAlive(ctx, node)
}

// OutsideVLAN gives the outside host the address cidr on VLAN vid of
// external-vlan: an internal port vlan<vid> with tag=<vid> on its bridge
// br-out, whose trunk port is its NIC on that network (provision.sh
// outside-vlan). Again for the same vid, the address becomes cidr.
func (d *Driver) OutsideVLAN(ctx context.Context, vid int, cidr string) error {
	if vid < 1 || vid > 4094 {
		return fmt.Errorf("vagrant: VLAN id %d out of 1-4094", vid)
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("vagrant: outside VLAN address: %w", err)
	}
	_, err = d.script(ctx, outsideName, "outside-vlan", strconv.Itoa(vid), pfx.String())
	return err
}

// vmName is what a VM may be called: it becomes part of a namespace name.
var vmName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$`)

// AddVM plugs a workload into chassis' br-int as Neutron port portID: a
// network namespace vm-NAME inside the chassis container, its eth0 a veth
// whose other end tap<port id> is the OVS port with
// external_ids:iface-id=portID (as Nova's os-vif plugs it), with the
// port's MAC and address, the subnet's gateway, the network's MTU.
func (d *Driver) AddVM(ctx context.Context, name, portID, chassis string) error {
	if !vmName.MatchString(name) {
		return fmt.Errorf("vagrant: VM name %q: want 1-32 of [a-zA-Z0-9_.-], starting alphanumeric", name)
	}
	known := false
	for _, n := range d.Lab().Nodes {
		known = known || (n.Name == chassis && n.Kind != scenarios.KindServer)
	}
	if !known {
		return fmt.Errorf("vagrant: %q is not a chassis or gateway of the cluster", chassis)
	}
	d.mu.Lock()
	_, dup := d.vms[name]
	d.mu.Unlock()
	if dup {
		return fmt.Errorf("vagrant: VM %s exists", name)
	}
	spec, err := d.portSpec(ctx, portID)
	if err != nil {
		return err
	}
	tap := "tap" + portID
	if len(tap) > 14 {
		tap = tap[:14]
	}
	v := &vm{name: name, chassis: chassis, portID: portID, tap: tap, spec: spec}
	if err := d.plug(ctx, v); err != nil {
		_ = d.unplug(context.Background(), v)
		return fmt.Errorf("vagrant: VM %s: %w", name, err)
	}
	d.mu.Lock()
	d.vms[name] = v
	d.mu.Unlock()
	d.o.Logger.Info("VM plugged", "vm", name, "chassis", chassis, "port", portID, "cidr", spec.CIDR)
	return nil
}

// portSpec reads the port through the first server that answers.
func (d *Driver) portSpec(ctx context.Context, portID string) (lab.VMSpec, error) {
	var errs []error
	for _, e := range d.Endpoints() {
		spec, err := lab.PortSpec(ctx, d.apiClient(e), portID)
		var apiErr *client.Error
		if err == nil || (errors.As(err, &apiErr) && apiErr.Status < 500) {
			return spec, err
		}
		errs = append(errs, err)
	}
	return lab.VMSpec{}, fmt.Errorf("vagrant: no server answered: %w", errors.Join(errs...))
}

func (d *Driver) plug(ctx context.Context, v *vm) error {
	if err := poll(ctx, BrIntTimeout, func() (bool, string) {
		_, err := d.Exec(ctx, v.chassis, "ovs-vsctl", "--timeout=5", "br-exists", "br-int")
		return err == nil, fmt.Sprintf("%s has no br-int (the controller creates it)", v.chassis)
	}); err != nil {
		return err
	}
	ns := "vm-" + v.name
	mtu := ""
	if v.spec.MTU > 0 {
		mtu = "mtu " + strconv.Itoa(v.spec.MTU)
	}
	sh := []string{
		"set -e",
		// A revived host's disk still has the namespace's mount point.
		fmt.Sprintf("ip netns del %s 2>/dev/null || true", ns),
		fmt.Sprintf("ip link del %s 2>/dev/null || true", v.tap),
		"ip netns add " + ns,
		// As the lab's VMs: solicit routers until one answers (SLAAC must
		// not wait for a periodic advertisement); set before eth0 moves in.
		// Best effort: Docker mounts /proc/sys read-only in a container
		// that is not privileged, which refuses some of these keys.
		fmt.Sprintf("ip netns exec %s sysctl -qw net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.default.autoconf=1 "+
			"net.ipv6.conf.default.router_solicitations=-1 net.ipv6.conf.default.router_solicitation_max_interval=2 2>/dev/null || true", ns),
		fmt.Sprintf("ip link add %s %s type veth peer name eth0 netns %s", v.tap, mtu, ns),
		fmt.Sprintf("ip -n %s link set eth0 address %s", ns, v.spec.MAC),
		fmt.Sprintf("ip -n %s link set lo up", ns),
		fmt.Sprintf("ip -n %s link set eth0 up", ns),
		fmt.Sprintf("ip link set %s up", v.tap),
		// The netdev datapath does not complete partial checksums.
		fmt.Sprintf("ip netns exec %s ethtool -K eth0 tx off >/dev/null", ns),
		fmt.Sprintf("ethtool -K %s tx off >/dev/null", v.tap),
	}
	if v.spec.CIDR != "" {
		sh = append(sh, fmt.Sprintf("ip -n %s addr add %s dev eth0", ns, v.spec.CIDR))
	}
	if v.spec.Gateway != "" {
		sh = append(sh, fmt.Sprintf("ip -n %s route add default via %s dev eth0", ns, v.spec.Gateway))
	}
	sh = append(sh, fmt.Sprintf("ovs-vsctl --timeout=15 --may-exist add-port br-int %[1]s -- set Interface %[1]s "+
		"external_ids:iface-id=%[2]q external_ids:attached-mac=%[3]q external_ids:iface-status=active external_ids:vm-id=%[4]q",
		v.tap, v.portID, v.spec.MAC, v.name))
	if _, err := d.Exec(ctx, v.chassis, "sh", "-c", strings.Join(sh, "\n")); err != nil {
		return err
	}
	return poll(ctx, 20*time.Second, func() (bool, string) {
		out, err := d.Exec(ctx, v.chassis, "ovs-vsctl", "--timeout=5", "get", "Interface", v.tap, "ofport")
		p, perr := strconv.Atoi(strings.TrimSpace(out))
		return err == nil && perr == nil && p > 0, "no ofport yet: " + strings.TrimSpace(out)
	})
}

func (d *Driver) unplug(ctx context.Context, v *vm) error {
	_, err := d.Exec(ctx, v.chassis, "sh", "-c", fmt.Sprintf(
		"ovs-vsctl --timeout=15 --if-exists del-port br-int %s; ip netns del vm-%s 2>/dev/null; ip link del %s 2>/dev/null; true",
		v.tap, v.name, v.tap))
	return err
}

// DelVM unplugs a workload and deletes its namespace.
func (d *Driver) DelVM(ctx context.Context, name string) error {
	d.mu.Lock()
	v := d.vms[name]
	delete(d.vms, name)
	d.mu.Unlock()
	if v == nil {
		return fmt.Errorf("vagrant: no VM %s", name)
	}
	return d.unplug(ctx, v)
}

// AgentLog returns the last lines of a host's agent log (for a failed
// test's output).
func (d *Driver) AgentLog(ctx context.Context, node string, lines int) string {
	out, err := d.Exec(ctx, node, "tail", "-n", strconv.Itoa(lines), "/var/log/neutrino/agent.log")
	if err != nil {
		return err.Error()
	}
	return out
}

// docker runs a docker command and returns its standard output.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Available reports whether the Docker daemon answers and vagrant is
// installed: what the driver needs (make vagrant-up starts both).
func Available(ctx context.Context) error {
	if _, err := exec.LookPath("vagrant"); err != nil {
		return fmt.Errorf("vagrant: not installed (.ci/deps-vagrant): %w", err)
	}
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("vagrant: dockerd does not answer (scenarios/vagrant/dockerd.sh starts it): %w", err)
	}
	return nil
}

// CAFile is the cluster's CA certificate, which the Vagrantfile makes
// with `neutrino tls` in the state dir (TLS is on unless
// NEUTRINO_VAGRANT_TLS=off); empty without TLS.
func (d *Driver) CAFile() string {
	if os.Getenv("NEUTRINO_VAGRANT_TLS") == "off" {
		return ""
	}
	return filepath.Join(d.o.StateDir, "tls", "neutrino-ca.pem")
}

// apiClient is a client of one of the cluster's API URLs, trusting its CA.
func (d *Driver) apiClient(url string) *client.Client {
	c, err := client.New(url)
	if err != nil {
		panic(err) // URLs are the driver's own
	}
	if ca := d.CAFile(); ca != "" {
		// A missing CA file fails every call with a clear error instead.
		if err := c.TrustCA(ca); err != nil {
			c.HTTPClient.Transport = failing{err}
		}
	}
	c.HTTPClient.Timeout = 5 * time.Second
	c.UserAgent = "neutrino-vagrant"
	return c
}

// poll calls cond every 200 ms until it holds, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s", ctx.Err(), why)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// failing is a RoundTripper that fails every request with err.
type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }
