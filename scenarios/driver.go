// Package scenarios holds Neutrino's multi-node scenario tests and the
// interface they drive a lab through. A Driver builds the nodes (network
// namespaces on one machine, or Vagrant VMs) and plugs workloads; node
// names, addressing and how a command reaches a node are the driver's
// business, so one scenario runs unchanged on every driver.
package scenarios

import (
	"context"
	"os/exec"
	"time"
)

// Node kinds of a lab.
const (
	KindServer  = "server"
	KindChassis = "chassis"
	KindGateway = "gateway"
)

// Topology is the shape of a lab: how many nodes of each kind.
type Topology struct {
	// Servers run `neutrino agent --server` (Raft voters, the API).
	Servers int `json:"servers"`
	// Chassis are compute nodes with Open vSwitch.
	Chassis int `json:"chassis"`
	// Gateways are chassis with the gateway role. Every gateway is plugged
	// into the physical networks (External).
	Gateways int `json:"gateways"`
	// ExternalChassis is how many chassis, from chassis-1 upward, are also
	// plugged into the physical networks (distributed floating IPs).
	ExternalChassis int `json:"external_chassis,omitempty"`
}

// Node is one lab node as a scenario sees it.
type Node struct {
	// Name is the agent's node name (also its chassis name), e.g. "chassis-1".
	Name string `json:"name"`
	// Kind is KindServer, KindChassis or KindGateway.
	Kind string `json:"kind"`
	// Address is the node's underlay address (tunnel endpoint for chassis).
	Address string `json:"address"`
	// API is, for servers, the API URL reachable from the test process.
	API string `json:"api,omitempty"`
	// DataDir is the agent's --data-dir as commands run on the node (Exec)
	// see it: where it keeps what it runs (HAProxy's, charon's files).
	DataDir string `json:"data_dir,omitempty"`
}

// Lab is a running lab.
type Lab struct {
	Nodes []Node `json:"nodes"`
	// External describes the physical networks and the upstream router
	// behind them (nil if the driver has none).
	External *External `json:"external,omitempty"`
	// Binary is the neutrino binary as commands on nodes and VMs (Exec,
	// Command) find it: its `lab http-probe`, `lab dhcp6-client` and
	// `lab vpn-site` run there.
	Binary string `json:"binary,omitempty"`
}

// External is the lab's provider side: two physical networks that every
// gateway (and Topology.ExternalChassis chassis) maps, and a node outside
// the cloud on them that plays the upstream router. The outside node is
// no chassis: it runs no agent and has no underlay link, but Exec reaches it.
type External struct {
	// Physnet is the flat (untagged) physical network, e.g. "external",
	// mapped to Bridge on the chassis.
	Physnet string `json:"physnet"`
	Bridge  string `json:"bridge"`
	// VLANPhysnet carries 802.1Q-tagged frames, e.g. "external-vlan",
	// mapped to VLANBridge; VLANMin-VLANMax is the servers' --vlan-ranges.
	VLANPhysnet string `json:"vlan_physnet"`
	VLANBridge  string `json:"vlan_bridge"`
	VLANMin     int    `json:"vlan_min"`
	VLANMax     int    `json:"vlan_max"`
	// Node is the outside node's name for Exec.
	Node string `json:"node"`
	// CIDR is the external subnet on Physnet; Gateway is the outside
	// node's address in it (on its NIC NIC), the subnet's gateway_ip.
	CIDR    string `json:"cidr"`
	Gateway string `json:"gateway"`
	NIC     string `json:"nic"`
	MAC     string `json:"mac"`
	// VLANNIC is the outside node's NIC on VLANPhysnet (no address; a
	// trunk: Driver.OutsideVLAN gives the node an address on a VLAN).
	VLANNIC string `json:"vlan_nic"`
	VLANMAC string `json:"vlan_mac"`
	// Chassis are the nodes that map both physical networks.
	Chassis []string `json:"chassis"`
}

// ByKind returns the nodes of one kind, in name order.
func (l *Lab) ByKind(kind string) []Node {
	var out []Node
	for _, n := range l.Nodes {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

// Driver builds and drives a lab. Every method but Up works on the lab the
// last Up built; Down is safe to call after a failed or partial Up. The
// methods are safe for concurrent use.
type Driver interface {
	// Up builds the topology and returns once every server answers with a
	// leader and every node is alive in gossip.
	Up(ctx context.Context, t Topology) (*Lab, error)
	// Down removes everything the lab made, also after a failed Up.
	Down(ctx context.Context) error
	// Endpoint is an API URL of the cluster reachable from the caller.
	Endpoint() string
	// Endpoints are the API URLs of every server, in node order.
	Endpoints() []string
	// Exec runs a command on a node or VM and returns its standard output.
	// On a chassis, the OVS tools (ovs-vsctl, ovs-ofctl, ovs-appctl) reach
	// that chassis' own Open vSwitch with their default sockets.
	Exec(ctx context.Context, node string, cmd ...string) (string, error)
	// Command is Exec not yet started, for a long-running command whose
	// standard streams the caller connects (a listener, a capture, a
	// connection held open); cancelling ctx ends it.
	Command(ctx context.Context, node string, cmd ...string) (*exec.Cmd, error)
	// AddVM plugs a workload named name into chassis' br-int as the
	// Neutron port portID (MAC, address, gateway and MTU read from the
	// API, written into the VM: no DHCP client runs in it, a scenario
	// starts one with Command); its interface is eth0. Exec and Command
	// reach it by name. Its file system is its node's: a scenario keeps
	// its files in a directory of its own (mktemp -d).
	AddVM(ctx context.Context, name, portID, chassis string) error
	// DelVM unplugs and removes a workload.
	DelVM(ctx context.Context, name string) error
	// KillAgent kills a node's agent abruptly (SIGKILL), as a crash would.
	KillAgent(ctx context.Context, node string) error
	// StartAgent starts a node's agent again after KillAgent.
	StartAgent(ctx context.Context, node string) error
	// KillNode kills a node as a machine dies: its agent and OVS daemons
	// at once, and every link of it down.
	KillNode(ctx context.Context, node string) error
	// ReviveNode boots a killed node again: links up, OVS with its
	// database, the agent; it returns once gossip sees the node alive.
	ReviveNode(ctx context.Context, node string) error
	// RestartOVS restarts a chassis' Open vSwitch (ovsdb-server on its
	// database, ovs-vswitchd) while its agent runs on, as a crash or a
	// package upgrade would; flows are not carried over (the controller
	// puts them back). It returns once ovs-vswitchd runs again.
	RestartOVS(ctx context.Context, node string) error
	// Partition cuts a node's underlay link (its processes keep running,
	// its physical network links stay up): a split brain.
	Partition(ctx context.Context, node string) error
	// Isolate cuts a server off from the other servers only: chassis
	// still reach it (OpenFlow, OVSDB) and it reaches them.
	Isolate(ctx context.Context, node string) error
	// Heal undoes Partition and Isolate and returns once gossip sees the
	// node alive.
	Heal(ctx context.Context, node string) error
	// OutsideVLAN gives the outside node the address cidr on VLAN vid of
	// VLANPhysnet (frames leave on VLANNIC tagged vid). Idempotent for the
	// same vid (the address becomes cidr).
	OutsideVLAN(ctx context.Context, vid int, cidr string) error
}

// Degrader is a Driver that can also make a node's underlay link lossy
// and slow; a scenario uses it where the driver has it (the lab does).
// Heal undoes it.
type Degrader interface {
	// Degrade puts lossPercent loss and delay on every packet leaving
	// either end of node's underlay link.
	Degrade(ctx context.Context, node string, lossPercent float64, delay time.Duration) error
}
