package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"neutrino/southbound/hostnet"
	"neutrino/southbound/vpnaas"
)

// Remote sites for VPN tests (issue 13): a site is a strongSwan gateway on
// the external flat physnet (its WAN address in ExternalCIDR, default
// route via the outside node) with a private subnet behind it and one
// host on that subnet. Site N is <prefix>site-N (WAN 198.51.100.(251-N),
// LAN 10.(98+N).0.1/24 on lan0) and <prefix>site-N-host (10.(98+N).0.10,
// default route via the site). Its charon (kernel-libipsec, as on the
// gateways) runs from <dir>/site-N/charon; SiteConnect loads a connection
// into it.

// Site is a remote site of the lab.
type Site struct {
	Name          string `json:"name"`
	Namespace     string `json:"namespace"`
	HostNamespace string `json:"host_namespace"`
	// WAN is the site gateway's address on the external network (CIDR
	// form); Subnet the private subnet; GatewayIP the site's address on it;
	// HostIP the host's.
	WAN       string `json:"wan"`
	Subnet    string `json:"subnet"`
	GatewayIP string `json:"gateway_ip"`
	HostIP    string `json:"host_ip"`
	// CharonDir is the site's charon directory (its /run).
	CharonDir string `json:"charon_dir"`
	// UnderlayLink is the WAN veth's end in the physnet's bridge.
	UnderlayLink string `json:"underlay_link"`
}

// WANIP is the site's WAN address without the prefix length.
func (s *Site) WANIP() string { a, _, _ := strings.Cut(s.WAN, "/"); return a }

// Charon is the site's strongSwan.
func (s *Site) Charon() *vpnaas.Charon {
	return &vpnaas.Charon{Namespace: s.Namespace, Dir: s.CharonDir}
}

// Site returns the site with the name, or nil.
func (st *State) Site(name string) *Site {
	for _, s := range st.Sites {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// AddSite builds the next remote site (site-1, site-2, ...) and starts its
// charon with no connection.
func AddSite(ctx context.Context, dir string) (*Site, error) {
	s, lk, err := openLab(dir)
	if err != nil {
		return nil, err
	}
	defer lk.release()
	st := s.snapshot()
	n := len(st.Sites) + 1
	if n > 50 {
		return nil, fmt.Errorf("lab: at most 50 sites")
	}
	name := "site-" + strconv.Itoa(n)
	ext := netip.MustParsePrefix(ExternalCIDR)
	wan := ext.Addr().As4()
	wan[3] = byte(251 - n)
	site := &Site{
		Name: name, Namespace: st.Prefix + name, HostNamespace: st.Prefix + name + "-host",
		WAN:    fmt.Sprintf("%s/%d", netip.AddrFrom4(wan), ext.Bits()),
		Subnet: fmt.Sprintf("10.%d.0.0/24", 98+n), GatewayIP: fmt.Sprintf("10.%d.0.1", 98+n),
		HostIP: fmt.Sprintf("10.%d.0.10", 98+n), CharonDir: filepath.Join(st.Dir, name, "charon"),
		UnderlayLink: name + "-wan",
	}
	if err := s.update(func(st *State) {
		st.Sites = append(st.Sites, site)
		st.addNamespace(site.Namespace)
		st.addNamespace(site.HostNamespace)
	}); err != nil {
		return nil, err
	}
	for _, ns := range []string{site.Namespace, site.HostNamespace} {
		if err := hostnet.CreateNamespace(ctx, ns); err != nil {
			return nil, err
		}
	}
	flat := physnets[0]
	b := &builder{o: Options{Prefix: st.Prefix}}
	if err := b.physnetVeth(ctx, flat, site.UnderlayLink, site.Namespace, "wan0", ""); err != nil {
		return nil, err
	}
	if err := hostnet.CreateVeth(hostnet.VethSpec{Name: "lan0", Namespace: site.Namespace, PeerName: "eth0", PeerNS: site.HostNamespace}); err != nil {
		return nil, err
	}
	for _, end := range [][2]string{{site.Namespace, "lan0"}, {site.HostNamespace, "eth0"}} {
		if err := hostnet.DisableTxOffload(ctx, end[0], end[1]); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		ns   string
		args []string
	}{
		{site.Namespace, []string{"ip", "addr", "add", site.WAN, "dev", "wan0"}},
		{site.Namespace, []string{"ip", "addr", "add", site.GatewayIP + "/24", "dev", "lan0"}},
		{site.Namespace, []string{"ip", "route", "add", "default", "via", ExternalGateway}},
		{site.Namespace, []string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}},
		{site.HostNamespace, []string{"ip", "addr", "add", site.HostIP + "/24", "dev", "eth0"}},
		{site.HostNamespace, []string{"ip", "route", "add", "default", "via", site.GatewayIP}},
	}
	for _, step := range steps {
		if _, err := hostnet.Exec(ctx, step.ns, step.args...); err != nil {
			return nil, fmt.Errorf("lab: site %s: %w", name, err)
		}
	}
	if err := site.Charon().Start(ctx); err != nil {
		return nil, fmt.Errorf("lab: site %s: %w", name, err)
	}
	return site, nil
}

// SiteConnect loads the site's connections (replacing what it had).
func SiteConnect(ctx context.Context, dir, name string, conns []vpnaas.Conn) error {
	st, err := LoadState(absDir(dir))
	if err != nil {
		return err
	}
	site := st.Site(name)
	if site == nil {
		return fmt.Errorf("lab: no site %q", name)
	}
	conf, err := vpnaas.Render(conns)
	if err != nil {
		return err
	}
	ch := site.Charon()
	if ch.PID() == 0 {
		if err := ch.Start(ctx); err != nil {
			return err
		}
	}
	return ch.Load(ctx, conf)
}

func absDir(dir string) string {
	if dir == "" {
		dir = DefaultDir
	}
	if d, err := filepath.Abs(dir); err == nil {
		return d
	}
	return dir
}

// AddSite builds the next remote VPN site (see AddSite) and refreshes the
// driver's state.
func (d *Driver) AddSite(ctx context.Context) (*Site, error) {
	site, err := AddSite(ctx, d.Options.Dir)
	if err != nil {
		return nil, err
	}
	if st, err := LoadState(absDir(d.Options.Dir)); err == nil {
		d.mu.Lock()
		d.st = st
		d.mu.Unlock()
	}
	return site, nil
}

// SiteConnect loads a site's connections (see SiteConnect).
func (d *Driver) SiteConnect(ctx context.Context, name string, conns []vpnaas.Conn) error {
	return SiteConnect(ctx, d.Options.Dir, name, conns)
}
