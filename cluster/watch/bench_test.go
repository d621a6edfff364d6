package watch_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"neutrino/cluster/watch"
	"neutrino/fsm"
)

// BenchmarkWatch measures what a watcher of a follower gets on a 3-server
// loopback cluster: "catch-up" is how fast it takes in a backlog of port
// creates (paged at the server's cap of changes per answer), "latency" is
// the time from a write's answer (committed and applied on the leader) to
// the watcher's copy holding it, one write at a time, for a watcher of a
// follower and one of the leader.
func BenchmarkWatch(b *testing.B) {
	servers := startCluster(b, 3, nil)
	leader, followers := split(b, servers)
	netID, _ := write(b, leader, "POST", "/v2.0/networks", 201, map[string]any{"network": map[string]any{"name": "bench"}})
	createPort := func(i int) uint64 {
		_, rev := write(b, leader, "POST", "/v2.0/ports", 201,
			map[string]any{"port": map[string]any{"network_id": netID, "name": fmt.Sprintf("p%d", i)}})
		return rev
	}
	wait := func(w *watch.Watcher, rev uint64) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := w.WaitRevision(ctx, rev); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("catch-up", func(b *testing.B) {
		const backlog, writers = 2000, 32
		for i := 0; i < b.N; i++ {
			var (
				mu     sync.Mutex
				last   uint64
				failed int
				wg     sync.WaitGroup
			)
			// The watcher syncs first, then a subscriber holds it while
			// the backlog is written. The timer runs throughout, so that
			// one iteration (seconds of writes) is enough for the
			// benchmark; the figure is the catch-up's own rate.
			w, err := watch.New(watch.Config{Servers: func() []string { return addrs(followers[0]) },
				Tables: []string{fsm.TablePorts}, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			wait(w, 1)
			sub := subscribeHeld(b, w)
			sub.arm()
			last = createPort(-1)
			sub.waitHeld()
			before := sub.changes()
			for c := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := c; j < backlog; j += writers {
						// No b.Fatal off the benchmark's goroutine: a
						// failed write is counted and reported after Wait.
						code, rev := call(leader.addr, "POST", "/v2.0/ports", "",
							map[string]any{"port": map[string]any{"network_id": netID, "name": fmt.Sprintf("p%d", backlog+j)}}, nil)
						mu.Lock()
						if code != 201 {
							failed++
						}
						last = max(last, rev)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if failed > 0 {
				b.Fatalf("%d port creates of the backlog failed", failed)
			}
			eventually(b, time.Minute, func() error {
				if r := followers[0].a.FSM().State().Read().Revision(); r < last {
					return fmt.Errorf("follower at %d, want %d", r, last)
				}
				return nil
			})
			start := time.Now()
			sub.release()
			wait(w, last)
			elapsed := time.Since(start)
			w.Close()
			delivered := sub.changes() - before
			if delivered < backlog {
				b.Fatalf("%d changes delivered, want %d", delivered, backlog)
			}
			b.ReportMetric(float64(delivered)/elapsed.Seconds(), "changes/s")
		}
	})
	for _, who := range []string{"follower", "leader"} {
		b.Run("latency-"+who, func(b *testing.B) {
			const samples = 100
			target := followers[0]
			if who == "leader" {
				target = leader
			}
			w, err := watch.New(watch.Config{Servers: func() []string { return addrs(target) },
				Tables: []string{fsm.TablePorts}, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			wait(w, 1)
			for i := 0; i < b.N; i++ {
				lat := make([]time.Duration, 0, samples)
				for j := range samples {
					rev := createPort(j)
					t0 := time.Now()
					wait(w, rev)
					lat = append(lat, time.Since(t0))
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.99), "p99-ms")
			}
		})
	}
}
