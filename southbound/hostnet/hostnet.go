// Package hostnet is the host plumbing that chassis, workloads and the lab
// are built from: named network namespaces, veth pairs between them,
// addresses, routes and commands run inside a namespace.
//
// Namespaces are created and deleted with `ip netns` because it owns the
// /run/netns bind-mount convention that every other tool (ip netns exec,
// ovs, tcpdump) understands. Links, addresses and routes go through netlink
// handles opened inside the target namespace, so no goroutine ever moves
// its OS thread between namespaces. The empty namespace name means the
// namespace of the calling process.
package hostnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns` keeps its bind-mounted namespace files.
const netnsDir = "/run/netns"

// NamespaceExists reports whether a named network namespace exists.
func NamespaceExists(name string) bool {
	if name == "" {
		return true
	}
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// CreateNamespace creates a named network namespace with its loopback up.
// It fails if the namespace already exists, so a caller knows it owns it.
func CreateNamespace(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("hostnet: empty namespace name")
	}
	if _, err := run(ctx, "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	// Many tools (ovs tunnels, ping to self) quietly need lo up.
	if err := SetLinkUp(name, "lo"); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// DeleteNamespace deletes a named network namespace; a missing one is not an
// error. Deleting a namespace destroys the veths and taps inside it.
func DeleteNamespace(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("hostnet: refusing to delete the current namespace")
	}
	if !NamespaceExists(name) {
		return nil
	}
	if _, err := run(ctx, "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// Exec runs a command inside a namespace ("" runs it in the current one)
// and returns its standard output; standard error is part of the error.
func Exec(ctx context.Context, namespace string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("hostnet: exec: no command")
	}
	if namespace != "" {
		args = append([]string{"ip", "netns", "exec", namespace}, args...)
	}
	return run(ctx, args[0], args[1:]...)
}

// Command returns an unstarted command that will run inside a namespace,
// for callers that need a long-running process or their own I/O.
func Command(ctx context.Context, namespace string, args ...string) *exec.Cmd {
	if namespace != "" {
		args = append([]string{"ip", "netns", "exec", namespace}, args...)
	}
	return exec.CommandContext(ctx, args[0], args[1:]...)
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "),
			err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// VethSpec describes a veth pair whose two ends may live in different
// namespaces. Both ends are brought up.
type VethSpec struct {
	Name      string // first end
	Namespace string // namespace of the first end ("" = current)
	MAC       string // optional MAC of the first end
	PeerName  string // second end
	PeerNS    string // namespace of the second end ("" = current)
	PeerMAC   string // optional MAC of the second end
	MTU       int    // optional, both ends
}

// CreateVeth creates a veth pair directly in its target namespaces (the
// peer is created inside PeerNS with its final name, so no temporary name
// can collide in the root namespace) and brings both ends up.
func CreateVeth(s VethSpec) error {
	if s.Name == "" || s.PeerName == "" {
		return errors.New("hostnet: veth needs both names")
	}
	h, closeH, err := handleAt(s.Namespace)
	if err != nil {
		return err
	}
	defer closeH()
	peerNS, err := nsHandle(s.PeerNS)
	if err != nil {
		return err
	}
	defer peerNS.Close()

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: s.Name, MTU: s.MTU},
		PeerName:      s.PeerName,
		PeerNamespace: netlink.NsFd(int(peerNS)),
		PeerMTU:       uint32(s.MTU),
	}
	if s.MAC != "" {
		if veth.HardwareAddr, err = net.ParseMAC(s.MAC); err != nil {
			return fmt.Errorf("veth %s: %w", s.Name, err)
		}
	}
	if s.PeerMAC != "" {
		if veth.PeerHardwareAddr, err = net.ParseMAC(s.PeerMAC); err != nil {
			return fmt.Errorf("veth %s: %w", s.PeerName, err)
		}
	}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s/%s <-> %s/%s: %w", s.Namespace, s.Name, s.PeerNS, s.PeerName, err)
	}
	if err := SetLinkUp(s.Namespace, s.Name); err != nil {
		return err
	}
	return SetLinkUp(s.PeerNS, s.PeerName)
}

// DeleteLink deletes a link; a missing link is not an error.
func DeleteLink(namespace, name string) error {
	h, closeH, err := handleAt(namespace)
	if err != nil {
		return err
	}
	defer closeH()
	l, err := h.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		return fmt.Errorf("delete link %s/%s: %w", namespace, name, err)
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("delete link %s/%s: %w", namespace, name, err)
	}
	return nil
}

// SetLinkUp brings a link up.
func SetLinkUp(namespace, name string) error {
	return withLink(namespace, name, "set up", func(h *netlink.Handle, l netlink.Link) error {
		return h.LinkSetUp(l)
	})
}

// SetMTU sets a link's MTU.
func SetMTU(namespace, name string, mtu int) error {
	return withLink(namespace, name, "set mtu", func(h *netlink.Handle, l netlink.Link) error {
		return h.LinkSetMTU(l, mtu)
	})
}

// SetMAC sets a link's Ethernet address.
func SetMAC(namespace, name, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("set mac %s/%s: %w", namespace, name, err)
	}
	return withLink(namespace, name, "set mac", func(h *netlink.Handle, l netlink.Link) error {
		return h.LinkSetHardwareAddr(l, hw)
	})
}

// AddAddress adds an address in CIDR form (10.0.0.5/24) to a link; an
// address already present is not an error, so callers can converge.
func AddAddress(namespace, name, cidr string) error {
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("add address %s to %s/%s: %w", cidr, namespace, name, err)
	}
	return withLink(namespace, name, "add address "+cidr, func(h *netlink.Handle, l netlink.Link) error {
		if err := h.AddrAdd(l, addr); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		return nil
	})
}

// AddRoute adds (or replaces) a route to dst ("default" or a CIDR) via gw,
// out of link dev when dev is not empty.
func AddRoute(namespace, dst, gw, dev string) error {
	h, closeH, err := handleAt(namespace)
	if err != nil {
		return err
	}
	defer closeH()
	r := &netlink.Route{}
	if dst != "default" && dst != "" {
		if _, r.Dst, err = net.ParseCIDR(dst); err != nil {
			return fmt.Errorf("add route %s: %w", dst, err)
		}
	}
	if gw != "" {
		if r.Gw = net.ParseIP(gw); r.Gw == nil {
			return fmt.Errorf("add route %s: bad gateway %q", dst, gw)
		}
	}
	if dev != "" {
		l, err := h.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("add route %s: %w", dst, err)
		}
		r.LinkIndex = l.Attrs().Index
	}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add route %s via %s in %s: %w", dst, gw, namespace, err)
	}
	return nil
}

// LinkMAC returns a link's Ethernet address.
func LinkMAC(namespace, name string) (string, error) {
	var mac string
	err := withLink(namespace, name, "read mac", func(_ *netlink.Handle, l netlink.Link) error {
		mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	return mac, err
}

// LinkExists reports whether a link exists in a namespace.
func LinkExists(namespace, name string) (bool, error) {
	h, closeH, err := handleAt(namespace)
	if err != nil {
		return false, err
	}
	defer closeH()
	if _, err := h.LinkByName(name); err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// DisableTxOffload turns TX checksum offload off on a link. A veth into the
// userspace datapath needs this: OVS netdev does not fill in checksums the
// kernel left partial, so TCP and UDP fail while ping works.
func DisableTxOffload(ctx context.Context, namespace, name string) error {
	if _, err := Exec(ctx, namespace, "ethtool", "-K", name, "tx", "off"); err != nil {
		return fmt.Errorf("disable tx offload on %s/%s: %w", namespace, name, err)
	}
	return nil
}

func withLink(namespace, name, what string, fn func(*netlink.Handle, netlink.Link) error) error {
	h, closeH, err := handleAt(namespace)
	if err != nil {
		return err
	}
	defer closeH()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s on %s/%s: %w", what, namespace, name, err)
	}
	if err := fn(h, l); err != nil {
		return fmt.Errorf("%s on %s/%s: %w", what, namespace, name, err)
	}
	return nil
}

// nsHandle opens a namespace; "" is the calling process' namespace (read
// from /proc/self, not the current thread, which may have been moved).
func nsHandle(namespace string) (netns.NsHandle, error) {
	var (
		h   netns.NsHandle
		err error
	)
	if namespace == "" {
		h, err = netns.GetFromPath("/proc/self/ns/net")
	} else {
		h, err = netns.GetFromName(namespace)
	}
	if err != nil {
		return netns.None(), fmt.Errorf("open namespace %q: %w", namespace, err)
	}
	return h, nil
}

func handleAt(namespace string) (*netlink.Handle, func(), error) {
	ns, err := nsHandle(namespace)
	if err != nil {
		return nil, nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("netlink handle in %q: %w", namespace, err)
	}
	return h, h.Close, nil
}
