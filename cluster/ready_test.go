package cluster

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func missingConds(err error) []string {
	var nr *NotReadyError
	if !errors.As(err, &nr) {
		return nil
	}
	var out []string
	for _, m := range nr.Missing {
		out = append(out, m.Condition)
	}
	return out
}

// TestReadyConditions: a server is not ready before Start; every server of
// a cluster with a leader is; a follower that loses its leader is not
// (leader_known or caught_up) until a new one is elected.
func TestReadyConditions(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	c, err := New(tc.nodes[0].config())
	if err != nil {
		t.Fatal(err)
	}
	if got := missingConds(c.Ready()); !slices.Equal(got, []string{CondRestored}) {
		t.Fatalf("before Start: missing %v, want [restored]", got)
	}

	leader := tc.leader()
	tc.create(leader.c)
	allReady := func() error {
		for _, n := range tc.running() {
			if err := n.c.Ready(); err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
		}
		return nil
	}
	eventually(t, electionWait, allReady)

	// Each follower must be seen without a leader (or stale) at least once
	// before a new leader is elected. The window lasts from its heartbeat
	// timeout to the election and may pass while the old leader is still
	// shutting down, so the watch starts before the stop and polls often.
	followers := tc.followers()
	seen := make(chan map[string][]string, 1)
	go func() {
		got := map[string][]string{}
		deadline := time.Now().Add(electionWait)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for len(got) < len(followers) && time.Now().Before(deadline) {
			for _, n := range followers {
				if m := missingConds(n.c.Ready()); slices.Contains(m, CondLeaderKnown) || slices.Contains(m, CondCaughtUp) {
					got[n.name] = m
				}
			}
			<-tick.C
		}
		seen <- got
	}()
	leader.stop(t)
	if got := <-seen; len(got) < len(followers) {
		t.Fatalf("not every follower was seen unready after its leader stopped: %v", got)
	}
	tc.leader()
	eventually(t, electionWait, allReady)
}
