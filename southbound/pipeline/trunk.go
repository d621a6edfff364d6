package pipeline

import (
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Trunks (fsm/trunk.go). A subport has no OVS interface of its own: the
// controller gives it a virtual ofport (SubportOfportMin-MaxPortZone, an
// entry of Facts.Bindings like a plugged port's) while its trunk's parent
// is plugged here, and the pipeline treats it as a local port whose
// frames come and go on the parent's interface tagged with its VLAN:
// classify pops the tag (a tagged frame with no subport is dropped), output
// pushes it. That number is the subport's logical port everywhere a local
// port's ofport is (reg6, reg7, its conntrack zone), so port security,
// security groups, the firewall and L3 apply to it as to any port.

// SubportOfportMin is the first virtual ofport a controller gives a
// subport; real ofports at or above it must not be used by subports.
const SubportOfportMin uint32 = 0x6000

// TableInPortReply sends a packet answered in place (ARP and ND replies,
// ICMP echo replies from a router) back where it came from: out of
// IN_PORT, tagged again when it came from a subport.
const TableInPortReply uint8 = 66

// Priorities of the trunk flows in table 0: a subport's VLAN above its
// parent's untagged classify, the drop of other tags in between.
const (
	prioSubport        = 110
	prioTrunkOtherTags = 105
)

// vlanPresent matches any 802.1Q-tagged frame.
var vlanPresent = openflow.Masked(openflow.FieldVlanVID, 0x1000, 0x1000)

// subportWire is how a local subport's frames travel: on its parent's
// interface, tagged with its VLAN.
type subportWire struct {
	parent uint32
	vlan   uint16
}

// subportOf says whether p is a subport whose trunk's parent is plugged
// here (and up), and how its frames travel.
func (c *Compiler) subportOf(p *fsm.Port) (subportWire, bool) {
	t := c.v.TrunkOfSubport(p.ID)
	if t == nil {
		return subportWire{}, false
	}
	sp, ok := t.SubPort(p.ID)
	parent := c.v.Port(t.PortID)
	ofport := c.f.Bindings[t.PortID]
	if !ok || parent == nil || !parent.AdminStateUp || ofport == 0 || ofport >= SubportOfportMin {
		return subportWire{}, false
	}
	return subportWire{parent: ofport, vlan: uint16(sp.SegmentationID)}, true
}

// tag pushes the subport's VLAN tag.
func (w subportWire) tag() []openflow.Action {
	return []openflow.Action{openflow.PushVLAN{EtherType: 0x8100}, openflow.SetUint(openflow.FieldVlanVID, uint64(w.vlan)|0x1000)}
}

// subportFlows are a local subport's classify and output flows (in place
// of a plugged port's in_port and output:ofport ones).
func subportFlows(e *emitter, w subportWire, ofport uint32, classify []openflow.Action) {
	e.add(TableClassify, prioSubport, openflow.Match{openflow.InPort(w.parent), openflow.VlanVID(w.vlan)},
		append([]openflow.Action{openflow.PopVLAN{}}, classify...)...)
	outPort := openflow.Reg(RegOutPort, ofport)
	// OVS does not output to the in_port with output:N: a packet from the
	// parent (or another subport of it) goes back with IN_PORT.
	e.add(TableOutput, prioSubport, openflow.Match{outPort, openflow.InPort(w.parent)}, append(w.tag(), openflow.Output{Port: openflow.PortInPort})...)
	e.add(TableOutput, prioMatch, openflow.Match{outPort}, append(w.tag(), openflow.Output{Port: w.parent})...)
	e.add(TableInPortReply, prioMatch, openflow.Match{openflow.Reg(RegInPort, ofport)}, append(w.tag(), openflow.Output{Port: openflow.PortInPort})...)
}

// trunkParentFlows: a plugged trunk parent drops tagged frames that no
// subport's classify took (untagged ones are its own).
func (c *Compiler) trunkParentFlows(e *emitter, p *fsm.Port, ofport uint32) {
	if c.v.TrunkOfParent(p.ID) != nil {
		e.add(TableClassify, prioTrunkOtherTags, openflow.Match{openflow.InPort(ofport), vlanPresent})
	}
}

// localOutputs are the flood outputs to a network's local ports, in ofport
// order: a subport's copy is tagged, then the tag comes off again for the
// next copy.
func (c *Compiler) localOutputs(netID string) []openflow.Action {
	ids := make([]string, 0, len(c.localNet[netID]))
	for id := range c.localNet[netID] {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return int(c.localNet[netID][a]) - int(c.localNet[netID][b]) })
	var out []openflow.Action
	for _, id := range ids {
		if p := c.v.Port(id); p != nil {
			if w, ok := c.subportOf(p); ok {
				out = append(out, w.tag()...)
				out = append(out, openflow.Output{Port: w.parent}, openflow.PopVLAN{})
				continue
			}
		}
		out = append(out, openflow.Output{Port: c.localNet[netID][id]})
	}
	return out
}

// trunkPortsOf lists the ports a trunk change or a parent's change touches:
// the parent's subports, before and after.
func trunkPortsOf(views []*fsm.View, parentOrTrunk func(*fsm.View) *fsm.Trunk, into map[string]bool) {
	for _, v := range views {
		if v == nil {
			continue
		}
		if t := parentOrTrunk(v); t != nil {
			into[t.PortID] = true
			for _, sp := range t.SubPorts {
				into[sp.PortID] = true
			}
		}
	}
}
