package northbound_test

import (
	"sync"
	"testing"
	"time"
)

// BenchmarkPortCreateCluster measures port create end to end on a
// 3-server cluster (the single-server variant is BenchmarkPortCreate):
// requests go to the three servers in turn, so two thirds of them are
// forwarded by a follower to the leader, which validates, allocates the
// address and MAC, commits on a quorum and applies.
func BenchmarkPortCreateCluster(b *testing.B) {
	servers := newAPICluster(b, 3, nil)
	nid := portBenchNetwork(servers[0], "bench", "10.0.0.0/16")
	create := func(i int) time.Duration {
		t0 := time.Now()
		if code := servers[i%3].do("POST", "/v2.0/ports", nil, map[string]any{"port": map[string]any{"network_id": nid}}, nil); code != 201 {
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
				lat = append(lat, create(j))
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
				go func(c int) {
					defer wg.Done()
					mine := make([]time.Duration, 0, each)
					for j := 0; j < each; j++ {
						mine = append(mine, create(c+j))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}(c)
			}
			wg.Wait()
			b.ReportMetric(float64(clients*each)/time.Since(start).Seconds(), "writes/s")
			latencyMetrics(b, lat)
		}
	})
}
