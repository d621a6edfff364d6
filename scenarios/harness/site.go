package harness

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"neutrino/southbound/vpnaas"
)

// Site is a remote VPN site a scenario built on the lab's outside node
// (Env.AddSite): a strongSwan gateway whose WAN interface is on the
// external network and a host on a private subnet behind it. Exec and
// Start reach both by name (Name, Host).
type Site struct {
	e *Env
	// Name is the site gateway (also its namespace's name on the outside
	// node); Host the host behind it.
	Name, Host string
	// WAN is the gateway's address on the external network (CIDR form),
	// on its interface wan0; Subnet the private subnet, GatewayIP the
	// site's address on it, HostIP the host's.
	WAN, Subnet, GatewayIP, HostIP string
	// Dir is the charon's directory (its /run) on the outside node.
	Dir    string
	charon *Proc
}

var siteSeq atomic.Int32

// SiteWANHost is the host number of a site's WAN address in the external
// subnet (away from the gateways' and routers' addresses).
const SiteWANHost = 241

// AddSite builds a remote VPN site on the outside node: namespaces
// (Env.AddNamespace) NAME and NAME-host there, the site's wan0 a macvlan of the outside
// node's NIC on the external network (so the site is a neighbour of the
// gateways on that network, as a peer across the Internet is of its
// provider's router), lan0/eth0 a veth pair between the site and its host
// on subnet (10.99.0.0/24: the site .1, the host .10), and the site's
// charon (kernel-libipsec, as on the gateways) running with no
// connection. The test's cleanup stops the charon and removes the
// namespaces and files.
func (e *Env) AddSite(subnet string) *Site {
	e.TB.Helper()
	x := e.Lab.External
	if x == nil || x.NIC == "" {
		e.TB.Fatal("the lab has no outside node on an external network: a VPN site needs one")
	}
	ext, err := netip.ParsePrefix(x.CIDR)
	if err != nil {
		e.TB.Fatalf("external CIDR %q: %v", x.CIDR, err)
	}
	wan := ext.Masked().Addr().As4()
	wan[3] = SiteWANHost
	lan, err := netip.ParsePrefix(subnet)
	if err != nil || !lan.Addr().Is4() || lan.Bits() != 24 {
		e.TB.Fatalf("site subnet %q: want an IPv4 /24", subnet)
	}
	l4 := lan.Masked().Addr().As4()
	l4[3] = 1
	gwIP := netip.AddrFrom4(l4).String()
	l4[3] = 10
	// Unique on the machine: the lab's nodes share one kernel's links.
	name := fmt.Sprintf("nvs%d-%d", os.Getpid()%100000, siteSeq.Add(1))
	s := &Site{e: e, Name: name, Host: name + "-host",
		WAN: fmt.Sprintf("%s/%d", netip.AddrFrom4(wan), ext.Bits()), Subnet: lan.Masked().String(),
		GatewayIP: gwIP, HostIP: netip.AddrFrom4(l4).String()}
	out := x.Node
	s.Dir = strings.TrimSpace(e.MustExec(out, "mktemp", "-d", "/tmp/nv-site-XXXXXX"))
	if !strings.HasPrefix(s.Dir, "/tmp/nv-site-") {
		e.TB.Fatalf("mktemp on %s: %q", out, s.Dir)
	}
	e.TB.Cleanup(func() { _, _ = e.Exec(out, "rm", "-rf", s.Dir) })
	sitePID := e.AddNamespace(s.Name, out)
	hostPID := e.AddNamespace(s.Host, out)
	e.MustExec(out, "sh", "-c", strings.Join([]string{
		"set -e",
		fmt.Sprintf("ip link add %s-w link %s type macvlan mode bridge", name, x.NIC),
		fmt.Sprintf("ip link set %s-w netns %s", name, sitePID),
		fmt.Sprintf("ip link add %s-l type veth peer name %s-h", name, name),
		fmt.Sprintf("ip link set %s-l netns %s", name, sitePID),
		fmt.Sprintf("ip link set %s-h netns %s", name, hostPID),
	}, "\n"))
	e.MustExec(s.Name, "ip", "link", "set", name+"-w", "name", "wan0")
	e.MustExec(s.Name, "ip", "link", "set", name+"-l", "name", "lan0")
	e.MustExec(s.Host, "ip", "link", "set", name+"-h", "name", "eth0")
	for _, step := range []struct {
		node string
		args []string
	}{
		{s.Name, []string{"ip", "link", "set", "lo", "up"}},
		{s.Name, []string{"ip", "addr", "add", s.WAN, "dev", "wan0"}},
		{s.Name, []string{"ip", "link", "set", "wan0", "up"}},
		{s.Name, []string{"ip", "addr", "add", s.GatewayIP + "/24", "dev", "lan0"}},
		{s.Name, []string{"ip", "link", "set", "lan0", "up"}},
		{s.Name, []string{"sh", "-c", sysctlScript, "sh", "net.ipv4.ip_forward=1"}},
		// TX checksums: the netdev datapath does not complete partial ones.
		{s.Name, []string{"sh", "-c", "ethtool -K wan0 tx off >/dev/null 2>&1; ethtool -K lan0 tx off >/dev/null"}},
		{s.Host, []string{"ip", "link", "set", "lo", "up"}},
		{s.Host, []string{"ip", "addr", "add", s.HostIP + "/24", "dev", "eth0"}},
		{s.Host, []string{"ip", "link", "set", "eth0", "up"}},
		{s.Host, []string{"ethtool", "-K", "eth0", "tx", "off"}},
		{s.Host, []string{"ip", "route", "add", "default", "via", s.GatewayIP}},
	} {
		e.MustExec(step.node, step.args...)
	}
	e.MustExec(out, "sh", "-c", `umask 077 && printf '%s' "$1" > "$2/strongswan.conf"`, "sh", vpnaas.StrongswanConf, s.Dir)
	// A private mount namespace (unshare -m): /run bound to the site's
	// directory there is its charon's alone (its pid file path is fixed).
	s.charon = e.Start(s.Name, "unshare", "-m", "sh", "-c", `mount --bind "$1" /run && STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"`,
		"sh", s.Dir, vpnaas.CharonPath)
	Poll(e.TB, 20*time.Second, "the site's charon answers on vici", func() error {
		if s.charon.Exited() {
			return fmt.Errorf("charon exited: %s", s.charon.Stderr())
		}
		_, err := s.swanctl("--stats")
		return err
	})
	return s
}

// swanctl runs a swanctl command (first in args: swanctl takes its
// options after it) against the site's charon.
func (s *Site) swanctl(args ...string) (string, error) {
	return s.e.Exec(s.e.Lab.External.Node, append(append([]string{"swanctl"}, args...), "--uri", "unix://"+s.Dir+"/charon.vici")...)
}

// WANIP is the site's WAN address without the prefix length.
func (s *Site) WANIP() string { a, _, _ := strings.Cut(s.WAN, "/"); return a }

// Connect replaces the site's connections and secrets with conns (swanctl
// --load-all: what conns lack is unloaded). The file holds PSKs: written
// 0600, removed after loading.
func (s *Site) Connect(conns []vpnaas.Conn) {
	s.e.TB.Helper()
	conf, err := vpnaas.Render(conns)
	if err != nil {
		s.e.TB.Fatalf("render the site's connections: %v", err)
	}
	out := s.e.Lab.External.Node
	f := s.Dir + "/swanctl.conf"
	s.e.MustExec(out, "sh", "-c", `umask 077 && printf '%s' "$1" > "$2"`, "sh", conf, f)
	defer func() { _, _ = s.e.Exec(out, "rm", "-f", f) }()
	if o, err := s.swanctl("--load-all", "--noprompt", "--file", f); err != nil {
		s.e.TB.Fatalf("load the site's connections: %v: %s", err, o)
	}
}

// Log is the tail of the site's charon log.
func (s *Site) Log(lines int) string {
	out, err := s.e.Exec(s.e.Lab.External.Node, "tail", "-n", fmt.Sprint(lines), s.Dir+"/charon.log")
	if err != nil {
		return err.Error()
	}
	return out
}
