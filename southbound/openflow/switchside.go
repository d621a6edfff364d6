package openflow

import (
	"encoding/binary"
	"fmt"
	"slices"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// The switch's side of the codec: what a simulated switch (package
// scenarios/sim) needs to read the controller's flow-mods and to answer
// flow dumps and send packet-ins, built on the same match and action
// codec the controller uses, so both sides agree on every field.

// DecodeFlowMod parses an OFPT_FLOW_MOD as the controller sends it.
func DecodeFlowMod(msg []byte) (FlowMod, error) {
	// header 8, cookie 8, cookie_mask 8, table 1, command 1, idle 2,
	// hard 2, priority 2, buffer_id 4, out_port 4, out_group 4, flags 2,
	// pad 2, match, instructions.
	if len(msg) < 56 || msg[1] != of13.Type_FlowMod {
		return FlowMod{}, fmt.Errorf("%w: flow-mod length %d", ErrDecode, len(msg))
	}
	m := FlowMod{
		Command:    msg[25],
		CookieMask: binary.BigEndian.Uint64(msg[16:]),
		Flow: Flow{
			Cookie:   binary.BigEndian.Uint64(msg[8:]),
			Table:    msg[24],
			Priority: binary.BigEndian.Uint16(msg[30:]),
		},
	}
	match, n, err := decodeMatch(msg[48:])
	if err != nil {
		return FlowMod{}, err
	}
	m.Flow.Match = match
	if m.Command == CmdAdd || m.Command == CmdModifyStrict || m.Command == of13.FC_MODIFY {
		if m.Flow.Actions, err = decodeInstructions(msg[48+n:]); err != nil {
			return FlowMod{}, err
		}
	}
	return m, nil
}

// EncodeFlowStats encodes one ofp_flow_stats entry (a part of a flow dump
// reply body) for f, with zero counters.
func EncodeFlowStats(f Flow) ([]byte, error) {
	fm := FlowMod{Command: CmdAdd, Flow: f}
	b, err := fm.encode(0)
	if err != nil {
		return nil, err
	}
	// A flow-mod's match and instructions start at 48, as a flow-stats
	// entry's do: reuse them behind the entry's own 48-byte head.
	body := b[48:]
	e := make([]byte, 48, 48+len(body))
	binary.BigEndian.PutUint16(e, uint16(48+len(body)))
	e[2] = f.Table
	binary.BigEndian.PutUint16(e[12:], f.Priority)
	binary.BigEndian.PutUint64(e[24:], f.Cookie)
	return append(e, body...), nil
}

// DecodeFlowStatsEntries parses a flow dump reply body (exported for the
// simulator's tests).
func DecodeFlowStatsEntries(b []byte) ([]Flow, error) { return decodeFlowStats(b, nil) }

// Subsumes reports whether match m (a non-strict flow-mod's) selects a
// flow with match f: every field of m appears in f with the same value
// and mask. OVS also accepts a narrower mask in f; the controller's
// non-strict deletes carry no match at all.
func (m Match) Subsumes(f Match) bool {
	fc := f.Canonical()
	for _, want := range m.Canonical() {
		if !slices.ContainsFunc(fc, func(g MatchField) bool {
			return g.Field == want.Field && slices.Equal(g.Value, want.Value) && slices.Equal(g.Mask, want.Mask)
		}) {
			return false
		}
	}
	return true
}

// EncodePacketIn encodes an OFPT_PACKET_IN with xid as OVS sends it:
// not buffered, in_port and the non-zero pipeline fields in the match.
func EncodePacketIn(xid uint32, p PacketIn) ([]byte, error) {
	match := Match{InPort(p.InPort)}
	if p.Metadata != 0 {
		match = append(match, Exact(FieldMetadata, p.Metadata))
	}
	for i, r := range p.Regs {
		if r != 0 {
			match = append(match, Reg(i, r))
		}
	}
	mb, err := match.Canonical().codec().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: packet-in match: %w", ErrBadFlow, err)
	}
	l := 24 + len(mb) + 2 + len(p.Data)
	if l > 0xffff {
		return nil, fmt.Errorf("%w: packet-in of %d bytes", ErrBadFlow, l)
	}
	b := make([]byte, 24, l)
	b[0] = of13.VERSION
	b[1] = of13.Type_PacketIn
	binary.BigEndian.PutUint16(b[2:], uint16(l))
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint32(b[8:], noBuffer)
	binary.BigEndian.PutUint16(b[12:], uint16(len(p.Data)))
	b[14] = p.Reason
	b[15] = p.TableID
	binary.BigEndian.PutUint64(b[16:], p.Cookie)
	b = append(b, mb...)
	b = append(b, 0, 0)
	return append(b, p.Data...), nil
}
