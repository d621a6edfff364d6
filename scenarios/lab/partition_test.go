package lab_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios"
	"neutrino/scenarios/lab"
	"neutrino/southbound/flowsync"
)

// Partitions on the lab (issue 11): a leader cut off from the other
// servers loses its leadership within its lease and cannot change a
// switch; writes acknowledged while servers are cut off and healed are all
// there afterwards, once each.

// partitionTopo is three servers and two chassis: a majority of two, and a
// data path between VMs on two chassis that a server partition must not
// disturb.
var partitionTopo = scenarios.Topology{Servers: 3, Chassis: 2}

// envPartitionRounds raises the nemesis' number of faults (default
// defaultPartitionRounds, which keeps the test within make test's budget).
const (
	envPartitionRounds     = "NEUTRINO_LAB_PARTITIONS"
	defaultPartitionRounds = 4
)

// clusterView is GET /v1/cluster of one server.
type clusterView struct {
	Node         string `json:"node"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	Servers      []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"servers"`
}

// quickHTTP is for status polls: a cut-off server must not stall them.
var quickHTTP = &http.Client{Timeout: 3 * time.Second}

// cluster asks one server for its Raft view.
func (p *pipeLab) cluster(server string) (clusterView, error) {
	var v clusterView
	n := p.d.State().Node(server)
	if n == nil {
		return v, fmt.Errorf("no node %s", server)
	}
	resp, err := quickHTTP.Get(n.API + "/v1/cluster")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("%s: GET /v1/cluster: %s", server, resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// servers are the lab's server names, in order.
func (p *pipeLab) servers() []string {
	var out []string
	for _, n := range p.d.State().Nodes {
		if n.Kind == scenarios.KindServer {
			out = append(out, n.Name)
		}
	}
	return out
}

// leaderOf waits until every server of among reports the same leader, one
// of among, and returns it with that server's term.
func (p *pipeLab) leaderOf(among []string, timeout time.Duration) (string, uint64) {
	p.tb.Helper()
	var leader string
	var term uint64
	poll(p.tb, timeout, fmt.Sprintf("%v agree on a leader among them", among), func() error {
		leader, term = "", 0
		for _, s := range among {
			v, err := p.cluster(s)
			if err != nil {
				return err
			}
			if v.Leader == "" || (leader != "" && v.Leader != leader) {
				return fmt.Errorf("%s sees leader %q, others %q", s, v.Leader, leader)
			}
			leader = v.Leader
			if v.Node == leader {
				term = v.Term
			}
		}
		if !slices.Contains(among, leader) {
			return fmt.Errorf("leader %s is not among %v", leader, among)
		}
		if term == 0 {
			return fmt.Errorf("leader %s did not report its term", leader)
		}
		return nil
	})
	return leader, term
}

func without(xs []string, x string) []string {
	var out []string
	for _, y := range xs {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

// controllerRole is a chassis' view of one server's OpenFlow controller
// target: the role OVS gave that connection and whether it is up.
type controllerRole struct {
	Role      string
	Connected bool
}

// controllerRoles reads the Controller rows of a chassis' br-int, keyed by
// server IP (targets are tcp:IP:PORT).
func (p *pipeLab) controllerRoles(chassis string) (map[string]controllerRole, error) {
	out, err := p.exec(chassis, "ovs-vsctl", "--db=unix:"+p.ovsdbSocket(chassis), "--format=json",
		"--columns=target,role,is_connected", "list", "Controller")
	if err != nil {
		return nil, err
	}
	var tbl struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &tbl); err != nil {
		return nil, fmt.Errorf("%s: Controller rows: %w: %s", chassis, err, out)
	}
	roles := map[string]controllerRole{}
	for _, row := range tbl.Data {
		if len(row) != 3 {
			continue
		}
		var target string
		var connected bool
		_ = json.Unmarshal(row[0], &target)
		_ = json.Unmarshal(row[2], &connected)
		// role is a string, or ["set",[]] while OVS has not set it.
		var role string
		if json.Unmarshal(row[1], &role) != nil {
			role = ""
		}
		ip, _, _ := strings.Cut(strings.TrimPrefix(target, "tcp:"), ":")
		roles[ip] = controllerRole{Role: role, Connected: connected}
	}
	return roles, nil
}

// serverIP is a server's underlay address (its OpenFlow target's host).
func (p *pipeLab) serverIP(server string) string { return p.d.State().Node(server).IP }

// waitRoles waits until every chassis has the leader's connection as
// master and, if the old leader's connection is up, has it as slave.
func (p *pipeLab) waitRoles(leader, old string, oldConnected bool, timeout time.Duration) {
	p.tb.Helper()
	for _, ch := range p.chassis {
		poll(p.tb, timeout, fmt.Sprintf("%s: %s master, %s slave", ch, leader, old), func() error {
			roles, err := p.controllerRoles(ch)
			if err != nil {
				return err
			}
			if r := roles[p.serverIP(leader)]; !r.Connected || r.Role != "master" {
				return fmt.Errorf("leader %s: %+v (all: %+v)", leader, r, roles)
			}
			r := roles[p.serverIP(old)]
			if oldConnected && !r.Connected {
				return fmt.Errorf("old leader %s is not connected: %+v", old, r)
			}
			if r.Connected && r.Role != "slave" {
				return fmt.Errorf("old leader %s: %+v", old, r)
			}
			return nil
		})
	}
}

// waitRound waits until every Neutrino flow on every chassis carries the
// round of term (its low 16 bits) and there is at least one: the switches
// hold exactly what that term's leader programmed, none of an older one.
func (p *pipeLab) waitRound(term uint64, timeout time.Duration) {
	p.tb.Helper()
	want := uint16(term)
	for _, ch := range p.chassis {
		poll(p.tb, timeout, fmt.Sprintf("%s: every flow of round %d", ch, want), func() error {
			fs, err := p.flows(ch)
			if err != nil {
				return err
			}
			fs = ours(fs)
			if len(fs) == 0 {
				return errors.New("no Neutrino flows")
			}
			stale := map[uint16]int{}
			for _, f := range fs {
				if r := flowsync.CookieRound(f.Cookie); r != want {
					stale[r]++
				}
			}
			if len(stale) > 0 {
				return fmt.Errorf("%d flows, of other rounds: %v", len(fs), stale)
			}
			return nil
		})
	}
}

// refused checks that a request to a cut-off server ends in an error
// answer, not a success and not the client's timeout.
func (p *pipeLab) refused(method, url string, body any) apiResult {
	p.tb.Helper()
	r, err := call(method, url, nil, body)
	if err != nil {
		p.tb.Fatalf("%s %s on a cut-off server: no answer (the client's timeout is %s): %v", method, url, apiHTTP.Timeout, err)
	}
	if r.Status < 500 {
		p.tb.Fatalf("%s %s on a cut-off server: %d %s, want an error (5xx)", method, url, r.Status, strings.TrimSpace(string(r.Body)))
	}
	return r
}

// partitionLab is the lab of the partition tests: two VMs on the two
// chassis on one network.
type partitionLab struct {
	*pipeLab
	netID string
	sg    string // a security group that lets everything in
	a, b  vm
	vms   *int // VMs plugged so far (shared by subtests' copies), for names
}

func upPartitionLab(tb testing.TB) *partitionLab {
	p := upPipelineLab(tb, partitionTopo)
	netID, _ := p.network(p.admin, "part", "10.31.0.0/24")
	pl := &partitionLab{pipeLab: p, netID: netID, sg: p.openGroup(p.admin, "open"), vms: new(int)}
	pl.a = pl.newVM(p.chassis[0])
	pl.b = pl.newVM(p.chassis[1])
	p.pingOK(firstPacket, pl.a.Name, pl.b.IP)
	return pl
}

// newVM creates a port on the lab's network and plugs a VM for it.
func (pl *partitionLab) newVM(chassis string) vm {
	*pl.vms++
	name := fmt.Sprintf("pv%d", *pl.vms)
	port := pl.port(pl.admin, ports.CreateOpts{NetworkID: pl.netID, Name: name, SecurityGroups: &[]string{pl.sg}})
	return pl.plug(name, chassis, port)
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
	t.Run("degrade", func(t *testing.T) {
		pl.sub(t).degraded(t)
	})
}

func (pl *partitionLab) sub(t *testing.T) *partitionLab {
	cp := *pl
	cp.pipeLab = pl.pipeLab.sub(t)
	return &cp
}

// cut applies a fault ("isolate" or "partition") to a server.
func (p *pipeLab) cut(how, server string) {
	p.tb.Helper()
	switch how {
	case "isolate":
		p.nodeOp("isolate", server, p.d.Isolate)
	case "partition":
		p.partition(server)
	default:
		p.tb.Fatalf("unknown fault %q", how)
	}
}

func (pl *partitionLab) minorityLeader(t *testing.T, how string, reachesChassis bool) {
	all := pl.servers()
	old, oldTerm := pl.leaderOf(all, 30*time.Second)
	rest := without(all, old)
	// The leader's session holds every chassis before the cut.
	pl.waitRoles(old, rest[0], true, 30*time.Second)
	oldAPI := pl.d.State().Node(old).API
	stream := pl.startStream(pl.a.Name+" -> "+pl.b.IP, pl.a.Name, pl.b.IP)

	cutAt := time.Now()
	pl.cut(how, old)
	// Sent within its lease, while it may still think it leads: neither
	// may succeed (a commit and a leadership check need a quorum).
	type answer struct {
		what string
		r    apiResult
		err  error
	}
	inLease := make(chan answer, 2)
	go func() {
		r, err := call("GET", oldAPI+"/v2.0/networks", nil, nil)
		inLease <- answer{"linearizable read", r, err}
	}()
	go func() {
		r, err := call("POST", oldAPI+"/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "in-lease-write"}})
		inLease <- answer{"write", r, err}
	}()
	healed := false
	t.Cleanup(func() {
		if !healed {
			pl.heal(old)
		}
	})
	poll(t, 30*time.Second, old+" steps down", func() error {
		v, err := pl.cluster(old)
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
	leader, term := pl.leaderOf(rest, 30*time.Second)
	t.Logf("%s leads term %d (was %s in term %d), %s after the cut", leader, term, old, oldTerm, time.Since(cutAt).Round(time.Millisecond))
	if term <= oldTerm {
		t.Fatalf("new leader's term %d is not above the old leader's %d: its generation id would be stale", term, oldTerm)
	}

	for range 2 {
		a := <-inLease
		if a.err != nil {
			t.Fatalf("%s sent to %s right after the cut: no answer (the client's timeout is %s): %v", a.what, old, apiHTTP.Timeout, a.err)
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

	pl.waitRoles(leader, old, reachesChassis, 30*time.Second)
	// A port created on the majority and its VM plugged: the new leader
	// binds it and programs both chassis while the old one is cut off.
	ep := pl.d.State().Node(leader).API
	res := pl.mustCall(http.StatusCreated, "POST", ep+"/v2.0/ports?wait=realized", nil,
		map[string]any{"port": map[string]any{"network_id": pl.netID, "name": "during-" + how,
			"security_groups": []string{pl.sg}}})
	var created struct {
		Port ports.Port `json:"port"`
	}
	if err := json.Unmarshal(res.Body, &created); err != nil || len(created.Port.FixedIPs) == 0 {
		t.Fatalf("created port: %v %s", err, res.Body)
	}
	*pl.vms++
	during := pl.plug(fmt.Sprintf("pv%d", *pl.vms), pl.chassis[1], &created.Port)
	pl.pingOK(firstPacket, pl.a.Name, during.IP)
	// The old leader, still connected in the isolate case, holds no role
	// that could write.
	pl.waitRoles(leader, old, reachesChassis, 5*time.Second)
	pl.waitReplies(stream, 20, 20*time.Second)

	healAt := time.Now()
	pl.heal(old)
	healed = true
	if now, _ := pl.leaderOf(all, 30*time.Second); now != leader {
		t.Logf("after the heal %s leads (was %s)", now, leader)
	}
	t.Logf("heal %s: all three agree on a leader after %s", old, time.Since(healAt).Round(time.Millisecond))
	leader, term = pl.leaderOf(all, 30*time.Second)
	pl.waitRoles(leader, old, leader != old, 30*time.Second)
	pl.waitRound(term, 30*time.Second)
	pl.waitReplies(stream, 20, 20*time.Second)
	stream.proc.stop()
	g := longest(stream.gaps(cutAt))
	t.Logf("VM ping %s across the %s and heal: longest gap %d replies (%s)", stream.name, how, g.lost, g.duration())
	// A VM plugged now is programmed by the current leader.
	v := pl.newVM(pl.chassis[1])
	pl.pingOK(firstPacket, pl.a.Name, v.IP)
}

// degraded adds loss to a follower's underlay link (netem, or iptables'
// statistic match where the kernel has no netem) and checks that writes
// through it still succeed; then delay, where the kernel has netem.
func (pl *partitionLab) degraded(t *testing.T) {
	all := pl.servers()
	leader, _ := pl.leaderOf(all, 30*time.Second)
	follower := without(all, leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { pl.heal(follower) })
	writes := func(what string) {
		ep := pl.d.State().Node(follower).API
		for i := range 10 {
			pl.mustCall(http.StatusCreated, "POST", ep+"/v2.0/networks", nil,
				map[string]any{"network": map[string]any{"name": fmt.Sprintf("%s-%d", what, i)}})
		}
	}
	if err := pl.d.Degrade(ctx, follower, 10, 0); err != nil {
		t.Fatal(err)
	}
	writes("lossy")
	drops, err := pl.d.LossDrops(ctx, follower)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10%% loss on %s's underlay: %d packets dropped by the iptables fallback (0 with netem)", follower, drops)
	err = pl.d.Degrade(ctx, follower, 10, 20*time.Millisecond)
	if errors.Is(err, lab.ErrNoNetem) {
		// Without netem the loss above came from the fallback: it dropped.
		if drops == 0 {
			t.Fatalf("no netem, and the iptables loss fallback dropped nothing on %s", follower)
		}
		t.Skipf("delay needs the netem qdisc (kernel module sch_netem, CONFIG_NET_SCH_NETEM), which this kernel lacks (loss was tested through iptables): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	writes("slow")
}

// writeLog records the creates of the nemesis' writers.
type writeLog struct {
	mu    sync.Mutex
	acked map[string]string // name -> id of every 201
	tried int
	acks  atomic.Int64
	fails map[string]int    // error class -> count
	first map[string]string // error class -> its first answer, for the log
}

// nemesis runs writers that create networks with unique names through
// random surviving servers while rounds faults cut a server
// off and heal it: the leader or a follower, from the servers only or
// from everything. Writers never resend a request (no Idempotency-Key
// yet): a write with an unknown outcome may or may not exist. Afterwards
// every acknowledged network exists, with the id it was acknowledged
// with, and no name exists twice.
func (pl *partitionLab) nemesis(t *testing.T, rounds int) {
	all := pl.servers()
	var cutNow atomic.Value // the server cut off now, "" between faults
	cutNow.Store("")
	log := &writeLog{acked: map[string]string{}, fails: map[string]int{}, first: map[string]string{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	const writers = 4
	for w := range writers {
		wg.Go(func() { pl.writer(ctx, w, all, &cutNow, log) })
	}
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			stop()
			wg.Wait()
		}
	}
	t.Cleanup(stopWriters)

	start := time.Now()
	for i := range rounds {
		leader, _ := pl.leaderOf(all, 60*time.Second)
		target := leader
		if i%2 == 1 {
			target = without(all, leader)[i%len(without(all, leader))]
		}
		how := []string{"isolate", "partition"}[(i/2)%2]
		before := log.acks.Load()
		cutAt := time.Now()
		// Writes already in flight to it meet the cut; new ones go to
		// the survivors (a cut-off server's answers are checked above).
		cutNow.Store(target)
		pl.cut(how, target)
		// The survivors' underlay drops 5% of packets while the fault
		// holds (netem, or iptables where the kernel has no netem).
		rest := without(all, target)
		for _, o := range rest {
			dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := pl.d.Degrade(dctx, o, 5, 0); err != nil {
				dcancel()
				t.Fatalf("degrade %s: %v", o, err)
			}
			dcancel()
		}
		// Hold the fault until the majority has acknowledged writes
		// under it (and, for a cut-off leader, elected another).
		if target == leader {
			pl.leaderOf(rest, 60*time.Second)
		}
		poll(t, 60*time.Second, "writes acknowledged under the fault", func() error {
			if n := log.acks.Load() - before; n < 10 {
				return fmt.Errorf("%d acknowledged since the cut", n)
			}
			return nil
		})
		held := time.Since(cutAt)
		pl.heal(target)
		for _, o := range rest {
			pl.heal(o)
		}
		cutNow.Store("")
		pl.leaderOf(all, 60*time.Second)
		role := "follower"
		if target == leader {
			role = "leader"
		}
		t.Logf("round %d: %s %s %s (5%% loss on the others), held %s, %d writes acknowledged", i+1, how, role, target,
			held.Round(time.Millisecond), log.acks.Load()-before)
	}
	stopWriters()
	took := time.Since(start)

	leader, _ := pl.leaderOf(all, 60*time.Second)
	res := pl.mustCall(http.StatusOK, "GET", pl.d.State().Node(leader).API+"/v2.0/networks?fields=id&fields=name", nil, nil)
	var list struct {
		Networks []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(res.Body, &list); err != nil {
		t.Fatal(err)
	}
	present := map[string][]string{}
	for _, n := range list.Networks {
		if strings.HasPrefix(n.Name, "nem-") {
			present[n.Name] = append(present[n.Name], n.ID)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	lost, dup, unacked := 0, 0, 0
	for name, id := range log.acked {
		ids := present[name]
		if len(ids) == 0 || !slices.Contains(ids, id) {
			lost++
			t.Errorf("acknowledged network %s (%s) is missing (present: %v)", name, id, ids)
		}
	}
	for name, ids := range present {
		if _, ok := log.acked[name]; !ok {
			unacked++
		}
		if len(ids) > 1 {
			dup++
			t.Errorf("network %s exists %d times: %v", name, len(ids), ids)
		}
	}
	t.Logf("nemesis: %d faults in %s; %d creates tried, %d acknowledged, %d present (%d unacknowledged that took effect), %d lost, %d duplicated; failures %v",
		rounds, took.Round(time.Millisecond), log.tried, len(log.acked), len(present), unacked, lost, dup, log.fails)
	for class, first := range log.first {
		t.Logf("first %s failure: %s", class, first)
	}
	if len(log.acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
}

// writer creates networks through random servers over its own kept-alive
// connections until ctx ends; each name is sent once.
func (pl *partitionLab) writer(ctx context.Context, id int, servers []string, cutNow *atomic.Value, log *writeLog) {
	// A request that times out is an unknown outcome like any other; the
	// bound keeps a writer from idling on a stalled forward.
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	defer client.CloseIdleConnections()
	for seq := 0; ctx.Err() == nil; seq++ {
		cut, _ := cutNow.Load().(string)
		survivors := without(servers, cut)
		server := survivors[rand.IntN(len(survivors))]
		name := fmt.Sprintf("nem-%d-%d", id, seq)
		status, netID, err := createNetwork(context.Background(), client, pl.d.State().Node(server).API, name)
		log.mu.Lock()
		log.tried++
		class := ""
		switch {
		case err != nil:
			class, netID = "transport", err.Error()
		case status == http.StatusCreated:
			log.acked[name] = netID
			log.acks.Add(1)
		default:
			class = strconv.Itoa(status)
		}
		if class != "" {
			log.fails[class]++
			if _, ok := log.first[class]; !ok {
				log.first[class] = server + ": " + netID
			}
		}
		log.mu.Unlock()
		if err != nil || status != http.StatusCreated {
			// Do not hammer a server that just failed.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// createNetwork POSTs one network and returns the status and its id.
func createNetwork(ctx context.Context, c *http.Client, api, name string) (int, string, error) {
	body := strings.NewReader(fmt.Sprintf(`{"network": {"name": %q}}`, name))
	req, err := http.NewRequestWithContext(ctx, "POST", api+"/v2.0/networks", body)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	if resp.StatusCode != http.StatusCreated {
		// The error body stands in for the id, for the log.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		// Acknowledged, but we cannot tell with what: count it as an
		// unknown outcome.
		return 0, "", fmt.Errorf("decode 201: %w", err)
	}
	return resp.StatusCode, out.Network.ID, nil
}

// BenchmarkLeaderPartition measures write unavailability after the leader
// is cut off from the other servers (lab isolate; the chassis still reach
// it): from the cut to the first acknowledged create through a surviving
// server, with a create started every 10 ms, 10 cuts (healed in between).
func BenchmarkLeaderPartition(b *testing.B) {
	p := upPipelineLab(b, scenarios.Topology{Servers: 3, Chassis: 1})
	all := p.servers()
	b.ResetTimer()
	var outages []float64
	for i := 0; i < b.N; i++ {
		for range 10 {
			leader, _ := p.leaderOf(all, 60*time.Second)
			survivors := without(all, leader)
			d := p.unavailability(survivors, func() { p.cut("isolate", leader) })
			outages = append(outages, float64(d.Milliseconds()))
			p.heal(leader)
		}
	}
	b.StopTimer()
	b.ReportMetric(median(outages), "unavail-median-ms")
	b.ReportMetric(slices.Max(outages), "unavail-max-ms")
	b.Logf("leader partition: write unavailability %v ms", outages)
}

// unavailability does cut, then starts a create every 10 ms through the
// servers in turn (at most 32 in flight) and returns the time from the cut
// to the first acknowledged create that started after it.
func (p *pipeLab) unavailability(servers []string, cut func()) time.Duration {
	p.tb.Helper()
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	apis := make([]string, len(servers))
	for i, s := range servers {
		apis[i] = p.d.State().Node(s).API
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
			p.tb.Fatalf("no write acknowledged within 2m of the cut")
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
			status, _, err := createNetwork(ctx, client, apis[n%len(apis)], name)
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
