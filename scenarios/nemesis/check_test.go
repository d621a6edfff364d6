package nemesis

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checkers must catch what they are there to catch: these histories
// are built by hand, each with a known verdict.

func rd(client int, call, ret int64, rev uint64, name string) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: RegisterInput{Kind: OpRead}, Call: call, Return: ret,
		Output: RegisterOutput{Outcome: OK, Rev: rev, Name: name}}
}

func cas(client int, call, ret int64, expect uint64, name string, out Outcome) porcupine.Operation {
	if out == Unknown {
		ret = Never
	}
	return porcupine.Operation{ClientId: client, Input: RegisterInput{Kind: OpCAS, Expect: expect, Name: name},
		Call: call, Return: ret, Output: RegisterOutput{Outcome: out}}
}

func TestRegisterModel(t *testing.T) {
	init := RegisterState{Rev: 1, Name: "a"}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"sequential CAS chain", []porcupine.Operation{
			rd(0, 0, 1, 1, "a"), cas(0, 2, 3, 1, "b", OK), rd(1, 4, 5, 2, "b"), cas(1, 6, 7, 1, "c", Rejected),
		}, true},
		{"concurrent CAS, one wins", []porcupine.Operation{
			cas(0, 0, 10, 1, "b", OK), cas(1, 0, 10, 1, "c", Rejected), rd(2, 11, 12, 2, "b"),
		}, true},
		{"both concurrent CAS on one revision acknowledged", []porcupine.Operation{
			cas(0, 0, 10, 1, "b", OK), cas(1, 0, 10, 1, "c", OK),
		}, false},
		{"stale read after an acknowledged CAS", []porcupine.Operation{
			cas(0, 0, 1, 1, "b", OK), rd(1, 2, 3, 1, "a"),
		}, false},
		{"lost acknowledged CAS", []porcupine.Operation{
			cas(0, 0, 1, 1, "b", OK), cas(1, 2, 3, 2, "c", Rejected), rd(1, 4, 5, 1, "a"),
		}, false},
		{"unknown CAS that took effect", []porcupine.Operation{
			cas(0, 0, 0, 1, "b", Unknown), rd(1, 5, 6, 2, "b"),
		}, true},
		{"unknown CAS that did not", []porcupine.Operation{
			cas(0, 0, 0, 1, "b", Unknown), rd(1, 5, 6, 1, "a"), cas(1, 7, 8, 1, "c", OK), rd(1, 9, 10, 2, "c"),
		}, true},
		{"412 for a CAS that took effect", []porcupine.Operation{
			cas(0, 0, 1, 1, "b", Rejected), rd(1, 2, 3, 2, "b"),
		}, false},
		{"not applied, but it was", []porcupine.Operation{
			cas(0, 0, 1, 1, "b", NotApplied), rd(1, 2, 3, 2, "b"),
		}, false},
		{"applied twice", []porcupine.Operation{
			cas(0, 0, 1, 1, "b", OK), rd(1, 2, 3, 3, "b"),
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, path, stuck, err := CheckRegister(init, tc.ops, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if path != "" {
				if st, err := os.Stat(path); err != nil || st.Size() == 0 {
					t.Errorf("visualization %s not written: %v", path, err)
				}
				os.Remove(path)
			}
			if (res == porcupine.Ok) != tc.ok || res == porcupine.Unknown {
				t.Fatalf("verdict %s, want linearizable=%v", res, tc.ok)
			}
			if !tc.ok && (path == "" || stuck == "") {
				t.Errorf("illegal history without visualization (%q) or diagnosis (%q)", path, stuck)
			}
			t.Log(stuck)
		})
	}
}

func TestCheckCreates(t *testing.T) {
	creates := []*Create{
		{Name: "p-c0-0", Key: "k0", Outcome: OK, ID: "id0"},
		{Name: "p-c0-1", Key: "k1", Outcome: OK, ID: "id1"},
		{Name: "p-c1-0", Outcome: OK, ID: "id2"},
		{Name: "p-c1-1", Outcome: Unknown},
		{Name: "p-c1-2", Outcome: Unknown},
		{Name: "p-c1-3", Outcome: NotApplied},
		{Name: "p-c1-4", Outcome: OK, ID: "id4"},
	}
	present := map[string][]string{
		"p-c0-0":     {"id0"},
		"p-c0-1":     {"id1", "id1b"}, // duplicated
		"p-c1-0":     {"other"},       // acknowledged under another id
		"p-c1-1":     {"id3"},         // unknown outcome, present: allowed
		"p-c1-3":     {"id5"},         // said not applied, present
		"p-c9-9":     {"id9"},         // never created
		"p-register": {"r"},
	}
	rep, bad := CheckCreates(creates, present, "p")
	want := []string{
		"p-c0-1 (key \"k1\", ok after 0 attempts) is present 2 times",
		"p-c1-0 (key \"\") was acknowledged as id2 but is present as other",
		"p-c1-3 (key \"\") was answered as not applied and is present",
		"p-c1-4 (key \"\", id id4) was acknowledged and is lost",
		"p-c9-9 is present but was never created",
	}
	if len(bad) != len(want) {
		t.Fatalf("got %d violations, want %d: %q", len(bad), len(want), bad)
	}
	for i := range want {
		if !strings.HasPrefix(bad[i], want[i]) {
			t.Errorf("violation %d: %q, want %q", i, bad[i], want[i])
		}
	}
	if rep.Acked != 4 || rep.AckedKeyed != 2 || rep.Unknown != 2 || rep.UnknownPresent != 1 || rep.NotApplied != 1 {
		t.Errorf("report %+v", rep)
	}
}

// TestRecheckHistory checks a history saved by a failed run again
// (NEUTRINO_NEMESIS_HISTORY=path). NEUTRINO_NEMESIS_IGNORE_412=1 takes
// every 412 as "not applied", to see whether a history has violations
// other than stale 412s.
func TestRecheckHistory(t *testing.T) {
	path := os.Getenv("NEUTRINO_NEMESIS_HISTORY")
	if path == "" {
		t.Skip("NEUTRINO_NEMESIS_HISTORY names no saved history")
	}
	init, ops, err := ReadHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("NEUTRINO_NEMESIS_IGNORE_412") == "1" {
		for i, op := range ops {
			if out := op.Output.(RegisterOutput); out.Outcome == Rejected {
				out.Outcome = NotApplied
				ops[i].Output = out
			}
		}
	}
	res, viz, stuck, err := CheckRegister(init, ops, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d operations: %s %s", len(ops), res, viz)
	if res != porcupine.Ok {
		t.Errorf("%s", stuck)
		for _, e := range Explain(init, ops) {
			t.Errorf("evidence: %s", e)
		}
	}
}

func TestClassify(t *testing.T) {
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	cases := []struct {
		name  string
		r     reply
		keyed bool
		want  Outcome
	}{
		{"created", reply{status: 201}, false, OK},
		{"updated", reply{status: 200}, false, OK},
		{"precondition failed", reply{status: 412, typ: "RevisionNumberConstraintFailed"}, false, Rejected},
		{"not ready / no leader", reply{status: 503, typ: "ServiceUnavailable", header: h("Retry-After", "1")}, false, NotApplied},
		{"outcome unknown", reply{status: 503, typ: "OutcomeUnknown"}, false, Unknown},
		{"503 without a Neutron body", reply{status: 503}, false, Unknown},
		{"internal error", reply{status: 500, typ: "InternalServerError"}, false, Unknown},
		{"conflict", reply{status: 409, typ: "TunnelIdInUse"}, false, NotApplied},
		{"connection refused", reply{err: errors.New("dial"), dialFailed: true}, false, NotApplied},
		{"connection refused, keyed (the transport may have replayed)", reply{err: errors.New("dial"), dialFailed: true}, true, Unknown},
		{"connection reset, timeout", reply{err: errors.New("EOF")}, false, Unknown},
	}
	for _, tc := range cases {
		if got := classify(tc.r, tc.keyed); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
