package northbound_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"neutrino/northbound"
)

// latencyMetrics reports p50 and p99 of the samples in milliseconds.
func latencyMetrics(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkNetworkCreate measures the API write path end to end on a
// 3-server loopback cluster: HTTP, validation, segment allocation, Raft
// commit on a quorum, apply. Requests go to a follower half of the time, as
// they would behind a load balancer.
func BenchmarkNetworkCreate(b *testing.B) {
	servers := newAPICluster(b, 3, func(c *northbound.Config) {
		c.VNIRanges = []northbound.Range{{Min: 1, Max: 1 << 23}}
	})
	const samples = 500
	b.Run("sequential", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var lat []time.Duration
			start := time.Now()
			for j := 0; j < samples; j++ {
				t0 := time.Now()
				servers[j%3].createNetwork(map[string]any{"name": fmt.Sprint("seq-", i, "-", j)}, nil)
				lat = append(lat, time.Since(t0))
			}
			b.ReportMetric(float64(samples)/time.Since(start).Seconds(), "writes/s")
			latencyMetrics(b, lat)
		}
	})
	b.Run("concurrent-32", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var (
				mu  sync.Mutex
				lat []time.Duration
				wg  sync.WaitGroup
			)
			const clients, each = 32, 64
			start := time.Now()
			for c := 0; c < clients; c++ {
				wg.Add(1)
				go func(c int) {
					defer wg.Done()
					var mine []time.Duration
					for j := 0; j < each; j++ {
						t0 := time.Now()
						servers[(c+j)%3].createNetwork(map[string]any{"name": fmt.Sprint("par-", i, "-", c, "-", j)}, nil)
						mine = append(mine, time.Since(t0))
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
