package scenarios_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios"
	"neutrino/scenarios/harness"
)

// Partitions (issue 11): a leader cut off from the other servers loses its
// leadership within its lease and cannot change a switch; writes
// acknowledged while servers are cut off and healed are all there
// afterwards, once each.

// partitionTopo is the lab of the partition scenarios
// (harness.PartitionTopology).
var partitionTopo = harness.PartitionTopology

// envPartitionRounds raises the nemesis' number of faults (default
// defaultPartitionRounds, which keeps the suite within its budget).
const (
	envPartitionRounds     = "NEUTRINO_SCENARIO_PARTITIONS"
	defaultPartitionRounds = 4
)

// partitionLab is the lab of the partition scenarios: two VMs on the two
// chassis on one network.
type partitionLab struct {
	*harness.Env
	netID string
	sg    string // a security group that lets everything in
	a, b  harness.VM
	vms   *int // VMs plugged so far (shared by subtests' copies), for names
}

func upPartitionLab(tb testing.TB) *partitionLab {
	e := up(tb, partitionTopo)
	netID, _ := e.Network(e.Admin, "part", "10.31.0.0/24")
	pl := &partitionLab{Env: e, netID: netID, sg: e.OpenGroup(e.Admin, "open"), vms: new(int)}
	pl.a = pl.newVM(e.Chassis[0])
	pl.b = pl.newVM(e.Chassis[1])
	e.PingOK(harness.FirstPacket, pl.a.Name, pl.b.IP)
	return pl
}

// newVM creates a port on the lab's network and plugs a VM for it.
func (pl *partitionLab) newVM(chassis string) harness.VM {
	*pl.vms++
	return pl.NewVM(pl.Admin, fmt.Sprintf("pv%d", *pl.vms), chassis, pl.netID, pl.sg)
}

func (pl *partitionLab) sub(t *testing.T) *partitionLab {
	cp := *pl
	cp.Env = pl.Env.Sub(t)
	return &cp
}

// cut applies a fault ("isolate" or "partition") to a server and returns
// its heal (Env.Fault).
func (pl *partitionLab) cut(how, server string) (heal func()) {
	pl.TB.Helper()
	do := map[string]func(context.Context, string) error{"isolate": pl.D.Isolate, "partition": pl.D.Partition}[how]
	if do == nil {
		pl.TB.Fatalf("unknown fault %q", how)
	}
	return pl.Fault(how, server, do, "heal", pl.D.Heal)
}

// refused checks that a request to a cut-off server ends in an error
// answer, not a success and not the client's timeout.
func (pl *partitionLab) refused(method, url string, body any) harness.APIResult {
	pl.TB.Helper()
	r, err := harness.Call(method, url, nil, body)
	if err != nil {
		pl.TB.Fatalf("%s %s on a cut-off server: no answer (the client's timeout is %s): %v", method, url, harness.APIHTTP.Timeout, err)
	}
	if r.Status < 500 {
		pl.TB.Fatalf("%s %s on a cut-off server: %d %s, want an error (5xx)", method, url, r.Status, strings.TrimSpace(string(r.Body)))
	}
	return r
}

// TestLeaderPartition cuts the leader off, twice: first from the other
// servers only (the chassis still reach it over OpenFlow and OVSDB), then
// from everything (its underlay link down). Each time the cut-off leader
// must step down and refuse reads and writes with an error, the majority
// must elect a leader with a higher term whose writes reach the chassis
// (the old leader's OpenFlow connection demoted to slave by OVS), VMs keep
// pinging, and after the heal every flow on every chassis is the new
// leader's. Then a bounded nemesis cuts leaders and followers under
// concurrent writers: every acknowledged write is there once.
func TestLeaderPartition(t *testing.T) {
	pl := upPartitionLab(t)
	t.Run("isolated-from-servers", func(t *testing.T) {
		pl.sub(t).minorityLeader(t, "isolate", true)
	})
	t.Run("cut-off", func(t *testing.T) {
		pl.sub(t).minorityLeader(t, "partition", false)
	})
	t.Run("nemesis", func(t *testing.T) {
		rounds := defaultPartitionRounds
		if v := os.Getenv(envPartitionRounds); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a count", envPartitionRounds, v)
			}
			rounds = n
		}
		pl.sub(t).nemesis(t, rounds)
	})
}

func (pl *partitionLab) minorityLeader(t *testing.T, how string, reachesChassis bool) {
	all := pl.Servers()
	old, oldTerm := pl.LeaderOf(all, 30*time.Second)
	rest := harness.Without(all, old)
	// The leader's session holds every chassis before the cut.
	pl.WaitRoles(old, rest[0], true, 30*time.Second)
	oldAPI := pl.API(old)
	stream := pl.StartStream(pl.a.Name+" -> "+pl.b.IP, pl.a.Name, pl.b.IP)
	// If the stream stops (it did once after a heal, with every switch in
	// the new leader's round): where its echo requests go.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		neigh, _ := pl.Exec(pl.a.Name, "ip", "neigh")
		t.Logf("%s neighbours:\n%s", pl.a.Name, neigh)
		_, trace := pl.TraceVM(pl.a.Name, fmt.Sprintf("icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,icmp_type=8,icmp_code=0",
			pl.a.MAC, pl.b.MAC, pl.a.IP, pl.b.IP))
		t.Logf("ofproto/trace of %s's echo request to %s:\n%s", pl.a.Name, pl.b.IP, trace)
		for _, ch := range []string{pl.a.Chassis, pl.b.Chassis} {
			flows, _ := pl.Exec(ch, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int", "table=0")
			t.Logf("%s's table 0:\n%s", ch, flows)
		}
	})

	cutAt := time.Now()
	heal := pl.cut(how, old)
	// Sent within its lease, while it may still think it leads: neither
	// may succeed (a commit and a leadership check need a quorum).
	type answer struct {
		what string
		r    harness.APIResult
		err  error
	}
	inLease := make(chan answer, 2)
	go func() {
		r, err := harness.Call("GET", oldAPI+"/v2.0/networks", nil, nil)
		inLease <- answer{"linearizable read", r, err}
	}()
	go func() {
		r, err := harness.Call("POST", oldAPI+"/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "in-lease-write"}})
		inLease <- answer{"write", r, err}
	}()
	harness.Poll(t, 30*time.Second, old+" steps down", func() error {
		v, err := pl.Cluster(old)
		if err != nil {
			return err
		}
		if v.Leader == old {
			return fmt.Errorf("still leads term %d", v.Term)
		}
		return nil
	})
	t.Logf("%s %s: it stepped down %s after the cut (lease)", how, old, time.Since(cutAt).Round(time.Millisecond))

	// The majority elects a leader of a later term, whose writes reach
	// the chassis while the old leader is still cut off.
	leader, term := pl.LeaderOf(rest, 30*time.Second)
	t.Logf("%s leads term %d (was %s in term %d), %s after the cut", leader, term, old, oldTerm, time.Since(cutAt).Round(time.Millisecond))
	if term <= oldTerm {
		t.Fatalf("new leader's term %d is not above the old leader's %d: its generation id would be stale", term, oldTerm)
	}

	for range 2 {
		a := <-inLease
		if a.err != nil {
			t.Fatalf("%s sent to %s right after the cut: no answer (the client's timeout is %s): %v", a.what, old, harness.APIHTTP.Timeout, a.err)
		}
		if a.r.Status < 500 {
			t.Fatalf("%s sent to %s right after the cut: %d %s, want an error (5xx)", a.what, old, a.r.Status, strings.TrimSpace(string(a.r.Body)))
		}
		t.Logf("%s sent to %s right after the cut: %d after %s", a.what, old, a.r.Status, a.r.Took.Round(time.Millisecond))
	}

	// After its lease a cut-off leader answers neither writes nor
	// linearizable reads, with an error rather than a hang.
	w := pl.refused("POST", oldAPI+"/v2.0/networks", map[string]any{"network": map[string]any{"name": "minority-write"}})
	t.Logf("write to %s: %d after %s", old, w.Status, w.Took.Round(time.Millisecond))
	r := pl.refused("GET", oldAPI+"/v2.0/networks", nil)
	t.Logf("linearizable read from %s: %d after %s", old, r.Status, r.Took.Round(time.Millisecond))

	pl.WaitRoles(leader, old, reachesChassis, 30*time.Second)
	// A port created on the majority and its VM plugged: the new leader
	// binds it and programs both chassis while the old one is cut off.
	ep := pl.API(leader)
	res := pl.MustCall(http.StatusCreated, "POST", ep+"/v2.0/ports?wait=realized", nil,
		map[string]any{"port": map[string]any{"network_id": pl.netID, "name": "during-" + how,
			"security_groups": []string{pl.sg}}})
	var created struct {
		Port ports.Port `json:"port"`
	}
	if err := json.Unmarshal(res.Body, &created); err != nil || len(created.Port.FixedIPs) == 0 {
		t.Fatalf("created port: %v %s", err, res.Body)
	}
	*pl.vms++
	during := pl.Plug(fmt.Sprintf("pv%d", *pl.vms), pl.Chassis[1], &created.Port)
	pl.PingOK(harness.FirstPacket, pl.a.Name, during.IP)
	// The old leader, still connected in the isolate case, holds no role
	// that could write.
	pl.WaitRoles(leader, old, reachesChassis, 5*time.Second)
	pl.WaitReplies(stream, 20, 20*time.Second)

	healAt := time.Now()
	heal()
	if now, _ := pl.LeaderOf(all, 30*time.Second); now != leader {
		t.Logf("after the heal %s leads (was %s)", now, leader)
	}
	t.Logf("heal %s: all three agree on a leader after %s", old, time.Since(healAt).Round(time.Millisecond))
	leader, term = pl.LeaderOf(all, 30*time.Second)
	pl.WaitRoles(leader, old, leader != old, 30*time.Second)
	pl.WaitRound(term, 30*time.Second)
	pl.WaitReplies(stream, 20, 20*time.Second)
	stream.Proc.Stop()
	g := harness.Longest(stream.Gaps(cutAt))
	t.Logf("VM ping %s across the %s and heal: longest gap %d replies (%s)", stream.Name, how, g.Lost, g.Duration())
	// A VM plugged now is programmed by the current leader.
	v := pl.newVM(pl.Chassis[1])
	pl.PingOK(harness.FirstPacket, pl.a.Name, v.IP)
}

// nemesis runs writers that create networks with unique names through
// random surviving servers while rounds faults cut a server off and heal
// it: the leader or a follower, from the servers only or from everything;
// where the driver can (scenarios.Degrader), the survivors' underlay
// drops 5% of packets meanwhile. Afterwards every acknowledged network
// exists, with the id it was acknowledged with, and no name exists twice.
func (pl *partitionLab) nemesis(t *testing.T, rounds int) {
	all := pl.Servers()
	w := harness.StartWrites(t, "nem", pl.APIs, 4)
	degrader, lossy := pl.D.(scenarios.Degrader)
	start := time.Now()
	for i := range rounds {
		leader, _ := pl.LeaderOf(all, 60*time.Second)
		target := leader
		if i%2 == 1 {
			target = harness.Without(all, leader)[i%len(harness.Without(all, leader))]
		}
		how := []string{"isolate", "partition"}[(i/2)%2]
		before := w.Acks()
		cutAt := time.Now()
		w.Avoid(target)
		heal := pl.cut(how, target)
		rest := harness.Without(all, target)
		if lossy {
			for _, o := range rest {
				dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := degrader.Degrade(dctx, o, 5, 0); err != nil {
					dcancel()
					t.Fatalf("degrade %s: %v", o, err)
				}
				dcancel()
			}
		}
		// Hold the fault until the majority has acknowledged writes
		// under it (and, for a cut-off leader, elected another).
		if target == leader {
			pl.LeaderOf(rest, 60*time.Second)
		}
		w.WaitAcks(t, before, 10, 60*time.Second, "writes acknowledged under the fault")
		held := time.Since(cutAt)
		heal()
		if lossy {
			for _, o := range rest {
				pl.NodeOp("heal", o, pl.D.Heal)
			}
		}
		w.Avoid("")
		pl.LeaderOf(all, 60*time.Second)
		role := "follower"
		if target == leader {
			role = "leader"
		}
		t.Logf("round %d: %s %s %s (5%% loss on the others: %v), held %s, %d writes acknowledged", i+1, how, role, target,
			lossy, held.Round(time.Millisecond), w.Acks()-before)
	}
	w.Stop()
	t.Logf("nemesis: %d faults in %s", rounds, time.Since(start).Round(time.Millisecond))
	leader, _ := pl.LeaderOf(all, 60*time.Second)
	w.Check(t, pl.API(leader))
}

// BenchmarkLeaderPartition measures write unavailability after the leader
// is cut off from the other servers (Isolate; the chassis still reach
// it): from the cut to the first acknowledged create through a surviving
// server, with a create started every 10 ms, 10 cuts (healed in between).
func BenchmarkLeaderPartition(b *testing.B) {
	e := up(b, scenarios.Topology{Servers: 3, Chassis: 1})
	all := e.Servers()
	b.ResetTimer()
	var outages []float64
	for i := 0; i < b.N; i++ {
		for range 10 {
			leader, _ := e.LeaderOf(all, 60*time.Second)
			survivors := harness.Without(all, leader)
			d := unavailability(e, survivors, func() { e.NodeOp("isolate", leader, e.D.Isolate) })
			outages = append(outages, float64(d.Milliseconds()))
			e.NodeOp("heal", leader, e.D.Heal)
		}
	}
	b.StopTimer()
	b.ReportMetric(harness.Median(outages), "unavail-median-ms")
	b.ReportMetric(slices.Max(outages), "unavail-max-ms")
	b.Logf("leader partition: write unavailability %v ms", outages)
}

// unavailability does cut, then starts a create every 10 ms through the
// servers in turn (at most 32 in flight) and returns the time from the cut
// to the first acknowledged create that started after it.
func unavailability(e *harness.Env, servers []string, cut func()) time.Duration {
	e.TB.Helper()
	client := &http.Client{Timeout: 15 * time.Second, Transport: harness.Transport(32)}
	defer client.CloseIdleConnections()
	apis := make([]string, len(servers))
	for i, s := range servers {
		apis[i] = e.API(s)
	}
	var (
		mu    sync.Mutex
		first time.Time
		wg    sync.WaitGroup
	)
	slots := make(chan struct{}, 32)
	// Requests still in flight once one is acknowledged are abandoned.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	cut()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for n := 0; ; n++ {
		mu.Lock()
		done := !first.IsZero()
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-deadline:
			e.TB.Fatalf("no write acknowledged within 2m of the cut")
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			continue // all slots wait on a stalled forward
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			name := fmt.Sprintf("unavail-%d-%d", start.UnixNano(), n)
			status, _, err := harness.CreateNetwork(ctx, client, apis[n%len(apis)], name)
			if err == nil && status == http.StatusCreated {
				mu.Lock()
				if first.IsZero() {
					first = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
	cancel()
	wg.Wait()
	return first.Sub(start)
}
