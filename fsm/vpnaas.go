package fsm

// VPN as a service (issue 13): the Neutron VPNaaS v2.0 model.
//
// A VPN service names a router (and, in the legacy form, one of its
// subnets); its IPsec site connections run on the router's active gateway
// chassis (ActiveGatewayChassis), so a router failover moves them with it
// and no placement of their own exists. The chassis agent reports the
// IKE/IPsec state with CmdVPNStatus: that report is the only way a
// connection leaves PENDING_CREATE.

import (
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// VPNaaS table names.
const (
	TableVPNIKEPolicies     = "vpn_ikepolicies"
	TableVPNIPsecPolicies   = "vpn_ipsecpolicies"
	TableVPNServices        = "vpn_services"
	TableVPNEndpointGroups  = "vpn_endpoint_groups"
	TableVPNSiteConnections = "vpn_site_connections"
)

// VPNaaS commands (120-139). Values are persisted in the Raft log: never
// renumber.
const (
	CmdVPNIKEPolicyCreate      CommandType = 120
	CmdVPNIKEPolicyUpdate      CommandType = 121
	CmdVPNIKEPolicyDelete      CommandType = 122
	CmdVPNIPsecPolicyCreate    CommandType = 123
	CmdVPNIPsecPolicyUpdate    CommandType = 124
	CmdVPNIPsecPolicyDelete    CommandType = 125
	CmdVPNServiceCreate        CommandType = 126
	CmdVPNServiceUpdate        CommandType = 127
	CmdVPNServiceDelete        CommandType = 128
	CmdVPNEndpointGroupCreate  CommandType = 129
	CmdVPNEndpointGroupUpdate  CommandType = 130
	CmdVPNEndpointGroupDelete  CommandType = 131
	CmdVPNSiteConnectionCreate CommandType = 132
	CmdVPNSiteConnectionUpdate CommandType = 133
	CmdVPNSiteConnectionDelete CommandType = 134
	// CmdVPNStatus applies a chassis agent's report of its VPN services'
	// and connections' state (VPNStatusRequest).
	CmdVPNStatus CommandType = 135
)

// VPN statuses of services and connections.
const (
	VPNStatusPendingCreate = "PENDING_CREATE"
	VPNStatusPendingUpdate = "PENDING_UPDATE"
	VPNStatusPendingDelete = "PENDING_DELETE"
	VPNStatusActive        = "ACTIVE"
	VPNStatusDown          = "DOWN"
	VPNStatusError         = "ERROR"
)

// VPNStatuses are the statuses an agent may report.
var VPNStatuses = []string{VPNStatusPendingCreate, VPNStatusActive, VPNStatusDown, VPNStatusError}

// Values of the policy and connection attributes Neutron's API accepts.
var (
	VPNAuthAlgorithms       = []string{"sha1", "sha256", "sha384", "sha512", "aes-xcbc", "aes-cmac"}
	VPNEncryptionAlgorithms = []string{"3des", "aes-128", "aes-192", "aes-256",
		"aes-128-ctr", "aes-192-ctr", "aes-256-ctr",
		"aes-128-ccm-8", "aes-192-ccm-8", "aes-256-ccm-8",
		"aes-128-ccm-12", "aes-192-ccm-12", "aes-256-ccm-12",
		"aes-128-ccm-16", "aes-192-ccm-16", "aes-256-ccm-16",
		"aes-128-gcm-8", "aes-192-gcm-8", "aes-256-gcm-8",
		"aes-128-gcm-12", "aes-192-gcm-12", "aes-256-gcm-12",
		"aes-128-gcm-16", "aes-192-gcm-16", "aes-256-gcm-16"}
	VPNPFSGroups = []string{"group2", "group5", "group14", "group15", "group16",
		"group17", "group18", "group19", "group20", "group21", "group22", "group23",
		"group24", "group25", "group26", "group27", "group28", "group29", "group30", "group31"}
	VPNPhase1Modes        = []string{"main", "aggressive"}
	VPNIKEVersions        = []string{"v1", "v2"}
	VPNLifetimeUnits      = []string{"seconds"}
	VPNTransformProtocols = []string{"esp", "ah", "ah-esp"}
	VPNEncapsulationModes = []string{"tunnel", "transport"}
	VPNInitiators         = []string{"bi-directional", "response-only"}
	VPNDPDActions         = []string{"hold", "clear", "restart", "disabled", "restart-by-peer"}
	VPNEndpointGroupTypes = []string{VPNEndpointSubnet, VPNEndpointCIDR}
)

// Fixed and default attribute values.
const (
	VPNRouteModeStatic = "static"
	VPNAuthModePSK     = "psk"
	// VPNMinLifetime is the smallest lifetime value Neutron accepts.
	VPNMinLifetime = 60
)

// Endpoint group types.
const (
	VPNEndpointSubnet = "subnet"
	VPNEndpointCIDR   = "cidr"
)

// Neutron error types of the VPNaaS handlers (neutron_lib's
// exceptions/vpn.py), plus PeerCidrOverlapsLocalSubnet, a check of ours.
const (
	ErrTypeIKEPolicyNotFound           = "IKEPolicyNotFound"
	ErrTypeIPsecPolicyNotFound         = "IPsecPolicyNotFound"
	ErrTypeVPNServiceNotFound          = "VPNServiceNotFound"
	ErrTypeEndpointGroupNotFound       = "VPNEndpointGroupNotFound"
	ErrTypeIPsecSiteConnectionNotFound = "IPsecSiteConnectionNotFound"
	ErrTypeIKEPolicyInUse              = "IKEPolicyInUse"
	ErrTypeIPsecPolicyInUse            = "IPsecPolicyInUse"
	ErrTypeVPNServiceInUse             = "VPNServiceInUse"
	ErrTypeEndpointGroupInUse          = "EndpointGroupInUse"
	ErrTypeRouterInUseByVPNService     = "RouterInUseByVPNService"
	ErrTypeSubnetInUseByVPNService     = "SubnetInUseByVPNService"
	ErrTypeSubnetInUseByEndpointGroup  = "SubnetInUseByEndpointGroup"
	ErrTypeRouterIsNotExternal         = "RouterIsNotExternal"
	ErrTypeSubnetIsNotConnectedRouter  = "SubnetIsNotConnectedToRouter"
	ErrTypeExternalNetworkHasNoSubnet  = "ExternalNetworkHasNoSubnet"
	ErrTypeVPNPeerCIDROverlap          = "PeerCidrOverlapsLocalSubnet"
	ErrTypeVPNInvalidEndpointGroup     = "InvalidEndpointGroup"
	ErrTypeVPNNonExistingSubnetInGroup = "NonExistingSubnetInEndpointGroup"
	ErrTypeVPNWrongEndpointGroupType   = "WrongEndpointGroupType"
	ErrTypeVPNMixedEndpoints           = "MixedIPVersionsForIPSecEndpoints"
	ErrTypeVPNMixedPeerCIDRs           = "MixedIPVersionsForPeerCidrs"
	ErrTypeVPNMixedConnection          = "MixedIPVersionsForIPSecConnection"
	ErrTypeVPNPeerCIDRsInvalid         = "PeerCidrsInvalid"
	ErrTypeVPNMissingPeerCIDRs         = "MissingPeerCidrs"
	ErrTypeVPNMissingRequiredEPGroup   = "MissingRequiredEndpointGroup"
	ErrTypeIPsecSiteConnectionPeerCIDR = "IPsecSiteConnectionPeerCidrError"
	ErrTypeIPsecSiteConnectionMTU      = "IPsecSiteConnectionMtuError"
	ErrTypeVPNDuplicate                = "VPNObjectDuplicated"
)

// IKEPolicy is a Neutron VPNaaS IKE policy (phase 1).
type IKEPolicy struct {
	Meta
	AuthAlgorithm         string
	EncryptionAlgorithm   string
	PFS                   string
	Phase1NegotiationMode string
	IKEVersion            string
	LifetimeUnits         string
	LifetimeValue         int
}

// Copy returns a deep copy that may be changed.
func (p *IKEPolicy) Copy() *IKEPolicy {
	c := *p
	c.Tags = slices.Clone(p.Tags)
	return &c
}

// IPsecPolicy is a Neutron VPNaaS IPsec policy (phase 2).
type IPsecPolicy struct {
	Meta
	TransformProtocol   string
	EncapsulationMode   string
	AuthAlgorithm       string
	EncryptionAlgorithm string
	PFS                 string
	LifetimeUnits       string
	LifetimeValue       int
}

// Copy returns a deep copy that may be changed.
func (p *IPsecPolicy) Copy() *IPsecPolicy {
	c := *p
	c.Tags = slices.Clone(p.Tags)
	return &c
}

// VPNService is a Neutron VPN service: the router whose gateway terminates
// its connections. ExternalV4IP and ExternalV6IP are the router's gateway
// addresses, kept by the state machine.
type VPNService struct {
	Meta
	RouterID     string
	SubnetID     string
	AdminStateUp bool
	Status       string
	ExternalV4IP string
	ExternalV6IP string
}

// Copy returns a deep copy that may be changed.
func (s *VPNService) Copy() *VPNService {
	c := *s
	c.Tags = slices.Clone(s.Tags)
	return &c
}

// EndpointGroup is a Neutron VPN endpoint group: local subnets (type
// subnet, endpoints are subnet ids) or peer CIDRs (type cidr).
type EndpointGroup struct {
	Meta
	Type      string
	Endpoints []string
}

// Copy returns a deep copy that may be changed.
func (g *EndpointGroup) Copy() *EndpointGroup {
	c := *g
	c.Tags = slices.Clone(g.Tags)
	c.Endpoints = slices.Clone(g.Endpoints)
	return &c
}

// IPsecSiteConnection is a Neutron IPsec site connection. PSK is kept in
// the replicated state for the gateway's agent; the API never returns it
// and nothing logs it.
type IPsecSiteConnection struct {
	Meta
	VPNServiceID   string
	IKEPolicyID    string
	IPsecPolicyID  string
	PeerAddress    string
	PeerID         string
	LocalID        string
	PSK            string
	PeerCIDRs      []string
	LocalEPGroupID string
	PeerEPGroupID  string
	MTU            int
	Initiator      string
	DPDAction      string
	DPDInterval    int
	DPDTimeout     int
	AdminStateUp   bool
	Status         string
	RouteMode      string
	AuthMode       string
}

// Copy returns a deep copy that may be changed.
func (c *IPsecSiteConnection) Copy() *IPsecSiteConnection {
	o := *c
	o.Tags = slices.Clone(c.Tags)
	o.PeerCIDRs = slices.Clone(c.PeerCIDRs)
	return &o
}

// VPNIKEPolicyCreateRequest creates an IKE policy.
type VPNIKEPolicyCreateRequest struct{ Policy *IKEPolicy }

// VPNIKEPolicyUpdateRequest replaces an IKE policy (compare-and-set on
// PrevIndex); a policy in use by a connection cannot change.
type VPNIKEPolicyUpdateRequest struct {
	Policy    *IKEPolicy
	PrevIndex uint64
}

// VPNIPsecPolicyCreateRequest creates an IPsec policy.
type VPNIPsecPolicyCreateRequest struct{ Policy *IPsecPolicy }

// VPNIPsecPolicyUpdateRequest replaces an IPsec policy (compare-and-set);
// a policy in use by a connection cannot change.
type VPNIPsecPolicyUpdateRequest struct {
	Policy    *IPsecPolicy
	PrevIndex uint64
}

// VPNServiceCreateRequest creates a VPN service.
type VPNServiceCreateRequest struct{ Service *VPNService }

// VPNServiceUpdateRequest replaces a VPN service (compare-and-set); its
// router and subnet cannot change.
type VPNServiceUpdateRequest struct {
	Service   *VPNService
	PrevIndex uint64
}

// VPNEndpointGroupCreateRequest creates an endpoint group.
type VPNEndpointGroupCreateRequest struct{ Group *EndpointGroup }

// VPNEndpointGroupUpdateRequest replaces an endpoint group
// (compare-and-set); its type and endpoints cannot change.
type VPNEndpointGroupUpdateRequest struct {
	Group     *EndpointGroup
	PrevIndex uint64
}

// VPNSiteConnectionCreateRequest creates an IPsec site connection.
type VPNSiteConnectionCreateRequest struct{ Connection *IPsecSiteConnection }

// VPNSiteConnectionUpdateRequest replaces an IPsec site connection
// (compare-and-set); its service and status stay the state machine's.
type VPNSiteConnectionUpdateRequest struct {
	Connection *IPsecSiteConnection
	PrevIndex  uint64
}

// VPNDeleteRequest deletes a VPNaaS object by id (the command names the
// table).
type VPNDeleteRequest struct {
	ID string
}

// VPNStatusRequest is a chassis agent's report (CmdVPNStatus): the status
// of VPN services and connections by id. Only entries whose service's
// router has its active gateway on Chassis are applied, so a report from a
// chassis the router has left changes nothing.
type VPNStatusRequest struct {
	Chassis     string
	Services    map[string]string
	Connections map[string]string
	// UpdatedAt is the leader's clock (RFC 3339) for the changed objects'
	// updated_at.
	UpdatedAt string
}

func vpnSchemas() map[string]*memdb.TableSchema {
	id := func() *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}}
	}
	project := func() *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}}
	}
	field := func(name, f string) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: f}}
	}
	return map[string]*memdb.TableSchema{
		TableVPNIKEPolicies: {Name: TableVPNIKEPolicies, Indexes: map[string]*memdb.IndexSchema{
			"id": id(), "project": project()}},
		TableVPNIPsecPolicies: {Name: TableVPNIPsecPolicies, Indexes: map[string]*memdb.IndexSchema{
			"id": id(), "project": project()}},
		TableVPNServices: {Name: TableVPNServices, Indexes: map[string]*memdb.IndexSchema{
			"id": id(), "project": project(), "router": field("router", "RouterID")}},
		TableVPNEndpointGroups: {Name: TableVPNEndpointGroups, Indexes: map[string]*memdb.IndexSchema{
			"id": id(), "project": project(),
			"endpoint": {Name: "endpoint", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Endpoints"}}}},
		TableVPNSiteConnections: {Name: TableVPNSiteConnections, Indexes: map[string]*memdb.IndexSchema{
			"id": id(), "project": project(),
			"service":     field("service", "VPNServiceID"),
			"ikepolicy":   field("ikepolicy", "IKEPolicyID"),
			"ipsecpolicy": field("ipsecpolicy", "IPsecPolicyID"),
			"localep":     field("localep", "LocalEPGroupID"),
			"peerep":      field("peerep", "PeerEPGroupID"),
		}},
	}
}

// IKEPolicy returns the IKE policy with the id, or nil.
func (v *View) IKEPolicy(id string) *IKEPolicy {
	return first[*IKEPolicy](v.txn, TableVPNIKEPolicies, "id", id)
}

// IKEPolicies returns every IKE policy, ordered by id.
func (v *View) IKEPolicies() []*IKEPolicy {
	return all[*IKEPolicy](v.txn, TableVPNIKEPolicies, "id")
}

// IPsecPolicy returns the IPsec policy with the id, or nil.
func (v *View) IPsecPolicy(id string) *IPsecPolicy {
	return first[*IPsecPolicy](v.txn, TableVPNIPsecPolicies, "id", id)
}

// IPsecPolicies returns every IPsec policy, ordered by id.
func (v *View) IPsecPolicies() []*IPsecPolicy {
	return all[*IPsecPolicy](v.txn, TableVPNIPsecPolicies, "id")
}

// VPNService returns the VPN service with the id, or nil.
func (v *View) VPNService(id string) *VPNService {
	return first[*VPNService](v.txn, TableVPNServices, "id", id)
}

// VPNServices returns every VPN service, ordered by id.
func (v *View) VPNServices() []*VPNService {
	return all[*VPNService](v.txn, TableVPNServices, "id")
}

// VPNServicesOfRouter returns the VPN services on a router.
func (v *View) VPNServicesOfRouter(routerID string) []*VPNService {
	return all[*VPNService](v.txn, TableVPNServices, "router", routerID)
}

// EndpointGroup returns the endpoint group with the id, or nil.
func (v *View) EndpointGroup(id string) *EndpointGroup {
	return first[*EndpointGroup](v.txn, TableVPNEndpointGroups, "id", id)
}

// EndpointGroups returns every endpoint group, ordered by id.
func (v *View) EndpointGroups() []*EndpointGroup {
	return all[*EndpointGroup](v.txn, TableVPNEndpointGroups, "id")
}

// IPsecSiteConnection returns the connection with the id, or nil.
func (v *View) IPsecSiteConnection(id string) *IPsecSiteConnection {
	return first[*IPsecSiteConnection](v.txn, TableVPNSiteConnections, "id", id)
}

// IPsecSiteConnections returns every connection, ordered by id.
func (v *View) IPsecSiteConnections() []*IPsecSiteConnection {
	return all[*IPsecSiteConnection](v.txn, TableVPNSiteConnections, "id")
}

// IPsecSiteConnectionsOfService returns the connections of a VPN service.
func (v *View) IPsecSiteConnectionsOfService(serviceID string) []*IPsecSiteConnection {
	return all[*IPsecSiteConnection](v.txn, TableVPNSiteConnections, "service", serviceID)
}

// VPNServiceChassis is the chassis a VPN service's connections run on:
// the active gateway chassis of its router, or "".
func (v *View) VPNServiceChassis(serviceID string) string {
	s := v.VPNService(serviceID)
	if s == nil {
		return ""
	}
	return v.ActiveGatewayChassis(s.RouterID)
}

// newVPNObject returns a new zero object of a VPNaaS table, or nil.
func newVPNObject(table string) any {
	switch table {
	case TableVPNIKEPolicies:
		return new(IKEPolicy)
	case TableVPNIPsecPolicies:
		return new(IPsecPolicy)
	case TableVPNServices:
		return new(VPNService)
	case TableVPNEndpointGroups:
		return new(EndpointGroup)
	case TableVPNSiteConnections:
		return new(IPsecSiteConnection)
	}
	return nil
}
