package openflow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Field names one OXM/NXM match field as class<<8 | field code, so fields we
// have no constant for (seen in a dump) still have a stable identity and order.
type Field uint32

func oxmField(class uint16, code uint8) Field { return Field(uint32(class)<<8 | uint32(code)) }

// Class is the OXM class of the field.
func (f Field) Class() uint16 { return uint16(f >> 8) }

// Code is the field code within its class.
func (f Field) Code() uint8 { return uint8(f) }

// Match fields the flow compiler uses. NXM registers and conntrack fields
// use the Nicira class (OVS encodes them so in OpenFlow 1.3).
var (
	FieldInPort   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IN_PORT)
	FieldMetadata = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_METADATA)
	FieldEthDst   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ETH_DST)
	FieldEthSrc   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ETH_SRC)
	FieldEthType  = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ETH_TYPE)
	FieldVlanVID  = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_VLAN_VID)
	FieldIPProto  = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IP_PROTO)
	FieldIPv4Src  = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IPV4_SRC)
	FieldIPv4Dst  = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IPV4_DST)
	FieldTCPSrc   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_TCP_SRC)
	FieldTCPDst   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_TCP_DST)
	FieldUDPSrc   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_UDP_SRC)
	FieldUDPDst   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_UDP_DST)
	FieldICMPType = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ICMPV4_TYPE)
	FieldICMPCode = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ICMPV4_CODE)
	FieldARPOp    = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ARP_OP)
	FieldARPSpa   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ARP_SPA)
	FieldARPTpa   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ARP_TPA)
	FieldARPSha   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ARP_SHA)
	FieldARPTha   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ARP_THA)
	FieldTunID    = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_TUNNEL_ID)
	FieldTunSrc   = oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_TUN_IPV4_SRC)
	FieldTunDst   = oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_TUN_IPV4_DST)
	FieldConjID   = oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_CONJ_ID)
	FieldCtState  = oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_CT_STATE)
	FieldCtZone   = oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_CT_ZONE)
	FieldCtMark   = oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_CT_MARK)

	// IPv6 fields use their OXM codes, as OVS does in OpenFlow 1.3 dumps.
	FieldIPv6Src    = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IPV6_SRC)
	FieldIPv6Dst    = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IPV6_DST)
	FieldICMPv6Type = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ICMPV6_TYPE)
	FieldICMPv6Code = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_ICMPV6_CODE)
	FieldNDTarget   = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IPV6_ND_TARGET)
	FieldNDSLL      = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IPV6_ND_SLL)
	FieldNDTLL      = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IPV6_ND_TLL)
	// FieldNDReserved is the 32-bit reserved word of a neighbour
	// solicitation or advertisement (an advertisement's R, S and O flags
	// are its top bits); FieldNDOptionsType is the type of its first
	// option (1 source, 2 target link-layer address). OVS 2.11+ has them
	// in the Ericsson class (ERICOXM_OF_*, class 0x1000), read/write, not
	// maskable: with them an NS can be turned into an NA in place.
	FieldNDReserved    = oxmField(oxmClassEricsson, 1)
	FieldNDOptionsType = oxmField(oxmClassEricsson, 2)
	// FieldIPTTL is the IPv4 TTL / IPv6 hop limit (nw_ttl; Nicira class,
	// there is no OXM for it).
	FieldIPTTL = oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_IP_TTL)
	// FieldIPDSCP is the 6-bit DSCP of IPv4 and IPv6 (QoS marking).
	FieldIPDSCP = oxmField(of13.OXM_CLASS_OPENFLOW_BASIC, of13.OXM_FIELD_IP_DSCP)
)

// oxmClassEricsson is OVS's ERICOXM_OF_ class.
const oxmClassEricsson = 0x1000

// FieldReg returns the Nicira register field reg<i> (0..15).
func FieldReg(i int) Field {
	if i < 0 || i > 15 {
		panic(fmt.Sprintf("openflow: register %d out of range", i))
	}
	return oxmField(of13.OXM_CLASS_NXM_1, uint8(of13.NXM_NX_REG0+i))
}

type fieldKind int

const (
	kindHex fieldKind = iota
	kindDec
	kindMAC
	kindIPv4
	kindPort
	kindCtState
	kindIPv6
)

type fieldSpec struct {
	name    string // as ovs-ofctl prints it in a match
	setName string // as ovs-ofctl prints it in set_field (OVS's mf name)
	width   int
	kind    fieldKind
	// maskable says whether OVS accepts a mask in a match; a mask on a field
	// that is not maskable is a compiler bug we report before sending.
	maskable bool
	// rank is where ovs-ofctl prints the field in a match (lib/match.c
	// match_format order), so String() reads like a dump.
	rank int
}

var fieldSpecs = map[Field]fieldSpec{
	FieldConjID:   {"conj_id", "conj_id", 4, kindDec, false, 1},
	FieldCtState:  {"ct_state", "ct_state", 4, kindCtState, true, 2},
	FieldCtZone:   {"ct_zone", "ct_zone", 2, kindDec, false, 3},
	FieldCtMark:   {"ct_mark", "ct_mark", 4, kindHex, true, 4},
	FieldTunID:    {"tun_id", "tun_id", 8, kindHex, true, 30},
	FieldTunSrc:   {"tun_src", "tun_src", 4, kindIPv4, true, 31},
	FieldTunDst:   {"tun_dst", "tun_dst", 4, kindIPv4, true, 32},
	FieldMetadata: {"metadata", "metadata", 8, kindHex, true, 40},
	FieldInPort:   {"in_port", "in_port", 4, kindPort, false, 41},
	FieldVlanVID:  {"vlan_vid", "vlan_vid", 2, kindHex, true, 42},
	FieldEthSrc:   {"dl_src", "eth_src", 6, kindMAC, true, 43},
	FieldEthDst:   {"dl_dst", "eth_dst", 6, kindMAC, true, 44},
	FieldEthType:  {"dl_type", "eth_type", 2, kindHex, false, 45},
	FieldIPv4Src:  {"nw_src", "ip_src", 4, kindIPv4, true, 50},
	FieldARPSpa:   {"arp_spa", "arp_spa", 4, kindIPv4, true, 50},
	FieldIPv4Dst:  {"nw_dst", "ip_dst", 4, kindIPv4, true, 51},
	FieldARPTpa:   {"arp_tpa", "arp_tpa", 4, kindIPv4, true, 51},
	FieldIPProto:  {"nw_proto", "ip_proto", 1, kindDec, false, 52},
	FieldARPOp:    {"arp_op", "arp_op", 2, kindDec, false, 52},
	FieldARPSha:   {"arp_sha", "arp_sha", 6, kindMAC, true, 53},
	FieldARPTha:   {"arp_tha", "arp_tha", 6, kindMAC, true, 54},
	FieldICMPType: {"icmp_type", "icmp_type", 1, kindDec, false, 60},
	FieldICMPCode: {"icmp_code", "icmp_code", 1, kindDec, false, 61},
	FieldTCPSrc:   {"tp_src", "tcp_src", 2, kindDec, true, 62},
	FieldUDPSrc:   {"tp_src", "udp_src", 2, kindDec, true, 62},
	FieldTCPDst:   {"tp_dst", "tcp_dst", 2, kindDec, true, 63},
	FieldUDPDst:   {"tp_dst", "udp_dst", 2, kindDec, true, 63},

	// IPv6: ipv6_src/dst take nw_src/nw_dst's place; under icmp6 OVS
	// prints the ICMPv6 type and code as icmp_type/icmp_code, followed by
	// the ND fields (lib/match.c).
	FieldIPv6Src:    {"ipv6_src", "ipv6_src", 16, kindIPv6, true, 50},
	FieldIPv6Dst:    {"ipv6_dst", "ipv6_dst", 16, kindIPv6, true, 51},
	FieldIPTTL:      {"nw_ttl", "nw_ttl", 1, kindDec, false, 55},
	FieldIPDSCP:     {"ip_dscp", "ip_dscp", 1, kindDec, false, 56},
	FieldICMPv6Type: {"icmp_type", "icmpv6_type", 1, kindDec, false, 60},
	FieldICMPv6Code: {"icmp_code", "icmpv6_code", 1, kindDec, false, 61},
	FieldNDTarget:   {"nd_target", "nd_target", 16, kindIPv6, true, 64},
	FieldNDSLL:      {"nd_sll", "nd_sll", 6, kindMAC, true, 65},
	FieldNDTLL:      {"nd_tll", "nd_tll", 6, kindMAC, true, 66},
	// OVS prints both in decimal.
	FieldNDReserved:    {"nd_reserved", "nd_reserved", 4, kindDec, false, 67},
	FieldNDOptionsType: {"nd_options_type", "nd_options_type", 1, kindDec, false, 68},
}

func init() {
	for i := range 16 {
		n := "reg" + strconv.Itoa(i)
		fieldSpecs[FieldReg(i)] = fieldSpec{n, n, 4, kindHex, true, 10 + i}
	}
}

func rankOf(f Field) int {
	if s, ok := fieldSpecs[f]; ok {
		return s.rank
	}
	return 100
}

// Name is the ovs-ofctl name of the field, or oxm(class,code) if unknown.
func (f Field) Name() string {
	if s, ok := fieldSpecs[f]; ok {
		return s.name
	}
	return fmt.Sprintf("oxm(0x%04x,%d)", f.Class(), f.Code())
}

// MatchField is one field of a match: a value and an optional mask of the
// field's width. A nil Mask means an exact match.
type MatchField struct {
	Field Field
	Value []byte
	Mask  []byte
}

// Match is a set of match fields; order does not matter (Canonical sorts).
type Match []MatchField

func be(width int, v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b[8-width:]
}

// Exact builds an exact match on f with the integer v (big-endian, f's width).
func Exact(f Field, v uint64) MatchField {
	return MatchField{Field: f, Value: be(widthOf(f, 8), v)}
}

// Masked builds a masked match on f.
func Masked(f Field, v, mask uint64) MatchField {
	w := widthOf(f, 8)
	return MatchField{Field: f, Value: be(w, v), Mask: be(w, mask)}
}

func widthOf(f Field, def int) int {
	if s, ok := fieldSpecs[f]; ok {
		return s.width
	}
	return def
}

// InPort matches the OpenFlow input port.
func InPort(port uint32) MatchField { return Exact(FieldInPort, uint64(port)) }

// Reg matches register reg<i> exactly.
func Reg(i int, v uint32) MatchField { return Exact(FieldReg(i), uint64(v)) }

// RegMasked matches the bits of reg<i> selected by mask.
func RegMasked(i int, v, mask uint32) MatchField {
	return Masked(FieldReg(i), uint64(v), uint64(mask))
}

// Metadata matches the OpenFlow metadata under mask.
func Metadata(v, mask uint64) MatchField { return Masked(FieldMetadata, v, mask) }

// TunID matches the tunnel key.
func TunID(v uint64) MatchField { return Exact(FieldTunID, v) }

// EthType matches the Ethernet type.
func EthType(t uint16) MatchField { return Exact(FieldEthType, uint64(t)) }

// EthDst matches the destination MAC.
func EthDst(mac net.HardwareAddr) MatchField {
	return MatchField{Field: FieldEthDst, Value: slices.Clone(mac[:6])}
}

// EthSrc matches the source MAC.
func EthSrc(mac net.HardwareAddr) MatchField {
	return MatchField{Field: FieldEthSrc, Value: slices.Clone(mac[:6])}
}

// VlanVID matches an 802.1Q VLAN id (the OFPVID_PRESENT bit is added).
func VlanVID(vid uint16) MatchField { return Exact(FieldVlanVID, uint64(vid|0x1000)) }

// IPProto matches the IP protocol number (needs an IP EthType in the match).
func IPProto(p uint8) MatchField { return Exact(FieldIPProto, uint64(p)) }

func ipv4Field(f Field, p net.IPNet) MatchField {
	m := MatchField{Field: f, Value: slices.Clone(p.IP.To4())}
	if ones, bits := p.Mask.Size(); ones != bits {
		m.Mask = slices.Clone([]byte(p.Mask))
	}
	return m
}

// IPv4Src matches the IPv4 source against a prefix.
func IPv4Src(p net.IPNet) MatchField { return ipv4Field(FieldIPv4Src, p) }

// IPv4Dst matches the IPv4 destination against a prefix.
func IPv4Dst(p net.IPNet) MatchField { return ipv4Field(FieldIPv4Dst, p) }

// TunDst matches the outer IPv4 destination of a received tunnel packet.
func TunDst(ip net.IP) MatchField {
	return MatchField{Field: FieldTunDst, Value: slices.Clone(ip.To4())}
}

// TunSrc matches the outer IPv4 source of a received tunnel packet.
func TunSrc(ip net.IP) MatchField {
	return MatchField{Field: FieldTunSrc, Value: slices.Clone(ip.To4())}
}

// ARPOp matches the ARP opcode.
func ARPOp(op uint16) MatchField { return Exact(FieldARPOp, uint64(op)) }

// ARPTpa matches the ARP target protocol address.
func ARPTpa(ip net.IP) MatchField {
	return MatchField{Field: FieldARPTpa, Value: slices.Clone(ip.To4())}
}

// ARPSpa matches the ARP sender protocol address.
func ARPSpa(ip net.IP) MatchField {
	return MatchField{Field: FieldARPSpa, Value: slices.Clone(ip.To4())}
}

// ConjID matches the conjunction id a conjunctive match resolved to.
func ConjID(id uint32) MatchField { return Exact(FieldConjID, uint64(id)) }

func ipv6Field(f Field, p netip.Prefix) MatchField {
	a := p.Addr().As16()
	m := MatchField{Field: f, Value: a[:]}
	bits := p.Bits() // -1 for an invalid prefix: an exact match
	if p.Addr().Is4() && bits >= 0 {
		bits += 96 // an IPv4 prefix means its IPv4-mapped range
	}
	if bits >= 0 && bits < 128 {
		m.Mask = prefixMask16(bits)
	}
	return m
}

func prefixMask16(bits int) []byte {
	mask := make([]byte, 16)
	for i := range mask {
		switch {
		case bits >= 8:
			mask[i] = 0xff
			bits -= 8
		case bits > 0:
			mask[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	return mask
}

func ipNetPrefix(n net.IPNet) netip.Prefix {
	a, _ := netip.AddrFromSlice(n.IP.To16())
	ones, _ := n.Mask.Size()
	if len(n.Mask) == net.IPv4len {
		ones += 96
	}
	return netip.PrefixFrom(a, ones)
}

// IPv6Src matches the IPv6 source against a prefix (a /128 or a bare
// address prefix is an exact match).
func IPv6Src(p netip.Prefix) MatchField { return ipv6Field(FieldIPv6Src, p) }

// IPv6Dst matches the IPv6 destination against a prefix.
func IPv6Dst(p netip.Prefix) MatchField { return ipv6Field(FieldIPv6Dst, p) }

// IPv6SrcNet is IPv6Src for a net.IPNet.
func IPv6SrcNet(n net.IPNet) MatchField { return ipv6Field(FieldIPv6Src, ipNetPrefix(n)) }

// IPv6DstNet is IPv6Dst for a net.IPNet.
func IPv6DstNet(n net.IPNet) MatchField { return ipv6Field(FieldIPv6Dst, ipNetPrefix(n)) }

// ICMPv6Type matches the ICMPv6 type (needs icmp6: EthType 0x86dd, IPProto 58).
func ICMPv6Type(t uint8) MatchField { return Exact(FieldICMPv6Type, uint64(t)) }

// ICMPv6Code matches the ICMPv6 code.
func ICMPv6Code(c uint8) MatchField { return Exact(FieldICMPv6Code, uint64(c)) }

// NDTarget matches the target address of a neighbour solicitation or
// advertisement (needs ICMPv6Type 135 or 136).
func NDTarget(a netip.Addr) MatchField {
	b := a.As16()
	return MatchField{Field: FieldNDTarget, Value: b[:]}
}

// NDTargetPrefix matches the target address of a neighbour solicitation
// or advertisement against a prefix.
func NDTargetPrefix(p netip.Prefix) MatchField { return ipv6Field(FieldNDTarget, p) }

// NDSLL matches the source link-layer address option of a solicitation.
func NDSLL(mac net.HardwareAddr) MatchField {
	return MatchField{Field: FieldNDSLL, Value: slices.Clone(mac[:6])}
}

// NDTLL matches the target link-layer address option of an advertisement.
func NDTLL(mac net.HardwareAddr) MatchField {
	return MatchField{Field: FieldNDTLL, Value: slices.Clone(mac[:6])}
}

// IPTTL matches the IPv4 TTL or IPv6 hop limit.
func IPTTL(ttl uint8) MatchField { return Exact(FieldIPTTL, uint64(ttl)) }

// CtState matches conntrack state bits (see CtNew etc.) under mask.
func CtState(v, mask uint32) MatchField { return Masked(FieldCtState, uint64(v), uint64(mask)) }

// CtZone matches the conntrack zone.
func CtZone(z uint16) MatchField { return Exact(FieldCtZone, uint64(z)) }

// CtMark matches the conntrack mark under mask.
func CtMark(v, mask uint32) MatchField { return Masked(FieldCtMark, uint64(v), uint64(mask)) }

// Conntrack state bits for CtState.
const (
	CtNew   uint32 = 1 << 0
	CtEst   uint32 = 1 << 1
	CtRel   uint32 = 1 << 2
	CtRpl   uint32 = 1 << 3
	CtInv   uint32 = 1 << 4
	CtTrk   uint32 = 1 << 5
	CtSNAT  uint32 = 1 << 6
	CtDNAT  uint32 = 1 << 7
	ctNames        = "new est rel rpl inv trk snat dnat"
)

// Canonical returns the match as OVS stores it: fields sorted, an all-ones
// mask dropped, value bits outside the mask cleared, an all-zero mask (a
// wildcard) removed. A desired match and the same match dumped from a switch
// then compare equal byte for byte.
func (m Match) Canonical() Match {
	out := make(Match, 0, len(m))
	for _, f := range m {
		v := slices.Clone(f.Value)
		var mask []byte
		if f.Mask != nil {
			allOnes, allZero := true, true
			for _, b := range f.Mask {
				allOnes = allOnes && b == 0xff
				allZero = allZero && b == 0
			}
			switch {
			case allZero:
				continue
			case !allOnes:
				mask = slices.Clone(f.Mask)
				for i := range v {
					if i < len(mask) {
						v[i] &= mask[i]
					}
				}
			}
		}
		out = append(out, MatchField{Field: f.Field, Value: v, Mask: mask})
	}
	slices.SortStableFunc(out, func(a, b MatchField) int {
		if a.Field != b.Field {
			if a.Field < b.Field {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.Value, b.Value)
	})
	return out
}

// appendKey appends an unambiguous binary form of a canonical match.
func (m Match) appendKey(b []byte) []byte {
	for _, f := range m {
		b = binary.BigEndian.AppendUint32(b, uint32(f.Field))
		b = append(b, byte(len(f.Value)), byte(len(f.Mask)))
		b = append(b, f.Value...)
		b = append(b, f.Mask...)
	}
	return b
}

// Validate reports fields of the wrong width or masks on unmaskable fields.
func (m Match) Validate() error {
	seen := map[Field]bool{}
	for _, f := range m {
		if seen[f.Field] {
			return fmt.Errorf("%w: field %s twice", ErrBadFlow, f.Field.Name())
		}
		seen[f.Field] = true
		s, ok := fieldSpecs[f.Field]
		if !ok {
			continue
		}
		if len(f.Value) != s.width || (f.Mask != nil && len(f.Mask) != s.width) {
			return fmt.Errorf("%w: field %s needs %d bytes", ErrBadFlow, s.name, s.width)
		}
		if f.Mask != nil && !s.maskable {
			return fmt.Errorf("%w: field %s cannot be masked", ErrBadFlow, s.name)
		}
	}
	return nil
}

func (f MatchField) valueString() string {
	s, ok := fieldSpecs[f.Field]
	if !ok {
		if f.Mask != nil {
			return fmt.Sprintf("0x%x/0x%x", f.Value, f.Mask)
		}
		return fmt.Sprintf("0x%x", f.Value)
	}
	num := func(b []byte) uint64 {
		var v uint64
		for _, c := range b {
			v = v<<8 | uint64(c)
		}
		return v
	}
	switch s.kind {
	case kindMAC:
		if f.Mask != nil {
			return net.HardwareAddr(f.Value).String() + "/" + net.HardwareAddr(f.Mask).String()
		}
		return net.HardwareAddr(f.Value).String()
	case kindIPv4:
		if f.Mask != nil {
			if ones, bits := net.IPMask(f.Mask).Size(); bits != 0 {
				return fmt.Sprintf("%s/%d", net.IP(f.Value), ones)
			}
			return net.IP(f.Value).String() + "/" + net.IP(f.Mask).String()
		}
		return net.IP(f.Value).String()
	case kindIPv6:
		if len(f.Value) != 16 || (f.Mask != nil && len(f.Mask) != 16) {
			return fmt.Sprintf("0x%x", f.Value) // malformed; Validate reports it
		}
		a := ipv6String(f.Value)
		if f.Mask != nil {
			if ones, bits := net.IPMask(f.Mask).Size(); bits != 0 {
				return fmt.Sprintf("%s/%d", a, ones)
			}
			return a + "/" + ipv6String(f.Mask)
		}
		return a
	case kindCtState:
		v, mask := uint32(num(f.Value)), uint32(0xffffffff)
		if f.Mask != nil {
			mask = uint32(num(f.Mask))
		}
		var sb strings.Builder
		for i, name := range strings.Fields(ctNames) {
			bit := uint32(1) << i
			if mask&bit == 0 {
				continue
			}
			if v&bit != 0 {
				sb.WriteString("+" + name)
			} else {
				sb.WriteString("-" + name)
			}
		}
		return sb.String()
	case kindPort:
		return portString(uint32(num(f.Value)))
	case kindDec:
		if f.Mask != nil {
			return cHex(num(f.Value)) + "/" + cHex(num(f.Mask))
		}
		return strconv.FormatUint(num(f.Value), 10)
	default:
		if f.Mask != nil {
			return cHex(num(f.Value)) + "/" + cHex(num(f.Mask))
		}
		return cHex(num(f.Value))
	}
}

// ipv6String formats a 16-byte address as glibc's inet_ntop does (which
// ovs-ofctl uses): like Go's, except that an IPv4-compatible address
// (::a.b.c.d with a non-zero high half of the IPv4 part) keeps dotted quad.
func ipv6String(b []byte) string {
	a := netip.AddrFrom16([16]byte(b))
	if !a.Is4In6() && slices.Equal(b[:12], make([]byte, 12)) && (b[12] != 0 || b[13] != 0) {
		return "::" + net.IP(b[12:]).String()
	}
	return a.String()
}

// cHex formats like C's %#x, as ovs-ofctl does: zero is "0", not "0x0".
func cHex(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// String formats the field as name=value[/mask].
func (f MatchField) String() string { return f.Field.Name() + "=" + f.valueString() }

// String formats the match as ovs-ofctl prints it: protocol shorthand
// (ip, tcp, arp, ...) for eth_type/ip_proto, fields in ovs-ofctl's order.
func (m Match) String() string { return strings.Join(m.ofctlParts(), ",") }

var (
	ipProtoNames   = map[byte]string{1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}
	ipv6ProtoNames = map[byte]string{58: "icmp6", 6: "tcp6", 17: "udp6", 132: "sctp6"}
)

func (m Match) ofctlParts() []string {
	c := m.Canonical()
	var ethType *MatchField
	var proto *MatchField
	for i := range c {
		switch {
		case c[i].Field == FieldEthType && c[i].Mask == nil:
			ethType = &c[i]
		case c[i].Field == FieldIPProto && c[i].Mask == nil:
			proto = &c[i]
		}
	}
	shorthand := ""
	skip := map[Field]bool{}
	if ethType != nil && len(ethType.Value) == 2 {
		switch binary.BigEndian.Uint16(ethType.Value) {
		case 0x0800:
			shorthand = "ip"
			if proto != nil && len(proto.Value) == 1 && ipProtoNames[proto.Value[0]] != "" {
				shorthand = ipProtoNames[proto.Value[0]]
				skip[FieldIPProto] = true
			}
		case 0x86dd:
			shorthand = "ipv6"
			if proto != nil && len(proto.Value) == 1 && ipv6ProtoNames[proto.Value[0]] != "" {
				shorthand = ipv6ProtoNames[proto.Value[0]]
				skip[FieldIPProto] = true
			}
		case 0x0806:
			shorthand = "arp"
		case 0x8035:
			shorthand = "rarp"
		}
		if shorthand != "" {
			skip[FieldEthType] = true
		}
	}
	type part struct {
		rank int
		s    string
	}
	parts := make([]part, 0, len(c)+1)
	if shorthand != "" {
		parts = append(parts, part{5, shorthand})
	}
	for _, f := range c {
		if skip[f.Field] {
			continue
		}
		s := f.String()
		if f.Field == FieldVlanVID && f.Mask == nil && len(f.Value) == 2 && f.Value[0]&0x10 != 0 {
			s = fmt.Sprintf("dl_vlan=%d", binary.BigEndian.Uint16(f.Value)&0xfff)
		}
		parts = append(parts, part{rankOf(f.Field), s})
	}
	slices.SortStableFunc(parts, func(a, b part) int { return a.rank - b.rank })
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.s
	}
	return out
}

// prereqDepth is how many fields a field's prerequisites chain through
// (eth_type ← ip_proto ← icmpv6_type ← nd_target). OVS checks a field's
// prerequisites against the fields before it on the wire, so codec sends
// shallower fields first: nw_ttl (Nicira class, which sorts before OXM
// basic in Canonical) would otherwise precede eth_type and be refused
// with BAD_MATCH/BAD_PREREQ.
func prereqDepth(f Field) int {
	switch f {
	case FieldIPProto, FieldIPv4Src, FieldIPv4Dst, FieldIPv6Src, FieldIPv6Dst, FieldIPTTL,
		FieldARPOp, FieldARPSpa, FieldARPTpa, FieldARPSha, FieldARPTha:
		return 1
	case FieldTCPSrc, FieldTCPDst, FieldUDPSrc, FieldUDPDst, FieldICMPType, FieldICMPCode,
		FieldICMPv6Type, FieldICMPv6Code:
		return 2
	case FieldNDTarget, FieldNDSLL, FieldNDTLL, FieldNDReserved, FieldNDOptionsType:
		return 3
	}
	return 0
}

// codec converts the match to the wire codec's form, prerequisites first.
func (m Match) codec() *of13.Match {
	om := of13.NewMatch()
	m = slices.Clone(m)
	slices.SortStableFunc(m, func(a, b MatchField) int { return prereqDepth(a.Field) - prereqDepth(b.Field) })
	for _, f := range m {
		mf := of13.MatchField{
			Class: f.Field.Class(),
			Field: f.Field.Code(),
			Value: rawBytes(f.Value),
		}
		mf.Length = uint8(len(f.Value))
		if f.Mask != nil {
			mf.HasMask = true
			mf.Mask = rawBytes(f.Mask)
			mf.Length += uint8(len(f.Mask))
		}
		om.AddField(mf)
	}
	return om
}

// rawBytes is a util.Message holding already-encoded bytes; the codec's
// typed field values would re-parse what we already have in wire form.
type rawBytes []byte

func (r rawBytes) Len() uint16                    { return uint16(len(r)) }
func (r rawBytes) MarshalBinary() ([]byte, error) { return []byte(r), nil }
func (r rawBytes) UnmarshalBinary(data []byte) error {
	return fmt.Errorf("openflow: rawBytes is encode-only")
}

// decodeMatch parses an ofp_match (OXM) by hand: the codec's decoder panics
// on fields it does not know, and a dump may hold any field.
func decodeMatch(b []byte) (Match, int, error) {
	if len(b) < 4 {
		return nil, 0, fmt.Errorf("%w: short match", ErrDecode)
	}
	if t := binary.BigEndian.Uint16(b); t != of13.MatchType_OXM {
		return nil, 0, fmt.Errorf("%w: match type %d", ErrDecode, t)
	}
	length := int(binary.BigEndian.Uint16(b[2:]))
	padded := (length + 7) / 8 * 8
	if length < 4 || padded > len(b) {
		return nil, 0, fmt.Errorf("%w: match length %d", ErrDecode, length)
	}
	var m Match
	for n := 4; n < length; {
		if n+4 > length {
			return nil, 0, fmt.Errorf("%w: truncated oxm header", ErrDecode)
		}
		class := binary.BigEndian.Uint16(b[n:])
		code := b[n+2] >> 1
		hasMask := b[n+2]&1 == 1
		plen := int(b[n+3])
		n += 4
		if class == of13.OXM_CLASS_EXPERIMENTER {
			// Experimenter fields carry a 4-byte id inside the payload length.
			n += 4
			plen -= 4
		}
		if plen < 0 || n+plen > length {
			return nil, 0, fmt.Errorf("%w: truncated oxm payload", ErrDecode)
		}
		if hasMask && plen%2 != 0 {
			return nil, 0, fmt.Errorf("%w: masked oxm of odd length %d", ErrDecode, plen)
		}
		f := MatchField{Field: canonicalField(oxmField(class, code))}
		if hasMask {
			half := plen / 2
			f.Value = slices.Clone(b[n : n+half])
			f.Mask = slices.Clone(b[n+half : n+plen])
		} else {
			f.Value = slices.Clone(b[n : n+plen])
		}
		m = append(m, f)
		n += plen
	}
	return m, padded, nil
}
