package sim_test

import (
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
)

// phaseProfile starts a CPU profile of this process (servers and chassis
// alike) into $NEUTRINO_SIM_PROFILE/<name>.prof when that directory is
// set, so a slow phase (start, bulk create, writes) can be profiled on its
// own; the returned stop ends it. Without the variable it does nothing.
func phaseProfile(tb testing.TB, name string) (stop func()) {
	tb.Helper()
	dir := os.Getenv("NEUTRINO_SIM_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".prof"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	done := false
	stop = func() {
		if !done {
			done = true
			pprof.StopCPUProfile()
			f.Close()
		}
	}
	tb.Cleanup(stop)
	return stop
}
