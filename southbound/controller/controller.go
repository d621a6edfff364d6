// Package controller is the leader's side of every chassis: it keeps each
// chassis' Open vSwitch configured over OVSDB (br-int, controller targets,
// tunnel ports), commits the port bindings it finds there, and programs
// the compiled pipeline over OpenFlow, fenced by role requests.
//
// It runs on every server. Every server accepts OpenFlow connections from
// every chassis (an OpenFlow connection names its chassis by the datapath
// id the controller gave its br-int). While this server leads, it runs one
// worker per up chassis and asks every connection for MASTER with
// generation id epoch<<32 | term, handing MASTER connections to that
// chassis' flowsync.Syncer (round = low 16 bits of the term). A follower
// asks for SLAVE and never writes. When leadership is lost every
// connection is demoted at once, before the workers are even stopped.
package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
	"neutrino/southbound/pipeline"
)

// DefaultBridge is the integration bridge every chassis gets.
const DefaultBridge = "br-int"

// ErrNoChassis means an OpenFlow connection's datapath id names no chassis.
var ErrNoChassis = errors.New("controller: no chassis with that datapath id")

// Config configures a Controller.
type Config struct {
	// FSM is the local replica; required.
	FSM *fsm.FSM
	// Apply proposes a command (bindings) through Raft; required.
	Apply func(ctx context.Context, cmd []byte) (*fsm.Result, error)
	// Controllers returns every server's OpenFlow address ("tcp:IP:PORT"
	// or "unix:PATH"); every chassis' br-int gets all of them.
	Controllers func() []string
	// Term returns the current Raft term; a follower's SLAVE request
	// carries it so it is not refused as stale.
	Term func() uint64
	// Listener accepts the chassis' OpenFlow connections; nil runs without
	// OpenFlow (OVSDB and bindings only).
	Listener *openflow.Listener
	// VerifyChassis, when set, checks a switch's TLS certificate chain
	// (nil over plaintext) against the chassis its datapath id names; a
	// switch that fails is disconnected, so a chassis cannot take
	// another's flows by claiming its datapath id.
	VerifyChassis func(certs []*x509.Certificate, chassis string) error
	// OVSDBTLS, when set, is the client side of the OVSDB session to a
	// chassis whose endpoint is "ssl:": our certificate, and a check that
	// the ovsdb-server there holds that chassis' certificate.
	OVSDBTLS func(chassis string) *tls.Config
	// Bridge is the integration bridge; default DefaultBridge.
	Bridge string
	// MinBackoff and MaxBackoff bound a worker's retry delay (200 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// ResyncInterval is a worker's periodic full pass (10 s).
	ResyncInterval time.Duration
	// VerifyInterval is how often a worker checks its incremental flow
	// set against a full compile (60 s; a full compile of a chassis with
	// 150k flows costs about a second of CPU).
	VerifyInterval time.Duration
	// TakeoverParallel bounds how many workers open and first read their
	// chassis' OVSDB session at once and, separately, how many switches
	// are dumped and resynced at once (a new leader's first sync of each,
	// or after a reconnect); default GOMAXPROCS, at least 2. A new leader
	// that took over 100 chassis at once starved its own Raft goroutines
	// and was deposed again and again (docs/architecture.md, "Simulator").
	TakeoverParallel int
	// OnPacketIn, if set, gets every packet-in a chassis sends over this
	// server's MASTER connection, with the chassis' name. It runs on one
	// goroutine per connection (in order), not on the connection's reader:
	// it may block briefly; while it does, further packet-ins queue up to
	// openflow.Options.PacketInQueue and then are dropped.
	OnPacketIn func(chassis string, pi openflow.PacketIn)
	// OnCompile, if set, is told how long each compile of a chassis'
	// flows took (full: from scratch, else incremental), for metrics.
	OnCompile func(took time.Duration, full bool)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Controller is the southbound controller of one server.
type Controller struct {
	cfg Config
	log *slog.Logger

	leaderCh chan leadership
	done     chan struct{} // closed when Run returns

	// compileMismatches counts periodic checks where the incremental
	// compile differed from the full one (a bug).
	compileMismatches atomic.Int64
	// workerCount is how many chassis the session programs (periodic).
	workerCount atomic.Int64

	ext externalState

	gwCache atomic.Pointer[gatewaySet] // Controller.gateways
	shared  *pipeline.Shared           // what every worker's compiler derives alike

	compileSlots chan struct{} // worker.compile
	// ovsdbSlots bounds the OVSDB sessions being opened and first read
	// (worker.pass), dumpSlots the flow syncs that start from a dump
	// (flowsync.Options.DumpSlots): Config.TakeoverParallel each.
	ovsdbSlots, dumpSlots chan struct{}

	ctlMu   sync.Mutex // Controller.controllers
	ctlList []string
	ctlAt   time.Time

	mu    sync.Mutex
	conns map[string]*openflow.Conn // chassis name -> latest connection
	sess  *session                  // non-nil while leading
	// synced sums the flow sync counters of the workers that stopped,
	// by chassis, so Status' counters never go back while this runs.
	synced map[string]flowsync.Stats
	// roleMu serializes the role requests on each connection, so a
	// follower's SLAVE request never overtakes the MASTER request of the
	// session that started after it (the switch applies the last one).
	roleMu map[*openflow.Conn]*sync.Mutex
}

type leadership struct {
	leader bool
	term   uint64
}

// New returns a Controller; Run starts it.
func New(cfg Config) *Controller {
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 10 * time.Second
	}
	if cfg.VerifyInterval <= 0 {
		cfg.VerifyInterval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TakeoverParallel <= 0 {
		cfg.TakeoverParallel = max(2, runtime.GOMAXPROCS(0))
	}
	if cfg.Controllers == nil {
		cfg.Controllers = func() []string { return nil }
	}
	if cfg.Term == nil {
		cfg.Term = func() uint64 { return 0 }
	}
	return &Controller{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "controller"),
		leaderCh:     make(chan leadership, 16),
		compileSlots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		ovsdbSlots:   make(chan struct{}, cfg.TakeoverParallel),
		dumpSlots:    make(chan struct{}, cfg.TakeoverParallel),
		done:         make(chan struct{}),
		conns:        map[string]*openflow.Conn{},
		roleMu:       map[*openflow.Conn]*sync.Mutex{},
		ext:          externalState{arpSent: map[string]time.Time{}, learned: map[string]time.Time{}},
		shared:       pipeline.NewShared(),
	}
}

// SetLeadership tells the controller that this server gained (leader,
// term) or lost leadership. Losing demotes every OpenFlow connection
// before returning, so no flow is written after the call.
func (c *Controller) SetLeadership(leader bool, term uint64) {
	if !leader {
		c.mu.Lock()
		for _, conn := range c.conns {
			conn.Demote()
		}
		c.mu.Unlock()
	}
	select {
	case c.leaderCh <- leadership{leader: leader, term: term}:
	case <-c.done:
	}
}

// Run runs the controller until ctx ends; it stops every worker before
// returning.
func (c *Controller) Run(ctx context.Context) {
	defer close(c.done)
	var wg sync.WaitGroup
	if c.cfg.Listener != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.acceptLoop(ctx)
		}()
		// Accept blocks in the listener: closing it is what ends the loop.
		stop := context.AfterFunc(ctx, func() { c.cfg.Listener.Close() })
		defer stop()
	}
	defer wg.Wait()
	defer c.endSession()

	tick := time.NewTicker(c.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		st := c.cfg.FSM.State()
		watch := st.Read().RevisionWatch()
		c.reconcileWorkers()
		select {
		case <-ctx.Done():
			return
		case l := <-c.leaderCh:
			c.endSession()
			if l.leader {
				c.startSession(ctx, l.term)
			}
		case <-watch:
			c.kickWorkers()
		case <-st.AbandonCh():
			c.kickWorkers()
		case <-tick.C:
		}
	}
}

// session is one term of leadership: its workers and generation id.
type session struct {
	term    uint64
	gen     uint64
	round   uint16
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	workers map[string]*worker
	// takeover times the first programming of the chassis up at the
	// start (takeover.go).
	takeover *takeover
}

func (c *Controller) startSession(ctx context.Context, term uint64) {
	epoch := c.cfg.FSM.State().Read().Epoch()
	s := &session{term: term, gen: epoch<<32 | term&0xffffffff, round: uint16(term), workers: map[string]*worker{},
		takeover: newTakeover(c.log.With("term", term))}
	s.ctx, s.cancel = context.WithCancel(ctx)
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	c.log.Info("leading the southbound", "term", term, "generation_id", fmt.Sprintf("%#x", s.gen))
	// Each new worker asks its chassis' connection for MASTER.
	c.reconcileWorkers()
	c.mu.Lock()
	names := sortedKeys(s.workers)
	c.mu.Unlock()
	s.takeover.expect(names)
}

// endSession stops every worker of the current session, if any, and
// waits for them.
func (c *Controller) endSession() {
	c.mu.Lock()
	s := c.sess
	c.sess = nil
	for _, conn := range c.conns {
		conn.Demote()
	}
	c.mu.Unlock()
	if s == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	c.log.Info("no longer leading the southbound", "term", s.term)
}

// reconcileWorkers starts a worker for every up chassis with an OVSDB
// endpoint and stops the workers of the others.
func (c *Controller) reconcileWorkers() {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return
	}
	want := map[string]bool{}
	for _, ch := range c.cfg.FSM.State().Read().ChassisList() {
		if ch.Up && ch.OVSDB != "" {
			want[ch.Name] = true
		}
	}
	c.workerCount.Store(int64(len(want)))
	c.mu.Lock()
	for name, w := range s.workers {
		if !want[name] {
			w.cancel()
			delete(s.workers, name)
		}
	}
	var started []string
	for name := range want {
		if _, ok := s.workers[name]; ok {
			continue
		}
		w := c.newWorker(s, name)
		s.workers[name] = w
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.run()
			// Its syncer has stopped: no pass in flight adds to these.
			c.mu.Lock()
			c.keepStats(name, w)
			c.mu.Unlock()
		}()
		started = append(started, name)
	}
	conns := map[string]*openflow.Conn{}
	for _, name := range started {
		if conn := c.conns[name]; conn != nil {
			conns[name] = conn
		}
	}
	c.mu.Unlock()
	for name, conn := range conns {
		c.assign(name, conn)
	}
}

func (c *Controller) kickWorkers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sess
	if s == nil {
		return
	}
	for _, w := range s.workers {
		w.wake()
	}
}

// acceptLoop accepts OpenFlow connections until the listener closes.
func (c *Controller) acceptLoop(ctx context.Context) {
	for {
		conn, err := c.cfg.Listener.Accept(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Error("openflow listener stopped", "err", err)
			}
			return
		}
		go c.handleConn(ctx, conn)
	}
}

// connMatchTimeout bounds how long a connection whose datapath id names no
// chassis yet is kept: the record may be a commit away.
const connMatchTimeout = 30 * time.Second

func (c *Controller) handleConn(ctx context.Context, conn *openflow.Conn) {
	dpid := conn.DatapathID()
	name, err := c.matchChassis(ctx, conn)
	if err == nil && c.cfg.VerifyChassis != nil {
		if verr := c.cfg.VerifyChassis(conn.PeerCertificates(), name); verr != nil {
			err = fmt.Errorf("switch claims chassis %s: %w", name, verr)
		}
	}
	if err != nil {
		c.log.Warn("closing openflow connection", "dpid", fmt.Sprintf("%016x", dpid), "err", err)
		conn.Close()
		return
	}
	c.mu.Lock()
	old := c.conns[name]
	c.conns[name] = conn
	c.mu.Unlock()
	if old != nil && old != conn {
		old.Close()
	}
	c.log.Info("chassis connected over openflow", "chassis", name, "dpid", fmt.Sprintf("%016x", dpid))
	go c.packetIns(name, conn)
	c.assign(name, conn)
	select {
	case <-conn.Done():
	case <-ctx.Done():
		conn.Close()
	}
	c.mu.Lock()
	if c.conns[name] == conn {
		delete(c.conns, name)
	}
	delete(c.roleMu, conn)
	c.mu.Unlock()
}

// roleLock is the lock of a connection's role requests.
func (c *Controller) roleLock(conn *openflow.Conn) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-conn.Done():
		// handleConn has dropped its lock or is about to: do not leak one.
		return &sync.Mutex{}
	default:
	}
	m := c.roleMu[conn]
	if m == nil {
		m = &sync.Mutex{}
		c.roleMu[conn] = m
	}
	return m
}

// slaveRetry is how long a follower waits before asking a switch for
// SLAVE again after a refusal.
const slaveRetry = 200 * time.Millisecond

// holdSlave asks a connection for SLAVE until the switch grants it, the
// connection ends, or this server leads (its worker then asks for
// MASTER). A server that rejoins after a partition may still carry the
// term it lost leadership in when a chassis reconnects: OVS refuses that
// SLAVE request as stale and leaves the connection EQUAL, a role that may
// write flows. Asking again with the term learnt meanwhile closes that.
func (c *Controller) holdSlave(name string, conn *openflow.Conn) {
	mu := c.roleLock(conn)
	for {
		mu.Lock()
		c.mu.Lock()
		leading := c.sess != nil
		c.mu.Unlock()
		if leading {
			mu.Unlock()
			return
		}
		gen := c.cfg.FSM.State().Read().Epoch()<<32 | c.cfg.Term()&0xffffffff
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		role, _, err := conn.RequestRole(ctx, openflow.RoleSlave, gen)
		cancel()
		mu.Unlock()
		if err == nil && role == openflow.RoleSlave {
			return
		}
		c.log.Debug("slave role request refused; asking again", "chassis", name,
			"generation_id", fmt.Sprintf("%#x", gen), "role", role, "err", err)
		select {
		case <-conn.Done():
			return
		case <-time.After(slaveRetry):
		}
	}
}

// matchChassis waits until the state names the connection's chassis.
func (c *Controller) matchChassis(ctx context.Context, conn *openflow.Conn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, connMatchTimeout)
	defer cancel()
	for {
		st := c.cfg.FSM.State()
		v := st.Read()
		if ch := v.ChassisByDatapathID(conn.DatapathID()); ch != nil {
			return ch.Name, nil
		}
		select {
		case <-v.RevisionWatch():
		case <-st.AbandonCh():
		case <-conn.Done():
			return "", conn.Err()
		case <-ctx.Done():
			return "", ErrNoChassis
		}
	}
}

// assign gives a connection the role this server should have on it: the
// leader's session asks for MASTER and hands it to the chassis' syncer, a
// follower asks for SLAVE. Role requests run in the background; they wait
// for the switch.
func (c *Controller) assign(name string, conn *openflow.Conn) {
	c.mu.Lock()
	s := c.sess
	var w *worker
	if s != nil {
		w = s.workers[name]
	}
	c.mu.Unlock()
	if s == nil {
		go c.holdSlave(name, conn)
		return
	}
	if w == nil {
		return // not an up chassis: its worker, when started, assigns it
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		mu := c.roleLock(conn)
		mu.Lock()
		role, _, err := conn.RequestRole(ctx, openflow.RoleMaster, s.gen)
		mu.Unlock()
		if err != nil || role != openflow.RoleMaster {
			c.log.Warn("master role refused", "chassis", name, "role", role, "err", err)
			return
		}
		// Leadership may have ended while the request was in flight.
		c.mu.Lock()
		current := c.sess == s && s.ctx.Err() == nil
		if !current {
			conn.Demote()
		}
		c.mu.Unlock()
		if current {
			w.syncer.SetConn(conn)
		}
	}()
}

// ChassisStatus is what the leader knows of one chassis' programming.
type ChassisStatus struct {
	Chassis   string
	Connected bool   // an OpenFlow connection is open
	Master    bool   // that connection is MASTER
	Round     uint16 // the leader round stamped into cookies
	Realized  uint64 // the highest revision the switch acknowledged
	Err       error  // the worker's last error
	// Flows is the size of the leader's desired flow set for the chassis;
	// Sync counts its flow sync's work while this server led (the
	// stopped workers' sums included: it never goes back).
	Flows int
	Sync  flowsync.Stats
}

// keepStats adds a stopped worker's flow sync counters to the chassis'
// sum; c.mu held.
func (c *Controller) keepStats(name string, w *worker) {
	if c.synced == nil {
		c.synced = map[string]flowsync.Stats{}
	}
	c.synced[name] = addStats(c.synced[name], w.syncer.Stats())
}

func addStats(a, b flowsync.Stats) flowsync.Stats {
	return flowsync.Stats{Dumps: a.Dumps + b.Dumps, Bundles: a.Bundles + b.Bundles, Added: a.Added + b.Added,
		Deleted: a.Deleted + b.Deleted, Pruned: a.Pruned + b.Pruned, Unready: a.Unready + b.Unready, Errors: a.Errors + b.Errors}
}

// Status reports every chassis this server has a connection to or, while
// leading, a worker for; sorted by name.
func (c *Controller) Status() []ChassisStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	byName := map[string]*ChassisStatus{}
	get := func(n string) *ChassisStatus {
		if byName[n] == nil {
			byName[n] = &ChassisStatus{Chassis: n}
		}
		return byName[n]
	}
	for n, conn := range c.conns {
		st := get(n)
		st.Connected, st.Master = true, conn.IsMaster()
	}
	if c.sess != nil {
		for n, w := range c.sess.workers {
			st := get(n)
			st.Round, st.Realized, st.Err = c.sess.round, w.syncer.Realized(), w.lastErr()
			st.Flows, st.Sync = w.syncer.Desired(), addStats(c.synced[n], w.syncer.Stats())
			if st.Err == nil {
				st.Err = w.syncer.Err() // the last flow sync's failure
			}
		}
	}
	out := make([]ChassisStatus, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b ChassisStatus) int {
		switch {
		case a.Chassis < b.Chassis:
			return -1
		case a.Chassis > b.Chassis:
			return 1
		}
		return 0
	})
	return out
}

// WaitRealized blocks until the leader's syncer for chassis has realized
// revision rev; it fails at once when this server does not lead.
func (c *Controller) WaitRealized(ctx context.Context, chassis string, rev uint64) error {
	c.mu.Lock()
	var sy *flowsync.Syncer
	if c.sess != nil && c.sess.workers[chassis] != nil {
		sy = c.sess.workers[chassis].syncer
	}
	c.mu.Unlock()
	if sy == nil {
		return fmt.Errorf("controller: no worker for chassis %s", chassis)
	}
	return sy.WaitRealized(ctx, rev)
}

// periodic is how long to wait for the next periodic pass whose interval
// is base: a worker's OVSDB re-read (ResyncInterval) and self-check
// (VerifyInterval), and its OVSDB watches' backup pass (ovsdb.Config.Resync).
// It is base up to 100 chassis, stretched in proportion beyond, so that
// the leader spends about as much on periodic passes at 1,000 chassis as
// at 100 (at 1,000 they were 60% of its CPU while ports were added one by
// one), and -25..+25% at random, so that the workers a takeover started
// together do not all wake at once.
func (c *Controller) periodic(base time.Duration) time.Duration {
	f := max(1, float64(c.workerCount.Load())/100)
	return time.Duration(f * float64(base) * (0.75 + 0.5*rand.Float64()))
}

// CompileMismatches is how many times the periodic check found the
// incremental compile different from the full one (each one a bug).
func (c *Controller) CompileMismatches() int64 { return c.compileMismatches.Load() }

// WaitRealizedAll blocks until every chassis this leader runs a worker for
// has realized revision rev (like ovn-nbctl --wait=hv). It fails at once
// when this server does not lead. A chassis that goes down while waited
// for stops being waited for: its worker is stopped.
func (c *Controller) WaitRealizedAll(ctx context.Context, rev uint64) error {
	for {
		c.mu.Lock()
		s := c.sess
		var pending *worker
		if s != nil {
			for _, name := range sortedKeys(s.workers) {
				if w := s.workers[name]; w.syncer.Realized() < rev {
					pending = w
					break
				}
			}
		}
		c.mu.Unlock()
		if s == nil {
			return fmt.Errorf("controller: not leading")
		}
		if pending == nil {
			return nil
		}
		// Wait for that chassis, or for its worker to stop (chassis down).
		wctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(pending.ctx, cancel)
		err := pending.syncer.WaitRealized(wctx, rev)
		stop()
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("controller: revision %d not realized on %s: %w", rev, pending.name, ctx.Err())
		}
		_ = err // realized, or the worker stopped: look again
	}
}
