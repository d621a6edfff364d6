package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"neutrino/northbound/client"
	"neutrino/scenarios/harness"
	"neutrino/scenarios/lab"
	"neutrino/southbound/ovsproc"
)

// binary is the neutrino binary TestMain builds; the tests drive the lab
// through it, as a user does.
var (
	binary   string
	buildErr error
	skipWhy  error
)

func TestMain(m *testing.M) {
	if skipWhy = ovsproc.Available(); skipWhy != nil {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "labtest-bin-")
	if err != nil {
		buildErr = err
		os.Exit(m.Run())
	}
	binary = filepath.Join(dir, "neutrino")
	out, err := exec.Command("go", "build", "-tags", "hashicorpmetrics", "-o", binary, "neutrino/cmd/neutrino").CombinedOutput()
	if err != nil {
		buildErr = fmt.Errorf("go build: %w: %s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// labSeq numbers the labs of this process, for unique namespace prefixes.
var labSeq atomic.Int32

// labEnv is one test's lab: its own dir and namespace prefix.
type labEnv struct {
	t      *testing.T
	dir    string
	prefix string
}

// newLab prepares a lab for t (not yet up) and makes sure whatever the
// test leaves behind is taken down, failures and crashes included.
func newLab(t *testing.T) *labEnv {
	t.Helper()
	if skipWhy != nil {
		t.Skipf("lab needs root and Open vSwitch: %v", skipWhy)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	// Not t.TempDir(): OVS socket paths under it can exceed 108 bytes.
	tmp, err := os.MkdirTemp("", "lt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	e := &labEnv{t: t, dir: filepath.Join(tmp, "lab"),
		prefix: fmt.Sprintf("lt%d-%d-", os.Getpid()%100000, labSeq.Add(1))}
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpLogs()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := lab.Down(ctx, e.dir, e.prefix, nil); err != nil && !strings.Contains(err.Error(), "no lab") {
			t.Errorf("cleanup: %v", err)
		}
	})
	return e
}

// run runs `neutrino lab --dir D --prefix P ARGS...`.
func (e *labEnv) run(args ...string) (string, error) {
	full := append([]string{"lab", "--dir", e.dir, "--prefix", e.prefix}, args...)
	cmd := exec.Command(binary, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("neutrino %s: %w: %s", strings.Join(full, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (e *labEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, err := e.run(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// status is `lab status -o json`, decoded.
type status struct {
	Phase     string   `json:"phase"`
	Endpoints []string `json:"endpoints"`
	CA        string   `json:"ca"`
	Nodes     []struct {
		Name       string `json:"name"`
		Kind       string `json:"kind"`
		Namespace  string `json:"namespace"`
		IP         string `json:"ip"`
		API        string `json:"api"`
		OVSDB      string `json:"ovsdb"`
		OVSDBUnix  string `json:"ovsdb_unix"`
		AgentPID   int    `json:"agent_pid"`
		AgentAlive bool   `json:"agent_alive"`
	} `json:"nodes"`
}

func (e *labEnv) status() status {
	e.t.Helper()
	var s status
	if err := json.Unmarshal([]byte(e.mustRun("status", "-o", "json")), &s); err != nil {
		e.t.Fatalf("status -o json: %v", err)
	}
	return s
}

func (e *labEnv) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(e.dir, "*", "agent.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		e.t.Logf("%s:\n%s", l, strings.Join(lines, "\n"))
	}
}

// leftovers lists what of a lab is still on the machine: namespaces with
// its prefix, processes naming its dir, links in the root namespace that
// were not there before, and the dir itself.
func (e *labEnv) leftovers(rootLinksBefore []string) []string {
	var out []string
	ents, _ := os.ReadDir("/run/netns")
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), e.prefix) {
			out = append(out, "namespace "+ent.Name())
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(b, []byte(e.dir)) {
			continue
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			continue // exited, not yet reaped
		}
		out = append(out, fmt.Sprintf("process %d: %s", pid, bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	for _, l := range rootLinks(e.t) {
		if !slices.Contains(rootLinksBefore, l) {
			out = append(out, "root link "+l)
		}
	}
	if _, err := os.Stat(e.dir); err == nil {
		out = append(out, "dir "+e.dir)
	}
	return out
}

// rootLinks lists link names in the root namespace.
func rootLinks(t *testing.T) []string {
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return names
}

// eventually polls cond until it returns nil or the deadline passes
// (harness.Poll).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	harness.Poll(t, timeout, what, cond)
}

// TestUpStatusDown brings a lab up through the CLI, checks every server's
// API from the root namespace (a leader, every chassis alive in gossip),
// refuses a second up, and takes it down leaving nothing behind.
func TestUpStatusDown(t *testing.T) {
	e := newLab(t)
	before := rootLinks(t)

	start := time.Now()
	e.mustRun("up", "--servers", "3", "--chassis", "3", "--gateways", "1")
	t.Logf("lab up (3 servers, 3 chassis, 1 gateway) in %s", time.Since(start).Round(time.Millisecond))

	s := e.status()
	if s.Phase != lab.PhaseUp || len(s.Nodes) != 7 || len(s.Endpoints) != 3 {
		t.Fatalf("status: phase %q, %d nodes, endpoints %v", s.Phase, len(s.Nodes), s.Endpoints)
	}
	chassis := map[string]bool{}
	for _, n := range s.Nodes {
		if !n.AgentAlive {
			t.Errorf("%s: agent not alive", n.Name)
		}
		if n.Kind != "server" {
			chassis[n.Name] = true
			// TLS is the lab's default: OVSDB over ssl: with the node's certificate.
			if !strings.HasPrefix(n.OVSDB, "ssl:"+n.IP+":") || !strings.HasPrefix(n.OVSDBUnix, "unix:"+e.dir) {
				t.Errorf("%s: ovsdb %q / %q", n.Name, n.OVSDB, n.OVSDBUnix)
			}
		}
	}
	if len(chassis) != 4 {
		t.Fatalf("want 3 chassis + 1 gateway, got %v", chassis)
	}
	ctx := context.Background()
	for _, ep := range s.Endpoints {
		if !strings.HasPrefix(ep, "https://127.0.0.1:") {
			t.Fatalf("endpoint %q is not HTTPS on the root namespace's loopback", ep)
		}
		c, err := client.New(ep)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.TrustCA(s.CA); err != nil {
			t.Fatal(err)
		}
		st, err := c.Cluster(ctx)
		if err != nil || st.Leader == "" || len(st.Servers) != 3 {
			t.Fatalf("GET %s/v1/cluster: %v %+v", ep, err, st)
		}
		members, err := c.Members(ctx)
		if err != nil {
			t.Fatalf("GET %s/v1/cluster/members: %v", ep, err)
		}
		for _, m := range members {
			if chassis[m.Name] && m.Status == "alive" && m.Role == "chassis" {
				delete(chassis, m.Name)
			}
		}
	}
	if len(chassis) != 0 {
		t.Fatalf("chassis not alive in gossip: %v", chassis)
	}

	// The tunnel endpoints reach each other over the underlay.
	if out, err := e.run("exec", "chassis-1", "--", "ping", "-c1", "-W2", "10.250.0.201"); err != nil {
		t.Fatalf("underlay ping chassis-1 -> gateway-1: %v %s", err, out)
	}

	// A second up is refused and leaves the running lab alone.
	if _, err := e.run("up"); err == nil || !strings.Contains(err.Error(), "a lab exists") {
		t.Fatalf("second up: want refusal, got %v", err)
	}
	if s2 := e.status(); s2.Phase != lab.PhaseUp || !s2.Nodes[0].AgentAlive {
		t.Fatalf("second up disturbed the lab: %+v", s2)
	}

	// A killed server comes back on the same API URL.
	e.mustRun("agent", "kill", "server-1")
	if e.status().Nodes[0].AgentAlive {
		t.Fatal("server-1 alive after kill")
	}
	e.mustRun("agent", "start", "server-1")
	c, _ := client.New(s.Endpoints[0])
	if err := c.TrustCA(s.CA); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "restarted server-1 answers with a leader", func() error {
		st, err := c.Cluster(ctx)
		if err == nil && st.Leader == "" {
			err = fmt.Errorf("no leader")
		}
		return err
	})

	start = time.Now()
	e.mustRun("down")
	t.Logf("lab down in %s", time.Since(start).Round(time.Millisecond))
	if left := e.leftovers(before); len(left) > 0 {
		t.Fatalf("left behind after down:\n%s", strings.Join(left, "\n"))
	}
	if out, err := e.run("down"); err != nil {
		t.Fatalf("down of no lab should succeed: %v %s", err, out)
	}
}

// TestDownAfterCrashedUp SIGKILLs `lab up` half-way (OVS running, agents
// not all started) and checks that `lab down` removes everything.
func TestDownAfterCrashedUp(t *testing.T) {
	e := newLab(t)
	before := rootLinks(t)
	cmd := exec.Command(binary, "lab", "--dir", e.dir, "--prefix", e.prefix, "up", "--servers", "3", "--chassis", "3", "--gateways", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
	}()
	// Half-way: some OVS daemon is recorded, the lab is not up yet.
	eventually(t, 30*time.Second, "up to get half-way", func() error {
		st, err := lab.LoadState(e.dir)
		if err != nil {
			return err
		}
		if st.Phase != lab.PhaseCreating {
			return fmt.Errorf("phase %s: too late", st.Phase)
		}
		for _, p := range st.Processes {
			if strings.HasPrefix(p.What, "ovs-vswitchd") {
				return nil
			}
		}
		return fmt.Errorf("no ovs-vswitchd yet")
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	_ = cmd.Wait()
	st, err := lab.LoadState(e.dir)
	if err != nil || st.Phase != lab.PhaseCreating || len(st.Namespaces) == 0 {
		t.Fatalf("state after crash: %v %+v", err, st)
	}

	// Up refuses to build over the wreck.
	if _, err := e.run("up"); err == nil || !strings.Contains(err.Error(), "a lab exists") {
		t.Fatalf("up over a crashed lab: want refusal, got %v", err)
	}
	// Processes the dead `up` started may still be starting: down copes.
	e.mustRun("down")
	if left := e.leftovers(before); len(left) > 0 {
		t.Fatalf("left behind after down:\n%s", strings.Join(left, "\n"))
	}
}

// TestDownAfterDamage wrecks a running lab in the ways a crash or a
// curious user would (daemons killed, a namespace deleted under its
// agent, the state file garbled) and checks that `lab down` still removes
// everything.
func TestDownAfterDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, e *labEnv, st *lab.State)
	}{
		{"killed-daemons-and-deleted-namespace", func(t *testing.T, e *labEnv, st *lab.State) {
			for _, p := range st.Processes {
				if p.What == "ovs-vswitchd chassis-1" || p.What == "agent server-2" {
					if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The agent of chassis-2 keeps running in a namespace that no
			// longer has a name.
			if out, err := exec.Command("ip", "netns", "del", st.Node("chassis-2").Namespace).CombinedOutput(); err != nil {
				t.Fatalf("ip netns del: %v %s", err, out)
			}
		}},
		{"garbled-state-file", func(t *testing.T, e *labEnv, _ *lab.State) {
			if err := os.WriteFile(filepath.Join(e.dir, "state.json"), []byte("{garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newLab(t)
			before := rootLinks(t)
			e.mustRun("up", "--servers", "1", "--chassis", "2", "--gateways", "0")
			st, err := lab.LoadState(e.dir)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, e, st)
			e.mustRun("down")
			if left := e.leftovers(before); len(left) > 0 {
				t.Fatalf("left behind after down:\n%s", strings.Join(left, "\n"))
			}
		})
	}
}
