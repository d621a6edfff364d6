package nemesis

import (
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The register is one network updated only by compare-and-set: PUT with
// If-Match: revision_number=N, as Jepsen's etcd test uses a key with
// compare-and-set. Its state is (revision_number, name).

// RegisterState is the register's value.
type RegisterState struct {
	Rev  uint64
	Name string
}

// OpKind says what a register operation did.
type OpKind int

// Register operations.
const (
	// OpRead is a linearizable GET of the network.
	OpRead OpKind = iota
	// OpCAS is a PUT of a new name with If-Match on the revision read before.
	OpCAS
)

// RegisterInput is a register operation as invoked.
type RegisterInput struct {
	Kind OpKind
	// Expect is the revision of If-Match and Name the new name (OpCAS).
	Expect uint64
	Name   string
	// Key is the Idempotency-Key the operation was sent (and retried) with.
	Key string
}

// Outcome is how a write ended, as the client saw it.
type Outcome int

// Outcomes.
const (
	// OK: acknowledged (2xx).
	OK Outcome = iota
	// Rejected: the precondition failed (412): the revision had moved on.
	Rejected
	// NotApplied: the server said for certain that nothing was done (a 4xx
	// other than 412, a 503 other than OutcomeUnknown, or a connection that
	// could not be opened).
	NotApplied
	// Unknown: no answer, or OutcomeUnknown: it may or may not take effect.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Rejected:
		return "412"
	case NotApplied:
		return "not-applied"
	default:
		return "unknown"
	}
}

// RegisterOutput is a register operation's response. For a read, Rev and
// Name are what it returned.
type RegisterOutput struct {
	Outcome Outcome
	Rev     uint64
	Name    string
}

func registerStep(state, input, output any) []any {
	s, in, out := state.(RegisterState), input.(RegisterInput), output.(RegisterOutput)
	applied := RegisterState{Rev: in.Expect + 1, Name: in.Name}
	switch in.Kind {
	case OpRead:
		if out.Outcome == OK && s == (RegisterState{Rev: out.Rev, Name: out.Name}) {
			return []any{s}
		}
		return nil
	case OpCAS:
		switch out.Outcome {
		case OK:
			// The body of a replayed answer shows the object as it is now,
			// so the new state comes from the request, not the body.
			if s.Rev == in.Expect {
				return []any{applied}
			}
			return nil
		case Rejected:
			if s.Rev != in.Expect {
				return []any{s}
			}
			return nil
		case NotApplied:
			return []any{s}
		default:
			if s.Rev == in.Expect {
				return []any{s, applied}
			}
			return []any{s}
		}
	}
	return nil
}

// RegisterModel is the porcupine model of the register starting at init.
func RegisterModel(init RegisterState) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{init} },
		Step: registerStep,
		Hash: func(state any) uint64 {
			s := state.(RegisterState)
			h := fnv.New64a()
			fmt.Fprintf(h, "%d/%s", s.Rev, s.Name)
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(RegisterInput), output.(RegisterOutput)
			if in.Kind == OpRead {
				return fmt.Sprintf("read -> (%d, %s)", out.Rev, out.Name)
			}
			key := ""
			if in.Key != "" {
				key = " key " + in.Key
			}
			return fmt.Sprintf("cas(%d -> %s)%s -> %s", in.Expect, in.Name, key, out.Outcome)
		},
		DescribeState: func(state any) string {
			s := state.(RegisterState)
			return fmt.Sprintf("(%d, %s)", s.Rev, s.Name)
		},
	}
	return nm.ToModel()
}

// CheckRegister checks that ops is linearizable on the register starting at
// init. On a violation it writes porcupine's visualization to a temporary
// file and returns its path, and the operation the longest linearization
// could not take next. Unknown means the check ran out of time.
func CheckRegister(init RegisterState, ops []porcupine.Operation, timeout time.Duration) (res porcupine.CheckResult, path, stuck string, err error) {
	model := RegisterModel(init)
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	if res != porcupine.Illegal {
		return res, "", "", nil
	}
	stuck = stuckAt(model, init, ops, info)
	f, err := os.CreateTemp("", "neutrino-nemesis-*.html")
	if err != nil {
		return res, "", stuck, fmt.Errorf("visualization file: %w", err)
	}
	path = f.Name()
	f.Close()
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return res, "", stuck, fmt.Errorf("write visualization: %w", err)
	}
	return res, path, stuck, nil
}

// stuckAt describes where the longest partial linearization ends: its last
// operations, the state they leave, and the pending operation with the
// earliest return, which no order could take next.
func stuckAt(model porcupine.Model, init RegisterState, ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var longest []porcupine.Operation
	for _, part := range info.PartialLinearizationsOperations() {
		for _, l := range part {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	done := map[[2]int64]int{}
	state := any([]any{init})
	for _, op := range longest {
		done[[2]int64{op.Call, int64(op.ClientId)}]++
		_, state = model.Step(state, op.Input, op.Output)
	}
	var next *porcupine.Operation
	for i := range ops {
		k := [2]int64{ops[i].Call, int64(ops[i].ClientId)}
		if done[k] > 0 {
			done[k]--
			continue
		}
		if next == nil || ops[i].Return < next.Return {
			next = &ops[i]
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "longest linearization: %d of %d operations, ending", len(longest), len(ops))
	for _, op := range longest[max(0, len(longest)-4):] {
		fmt.Fprintf(&b, " [%s..%s] %s;", at(op.Call), atRet(op.Return), model.DescribeOperation(op.Input, op.Output))
	}
	fmt.Fprintf(&b, " state %s", model.DescribeState(state))
	if next != nil {
		fmt.Fprintf(&b, "; cannot take next [%s..%s] %s (client %d, %v)", at(next.Call), atRet(next.Return),
			model.DescribeOperation(next.Input, next.Output), next.ClientId, next.Metadata)
	}
	return b.String()
}

func atRet(ns int64) string {
	if ns == Never {
		return "never"
	}
	return at(ns)
}

// Explain lists plain evidence of a non-linearizable register history, to
// read beside porcupine's visualization: a CAS answered 412 or "not
// applied" whose value a read saw, a value no CAS wrote, an acknowledged
// CAS seen at another revision, and a read older than a revision already
// known to be reached before it began.
func Explain(init RegisterState, ops []porcupine.Operation) []string {
	var out []string
	seen := map[string][]porcupine.Operation{}
	var known []porcupine.Operation // ops whose completion proves a revision
	for _, op := range ops {
		in, o := op.Input.(RegisterInput), op.Output.(RegisterOutput)
		if in.Kind == OpRead {
			seen[o.Name] = append(seen[o.Name], op)
			known = append(known, op)
		} else if o.Outcome == OK {
			known = append(known, op)
		}
	}
	written := map[string]bool{init.Name: true}
	for _, op := range ops {
		in, o := op.Input.(RegisterInput), op.Output.(RegisterOutput)
		if in.Kind != OpCAS {
			continue
		}
		written[in.Name] = true
		reads := seen[in.Name]
		if len(reads) == 0 {
			continue
		}
		r := reads[0].Output.(RegisterOutput)
		switch {
		case o.Outcome == Rejected || o.Outcome == NotApplied:
			out = append(out, fmt.Sprintf("cas(%d -> %s, key %q) at %s answered %s, but a read at %s saw (%d, %s)",
				in.Expect, in.Name, in.Key, at(op.Call), o.Outcome, at(reads[0].Call), r.Rev, r.Name))
		case r.Rev != in.Expect+1:
			out = append(out, fmt.Sprintf("cas(%d -> %s) at %s: a read at %s saw it at revision %d",
				in.Expect, in.Name, at(op.Call), at(reads[0].Call), r.Rev))
		}
	}
	for name, reads := range seen {
		if !written[name] {
			out = append(out, fmt.Sprintf("a read at %s saw %q, which no CAS wrote", at(reads[0].Call), name))
		}
	}
	rev := func(op porcupine.Operation) uint64 {
		if in := op.Input.(RegisterInput); in.Kind == OpCAS {
			return in.Expect + 1
		}
		return op.Output.(RegisterOutput).Rev
	}
	sort.Slice(known, func(i, j int) bool { return known[i].Return < known[j].Return })
	byCall := append([]porcupine.Operation(nil), known...)
	sort.Slice(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
	var best porcupine.Operation
	var bestRev uint64
	k := 0
	for _, op := range byCall {
		for k < len(known) && known[k].Return < op.Call {
			if r := rev(known[k]); r > bestRev {
				best, bestRev = known[k], r
			}
			k++
		}
		if op.Input.(RegisterInput).Kind == OpRead && op.Output.(RegisterOutput).Rev < bestRev {
			o := op.Output.(RegisterOutput)
			out = append(out, fmt.Sprintf("stale read at %s: (%d, %s), after an op that ended at %s had reached revision %d",
				at(op.Call), o.Rev, o.Name, at(best.Return), bestRev))
		}
	}
	return out
}

func at(ns int64) string { return time.Duration(ns).Round(time.Millisecond).String() }
