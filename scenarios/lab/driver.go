package lab

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"neutrino/scenarios"
)

// Driver is the network-namespace driver of package scenarios. Its
// methods are safe for concurrent use (a scenario may Exec on two VMs at
// once); Options must not change after Up.
type Driver struct {
	// Options configure Up (Topology is taken from Up's argument).
	Options Options

	mu sync.Mutex
	st *State
}

var (
	_ scenarios.Driver   = (*Driver)(nil)
	_ scenarios.Degrader = (*Driver)(nil)
)

// NewDriver returns a driver that builds its lab in dir with namespace
// prefix prefix, running agents from binary.
func NewDriver(dir, prefix, binary string, log *slog.Logger) *Driver {
	return &Driver{Options: Options{Dir: dir, Prefix: prefix, Binary: binary, Logger: log}}
}

// Up builds the lab.
func (d *Driver) Up(ctx context.Context, t scenarios.Topology) (*scenarios.Lab, error) {
	o := d.Options
	o.Topology = t
	st, err := Up(ctx, o)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.st = st
	d.mu.Unlock()
	l := st.Lab()
	l.Binary = o.Binary
	if l.Binary == "" {
		if l.Binary, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Lab is the scenario view of a lab's state.
func (st *State) Lab() *scenarios.Lab {
	l := &scenarios.Lab{}
	for _, n := range st.Nodes {
		l.Nodes = append(l.Nodes, scenarios.Node{Name: n.Name, Kind: n.Kind, Address: n.IP, API: n.API, DataDir: n.DataDir})
	}
	if st.Outside == nil {
		return l
	}
	x := &scenarios.External{Node: st.Outside.Name, VLANMin: VLANMin, VLANMax: VLANMax}
	for _, pn := range st.Physnets {
		var nic OutsideNIC
		for _, c := range st.Outside.NICs {
			if c.Physnet == pn.Name {
				nic = c
			}
		}
		if pn.VLAN {
			x.VLANPhysnet, x.VLANBridge, x.VLANNIC, x.VLANMAC = pn.Name, pn.OVSBridge, nic.Name, nic.MAC
		} else {
			x.Physnet, x.Bridge, x.NIC, x.MAC = pn.Name, pn.OVSBridge, nic.Name, nic.MAC
			x.CIDR, x.Gateway = pn.CIDR, pn.Gateway
		}
	}
	for _, n := range st.Nodes {
		if len(n.Physnets) > 0 {
			x.Chassis = append(x.Chassis, n.Name)
		}
	}
	l.External = x
	return l
}

// Down removes the lab.
func (d *Driver) Down(ctx context.Context) error {
	err := Down(ctx, d.Options.Dir, d.Options.Prefix, d.Options.Logger)
	d.mu.Lock()
	d.st = nil
	d.mu.Unlock()
	return err
}

// Endpoint returns the first server's API URL.
func (d *Driver) Endpoint() string {
	if e := d.Endpoints(); len(e) > 0 {
		return e[0]
	}
	return ""
}

// CAFile returns the lab's CA certificate, which its https endpoints are
// verified with; empty for a lab without TLS.
func (d *Driver) CAFile() string {
	if st := d.state(); st != nil {
		return st.CA
	}
	return ""
}

// Endpoints returns every server's API URL.
func (d *Driver) Endpoints() []string {
	st := d.state()
	if st == nil {
		return nil
	}
	var out []string
	for _, n := range st.Nodes {
		if n.API != "" {
			out = append(out, n.API)
		}
	}
	return out
}

// state re-reads the state file: AddVM and StartAgent change it.
func (d *Driver) state() *State {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		return nil
	}
	if st, err := LoadState(d.st.Dir); err == nil {
		d.st = st
	}
	return d.st
}

// Exec runs a command on a node or VM and returns its standard output; a
// failure's error carries standard error.
func (d *Driver) Exec(ctx context.Context, node string, args ...string) (string, error) {
	st := d.state()
	if st == nil {
		return "", fmt.Errorf("lab: not up")
	}
	cmd, err := Command(ctx, st, node, args...)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %s: %w: %s", node, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Command returns a command, not yet started, that runs on a node or VM.
func (d *Driver) Command(ctx context.Context, node string, args ...string) (*exec.Cmd, error) {
	st := d.state()
	if st == nil {
		return nil, fmt.Errorf("lab: not up")
	}
	return Command(ctx, st, node, args...)
}

// AddVM plugs a workload for a Neutron port, its address written (as
// scenarios.Driver says: a scenario runs its DHCP client itself; `lab vm
// add` runs one).
func (d *Driver) AddVM(ctx context.Context, name, portID, chassis string) error {
	return AddVMWith(ctx, d.Options.Dir, name, portID, chassis, VMOptions{Static: true, Binary: d.Options.Binary}, d.Options.Logger)
}

// DelVM removes a workload.
func (d *Driver) DelVM(ctx context.Context, name string) error {
	return DelVM(ctx, d.Options.Dir, name)
}

// KillAgent SIGKILLs a node's agent.
func (d *Driver) KillAgent(ctx context.Context, node string) error {
	return StopAgent(ctx, d.Options.Dir, node)
}

// StartAgent starts a node's agent again.
func (d *Driver) StartAgent(ctx context.Context, node string) error {
	return StartAgent(ctx, d.Options.Dir, node, d.Options.Binary)
}

// KillNode kills a node as a machine dies (see Kill).
func (d *Driver) KillNode(ctx context.Context, node string) error {
	return Kill(ctx, d.Options.Dir, node)
}

// ReviveNode boots a killed node again (see Revive).
func (d *Driver) ReviveNode(ctx context.Context, node string) error {
	return Revive(ctx, d.Options.Dir, node, d.Options.Binary)
}

// RestartOVS restarts a chassis' OVS daemons (see RestartOVS).
func (d *Driver) RestartOVS(ctx context.Context, node string) error {
	return RestartOVS(ctx, d.Options.Dir, node)
}

// Partition cuts a node's underlay link (see Partition).
func (d *Driver) Partition(ctx context.Context, node string) error {
	return Partition(ctx, d.Options.Dir, node)
}

// Isolate cuts a server off from the other servers only (see Isolate).
func (d *Driver) Isolate(ctx context.Context, node string) error {
	return Isolate(ctx, d.Options.Dir, node)
}

// Degrade puts loss and delay on a node's underlay link (see Degrade).
func (d *Driver) Degrade(ctx context.Context, node string, lossPercent float64, delay time.Duration) error {
	return Degrade(ctx, d.Options.Dir, node, lossPercent, delay)
}

// LossDrops counts the packets the loss fallback dropped (see LossDrops).
func (d *Driver) LossDrops(ctx context.Context, node string) (uint64, error) {
	return LossDrops(ctx, d.Options.Dir, node)
}

// Heal undoes a node's network faults (see Heal).
func (d *Driver) Heal(ctx context.Context, node string) error {
	return Heal(ctx, d.Options.Dir, node)
}

// OutsideVLAN gives the outside node an address on a VLAN of the VLAN
// physnet (see OutsideVLAN).
func (d *Driver) OutsideVLAN(ctx context.Context, vid int, cidr string) error {
	return OutsideVLAN(ctx, d.Options.Dir, vid, cidr)
}

// State returns the lab's current state (nil before Up).
func (d *Driver) State() *State { return d.state() }
