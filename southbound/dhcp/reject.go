package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
)

// Firewall reject answers. A firewall rule with action reject sends the
// packet to the chassis agent's connection like a DHCP request (the
// pipeline's table 33: a packet a local port sent toward a router); the
// agent answers it out of the port it came from, as the destination would
// have: a TCP RST to TCP, an ICMP / ICMPv6 port unreachable to anything
// else (iptables' REJECT does the same for neutron-fwaas). An OpenFlow
// flow cannot build either: the RST acknowledges the sequence number the
// packet carried, the ICMP error quotes the packet.

const (
	protoTCP  = 6
	protoICMP = 1
)

// RejectAnswer returns the answer to a rejected frame, or nil when none is
// due (not IPv4/IPv6, a TCP RST, an ICMP error: never answer an error with
// an error) or the frame is malformed.
func RejectAnswer(b []byte) []byte {
	if len(b) < 14 {
		return nil
	}
	dstMAC, srcMAC := net.HardwareAddr(slices.Clone(b[0:6])), net.HardwareAddr(slices.Clone(b[6:12]))
	ip := b[14:]
	var src, dst netip.Addr
	var proto uint8
	var l4, quote []byte
	switch binary.BigEndian.Uint16(b[12:]) {
	case etherIPv4:
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return nil
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || len(ip) < total {
			return nil
		}
		if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 {
			return nil // not the first fragment
		}
		src, dst = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		proto, l4 = ip[9], ip[ihl:total]
		// RFC 792: the IP header and the first 8 bytes of its data.
		quote = ip[:min(total, ihl+8)]
	case etherIPv6:
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return nil
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if len(ip) < 40+plen {
			return nil
		}
		src, dst = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		proto, l4 = ip[6], ip[40:40+plen]
		// RFC 4443: as much of the packet as fits the minimum MTU.
		quote = ip[:min(40+plen, 1280-48)]
	default:
		return nil
	}
	if proto == protoTCP {
		return tcpReset(srcMAC, dstMAC, src, dst, l4)
	}
	if proto == protoICMP && src.Is4() && (len(l4) < 1 || !icmp4Query(l4[0])) {
		return nil
	}
	if proto == protoICMP6 && (len(l4) < 1 || l4[0] < 128) {
		return nil
	}
	msg := make([]byte, 8, 8+len(quote))
	if src.Is4() {
		msg[0], msg[1] = 3, 3 // destination unreachable, port unreachable
		msg = append(msg, quote...)
		binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		return buildIP(srcMAC, dstMAC, dst, src, protoICMP, msg)
	}
	msg[0], msg[1] = 1, 4 // destination unreachable, port unreachable
	msg = append(msg, quote...)
	return buildICMP6(srcMAC, dstMAC, dst, src, msg)
}

// icmp4Query says whether an ICMP type is a query (echo, timestamp, ...),
// which may be answered with an error, rather than an error itself.
func icmp4Query(t byte) bool { return t == 0 || t == 8 || t == 13 || t == 14 || t == 15 || t == 16 }

// tcpReset answers a TCP segment with the RST its destination would send
// (RFC 793 "Reset Generation"): with the segment's acknowledgment number as
// sequence number if it had ACK, else sequence 0 and an ACK of everything
// it carried.
func tcpReset(dstMAC, srcMAC net.HardwareAddr, to, from netip.Addr, seg []byte) []byte {
	if len(seg) < 20 {
		return nil
	}
	off := int(seg[12]>>4) * 4
	flags := seg[13]
	if off < 20 || off > len(seg) || flags&0x04 != 0 {
		return nil // malformed, or a RST: never answered
	}
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], binary.BigEndian.Uint16(seg[2:]))
	binary.BigEndian.PutUint16(h[2:], binary.BigEndian.Uint16(seg[0:]))
	h[12] = 5 << 4
	if flags&0x10 != 0 {
		copy(h[4:8], seg[8:12])
		h[13] = 0x04 // RST
	} else {
		n := uint32(len(seg) - off)
		if flags&0x02 != 0 { // SYN
			n++
		}
		if flags&0x01 != 0 { // FIN
			n++
		}
		binary.BigEndian.PutUint32(h[8:], binary.BigEndian.Uint32(seg[4:])+n)
		h[13] = 0x14 // RST, ACK
	}
	binary.BigEndian.PutUint16(h[16:], checksum(from, to, protoTCP, h))
	return buildIP(dstMAC, srcMAC, from, to, protoTCP, h)
}

// icmpChecksum is the Internet checksum of an ICMPv4 message (checksum
// field zero).
func icmpChecksum(msg []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(msg); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(msg[i:]))
	}
	if len(msg)%2 == 1 {
		sum += uint32(msg[len(msg)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
