package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Removing servers: by hand (RemoveServer, `neutrino cluster remove-server`)
// and by the leader's dead-server cleanup (autopilot, as Consul's). Adding
// is reconcile's job (raft.go): the leader makes every alive server in
// gossip a voter, so a server started with an empty data dir, under its old
// name or a new one, joins again by itself.

// Errors of RemoveServer callers branch on.
var (
	// ErrUnknownServer means the name is not in the Raft configuration.
	ErrUnknownServer = errors.New("cluster: no such server in the raft configuration")
	// ErrRemoveLeader means the server to remove is the leader itself.
	ErrRemoveLeader = errors.New("cluster: cannot remove the leader")
	// ErrServerAlive means gossip shows the server alive: the leader would
	// add it back at once.
	ErrServerAlive = errors.New("cluster: server is alive")
)

// DefaultDeadServerCleanup is how long a voter must have been dead or gone
// in gossip before the leader removes it. Ten minutes outlasts a restart or
// a reboot, so maintenance does not churn the Raft configuration, and is
// short next to how long a cluster should run one failure away from losing
// its quorum. Removing a server that comes back later costs little: it is
// alive in gossip again, and reconcile adds it back as a voter.
const DefaultDeadServerCleanup = 10 * time.Minute

// RemoveServer removes a server from the Raft configuration. It must run
// on the leader (ErrNotLeader otherwise). It refuses the leader itself
// (stop it first: another server takes over within an election timeout
// and can then remove it) and a server gossip shows alive (stop it first,
// or reconcile adds it straight back).
func (c *Cluster) RemoveServer(ctx context.Context, name string) error {
	if c.raftPub.Load() == nil {
		return ErrNotServer
	}
	if c.raft.State() != raft.Leader {
		return fmt.Errorf("cluster: remove server: %w", ErrNotLeader)
	}
	if name == c.cfg.NodeName {
		return fmt.Errorf("%w: %s leads; stop it and run this again once another server leads", ErrRemoveLeader, name)
	}
	if _, ok := c.findServer(name); !ok {
		return fmt.Errorf("%w: %s", ErrUnknownServer, name)
	}
	if m, ok := c.member(name); ok && m.Status == StatusAlive {
		return fmt.Errorf("%w: %s answers gossip; stop it first (the leader adds alive servers back)", ErrServerAlive, name)
	}
	return c.removeServer(ctx, name, "requested")
}

func (c *Cluster) findServer(name string) (raft.Server, bool) {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return raft.Server{}, false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(name) {
			return s, true
		}
	}
	return raft.Server{}, false
}

func (c *Cluster) removeServer(ctx context.Context, name, why string) error {
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	f := c.raft.RemoveServer(raft.ServerID(name), 0, timeout)
	if err := waitFuture(ctx, f); err != nil {
		return raftErr("remove server", err)
	}
	c.log.Info("removed raft server", "member", name, "why", why)
	return nil
}

// minVoters is the fewest voters dead-server cleanup may leave: a quorum
// of the size the cluster was built with (the largest --bootstrap-expect
// among this server and the servers in gossip: 2 of 3, 3 of 5), or
// Config.MinQuorum when set. Below that, a cluster would keep running with
// less redundancy than it was designed for without anyone deciding so.
func (c *Cluster) minVoters() int {
	if c.cfg.MinQuorum > 0 {
		return c.cfg.MinQuorum
	}
	expect := c.cfg.BootstrapExpect
	for _, m := range c.Members() {
		if m.Meta.Role == RoleServer {
			expect = max(expect, m.Meta.Expect)
		}
	}
	if expect == 0 {
		return 2
	}
	return expect/2 + 1
}

// deadTracker remembers since when, as this leader saw it, each voter has
// not been alive in gossip. It lives in one leader loop: a new leader
// starts counting afresh, which only ever delays a removal.
type deadTracker struct {
	since map[raft.ServerID]time.Time
	// kept holds the servers already logged as kept for the minimum, so
	// the warning is not repeated every pass.
	kept map[raft.ServerID]bool
}

func newDeadTracker() *deadTracker {
	return &deadTracker{since: map[raft.ServerID]time.Time{}, kept: map[raft.ServerID]bool{}}
}

func (d *deadTracker) forget(id raft.ServerID) {
	delete(d.since, id)
	delete(d.kept, id)
}

// cleanupDead removes voters that have been dead, left or unknown in gossip
// for longer than DeadServerCleanup, one at a time, as long as at least
// minVoters remain. A voter beyond the designed size (a replacement has
// joined) goes at once, as Consul's autopilot removes a dead server when
// its replacement joins.
func (c *Cluster) cleanupDead(dead *deadTracker, now time.Time) {
	if c.cfg.DeadServerCleanup <= 0 {
		return
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return
	}
	voters := 0
	present := map[raft.ServerID]bool{}
	for _, s := range f.Configuration().Servers {
		present[s.ID] = true
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	for id := range dead.since {
		if !present[id] {
			dead.forget(id)
		}
	}
	expect := c.minVoters()*2 - 1 // the designed size, odd
	for _, s := range f.Configuration().Servers {
		if s.ID == raft.ServerID(c.cfg.NodeName) {
			continue
		}
		if m, ok := c.member(string(s.ID)); ok && m.Status == StatusAlive {
			dead.forget(s.ID)
			continue
		}
		since, ok := dead.since[s.ID]
		if !ok {
			dead.since[s.ID] = now
			since = now
		}
		replaced := voters > expect
		if now.Sub(since) < c.cfg.DeadServerCleanup && !replaced {
			continue
		}
		if s.Suffrage == raft.Voter && voters-1 < c.minVoters() {
			if !dead.kept[s.ID] {
				dead.kept[s.ID] = true
				c.cleanupKept.Add(1)
				c.log.Warn("dead server kept: removing it would leave fewer voters than the minimum",
					"member", s.ID, "voters", voters, "min_voters", c.minVoters())
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		why := fmt.Sprintf("not alive in gossip for %s", now.Sub(since).Round(time.Second))
		if replaced {
			why = fmt.Sprintf("not alive in gossip and %d voters exceed the designed %d", voters, expect)
		}
		err := c.removeServer(ctx, string(s.ID), why)
		cancel()
		if err != nil {
			c.log.Warn("dead server cleanup failed", "member", s.ID, "err", err)
			return
		}
		dead.forget(s.ID)
		if s.Suffrage == raft.Voter {
			voters--
		}
	}
}
