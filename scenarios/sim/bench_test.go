package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/cluster/clustertest"
	"neutrino/scenarios/sim"
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

func neutrinoBinary(tb testing.TB) string {
	tb.Helper()
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
		s := &procServer{name: fmt.Sprintf("s%d", i+1),
			bind: fmt.Sprintf("127.0.0.1:%d", clustertest.FreePort(tb)),
			http: fmt.Sprintf("127.0.0.1:%d", clustertest.FreePort(tb))}
		srv = append(srv, s)
		binds = append(binds, s.bind)
	}
	for _, s := range srv {
		dir := tb.TempDir()
		args := []string{"agent", "--server", "--node", s.name, "--data-dir", dir, "--bind", s.bind, "--http", s.http,
			"--bootstrap-expect", strconv.Itoa(n), "--log-level", "error", "--vni-ranges", "1:1000000"}
		for _, j := range binds {
			args = append(args, "--join", j)
		}
		logf, err := os.Create(filepath.Join(dir, "agent.log"))
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		s.cmd, s.exited = cmd, make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(s.exited) }()
		tb.Cleanup(func() {
			_ = s.cmd.Process.Kill()
			<-s.exited
		})
	}
	return srv
}

// leaderOf asks a server who leads.
func leaderOf(servers []*procServer) (*procServer, error) {
	c := http.Client{Timeout: 5 * time.Second}
	for _, s := range servers {
		resp, err := c.Get("http://" + s.http + "/v1/cluster")
		if err != nil {
			continue
		}
		var st struct {
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, l := range servers {
			if l.name == st.Leader {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no leader")
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
// NEUTRINO_SIM_BENCH_CHASSIS lists the sizes (default "20"; at 100 a
// chassis' OVSDB transaction stalled past 2 minutes here, README).
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
	pool, err := sim.StartPool(ctx, sim.PoolOptions{Chassis: nChassis, Prefix: fmt.Sprintf("simb%d-", os.Getpid()%100000),
		Join: binds, Logger: logger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	clustertest.Eventually(b, 10*time.Minute, func() error {
		if r := pool.Ready(); r != nChassis {
			return fmt.Errorf("%d of %d chassis programmed", r, nChassis)
		}
		return nil
	})
	var leader *procServer
	clustertest.Eventually(b, time.Minute, func() (err error) { leader, err = leaderOf(servers); return err })
	nc := procAPI(leader)
	rng := rand.New(rand.NewPCG(1, 2))
	tp := buildTopo(b, nc, pool, 10, rng)
	tp.createPorts(b, nc, 10*nChassis)
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
	var lat []time.Duration
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
		tp.netOf[p.ID] = ni
		tp.plug(b, p.ID, at)
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
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	flows := 0
	for _, c := range pool.Chassis {
		flows += c.Switch().FlowCount()
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(rssMiB(leader.cmd.Process.Pid), "leader-RSS-MiB")
	b.ReportMetric(float64(flows)/float64(nChassis), "flows/chassis")
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
