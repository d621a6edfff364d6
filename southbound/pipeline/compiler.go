package pipeline

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// Compiler keeps one chassis' compiled flows and updates them
// incrementally. It is not safe for concurrent use.
type Compiler struct {
	v *fsm.View
	f Facts
	// prev is the view before the change, during an incremental Update.
	prev *fsm.View
	// routersTouched: the last Update recompiled a router unit.
	routersTouched bool
	// addKeys are the keys of the flows the last Update returned to add.
	addKeys []openflow.Key

	// Derived state, maintained incrementally.
	local         map[string]localPort         // ports plugged here, as compiled
	localNet      map[string]map[string]uint32 // network -> local port -> ofport
	sgLocal       map[string]int               // security group -> local ports in it
	netRouters    map[string]map[string]int    // network -> router -> interfaces
	routerNets    map[string]map[string]int    // router -> network -> interfaces
	ifaceOf       map[string]routerAttachment  // router interface port -> attachment
	presentNet    map[string]bool              // networks with flows here
	presentRouter map[string]bool              // routers routing here

	units map[unit][]openflow.Key // the keys of each unit's flows
	// ruleVer is the shared version (Shared) of each rule unit's flows
	// held, for a rule compiled from the shared cache.
	ruleVer map[string]uint64
	slots   map[openflow.Key]*slot

	stats Stats

	// shared caches what compilers of the same state derive alike; nil
	// computes everything here.
	shared *Shared
}

// localPort is a port plugged on this chassis, with what its presence
// counts were taken from.
type localPort struct {
	ofport uint32
	net    string
	sgs    []string
}

type routerAttachment struct{ router, net string }

// slot is one flow key and the units that produce a flow for it.
type slot struct {
	owners  []owned
	emitted *openflow.Flow // what the last delta said about this key
}

type owned struct {
	u unit
	f openflow.Flow
}

// Stats count a Compiler's work.
type Stats struct {
	// Full and Incremental count compiles of each kind.
	Full, Incremental int
	// Units is the number of units recompiled by the last compile.
	Units int
	// Flows is the size of the flow set.
	Flows int
	// Conflicts counts keys produced by two units with different actions
	// (e.g. two ports of a network with the same MAC); the unit that sorts
	// first wins.
	Conflicts int
}

// NewCompiler returns an empty compiler; its first Update compiles fully.
func NewCompiler() *Compiler {
	return &Compiler{units: map[unit][]openflow.Key{}, slots: map[openflow.Key]*slot{}, ruleVer: map[string]uint64{}}
}

// Stats returns the compiler's counters.
func (c *Compiler) Stats() Stats {
	s := c.stats
	s.Flows = len(c.slots)
	return s
}

// Flows returns the whole flow set, sorted by table, descending priority
// and key.
func (c *Compiler) Flows() []openflow.Flow {
	out, _ := c.FlowsKeyed()
	return out
}

// FlowsKeyed is Flows with each flow's key (keys[i] is flows[i].Key()),
// which the compiler already holds: a syncer given them need not compute
// them again for every flow of every chassis.
func (c *Compiler) FlowsKeyed() (flows []openflow.Flow, keys []openflow.Key) {
	out := make([]openflow.Flow, 0, len(c.slots))
	keys = make([]openflow.Key, 0, len(c.slots))
	for k := range c.slots {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b openflow.Key) int {
		// Key starts with the table and the big-endian priority.
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		if c := cmp.Compare(b[1:3], a[1:3]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for _, k := range keys {
		out = append(out, *c.slots[k].emitted)
	}
	return out, keys
}

// AddedKeys are the keys of the flows the last Update returned to add, in
// their order (AddedKeys()[i] is add[i].Key()).
func (c *Compiler) AddedKeys() []openflow.Key { return c.addKeys }

// Update brings the flow set to state v with facts f, given the changes
// since the state last compiled (fsm.FSM.ChangesSince). changes == nil, a
// first call, or changed tunnel ports compile fully. It returns the flows
// to add or replace and the keys to remove. The compiler keeps f: the
// caller passes fresh maps to every Update and does not change them.
func (c *Compiler) Update(v *fsm.View, changes []fsm.Change, f Facts) (add []openflow.Flow, remove []openflow.Key) {
	if c.v == nil || changes == nil || !maps.Equal(c.f.Tunnels, f.Tunnels) || !maps.Equal(c.f.Physnets, f.Physnets) || c.f.Chassis != f.Chassis {
		return c.full(v, f)
	}
	c.stats.Incremental++
	old, oldFacts := c.v, c.f
	c.v, c.f, c.prev = v, f, old
	defer func() { c.prev = nil }()
	d := newDirty()

	ports := map[string]bool{}
	for _, ch := range changes {
		switch ch.Table {
		case fsm.TablePorts:
			ports[ch.ID] = true
		case fsm.TableNetworks:
			for _, view := range []*fsm.View{old, v} {
				for _, p := range view.PortsOfNetwork(ch.ID) {
					ports[p.ID] = true
				}
			}
			d.units[unit{KindNetwork, ch.ID}] = true
			d.nets[ch.ID] = true
			for r := range c.netRouters[ch.ID] {
				d.units[unit{KindRouter, r}] = true
			}
			c.markGatewayRouters(d, old, v, ch.ID)
		case fsm.TableSubnets:
			for _, view := range []*fsm.View{old, v} {
				if s := view.Subnet(ch.ID); s != nil {
					// Local ports carry their network's DHCP and RA
					// services (dhcp.go).
					for _, p := range view.PortsOfNetwork(s.NetworkID) {
						if _, ok := c.local[p.ID]; ok {
							d.units[unit{KindPort, p.ID}] = true
						}
					}
					for r := range c.netRouters[s.NetworkID] {
						d.units[unit{KindRouter, r}] = true
					}
					c.markGatewayRouters(d, old, v, s.NetworkID)
				}
			}
		case fsm.TableFloatingIPs:
			for _, view := range []*fsm.View{old, v} {
				if f := view.FloatingIP(ch.ID); f != nil && f.RouterID != "" {
					d.units[unit{KindRouter, f.RouterID}] = true
				}
			}
		case fsm.TableMacBindings:
			if n, _, ok := strings.Cut(ch.ID, "/"); ok {
				d.units[unit{KindNetwork, n}] = true
			}
		case fsm.TableSecurityGroupRules:
			d.units[unit{KindRule, ch.ID}] = true
			for _, view := range []*fsm.View{old, v} {
				if r := view.SecurityGroupRule(ch.ID); r != nil {
					for _, p := range view.PortsOfSecurityGroup(r.SecurityGroupID) {
						if _, ok := c.local[p.ID]; ok {
							d.units[unit{KindPort, p.ID}] = true
						}
					}
				}
			}
		case fsm.TableRouters:
			d.units[unit{KindRouter, ch.ID}] = true
		case fsm.TableTrunks:
			trunkPortsOf([]*fsm.View{old, v}, func(view *fsm.View) *fsm.Trunk { return view.Trunk(ch.ID) }, ports)
		case fsm.TableFWGroups, fsm.TableFWPolicies, fsm.TableFWRules:
			c.firewallChanged(d, ch.Table, ch.ID)
		case fsm.TableQoSPolicies:
			// Policies are few and change rarely: every local port's
			// flows are recompiled rather than tracking who uses one.
			for id := range c.local {
				d.units[unit{KindPort, id}] = true
			}
		case fsm.TableChassis:
			for _, view := range []*fsm.View{old, v} {
				for _, p := range view.PortsOnChassis(ch.ID) {
					ports[p.ID] = true
				}
			}
		}
	}
	c.vpnChanged(d, changes, oldFacts, f)
	for id, n := range f.Bindings {
		if was, ok := oldFacts.Bindings[id]; !ok || was != n {
			ports[id] = true
		}
	}
	for id := range oldFacts.Bindings {
		if _, ok := f.Bindings[id]; !ok {
			ports[id] = true
		}
	}
	// A trunk parent's change (its binding, its admin state) moves its
	// subports' wires.
	for _, id := range slices.Collect(maps.Keys(ports)) {
		trunkPortsOf([]*fsm.View{old, v}, func(view *fsm.View) *fsm.Trunk { return view.TrunkOfParent(id) }, ports)
	}
	for id := range ports {
		c.portChanged(d, old.Port(id), v.Port(id), id)
	}
	c.propagate(d)
	return c.recompile(d.units)
}

// markGatewayRouters marks the routers with their gateway on network n
// (before or after the change).
func (c *Compiler) markGatewayRouters(d *dirty, old, v *fsm.View, n string) {
	for _, view := range []*fsm.View{old, v} {
		for _, r := range view.Routers() {
			if r.Gateway != nil && r.Gateway.NetworkID == n {
				d.units[unit{KindRouter, r.ID}] = true
			}
		}
	}
}

// dirty collects what an update touches.
type dirty struct {
	units   map[unit]bool
	nets    map[string]bool // presence candidates
	routers map[string]bool
	sgs     map[string]bool // local count crossed zero
	routed  map[string]bool // networks whose router attachment changed
}

func newDirty() *dirty {
	return &dirty{units: map[unit]bool{}, nets: map[string]bool{}, routers: map[string]bool{},
		sgs: map[string]bool{}, routed: map[string]bool{}}
}

// isLocal says whether port p is plugged here and carried.
func (c *Compiler) isLocal(p *fsm.Port) (localPort, bool) {
	if p == nil || !p.AdminStateUp || isRouterInterface(p) {
		return localPort{}, false
	}
	ofport := c.f.Bindings[p.ID]
	// The ofport is the port's conntrack zone: above MaxPortZone it would
	// meet the routers' SNAT zones, so such a port is not carried.
	if ofport == 0 || ofport > MaxPortZone || NetworkKey(c.v.Network(p.NetworkID)) == 0 {
		return localPort{}, false
	}
	// A subport is carried while its parent is (trunk.go).
	if _, sub := c.subportOf(p); !sub && c.v.TrunkOfSubport(p.ID) != nil {
		return localPort{}, false
	}
	return localPort{ofport: ofport, net: p.NetworkID, sgs: slices.Clone(p.SecurityGroups)}, true
}

func attachmentOf(p *fsm.Port) (routerAttachment, bool) {
	if p == nil || !isRouterInterface(p) || p.DeviceID == "" {
		return routerAttachment{}, false
	}
	return routerAttachment{router: p.DeviceID, net: p.NetworkID}, true
}

// portChanged records a port's change (op: before, np: after; either may
// be nil) in the derived state and marks what it touches.
func (c *Compiler) portChanged(d *dirty, op, np *fsm.Port, id string) {
	d.units[unit{KindPort, id}] = true
	// A remote-group rule expands to one flow per address of its group's
	// ports (remotePrefixes): recompiling it costs the group's size on
	// every chassis, so only a change of a port's groups or addresses does
	// (a binding or status commit does not).
	remote := op == nil || np == nil || !slices.Equal(op.SecurityGroups, np.SecurityGroups) ||
		!slices.Equal(op.FixedIPs, np.FixedIPs) || !slices.Equal(op.AllowedAddressPairs, np.AllowedAddressPairs)
	for _, p := range []*fsm.Port{op, np} {
		if p == nil {
			continue
		}
		d.units[unit{KindNetwork, p.NetworkID}] = true
		for _, sg := range p.SecurityGroups {
			if !remote {
				break
			}
			for _, r := range c.v.RulesWithRemoteGroup(sg) {
				d.units[unit{KindRule, r.ID}] = true
			}
		}
		if isRouterInterface(p) {
			d.units[unit{KindRouter, p.DeviceID}] = true
		}
		// A group is present where one of its interfaces is, or one of
		// its VM ports is plugged.
		c.markFirewallOfPort(d, p.ID)
		if p.DeviceOwner == fsm.DeviceOwnerRouterGateway && p.DeviceID != "" {
			// The active gateway may have moved: presence and flows.
			d.units[unit{KindRouter, p.DeviceID}] = true
			d.routers[p.DeviceID] = true
		}
	}
	// Where a floating IP is served depends on its port's binding.
	for _, view := range []*fsm.View{c.prev, c.v} {
		if view == nil {
			continue
		}
		for _, f := range view.FloatingIPsOfPort(id) {
			if f.RouterID != "" {
				d.units[unit{KindRouter, f.RouterID}] = true
			}
		}
	}
	// Local presence.
	was, wasLocal := c.local[id]
	now, isLocal := c.isLocal(np)
	if wasLocal != isLocal || was.ofport != now.ofport || was.net != now.net || !slices.Equal(was.sgs, now.sgs) {
		if wasLocal {
			c.count(d, id, was, -1)
			delete(c.local, id)
		}
		if isLocal {
			c.count(d, id, now, +1)
			c.local[id] = now
		}
	}
	// Router attachment.
	wa, wasAtt := c.ifaceOf[id]
	na, isAtt := attachmentOf(np)
	if wasAtt != isAtt || wa != na {
		if wasAtt {
			c.attach(d, wa, -1)
			delete(c.ifaceOf, id)
		}
		if isAtt {
			c.attach(d, na, +1)
			c.ifaceOf[id] = na
		}
	}
}

func (c *Compiler) count(d *dirty, id string, lp localPort, delta int) {
	before := len(c.localNet[lp.net])
	if delta > 0 {
		if c.localNet[lp.net] == nil {
			c.localNet[lp.net] = map[string]uint32{}
		}
		c.localNet[lp.net][id] = lp.ofport
	} else {
		delete(c.localNet[lp.net], id)
		if len(c.localNet[lp.net]) == 0 {
			delete(c.localNet, lp.net)
		}
	}
	if (before == 0) != (len(c.localNet[lp.net]) == 0) {
		d.nets[lp.net] = true
		for r := range c.netRouters[lp.net] {
			d.routers[r] = true
		}
	}
	d.units[unit{KindNetwork, lp.net}] = true
	for _, sg := range lp.sgs {
		before := c.sgLocal[sg]
		c.sgLocal[sg] += delta
		if c.sgLocal[sg] == 0 {
			delete(c.sgLocal, sg)
		}
		if (before == 0) != (c.sgLocal[sg] == 0) {
			d.sgs[sg] = true
		}
	}
}

func (c *Compiler) attach(d *dirty, a routerAttachment, delta int) {
	nr := c.netRouters[a.net]
	if nr == nil {
		nr = map[string]int{}
		c.netRouters[a.net] = nr
	}
	before := len(nr)
	nr[a.router] += delta
	if nr[a.router] == 0 {
		delete(nr, a.router)
	}
	if len(nr) == 0 {
		delete(c.netRouters, a.net)
	}
	if (before == 0) != (len(nr) == 0) {
		d.routed[a.net] = true
	}
	rn := c.routerNets[a.router]
	if rn == nil {
		rn = map[string]int{}
		c.routerNets[a.router] = rn
	}
	rn[a.net] += delta
	if rn[a.net] == 0 {
		delete(rn, a.net)
	}
	if len(rn) == 0 {
		delete(c.routerNets, a.router)
	}
	d.routers[a.router] = true
	d.nets[a.net] = true
	d.units[unit{KindRouter, a.router}] = true
}

// propagate recomputes the presence of the candidate routers and networks
// and marks the units whose presence changed.
func (c *Compiler) propagate(d *dirty) {
	for r := range d.routers {
		present := c.gwHere(r)
		for n := range c.routerNets[r] {
			if len(c.localNet[n]) > 0 {
				present = true
				break
			}
		}
		if present != c.presentRouter[r] {
			if present {
				c.presentRouter[r] = true
			} else {
				delete(c.presentRouter, r)
			}
			d.units[unit{KindRouter, r}] = true
		}
		for n := range c.routerNets[r] {
			d.nets[n] = true
		}
	}
	for n := range d.nets {
		present := c.netPresent(n)
		if present != c.presentNet[n] {
			if present {
				c.presentNet[n] = true
			} else {
				delete(c.presentNet, n)
			}
			d.routed[n] = true // every port of the network
			for r := range c.netRouters[n] {
				d.units[unit{KindRouter, r}] = true
			}
		}
	}
	for n, all := range d.routed {
		if !all {
			continue
		}
		d.units[unit{KindNetwork, n}] = true
		for _, p := range c.v.PortsOfNetwork(n) {
			d.units[unit{KindPort, p.ID}] = true
			if isRouterInterface(p) {
				// A group is present where one of its interfaces is.
				c.markFirewallOfPort(d, p.ID)
			}
		}
	}
	for sg := range d.sgs {
		for _, r := range c.v.RulesOfSecurityGroup(sg) {
			d.units[unit{KindRule, r.ID}] = true
		}
	}
}

func (c *Compiler) netPresent(n string) bool {
	if len(c.localNet[n]) > 0 {
		return true
	}
	for r := range c.netRouters[n] {
		if c.presentRouter[r] {
			return true
		}
	}
	return false
}

// full recompiles every unit from scratch and returns the difference from
// the previous flow set.
func (c *Compiler) full(v *fsm.View, f Facts) (add []openflow.Flow, remove []openflow.Key) {
	c.stats.Full++
	c.v, c.f = v, f
	c.local = map[string]localPort{}
	c.localNet = map[string]map[string]uint32{}
	c.sgLocal = map[string]int{}
	c.netRouters = map[string]map[string]int{}
	c.routerNets = map[string]map[string]int{}
	c.ifaceOf = map[string]routerAttachment{}
	c.presentNet = map[string]bool{}
	c.presentRouter = map[string]bool{}
	d := newDirty()
	for id := range f.Bindings {
		if p := v.Port(id); p != nil {
			if lp, ok := c.isLocal(p); ok {
				c.local[id] = lp
				c.count(d, id, lp, +1)
			}
		}
	}
	for _, r := range v.Routers() {
		for _, p := range v.PortsOfDevice(r.ID) {
			if a, ok := attachmentOf(p); ok {
				c.ifaceOf[p.ID] = a
				c.attach(d, a, +1)
			}
		}
	}
	for r := range c.routerNets {
		for n := range c.routerNets[r] {
			if len(c.localNet[n]) > 0 {
				c.presentRouter[r] = true
			}
		}
	}
	for _, r := range v.Routers() {
		if r.Gateway != nil && c.gwHere(r.ID) {
			c.presentRouter[r.ID] = true
		}
	}
	all := map[unit]bool{pipelineUnit: true}
	for n := range c.localNet {
		all[unit{KindNetwork, n}] = true
	}
	for _, n := range v.Networks() {
		if _, ok := c.localnetOf(n); ok {
			all[unit{KindNetwork, n.ID}] = true
		}
		if c.netPresent(n.ID) {
			c.presentNet[n.ID] = true
			all[unit{KindNetwork, n.ID}] = true
			for _, p := range v.PortsOfNetwork(n.ID) {
				all[unit{KindPort, p.ID}] = true
			}
		}
	}
	for sg := range c.sgLocal {
		for _, r := range v.RulesOfSecurityGroup(sg) {
			all[unit{KindRule, r.ID}] = true
		}
	}
	for r := range c.presentRouter {
		all[unit{KindRouter, r}] = true
	}
	for _, g := range v.FirewallGroups() {
		if router, vm := c.firewallGroupPresent(g); router || vm {
			all[unit{KindFirewall, g.ID}] = true
		}
	}
	// Units that had flows and are not in the new set are emptied.
	for u := range c.units {
		all[u] = true
	}
	return c.recompile(all)
}

// recompile replaces the flows of the given units and returns the delta of
// the merged flow set.
func (c *Compiler) recompile(units map[unit]bool) (add []openflow.Flow, remove []openflow.Key) {
	c.stats.Units = len(units)
	c.routersTouched = false
	for u := range units {
		if u.kind == KindRouter {
			c.routersTouched = true
			break
		}
	}
	touched := make(map[openflow.Key]bool, 8*len(units))
	for u := range units {
		var flows []openflow.Flow
		var keys []openflow.Key
		if u.kind == KindRule {
			e := c.ruleEntry(u.id)
			if e != nil && e.from != 0 && c.ruleVer[u.id] == e.from {
				c.applyRuleChange(u, e, touched)
				continue
			}
			if e != nil && e.ver != 0 {
				c.ruleVer[u.id] = e.ver
			} else {
				delete(c.ruleVer, u.id)
			}
			if e != nil {
				flows, keys = e.flows, e.keys
			}
		}
		for _, k := range c.units[u] {
			touched[k] = true
			s := c.slots[k]
			s.owners = slices.DeleteFunc(s.owners, func(o owned) bool { return o.u == u })
		}
		if u.kind != KindRule {
			flows = c.compileUnit(u)
		}
		if len(flows) == 0 {
			delete(c.units, u)
		}
		if keys == nil {
			keys = make([]openflow.Key, len(flows))
			for i := range flows {
				keys[i] = flows[i].Key()
			}
		}
		for i, f := range flows {
			c.own(keys[i], u, f, touched)
		}
		if len(keys) > 0 {
			c.units[u] = keys
		}
	}
	add = make([]openflow.Flow, 0, len(touched))
	addKeys := make([]openflow.Key, 0, len(touched))
	for k := range touched {
		s := c.slots[k]
		if len(s.owners) == 0 {
			if s.emitted != nil {
				remove = append(remove, k)
			}
			delete(c.slots, k)
			continue
		}
		m := c.merge(s)
		if s.emitted == nil || s.emitted.Cookie != m.Cookie || !s.emitted.SameActions(&m) {
			s.emitted = &m
			add = append(add, m)
			addKeys = append(addKeys, k)
		}
	}
	c.addKeys = addKeys
	return add, remove
}

// own adds unit u's flow f to the slot of key k, marking k touched.
func (c *Compiler) own(k openflow.Key, u unit, f openflow.Flow, touched map[openflow.Key]bool) {
	touched[k] = true
	s := c.slots[k]
	if s == nil {
		s = &slot{}
		c.slots[k] = s
	}
	s.owners = append(s.owners, owned{u: u, f: f})
}

// applyRuleChange brings a rule unit from the shared version this
// compiler holds (e.from) to e by the change between them: only the flows
// added and the keys gone are touched, not every flow of the rule.
func (c *Compiler) applyRuleChange(u unit, e *sharedRule, touched map[openflow.Key]bool) {
	for _, k := range e.gone {
		touched[k] = true
		s := c.slots[k]
		s.owners = slices.DeleteFunc(s.owners, func(o owned) bool { return o.u == u })
	}
	for _, i := range e.added {
		c.own(e.keys[i], u, e.flows[i], touched)
	}
	if len(e.keys) > 0 {
		c.units[u] = e.keys
	} else {
		delete(c.units, u)
	}
	c.ruleVer[u.id] = e.ver
}

// merge combines the flows several units produce for one key: conjunction
// clauses are unioned; otherwise the unit that sorts first wins.
func (c *Compiler) merge(s *slot) openflow.Flow {
	if len(s.owners) == 1 {
		return s.owners[0].f
	}
	slices.SortFunc(s.owners, func(a, b owned) int {
		return cmp.Or(cmp.Compare(a.u.kind, b.u.kind), cmp.Compare(a.u.id, b.u.id))
	})
	first := s.owners[0].f
	var conj []openflow.Action
	for _, o := range s.owners {
		for _, a := range o.f.Actions {
			if _, ok := a.(openflow.Conjunction); !ok {
				c.stats.Conflicts++
				return first
			}
			conj = append(conj, a)
		}
	}
	first.Actions = sortConj(conj)
	return first
}

// RoutersTouched reports whether the last Update recompiled a router's
// unit. What a chassis serves on external networks (Announcements) can
// only change when one was.
func (c *Compiler) RoutersTouched() bool { return c.routersTouched }

// IsLocal reports whether the port has flows as plugged on this chassis.
func (c *Compiler) IsLocal(portID string) bool {
	_, ok := c.local[portID]
	return ok
}

// Diff describes how two flow sets differ ("" when they are equal): the
// first few flows only one of them has, or that differ in actions or
// cookie.
func Diff(got, want []openflow.Flow) string {
	index := func(fs []openflow.Flow) map[openflow.Key]openflow.Flow {
		m := make(map[openflow.Key]openflow.Flow, len(fs))
		for _, f := range fs {
			m[f.Key()] = f
		}
		return m
	}
	g, w := index(got), index(want)
	var lines []string
	for k, wf := range w {
		gf, ok := g[k]
		switch {
		case !ok:
			lines = append(lines, "missing: "+wf.String())
		case gf.Cookie != wf.Cookie || !gf.SameActions(&wf):
			lines = append(lines, "got:     "+gf.String()+"\n  want:    "+wf.String())
		}
	}
	for k, gf := range g {
		if _, ok := w[k]; !ok {
			lines = append(lines, "extra:   "+gf.String())
		}
	}
	if len(lines) == 0 {
		return ""
	}
	slices.Sort(lines)
	n := len(lines)
	if n > 10 {
		lines = append(lines[:10], fmt.Sprintf("... and %d more", n-10))
	}
	return fmt.Sprintf("%d differences:\n  %s", n, strings.Join(lines, "\n  "))
}
