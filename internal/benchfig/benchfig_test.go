package benchfig

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestAppendReadTable: figures appended by concurrent writers all come
// back, the table has a row per benchmark and a column per metric, and a
// malformed line is refused with its number.
func TestAppendReadTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figs")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Append(path, Figure{Benchmark: "BenchmarkA/n=" + string(rune('0'+i%5)), Metric: "p50-ms", Value: float64(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := Append(path, Figure{Benchmark: "BenchmarkB", Metric: "applies/s", Value: 5123}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	figs, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 51 {
		t.Fatalf("%d figures read back, want 51", len(figs))
	}
	var out bytes.Buffer
	if err := Table(&out, figs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 7 { // header, 5 sub-benchmarks of A, B
		t.Fatalf("table has %d lines, want 7:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], "p50-ms") || !strings.Contains(lines[0], "applies/s") {
		t.Fatalf("header %q lacks a metric", lines[0])
	}
	if !strings.Contains(lines[6], "BenchmarkB") || !strings.Contains(lines[6], "5123") || !strings.Contains(lines[6], "-") {
		t.Fatalf("row %q: want BenchmarkB, 5123 and - for its missing metric", lines[6])
	}
	if _, err := Read(strings.NewReader("{\"benchmark\":\"X\",\"metric\":\"m\",\"value\":1}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("malformed line: err %v, want one naming line 2", err)
	}
}

// TestAppendNoFile: no figures file set, nothing is written and no error.
func TestAppendNoFile(t *testing.T) {
	if err := Append("", Figure{Benchmark: "B", Metric: "m"}); err != nil {
		t.Fatal(err)
	}
}
