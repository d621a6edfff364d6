package flowsync_test

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
)

var (
	flowPktsRE = regexp.MustCompile(`n_packets=(\d+),`)
	meterAgeRE = regexp.MustCompile(`meter:7 .*duration:([0-9.]+)s`)
)

// TestMetersWithFlows against a real ovs-vswitchd: a meter a flow names is
// installed before the flow and changed in place. A second controller
// taking the switch over with the same meters leaves the metered flow and
// its meter alone (the flow's packet count and the meter's age run on,
// which a deleted and re-added meter would reset: OVS deletes the flows
// using a deleted meter; a ping through the flow loses nothing), and
// changes a rate in place, also one changed while disconnected (read,
// then modified). On a reconnect a stale meter goes after the flows, and
// a meter an installed flow names stays.
func TestMetersWithFlows(t *testing.T) {
	l := newLab(t, "meters")
	s := startSyncer(t, 1)
	ofctl := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := l.sw.Ofctl(ctx, args...)
		if err != nil {
			t.Fatalf("ovs-ofctl %v: %v", args, err)
		}
		return out
	}
	dumpMeters := func() string { return ofctl("dump-meters", oftest.Bridge) }
	// counters: packets through the flow naming meter 7 and meter 7's
	// age. A deleted meter takes its flows with it (OVS), and a re-made
	// flow or meter starts from zero.
	counters := func() (flowPkts int, meterAge float64) {
		t.Helper()
		out := ofctl("dump-flows", oftest.Bridge)
		flowPkts = -1
		for _, line := range strings.Split(out, "\n") {
			if m := flowPktsRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "meter:7") {
				flowPkts, _ = strconv.Atoi(m[1])
			}
		}
		ms := ofctl("meter-stats", oftest.Bridge, "meter=7")
		m := meterAgeRE.FindStringSubmatch(ms)
		if flowPkts < 0 || m == nil {
			t.Fatalf("no flow naming meter 7 or no meter 7:\n%s\n%s", out, ms)
		}
		meterAge, _ = strconv.ParseFloat(m[1], 64)
		return flowPkts, meterAge
	}
	lastPkts, lastAge := 0, 0.0
	// traffic sends 300 pings through the metered flow and waits for its
	// counter to show them (OVS pulls datapath stats lazily): a flow made
	// anew afterwards would count far fewer.
	traffic := func() {
		t.Helper()
		if out, err := l.a.Exec(ctxFor(t, 30*time.Second), "ping", "-n", "-q", "-c", "300", "-i", "0.002", l.bIP); err != nil {
			t.Fatalf("ping: %v\n%s", err, out)
		}
		oftest.Eventually(t, 10*time.Second, "metered flow counts the pings", func() (bool, error) {
			n, _ := counters()
			return n >= lastPkts+300, nil
		})
	}
	// untouched: the metered flow and its meter were there all along since
	// the last check: neither counter went back.
	untouched := func(when string) {
		t.Helper()
		n, age := counters()
		if n < lastPkts || age < lastAge {
			t.Fatalf("%s: metered flow or meter re-made: %d packets, meter %.3fs old; before %d packets, %.3fs", when, n, age, lastPkts, lastAge)
		}
		lastPkts, lastAge = n, age
	}
	metered := slices.Clone(l.l2)
	metered[0].Actions = append([]openflow.Action{openflow.Meter{ID: 7}}, metered[0].Actions...)

	s.SetMeters(map[uint32]openflow.MeterBand{7: {RateKbps: 20000, BurstKbit: 2000}})
	if err := s.SetDesired(1, metered); err != nil {
		t.Fatal(err)
	}
	conn := l.connect(nil, 1<<32|1)
	s.SetConn(conn)
	waitRealized(t, s, 1)
	l.checkFlows(stamped(metered, 1))
	if m := dumpMeters(); !strings.Contains(m, "meter=7 kbps burst") || !strings.Contains(m, "rate=20000 burst_size=2000") {
		t.Fatalf("meters after the first pass:\n%s", m)
	}
	l.waitPing()
	traffic()
	untouched("first pass")

	// A new band: modified in place, the flow untouched.
	s.SetMeters(map[uint32]openflow.MeterBand{7: {RateKbps: 5000, BurstKbit: 500}})
	s.ApplyDelta(2, nil, nil)
	waitRealized(t, s, 2)
	if m := dumpMeters(); !strings.Contains(m, "rate=5000 burst_size=500") {
		t.Fatalf("meters after a change:\n%s", m)
	}
	l.checkFlows(stamped(metered, 1))
	untouched("meter modified")

	// A second controller (a new leader: new round) takes over with the
	// same meters and flows: the meter is read, not cleared.
	meters := dumpMeters()
	traffic()
	untouched("traffic")
	p := startPing(t, l.a.Namespace(), l.bIP)
	conn.Close()
	s2 := startSyncer(t, 2)
	s2.SetMeters(map[uint32]openflow.MeterBand{7: {RateKbps: 5000, BurstKbit: 500}})
	if err := s2.SetDesired(1, metered); err != nil {
		t.Fatal(err)
	}
	conn2 := l.connect(l.reaccept(), 1<<32|2)
	s2.SetConn(conn2)
	waitRealized(t, s2, 1)
	l.checkFlows(stamped(metered, 2))
	if m := dumpMeters(); m != meters {
		t.Fatalf("meters changed by the takeover:\n%s\nbefore:\n%s", m, meters)
	}
	answered, lost := p.stop()
	if len(lost) > 0 || answered < 5 {
		t.Errorf("ping through the metered flow during takeover: %d answered, lost seqs %v", answered, lost)
	}
	untouched("takeover")

	// The new leader changes the rate: in place again.
	s2.SetMeters(map[uint32]openflow.MeterBand{7: {RateKbps: 3000, BurstKbit: 300}})
	s2.ApplyDelta(2, nil, nil)
	waitRealized(t, s2, 2)
	if m := dumpMeters(); !strings.Contains(m, "rate=3000 burst_size=300") {
		t.Fatalf("meters after a change by the new leader:\n%s", m)
	}
	untouched("meter modified by the new leader")

	// A rate changed while disconnected: on the reconnect the meter read
	// from the switch differs and is modified in place.
	conn2.Close()
	s2.SetMeters(map[uint32]openflow.MeterBand{7: {RateKbps: 4000, BurstKbit: 400}})
	s2.ApplyDelta(3, nil, nil)
	conn2 = l.connect(l.reaccept(), 1<<32|3)
	s2.SetConn(conn2)
	waitRealized(t, s2, 3)
	if m := dumpMeters(); !strings.Contains(m, "rate=4000 burst_size=400") {
		t.Fatalf("meters after a change across a reconnect:\n%s", m)
	}
	l.checkFlows(stamped(metered, 2))
	untouched("meter modified on a reconnect")

	// Reconnect: meter 99 made behind the syncer's back and meter 7, no
	// longer used, go after the flows; meter 98, not desired but named by
	// a desired flow, stays (deleting it would delete that flow).
	ofctl("add-meter", oftest.Bridge, "meter=99,kbps,band=type=drop,rate=1000")
	ofctl("add-meter", oftest.Bridge, "meter=98,kbps,band=type=drop,rate=1000")
	conn2.Close()
	final := slices.Clone(l.l2)
	final[1].Actions = append([]openflow.Action{openflow.Meter{ID: 98}}, final[1].Actions...)
	s2.SetMeters(nil)
	s2.ApplyDelta(4, final[:2], nil)
	s2.SetConn(l.connect(l.reaccept(), 1<<32|4))
	waitRealized(t, s2, 4)
	l.checkFlows(stamped(final, 2))
	if m := dumpMeters(); strings.Contains(m, "meter=7 ") || strings.Contains(m, "meter=99 ") || !strings.Contains(m, "meter=98 ") {
		t.Fatalf("meters after the reconnect, want only 98:\n%s", m)
	}
	l.waitPing()
}

// TestMeterResync: a meter deleted by hand (OVS deletes the flow naming
// it) comes back with its flow on the periodic resync.
func TestMeterResync(t *testing.T) {
	l := newLab(t, "mresync")
	s := flowsync.New(flowsync.Options{Round: 1, ResyncInterval: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	metered := slices.Clone(l.l2)
	metered[0].Actions = append([]openflow.Action{openflow.Meter{ID: 7}}, metered[0].Actions...)
	s.SetMeters(map[uint32]openflow.MeterBand{7: {RateKbps: 20000, BurstKbit: 2000}})
	if err := s.SetDesired(1, metered); err != nil {
		t.Fatal(err)
	}
	s.SetConn(l.connect(nil, 1<<32|1))
	waitRealized(t, s, 1)
	l.checkFlows(stamped(metered, 1))
	if _, err := l.sw.Ofctl(ctxFor(t, 30*time.Second), "del-meter", oftest.Bridge, "meter=7"); err != nil {
		t.Fatal(err)
	}
	if got := len(l.sw.OfctlFlows(t)); got != len(metered)-1 {
		t.Fatalf("%d flows after deleting the meter, want %d (OVS deletes the flow naming it)", got, len(metered)-1)
	}
	want := oftest.Expected(stamped(metered, 1))
	oftest.Eventually(t, 15*time.Second, "meter and flow back", func() (bool, error) {
		return slices.Equal(l.sw.OfctlFlows(t), want), nil
	})
	out, err := l.sw.Ofctl(ctxFor(t, 30*time.Second), "dump-meters", oftest.Bridge)
	if err != nil || !strings.Contains(out, "rate=20000 burst_size=2000") {
		t.Fatalf("meters after the resync (%v):\n%s", err, out)
	}
	l.waitPing()
}
