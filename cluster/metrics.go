package cluster

import (
	"github.com/hashicorp/raft"
)

// Numbers the agent exports as metrics that the cluster alone can see.

// LeaderChanges counts the leaders this node learned of since it started
// (the first one included): each Raft observation of a new, known leader.
func (c *Cluster) LeaderChanges() uint64 { return c.leaderChanges.Load() }

// HealthScore is memberlist's Lifeguard awareness of this node: 0 is
// healthy; it rises with probes of others that failed here (and refuted
// suspicions of us) and falls with successful ones.
func (c *Cluster) HealthScore() int {
	if c.gossip == nil {
		return 0
	}
	return c.gossip.GetHealthScore()
}

// observeLeaders counts leader changes until shutdown. Raft reports a
// change of its leader view only when it differs from the last one, and
// an empty leader while an election runs; every known leader counts.
func (c *Cluster) observeLeaders(r *raft.Raft) {
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer r.DeregisterObserver(obs)
		for {
			select {
			case o := <-ch:
				if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
					c.leaderChanges.Add(1)
				}
			case <-c.shutdownCh:
				return
			}
		}
	}()
}
