package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"
)

// V4Config is what the DHCPv4 answers to one port say: the port's
// address and its subnet's settings, from replicated state.
type V4Config struct {
	IP     netip.Addr
	Prefix netip.Prefix // the subnet's cidr
	// Gateway is the subnet's gateway_ip (invalid: none).
	Gateway netip.Addr
	// ServerID and ServerMAC are the server's address and MAC the
	// answers come from.
	ServerID  netip.Addr
	ServerMAC net.HardwareAddr
	DNS       []netip.Addr
	// HostRoutes are the subnet's host_routes; the default route via
	// Gateway is added to them in option 121.
	HostRoutes []Route
	MTU        int
	Domain     string
	Hostname   string
	LeaseTime  time.Duration
	// Extra are the port's extra_dhcp_opts (IPv4), encoded; they replace
	// an option of the same code.
	Extra []Option
}

// Answer4 is the result of answering one DHCPv4 message.
type Answer4 struct {
	// Frame is the reply to send back to the port (nil: none).
	Frame []byte
	// Kind says what happened ("offer", "ack", "nak", "inform", "decline",
	// "release", "other-server"), for logs and counters.
	Kind string
}

// AnswerV4 answers a DHCPv4 request f (decoded as m) from the port whose
// configuration is c. What the client claims (chaddr, client id, requested
// address) never chooses the address: it is always c.IP, so a VM cannot
// obtain another port's address.
func AnswerV4(c *V4Config, f Frame, m *Message) Answer4 {
	switch m.Type() {
	case Discover:
		return Answer4{Frame: c.reply(f, m, Offer), Kind: "offer"}
	case Request:
		if sid, ok := m.addr4(OptServerID); ok && sid != c.ServerID {
			// SELECTING another server's offer.
			return Answer4{Kind: "other-server"}
		}
		want, ok := m.addr4(OptRequestedIP)
		if !ok {
			want = m.CIAddr // RENEWING, REBINDING
		}
		if want != c.IP {
			return Answer4{Frame: c.reply(f, m, Nak), Kind: "nak"}
		}
		return Answer4{Frame: c.reply(f, m, Ack), Kind: "ack"}
	case Inform:
		return Answer4{Frame: c.reply(f, m, Inform), Kind: "inform"}
	case Decline:
		// The VM found its address in use: nothing to choose instead,
		// the port owns exactly this address. Logged by the caller.
		return Answer4{Kind: "decline"}
	case Release:
		return Answer4{Kind: "release"}
	}
	return Answer4{Kind: "ignored"}
}

// reply builds the answer of type t (Inform: an ACK without lease).
func (c *V4Config) reply(f Frame, m *Message, t uint8) []byte {
	r := &Message{Op: 2, HType: m.HType, HLen: m.HLen, XID: m.XID, Flags: m.Flags,
		GIAddr: m.GIAddr, CHAddr: m.CHAddr, CIAddr: netip.IPv4Unspecified(),
		YIAddr: netip.IPv4Unspecified(), SIAddr: netip.IPv4Unspecified()}
	typ := t
	if t == Inform {
		typ = Ack
	}
	r.Options = append(r.Options, Option{OptMessageType, []byte{typ}}, Option{OptServerID, c.ServerID.AsSlice()})
	dst := netip.IPv4Unspecified()
	if m.CIAddr != netip.IPv4Unspecified() && m.CIAddr.IsValid() {
		dst = m.CIAddr
	}
	switch t {
	case Nak:
		r.Options = append(r.Options, Option{OptMessage, []byte("address not assigned to this port")})
		dst = netip.Addr{}
		// A NAK is broadcast (RFC 2131 4.3.2): the client may be
		// configured with an address it no longer owns.
	case Inform:
		r.CIAddr = m.CIAddr
		r.Options = append(r.Options, c.params()...)
	default:
		r.YIAddr = c.IP
		if t == Ack {
			r.CIAddr = m.CIAddr
		}
		lease := uint32(c.LeaseTime / time.Second)
		r.Options = append(r.Options,
			Option{OptLeaseTime, be32(lease)},
			Option{OptRenewalTime, be32(lease / 2)},
			Option{OptRebindingTime, be32(lease / 8 * 7)})
		r.Options = append(r.Options, c.params()...)
	}
	r.Options = mergeExtra(r.Options, c.Extra, t != Nak)
	if !dst.IsValid() || dst == netip.IPv4Unspecified() {
		dst = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return buildUDP(f.SrcMAC, c.ServerMAC, c.ServerID, dst, 67, 68, r.Marshal())
}

// params are the configuration options of an offer or ack.
func (c *V4Config) params() []Option {
	mask := net.CIDRMask(c.Prefix.Bits(), 32)
	out := []Option{{OptSubnetMask, []byte(mask)}}
	bc := c.Prefix.Masked().Addr().As4()
	for i := range bc {
		bc[i] |= ^mask[i]
	}
	out = append(out, Option{OptBroadcast, bc[:]})
	routes := c.HostRoutes
	if c.Gateway.IsValid() {
		out = append(out, Option{OptRouter, c.Gateway.AsSlice()})
		routes = append(append([]Route(nil), routes...), Route{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), NextHop: c.Gateway})
	}
	if len(c.HostRoutes) > 0 {
		// A client that takes option 121 ignores option 3 (RFC 3442):
		// the default route goes in too.
		out = append(out, Option{OptClasslessRoute, classlessRoutes(routes)})
	}
	if len(c.DNS) > 0 {
		var v []byte
		for _, d := range c.DNS {
			v = append(v, d.AsSlice()...)
		}
		out = append(out, Option{OptDNS, v})
	}
	if c.Domain != "" {
		out = append(out, Option{OptDomainName, []byte(c.Domain)})
	}
	if c.Hostname != "" {
		out = append(out, Option{OptHostname, []byte(c.Hostname)})
	}
	if c.MTU > 0 {
		out = append(out, Option{OptMTU, binary.BigEndian.AppendUint16(nil, uint16(c.MTU))})
	}
	return out
}

// mergeExtra replaces options by the port's extra options of the same
// code and appends the others (only to offers and acks).
func mergeExtra(opts, extra []Option, add bool) []Option {
	if !add {
		return opts
	}
	for _, x := range extra {
		if x.Code == OptMessageType || x.Code == OptServerID {
			continue
		}
		replaced := false
		for i := range opts {
			if opts[i].Code == x.Code {
				opts[i].Value, replaced = x.Value, true
			}
		}
		if !replaced {
			opts = append(opts, x)
		}
	}
	return opts
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
