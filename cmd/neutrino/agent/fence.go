package agent

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"neutrino/cluster"
	"neutrino/southbound/controller"
	"neutrino/southbound/ovsdb"
)

// Self-fencing of a gateway chassis cut off from the cluster.
//
// When the servers lose a gateway, the leader moves its routers to another
// gateway within about half a second (gossip detection plus one commit).
// If the gateway is not dead but partitioned, it would go on answering ARP
// and routing on the physical networks for addresses that now live
// elsewhere. So a gateway agent watches whether it can still reach a
// majority of the servers it knows, and once it has not for FenceDelay, it
// removes its physnet patch ports (br-int <-> br-ex...) on its own OVSDB:
// it goes silent on every physical network, and keeps them removed while
// fenced (a deposed leader on its side of the partition may re-create them
// until it notices it lost its quorum). When the majority is back it
// only logs: the leader's worker, which ensures the patch ports on every
// pass and is woken by any change to them, puts them back when (and if)
// the leader still wants this chassis as a gateway.
//
// Reachability is a direct gossip ping to each server every PingInterval,
// not this node's own gossip view: memberlist's Lifeguard stretches the
// probe interval of a node whose probes all fail, so a cut-off node takes
// 0.8-2.3 s to declare the servers dead itself (BenchmarkGossipIsolated in
// package cluster). A server counts as reachable while gossip does not
// say it is dead or left and a ping to it succeeded within StaleAfter.

// Fence timings.
const (
	DefaultFencePingInterval = 50 * time.Millisecond
	DefaultFenceStaleAfter   = 200 * time.Millisecond
	DefaultFenceDelay        = 150 * time.Millisecond
)

// serverView is one server as the fence sees it.
type serverView struct {
	Name      string
	Reachable bool
}

// fenceAction is what the decider asks for.
type fenceAction int

const (
	fenceNone fenceAction = iota
	fenceNow
	unfenceNow
)

func (a fenceAction) String() string {
	return [...]string{"none", "fence", "unfence"}[a]
}

// fenceDecider is the fence's state machine: fed with the server view and
// the time, it asks to fence once a majority has been unreachable for
// delay, and to unfence once a majority is back. It knows nothing of
// clocks or networks, so tests drive it directly.
type fenceDecider struct {
	delay     time.Duration
	lostSince time.Time // zero while a majority is reachable
	fenced    bool
}

// majority says whether more than half of the servers are reachable. With
// no server known there is nothing to lose (and nothing was set up by a
// leader): it counts as a majority.
func majority(servers []serverView) bool {
	if len(servers) == 0 {
		return true
	}
	n := 0
	for _, s := range servers {
		if s.Reachable {
			n++
		}
	}
	return 2*n > len(servers)
}

func (d *fenceDecider) observe(now time.Time, servers []serverView) fenceAction {
	if majority(servers) {
		d.lostSince = time.Time{}
		if d.fenced {
			d.fenced = false
			return unfenceNow
		}
		return fenceNone
	}
	if d.lostSince.IsZero() {
		d.lostSince = now
	}
	if !d.fenced && now.Sub(d.lostSince) >= d.delay {
		d.fenced = true
		return fenceNow
	}
	return fenceNone
}

// fenceConfig configures a fence.
type fenceConfig struct {
	Cluster      *cluster.Cluster
	OVSDB        string // the chassis' own OVSDB endpoint
	Bridge       string // integration bridge; default controller.DefaultBridge
	PingInterval time.Duration
	StaleAfter   time.Duration
	Delay        time.Duration
	Logger       *slog.Logger
	// remove cuts the chassis off its physical networks; default: connect
	// to OVSDB and RemovePhysnetPatches. Tests replace it.
	remove func(ctx context.Context) error
	// now is the clock; default time.Now.
	now func() time.Time
}

// fence runs the self-fence of a gateway chassis.
type fence struct {
	cfg fenceConfig
	log *slog.Logger
	dec fenceDecider

	mu     sync.Mutex
	lastOK map[string]time.Time // server -> last successful ping
	fenced bool

	ovsMu sync.Mutex
	ovs   *ovsdb.Client
}

func newFence(cfg fenceConfig) *fence {
	if cfg.Bridge == "" {
		cfg.Bridge = controller.DefaultBridge
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultFencePingInterval
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = DefaultFenceStaleAfter
	}
	if cfg.Delay == 0 {
		cfg.Delay = DefaultFenceDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	f := &fence{cfg: cfg, log: cfg.Logger.With("component", "fence"), lastOK: map[string]time.Time{}}
	f.dec.delay = cfg.Delay
	if f.cfg.remove == nil {
		f.cfg.remove = f.removePatches
	}
	return f
}

// Fenced reports whether the fence is in effect.
func (f *fence) Fenced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced
}

// run pings the servers and decides every PingInterval until ctx ends.
func (f *fence) run(ctx context.Context) {
	defer func() {
		f.ovsMu.Lock()
		if f.ovs != nil {
			f.ovs.Close()
		}
		f.ovsMu.Unlock()
	}()
	tick := time.NewTicker(f.cfg.PingInterval)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait() // before the session closes
	wg.Go(func() { f.connect(ctx) })
	for {
		servers := f.servers()
		for _, s := range servers {
			wg.Go(func() {
				if _, err := f.cfg.Cluster.Ping(s); err == nil {
					f.mu.Lock()
					f.lastOK[s] = f.cfg.now()
					f.mu.Unlock()
				}
			})
		}
		f.step(ctx, f.view(servers))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// servers are the names of every server gossip knows (this node excluded)
// that has not left on purpose: a server that died still counts in the
// majority it is missing from.
func (f *fence) servers() []string {
	var out []string
	for _, m := range f.cfg.Cluster.Members() {
		if m.Meta.Role == cluster.RoleServer && m.Status != cluster.StatusLeft && m.Name != f.cfg.Cluster.NodeName() {
			out = append(out, m.Name)
		}
	}
	return out
}

// view builds the decider's input: a server is reachable while gossip has
// not declared it dead and a ping succeeded within StaleAfter. This node
// counts (reachable) when it is a server itself.
func (f *fence) view(servers []string) []serverView {
	now := f.cfg.now()
	status := map[string]cluster.MemberStatus{}
	self := false
	for _, m := range f.cfg.Cluster.Members() {
		status[m.Name] = m.Status
		if m.Name == f.cfg.Cluster.NodeName() && m.Meta.Role == cluster.RoleServer {
			self = true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []serverView
	for _, s := range servers {
		ok, seen := f.lastOK[s]
		out = append(out, serverView{Name: s,
			Reachable: status[s] == cluster.StatusAlive && seen && now.Sub(ok) <= f.cfg.StaleAfter})
	}
	if self {
		out = append(out, serverView{Name: f.cfg.Cluster.NodeName(), Reachable: true})
	}
	return out
}

// step feeds the decider and carries out its decision.
func (f *fence) step(ctx context.Context, view []serverView) {
	switch f.dec.observe(f.cfg.now(), view) {
	case fenceNow:
		f.mu.Lock()
		f.fenced = true
		f.mu.Unlock()
		var lost []string
		for _, s := range view {
			if !s.Reachable {
				lost = append(lost, s.Name)
			}
		}
		slices.Sort(lost)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f.cfg.remove(rctx)
		cancel()
		if err != nil {
			// Try again on the next tick: the decider goes back to lost.
			f.log.Error("fencing failed: cannot remove the physnet patch ports", "err", err)
			f.dec.fenced = false
			f.mu.Lock()
			f.fenced = false
			f.mu.Unlock()
			return
		}
		f.log.Warn("fenced: lost the majority of the servers, physnet patch ports removed",
			"unreachable", lost, "servers", len(view))
	case unfenceNow:
		f.mu.Lock()
		f.fenced = false
		f.mu.Unlock()
		f.log.Warn("unfenced: the majority of the servers is reachable again; the leader restores the patch ports")
	default:
		if !f.dec.fenced {
			return
		}
		// Enforced while fenced (a no-op that sends nothing when the ports
		// are gone): a deposed leader on our side of a partition may still
		// re-create them until it notices it lost its quorum.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := f.cfg.remove(rctx); err != nil {
			f.log.Warn("fenced: cannot check the physnet patch ports", "err", err)
		}
		cancel()
	}
}

// removePatches removes the physnet patch ports through a session to the
// chassis' own OVSDB, opened on first use and kept.
func (f *fence) removePatches(ctx context.Context) error {
	f.ovsMu.Lock()
	defer f.ovsMu.Unlock()
	if f.ovs == nil {
		c, err := ovsdb.Connect(ctx, f.cfg.OVSDB, ovsdb.Config{Logger: f.log})
		if err != nil {
			return err
		}
		f.ovs = c
	}
	return f.ovs.RemovePhysnetPatches(ctx, f.cfg.Bridge)
}

// connect opens the OVSDB session ahead of need, so that fencing costs one
// transaction and no connection setup; failures are left to removePatches.
func (f *fence) connect(ctx context.Context) {
	f.ovsMu.Lock()
	defer f.ovsMu.Unlock()
	if f.ovs != nil || f.cfg.OVSDB == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := ovsdb.Connect(cctx, f.cfg.OVSDB, ovsdb.Config{Logger: f.log}); err == nil {
		f.ovs = c
	} else {
		f.log.Debug("cannot reach the chassis' OVSDB yet", "err", err)
	}
}
