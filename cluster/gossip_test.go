package cluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

// gossipPool is a pool of gossip-only agents (no Raft) on loopback, joined
// through its first node.
type gossipPool struct {
	tb    testing.TB
	tweak func(*Config)
	nodes []*Cluster
	seq   int
}

func newGossipPool(tb testing.TB, n int, tweak func(*Config)) *gossipPool {
	tb.Helper()
	p := &gossipPool{tb: tb, tweak: tweak}
	tb.Cleanup(p.close)
	for range n {
		p.nodes = append(p.nodes, p.start())
	}
	p.waitAlive(n)
	return p
}

// close shuts every node down.
func (p *gossipPool) close() {
	for i, c := range p.nodes {
		if c != nil {
			c.Shutdown()
			p.nodes[i] = nil
		}
	}
}

// start starts one more agent (not added to nodes).
func (p *gossipPool) start() *Cluster {
	p.tb.Helper()
	p.seq++
	cfg := Config{
		NodeName: "g" + strconv.Itoa(p.seq),
		BindAddr: "127.0.0.1:" + strconv.Itoa(freePortPair(p.tb)),
		Logger:   testLogger(),
		Meta:     NodeMeta{TunnelIP: "192.0.2." + strconv.Itoa(p.seq%250+1)},
	}
	// Join every node started so far: a push-pull with each tells them all
	// about the new node at once. (Joining only the first node relies on
	// its alive broadcast, which now and then misses a node that then
	// learns of the newcomer only at the next push-pull, 30 s later.)
	for _, o := range p.nodes {
		if o != nil {
			cfg.Join = append(cfg.Join, o.addrs.advertiseHost+":"+strconv.Itoa(o.addrs.gossipPort))
		}
	}
	if p.tweak != nil {
		p.tweak(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		p.tb.Fatal(err)
	}
	if err := c.Start(); err != nil {
		p.tb.Fatal(err)
	}
	return c
}

// waitAlive waits until every node sees exactly n alive members.
func (p *gossipPool) waitAlive(n int) {
	p.tb.Helper()
	eventually(p.tb, convergeWait, func() error {
		for _, c := range p.nodes {
			if c == nil {
				continue
			}
			var alive []string
			for _, m := range c.Members() {
				if m.Status == StatusAlive {
					alive = append(alive, m.Name)
				}
			}
			if len(alive) != n {
				return fmt.Errorf("%s sees %v alive, want %d (ml: %d)", c.cfg.NodeName, alive, n, c.gossip.NumMembers())
			}
		}
		return nil
	})
}

// waitDead polls (every 1 ms) until obs sees every name dead and returns
// when each was first seen dead, measured from start.
func waitDead(tb testing.TB, obs *Cluster, start time.Time, timeout time.Duration, names ...string) []time.Duration {
	tb.Helper()
	out := make([]time.Duration, len(names))
	left := len(names)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for left > 0 {
		for i, name := range names {
			if out[i] == 0 {
				if m, ok := obs.member(name); ok && m.Status == StatusDead {
					out[i] = time.Since(start)
					left--
				}
			}
		}
		if time.Since(start) > timeout {
			tb.Fatalf("%s: %v not all dead after %v", obs.cfg.NodeName, names, timeout)
		}
		<-tick.C
	}
	return out
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func reportQuantiles(b *testing.B, unit string, lat []time.Duration) {
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(msOf(sum/time.Duration(len(lat))), unit)
	b.ReportMetric(msOf(lat[len(lat)/2]), "p50-"+unit)
	b.ReportMetric(msOf(lat[len(lat)-1]), "max-"+unit)
	b.ReportMetric(msOf(lat[0]), "min-"+unit)
}

// gossipSettings are the candidate timings the benchmarks compare; the
// first is the package default.
var gossipSettings = []struct {
	name           string
	probe, timeout time.Duration
	mult           int
	gossip         time.Duration
}{
	{"default", 0, 0, 0, 0},
	{"pi200-pt100-sm2", 200 * time.Millisecond, 100 * time.Millisecond, 2, 50 * time.Millisecond},
	{"pi100-pt50-sm2", 100 * time.Millisecond, 50 * time.Millisecond, 2, 50 * time.Millisecond},
	{"pi100-pt50-sm3", 100 * time.Millisecond, 50 * time.Millisecond, 3, 50 * time.Millisecond},
	{"pi75-pt40-sm2", 75 * time.Millisecond, 40 * time.Millisecond, 2, 30 * time.Millisecond},
}

// BenchmarkGossipDetect measures how long after a node crashes (Shutdown
// without Leave) a chosen observer's gossip reports it dead, in a 7-node
// pool of agents on loopback; every iteration starts a fresh pool. Run
// with e.g. -bench GossipDetect -benchtime 15x.
func BenchmarkGossipDetect(b *testing.B) {
	for _, s := range gossipSettings {
		b.Run(s.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				p := newGossipPool(b, 7, func(c *Config) {
					c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult, c.GossipInterval = s.probe, s.timeout, s.mult, s.gossip
				})
				obs := p.nodes[0]
				i := 1 + rand.IntN(len(p.nodes)-1)
				victim := p.nodes[i]
				name := victim.cfg.NodeName
				t0 := time.Now()
				victim.Shutdown()
				lat = append(lat, waitDead(b, obs, t0, 10*time.Second, name)[0])
				p.close()
			}
			reportQuantiles(b, "detect-ms", lat)
		})
	}
}

// BenchmarkGossipIsolated measures what an isolated node's own gossip view
// does: 6 of 7 nodes crash at once (to the survivor, the same as being cut
// off), and the survivor's time to see 2 of 3 chosen "servers" dead (it
// lost the majority) and all 6 dead. Lifeguard slows this down: every probe
// the survivor sends fails, so it believes itself unhealthy and stretches
// its probe interval.
func BenchmarkGossipIsolated(b *testing.B) {
	for _, s := range gossipSettings[1:] {
		b.Run(s.name, func(b *testing.B) {
			var majority, all []time.Duration
			for b.Loop() {
				p := newGossipPool(b, 7, func(c *Config) {
					c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult, c.GossipInterval = s.probe, s.timeout, s.mult, s.gossip
				})
				obs := p.nodes[0]
				var names []string
				t0 := time.Now()
				for i := 1; i < len(p.nodes); i++ {
					names = append(names, p.nodes[i].cfg.NodeName)
					p.nodes[i].Shutdown()
					p.nodes[i] = nil
				}
				got := waitDead(b, obs, t0, 60*time.Second, names...)
				servers := slices.Clone(got[:3])
				slices.Sort(servers)
				majority = append(majority, servers[1])
				all = append(all, slices.Max(got))
				p.close()
			}
			reportQuantiles(b, "majority-ms", majority)
			reportQuantiles(b, "all-ms", all)
		})
	}
}

// TestGossipQuietNoFalseDeaths runs an idle 7-node pool with the default
// timings for 10 s and fails if any node ever declares another dead.
func TestGossipQuietNoFalseDeaths(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s soak")
	}
	if raceEnabled {
		// Seven memberlists in one race-instrumented process on 2 cores
		// miss 50 ms probe deadlines: that measures the race detector, not
		// the LAN settings (which real agents, built without -race, use in
		// the lab failover tests). Measured: fails under -race even with
		// the 200/100 ms settings; passes without it.
		t.Skip("timing soak: meaningless under the race detector; run without -race")
	}
	p := newGossipPool(t, 7, nil)
	for _, c := range p.nodes {
		c.deadEvents.Store(0)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		<-tick.C
		for _, c := range p.nodes {
			if n := c.deadEvents.Load(); n > 0 {
				t.Fatalf("%s declared %d members dead in a quiet pool: %+v", c.cfg.NodeName, n, c.Members())
			}
		}
	}
	p.waitAlive(len(p.nodes))
}

// TestReconnectTargets: a node cut off from everyone contacts up to
// maxReconnects dead members a round, and in a big pool each node
// contacts dead/alive of them on average, so the pool contacts each dead
// member about once a round.
func TestReconnectTargets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	addrs := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, "10.0.0."+strconv.Itoa(i)+":7946")
		}
		return out
	}
	if got := reconnectTargets(nil, 1, rng); len(got) != 0 {
		t.Errorf("no dead member: %v", got)
	}
	for _, dead := range []int{1, 2, maxReconnects, 10, 1000} {
		got := reconnectTargets(addrs(dead), 1, rng)
		if want := min(dead, maxReconnects); len(got) != want {
			t.Errorf("alone with %d dead: %d contacted, want %d", dead, len(got), want)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
			t.Errorf("alone with %d dead: a member picked twice: %v", dead, got)
		}
	}
	// Which members get picked is spread over all of them.
	seen := map[string]bool{}
	for range 200 {
		for _, a := range reconnectTargets(addrs(20), 1, rng) {
			seen[a] = true
		}
	}
	if len(seen) != 20 {
		t.Errorf("200 rounds alone with 20 dead contacted %d distinct members, want all 20", len(seen))
	}
	for _, c := range []struct{ dead, alive int }{{10, 1000}, {7, 3}, {300, 700}} {
		const rounds = 20000
		total := 0
		for range rounds {
			got := reconnectTargets(addrs(c.dead), c.alive, rng)
			if len(got) > c.dead/c.alive+1 {
				t.Fatalf("%d dead, %d alive: %d contacted in a round", c.dead, c.alive, len(got))
			}
			total += len(got)
		}
		mean, want := float64(total)/rounds, float64(c.dead)/float64(c.alive)
		if mean < want*0.9 || mean > want*1.1 {
			t.Errorf("%d dead, %d alive: %.3f contacted a round on average, want %.3f", c.dead, c.alive, mean, want)
		}
	}
}

// TestGossipPartitionHeals cuts one node of five off (its transport drops
// everything both ways) until both sides have declared the other dead,
// then restores the link: memberlist alone never heals that, the
// reconnect rounds must.
func TestGossipPartitionHeals(t *testing.T) {
	p := newGossipPool(t, 5, func(c *Config) {
		c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = 200*time.Millisecond, 100*time.Millisecond, 2
	})
	cut := p.nodes[4]
	cut.gossipTr.cut.Store(true)
	var others []string
	for _, c := range p.nodes[:4] {
		others = append(others, c.cfg.NodeName)
	}
	waitDead(t, cut, time.Now(), 30*time.Second, others...)
	for _, c := range p.nodes[:4] {
		waitDead(t, c, time.Now(), 30*time.Second, cut.cfg.NodeName)
	}
	cut.gossipTr.cut.Store(false)
	p.waitAlive(5)
}
