package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"neutrino/cluster/clustertest"
)

// TestNemesis runs the workload against a cluster of agent processes on
// loopback while the nemesis kills, pauses and restarts servers, then
// checks the CAS register's history with porcupine and counts the creates.
//
// Bounded by default (3 servers, 10 faults); NEUTRINO_NEMESIS_FAULTS=N
// sets the number of faults and NEUTRINO_NEMESIS_SERVERS=3,5 the cluster
// sizes, e.g. NEUTRINO_NEMESIS_FAULTS=50 NEUTRINO_NEMESIS_SERVERS=3,5.
func TestNemesis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs server processes under faults for about a minute")
	}
	faults := envInt(t, "NEUTRINO_NEMESIS_FAULTS", 10)
	sizes := os.Getenv("NEUTRINO_NEMESIS_SERVERS")
	if sizes == "" {
		sizes = "3"
	}
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 {
			t.Fatalf("NEUTRINO_NEMESIS_SERVERS=%q: want sizes of 3 or more, e.g. 3,5", sizes)
		}
		t.Run(fmt.Sprintf("%d-servers", n), func(t *testing.T) { runNemesis(t, n, faults) })
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

func runNemesis(t *testing.T, n, faults int) {
	c := newProcCluster(t, n)
	l := c.leader(60 * time.Second)
	const prefix = "nem"
	reg, init, err := CreateNetwork(waitCtx(t, 30*time.Second), l.http, prefix+"-register")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, s := range c.servers {
		names[s.http] = s.name
	}
	w := &Workload{Servers: c.addrs(), Names: names, History: NewHistory(), Prefix: prefix, Register: reg,
		Creators: 4, CASWriters: 4, Readers: 2}

	// Clients start operations until stop, and a keyed operation in flight
	// may retry until hard; cleanup stops them if the test ends early.
	hard, cancel := context.WithTimeout(context.Background(), time.Duration(faults)*15*time.Second+2*time.Minute)
	stop := make(chan struct{})
	var stopOnce sync.Once
	done := make(chan struct{})
	go func() { w.Run(hard, stop); close(done) }()
	t.Cleanup(func() {
		stopOnce.Do(func() { close(stop) })
		cancel()
		<-done
	})

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("NEUTRINO_NEMESIS_SEED"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("NEUTRINO_NEMESIS_SEED=%q: %v", v, err)
		}
	}
	nem := &nemesis{c: c, rng: rand.New(rand.NewPCG(seed, seed)), log: t.Logf, clock: w.History}
	t.Logf("nemesis seed %d (NEUTRINO_NEMESIS_SEED replays the fault schedule), %d faults on %d servers", seed, faults, n)
	began := time.Now()
	for i := range faults {
		nem.step(i)
	}
	stopOnce.Do(func() { close(stop) })
	<-done
	t.Logf("faults took %s; answers: %s", time.Since(began).Round(time.Millisecond), w.Stats())
	// How long a server that was never frozen held a client: with
	// forwarding deadlines, about an election, whatever the leader's fate
	// (a figure to read, not a threshold).
	if a, ok := w.Slowest(func(a Attempt) bool { return nem.frozen(names[a.Addr], a.Begin, a.End) }); ok {
		t.Logf("slowest answered write attempt to a server not frozen meanwhile: %s at %s (%s)",
			a.End.Sub(a.Begin).Round(time.Millisecond), at(int64(a.Begin.Sub(w.History.start))), a.What)
	}

	for _, p := range firstN(w.Problems(), 20) {
		t.Errorf("bad answer: %s", p)
	}

	// Everything is healed: the final state must be the same on every
	// server, the register's final value must be readable, and the
	// creates must add up.
	final, err := w.ReadRegister(waitCtx(t, 30*time.Second))
	if err != nil {
		t.Error(err)
	}
	present := c.converged(30 * time.Second)
	rep, bad := CheckCreates(w.Creates(), present, prefix)
	t.Logf("creates: %+v", rep)
	for _, b := range firstN(bad, 20) {
		t.Errorf("create: %s", b)
	}
	if rep.Acked == 0 || rep.AckedKeyed == 0 {
		t.Errorf("no create acknowledged (%+v): the workload did not run", rep)
	}

	ops := w.History.Ops()
	casOK := 0
	for _, op := range ops {
		if op.Input.(RegisterInput).Kind == OpCAS && op.Output.(RegisterOutput).Outcome == OK {
			casOK++
		}
	}
	t.Logf("register: %d operations, %d acknowledged CAS, final (%d, %s)", len(ops), casOK, final.Rev, final.Name)
	if casOK == 0 {
		t.Error("no CAS update acknowledged: the workload did not run")
	}
	checkBegan := time.Now()
	res, path, stuck, err := CheckRegister(init, ops, 2*time.Minute)
	t.Logf("porcupine: %s in %s", res, time.Since(checkBegan).Round(time.Millisecond))
	switch {
	case err != nil:
		t.Errorf("register history is not linearizable; %v", err)
	case res == porcupine.Illegal:
		t.Errorf("register history is not linearizable; porcupine's visualization: %s", path)
		t.Errorf("%s", stuck)
		if path != "" {
			saved := strings.TrimSuffix(path, ".html") + ".json"
			dropUnlessKept(t, path, saved)
			if err := WriteHistory(saved, init, ops); err != nil {
				t.Error(err)
			} else {
				t.Errorf("history saved in %s (check again: NEUTRINO_NEMESIS_HISTORY=%s go test -run TestRecheckHistory)", saved, saved)
			}
		}
		for _, e := range firstN(Explain(init, ops), 20) {
			t.Errorf("evidence: %s", e)
		}
	case res == porcupine.Unknown:
		t.Logf("linearizability check of %d operations timed out: inconclusive", len(ops))
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... and %d more", len(s)-n))
	}
	return s
}

// converged waits until every server's own replica lists the same networks
// as a linearizable read through the leader, and returns them by name.
func (c *procCluster) converged(timeout time.Duration) map[string][]string {
	c.t.Helper()
	var want map[string][]string
	clustertest.Eventually(c.t, timeout, func() error {
		l, err := c.agreedLeader()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if want, err = ListNetworks(ctx, l.http, false); err != nil {
			return err
		}
		for _, s := range c.servers {
			got, err := ListNetworks(ctx, s.http, true)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, want) {
				return fmt.Errorf("%s's replica lists %d networks, the leader %s %d", s.name, len(got), l.name, len(want))
			}
		}
		return nil
	})
	return want
}

// nemesis injects one fault at a time, bounded: a kill or a pause of the
// leader or a follower (two servers at once in clusters of five), holds it
// for a few seconds, heals it (restart from the data dir, SIGCONT) and
// waits until every server has caught up before the next.
type nemesis struct {
	c     *procCluster
	rng   *rand.Rand
	log   func(format string, args ...any)
	clock *History
	round []int
	// pauses are the SIGSTOP..SIGCONT windows per server name.
	pauses map[string][][2]time.Time
}

// frozen reports whether the server was paused at any time in [from, to].
func (nm *nemesis) frozen(name string, from, to time.Time) bool {
	for _, p := range nm.pauses[name] {
		if p[0].Before(to) && p[1].After(from) {
			return true
		}
	}
	return false
}

type faultKind int

const (
	killLeader faultKind = iota
	killFollower
	pauseLeader
	pauseFollower
	restartLeader
	numFaultKinds
)

func (k faultKind) String() string {
	return [...]string{"kill leader", "kill follower", "pause leader", "pause follower", "restart leader"}[k]
}

func (nm *nemesis) step(i int) {
	c := nm.c
	c.t.Helper()
	l := c.leader(45 * time.Second)
	// Every kind comes once per round of numFaultKinds faults, in a
	// random order, so that a short run still tries them all.
	if len(nm.round) == 0 {
		nm.round = nm.rng.Perm(int(numFaultKinds))
	}
	kind := faultKind(nm.round[0])
	nm.round = nm.round[1:]
	fs := c.followers(l)
	target := l
	if kind == killFollower || kind == pauseFollower {
		target = fs[nm.rng.IntN(len(fs))]
	}
	victims := []*server{target}
	if len(c.servers) >= 5 && nm.rng.IntN(2) == 0 {
		for _, f := range fs {
			if f != target {
				victims = append(victims, f)
				break
			}
		}
	}
	// A pause outlasts the election timeout (1 s) so that the others
	// elect a new leader while the old one is frozen.
	hold := time.Second + time.Duration(nm.rng.Int64N(int64(2*time.Second)))
	if kind == pauseLeader || kind == pauseFollower {
		hold += 2 * time.Second
	}
	what := fmt.Sprintf("%s %s", kind, target.name)
	for _, v := range victims[1:] {
		what += ", kill follower " + v.name
	}
	nm.log("at %s fault %d: %s, hold %s", at(nm.clock.Now()), i+1, what, hold.Round(time.Millisecond))
	paused := time.Now()
	for j, v := range victims {
		switch {
		case j > 0 || kind == killLeader || kind == killFollower || kind == restartLeader:
			c.kill(v)
		default:
			c.pause(v)
		}
	}
	if kind == restartLeader {
		c.start(target)
	}
	t := time.NewTimer(hold)
	<-t.C
	for _, v := range victims {
		if v.paused {
			c.resume(v)
			if nm.pauses == nil {
				nm.pauses = map[string][][2]time.Time{}
			}
			nm.pauses[v.name] = append(nm.pauses[v.name], [2]time.Time{paused, time.Now()})
		} else if v.cmd == nil {
			c.start(v)
		}
	}
	healed := time.Now()
	c.caughtUp(60 * time.Second)
	nm.log("at %s healed; all caught up %s later", at(nm.clock.Now()), time.Since(healed).Round(time.Millisecond))
}
