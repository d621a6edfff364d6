package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"neutrino/scenarios"
)

// File names inside a lab directory.
const (
	stateFile = "state.json"
	lockFile  = "lock"
)

// stateVersion is bumped when State changes incompatibly.
const stateVersion = 1

// Phases of a lab in State.Phase.
const (
	PhaseCreating = "creating" // `up` is building it (or died doing so)
	PhaseUp       = "up"       // `up` finished
)

// State is everything a lab made, written to <dir>/state.json as it is
// made, so Down can undo all of it even after `up` crashed half-way.
type State struct {
	Version  int                `json:"version"`
	Dir      string             `json:"dir"`
	Prefix   string             `json:"prefix"`
	Phase    string             `json:"phase"`
	Created  time.Time          `json:"created"`
	Topology scenarios.Topology `json:"topology"`
	Underlay Underlay           `json:"underlay"`
	// Namespaces lists every namespace the lab created or was about to
	// create (recorded first, so a crash between the two leaks nothing).
	Namespaces []string `json:"namespaces"`
	// Processes lists every daemon the lab started.
	Processes []Process `json:"processes"`
	Nodes     []*Node   `json:"nodes"`
	VMs       []*VM     `json:"vms"`
	// Physnets are the physical networks (linux bridges in the underlay
	// namespace) gateways and external chassis are plugged into.
	Physnets []Physnet `json:"physnets,omitempty"`
	// Outside is the node outside the cloud on the physnets.
	Outside *Outside `json:"outside,omitempty"`
	// Sites are the remote VPN sites (site.go).
	Sites []*Site `json:"sites,omitempty"`
	// CA is the lab's CA certificate (tls.go); empty when the lab runs
	// without TLS. API clients verify the servers with it.
	CA string `json:"ca,omitempty"`
}

// Physnet is one physical network of the lab.
type Physnet struct {
	// Name is the Neutron physical network name (provider:physical_network).
	Name string `json:"name"`
	// Bridge is the linux bridge in the underlay namespace (vlan_filtering
	// off: tagged frames pass).
	Bridge string `json:"bridge"`
	// OVSBridge is the netdev OVS bridge on the nodes that map it, the
	// agent's --bridge-mappings Name:OVSBridge.
	OVSBridge string `json:"ovs_bridge"`
	// NIC is the node-side veth, a port of OVSBridge.
	NIC string `json:"nic"`
	// Suffix makes the underlay-side veth name <node><Suffix>.
	Suffix string `json:"suffix"`
	// VLAN: the physnet carries 802.1Q-tagged frames (VLAN networks).
	VLAN bool `json:"vlan,omitempty"`
	// OutsideNIC, OutsideMAC: the outside node's NIC on it.
	OutsideNIC string `json:"outside_nic"`
	OutsideMAC string `json:"outside_mac"`
	// CIDR, Gateway: the subnet on it the outside node routes (flat only).
	CIDR    string `json:"cidr,omitempty"`
	Gateway string `json:"gateway,omitempty"`
}

// Outside is the node outside the cloud: a namespace with a NIC in every
// physnet and no underlay link, no agent. This kernel cannot tag 802.1Q
// (no 8021q module, no tc classifiers), so it runs a small OVS of its own
// (netdev datapath, no controller, no TCP listener) with a standalone
// bridge Bridge whose only uplink is the VLAN physnet NIC (a trunk);
// OutsideVLAN adds an access port per VLAN on it.
type Outside struct {
	Name      string       `json:"name"`
	Namespace string       `json:"namespace"`
	NICs      []OutsideNIC `json:"nics"`
	// Bridge is the netdev OVS bridge with the VLAN physnet NIC as a port.
	Bridge string `json:"bridge,omitempty"`
	// OVSDir is its OVS_RUNDIR (sockets, pidfiles, logs, database);
	// OVSDBUnix its database's unix socket (the only way in).
	OVSDir    string `json:"ovs_dir,omitempty"`
	OVSDBUnix string `json:"ovsdb_unix,omitempty"`
	// OVSDBPID, VswitchdPID are its OVS daemons (also in Processes).
	OVSDBPID    int `json:"ovsdb_pid,omitempty"`
	VswitchdPID int `json:"vswitchd_pid,omitempty"`
	// VLANs are the addresses OutsideVLAN put on VLANs of the VLAN physnet.
	VLANs []OutsideVLANPort `json:"vlans,omitempty"`
}

// OutsideVLANPort is an address of the outside node on one VLAN: an OVS
// internal port of Outside.Bridge with tag=VID (OVS pushes and pops the
// 802.1Q header on the trunk NIC).
type OutsideVLANPort struct {
	VID int `json:"vid"`
	// Port is the internal port (and the interface in the namespace),
	// vlan<VID>.
	Port string `json:"port"`
	// Address is in CIDR form.
	Address string `json:"address"`
	MAC     string `json:"mac"`
}

// VLAN returns the outside node's port on VLAN vid, or nil.
func (o *Outside) VLAN(vid int) *OutsideVLANPort {
	for i := range o.VLANs {
		if o.VLANs[i].VID == vid {
			return &o.VLANs[i]
		}
	}
	return nil
}

// OutsideNIC is one NIC of the outside node.
type OutsideNIC struct {
	Name    string `json:"name"`
	Physnet string `json:"physnet"`
	MAC     string `json:"mac"`
	// Address is in CIDR form, empty on the VLAN physnet.
	Address string `json:"address,omitempty"`
	// UnderlayLink is the veth end in the physnet's bridge.
	UnderlayLink string `json:"underlay_link"`
}

// PhysnetLink is a node's link into one physnet.
type PhysnetLink struct {
	Physnet string `json:"physnet"`
	// OVSBridge on the node, with NIC as a port.
	OVSBridge string `json:"ovs_bridge"`
	NIC       string `json:"nic"`
	// UnderlayLink is the veth end in the physnet's bridge, in the
	// underlay namespace.
	UnderlayLink string `json:"underlay_link"`
}

// Underlay is the L2 segment between the nodes.
type Underlay struct {
	Namespace string `json:"namespace"`
	Bridge    string `json:"bridge"`
	CIDR      string `json:"cidr"`
	MTU       int    `json:"mtu"`
}

// Node is one lab node.
type Node struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	// IP is the underlay address: on eth0 for servers, on br-phy (the
	// tunnel endpoint) for chassis and gateways.
	IP  string `json:"ip"`
	MAC string `json:"mac,omitempty"`
	// API is a server's API URL in the root namespace (http://127.0.0.1:PORT).
	API string `json:"api,omitempty"`
	// APIPort is the root-namespace port behind API, reused on restart.
	APIPort int `json:"api_port,omitempty"`
	// UnderlayAPI is the server's API address on the underlay.
	UnderlayAPI string `json:"underlay_api,omitempty"`
	Gossip      string `json:"gossip"`
	// OVSDB is the chassis' OVSDB TCP endpoint the leader uses.
	OVSDB string `json:"ovsdb,omitempty"`
	// OVSDBUnix is the same database's unix socket, usable from the root
	// namespace for debugging.
	OVSDBUnix string `json:"ovsdb_unix,omitempty"`
	// OVSDir is the chassis' OVS_RUNDIR (sockets, pidfiles, logs).
	OVSDir   string   `json:"ovs_dir,omitempty"`
	DataDir  string   `json:"data_dir"`
	Log      string   `json:"log"`
	AgentPID int      `json:"agent_pid,omitempty"`
	Args     []string `json:"args"`
	// OVSDBPID, VswitchdPID are the chassis' current OVS daemons.
	OVSDBPID    int `json:"ovsdb_pid,omitempty"`
	VswitchdPID int `json:"vswitchd_pid,omitempty"`
	// Physnets are the node's links into the lab's physnets (gateways and
	// external chassis).
	Physnets []PhysnetLink `json:"physnets,omitempty"`
	// Killed: `lab kill` killed the node (processes gone, links down)
	// and `lab revive` has not brought it back.
	Killed bool `json:"killed,omitempty"`
	// Partitioned: `lab partition` cut its underlay link.
	Partitioned bool `json:"partitioned,omitempty"`
	// Isolated: `lab isolate` cut this server off from the other servers
	// (blackhole routes both ways); the chassis still reach it.
	Isolated bool `json:"isolated,omitempty"`
	// TLSCert, TLSKey are the node's certificate and key (tls.go), also
	// what a chassis' ovsdb-server serves its pssl: remote with.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// Degraded: `lab degrade` put loss or delay on its underlay link.
	Degraded bool `json:"degraded,omitempty"`
}

// VM is one workload namespace plugged into a chassis' br-int.
type VM struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Chassis   string `json:"chassis"`
	PortID    string `json:"port_id"`
	OVSPort   string `json:"ovs_port"`
	MAC       string `json:"mac"`
	CIDR      string `json:"cidr"`
	Gateway   string `json:"gateway,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	// DHCP: the VM's address comes from DHCP (busybox udhcpc, run as
	// DHCPClient), not written by the lab.
	DHCP       bool     `json:"dhcp,omitempty"`
	DHCPClient *Process `json:"dhcp_client,omitempty"`
	// DHCP6: the VM asks for its IPv6 address by DHCPv6 (the lab's own
	// client, `neutrino lab dhcp6-client`, run as DHCP6Client).
	DHCP6       bool     `json:"dhcp6,omitempty"`
	DHCP6Client *Process `json:"dhcp6_client,omitempty"`
}

// Process is a daemon the lab started; StartTime (from /proc/PID/stat)
// tells it apart from a later process that reuses the PID.
type Process struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	What      string `json:"what"`
}

// store guards a State and persists it after every change.
type store struct {
	mu   sync.Mutex
	path string
	st   *State
}

// update changes the state under the lock and writes it out atomically.
func (s *store) update(fn func(st *State)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.st)
	return writeState(s.path, s.st)
}

// snapshot returns a deep copy of the state.
func (s *store) snapshot() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.st)
	var c State
	_ = json.Unmarshal(b, &c)
	return &c
}

func writeState(path string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("lab: encode state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lab: write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("lab: write state: %w", err)
	}
	return nil
}

// ErrNoLab means the directory holds no lab.
var ErrNoLab = errors.New("no lab")

// LoadState reads the state of the lab in dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoLab, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lab: read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab: state file %s is corrupt: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("lab: state file version %d, want %d", st.Version, stateVersion)
	}
	return &st, nil
}

// Node returns the node or VM-less node named name.
func (st *State) Node(name string) *Node {
	for _, n := range st.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// VM returns the VM named name.
func (st *State) VM(name string) *VM {
	for _, v := range st.VMs {
		if v.Name == name {
			return v
		}
	}
	return nil
}

func (st *State) addNamespace(ns string) {
	if !slices.Contains(st.Namespaces, ns) {
		st.Namespaces = append(st.Namespaces, ns)
	}
}

// lock is an exclusive flock on <dir>/lock held by one lab command at a
// time; the kernel drops it when the holder dies, so a crash never leaves
// the lab locked.
type lock struct{ f *os.File }

func acquireLock(dir string) (*lock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("lab: another lab command (pid %s) is working on %s; wait for it or end it", string(holder), dir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprint(os.Getpid())), 0)
	return &lock{f: f}, nil
}

func (l *lock) release() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
	}
}
