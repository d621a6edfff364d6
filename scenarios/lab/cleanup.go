package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DownWhenDone takes the driver's lab down when tb ends, whatever
// happened: if tb failed it first logs the last lines of every agent's
// log; it fails tb when a namespace with the driver's prefix is left, and
// removes tmp (the directory the lab's Dir lives in).
func (d *Driver) DownWhenDone(tb testing.TB, tmp string) {
	dir, prefix := d.Options.Dir, d.Options.Prefix
	tb.Cleanup(func() {
		if tb.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "*", "agent.log"))
			for _, l := range logs {
				tb.Logf("%s (tail):\n%s", l, tailLines(l, 25))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Down(ctx); err != nil && !errors.Is(err, ErrNoLab) {
			tb.Errorf("lab down: %v", err)
		}
		if ents, err := os.ReadDir("/run/netns"); err == nil {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), prefix) {
					tb.Errorf("lab down left namespace %s", e.Name())
				}
			}
		}
		os.RemoveAll(tmp)
	})
}

// tailLines is the last n lines of a file, or why it cannot be read.
func tailLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
