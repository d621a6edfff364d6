// Command benchtable turns the figures `make bench` collected
// (NEUTRINO_BENCH_FIGURES, one JSON line each) into bench.json and prints
// them as a table.
//
//	go run ./internal/benchfig/benchtable -in bench.figures -out bench.json -commit REV
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"neutrino/internal/benchfig"
)

func main() {
	in := flag.String("in", "bench.figures", "figure lines the benchmarks appended")
	out := flag.String("out", "bench.json", "JSON file to write")
	commit := flag.String("commit", "", "revision the figures were measured on")
	flag.Parse()
	if err := run(*in, *out, *commit); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(in, out, commit string) error {
	figs := []benchfig.Figure{}
	f, err := os.Open(in)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No benchmark reported a figure (e.g. BENCH selected none of them).
	case err != nil:
		return err
	default:
		defer f.Close()
		if figs, err = benchfig.Read(f); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(benchfig.Run{Commit: commit, Figures: figs}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return benchfig.Table(os.Stdout, figs)
}
