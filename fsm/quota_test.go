package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// fillQuotaTable sets defaults and one project's limits from index on and
// returns the last index used.
func fillQuotaTable(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	if r := apply(t, f, index, CmdQuotaDefaults, QuotaDefaultsRequest{Limits: map[string]int{"network": 100, "port": 500}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, f, index+1, CmdQuotaSet, QuotaSetRequest{ProjectID: "p9", Limits: map[string]int{"router": 3}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	return index + 1
}

func TestQuotaEnforcedAtApply(t *testing.T) {
	f := New(nil)
	idx := uint64(1)
	next := func() uint64 { idx++; return idx }
	if r := apply(t, f, next(), CmdQuotaSet, QuotaSetRequest{ProjectID: "p1", Limits: map[string]int{"network": 2}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	// A bulk create that would pass the limit fails whole.
	r := apply(t, f, next(), CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{
		testNetwork("a", 1001), testNetwork("b", 1002), testNetwork("c", 1003)}})
	if e, ok := AsError(r.Err); !ok || e.Type != ErrTypeOverQuota || e.Code != CodeConflict ||
		e.Msg != "Quota exceeded for resources: ['network']." {
		t.Fatalf("bulk over quota: %+v", r)
	}
	if n := f.State().Read().QuotaUsage("p1", "network"); n != 0 {
		t.Fatalf("half-applied bulk: %d networks", n)
	}
	for i := range 2 {
		if r := apply(t, f, next(), CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork(fmt.Sprint(i), 1010+i)}}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	rev := f.State().Read().Revision()
	r = apply(t, f, next(), CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("x", 1020)}})
	if e, ok := AsError(r.Err); !ok || e.Type != ErrTypeOverQuota || r.Revision != rev {
		t.Fatalf("third network: %+v", r)
	}
	// Another project is not charged; an update of an existing network
	// passes even over a lowered limit.
	other := testNetwork("o", 1030)
	other.ProjectID = "p2"
	if r := apply(t, f, next(), CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{other}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := apply(t, f, next(), CmdQuotaSet, QuotaSetRequest{ProjectID: "p1", Limits: map[string]int{"network": 1}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	cur := f.State().Read().Network("0").Copy()
	cur.Name = "renamed"
	if r := apply(t, f, next(), CmdNetworkUpdate, NetworkUpdateRequest{Network: cur, PrevIndex: cur.ModifyIndex}); r.Err != nil {
		t.Fatal(r.Err)
	}
	// Defaults apply to projects without a row; deleting the row falls
	// back to them.
	if r := apply(t, f, next(), CmdQuotaDefaults, QuotaDefaultsRequest{Limits: map[string]int{"network": 5}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v := f.State().Read()
	if q := v.QuotaOf("p1"); q["network"] != 1 || q["port"] != QuotaUnlimited {
		t.Fatalf("p1 quota %v", q)
	}
	if q := v.QuotaOf("p3"); q["network"] != 5 {
		t.Fatalf("p3 quota %v", q)
	}
	if r := apply(t, f, next(), CmdQuotaDelete, QuotaDeleteRequest{ProjectID: "p1"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	if q := f.State().Read().QuotaOf("p1"); q["network"] != 5 {
		t.Fatalf("p1 after reset %v", q)
	}
	if r := apply(t, f, next(), CmdQuotaDelete, QuotaDeleteRequest{ProjectID: "p1"}); r.Err == nil {
		t.Fatal("second reset succeeded")
	}
}

func TestQuotaBadLimits(t *testing.T) {
	f := New(nil)
	for i, lim := range []map[string]int{{"network": -2}, {"bogus": 1}} {
		r := apply(t, f, uint64(i+1), CmdQuotaSet, QuotaSetRequest{ProjectID: "p1", Limits: lim})
		if e, ok := AsError(r.Err); !ok || e.Code != CodeBadRequest {
			t.Fatalf("%v: %+v", lim, r)
		}
	}
	if p := f.State().Read().QuotaProjects(); len(p) != 0 {
		t.Fatalf("rows after bad input: %v", p)
	}
}

// BenchmarkQuotaCheck is the cost the quota check adds to a create: one
// network created per op in a project that already has 1000, with no
// quota set (one lookup), with a limit far above the use (a count of the
// project's networks) and with the project's limit unlimited while
// another project has a row (a lookup of the row, no count).
func BenchmarkQuotaCheck(b *testing.B) {
	for _, mode := range []string{"none", "counted", "unlimited"} {
		b.Run(mode, func(b *testing.B) {
			f := New(nil)
			var nets []*Network
			for i := range 1000 {
				nets = append(nets, testNetwork(fmt.Sprintf("pre%d", i), 10000+i))
			}
			idx := uint64(1)
			mustApply(b, f, idx, CmdNetworkCreate, NetworkCreateRequest{Networks: nets})
			idx++
			switch mode {
			case "counted":
				mustApply(b, f, idx, CmdQuotaSet, QuotaSetRequest{ProjectID: "p1", Limits: map[string]int{"network": 1 << 30}})
			case "unlimited":
				mustApply(b, f, idx, CmdQuotaSet, QuotaSetRequest{ProjectID: "p2", Limits: map[string]int{"network": 1}})
			}
			b.ResetTimer()
			for i := range b.N {
				idx++
				mustApply(b, f, idx, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork(fmt.Sprintf("b%d", i), 100000+i)}})
			}
		})
	}
}

func mustApply(b *testing.B, f *FSM, index uint64, typ CommandType, body any) {
	b.Helper()
	buf, err := Encode(typ, body)
	if err != nil {
		b.Fatal(err)
	}
	if r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf}).(*Result); r.Err != nil {
		b.Fatal(r.Err)
	}
}
