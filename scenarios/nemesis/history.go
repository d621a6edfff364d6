// Package nemesis is Neutrino's fault-injection test kit in the style of
// Jepsen: clients that write and read through any server while a nemesis
// kills, pauses and restarts servers, a history of every operation's
// invocation and response, and the checks run on it afterwards: the
// history of compare-and-set updates of one network must be linearizable
// (checked with porcupine on a register model), and every acknowledged
// create must be present exactly once.
//
// The clients only speak HTTP to API addresses, so the same workload runs
// against processes on loopback (this package's tests) and against a lab.
package nemesis

import (
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Never is the return time of an operation whose outcome is unknown: it may
// take effect at any point after its invocation, as Jepsen's :info ops.
const Never = int64(1<<63 - 1)

// History records operations for the linearizability check.
type History struct {
	start time.Time

	mu      sync.Mutex
	ops     []porcupine.Operation
	clients int
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock: monotonic nanoseconds since it started.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// NewClient returns a fresh client id. A client whose operation ended with
// an unknown outcome takes a new id, since that operation never returns and
// a client's operations must not overlap.
func (h *History) NewClient() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients++
	return h.clients - 1
}

// Add records one operation.
func (h *History) Add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// Ops returns a copy of the recorded operations.
func (h *History) Ops() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}
