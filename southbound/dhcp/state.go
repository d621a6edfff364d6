package dhcp

import (
	"hash/fnv"
	"net"
	"net/netip"
	"strings"
	"time"

	"neutrino/fsm"
	"neutrino/southbound/pipeline"
)

// Source is the replicated state the responder answers from (a chassis
// agent's watch of the ports, subnets and networks tables).
type Source interface {
	Ports() []*fsm.Port
	Subnets() []*fsm.Subnet
	Networks() []*fsm.Network
}

// Settings are the answers' settings that are not in the replicated
// state (agent flags).
type Settings struct {
	// LeaseTime of DHCPv4 and DHCPv6 addresses (Neutron's default,
	// 86400 s, when zero).
	LeaseTime time.Duration
	// Domain is the DNS domain given to VMs (Neutron's dns_domain,
	// "openstacklocal", when empty).
	Domain string
}

// DefaultLeaseTime is Neutron's dhcp_lease_duration.
const DefaultLeaseTime = 86400 * time.Second

// DefaultDomain is Neutron's default dns_domain.
const DefaultDomain = "openstacklocal"

// index is the state one chassis answers from, rebuilt when it changed.
type index struct {
	settings Settings
	// ports bound to this chassis, by ofport
	byOfport map[uint32]*fsm.Port
	subnets  map[string]*fsm.Subnet
	netSubs  map[string][]*fsm.Subnet
	networks map[string]*fsm.Network
	// router interfaces by subnet id
	routerIf map[string]*fsm.Port
}

func buildIndex(src Source, chassis string, s Settings) *index {
	x := &index{settings: s, byOfport: map[uint32]*fsm.Port{}, subnets: map[string]*fsm.Subnet{},
		netSubs: map[string][]*fsm.Subnet{}, networks: map[string]*fsm.Network{}, routerIf: map[string]*fsm.Port{}}
	for _, n := range src.Networks() {
		x.networks[n.ID] = n
	}
	for _, s := range src.Subnets() {
		x.subnets[s.ID] = s
		x.netSubs[s.NetworkID] = append(x.netSubs[s.NetworkID], s)
	}
	for _, p := range src.Ports() {
		switch {
		case p.DeviceOwner == fsm.DeviceOwnerRouterInterface:
			for _, f := range p.FixedIPs {
				if _, ok := x.routerIf[f.SubnetID]; !ok {
					x.routerIf[f.SubnetID] = p
				}
			}
		case strings.HasPrefix(p.DeviceOwner, "network:"):
			// Router gateways, floating IPs, DHCP ports: not VMs.
		case p.BindingHostID == chassis && p.BindingOFPort > 0:
			x.byOfport[uint32(p.BindingOFPort)] = p
		}
	}
	return x
}

// serverMAC is the MAC answers on subnet s come from: the router
// interface's when the subnet is attached to a router (a VM renewing by
// unicast then reaches the server through the router's ARP answer), else
// a locally administered MAC derived from the subnet id.
func (x *index) serverMAC(s *fsm.Subnet) net.HardwareAddr {
	if p := x.routerIf[s.ID]; p != nil {
		if m, err := net.ParseMAC(p.MACAddress); err == nil && len(m) == 6 {
			return m
		}
	}
	h := fnv.New32a()
	h.Write([]byte(s.ID))
	v := h.Sum32()
	return net.HardwareAddr{0x02, 0x4e, byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func (x *index) lease() time.Duration {
	if x.settings.LeaseTime > 0 {
		return x.settings.LeaseTime
	}
	return DefaultLeaseTime
}

func (x *index) domain() string {
	if x.settings.Domain != "" {
		return x.settings.Domain
	}
	return DefaultDomain
}

func addrs(ss []string, v6 bool) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() == v6 {
			out = append(out, a)
		}
	}
	return out
}

// v4Config is what a port's DHCPv4 answers say: its first IPv4 address on
// a subnet with enable_dhcp; nil when it has none (the port gets no
// answer).
func (x *index) v4Config(p *fsm.Port) *V4Config {
	for _, f := range p.FixedIPs {
		s := x.subnets[f.SubnetID]
		ip, err := netip.ParseAddr(f.IPAddress)
		if s == nil || s.IPVersion != 4 || !s.EnableDHCP || err != nil || !ip.Is4() {
			continue
		}
		pfx := s.Prefix()
		if !pfx.IsValid() {
			continue
		}
		c := &V4Config{IP: ip, Prefix: pfx, ServerMAC: x.serverMAC(s), DNS: addrs(s.DNSNameservers, false),
			Domain: x.domain(), LeaseTime: x.lease(),
			Hostname: "host-" + strings.ReplaceAll(ip.String(), ".", "-")}
		if gw, err := netip.ParseAddr(s.GatewayIP); err == nil && gw.Is4() {
			c.Gateway = gw
		}
		c.ServerID = c.Gateway
		if !c.ServerID.IsValid() || !pfx.Contains(c.ServerID) {
			c.ServerID = lastHost(pfx)
		}
		for _, r := range s.HostRoutes {
			d, err1 := netip.ParsePrefix(r.Destination)
			nh, err2 := netip.ParseAddr(r.NextHop)
			if err1 == nil && err2 == nil && d.Addr().Is4() && nh.Is4() {
				c.HostRoutes = append(c.HostRoutes, Route{Dst: d, NextHop: nh})
			}
		}
		if n := x.networks[p.NetworkID]; n != nil {
			c.MTU = n.MTU
		}
		c.Extra, _ = extraOptions(p.ExtraDHCPOpts)
		return c
	}
	return nil
}

// lastHost is the highest host address of an IPv4 prefix: the server id
// of a subnet without a gateway.
func lastHost(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := range 4 {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	a[3] &^= 1
	return netip.AddrFrom4(a)
}

// v6Config is what a port's DHCPv6 answers say, for its network's subnet
// in dhcpv6-stateful or dhcpv6-stateless address mode.
func (x *index) v6Config(p *fsm.Port) *V6Config {
	for _, s := range x.netSubs[p.NetworkID] {
		if s.IPVersion != 6 || !s.EnableDHCP || (s.IPv6AddressMode != pipeline.IPv6ModeStateful && s.IPv6AddressMode != pipeline.IPv6ModeStateless) {
			continue
		}
		c := &V6Config{ServerMAC: x.serverMAC(s), DNS: addrs(s.DNSNameservers, true), Domain: x.domain(), LeaseTime: x.lease()}
		if s.IPv6AddressMode == pipeline.IPv6ModeStateful {
			for _, f := range p.FixedIPs {
				if a, err := netip.ParseAddr(f.IPAddress); f.SubnetID == s.ID && err == nil && a.Is6() {
					c.IP = a
					break
				}
			}
		}
		return c
	}
	return nil
}

// raConfig is the router advertisement of a network: its IPv6 subnets with
// an ipv6_ra_mode that are attached to a router (the router's MAC on the
// network is the source); nil when there is none.
func (x *index) raConfig(networkID string) *RAConfig {
	var c *RAConfig
	for _, s := range x.netSubs[networkID] {
		rif := x.routerIf[s.ID]
		pfx := s.Prefix()
		if s.IPVersion != 6 || s.IPv6RAMode == "" || rif == nil || !pfx.IsValid() {
			continue
		}
		mac, err := net.ParseMAC(rif.MACAddress)
		if err != nil || len(mac) != 6 {
			continue
		}
		if c == nil {
			c = &RAConfig{RouterMAC: mac, Lifetime: 1800 * time.Second}
			if n := x.networks[networkID]; n != nil {
				c.MTU = n.MTU
			}
		}
		switch s.IPv6RAMode {
		case pipeline.IPv6ModeStateful:
			c.Managed, c.Other = true, true
		case pipeline.IPv6ModeStateless:
			c.Other = true
		}
		c.Prefixes = append(c.Prefixes, RAPrefix{Prefix: pfx, Autonomous: s.IPv6RAMode != pipeline.IPv6ModeStateful})
		c.DNS = append(c.DNS, addrs(s.DNSNameservers, true)...)
	}
	return c
}
