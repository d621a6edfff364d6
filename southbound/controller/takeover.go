package controller

import (
	"log/slog"
	"sync"
	"time"
)

// takeover times a session's first programming of the chassis that were up
// when it started, and logs one line when the last of them is done: how
// long a new leader took to own every switch, and where that went.
type takeover struct {
	log   *slog.Logger
	start time.Time

	mu      sync.Mutex
	pending map[string]bool // chassis not programmed yet
	total   int
	worst   takeoverTimes // the slowest chassis' time in each phase
}

// takeoverTimes are one chassis' phases of a takeover: waiting for a
// takeover slot, the OVSDB session and first read (connect, monitor,
// converge br-int, tunnels and patch ports), the first compile (with the
// wait for a compile slot), and the first flow sync until the switch
// acknowledged it (MASTER, dump, re-stamp, prune).
type takeoverTimes struct {
	queued, ovsdb, compile, sync time.Duration
}

func newTakeover(log *slog.Logger) *takeover {
	return &takeover{log: log, start: time.Now(), pending: map[string]bool{}}
}

// expect adds the chassis whose first programming the summary waits for.
func (t *takeover) expect(names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		if !t.pending[n] {
			t.pending[n] = true
			t.total++
		}
	}
}

// done records that chassis' switch acknowledged its first full flow set.
func (t *takeover) done(chassis string, tt takeoverTimes) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.pending[chassis] {
		return
	}
	delete(t.pending, chassis)
	t.worst.queued = max(t.worst.queued, tt.queued)
	t.worst.ovsdb = max(t.worst.ovsdb, tt.ovsdb)
	t.worst.compile = max(t.worst.compile, tt.compile)
	t.worst.sync = max(t.worst.sync, tt.sync)
	if len(t.pending) == 0 {
		t.log.Info("southbound taken over", "chassis", t.total, "took", time.Since(t.start).Round(time.Millisecond),
			"max_queued", t.worst.queued.Round(time.Millisecond), "max_ovsdb", t.worst.ovsdb.Round(time.Millisecond),
			"max_compile", t.worst.compile.Round(time.Millisecond), "max_sync", t.worst.sync.Round(time.Millisecond))
	}
}
