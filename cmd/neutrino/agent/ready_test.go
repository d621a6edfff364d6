package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"neutrino/cluster/clustertest"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
	"neutrino/southbound/pipeline/topology"
)

// writeRaftSnapshot gives dataDir the Raft state of a one-server cluster
// (node at raftAddr) whose only content is a snapshot of f: what a server
// restarting after a snapshot finds on disk.
func writeRaftSnapshot(tb testing.TB, dataDir, node, raftAddr string, f *fsm.FSM) {
	tb.Helper()
	store, err := raft.NewFileSnapshotStore(filepath.Join(dataDir, "raft"), 2, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(raftAddr))
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(node), Address: raft.ServerAddress(raftAddr)}}}
	index := f.State().Read().Revision()
	sink, err := store.Create(raft.SnapshotVersionMax, index, 1, conf, 1, trans)
	if err != nil {
		tb.Fatal(err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		tb.Fatal(err)
	}
}

// restoreFixture is a data dir holding a snapshot of topology.DefaultSpec
// with the given number of ports, and the agent config that starts on it.
type restoreFixture struct {
	f   *fsm.FSM
	cfg agent.Config
}

func newRestoreFixture(tb testing.TB, ports int) *restoreFixture {
	tb.Helper()
	spec := topology.DefaultSpec(ports)
	spec.Chassis = 1
	f, err := topology.Build(spec)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	// The generated chassis names the system OVSDB socket: point it at a
	// path of ours, so the restored leader's controller reaches no switch.
	ch := f.State().Read().Chassis(topology.ChassisName(0)).Copy()
	ch.OVSDB = "unix:" + filepath.Join(dir, "no-ovsdb.sock")
	cmd, err := fsm.Encode(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{ch}})
	if err != nil {
		tb.Fatal(err)
	}
	if r := f.Apply(&raft.Log{Index: f.State().Read().Revision() + 1, Data: cmd}).(*fsm.Result); r.Err != nil {
		tb.Fatal(r.Err)
	}
	bind := clustertest.FreeBind(tb)
	host, port, _ := net.SplitHostPort(bind)
	var p int
	fmt.Sscan(port, &p)
	writeRaftSnapshot(tb, dir, "r1", net.JoinHostPort(host, fmt.Sprint(p+1)), f)
	return &restoreFixture{f: f, cfg: agent.Config{
		Server: true, Node: "r1", DataDir: dir, Bind: bind, HTTP: "127.0.0.1:0",
		OpenFlow: "127.0.0.1:0", API: northbound.DefaultConfig(), Logger: testLogger(),
	}}
}

type probe struct {
	code  int
	retry string
	body  map[string]any
	err   error
}

func get(client *http.Client, method, url string) probe {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return probe{err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return probe{err: err}
	}
	defer resp.Body.Close()
	var body map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &body)
	return probe{code: resp.StatusCode, retry: resp.Header.Get("Retry-After"), body: body}
}

// TestReadinessDuringRestore restarts a server on a large snapshot. While
// it restores, /healthz says alive, /readyz says 503 naming the restore,
// and API requests get 503 with Retry-After at once: all of them answered
// before the restore finished (agent.Start had not returned). Once ready,
// reads return the restored state.
func TestReadinessDuringRestore(t *testing.T) {
	fx := newRestoreFixture(t, 20000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fx.cfg.ExtraHTTP = []net.Listener{ln}
	base := "http://" + ln.Addr().String()

	type started struct {
		a   *agent.Agent
		err error
	}
	startCh := make(chan started, 1)
	go func() {
		a, err := agent.Start(fx.cfg)
		startCh <- started{a, err}
	}()
	var a *agent.Agent
	t.Cleanup(func() {
		if a == nil {
			if s := <-startCh; s.a != nil {
				a = s.a
			}
		}
		if a != nil {
			shutdown(t, a)
		}
	})
	restoring := func() bool {
		select {
		case s := <-startCh:
			startCh <- s
			return false
		default:
			return true
		}
	}

	client := &http.Client{Timeout: 30 * time.Second}
	health := get(client, "GET", base+"/healthz")
	ready := get(client, "GET", base+"/readyz")
	write := get(client, "POST", base+"/v2.0/networks")
	read := get(client, "GET", base+"/v2.0/networks")
	stillRestoring := restoring()

	if health.err != nil || health.code != 200 {
		t.Fatalf("/healthz during restore: %d %v", health.code, health.err)
	}
	if ready.err != nil || ready.code != 503 || ready.retry != "1" || ready.body["ready"] != false {
		t.Fatalf("/readyz during restore: %d %q %v %v", ready.code, ready.retry, ready.body, ready.err)
	}
	missing, _ := ready.body["missing"].([]any)
	if len(missing) == 0 || missing[0].(map[string]any)["condition"] != "restored" {
		t.Fatalf("/readyz during restore does not name the restore: %v", ready.body)
	}
	for name, p := range map[string]probe{"POST /v2.0/networks": write, "GET /v2.0/networks": read} {
		ne, _ := p.body["NeutronError"].(map[string]any)
		if p.err != nil || p.code != 503 || p.retry != "1" || ne["type"] != "ServiceUnavailable" {
			t.Fatalf("%s during restore: %d Retry-After %q %v %v", name, p.code, p.retry, p.body, p.err)
		}
	}
	if !stillRestoring {
		t.Fatal("the restore finished before every probe was answered: the probes prove nothing (make the snapshot larger)")
	}

	s := <-startCh
	if s.err != nil {
		t.Fatal(s.err)
	}
	a = s.a
	eventually(t, 30*time.Second, func() error {
		if p := get(client, "GET", base+"/readyz"); p.code != 200 {
			return fmt.Errorf("/readyz %d %v %v", p.code, p.body, p.err)
		}
		return nil
	})
	want := fx.f.State().Read()
	var l struct {
		Networks []struct {
			ID string `json:"id"`
		} `json:"networks"`
	}
	if code, err := apiGet(a.HTTPAddr(), "/v2.0/networks?fields=id", nil, &l); err != nil || code != 200 {
		t.Fatalf("list networks: %d %v", code, err)
	}
	if len(l.Networks) != len(want.Networks()) {
		t.Fatalf("%d networks after the restore, want %d", len(l.Networks), len(want.Networks()))
	}
	p := want.Ports()[len(want.Ports())/2]
	var shown struct {
		Port struct {
			ID  string `json:"id"`
			MAC string `json:"mac_address"`
		} `json:"port"`
	}
	if code, err := apiGet(a.HTTPAddr(), "/v2.0/ports/"+p.ID, nil, &shown); err != nil || code != 200 || shown.Port.MAC != p.MACAddress {
		t.Fatalf("show port %s: %d %v %+v", p.ID, code, err, shown)
	}
}

// BenchmarkServerStartRestore starts a server whose data dir holds a
// snapshot (raft's FileSnapshotStore: read, CRC, FSM restore) and reports
// how long agent.Start took (it returns once restored) and until /readyz
// said 200 (a leader elected: one election timeout more).
func BenchmarkServerStartRestore(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			fx := newRestoreFixture(b, n)
			fx.cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			var startDur, readyDur, cpu time.Duration
			for i := 0; i < b.N; i++ {
				cpu0 := processCPU()
				t0 := time.Now()
				a, err := agent.Start(fx.cfg)
				if err != nil {
					b.Fatal(err)
				}
				startDur += time.Since(t0)
				cpu += processCPU() - cpu0
				clustertest.Eventually(b, 60*time.Second, func() error {
					if code, err := apiGet(a.HTTPAddr(), "/readyz", nil, nil); code != 200 {
						return fmt.Errorf("/readyz %d %v", code, err)
					}
					return nil
				})
				readyDur += time.Since(t0)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err = a.Shutdown(ctx)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					b.Logf("shutdown: %v", err)
				}
			}
			b.ReportMetric(float64(startDur.Milliseconds())/float64(b.N), "ms/start")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/start")
			b.ReportMetric(float64(readyDur.Milliseconds())/float64(b.N), "ms/ready")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
