// Package benchfig collects benchmark figures across `go test` processes
// so `make bench` can print them as one table and keep them as JSON
// (bench.json) that runs can be compared by.
//
// A benchmark reports a figure with Report instead of b.ReportMetric (one
// line per figure); when NEUTRINO_BENCH_FIGURES names a file, the figure
// is also appended to it as one JSON line. Every package's test binary
// appends to the same file (O_APPEND, one write per line), and
// benchtable merges the lines into bench.json.
package benchfig

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"
)

// EnvFile names the file figures are appended to; unset, Report only
// reports to the testing package.
const EnvFile = "NEUTRINO_BENCH_FIGURES"

// Figure is one measured value of one benchmark.
type Figure struct {
	Benchmark string    `json:"benchmark"` // b.Name(), sub-benchmark included
	Metric    string    `json:"metric"`    // the unit as b.ReportMetric takes it, e.g. "p50-ms"
	Value     float64   `json:"value"`
	At        time.Time `json:"at"`
}

// Report reports value as b.ReportMetric(value, metric) does and records
// it in the figures file, if one is set.
func Report(b *testing.B, value float64, metric string) {
	b.Helper()
	b.ReportMetric(value, metric)
	if err := Append(os.Getenv(EnvFile), Figure{Benchmark: b.Name(), Metric: metric, Value: value, At: time.Now().UTC()}); err != nil {
		b.Logf("benchfig: %v", err)
	}
}

// Append writes f as one JSON line at the end of path ("" does nothing).
func Append(path string, f Figure) error {
	if path == "" {
		return nil
	}
	line, err := json.Marshal(f)
	if err != nil {
		return err
	}
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	// One write of a short line with O_APPEND: lines of concurrent test
	// processes do not interleave.
	_, err = fd.Write(append(line, '\n'))
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	return err
}
