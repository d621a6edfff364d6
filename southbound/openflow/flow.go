package openflow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Flow is one OpenFlow 1.3 flow entry as the flow compiler produces it and
// as a switch reports it in a flow-stats dump.
type Flow struct {
	Table    uint8
	Priority uint16
	Cookie   uint64
	Match    Match
	// Actions in order; GotoTable and WriteMetadata are instructions and are
	// placed after the apply actions whatever their position here.
	Actions []Action
}

// Key identifies a flow entry the way a switch does (table, priority and
// canonical match). It is a compact binary string; use Flow.String to show it.
type Key string

// Key returns the flow's identity; equal for a desired flow and the same
// flow dumped from a switch.
func (f *Flow) Key() Key {
	b := make([]byte, 0, 64)
	b = append(b, f.Table)
	b = binary.BigEndian.AppendUint16(b, f.Priority)
	b = f.Match.Canonical().appendKey(b)
	return Key(b)
}

// ActionsString is the canonical ovs-ofctl spelling of the flow's actions;
// two flows with the same string have the same actions.
func (f *Flow) ActionsString() string { return ActionsString(f.Actions) }

// SameActions reports whether f and g have equal actions and instructions.
// Most flows a recompile compares are unchanged: an element-wise
// comparison answers those without formatting anything (formatting both
// sides was 11% of a leader's CPU at 100 simulated chassis); whatever it
// does not find equal (another order of stages, a value spelled two ways)
// is decided by the canonical strings.
func (f *Flow) SameActions(g *Flow) bool {
	return actionsEqual(f.Actions, g.Actions) || f.ActionsString() == g.ActionsString()
}

// actionsEqual reports whether a and b hold equal actions in the same
// order; false does not mean they differ as OVS sees them.
func actionsEqual(a, b []Action) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !actionEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func actionEqual(a, b Action) bool {
	switch x := a.(type) {
	case SetField:
		y, ok := b.(SetField)
		return ok && x.Field == y.Field && bytes.Equal(x.Value, y.Value)
	case RawAction:
		y, ok := b.(RawAction)
		return ok && bytes.Equal(x.Bytes, y.Bytes)
	case CT:
		y, ok := b.(CT)
		return ok && x.Commit == y.Commit && x.Zone == y.Zone && x.ZoneSrc == y.ZoneSrc &&
			x.Recirc == y.Recirc && x.Table == y.Table && actionsEqual(x.Actions, y.Actions)
	case Output, PushVLAN, PopVLAN, DecTTL, Resubmit, Conjunction, GotoTable, WriteMetadata, Move, NAT, Meter, Controller:
		return a == b // comparable types: the same dynamic type and value
	}
	return false
}

// String formats the flow as `ovs-ofctl -O OpenFlow13 --no-stats
// --no-names dump-flows` prints it, e.g.
// "cookie=0x1, table=1, priority=100,in_port=1 actions=output:2"
// (table 0 and the default priority 32768 are omitted, as ovs-ofctl does).
func (f *Flow) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "cookie=0x%x, ", f.Cookie)
	if f.Table != 0 {
		fmt.Fprintf(&sb, "table=%d, ", f.Table)
	}
	parts := f.Match.ofctlParts()
	if f.Priority != defaultPriority {
		parts = append([]string{fmt.Sprintf("priority=%d", f.Priority)}, parts...)
	}
	sb.WriteString(strings.Join(parts, ","))
	if len(parts) > 0 {
		sb.WriteByte(' ')
	}
	sb.WriteString("actions=" + f.ActionsString())
	return sb.String()
}

const defaultPriority = 0x8000

// Validate checks the flow can be encoded.
func (f *Flow) Validate() error {
	if err := f.Match.Validate(); err != nil {
		return err
	}
	_, err := instructions(f.Actions)
	return err
}

// Flow-mod commands for FlowMod.
const (
	CmdAdd          = of13.FC_ADD
	CmdModifyStrict = of13.FC_MODIFY_STRICT
	CmdDelete       = of13.FC_DELETE
	CmdDeleteStrict = of13.FC_DELETE_STRICT
)

// FlowMod is one flow-mod to send: Command applied to Flow. For CmdDelete
// (non-strict) CookieMask selects flows by cookie and an empty match with
// Table 0xff means every table.
type FlowMod struct {
	Command    uint8
	Flow       Flow
	CookieMask uint64
}

// TableAll selects every table in a delete.
const TableAll = of13.OFPTT_ALL

// encode marshals the flow-mod with xid through the wire codec.
func (m *FlowMod) encode(xid uint32) ([]byte, error) {
	fm := of13.NewFlowMod()
	fm.Header.Xid = xid
	fm.Command = m.Command
	fm.TableId = m.Flow.Table
	fm.Priority = m.Flow.Priority
	fm.Cookie = m.Flow.Cookie
	fm.CookieMask = m.CookieMask
	// OVS refuses value bits outside the mask (BAD_WILDCARDS): send the
	// canonical form.
	fm.Match = *m.Flow.Match.Canonical().codec()
	if m.Command == CmdAdd || m.Command == CmdModifyStrict {
		ins, err := instructions(m.Flow.Actions)
		if err != nil {
			return nil, err
		}
		fm.Instructions = ins
	}
	if m.Command == CmdDelete || m.Command == CmdDeleteStrict {
		// The codec writes OutPort into both out_port and out_group; both
		// must be "any" for a delete to select by match and cookie alone.
		fm.OutPort = of13.P_ANY
		fm.OutGroup = of13.OFPG_ANY
	}
	return fm.MarshalBinary()
}

// decodeFlowStats parses the body of a flow-stats multipart reply.
func decodeFlowStats(b []byte, out []Flow) ([]Flow, error) {
	for len(b) > 0 {
		if len(b) < 56 {
			return out, fmt.Errorf("%w: short flow stats", ErrDecode)
		}
		l := int(binary.BigEndian.Uint16(b))
		if l < 56 || l > len(b) {
			return out, fmt.Errorf("%w: flow stats length %d", ErrDecode, l)
		}
		e := b[:l]
		f := Flow{
			Table:    e[2],
			Priority: binary.BigEndian.Uint16(e[12:]),
			Cookie:   binary.BigEndian.Uint64(e[24:]),
		}
		m, n, err := decodeMatch(e[48:])
		if err != nil {
			return out, err
		}
		f.Match = m
		if f.Actions, err = decodeInstructions(e[48+n:]); err != nil {
			return out, err
		}
		out = append(out, f)
		b = b[l:]
	}
	return out, nil
}
