package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotsRetained is how many snapshots FileSnapshotStore keeps.
const snapshotsRetained = 2

// startRaft opens the stores in DataDir/raft and starts the Raft node.
func (c *Cluster) startRaft() error {
	dir := c.cfg.raftDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: create raft dir: %w", err)
	}
	hlog := newHCLog(c.log, "raft")

	// Every stored entry is verified before raft reads any: raft panics on
	// a log read error while it starts. 10k entries take 14-30 ms
	// (BenchmarkVerifyLog).
	dbPath := filepath.Join(dir, "raft.db")
	t0 := time.Now()
	bolt, n, err := c.openBoltStore(dbPath)
	if err != nil {
		return err
	}
	if n > 0 {
		c.log.Info("raft log verified", "entries", n, "took", time.Since(t0).Round(time.Millisecond))
	}
	store, err := newCheckedStore(bolt, dbPath, c.cfg.NodeName, c.cfg.DataDir, c.fatal)
	if err != nil {
		bolt.Close()
		return fmt.Errorf("%w; fix: %s", err, c.wipeFix())
	}
	c.logStore = store
	if store.from > 1 {
		c.log.Warn("raft log from before checksums: older entries are trusted unverified until compacted",
			"checksummed_from_index", store.from)
	}

	snapDir := filepath.Join(dir, "snapshots")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, hlog)
	if err != nil {
		return fmt.Errorf("cluster: snapshot dir %s unusable: %w; fix: make it a writable directory, or %s", snapDir, err, c.wipeFix())
	}
	c.snaps = snaps
	if err := c.checkSnapshots(snaps, snapDir); err != nil {
		return err
	}

	adv, err := net.ResolveTCPAddr("tcp", c.addrs.raftAdvertise)
	if err != nil {
		return fmt.Errorf("cluster: raft advertise address: %w", err)
	}
	var trans *raft.NetworkTransport
	if c.cfg.TLS != nil {
		var stream *tlsStreamLayer
		if stream, err = newTLSStreamLayer(c.addrs.raftBind, adv, c.cfg.TLS); err == nil {
			trans = raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, hlog)
		}
	} else {
		trans, err = raft.NewTCPTransportWithLogger(c.addrs.raftBind, adv, 3, 10*time.Second, hlog)
	}
	if err != nil {
		return fmt.Errorf("cluster: raft transport on %s: %w", c.addrs.raftBind, err)
	}
	c.trans = trans

	hasState, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: read raft state: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.cfg.NodeName)
	rc.Logger = hlog
	rc.HeartbeatTimeout = c.cfg.HeartbeatTimeout
	rc.ElectionTimeout = c.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = c.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = c.cfg.CommitTimeout
	rc.SnapshotThreshold = c.cfg.SnapshotThreshold
	rc.SnapshotInterval = c.cfg.SnapshotInterval
	rc.TrailingLogs = c.cfg.TrailingLogs
	// Raft blocks on NotifyCh until we read it, so no transition is lost
	// (LeaderCh drops them); the buffer only keeps raft from waiting on us.
	c.notifyCh = make(chan bool, 16)
	rc.NotifyCh = c.notifyCh

	r, err := newRaft(rc, c.fsm, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	c.raft = r
	c.raftPub.Store(r)
	c.observeLeaders(r)
	if hasState {
		// Tell the others we belong to a cluster, so nobody bootstraps with us.
		if err := c.changeOwnMeta(func(m *NodeMeta) { m.Bootstrapped = true }); err != nil {
			return err
		}
		c.log.Info("resuming from existing raft state", "last_index", r.LastIndex())
	}
	return nil
}

// newRaft is raft.NewRaft with its panics (on a log or configuration it
// cannot read) turned into an error.
func newRaft(rc *raft.Config, f raft.FSM, store *checkedStore, snaps raft.SnapshotStore, trans raft.Transport) (r *raft.Raft, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, p)
		}
	}()
	return raft.NewRaft(rc, f, store, store, snaps, trans)
}

// fatal is called when a stored entry fails verification while running:
// this server must stop before raft acts on the error (it panics in its
// apply path). Config.OnFatal exits the process in the agent.
func (c *Cluster) fatal(err error) {
	c.log.Error("stopping: stored raft data is corrupt", "err", err)
	if c.cfg.OnFatal != nil {
		c.cfg.OnFatal(err)
	}
}

// serverLoop bootstraps a new cluster when BootstrapExpect allows, notices
// when this server has been added to a cluster, and persists gossip peers
// for the next restart.
func (c *Cluster) serverLoop() {
	defer c.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if !c.bootstrapped() {
			c.maybeBootstrap()
		}
		c.persistPeers()
		select {
		case <-c.shutdownCh:
			return
		case <-c.memberCh:
		case <-t.C:
		}
	}
}

// bootstrapped reports whether this server is part of a Raft configuration,
// announcing it in gossip the first time.
func (c *Cluster) bootstrapped() bool {
	c.mu.Lock()
	done := c.meta.Bootstrapped
	c.mu.Unlock()
	if done {
		return true
	}
	f := c.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) == 0 {
		return false
	}
	c.log.Info("part of a raft cluster", "servers", len(f.Configuration().Servers))
	if err := c.changeOwnMeta(func(m *NodeMeta) { m.Bootstrapped = true }); err != nil {
		c.log.Error("cannot announce raft membership", "err", err)
	}
	return true
}

// maybeBootstrap bootstraps Raft when gossip shows exactly BootstrapExpect
// alive servers that all expect that many and none of which is already in a
// cluster. Every one of them sees the same servers and builds the same
// configuration, so their independent bootstraps agree.
func (c *Cluster) maybeBootstrap() {
	expect := c.cfg.BootstrapExpect
	if expect == 0 {
		return // wait for a leader to add us
	}
	var servers []Member
	for _, m := range c.Members() {
		if m.Status != StatusAlive || m.Meta.Role != RoleServer {
			continue
		}
		if m.Meta.Bootstrapped {
			c.log.Debug("a cluster exists; waiting to be added", "seen", m.Name)
			return
		}
		if m.Meta.Expect != expect {
			c.log.Warn("server expects a different cluster size; not bootstrapping",
				"member", m.Name, "its_expect", m.Meta.Expect, "our_expect", expect)
			return
		}
		servers = append(servers, m)
	}
	if len(servers) != expect {
		if len(servers) > expect {
			c.log.Warn("more servers than BootstrapExpect; not bootstrapping", "seen", len(servers), "expect", expect)
		}
		return
	}
	var conf raft.Configuration
	for _, m := range servers { // Members is sorted by name
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.Meta.RaftAddr),
		})
	}
	err := c.raft.BootstrapCluster(conf).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		c.log.Error("bootstrap failed", "err", err)
		return
	}
	c.log.Info("bootstrapped raft", "servers", serverNames(conf))
}

func serverNames(conf raft.Configuration) []string {
	var out []string
	for _, s := range conf.Servers {
		out = append(out, string(s.ID))
	}
	return out
}

// raftPeerGossipAddrs derives the gossip addresses of the other servers in
// the Raft configuration (gossip runs on the Raft port - 1).
func (c *Cluster) raftPeerGossipAddrs() []string {
	if c.raft == nil {
		return nil
	}
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(c.cfg.NodeName) {
			continue
		}
		host, portStr, err := net.SplitHostPort(string(s.Address))
		port, perr := strconv.Atoi(portStr)
		if err != nil || perr != nil {
			continue
		}
		out = append(out, net.JoinHostPort(host, strconv.Itoa(port-1)))
	}
	return out
}

// reconcile makes every alive server in gossip a Raft voter. It never
// removes servers (a failed server is expected back with its data dir);
// cleanupDead (membership.go) does, after DeadServerCleanup.
func (c *Cluster) reconcile() {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		c.log.Warn("reconcile: read raft configuration", "err", err)
		return
	}
	servers := f.Configuration().Servers
	for _, m := range c.Members() {
		if m.Status != StatusAlive || m.Meta.Role != RoleServer || m.Meta.RaftAddr == "" || m.Name == c.cfg.NodeName {
			continue
		}
		id, addr := raft.ServerID(m.Name), raft.ServerAddress(m.Meta.RaftAddr)
		if slices.ContainsFunc(servers, func(s raft.Server) bool {
			return s.ID == id && s.Address == addr && s.Suffrage == raft.Voter
		}) {
			continue
		}
		// After an upgrade is finalized, a server of an older version
		// would stop on the log's first newer command.
		if err := c.canJoin(m); err != nil {
			c.log.Warn("reconcile: not adding a server of an older version", "member", m.Name, "err", err)
			continue
		}
		// With TLS, a server joins Raft only if its Raft listener shows a
		// server certificate of our CA naming the member it claims to
		// be: a voter nobody can talk to would only weaken the quorum.
		if err := c.verifyServerCert(m.Name, addr); err != nil {
			c.log.Warn("reconcile: not adding a server whose certificate does not check out", "member", m.Name, "addr", addr, "err", err)
			continue
		}
		// AddVoter also updates the address of, or promotes, a known ID.
		if err := c.raft.AddVoter(id, addr, 0, 10*time.Second).Error(); err != nil {
			c.log.Warn("reconcile: add voter failed", "member", m.Name, "err", err)
			continue
		}
		c.log.Info("added raft voter", "member", m.Name, "addr", addr)
	}
}
