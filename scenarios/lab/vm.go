package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"neutrino/northbound/client"
	"neutrino/scenarios"
	"neutrino/southbound/hostnet"
)

// vmName is what a VM may be called: it becomes part of a namespace name.
var vmName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$`)

// BrIntTimeout bounds how long AddVM waits for the controller to create
// br-int on the chassis.
const BrIntTimeout = 30 * time.Second

// VMSpec is what AddVM plugs: the Neutron port's view of the workload.
type VMSpec struct {
	MAC     string
	CIDR    string // address/prefix, the prefix from the subnet's cidr
	Gateway string // the subnet's gateway_ip, or empty
	MTU     int    // the network's mtu, or 0
	// DHCP says the IPv4 subnet has enable_dhcp: the VM asks for its
	// address instead of the lab writing it.
	DHCP bool
	// DHCP6 says the port has an address on a dhcpv6-stateful subnet.
	DHCP6 bool
}

// PortSpec reads a Neutron port, its first fixed IP's subnet and its
// network through the API and returns what a workload needs.
func PortSpec(ctx context.Context, c *client.Client, portID string) (VMSpec, error) {
	port, err := c.Get(ctx, "ports", "port", portID)
	if err != nil {
		return VMSpec{}, fmt.Errorf("lab: read port %s: %w", portID, err)
	}
	var p struct {
		MAC      string `json:"mac_address"`
		Network  string `json:"network_id"`
		FixedIPs []struct {
			SubnetID  string `json:"subnet_id"`
			IPAddress string `json:"ip_address"`
		} `json:"fixed_ips"`
	}
	if err := remarshal(port, &p); err != nil {
		return VMSpec{}, fmt.Errorf("lab: port %s: %w", portID, err)
	}
	if p.MAC == "" {
		return VMSpec{}, fmt.Errorf("lab: port %s has no mac_address", portID)
	}
	spec := VMSpec{MAC: p.MAC}
	for _, f := range p.FixedIPs {
		if ip, err := netip.ParseAddr(f.IPAddress); err != nil || !ip.Is6() {
			continue
		}
		sub, err := c.Get(ctx, "subnets", "subnet", f.SubnetID)
		if err != nil {
			return VMSpec{}, fmt.Errorf("lab: read subnet %s of port %s: %w", f.SubnetID, portID, err)
		}
		var s struct {
			EnableDHCP  bool   `json:"enable_dhcp"`
			AddressMode string `json:"ipv6_address_mode"`
		}
		if err := remarshal(sub, &s); err == nil && s.EnableDHCP && s.AddressMode == "dhcpv6-stateful" {
			spec.DHCP6 = true
		}
	}
	for _, f := range p.FixedIPs {
		ip, err := netip.ParseAddr(f.IPAddress)
		if err != nil || !ip.Is4() {
			continue // the lab plugs IPv4 only
		}
		sub, err := c.Get(ctx, "subnets", "subnet", f.SubnetID)
		if err != nil {
			return VMSpec{}, fmt.Errorf("lab: read subnet %s of port %s: %w", f.SubnetID, portID, err)
		}
		var s struct {
			CIDR       string  `json:"cidr"`
			Gateway    *string `json:"gateway_ip"`
			EnableDHCP bool    `json:"enable_dhcp"`
		}
		if err := remarshal(sub, &s); err != nil {
			return VMSpec{}, fmt.Errorf("lab: subnet %s: %w", f.SubnetID, err)
		}
		pfx, err := netip.ParsePrefix(s.CIDR)
		if err != nil {
			return VMSpec{}, fmt.Errorf("lab: subnet %s cidr %q: %w", f.SubnetID, s.CIDR, err)
		}
		spec.CIDR = netip.PrefixFrom(ip, pfx.Bits()).String()
		spec.DHCP = s.EnableDHCP
		if s.Gateway != nil {
			spec.Gateway = *s.Gateway
		}
		break
	}
	if p.Network != "" {
		net, err := c.Get(ctx, "networks", "network", p.Network)
		if err != nil {
			return VMSpec{}, fmt.Errorf("lab: read network %s of port %s: %w", p.Network, portID, err)
		}
		var n struct {
			MTU int `json:"mtu"`
		}
		if err := remarshal(net, &n); err == nil {
			spec.MTU = n.MTU
		}
	}
	return spec, nil
}

func remarshal(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// VMOptions change how AddVMWith plugs a workload.
type VMOptions struct {
	// Static writes the port's address, gateway and MTU into the VM
	// instead of running a DHCP client in it.
	Static bool
	// Binary is the neutrino binary that runs the VM's DHCPv6 client
	// (default: this executable).
	Binary string
}

// AddVM plugs a workload as AddVMWith does with the default options: the
// VM gets its IPv4 address by DHCP when its subnet has enable_dhcp.
func AddVM(ctx context.Context, dir, name, portID, chassis string, log *slog.Logger) error {
	return AddVMWith(ctx, dir, name, portID, chassis, VMOptions{}, log)
}

// AddVMWith plugs a workload namespace <prefix>vm-NAME into a chassis' br-int
// as Neutron port portID: eth0 with the port's MAC and address, a default
// route via the subnet's gateway, the network's MTU and TX checksum
// offload off; the OVS port is tap<first 11 of the port id>, as Neutron
// names it, with external_ids:iface-id=portID. It reads the port through
// the API of the lab's servers. Unless o.Static (or the subnet has no
// DHCP), eth0 gets its address, routes, MTU and DNS from busybox udhcpc
// run in the namespace, and AddVMWith returns once it has an address. The
// kernel configures IPv6 from router advertisements (SLAAC).
func AddVMWith(ctx context.Context, dir, name, portID, chassis string, o VMOptions, log *slog.Logger) error {
	if !vmName.MatchString(name) {
		return fmt.Errorf("lab: VM name %q: want 1-32 of [a-zA-Z0-9_.-], starting alphanumeric", name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, lk, err := openLab(dir)
	if err != nil {
		return err
	}
	defer lk.release()
	st := s.snapshot()
	n := st.Node(chassis)
	if n == nil || n.Kind == scenarios.KindServer {
		return fmt.Errorf("lab: %q is not a chassis or gateway of the lab (see `neutrino lab status`)", chassis)
	}
	if st.VM(name) != nil {
		return fmt.Errorf("lab: VM %s exists", name)
	}
	for _, v := range st.VMs {
		if v.PortID == portID {
			return fmt.Errorf("lab: port %s is already plugged as VM %s", portID, v.Name)
		}
	}
	spec, err := portSpecFromLab(ctx, st, portID)
	if err != nil {
		return err
	}
	ovsPort := "tap" + portID
	if len(ovsPort) > 14 {
		ovsPort = ovsPort[:14]
	}
	vm := &VM{Name: name, Namespace: st.Prefix + "vm-" + name, Chassis: chassis, PortID: portID,
		OVSPort: ovsPort, MAC: spec.MAC, CIDR: spec.CIDR, Gateway: spec.Gateway, MTU: spec.MTU,
		DHCP: spec.DHCP && !o.Static, DHCP6: spec.DHCP6 && !o.Static}
	if err := s.update(func(st *State) {
		st.addNamespace(vm.Namespace)
		st.VMs = append(st.VMs, vm)
	}); err != nil {
		return err
	}
	err = plug(ctx, n, vm)
	if err == nil && vm.DHCP {
		err = s.startDHCP(ctx, vm)
	}
	if err == nil && vm.DHCP6 {
		err = s.startDHCP6(ctx, o.Binary, vm)
	}
	if err != nil {
		if uerr := unplug(context.Background(), n, vm); uerr != nil {
			log.Warn("cleanup after failed plug", "vm", name, "err", uerr)
		}
		_ = s.update(func(st *State) { st.removeVM(name) })
		return fmt.Errorf("lab: VM %s: %w", name, err)
	}
	log.Info("VM plugged", "vm", name, "chassis", chassis, "port", portID, "mac", vm.MAC, "cidr", vm.CIDR)
	return nil
}

// portSpecFromLab reads a port through the first server that answers;
// servers the lab has cut off are asked last, and an answer that the
// server cannot serve now (5xx: no leader on its side) is not final.
func portSpecFromLab(ctx context.Context, st *State, portID string) (VMSpec, error) {
	var errs []error
	var servers, cut []*Node
	for _, n := range st.Nodes {
		if n.Kind != scenarios.KindServer || n.API == "" {
			continue
		}
		if n.Killed || n.Partitioned || n.Isolated {
			cut = append(cut, n)
		} else {
			servers = append(servers, n)
		}
	}
	for _, n := range append(servers, cut...) {
		c, err := apiClient(st, n.API, 10*time.Second)
		if err != nil {
			return VMSpec{}, err
		}
		spec, err := PortSpec(ctx, c, portID)
		var apiErr *client.Error
		if err == nil || (errors.As(err, &apiErr) && apiErr.Status < 500) {
			return spec, err // the API answered: its answer stands
		}
		errs = append(errs, err)
	}
	return VMSpec{}, fmt.Errorf("lab: no server answered: %w", errors.Join(errs...))
}

func plug(ctx context.Context, n *Node, vm *VM) error {
	// The controller creates br-int once the chassis has joined; wait for it.
	err := poll(ctx, BrIntTimeout, func() (bool, string, error) {
		_, err := vsctl(ctx, n, "br-exists", intBridge)
		return err == nil, "", nil
	})
	if err != nil {
		return fmt.Errorf("%s has no %s (the controller creates it): %w", n.Name, intBridge, err)
	}
	if err := hostnet.CreateNamespace(ctx, vm.Namespace); err != nil {
		return err
	}
	if err := hostnet.CreateVeth(hostnet.VethSpec{
		Name: vm.OVSPort, Namespace: n.Namespace,
		PeerName: "eth0", PeerNS: vm.Namespace, PeerMAC: vm.MAC, MTU: staticMTU(vm),
	}); err != nil {
		return err
	}
	if err := ipv6Autoconf(ctx, vm.Namespace); err != nil {
		return err
	}
	if vm.CIDR != "" && !vm.DHCP {
		if err := hostnet.AddAddress(vm.Namespace, "eth0", vm.CIDR); err != nil {
			return err
		}
	}
	if vm.Gateway != "" && !vm.DHCP {
		if err := hostnet.AddRoute(vm.Namespace, "default", vm.Gateway, "eth0"); err != nil {
			return err
		}
	}
	// The netdev datapath does not complete partial checksums.
	if err := hostnet.DisableTxOffload(ctx, vm.Namespace, "eth0"); err != nil {
		return err
	}
	if _, err := vsctl(ctx, n, "--may-exist", "add-port", intBridge, vm.OVSPort,
		"--", "set", "Interface", vm.OVSPort,
		"external_ids:iface-id="+strconv.Quote(vm.PortID),
		"external_ids:attached-mac="+strconv.Quote(vm.MAC),
		"external_ids:iface-status=active",
		"external_ids:vm-id="+strconv.Quote(vm.Name)); err != nil {
		return err
	}
	return poll(ctx, 10*time.Second, func() (bool, string, error) {
		out, err := vsctl(ctx, n, "get", "Interface", vm.OVSPort, "ofport")
		if err != nil {
			return false, err.Error(), nil
		}
		p, err := strconv.Atoi(strings.TrimSpace(out))
		return err == nil && p > 0, "no ofport yet: " + strings.TrimSpace(out), nil
	})
}

// staticMTU is the MTU the lab writes: none when DHCP gives it (option 26).
func staticMTU(vm *VM) int {
	if vm.DHCP {
		return 0
	}
	return vm.MTU
}

func unplug(ctx context.Context, n *Node, vm *VM) error {
	var errs []error
	for _, p := range []*Process{vm.DHCPClient, vm.DHCP6Client} {
		if p == nil {
			continue
		}
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	if n != nil {
		if _, err := vsctl(ctx, n, "--if-exists", "del-port", intBridge, vm.OVSPort); err != nil {
			errs = append(errs, err)
		}
	}
	if err := hostnet.DeleteNamespace(ctx, vm.Namespace); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DelVM unplugs a VM and deletes its namespace.
func DelVM(ctx context.Context, dir, name string) error {
	s, lk, err := openLab(dir)
	if err != nil {
		return err
	}
	defer lk.release()
	st := s.snapshot()
	vm := st.VM(name)
	if vm == nil {
		return fmt.Errorf("lab: no VM %s", name)
	}
	if err := unplug(ctx, st.Node(vm.Chassis), vm); err != nil {
		return fmt.Errorf("lab: VM %s: %w", name, err)
	}
	return s.update(func(st *State) { st.removeVM(name) })
}

func (st *State) removeVM(name string) {
	for i, v := range st.VMs {
		if v.Name == name {
			st.VMs = append(st.VMs[:i], st.VMs[i+1:]...)
			for j, ns := range st.Namespaces {
				if ns == v.Namespace {
					st.Namespaces = append(st.Namespaces[:j], st.Namespaces[j+1:]...)
					break
				}
			}
			return
		}
	}
}

// vsctl runs ovs-vsctl against a chassis' database (unix socket).
func vsctl(ctx context.Context, n *Node, args ...string) (string, error) {
	return vsctlDB(ctx, n.OVSDBUnix, args...)
}

// vsctlDB runs ovs-vsctl against the OVSDB endpoint db.
func vsctlDB(ctx context.Context, db string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return hostnet.Exec(cctx, "", append([]string{"ovs-vsctl", "--db=" + db, "--timeout=15"}, args...)...)
}

// openLab locks the lab in dir and loads its state.
func openLab(dir string) (*store, *lock, error) {
	if dir == "" {
		dir = DefaultDir
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := LoadState(dir); err != nil {
		return nil, nil, err
	}
	lk, err := acquireLock(dir)
	if err != nil {
		return nil, nil, err
	}
	st, err := LoadState(dir)
	if err != nil {
		lk.release()
		return nil, nil, err
	}
	return &store{path: filepath.Join(dir, stateFile), st: st}, lk, nil
}

// Command returns an unstarted command that runs args on a lab node, VM,
// the outside node or "underlay" (inside its namespace). On a chassis and
// on the outside node OVS_RUNDIR points at its OVS, so ovs-vsctl and
// `ovs-ofctl dump-flows br-int` work as on a real one.
func Command(ctx context.Context, st *State, name string, args ...string) (*exec.Cmd, error) {
	if len(args) == 0 {
		return nil, errors.New("lab: exec: no command")
	}
	var ns, ovsDir string
	if n := st.Node(name); n != nil {
		ns, ovsDir = n.Namespace, n.OVSDir
	} else if v := st.VM(name); v != nil {
		ns = v.Namespace
	} else if name == "underlay" {
		ns = st.Underlay.Namespace
	} else if st.Outside != nil && name == st.Outside.Name {
		ns, ovsDir = st.Outside.Namespace, st.Outside.OVSDir
	} else if s := st.Site(strings.TrimSuffix(name, "-host")); s != nil {
		ns = s.Namespace
		if strings.HasSuffix(name, "-host") {
			ns = s.HostNamespace
		}
	} else {
		return nil, fmt.Errorf("lab: no node or VM %q (see `neutrino lab status`)", name)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = os.Environ()
	if ovsDir != "" {
		cmd.Env = append(cmd.Env, "OVS_RUNDIR="+ovsDir, "OVS_DBDIR="+ovsDir, "OVS_LOGDIR="+ovsDir)
	}
	return cmd, nil
}

// StopAgent kills a node's agent with SIGKILL, as a crash would.
func StopAgent(ctx context.Context, dir, name string) error {
	s, lk, err := openLab(dir)
	if err != nil {
		return err
	}
	defer lk.release()
	st := s.snapshot()
	n := st.Node(name)
	if n == nil {
		return fmt.Errorf("lab: no node %s", name)
	}
	for _, p := range st.Processes {
		if p.PID == n.AgentPID && p.alive() {
			if err := p.kill(); err != nil {
				return err
			}
			if !waitUntil(ctx, 5*time.Second, func() bool { return !p.alive() }) {
				return fmt.Errorf("lab: agent of %s (pid %d) did not exit", name, p.PID)
			}
			return nil
		}
	}
	return fmt.Errorf("lab: the agent of %s is not running", name)
}

// StartAgent starts a node's agent again (after StopAgent or a crash).
func StartAgent(_ context.Context, dir, name, binary string) error {
	s, lk, err := openLab(dir)
	if err != nil {
		return err
	}
	defer lk.release()
	st := s.snapshot()
	if st.Node(name) == nil {
		return fmt.Errorf("lab: no node %s", name)
	}
	if st.AgentAlive(name) {
		return fmt.Errorf("lab: the agent of %s is running", name)
	}
	if binary == "" {
		if binary, err = os.Executable(); err != nil {
			return err
		}
	}
	return startAgent(s, binary, name)
}
