package openflow

import (
	"encoding/binary"
	"fmt"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// nxmNames are the names ovs-ofctl gives fields inside actions that name a
// field by header (move, the zone of ct): OVS prints the oldest header it
// knows for the field, so eth_src is NXM_OF_ETH_SRC even though OpenFlow
// 1.3 carries it as OXM_OF_ETH_SRC, while metadata (OXM only) is
// OXM_OF_METADATA. Only fields listed here can be used in Move and as a
// CT zone source.
var nxmNames = map[Field]string{
	FieldInPort:        "OXM_OF_IN_PORT",
	FieldMetadata:      "OXM_OF_METADATA",
	FieldEthDst:        "NXM_OF_ETH_DST",
	FieldEthSrc:        "NXM_OF_ETH_SRC",
	FieldEthType:       "NXM_OF_ETH_TYPE",
	FieldIPProto:       "NXM_OF_IP_PROTO",
	FieldIPv4Src:       "NXM_OF_IP_SRC",
	FieldIPv4Dst:       "NXM_OF_IP_DST",
	FieldTCPSrc:        "NXM_OF_TCP_SRC",
	FieldTCPDst:        "NXM_OF_TCP_DST",
	FieldUDPSrc:        "NXM_OF_UDP_SRC",
	FieldUDPDst:        "NXM_OF_UDP_DST",
	FieldICMPType:      "NXM_OF_ICMP_TYPE",
	FieldICMPCode:      "NXM_OF_ICMP_CODE",
	FieldARPOp:         "NXM_OF_ARP_OP",
	FieldARPSpa:        "NXM_OF_ARP_SPA",
	FieldARPTpa:        "NXM_OF_ARP_TPA",
	FieldARPSha:        "NXM_NX_ARP_SHA",
	FieldARPTha:        "NXM_NX_ARP_THA",
	FieldTunID:         "NXM_NX_TUN_ID",
	FieldTunSrc:        "NXM_NX_TUN_IPV4_SRC",
	FieldTunDst:        "NXM_NX_TUN_IPV4_DST",
	FieldCtState:       "NXM_NX_CT_STATE",
	FieldCtZone:        "NXM_NX_CT_ZONE",
	FieldCtMark:        "NXM_NX_CT_MARK",
	FieldIPv6Src:       "NXM_NX_IPV6_SRC",
	FieldIPv6Dst:       "NXM_NX_IPV6_DST",
	FieldICMPv6Type:    "NXM_NX_ICMPV6_TYPE",
	FieldICMPv6Code:    "NXM_NX_ICMPV6_CODE",
	FieldNDTarget:      "NXM_NX_ND_TARGET",
	FieldNDSLL:         "NXM_NX_ND_SLL",
	FieldNDTLL:         "NXM_NX_ND_TLL",
	FieldNDReserved:    "ERICOXM_OF_ICMPV6_ND_RESERVED",
	FieldNDOptionsType: "ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE",
	FieldIPTTL:         "NXM_NX_IP_TTL",
}

func init() {
	for i := range 16 {
		nxmNames[FieldReg(i)] = fmt.Sprintf("NXM_NX_REG%d", i)
	}
}

// nxmAliases maps the older NXM headers (classes 0x0000 and 0x0001) of
// fields that also have an OXM code onto our Field constant, so a field
// decodes to the same Field whichever header the switch chose.
// NXM_OF_IN_PORT is not here: it is the 16-bit in_port, not OXM's 32-bit one.
var nxmAliases = map[Field]Field{
	oxmField(of13.OXM_CLASS_NXM_0, 1):                       FieldEthDst,
	oxmField(of13.OXM_CLASS_NXM_0, 2):                       FieldEthSrc,
	oxmField(of13.OXM_CLASS_NXM_0, 3):                       FieldEthType,
	oxmField(of13.OXM_CLASS_NXM_0, 6):                       FieldIPProto,
	oxmField(of13.OXM_CLASS_NXM_0, 7):                       FieldIPv4Src,
	oxmField(of13.OXM_CLASS_NXM_0, 8):                       FieldIPv4Dst,
	oxmField(of13.OXM_CLASS_NXM_0, 9):                       FieldTCPSrc,
	oxmField(of13.OXM_CLASS_NXM_0, 10):                      FieldTCPDst,
	oxmField(of13.OXM_CLASS_NXM_0, 11):                      FieldUDPSrc,
	oxmField(of13.OXM_CLASS_NXM_0, 12):                      FieldUDPDst,
	oxmField(of13.OXM_CLASS_NXM_0, 13):                      FieldICMPType,
	oxmField(of13.OXM_CLASS_NXM_0, 14):                      FieldICMPCode,
	oxmField(of13.OXM_CLASS_NXM_0, 15):                      FieldARPOp,
	oxmField(of13.OXM_CLASS_NXM_0, 16):                      FieldARPSpa,
	oxmField(of13.OXM_CLASS_NXM_0, 17):                      FieldARPTpa,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_TUN_ID):      FieldTunID,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_ARP_SHA):     FieldARPSha,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_ARP_THA):     FieldARPTha,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_IPV6_SRC):    FieldIPv6Src,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_IPV6_DST):    FieldIPv6Dst,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_ICMPV6_TYPE): FieldICMPv6Type,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_ICMPV6_CODE): FieldICMPv6Code,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_ND_TARGET):   FieldNDTarget,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_ND_SLL):      FieldNDSLL,
	oxmField(of13.OXM_CLASS_NXM_1, of13.NXM_NX_ND_TLL):      FieldNDTLL,
}

// canonicalField maps an NXM alias to our Field constant.
func canonicalField(f Field) Field {
	if a, ok := nxmAliases[f]; ok {
		return a
	}
	return f
}

// fieldBits is the width in bits of a field usable in Move and CT zones.
func fieldBits(f Field) (int, bool) {
	if _, ok := nxmNames[f]; !ok {
		return 0, false
	}
	w, ok := fieldSpecs[f]
	return w.width * 8, ok
}

// nxmHeader is the 32-bit NXM/OXM header naming f (no mask) in move and ct.
func nxmHeader(f Field) (uint32, error) {
	if _, ok := fieldBits(f); !ok {
		return 0, fmt.Errorf("%w: field %s cannot be named in move/ct", ErrBadFlow, f.Name())
	}
	return uint32(f.Class())<<16 | uint32(f.Code())<<9 | uint32(fieldSpecs[f].width), nil
}

// fieldFromHeader decodes a 32-bit header written by the switch.
func fieldFromHeader(h uint32) (Field, bool) {
	if h>>16 == of13.OXM_CLASS_EXPERIMENTER || h&0x100 != 0 {
		return 0, false
	}
	f := canonicalField(oxmField(uint16(h>>16), uint8(h>>9)&0x7f))
	bits, ok := fieldBits(f)
	if !ok || int(h&0xff)*8 != bits {
		return 0, false
	}
	return f, true
}

// Subfield is NBits bits of Field starting at bit Ofs (bit 0 is the least
// significant), as ovs-ofctl's NXM_NX_REG6[0..15]. NBits 0 means the whole
// field.
type Subfield struct {
	Field Field
	Ofs   uint16
	NBits uint16
}

// Bits builds the subfield f[ofs..ofs+nbits-1].
func Bits(f Field, ofs, nbits uint16) Subfield { return Subfield{Field: f, Ofs: ofs, NBits: nbits} }

// resolve returns the offset and bit count, checking them against the field.
func (s Subfield) resolve() (ofs, nbits uint16, err error) {
	w, ok := fieldBits(s.Field)
	if !ok {
		return 0, 0, fmt.Errorf("%w: field %s cannot be named in move/ct", ErrBadFlow, s.Field.Name())
	}
	nbits = s.NBits
	if nbits == 0 {
		if s.Ofs != 0 {
			return 0, 0, fmt.Errorf("%w: %s: offset %d without a bit count", ErrBadFlow, s.Field.Name(), s.Ofs)
		}
		nbits = uint16(w)
	}
	if int(s.Ofs)+int(nbits) > w {
		return 0, 0, fmt.Errorf("%w: %s[%d..%d] outside the %d-bit field", ErrBadFlow, s.Field.Name(), s.Ofs, int(s.Ofs)+int(nbits)-1, w)
	}
	return s.Ofs, nbits, nil
}

// String is the ovs-ofctl spelling: NAME[] for the whole field, NAME[n]
// for one bit, NAME[a..b] otherwise.
func (s Subfield) String() string {
	name, ok := nxmNames[s.Field]
	if !ok {
		name = s.Field.Name()
	}
	w, _ := fieldBits(s.Field)
	nbits := s.NBits
	if nbits == 0 {
		nbits = uint16(w)
	}
	switch {
	case s.Ofs == 0 && int(nbits) == w:
		return name + "[]"
	case nbits == 1:
		return fmt.Sprintf("%s[%d]", name, s.Ofs)
	}
	return fmt.Sprintf("%s[%d..%d]", name, s.Ofs, int(s.Ofs)+int(nbits)-1)
}

// nxmOfsNbits packs an offset and bit count as OVS's ofs_nbits.
func nxmOfsNbits(ofs, nbits uint16) uint16 { return ofs<<6 | (nbits - 1) }

// encodedAction is an action we encoded by hand, handed to the codec's
// instruction list as is.
type encodedAction []byte

func (e encodedAction) Header() *of13.ActionHeader {
	return &of13.ActionHeader{Type: binary.BigEndian.Uint16(e), Length: binary.BigEndian.Uint16(e[2:])}
}
func (e encodedAction) Len() uint16                    { return uint16(len(e)) }
func (e encodedAction) MarshalBinary() ([]byte, error) { return []byte(e), nil }
func (e encodedAction) UnmarshalBinary([]byte) error {
	return fmt.Errorf("openflow: encodedAction is encode-only")
}

// nxActionHeader starts a Nicira experimenter action of subtype with the
// total length l (a multiple of 8).
func nxActionHeader(l int, subtype uint16) []byte {
	b := make([]byte, 10, l)
	binary.BigEndian.PutUint16(b, of13.ActionType_Experimenter)
	binary.BigEndian.PutUint16(b[2:], uint16(l))
	binary.BigEndian.PutUint32(b[4:], of13.NxExperimenterID)
	binary.BigEndian.PutUint16(b[8:], subtype)
	return b
}

// pad8 pads b with zeros to a multiple of 8 bytes and fixes its length.
func pad8(b []byte) []byte {
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}
