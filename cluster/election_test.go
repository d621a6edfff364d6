package cluster

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// lanTimeouts drops the harness's 500 ms timeouts so the cluster runs with
// the LAN values at DefaultRaftMultiplier (also under -race, whose builds
// default to RaceRaftMultiplier).
func lanTimeouts(c *Config) {
	c.HeartbeatTimeout, c.ElectionTimeout = 0, 0
	c.RaftMultiplier = DefaultRaftMultiplier
}

// lanBound is ElectionBound of the default configuration.
func lanBound() time.Duration {
	c := Config{}
	lanTimeouts(&c)
	c.setDefaults()
	return c.ElectionBound()
}

// anyLeader reports the running node that Raft says leads, if any; it
// does not wait for the barrier, so it marks the moment of election.
func (tc *testCluster) anyLeader() (*testNode, error) {
	for _, n := range tc.running() {
		if n.c.IsLeader() {
			return n, nil
		}
	}
	return nil, errors.New("no leader")
}

// crashLeader stops the ready leader abruptly (raft and gossip shut down,
// no leadership transfer, no Leave) and returns it with the time it went.
// The leader stops heartbeating as Shutdown begins, but Shutdown itself
// may take up to a second waiting for the cluster's loops, so it runs in
// the background; wait for the returned channel before restarting.
func (tc *testCluster) crashLeader() (old *testNode, t0 time.Time, stopped chan struct{}) {
	old = tc.leader()
	c := old.c
	old.c = nil // no longer running
	stopped = make(chan struct{})
	t0 = time.Now()
	go func() {
		defer close(stopped)
		if err := c.Shutdown(); err != nil {
			tc.t.Errorf("shutdown %s: %v", old.name, err)
		}
	}()
	return old, t0, stopped
}

// TestLeaderElectionWithinBound kills the leader of a 3-server cluster with
// the default LAN timeouts (multiplier 2) three times and requires a new
// leader each time within the documented bound (ElectionBound, 2 s; 1.5x
// under -race, whose stalls on a loaded box add to it).
// BenchmarkLeaderElection measures the real figure. hashicorp/raft's
// defaults (multiplier 5, bound 5 s, about 2.3 s measured) fail it.
func TestLeaderElectionWithinBound(t *testing.T) {
	bound := lanBound()
	if bound != 2*time.Second {
		t.Fatalf("ElectionBound of the defaults is %s, documented as 2 s", bound)
	}
	deadline := bound
	if raceEnabled {
		deadline = bound * 3 / 2
	}
	tc := newTestCluster(t, 3, lanTimeouts)
	for round := range 3 {
		old, t0, stopped := tc.crashLeader()
		var got *testNode
		eventually(t, deadline, func() error {
			n, err := tc.anyLeader()
			got = n
			return err
		})
		t.Logf("round %d: %s crashed, %s leads after %s", round, old.name, got.name, time.Since(t0).Round(time.Millisecond))
		<-stopped
		old.start(t, false)
		tc.leader() // all three agree again before the next crash
	}
}

// TestRaftIdleNoElection runs an idle 3-server cluster with the LAN
// timeouts for 20 s (5 s with -short) and fails on any leader change, term
// change or candidate: the 400 ms heartbeat timeout (multiplier 2) must not
// fire while the leader is alive. Under -race it runs at multiplier 3: the
// race detector on a loaded 2-core box stalled the 3-server process past
// 400 ms (a re-election at load average 13), which says nothing about the
// binaries, built without it (passed at load average 38).
func TestRaftIdleNoElection(t *testing.T) {
	watch := 20 * time.Second
	if testing.Short() {
		watch = 5 * time.Second
	}
	tweak := lanTimeouts
	if raceEnabled {
		tweak = func(c *Config) { lanTimeouts(c); c.RaftMultiplier = 3 }
	}
	tc := newTestCluster(t, 3, tweak)
	leader := tc.leader()
	terms := map[string]uint64{}
	for _, n := range tc.running() {
		terms[n.name] = n.c.Term()
	}
	check := func() error {
		for _, n := range tc.running() {
			if name, _ := n.c.Leader(); name != leader.name {
				return fmt.Errorf("%s sees leader %q, want %s", n.name, name, leader.name)
			}
			if got := n.c.Term(); got != terms[n.name] {
				return fmt.Errorf("%s moved from term %d to %d", n.name, terms[n.name], got)
			}
			if st := n.c.raft.State().String(); n != leader && st != "Follower" {
				return fmt.Errorf("%s is %s", n.name, st)
			}
		}
		return nil
	}
	// Every 20 ms, shorter than any candidacy (at least one election
	// timeout), until the watch period is over.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(watch); time.Now().Before(end); <-tick.C {
		if err := check(); err != nil {
			t.Fatalf("spurious election in an idle cluster: %v", err)
		}
	}
}

// BenchmarkLeaderElection measures the time from the leader's crash until
// another server is Raft leader (not yet ready: barrier and epoch follow)
// on a 3-server cluster on loopback, with the LAN timeouts at multiplier 1,
// at the default 2, and at RaftMultiplier 5, hashicorp/raft's defaults (x5); the crashed server
// restarts between rounds. At least 5 rounds per run.
func BenchmarkLeaderElection(b *testing.B) {
	for _, mult := range []int{1, 2, 5} {
		b.Run(fmt.Sprintf("x%d", mult), func(b *testing.B) {
			benchElection(b, func(c *Config) {
				lanTimeouts(c)
				c.RaftMultiplier = mult
			})
		})
	}
}

func benchElection(b *testing.B, tweak func(*Config)) {
	tc := newTestCluster(b, 3, tweak)
	var ms []float64
	b.ResetTimer()
	for range max(b.N, 5) {
		old, t0, stopped := tc.crashLeader()
		for {
			if _, err := tc.anyLeader(); err == nil {
				break
			}
			if time.Since(t0) > electionWait {
				b.Fatal("no new leader within", electionWait)
			}
			time.Sleep(time.Millisecond) // poll: the measured figure is ms
		}
		ms = append(ms, float64(time.Since(t0))/float64(time.Millisecond))
		<-stopped
		old.start(b, false)
		tc.leader()
	}
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)/2], "p50-ms")
	b.ReportMetric(ms[len(ms)-1], "max-ms")
	b.ReportMetric(ms[0], "min-ms")
}

// TestRaftMultiplier checks the scaling of the Raft timeouts: multiplier 5
// has hashicorp/raft's default heartbeat and election timeouts, explicit
// timeouts win, and a multiplier out of 1..10 is refused.
func TestRaftMultiplier(t *testing.T) {
	base := Config{NodeName: "n", BindAddr: "127.0.0.1:7301"}
	defMS := 400 // DefaultRaftMultiplier 2
	if raceEnabled {
		defMS = 1000 // RaceRaftMultiplier 5
	}
	for _, tt := range []struct {
		mult, hbMS, elMS, leaseMS int
		hb                        time.Duration
	}{
		{mult: 0, hbMS: defMS, elMS: defMS, leaseMS: defMS},
		{mult: 1, hbMS: 200, elMS: 200, leaseMS: 200},
		{mult: 5, hbMS: 1000, elMS: 1000, leaseMS: 1000},
		{mult: 5, hb: 300 * time.Millisecond, hbMS: 300, elMS: 1000, leaseMS: 300},
	} {
		c := base
		c.RaftMultiplier, c.HeartbeatTimeout = tt.mult, tt.hb
		if _, err := c.validate(); err != nil {
			t.Fatalf("multiplier %d: %v", tt.mult, err)
		}
		c.setDefaults()
		ms := time.Millisecond
		if c.HeartbeatTimeout != time.Duration(tt.hbMS)*ms || c.ElectionTimeout != time.Duration(tt.elMS)*ms ||
			c.LeaderLeaseTimeout != time.Duration(tt.leaseMS)*ms || c.CommitTimeout != DefaultCommitTimeout {
			t.Errorf("multiplier %d, heartbeat %s: got heartbeat %s, election %s, lease %s, commit %s", tt.mult, tt.hb,
				c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.CommitTimeout)
		}
	}
	for _, bad := range []int{-1, 11} {
		c := base
		c.RaftMultiplier = bad
		if _, err := c.validate(); err == nil {
			t.Errorf("multiplier %d accepted", bad)
		}
	}
}
