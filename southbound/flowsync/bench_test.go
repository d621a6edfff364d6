package flowsync_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
)

// BenchmarkDiffSync: 100k flows installed; each op replaces the desired set
// with one where 1% (1000 flows) has other actions and waits until the
// switch has it (full in-memory diff of 100k + one bundle of 1000 + barrier).
// Reports changed flows/s.
func BenchmarkDiffSync(b *testing.B) {
	const n, changed = 100000, 1000
	sw := oftest.StartSwitch(b, "diff")
	conn := sw.Connect(b, oftest.NewController(b, openflow.Options{}))[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, _, err := conn.RequestRole(ctx, openflow.RoleMaster, 1); err != nil {
		b.Fatal(err)
	}
	s := startSyncer(b, 1)
	base := bulkFlows(n)
	if err := s.SetDesired(1, base); err != nil {
		b.Fatal(err)
	}
	s.SetConn(conn)
	waitRealized(b, s, 1)
	// Two variants so every op has a real 1% difference to apply.
	variants := [2][]openflow.Flow{base, slices.Clone(base)}
	for i := 0; i < changed; i++ {
		variants[1][i*(n/changed)].Actions = []openflow.Action{openflow.SetReg(3, 1), openflow.GotoTable{Table: 21}}
	}
	rev := uint64(1)
	run := func(b *testing.B, apply func(rev uint64, v []openflow.Flow) error) {
		before := s.Stats()
		for b.Loop() {
			rev++
			if err := apply(rev, variants[(rev+1)%2]); err != nil {
				b.Fatal(err)
			}
			if err := s.WaitRealized(ctx, rev); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if st := s.Stats(); st.Added-before.Added != changed*b.N || st.Dumps != before.Dumps {
			b.Fatalf("stats %+v after %+v: want %d adds per op and no dump", st, before, changed)
		}
		b.ReportMetric(float64(changed)*float64(b.N)/b.Elapsed().Seconds(), "flows/s")
	}
	// replace: the whole 100k set is handed over and diffed in memory.
	b.Run("replace", func(b *testing.B) {
		run(b, func(rev uint64, v []openflow.Flow) error { return s.SetDesired(rev, v) })
	})
	// delta: only the 1000 changed flows are handed over (ApplyDelta).
	b.Run("delta", func(b *testing.B) {
		run(b, func(rev uint64, v []openflow.Flow) error {
			add := make([]openflow.Flow, 0, changed)
			for i := 0; i < changed; i++ {
				add = append(add, v[i*(n/changed)])
			}
			s.ApplyDelta(rev, add, nil)
			return nil
		})
	})
}

// BenchmarkMeterTakeover: 1000 meters, each named by one of 1000 flows,
// on the switch; each op hands the syncer its connection again, as a new
// leader or a reconnect does, and waits for the pass: it reads the meters
// and dumps the flows, finds both as desired and sends nothing. Reports
// meters/s.
func BenchmarkMeterTakeover(b *testing.B) {
	const n = 1000
	sw := oftest.StartSwitch(b, "mtake")
	conn := sw.Connect(b, oftest.NewController(b, openflow.Options{}))[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, _, err := conn.RequestRole(ctx, openflow.RoleMaster, 1); err != nil {
		b.Fatal(err)
	}
	s := startSyncer(b, 1)
	flows := bulkFlows(n)
	meters := make(map[uint32]openflow.MeterBand, n)
	for i := range flows {
		id := uint32(i + 1)
		meters[id] = openflow.MeterBand{RateKbps: 1000 + id, BurstKbit: 100}
		flows[i].Actions = append([]openflow.Action{openflow.Meter{ID: id}}, flows[i].Actions...)
	}
	s.SetMeters(meters)
	if err := s.SetDesired(1, flows); err != nil {
		b.Fatal(err)
	}
	s.SetConn(conn)
	waitRealized(b, s, 1)
	before := s.Stats()
	rev := uint64(1)
	for b.Loop() {
		rev++
		s.SetConn(conn)
		s.ApplyDelta(rev, nil, nil)
		if err := s.WaitRealized(ctx, rev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if st := s.Stats(); st.Added != before.Added || st.Bundles != before.Bundles {
		b.Fatalf("stats %+v after %+v: a takeover with nothing changed sent flows", st, before)
	}
	ms, err := conn.DumpMeters(ctx)
	if err != nil || len(ms) != n {
		b.Fatalf("%d meters (%v), want %d", len(ms), err, n)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "meters/s")
}
