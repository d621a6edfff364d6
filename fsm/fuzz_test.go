package fsm

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// FuzzApply hands any log entry to Apply on a state holding a network,
// a subnet, a security group and a port. Apply either answers a Result or stops the server
// on purpose (a panic with an "fsm: " message: an undecodable body or an
// unknown command type, see the package doc); a runtime error (nil
// pointer, index out of range) is a bug. A command that changed the state
// must leave one that survives a snapshot and restore.
func FuzzApply(f *testing.F) {
	seed := func(typ CommandType, body any) {
		buf, err := Encode(typ, body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	seed(CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n2", 4001)}})
	upd := testNetwork("core-net", 4000)
	upd.Name = "renamed"
	seed(CmdNetworkUpdate, NetworkUpdateRequest{Network: upd, PrevIndex: 1})
	seed(CmdNetworkDelete, NetworkDeleteRequest{ID: "core-net"})
	seed(CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("s2", "core-net", "10.1.0.0/24")}})
	seed(CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("p2", "core-net", "fa:16:3e:00:01:01", ip("core-sub", "10.0.0.99"))}})
	seed(CmdPortDelete, PortDeleteRequest{ID: "core-p00"})
	seed(CmdSecurityGroupDelete, SecurityGroupDeleteRequest{ID: "core-sg"})
	seed(CmdSetEpoch, SetEpochRequest{Epoch: 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return // Apply's first check: raft never commits an empty command
		}
		st := New(nil)
		last := fuzzFixture(t, st)
		res, stopped := applyOrStop(t, st, &raft.Log{Index: last + 1, Type: raft.LogCommand, Data: data})
		if stopped || res.Err != nil {
			return
		}
		snap, err := st.Snapshot()
		if err != nil {
			t.Fatalf("snapshot after %s: %v", CommandType(data[0]), err)
		}
		sink := &memSink{}
		if err := snap.Persist(sink); err != nil {
			t.Fatalf("persist after %s: %v", CommandType(data[0]), err)
		}
		restored := New(nil)
		if err := restored.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
			t.Fatalf("restore after %s: %v", CommandType(data[0]), err)
		}
		if got, want := restored.State().Read().Revision(), st.State().Read().Revision(); got != want {
			t.Fatalf("restored revision %d, want %d", got, want)
		}
	})
}

// applyOrStop applies l and reports whether Apply stopped on purpose.
func applyOrStop(t *testing.T, f *FSM, l *raft.Log) (res *Result, stopped bool) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if _, ok := p.(runtime.Error); ok {
			t.Fatalf("Apply(%s, %x) crashed: %v", CommandType(l.Data[0]), l.Data, p)
		}
		if msg := fmt.Sprint(p); !strings.HasPrefix(msg, "fsm: ") {
			t.Fatalf("Apply(%s, %x) panicked without a reason of ours: %v", CommandType(l.Data[0]), l.Data, p)
		}
		stopped = true
	}()
	r, ok := f.Apply(l).(*Result)
	if !ok || r == nil {
		t.Fatalf("Apply returned %T", r)
	}
	return r, false
}

// fuzzFixture is fillCoreTables with one port: small, so each fuzz input
// runs on a fresh state quickly.
func fuzzFixture(t *testing.T, f *FSM) uint64 {
	for i, c := range []struct {
		typ  CommandType
		body any
	}{
		{CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("core-net", 4000)}}},
		{CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("core-sub", "core-net", "10.0.0.0/24")}}},
		{CmdPortCreate, PortCreateRequest{Ports: []*Port{testPort("core-p00", "core-net", "fa:16:3e:00:00:00", ip("core-sub", "10.0.0.10"), "core-sg")},
			Defaults: []*SecurityGroupBundle{testGroup("core-sg")}}},
	} {
		if r := apply(t, f, uint64(i+1), c.typ, c.body); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return 3
}
