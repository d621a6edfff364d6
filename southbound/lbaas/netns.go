package lbaas

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"neutrino/southbound/hostnet"
)

// VIPInterface is the name of the VIP's interface inside a load
// balancer's namespace.
const VIPInterface = "vip0"

// Plug describes the namespace of one load balancer and its VIP port.
type Plug struct {
	Namespace string // the load balancer's namespace
	// HostIface is the veth end in the chassis' namespace, added to
	// Bridge as the VIP port; at most 15 bytes.
	HostIface string
	// HostNS is the chassis' namespace, where ovs-vswitchd runs ("": the
	// caller's, as for the agent of a chassis).
	HostNS  string
	OVSDB   string // the chassis' OVSDB (ovs-vsctl --db syntax)
	Bridge  string // integration bridge
	PortID  string // Neutron VIP port id (external_ids:iface-id)
	MAC     string // VIP port MAC
	CIDR    string // VIP address with the subnet's prefix length
	Gateway string // subnet gateway ("" for none)
	MTU     int
}

// HostIfaceName is the chassis-side interface name for a VIP port.
func HostIfaceName(portID string) string {
	id := strings.ReplaceAll(portID, "-", "")
	if len(id) > 11 {
		id = id[:11]
	}
	return "lb-" + id
}

// Up builds the namespace, the veth (VIP MAC, address, MTU, default route
// via the subnet gateway, TX checksum offload off for the userspace
// datapath) and adds its peer to the bridge with external_ids:iface-id.
// A namespace left from before is rebuilt from scratch.
func (p Plug) Up(ctx context.Context) error {
	if err := p.Down(ctx); err != nil {
		return err
	}
	if err := hostnet.CreateNamespace(ctx, p.Namespace); err != nil {
		return fmt.Errorf("lbaas: %w", err)
	}
	if err := hostnet.CreateVeth(hostnet.VethSpec{Name: p.HostIface, Namespace: p.HostNS, PeerName: VIPInterface,
		PeerNS: p.Namespace, PeerMAC: p.MAC, MTU: p.MTU}); err != nil {
		return fmt.Errorf("lbaas: %w", err)
	}
	if err := hostnet.AddAddress(p.Namespace, VIPInterface, p.CIDR); err != nil {
		return fmt.Errorf("lbaas: %w", err)
	}
	if p.Gateway != "" {
		if err := hostnet.AddRoute(p.Namespace, "default", p.Gateway, VIPInterface); err != nil {
			return fmt.Errorf("lbaas: %w", err)
		}
	}
	if err := hostnet.DisableTxOffload(ctx, p.Namespace, VIPInterface); err != nil {
		return fmt.Errorf("lbaas: %w", err)
	}
	if _, err := p.vsctl(ctx, "--may-exist", "add-port", p.Bridge, p.HostIface, "--",
		"set", "Interface", p.HostIface, "external_ids:iface-id="+p.PortID,
		"external_ids:neutrino-lbaas="+p.Namespace); err != nil {
		return fmt.Errorf("lbaas: plug %s: %w", p.PortID, err)
	}
	return nil
}

// Down removes the bridge port and the namespace (and with it the veth);
// what is already gone is not an error.
func (p Plug) Down(ctx context.Context) error {
	if p.HostIface != "" {
		if _, err := p.vsctl(ctx, "--if-exists", "del-port", p.Bridge, p.HostIface); err != nil {
			return fmt.Errorf("lbaas: unplug %s: %w", p.PortID, err)
		}
		if err := hostnet.DeleteLink(p.HostNS, p.HostIface); err != nil {
			return fmt.Errorf("lbaas: %w", err)
		}
	}
	if hostnet.NamespaceExists(p.Namespace) {
		// An HAProxy worker outlives a SIGKILLed master (and the master
		// dies with its agent): whatever still runs in a load balancer's
		// namespace is a leftover of this chassis' agent.
		out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", p.Namespace).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := hostnet.DeleteNamespace(ctx, p.Namespace); err != nil {
		return fmt.Errorf("lbaas: %w", err)
	}
	return nil
}

// SetVIP brings the VIP interface up or down: a fenced gateway takes its
// VIPs down so it stops answering for addresses that may have moved.
func (p Plug) SetVIP(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if _, err := hostnet.Exec(ctx, p.Namespace, "ip", "link", "set", VIPInterface, state); err != nil {
		return fmt.Errorf("lbaas: vip %s: %w", state, err)
	}
	// Taking the link down took the default route with it.
	if up && p.Gateway != "" {
		if err := hostnet.AddRoute(p.Namespace, "default", p.Gateway, VIPInterface); err != nil {
			return fmt.Errorf("lbaas: vip up: %w", err)
		}
	}
	return nil
}

// Announce sends gratuitous ARP for the VIP from its namespace (busybox
// arping), so switches and neighbours learn where it lives now.
func (p Plug) Announce(ctx context.Context) error {
	pfx, err := netip.ParsePrefix(p.CIDR)
	if err != nil || !pfx.Addr().Is4() {
		return nil // IPv6 VIPs: no unsolicited NA yet
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := hostnet.Exec(ctx, p.Namespace, "busybox", "arping", "-U", "-c", "1", "-w", "1",
		"-I", VIPInterface, pfx.Addr().String()); err != nil {
		return fmt.Errorf("lbaas: gratuitous ARP: %w", err)
	}
	return nil
}

func (p Plug) vsctl(ctx context.Context, args ...string) (string, error) {
	if p.OVSDB != "" {
		args = append([]string{"--db=" + p.OVSDB}, args...)
	}
	args = append([]string{"--timeout=10"}, args...)
	out, err := exec.CommandContext(ctx, "ovs-vsctl", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ovs-vsctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Stale lists the namespaces named with prefix (left by an agent that
// died): the caller removes them before building anything.
func Stale(prefix string) []string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}
