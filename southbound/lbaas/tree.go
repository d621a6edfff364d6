package lbaas

import (
	"slices"

	"neutrino/fsm"
)

// FromTree is the Spec of a load balancer's tree: objects marked
// PENDING_DELETE are left out (the report that realizes their removal
// removes them from the state too).
func FromTree(lb *fsm.LoadBalancer, t fsm.LBTree) Spec {
	gone := func(status string) bool { return status == fsm.LBPendingDelete }
	s := Spec{ID: lb.ID, VIP: lb.VipAddress}
	monitors := map[string]*fsm.HealthMonitor{}
	for _, h := range t.HealthMonitors {
		if !gone(h.ProvisioningStatus) {
			monitors[h.PoolID] = h
		}
	}
	members := map[string][]Member{}
	for _, m := range t.Members {
		if gone(m.ProvisioningStatus) {
			continue
		}
		members[m.PoolID] = append(members[m.PoolID], Member{ID: m.ID, Address: m.Address, Port: m.ProtocolPort,
			Weight: m.Weight, AdminStateUp: m.AdminStateUp, Backup: m.Backup, MonitorAddress: m.MonitorAddress, MonitorPort: m.MonitorPort})
	}
	pools := map[string]bool{}
	for _, p := range t.Pools {
		if gone(p.ProvisioningStatus) {
			continue
		}
		pools[p.ID] = true
		pl := Pool{ID: p.ID, Protocol: p.Protocol, Algorithm: p.LBAlgorithm, AdminStateUp: p.AdminStateUp, Members: members[p.ID]}
		if sp := p.SessionPersistence; sp != nil && sp.Type != "" {
			pl.Persistence = &Persistence{Type: sp.Type, CookieName: sp.CookieName}
		}
		if h := monitors[p.ID]; h != nil {
			pl.Monitor = &Monitor{ID: h.ID, Type: h.Type, Delay: h.Delay, Timeout: h.Timeout, MaxRetries: h.MaxRetries,
				MaxRetriesDown: h.MaxRetriesDown, HTTPMethod: h.HTTPMethod, URLPath: h.URLPath, ExpectedCodes: h.ExpectedCodes,
				AdminStateUp: h.AdminStateUp}
		}
		s.Pools = append(s.Pools, pl)
	}
	rules := map[string][]Rule{}
	for _, r := range t.L7Rules {
		if gone(r.ProvisioningStatus) {
			continue
		}
		rules[r.L7PolicyID] = append(rules[r.L7PolicyID], Rule{ID: r.ID, Type: r.Type, CompareType: r.CompareType,
			Key: r.Key, Value: r.Value, Invert: r.Invert, AdminStateUp: r.AdminStateUp})
	}
	policies := map[string][]Policy{}
	for _, p := range t.L7Policies {
		if gone(p.ProvisioningStatus) {
			continue
		}
		redirect := p.RedirectPoolID
		if !pools[redirect] {
			redirect = ""
		}
		policies[p.ListenerID] = append(policies[p.ListenerID], Policy{ID: p.ID, Action: p.Action, Position: p.Position,
			RedirectPool: redirect, RedirectURL: p.RedirectURL, RedirectPrefix: p.RedirectPrefix,
			RedirectHTTPCode: p.RedirectHTTPCode, AdminStateUp: p.AdminStateUp, Rules: rules[p.ID]})
	}
	for _, l := range t.Listeners {
		if gone(l.ProvisioningStatus) {
			continue
		}
		def := l.DefaultPoolID
		if !pools[def] {
			def = ""
		}
		s.Listeners = append(s.Listeners, Listener{ID: l.ID, Protocol: l.Protocol, Port: l.ProtocolPort, DefaultPool: def,
			AdminStateUp: l.AdminStateUp && lb.AdminStateUp, ConnectionLimit: l.ConnectionLimit,
			TimeoutClientData: l.TimeoutClientData, TimeoutMemberConnect: l.TimeoutMemberConnect,
			TimeoutMemberData: l.TimeoutMemberData, TimeoutTCPInspect: l.TimeoutTCPInspect,
			InsertHeaders: l.InsertHeaders, Policies: policies[l.ID]})
	}
	slices.SortFunc(s.Listeners, func(a, b Listener) int { return a.Port - b.Port })
	return s
}

// MonitoredServers lists the pool/member pairs that have a health check,
// for the stats socket's `disable health` / `enable health`.
func MonitoredServers(s Spec) [][2]string {
	var out [][2]string
	for _, p := range s.Pools {
		if p.Monitor == nil || !p.Monitor.AdminStateUp {
			continue
		}
		for _, m := range p.Members {
			out = append(out, [2]string{p.ID, m.ID})
		}
	}
	return out
}
