package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/pipeline/topology"
)

type benchSink struct{ bytes.Buffer }

func (s *benchSink) ID() string    { return "bench" }
func (s *benchSink) Cancel() error { return nil }
func (s *benchSink) Close() error  { return nil }

// benchSnapshot builds topology.DefaultSpec(ports) and persists it.
func benchSnapshot(b *testing.B, ports int) (*fsm.FSM, []byte) {
	b.Helper()
	f, err := topology.Build(topology.DefaultSpec(ports))
	if err != nil {
		b.Fatal(err)
	}
	snap, err := f.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	sink := &benchSink{}
	if err := snap.Persist(sink); err != nil {
		b.Fatal(err)
	}
	return f, sink.Bytes()
}

// BenchmarkSnapshotRestore restores a persisted snapshot of the default
// topology (10 ports per network, 10 networks per router) into a fresh FSM.
func BenchmarkSnapshotRestore(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			_, data := benchSnapshot(b, n)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g := fsm.New(nil)
				if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restore")
			b.ReportMetric(float64(len(data))/(1<<20), "MiB")
		})
	}
}
