package nemesis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
)

// The servers are real `neutrino agent --server` processes, so that a kill
// is a SIGKILL and a pause a SIGSTOP, not a polite in-process shutdown.

var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// neutrinoBinary builds the binary once per test run. It is built without
// the race detector even under `go test -race` (a child `go build` does not
// inherit -race): this test judges the cluster's behaviour under faults,
// and the detector's 5-10x slowdown on two shared cores turns elections
// and deadlines into noise; the packages' own tests run under -race.
// NEUTRINO_NEMESIS_RACE=1 builds with -race anyway;
// NEUTRINO_NEMESIS_BINARY=PATH runs that binary instead (another build).
func neutrinoBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NEUTRINO_NEMESIS_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "neutrino-nemesis-bin-")
		if buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "neutrino")
		args := []string{"build", "-o", binary}
		if os.Getenv("NEUTRINO_NEMESIS_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "neutrino/cmd/neutrino")...)
		cmd.Env = os.Environ()
		if !strings.Contains(os.Getenv("GOFLAGS"), "hashicorpmetrics") {
			cmd.Env = append(cmd.Env, "GOFLAGS=-tags=hashicorpmetrics "+os.Getenv("GOFLAGS"))
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build neutrino: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// server is one agent process.
type server struct {
	name, bind, http, dir string
	cmd                   *exec.Cmd
	exited                chan struct{}
	paused                bool
	starts                int
}

func (s *server) running() bool { return s.cmd != nil && !s.paused }

// procCluster is a cluster of agent processes on 127.0.0.1.
type procCluster struct {
	t       testing.TB
	bin     string
	servers []*server
	mu      sync.Mutex // guards the servers' process state for cleanup
	status  *http.Client
}

func newProcCluster(t testing.TB, n int) *procCluster {
	t.Helper()
	c := &procCluster{t: t, bin: neutrinoBinary(t), status: &http.Client{Timeout: time.Second}}
	for i := 1; i <= n; i++ {
		c.servers = append(c.servers, &server{
			name: fmt.Sprintf("s%d", i),
			bind: clustertest.FreeBind(t),
			http: clustertest.FreeBind(t),
			dir:  t.TempDir(),
		})
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			c.kill(s)
		}
		if t.Failed() {
			c.keepLogs()
		}
	})
	for _, s := range c.servers {
		c.start(s)
	}
	return c
}

func (c *procCluster) addrs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.http)
	}
	return out
}

// start runs the server from its data dir (a restart after a kill).
func (c *procCluster) start(s *server) {
	c.t.Helper()
	args := []string{"agent", "--server", "--node", s.name, "--data-dir", s.dir, "--bind", s.bind,
		"--http", s.http, "--bootstrap-expect", strconv.Itoa(len(c.servers)), "--log-level", "info",
		"--vni-ranges", "1:1000000"}
	for _, o := range c.servers {
		args = append(args, "--join", o.bind)
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	s.starts++
	fmt.Fprintf(logf, "=== nemesis: start %d at %s\n", s.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	c.mu.Lock()
	s.cmd, s.exited, s.paused = cmd, exited, false
	c.mu.Unlock()
}

// kill sends SIGKILL to the server's process (our own child, by PID) and
// waits until it is gone. A paused process dies as well.
func (c *procCluster) kill(s *server) {
	c.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.paused = nil, false
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// pause stops the server with SIGSTOP: it keeps its sockets, so peers and
// clients see a server that accepts and never answers.
func (c *procCluster) pause(s *server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.cmd == nil || s.paused {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Errorf("SIGSTOP %s: %v", s.name, err)
		return
	}
	s.paused = true
}

func (c *procCluster) resume(s *server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.cmd == nil || !s.paused {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Errorf("SIGCONT %s: %v", s.name, err)
		return
	}
	s.paused = false
}

type clusterStatus struct {
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

func (c *procCluster) clusterStatus(s *server) (clusterStatus, error) {
	var st clusterStatus
	resp, err := c.status.Get("http://" + s.http + "/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: /v1/cluster: %d %s", s.name, resp.StatusCode, data)
	}
	return st, json.Unmarshal(data, &st)
}

func (c *procCluster) byName(name string) *server {
	for _, s := range c.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// leader waits until every running server names the same running leader.
func (c *procCluster) leader(timeout time.Duration) *server {
	c.t.Helper()
	var found *server
	clustertest.Eventually(c.t, timeout, func() error {
		l, err := c.agreedLeader()
		found = l
		return err
	})
	return found
}

func (c *procCluster) agreedLeader() (*server, error) {
	var found *server
	for _, s := range c.servers {
		if !s.running() {
			continue
		}
		st, err := c.clusterStatus(s)
		if err != nil {
			return nil, err
		}
		l := c.byName(st.Leader)
		if l == nil || !l.running() {
			return nil, fmt.Errorf("%s sees leader %q, which is not running", s.name, st.Leader)
		}
		if found != nil && found != l {
			return nil, fmt.Errorf("leaders disagree: %s vs %s", found.name, l.name)
		}
		found = l
	}
	if found == nil {
		return nil, fmt.Errorf("no server running")
	}
	return found, nil
}

// followers returns the running servers other than the leader l.
func (c *procCluster) followers(l *server) []*server {
	var out []*server
	for _, s := range c.servers {
		if s != l && s.running() {
			out = append(out, s)
		}
	}
	return out
}

// caughtUp waits until every server runs and has applied what the leader
// had committed when the wait began.
func (c *procCluster) caughtUp(timeout time.Duration) {
	c.t.Helper()
	l := c.leader(timeout)
	st, err := c.clusterStatus(l)
	if err != nil {
		c.t.Fatal(err)
	}
	clustertest.Eventually(c.t, timeout, func() error {
		for _, s := range c.servers {
			if !s.running() {
				return fmt.Errorf("%s is not running", s.name)
			}
			got, err := c.clusterStatus(s)
			if err != nil {
				return err
			}
			if got.AppliedIndex < st.CommitIndex {
				return fmt.Errorf("%s applied %d of %d", s.name, got.AppliedIndex, st.CommitIndex)
			}
		}
		return nil
	})
}

// keepEnv keeps a failed run's artifacts (agent logs, porcupine's
// visualization, the history) in /tmp for diagnosis; without it a failed
// run prints the logs' tails and leaves nothing behind.
const keepEnv = "NEUTRINO_NEMESIS_KEEP"

// dropUnlessKept removes the given files when the test ends, unless
// keepEnv is set.
func dropUnlessKept(t testing.TB, paths ...string) {
	if os.Getenv(keepEnv) != "" {
		return
	}
	t.Cleanup(func() {
		for _, p := range paths {
			os.Remove(p)
		}
	})
	t.Logf("%s=1 keeps %v after the test", keepEnv, paths)
}

// keepLogs, on a failure, copies the agents' logs out of the test's
// temporary dirs (removed at the end) with keepEnv set, else logs the last
// lines of each.
func (c *procCluster) keepLogs() {
	if os.Getenv(keepEnv) == "" {
		for _, s := range c.servers {
			data, err := os.ReadFile(filepath.Join(s.dir, "agent.log"))
			if err != nil {
				c.t.Logf("log of %s: %v", s.name, err)
				continue
			}
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			c.t.Logf("%s agent.log (last 40 lines; %s=1 keeps whole logs):\n%s", s.name, keepEnv,
				strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
		return
	}
	dir, err := os.MkdirTemp("", "neutrino-nemesis-logs-")
	if err != nil {
		c.t.Logf("keep logs: %v", err)
		return
	}
	for _, s := range c.servers {
		data, err := os.ReadFile(filepath.Join(s.dir, "agent.log"))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, s.name+".log"), data, 0o644)
		}
		if err != nil {
			c.t.Logf("keep log of %s: %v", s.name, err)
		}
	}
	c.t.Logf("agent logs kept in %s", dir)
}

// waitCtx returns a context ending after d, cancelled at cleanup.
func waitCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
