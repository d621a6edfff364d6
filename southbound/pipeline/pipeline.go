// Package pipeline compiles the replicated state into the OpenFlow flows
// of one chassis' br-int. docs/pipeline.md is the contract: tables,
// registers, conntrack zones and cookies.
//
// Compile is a pure, deterministic function of an fsm.View and the
// chassis' local facts (which Neutron ports are plugged where, the tunnel
// ports' numbers). A Compiler produces the same flow set incrementally: the
// flows are grouped in units (the pipeline's fixed flows, one unit per
// port, network, security group rule and router), Update recompiles only
// the units a change touches, and the flow set is the merge of every
// unit's flows. Compile is the same merge over every unit compiled afresh,
// which is what the property test and the controller's periodic check
// compare the incremental result with.
package pipeline

import (
	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Tables, in packet order. A packet from a local VIF walks 0, 10, 20/21
// (egress security groups), 30 (ARP and ND responder; 31 finishes a
// neighbour advertisement), 32/33 (firewall of the router port it is
// routed in by), 34 (firewall group of the VM port it came from), 40 (L2
// lookup); for a
// router MAC 50 (routing) and 55 (next hop) and back to 40; delivered
// locally through 47/48 (firewall of the router port it was routed out
// of), 49 (firewall group of the VM port it goes to), 60/61 (ingress security groups) and 65 (output), or
// tunnelled from 40. A packet from a tunnel starts at 40.
const (
	TableClassify     uint8 = 0
	TablePortSecurity uint8 = 10
	TableEgressCT     uint8 = 20
	TableEgressACL    uint8 = 21
	TableARPResponder uint8 = 30
	TableNDReply      uint8 = 31
	TableFWEgress     uint8 = 32
	TableFWEgressACL  uint8 = 33
	TableFWVMEgress   uint8 = 34
	TableL2Lookup     uint8 = 40
	TableGatewayIn    uint8 = 46
	TableFWIngress    uint8 = 47
	TableFWIngressACL uint8 = 48
	TableFWVMIngress  uint8 = 49
	TableRouting      uint8 = 50
	TableExternal     uint8 = 51
	TableNextHop      uint8 = 55
	TableIngressCT    uint8 = 60
	TableIngressACL   uint8 = 61
	TableOutput       uint8 = 65
)

// Registers.
const (
	// RegNextHop holds the IPv4 next hop a routed packet is resolved for.
	RegNextHop = 0
	// RegSwap1 and RegSwap2 hold a MAC address while the router swaps the
	// source and destination of an ICMP echo reply.
	RegSwap1 = 1
	RegSwap2 = 2
	// RegFWZone holds the conntrack zone of the firewall stage (tables
	// 32-33, 47-48): FirewallZoneBase | the local port's ofport.
	RegFWZone = 3
	// RegFWVMEgress holds the Key of the firewall group of the VM port a
	// packet came from (set in table 0, read by table 34); 0 for none.
	RegFWVMEgress = 4
	// RegFWVMIngress holds the Key of the firewall group of the VM port a
	// packet is delivered to (set in table 40, read by table 49).
	RegFWVMIngress = 5
	// RegInPort holds the logical ingress port: the local ofport of the
	// VIF the packet came from (0 from a tunnel). Its low 16 bits are the
	// port's conntrack zone.
	RegInPort = 6
	// RegOutPort holds the local ofport the packet is delivered to; its
	// low 16 bits are that port's conntrack zone.
	RegOutPort = 7
	// RegRouter holds the key of the router a packet is being routed by.
	RegRouter = 8
	// RegFWGroup holds the Key of the firewall group whose policy the
	// firewall stage applies (tables 32-33, 47-48).
	RegFWGroup = 9
	// RegFlags holds per-packet flag bits (FlagFromTunnel).
	RegFlags = 10
	// FlagFromTunnel is set in RegFlags for packets received from a tunnel;
	// they are delivered locally only, never sent to another tunnel.
	FlagFromTunnel uint32 = 1 << 0
)

// Metadata carries the network key (NetworkKey) in its low 40 bits.
const MetadataNetworkMask uint64 = 1<<40 - 1

// Cookie kinds (flowsync.Cookie's kind byte).
const (
	// KindPipeline marks a table's fixed flows; the object id is the
	// table's name.
	KindPipeline uint8 = 0
	// KindNetwork marks flows compiled from a network (tunnel classify,
	// flooding).
	KindNetwork uint8 = 1
	// KindPort marks flows compiled from a port (classify, port security,
	// L2 entry, ARP and next-hop entries, output).
	KindPort uint8 = 2
	// KindRule marks flows compiled from a security group rule.
	KindRule uint8 = 3
	// KindRouter marks flows compiled from a router (routes, ICMP echo).
	KindRouter uint8 = 4
	// KindFirewall marks flows compiled from a firewall group (its
	// policies' rules).
	KindFirewall uint8 = 5
)

// encapCode numbers the overlay types in the network key, so that VXLAN
// VNI 100 and GRE key 100 are different networks.
var encapCode = map[string]uint64{
	fsm.NetTypeVXLAN:  1,
	fsm.NetTypeGRE:    2,
	fsm.NetTypeGeneve: 3,
	fsm.NetTypeFlat:   4,
	fsm.NetTypeVLAN:   5,
}

// NetworkKey is the value a network's packets carry in metadata: the
// type code in bits 32-39 and, in bits 0-31, for overlays the segmentation
// id (unique per type: the state machine's segment index), for a provider
// (flat or VLAN) network its datapath key (allocated by the state machine,
// unique among networks). It is 0 (no flows) for a nil network, an
// unknown type or a provider network without a key.
func NetworkKey(n *fsm.Network) uint64 {
	if n == nil {
		return 0
	}
	code, ok := encapCode[n.NetworkType]
	if !ok {
		return 0
	}
	switch n.NetworkType {
	case fsm.NetTypeFlat, fsm.NetTypeVLAN:
		if n.DatapathKey == 0 {
			return 0
		}
		return code<<32 | uint64(n.DatapathKey)
	}
	return code<<32 | uint64(uint32(n.SegmentationID))
}

// RouterKey is the value RegRouter holds for a router: its datapath key,
// allocated by the state machine (1 to fsm.MaxRouterKey, unique among
// routers); 0 (no flows) for a nil router.
func RouterKey(r *fsm.Router) uint32 {
	if r == nil {
		return 0
	}
	return r.DatapathKey
}

// ConjID is the conjunction id of a security group rule: its datapath
// key, allocated by the state machine (unique among rules); 0 (no flows)
// for a nil rule.
func ConjID(r *fsm.SecurityGroupRule) uint32 {
	if r == nil {
		return 0
	}
	return r.DatapathKey
}

// Facts are what a chassis knows that the replicated state does not.
type Facts struct {
	// Chassis is the name of the chassis the flows are for.
	Chassis string
	// Bindings maps a Neutron port id to the ofport of the interface
	// plugged with that iface-id on this chassis.
	Bindings map[string]uint32
	// Tunnels maps an encapsulation (vxlan, gre, geneve) to the ofport of
	// this chassis' flow-based tunnel port for it.
	Tunnels map[string]uint32
	// Physnets maps a physical network name to the ofport of the patch
	// port on br-int toward the bridge this chassis maps it to.
	Physnets map[string]uint32
}

// Compile returns the flows of chassis f.Chassis for state v, in a fixed
// order (table, descending priority, then key).
func Compile(v *fsm.View, f Facts) []openflow.Flow {
	c := NewCompiler()
	c.Update(v, nil, f)
	return c.Flows()
}
