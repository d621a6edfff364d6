// Package dhcp answers DHCPv4, DHCPv6 and router solicitations of the VMs
// plugged into one chassis, and sends them periodic router advertisements,
// from replicated state the chassis agent watches. The leader's pipeline
// sends the requests of local VM ports to the agent's own OpenFlow
// connection (controller(id=pipeline.ChassisControllerID)); the answer is
// a packet-out to the port the request came in on. docs/architecture.md
// ("DHCP and router advertisements") explains why it is done this way.
//
// The decoders take bytes from VMs: every length is checked, anything
// malformed is an error wrapping ErrMalformed (counted and dropped by the
// responder), never a panic (FuzzDHCPv4, FuzzDHCPv6).
package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("dhcp: malformed packet")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

const (
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	protoUDP   = 17
	protoICMP6 = 58
)

// Frame is a decoded Ethernet frame carrying UDP or ICMPv6 over IPv4 or
// IPv6, as a VM sent it.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	SrcIP, DstIP   netip.Addr
	// Proto is protoUDP or protoICMP6.
	Proto            uint8
	SrcPort, DstPort uint16 // UDP
	// Payload is the UDP payload or the whole ICMPv6 message.
	Payload []byte
}

// ParseFrame decodes an untagged Ethernet frame down to its UDP payload
// (IPv4 or IPv6) or ICMPv6 message. IPv6 extension headers are not
// followed (a DHCPv6 request or a router solicitation has none).
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < 14 {
		return Frame{}, malformed("frame of %d bytes", len(b))
	}
	f := Frame{DstMAC: net.HardwareAddr(b[0:6]), SrcMAC: net.HardwareAddr(b[6:12])}
	et := binary.BigEndian.Uint16(b[12:])
	p := b[14:]
	var l4 []byte
	switch et {
	case etherIPv4:
		if len(p) < 20 || p[0]>>4 != 4 {
			return Frame{}, malformed("short or bad IPv4 header")
		}
		ihl := int(p[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(p[2:]))
		if ihl < 20 || total < ihl || total > len(p) {
			return Frame{}, malformed("IPv4 lengths ihl %d total %d of %d", ihl, total, len(p))
		}
		if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
			return Frame{}, malformed("IPv4 fragment")
		}
		f.Proto = p[9]
		f.SrcIP = netip.AddrFrom4([4]byte(p[12:16]))
		f.DstIP = netip.AddrFrom4([4]byte(p[16:20]))
		l4 = p[ihl:total]
	case etherIPv6:
		if len(p) < 40 || p[0]>>4 != 6 {
			return Frame{}, malformed("short or bad IPv6 header")
		}
		pl := int(binary.BigEndian.Uint16(p[4:]))
		if 40+pl > len(p) {
			return Frame{}, malformed("IPv6 payload length %d of %d", pl, len(p)-40)
		}
		f.Proto = p[6]
		f.SrcIP = netip.AddrFrom16([16]byte(p[8:24]))
		f.DstIP = netip.AddrFrom16([16]byte(p[24:40]))
		l4 = p[40 : 40+pl]
	default:
		return Frame{}, malformed("ethertype 0x%04x", et)
	}
	switch f.Proto {
	case protoUDP:
		if len(l4) < 8 {
			return Frame{}, malformed("short UDP header")
		}
		ul := int(binary.BigEndian.Uint16(l4[4:]))
		if ul < 8 || ul > len(l4) {
			return Frame{}, malformed("UDP length %d of %d", ul, len(l4))
		}
		f.SrcPort, f.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		f.Payload = l4[8:ul]
	case protoICMP6:
		if et != etherIPv6 || len(l4) < 4 {
			return Frame{}, malformed("short ICMPv6")
		}
		f.Payload = l4
	default:
		return Frame{}, malformed("IP protocol %d", f.Proto)
	}
	return f, nil
}

// checksum is the Internet checksum of the pseudo-header of src/dst
// (IPv4 or IPv6) with protocol proto and of msg (checksum field zero).
func checksum(src, dst netip.Addr, proto uint8, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	add([]byte{0, proto})
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(msg)))
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// buildUDP returns an Ethernet frame carrying payload in UDP from src:sport
// to dst:dport, over IPv4 or IPv6 as the addresses are.
func buildUDP(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp, sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	c := checksum(src, dst, protoUDP, udp)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return buildIP(dstMAC, srcMAC, src, dst, protoUDP, udp)
}

// buildICMP6 returns an Ethernet frame carrying an ICMPv6 message (its
// checksum filled in) with hop limit 255, as neighbour discovery needs.
func buildICMP6(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, msg []byte) []byte {
	binary.BigEndian.PutUint16(msg[2:], 0)
	binary.BigEndian.PutUint16(msg[2:], checksum(src, dst, protoICMP6, msg))
	return buildIP(dstMAC, srcMAC, src, dst, protoICMP6, msg)
}

func buildIP(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, proto uint8, l4 []byte) []byte {
	b := make([]byte, 0, 14+40+len(l4))
	b = append(b, dstMAC[:6]...)
	b = append(b, srcMAC[:6]...)
	if src.Is4() {
		b = binary.BigEndian.AppendUint16(b, etherIPv4)
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		h[8] = 64
		h[9] = proto
		copy(h[12:], src.AsSlice())
		copy(h[16:], dst.AsSlice())
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(h[i:]))
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
		b = append(b, h...)
	} else {
		b = binary.BigEndian.AppendUint16(b, etherIPv6)
		b = append(b, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(len(l4)))
		hops := byte(64)
		if proto == protoICMP6 {
			hops = 255
		}
		b = append(b, proto, hops)
		b = append(b, src.AsSlice()...)
		b = append(b, dst.AsSlice()...)
	}
	return append(b, l4...)
}
