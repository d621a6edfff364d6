package ovsproc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"neutrino/southbound/hostnet"
)

// VMSpec describes a workload ("VM") to plug into a bridge of an instance.
type VMSpec struct {
	// Name is the OVS port (and host-side veth) name, at most 15 bytes.
	Name string
	// Bridge to plug into, e.g. "br-int"; it must exist.
	Bridge string
	// MAC of the workload's eth0 (empty: kernel-chosen).
	MAC string
	// CIDR is eth0's address with prefix, e.g. "10.0.0.5/24" (optional).
	CIDR string
	// Gateway, if set, becomes eth0's default route.
	Gateway string
	// IfaceID goes to Interface external_ids:iface-id (the Neutron port id).
	IfaceID string
	// MTU of both veth ends (0: kernel default).
	MTU int
}

// VM is a workload namespace whose eth0 is a veth peered with an OVS port.
type VM struct {
	spec      VMSpec
	namespace string
	inst      *Instance
}

// Namespace returns the workload's network namespace.
func (v *VM) Namespace() string { return v.namespace }

// PortName returns the OVS port / interface name on the bridge.
func (v *VM) PortName() string { return v.spec.Name }

// Spec returns the spec the VM was plugged with.
func (v *VM) Spec() VMSpec { return v.spec }

// Exec runs a command inside the workload namespace (e.g. "ping", "-c1", IP).
func (v *VM) Exec(ctx context.Context, args ...string) (string, error) {
	return hostnet.Exec(ctx, v.namespace, args...)
}

// OFPort returns the OpenFlow port number OVS assigned to the VM's port.
func (v *VM) OFPort(ctx context.Context) (int, error) {
	return v.inst.ofport(ctx, v.spec.Name)
}

// Unplug removes the OVS port and deletes the workload namespace.
func (v *VM) Unplug(ctx context.Context) error {
	return v.inst.unplug(ctx, v)
}

// PlugVM creates a workload namespace "<instance namespace>-<Name>" with
// eth0 (MAC, address, default route, TX checksum offload off) whose veth
// peer, inside the instance's namespace, is added to Bridge as port Name
// with external_ids:iface-id. It returns once OVS has assigned an ofport.
// The VM is unplugged by Stop if the caller does not do it first.
func (i *Instance) PlugVM(ctx context.Context, s VMSpec) (_ *VM, err error) {
	if s.Name == "" || len(s.Name) > 15 {
		return nil, fmt.Errorf("ovsproc %s: VM name %q must be 1-15 bytes", i.name, s.Name)
	}
	if s.Bridge == "" {
		return nil, fmt.Errorf("ovsproc %s: VM %s: no bridge", i.name, s.Name)
	}
	v := &VM{spec: s, namespace: i.namespace + "-" + s.Name, inst: i}

	i.mu.Lock()
	if i.stopped {
		i.mu.Unlock()
		return nil, fmt.Errorf("ovsproc %s: stopped", i.name)
	}
	if _, dup := i.vms[s.Name]; dup {
		i.mu.Unlock()
		return nil, fmt.Errorf("ovsproc %s: VM %s already plugged", i.name, s.Name)
	}
	i.vms[s.Name] = v
	i.mu.Unlock()
	defer func() {
		if err != nil {
			if uerr := v.Unplug(context.Background()); uerr != nil {
				i.log.Warn("cleanup after failed plug", "vm", s.Name, "err", uerr)
			}
		}
	}()

	if err := hostnet.CreateNamespace(ctx, v.namespace); err != nil {
		return nil, fmt.Errorf("plug %s: %w", s.Name, err)
	}
	if err := hostnet.CreateVeth(hostnet.VethSpec{
		Name: s.Name, Namespace: i.namespace,
		PeerName: "eth0", PeerNS: v.namespace, PeerMAC: s.MAC,
		MTU: s.MTU,
	}); err != nil {
		return nil, fmt.Errorf("plug %s: %w", s.Name, err)
	}
	if s.CIDR != "" {
		if err := hostnet.AddAddress(v.namespace, "eth0", s.CIDR); err != nil {
			return nil, fmt.Errorf("plug %s: %w", s.Name, err)
		}
	}
	if s.Gateway != "" {
		if err := hostnet.AddRoute(v.namespace, "default", s.Gateway, "eth0"); err != nil {
			return nil, fmt.Errorf("plug %s: %w", s.Name, err)
		}
	}
	if err := hostnet.DisableTxOffload(ctx, v.namespace, "eth0"); err != nil {
		return nil, fmt.Errorf("plug %s: %w", s.Name, err)
	}
	args := []string{"add-port", s.Bridge, s.Name}
	if s.IfaceID != "" {
		args = append(args, "--", "set", "Interface", s.Name, "external_ids:iface-id="+s.IfaceID)
	}
	if _, err := i.Vsctl(ctx, args...); err != nil {
		return nil, fmt.Errorf("plug %s: %w", s.Name, err)
	}
	err = waitFor(ctx, 10*time.Second, func() (bool, error) {
		n, err := i.ofport(ctx, s.Name)
		return err == nil && n > 0, nil
	})
	if err != nil {
		return nil, fmt.Errorf("plug %s: no ofport: %w", s.Name, err)
	}
	return v, nil
}

func (i *Instance) unplug(ctx context.Context, v *VM) error {
	var errs []error
	if _, err := i.Vsctl(ctx, "--if-exists", "del-port", v.spec.Bridge, v.spec.Name); err != nil {
		errs = append(errs, err)
	}
	// Deleting the namespace destroys eth0 and with it the peer port.
	if err := hostnet.DeleteNamespace(ctx, v.namespace); err != nil {
		errs = append(errs, err)
	}
	i.mu.Lock()
	if i.vms[v.spec.Name] == v {
		delete(i.vms, v.spec.Name)
	}
	i.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unplug %s: %w", v.spec.Name, err)
	}
	return nil
}

// ofport reads Interface.ofport; -1 or an empty set mean not (yet) assigned.
func (i *Instance) ofport(ctx context.Context, iface string) (int, error) {
	out, err := i.Vsctl(ctx, "--no-wait", "get", "Interface", iface, "ofport")
	if err != nil {
		return 0, err
	}
	out = strings.TrimSpace(out)
	if out == "[]" {
		return 0, nil
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		return 0, fmt.Errorf("ofport of %s: %q: %w", iface, out, err)
	}
	return n, nil
}
