package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/cluster/clustertest"
	"neutrino/internal/benchfig"
	"neutrino/scenarios/harness"
	"neutrino/scenarios/sim"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
)

// The benchmarks run the servers as processes (the neutrino binary, built
// once), so the leader's RSS is its own and the simulated chassis (in
// this process) do not share its CPU accounting.

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// neutrinoBinary builds the neutrino binary once, or takes
// NEUTRINO_SIM_BINARY (a binary built elsewhere, to compare two trees
// with one benchmark).
func neutrinoBinary(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("NEUTRINO_SIM_BINARY"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "neutrino-sim-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "neutrino")
		out, err := exec.Command("go", "build", "-o", binary, "neutrino/cmd/neutrino").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build neutrino: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binary
}

type procServer struct {
	name, bind, http string
	pprof            string // its profiles' address when NEUTRINO_SIM_PROFILE is set
	bin              string
	args             []string
	logPath          string
	cmd              *exec.Cmd
	exited           chan struct{}
}

// startProcServers starts n servers as processes; the cleanup SIGKILLs
// them by PID.
func startProcServers(tb testing.TB, n int) []*procServer {
	tb.Helper()
	bin := neutrinoBinary(tb)
	var srv []*procServer
	var binds []string
	for i := range n {
		s := &procServer{name: fmt.Sprintf("s%d", i+1), bin: bin,
			bind: fmt.Sprintf("127.0.0.1:%d", clustertest.FreePort(tb)),
			http: fmt.Sprintf("127.0.0.1:%d", clustertest.FreePort(tb))}
		srv = append(srv, s)
		binds = append(binds, s.bind)
	}
	for _, s := range srv {
		dir := tb.TempDir()
		// NEUTRINO_SIM_SERVER_LOG=DIR keeps the servers' logs, at info
		// level (the southbound's takeover summary among them), in
		// DIR/<name>.log.
		logLevel := "error"
		s.logPath = filepath.Join(dir, "agent.log")
		if d := os.Getenv("NEUTRINO_SIM_SERVER_LOG"); d != "" {
			logLevel, s.logPath = "info", filepath.Join(d, s.name+".log")
		}
		s.args = []string{"agent", "--server", "--node", s.name, "--data-dir", dir, "--bind", s.bind, "--http", s.http,
			"--bootstrap-expect", strconv.Itoa(n), "--log-level", logLevel, "--vni-ranges", "1:1000000",
			// The simulator's gossip timings (sim.PoolOptions): the chassis'
			// members share one process, and the servers probe them.
			"--gossip-probe-interval", sim.SimProbeInterval.String(), "--gossip-probe-timeout", sim.SimProbeTimeout.String(),
			"--gossip-suspicion-mult", strconv.Itoa(sim.SimSuspicionMult)}
		for _, j := range binds {
			s.args = append(s.args, "--join", j)
		}
		// NEUTRINO_SIM_RAFT_MULTIPLIER scales the servers' Raft timeouts
		// (agent --raft-multiplier; default 2: 400 ms).
		if m := os.Getenv("NEUTRINO_SIM_RAFT_MULTIPLIER"); m != "" {
			s.args = append(s.args, "--raft-multiplier", m)
		}
		if os.Getenv("NEUTRINO_SIM_PROFILE") != "" {
			s.pprof = fmt.Sprintf("127.0.0.1:%d", clustertest.FreePort(tb))
		}
		s.start(tb)
		tb.Cleanup(func() {
			_ = s.cmd.Process.Kill()
			<-s.exited
		})
	}
	return srv
}

// start starts (or, after a kill, restarts on its data) the server's
// process; its log is appended to.
func (s *procServer) start(tb testing.TB) {
	tb.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if s.pprof != "" {
		cmd.Env = append(os.Environ(), "NEUTRINO_PPROF_ADDR="+s.pprof)
	}
	// Pdeathsig: a benchmark killed by a timeout (SIGQUIT) runs no
	// cleanup; its servers would live on and gossip with the next run's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
}

// serverProfile fetches a CPU profile of s over the next d into
// $NEUTRINO_SIM_PROFILE/<name>.prof, in the background; wait waits for it.
// Without the variable it does nothing.
func serverProfile(tb testing.TB, s *procServer, name string, d time.Duration) (wait func()) {
	if os.Getenv("NEUTRINO_SIM_PROFILE") == "" || s.pprof == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		saveProfile(tb, s, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), name, d+time.Minute)
	}()
	return func() { <-done }
}

// serverHeap writes a heap profile of s (after a GC) to
// $NEUTRINO_SIM_PROFILE/<name>.prof; without the variable it does nothing.
func serverHeap(tb testing.TB, s *procServer, name string) {
	if os.Getenv("NEUTRINO_SIM_PROFILE") == "" || s.pprof == "" {
		return
	}
	saveProfile(tb, s, "heap?gc=1", name, time.Minute)
}

// saveProfile writes s's /debug/pprof/<what> to
// $NEUTRINO_SIM_PROFILE/<name>.prof, logging what fails.
func saveProfile(tb testing.TB, s *procServer, what, name string, timeout time.Duration) {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/%s", s.pprof, what))
	if err != nil {
		tb.Logf("profile of %s: %v", s.name, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(os.Getenv("NEUTRINO_SIM_PROFILE"), name+".prof"))
	if err != nil {
		tb.Logf("profile of %s: %v", s.name, err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		tb.Logf("profile of %s: %v", s.name, err)
	}
}

// rssMiB is a process' resident set in MiB (/proc/PID/status VmRSS).
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func procAPI(s *procServer) *gophercloud.ServiceClient {
	endpoint := "http://" + s.http
	return &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 60 * time.Second, Transport: retryTransport{}}},
		Endpoint:       endpoint + "/",
		ResourceBase:   endpoint + "/v2.0/",
		Type:           "network",
	}
}

// BenchmarkSimPortRealized measures port add -> realized on every chassis
// that needs it: from the API create until every simulated switch where
// the port's network is present (one of its ports is plugged there) holds
// the port's L2 lookup flow (table 40, dl_dst = its MAC), which exists only
// once the port's binding is committed. Each iteration creates one port
// and plugs it on a random chassis, as Nova does. Reported: p50 and p99
// (ms), the leader's RSS (MiB) and the mean flows per chassis.
// NEUTRINO_SIM_BENCH_CHASSIS lists the sizes (default "20"; at 100 the
// API's writes take seconds on this shared machine, README),
// NEUTRINO_SIM_BENCH_PORTS the ports per chassis before the samples (10).
func BenchmarkSimPortRealized(b *testing.B) {
	sizes := []int{20}
	if v := os.Getenv("NEUTRINO_SIM_BENCH_CHASSIS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("chassis=%d", n), func(b *testing.B) { benchPortRealized(b, n) })
	}
}

func benchPortRealized(b *testing.B, nChassis int) {
	servers := startProcServers(b, 3)
	var binds []string
	for _, s := range servers {
		binds = append(binds, s.bind)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	stopStart := phaseProfile(b, "sim-start")
	pool, err := sim.StartPool(ctx, sim.PoolOptions{Chassis: nChassis, Prefix: fmt.Sprintf("simb%d-", os.Getpid()%100000),
		Join: binds, Logger: logger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	b.Logf("%d chassis started in %s", nChassis, time.Since(t0).Round(time.Millisecond))
	clustertest.Eventually(b, 10*time.Minute, func() error {
		if r := pool.Ready(); r != nChassis {
			return fmt.Errorf("%d of %d chassis programmed", r, nChassis)
		}
		return nil
	})
	b.Logf("%d chassis programmed by a master %s after start", nChassis, time.Since(t0).Round(time.Millisecond))
	stopStart()
	var leader *procServer
	var term0 uint64
	clustertest.Eventually(b, time.Minute, func() (err error) { leader, term0, err = leaderTerm(servers); return err })
	b.Logf("leader %s in term %d", leader.name, term0)
	nc := procAPI(leader)
	rng := rand.New(rand.NewPCG(1, 2))
	tp := buildTopo(b, nc, pool, 10, rng)
	b.Logf("networks, router and security group built %s after start", time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()
	perChassis := envInt("NEUTRINO_SIM_BENCH_PORTS", 10) // ports per chassis before the samples
	// NEUTRINO_SIM_PROFILE=DIR: a minute's CPU profile of the leader and
	// of this process (the chassis) from the start of each phase.
	profWindow := time.Duration(envInt("NEUTRINO_SIM_PROFILE_SECONDS", 60)) * time.Second
	waitProf, stopProf := serverProfile(b, leader, "leader-ports", profWindow), phaseProfile(b, "sim-ports")
	tp.createPorts(b, nc, perChassis*nChassis)
	b.Logf("%d ports created and plugged in %s (bulk creates %s, plugs %s)", perChassis*nChassis,
		time.Since(t1).Round(time.Millisecond), tp.apiTime.Round(time.Millisecond), tp.plugTime.Round(time.Millisecond))
	waitProf()
	stopProf()
	// Networks present per chassis, from where ports are plugged.
	present := func(net int) []int {
		var out []int
		seen := map[int]bool{}
		for id, c := range tp.plugged {
			if tp.netOf[id] == net && !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
		slices.Sort(out)
		return out
	}

	// A fixed number of samples per b.N: the setup above takes longer than
	// make bench's -benchtime, so b.N stays 1 and one setup serves them.
	samples := envInt("NEUTRINO_SIM_BENCH_SAMPLES", 50)
	var lat, tCreate, tPlug []time.Duration // whole, API create, plug in the chassis' OVSDB
	waitProf, stopProf = serverProfile(b, leader, "leader-samples", profWindow), phaseProfile(b, "sim-samples")
	if _, t, err := leaderTerm(servers); err == nil {
		b.Logf("samples start in term %d", t)
	}
	b.ResetTimer()
	for i := 0; i < b.N*samples; i++ {
		ni := rng.IntN(len(tp.nets))
		at := rng.IntN(nChassis)
		start := time.Now()
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		p, err := ports.Create(cctx, nc, ports.CreateOpts{NetworkID: tp.nets[ni], Name: fmt.Sprintf("bench%d", i)}).Extract()
		ccancel()
		if err != nil {
			b.Fatal(err)
		}
		created := time.Now()
		tp.netOf[p.ID] = ni
		tp.plug(b, p.ID, at)
		tCreate, tPlug = append(tCreate, created.Sub(start)), append(tPlug, time.Since(created))
		mac, err := net.ParseMAC(p.MACAddress)
		if err != nil {
			b.Fatal(err)
		}
		need := present(ni)
		for _, c := range need {
			if err := waitFlow(pool.Chassis[c], mac); err != nil {
				got, _ := ports.Get(ctx, nc, p.ID).Extract()
				b.Fatalf("%v (port %s on %s: status %v, net %d, need %v)", err, p.ID, pool.Chassis[at].Name(), got.Status, ni, need)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	stopProf()
	waitProf()
	slices.Sort(lat)
	slices.Sort(tCreate)
	slices.Sort(tPlug)
	b.Logf("port add medians: %s in all, API create %s, plug %s", lat[len(lat)/2], tCreate[len(tCreate)/2], tPlug[len(tPlug)/2])
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	flows := 0
	for _, c := range pool.Chassis {
		flows += c.Switch().FlowCount()
	}
	ruleMs := benchRule(b, nc, pool, tp)
	// Leadership may have moved since the setup (elections on a loaded
	// machine): the leader's RSS and the failover are of the current one.
	// NEUTRINO_SIM_BENCH_FAILOVERS leader kills (1), each after the last
	// one's victim restarted on its data and caught up.
	var (
		tookMs     []float64
		extraTerms uint64
		rss        float64
		killed     *procServer
	)
	for i := range envInt("NEUTRINO_SIM_BENCH_FAILOVERS", 1) {
		if killed != nil {
			killed.start(b)
			waitRejoined(b, servers, killed, pool)
		}
		var term uint64
		clustertest.Eventually(b, time.Minute, func() (err error) { leader, term, err = leaderTerm(servers); return err })
		if i == 0 {
			rss = rssMiB(leader.cmd.Process.Pid)
			serverHeap(b, leader, "leader-heap")
		}
		b.Logf("leader %s, term %d", leader.name, term)
		ms, terms := benchFailover(b, i, servers, leader, term, pool)
		tookMs, extraTerms, killed = append(tookMs, ms), extraTerms+terms-1, leader
	}
	slices.Sort(tookMs)
	b.Logf("failovers: %v ms, %d extra terms in all", tookMs, extraTerms)
	benchfig.Report(b, pct(0.5), "p50-ms")
	benchfig.Report(b, pct(0.99), "p99-ms")
	benchfig.Report(b, rss, "leader-RSS-MiB")
	benchfig.Report(b, float64(flows)/float64(nChassis), "flows/chassis")
	benchfig.Report(b, ruleMs, "sg-rule-ms")
	benchfig.Report(b, tookMs[len(tookMs)/2], "failover-ms")
	benchfig.Report(b, tookMs[len(tookMs)-1], "failover-max-ms")
	benchfig.Report(b, float64(extraTerms), "failover-extra-terms")
}

// benchRule measures a security-group rule change realized everywhere:
// from the API create of an ingress rule (remote prefix 192.0.2.77/32) in
// the group until every switch with a port of the group plugged holds the
// rule's flow matching that source. In milliseconds.
func benchRule(b *testing.B, nc *gophercloud.ServiceClient, pool *sim.Pool, tp *topo) float64 {
	b.Helper()
	remote := net.IPv4(192, 0, 2, 77).To4()
	var need []int
	seen := map[int]bool{}
	for id, c := range tp.plugged {
		if tp.grouped[id] && !seen[c] {
			seen[c] = true
			need = append(need, c)
		}
	}
	ctx, cancel := ctx60()
	defer cancel()
	start := time.Now()
	_, err := rules.Create(ctx, nc, rules.CreateOpts{SecGroupID: tp.group, Direction: rules.DirIngress, EtherType: rules.EtherType4,
		Protocol: rules.ProtocolTCP, PortRangeMin: 8080, PortRangeMax: 8080, RemoteIPPrefix: "192.0.2.77/32"}).Extract()
	mustOK(b, "create rule", err)
	for _, c := range need {
		if err := waitFor(pool.Chassis[c], func(f *openflow.Flow) bool {
			for _, m := range f.Match {
				if m.Field == openflow.FieldIPv4Src && bytes.Equal(m.Value, remote) {
					return true
				}
			}
			return false
		}); err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	b.Logf("security-group rule realized on the %d chassis of its group in %s", len(need), took.Round(time.Millisecond))
	return float64(took.Microseconds()) / 1000
}

// benchFailover SIGKILLs the leader and measures until a new leader exists
// and every simulated switch has it as its only MASTER and holds only
// flows of its round (the new leader dumped, re-stamped and pruned every
// switch). In milliseconds, with the terms the survivors went through
// (1: one election, none after). It logs the takeover's progress as the
// switches see it (MASTER, all flows in the current round) and the
// current term every time one of them moves; with NEUTRINO_SIM_PROFILE
// the survivors and this process are profiled from the kill on.
func benchFailover(b *testing.B, round int, servers []*procServer, leader *procServer, oldTerm uint64, pool *sim.Pool) (ms float64, terms uint64) {
	b.Helper()
	var rest []*procServer
	for _, s := range servers {
		if s != leader {
			rest = append(rest, s)
		}
	}
	profWindow := time.Duration(envInt("NEUTRINO_SIM_PROFILE_SECONDS", 60)) * time.Second
	start := time.Now()
	if err := leader.cmd.Process.Kill(); err != nil {
		b.Fatal(err)
	}
	<-leader.exited
	stopProf := phaseProfile(b, fmt.Sprintf("sim-failover%d", round))
	defer stopProf()
	for _, s := range rest {
		defer serverProfile(b, s, fmt.Sprintf("failover%d-%s", round, s.name), profWindow)()
	}
	var (
		term, lastTerm uint64
		elected        time.Duration
		last           string
	)
	// Polled every 100 ms (harness.Poll), not Eventually's 25: every poll
	// scans every switch's flows in this process, which also runs the
	// switches.
	harness.Poll(b, 3*time.Minute, "failover", func() error {
		// The current term: another election may have followed.
		_, t, err := leaderTerm(rest)
		if err != nil {
			return err
		}
		if t <= oldTerm {
			return fmt.Errorf("no leader after term %d yet", oldTerm)
		}
		if elected == 0 {
			elected = time.Since(start)
		}
		term = t
		round := uint16(term)
		var masters, done int
		var notDone error
		for _, c := range pool.Chassis {
			sw := c.Switch()
			one := sw.MasterCount() == 1
			if one {
				masters++
			}
			stale := sw.HasFlow(func(f *openflow.Flow) bool { return flowsync.CookieRound(f.Cookie) != round })
			switch {
			case one && !stale && sw.FlowCount() > 0:
				done++
			case notDone == nil && !one:
				notDone = fmt.Errorf("%s: %d masters", c.Name(), sw.MasterCount())
			case notDone == nil:
				notDone = fmt.Errorf("%s: flows not all of round %d (%d flows)", c.Name(), round, sw.FlowCount())
			}
		}
		if now := fmt.Sprintf("term %d: %d masters, %d in round", term, masters, done); now != last || term != lastTerm {
			b.Logf("failover +%s: %s", time.Since(start).Round(10*time.Millisecond), now)
			last, lastTerm = now, term
		}
		return notDone
	})
	took := time.Since(start)
	b.Logf("leader SIGKILL in term %d: new leader after %s, every switch verified in the round of term %d after %s",
		oldTerm, elected.Round(time.Millisecond), term, took.Round(time.Millisecond))
	return float64(took.Microseconds()) / 1000, term - oldTerm
}

// waitRejoined waits until a restarted server follows the current leader
// at its revision and every switch is connected to every server again.
func waitRejoined(b *testing.B, servers []*procServer, back *procServer, pool *sim.Pool) {
	b.Helper()
	start := time.Now()
	clustertest.Eventually(b, 2*time.Minute, func() error {
		leader, _, err := leaderTerm(servers)
		if err != nil {
			return err
		}
		if leader == back {
			return nil // it leads again: caught up by definition
		}
		want, err := clusterStatus(leader)
		if err != nil {
			return err
		}
		got, err := clusterStatus(back)
		if err != nil {
			return err
		}
		if got.Leader != want.Leader || got.Revision < want.Revision {
			return fmt.Errorf("%s: leader %q at revision %d, want %q at %d", back.name, got.Leader, got.Revision, want.Leader, want.Revision)
		}
		for _, c := range pool.Chassis {
			if n := c.Switch().Connections(); n != len(servers) {
				return fmt.Errorf("%s: %d controller connections", c.Name(), n)
			}
		}
		return nil
	})
	b.Logf("%s restarted and caught up in %s", back.name, time.Since(start).Round(time.Millisecond))
}

// clusterState is what the benchmark reads of GET /v1/cluster.
type clusterState struct {
	Leader   string `json:"leader"`
	Term     uint64 `json:"term"`
	Revision uint64 `json:"revision"`
}

func clusterStatus(s *procServer) (clusterState, error) {
	var st clusterState
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.http + "/v1/cluster")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// leaderTerm asks the servers who leads and in which term.
func leaderTerm(servers []*procServer) (*procServer, uint64, error) {
	for _, s := range servers {
		st, err := clusterStatus(s)
		if err != nil {
			continue
		}
		for _, l := range servers {
			if l.name == st.Leader {
				return l, st.Term, nil
			}
		}
	}
	return nil, 0, fmt.Errorf("no leader among the servers left")
}

// waitFor waits until c's switch has a flow pred accepts.
func waitFor(c *sim.Chassis, pred func(*openflow.Flow) bool) error {
	sw := c.Switch()
	deadline := time.After(time.Minute)
	for {
		changed := sw.Changed()
		if sw.HasFlow(pred) {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			return fmt.Errorf("%s: no such flow within a minute; %d flows", c.Name(), sw.FlowCount())
		}
	}
}

// waitFlow waits until sw has a table-40 flow matching dl_dst = mac.
func waitFlow(c *sim.Chassis, mac net.HardwareAddr) error {
	sw := c.Switch()
	deadline := time.After(time.Minute)
	for {
		changed := sw.Changed()
		if sw.HasFlow(func(f *openflow.Flow) bool {
			if f.Table != 40 {
				return false
			}
			for _, m := range f.Match {
				if m.Field == openflow.FieldEthDst && m.Mask == nil && bytes.Equal(m.Value, mac) {
					return true
				}
			}
			return false
		}) {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			var l2 []string
			sw.HasFlow(func(f *openflow.Flow) bool {
				if f.Table == 40 && len(l2) < 5 {
					l2 = append(l2, f.String())
				}
				return false
			})
			return fmt.Errorf("%s: no L2 flow for %s within a minute; %d flows, some of table 40: %v", c.Name(), mac, sw.FlowCount(), l2)
		}
	}
}
