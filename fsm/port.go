package fsm

import (
	"fmt"
	"net/netip"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Neutron error types used by the port handlers.
const (
	ErrTypePortNotFound           = "PortNotFound"
	ErrTypeMacAddressInUse        = "MacAddressInUse"
	ErrTypeIPAddressInUse         = "IpAddressAlreadyAllocated"
	ErrTypeInvalidIPForSubnet     = "InvalidIpForSubnet"
	ErrTypeSecurityGroupNotFound  = "SecurityGroupNotFound"
	ErrTypeIPAddressGenerationErr = "IpAddressGenerationFailure"
	errTypePortDuplicate          = "PortDuplicated"
)

// Port device owners with a meaning to the control plane.
const (
	DeviceOwnerDHCP            = "network:dhcp"
	DeviceOwnerRouterInterface = "network:router_interface"
	DeviceOwnerRouterGateway   = "network:router_gateway"
	DeviceOwnerFloatingIP      = "network:floatingip"
)

// Port binding states (binding:vif_type).
const (
	VIFTypeUnbound = "unbound"
	VIFTypeOVS     = "ovs"
)

// FixedIP is one address of a port on one of its network's subnets.
type FixedIP struct {
	SubnetID  string
	IPAddress string
}

// AddressPair is an extra address (or prefix) a port may send from.
type AddressPair struct {
	IPAddress  string
	MACAddress string
}

// Port is a Neutron port. MACAddress and addresses are canonical strings.
// Status and the binding fields are set by the data plane once the port
// is plugged (a later PortUpdate from the leader's southbound).
type Port struct {
	Meta
	NetworkID       string
	MACAddress      string
	FixedIPs        []FixedIP
	DeviceID        string
	DeviceOwner     string
	AdminStateUp    bool
	Status          string
	BindingHostID   string
	BindingVIFType  string
	BindingVNICType string
	BindingProfile  string // JSON object
	// BindingOFPort is the OpenFlow port of the interface plugged with this
	// port's iface-id on BindingHostID's br-int (0 when unbound).
	BindingOFPort       int
	PortSecurityEnabled bool
	SecurityGroups      []string
	AllowedAddressPairs []AddressPair
	// ExtraDHCPOpts are answered by the chassis' DHCP responder.
	ExtraDHCPOpts []DHCPOpt
	// Key is the port's datapath key (keys.go): its flows' cookie owner.
	DatapathKey uint32
	// QoSPolicyID is the port's own QoS policy ("" when none).
	QoSPolicyID string
}

// Copy returns a deep copy that may be changed.
func (p *Port) Copy() *Port {
	c := *p
	c.Tags = append([]string(nil), p.Tags...)
	c.FixedIPs = append([]FixedIP(nil), p.FixedIPs...)
	c.SecurityGroups = append([]string(nil), p.SecurityGroups...)
	c.AllowedAddressPairs = append([]AddressPair(nil), p.AllowedAddressPairs...)
	c.ExtraDHCPOpts = append([]DHCPOpt(nil), p.ExtraDHCPOpts...)
	return &c
}

// IsServicePort reports whether a port belongs to its network rather than
// to a user: such ports do not keep a network or subnet from being deleted
// and go with them.
func IsServicePort(p *Port) bool {
	return p.DeviceOwner == DeviceOwnerDHCP
}

// PortCreateRequest creates ports, all or none. Defaults are the default
// security groups of the ports' projects, created first if missing (the
// leader includes them when it has not seen them yet).
type PortCreateRequest struct {
	Ports    []*Port
	Defaults []*SecurityGroupBundle
}

// PortUpdateRequest replaces a port (compare-and-set on PrevIndex).
type PortUpdateRequest struct {
	Port      *Port
	PrevIndex uint64
}

// PortDeleteRequest deletes a port by id.
type PortDeleteRequest struct {
	ID string
}

// Port returns the port with the id, or nil.
func (v *View) Port(id string) *Port {
	return first[*Port](v.txn, TablePorts, "id", id)
}

// Ports returns every port, ordered by id.
func (v *View) Ports() []*Port {
	return all[*Port](v.txn, TablePorts, "id")
}

// PortsOfNetwork returns the ports on a network, ordered by id.
func (v *View) PortsOfNetwork(networkID string) []*Port {
	return all[*Port](v.txn, TablePorts, "network", networkID)
}

// PortsOfDevice returns the ports of a device, ordered by id.
func (v *View) PortsOfDevice(deviceID string) []*Port {
	return all[*Port](v.txn, TablePorts, "device", deviceID)
}

// PortsOfProject returns a project's ports, ordered by id.
func (v *View) PortsOfProject(projectID string) []*Port {
	return all[*Port](v.txn, TablePorts, "project", projectID)
}

// PortByIP returns the port holding the address on the subnet, or nil.
func (v *View) PortByIP(subnetID, ip string) *Port {
	return first[*Port](v.txn, TablePorts, "ip", subnetID, ip)
}

// PortsOnSubnet returns the ports with an address on the subnet.
func (v *View) PortsOnSubnet(subnetID string) []*Port {
	ports := all[*Port](v.txn, TablePorts, "ip_prefix", subnetID)
	// A port with two addresses on the subnet appears twice.
	out := ports[:0]
	seen := map[string]bool{}
	for _, p := range ports {
		if !seen[p.ID] {
			seen[p.ID] = true
			out = append(out, p)
		}
	}
	return out
}

// PortByMAC returns the port with the MAC address on the network, or nil.
func (v *View) PortByMAC(networkID, mac string) *Port {
	return first[*Port](v.txn, TablePorts, "mac", networkID, mac)
}

// PortUsingSecurityGroup returns a port using the group, or nil.
func (v *View) PortUsingSecurityGroup(sgID string) *Port {
	return first[*Port](v.txn, TablePorts, "secgroup", sgID)
}

// PortsOfSecurityGroup returns the ports using the group, ordered by id.
func (v *View) PortsOfSecurityGroup(sgID string) []*Port {
	return all[*Port](v.txn, TablePorts, "secgroup", sgID)
}

// PortsOnChassis returns the ports bound to the chassis, ordered by id.
func (v *View) PortsOnChassis(name string) []*Port {
	if name == "" {
		return nil
	}
	return all[*Port](v.txn, TablePorts, "host", name)
}

// CheckPort validates a port against the state: its network, subnets and
// security groups exist, its addresses are inside their subnets and not
// held by another port, and its MAC is unique on the network. The leader
// runs it before proposing and every replica again when applying.
func (v *View) CheckPort(p *Port) error {
	if v.Network(p.NetworkID) == nil {
		return Errorf(CodeNotFound, ErrTypeNetworkNotFound, "Network %s could not be found.", p.NetworkID)
	}
	if err := v.checkQoSPolicyRef(p.QoSPolicyID); err != nil {
		return err
	}
	if other := v.PortByMAC(p.NetworkID, p.MACAddress); other != nil && other.ID != p.ID {
		return Errorf(CodeConflict, ErrTypeMacAddressInUse,
			"Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, p.MACAddress)
	}
	seen := map[FixedIP]bool{}
	for _, ip := range p.FixedIPs {
		if seen[ip] {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: duplicate IP address %s.", ip.IPAddress)
		}
		seen[ip] = true
		s := v.Subnet(ip.SubnetID)
		if s == nil {
			return subnetNotFound(ip.SubnetID)
		}
		if s.NetworkID != p.NetworkID {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput,
				"Invalid input for operation: Failed to create port on network %s, because fixed_ips included invalid subnet %s.", p.NetworkID, s.ID)
		}
		a, err := netip.ParseAddr(ip.IPAddress)
		if err != nil || !s.Prefix().Contains(a) {
			return Errorf(CodeBadRequest, ErrTypeInvalidIPForSubnet,
				"IP address %s is not a valid IP for the specified subnet.", ip.IPAddress)
		}
		if other := v.PortByIP(ip.SubnetID, ip.IPAddress); other != nil && other.ID != p.ID {
			return Errorf(CodeConflict, ErrTypeIPAddressInUse,
				"IP address %s already allocated in subnet %s", ip.IPAddress, ip.SubnetID)
		}
	}
	for _, sg := range p.SecurityGroups {
		if v.SecurityGroup(sg) == nil {
			return Errorf(CodeNotFound, ErrTypeSecurityGroupNotFound, "Security group %s does not exist", sg)
		}
	}
	return nil
}

func portNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypePortNotFound, "Port %s could not be found.", id)
}

func applyPortCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req PortCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if err := ensureSecurityGroups(txn, req.Defaults, index); err != nil {
		return err
	}
	// Every port is checked before any is inserted: memdb's read of an
	// index written in the same transaction (the id, MAC and address
	// lookups) clones it and drops its cache of writable nodes, so checks
	// interleaved with inserts made every insert copy its radix paths
	// again. Ports earlier in the bulk are checked against by the sets.
	// The sets use the MAC and address index keys, so they find what the
	// index lookups would.
	ids := make(map[string]bool, len(req.Ports))
	macs := make(map[string]bool, len(req.Ports))
	ips := make(map[string]bool, len(req.Ports))
	for _, p := range req.Ports {
		if ids[p.ID] || v.Port(p.ID) != nil {
			return Errorf(CodeConflict, errTypePortDuplicate, "Port %s already exists.", p.ID)
		}
		if err := v.CheckPort(p); err != nil {
			return err
		}
		mac := p.NetworkID + "\x00" + strings.ToLower(p.MACAddress)
		if macs[mac] {
			return Errorf(CodeConflict, ErrTypeMacAddressInUse,
				"Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, p.MACAddress)
		}
		for _, ip := range p.FixedIPs {
			if ips[string(ipKey(ip.SubnetID, ip.IPAddress))] {
				return Errorf(CodeConflict, ErrTypeIPAddressInUse,
					"IP address %s already allocated in subnet %s", ip.IPAddress, ip.SubnetID)
			}
		}
		ids[p.ID], macs[mac] = true, true
		for _, ip := range p.FixedIPs {
			ips[string(ipKey(ip.SubnetID, ip.IPAddress))] = true
		}
	}
	for _, p := range req.Ports {
		clearKey(p)
		if _, err := assignKey(txn, TablePorts, p); err != nil {
			return err
		}
		p.CreateIndex, p.ModifyIndex = index, index
		insertObject(txn, TablePorts, p)
	}
	if len(req.Ports) > 0 {
		setIndex(txn, TablePorts, index)
	}
	return nil
}

func applyPortUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req PortUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	p := req.Port
	cur := v.Port(p.ID)
	if cur == nil {
		return portNotFound(p.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "port %s changed concurrently", p.ID)
	}
	if p.NetworkID != cur.NetworkID {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: network_id cannot be changed.")
	}
	if err := checkL3PortUpdate(&v, cur, p); err != nil {
		return err
	}
	if err := v.CheckPort(p); err != nil {
		return err
	}
	p.CreateIndex, p.ModifyIndex = cur.CreateIndex, index
	insert(txn, TablePorts, p, index)
	return nil
}

func applyPortDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req PortDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.Port(req.ID)
	if cur == nil {
		return portNotFound(req.ID)
	}
	if err := checkL3PortDelete(&v, cur); err != nil {
		return err
	}
	if err := checkTrunkPortDelete(&v, cur.ID); err != nil {
		return err
	}
	disassociatePort(txn, cur.ID, index)
	remove(txn, TablePorts, cur, index)
	return nil
}

// portIPIndexer indexes ports by (subnet, address), one key per fixed IP,
// so "is this address used on this subnet" is one tree search and the
// prefix form lists a subnet's ports.
type portIPIndexer struct{}

func ipKey(subnetID, ip string) []byte { return []byte(subnetID + "\x00" + ip + "\x00") }

func (portIPIndexer) FromObject(obj any) (bool, [][]byte, error) {
	p, ok := obj.(*Port)
	if !ok {
		return false, nil, fmt.Errorf("ip index: %T is not a port", obj)
	}
	if len(p.FixedIPs) == 0 {
		return false, nil, nil
	}
	keys := make([][]byte, 0, len(p.FixedIPs))
	for _, ip := range p.FixedIPs {
		keys = append(keys, ipKey(ip.SubnetID, ip.IPAddress))
	}
	return true, keys, nil
}

func (portIPIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("ip index takes a subnet id and an address")
	}
	sub, ok1 := args[0].(string)
	ip, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("ip index: arguments must be strings")
	}
	return ipKey(sub, ip), nil
}

// PrefixFromArgs finds every address on one subnet.
func (portIPIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("ip index prefix takes a subnet id")
	}
	sub, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("ip index: argument %T is not a string", args[0])
	}
	return []byte(sub + "\x00"), nil
}

// portMACIndexer indexes ports by (network, MAC).
type portMACIndexer struct{}

func (portMACIndexer) FromObject(obj any) (bool, []byte, error) {
	p, ok := obj.(*Port)
	if !ok {
		return false, nil, fmt.Errorf("mac index: %T is not a port", obj)
	}
	return true, []byte(p.NetworkID + "\x00" + strings.ToLower(p.MACAddress) + "\x00"), nil
}

func (portMACIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("mac index takes a network id and a MAC address")
	}
	net, ok1 := args[0].(string)
	mac, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("mac index: arguments must be strings")
	}
	return []byte(net + "\x00" + strings.ToLower(mac) + "\x00"), nil
}
