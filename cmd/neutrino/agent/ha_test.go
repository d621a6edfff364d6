package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
)

// These tests run real agents as processes, so that "kill the leader" is a
// SIGKILL, not a polite shutdown.

var binary string

// treeVersion is the version this tree's test binary announces.
const treeVersion = "this-tree"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "neutrino-ha-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "neutrino")
	build := exec.Command("go", "build", "-ldflags", "-X neutrino/cluster.version="+treeVersion, "-o", binary, "neutrino/cmd/neutrino")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build neutrino:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var eventually = clustertest.Eventually

// freePort returns a port p with p, p+1 and p+2 free: an agent's gossip,
// Raft and OpenFlow ports.
func freePort(t *testing.T, _ map[int]bool) int { return clustertest.FreePort(t) }

type node struct {
	name, bind, http, dir string
	join                  []string
	bin                   string // the agent binary; "" is this tree's
	cmd                   *exec.Cmd
	exited                chan struct{}
}

type procCluster struct {
	t     *testing.T
	nodes []*node
}

func newProcCluster(t *testing.T, n int) *procCluster { return newProcClusterOf(t, n, "") }

// newProcClusterOf starts n servers of the binary bin ("" is this tree's).
func newProcClusterOf(t *testing.T, n int, bin string) *procCluster {
	t.Helper()
	c := &procCluster{t: t}
	taken := map[int]bool{}
	var binds []string
	for i := 1; i <= n; i++ {
		nd := &node{
			name: fmt.Sprintf("s%d", i),
			bind: fmt.Sprintf("127.0.0.1:%d", freePort(t, taken)),
			http: fmt.Sprintf("127.0.0.1:%d", freePort(t, taken)),
			dir:  t.TempDir(),
			bin:  bin,
		}
		binds = append(binds, nd.bind)
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.join = binds
		c.start(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.kill(nd)
		}
	})
	return c
}

func (c *procCluster) start(nd *node) {
	c.t.Helper()
	args := []string{"agent", "--server", "--node", nd.name, "--data-dir", nd.dir, "--bind", nd.bind,
		"--http", nd.http, "--bootstrap-expect", strconv.Itoa(len(c.nodes)), "--log-level", "warn",
		"--vni-ranges", "1:1000000"}
	for _, j := range nd.join {
		args = append(args, "--join", j)
	}
	logf, err := os.OpenFile(filepath.Join(nd.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	bin := binary
	if nd.bin != "" {
		bin = nd.bin
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	nd.cmd, nd.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(nd.exited) }()
}

// kill sends SIGKILL to the node's process (our own child, by PID) and
// waits for it to be gone.
func (c *procCluster) kill(nd *node) {
	if nd.cmd == nil {
		return
	}
	_ = nd.cmd.Process.Kill()
	<-nd.exited
	nd.cmd = nil
}

type status struct {
	Leader   string `json:"leader"`
	Term     uint64 `json:"term"`
	Revision uint64 `json:"revision"`
	Servers  []struct {
		Name  string `json:"name"`
		Voter bool   `json:"voter"`
	} `json:"servers"`
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func getJSON(url string, out any) (int, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %w", data, err)
		}
	}
	return resp.StatusCode, nil
}

// leader waits until every live node agrees on a leader among the live
// nodes, and returns it.
func (c *procCluster) leader(timeout time.Duration) *node {
	c.t.Helper()
	var found *node
	eventually(c.t, timeout, func() error {
		found = nil
		for _, nd := range c.nodes {
			if nd.cmd == nil {
				continue
			}
			var st status
			if _, err := getJSON("http://"+nd.http+"/v1/cluster", &st); err != nil {
				return err
			}
			if st.Leader == "" {
				return fmt.Errorf("%s sees no leader", nd.name)
			}
			l := c.byName(st.Leader)
			if l == nil || l.cmd == nil {
				return fmt.Errorf("%s sees dead leader %s", nd.name, st.Leader)
			}
			if found != nil && found != l {
				return fmt.Errorf("leaders disagree: %s vs %s", found.name, l.name)
			}
			found = l
		}
		return nil
	})
	return found
}

func (c *procCluster) byName(name string) *node {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}

func (c *procCluster) other(than ...*node) *node {
	for _, nd := range c.nodes {
		skip := nd.cmd == nil
		for _, x := range than {
			skip = skip || nd == x
		}
		if !skip {
			return nd
		}
	}
	c.t.Fatal("no other live node")
	return nil
}

// createNetwork posts a network and returns its id and whether the write
// was acknowledged (201).
func createNetwork(nd *node, name string) (string, bool) {
	body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": name}})
	resp, err := httpClient.Post("http://"+nd.http+"/v2.0/networks", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var out struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil || out.Network.ID == "" {
		return "", false
	}
	return out.Network.ID, true
}

// networkIDs lists the networks through a node (consistent read).
func (c *procCluster) networkIDs(nd *node) map[string]bool {
	c.t.Helper()
	var l struct {
		Networks []struct {
			ID string `json:"id"`
		} `json:"networks"`
	}
	var ids map[string]bool
	eventually(c.t, 20*time.Second, func() error {
		code, err := getJSON("http://"+nd.http+"/v2.0/networks?fields=id", &l)
		if err != nil || code != 200 {
			return fmt.Errorf("list via %s: %d %v", nd.name, code, err)
		}
		ids = map[string]bool{}
		for _, n := range l.Networks {
			ids[n.ID] = true
		}
		return nil
	})
	return ids
}

func checkAll(t *testing.T, have map[string]bool, acked []string, when string) {
	t.Helper()
	missing := 0
	for _, id := range acked {
		if !have[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d of %d acknowledged writes are missing", when, missing, len(acked))
	}
}

func TestFailoverLosesNoAcknowledgedWrite(t *testing.T) {
	c := newProcCluster(t, 3)
	leader := c.leader(30 * time.Second)
	follower := c.other(leader)

	// Writes through a follower are forwarded and acknowledged.
	var acked []string
	for i := 0; i < 20; i++ {
		id, ok := createNetwork(follower, fmt.Sprintf("before-%d", i))
		if !ok {
			t.Fatalf("write %d through follower %s was not acknowledged", i, follower.name)
		}
		acked = append(acked, id)
	}

	c.kill(leader)
	newLeader := c.leader(30 * time.Second)
	if newLeader == leader {
		t.Fatal("dead leader still leads")
	}
	checkAll(t, c.networkIDs(c.other(newLeader)), acked, "after killing the leader")

	// Bring the dead server back; it rejoins from its data dir.
	c.start(leader)
	eventually(t, 30*time.Second, func() error {
		var l struct {
			Networks []any `json:"networks"`
		}
		code, err := getJSON("http://"+leader.http+"/v2.0/networks?stale&fields=id", &l)
		if err != nil || code != 200 || len(l.Networks) < len(acked) {
			return fmt.Errorf("restarted server has %d networks (%d %v)", len(l.Networks), code, err)
		}
		return nil
	})

	// 200 concurrent writes spread over all servers while the leader dies.
	target := c.leader(30 * time.Second)
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		started = make(chan struct{})
		during  []string
	)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i == 20 {
				close(started)
			}
			nd := c.nodes[i%len(c.nodes)]
			id, ok := createNetwork(nd, fmt.Sprintf("during-%d", i))
			if ok {
				mu.Lock()
				during = append(during, id)
				mu.Unlock()
			}
		}(i)
	}
	<-started
	c.kill(target)
	wg.Wait()
	t.Logf("%d of 200 concurrent writes were acknowledged around the leader kill", len(during))
	if len(during) == 0 {
		t.Fatal("no write was acknowledged at all")
	}
	final := c.leader(30 * time.Second)
	have := c.networkIDs(final)
	checkAll(t, have, acked, "after the second kill (first batch)")
	checkAll(t, have, during, "after the second kill (concurrent batch)")
}

func TestRestartAllServersKeepsState(t *testing.T) {
	c := newProcCluster(t, 3)
	leader := c.leader(30 * time.Second)
	var acked []string
	for i := 0; i < 30; i++ {
		id, ok := createNetwork(c.nodes[i%3], fmt.Sprintf("n-%d", i))
		if !ok {
			t.Fatalf("write %d not acknowledged", i)
		}
		acked = append(acked, id)
	}
	var before status
	if _, err := getJSON("http://"+leader.http+"/v1/cluster", &before); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		c.kill(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	l := c.leader(45 * time.Second)
	checkAll(t, c.networkIDs(l), acked, "after restarting every server")
	var after status
	if _, err := getJSON("http://"+l.http+"/v1/cluster", &after); err != nil {
		t.Fatal(err)
	}
	if after.Revision < before.Revision || after.Term <= before.Term || len(after.Servers) != 3 {
		t.Fatalf("before %+v, after %+v", before, after)
	}
}
