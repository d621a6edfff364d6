package northbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"neutrino/cluster"
	"neutrino/cluster/watch"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
)

// lbEnv is a 3-server cluster with two gateway chassis agents (real
// processes' code in process: gossip, chassis records, watches) and, on
// each gateway, a stand-in for the HAProxy side of the agent.
//
// Nothing here runs HAProxy (that is the lb-agent part, tested in the lab
// with these same clients). So that provisioning leaves PENDING_*, each
// gateway's reporter does what the contract's agent does on the wire: it
// watches lb_loadbalancers through the chassis agent's real watch
// (Agent.Watch) and, for every load balancer active on its chassis whose
// tree is pending, calls the real PUT /v1/lbaas/loadbalancers/{id}/
// agent-status with the current config_revision. The API under test is
// not mocked: the reporter is a client of it.
type lbEnv struct {
	t       testing.TB
	servers []*apiServer
	gws     []*lbReporter
}

// lbReporter plays the HAProxy side of one gateway chassis' agent.
type lbReporter struct {
	name string
	env  *lbEnv
	w    *watch.Watcher
	kick chan struct{}
	// runMu is held through each pass, so that once pause returns no
	// report of the pass before is still on its way.
	runMu   sync.Mutex
	paused  atomic.Bool
	mu      sync.Mutex
	health  map[string]string // object id -> operating status to report
	reports atomic.Int64
	failCfg atomic.Value // string: the error to report for new revisions
}

func newLBEnv(t testing.TB, tweak ...func(*northbound.Config)) *lbEnv {
	t.Helper()
	var tw func(*northbound.Config)
	if len(tweak) > 0 {
		tw = tweak[0]
	}
	e := &lbEnv{t: t, servers: newAPICluster(t, 3, tw)}
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("gw%d", i)
		a, err := agent.Start(agent.Config{Node: name, DataDir: t.TempDir(), Bind: freeBind(t), HTTP: "127.0.0.1:0",
			Join:   []string{e.servers[0].bind, e.servers[1].bind, e.servers[2].bind},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Chassis: cluster.NodeMeta{TunnelIP: fmt.Sprintf("192.0.2.%d", 10+i), Roles: []string{"compute", "gateway"},
				Encaps: []string{"vxlan"}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.Shutdown(ctx)
		})
		w, err := a.Watch(fsm.TableLBLoadBalancers, fsm.TableLBMembers)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Close)
		g := &lbReporter{name: name, env: e, w: w, kick: make(chan struct{}, 1), health: map[string]string{}}
		g.failCfg.Store("")
		e.gws = append(e.gws, g)
		unsub := w.Subscribe(func(watch.Batch) { g.poke() })
		t.Cleanup(unsub)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); g.run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	eventually(t, 30*time.Second, func() error {
		var l struct {
			Chassis []struct{ Name, Status string }
		}
		if code := e.servers[0].do("GET", "/v2.0/chassis", nil, nil, &l); code != 200 {
			return fmt.Errorf("chassis list: %d", code)
		}
		up := 0
		for _, c := range l.Chassis {
			if c.Status == "UP" {
				up++
			}
		}
		if up != 2 {
			return fmt.Errorf("chassis %+v", l.Chassis)
		}
		return nil
	})
	return e
}

func (g *lbReporter) poke() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// setHealth sets the operating status the reporter claims for an object
// (as HAProxy's checks would find it) and reports it.
func (g *lbReporter) setHealth(id, status string) {
	g.mu.Lock()
	g.health[id] = status
	g.mu.Unlock()
	g.poke()
}

func (g *lbReporter) run(ctx context.Context) {
	// A periodic pass as well as the watch's batches: a report refused
	// while the cluster changed leader is sent again.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.kick:
		case <-tick.C:
		}
		g.runMu.Lock()
		if !g.paused.Load() {
			for _, lb := range watch.List[*fsm.LoadBalancer](g.w, fsm.TableLBLoadBalancers) {
				if lb.ActiveChassis == g.name {
					g.report(ctx, lb)
				}
			}
		}
		g.runMu.Unlock()
	}
}

// pause stops (true) or resumes (false) the reporter's reports; after
// pause(true) returns, none is in flight.
func (g *lbReporter) pause(on bool) {
	g.runMu.Lock()
	g.paused.Store(on)
	g.runMu.Unlock()
	if !on {
		g.poke()
	}
}

func (g *lbReporter) report(ctx context.Context, lb *fsm.LoadBalancer) {
	op := map[string]string{lb.ID: fsm.LBOnline}
	g.mu.Lock()
	for id, s := range g.health {
		op[id] = s
	}
	g.mu.Unlock()
	body := map[string]any{"chassis": g.name, "config_revision": lb.ConfigRevision, "operating": op}
	if msg := g.failCfg.Load().(string); msg != "" {
		body["error"] = msg
	}
	data, _ := json.Marshal(body)
	srv := g.env.servers[int(g.reports.Add(1))%len(g.env.servers)]
	req, err := http.NewRequestWithContext(ctx, "PUT", srv.base+"/v1/lbaas/loadbalancers/"+lb.ID+"/agent-status", bytes.NewReader(data))
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// octavia returns a gophercloud load-balancer client for a server, acting
// as the project (admin when "").
func octavia(s *apiServer, project string) *gophercloud.ServiceClient {
	sc := &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{}},
		Endpoint:       s.base + "/",
		ResourceBase:   s.base + "/v2/",
		Type:           "load-balancer",
	}
	if project != "" {
		sc.MoreHeaders = map[string]string{"X-Project-Id": project, "X-Roles": "member"}
	}
	return sc
}

// lbState reads a load balancer as admin.
func (e *lbEnv) lbState(id string) map[string]any {
	e.t.Helper()
	var out struct {
		LB map[string]any `json:"loadbalancer"`
	}
	if code := e.servers[0].do("GET", "/v2/lbaas/loadbalancers/"+id, nil, nil, &out); code != 200 {
		return nil
	}
	return out.LB
}

// waitActive waits until the load balancer and its whole tree are ACTIVE
// (the reporter on its active chassis realized the last change).
func (e *lbEnv) waitActive(id string) map[string]any {
	e.t.Helper()
	var lb map[string]any
	eventually(e.t, 30*time.Second, func() error {
		lb = e.lbState(id)
		if lb == nil || lb["provisioning_status"] != fsm.LBActive {
			return fmt.Errorf("load balancer %s: %v", id, lb)
		}
		var st struct {
			Statuses map[string]any `json:"statuses"`
		}
		if code := e.servers[0].do("GET", "/v2/lbaas/loadbalancers/"+id+"/status", nil, nil, &st); code != 200 {
			return fmt.Errorf("status tree: %d", code)
		}
		data, _ := json.Marshal(st.Statuses)
		if strings.Contains(string(data), "PENDING_") {
			return fmt.Errorf("tree still pending: %s", data)
		}
		return nil
	})
	return lb
}

// gw returns the reporter of a chassis.
func (e *lbEnv) gw(name string) *lbReporter {
	for _, g := range e.gws {
		if g.name == name {
			return g
		}
	}
	e.t.Fatalf("no gateway %s", name)
	return nil
}

// fault checks an Octavia fault body.
func checkFault(t *testing.T, code, want int, body map[string]any, contains string) {
	t.Helper()
	fs, _ := body["faultstring"].(string)
	if code != want || body["faultcode"] != "Client" || !strings.Contains(fs, contains) {
		t.Fatalf("got %d %v, want %d with faultstring containing %q", code, body, want, contains)
	}
	if _, ok := body["debuginfo"]; !ok {
		t.Fatalf("fault without debuginfo: %v", body)
	}
}

// revisionNow is the leader's revision, from a consistent read (the
// /v1/cluster revision of a follower may lag behind).
// settledRevision is the revision once s has applied everything committed
// before: two reads a little apart that agree.
func settledRevision(t *testing.T, s *apiServer) uint64 {
	t.Helper()
	var rev uint64
	eventually(t, 10*time.Second, func() error {
		a := revisionNow(s)
		time.Sleep(200 * time.Millisecond)
		if rev = revisionNow(s); rev != a {
			return fmt.Errorf("revision moving: %d -> %d", a, rev)
		}
		return nil
	})
	return rev
}

func revisionNow(s *apiServer) uint64 {
	s.t.Helper()
	code, hdr := s.doRaw("GET", "/v2/lbaas/providers", nil, nil, nil)
	rev, err := strconv.ParseUint(hdr.Get(northbound.HeaderRevision), 10, 64)
	if code != 200 || err != nil {
		s.t.Fatalf("revision: %d %v", code, err)
	}
	return rev
}
