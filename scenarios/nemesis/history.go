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
	"encoding/json"
	"fmt"
	"os"
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

// savedOp is an operation as WriteHistory stores it.
type savedOp struct {
	Client       int
	Call, Return int64
	Input        RegisterInput
	Output       RegisterOutput
	Meta         string `json:",omitempty"`
}

// WriteHistory stores register operations and the initial state as JSON,
// so that a failed run's history can be checked again (ReadHistory).
func WriteHistory(path string, init RegisterState, ops []porcupine.Operation) error {
	saved := make([]savedOp, len(ops))
	for i, op := range ops {
		meta, _ := op.Metadata.(string)
		saved[i] = savedOp{op.ClientId, op.Call, op.Return, op.Input.(RegisterInput), op.Output.(RegisterOutput), meta}
	}
	data, err := json.Marshal(struct {
		Init RegisterState
		Ops  []savedOp
	}{init, saved})
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// ReadHistory loads what WriteHistory stored.
func ReadHistory(path string) (RegisterState, []porcupine.Operation, error) {
	var h struct {
		Init RegisterState
		Ops  []savedOp
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return h.Init, nil, err
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return h.Init, nil, fmt.Errorf("%s: %w", path, err)
	}
	ops := make([]porcupine.Operation, len(h.Ops))
	for i, o := range h.Ops {
		ops[i] = porcupine.Operation{ClientId: o.Client, Call: o.Call, Return: o.Return, Input: o.Input, Output: o.Output, Metadata: o.Meta}
	}
	return h.Init, ops, nil
}
