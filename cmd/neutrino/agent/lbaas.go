package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"neutrino/cluster/watch"
	"neutrino/fsm"
	"neutrino/southbound/controller"
	"neutrino/southbound/lbaas"
)

// Load balancers on a gateway chassis (issue 12).
//
// The agent of a gateway chassis watches the lb_* tables (and the ports,
// subnets and networks their VIPs need) and runs one HAProxy for every
// load balancer whose GatewayChassis list names this chassis: the active
// one and the standbys alike, with the same configuration, each in a
// namespace of its own whose VIP veth is plugged into br-int. The FSM's
// binding of the VIP port decides which copy the pipeline carries (see
// southbound/controller/lbvip.go), so a failover is one commit and no
// process has to start. The active chassis reports provisioning (the
// ConfigRevision it runs, or why HAProxy refused it) and health (HAProxy's
// stats socket) through the servers' agent-status endpoint.

// Load balancer agent timings.
const (
	// lbStatusInterval is how often health is read and reported.
	lbStatusInterval = 500 * time.Millisecond
	// lbResendAfter repeats a report the state does not show yet (a report
	// lost with a server, or stale because the revision moved).
	lbResendAfter = 2 * time.Second
)

// DefaultLBNamespacePrefix, then the node name, starts the name of every
// load balancer namespace of a chassis (--lb-netns-prefix replaces both).
const DefaultLBNamespacePrefix = "nlb-"

// lbTables are the tables the load balancer agent watches.
var lbTables = append(slices.Clone(fsm.LBTables), fsm.TablePorts, fsm.TableSubnets, fsm.TableNetworks)

// lbService runs the load balancers of one gateway chassis.
type lbService struct {
	node     string
	ovsdb    string
	bridge   string
	prefix   string
	dir      string
	binary   string
	token    func(context.Context) string
	servers  func() []string
	fenced   func() bool
	log      *slog.Logger
	w        *watch.Watcher
	kick     chan struct{}
	http     *http.Client
	announce func(lbaas.Plug) // gratuitous ARP; tests may replace it

	mu  sync.Mutex
	lbs map[string]*lbRun
	// gone are load balancers torn down while being deleted, kept until
	// the state drops them so their report is not repeated every pass.
	gone map[string]*lbRun
}

// lbRun is one load balancer this chassis runs.
type lbRun struct {
	plug    lbaas.Plug
	mgr     *lbaas.Manager
	spec    lbaas.Spec
	rev     uint64 // the ConfigRevision HAProxy runs (or refused)
	cfgErr  string // why HAProxy refused rev's configuration
	active  bool
	checks  bool // health checks enabled (active) since the last (re)load
	vipDown bool // taken down by the fence
	sent    string
	sentAt  time.Time
}

// startLBaaS starts the load balancer agent on a gateway chassis; it
// logs, and runs nothing, when HAProxy is missing.
func (a *Agent) startLBaaS() {
	if !slices.Contains(a.cfg.Chassis.Roles, "gateway") || a.cfg.Chassis.OVSDB == "" || a.cfg.DisableLBaaS {
		return
	}
	log := a.log.With("component", "lbaas")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	v, err := lbaas.CheckVersion(ctx, a.cfg.HAProxy)
	cancel()
	if err != nil {
		log.Error("load balancers will not run on this gateway chassis", "err", err)
		return
	}
	w, err := a.Watch(lbTables...)
	if err != nil {
		log.Error("load balancers will not run on this gateway chassis: watch", "err", err)
		return
	}
	prefix := a.cfg.LBNamespacePrefix
	if prefix == "" {
		// The node name keeps two agents on one machine (tests) from
		// taking each other's namespaces for leftovers.
		prefix = DefaultLBNamespacePrefix + a.cfg.Node + "-"
	}
	s := &lbService{node: a.cfg.Node, ovsdb: a.localOVSDB(), bridge: controller.DefaultBridge, prefix: prefix,
		dir: filepath.Join(a.cfg.DataDir, "lbaas"), binary: a.cfg.HAProxy, token: a.authToken,
		servers: a.watchServers, fenced: a.Fenced, log: log, w: w, kick: make(chan struct{}, 1),
		http: &http.Client{Timeout: 5 * time.Second, Transport: a.peerTransport()}, lbs: map[string]*lbRun{}, gone: map[string]*lbRun{}}
	s.announce = s.garp
	ctx, stop := context.WithCancel(context.Background())
	a.lbStop, a.lbDone = stop, make(chan struct{})
	go func() {
		defer close(a.lbDone)
		s.run(ctx)
	}()
	log.Info("load balancer agent started", "haproxy", v, "namespace_prefix", prefix)
}

func (a *Agent) stopLBaaS() {
	if a.lbStop != nil {
		a.lbStop()
		<-a.lbDone
	}
}

func (s *lbService) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *lbService) run(ctx context.Context) {
	defer s.w.Close()
	// Namespaces of an agent that died are rebuilt from scratch (its
	// HAProxies died with it).
	for _, ns := range lbaas.Stale(s.prefix) {
		s.log.Info("removing a load balancer namespace left from before", "namespace", ns)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := (lbaas.Plug{Namespace: ns, OVSDB: s.ovsdb, Bridge: s.bridge}).Down(cctx); err != nil {
			s.log.Warn("cannot remove a stale namespace", "namespace", ns, "err", err)
		}
		cancel()
	}
	unsub := s.w.Subscribe(func(watch.Batch) { s.wake() })
	defer unsub()
	tick := time.NewTicker(lbStatusInterval)
	defer tick.Stop()
	defer s.teardownAll()
	for {
		s.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
	}
}

// wanted is one load balancer this chassis should run, from the copy.
type wanted struct {
	lb   *fsm.LoadBalancer
	spec lbaas.Spec
	plug lbaas.Plug
}

// desired reads the copy: every load balancer listing this chassis, with
// what its HAProxy and namespace need; deleted ones are not desired.
func (s *lbService) desired() (map[string]wanted, map[string]*fsm.LoadBalancer) {
	out := map[string]wanted{}
	deleting := map[string]*fsm.LoadBalancer{}
	trees := map[string]*fsm.LBTree{}
	tree := func(id string) *fsm.LBTree {
		if trees[id] == nil {
			trees[id] = &fsm.LBTree{}
		}
		return trees[id]
	}
	for _, o := range watch.List[*fsm.Listener](s.w, fsm.TableLBListeners) {
		tree(o.LoadBalancerID).Listeners = append(tree(o.LoadBalancerID).Listeners, o)
	}
	for _, o := range watch.List[*fsm.Pool](s.w, fsm.TableLBPools) {
		tree(o.LoadBalancerID).Pools = append(tree(o.LoadBalancerID).Pools, o)
	}
	for _, o := range watch.List[*fsm.Member](s.w, fsm.TableLBMembers) {
		tree(o.LoadBalancerID).Members = append(tree(o.LoadBalancerID).Members, o)
	}
	for _, o := range watch.List[*fsm.HealthMonitor](s.w, fsm.TableLBHealthMonitors) {
		tree(o.LoadBalancerID).HealthMonitors = append(tree(o.LoadBalancerID).HealthMonitors, o)
	}
	for _, o := range watch.List[*fsm.L7Policy](s.w, fsm.TableLBL7Policies) {
		tree(o.LoadBalancerID).L7Policies = append(tree(o.LoadBalancerID).L7Policies, o)
	}
	for _, o := range watch.List[*fsm.L7Rule](s.w, fsm.TableLBL7Rules) {
		tree(o.LoadBalancerID).L7Rules = append(tree(o.LoadBalancerID).L7Rules, o)
	}
	for _, lb := range watch.List[*fsm.LoadBalancer](s.w, fsm.TableLBLoadBalancers) {
		if !slices.Contains(lb.GatewayChassis, s.node) {
			continue
		}
		if lb.ProvisioningStatus == fsm.LBPendingDelete {
			deleting[lb.ID] = lb
			continue
		}
		plug, err := s.plugOf(lb)
		if err != nil {
			s.log.Debug("load balancer not ready to run", "lb", lb.ID, "err", err)
			continue
		}
		t := tree(lb.ID)
		out[lb.ID] = wanted{lb: lb, spec: lbaas.FromTree(lb, *t), plug: plug}
	}
	return out, deleting
}

// plugOf is the namespace and VIP port of a load balancer.
func (s *lbService) plugOf(lb *fsm.LoadBalancer) (lbaas.Plug, error) {
	port, ok := watch.Get[*fsm.Port](s.w, fsm.TablePorts, lb.VipPortID)
	if !ok {
		return lbaas.Plug{}, fmt.Errorf("VIP port %s not in the copy", lb.VipPortID)
	}
	sub, ok := watch.Get[*fsm.Subnet](s.w, fsm.TableSubnets, lb.VipSubnetID)
	if !ok {
		return lbaas.Plug{}, fmt.Errorf("VIP subnet %s not in the copy", lb.VipSubnetID)
	}
	pfx, err := netip.ParsePrefix(sub.CIDR)
	if err != nil {
		return lbaas.Plug{}, fmt.Errorf("VIP subnet %s: %w", sub.ID, err)
	}
	mtu := 0
	if n, ok := watch.Get[*fsm.Network](s.w, fsm.TableNetworks, lb.VipNetworkID); ok {
		mtu = n.MTU
	}
	id := lb.ID
	if len(id) > 13 {
		id = id[:13]
	}
	return lbaas.Plug{Namespace: s.prefix + id, HostIface: lbaas.HostIfaceName(port.ID), OVSDB: s.ovsdb, Bridge: s.bridge,
		PortID: port.ID, MAC: port.MACAddress, CIDR: fmt.Sprintf("%s/%d", lb.VipAddress, pfx.Bits()),
		Gateway: sub.GatewayIP, MTU: mtu}, nil
}

// reconcile makes the running HAProxies match the copy and reports.
func (s *lbService) reconcile(ctx context.Context) {
	if !s.w.Synced() {
		return
	}
	want, deleting := s.desired()
	fenced := s.fenced()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.lbs {
		if _, ok := want[id]; !ok {
			s.teardown(id, r)
			// Deleted or moved away: its configuration, sockets and
			// PID file go too (a chassis hosting it again starts anew).
			if err := os.RemoveAll(r.mgr.Paths.Dir); err != nil {
				s.log.Warn("cannot remove the load balancer's directory", "lb", id, "err", err)
			}
			s.gone[id] = r
		}
	}
	for id, lb := range deleting {
		if lb.ActiveChassis != s.node {
			continue
		}
		// The deletion completes with our report of its revision.
		r := s.gone[id]
		if r == nil {
			r = &lbRun{}
			s.gone[id] = r
		}
		s.report(ctx, lb, r, "", nil)
	}
	for id := range s.gone {
		if _, ok := deleting[id]; !ok {
			delete(s.gone, id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		s.converge(ctx, want[id], fenced)
	}
}

// converge runs one load balancer: namespace, configuration, role, report.
func (s *lbService) converge(ctx context.Context, w wanted, fenced bool) {
	lb := w.lb
	r := s.lbs[lb.ID]
	if r != nil && r.plug != w.plug {
		// The VIP port changed (address, MAC, subnet): rebuild.
		s.teardown(lb.ID, r)
		r = nil
	}
	if r == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := w.plug.Up(cctx)
		cancel()
		if err != nil {
			s.log.Warn("cannot plug the load balancer's VIP", "lb", lb.ID, "err", err)
			return
		}
		r = &lbRun{plug: w.plug, mgr: &lbaas.Manager{Namespace: w.plug.Namespace, Binary: s.binary,
			Paths: lbaas.Paths{Dir: filepath.Join(s.dir, lb.ID)}, Logger: s.log.With("lb", lb.ID)}}
		s.lbs[lb.ID] = r
	}
	cfg := lbaas.Render(w.spec, r.mgr.Paths)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	changed, err := r.mgr.Apply(cctx, cfg)
	cancel()
	switch {
	case errors.Is(err, lbaas.ErrInvalidConfig):
		if r.rev != lb.ConfigRevision || r.cfgErr == "" {
			s.log.Warn("haproxy refused the configuration; the running one stays", "lb", lb.ID, "revision", lb.ConfigRevision, "err", err)
		}
		r.cfgErr = err.Error()
	case err != nil:
		s.log.Warn("cannot run haproxy", "lb", lb.ID, "err", err)
		return
	default:
		r.cfgErr = ""
		if changed {
			r.checks = false
		}
	}
	r.rev, r.spec = lb.ConfigRevision, w.spec
	if !r.mgr.Running() {
		// The first configuration was refused: nothing runs yet, but
		// the reason must reach the state.
		if lb.ActiveChassis == s.node && r.cfgErr != "" {
			s.report(ctx, lb, r, r.cfgErr, nil)
		}
		return
	}
	active := lb.ActiveChassis == s.node && !fenced
	if fenced != r.vipDown {
		if err := r.plug.SetVIP(ctx, !fenced); err != nil {
			s.log.Warn("cannot set the VIP", "lb", lb.ID, "fenced", fenced, "err", err)
		} else {
			r.vipDown = fenced
			s.log.Warn("VIP interface set", "lb", lb.ID, "up", !fenced)
		}
	}
	if active != r.checks || changed {
		if err := r.mgr.SetChecks(ctx, lbaas.MonitoredServers(r.spec), active); err != nil {
			s.log.Warn("cannot switch health checks", "lb", lb.ID, "on", active, "err", err)
		} else {
			r.checks = active
		}
	}
	if active && !r.active {
		s.log.Info("load balancer active here", "lb", lb.ID, "vip", lb.VipAddress)
		go s.announce(r.plug)
	}
	r.active = active
	if !active {
		return
	}
	var op map[string]string
	if rows, err := r.mgr.Stats(ctx); err == nil {
		op = lbaas.Operating(r.spec, rows)
	} else {
		s.log.Debug("cannot read haproxy stats", "lb", lb.ID, "err", err)
	}
	s.report(ctx, lb, r, r.cfgErr, op)
}

// report sends the agent status of a load balancer when the state does
// not show it yet: a report identical to the last one is sent again only
// after lbResendAfter, and one the state already shows not at all.
func (s *lbService) report(ctx context.Context, lb *fsm.LoadBalancer, r *lbRun, cfgErr string, op map[string]string) {
	if !s.needsReport(lb, cfgErr, op) {
		return
	}
	body := map[string]any{"chassis": s.node, "config_revision": lb.ConfigRevision, "error": cfgErr, "operating": op}
	key, _ := json.Marshal(body)
	if string(key) == r.sent && time.Since(r.sentAt) < lbResendAfter {
		return
	}
	if err := s.send(ctx, lb.ID, key); err != nil {
		s.log.Warn("cannot report load balancer status", "lb", lb.ID, "err", err)
		return
	}
	r.sent, r.sentAt = string(key), time.Now()
	s.log.Debug("load balancer status reported", "lb", lb.ID, "revision", lb.ConfigRevision, "error", cfgErr)
}

// needsReport says whether the state differs from what the report says.
func (s *lbService) needsReport(lb *fsm.LoadBalancer, cfgErr string, op map[string]string) bool {
	states := map[string]string{lb.ID: lb.OperatingStatus}
	pending := isPending(lb.ProvisioningStatus)
	for _, o := range watch.List[*fsm.Listener](s.w, fsm.TableLBListeners) {
		if o.LoadBalancerID == lb.ID {
			states[o.ID], pending = o.OperatingStatus, pending || isPending(o.ProvisioningStatus)
		}
	}
	for _, o := range watch.List[*fsm.Pool](s.w, fsm.TableLBPools) {
		if o.LoadBalancerID == lb.ID {
			states[o.ID], pending = o.OperatingStatus, pending || isPending(o.ProvisioningStatus)
		}
	}
	for _, o := range watch.List[*fsm.Member](s.w, fsm.TableLBMembers) {
		if o.LoadBalancerID == lb.ID {
			states[o.ID], pending = o.OperatingStatus, pending || isPending(o.ProvisioningStatus)
		}
	}
	return reportDiffers(lb, pending, states, cfgErr, op)
}

func isPending(st string) bool {
	return st == fsm.LBPendingCreate || st == fsm.LBPendingUpdate || st == fsm.LBPendingDelete
}

// reportDiffers says whether a report (cfgErr, op) would change the state:
// something of the tree is pending (only a report of its revision settles
// it), the error is not the one recorded, or an operating status differs
// (states: the state's operating status by object id).
func reportDiffers(lb *fsm.LoadBalancer, pending bool, states map[string]string, cfgErr string, op map[string]string) bool {
	if pending {
		return true
	}
	if cfgErr != "" && (lb.ProvisioningStatus != fsm.LBError || lb.StatusReason != cfgErr) {
		return true
	}
	for id, st := range op {
		if cur, ok := states[id]; ok && cur != st {
			return true
		}
	}
	return false
}

// send PUTs a report to the first server that takes it.
func (s *lbService) send(ctx context.Context, lbID string, body []byte) error {
	var errs []error
	for _, srv := range s.servers() {
		url := srv
		if !bytes.HasPrefix([]byte(url), []byte("http")) {
			url = "http://" + url
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url+"/v1/lbaas/loadbalancers/"+lbID+"/agent-status", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if tok := s.token(ctx); tok != "" {
			req.Header.Set("X-Auth-Token", tok)
		}
		res, err := s.http.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode/100 == 2 {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %s: %s", srv, res.Status, bytes.TrimSpace(msg.Bytes())))
		if res.StatusCode/100 == 4 {
			// Another server would say the same; 409: the report is stale
			// (the state moved on, or this chassis is no longer active).
			return errors.Join(errs...)
		}
	}
	if len(errs) == 0 {
		return errors.New("no server known")
	}
	return errors.Join(errs...)
}

// garp announces the VIP from its namespace three times (at once,
// +200 ms, +1 s), as the leader does for moved external addresses: the
// first ones may leave before the new flows are in place.
func (s *lbService) garp(p lbaas.Plug) {
	for i, d := range []time.Duration{0, 200 * time.Millisecond, 800 * time.Millisecond} {
		time.Sleep(d)
		if err := p.Announce(context.Background()); err != nil {
			s.log.Debug("gratuitous ARP", "namespace", p.Namespace, "try", i+1, "err", err)
		}
	}
}

// teardown stops a load balancer's HAProxy and removes its namespace.
func (s *lbService) teardown(id string, r *lbRun) {
	r.mgr.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.plug.Down(ctx); err != nil {
		s.log.Warn("cannot remove the load balancer's namespace", "lb", id, "err", err)
	}
	delete(s.lbs, id)
	s.log.Info("load balancer removed from this chassis", "lb", id)
}

func (s *lbService) teardownAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.lbs {
		s.teardown(id, r)
	}
}
