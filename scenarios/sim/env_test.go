package sim_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"neutrino/cluster/clustertest"
	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
	"neutrino/scenarios/sim"
)

// Gossip timings of the in-process pools: one process holds the servers
// and every chassis, and under -race the 100 ms defaults give false
// deaths (lab-notes.md).
const (
	probeInterval = 500 * time.Millisecond
	probeTimeout  = 250 * time.Millisecond
	suspicionMult = 4
)

func logger() *slog.Logger {
	lvl := slog.LevelError + 4 // silent: a stopped leader makes raft log errors by design
	if os.Getenv("NEUTRINO_TEST_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// envInt reads a size from the environment (for bigger local runs).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// env is a cluster of in-process servers with simulated chassis.
type env struct {
	tb      testing.TB
	servers []*agent.Agent
	stopped map[*agent.Agent]bool
	binds   []string
	pool    *sim.Pool
}

// newEnv starts n servers in this process (real Raft over TCP, real
// gossip, real API and controller) and chassis simulated chassis, and
// waits until a leader programs every chassis as MASTER.
func newEnv(tb testing.TB, n, chassis int) *env {
	tb.Helper()
	e := &env{tb: tb, stopped: map[*agent.Agent]bool{}}
	for range n {
		e.binds = append(e.binds, fmt.Sprintf("127.0.0.1:%d", clustertest.FreePort(tb)))
	}
	for i := range n {
		a, err := agent.Start(agent.Config{
			Server: true, Node: fmt.Sprintf("s%d", i+1), DataDir: tb.TempDir(), Bind: e.binds[i],
			Join: e.binds, BootstrapExpect: n, HTTP: "127.0.0.1:0", OpenFlow: "127.0.0.1:0",
			API: northbound.DefaultConfig(), Logger: logger(), DisableLBaaS: true, VPNDisabled: true,
			ProbeInterval: probeInterval, ProbeTimeout: probeTimeout, SuspicionMult: suspicionMult,
		})
		if err != nil {
			tb.Fatalf("start server %d: %v", i+1, err)
		}
		e.servers = append(e.servers, a)
		tb.Cleanup(func() { e.stop(a) })
	}
	// Two minutes for make test's size; bigger pools (NEUTRINO_SIM_CHASSIS)
	// get 2 s a chassis.
	startTimeout := max(2*time.Minute, time.Duration(chassis)*2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	pool, err := sim.StartPool(ctx, sim.PoolOptions{
		Chassis: chassis, Prefix: fmt.Sprintf("sim%d-", os.Getpid()%100000), Join: e.binds,
		ProbeInterval: probeInterval, ProbeTimeout: probeTimeout, SuspicionMult: suspicionMult, Logger: logger(),
	})
	if err != nil {
		tb.Fatalf("start %d simulated chassis: %v", chassis, err)
	}
	e.pool = pool
	// Registered after the servers: runs before their cleanups.
	tb.Cleanup(pool.Close)
	clustertest.Eventually(tb, startTimeout, func() error {
		l := e.leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		if r := pool.Ready(); r != chassis {
			return fmt.Errorf("%d of %d chassis programmed", r, chassis)
		}
		return nil
	})
	return e
}

func (e *env) stop(a *agent.Agent) {
	if e.stopped[a] {
		return
	}
	e.stopped[a] = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = a.Shutdown(ctx)
}

// leader is the running server that leads and runs the southbound.
func (e *env) leader() *agent.Agent {
	for _, a := range e.servers {
		if !e.stopped[a] && a.Cluster().IsLeader() && a.Controller() != nil {
			return a
		}
	}
	return nil
}

// api is a gophercloud Networking client (noauth admin) of a running
// server; followers forward writes to the leader.
func (e *env) api() *gophercloud.ServiceClient {
	for _, a := range e.servers {
		if !e.stopped[a] {
			endpoint := "http://" + a.HTTPAddr()
			return &gophercloud.ServiceClient{
				ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 60 * time.Second, Transport: retryTransport{}}},
				Endpoint:       endpoint + "/",
				ResourceBase:   endpoint + "/v2.0/",
				Type:           "network",
			}
		}
	}
	e.tb.Fatal("no running server")
	return nil
}

// retryTransport gives every write an Idempotency-Key and retries it with
// the same key while a server answers 503 (no leader yet, or an outcome
// the server could not learn because leadership moved) or cannot be
// reached: as a careful Neutron client does across a failover, and so the
// retried write is applied at most once.
type retryTransport struct{}

func (retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	if req.Method != http.MethodGet {
		req.Header.Set(northbound.HeaderIdempotencyKey, fmt.Sprintf("sim-%d-%d", os.Getpid(), keySeq.Add(1)))
	}
	deadline := time.Now().Add(time.Minute)
	for {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		resp, err := http.DefaultTransport.RoundTrip(r)
		retry := err != nil || resp.StatusCode == http.StatusServiceUnavailable
		if !retry || time.Now().After(deadline) || req.Context().Err() != nil {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var keySeq atomic.Uint64
