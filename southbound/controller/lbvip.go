package controller

import "neutrino/fsm"

// Ports bound by the state machine, not by where they are plugged.
//
// A router gateway port and a load balancer's VIP port are placed by the
// FSM (fsm/gateway.go, fsm/lbaas_apply.go): its binding names the active
// chassis. A load balancer's VIP is plugged on its standby chassis too
// (a warm HAProxy with the same configuration), so iface-id claims from
// OVSDB must not move or clear such a binding, and a chassis that is not
// the active one must compile no flow for its plugged copy: with no
// classification flow for that ofport, its frames are dropped.

// scheduled reports whether the FSM, not OVSDB, decides where p is bound.
func scheduled(p *fsm.Port) bool {
	return p != nil && (p.DeviceOwner == fsm.DeviceOwnerRouterGateway || p.DeviceOwner == fsm.DeviceOwnerLBVIP)
}

// localBindings keeps, of the bindings a chassis shows, those it may carry:
// a scheduled port only on the chassis the FSM bound it to.
func localBindings(v *fsm.View, chassis string, shown map[string]uint32) map[string]uint32 {
	out := make(map[string]uint32, len(shown))
	for id, ofport := range shown {
		if p := v.Port(id); scheduled(p) && p.BindingHostID != chassis {
			continue
		}
		out[id] = ofport
	}
	return out
}
