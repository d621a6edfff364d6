package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"neutrino/fsm"
)

func TestBootstrapExpectApplyConverge(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	ctx := context.Background()

	// Leadership is published to subscribers that arrive late, too.
	events, cancel := leader.c.SubscribeLeadership()
	defer cancel()
	select {
	case ev := <-events:
		if !ev.IsLeader || ev.Term != leader.c.Term() {
			t.Fatalf("leadership event %+v, want leader in term %d", ev, leader.c.Term())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no leadership event on the leader")
	}

	var ids []string
	for range 20 {
		ids = append(ids, tc.create(leader.c))
	}
	rev := leader.fsm.State().Read().Revision()
	tc.converged(rev, ids)

	// A validation failure reaches the caller as the result's Err.
	_, cmd := tc.networkCmd()
	dup, err := fsm.Encode(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{{
		Meta: fsm.Meta{ID: ids[0], ProjectID: "test"}, NetworkType: fsm.NetTypeVXLAN, SegmentationID: 999999,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := leader.c.Apply(ctx, dup)
	if err != nil {
		t.Fatalf("apply duplicate: %v", err)
	}
	if _, ok := fsm.AsError(res.Err); !ok {
		t.Fatalf("duplicate network: result error %v, want an *fsm.Error", res.Err)
	}

	for _, f := range tc.followers() {
		if _, err := f.c.Apply(ctx, cmd); !errors.Is(err, ErrNotLeader) {
			t.Errorf("apply on follower %s: %v, want ErrNotLeader", f.name, err)
		}
		if err := f.c.VerifyLeader(ctx); !errors.Is(err, ErrNotLeader) {
			t.Errorf("verify leader on follower %s: %v, want ErrNotLeader", f.name, err)
		}
		eventually(t, convergeWait, func() error {
			addr, err := f.c.LeaderHTTPAddr()
			if err != nil {
				return err
			}
			if addr != leader.httpAddr() {
				return fmt.Errorf("%s forwards to %s, want %s", f.name, addr, leader.httpAddr())
			}
			return nil
		})
	}

	epoch := leader.c.Epoch()
	if epoch == 0 || epoch > uint64(time.Now().Unix()) {
		t.Fatalf("epoch %d, want the Unix time of the first election", epoch)
	}
	st := leader.c.Status()
	if st.Leader != leader.name || len(st.Servers) != 3 || st.Epoch != epoch || st.Revision != rev || st.Term == 0 {
		t.Fatalf("status %+v", st)
	}
	for _, s := range st.Servers {
		if !s.Voter || s.State == "unknown" {
			t.Errorf("server %+v: want an alive voter", s)
		}
	}
	for _, n := range tc.nodes {
		if got := len(n.c.Members()); got != 3 {
			t.Errorf("%s sees %d members, want 3", n.name, got)
		}
	}
}

func TestLeaderFailover(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	old := tc.leader()
	epoch, oldTerm := old.c.Epoch(), old.c.Term()

	var subs []<-chan LeadershipEvent
	for _, n := range tc.nodes {
		ch, cancel := n.c.SubscribeLeadership()
		t.Cleanup(cancel)
		subs = append(subs, ch)
	}
	var ids []string
	for range 30 {
		ids = append(ids, tc.create(old.c))
	}

	old.stop(t)
	leader := tc.leader()
	if leader == old {
		t.Fatal("the stopped node still leads")
	}
	if leader.c.Term() <= oldTerm {
		t.Fatalf("new term %d, want > %d", leader.c.Term(), oldTerm)
	}
	ids = append(ids, tc.create(leader.c))
	tc.converged(leader.fsm.State().Read().Revision(), ids)
	for _, n := range tc.running() {
		if got := n.c.Epoch(); got != epoch {
			t.Errorf("%s epoch %d after failover, want %d", n.name, got, epoch)
		}
	}

	// Gossip declares the stopped node dead (tuned timings: about a second).
	eventually(t, convergeWait, func() error {
		for _, s := range leader.c.Status().Servers {
			if s.Name == old.name && s.State == string(StatusDead) {
				return nil
			}
		}
		return fmt.Errorf("old leader not dead in status: %+v", leader.c.Status().Servers)
	})

	// The old leader saw itself gain and lose leadership, in order; the new
	// one saw its gain with the new term.
	for i, n := range tc.nodes {
		var got []LeadershipEvent
		for ev := range drain(subs[i], n == old) {
			got = append(got, ev)
		}
		switch n {
		case old:
			want := []LeadershipEvent{{true, oldTerm}, {false, oldTerm}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("old leader events %v, want %v", got, want)
			}
		case leader:
			if len(got) != 1 || !got[0].IsLeader || got[0].Term != leader.c.Term() {
				t.Errorf("new leader events %v, want [{true %d}]", got, leader.c.Term())
			}
		}
	}
}

// drain returns the events on ch: until it closes (untilClosed) or until
// nothing more arrives for a moment.
func drain(ch <-chan LeadershipEvent, untilClosed bool) <-chan LeadershipEvent {
	out := make(chan LeadershipEvent)
	go func() {
		defer close(out)
		for {
			wait := 200 * time.Millisecond
			if untilClosed {
				wait = 10 * time.Second
			}
			select {
			case ev, ok := <-ch:
				if !ok {
					return
				}
				out <- ev
			case <-time.After(wait):
				return
			}
		}
	}()
	return out
}

func TestRestartAllFromDataDirs(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	var ids []string
	for range 30 {
		ids = append(ids, tc.create(leader.c))
	}
	rev := leader.fsm.State().Read().Revision()
	tc.converged(rev, ids)
	epoch := leader.c.Epoch()

	for _, n := range tc.nodes {
		n.stop(t)
	}
	// No Join and no BootstrapExpect: the nodes must find each other from
	// what they persisted, and must not bootstrap again.
	for _, n := range tc.nodes {
		n.tweak = func(c *Config) { c.Join, c.BootstrapExpect = nil, 0 }
		n.start(t, false)
	}
	for _, n := range tc.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), electionWait)
		if err := n.c.WaitForLeader(ctx); err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		cancel()
	}
	leader = tc.leader()
	tc.converged(rev, ids)
	if got := leader.c.Epoch(); got != epoch {
		t.Fatalf("epoch %d after restart, want %d", got, epoch)
	}
	ids = append(ids, tc.create(leader.c))
	tc.converged(leader.fsm.State().Read().Revision(), ids)
	for _, n := range tc.nodes {
		eventually(t, convergeWait, func() error {
			alive := 0
			for _, m := range n.c.Members() {
				if m.Status == StatusAlive {
					alive++
				}
			}
			if alive != 3 {
				return fmt.Errorf("%s sees %d alive members, want 3", n.name, alive)
			}
			if _, err := n.c.LeaderHTTPAddr(); err != nil {
				return err
			}
			return nil
		})
	}
}

func TestSnapshotTruncateRestore(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) {
		c.SnapshotThreshold = 64
		c.TrailingLogs = 32
		c.SnapshotInterval = 200 * time.Millisecond
	})
	leader := tc.leader()

	// 500 writes from 8 writers keep the test short on two cores.
	const writes, writers = 500, 8
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range writes / writers {
				id := tc.create(leader.c)
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for len(ids) < writes {
		ids = append(ids, tc.create(leader.c))
	}
	rev := leader.fsm.State().Read().Revision()
	tc.converged(rev, ids)

	follower := tc.followers()[0]
	eventually(t, convergeWait, func() error {
		for _, n := range tc.running() {
			snaps, err := n.c.snaps.List()
			if err != nil {
				return err
			}
			if len(snaps) == 0 {
				return fmt.Errorf("%s has no snapshot", n.name)
			}
			first, err := n.c.logStore.FirstIndex()
			if err != nil {
				return err
			}
			if first <= 1 {
				return fmt.Errorf("%s log starts at %d: not truncated", n.name, first)
			}
			if st := n.c.Status(); st.LastSnapshotIndex < 64 {
				return fmt.Errorf("%s last snapshot index %d", n.name, st.LastSnapshotIndex)
			}
		}
		return nil
	})

	follower.stop(t)
	follower.start(t, false)
	// NewRaft restores the latest snapshot before Start returns, before the
	// leader sends anything.
	if got := len(follower.fsm.State().Read().Networks()); got < 64 {
		t.Fatalf("restarted follower holds %d networks right after start, want a restored snapshot", got)
	}
	tc.converged(rev, ids)
}

func TestFourthServerJoinsAsVoter(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	ids := []string{tc.create(leader.c)}

	fourth := &testNode{name: "s4", dir: t.TempDir(), port: freePortPair(t)}
	fourth.tweak = func(c *Config) { c.Join = []string{tc.nodes[1].gossipAddr()} }
	tc.nodes = append(tc.nodes, fourth)
	fourth.start(t, true)

	eventually(t, electionWait, func() error {
		for _, s := range leader.c.Status().Servers {
			if s.Name == "s4" && s.Voter {
				return nil
			}
		}
		return errors.New("s4 is not a voter yet")
	})
	ids = append(ids, tc.create(leader.c))
	tc.converged(leader.fsm.State().Read().Revision(), ids)
	if name, _ := fourth.c.Leader(); name != leader.name {
		t.Fatalf("s4 sees leader %q, want %s", name, leader.name)
	}
}

func TestChassisAgentGossip(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	server := tc.leader()

	agent := &testNode{name: "chassis-1", dir: t.TempDir(), port: freePortPair(t)}
	agent.tweak = func(c *Config) {
		c.Server, c.FSM = false, nil
		c.Join = []string{server.gossipAddr()}
		c.Meta = NodeMeta{TunnelIP: "192.0.2.10", Roles: []string{"compute"}}
	}
	tc.nodes = append(tc.nodes, agent)
	agent.start(t, true)

	find := func(name string, cond func(Member) bool) func() error {
		return func() error {
			for _, m := range server.c.Members() {
				if m.Name == name && cond(m) {
					return nil
				}
			}
			return fmt.Errorf("server does not see %s as expected: %+v", name, server.c.Members())
		}
	}
	eventually(t, convergeWait, find("chassis-1", func(m Member) bool {
		return m.Status == StatusAlive && m.Meta.Role == RoleChassis && m.Meta.TunnelIP == "192.0.2.10"
	}))
	if err := agent.c.UpdateMeta(func(m *NodeMeta) { m.Roles = append(m.Roles, "gateway"); m.Role = RoleServer }); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWait, find("chassis-1", func(m Member) bool {
		return len(m.Meta.Roles) == 2 && m.Meta.Role == RoleChassis
	}))
	if _, err := agent.c.Apply(context.Background(), nil); !errors.Is(err, ErrNotServer) {
		t.Fatalf("apply on an agent: %v, want ErrNotServer", err)
	}
	// The server's reconcile loop must not make a chassis a voter.
	if n := len(server.c.Status().Servers); n != 1 {
		t.Fatalf("%d raft servers, want 1", n)
	}

	if err := agent.c.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWait, find("chassis-1", func(m Member) bool { return m.Status == StatusLeft }))
}

func TestMetaTooLarge(t *testing.T) {
	big := NodeMeta{Role: RoleChassis, BridgeMappings: map[string]string{}}
	for i := range 40 {
		big.BridgeMappings[fmt.Sprintf("physnet-%02d", i)] = "br-" + strings.Repeat("x", 8)
	}
	if _, err := EncodeMeta(big); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("EncodeMeta: %v, want ErrMetaTooLarge", err)
	}
	_, err := New(Config{NodeName: "n", BindAddr: "127.0.0.1:7000", Meta: big})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("New: %v, want ErrMetaTooLarge", err)
	}

	small := NodeMeta{Role: RoleChassis, TunnelIP: "192.0.2.1", Encaps: []string{"vxlan", "geneve"}}
	buf, err := EncodeMeta(small)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(buf)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(small) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}

	// A running agent keeps its metadata when an update is too large.
	c, err := New(Config{NodeName: "n", BindAddr: "127.0.0.1:7000"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateMeta(func(m *NodeMeta) { *m = big }); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("UpdateMeta: %v, want ErrMetaTooLarge", err)
	}
	if c.meta.BridgeMappings != nil {
		t.Fatal("oversize update was installed")
	}
}
