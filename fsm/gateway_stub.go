package fsm

// Stubs until the MAC binding table lands (helper branch i6-fsm).

// MacBindingsOfNetwork returns the MAC bindings on a network.
func (v *View) MacBindingsOfNetwork(networkID string) []*MacBinding { return nil }
