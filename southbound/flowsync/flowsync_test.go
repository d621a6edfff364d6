package flowsync_test

import (
	"bufio"
	"context"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"neutrino/southbound/flowsync"
	"neutrino/southbound/hostnet"
	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
	"neutrino/southbound/ovsproc"
)

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// bulkFlows builds n flows in tables 10-13 (off the packet path): the
// object id and the action value depend on variant so tests can change a
// subset.
func bulkFlows(n int) []openflow.Flow {
	out := make([]openflow.Flow, n)
	for i := range out {
		out[i] = openflow.Flow{
			Table: uint8(10 + i%4), Priority: 100,
			Cookie:  flowsync.Cookie(2, uint32(i+1)),
			Match:   openflow.Match{openflow.Reg(0, uint32(i)), openflow.RegMasked(1, 7, 0xff)},
			Actions: []openflow.Action{openflow.SetReg(2, uint32(i)), openflow.GotoTable{Table: 20}},
		}
	}
	return out
}

// l2Flows forwards between two ports: classify by in_port into reg0, then
// switch on dl_dst; broadcast goes to the other port.
func l2Flows(pa, pb uint32, macA, macB net.HardwareAddr) []openflow.Flow {
	bcast, _ := net.ParseMAC("ff:ff:ff:ff:ff:ff")
	c := flowsync.Cookie(1, 1)
	return []openflow.Flow{
		{Table: 0, Priority: 100, Cookie: c, Match: openflow.Match{openflow.InPort(pa)},
			Actions: []openflow.Action{openflow.SetReg(0, pa), openflow.SetTunID(5001), openflow.GotoTable{Table: 1}}},
		{Table: 0, Priority: 100, Cookie: c, Match: openflow.Match{openflow.InPort(pb)},
			Actions: []openflow.Action{openflow.SetReg(0, pb), openflow.SetTunID(5001), openflow.GotoTable{Table: 1}}},
		{Table: 1, Priority: 100, Cookie: c, Match: openflow.Match{openflow.TunID(5001), openflow.EthDst(macA)},
			Actions: []openflow.Action{openflow.Output{Port: pa}}},
		{Table: 1, Priority: 100, Cookie: c, Match: openflow.Match{openflow.TunID(5001), openflow.EthDst(macB)},
			Actions: []openflow.Action{openflow.Output{Port: pb}}},
		{Table: 1, Priority: 90, Cookie: c, Match: openflow.Match{openflow.Reg(0, pa), openflow.EthDst(bcast)},
			Actions: []openflow.Action{openflow.Output{Port: pb}}},
		{Table: 1, Priority: 90, Cookie: c, Match: openflow.Match{openflow.Reg(0, pb), openflow.EthDst(bcast)},
			Actions: []openflow.Action{openflow.Output{Port: pa}}},
	}
}

// stamped is what the switch should hold for flows in round.
func stamped(flows []openflow.Flow, round uint16) []openflow.Flow {
	out := slices.Clone(flows)
	for i := range out {
		out[i].Cookie = flowsync.StampCookie(out[i].Cookie, round)
	}
	return out
}

type lab struct {
	sw   *oftest.Switch
	ctrl *oftest.Controller
	a, b *ovsproc.VM
	l2   []openflow.Flow
	bIP  string
	t    testing.TB
}

func newLab(t testing.TB, name string) *lab {
	t.Helper()
	ctx := ctxFor(t, 60*time.Second)
	sw := oftest.StartSwitch(t, name)
	macA, _ := net.ParseMAC("02:00:00:00:00:0a")
	macB, _ := net.ParseMAC("02:00:00:00:00:0b")
	a, err := sw.PlugVM(ctx, ovsproc.VMSpec{Name: "vm-a", Bridge: oftest.Bridge, MAC: macA.String(), CIDR: "192.0.2.10/24"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sw.PlugVM(ctx, ovsproc.VMSpec{Name: "vm-b", Bridge: oftest.Bridge, MAC: macB.String(), CIDR: "192.0.2.11/24"})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := a.OFPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.OFPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &lab{sw: sw, ctrl: oftest.NewController(t, openflow.Options{}), a: a, b: b,
		l2: l2Flows(uint32(pa), uint32(pb), macA, macB), bIP: "192.0.2.11", t: t}
}

// connect accepts a fresh connection and makes it MASTER with gen.
func (l *lab) connect(conn *openflow.Conn, gen uint64) *openflow.Conn {
	l.t.Helper()
	ctx := ctxFor(l.t, 30*time.Second)
	if conn == nil {
		conn = l.sw.Connect(l.t, l.ctrl)[0]
	}
	if role, _, err := conn.RequestRole(ctx, openflow.RoleMaster, gen); err != nil || role != openflow.RoleMaster {
		l.t.Fatalf("role = %v, %v", role, err)
	}
	return conn
}

// reaccept waits for the switch to reconnect to the controller.
func (l *lab) reaccept() *openflow.Conn {
	l.t.Helper()
	conn, err := l.ctrl.Accept(ctxFor(l.t, 30*time.Second))
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { conn.Close() })
	return conn
}

func (l *lab) checkFlows(want []openflow.Flow) {
	l.t.Helper()
	got, exp := l.sw.OfctlFlows(l.t), oftest.Expected(want)
	if slices.Equal(got, exp) {
		return
	}
	var missing, extra []string
	for _, s := range exp {
		if _, ok := slices.BinarySearch(got, s); !ok {
			missing = append(missing, s)
		}
	}
	for _, s := range got {
		if _, ok := slices.BinarySearch(exp, s); !ok {
			extra = append(extra, s)
		}
	}
	l.t.Fatalf("switch has %d flows, want %d; missing %d (first %q), extra %d (first %q)",
		len(got), len(exp), len(missing), missing[:min(3, len(missing))], len(extra), extra[:min(3, len(extra))])
}

func startSyncer(t testing.TB, round uint16) *flowsync.Syncer {
	s := flowsync.New(flowsync.Options{Round: round})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return s
}

func waitRealized(t testing.TB, s *flowsync.Syncer, rev uint64) {
	t.Helper()
	if err := s.WaitRealized(ctxFor(t, 60*time.Second), rev); err != nil {
		t.Fatalf("%v (last sync error: %v)", err, s.Err())
	}
}

// pinger runs `ping -i 0.01` from a VM namespace until stop, and reports
// gaps in the answered sequence numbers (lost packets). A reply still in
// flight when it is stopped is not counted as lost.
type pinger struct {
	start time.Time
	cmd   *exec.Cmd
	seqs  []int
	done  chan struct{}
}

var seqRE = regexp.MustCompile(`icmp_seq=(\d+)`)

func startPing(t testing.TB, ns, ip string) *pinger {
	t.Helper()
	cmd := hostnet.Command(context.Background(), ns, "ping", "-n", "-i", "0.01", ip)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &pinger{cmd: cmd, done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := seqRE.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				p.seqs = append(p.seqs, n)
			}
		}
	}()
	// Stop by PID even if the test fails before it calls stop.
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *pinger) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		<-p.done
		_ = p.cmd.Wait()
	}
}

// stop ends the ping and returns the answered count and the lost seqs.
func (p *pinger) stop() (answered int, lost []int) {
	p.kill()
	seen := map[int]bool{}
	last := 0
	for _, s := range p.seqs {
		seen[s] = true
		last = max(last, s)
	}
	for s := 1; s < last; s++ {
		if !seen[s] {
			lost = append(lost, s)
		}
	}
	return len(seen), lost
}

func (l *lab) waitPing() {
	l.t.Helper()
	ctx := ctxFor(l.t, 20*time.Second)
	oftest.Eventually(l.t, 15*time.Second, "ping a -> b", func() (bool, error) {
		_, err := l.a.Exec(ctx, "ping", "-n", "-c", "1", "-W", "1", l.bIP)
		return err == nil, err
	})
}

// TestResyncWithoutDisruption: 20k flows plus an L2 path; the controller
// disconnects and reconnects with 1% of the flows changed. Only the
// difference is sent, the switch ends equal to the desired set, and a
// continuous ping between the VMs loses nothing.
func TestResyncWithoutDisruption(t *testing.T) {
	l := newLab(t, "resync")
	s := startSyncer(t, 1)
	bulk := bulkFlows(20000)
	desired := append(slices.Clone(l.l2), bulk...)
	if err := s.SetDesired(1, desired); err != nil {
		t.Fatal(err)
	}
	conn := l.connect(nil, 1<<32|1)
	s.SetConn(conn)
	waitRealized(t, s, 1)
	l.checkFlows(stamped(desired, 1))
	l.waitPing()

	p := startPing(t, l.a.Namespace(), l.bIP)
	before := s.Stats()

	// Disconnect; while away, 1% of the flows change: 100 new actions,
	// 50 removed, 50 new.
	conn.Close()
	changed := slices.Clone(bulk)
	for i := 0; i < 100; i++ {
		changed[i*7].Actions = []openflow.Action{openflow.SetReg(3, 1), openflow.GotoTable{Table: 21}}
	}
	changed = slices.Delete(changed, 19000, 19050)
	for i := 0; i < 50; i++ {
		f := bulkFlows(1)[0]
		f.Match = openflow.Match{openflow.Reg(0, uint32(100000+i))}
		changed = append(changed, f)
	}
	desired2 := append(slices.Clone(l.l2), changed...)
	if err := s.SetDesired(2, desired2); err != nil {
		t.Fatal(err)
	}
	conn2 := l.connect(l.reaccept(), 1<<32|1)
	s.SetConn(conn2)
	waitRealized(t, s, 2)
	after := s.Stats()
	answered, lost := p.stop()

	l.checkFlows(stamped(desired2, 1))
	if got := after.Added - before.Added; got != 150 {
		t.Errorf("resync added %d flows, want 150 (only the difference)", got)
	}
	if got := after.Deleted - before.Deleted; got != 50 {
		t.Errorf("resync deleted %d flows, want 50", got)
	}
	if after.Dumps != before.Dumps+1 {
		t.Errorf("dumps %d -> %d, want one dump on reconnect", before.Dumps, after.Dumps)
	}
	if len(lost) > 0 || answered < 10 {
		t.Errorf("ping during resync: %d answered, lost seqs %v", answered, lost)
	}
	t.Logf("ping during resync: %d answered over %v, none lost", answered, time.Since(p.start))

	// Afterwards deltas go without dumping.
	s.ApplyDelta(3, []openflow.Flow{{Table: 30, Priority: 1, Cookie: flowsync.Cookie(3, 7), Match: openflow.Match{openflow.Reg(5, 5)}}},
		[]openflow.Key{desired2[10].Key()})
	waitRealized(t, s, 3)
	if st := s.Stats(); st.Dumps != after.Dumps || st.Added != after.Added+1 || st.Deleted != after.Deleted+1 {
		t.Errorf("delta: stats %+v after %+v, want one add, one delete, no dump", st, after)
	}
	desired3 := slices.Delete(slices.Clone(desired2), 10, 11)
	desired3 = append(desired3, openflow.Flow{Table: 30, Priority: 1, Cookie: flowsync.Cookie(3, 7), Match: openflow.Match{openflow.Reg(5, 5)}})
	l.checkFlows(stamped(desired3, 1))
}

// TestRoundTakeover: a new leader (round 2, higher generation id) takes
// the switch over: it re-installs the flows with its cookie, then prunes
// the old round; no flow of round 1 remains and ping is unaffected.
func TestRoundTakeover(t *testing.T) {
	l := newLab(t, "round")
	old := startSyncer(t, 1)
	bulk := bulkFlows(2000)
	desired := append(slices.Clone(l.l2), bulk...)
	if err := old.SetDesired(1, desired); err != nil {
		t.Fatal(err)
	}
	conn := l.connect(nil, 1<<32|1)
	old.SetConn(conn)
	waitRealized(t, old, 1)
	l.checkFlows(stamped(desired, 1))
	l.waitPing()
	p := startPing(t, l.a.Namespace(), l.bIP)

	// The new leader wants the same flows minus 100 (pruned by cookie).
	conn.Close()
	desired2 := desired[:len(desired)-100]
	neu := startSyncer(t, 2)
	if err := neu.SetDesired(7, desired2); err != nil {
		t.Fatal(err)
	}
	conn2 := l.connect(l.reaccept(), 1<<32|2)
	neu.SetConn(conn2)
	waitRealized(t, neu, 7)
	answered, lost := p.stop()

	l.checkFlows(stamped(desired2, 2))
	for _, line := range l.sw.OfctlFlows(t) {
		c, _ := strconv.ParseUint(strings.TrimPrefix(strings.SplitN(line, ",", 2)[0], "cookie="), 0, 64)
		if flowsync.CookieRound(c) != 2 {
			t.Fatalf("flow of an old round left: %s", line)
		}
	}
	st := neu.Stats()
	if st.Added != len(desired2) || st.Pruned != 100 || st.Deleted != 0 {
		t.Errorf("stats %+v: want %d re-added, 100 pruned by cookie, 0 strict deletes", st, len(desired2))
	}
	if len(lost) > 0 || answered < 5 {
		t.Errorf("ping during takeover: %d answered, lost seqs %v", answered, lost)
	}
	t.Logf("ping during takeover: %d answered over %v, none lost", answered, time.Since(p.start))
}

// TestTakeoverBeforeDesired: a new leader's MASTER connection may come
// before its first compile (the agent's order). The syncer then leaves the
// old round's flows alone until SetDesired; ping is unaffected.
func TestTakeoverBeforeDesired(t *testing.T) {
	l := newLab(t, "early")
	old := startSyncer(t, 1)
	desired := append(slices.Clone(l.l2), bulkFlows(500)...)
	if err := old.SetDesired(1, desired); err != nil {
		t.Fatal(err)
	}
	conn := l.connect(nil, 1<<32|1)
	old.SetConn(conn)
	waitRealized(t, old, 1)
	l.waitPing()
	p := startPing(t, l.a.Namespace(), l.bIP)

	conn.Close()
	neu := startSyncer(t, 2)
	neu.SetConn(l.connect(l.reaccept(), 1<<32|2))
	deadline := time.Now().Add(30 * time.Second)
	for neu.Stats().Unready == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no pass of the new syncer without a desired set: stats %+v", neu.Stats())
		}
		time.Sleep(10 * time.Millisecond) // polling the syncer's counter, bounded by the deadline
	}
	// The pass that found no desired set changed nothing.
	l.checkFlows(stamped(desired, 1))
	if err := neu.SetDesired(2, desired); err != nil {
		t.Fatal(err)
	}
	waitRealized(t, neu, 2)
	answered, lost := p.stop()
	l.checkFlows(stamped(desired, 2))
	if len(lost) > 0 || answered < 2 {
		t.Errorf("ping during takeover: %d answered, lost seqs %v", answered, lost)
	}
}

// TestDumpSlots: a syncer whose pass starts from a dump waits for one of
// the shared dump slots and leaves the switch alone meanwhile; a pass
// that needs no dump (a delta) needs no slot.
func TestDumpSlots(t *testing.T) {
	sw := oftest.StartSwitch(t, "slots")
	conn := sw.Connect(t, oftest.NewController(t, openflow.Options{}))[0]
	ctx := ctxFor(t, 30*time.Second)
	if role, _, err := conn.RequestRole(ctx, openflow.RoleMaster, 1); err != nil || role != openflow.RoleMaster {
		t.Fatalf("role = %v, %v", role, err)
	}
	slots := make(chan struct{}, 1)
	slots <- struct{}{} // another switch's dump holds the only slot
	s := flowsync.New(flowsync.Options{Round: 1, DumpSlots: slots})
	rctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(rctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	flows := bulkFlows(50)
	if err := s.SetDesired(1, flows); err != nil {
		t.Fatal(err)
	}
	s.SetConn(conn)
	// The pass is parked on the slot: nothing reaches the switch, however
	// long we look (a second, on the switch's own state).
	if err := s.WaitRealized(ctxFor(t, time.Second), 1); err == nil {
		t.Fatal("realized while every dump slot was taken")
	}
	if n := len(sw.OfctlFlows(t)); n != 0 || s.Stats().Dumps != 0 {
		t.Fatalf("switch has %d flows, %d dumps, while every dump slot was taken", n, s.Stats().Dumps)
	}
	<-slots
	waitRealized(t, s, 1)
	if len(slots) != 0 {
		t.Fatalf("%d dump slots still held after the pass", len(slots))
	}
	slots <- struct{}{}
	s.ApplyDelta(2, bulkFlows(60)[50:], nil)
	waitRealized(t, s, 2)
	if n := len(sw.OfctlFlows(t)); n != 60 {
		t.Errorf("switch has %d flows, want 60", n)
	}
	if st := s.Stats(); st.Dumps != 1 {
		t.Errorf("stats %+v: want one dump", st)
	}
}

// TestParksWhenFenced: after another controller takes over, the engine
// stops (ErrNotMaster) instead of retrying.
func TestParksWhenFenced(t *testing.T) {
	sw := oftest.StartSwitch(t, "park")
	conns := sw.Connect(t, oftest.NewController(t, openflow.Options{}), oftest.NewController(t, openflow.Options{}))
	ctx := ctxFor(t, 30*time.Second)
	if _, _, err := conns[0].RequestRole(ctx, openflow.RoleMaster, 1); err != nil {
		t.Fatal(err)
	}
	s := startSyncer(t, 1)
	if err := s.SetDesired(1, bulkFlows(10)); err != nil {
		t.Fatal(err)
	}
	s.SetConn(conns[0])
	waitRealized(t, s, 1)
	if _, _, err := conns[1].RequestRole(ctx, openflow.RoleMaster, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDesired(2, bulkFlows(20)); err != nil {
		t.Fatal(err)
	}
	oftest.Eventually(t, 10*time.Second, "sync error", func() (bool, error) { return s.Err() != nil, nil })
	if s.Realized() != 1 {
		t.Errorf("realized %d, want 1", s.Realized())
	}
	if n := len(sw.OfctlFlows(t)); n != 10 {
		t.Errorf("switch has %d flows, want 10", n)
	}
	t.Logf("parked with: %v", s.Err())
}

// TestDuplicateKey: two flows with one key are a compiler bug.
func TestDuplicateKey(t *testing.T) {
	s := flowsync.New(flowsync.Options{})
	f := bulkFlows(1)
	if err := s.SetDesired(1, append(f, f...)); err == nil {
		t.Fatal("duplicate accepted")
	}
}

func TestCookie(t *testing.T) {
	c := flowsync.StampCookie(flowsync.Cookie(9, 0xdeadbeef), 0x1234)
	if !flowsync.IsOurs(c) || flowsync.CookieRound(c) != 0x1234 || flowsync.CookieKind(c) != 9 || flowsync.CookieObject(c) != 0xdeadbeef {
		t.Fatalf("cookie %#x", c)
	}
	// The layout is part of the pipeline contract: kind in bits 32-39, the
	// object's key in bits 0-31, distinct keys distinct cookies.
	if got := flowsync.Cookie(9, 5); got != 9<<32|5 || got == flowsync.Cookie(9, 6) || got == flowsync.Cookie(8, 5) {
		t.Fatalf("Cookie(9, 5) = %#x", got)
	}
}

// TestKeyedMismatch: keys that do not pair with the flows are refused
// before anything changes (SetDesiredKeyed) or panic (ApplyDeltaKeyed, a
// programming error in the caller).
func TestKeyedMismatch(t *testing.T) {
	s := flowsync.New(flowsync.Options{Round: 1})
	flows := bulkFlows(3)
	keys := []openflow.Key{flows[0].Key(), flows[1].Key()}
	if err := s.SetDesiredKeyed(1, flows, keys); err == nil {
		t.Fatal("SetDesiredKeyed took 2 keys for 3 flows")
	}
	if n := s.Desired(); n != 0 {
		t.Fatalf("a refused SetDesiredKeyed left %d desired flows", n)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("ApplyDeltaKeyed took 2 keys for 3 flows")
		}
	}()
	s.ApplyDeltaKeyed(1, flows, keys, nil)
}
