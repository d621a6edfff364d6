package openflow

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Action is one action or instruction of a flow. GotoTable and
// WriteMetadata are instructions; every other action goes into the flow's
// apply-actions list in the order given.
type Action interface {
	// String is the ovs-ofctl spelling of the action.
	String() string
	// stage orders the action the way OVS lists instructions: apply
	// actions first, then write_metadata, then goto_table.
	stage() int
	// codec returns the wire codec's action (stage 0 only).
	codec() (of13.Action, error)
}

const (
	stageApply = iota
	stageWriteMetadata
	stageGoto
)

// Reserved OpenFlow ports.
const (
	PortInPort     uint32 = 0xfffffff8
	PortTable      uint32 = 0xfffffff9
	PortNormal     uint32 = 0xfffffffa
	PortFlood      uint32 = 0xfffffffb
	PortAll        uint32 = 0xfffffffc
	PortController uint32 = 0xfffffffd
	PortLocal      uint32 = 0xfffffffe
	PortAny        uint32 = 0xffffffff
)

func portString(p uint32) string {
	switch p {
	case PortInPort:
		return "IN_PORT"
	case PortTable:
		return "TABLE"
	case PortNormal:
		return "NORMAL"
	case PortFlood:
		return "FLOOD"
	case PortAll:
		return "ALL"
	case PortController:
		return "CONTROLLER"
	case PortLocal:
		return "LOCAL"
	case PortAny:
		return "ANY"
	}
	return fmt.Sprint(p)
}

// Output sends the packet out of Port.
type Output struct{ Port uint32 }

func (a Output) String() string {
	switch {
	case a.Port == PortController:
		return "CONTROLLER:65535"
	case a.Port >= PortInPort:
		return portString(a.Port)
	}
	return "output:" + portString(a.Port)
}
func (Output) stage() int { return stageApply }
func (a Output) codec() (of13.Action, error) {
	o := of13.NewActionOutput(a.Port)
	// max_len only means something for the controller port; OVS reports 0
	// elsewhere, so send what it reports.
	o.MaxLen = 0
	if a.Port == PortController {
		o.MaxLen = of13.OFPCML_NO_BUFFER
	}
	return o, nil
}

// SetField writes Value (the field's full width) into Field.
type SetField struct {
	Field Field
	Value []byte
}

// SetReg builds set_field:v->reg<i>.
func SetReg(i int, v uint32) SetField {
	return SetField{Field: FieldReg(i), Value: be(4, uint64(v))}
}

// SetTunID builds set_field:v->tun_id.
func SetTunID(v uint64) SetField { return SetField{Field: FieldTunID, Value: be(8, v)} }

// SetUint builds set_field:v->f for an integer field (v big-endian in the
// field's width: reg, metadata, arp_op, icmp_type, ct_mark, ...).
func SetUint(f Field, v uint64) SetField { return SetField{Field: f, Value: be(widthOf(f, 8), v)} }

// SetMAC builds set_field:mac->f (eth_src, eth_dst, arp_sha, arp_tha,
// nd_sll, nd_tll).
func SetMAC(f Field, mac net.HardwareAddr) SetField {
	return SetField{Field: f, Value: slices.Clone(mac[:6])}
}

// SetIP builds set_field:ip->f: a 4-byte field (ip_src, ip_dst, arp_spa,
// arp_tpa, tun_dst, ...) takes ip's IPv4 form, a 16-byte one (ipv6_src,
// ipv6_dst, nd_target) its 16-byte form.
func SetIP(f Field, ip netip.Addr) SetField {
	if widthOf(f, 16) == 4 && ip.Unmap().Is4() {
		a := ip.Unmap().As4()
		return SetField{Field: f, Value: a[:]}
	}
	// An IPv6 address for a 4-byte field keeps 16 bytes, which encoding
	// refuses (ErrBadFlow).
	a := ip.As16()
	return SetField{Field: f, Value: a[:]}
}

// SetCtMark builds set_field:v->ct_mark (only valid inside CT.Actions).
func SetCtMark(v uint32) SetField { return SetField{Field: FieldCtMark, Value: be(4, uint64(v))} }

func (a SetField) String() string {
	name := a.Field.Name()
	if s, ok := fieldSpecs[a.Field]; ok {
		name = s.setName
	}
	v := MatchField{Field: a.Field, Value: a.Value}.valueString()
	if a.Field == FieldVlanVID && len(a.Value) == 2 {
		v = fmt.Sprint(binary.BigEndian.Uint16(a.Value)) // OVS prints vlan_vid in decimal
	}
	return "set_field:" + v + "->" + name
}
func (SetField) stage() int { return stageApply }
func (a SetField) codec() (of13.Action, error) {
	if w := widthOf(a.Field, len(a.Value)); w != len(a.Value) {
		return nil, fmt.Errorf("%w: set_field %s needs %d bytes", ErrBadFlow, a.Field.Name(), w)
	}
	mf := of13.MatchField{
		Class:  a.Field.Class(),
		Field:  a.Field.Code(),
		Length: uint8(len(a.Value)),
		Value:  rawBytes(a.Value),
	}
	return of13.NewActionSetField(mf), nil
}

// PushVLAN pushes an 802.1Q header with EtherType (normally 0x8100).
type PushVLAN struct{ EtherType uint16 }

func (a PushVLAN) String() string { return fmt.Sprintf("push_vlan:0x%04x", a.EtherType) }
func (PushVLAN) stage() int       { return stageApply }
func (a PushVLAN) codec() (of13.Action, error) {
	return of13.NewActionPushVlan(a.EtherType), nil
}

// PopVLAN removes the outer 802.1Q header.
type PopVLAN struct{}

func (PopVLAN) String() string { return "pop_vlan" }
func (PopVLAN) stage() int     { return stageApply }
func (PopVLAN) codec() (of13.Action, error) {
	return of13.NewActionPopVlan(), nil
}

// DecTTL decrements the IP TTL (drops the packet at zero).
type DecTTL struct{}

func (DecTTL) String() string { return "dec_ttl" }
func (DecTTL) stage() int     { return stageApply }
func (DecTTL) codec() (of13.Action, error) {
	return of13.NewActionDecNwTtl(), nil
}

// Resubmit looks the packet up again in Table (as if it came from
// PortInPort unless Port is set).
type Resubmit struct {
	Port  uint16 // 0 means the packet's own in_port
	Table uint8
}

const ofppInPort16 = 0xfff8

func (a Resubmit) String() string {
	if a.Port == 0 || a.Port == ofppInPort16 {
		return fmt.Sprintf("resubmit(,%d)", a.Table)
	}
	return fmt.Sprintf("resubmit(%d,%d)", a.Port, a.Table)
}
func (Resubmit) stage() int { return stageApply }
func (a Resubmit) codec() (of13.Action, error) {
	p := a.Port
	if p == 0 {
		p = ofppInPort16
	}
	return of13.NewNXActionResubmitTableAction(p, a.Table), nil
}

// Conjunction marks the flow as clause Clause (1-based) of NClauses of
// conjunctive match ID.
type Conjunction struct {
	ID       uint32
	Clause   uint8
	NClauses uint8
}

func (a Conjunction) String() string {
	return fmt.Sprintf("conjunction(%d,%d/%d)", a.ID, a.Clause, a.NClauses)
}
func (Conjunction) stage() int { return stageApply }
func (a Conjunction) codec() (of13.Action, error) {
	if a.Clause == 0 || a.Clause > a.NClauses || a.NClauses < 2 {
		return nil, fmt.Errorf("%w: conjunction clause %d/%d", ErrBadFlow, a.Clause, a.NClauses)
	}
	return of13.NewNXActionConjunction(a.Clause-1, a.NClauses, a.ID), nil
}

// GotoTable continues the pipeline at Table (an instruction).
type GotoTable struct{ Table uint8 }

func (a GotoTable) String() string            { return fmt.Sprintf("goto_table:%d", a.Table) }
func (GotoTable) stage() int                  { return stageGoto }
func (GotoTable) codec() (of13.Action, error) { return nil, nil }

// WriteMetadata sets the metadata bits selected by Mask (an instruction).
type WriteMetadata struct{ Value, Mask uint64 }

func (a WriteMetadata) String() string {
	if a.Mask == ^uint64(0) {
		return "write_metadata:" + cHex(a.Value)
	}
	return "write_metadata:" + cHex(a.Value) + "/" + cHex(a.Mask)
}
func (WriteMetadata) stage() int                  { return stageWriteMetadata }
func (WriteMetadata) codec() (of13.Action, error) { return nil, nil }

// RawAction is an action decoded from a switch that this package does not
// model; it never equals a desired action, so the sync engine replaces it.
type RawAction struct{ Bytes []byte }

func (a RawAction) String() string            { return fmt.Sprintf("raw(%x)", a.Bytes) }
func (RawAction) stage() int                  { return stageApply }
func (RawAction) codec() (of13.Action, error) { return nil, fmt.Errorf("%w: raw action", ErrBadFlow) }

// canonicalActions orders instructions as OVS reports them; the order of
// apply actions is kept (it is meaningful).
func canonicalActions(acts []Action) []Action {
	out := slices.Clone(acts)
	slices.SortStableFunc(out, func(a, b Action) int { return a.stage() - b.stage() })
	return out
}

// ActionsString formats actions as ovs-ofctl does ("drop" when empty).
func ActionsString(acts []Action) string {
	if len(acts) == 0 {
		return "drop"
	}
	parts := make([]string, 0, len(acts))
	for _, a := range canonicalActions(acts) {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, ",")
}

// instructions builds the codec's instruction list for a flow-mod.
func instructions(acts []Action) ([]of13.Instruction, error) {
	var out []of13.Instruction
	var apply *of13.InstrActions
	var meta *WriteMetadata
	var gotoTable *GotoTable
	var meter *Meter
	for _, a := range acts {
		switch a := a.(type) {
		case GotoTable:
			if gotoTable != nil {
				return nil, fmt.Errorf("%w: two goto_table", ErrBadFlow)
			}
			gotoTable = &a
		case Meter:
			if meter != nil {
				return nil, fmt.Errorf("%w: two meters", ErrBadFlow)
			}
			meter = &a
		case WriteMetadata:
			if meta != nil {
				return nil, fmt.Errorf("%w: two write_metadata", ErrBadFlow)
			}
			meta = &a
		default:
			ca, err := a.codec()
			if err != nil {
				return nil, err
			}
			if apply == nil {
				apply = of13.NewInstrApplyActions()
			}
			if err := apply.AddAction(ca, false); err != nil {
				return nil, err
			}
		}
	}
	if meter != nil {
		out = append(out, of13.NewInstrMeter(meter.ID))
	}
	if apply != nil {
		out = append(out, apply)
	}
	if meta != nil {
		out = append(out, of13.NewInstrWriteMetadata(meta.Value, meta.Mask))
	}
	if gotoTable != nil {
		out = append(out, of13.NewInstrGotoTable(gotoTable.Table))
	}
	return out, nil
}

// decodeInstructions parses an instruction list by hand (the codec's
// decoder panics on instructions and actions it does not know).
func decodeInstructions(b []byte) ([]Action, error) {
	var acts []Action
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: short instruction", ErrDecode)
		}
		typ := binary.BigEndian.Uint16(b)
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("%w: instruction length %d", ErrDecode, l)
		}
		body := b[:l]
		switch typ {
		case of13.InstrType_GOTO_TABLE:
			if l < 8 {
				return nil, fmt.Errorf("%w: goto_table", ErrDecode)
			}
			acts = append(acts, GotoTable{Table: body[4]})
		case of13.InstrType_WRITE_METADATA:
			if l < 24 {
				return nil, fmt.Errorf("%w: write_metadata", ErrDecode)
			}
			acts = append(acts, WriteMetadata{Value: binary.BigEndian.Uint64(body[8:]), Mask: binary.BigEndian.Uint64(body[16:])})
		case of13.InstrType_METER:
			if l < 8 {
				return nil, fmt.Errorf("%w: meter", ErrDecode)
			}
			acts = append(acts, Meter{ID: binary.BigEndian.Uint32(body[4:])})
		case of13.InstrType_APPLY_ACTIONS:
			if l < 8 {
				return nil, fmt.Errorf("%w: apply_actions", ErrDecode)
			}
			as, err := decodeActions(body[8:])
			if err != nil {
				return nil, err
			}
			acts = append(acts, as...)
		default:
			acts = append(acts, RawAction{Bytes: slices.Clone(body)})
		}
		b = b[l:]
	}
	return acts, nil
}

func decodeActions(b []byte) ([]Action, error) {
	var acts []Action
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: short action", ErrDecode)
		}
		typ := binary.BigEndian.Uint16(b)
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 8 || l > len(b) {
			return nil, fmt.Errorf("%w: action length %d", ErrDecode, l)
		}
		a := b[:l]
		var act Action = RawAction{Bytes: slices.Clone(a)}
		switch typ {
		case of13.ActionType_Output:
			if l >= 16 {
				act = Output{Port: binary.BigEndian.Uint32(a[4:])}
			}
		case of13.ActionType_PushVlan:
			act = PushVLAN{EtherType: binary.BigEndian.Uint16(a[4:])}
		case of13.ActionType_PopVlan:
			act = PopVLAN{}
		case of13.ActionType_DecNwTtl:
			act = DecTTL{}
		case of13.ActionType_SetField:
			if l >= 8 {
				m, err := decodeOXM(a[4:])
				if err == nil && m.Mask == nil {
					act = SetField{Field: m.Field, Value: m.Value}
				}
			}
		case of13.ActionType_Experimenter:
			if binary.BigEndian.Uint32(a[4:]) == of13.NxExperimenterID && l >= 16 {
				switch binary.BigEndian.Uint16(a[8:]) {
				case of13.NXAST_RESUBMIT:
					act = Resubmit{Port: binary.BigEndian.Uint16(a[10:]), Table: 0xff}
				case of13.NXAST_RESUBMIT_TABLE:
					act = Resubmit{Port: binary.BigEndian.Uint16(a[10:]), Table: a[12]}
				case of13.NXAST_CONJUNCTION:
					act = Conjunction{Clause: a[10] + 1, NClauses: a[11], ID: binary.BigEndian.Uint32(a[12:])}
				case of13.NXAST_REG_MOVE:
					if m := decodeMove(a); m != nil {
						act = m
					}
				case of13.NXAST_NAT:
					if n := decodeNAT(a); n != nil {
						act = n
					}
				case nxastController:
					if c := decodeController(a); c != nil {
						act = c
					}
				case of13.NXAST_CT:
					c, err := decodeCT(a)
					if err != nil {
						return nil, err
					}
					if c != nil {
						act = c
					}
				}
			}
		}
		if r, ok := act.(Resubmit); ok && r.Port == ofppInPort16 {
			r.Port = 0
			act = r
		}
		acts = append(acts, act)
		b = b[l:]
	}
	return acts, nil
}

// decodeOXM parses one OXM TLV (as inside set_field).
func decodeOXM(b []byte) (MatchField, error) {
	if len(b) < 4 {
		return MatchField{}, fmt.Errorf("%w: short oxm", ErrDecode)
	}
	class := binary.BigEndian.Uint16(b)
	code := b[2] >> 1
	hasMask := b[2]&1 == 1
	plen := int(b[3])
	if 4+plen > len(b) || class == of13.OXM_CLASS_EXPERIMENTER || (hasMask && plen%2 != 0) {
		return MatchField{}, fmt.Errorf("%w: oxm payload", ErrDecode)
	}
	f := MatchField{Field: canonicalField(oxmField(class, code))}
	p := b[4 : 4+plen]
	if hasMask {
		f.Value, f.Mask = slices.Clone(p[:plen/2]), slices.Clone(p[plen/2:])
	} else {
		f.Value = slices.Clone(p)
	}
	return f, nil
}
