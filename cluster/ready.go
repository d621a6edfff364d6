package cluster

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// DefaultReadyMaxLag is how many committed entries a follower may still have
// to apply and count as caught up.
const DefaultReadyMaxLag = 1024

// Readiness conditions, as named in /readyz.
const (
	// CondRestored: the snapshot is restored and Raft runs (Start returned).
	CondRestored = "restored"
	// CondJoined: a server is in a Raft configuration; a chassis agent sees
	// an alive server in gossip.
	CondJoined = "joined"
	// CondLeaderKnown: a leader is known, with its API address in gossip.
	CondLeaderKnown = "leader_known"
	// CondCaughtUp: a follower heard from the leader recently and has
	// applied all but ReadyMaxLag of the entries it knows committed.
	CondCaughtUp = "caught_up"
	// CondLeaderBarrier: this server leads and has applied everything
	// committed before its term (cluster.Apply waits for this itself).
	CondLeaderBarrier = "leader_barrier"
)

// ErrNotReady is what a NotReadyError wraps.
var ErrNotReady = errors.New("cluster: not ready")

// Missing is one readiness condition that does not hold, and why.
type Missing struct {
	Condition string `json:"condition"`
	Detail    string `json:"detail"`
}

// NotReadyError lists the readiness conditions that do not hold.
type NotReadyError struct {
	Missing []Missing
}

func (e *NotReadyError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = m.Condition + ": " + m.Detail
	}
	return "cluster: not ready (" + strings.Join(parts, "; ") + ")"
}

// Unwrap makes errors.Is(err, ErrNotReady) hold.
func (e *NotReadyError) Unwrap() error { return ErrNotReady }

// Serveable reports whether API requests may be let in although the
// server is not ready: it has restored its state and joined, and only
// waits for a leader, to catch up, or for its own barrier as leader. Those
// waits are bounded where the request meets them (the forwarder waits for
// a leader about an election's time, Apply waits for the barrier), so a
// write during an election goes to the new leader instead of failing.
func (e *NotReadyError) Serveable() bool {
	for _, m := range e.Missing {
		if m.Condition == CondRestored || m.Condition == CondJoined {
			return false
		}
	}
	return true
}

// Ready may be called at any time, also while Start runs.
//
// Ready reports nil when this node can serve the API, else a
// *NotReadyError naming every condition missing. A server is ready when it
// runs Raft (its snapshot restored), is in a Raft configuration, knows a
// leader with an API address, and either is that leader with its barrier
// done or, as a follower, heard from it within two heartbeat timeouts and
// lags at most ReadyMaxLag entries behind the commit index it knows. A
// chassis agent is ready when gossip shows an alive server and an alive
// server announces that it leads (NodeMeta.LeaderTerm).
//
// A follower's commit index is the leader's as far as the follower has the
// log (hashicorp/raft takes the minimum of the two): a follower still
// receiving its log counts as caught up with what it has. Only stale reads
// are served from a follower's replica, so this bounds their staleness,
// not their correctness.
func (c *Cluster) Ready() error {
	var miss []Missing
	add := func(cond, format string, args ...any) {
		miss = append(miss, Missing{Condition: cond, Detail: fmt.Sprintf(format, args...)})
	}
	switch {
	case !c.running.Load():
		// Start (raft.NewRaft) restores the snapshot before it returns.
		add(CondRestored, "starting: restoring the snapshot and opening the log")
	case c.cfg.Server:
		c.raftReady(add)
	default:
		servers, leaders := c.gossipServers()
		if servers == 0 {
			add(CondJoined, "gossip shows no alive server")
		}
		if leaders == 0 {
			add(CondLeaderKnown, "no alive server announces leadership in gossip")
		}
	}
	if len(miss) == 0 {
		return nil
	}
	return &NotReadyError{Missing: miss}
}

func (c *Cluster) raftReady(add func(cond, format string, args ...any)) {
	self := raft.ServerID(c.cfg.NodeName)
	inConfig := false
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			inConfig = inConfig || s.ID == self
		}
	}
	if !inConfig {
		add(CondJoined, "not in a raft configuration yet")
	}
	name, addr := c.Leader()
	switch {
	case name == "":
		add(CondLeaderKnown, "no leader known")
		return
	case addr == "" && name != c.cfg.NodeName:
		add(CondLeaderKnown, "leader %s has no API address in gossip yet", name)
		return
	}
	if c.raft.State() == raft.Leader {
		if t := c.readyTerm.Load(); t == 0 || t != c.raft.CurrentTerm() {
			add(CondLeaderBarrier, "leading term %d, still applying entries of earlier terms", c.raft.CurrentTerm())
		}
		return
	}
	maxLag := c.cfg.ReadyMaxLag
	if since := time.Since(c.raft.LastContact()); since > 2*c.cfg.HeartbeatTimeout {
		add(CondCaughtUp, "last contact with the leader %s ago", since.Round(time.Millisecond))
	} else if applied, commit := c.raft.AppliedIndex(), c.raft.CommitIndex(); applied+maxLag < commit {
		add(CondCaughtUp, "applied index %d, commit index %d (max lag %d)", applied, commit, maxLag)
	}
}

// gossipServers counts the alive servers in gossip, and those of them
// that announce leadership (LeaderTerm).
func (c *Cluster) gossipServers() (servers, leaders int) {
	for _, m := range c.Members() {
		if m.Status == StatusAlive && m.Meta.Role == RoleServer {
			servers++
			if m.Meta.LeaderTerm != 0 {
				leaders++
			}
		}
	}
	return servers, leaders
}
