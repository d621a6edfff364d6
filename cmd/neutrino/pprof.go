package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"
)

// EnvPprofAddr names a loopback address on which the process serves Go's
// profiles (/debug/pprof/), for profiling a benchmark's servers (the
// simulator's, README "Benchmarks"). Unset by default: nothing listens.
const EnvPprofAddr = "NEUTRINO_PPROF_ADDR"

// servePprof serves net/http/pprof on $NEUTRINO_PPROF_ADDR when set; only
// a loopback address is accepted, since profiles show the process' memory.
func servePprof() {
	addr := os.Getenv(EnvPprofAddr)
	if addr == "" {
		return
	}
	log := slog.Default().With("component", "pprof")
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		log.Error("not serving profiles: want a loopback IP:PORT", "addr", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("not serving profiles", "addr", addr, "err", err)
		return
	}
	go func() {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := srv.Serve(ln); err != nil && !strings.Contains(err.Error(), "closed") {
			log.Error("profiles server stopped", "err", err)
		}
	}()
}
