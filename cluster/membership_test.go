package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// voters returns the sorted voter names of n's Raft configuration.
func voters(n *testNode) []string {
	var out []string
	for _, s := range n.c.Status().Servers {
		if s.Voter {
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return out
}

// waitVoters waits until the leader's configuration has exactly want.
func (tc *testCluster) waitVoters(want ...string) {
	tc.t.Helper()
	slices.Sort(want)
	eventually(tc.t, convergeWait, func() error {
		l := tc.leader()
		if got := voters(l); !slices.Equal(got, want) {
			return fmt.Errorf("voters %v, want %v", got, want)
		}
		return nil
	})
}

// addNode starts a new server that joins the cluster through its first
// running node, with no BootstrapExpect: the leader must add it.
func (tc *testCluster) addNode(name, dir string, port int) *testNode {
	tc.t.Helper()
	via := tc.running()[0]
	user := tc.nodes[0].tweak
	n := &testNode{name: name, dir: dir, port: port, tweak: func(c *Config) {
		if user != nil {
			user(c)
		}
		c.Join, c.BootstrapExpect = []string{via.gossipAddr()}, 0
	}}
	tc.nodes = append(tc.nodes, n)
	n.start(tc.t, true)
	return n
}

// Replacing a server: one is killed and its data dir lost, an operator
// removes it, and a new server under a new name takes its place and serves
// the same state. The lost server, started again under its old name with
// an empty data dir, joins as a voter too.
func TestRemoveServerAndReplace(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	ctx := context.Background()
	var ids []string
	for range 10 {
		ids = append(ids, tc.create(leader.c))
	}
	f := tc.followers()[0]
	others := []string{}
	for _, n := range tc.nodes {
		if n != f {
			others = append(others, n.name)
		}
	}

	// What is refused, and why.
	if err := f.c.RemoveServer(ctx, leader.name); !errors.Is(err, ErrNotLeader) {
		t.Errorf("remove on a follower: %v, want ErrNotLeader", err)
	}
	if err := leader.c.RemoveServer(ctx, leader.name); !errors.Is(err, ErrRemoveLeader) {
		t.Errorf("remove the leader: %v, want ErrRemoveLeader", err)
	}
	if err := leader.c.RemoveServer(ctx, f.name); !errors.Is(err, ErrServerAlive) {
		t.Errorf("remove an alive server: %v, want ErrServerAlive", err)
	}
	if err := leader.c.RemoveServer(ctx, "nosuch"); !errors.Is(err, ErrUnknownServer) {
		t.Errorf("remove an unknown server: %v, want ErrUnknownServer", err)
	}

	// Lose f and its data dir.
	f.stop(t)
	if err := os.RemoveAll(f.dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWait, func() error { return tc.leader().c.RemoveServer(ctx, f.name) })
	tc.waitVoters(others...)
	ids = append(ids, tc.create(tc.leader().c))

	// A replacement under a new name joins and serves the same state.
	s4 := tc.addNode("s4", t.TempDir(), freePortPair(t))
	tc.waitVoters(append(others, "s4")...)
	ids = append(ids, tc.create(tc.leader().c))
	tc.converged(tc.leader().fsm.State().Read().Revision(), ids)
	if got, want := s4.c.Status().Revision, tc.leader().c.Status().Revision; got != want {
		t.Fatalf("replacement at revision %d, leader at %d", got, want)
	}

	// The lost server, empty data dir and same name, joins again.
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	user := f.tweak
	f.tweak = func(c *Config) {
		if user != nil {
			user(c)
		}
		c.Join, c.BootstrapExpect = []string{s4.gossipAddr()}, 0
	}
	f.start(t, true)
	tc.waitVoters(append(others, "s4", f.name)...)
	ids = append(ids, tc.create(tc.leader().c))
	tc.converged(tc.leader().fsm.State().Read().Revision(), ids)
}

// The leader removes a server dead longer than DeadServerCleanup, not
// before; a replacement then joins and writes go on.
func TestDeadServerCleanup(t *testing.T) {
	const cleanup = 2 * time.Second
	tc := newTestCluster(t, 3, func(c *Config) { c.DeadServerCleanup = cleanup })
	leader := tc.leader()
	var ids []string
	for range 5 {
		ids = append(ids, tc.create(leader.c))
	}
	f := tc.followers()[0]
	var others []string
	for _, n := range tc.nodes {
		if n != f {
			others = append(others, n.name)
		}
	}
	stopped := time.Now()
	f.stop(t)
	tc.waitVoters(others...)
	if took := time.Since(stopped); took < cleanup {
		t.Fatalf("dead server removed after %s, before the cleanup time %s", took, cleanup)
	}
	ids = append(ids, tc.create(tc.leader().c))

	tc.addNode("s4", t.TempDir(), freePortPair(t))
	tc.waitVoters(append(others, "s4")...)
	for range 5 {
		ids = append(ids, tc.create(tc.leader().c))
	}
	tc.converged(tc.leader().fsm.State().Read().Revision(), ids)
}

// Cleanup never leaves fewer voters than the minimum quorum.
func TestDeadServerCleanupKeepsMinQuorum(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.DeadServerCleanup, c.MinQuorum = 500*time.Millisecond, 3 })
	f := tc.followers()[0]
	f.stop(t)
	eventually(t, convergeWait, func() error {
		if tc.leader().c.cleanupKept.Load() == 0 {
			return errors.New("cleanup has not considered the dead server yet")
		}
		return nil
	})
	if got := voters(tc.leader()); !slices.Contains(got, f.name) || len(got) != 3 {
		t.Fatalf("voters %v: the dead server was removed below the minimum quorum", got)
	}
	tc.create(tc.leader().c)
}

// A replacement joining while a voter is dead removes the dead one at once,
// however long the cleanup time.
func TestDeadServerRemovedWhenReplaced(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.DeadServerCleanup = time.Hour })
	f := tc.followers()[0]
	var others []string
	for _, n := range tc.nodes {
		if n != f {
			others = append(others, n.name)
		}
	}
	f.stop(t)
	eventually(t, convergeWait, func() error {
		if m, _ := tc.leader().c.member(f.name); m.Status == StatusAlive {
			return errors.New("still alive in gossip")
		}
		return nil
	})
	tc.addNode("s4", t.TempDir(), freePortPair(t))
	tc.waitVoters(append(others, "s4")...)
	tc.create(tc.leader().c)
}
