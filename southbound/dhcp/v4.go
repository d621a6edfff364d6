package dhcp

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// DHCPv4 message types (option 53).
const (
	Discover uint8 = 1
	Offer    uint8 = 2
	Request  uint8 = 3
	Decline  uint8 = 4
	Ack      uint8 = 5
	Nak      uint8 = 6
	Release  uint8 = 7
	Inform   uint8 = 8
)

// DHCPv4 option codes used here.
const (
	OptSubnetMask     uint8 = 1
	OptRouter         uint8 = 3
	OptDNS            uint8 = 6
	OptHostname       uint8 = 12
	OptDomainName     uint8 = 15
	OptMTU            uint8 = 26
	OptBroadcast      uint8 = 28
	OptRequestedIP    uint8 = 50
	OptLeaseTime      uint8 = 51
	OptMessageType    uint8 = 53
	OptServerID       uint8 = 54
	OptMessage        uint8 = 56
	OptRenewalTime    uint8 = 58
	OptRebindingTime  uint8 = 59
	OptClientID       uint8 = 61
	OptClasslessRoute uint8 = 121
	optPad            uint8 = 0
	optEnd            uint8 = 255
)

var magicCookie = []byte{99, 130, 83, 99}

// Option is one DHCPv4 option (code and value; pad and end are not kept).
type Option struct {
	Code  uint8
	Value []byte
}

// Message is a DHCPv4 message (RFC 2131).
type Message struct {
	Op     uint8 // 1 request, 2 reply
	HType  uint8
	HLen   uint8
	Hops   uint8
	XID    uint32
	Secs   uint16
	Flags  uint16
	CIAddr netip.Addr
	YIAddr netip.Addr
	SIAddr netip.Addr
	GIAddr netip.Addr
	CHAddr [16]byte
	// Options in wire order; a code given several times is concatenated
	// (RFC 3396) into one.
	Options []Option
}

// Option returns the value of option code and whether it is present.
func (m *Message) Option(code uint8) ([]byte, bool) {
	for _, o := range m.Options {
		if o.Code == code {
			return o.Value, true
		}
	}
	return nil, false
}

// Type is the message type (option 53), 0 if absent or malformed.
func (m *Message) Type() uint8 {
	if v, ok := m.Option(OptMessageType); ok && len(v) == 1 {
		return v[0]
	}
	return 0
}

// addr4 reads an option holding one IPv4 address.
func (m *Message) addr4(code uint8) (netip.Addr, bool) {
	if v, ok := m.Option(code); ok && len(v) == 4 {
		return netip.AddrFrom4([4]byte(v)), true
	}
	return netip.Addr{}, false
}

// ParseV4 decodes a DHCPv4 message (the UDP payload).
func ParseV4(b []byte) (*Message, error) {
	if len(b) < 240 {
		return nil, malformed("DHCPv4 message of %d bytes", len(b))
	}
	if !slices.Equal(b[236:240], magicCookie) {
		return nil, malformed("DHCPv4 magic cookie %x", b[236:240])
	}
	m := &Message{
		Op: b[0], HType: b[1], HLen: b[2], Hops: b[3],
		XID:    binary.BigEndian.Uint32(b[4:]),
		Secs:   binary.BigEndian.Uint16(b[8:]),
		Flags:  binary.BigEndian.Uint16(b[10:]),
		CIAddr: netip.AddrFrom4([4]byte(b[12:16])),
		YIAddr: netip.AddrFrom4([4]byte(b[16:20])),
		SIAddr: netip.AddrFrom4([4]byte(b[20:24])),
		GIAddr: netip.AddrFrom4([4]byte(b[24:28])),
		CHAddr: [16]byte(b[28:44]),
	}
	if m.HLen > 16 {
		return nil, malformed("DHCPv4 hlen %d", m.HLen)
	}
	opts := b[240:]
	ended := false
	for i := 0; i < len(opts); {
		code := opts[i]
		if code == optPad {
			i++
			continue
		}
		if code == optEnd {
			ended = true
			break
		}
		if i+1 >= len(opts) {
			return nil, malformed("DHCPv4 option %d without length", code)
		}
		l := int(opts[i+1])
		if i+2+l > len(opts) {
			return nil, malformed("DHCPv4 option %d length %d past the end", code, l)
		}
		v := opts[i+2 : i+2+l]
		if j := slices.IndexFunc(m.Options, func(o Option) bool { return o.Code == code }); j >= 0 {
			m.Options[j].Value = append(m.Options[j].Value, v...)
		} else {
			m.Options = append(m.Options, Option{Code: code, Value: slices.Clone(v)})
		}
		i += 2 + l
	}
	if !ended {
		return nil, malformed("DHCPv4 options without end")
	}
	if m.Op != 1 {
		return nil, malformed("DHCPv4 op %d in a request", m.Op)
	}
	if t := m.Type(); t < Discover || t > Inform {
		return nil, malformed("DHCPv4 message type %d", t)
	}
	return m, nil
}

// Marshal encodes the message; options longer than 255 bytes are split
// (RFC 3396).
func (m *Message) Marshal() []byte {
	b := make([]byte, 240, 576)
	b[0], b[1], b[2], b[3] = m.Op, m.HType, m.HLen, m.Hops
	binary.BigEndian.PutUint32(b[4:], m.XID)
	binary.BigEndian.PutUint16(b[8:], m.Secs)
	binary.BigEndian.PutUint16(b[10:], m.Flags)
	for i, a := range []netip.Addr{m.CIAddr, m.YIAddr, m.SIAddr, m.GIAddr} {
		if a.Is4() {
			copy(b[12+4*i:], a.AsSlice())
		}
	}
	copy(b[28:44], m.CHAddr[:])
	copy(b[236:], magicCookie)
	for _, o := range m.Options {
		v := o.Value
		for first := true; first || len(v) > 0; first = false {
			n := min(len(v), 255)
			b = append(b, o.Code, byte(n))
			b = append(b, v[:n]...)
			v = v[n:]
		}
	}
	b = append(b, optEnd)
	// Some clients want at least the BOOTP size (300 bytes).
	for len(b) < 300 {
		b = append(b, optPad)
	}
	return b
}

// classlessRoutes encodes RFC 3442 routes (destination prefix, next hop).
func classlessRoutes(routes []Route) []byte {
	var out []byte
	for _, r := range routes {
		bits := r.Dst.Bits()
		a := r.Dst.Masked().Addr().As4()
		out = append(out, byte(bits))
		out = append(out, a[:(bits+7)/8]...)
		nh := r.NextHop.As4()
		out = append(out, nh[:]...)
	}
	return out
}

// Route is a host route (or the default route) given to a VM.
type Route struct {
	Dst     netip.Prefix
	NextHop netip.Addr
}
