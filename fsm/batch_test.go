package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
)

// batchLogs is a command sequence with every case ApplyBatch treats
// apart: successes, rejections (a duplicate network, a second epoch, a
// port on a missing network), a handler that writes before it fails
// (a router interface whose router CAS passes but whose port clashes), requests with
// a replay inside the batch, a non-command entry, and a quota set halfway
// (from there on commands go through Apply one by one).
func batchLogs(t *testing.T) []*raft.Log {
	var logs []*raft.Log
	add := func(typ CommandType, body any) {
		buf, err := Encode(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogCommand, Data: buf})
	}
	req := func(id string, typ CommandType, body any) {
		inner, err := Encode(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		add(CmdRequest, RequestEnvelope{ID: "p1/" + id, Fingerprint: id, Time: 1e18, Command: inner})
	}
	add(CmdSetEpoch, SetEpochRequest{Epoch: 3})
	for i := range 6 {
		add(CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork(fmt.Sprintf("n%d", i), 4000+i)}})
		add(CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet(fmt.Sprintf("s%d", i), fmt.Sprintf("n%d", i), fmt.Sprintf("10.%d.0.0/24", i))}})
	}
	add(CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n0", 4100)}}) // duplicate id
	add(CmdSetEpoch, SetEpochRequest{Epoch: 4})                                                // already set
	logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Type: raft.LogConfiguration, Data: []byte{1, 2, 3}})
	for i := range 12 {
		n := i % 6
		p := testPort(fmt.Sprintf("p%d", i), fmt.Sprintf("n%d", n), fmt.Sprintf("fa:16:3e:00:00:%02x", i), ip(fmt.Sprintf("s%d", n), fmt.Sprintf("10.%d.0.%d", n, 10+i)))
		if i%4 == 0 {
			req(fmt.Sprintf("k%d", i), CmdPortCreate, PortCreateRequest{Ports: []*Port{p}})
			req(fmt.Sprintf("k%d", i), CmdPortCreate, PortCreateRequest{Ports: []*Port{p}}) // replayed
		} else {
			add(CmdPortCreate, PortCreateRequest{Ports: []*Port{p}})
		}
	}
	add(CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("px", "missing", "fa:16:3e:00:01:00", nil)}})
	// Two ports, the second a duplicate of the first's id: the handler
	// inserts the first before it refuses.
	add(CmdPortCreate, PortCreateRequest{Ports: []*Port{
		testPort("py", "n1", "fa:16:3e:00:01:01", ip("s1", "10.1.0.200")),
		testPort("py", "n1", "fa:16:3e:00:01:02", ip("s1", "10.1.0.201"))}})
	add(CmdPortDelete, PortDeleteRequest{ID: "p3"})
	add(CmdQuotaSet, QuotaSetRequest{ProjectID: "p1", Limits: map[string]int{"port": 13}})
	for i := 12; i < 16; i++ { // the 13th port fits, the rest are over quota
		add(CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort(fmt.Sprintf("p%d", i), "n2", fmt.Sprintf("fa:16:3e:00:02:%02x", i), ip("s2", fmt.Sprintf("10.2.0.%d", 100+i)))}})
	}
	return logs
}

// TestApplyBatchMatchesApply applies the same entries one by one with
// Apply and in batches of random sizes with ApplyBatch, and requires the
// same result for every entry, the same revision and the same snapshot.
func TestApplyBatchMatchesApply(t *testing.T) {
	logs := batchLogs(t)
	seq := New(nil)
	want := make([]any, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			want[i] = seq.Apply(l)
		}
	}
	var fails, replays int
	for _, w := range want {
		if r, ok := w.(*Result); ok && r.Err != nil {
			fails++
		} else if ok && r.Replayed {
			replays++
		}
	}
	if fails < 5 || replays != 3 {
		t.Fatalf("fixture: %d rejections, %d replays; want at least 5 and 3", fails, replays)
	}
	wantSnap := persist(t, seq)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		bat := New(nil)
		var got []any
		for rest := logs; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			if round == 0 {
				n = len(rest) // everything in one batch
			}
			out := bat.ApplyBatch(rest[:n])
			if len(out) != n {
				t.Fatalf("round %d: %d results for %d entries", round, len(out), n)
			}
			got, rest = append(got, out...), rest[n:]
		}
		for i := range logs {
			if !sameResult(got[i], want[i]) {
				t.Fatalf("round %d, entry %d (index %d): batch result %+v, Apply result %+v", round, i, logs[i].Index, got[i], want[i])
			}
		}
		if g, w := bat.State().Read().Revision(), seq.State().Read().Revision(); g != w {
			t.Fatalf("round %d: revision %d, want %d", round, g, w)
		}
		if !bytes.Equal(persist(t, bat), wantSnap) {
			t.Fatalf("round %d: snapshot differs from sequential Apply's", round)
		}
		gc, ok1 := bat.ChangesSince(0)
		wc, ok2 := seq.ChangesSince(0)
		if !ok1 || !ok2 || !sameChanges(gc, wc) {
			t.Fatalf("round %d: changes %v (%v), want %v (%v)", round, gc, ok1, wc, ok2)
		}
	}
}

func sameResult(a, b any) bool {
	ra, _ := a.(*Result)
	rb, _ := b.(*Result)
	if ra == nil || rb == nil {
		return ra == nil && rb == nil
	}
	if ra.Revision != rb.Revision || ra.Replayed != rb.Replayed || (ra.Err == nil) != (rb.Err == nil) {
		return false
	}
	if ra.Err != nil && ra.Err.Error() != rb.Err.Error() {
		return false
	}
	return (ra.Request == nil) == (rb.Request == nil) && (ra.Request == nil || ra.Request.Index == rb.Request.Index)
}

func persist(t *testing.T, f *FSM) []byte {
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}
