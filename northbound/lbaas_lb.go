package northbound

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"time"

	"neutrino/fsm"
)

// createLoadBalancer creates a load balancer and its VIP port in one
// command: a new port (device_owner Octavia, device_id lb-<id>, port
// security off: the VIP takes any client) on vip_subnet_id or
// vip_network_id, or the caller's port vip_port_id adopted as is.
func (s *Server) createLoadBalancer(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "loadbalancer", "loadbalancers", false)
	if err != nil {
		return err
	}
	a, raw, err := parseObject(objs[0], loadBalancerAttrs, map[string]attrSpec{"listeners": {Post: true}, "pools": {Post: true}}, true)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	project, err := projectFor(ident, a)
	if err != nil {
		return err
	}
	b := &lbBuild{s: s, ident: ident, a: a}
	if err := b.unsupported("vip_qos_policy_id", "flavor_id", "availability_zone"); err != nil {
		return err
	}
	if p, ok := a.str("provider"); ok && p != fsm.LBProvider {
		return lbInvalid("Provider '%s' is not enabled.", p)
	}
	subnetID, _ := a.str("vip_subnet_id")
	netID, _ := a.str("vip_network_id")
	portID, _ := a.str("vip_port_id")
	address, _ := a.str("vip_address")
	if subnetID == "" && netID == "" && portID == "" {
		return lbInvalid("VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.")
	}
	if address != "" {
		if address, err = parseIP("vip_address", address); err != nil {
			return err
		}
	}
	ts := now()
	lb := &fsm.LoadBalancer{Meta: fsm.Meta{ID: newID(r.Context()), ProjectID: project, CreatedAt: ts, UpdatedAt: ts},
		Provider: fsm.LBProvider, AdminStateUp: true}
	if err := b.meta(&lb.Meta, true); err != nil {
		return err
	}
	b.boolean("admin_state_up", &lb.AdminStateUp)
	owner := Identity{ProjectID: project, Admin: ident.Admin}
	portIdent := newID(r.Context())
	// The children's ids derive from the request too: build them once.
	tree, err := s.lbTreeBuild(r, s.fsm.State().Read(), owner, lb, raw)
	if err != nil {
		return err
	}
	declare(r.Context(), &outcome{Status: http.StatusCreated, Collection: lbPrefixes[0] + "/loadbalancers",
		Singular: "loadbalancer", IDs: []string{lb.ID}})
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		req := fsm.LBCreateRequest{LoadBalancer: lb, At: ts, Tree: tree}
		var ls *lease
		if portID != "" {
			cur, err := lookupPort(v, owner, portID)
			if err != nil {
				return lbSubresource("Port", portID)
			}
			if cur.DeviceID != "" || cur.DeviceOwner != "" {
				return lbInvalid("Port %s is in use by %s %s.", cur.ID, cur.DeviceOwner, cur.DeviceID)
			}
			p := cur.Copy()
			p.DeviceID, p.DeviceOwner = fsm.LBVIPDeviceID(lb.ID), fsm.DeviceOwnerLBVIP
			p.RevisionNumber++
			p.UpdatedAt = ts
			req.VipPort, req.VipPortPrevIndex = p, cur.ModifyIndex
		} else {
			if subnetID != "" {
				sub, err := lookupSubnet(v, owner, subnetID)
				if err != nil {
					return lbSubresource("Subnet", subnetID)
				}
				if netID != "" && sub.NetworkID != netID {
					return lbInvalid("Subnet %s is not on network %s.", subnetID, netID)
				}
				netID = sub.NetworkID
			}
			if _, err := lookupNetwork(v, owner, netID); err != nil {
				return lbSubresource("Network", netID)
			}
			p := &fsm.Port{
				Meta:      fsm.Meta{ID: portIdent, ProjectID: project, Name: "octavia-lb-" + lb.ID, RevisionNumber: 1, CreatedAt: ts, UpdatedAt: ts},
				NetworkID: netID, DeviceID: fsm.LBVIPDeviceID(lb.ID), DeviceOwner: fsm.DeviceOwnerLBVIP, AdminStateUp: true,
				Status: fsm.PortStatusDown, BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}",
			}
			ls = s.ipam.begin()
			pb := &portBuild{s: s, v: v, lease: ls, ident: owner, ts: ts, ctx: r.Context()}
			if p.MACAddress, err = ls.allocateMAC(netID); err != nil {
				ls.release()
				return err
			}
			sid := subnetID
			if sid == "" && address == "" {
				for _, sub := range v.SubnetsOfNetwork(netID) {
					if sub.IPVersion == 4 {
						sid = sub.ID
						break
					}
				}
				if sid == "" {
					ls.release()
					return lbInvalid("Network %s has no IPv4 subnet for the VIP.", netID)
				}
			}
			ips, err := pb.assignIPs(p, []fixedIPRequest{{SubnetID: sid, IPAddress: address}}, nil)
			if err != nil {
				ls.release()
				return err
			}
			p.FixedIPs = ips
			req.VipPort = p
		}
		vp := req.VipPort
		if len(vp.FixedIPs) == 0 {
			return lbInvalid("Port %s has no fixed IP for the VIP.", vp.ID)
		}
		vip := vp.FixedIPs[0]
		if address != "" {
			found := false
			for _, f := range vp.FixedIPs {
				if a, _ := netip.ParseAddr(f.IPAddress); a.String() == address {
					vip, found = f, true
				}
			}
			if !found {
				return lbInvalid("vip_address %s is not an address of port %s.", address, vp.ID)
			}
		}
		lb.VipNetworkID, lb.VipSubnetID, lb.VipAddress, lb.VipPortID = vp.NetworkID, vip.SubnetID, vip.IPAddress, vp.ID
		rev, err := s.propose(r.Context(), fsm.CmdLBCreate, req)
		if ls != nil {
			ls.release()
		}
		if fe, ok := fsm.AsError(err); ok && attempt < maxAllocRetries && address == "" &&
			(fe.Type == fsm.ErrTypeIPAddressInUse || fe.Type == fsm.ErrTypeMacAddressInUse || fe.Type == fsm.ErrTypeStaleUpdate) {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		v = s.fsm.State().Read()
		out := lb
		if cur := v.LoadBalancer(lb.ID); cur != nil {
			out = cur
		}
		writeJSON(w, http.StatusCreated, map[string]any{"loadbalancer": renderLoadBalancer(v, out, ident.Admin)})
		return nil
	}
}

func (s *Server) updateLoadBalancer(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "loadbalancer", "loadbalancers", false)
	if err != nil {
		return err
	}
	a, _, err := parseObject(objs[0], loadBalancerAttrs, map[string]attrSpec{}, false)
	if err != nil {
		return err
	}
	ident := identityFrom(r.Context())
	b := &lbBuild{s: s, ident: ident, a: a}
	if err := b.unsupported("vip_qos_policy_id"); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		v := s.fsm.State().Read()
		obj, err := lbLookup(v, ident, kindLB, r.PathValue("id"), "")
		if err != nil {
			return err
		}
		cur := obj.(*fsm.LoadBalancer)
		lb := cur.Copy()
		if err := b.meta(&lb.Meta, true); err != nil {
			return err
		}
		b.boolean("admin_state_up", &lb.AdminStateUp)
		rev, err := s.propose(r.Context(), fsm.CmdLBUpdate, fsm.LBUpdateRequest{LoadBalancer: lb, PrevIndex: cur.ModifyIndex, At: now()})
		if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeStaleUpdate && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		v = s.fsm.State().Read()
		if now := v.LoadBalancer(lb.ID); now != nil {
			lb = now
		}
		writeJSON(w, http.StatusOK, map[string]any{"loadbalancer": renderLoadBalancer(v, lb, ident.Admin)})
		return nil
	}
}

// agentStatus is the body of PUT /v1/lbaas/loadbalancers/{id}/agent-status.
type agentStatus struct {
	Chassis        string            `json:"chassis"`
	ConfigRevision uint64            `json:"config_revision"`
	Error          string            `json:"error"`
	Operating      map[string]string `json:"operating"`
}

// lbAgentStatus takes a chassis agent's report (admin only). A report that
// would change nothing is answered 200 without a Raft write; one from a
// chassis that is not the active one is 409 StaleStatus. The report needs
// no request identity: applying it twice changes nothing the second time.
func (s *Server) lbAgentStatus(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	if !ident.Admin {
		return forbidden("Only an admin may report load balancer status.")
	}
	var st agentStatus
	data, err := readAllBody(r)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return badRequest("Malformed agent status: %v", err)
	}
	req := fsm.LBStatusRequest{LoadBalancerID: r.PathValue("id"), Chassis: st.Chassis, ConfigRevision: st.ConfigRevision,
		Error: st.Error, Operating: st.Operating, At: now()}
	v := s.fsm.State().Read()
	err = v.CheckLBStatus(&req)
	if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeLBStatusUnchanged {
		setRevision(w, v.Revision())
		writeJSON(w, http.StatusOK, map[string]any{"applied": false})
		return nil
	}
	if err != nil {
		return err
	}
	rev, err := s.propose(withoutRequest(r.Context()), fsm.CmdLBStatus, req)
	if fe, ok := fsm.AsError(err); ok && fe.Type == fsm.ErrTypeLBStatusUnchanged {
		setRevision(w, s.fsm.State().Read().Revision())
		writeJSON(w, http.StatusOK, map[string]any{"applied": false})
		return nil
	}
	if err != nil {
		return err
	}
	setRevision(w, rev)
	writeJSON(w, http.StatusOK, map[string]any{"applied": true})
	return nil
}

// DefaultLBDeleteTimeout is LBDeleteTimeout's default: long enough for an
// agent to tear HAProxy down and report, short enough that a load balancer
// whose agent is gone (but whose chassis gossip still calls up) does not
// stay PENDING_DELETE for long.
const DefaultLBDeleteTimeout = 30 * time.Second

// expireLBDeletes runs on every server and acts on the leader: a load
// balancer in PENDING_DELETE whose agent did not report within
// LBDeleteTimeout (by its updated_at, the leader's time of the delete) is
// removed with CmdLBDeleteExpire, which applies only if it is still
// waiting at the same config revision. It ends with StopWatches.
func (s *Server) expireLBDeletes() {
	timeout := s.cfg.LBDeleteTimeout
	if timeout <= 0 {
		timeout = DefaultLBDeleteTimeout
	}
	tick := time.NewTicker(min(timeout/4, 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.watchStop:
			return
		case <-tick.C:
		}
		if !s.be.IsLeader() {
			continue
		}
		for _, lb := range s.fsm.State().Read().LoadBalancers() {
			if lb.ProvisioningStatus != fsm.LBPendingDelete {
				continue
			}
			at, err := time.Parse(time.RFC3339, lb.UpdatedAt)
			if err != nil || time.Since(at) < timeout {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ForwardTimeout)
			_, err = s.propose(ctx, fsm.CmdLBDeleteExpire, fsm.LBDeleteExpireRequest{ID: lb.ID, ConfigRevision: lb.ConfigRevision})
			cancel()
			if err != nil {
				s.log.Debug("load balancer delete expiry", "lb", lb.ID, "err", err)
				continue
			}
			s.log.Warn("load balancer deleted without its agent's report", "lb", lb.ID, "chassis", lb.ActiveChassis, "after", timeout)
		}
	}
}

// lbTreeBuild builds the children given in a load balancer's create
// (Octavia's single-call create): listeners, each with an optional
// default_pool, and pools, each with optional members and healthmonitor.
// References are by nesting, not by id: the objects do not exist yet.
func (s *Server) lbTreeBuild(r *http.Request, v *fsm.View, ident Identity, lb *fsm.LoadBalancer, raw map[string]json.RawMessage) (fsm.LBTree, error) {
	var tree fsm.LBTree
	var ls, ps []map[string]json.RawMessage
	if x, ok := raw["listeners"]; ok && !isNull(x) {
		if err := json.Unmarshal(x, &ls); err != nil {
			return tree, lbInvalid("listeners must be a list of objects: %v", err)
		}
	}
	if x, ok := raw["pools"]; ok && !isNull(x) {
		if err := json.Unmarshal(x, &ps); err != nil {
			return tree, lbInvalid("pools must be a list of objects: %v", err)
		}
	}
	newBuild := func(a attrs, raw map[string]json.RawMessage) *lbBuild {
		return &lbBuild{s: s, v: v, ident: ident, a: a, raw: raw, lb: lb, inTree: true}
	}
	pool := func(obj map[string]json.RawMessage) error {
		a, praw, err := parseObject(obj, poolAttrs, map[string]attrSpec{"session_persistence": {Post: true}, "members": {Post: true}, "healthmonitor": {Post: true}}, true)
		if err != nil {
			return err
		}
		for _, k := range []string{"loadbalancer_id", "listener_id"} {
			if _, ok := a[k]; ok {
				return lbInvalid("%s is not allowed in a load balancer's create: pools are nested.", k)
			}
		}
		a["loadbalancer_id"] = lb.ID
		p, err := newBuild(a, praw).pool(r, nil)
		if err != nil {
			return err
		}
		tree.Pools = append(tree.Pools, p)
		if x, ok := praw["healthmonitor"]; ok && !isNull(x) {
			var hobj map[string]json.RawMessage
			if err := json.Unmarshal(x, &hobj); err != nil {
				return lbInvalid("healthmonitor must be an object: %v", err)
			}
			ha, err := parseAttrs(hobj, healthMonitorAttrs, true)
			if err != nil {
				return err
			}
			hb := newBuild(ha, nil)
			hb.treePool = p
			h, err := hb.healthMonitor(r, nil)
			if err != nil {
				return err
			}
			tree.HealthMonitors = append(tree.HealthMonitors, h)
		}
		if x, ok := praw["members"]; ok && !isNull(x) {
			var mobjs []map[string]json.RawMessage
			if err := json.Unmarshal(x, &mobjs); err != nil {
				return lbInvalid("members must be a list of objects: %v", err)
			}
			for _, mo := range mobjs {
				ma, err := parseAttrs(mo, memberAttrs, true)
				if err != nil {
					return err
				}
				m, err := newBuild(ma, nil).member(r, p, nil)
				if err != nil {
					return err
				}
				tree.Members = append(tree.Members, m)
			}
		}
		return nil
	}
	for _, lo := range ls {
		a, lraw, err := parseObject(lo, listenerAttrs, map[string]attrSpec{"insert_headers": {Post: true}, "default_pool": {Post: true}, "l7policies": {Post: true}}, true)
		if err != nil {
			return tree, err
		}
		if _, ok := lraw["l7policies"]; ok {
			return tree, lbInvalid("l7policies in a load balancer's create are not supported: create them once the listener exists.")
		}
		if _, ok := a["default_pool_id"]; ok {
			return tree, lbInvalid("default_pool_id is not allowed in a load balancer's create: give default_pool.")
		}
		a["loadbalancer_id"] = lb.ID
		l, err := newBuild(a, lraw).listener(r, nil)
		if err != nil {
			return tree, err
		}
		tree.Listeners = append(tree.Listeners, l)
		if x, ok := lraw["default_pool"]; ok && !isNull(x) {
			var pobj map[string]json.RawMessage
			if err := json.Unmarshal(x, &pobj); err != nil {
				return tree, lbInvalid("default_pool must be an object: %v", err)
			}
			if err := pool(pobj); err != nil {
				return tree, err
			}
			l.DefaultPoolID = tree.Pools[len(tree.Pools)-1].ID
		}
	}
	for _, po := range ps {
		if err := pool(po); err != nil {
			return tree, err
		}
	}
	return tree, nil
}
