package fsm

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// TestReplayOldLog: entries written by the release before issue 17 replay
// unchanged, building the rows that release built (fsm/testdata/oldlog-gen.sh
// wrote both with that release's code).
func TestReplayOldLog(t *testing.T) {
	file, err := os.Open("testdata/oldlog-05fefc1.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	zr, err := gzip.NewReader(file)
	if err != nil {
		t.Fatal(err)
	}
	var old struct {
		Commit  string
		Entries []struct {
			Index uint64
			Data  []byte
		}
		Tables map[string][]json.RawMessage
	}
	if err := json.NewDecoder(zr).Decode(&old); err != nil {
		t.Fatal(err)
	}
	// Tables added since (RBAC policies, subnet pools) are empty here.
	if len(old.Entries) < 20 || len(old.Tables) > len(snapshotTables) {
		t.Fatalf("fixture has %d entries and %d tables", len(old.Entries), len(old.Tables))
	}
	f := New(nil)
	types := map[CommandType]bool{}
	for _, e := range old.Entries {
		types[CommandType(e.Data[0])] = true
		r := f.Apply(&raft.Log{Index: e.Index, Type: raft.LogCommand, Data: e.Data}).(*Result)
		if r.Err != nil {
			t.Fatalf("entry %d (%s): %v", e.Index, CommandType(e.Data[0]), r.Err)
		}
	}
	for typ := range types {
		if !BaselineCommands.Has(typ) {
			t.Errorf("the old log has type %s that the baseline lacks", typ)
		}
	}
	got := tableRows(t, f.State().db)
	for table, rows := range old.Tables {
		if len(got[table]) != len(rows) {
			t.Fatalf("table %s: %d rows, the old release had %d", table, len(got[table]), len(rows))
		}
		for i, raw := range rows {
			// Every field the old release wrote reads back the same; a
			// field added since may appear beside them.
			var want, have map[string]any
			buf, err := json.Marshal(got[table][i])
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(buf, &have); err != nil {
				t.Fatal(err)
			}
			for k, v := range want {
				if !reflect.DeepEqual(have[k], v) {
					t.Errorf("table %s row %d field %s: %v, the old release had %v", table, i, k, have[k], v)
				}
			}
		}
	}
}

// fatalStop is what the test's OnFatal panics with, so the test can tell
// the hook ran from Apply's own panic.
type fatalStop struct{ err error }

func applyExpectingStop(t *testing.T, f *FSM, index uint64, data []byte) error {
	t.Helper()
	var got error
	func() {
		defer func() {
			r := recover()
			stop, ok := r.(fatalStop)
			if !ok {
				t.Fatalf("Apply did not stop through OnFatal: recovered %v", r)
			}
			got = stop.err
		}()
		f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	}()
	return got
}

func TestUnknownCommandStops(t *testing.T) {
	f := New(nil)
	f.SetOnFatal(func(err error) { panic(fatalStop{err}) })
	apply(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})

	// The highest non-ignorable type this build does not know.
	unknown := CommandType(IgnorableMin - 1)
	for KnownCommands().Has(unknown) {
		unknown--
	}
	data, err := Encode(unknown, NetworkDeleteRequest{ID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	err = applyExpectingStop(t, f, 2, data)
	if !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("OnFatal got %v", err)
	}
	t.Logf("stop message: %v", err)

	// Inside a request envelope too.
	env, err := Encode(CmdRequest, RequestEnvelope{ID: "p1/k", Time: 1, Command: data})
	if err != nil {
		t.Fatal(err)
	}
	if err := applyExpectingStop(t, f, 3, env); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("OnFatal got %v", err)
	}
	if v := f.State().Read(); v.Revision() != 1 || v.Network("n1") == nil || v.Request("p1/k") != nil {
		t.Fatalf("an unknown command changed the state: revision %d", v.Revision())
	}

	// Without a hook Apply panics rather than going on.
	g := New(nil)
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("Apply of an unknown type returned")
			}
		}()
		g.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
	}()
}

func TestUnknownIgnorableCommandIsSkipped(t *testing.T) {
	f := New(nil)
	f.SetOnFatal(func(err error) { t.Fatalf("stopped on an ignorable command: %v", err) })
	apply(t, f, 1, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("n1", 100)}})
	typ := CommandType(0xFE)
	if KnownCommands().Has(typ) || !typ.Ignorable() || CommandType(IgnorableMin-1).Ignorable() {
		t.Fatal("the ignorable range is not what this test assumes")
	}
	if r := apply(t, f, 2, typ, NetworkDeleteRequest{ID: "n1"}); r.Err != nil || r.Revision != 1 {
		t.Fatalf("ignorable unknown command: %+v", r)
	}
	inner, err := Encode(typ, NetworkDeleteRequest{ID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if r := apply(t, f, 3, CmdRequest, RequestEnvelope{ID: "p1/k", Time: 1, Command: inner}); r.Err != nil || r.Revision != 1 || r.Request != nil {
		t.Fatalf("ignorable unknown command in an envelope: %+v", r)
	}
	// Later entries apply as usual.
	if r := apply(t, f, 4, CmdNetworkDelete, NetworkDeleteRequest{ID: "n1"}); r.Err != nil || r.Revision != 4 {
		t.Fatalf("delete after the skipped entries: %+v", r)
	}
}

func TestCommandSets(t *testing.T) {
	known := KnownCommands()
	if missing := BaselineCommands.Missing(known); len(missing) != 0 {
		t.Fatalf("this build does not know baseline types %v", missing)
	}
	if BaselineCommands.Has(CmdUpgradeFinalize) || !known.Has(CmdUpgradeFinalize) || !known.Has(CmdRequest) {
		t.Fatal("the finalize command must be new and the envelope known")
	}
	if got := known.Missing(BaselineCommands); !reflect.DeepEqual(got[len(got)-3:], []CommandType{CmdUpgradeFinalize, CmdRBACPolicy, CmdSubnetPool}) {
		t.Fatalf("new since the baseline: %v", got)
	}
	parsed, err := ParseCommandSet(known.String())
	if err != nil || parsed != known {
		t.Fatalf("round trip: %v %v", parsed, err)
	}
	if _, err := ParseCommandSet("abc"); err == nil {
		t.Fatal("a short set parsed")
	}
	if BaselineCommands.Max() != 164 || known.Len() != BaselineCommands.Len()+len(known.Missing(BaselineCommands)) {
		t.Fatalf("max %d len %d", BaselineCommands.Max(), known.Len())
	}
}

func TestUpgradeFinalize(t *testing.T) {
	f := New(nil)
	if r := apply(t, f, 1, CmdUpgradeFinalize, UpgradeFinalizeRequest{Commands: BaselineCommands}); r.Err == nil {
		t.Fatal("a set without the finalize command was accepted")
	}
	if r := apply(t, f, 2, CmdUpgradeFinalize, UpgradeFinalizeRequest{Commands: KnownCommands()}); r.Err != nil {
		t.Fatal(r.Err)
	}
	v := f.State().Read()
	if v.FinalizedCommands() != KnownCommands() || v.UpgradeFinalizedAt() != 2 {
		t.Fatalf("finalized %v at %d", v.FinalizedCommands(), v.UpgradeFinalizedAt())
	}
	// The record survives a snapshot and restore.
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, f.State().db.Snapshot(), snapshotV2); err != nil {
		t.Fatal(err)
	}
	g := New(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if w := g.State().Read(); w.FinalizedCommands() != KnownCommands() || w.UpgradeFinalizedAt() != 2 {
		t.Fatal("finalize lost in the snapshot")
	}
}
