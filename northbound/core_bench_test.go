package northbound_test

import (
	"sync"
	"testing"
	"time"
)

// portBenchNetwork makes a network with a /16 subnet for port benchmarks.
func portBenchNetwork(s *apiServer, name string, cidr string) string {
	n := s.create("networks", "network", map[string]any{"name": name}, nil)
	s.create("subnets", "subnet", map[string]any{"ip_version": ipVersionOf(cidr), "network_id": n["id"], "cidr": cidr}, nil)
	return n["id"].(string)
}

// BenchmarkPortCreate measures port create end to end on a single-server
// cluster: HTTP, validation, IPAM (address + MAC), Raft commit, apply.
func BenchmarkPortCreate(b *testing.B) {
	s := newAPIServer(b, nil)
	nid := portBenchNetwork(s, "bench", "10.0.0.0/16")
	create := func() time.Duration {
		t0 := time.Now()
		if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"port": map[string]any{"network_id": nid}}, nil); code != 201 {
			b.Fatalf("create port: %d", code)
		}
		return time.Since(t0)
	}
	b.Run("sequential", func(b *testing.B) {
		const samples = 300
		for i := 0; i < b.N; i++ {
			lat := make([]time.Duration, 0, samples)
			start := time.Now()
			for j := 0; j < samples; j++ {
				lat = append(lat, create())
			}
			b.ReportMetric(float64(samples)/time.Since(start).Seconds(), "writes/s")
			latencyMetrics(b, lat)
		}
	})
	b.Run("concurrent-32", func(b *testing.B) {
		const clients, each = 32, 32
		for i := 0; i < b.N; i++ {
			var (
				mu  sync.Mutex
				lat []time.Duration
				wg  sync.WaitGroup
			)
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mine := make([]time.Duration, 0, each)
					for j := 0; j < each; j++ {
						mine = append(mine, create())
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(clients*each)/time.Since(start).Seconds(), "writes/s")
			latencyMetrics(b, lat)
		}
	})
}

// BenchmarkPortList measures listing with a network_id filter when the
// state holds 10,000 ports: the filter uses the network index, so a small
// network lists fast however many ports the others have.
func BenchmarkPortList(b *testing.B) {
	s := newAPIServer(b, nil)
	big := portBenchNetwork(s, "big", "10.0.0.0/16")
	small := portBenchNetwork(s, "small", "10.1.0.0/16")
	bulk := func(nid string, n int) {
		ports := make([]any, n)
		for i := range ports {
			ports[i] = map[string]any{"network_id": nid}
		}
		if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"ports": ports}, nil); code != 201 {
			b.Fatalf("bulk create: %d", code)
		}
	}
	setup := time.Now()
	for i := 0; i < 10; i++ {
		bulk(big, 1000)
	}
	bulk(small, 100)
	b.Logf("created 10,100 ports in %v", time.Since(setup))
	for _, bc := range []struct {
		name, nid string
		want      int
	}{{"network_id-100-of-10k", small, 100}, {"network_id-10k", big, 10000}} {
		b.Run(bc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				var out struct {
					Ports []map[string]any `json:"ports"`
				}
				t0 := time.Now()
				if code := s.do("GET", "/v2.0/ports?network_id="+bc.nid, nil, nil, &out); code != 200 || len(out.Ports) != bc.want {
					b.Fatalf("list: %d, %d ports", code, len(out.Ports))
				}
				lat = append(lat, time.Since(t0))
			}
			latencyMetrics(b, lat)
		})
	}
}
