package vpnaas

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"neutrino/southbound/hostnet"
	"neutrino/southbound/pipeline"
)

// InsideLink is the name of the namespace's port toward the router.
const InsideLink = "in0"

// Plumbing is what a router's VPN namespace looks like; Ensure makes it
// so, whatever was there.
type Plumbing struct {
	// Namespace is the VPN namespace's name.
	Namespace string
	// ChassisNS is the namespace the chassis' OVS runs in ("": this
	// process').
	ChassisNS string
	// OVSDB is the chassis' OVSDB endpoint (ovs-vsctl --db); Bridge br-int.
	OVSDB, Bridge string
	// Port is the chassis end of the veth, a port of Bridge.
	Port string
	// RouterID names the router (iface-id).
	RouterID string
	// RouterKey is the router's datapath key (port name, MACs): unique
	// among routers, so two routers' VPN ports never share a name.
	RouterKey uint32
	// ExternalIP is the router's external address, a second address of the
	// namespace's port: IKE and ESP-in-UDP come from and go to it.
	ExternalIP string
	// LocalCIDRs are the router's subnets behind the tunnels; PeerAddrs
	// the peers' gateways; PeerCIDRs what is behind them.
	LocalCIDRs, PeerAddrs, PeerCIDRs []string
	// LocalAddrs are the router's addresses on the local subnets, put on
	// the namespace's lo: kernel-libipsec installs an SA's route only with
	// a source address inside the local traffic selector (and the
	// namespace's own packets into the tunnel, ICMP errors, come from the
	// router's address).
	LocalAddrs []string
}

// PortName is the chassis end of the VPN veth of the router with datapath
// key routerKey (15 bytes at most).
func PortName(routerKey uint32) string {
	return "vpn" + fmt.Sprintf("%08x", routerKey)
}

// NamespaceName is a router's VPN namespace: prefix + 12 characters of its
// id.
func NamespaceName(prefix, routerID string) string {
	id := strings.ReplaceAll(routerID, "-", "")
	if len(id) > 12 {
		id = id[:12]
	}
	return prefix + id
}

func (p Plumbing) ip(ctx context.Context, args ...string) (string, error) {
	return hostnet.Exec(ctx, "", append([]string{"ip", "-n", p.Namespace}, args...)...)
}

// Ensure creates or repairs the namespace, its veth into the bridge, its
// addresses, neighbour entry and routes.
func (p Plumbing) Ensure(ctx context.Context) error {
	if !hostnet.NamespaceExists(p.Namespace) {
		if err := hostnet.CreateNamespace(ctx, p.Namespace); err != nil {
			return err
		}
	}
	for _, s := range []string{"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"} {
		if _, err := hostnet.Exec(ctx, p.Namespace, "sysctl", "-qw", s); err != nil {
			return err
		}
	}
	inside, err := hostnet.LinkExists(p.Namespace, InsideLink)
	if err != nil {
		return err
	}
	// A veth made afresh is added to the bridge afresh: ovs-vswitchd does
	// not reopen a port whose device went away and came back.
	addPort := []string{"--may-exist", "add-port", p.Bridge, p.Port}
	if !inside {
		addPort = []string{"--if-exists", "del-port", p.Bridge, p.Port, "--", "add-port", p.Bridge, p.Port}
		_ = hostnet.DeleteLink(p.ChassisNS, p.Port)
		if err := hostnet.CreateVeth(hostnet.VethSpec{
			Name: p.Port, Namespace: p.ChassisNS, PeerName: InsideLink, PeerNS: p.Namespace,
			PeerMAC: pipeline.VPNNamespaceMAC(p.RouterKey).String(),
		}); err != nil {
			return err
		}
		for _, end := range [][2]string{{p.ChassisNS, p.Port}, {p.Namespace, InsideLink}} {
			if err := hostnet.DisableTxOffload(ctx, end[0], end[1]); err != nil {
				return err
			}
		}
	}
	args := append([]string{"ovs-vsctl", "--db=" + p.OVSDB, "--timeout=10"}, addPort...)
	if _, err := hostnet.Exec(ctx, p.ChassisNS, append(args,
		"--", "set", "Interface", p.Port, "external_ids:iface-id="+pipeline.VPNIfaceID(p.RouterID),
		"external_ids:neutrino-vpn="+p.RouterID)...); err != nil {
		return err
	}
	if err := p.addresses(ctx); err != nil {
		return err
	}
	if _, err := p.ip(ctx, "neigh", "replace", pipeline.VPNRouterIP.String(), "lladdr",
		pipeline.VPNRouterMAC(p.RouterKey).String(), "dev", InsideLink, "nud", "permanent"); err != nil {
		return err
	}
	return p.routes(ctx)
}

func (p Plumbing) addresses(ctx context.Context) error {
	want := []string{netip.PrefixFrom(pipeline.VPNNamespaceIP, 30).String()}
	if p.ExternalIP != "" {
		want = append(want, p.ExternalIP+"/32")
	}
	if err := p.syncAddrs(ctx, InsideLink, want); err != nil {
		return err
	}
	var lo []string
	for _, a := range p.LocalAddrs {
		lo = append(lo, a+"/32")
	}
	if err := p.syncAddrs(ctx, "lo", append(lo, "127.0.0.1/8")); err != nil {
		return err
	}
	_, err := p.ip(ctx, "link", "set", InsideLink, "up")
	return err
}

// syncAddrs makes a link's IPv4 addresses exactly want.
func (p Plumbing) syncAddrs(ctx context.Context, link string, want []string) error {
	out, err := p.ip(ctx, "-o", "-4", "addr", "show", "dev", link)
	if err != nil {
		return err
	}
	var have []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if i := slices.Index(f, "inet"); i >= 0 && i+1 < len(f) {
			have = append(have, f[i+1])
		}
	}
	for _, a := range have {
		if !slices.Contains(want, a) {
			if _, err := p.ip(ctx, "addr", "del", a, "dev", link); err != nil {
				return err
			}
		}
	}
	for _, a := range want {
		if !slices.Contains(have, a) {
			if _, err := p.ip(ctx, "addr", "add", a, "dev", link); err != nil {
				return err
			}
		}
	}
	return nil
}

// routes keeps the namespace's main table: the local subnets and the peer
// gateways through the router, the peer CIDRs blackholed. charon's routes
// to the peer CIDRs (table 220, into kernel-libipsec's ipsec0) come first
// while an SA is up; without one a packet to a peer CIDR is dropped here
// instead of going back to the router (a loop) or anywhere unencrypted.
func (p Plumbing) routes(ctx context.Context) error {
	gw := pipeline.VPNRouterIP.String()
	want := map[string][]string{}
	for _, c := range p.LocalCIDRs {
		want[c] = []string{"via", gw, "dev", InsideLink}
	}
	for _, a := range p.PeerAddrs {
		r := []string{"via", gw, "dev", InsideLink}
		if p.ExternalIP != "" {
			r = append(r, "src", p.ExternalIP)
		}
		want[a+"/32"] = r
	}
	for _, c := range p.PeerCIDRs {
		want[c] = []string{"blackhole"}
	}
	out, err := p.ip(ctx, "-4", "route", "show", "proto", "static")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "blackhole" && len(f) > 1 {
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if r, ok := want[dst]; !ok || (r[0] == "blackhole") != (f[0] == "blackhole") {
			if _, err := p.ip(ctx, "route", "del", dst); err != nil {
				return err
			}
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, dst := range keys {
		r := want[dst]
		args := []string{"route", "replace"}
		if r[0] == "blackhole" {
			args = append(args, "blackhole", dst)
		} else {
			args = append(append(args, dst), r...)
		}
		if _, err := p.ip(ctx, append(args, "proto", "static")...); err != nil {
			return err
		}
	}
	return nil
}

// RemovePorts deletes every VPN port (PortName) of a bridge: what an
// earlier run of the agent left.
func RemovePorts(ctx context.Context, ovsdb, bridge string) error {
	if _, err := hostnet.Exec(ctx, "", "ovs-vsctl", "--db="+ovsdb, "--timeout=10", "br-exists", bridge); err != nil {
		return nil // no bridge yet (or no OVSDB): no port of ours either
	}
	out, err := hostnet.Exec(ctx, "", "ovs-vsctl", "--db="+ovsdb, "--timeout=10", "list-ports", bridge)
	if err != nil {
		return err
	}
	for _, port := range strings.Fields(out) {
		if len(port) == len("vpn")+8 && strings.HasPrefix(port, "vpn") {
			if _, err := hostnet.Exec(ctx, "", "ovs-vsctl", "--db="+ovsdb, "--timeout=10", "--if-exists", "del-port", bridge, port); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove deletes the namespace and the port.
func (p Plumbing) Remove(ctx context.Context) error {
	if p.OVSDB != "" {
		if _, err := hostnet.Exec(ctx, p.ChassisNS, "ovs-vsctl", "--db="+p.OVSDB, "--timeout=10",
			"--if-exists", "del-port", p.Bridge, p.Port); err != nil {
			return err
		}
	}
	if err := hostnet.DeleteLink(p.ChassisNS, p.Port); err != nil {
		return err
	}
	return hostnet.DeleteNamespace(ctx, p.Namespace)
}
