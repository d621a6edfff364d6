package fsm_test

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"
	"time"

	"neutrino/fsm"
	"neutrino/southbound/pipeline/topology"
)

type benchSink struct{ bytes.Buffer }

func (s *benchSink) ID() string    { return "bench" }
func (s *benchSink) Cancel() error { return nil }
func (s *benchSink) Close() error  { return nil }

var benchStates sync.Map // ports -> *benchState

type benchState struct {
	once sync.Once
	f    *fsm.FSM
	data []byte
	err  error
}

// benchSnapshot builds topology.DefaultSpec(ports) (10 ports per network,
// 10 networks per router, one chassis per 20 ports) once per test binary
// and persists it.
func benchSnapshot(b *testing.B, ports int) (*fsm.FSM, []byte) {
	b.Helper()
	v, _ := benchStates.LoadOrStore(ports, &benchState{})
	st := v.(*benchState)
	st.once.Do(func() {
		st.f, st.err = topology.Build(topology.DefaultSpec(ports))
		if st.err != nil {
			return
		}
		snap, err := st.f.Snapshot()
		if err != nil {
			st.err = err
			return
		}
		sink := &benchSink{}
		st.err = snap.Persist(sink)
		st.data = sink.Bytes()
	})
	if st.err != nil {
		b.Fatal(st.err)
	}
	return st.f, st.data
}

// cpuTime is the CPU time (user + system) this process used so far: on a
// machine shared with other work it says what a restore costs, where the
// wall time also says how busy the machine was.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSnapshotRestore restores a persisted snapshot of the default
// topology into a fresh FSM: ms/restore is wall time, cpu-ms/restore the
// CPU time of the whole process (every core, the collector included).
func BenchmarkSnapshotRestore(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			_, data := benchSnapshot(b, n)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				g := fsm.New(nil)
				if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restore")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/restore")
			b.ReportMetric(float64(len(data))/(1<<20), "MiB")
		})
	}
}

// BenchmarkSnapshotPersist writes a snapshot of the default topology to
// memory (what a Raft snapshot costs the FSM; Apply goes on meanwhile).
func BenchmarkSnapshotPersist(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			f, data := benchSnapshot(b, n)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				snap, err := f.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				sink := &benchSink{}
				sink.Grow(len(data))
				if err := snap.Persist(sink); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/persist")
		})
	}
}
