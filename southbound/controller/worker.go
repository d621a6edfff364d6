package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/ovsdb"
	"neutrino/southbound/ovsdb/vswitchd"
	"neutrino/southbound/pipeline"
)

// worker keeps one chassis converged while this server leads: OVSDB
// bootstrap, binding commits, and the chassis' desired flows.
type worker struct {
	c      *Controller
	s      *session
	name   string
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	kick   chan struct{}
	syncer *flowsync.Syncer

	ovs *ovsdb.Client // owned by run

	// Owned by run: the incremental compiler, the revision it compiled,
	// and the ports waiting for their flows to be acknowledged before
	// they are committed ACTIVE (port id -> revision of their flows).
	compiler    *pipeline.Compiler
	compiledRev uint64
	pendingUp   map[string]uint64
	verify      bool            // the next pass checks incremental == full
	announced   map[string]bool // external addresses announced from here
	// physnetSkipped is the last logged list of unrealizable mappings.
	physnetSkipped string
	// subports are the virtual ofports given to subports (trunk.go).
	subports map[string]uint32
	// seen is what the last complete OVSDB part of a pass read: a pass
	// whose spec and OVSDB cache are unchanged since (a write elsewhere in
	// the state) reuses it instead of reading and planning on the cache
	// again, which cost most of the leader's CPU at 100 chassis (every
	// revision wakes every worker; libovsdb clones each row it returns
	// through JSON). The periodic pass always reads.
	seen     *ovsSeen
	resyncOV bool // the next pass reads the OVSDB cache whatever seen says
	// When the worker started, began its OVSDB session, finished its
	// first OVSDB read and handed its first flow set to the syncer
	// (session.takeover).
	born, connectAt, readAt time.Time
	desiredSet              bool

	mu  sync.Mutex
	err error
}

func (c *Controller) newWorker(s *session, name string) *worker {
	w := &worker{c: c, s: s, name: name, kick: make(chan struct{}, 1),
		log: c.log.With("chassis", name, "term", s.term), born: time.Now()}
	w.ctx, w.cancel = context.WithCancel(s.ctx)
	w.syncer = flowsync.New(flowsync.Options{Round: s.round, DumpSlots: c.dumpSlots, Logger: w.log})
	w.compiler = w.c.newCompiler()
	w.pendingUp = map[string]uint64{}
	w.subports = map[string]uint32{}
	return w
}

// newCompiler is an empty compiler sharing what it derives alike with the
// other workers' (pipeline.Shared).
func (c *Controller) newCompiler() *pipeline.Compiler {
	pc := pipeline.NewCompiler()
	pc.Share(c.shared)
	return pc
}

func (w *worker) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *worker) lastErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *worker) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// run converges the chassis until the worker is cancelled; every failure
// requeues the whole pass with exponential backoff.
func (w *worker) run() {
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		w.syncer.Run(w.ctx)
	}()
	defer func() {
		w.cancel()
		<-syncDone // the syncer's counters are final once run returns
	}()
	defer func() {
		if w.ovs != nil {
			w.ovs.Close()
		}
	}()
	backoff := w.c.cfg.MinBackoff
	tick := time.NewTimer(w.c.periodic(w.c.cfg.ResyncInterval))
	defer tick.Stop()
	verify := time.NewTimer(w.c.periodic(w.c.cfg.VerifyInterval))
	defer verify.Stop()
	for {
		again, err := w.pass()
		w.setErr(err)
		var retry <-chan time.Time
		switch {
		case w.ctx.Err() != nil:
			return
		case err != nil:
			w.log.Warn("chassis pass failed, retrying", "err", err, "backoff", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, w.c.cfg.MaxBackoff)
		case again:
			// ovs-vswitchd has not numbered every port yet: look again soon.
			retry = time.After(w.c.cfg.MinBackoff)
			backoff = w.c.cfg.MinBackoff
		default:
			backoff = w.c.cfg.MinBackoff
		}
		select {
		case <-w.ctx.Done():
			return
		case <-w.kick:
		case <-retry:
		case <-tick.C:
			w.resyncOV = true
			tick.Reset(w.c.periodic(w.c.cfg.ResyncInterval))
		case <-verify.C:
			w.verify = true
			verify.Reset(w.c.periodic(w.c.cfg.VerifyInterval))
		}
	}
}

// pass runs one level-triggered pass; again asks for an early next pass.
func (w *worker) pass() (again bool, err error) {
	v := w.c.cfg.FSM.State().Read()
	ch := v.Chassis(w.name)
	if ch == nil || !ch.Up {
		return false, nil // the worker is about to be stopped
	}
	var release func()
	defer func() {
		if release != nil {
			release()
		}
	}()
	if w.ovs == nil {
		// A slot from before the connect to the end of the first read: a
		// new leader opening every chassis' session at once decoded a
		// hundred monitor replies in front of Raft's goroutines.
		select {
		case w.c.ovsdbSlots <- struct{}{}:
			release = func() { <-w.c.ovsdbSlots }
		case <-w.ctx.Done():
			return false, w.ctx.Err()
		}
		w.connectAt = time.Now()
		ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		oc := ovsdb.Config{Logger: w.log, Resync: func() time.Duration { return w.c.periodic(w.c.cfg.ResyncInterval) }}
		if w.c.cfg.OVSDBTLS != nil {
			oc.TLS = w.c.cfg.OVSDBTLS(ch.Name)
		}
		ovs, err := ovsdb.Connect(ctx, ch.OVSDB, oc)
		cancel()
		if err != nil {
			return false, err
		}
		w.ovs = ovs
		// Any binding change wakes a full pass, and so does any change to
		// the ports this controller owns (a fenced gateway's patch ports
		// removed, a tunnel deleted by hand, a reconnect's cache rebuild).
		ovs.WatchBindings(w.ctx, w.c.cfg.Bridge, func(ovsdb.BindingEvent) { w.wake() })
		ovs.WatchOwnedPorts(w.ctx, w.wake)
	}
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()

	targets := w.targets(ch)
	remotes := w.c.gatewayRemotes(v, ch)
	spec := ovsSpec(ch, targets, remotes)
	facts := pipeline.Facts{Chassis: w.name, Bindings: map[string]uint32{},
		Tunnels: map[string]uint32{}, Physnets: map[string]uint32{}}
	var shown map[string]uint32
	if sn := w.seen; sn != nil && !w.resyncOV && sn.spec == spec && sn.events == w.ovs.Events() {
		facts.Tunnels, facts.Physnets, shown = sn.tunnels, sn.physnets, sn.shown
	} else {
		events := w.ovs.Events() // before reading: a change while we read is seen next pass
		w.seen = nil
		var err error
		if again, shown, err = w.readOVSDB(ctx, ch, targets, remotes, &facts); err != nil {
			return false, err
		}
		w.resyncOV = false
		if w.readAt.IsZero() {
			w.readAt = time.Now()
		}
		if !again {
			w.seen = &ovsSeen{spec: spec, events: events, tunnels: facts.Tunnels, physnets: facts.Physnets, shown: shown}
		}
	}
	if release != nil {
		release()
		release = nil
	}
	facts.Bindings = localBindings(v, w.name, shown)
	subportBindings(v, facts.Bindings, w.subports)
	if err := w.commitBindings(ctx, v, facts.Bindings); err != nil {
		return false, err
	}
	// Meters before the flows naming them (flowsync orders the switch).
	w.syncer.SetMeters(pipeline.Meters(v, facts))
	if err := w.compile(v, facts); err != nil {
		return false, err
	}
	if err := w.commitStatus(ctx, v); err != nil {
		return false, err
	}
	if w.compiler.RoutersTouched() {
		w.announce(v, facts, w.compiledRev)
	}
	return again, nil
}

// ovsSeen is what a pass read from a chassis' OVSDB cache (maps never
// changed after: the compiler keeps the facts it is given).
type ovsSeen struct {
	spec              string
	events            uint64 // the cache's event count before the read
	tunnels, physnets map[string]uint32
	shown             map[string]uint32 // iface-id -> ofport on the bridge
}

// ovsSpec is everything the OVSDB part of a pass takes from the state and
// the cluster, as one comparable string.
func ovsSpec(ch *fsm.Chassis, targets []string, remotes []ovsdb.RemoteTunnel) string {
	return fmt.Sprintf("%s|%d|%s|%v|%v|%v|%v", ch.DatapathType, ch.DatapathID, ch.TunnelIP, ch.Encaps,
		ch.BridgeMappings, targets, remotes)
}

// readOVSDB is the OVSDB part of a pass: converge br-int, the tunnel and
// patch ports, and read the tunnel and physnet ofports into facts and the
// bindings the bridge shows.
func (w *worker) readOVSDB(ctx context.Context, ch *fsm.Chassis, targets []string, remotes []ovsdb.RemoteTunnel,
	facts *pipeline.Facts) (again bool, shown map[string]uint32, err error) {
	br := w.c.cfg.Bridge
	if _, err := w.ovs.EnsureIntegrationBridge(ctx, ovsdb.BridgeSpec{
		Name:         br,
		DatapathType: ch.DatapathType,
		Controllers:  targets,
		OtherConfig:  map[string]string{"datapath-id": fmt.Sprintf("%016x", ch.DatapathID)},
		ExternalIDs:  map[string]string{"neutrino-chassis": ch.Name},
	}); err != nil {
		return false, nil, err
	}
	if ch.TunnelIP != "" {
		spec := ovsdb.TunnelSpec{Bridge: br, LocalIP: ch.TunnelIP, Encaps: encaps(ch), Remotes: remotes}
		if _, err := w.ovs.EnsureTunnels(ctx, spec); err != nil {
			return false, nil, err
		}
		for _, e := range spec.Encaps {
			n, err := w.ofport(ctx, ovsdb.FlowTunnelPort(e))
			if err != nil {
				return false, nil, err
			}
			if n <= 0 {
				again = true
				continue
			}
			facts.Tunnels[e] = uint32(n)
		}
	}
	// Patch ports toward the chassis' physnet bridges, on every pass: a
	// mapping dropped from the chassis' gossip is removed, and pairs a
	// self-fenced gateway removed come back once it is up again.
	physAgain, err := w.ensurePhysnets(ctx, ch, facts.Physnets)
	if err != nil {
		return false, nil, err
	}
	again = again || physAgain
	bindings, err := w.ovs.Bindings(ctx, br)
	if err != nil {
		return false, nil, err
	}
	shown = map[string]uint32{}
	for _, b := range bindings {
		shown[b.IfaceID] = uint32(b.OFPort)
	}
	return again, shown, nil
}

// ensurePhysnets converges the patch port pairs between br-int and the
// chassis' mapped bridges and fills physnets with the ofport of each
// physnet's br-int end; again is true while one is not numbered yet.
// Mappings whose bridge does not exist on the chassis are skipped and
// logged (once per change).
func (w *worker) ensurePhysnets(ctx context.Context, ch *fsm.Chassis, physnets map[string]uint32) (again bool, err error) {
	_, skipped, err := w.ovs.EnsurePhysnetPatches(ctx, ovsdb.PhysnetSpec{Bridge: w.c.cfg.Bridge, Mappings: ch.BridgeMappings})
	if err != nil {
		return false, err
	}
	var sk []string
	skip := map[string]bool{}
	for _, s := range skipped {
		sk = append(sk, s.String())
		skip[s.Physnet] = true
	}
	if msg := strings.Join(sk, "; "); msg != w.physnetSkipped {
		w.physnetSkipped = msg
		if msg != "" {
			w.log.Warn("bridge mappings skipped", "skipped", msg)
		}
	}
	for _, pn := range sortedKeys(ch.BridgeMappings) {
		if skip[pn] {
			continue
		}
		n, err := w.ofport(ctx, ovsdb.PhysnetPatchPort(ch.BridgeMappings[pn]))
		if err != nil {
			return false, err
		}
		if n <= 0 {
			again = true
			continue
		}
		physnets[pn] = uint32(n)
	}
	return again, nil
}

// compile brings the chassis' desired flows to state v: incrementally
// from the changes since the last compile, fully on the first pass, when
// the change history does not reach back, and (as a check) on the periodic
// pass, where a difference between the incremental and the full result is
// logged and counted as a bug.
func (w *worker) compile(v *fsm.View, facts pipeline.Facts) error {
	// Every revision wakes every worker: at 100 chassis a hundred runnable
	// compiles queued in front of Raft's goroutines in the scheduler,
	// heartbeats went out late and followers started elections (11 terms
	// within 45 s of a leader kill, the new leader compiling every chassis
	// in full). At most GOMAXPROCS compiles run; the rest wait off the run
	// queue. Only the compile (pure CPU) holds a slot, never I/O, so an
	// unreachable chassis cannot hold one.
	select {
	case w.c.compileSlots <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	defer func() { <-w.c.compileSlots }()
	if obs := w.c.cfg.OnCompile; obs != nil {
		start, full := time.Now(), w.compiledRev == 0 || w.verify
		defer func() { obs(time.Since(start), full) }()
	}
	rev := v.Revision()
	var changes []fsm.Change
	if w.compiledRev != 0 {
		if ch, ok := w.c.cfg.FSM.ChangesBetween(w.compiledRev, rev); ok {
			changes = ch
			if changes == nil {
				changes = []fsm.Change{}
			}
		}
	}
	first := w.compiledRev == 0
	add, remove := w.compiler.Update(v, changes, facts)
	w.compiledRev = rev
	if w.verify {
		w.verify = false
		full := pipeline.Compile(v, facts)
		if diff := pipeline.Diff(w.compiler.Flows(), full); diff != "" {
			w.c.compileMismatches.Add(1)
			w.log.Error("BUG: incremental compile differs from full compile; replacing", "revision", rev, "diff", diff)
			w.compiler = w.c.newCompiler()
			w.compiler.Update(v, nil, facts)
			first = true
		}
	}
	if first {
		flows, keys := w.compiler.FlowsKeyed()
		if err := w.syncer.SetDesiredKeyed(rev, flows, keys); err != nil {
			return err
		}
		if !w.desiredSet {
			w.desiredSet = true
			w.timeTakeover(rev)
		}
		return nil
	}
	w.syncer.ApplyDeltaKeyed(rev, add, w.compiler.AddedKeys(), remove)
	return nil
}

// timeTakeover reports the chassis' takeover phases to the session once
// the switch acknowledged the first flow set, at revision rev.
func (w *worker) timeTakeover(rev uint64) {
	desiredAt := time.Now()
	tt := takeoverTimes{queued: w.connectAt.Sub(w.born), ovsdb: w.readAt.Sub(w.connectAt), compile: desiredAt.Sub(w.readAt)}
	go func() {
		if w.syncer.WaitRealized(w.ctx, rev) != nil {
			return
		}
		tt.sync = time.Since(desiredAt)
		w.log.Debug("chassis taken over", "queued", tt.queued, "ovsdb", tt.ovsdb, "compile", tt.compile, "sync", tt.sync)
		w.s.takeover.done(w.name, tt)
	}()
}

// commitStatus commits ACTIVE for the ports plugged here once the switch
// acknowledged their flows, and DOWN for ports bound here that have no
// flows (unplugged, administratively down).
func (w *worker) commitStatus(ctx context.Context, v *fsm.View) error {
	realized := w.syncer.Realized()
	var changes []fsm.PortStatusChange
	waitFor := uint64(0)
	for _, p := range v.PortsOnChassis(w.name) {
		if p.DeviceOwner == fsm.DeviceOwnerRouterGateway {
			continue // its status is the FSM's (bound: ACTIVE)
		}
		local := w.compiler.IsLocal(p.ID)
		switch {
		case local && p.Status != fsm.PortStatusActive:
			at, ok := w.pendingUp[p.ID]
			if !ok {
				at = w.compiledRev
				w.pendingUp[p.ID] = at
			}
			if realized >= at {
				changes = append(changes, fsm.PortStatusChange{PortID: p.ID, Chassis: w.name, Status: fsm.PortStatusActive})
				delete(w.pendingUp, p.ID)
			} else {
				waitFor = max(waitFor, at)
			}
		case !local && p.Status == fsm.PortStatusActive:
			changes = append(changes, fsm.PortStatusChange{PortID: p.ID, Chassis: w.name, Status: fsm.PortStatusDown})
			delete(w.pendingUp, p.ID)
		case local:
			delete(w.pendingUp, p.ID)
		}
	}
	if waitFor > 0 {
		// Look again once the switch acknowledged those flows.
		go func() {
			if w.syncer.WaitRealized(w.ctx, waitFor) == nil {
				w.wake()
			}
		}()
	}
	if len(changes) == 0 {
		return nil
	}
	cmd, err := fsm.Encode(fsm.CmdPortStatus, fsm.PortStatusRequest{Ports: changes, At: time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	res, err := w.c.cfg.Apply(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("commit status of %d ports: %w", len(changes), err)
	}
	return nil
}

// commitBindings proposes the bindings the chassis shows and the state
// does not know, and the unbindings of ports it no longer shows.
func (w *worker) commitBindings(ctx context.Context, v *fsm.View, local map[string]uint32) error {
	var bs []fsm.PortBinding
	for _, id := range sortedKeys(local) {
		p := v.Port(id)
		if p == nil {
			continue
		}
		ofport := int(local[id])
		if p.BindingHostID != w.name || p.BindingVIFType != fsm.VIFTypeOVS || p.BindingOFPort != ofport {
			bs = append(bs, fsm.PortBinding{PortID: id, Chassis: w.name, OFPort: ofport})
		}
	}
	for _, p := range v.PortsOnChassis(w.name) {
		// A router gateway or VIP port is bound by the FSM (scheduling),
		// not plugged: never unbind it from here (lbvip.go).
		if scheduled(p) {
			continue
		}
		if _, ok := local[p.ID]; !ok && p.BindingHostID == w.name {
			bs = append(bs, fsm.PortBinding{PortID: p.ID, FromChassis: w.name})
		}
	}
	if len(bs) == 0 {
		return nil
	}
	cmd, err := fsm.Encode(fsm.CmdPortBind, fsm.PortBindRequest{Bindings: bs, At: time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	res, err := w.c.cfg.Apply(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return fmt.Errorf("commit %d bindings: %w", len(bs), err)
	}
	w.log.Info("bindings committed", "changes", len(bs), "revision", res.Revision)
	return nil
}

// ofport reads an interface's OpenFlow port number from the cache (0 when
// not assigned yet).
func (w *worker) ofport(ctx context.Context, name string) (int, error) {
	var ifaces []vswitchd.Interface
	err := w.ovs.LibOVSDB().WhereCache(func(i *vswitchd.Interface) bool { return i.Name == name }).List(ctx, &ifaces)
	if err != nil {
		return 0, fmt.Errorf("read interface %s: %w", name, err)
	}
	if len(ifaces) == 0 || ifaces[0].Ofport == nil {
		return 0, nil
	}
	return *ifaces[0].Ofport, nil
}

// targets are the OpenFlow controller targets of a chassis: every
// server's address. A unix: address is reachable only from the same host
// and OVS accepts an active unix: target only inside its run directory, so
// for a chassis whose OVSDB endpoint is a unix socket (same host by
// construction) the target is a symlink, next to that socket, to the
// server's socket.
func (w *worker) targets(ch *fsm.Chassis) []string {
	var out []string
	for _, addr := range w.c.controllers() {
		path, isUnix := strings.CutPrefix(addr, "unix:")
		if !isUnix {
			out = append(out, addr)
			continue
		}
		db, ok := strings.CutPrefix(ch.OVSDB, "unix:")
		if !ok {
			continue // a remote chassis cannot reach a unix socket
		}
		link, err := ensureLink(filepath.Dir(db), path)
		if err != nil {
			w.log.Warn("cannot link openflow socket into the chassis run directory", "addr", addr, "err", err)
			continue
		}
		out = append(out, "unix:"+link)
	}
	slices.Sort(out)
	return out
}

// ensureLink makes dir/of-<hash>.sock a symlink to target.
func ensureLink(dir, target string) (string, error) {
	sum := sha256.Sum256([]byte(target))
	link := filepath.Join(dir, "of-"+hex.EncodeToString(sum[:4])+".sock")
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return link, nil
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.Symlink(target, link); err != nil {
		return "", err
	}
	return link, nil
}

// encaps are the chassis' encapsulations this controller builds ports for.
func encaps(ch *fsm.Chassis) []string {
	var out []string
	for _, e := range ch.Encaps {
		if e == ovsdb.EncapVXLAN || e == ovsdb.EncapGRE || e == ovsdb.EncapGeneve {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// gatewayRemotes are the per-remote tunnels toward every other gateway
// chassis with a tunnel address, up or down, over the first encapsulation
// both support (Geneve, VXLAN, GRE). They follow the chassis records, not
// liveness, as OVN's tunnels follow Chassis rows: the ports carry no
// traffic (docs/architecture.md, "Chassis and southbound"), and when they
// followed Up, every gossip false death on a loaded machine deleted and
// re-added one port per gateway on every chassis, and each such change
// reconfigures a userspace datapath: more load, more false deaths.
func (c *Controller) gatewayRemotes(v *fsm.View, ch *fsm.Chassis) []ovsdb.RemoteTunnel {
	var out []ovsdb.RemoteTunnel
	for _, o := range c.gatewaySet(v).all {
		if o.Name == ch.Name {
			continue
		}
		for _, e := range []string{ovsdb.EncapGeneve, ovsdb.EncapVXLAN, ovsdb.EncapGRE} {
			if slices.Contains(ch.Encaps, e) && slices.Contains(o.Encaps, e) {
				out = append(out, ovsdb.RemoteTunnel{Chassis: o.Name, IP: o.TunnelIP, Encap: e})
				break
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// gatewaySet is the gateway chassis with a tunnel address at one
// revision: all of them, and those up.
type gatewaySet struct {
	rev     uint64
	all, up []*fsm.Chassis
}

// gateways are the up gateway chassis with a tunnel address.
func (c *Controller) gateways(v *fsm.View) []*fsm.Chassis { return c.gatewaySet(v).up }

// gatewaySet computes the gateway chassis once per revision for every
// worker: at 100 chassis each worker scanning the chassis table on every
// revision showed in the leader's profile.
func (c *Controller) gatewaySet(v *fsm.View) *gatewaySet {
	if g := c.gwCache.Load(); g != nil && g.rev == v.Revision() {
		return g
	}
	g := &gatewaySet{rev: v.Revision()}
	for _, o := range v.ChassisList() {
		if o.TunnelIP != "" && slices.Contains(o.Roles, "gateway") {
			g.all = append(g.all, o)
			if o.Up {
				g.up = append(g.up, o)
			}
		}
	}
	c.gwCache.Store(g)
	return g
}

// controllersTTL bounds how stale the shared list of controller targets
// may be: every revision wakes every worker, and at 100 chassis asking
// Config.Controllers (which copies and sorts every gossip member, chassis
// included) once per worker was 16% of the leader's CPU.
const controllersTTL = 100 * time.Millisecond

// controllers is Config.Controllers, shared by the workers for up to
// controllersTTL.
func (c *Controller) controllers() []string {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.ctlAt.IsZero() || time.Since(c.ctlAt) > controllersTTL {
		c.ctlList, c.ctlAt = c.cfg.Controllers(), time.Now()
	}
	return c.ctlList
}
