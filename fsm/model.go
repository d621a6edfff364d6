package fsm

import "strconv"

// Meta holds the attributes every Neutron resource has. Objects in the
// store are immutable: copy one before changing it.
type Meta struct {
	ID             string
	ProjectID      string
	Name           string
	Description    string
	Tags           []string
	RevisionNumber uint64
	// CreatedAt and UpdatedAt are RFC 3339 UTC strings chosen by the leader
	// and carried in the command, so every replica stores the same value.
	CreatedAt string
	UpdatedAt string
	// CreateIndex and ModifyIndex are the Raft indexes of the commands that
	// created and last changed the object.
	CreateIndex uint64
	ModifyIndex uint64
}

// GetMeta returns the object's common attributes.
func (m *Meta) GetMeta() *Meta { return m }

// Object is anything kept in a table of the store.
type Object interface {
	GetMeta() *Meta
}

// Network types.
const (
	NetTypeVXLAN  = "vxlan"
	NetTypeGRE    = "gre"
	NetTypeGeneve = "geneve"
	NetTypeVLAN   = "vlan"
	NetTypeFlat   = "flat"
)

// Network is a Neutron network with its provider segment.
type Network struct {
	Meta
	AdminStateUp bool
	Status       string
	Shared       bool
	External     bool
	// ExternalRestricted marks a network made external by an
	// access_as_external RBAC policy: external only for its policies' targets.
	ExternalRestricted bool
	MTU                int
	NetworkType        string
	SegmentationID     int
	PhysicalNetwork    string
	// PortSecurityEnabled is the default for ports created on the network.
	PortSecurityEnabled   bool
	AvailabilityZoneHints []string
	// QoSPolicyID is the network's QoS policy ("" when none): it applies
	// to the network's compute ports that have none of their own.
	QoSPolicyID string
	// Key is the network's datapath key (keys.go): a provider network's
	// metadata, its flows' cookie owner.
	DatapathKey uint32
}

// Copy returns a deep copy that may be changed.
func (n *Network) Copy() *Network {
	c := *n
	c.Tags = append([]string(nil), n.Tags...)
	c.AvailabilityZoneHints = append([]string(nil), n.AvailabilityZoneHints...)
	return &c
}

// SegmentKey names the network's segment: two networks with the same key
// would share a wire and must not exist.
func (n *Network) SegmentKey() string {
	return SegmentKey(n.NetworkType, n.PhysicalNetwork, n.SegmentationID)
}

// SegmentKey names a segment. Overlay types have one id space each and no
// physical network; a flat network owns its whole physical network.
func SegmentKey(netType, physnet string, segID int) string {
	switch netType {
	case NetTypeVXLAN, NetTypeGRE, NetTypeGeneve:
		return netType + "/" + strconv.Itoa(segID)
	case NetTypeFlat:
		return netType + "/" + physnet
	default:
		return netType + "/" + physnet + "/" + strconv.Itoa(segID)
	}
}
