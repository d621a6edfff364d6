package northbound_test

import (
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"neutrino/internal/benchfig"
	"neutrino/northbound"
)

// BenchmarkRouterInterfaceAdd compares add_router_interface (by subnet:
// the router port gets the subnet's gateway address) with a port create
// on the same 3-server cluster, one request at a time through the leader:
// issue 18 wants the first no slower than the second. The two alternate
// in blocks of 10 so both see the same load and log size; besides the
// p50 latency each reports the process's CPU time and allocations per
// request (all 3 servers and the client are in this process), which the
// shared machine's load does not distort as it does wall time.
func BenchmarkRouterInterfaceAdd(b *testing.B) {
	const nets, block = 100, 10
	servers := newAPICluster(b, 3, func(c *northbound.Config) {
		c.VNIRanges = []northbound.Range{{Min: 1000, Max: 100000}}
	})
	s := apiLeader(b, servers)
	writable(b, s)
	var port, iface opCost
	for i := 0; i < b.N; i++ {
		rt := s.create("routers", "router", map[string]any{"name": fmt.Sprintf("r%d", i)}, nil)
		var subs, nids []string
		for j := range nets {
			n := s.create("networks", "network", map[string]any{"name": fmt.Sprintf("n%d-%d", i, j)}, nil)
			sub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"],
				"cidr": fmt.Sprintf("10.%d.%d.0/24", i%200, j)}, nil)
			subs, nids = append(subs, sub["id"].(string)), append(nids, n["id"].(string))
		}
		for j := 0; j < nets; j += block {
			port.measure(func(k int) {
				s.create("ports", "port", map[string]any{"network_id": nids[j+k]}, nil)
			}, block)
			iface.measure(func(k int) {
				s.put("/v2.0/routers/"+rt["id"].(string)+"/add_router_interface", nil, map[string]any{"subnet_id": subs[j+k]})
			}, block)
		}
	}
	benchfig.Report(b, median(port.lat), "port-p50-ms")
	benchfig.Report(b, median(iface.lat), "interface-p50-ms")
	benchfig.Report(b, port.cpuPerOp(), "port-cpu-us/op")
	benchfig.Report(b, iface.cpuPerOp(), "interface-cpu-us/op")
	benchfig.Report(b, port.allocsPerOp(), "port-allocs/op")
	benchfig.Report(b, iface.allocsPerOp(), "interface-allocs/op")
}

// opCost accumulates the latency, process CPU time and allocations of
// one kind of request.
type opCost struct {
	lat    []time.Duration
	cpu    time.Duration
	allocs uint64
	n      int
}

// measure runs op n times (op(0) .. op(n-1)) and adds what it cost.
// The CPU of the followers' applies of the block's last writes may fall
// into the next block; blocks alternate, so both kinds carry that alike.
func (c *opCost) measure(op func(k int), n int) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m0, cpu0 := ms.Mallocs, processCPU()
	for k := range n {
		t0 := time.Now()
		op(k)
		c.lat = append(c.lat, time.Since(t0))
	}
	c.cpu += processCPU() - cpu0
	runtime.ReadMemStats(&ms)
	c.allocs += ms.Mallocs - m0
	c.n += n
}

func (c *opCost) cpuPerOp() float64 { return float64(c.cpu.Microseconds()) / float64(c.n) }

func (c *opCost) allocsPerOp() float64 { return float64(c.allocs) / float64(c.n) }

// processCPU is the CPU time (user + system) of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1000
}

// writable waits until s commits a write: just after an election a
// write may still answer 503 (not applied) on a loaded machine.
func writable(b *testing.B, s *apiServer) {
	eventually(b, 30*time.Second, func() error {
		if code := s.do("POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "warm-up"}}, nil); code != 201 {
			return fmt.Errorf("warm-up network create: %d", code)
		}
		return nil
	})
}

// apiLeader is the server that Raft says leads.
func apiLeader(b *testing.B, servers []*apiServer) *apiServer {
	var st map[string]any
	if code := servers[0].do("GET", "/v1/cluster", nil, nil, &st); code != 200 {
		b.Fatalf("GET /v1/cluster: %d", code)
	}
	for _, s := range servers {
		var me map[string]any
		if s.do("GET", "/v1/cluster", nil, nil, &me); me["node"] == st["leader"] {
			return s
		}
	}
	b.Logf("leader %v not identified: using the first server", st["leader"])
	return servers[0]
}
