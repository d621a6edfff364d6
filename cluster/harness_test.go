package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
	"neutrino/fsm"
)

// Generous deadlines: other engineers run heavy tests on this 2-core box.
const (
	electionWait = 15 * time.Second
	convergeWait = 15 * time.Second
)

var eventually = clustertest.Eventually

// testLogger is silent unless NEUTRINO_TEST_LOG names a level (debug, info,
// warn, error): raft logs errors even for connections that nodes shut down
// on purpose close, and every real failure fails the test anyway.
func testLogger() *slog.Logger {
	level := slog.LevelError + 4
	if s := os.Getenv("NEUTRINO_TEST_LOG"); s != "" {
		_ = level.UnmarshalText([]byte(s))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// freePortPair returns a port p with p, p+1 (and p+2) free on loopback:
// gossip and Raft of one node.
func freePortPair(t testing.TB) int { return clustertest.FreePort(t) }

// testNode is one in-process agent with its own data dir and ports, which
// survive restarts (a restart builds a new Cluster and FSM, as a new
// process would).
type testNode struct {
	name string
	dir  string
	port int
	fsm  *fsm.FSM
	c    *Cluster
	// tweak adjusts the config before every start.
	tweak func(*Config)
}

func (n *testNode) gossipAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }
func (n *testNode) httpAddr() string   { return "127.0.0.1:" + strconv.Itoa(n.port+2) }

func (n *testNode) config() Config {
	n.fsm = fsm.New(testLogger())
	cfg := Config{
		NodeName:          n.name,
		DataDir:           n.dir,
		BindAddr:          n.gossipAddr(),
		HTTPAddr:          n.httpAddr(),
		Server:            true,
		FSM:               n.fsm,
		Logger:            testLogger(),
		HeartbeatTimeout:  500 * time.Millisecond,
		ElectionTimeout:   500 * time.Millisecond,
		ReconcileInterval: time.Second,
	}
	if n.tweak != nil {
		n.tweak(&cfg)
	}
	return cfg
}

// start starts the node on its ports; fresh nodes move to new ports when
// another process grabbed theirs in the meantime.
func (n *testNode) start(t testing.TB, fresh bool) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		c, err := New(n.config())
		if err != nil {
			t.Fatalf("new %s: %v", n.name, err)
		}
		err = c.Start()
		if err == nil {
			n.c = c
			return
		}
		if !fresh || !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatalf("start %s: %v", n.name, err)
		}
		n.port = freePortPair(t)
	}
}

func (n *testNode) stop(t testing.TB) {
	t.Helper()
	if n.c == nil {
		return
	}
	if err := n.c.Shutdown(); err != nil {
		t.Errorf("shutdown %s: %v", n.name, err)
	}
	n.c = nil
}

type testCluster struct {
	t     testing.TB
	nodes []*testNode
	seq   atomic.Int64 // unique network ids and segments
}

// newTestCluster starts n servers with BootstrapExpect=n, joined through
// the first node, and waits for a leader.
func newTestCluster(t testing.TB, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t}
	for i := range n {
		tc.nodes = append(tc.nodes, &testNode{
			name: fmt.Sprintf("s%d", i+1), dir: t.TempDir(), port: freePortPair(t), tweak: tweak,
		})
	}
	t.Cleanup(func() {
		for _, nd := range tc.nodes {
			nd.stop(t)
		}
	})
	for i, nd := range tc.nodes {
		first := tc.nodes[0]
		user := nd.tweak
		nd.tweak = func(c *Config) {
			c.BootstrapExpect = n
			if i > 0 {
				c.Join = []string{first.gossipAddr()}
			}
			if user != nil {
				user(c)
			}
		}
		nd.start(t, true)
		nd.tweak = user
	}
	tc.leader()
	return tc
}

// running returns the nodes that are up.
func (tc *testCluster) running() []*testNode {
	var out []*testNode
	for _, n := range tc.nodes {
		if n.c != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits until exactly one running node leads, every running node
// agrees on it, and it is ready (barrier done, epoch set).
func (tc *testCluster) leader() *testNode {
	tc.t.Helper()
	var leader *testNode
	eventually(tc.t, electionWait, func() error {
		leader = nil
		for _, n := range tc.running() {
			if n.c.IsLeader() {
				if leader != nil {
					return fmt.Errorf("two leaders: %s and %s", leader.name, n.name)
				}
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range tc.running() {
			if name, _ := n.c.Leader(); name != leader.name {
				return fmt.Errorf("%s thinks the leader is %q, not %s", n.name, name, leader.name)
			}
		}
		return leader.c.VerifyLeader(context.Background())
	})
	return leader
}

func (tc *testCluster) followers() []*testNode {
	var out []*testNode
	for _, n := range tc.running() {
		if !n.c.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// networkCmd builds a command creating a new, unique network.
func (tc *testCluster) networkCmd() (string, []byte) {
	i := tc.seq.Add(1)
	id := fmt.Sprintf("net-%06d", i)
	cmd, err := fsm.Encode(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{{
		Meta: fsm.Meta{ID: id, Name: id, ProjectID: "test"}, NetworkType: fsm.NetTypeVXLAN, SegmentationID: int(i),
	}}})
	if err != nil {
		tc.t.Fatal(err)
	}
	return id, cmd
}

// create applies one new network through c and returns its id.
func (tc *testCluster) create(c *Cluster) string {
	tc.t.Helper()
	id, cmd := tc.networkCmd()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Apply(ctx, cmd)
	if err != nil {
		tc.t.Fatalf("apply: %v", err)
	}
	if res.Err != nil {
		tc.t.Fatalf("apply rejected: %v", res.Err)
	}
	return id
}

// converged waits until every running node's FSM has revision rev and
// holds every network in ids.
func (tc *testCluster) converged(rev uint64, ids []string) {
	tc.t.Helper()
	eventually(tc.t, convergeWait, func() error {
		for _, n := range tc.running() {
			v := n.fsm.State().Read()
			if v.Revision() != rev {
				return fmt.Errorf("%s at revision %d, want %d", n.name, v.Revision(), rev)
			}
			for _, id := range ids {
				if v.Network(id) == nil {
					return fmt.Errorf("%s lacks network %s", n.name, id)
				}
			}
		}
		return nil
	})
}
