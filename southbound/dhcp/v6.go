package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"time"
)

// DHCPv6 message types (RFC 8415).
const (
	Solicit6   uint8 = 1
	Advertise6 uint8 = 2
	Request6   uint8 = 3
	Confirm6   uint8 = 4
	Renew6     uint8 = 5
	Rebind6    uint8 = 6
	Reply6     uint8 = 7
	Release6   uint8 = 8
	Decline6   uint8 = 9
	InfoReq6   uint8 = 11
)

// DHCPv6 option codes used here.
const (
	Opt6ClientID     uint16 = 1
	Opt6ServerID     uint16 = 2
	Opt6IANA         uint16 = 3
	Opt6IAAddr       uint16 = 5
	Opt6StatusCode   uint16 = 13
	Opt6RapidCommit  uint16 = 14
	Opt6DNS          uint16 = 23
	Opt6DomainList   uint16 = 24
	status6NoAddrs   uint16 = 2
	status6NotOnLink uint16 = 4
)

// Option6 is one DHCPv6 option.
type Option6 struct {
	Code  uint16
	Value []byte
}

// Message6 is a DHCPv6 client message.
type Message6 struct {
	Type    uint8
	XID     [3]byte
	Options []Option6
}

// Option returns the first option of code.
func (m *Message6) Option(code uint16) ([]byte, bool) {
	for _, o := range m.Options {
		if o.Code == code {
			return o.Value, true
		}
	}
	return nil, false
}

func parseOptions6(b []byte) ([]Option6, error) {
	var out []Option6
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, malformed("DHCPv6 option header of %d bytes", len(b))
		}
		code, l := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if 4+l > len(b) {
			return nil, malformed("DHCPv6 option %d length %d past the end", code, l)
		}
		out = append(out, Option6{Code: code, Value: slices.Clone(b[4 : 4+l])})
		b = b[4+l:]
	}
	return out, nil
}

// ParseV6 decodes a DHCPv6 client message (the UDP payload). Relay
// messages are refused: a VM talks to the server directly.
func ParseV6(b []byte) (*Message6, error) {
	if len(b) < 4 {
		return nil, malformed("DHCPv6 message of %d bytes", len(b))
	}
	m := &Message6{Type: b[0], XID: [3]byte(b[1:4])}
	switch m.Type {
	case Solicit6, Request6, Confirm6, Renew6, Rebind6, Release6, Decline6, InfoReq6:
	default:
		return nil, malformed("DHCPv6 message type %d", m.Type)
	}
	opts, err := parseOptions6(b[4:])
	if err != nil {
		return nil, err
	}
	m.Options = opts
	if ia, ok := m.Option(Opt6IANA); ok {
		if len(ia) < 12 {
			return nil, malformed("DHCPv6 IA_NA of %d bytes", len(ia))
		}
		if _, err := parseOptions6(ia[12:]); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func appendOpt6(b []byte, code uint16, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, code)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// DUID is the DUID-LL (type 3, Ethernet) of mac: the server's identity.
func DUID(mac net.HardwareAddr) []byte {
	return append([]byte{0, 3, 0, 1}, mac[:6]...)
}

// V6Config is what the DHCPv6 answers to one port say.
type V6Config struct {
	// IP is the port's address on a dhcpv6-stateful subnet (invalid:
	// stateless, no address given).
	IP        netip.Addr
	ServerMAC net.HardwareAddr
	DNS       []netip.Addr
	Domain    string
	LeaseTime time.Duration
}

// AnswerV6 answers a DHCPv6 message; nil means no answer. As for DHCPv4,
// the address is the port's, whatever the client asks for.
func AnswerV6(c *V6Config, f Frame, m *Message6) (reply []byte, kind string) {
	clientID, ok := m.Option(Opt6ClientID)
	if !ok {
		return nil, "no-client-id"
	}
	if sid, ok := m.Option(Opt6ServerID); ok && !slices.Equal(sid, DUID(c.ServerMAC)) {
		return nil, "other-server"
	}
	typ, kind := Reply6, "reply"
	switch m.Type {
	case Solicit6:
		typ, kind = Advertise6, "advertise"
		if _, ok := m.Option(Opt6RapidCommit); ok {
			typ, kind = Reply6, "reply"
		}
	case Release6, Decline6:
		kind = "release"
	}
	b := []byte{typ, m.XID[0], m.XID[1], m.XID[2]}
	b = appendOpt6(b, Opt6ServerID, DUID(c.ServerMAC))
	b = appendOpt6(b, Opt6ClientID, clientID)
	if typ == Reply6 && m.Type == Solicit6 {
		b = appendOpt6(b, Opt6RapidCommit, nil)
	}
	if ia, ok := m.Option(Opt6IANA); ok && m.Type != InfoReq6 {
		b = appendOpt6(b, Opt6IANA, c.iana(ia[:4], m.Type))
	}
	if m.Type != Release6 && m.Type != Decline6 {
		if len(c.DNS) > 0 {
			var v []byte
			for _, d := range c.DNS {
				v = append(v, d.AsSlice()...)
			}
			b = appendOpt6(b, Opt6DNS, v)
		}
		if c.Domain != "" {
			b = appendOpt6(b, Opt6DomainList, domainName(c.Domain))
		}
	}
	src := linkLocal(c.ServerMAC)
	return buildUDP(f.SrcMAC, c.ServerMAC, src, f.SrcIP, 547, 546, b), kind
}

// iana is the IA_NA answered for the client's IAID: the port's address,
// or a NoAddrsAvail status on a stateless subnet.
func (c *V6Config) iana(iaid []byte, t uint8) []byte {
	lease := uint32(c.LeaseTime / time.Second)
	v := slices.Clone(iaid)
	if !c.IP.IsValid() {
		v = binary.BigEndian.AppendUint32(v, 0)
		v = binary.BigEndian.AppendUint32(v, 0)
		return appendOpt6(v, Opt6StatusCode, append([]byte{0, byte(status6NoAddrs)}, "no addresses on this subnet"...))
	}
	if t == Release6 || t == Decline6 {
		lease = 0
	}
	v = binary.BigEndian.AppendUint32(v, lease/2)
	v = binary.BigEndian.AppendUint32(v, lease/8*7)
	addr := c.IP.AsSlice()
	addr = binary.BigEndian.AppendUint32(addr, lease)
	addr = binary.BigEndian.AppendUint32(addr, lease)
	return appendOpt6(v, Opt6IAAddr, addr)
}

// domainName encodes a name as DNS labels (RFC 1035 3.1).
func domainName(s string) []byte {
	var out []byte
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '.' {
			i++
		}
		if i > 0 && i < 64 {
			out = append(out, byte(i))
			out = append(out, s[:i]...)
		}
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return append(out, 0)
}

// linkLocal is the EUI-64 link-local address of a MAC.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// ParseRS checks that an ICMPv6 message is a router solicitation (type
// 133, code 0, options well formed).
func ParseRS(msg []byte) error {
	if len(msg) < 8 || msg[0] != 133 || msg[1] != 0 {
		return malformed("not a router solicitation")
	}
	for o := msg[8:]; len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
			return malformed("router solicitation option")
		}
		o = o[int(o[1])*8:]
	}
	return nil
}

// RAConfig is a router advertisement for one network: the router's MAC on
// it and the prefixes of its subnets with an ipv6_ra_mode.
type RAConfig struct {
	RouterMAC net.HardwareAddr
	// Managed and Other are the M and O flags.
	Managed, Other bool
	Prefixes       []RAPrefix
	MTU            int
	DNS            []netip.Addr
	// Lifetime is the router lifetime (0: not a default router).
	Lifetime time.Duration
}

// RAPrefix is one prefix information option.
type RAPrefix struct {
	Prefix     netip.Prefix
	Autonomous bool // A flag: hosts make SLAAC addresses in it
}

// RA builds a router advertisement from the router's link-local address
// to dstMAC/dst (ff02::1 for periodic ones).
func RA(c *RAConfig, dstMAC net.HardwareAddr, dst netip.Addr) []byte {
	msg := []byte{134, 0, 0, 0, 64, 0}
	if c.Managed {
		msg[5] |= 0x80
	}
	if c.Other {
		msg[5] |= 0x40
	}
	msg = binary.BigEndian.AppendUint16(msg, uint16(min(c.Lifetime/time.Second, 9000)))
	msg = append(msg, 0, 0, 0, 0, 0, 0, 0, 0) // reachable time, retrans timer
	msg = append(msg, 1, 1)                   // source link-layer address
	msg = append(msg, c.RouterMAC[:6]...)
	if c.MTU > 0 {
		msg = append(msg, 5, 1, 0, 0)
		msg = binary.BigEndian.AppendUint32(msg, uint32(c.MTU))
	}
	for _, p := range c.Prefixes {
		flags := byte(0x80) // on-link
		if p.Autonomous {
			flags |= 0x40
		}
		msg = append(msg, 3, 4, byte(p.Prefix.Bits()), flags)
		msg = binary.BigEndian.AppendUint32(msg, 86400) // valid
		msg = binary.BigEndian.AppendUint32(msg, 14400) // preferred
		msg = append(msg, 0, 0, 0, 0)
		msg = append(msg, p.Prefix.Masked().Addr().AsSlice()...)
	}
	if len(c.DNS) > 0 {
		msg = append(msg, 25, byte(1+2*len(c.DNS)), 0, 0)
		msg = binary.BigEndian.AppendUint32(msg, 600)
		for _, d := range c.DNS {
			msg = append(msg, d.AsSlice()...)
		}
	}
	return buildICMP6(dstMAC, c.RouterMAC, linkLocal(c.RouterMAC), dst, msg)
}
