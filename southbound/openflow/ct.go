package openflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Move copies NBits bits of Src starting at SrcOfs into Dst starting at
// DstOfs (NXAST_REG_MOVE), e.g. move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[].
// NBits 0 copies the whole of Src into the whole of Dst (equal widths).
// Both fields must be among those listed in nxmNames; OVS also wants the
// fields' prerequisites in the match (ip for NXM_OF_IP_SRC, ...).
type Move struct {
	Src, Dst       Field
	SrcOfs, DstOfs uint16
	NBits          uint16
}

// MoveField builds a whole-field move from src to dst.
func MoveField(src, dst Field) Move { return Move{Src: src, Dst: dst} }

func (a Move) subfields() (src, dst Subfield, err error) {
	nbits := a.NBits
	if nbits == 0 {
		sw, _ := fieldBits(a.Src)
		dw, _ := fieldBits(a.Dst)
		if sw != dw || a.SrcOfs != 0 || a.DstOfs != 0 {
			return src, dst, fmt.Errorf("%w: move %s->%s needs NBits", ErrBadFlow, a.Src.Name(), a.Dst.Name())
		}
		nbits = uint16(sw)
	}
	src, dst = Bits(a.Src, a.SrcOfs, nbits), Bits(a.Dst, a.DstOfs, nbits)
	if _, _, err = src.resolve(); err != nil {
		return src, dst, err
	}
	_, _, err = dst.resolve()
	return src, dst, err
}

func (a Move) String() string {
	src, dst, err := a.subfields()
	if err != nil {
		src, dst = Bits(a.Src, a.SrcOfs, a.NBits), Bits(a.Dst, a.DstOfs, a.NBits)
	}
	return "move:" + src.String() + "->" + dst.String()
}
func (Move) stage() int { return stageApply }
func (a Move) codec() (of13.Action, error) {
	src, dst, err := a.subfields()
	if err != nil {
		return nil, err
	}
	sh, _ := nxmHeader(src.Field)
	dh, _ := nxmHeader(dst.Field)
	b := nxActionHeader(24, of13.NXAST_REG_MOVE)
	b = binary.BigEndian.AppendUint16(b, src.NBits)
	b = binary.BigEndian.AppendUint16(b, src.Ofs)
	b = binary.BigEndian.AppendUint16(b, dst.Ofs)
	b = binary.BigEndian.AppendUint32(b, sh)
	b = binary.BigEndian.AppendUint32(b, dh)
	return encodedAction(pad8(b)), nil
}

func decodeMove(a []byte) Action {
	if len(a) < 24 {
		return nil
	}
	src, ok1 := fieldFromHeader(binary.BigEndian.Uint32(a[16:]))
	dst, ok2 := fieldFromHeader(binary.BigEndian.Uint32(a[20:]))
	if !ok1 || !ok2 {
		return nil
	}
	return Move{Src: src, Dst: dst, NBits: binary.BigEndian.Uint16(a[10:]),
		SrcOfs: binary.BigEndian.Uint16(a[12:]), DstOfs: binary.BigEndian.Uint16(a[14:])}
}

// CT sends the packet through the connection tracker (NXAST_CT). ovs-ofctl
// spells it with its arguments in a fixed order whatever order they were
// given in: ct(commit,table=N,zone=Z,nat(...),exec(...)), omitting zone 0.
type CT struct {
	// Commit creates the connection entry (and applies Actions to it).
	Commit bool
	// Zone is the conntrack zone when ZoneSrc.Field is zero.
	Zone uint16
	// ZoneSrc takes the zone from 16 bits of a field, e.g.
	// Bits(FieldReg(6), 0, 16) for zone=NXM_NX_REG6[0..15].
	ZoneSrc Subfield
	// Recirc sends a copy of the packet, with ct_state etc. filled in, to
	// Table; without it the packet continues here untracked-state-wise.
	Recirc bool
	Table  uint8
	// Actions run inside the tracker: at most one NAT and SetFields of
	// ct_mark. Anything but a bare NAT needs Commit.
	Actions []Action
}

// ctRecircNone is NX_CT_RECIRC_NONE.
const ctRecircNone = 0xff

const (
	ctFlagCommit = 1 << 0
	ctFlagForce  = 1 << 1
)

func (a CT) String() string {
	var parts []string
	if a.Commit {
		parts = append(parts, "commit")
	}
	if a.Recirc {
		parts = append(parts, "table="+strconv.Itoa(int(a.Table)))
	}
	if a.ZoneSrc.Field != 0 {
		parts = append(parts, "zone="+a.ZoneSrc.String())
	} else if a.Zone != 0 {
		parts = append(parts, "zone="+strconv.Itoa(int(a.Zone)))
	}
	// OVS prints a leading nat outside exec(), the rest inside.
	acts := a.Actions
	if len(acts) > 0 {
		if n, ok := acts[0].(NAT); ok {
			parts = append(parts, n.String())
			acts = acts[1:]
		}
	}
	if len(acts) > 0 {
		inner := make([]string, len(acts))
		for i, x := range acts {
			inner[i] = x.String()
		}
		parts = append(parts, "exec("+strings.Join(inner, ",")+")")
	}
	return "ct(" + strings.Join(parts, ",") + ")"
}
func (CT) stage() int { return stageApply }
func (a CT) codec() (of13.Action, error) {
	var flags uint16
	if a.Commit {
		flags |= ctFlagCommit
	}
	var zoneSrc uint32
	zoneVal := a.Zone
	if a.ZoneSrc.Field != 0 {
		ofs, nbits, err := a.ZoneSrc.resolve()
		if err != nil {
			return nil, err
		}
		if nbits != 16 {
			return nil, fmt.Errorf("%w: ct zone %s must be 16 bits", ErrBadFlow, a.ZoneSrc)
		}
		zoneSrc, _ = nxmHeader(a.ZoneSrc.Field)
		zoneVal = nxmOfsNbits(ofs, nbits)
	}
	table := uint8(ctRecircNone)
	if a.Recirc {
		if a.Table == ctRecircNone {
			return nil, fmt.Errorf("%w: ct table 255", ErrBadFlow)
		}
		table = a.Table
	}
	var nested []byte
	nats := 0
	for _, x := range a.Actions {
		var b []byte
		switch x := x.(type) {
		case NAT:
			nats++
			if !a.Commit && !x.bare() {
				return nil, fmt.Errorf("%w: %s without commit", ErrBadFlow, x)
			}
			var err error
			if b, err = x.encode(); err != nil {
				return nil, err
			}
		case SetField:
			if !a.Commit {
				return nil, fmt.Errorf("%w: ct exec(%s) without commit", ErrBadFlow, x)
			}
			ca, err := x.codec()
			if err != nil {
				return nil, err
			}
			if b, err = ca.MarshalBinary(); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadFlow, err)
			}
		default:
			return nil, fmt.Errorf("%w: %s inside ct", ErrBadFlow, x)
		}
		nested = append(nested, b...)
	}
	if nats > 1 {
		return nil, fmt.Errorf("%w: more than one nat in ct", ErrBadFlow)
	}
	b := nxActionHeader(24+len(nested), of13.NXAST_CT)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint32(b, zoneSrc)
	b = binary.BigEndian.AppendUint16(b, zoneVal)
	b = append(b, table, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, 0) // alg
	b = append(b, nested...)
	return encodedAction(pad8(b)), nil
}

// decodeCT parses NXAST_CT; nil for what CT does not model (force, alg,
// unknown zone fields), which then stays a RawAction.
func decodeCT(a []byte) (Action, error) {
	if len(a) < 24 {
		return nil, nil
	}
	flags := binary.BigEndian.Uint16(a[10:])
	zoneSrc := binary.BigEndian.Uint32(a[12:])
	zoneVal := binary.BigEndian.Uint16(a[16:])
	table := a[18]
	alg := binary.BigEndian.Uint16(a[22:])
	if flags&^ctFlagCommit != 0 || alg != 0 {
		return nil, nil
	}
	ct := CT{Commit: flags&ctFlagCommit != 0}
	if zoneSrc != 0 {
		f, ok := fieldFromHeader(zoneSrc)
		if !ok {
			return nil, nil
		}
		ct.ZoneSrc = Bits(f, zoneVal>>6, zoneVal&0x3f+1)
	} else {
		ct.Zone = zoneVal
	}
	if table != ctRecircNone {
		ct.Recirc, ct.Table = true, table
	}
	nested, err := decodeActions(a[24:])
	if err != nil {
		return nil, err
	}
	ct.Actions = nested
	return ct, nil
}

// NATKind says what a NAT does.
type NATKind uint8

const (
	// NATExisting is the bare "nat": apply the NAT binding the connection
	// already has (reply direction, or packets after the first).
	NATExisting NATKind = iota
	// NATSrc translates the source address (nat(src=...)).
	NATSrc
	// NATDst translates the destination address (nat(dst=...)).
	NATDst
)

// NAT is the nat(...) argument of a CT action (NXAST_NAT). OVS accepts it
// only inside CT; a NAT with an address range needs CT.Commit.
type NAT struct {
	Kind NATKind
	// MinIP..MaxIP is the address range to translate to (IPv4 or IPv6);
	// MaxIP unset or equal to MinIP means the single address MinIP.
	// Unset MinIP means no range (nat(src)).
	MinIP, MaxIP netip.Addr
	// MinPort..MaxPort is the port range (0 for none; needs MinIP).
	MinPort, MaxPort uint16
	// Persistent, Hash, Random select OVS's nat flags of the same names.
	Persistent, Hash, Random bool
}

// SNAT builds nat(src=ip).
func SNAT(ip netip.Addr) NAT { return NAT{Kind: NATSrc, MinIP: ip} }

// DNAT builds nat(dst=ip).
func DNAT(ip netip.Addr) NAT { return NAT{Kind: NATDst, MinIP: ip} }

const (
	natFlagSrc        = 1 << 0
	natFlagDst        = 1 << 1
	natFlagPersistent = 1 << 2
	natFlagHash       = 1 << 3
	natFlagRandom     = 1 << 4

	natRangeIPv4Min  = 1 << 0
	natRangeIPv4Max  = 1 << 1
	natRangeIPv6Min  = 1 << 2
	natRangeIPv6Max  = 1 << 3
	natRangeProtoMin = 1 << 4
	natRangeProtoMax = 1 << 5
)

func (a NAT) bare() bool { return a == NAT{} }

func (a NAT) hasMax() bool { return a.MaxIP.IsValid() && a.MaxIP != a.MinIP }

// String follows OVS's format_NAT: nat, nat(src), nat(src=A-B:P-Q,flags);
// an IPv6 address is bracketed when a port follows.
func (a NAT) String() string {
	if a.Kind != NATSrc && a.Kind != NATDst {
		return "nat"
	}
	var sb strings.Builder
	sb.WriteString("nat(")
	if a.Kind == NATSrc {
		sb.WriteString("src")
	} else {
		sb.WriteString("dst")
	}
	if a.MinIP.IsValid() {
		sb.WriteByte('=')
		addr := func(ip netip.Addr) string {
			if ip.Is4() {
				return ip.String()
			}
			s := ipv6String(ip.AsSlice())
			if a.MinPort != 0 {
				s = "[" + s + "]"
			}
			return s
		}
		sb.WriteString(addr(a.MinIP))
		if a.hasMax() {
			sb.WriteString("-" + addr(a.MaxIP))
		}
		if a.MinPort != 0 {
			fmt.Fprintf(&sb, ":%d", a.MinPort)
			if a.MaxPort != 0 && a.MaxPort != a.MinPort {
				fmt.Fprintf(&sb, "-%d", a.MaxPort)
			}
		}
	}
	if a.Persistent {
		sb.WriteString(",persistent")
	}
	if a.Hash {
		sb.WriteString(",hash")
	}
	if a.Random {
		sb.WriteString(",random")
	}
	sb.WriteByte(')')
	return sb.String()
}
func (NAT) stage() int { return stageApply }

// codec refuses: a NAT is encoded by the CT that holds it.
func (a NAT) codec() (of13.Action, error) {
	return nil, fmt.Errorf("%w: %s outside ct", ErrBadFlow, a)
}

func (a NAT) encode() ([]byte, error) {
	var flags, present uint16
	var params []byte
	switch a.Kind {
	case NATExisting:
		if !a.bare() {
			return nil, fmt.Errorf("%w: nat arguments without src or dst", ErrBadFlow)
		}
	case NATSrc:
		flags |= natFlagSrc
	case NATDst:
		flags |= natFlagDst
	default:
		return nil, fmt.Errorf("%w: nat kind %d", ErrBadFlow, a.Kind)
	}
	if a.Persistent {
		flags |= natFlagPersistent
	}
	if a.Hash {
		flags |= natFlagHash
	}
	if a.Random {
		flags |= natFlagRandom
	}
	if a.Hash && a.Random {
		return nil, fmt.Errorf("%w: nat hash and random", ErrBadFlow)
	}
	switch {
	case !a.MinIP.IsValid():
		if a.MaxIP.IsValid() || a.MinPort != 0 || a.MaxPort != 0 {
			return nil, fmt.Errorf("%w: nat range without a first address", ErrBadFlow)
		}
	case a.MinIP.Is4():
		present |= natRangeIPv4Min
		params = append(params, a.MinIP.AsSlice()...)
		if a.hasMax() {
			if !a.MaxIP.Is4() || a.MaxIP.Less(a.MinIP) {
				return nil, fmt.Errorf("%w: nat range %s-%s", ErrBadFlow, a.MinIP, a.MaxIP)
			}
			present |= natRangeIPv4Max
			params = append(params, a.MaxIP.AsSlice()...)
		}
	case a.MinIP.Is6() && !a.MinIP.Is4In6():
		present |= natRangeIPv6Min
		params = append(params, a.MinIP.AsSlice()...)
		if a.hasMax() {
			if !a.MaxIP.Is6() || a.MaxIP.Less(a.MinIP) {
				return nil, fmt.Errorf("%w: nat range %s-%s", ErrBadFlow, a.MinIP, a.MaxIP)
			}
			present |= natRangeIPv6Max
			params = append(params, a.MaxIP.AsSlice()...)
		}
	default:
		return nil, fmt.Errorf("%w: nat address %s", ErrBadFlow, a.MinIP)
	}
	if a.MinPort != 0 {
		present |= natRangeProtoMin
		params = binary.BigEndian.AppendUint16(params, a.MinPort)
		if a.MaxPort != 0 && a.MaxPort != a.MinPort {
			if a.MaxPort < a.MinPort {
				return nil, fmt.Errorf("%w: nat ports %d-%d", ErrBadFlow, a.MinPort, a.MaxPort)
			}
			present |= natRangeProtoMax
			params = binary.BigEndian.AppendUint16(params, a.MaxPort)
		}
	} else if a.MaxPort != 0 {
		return nil, fmt.Errorf("%w: nat port range without a first port", ErrBadFlow)
	}
	b := nxActionHeader(16+len(params), of13.NXAST_NAT)
	b = append(b, 0, 0) // pad
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, present)
	b = append(b, params...)
	return pad8(b), nil
}

// decodeNAT parses NXAST_NAT; nil for flags or ranges NAT does not model.
func decodeNAT(a []byte) Action {
	if len(a) < 16 {
		return nil
	}
	flags := binary.BigEndian.Uint16(a[12:])
	present := binary.BigEndian.Uint16(a[14:])
	if flags&^0x1f != 0 || present&^0x3f != 0 || flags&(natFlagSrc|natFlagDst) == natFlagSrc|natFlagDst {
		return nil
	}
	n := NAT{Persistent: flags&natFlagPersistent != 0, Hash: flags&natFlagHash != 0, Random: flags&natFlagRandom != 0}
	switch {
	case flags&natFlagSrc != 0:
		n.Kind = NATSrc
	case flags&natFlagDst != 0:
		n.Kind = NATDst
	case flags != 0 || present != 0:
		return nil // OVS prints this as "nat" too, but it is not a bare nat
	}
	p := a[16:]
	take := func(k int) []byte {
		if len(p) < k {
			return nil
		}
		v := slices.Clone(p[:k])
		p = p[k:]
		return v
	}
	addr := func(b []byte) (netip.Addr, bool) { return netip.AddrFromSlice(b) }
	var ok = true
	get := func(bit uint16, k int) []byte {
		if present&bit == 0 || !ok {
			return nil
		}
		v := take(k)
		ok = ok && v != nil
		return v
	}
	if b := get(natRangeIPv4Min, 4); b != nil {
		n.MinIP, _ = addr(b)
	}
	if b := get(natRangeIPv4Max, 4); b != nil {
		n.MaxIP, _ = addr(b)
	}
	if b := get(natRangeIPv6Min, 16); b != nil {
		n.MinIP, _ = addr(b)
	}
	if b := get(natRangeIPv6Max, 16); b != nil {
		n.MaxIP, _ = addr(b)
	}
	if b := get(natRangeProtoMin, 2); b != nil {
		n.MinPort = binary.BigEndian.Uint16(b)
	}
	if b := get(natRangeProtoMax, 2); b != nil {
		n.MaxPort = binary.BigEndian.Uint16(b)
	}
	if !ok {
		return nil
	}
	return n
}
