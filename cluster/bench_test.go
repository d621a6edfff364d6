package cluster

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"neutrino/cluster/tlsutil"
	"neutrino/internal/benchfig"
)

// BenchmarkApply measures commit latency (one writer) and throughput (64
// concurrent writers) of a 3-server cluster on loopback with default Raft
// timeouts (multiplier 5).
func BenchmarkApply(b *testing.B) { benchApply(b, nil) }

// BenchmarkApplyTLS is BenchmarkApply with Raft over mutual TLS
// (tls.go); the ratio to BenchmarkApply is TLS's cost on replication.
func BenchmarkApplyTLS(b *testing.B) {
	dir := b.TempDir()
	ca, caKey, err := tlsutil.CreateCA(dir)
	if err != nil {
		b.Fatal(err)
	}
	// One certificate per node: gossip identity checks that a member's
	// certificate names it (identity.go).
	bundles := map[string]*tlsutil.Bundle{}
	for _, node := range []string{"s1", "s2", "s3"} {
		cert, key, err := tlsutil.CreateCert(dir, ca, caKey, tlsutil.CertRequest{Node: node, Role: tlsutil.RoleServer})
		if err != nil {
			b.Fatal(err)
		}
		if bundles[node], err = tlsutil.Load(cert, key, ca); err != nil {
			b.Fatal(err)
		}
	}
	benchApply(b, bundles)
}

func benchApply(b *testing.B, bundles map[string]*tlsutil.Bundle) {
	tc := newTestCluster(b, 3, func(c *Config) {
		// hashicorp/raft's timeouts: at load average 25 the 400 ms
		// defaults lost leadership mid-run, and this measures throughput.
		c.HeartbeatTimeout, c.ElectionTimeout, c.RaftMultiplier = 0, 0, 5
		c.TLS = bundles[c.NodeName]
	})
	leader := tc.leader()
	ctx := context.Background()

	apply := func() error {
		_, cmd := tc.networkCmd()
		res, err := leader.c.Apply(ctx, cmd)
		if err != nil {
			return err
		}
		return res.Err
	}

	b.Run("single", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			t0 := time.Now()
			if err := apply(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		ms := func(q float64) float64 {
			return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
		}
		b.ReportMetric(ms(0.50), "p50-ms")
		b.ReportMetric(ms(0.99), "p99-ms")
	})

	b.Run("parallel64", func(b *testing.B) {
		const writers = 64
		var next atomic.Int64
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mallocs0, cpu0 := ms.Mallocs, processCPU()
		start := time.Now()
		b.ResetTimer()
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for next.Add(1) <= int64(b.N) {
					if err := apply(); err != nil {
						b.Error(err) // Fatal is for the benchmark goroutine only
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		elapsed := time.Since(start)
		// CPU and allocations of the whole process (3 servers and the
		// writers) per apply: on the shared 2-core machine wall-clock
		// throughput is mostly the others' load, these are not.
		cpu := processCPU() - cpu0
		runtime.ReadMemStats(&ms)
		benchfig.Report(b, float64(b.N)/elapsed.Seconds(), "applies/s")
		benchfig.Report(b, float64(cpu.Microseconds())/float64(b.N), "cpu-us/apply")
		benchfig.Report(b, float64(ms.Mallocs-mallocs0)/float64(b.N), "allocs/apply")
	})
}

// processCPU is the CPU time (user + system) of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
