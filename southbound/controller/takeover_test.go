package controller

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestTakeoverSummary: one line once every chassis up at the start is
// programmed, with the slowest of each phase; chassis started later and
// repeated reports do not count.
func TestTakeoverSummary(t *testing.T) {
	var buf bytes.Buffer
	tk := newTakeover(slog.New(slog.NewTextHandler(&buf, nil)))
	tk.expect([]string{"hv1", "hv2"})
	tk.done("hv1", takeoverTimes{queued: 3 * time.Second, ovsdb: time.Millisecond, compile: time.Millisecond, sync: time.Second})
	tk.done("hv3", takeoverTimes{queued: time.Hour}) // started after the takeover began
	if buf.Len() != 0 {
		t.Fatalf("summary before every chassis was programmed: %s", buf.String())
	}
	tk.done("hv2", takeoverTimes{queued: time.Second, ovsdb: 2 * time.Second, compile: time.Millisecond, sync: 2 * time.Second})
	tk.done("hv2", takeoverTimes{queued: time.Hour})
	out := buf.String()
	if strings.Count(out, "southbound taken over") != 1 {
		t.Fatalf("want one summary line, got %q", out)
	}
	for _, want := range []string{"chassis=2", "max_queued=3s", "max_ovsdb=2s", "max_compile=1ms", "max_sync=2s"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary %q lacks %s", out, want)
		}
	}
}
