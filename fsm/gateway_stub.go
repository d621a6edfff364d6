package fsm

// Stubs until the MAC binding table lands (helper branch i6-fsm).

// MacBindingsOfNetwork returns the MAC bindings on a network.
func (v *View) MacBindingsOfNetwork(networkID string) []*MacBinding { return nil }

// MacBinding returns the MAC binding of an address on a network, or nil.
func (v *View) MacBinding(networkID, ip string) *MacBinding { return nil }

// CmdMacBindingSet records MAC bindings (MacBindingSetRequest).
const CmdMacBindingSet CommandType = 45
