package sim_test

import (
	"testing"
	"time"

	"neutrino/scenarios/sim"
)

// TestScaledTimings: a pool's gossip intervals stay at the simulator's
// up to 100 chassis and stretch in proportion beyond, within their caps.
func TestScaledTimings(t *testing.T) {
	for _, c := range []struct {
		n             int
		probe, gossip time.Duration
	}{
		{1, sim.SimProbeInterval, sim.SimGossipInterval},
		{100, sim.SimProbeInterval, sim.SimGossipInterval},
		{300, 3 * time.Second, 750 * time.Millisecond},
		{1000, 5 * time.Second, 2 * time.Second},
		{5000, 5 * time.Second, 2 * time.Second},
	} {
		probe, gossip := sim.ScaledTimings(c.n)
		if probe != c.probe || gossip != c.gossip {
			t.Errorf("%d chassis: probe %s, gossip %s; want %s, %s", c.n, probe, gossip, c.probe, c.gossip)
		}
	}
}
