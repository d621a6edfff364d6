// Package cluster runs Neutrino's control-plane membership: Raft among the
// servers (hashicorp/raft with a raft-boltdb/v2 log and stable store and
// file snapshots, over TCP) and memberlist gossip among every agent.
//
// Ports: BindAddr "host:port" puts gossip on port (TCP and UDP) and the Raft
// transport on port+1 (TCP). A node's Raft ServerID is its NodeName, so an
// address change does not make it a different server.
//
// Lifecycle, in the order a reader meets it:
//
//   - Bootstrap (bootstrap.go): a server with no Raft state and
//     BootstrapExpect=N waits until gossip shows exactly N alive servers, all
//     expecting N and none already in a cluster, then bootstraps Raft with
//     those N; each of them computes the same list, so they agree.
//   - Join: with BootstrapExpect=0, or once any seen server is already in a
//     cluster, a new server waits; the leader adds every alive server it sees
//     in gossip as a voter (reconcile loop). A restarted server has Raft
//     state, never bootstraps again, and rejoins gossip from Join, else from
//     the peers file in DataDir and its Raft peers' addresses (port - 1).
//   - Apply (this file): commands go through raft.Apply on the leader;
//     followers get ErrNotLeader and the API layer forwards to
//     LeaderHTTPAddr.
//   - Snapshot: raft snapshots the FSM by SnapshotThreshold/SnapshotInterval
//     and keeps TrailingLogs entries after one.
//   - Leadership (leader.go): on gaining leadership the leader runs a
//     Barrier, sets the cluster epoch once, reconciles membership, and only
//     then publishes {IsLeader: true, Term} to subscribers.
//   - Removal (membership.go): RemoveServer by hand, and the leader's
//     dead-server cleanup after DeadServerCleanup.
//   - Integrity (logstore.go, preflight.go): every stored log entry carries
//     a CRC-32C checked on read; start-up verifies the whole log, raft.db's
//     bbolt meta pages and the newest snapshot, and fails with one line
//     naming the file and the fix rather than a panic.
//
// Gossip timings default to measured LAN figures (ProbeInterval 100ms,
// ProbeTimeout 50ms, SuspicionMult 2, GossipInterval 50ms: a crashed node
// is declared dead in about 0.4-0.6 s instead of memberlist's 6 s; see
// config.go and BenchmarkGossipDetect). A dead event reaches the leader's
// chassis reconciler at once (no debounce): it commits the chassis down in
// one Raft apply.
package cluster

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"neutrino/fsm"
)

// Sentinel errors callers branch on.
var (
	// ErrNotLeader means this node is not the Raft leader; forward the
	// request to LeaderHTTPAddr.
	ErrNotLeader = errors.New("cluster: not the leader")
	// ErrNoLeader means no leader is known right now; retry later.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrLeaderNotReady means this node leads but has not yet applied every
	// entry committed before it was elected, so it cannot serve consistent
	// reads yet.
	ErrLeaderNotReady = errors.New("cluster: leader not ready")
	// ErrNotServer means the call needs Raft and this node is a chassis agent.
	ErrNotServer = errors.New("cluster: not a server")
	// ErrUnknownOutcome means a command reached Raft but this node cannot
	// tell whether it committed (leadership lost, shutdown, or the caller's
	// deadline passed while it waited): it may or may not take effect.
	// Only a retry with the same request identity is safe.
	ErrUnknownOutcome = errors.New("cluster: outcome unknown")
)

// Cluster is one agent's view of and part in the cluster.
type Cluster struct {
	cfg   Config
	addrs addrs
	log   *slog.Logger
	fsm   *fsm.FSM

	// Raft; nil on a chassis agent. raftPub publishes it once startRaft
	// set it: the API runs (and asks IsLeader, Status) while Start still
	// restores the snapshot, so public methods test raftPub, not raft.
	raft     *raft.Raft
	raftPub  atomic.Pointer[raft.Raft]
	logStore *checkedStore
	snaps    *raft.FileSnapshotStore
	trans    *raft.NetworkTransport
	notifyCh chan bool

	gossip *memberlist.Memberlist
	// gossipTr is gossip's transport (tests cut it).
	gossipTr *gossipTransport
	// keyring encrypts gossip (nil: plaintext); keyringMu orders its
	// changes with saving it (keyring.go).
	keyring   *memberlist.Keyring
	keyringMu sync.Mutex

	metaMu sync.Mutex // serialises metadata read-modify-write
	mu     sync.Mutex // guards the fields below
	meta   NodeMeta
	// metaBuf is meta encoded; memberlist reads it from NodeMeta.
	metaBuf []byte
	members map[string]*Member
	// deadMembers counts members (this node aside) whose last status is
	// dead: the reconnect loop scans the list only when there are some.
	deadMembers int
	// certs, pending and rejected are the gossip identity's (identity.go):
	// certificates by fingerprint, events waiting for one, the last reason
	// each refused member was logged with.
	certs    map[string]*x509.Certificate
	pending  map[string]*pendingMember
	rejected map[string]string
	ownFP    string
	// identityRejections counts refused gossip events (identity.go).
	identityRejections atomic.Uint64
	// deadEvents counts members gossip declared dead (not left), for tests.
	deadEvents atomic.Uint64
	// cleanupKept counts dead servers cleanup kept for the minimum, for tests.
	cleanupKept atomic.Uint64
	// leaderChanges counts the leaders this node learned of (metrics.go).
	leaderChanges atomic.Uint64

	// readyTerm is the term in which this node finished establishing
	// leadership (barrier done, epoch set); 0 when it is not a ready leader.
	readyTerm atomic.Uint64
	leaders   broadcaster

	memberCh    chan struct{} // wakes the bootstrap/peers loop
	reconcileCh chan struct{} // wakes the leader's reconcile loop
	savedPeers  []string      // owned by serverLoop

	started    atomic.Bool
	running    atomic.Bool // Start returned successfully (Ready reads it)
	stopOnce   sync.Once
	shutdownCh chan struct{}
	wg         sync.WaitGroup
}

// New validates the configuration; Start brings the node up.
func New(cfg Config) (*Cluster, error) {
	a, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Cluster{
		cfg:         cfg,
		addrs:       a,
		log:         cfg.Logger.With("component", "cluster", "node", cfg.NodeName),
		fsm:         cfg.FSM,
		members:     make(map[string]*Member),
		memberCh:    make(chan struct{}, 1),
		reconcileCh: make(chan struct{}, 1),
		shutdownCh:  make(chan struct{}),
	}
	meta := cfg.Meta
	meta.Role, meta.HTTPAddr = RoleChassis, cfg.HTTPAddr
	meta.RaftAddr, meta.Expect, meta.Bootstrapped, meta.Leaving, meta.LeaderTerm = "", 0, false, false, 0
	if cfg.Server {
		meta.Role, meta.RaftAddr, meta.Expect = RoleServer, a.raftAdvertise, cfg.BootstrapExpect
		meta.Commands = cfg.knownCommands().String()
	}
	meta.Version = Version()
	if err := c.identityInit(); err != nil {
		return nil, err
	}
	// Refuse oversize metadata here: memberlist would panic on it later.
	if err := c.setMeta(meta); err != nil {
		return nil, err
	}
	return c, nil
}

// Start opens Raft state (servers), joins gossip and starts the loops.
func (c *Cluster) Start() (err error) {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("cluster: already started")
	}
	defer func() {
		if err != nil {
			c.closeAll()
		}
	}()
	if c.cfg.DataDir != "" {
		if err := os.MkdirAll(c.cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("cluster: create data dir: %w", err)
		}
	}
	if c.cfg.Server {
		if err := c.startRaft(); err != nil {
			return err
		}
	}
	if err := c.startGossip(); err != nil {
		return err
	}
	c.wg.Add(2)
	go c.joinLoop()
	go c.reconnectLoop()
	if c.cfg.Server {
		c.wg.Add(2)
		go c.serverLoop()
		go c.leadershipLoop()
	}
	c.running.Store(true)
	c.log.Info("started", "gossip", c.cfg.BindAddr, "raft", c.addrs.raftAdvertise, "server", c.cfg.Server)
	return nil
}

// Shutdown stops Raft and gossip without leaving: a stopped server stays a
// voter and is expected back with its data dir.
func (c *Cluster) Shutdown() error {
	var err error
	c.stopOnce.Do(func() {
		c.running.Store(false)
		close(c.shutdownCh)
		err = c.closeAll()
		c.leaders.close()
		c.log.Info("shut down")
	})
	return err
}

// closeAll releases whatever Start opened, in reverse order of dependence.
func (c *Cluster) closeAll() error {
	var errs []error
	if c.raft != nil {
		if err := c.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
	}
	if c.gossip != nil {
		if err := c.gossip.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("gossip shutdown: %w", err))
		}
	}
	select {
	case <-c.shutdownCh:
		c.wg.Wait()
	default: // Start failed before any loop ran.
	}
	if c.trans != nil {
		// raft.Shutdown closes it too; closing twice is safe.
		if err := c.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft transport close: %w", err))
		}
	}
	if c.logStore != nil {
		if err := c.logStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft store close: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// Apply proposes a command (built with fsm.Encode) and waits for it to be
// committed and applied. The result's Err is the state machine's verdict
// (e.g. an *fsm.Error); the returned error is about replication and says
// what the caller may assume:
//
//   - ErrNotLeader / ErrLeaderNotReady: the command was not appended; it
//     never takes effect here. A new leader waits (up to ctx's deadline)
//     until it has applied everything committed before its term, so its
//     allocations see the whole state.
//   - ErrCommandUnsupported: a server in the Raft configuration runs a
//     version that does not know the command's type (upgrade.go); not
//     appended.
//   - ErrUnknownOutcome: the command was handed to Raft and its fate is
//     unknown (leadership lost, shutdown, ctx ended while waiting).
func (c *Cluster) Apply(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	if c.raftPub.Load() == nil {
		return nil, ErrNotServer
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	if err := c.checkSupported(cmd); err != nil {
		return nil, err
	}
	return c.apply(ctx, cmd)
}

// apply is Apply without the readiness wait: establishing leadership itself
// proposes (the epoch) before the leader is ready.
func (c *Cluster) apply(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, fmt.Errorf("cluster: apply: not proposed: %w", context.DeadlineExceeded)
		}
	}
	f := c.raft.Apply(cmd, timeout)
	if err := waitFuture(ctx, f); err != nil {
		return nil, raftErr("apply", err)
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		return nil, fmt.Errorf("cluster: apply: unexpected FSM response %T", f.Response())
	}
	return res, nil
}

// WaitReady waits (up to ctx's deadline) until this node is a ready leader
// in its current term: every entry committed before its election applied,
// so state read for allocations is complete. ErrNotLeader when it does not
// lead, ErrLeaderNotReady when ctx ended first.
func (c *Cluster) WaitReady(ctx context.Context) error {
	if c.raftPub.Load() == nil {
		return ErrNotServer
	}
	return c.waitReady(ctx)
}

// waitReady waits until this node is a ready leader in its current term
// (barrier done), or reports ErrNotLeader / ErrLeaderNotReady.
func (c *Cluster) waitReady(ctx context.Context) error {
	var tick *time.Ticker
	for {
		if c.raft.State() != raft.Leader {
			return fmt.Errorf("cluster: apply: %w", ErrNotLeader)
		}
		if t := c.readyTerm.Load(); t != 0 && t == c.raft.CurrentTerm() {
			return nil
		}
		if tick == nil {
			tick = time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: apply: %w (%w)", ErrLeaderNotReady, ctx.Err())
		case <-c.shutdownCh:
			return fmt.Errorf("cluster: apply: %w", ErrNotLeader)
		case <-tick.C:
		}
	}
}

// waitFuture waits for a raft future or the context, whichever ends first.
func waitFuture(ctx context.Context, f raft.Future) error {
	if ctx.Done() == nil {
		return f.Error()
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// raftErr sorts raft's errors by what they mean for the command: never
// appended (ErrNotLeader) or fate unknown (ErrUnknownOutcome).
func raftErr(op string, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("cluster: %s: %w (%w)", op, ErrNotLeader, err)
	default:
		// ErrLeadershipLost, ErrRaftShutdown, a context that ended while
		// the entry was in flight: it may or may not commit.
		return fmt.Errorf("cluster: %s: %w (%w)", op, ErrUnknownOutcome, err)
	}
}

// DeadEvents counts the members gossip declared dead (not left) since
// start: a false death (e.g. during a keyring rotation) shows here.
func (c *Cluster) DeadEvents() uint64 { return c.deadEvents.Load() }

// IsLeader reports whether this node is the Raft leader.
func (c *Cluster) IsLeader() bool {
	return c.raftPub.Load() != nil && c.raft.State() == raft.Leader
}

// Leader returns the leader's node name and its advertised HTTP address from
// gossip; both are empty when no leader is known (always on an agent).
func (c *Cluster) Leader() (name, httpAddr string) {
	if c.raftPub.Load() == nil {
		return "", ""
	}
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return "", ""
	}
	m, _ := c.member(string(id))
	return string(id), m.Meta.HTTPAddr
}

// LeaderHTTPAddr returns where to forward writes, or ErrNoLeader.
func (c *Cluster) LeaderHTTPAddr() (string, error) {
	name, addr := c.Leader()
	if name == "" {
		return "", ErrNoLeader
	}
	if addr == "" {
		return "", fmt.Errorf("%w: leader %s has no HTTP address in gossip", ErrNoLeader, name)
	}
	return addr, nil
}

// WaitForLeader blocks until some node is known to lead, or ctx ends.
func (c *Cluster) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if name, _ := c.Leader(); name != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: wait for leader: %w (%w)", ErrNoLeader, ctx.Err())
		case <-t.C:
		}
	}
}

// VerifyLeader confirms, for a linearizable read, that this node still
// leads (a quorum answered) and has applied everything committed before its
// election.
func (c *Cluster) VerifyLeader(ctx context.Context) error {
	if c.raftPub.Load() == nil {
		return ErrNotServer
	}
	term := c.raft.CurrentTerm()
	if err := waitFuture(ctx, c.raft.VerifyLeader()); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("cluster: verify leader: %w", ErrNotLeader)
		}
		return fmt.Errorf("cluster: verify leader: %w", err)
	}
	// Same term before and after: the quorum confirmed the leadership whose
	// barrier readyTerm records, not a later one.
	if c.readyTerm.Load() != term || c.raft.CurrentTerm() != term {
		return ErrLeaderNotReady
	}
	return nil
}

// Term returns the current Raft term (0 on an agent).
func (c *Cluster) Term() uint64 {
	if c.raftPub.Load() == nil {
		return 0
	}
	return c.raft.CurrentTerm()
}

// Epoch returns the cluster epoch from the local FSM (0 until set).
func (c *Cluster) Epoch() uint64 {
	if c.fsm == nil {
		return 0
	}
	return c.fsm.State().Read().Epoch()
}

// Status is a point-in-time summary of this node's view of the cluster.
type Status struct {
	Node              string       // this node's name
	Leader            string       // the leader's name, empty when none is known
	Term              uint64       // current Raft term
	CommitIndex       uint64       // highest log index known committed
	AppliedIndex      uint64       // highest log index applied to the FSM
	LastSnapshotIndex uint64       // log index of the latest snapshot
	Revision          uint64       // FSM state revision
	Epoch             uint64       // cluster epoch, 0 until the first leader sets it
	Servers           []ServerInfo // the Raft configuration
}

// ServerInfo is one server of the Raft configuration.
type ServerInfo struct {
	Name    string // node name (Raft ServerID)
	Address string // Raft address
	Voter   bool   // false for a non-voter
	// State is "leader" for the leader; for this node its own Raft state
	// ("follower", "candidate"); for others their gossip status ("alive",
	// "dead", "left") or "unknown" when gossip has not seen them.
	State string
}

// Status reports Raft, FSM and membership state as this node sees it.
func (c *Cluster) Status() Status {
	s := Status{Node: c.cfg.NodeName}
	if c.fsm != nil {
		v := c.fsm.State().Read()
		s.Revision, s.Epoch = v.Revision(), v.Epoch()
	}
	if c.raftPub.Load() == nil {
		return s
	}
	s.Leader, _ = c.Leader()
	s.Term = c.raft.CurrentTerm()
	s.CommitIndex = c.raft.CommitIndex()
	s.AppliedIndex = c.raft.AppliedIndex()
	s.LastSnapshotIndex, _ = strconv.ParseUint(c.raft.Stats()["last_snapshot_index"], 10, 64)
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return s
	}
	for _, srv := range f.Configuration().Servers {
		info := ServerInfo{Name: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter, State: "unknown"}
		switch m, ok := c.member(info.Name); {
		case info.Name == s.Leader:
			info.State = "leader"
		case info.Name == c.cfg.NodeName:
			info.State = lowerState(c.raft.State())
		case ok:
			info.State = string(m.Status)
		}
		s.Servers = append(s.Servers, info)
	}
	return s
}

func lowerState(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Shutdown:
		return "shutdown"
	}
	return "unknown"
}
