package fsm

import (
	"fmt"
	"testing"
	"time"
)

func envelope(t *testing.T, id string, at time.Time, typ CommandType, body any) RequestEnvelope {
	t.Helper()
	inner, err := Encode(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	return RequestEnvelope{ID: id, Fingerprint: "fp-" + id, Time: at.UnixNano(), Outcome: []byte("out-" + id), Command: inner}
}

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func TestRequestRepeatAnswersFirstOutcome(t *testing.T) {
	f := New(nil)
	env := envelope(t, "p1/k1", t0, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})
	r := apply(t, f, 5, CmdRequest, env)
	if r.Err != nil || r.Replayed || r.Revision != 5 || r.Request == nil || r.Request.Index != 5 {
		t.Fatalf("first apply: %+v", r)
	}
	v := f.State().Read()
	if v.Network("n1") == nil || v.Request("p1/k1") == nil || v.RequestCount() != 1 {
		t.Fatalf("after first apply: network %v request %v count %d", v.Network("n1"), v.Request("p1/k1"), v.RequestCount())
	}
	// The repeat carries another network: it must not be created.
	again := envelope(t, "p1/k1", t0.Add(time.Second), CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n2", 101)}})
	r = apply(t, f, 6, CmdRequest, again)
	if r.Err != nil || !r.Replayed || r.Revision != 5 || r.Request.Index != 5 || string(r.Request.Outcome) != "out-p1/k1" {
		t.Fatalf("repeat: %+v", r)
	}
	v = f.State().Read()
	if v.Network("n2") != nil || v.Revision() != 5 || v.RequestCount() != 1 {
		t.Fatalf("repeat applied: n2 %v revision %d", v.Network("n2"), v.Revision())
	}
}

func TestRequestRejectedIsNotRecorded(t *testing.T) {
	f := New(nil)
	apply(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})
	// Same segment: rejected.
	env := envelope(t, "p1/k", t0, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n2", 100)}})
	if r := apply(t, f, 2, CmdRequest, env); r.Err == nil || r.Replayed {
		t.Fatalf("conflicting create: %+v", r)
	}
	if v := f.State().Read(); v.Request("p1/k") != nil || v.Revision() != 1 {
		t.Fatal("a rejected request was recorded")
	}
	// The same identity may run again and succeed.
	env = envelope(t, "p1/k", t0, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n2", 101)}})
	if r := apply(t, f, 3, CmdRequest, env); r.Err != nil || r.Replayed {
		t.Fatalf("retry: %+v", r)
	}
}

func TestRequestWindowExpires(t *testing.T) {
	f := New(nil)
	apply(t, f, 1, CmdRequest, envelope(t, "p/old", t0, CmdSetEpoch, SetEpochRequest{Epoch: 7}))
	apply(t, f, 2, CmdRequest, envelope(t, "p/mid", t0.Add(time.Hour), CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}}))
	// Just over a day after the first: only it expires.
	apply(t, f, 3, CmdRequest, envelope(t, "p/new", t0.Add(RequestWindow+time.Minute), CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n2", 101)}}))
	v := f.State().Read()
	if v.Request("p/old") != nil || v.Request("p/mid") == nil || v.Request("p/new") == nil || v.RequestCount() != 2 {
		t.Fatalf("after expiry: old %v mid %v new %v count %d", v.Request("p/old"), v.Request("p/mid"), v.Request("p/new"), v.RequestCount())
	}
}

func TestRequestWindowCountCap(t *testing.T) {
	defer func(n uint64) { maxRequests = n }(maxRequests)
	maxRequests = 3
	f := New(nil)
	for i := 1; i <= 5; i++ {
		net := testNetwork(fmt.Sprintf("n%d", i), 100+i)
		apply(t, f, uint64(i), CmdRequest, envelope(t, fmt.Sprintf("p/%d", i), t0, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{net}}))
	}
	v := f.State().Read()
	for i := 1; i <= 5; i++ {
		if got, want := v.Request(fmt.Sprintf("p/%d", i)) != nil, i > 2; got != want {
			t.Fatalf("request %d kept=%v, want %v", i, got, want)
		}
	}
	if v.RequestCount() != 3 {
		t.Fatalf("count %d, want 3", v.RequestCount())
	}
}

func TestRequestEnvelopeNestingPanics(t *testing.T) {
	f := New(nil)
	inner, err := Encode(CmdRequest, envelope(t, "p/a", t0, CmdSetEpoch, SetEpochRequest{Epoch: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a nested envelope did not panic")
		}
	}()
	apply(t, f, 1, CmdRequest, RequestEnvelope{ID: "p/b", Command: inner})
}

// fillRequestsTable records one request so the snapshot round trip
// covers the requests table.
func fillRequestsTable(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	net := testNetwork("req-net", 987654)
	if r := apply(t, f, index, CmdRequest, envelope(t, "p1/key", t0, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{net}})); r.Err != nil {
		t.Fatal(r.Err)
	}
	return index
}
