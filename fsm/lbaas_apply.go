package fsm

import (
	"cmp"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Octavia error types (the API renders them as Octavia's faultstring).
const (
	ErrTypeLBNotFound        = "NotFound"
	ErrTypeLBImmutable       = "ImmutableObject"
	ErrTypeLBValidation      = "ValidationException"
	ErrTypeLBDuplicate       = "Duplicate"
	ErrTypeLBInUse           = "InUse"
	ErrTypeLBStaleStatus     = "StaleStatus"
	ErrTypeLBStatusUnchanged = "StatusUnchanged"
)

// lbResource names each table's objects as Octavia's messages do.
var lbResource = map[string]string{
	TableLBLoadBalancers:  "Load Balancer",
	TableLBListeners:      "Listener",
	TableLBPools:          "Pool",
	TableLBMembers:        "Member",
	TableLBHealthMonitors: "Health Monitor",
	TableLBL7Policies:     "L7 Policy",
	TableLBL7Rules:        "L7 Rule",
}

// LBNotFound is Octavia's 404 for an object of an LBaaS table.
func LBNotFound(table, id string) *Error {
	return Errorf(CodeNotFound, ErrTypeLBNotFound, "%s %s not found.", lbResource[table], id)
}

// LBImmutable is Octavia's 409 for a write while the load balancer is busy.
func LBImmutable(id string) *Error {
	return Errorf(CodeConflict, ErrTypeLBImmutable, "Load Balancer %s is immutable and cannot be updated.", id)
}

// lbObject is the part every object of an LBaaS table shares.
type lbObject interface {
	Object
	lbStatus() (*string, *string)
	lbID() string
}

func (l *LoadBalancer) lbStatus() (*string, *string) {
	return &l.ProvisioningStatus, &l.OperatingStatus
}
func (l *LoadBalancer) lbID() string             { return l.ID }
func (l *Listener) lbStatus() (*string, *string) { return &l.ProvisioningStatus, &l.OperatingStatus }
func (l *Listener) lbID() string                 { return l.LoadBalancerID }
func (p *Pool) lbStatus() (*string, *string)     { return &p.ProvisioningStatus, &p.OperatingStatus }
func (p *Pool) lbID() string                     { return p.LoadBalancerID }
func (m *Member) lbStatus() (*string, *string)   { return &m.ProvisioningStatus, &m.OperatingStatus }
func (m *Member) lbID() string                   { return m.LoadBalancerID }
func (h *HealthMonitor) lbStatus() (*string, *string) {
	return &h.ProvisioningStatus, &h.OperatingStatus
}
func (h *HealthMonitor) lbID() string            { return h.LoadBalancerID }
func (p *L7Policy) lbStatus() (*string, *string) { return &p.ProvisioningStatus, &p.OperatingStatus }
func (p *L7Policy) lbID() string                 { return p.LoadBalancerID }
func (r *L7Rule) lbStatus() (*string, *string)   { return &r.ProvisioningStatus, &r.OperatingStatus }
func (r *L7Rule) lbID() string                   { return r.LoadBalancerID }

// copyLBObject returns a deep copy of any LBaaS object.
func copyLBObject(o lbObject) lbObject {
	switch x := o.(type) {
	case *LoadBalancer:
		return x.Copy()
	case *Listener:
		return x.Copy()
	case *Pool:
		return x.Copy()
	case *Member:
		return x.Copy()
	case *HealthMonitor:
		return x.Copy()
	case *L7Policy:
		return x.Copy()
	case *L7Rule:
		return x.Copy()
	}
	panic("fsm: not an LBaaS object")
}

// lbTableOf is the table of an LBaaS object.
func lbTableOf(o lbObject) string {
	switch o.(type) {
	case *LoadBalancer:
		return TableLBLoadBalancers
	case *Listener:
		return TableLBListeners
	case *Pool:
		return TableLBPools
	case *Member:
		return TableLBMembers
	case *HealthMonitor:
		return TableLBHealthMonitors
	case *L7Policy:
		return TableLBL7Policies
	case *L7Rule:
		return TableLBL7Rules
	}
	panic("fsm: not an LBaaS object")
}

// objects lists the tree's objects, parents' tables first.
func (t *LBTree) objects() []lbObject {
	var out []lbObject
	for _, x := range t.Listeners {
		out = append(out, x)
	}
	for _, x := range t.Pools {
		out = append(out, x)
	}
	// Monitors before members: a member starts OFFLINE, not NO_MONITOR,
	// in a pool that gets a monitor in the same command.
	for _, x := range t.HealthMonitors {
		out = append(out, x)
	}
	for _, x := range t.Members {
		out = append(out, x)
	}
	for _, x := range t.L7Policies {
		out = append(out, x)
	}
	for _, x := range t.L7Rules {
		out = append(out, x)
	}
	return out
}

// lbObjectByID finds an object of a load balancer's tree in any table.
func (v *View) lbObjectByID(table, id string) lbObject {
	if raw := v.Object(table, id); raw != nil {
		return raw.(lbObject)
	}
	return nil
}

// LBLoad is the number of load balancers active on the chassis.
func (v *View) LBLoad(name string) int {
	return len(all[*LoadBalancer](v.txn, TableLBLoadBalancers, "chassis", name))
}

// LBCandidates returns the usable gateway chassis for a load balancer,
// best first: by load (load balancers active there), then name.
func (v *View) LBCandidates() []string {
	type cand struct {
		name string
		load int
	}
	var cs []cand
	for _, c := range v.ChassisList() {
		if c.Up && c.IsGateway() {
			cs = append(cs, cand{c.Name, v.LBLoad(c.Name)})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if d := cmp.Compare(a.load, b.load); d != 0 {
			return d
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}

// scheduleLB returns a new gateway chassis list for a load balancer.
func (v *View) scheduleLB() []string {
	c := v.LBCandidates()
	if len(c) > LBGatewayChassisCount {
		c = c[:LBGatewayChassisCount]
	}
	return c
}

// lbFallback appends the best candidate not in the list (dropping the
// last entry when the list is full); it returns the list and the
// candidate, or the list unchanged and "".
func (v *View) lbFallback(list []string) ([]string, string) {
	for _, c := range v.LBCandidates() {
		if slices.Contains(list, c) {
			continue
		}
		out := slices.Clone(list)
		if len(out) >= MaxGatewayChassis {
			out = out[:MaxGatewayChassis-1]
		}
		return append(out, c), c
	}
	return list, ""
}

// placeLB decides the active chassis of a load balancer from its list
// (scheduling one when empty), preferring keep when it is usable; failed,
// when set, is the chassis it leaves.
func (v *View) placeLB(list []string, keep, failed string) ([]string, string) {
	list = slices.DeleteFunc(slices.Clone(list), func(n string) bool { return v.Chassis(n) == nil })
	if keep != "" && slices.Contains(list, keep) && v.GatewayUsable(keep) {
		return list, keep
	}
	target := ""
	if failed != "" {
		target = v.nextUsableAfter(list, failed)
	}
	if target == "" {
		if len(list) == 0 {
			list = v.scheduleLB()
		}
		target = v.firstUsable(list)
	}
	if target == "" {
		list, target = v.lbFallback(list)
	}
	return slices.Clip(list), target
}

// setLBPlacement stores where a load balancer runs and binds its VIP port
// there. A load balancer left without a chassis goes to ERROR (a pending
// delete completes instead: no agent is left to report); one that gets a
// chassis back from ERROR "no gateway chassis" is placed again
// (PENDING_UPDATE, new ConfigRevision).
func setLBPlacement(txn *memdb.Txn, lb *LoadBalancer, list []string, target, at string, index uint64) {
	v := View{txn: txn}
	lb.GatewayChassis, lb.ActiveChassis = list, target
	switch {
	case target == "" && lb.ProvisioningStatus == LBPendingDelete:
		removeLBTree(txn, lb, index)
		return
	case target == "":
		lb.ProvisioningStatus, lb.StatusReason = LBError, LBStatusNoGateway
	case lb.ProvisioningStatus == LBError && lb.StatusReason == LBStatusNoGateway:
		lb.ProvisioningStatus, lb.StatusReason, lb.ConfigRevision = LBPendingUpdate, "", index
	}
	lb.UpdatedAt = cmp.Or(at, lb.UpdatedAt)
	lb.ModifyIndex = index
	insert(txn, TableLBLoadBalancers, lb, index)
	if p := v.Port(lb.VipPortID); p != nil {
		rebindGatewayPort(txn, p, target, at, index)
	}
}

// reconcileLoadBalancers moves load balancers off chassis that are no
// longer usable and places those without one, after a chassis change.
func reconcileLoadBalancers(txn *memdb.Txn, at string, index uint64) {
	v := View{txn: txn}
	for _, cur := range v.LoadBalancers() {
		failed := ""
		if cur.ActiveChassis != "" && !v.GatewayUsable(cur.ActiveChassis) {
			failed = cur.ActiveChassis
		}
		list, target := v.placeLB(cur.GatewayChassis, cur.ActiveChassis, failed)
		if failed != "" && target == "" {
			// The failed chassis may have just left the list.
			target = v.nextUsableAfter(cur.GatewayChassis, failed)
		}
		if slices.Equal(list, cur.GatewayChassis) && target == cur.ActiveChassis {
			continue
		}
		setLBPlacement(txn, cur.Copy(), list, target, at, index)
	}
}

// removeLBTree removes a load balancer, its whole tree and its VIP port (an
// adopted port is kept, released).
func removeLBTree(txn *memdb.Txn, lb *LoadBalancer, index uint64) {
	v := View{txn: txn}
	tree := v.LBTreeOf(lb.ID)
	for _, o := range tree.objects() {
		remove(txn, lbTableOf(o), o, index)
	}
	if p := v.Port(lb.VipPortID); p != nil && p.DeviceID == LBVIPDeviceID(lb.ID) {
		if lb.VipPortAdopted {
			c := p.Copy()
			c.DeviceID, c.DeviceOwner = "", ""
			setGatewayBinding(c, "")
			c.RevisionNumber++
			c.ModifyIndex = index
			insert(txn, TablePorts, c, index)
		} else {
			disassociatePort(txn, p.ID, index)
			remove(txn, TablePorts, p, index)
		}
	}
	remove(txn, TableLBLoadBalancers, v.LoadBalancer(lb.ID), index)
}

// lbWritable checks that a load balancer exists and accepts writes: an
// update needs it ACTIVE, a delete ACTIVE or ERROR (Octavia's mutable and
// deletable statuses).
func (v *View) lbWritable(id string, del bool) (*LoadBalancer, error) {
	lb := v.LoadBalancer(id)
	if lb == nil {
		return nil, LBNotFound(TableLBLoadBalancers, id)
	}
	if lb.ProvisioningStatus == LBActive || (del && lb.ProvisioningStatus == LBError) {
		return lb, nil
	}
	return nil, LBImmutable(id)
}

func applyLBCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req LBCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	lb := req.LoadBalancer
	if v.LoadBalancer(lb.ID) != nil {
		return Errorf(CodeConflict, ErrTypeLBDuplicate, "Load Balancer %s already exists.", lb.ID)
	}
	p := req.VipPort
	cur := v.Port(p.ID)
	switch {
	case req.VipPortPrevIndex == 0 && cur != nil:
		return Errorf(CodeConflict, ErrTypeLBDuplicate, "Port %s already exists.", p.ID)
	case req.VipPortPrevIndex != 0 && cur == nil:
		return Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: port %s not found.", p.ID)
	case req.VipPortPrevIndex != 0 && cur.ModifyIndex != req.VipPortPrevIndex:
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "port %s changed concurrently", p.ID)
	case cur != nil && cur.DeviceID != "" && cur.DeviceID != LBVIPDeviceID(lb.ID):
		return Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: port %s is in use by %s.", p.ID, cur.DeviceID)
	}
	if err := v.CheckPort(p); err != nil {
		return err
	}
	list, target := v.placeLB(nil, "", "")
	lb.GatewayChassis, lb.ActiveChassis = list, target
	lb.ProvisioningStatus, lb.OperatingStatus, lb.StatusReason = LBPendingCreate, LBOffline, ""
	if target == "" {
		lb.ProvisioningStatus, lb.StatusReason = LBError, LBStatusNoGateway
	}
	lb.ConfigRevision, lb.CreateIndex, lb.ModifyIndex = index, index, index
	lb.VipPortID, lb.VipPortAdopted = p.ID, req.VipPortPrevIndex != 0
	insert(txn, TableLBLoadBalancers, lb, index)
	setGatewayBinding(p, target)
	if cur != nil {
		p.CreateIndex = cur.CreateIndex
	} else {
		p.CreateIndex = index
	}
	p.ModifyIndex = index
	insert(txn, TablePorts, p, index)
	touched, err := putLBTree(txn, lb, req.Tree, nil, true, req.At, index)
	if err != nil {
		return err
	}
	return checkLBTree(txn, lb.ID, touched, index)
}

func applyLBUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req LBUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur, err := v.lbWritable(req.LoadBalancer.ID, false)
	if err != nil {
		return err
	}
	if cur.ModifyIndex != req.PrevIndex {
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "load balancer %s changed concurrently", cur.ID)
	}
	lb := cur.Copy()
	n := req.LoadBalancer
	lb.Name, lb.Description, lb.Tags, lb.AdminStateUp = n.Name, n.Description, n.Tags, n.AdminStateUp
	lb.ProvisioningStatus, lb.ConfigRevision, lb.ModifyIndex = LBPendingUpdate, index, index
	lb.UpdatedAt = cmp.Or(req.At, lb.UpdatedAt)
	insert(txn, TableLBLoadBalancers, lb, index)
	return nil
}

func applyLBDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req LBDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur, err := v.lbWritable(req.ID, true)
	if err != nil {
		return err
	}
	tree := v.LBTreeOf(cur.ID)
	if !req.Cascade && !tree.Empty() {
		return Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: Cannot delete Load Balancer %s - it has children", cur.ID)
	}
	if cur.ActiveChassis == "" || !v.GatewayUsable(cur.ActiveChassis) {
		// Nobody runs it: nothing to wait for.
		removeLBTree(txn, cur, index)
		return nil
	}
	for _, o := range tree.objects() {
		markLB(txn, o, LBPendingDelete, req.At, index)
	}
	lb := cur.Copy()
	lb.ProvisioningStatus, lb.ConfigRevision, lb.ModifyIndex = LBPendingDelete, index, index
	lb.UpdatedAt = cmp.Or(req.At, lb.UpdatedAt)
	insert(txn, TableLBLoadBalancers, lb, index)
	return nil
}

func applyLBDeleteExpire(txn *memdb.Txn, body []byte, index uint64) error {
	var req LBDeleteExpireRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	lb := v.LoadBalancer(req.ID)
	if lb == nil {
		return LBNotFound(TableLBLoadBalancers, req.ID)
	}
	if lb.ProvisioningStatus != LBPendingDelete || lb.ConfigRevision != req.ConfigRevision {
		return Errorf(CodeConflict, ErrTypeLBStaleStatus, "Load Balancer %s is no longer waiting for deletion at revision %d", lb.ID, req.ConfigRevision)
	}
	removeLBTree(txn, lb, index)
	return nil
}

func applyLBFailover(txn *memdb.Txn, body []byte, index uint64) error {
	var req LBFailoverRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur, err := v.lbWritable(req.ID, true)
	if err != nil {
		return err
	}
	list, target := v.placeLB(cur.GatewayChassis, "", cmp.Or(cur.ActiveChassis, "\x00"))
	if target == "" && v.GatewayUsable(cur.ActiveChassis) {
		target = cur.ActiveChassis
	}
	lb := cur.Copy()
	lb.ProvisioningStatus, lb.StatusReason, lb.ConfigRevision = LBPendingUpdate, "", index
	setLBPlacement(txn, lb, list, target, req.At, index)
	return nil
}

// markLB stores a changed version of a child with a provisioning status.
func markLB(txn *memdb.Txn, o lbObject, status, at string, index uint64) {
	c := copyLBObject(o)
	ps, _ := c.lbStatus()
	*ps = status
	m := c.GetMeta()
	m.ModifyIndex = index
	m.UpdatedAt = cmp.Or(at, m.UpdatedAt)
	insert(txn, lbTableOf(c), c, index)
}

// putLBTree inserts created (create) or updated objects of one load
// balancer's tree in a pending status and returns them.
func putLBTree(txn *memdb.Txn, lb *LoadBalancer, t LBTree, prev map[string]uint64, create bool, at string, index uint64) ([]lbObject, error) {
	v := View{txn: txn}
	var out []lbObject
	for _, o := range t.objects() {
		table := lbTableOf(o)
		m := o.GetMeta()
		if o.lbID() != lb.ID {
			return nil, Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: %s %s is not on load balancer %s.", lbResource[table], m.ID, lb.ID)
		}
		cur := v.lbObjectByID(table, m.ID)
		ps, os := o.lbStatus()
		if create {
			if cur != nil {
				return nil, Errorf(CodeConflict, ErrTypeLBDuplicate, "%s %s already exists.", lbResource[table], m.ID)
			}
			*ps, *os = LBPendingCreate, LBOffline
			if mb, ok := o.(*Member); ok {
				*os = LBNoMonitor
				if len(all[*HealthMonitor](txn, TableLBHealthMonitors, "pool", mb.PoolID)) > 0 {
					*os = LBOffline
				}
			}
			if _, ok := o.(*HealthMonitor); ok {
				*os = LBOnline
			}
			m.CreateIndex = index
		} else {
			if cur == nil {
				return nil, LBNotFound(table, m.ID)
			}
			if cur.lbID() != lb.ID {
				return nil, Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: %s %s is not on load balancer %s.", lbResource[table], m.ID, lb.ID)
			}
			if cur.GetMeta().ModifyIndex != prev[m.ID] {
				return nil, Errorf(CodeConflict, ErrTypeStaleUpdate, "%s %s changed concurrently", lbResource[table], m.ID)
			}
			cps, cos := cur.lbStatus()
			if *cps == LBPendingDelete {
				return nil, LBImmutable(lb.ID)
			}
			*ps, *os = LBPendingUpdate, *cos
			m.CreateIndex, m.CreatedAt = cur.GetMeta().CreateIndex, cur.GetMeta().CreatedAt
		}
		m.ModifyIndex = index
		m.UpdatedAt = cmp.Or(at, m.UpdatedAt)
		insert(txn, table, o, index)
		out = append(out, o)
	}
	return out, nil
}

// markLBDelete puts an object and its descendants in PENDING_DELETE; a
// pool that is a listener's default pool is unset there.
func markLBDelete(txn *memdb.Txn, ref LBRef, lbID, at string, index uint64) error {
	v := View{txn: txn}
	o := v.lbObjectByID(ref.Table, ref.ID)
	if o == nil || ref.Table == TableLBLoadBalancers {
		return LBNotFound(ref.Table, ref.ID)
	}
	if o.lbID() != lbID {
		return Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: %s %s is not on load balancer %s.", lbResource[ref.Table], ref.ID, lbID)
	}
	var sub []lbObject
	switch x := o.(type) {
	case *Listener:
		for _, p := range v.L7PoliciesOfListener(x.ID) {
			sub = append(sub, p)
			for _, r := range v.L7RulesOfPolicy(p.ID) {
				sub = append(sub, r)
			}
		}
	case *Pool:
		for _, p := range v.L7PoliciesOfLB(lbID) {
			if p.RedirectPoolID == x.ID && p.ProvisioningStatus != LBPendingDelete {
				return Errorf(CodeConflict, ErrTypeLBInUse, "Pool %s is in use by L7 policy %s", x.ID, p.ID)
			}
		}
		for _, m := range v.MembersOfPool(x.ID) {
			sub = append(sub, m)
		}
		for _, h := range all[*HealthMonitor](txn, TableLBHealthMonitors, "pool", x.ID) {
			sub = append(sub, h)
		}
		for _, l := range v.ListenersOfLB(lbID) {
			if l.DefaultPoolID == x.ID {
				c := l.Copy()
				c.DefaultPoolID = ""
				if c.ProvisioningStatus != LBPendingDelete {
					c.ProvisioningStatus = LBPendingUpdate
				}
				c.ModifyIndex = index
				insert(txn, TableLBListeners, c, index)
			}
		}
	case *L7Policy:
		for _, r := range v.L7RulesOfPolicy(x.ID) {
			sub = append(sub, r)
		}
	}
	for _, s := range append([]lbObject{o}, sub...) {
		markLB(txn, s, LBPendingDelete, at, index)
	}
	return nil
}

func applyLBTreeChange(txn *memdb.Txn, body []byte, index uint64) error {
	var req LBTreeChangeRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur, err := v.lbWritable(req.LoadBalancerID, false)
	if err != nil {
		return err
	}
	created, err := putLBTree(txn, cur, req.Create, nil, true, req.At, index)
	if err != nil {
		return err
	}
	updated, err := putLBTree(txn, cur, req.Update, req.PrevIndex, false, req.At, index)
	if err != nil {
		return err
	}
	for _, ref := range req.Delete {
		if err := markLBDelete(txn, ref, cur.ID, req.At, index); err != nil {
			return err
		}
	}
	lb := cur.Copy()
	lb.ProvisioningStatus, lb.ConfigRevision, lb.ModifyIndex = LBPendingUpdate, index, index
	lb.UpdatedAt = cmp.Or(req.At, lb.UpdatedAt)
	insert(txn, TableLBLoadBalancers, lb, index)
	return checkLBTree(txn, lb.ID, append(created, updated...), index)
}

// lbListenerPoolProtocols is Octavia's map of the pool protocols each
// listener protocol may use.
var lbListenerPoolProtocols = map[string][]string{
	LBProtocolTCP:   {LBProtocolHTTP, LBProtocolHTTPS, LBProtocolPROXY, LBProtocolTCP},
	LBProtocolHTTP:  {LBProtocolHTTP, LBProtocolPROXY},
	LBProtocolHTTPS: {LBProtocolHTTPS, LBProtocolPROXY, LBProtocolTCP},
	LBProtocolUDP:   {LBProtocolUDP},
}

// livePool is a pool of the load balancer that is not being deleted.
func (v *View) livePool(lbID, id string) *Pool {
	p := v.LBPool(id)
	if p == nil || p.LoadBalancerID != lbID || p.ProvisioningStatus == LBPendingDelete {
		return nil
	}
	return p
}

// checkLBTree validates the written objects against the tree they are now
// part of (references inside the load balancer, uniqueness) and derives
// what other objects show of them: pools' listeners and health monitor,
// L7 policies' positions.
func checkLBTree(txn *memdb.Txn, lbID string, written []lbObject, index uint64) error {
	v := View{txn: txn}
	for _, o := range written {
		switch x := o.(type) {
		case *Listener:
			for _, l := range v.ListenersOfLB(lbID) {
				if l.ID != x.ID && l.ProtocolPort == x.ProtocolPort && l.ProvisioningStatus != LBPendingDelete &&
					(l.Protocol == LBProtocolUDP) == (x.Protocol == LBProtocolUDP) {
					return Errorf(CodeConflict, ErrTypeLBDuplicate,
						"Another Listener on this Load Balancer is already using protocol %s and protocol_port %d", l.Protocol, x.ProtocolPort)
				}
			}
			if x.DefaultPoolID != "" {
				p := v.livePool(lbID, x.DefaultPoolID)
				if p == nil {
					return Errorf(CodeNotFound, ErrTypeLBNotFound, "Pool %s not found.", x.DefaultPoolID)
				}
				if !slices.Contains(lbListenerPoolProtocols[x.Protocol], p.Protocol) {
					return Errorf(CodeBadRequest, ErrTypeLBValidation,
						"Validation failure: The pool protocol '%s' is invalid while the listener protocol is '%s'.", p.Protocol, x.Protocol)
				}
			}
		case *Member:
			if v.livePool(lbID, x.PoolID) == nil {
				return LBNotFound(TableLBPools, x.PoolID)
			}
			for _, m := range v.MembersOfPool(x.PoolID) {
				if m.ID != x.ID && m.Address == x.Address && m.ProtocolPort == x.ProtocolPort && m.ProvisioningStatus != LBPendingDelete {
					return Errorf(CodeConflict, ErrTypeLBDuplicate,
						"Another member on this pool is already using ip %s on protocol_port %d", x.Address, x.ProtocolPort)
				}
			}
		case *HealthMonitor:
			if v.livePool(lbID, x.PoolID) == nil {
				return LBNotFound(TableLBPools, x.PoolID)
			}
			for _, h := range all[*HealthMonitor](txn, TableLBHealthMonitors, "pool", x.PoolID) {
				if h.ID != x.ID && h.ProvisioningStatus != LBPendingDelete {
					return Errorf(CodeConflict, ErrTypeLBDuplicate, "This pool already has a health monitor")
				}
			}
		case *L7Policy:
			l := v.Listener(x.ListenerID)
			if l == nil || l.LoadBalancerID != lbID || l.ProvisioningStatus == LBPendingDelete {
				return LBNotFound(TableLBListeners, x.ListenerID)
			}
			if x.Action == LBRedirectToPool {
				p := v.livePool(lbID, x.RedirectPoolID)
				if p == nil {
					return LBNotFound(TableLBPools, x.RedirectPoolID)
				}
				if !slices.Contains(lbListenerPoolProtocols[l.Protocol], p.Protocol) {
					return Errorf(CodeBadRequest, ErrTypeLBValidation,
						"Validation failure: The pool protocol '%s' is invalid while the listener protocol is '%s'.", p.Protocol, l.Protocol)
				}
			}
		case *L7Rule:
			p := v.L7Policy(x.L7PolicyID)
			if p == nil || p.LoadBalancerID != lbID || p.ProvisioningStatus == LBPendingDelete {
				return LBNotFound(TableLBL7Policies, x.L7PolicyID)
			}
			if p.ListenerID != x.ListenerID {
				return Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: L7 rule %s is not on listener %s.", x.ID, p.ListenerID)
			}
		}
	}
	deriveLBTree(txn, lbID, index)
	return nil
}

// deriveLBTree recomputes the attributes that mirror other objects:
// Pool.ListenerIDs (listeners whose default pool it is),
// Pool.HealthMonitorID, and the listeners' L7 policy positions (1..n, a
// policy written at a taken position goes before the older one).
func deriveLBTree(txn *memdb.Txn, lbID string, index uint64) {
	v := View{txn: txn}
	listeners := v.ListenersOfLB(lbID)
	for _, p := range v.PoolsOfLB(lbID) {
		var ls []string
		for _, l := range listeners {
			if l.DefaultPoolID == p.ID {
				ls = append(ls, l.ID)
			}
		}
		hm := ""
		for _, h := range all[*HealthMonitor](txn, TableLBHealthMonitors, "pool", p.ID) {
			hm = h.ID
		}
		if slices.Equal(ls, p.ListenerIDs) && hm == p.HealthMonitorID {
			continue
		}
		c := p.Copy()
		c.ListenerIDs, c.HealthMonitorID, c.ModifyIndex = ls, hm, index
		insert(txn, TableLBPools, c, index)
	}
	for _, l := range listeners {
		ps := all[*L7Policy](txn, TableLBL7Policies, "listener", l.ID)
		slices.SortStableFunc(ps, func(a, b *L7Policy) int {
			if d := cmp.Compare(a.Position, b.Position); d != 0 {
				return d
			}
			return -cmp.Compare(a.ModifyIndex, b.ModifyIndex)
		})
		for i, p := range ps {
			if p.Position != i+1 {
				c := p.Copy()
				c.Position, c.ModifyIndex = i+1, index
				insert(txn, TableLBL7Policies, c, index)
			}
		}
	}
}

// lbOperating lists the operating status values an agent may report.
var lbOperating = []string{LBOnline, LBDegraded, LBOpError, LBOffline, LBNoMonitor, LBDraining}

// CheckLBStatus tells whether an agent's report would change anything: nil
// when it would, else the *Error Apply would return (not found, stale,
// unchanged). The API runs it before proposing so that a repeated or
// stale report costs no Raft write.
func (v *View) CheckLBStatus(req *LBStatusRequest) error {
	lb := v.LoadBalancer(req.LoadBalancerID)
	if lb == nil {
		return LBNotFound(TableLBLoadBalancers, req.LoadBalancerID)
	}
	for id, s := range req.Operating {
		if !slices.Contains(lbOperating, s) {
			return Errorf(CodeBadRequest, ErrTypeLBValidation, "Validation failure: operating status %q of %s.", s, id)
		}
	}
	if req.Chassis == "" || req.Chassis != lb.ActiveChassis {
		return Errorf(CodeConflict, ErrTypeLBStaleStatus, "chassis %q is not the active chassis of load balancer %s", req.Chassis, lb.ID)
	}
	if req.ConfigRevision == lb.ConfigRevision {
		for _, o := range append([]lbObject{lb}, v.lbTreeObjects(lb.ID)...) {
			ps, _ := o.lbStatus()
			switch *ps {
			case LBPendingCreate, LBPendingUpdate, LBPendingDelete:
				return nil
			case LBError:
				if req.Error == "" {
					return nil
				}
			}
		}
		if req.Error != "" && lb.StatusReason != req.Error {
			return nil
		}
	}
	for id, s := range req.Operating {
		if o := v.lbTreeObject(lb.ID, id); o != nil {
			if _, os := o.lbStatus(); *os != s {
				return nil
			}
		}
	}
	return Errorf(CodeConflict, ErrTypeLBStatusUnchanged, "the report changes nothing")
}

// lbTreeObjects lists a load balancer's children.
func (v *View) lbTreeObjects(lbID string) []lbObject {
	t := v.LBTreeOf(lbID)
	return t.objects()
}

// lbTreeObject finds an object of a load balancer (itself or a child) by
// id in any table, or nil.
func (v *View) lbTreeObject(lbID, id string) lbObject {
	for _, table := range LBTables {
		if o := v.lbObjectByID(table, id); o != nil && o.lbID() == lbID {
			return o
		}
	}
	return nil
}

func applyLBStatus(txn *memdb.Txn, body []byte, index uint64) error {
	var req LBStatusRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if err := v.CheckLBStatus(&req); err != nil {
		return err
	}
	lb := v.LoadBalancer(req.LoadBalancerID)
	changed := map[string]lbObject{}
	get := func(o lbObject) lbObject {
		if c, ok := changed[o.GetMeta().ID]; ok {
			return c
		}
		c := copyLBObject(o)
		changed[o.GetMeta().ID] = c
		return c
	}
	var gone []lbObject
	if req.ConfigRevision == lb.ConfigRevision {
		if lb.ProvisioningStatus == LBPendingDelete {
			removeLBTree(txn, lb, index)
			return nil
		}
		for _, o := range append([]lbObject{lb}, v.lbTreeObjects(lb.ID)...) {
			ps, _ := o.lbStatus()
			switch {
			case *ps == LBPendingDelete:
				gone = append(gone, o)
			case *ps == LBPendingCreate, *ps == LBPendingUpdate, *ps == LBError && req.Error == "":
				c := get(o)
				cps, _ := c.lbStatus()
				*cps = LBActive
				if req.Error != "" {
					*cps = LBError
				}
				c.GetMeta().UpdatedAt = cmp.Or(req.At, c.GetMeta().UpdatedAt)
			}
		}
		c := get(lb).(*LoadBalancer)
		c.StatusReason = req.Error
	}
	for id, s := range req.Operating {
		if o := v.lbTreeObject(lb.ID, id); o != nil {
			if _, os := o.lbStatus(); *os != s {
				c := get(o)
				_, cos := c.lbStatus()
				*cos = s
			}
		}
	}
	for _, c := range changed {
		c.GetMeta().ModifyIndex = index
		insert(txn, lbTableOf(c), c, index)
	}
	for _, o := range gone {
		remove(txn, lbTableOf(o), o, index)
	}
	if len(gone) > 0 {
		deriveLBTree(txn, lb.ID, index)
	}
	return nil
}
