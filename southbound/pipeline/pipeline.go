// Package pipeline compiles the replicated state into the OpenFlow flows
// of one chassis' br-int. Compile is a pure function of an fsm.View and
// the chassis' local facts (which Neutron ports are plugged where, the
// tunnel ports' numbers); it is deterministic, so the same state always
// yields the same flows in the same order. docs/pipeline.md is the
// contract: tables, registers and cookies.
package pipeline

import (
	"cmp"
	"net"
	"slices"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
)

// Tables. Gaps are left for the stages later issues insert (port
// security, security groups, ARP responder, routing).
const (
	// TableClassify maps the ingress port (or tunnel key) to the network
	// and port registers.
	TableClassify uint8 = 0
	// TableL2Lookup forwards by destination MAC within the network.
	TableL2Lookup uint8 = 40
)

// Registers.
const (
	// RegInPort holds the logical ingress port: the local ofport of the
	// VIF the packet came from, 0 when it came from a tunnel.
	RegInPort = 6
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
	// KindPipeline marks a table's fixed flows (default drops); the object
	// id is the table's name.
	KindPipeline uint8 = 0
	// KindNetwork marks flows compiled from a network (tunnel classify,
	// flooding).
	KindNetwork uint8 = 1
	// KindPort marks flows compiled from a port (VIF classify, L2 entry).
	KindPort uint8 = 2
)

// Priorities used in the tables.
const (
	prioDefault  = 0
	prioMatch    = 100
	prioFromTun  = 110
	macMulticast = 0x010000000000
)

// encapCode numbers the overlay types in the network key, so that VXLAN
// VNI 100 and GRE key 100 are different networks.
var encapCode = map[string]uint64{
	fsm.NetTypeVXLAN:  1,
	fsm.NetTypeGRE:    2,
	fsm.NetTypeGeneve: 3,
}

// NetworkKey is the value a network's packets carry in metadata: the
// overlay type code in bits 32-39 and the segmentation id in bits 0-31.
// It is 0 (no flows) for network types this pipeline does not carry yet
// (VLAN, flat).
func NetworkKey(n *fsm.Network) uint64 {
	code, ok := encapCode[n.NetworkType]
	if !ok {
		return 0
	}
	return code<<32 | uint64(uint32(n.SegmentationID))
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
}

// localPort is a port plugged on this chassis.
type localPort struct {
	port   *fsm.Port
	ofport uint32
}

// remotePort is a port bound to another chassis reachable by tunnel.
type remotePort struct {
	port    *fsm.Port
	chassis *fsm.Chassis
	ip      net.IP
}

// netPlan is what one network needs on this chassis.
type netPlan struct {
	net    *fsm.Network
	key    uint64
	tunnel uint32 // local tunnel ofport for its encap; 0: none
	local  []localPort
	remote []remotePort
}

// Compile returns the flows of chassis f.Chassis for state v.
func Compile(v *fsm.View, f Facts) []openflow.Flow {
	plans := plan(v, f)
	var flows []openflow.Flow
	add := func(fl openflow.Flow) { flows = append(flows, fl) }

	add(openflow.Flow{Table: TableClassify, Priority: prioDefault, Cookie: flowsync.Cookie(KindPipeline, "classify")})
	add(openflow.Flow{Table: TableL2Lookup, Priority: prioDefault, Cookie: flowsync.Cookie(KindPipeline, "l2")})

	for _, p := range plans {
		meta := openflow.Metadata(p.key, MetadataNetworkMask)
		writeMeta := openflow.WriteMetadata{Value: p.key, Mask: MetadataNetworkMask}
		netCookie := flowsync.Cookie(KindNetwork, p.net.ID)
		seg := uint64(uint32(p.net.SegmentationID))

		var localOut []openflow.Action
		for _, lp := range p.local {
			portCookie := flowsync.Cookie(KindPort, lp.port.ID)
			add(openflow.Flow{
				Table: TableClassify, Priority: prioMatch, Cookie: portCookie,
				Match: openflow.Match{openflow.InPort(lp.ofport)},
				Actions: []openflow.Action{
					openflow.SetReg(RegInPort, lp.ofport), writeMeta,
					openflow.GotoTable{Table: TableL2Lookup},
				},
			})
			if mac, err := net.ParseMAC(lp.port.MACAddress); err == nil {
				add(openflow.Flow{
					Table: TableL2Lookup, Priority: prioMatch, Cookie: portCookie,
					Match:   openflow.Match{meta, openflow.EthDst(mac)},
					Actions: []openflow.Action{openflow.Output{Port: lp.ofport}},
				})
			}
			localOut = append(localOut, openflow.Output{Port: lp.ofport})
		}

		// Flooding: from a tunnel, local ports only; from a local port,
		// local ports and every other chassis with a port on the network.
		bcast := openflow.Masked(openflow.FieldEthDst, macMulticast, macMulticast)
		add(openflow.Flow{
			Table: TableL2Lookup, Priority: prioFromTun, Cookie: netCookie,
			Match:   openflow.Match{meta, openflow.RegMasked(RegFlags, FlagFromTunnel, FlagFromTunnel), bcast},
			Actions: slices.Clone(localOut),
		})
		flood := slices.Clone(localOut)

		if p.tunnel != 0 {
			add(openflow.Flow{
				Table: TableClassify, Priority: prioMatch, Cookie: netCookie,
				Match: openflow.Match{openflow.InPort(p.tunnel), openflow.TunID(seg)},
				Actions: []openflow.Action{
					openflow.SetReg(RegFlags, FlagFromTunnel), writeMeta,
					openflow.GotoTable{Table: TableL2Lookup},
				},
			})
			fromLocal := openflow.RegMasked(RegFlags, 0, FlagFromTunnel)
			var floodTo []string
			seen := map[string]bool{}
			for _, rp := range p.remote {
				if mac, err := net.ParseMAC(rp.port.MACAddress); err == nil {
					add(openflow.Flow{
						Table: TableL2Lookup, Priority: prioMatch, Cookie: flowsync.Cookie(KindPort, rp.port.ID),
						Match: openflow.Match{meta, fromLocal, openflow.EthDst(mac)},
						Actions: []openflow.Action{
							openflow.SetTunID(seg), setTunDst(rp.ip), openflow.Output{Port: p.tunnel},
						},
					})
				}
				if !seen[rp.chassis.Name] {
					seen[rp.chassis.Name] = true
					floodTo = append(floodTo, rp.chassis.Name)
				}
			}
			slices.Sort(floodTo)
			if len(floodTo) > 0 {
				flood = append(flood, openflow.SetTunID(seg))
				for _, name := range floodTo {
					flood = append(flood, setTunDst(tunnelIP(v.Chassis(name))), openflow.Output{Port: p.tunnel})
				}
			}
		}
		add(openflow.Flow{
			Table: TableL2Lookup, Priority: prioMatch, Cookie: netCookie,
			Match: openflow.Match{meta, bcast}, Actions: flood,
		})
	}
	slices.SortStableFunc(flows, func(a, b openflow.Flow) int {
		if c := cmp.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		return cmp.Compare(b.Priority, a.Priority)
	})
	return flows
}

func setTunDst(ip net.IP) openflow.SetField {
	return openflow.SetField{Field: openflow.FieldTunDst, Value: slices.Clone(ip.To4())}
}

// tunnelIP is a chassis' IPv4 tunnel endpoint, or nil.
func tunnelIP(c *fsm.Chassis) net.IP {
	if c == nil {
		return nil
	}
	ip := net.ParseIP(c.TunnelIP)
	if ip == nil || ip.To4() == nil {
		return nil
	}
	return ip.To4()
}

// supports says whether a chassis announced the encapsulation; one that
// announced none is taken to support every one.
func supports(c *fsm.Chassis, encap string) bool {
	return len(c.Encaps) == 0 || slices.Contains(c.Encaps, encap)
}

// plan groups, per network with at least one local port, its local and
// remote ports, in id order.
func plan(v *fsm.View, f Facts) []*netPlan {
	byNet := map[string]*netPlan{}
	var order []*netPlan
	ports := v.Ports()
	for _, p := range ports {
		ofport, ok := f.Bindings[p.ID]
		if !ok || ofport == 0 {
			continue
		}
		np := byNet[p.NetworkID]
		if np == nil {
			n := v.Network(p.NetworkID)
			if n == nil || NetworkKey(n) == 0 {
				continue
			}
			np = &netPlan{net: n, key: NetworkKey(n), tunnel: f.Tunnels[n.NetworkType]}
			byNet[p.NetworkID] = np
			order = append(order, np)
		}
		np.local = append(np.local, localPort{port: p, ofport: ofport})
	}
	chassis := map[string]*fsm.Chassis{}
	for _, p := range ports {
		np := byNet[p.NetworkID]
		if np == nil || np.tunnel == 0 || p.BindingHostID == "" || p.BindingHostID == f.Chassis {
			continue
		}
		c, ok := chassis[p.BindingHostID]
		if !ok {
			c = v.Chassis(p.BindingHostID)
			chassis[p.BindingHostID] = c
		}
		if c == nil || !supports(c, np.net.NetworkType) {
			continue
		}
		ip := tunnelIP(c)
		if ip == nil {
			continue
		}
		np.remote = append(np.remote, remotePort{port: p, chassis: c, ip: ip})
	}
	slices.SortFunc(order, func(a, b *netPlan) int { return cmp.Compare(a.net.ID, b.net.ID) })
	return order
}
