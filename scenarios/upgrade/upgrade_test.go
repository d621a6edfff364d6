package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"neutrino/scenarios"
	"neutrino/scenarios/harness"
	"neutrino/scenarios/lab"
	"neutrino/southbound/ovsproc"
)

// treeVersion is the version this tree's binary announces in the test.
const treeVersion = "this-tree"

// buildTree builds this tree's neutrino into dir (no race detector: it
// runs as the lab's agents) announcing treeVersion.
func buildTree(dir string) (string, error) {
	bin := filepath.Join(dir, "neutrino")
	out, err := exec.Command("go", "build", "-tags", "hashicorpmetrics",
		"-ldflags", "-X neutrino/cluster.version="+treeVersion, "-o", bin, "neutrino/cmd/neutrino").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// buildBoth builds the previous release and this tree at once and
// returns their binaries: from a warm build cache each is mostly a link,
// and the two together took 33 s here against 52 s one after the other.
func buildBoth(tb testing.TB) (previous, tree string) {
	tb.Helper()
	start := time.Now()
	var (
		from               string
		prevErr, treeErr   error
		prevTook, treeTook time.Duration
		wg                 sync.WaitGroup
	)
	prevDir, treeDir := tb.TempDir(), tb.TempDir()
	wg.Go(func() {
		previous, from, prevErr = buildPrevious(prevDir)
		prevTook = time.Since(start)
	})
	wg.Go(func() {
		tree, treeErr = buildTree(treeDir)
		treeTook = time.Since(start)
	})
	wg.Wait()
	if err := errors.Join(prevErr, treeErr); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("built the previous release %s (from %s) in %s and this tree in %s, at once",
		previousRelease[:7], from, prevTook.Round(100*time.Millisecond), treeTook.Round(100*time.Millisecond))
	return previous, tree
}

// previousAgent writes a script that runs the previous release's binary
// with the lab's agent flags minus those it does not know: --ovsdb-local
// (this tree's chassis agent reaches its own OVSDB there; the previous
// one uses --ovsdb for that too, which in a lab without TLS is the same
// database). The script execs, so the lab's PID is the agent's.
func previousAgent(tb testing.TB, bin string) string {
	tb.Helper()
	script := filepath.Join(tb.TempDir(), "neutrino-previous")
	body := `#!/bin/sh
skip=
for a do
	shift
	if [ -n "$skip" ]; then skip=; continue; fi
	case "$a" in
	--ovsdb-local) skip=1; continue ;;
	--ovsdb-local=*) continue ;;
	esac
	set -- "$@" "$a"
done
exec '` + bin + `' "$@"
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		tb.Fatal(err)
	}
	return script
}

// upLab brings up a namespace lab of a directory and prefix of its own
// running binary, without TLS (the previous release has no TLS for the
// chassis' OVSDB), and takes it down when tb ends, checking that no
// namespace of it is left.
func upLab(tb testing.TB, binary string, topo scenarios.Topology) (*lab.Driver, *harness.Env) {
	tb.Helper()
	tmp, err := os.MkdirTemp("", "ug") // short: OVS socket paths live under it
	if err != nil {
		tb.Fatal(err)
	}
	prefix := fmt.Sprintf("ug%d-", os.Getpid()%100000)
	dir := filepath.Join(tmp, "lab")
	d := lab.NewDriver(dir, prefix, binary, nil)
	d.Options.NoTLS = true
	d.DownWhenDone(tb, tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := d.Up(ctx, topo)
	if err != nil {
		tb.Fatalf("lab up: %v", err)
	}
	tb.Logf("lab of the previous release up in %s", time.Since(start).Round(time.Millisecond))
	return d, harness.New(tb, d, l)
}

// upgrader replaces the agents of a lab one at a time.
type upgrader struct {
	*harness.Env
	d   *lab.Driver
	bin string // this tree's binary
	// upgraded are the nodes running this tree.
	upgraded map[string]bool
}

// stop ends a node's agent as an operator upgrading it would: SIGTERM to
// the PID the lab started, SIGKILL (the lab's) after a deadline.
func (u *upgrader) stop(node string) {
	u.TB.Helper()
	st := u.d.State()
	n := st.Node(node)
	if n == nil || !st.AgentAlive(node) {
		u.TB.Fatalf("the agent of %s is not running", node)
	}
	if err := syscall.Kill(n.AgentPID, syscall.SIGTERM); err != nil {
		u.TB.Fatalf("SIGTERM to the agent of %s (%d): %v", node, n.AgentPID, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for u.d.State().AgentAlive(node) {
		if time.Now().After(deadline) {
			u.TB.Logf("the agent of %s did not exit 20 s after SIGTERM: SIGKILL", node)
			u.NodeOp("kill agent of", node, u.d.KillAgent)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replace stops a node's agent and starts this tree's on the same data
// dir and flags.
func (u *upgrader) replace(node string) {
	u.TB.Helper()
	u.stop(node)
	ctx, cancel := u.Ctx()
	defer cancel()
	if err := lab.StartAgent(ctx, u.d.Options.Dir, node, u.bin); err != nil {
		u.TB.Fatalf("start this tree's agent on %s: %v", node, err)
	}
	u.upgraded[node] = true
}

// member is one entry of GET /v1/cluster/members.
type member struct {
	Name   string         `json:"name"`
	Status string         `json:"status"`
	Meta   map[string]any `json:"meta"`
}

// members asks a server for its gossip view.
func (u *upgrader) members(server string) (map[string]member, error) {
	r, err := harness.Call("GET", u.API(server)+"/v1/cluster/members", nil, nil)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/cluster/members: %d %s", r.Status, r.Body)
	}
	var body struct{ Members []member }
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return nil, err
	}
	out := map[string]member{}
	for _, m := range body.Members {
		out[m.Name] = m
	}
	return out, nil
}

// runsTree waits until every server sees node alive in gossip and the
// servers of this tree (upgraded: the previous release shows no versions)
// see it announce this tree's version.
func (u *upgrader) runsTree(node string, timeout time.Duration) {
	u.TB.Helper()
	harness.Poll(u.TB, timeout, node+" alive in every server's gossip, with version "+treeVersion, func() error {
		for _, s := range u.Servers() {
			ms, err := u.members(s)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			m := ms[node]
			if m.Status != "alive" {
				return fmt.Errorf("%s sees %s %q", s, node, m.Status)
			}
			if u.upgraded[s] && m.Meta["version"] != treeVersion {
				return fmt.Errorf("%s sees %s with version %v", s, node, m.Meta["version"])
			}
		}
		return nil
	})
}

// caughtUp waits until server answers with a leader and has applied what
// the leader had committed when asked.
func (u *upgrader) caughtUp(server string) {
	u.TB.Helper()
	leader, _ := u.LeaderOf(u.Servers(), 60*time.Second)
	lv, err := u.Cluster(leader)
	if err != nil {
		u.TB.Fatal(err)
	}
	harness.Poll(u.TB, 60*time.Second, server+" caught up with "+leader, func() error {
		v, err := u.Cluster(server)
		if err != nil {
			return err
		}
		if v.AppliedIndex < lv.CommitIndex {
			return fmt.Errorf("applied %d of %d", v.AppliedIndex, lv.CommitIndex)
		}
		return nil
	})
}

// finalize asks a server to finalize the upgrade (a write of the command
// type the previous release lacks) and returns the status and the
// NeutronError's type and message.
func (u *upgrader) finalize(server string) (int, string, string) {
	u.TB.Helper()
	r, err := harness.Call("POST", u.API(server)+"/v1/cluster/upgrade/finalize", nil, nil)
	if err != nil {
		u.TB.Fatalf("finalize through %s: %v", server, err)
	}
	var e struct {
		NeutronError struct{ Type, Message string }
	}
	_ = json.Unmarshal(r.Body, &e)
	return r.Status, e.NeutronError.Type, e.NeutronError.Message
}

// lossSince sums a stream's lost replies after since: the count, the
// number of gaps and the longest.
func lossSince(s *harness.Stream, since time.Time) (lost, gaps int, longest harness.Gap) {
	gs := s.Gaps(since)
	for _, g := range gs {
		lost += g.Lost
	}
	return lost, len(gs), harness.Longest(gs)
}

// TestRollingUpgrade runs a lab of the previous release (3 servers, 2
// chassis, a VM on each chassis pinging the other both ways) and replaces
// every agent with this tree's one at a time, servers first, then
// chassis, while 2 writers create networks through every server. After
// each step traffic flows again and writes are acknowledged again; while
// no agent is restarting no ping is lost; no acknowledged write is lost or
// applied twice; the finalize (a command type the previous release does
// not know) is refused with 503 UpgradeIncomplete naming a server of the
// previous release until the last server is replaced, then committed on
// every server. The pings lost at each step are logged (the figure the
// README reports), not asserted.
func TestRollingUpgrade(t *testing.T) {
	if err := ovsproc.Available(); err != nil {
		t.Skipf("the namespace lab cannot run here: %v", err)
	}
	start := time.Now()
	previous, tree := buildBoth(t)
	old := previousAgent(t, previous)
	u := &upgrader{bin: tree, upgraded: map[string]bool{}}
	u.d, u.Env = upLab(t, old, scenarios.Topology{Servers: 3, Chassis: 2})
	for _, s := range u.Servers() {
		ms, err := u.members(s)
		if err != nil {
			t.Fatal(err)
		}
		for name, m := range ms {
			if v := m.Meta["version"]; v != nil && v != "" {
				t.Fatalf("%s announces version %v on the previous release, which has no announcements: is the lab running it?", name, v)
			}
		}
	}

	netID, _ := u.Network(u.Admin, "upgrade", "10.47.0.0/24")
	sg := u.OpenGroup(u.Admin, "open")
	a := u.NewVM(u.Admin, "upa", u.Chassis[0], netID, sg)
	b := u.NewVM(u.Admin, "upb", u.Chassis[1], netID, sg)
	u.PingOK(harness.FirstPacket, a.Name, b.IP)
	u.TCPExchange(b.Name, b.IP, a.Name, 5001)
	ab := u.StartStream(a.Name+" -> "+b.IP, a.Name, b.IP)
	ba := u.StartStream(b.Name+" -> "+a.IP, b.Name, a.IP)
	streams := []*harness.Stream{ab, ba}
	t.Logf("traffic flows both ways, %s after the start", time.Since(start).Round(time.Millisecond))
	w := harness.StartWrites(t, fmt.Sprintf("upgrade-%d", time.Now().UnixNano()), u.APIs, 2)
	// On the previous release alone: writes acknowledged, nothing lost.
	quiet := time.Now()
	w.WaitAcks(t, 0, 20, 60*time.Second, "writes acknowledged on the previous release")
	for _, s := range streams {
		u.WaitReplies(s, 20, 30*time.Second)
		if lost, n, g := lossSince(s, quiet); lost > 0 {
			t.Errorf("%s lost %d replies in %d gaps (longest %s) before any agent restarted", s.Name, lost, n, g.Duration())
		}
	}
	if code, _, _ := u.finalize(u.Servers()[0]); code == http.StatusOK {
		t.Fatalf("the previous release finalized an upgrade it has no command for")
	}

	// step replaces one node and checks that traffic and writes recover;
	// it logs the step's loss.
	var report []string
	step := func(node string, ready func()) {
		t.Helper()
		at := time.Now()
		before := w.Acks()
		u.replace(node)
		ready()
		for _, s := range streams {
			u.WaitReplies(s, 10, harness.FirstPacket)
		}
		w.WaitAcks(t, before, 5, 60*time.Second, "writes acknowledged after "+node+" was upgraded")
		var parts []string
		for _, s := range streams {
			lost, _, g := lossSince(s, at)
			parts = append(parts, fmt.Sprintf("%s lost %d (longest gap %s)", s.Name, lost, g.Duration()))
		}
		line := fmt.Sprintf("%s upgraded in %s: %s", node, time.Since(at).Round(time.Millisecond), strings.Join(parts, ", "))
		report = append(report, line)
		t.Log(line)
	}

	upgradeStart := time.Now()
	servers := u.Servers()
	for i, srv := range servers {
		if i > 0 {
			// A server of this tree refuses the finalize itself while a
			// server of the previous release remains, naming one.
			code, typ, msg := u.finalize(servers[0])
			if code != http.StatusServiceUnavailable || typ != "UpgradeIncomplete" || !strings.Contains(msg, "runs version unannounced") {
				t.Fatalf("finalize with %d of %d servers upgraded: %d %s %q, want 503 UpgradeIncomplete naming a server of the previous release", i, len(servers), code, typ, msg)
			}
			t.Logf("finalize with %d of %d servers upgraded: %d %s: %s", i, len(servers), code, typ, msg)
		}
		w.Avoid(srv)
		step(srv, func() {
			u.runsTree(srv, 60*time.Second)
			u.caughtUp(srv)
			w.Avoid("")
		})
	}
	// Every server runs this tree: the finalize commits once gossip
	// carries the last one's announcement, and every server applies it.
	harness.Poll(t, 60*time.Second, "finalize accepted with every server upgraded", func() error {
		if code, typ, msg := u.finalize(servers[len(servers)-1]); code != http.StatusOK {
			return fmt.Errorf("%d %s %q", code, typ, msg)
		}
		return nil
	})
	for _, srv := range servers {
		harness.Poll(t, 30*time.Second, srv+" applied the finalize", func() error {
			r, err := harness.Call("GET", u.API(srv)+"/v1/cluster", nil, nil)
			if err != nil {
				return err
			}
			var st struct {
				Finalized uint64 `json:"upgrade_finalized_at"`
			}
			if err := json.Unmarshal(r.Body, &st); err != nil || st.Finalized == 0 {
				return fmt.Errorf("finalized at %d (%v)", st.Finalized, err)
			}
			return nil
		})
	}
	for _, ch := range u.Chassis {
		step(ch, func() { u.runsTree(ch, 60*time.Second) })
	}
	t.Logf("upgrade of %d servers and %d chassis took %s", len(servers), len(u.Chassis), time.Since(upgradeStart).Round(time.Millisecond))

	// Everything runs this tree: no loss while nothing restarts, TCP
	// across the chassis, and every acknowledged write there exactly once.
	quiet = time.Now()
	for _, s := range streams {
		u.WaitReplies(s, 40, 30*time.Second)
	}
	for _, s := range streams {
		s.Proc.Stop()
		if lost, n, g := lossSince(s, quiet); lost > 0 {
			t.Errorf("%s lost %d replies in %d gaps (longest %s) after the upgrade, with no agent restarting", s.Name, lost, n, g.Duration())
		}
		lost, _, g := lossSince(s, upgradeStart)
		t.Logf("%s: %d replies lost during the whole upgrade (%s at %s intervals), longest gap %s", s.Name, lost,
			time.Duration(lost)*harness.StreamInterval, harness.StreamInterval, g.Duration())
	}
	u.TCPExchange(a.Name, a.IP, b.Name, 5002)
	// The upgraded cluster programs what is new, not only what the
	// previous release left on the switches.
	c := u.NewVM(u.Admin, "upc", u.Chassis[1], netID, sg)
	u.PingOK(harness.FirstPacket, a.Name, c.IP)
	leader, _ := u.LeaderOf(servers, 60*time.Second)
	ms, err := u.members(leader)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range servers {
		if cmds, _ := ms[srv].Meta["commands"].(string); len(cmds) != 64 {
			t.Errorf("%s announces command set %q after the upgrade, want 64 hex digits", srv, cmds)
		}
	}
	checkAt := time.Now()
	w.Check(t, u.API(leader))
	t.Logf("writes checked (and deleted) in %s", time.Since(checkAt).Round(time.Millisecond))
	t.Logf("rolling upgrade test took %s; per step:\n  %s", time.Since(start).Round(time.Second), strings.Join(report, "\n  "))
}
