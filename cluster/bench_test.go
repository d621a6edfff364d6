package cluster

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/cluster/tlsutil"
)

// BenchmarkApply measures commit latency (one writer) and throughput (64
// concurrent writers) of a 3-server cluster on loopback with default Raft
// timeouts.
func BenchmarkApply(b *testing.B) { benchApply(b, nil) }

// BenchmarkApplyTLS is BenchmarkApply with Raft over mutual TLS
// (tls.go); the ratio to BenchmarkApply is TLS's cost on replication.
func BenchmarkApplyTLS(b *testing.B) {
	dir := b.TempDir()
	ca, caKey, err := tlsutil.CreateCA(dir)
	if err != nil {
		b.Fatal(err)
	}
	cert, key, err := tlsutil.CreateCert(dir, ca, caKey, tlsutil.CertRequest{Node: "bench", Role: tlsutil.RoleServer})
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := tlsutil.Load(cert, key, ca)
	if err != nil {
		b.Fatal(err)
	}
	benchApply(b, bundle)
}

func benchApply(b *testing.B, bundle *tlsutil.Bundle) {
	tc := newTestCluster(b, 3, func(c *Config) {
		c.HeartbeatTimeout, c.ElectionTimeout = DefaultHeartbeatTimeout, DefaultElectionTimeout
		c.TLS = bundle
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
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "applies/s")
	})
}
