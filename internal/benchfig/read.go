package benchfig

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Run is what bench.json holds: one `make bench` run's figures.
type Run struct {
	Commit  string   `json:"commit,omitempty"`
	Figures []Figure `json:"figures"`
}

// Read parses figure lines; a malformed line is an error naming it.
func Read(r io.Reader) ([]Figure, error) {
	var out []Figure
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var f Figure
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			return nil, fmt.Errorf("figures line %d: %w", n, err)
		}
		if f.Benchmark == "" || f.Metric == "" {
			return nil, fmt.Errorf("figures line %d: benchmark and metric required", n)
		}
		out = append(out, f)
	}
	return out, sc.Err()
}

// Table writes one row per benchmark, one column per metric, in the
// order benchmarks first reported; a later figure of the same benchmark
// and metric replaces an earlier one.
func Table(w io.Writer, figs []Figure) error {
	var benches, metrics []string
	val := map[[2]string]float64{}
	for _, f := range figs {
		if !slices.Contains(benches, f.Benchmark) {
			benches = append(benches, f.Benchmark)
		}
		if !slices.Contains(metrics, f.Metric) {
			metrics = append(metrics, f.Metric)
		}
		val[[2]string{f.Benchmark, f.Metric}] = f.Value
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "benchmark\t")
	for _, m := range metrics {
		fmt.Fprintf(tw, "%s\t", m)
	}
	fmt.Fprintln(tw)
	for _, b := range benches {
		fmt.Fprintf(tw, "%s\t", b)
		for _, m := range metrics {
			if v, ok := val[[2]string{b, m}]; ok {
				fmt.Fprintf(tw, "%.6g\t", v)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
