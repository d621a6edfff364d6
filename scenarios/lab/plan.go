package lab

import (
	"fmt"
	"net/netip"

	"neutrino/scenarios"
)

// The addressing plan. Every address lives only inside the lab's own
// namespaces; nothing is configured in the root namespace.
const (
	// UnderlayCIDR is the L2 segment between all nodes.
	UnderlayCIDR = "10.250.0.0/24"
	// UnderlayMTU leaves room for a 1500-byte inner frame plus VXLAN, GRE
	// or Geneve headers (lab-notes: a 1500 underlay drops bigger frames).
	UnderlayMTU = 1600
	// underlayBridge is the linux bridge inside the underlay namespace.
	underlayBridge = "br-underlay"
	// nodeNIC is every node's underlay interface.
	nodeNIC = "eth0"
	// phyBridge carries a chassis' tunnel endpoint IP.
	phyBridge = "br-phy"
	// intBridge is where workloads are plugged (the controller creates it).
	intBridge = "br-int"

	// OutsideName is the node outside the cloud (the upstream router).
	OutsideName = "outside"
	// ExternalCIDR is the external subnet on the flat physnet; the outside
	// node is its router at ExternalGateway.
	ExternalCIDR    = "198.51.100.0/24"
	ExternalGateway = "198.51.100.1"
	// outsideMAC, outsideVLANMAC are the outside node's fixed NIC MACs.
	outsideMAC     = "02:6e:6c:ff:00:01"
	outsideVLANMAC = "02:6e:6c:ff:00:02"
	// VLANMin, VLANMax are the ids the servers allocate on the VLAN physnet.
	VLANMin = 100
	VLANMax = 199

	gossipPort = 7301 // Raft: gossipPort+1, OpenFlow: gossipPort+2
	httpPort   = 9696
	ovsdbPort  = 6640
)

// Physnet names.
const (
	PhysnetExternal     = "external"
	PhysnetExternalVLAN = "external-vlan"
)

// physnets are the lab's physical networks: a linux bridge each in the
// underlay namespace; on a node that maps them, a veth (underlay side
// <node><Suffix>, node side NIC) whose node end is a port of a netdev OVS
// bridge OVSBridge (standalone learning switch, no controller). The
// outside node's NIC on them is OutsideNIC.
var physnets = []Physnet{
	{Name: PhysnetExternal, Bridge: "br-ext", OVSBridge: "br-ex", NIC: "ext0", Suffix: "-ex",
		OutsideNIC: "eth0", OutsideMAC: outsideMAC, CIDR: ExternalCIDR, Gateway: ExternalGateway},
	{Name: PhysnetExternalVLAN, Bridge: "br-extvlan", OVSBridge: "br-vlan", NIC: "extv0", Suffix: "-exv",
		VLAN: true, OutsideNIC: "eth1", OutsideMAC: outsideVLANMAC},
}

// Limits of the plan: each kind has its own block of host addresses.
const (
	maxServers  = 9  // .11-.19
	maxChassis  = 99 // .101-.199
	maxGateways = 54 // .201-.254
)

// plannedNode is a node before it is built.
type plannedNode struct {
	name, kind string
	ip         netip.Addr
	mac        string // br-phy MAC of chassis and gateways
	external   bool   // plugged into the physnets
}

// plan lays out the nodes of a topology: servers 10.250.0.1x, chassis
// 10.250.0.1xx, gateways 10.250.0.2xx; br-phy MACs 02:6e:6c:00:00:<last
// octet> so every chassis can pre-load every other one's ARP entry.
// Gateways and the first ExternalChassis chassis map the physnets.
func plan(t scenarios.Topology) ([]plannedNode, error) {
	switch {
	case t.Servers < 1 || t.Servers > maxServers:
		return nil, fmt.Errorf("lab: --servers %d: want 1-%d", t.Servers, maxServers)
	case t.Chassis < 0 || t.Chassis > maxChassis:
		return nil, fmt.Errorf("lab: --chassis %d: want 0-%d", t.Chassis, maxChassis)
	case t.Gateways < 0 || t.Gateways > maxGateways:
		return nil, fmt.Errorf("lab: --gateways %d: want 0-%d", t.Gateways, maxGateways)
	case t.ExternalChassis < 0 || t.ExternalChassis > t.Chassis:
		return nil, fmt.Errorf("lab: --external-chassis %d: want 0-%d (the number of chassis)", t.ExternalChassis, t.Chassis)
	}
	base := netip.MustParsePrefix(UnderlayCIDR).Addr().As4()
	at := func(host int) netip.Addr {
		a := base
		a[3] = byte(host)
		return netip.AddrFrom4(a)
	}
	var out []plannedNode
	add := func(kind string, n, first int) {
		for i := 1; i <= n; i++ {
			host := first + i
			p := plannedNode{name: fmt.Sprintf("%s-%d", kind, i), kind: kind, ip: at(host)}
			if kind != scenarios.KindServer {
				p.mac = fmt.Sprintf("02:6e:6c:00:00:%02x", host)
			}
			p.external = kind == scenarios.KindGateway || (kind == scenarios.KindChassis && i <= t.ExternalChassis)
			out = append(out, p)
		}
	}
	add(scenarios.KindServer, t.Servers, 10)
	add(scenarios.KindChassis, t.Chassis, 100)
	add(scenarios.KindGateway, t.Gateways, 200)
	return out, nil
}

// prefixLen is the underlay prefix length, for addresses in CIDR form.
func prefixLen() int { return netip.MustParsePrefix(UnderlayCIDR).Bits() }
