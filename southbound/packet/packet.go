// Package packet builds and parses the few frames the leader sends and
// reads through OpenFlow packet-out and packet-in: ARP requests and
// replies, gratuitous ARP, IPv6 unsolicited neighbour advertisements, each
// optionally 802.1Q-tagged. Frames are not padded to 60 bytes: OVS and the
// NICs behind it pad on the wire.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// EtherTypes.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100
	EtherTypeQinQ uint16 = 0x88a8
	EtherTypeIPv6 uint16 = 0x86dd
)

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// ErrInvalid: the frame is not what the parser expected.
var ErrInvalid = errors.New("packet: invalid frame")

var (
	// Broadcast is ff:ff:ff:ff:ff:ff.
	Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// AllNodesMAC is the Ethernet address of ff02::1.
	AllNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	// AllNodes is ff02::1.
	AllNodes = netip.MustParseAddr("ff02::1")
	zeroMAC  = net.HardwareAddr{0, 0, 0, 0, 0, 0}
)

// ethernet writes the Ethernet header (with an 802.1Q tag when vlan != 0;
// vlan is the 12-bit VLAN id, priority 0).
func ethernet(dst, src net.HardwareAddr, vlan uint16, etherType uint16, size int) []byte {
	b := make([]byte, 0, 18+size)
	b = append(b, dst[:6]...)
	b = append(b, src[:6]...)
	if vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, EtherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, vlan&0x0fff)
	}
	return binary.BigEndian.AppendUint16(b, etherType)
}

func checkMAC(macs ...net.HardwareAddr) error {
	for _, m := range macs {
		if len(m) != 6 {
			return fmt.Errorf("%w: MAC %q is not 6 bytes", ErrInvalid, m)
		}
	}
	return nil
}

func ipv4(a netip.Addr) ([4]byte, error) {
	a = a.Unmap()
	if !a.Is4() {
		return [4]byte{}, fmt.Errorf("%w: %v is not IPv4", ErrInvalid, a)
	}
	return a.As4(), nil
}

// ARP is an Ethernet/IPv4 ARP frame.
type ARP struct {
	EthDst, EthSrc net.HardwareAddr
	VLAN           uint16 // outer 802.1Q VLAN id; 0: untagged
	Op             uint16 // ARPRequest or ARPReply
	SHA            net.HardwareAddr
	SPA            netip.Addr
	THA            net.HardwareAddr
	TPA            netip.Addr
}

// Marshal encodes the ARP frame.
func (a *ARP) Marshal() ([]byte, error) {
	if err := checkMAC(a.EthDst, a.EthSrc, a.SHA, a.THA); err != nil {
		return nil, err
	}
	spa, err := ipv4(a.SPA)
	if err != nil {
		return nil, err
	}
	tpa, err := ipv4(a.TPA)
	if err != nil {
		return nil, err
	}
	b := ethernet(a.EthDst, a.EthSrc, a.VLAN, EtherTypeARP, 28)
	b = binary.BigEndian.AppendUint16(b, 1) // hardware type Ethernet
	b = binary.BigEndian.AppendUint16(b, EtherTypeIPv4)
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, a.Op)
	b = append(b, a.SHA[:6]...)
	b = append(b, spa[:]...)
	b = append(b, a.THA[:6]...)
	b = append(b, tpa[:]...)
	return b, nil
}

// NewARPRequest asks who has target, from (mac, ip), broadcast.
func NewARPRequest(mac net.HardwareAddr, ip, target netip.Addr, vlan uint16) ([]byte, error) {
	a := ARP{EthDst: Broadcast, EthSrc: mac, VLAN: vlan, Op: ARPRequest,
		SHA: mac, SPA: ip, THA: zeroMAC, TPA: target}
	return a.Marshal()
}

// NewARPReply answers (dstMAC, dstIP) that ip is at mac, unicast.
func NewARPReply(mac net.HardwareAddr, ip netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr, vlan uint16) ([]byte, error) {
	a := ARP{EthDst: dstMAC, EthSrc: mac, VLAN: vlan, Op: ARPReply,
		SHA: mac, SPA: ip, THA: dstMAC, TPA: dstIP}
	return a.Marshal()
}

// NewGratuitousARP announces that ip is at mac: a broadcast ARP request
// with sender and target address ip and a zero target MAC (the form
// RFC 5227 §3 recommends and Linux and OVN send).
func NewGratuitousARP(mac net.HardwareAddr, ip netip.Addr, vlan uint16) ([]byte, error) {
	a := ARP{EthDst: Broadcast, EthSrc: mac, VLAN: vlan, Op: ARPRequest,
		SHA: mac, SPA: ip, THA: zeroMAC, TPA: ip}
	return a.Marshal()
}

// ParseARP parses an Ethernet/IPv4 ARP frame, skipping 802.1Q/802.1ad
// tags (VLAN is the outermost one's id).
func ParseARP(frame []byte) (ARP, error) {
	var a ARP
	if len(frame) < 14 {
		return a, fmt.Errorf("%w: %d-byte frame", ErrInvalid, len(frame))
	}
	a.EthDst = slices.Clone(net.HardwareAddr(frame[0:6]))
	a.EthSrc = slices.Clone(net.HardwareAddr(frame[6:12]))
	et, n := binary.BigEndian.Uint16(frame[12:]), 14
	tagged := false
	for et == EtherTypeVLAN || et == EtherTypeQinQ {
		if len(frame) < n+4 {
			return a, fmt.Errorf("%w: truncated VLAN tag", ErrInvalid)
		}
		if !tagged {
			a.VLAN, tagged = binary.BigEndian.Uint16(frame[n:])&0x0fff, true
		}
		et, n = binary.BigEndian.Uint16(frame[n+2:]), n+4
	}
	if et != EtherTypeARP {
		return a, fmt.Errorf("%w: ethertype %#04x is not ARP", ErrInvalid, et)
	}
	p := frame[n:]
	if len(p) < 28 {
		return a, fmt.Errorf("%w: %d-byte ARP payload", ErrInvalid, len(p))
	}
	if binary.BigEndian.Uint16(p) != 1 || binary.BigEndian.Uint16(p[2:]) != EtherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return a, fmt.Errorf("%w: ARP is not Ethernet/IPv4", ErrInvalid)
	}
	a.Op = binary.BigEndian.Uint16(p[6:])
	a.SHA = slices.Clone(net.HardwareAddr(p[8:14]))
	a.SPA = netip.AddrFrom4([4]byte(p[14:18]))
	a.THA = slices.Clone(net.HardwareAddr(p[18:24]))
	a.TPA = netip.AddrFrom4([4]byte(p[24:28]))
	return a, nil
}

// IsGratuitous reports whether the ARP announces its sender (SPA == TPA).
func (a *ARP) IsGratuitous() bool { return a.SPA == a.TPA }

// Neighbour advertisement flags (RFC 4861 §4.4), in the top bits of the
// 32-bit word after the ICMPv6 checksum.
const (
	NARouter    uint32 = 1 << 31
	NASolicited uint32 = 1 << 30
	NAOverride  uint32 = 1 << 29
)

// NewUnsolicitedNA announces that ip (IPv6) is at mac: a neighbour
// advertisement from ip to ff02::1 (hop limit 255) with the override flag,
// the router flag when router is set, and a target link-layer address
// option.
func NewUnsolicitedNA(mac net.HardwareAddr, ip netip.Addr, router bool, vlan uint16) ([]byte, error) {
	if err := checkMAC(mac); err != nil {
		return nil, err
	}
	if !ip.Is6() || ip.Is4In6() {
		return nil, fmt.Errorf("%w: %v is not IPv6", ErrInvalid, ip)
	}
	flags := NAOverride
	if router {
		flags |= NARouter
	}
	// ICMPv6: type, code, checksum, flags, target, option (type 2, len 1).
	icmp := make([]byte, 0, 32)
	icmp = append(icmp, 136, 0, 0, 0)
	icmp = binary.BigEndian.AppendUint32(icmp, flags)
	t := ip.As16()
	icmp = append(icmp, t[:]...)
	icmp = append(icmp, 2, 1)
	icmp = append(icmp, mac[:6]...)
	return ipv6(AllNodesMAC, mac, vlan, ip, AllNodes, 58, 255, icmp), nil
}

// ipv6 wraps an upper-layer payload whose checksum field is at offset 2
// (ICMPv6) and fills in the checksum.
func ipv6(dst, src net.HardwareAddr, vlan uint16, srcIP, dstIP netip.Addr, next uint8, hops uint8, payload []byte) []byte {
	s, d := srcIP.As16(), dstIP.As16()
	binary.BigEndian.PutUint16(payload[2:], 0)
	binary.BigEndian.PutUint16(payload[2:], ICMPv6Checksum(s, d, payload))
	b := ethernet(dst, src, vlan, EtherTypeIPv6, 40+len(payload))
	b = append(b, 0x60, 0, 0, 0) // version 6, traffic class 0, flow label 0
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, next, hops)
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	return append(b, payload...)
}

// ICMPv6Checksum is the Internet checksum of the IPv6 pseudo-header
// (RFC 8200 §8.1) and msg, whose checksum field must be zero.
func ICMPv6Checksum(src, dst [16]byte, msg []byte) uint16 {
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
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(msg)))
	l[7] = 58
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
