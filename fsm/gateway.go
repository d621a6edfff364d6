package fsm

// Gateway chassis scheduling and MAC bindings (issue 6).
//
// A router with an external gateway has a priority list of gateway chassis
// (Router.GatewayChassis, committed state). Its active gateway is the
// chassis its gateway port (device_owner network:router_gateway) is bound
// to (Port.BindingHostID): the FSM binds it when the router gets its
// gateway, and moves it down the list when that chassis goes down, all at
// apply time so that every replica decides the same way.

// TableMacBindings holds the MAC addresses learned for IP addresses on
// external networks that are not Neutron ports (the upstream router).
const TableMacBindings = "mac_bindings"

// MacBinding is the MAC address an IP address on a network answered ARP
// (or ND) with, as learned by the leader from a chassis.
type MacBinding struct {
	NetworkID string
	IP        string
	MAC       string
	// UpdatedAt is when the leader last committed a change (RFC 3339).
	UpdatedAt string
	// ModifyIndex is the revision of the last change.
	ModifyIndex uint64
}

// ID is the binding's key: network id, "/", IP address.
func (m *MacBinding) ID() string { return m.NetworkID + "/" + m.IP }

// MacBindingSetRequest records learned MAC bindings at time At; unchanged
// bindings are left as they are.
type MacBindingSetRequest struct {
	Bindings []MacBinding
	At       string
}
