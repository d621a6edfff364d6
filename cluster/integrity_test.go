package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

func openChecked(t testing.TB, path string, hook func(error)) *checkedStore {
	t.Helper()
	b, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := newCheckedStore(b, path, "s9", filepath.Dir(path), hook)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// verifyFile runs the start-up verification on a closed raft.db.
func verifyFile(path string) (int, error) {
	return verifyLogFile(path, func(idx uint64, reason string) error {
		return &CorruptEntryError{Index: idx, Path: path, Node: "s9", DataDir: filepath.Dir(path), Reason: reason}
	})
}

func testLogs(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		l := &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: fmt.Appendf(nil, "payload-%06d", i)}
		if i%2 == 0 {
			l.Extensions = []byte("ext")
		}
		out = append(out, l)
	}
	return out
}

// flipInEntry changes one byte of a stored entry's value in raft.db, found
// by needle (so the flip lands in the entry's data), using bbolt directly.
func flipInEntry(t testing.TB, path string, idx uint64, needle []byte) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("logs"))
		key := binary.BigEndian.AppendUint64(nil, idx)
		val := bytes.Clone(b.Get(key))
		at := bytes.Index(val, needle)
		if at < 0 {
			return fmt.Errorf("entry %d does not contain %q", idx, needle)
		}
		val[at+len(needle)-1] ^= 0x01
		return b.Put(key, val)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckedStoreRoundTripAndCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s := openChecked(t, path, nil)
	logs := testLogs(1, 10)
	orig := make([]raft.Log, len(logs))
	for i, l := range logs {
		orig[i] = *l
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for i, l := range logs {
		// What raft handed us is raft's: the checksum goes on a copy.
		if !bytes.Equal(l.Extensions, orig[i].Extensions) {
			t.Fatalf("StoreLogs changed raft's entry %d: extensions %q", l.Index, l.Extensions)
		}
		var got raft.Log
		if err := s.GetLog(l.Index, &got); err != nil {
			t.Fatalf("get %d: %v", l.Index, err)
		}
		if got.Index != l.Index || got.Term != l.Term || got.Type != l.Type || !bytes.Equal(got.Data, l.Data) ||
			!bytes.Equal(got.Extensions, l.Extensions) {
			t.Fatalf("entry %d read back as %+v, want %+v", l.Index, got, *l)
		}
	}
	s.Close()
	if n, err := verifyFile(path); err != nil || n != 10 {
		t.Fatalf("verify = %d, %v; want 10, nil", n, err)
	}

	flipInEntry(t, path, 7, []byte("payload-000007"))
	_, err := verifyFile(path)
	var fatal []error
	s = openChecked(t, path, func(err error) { fatal = append(fatal, err) })
	var ce *CorruptEntryError
	if !errors.As(err, &ce) || ce.Index != 7 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify after a flip in entry 7: %v, want a corrupt entry 7", err)
	}
	for _, want := range []string{"entry 7", path, "remove-server s9", "empty data dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	var l raft.Log
	for range 2 {
		if err := s.GetLog(7, &l); !errors.As(err, &ce) || ce.Index != 7 {
			t.Fatalf("GetLog(7) = %v, want a corrupt entry", err)
		}
	}
	if len(fatal) != 1 {
		t.Fatalf("run-time hook called %d times, want once", len(fatal))
	}
	if err := s.GetLog(6, &l); err != nil {
		t.Fatalf("GetLog(6) next to the corrupt entry: %v", err)
	}
}

// A data dir from before checksums is adopted: its entries stay readable,
// new ones are checksummed, and an unchecksummed entry past the adoption
// point is corruption.
func TestCheckedStoreAdoptsOldStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	plain, err := raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.StoreLogs(testLogs(1, 5)); err != nil {
		t.Fatal(err)
	}
	plain.Close()

	s := openChecked(t, path, nil)
	if s.from != 6 {
		t.Fatalf("adopted store checksums from %d, want 6", s.from)
	}
	if err := s.StoreLogs(testLogs(6, 8)); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	for i := uint64(1); i <= 8; i++ {
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d) of an adopted store: %v", i, err)
		}
	}
	s.Close()
	if n, err := verifyFile(path); err != nil || n != 8 {
		t.Fatalf("verify = %d, %v; want 8, nil", n, err)
	}

	// The marker survives a reopen; an entry written without a checksum
	// where one is required is refused.
	plain, err = raftboltdb.New(raftboltdb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.StoreLogs(testLogs(9, 9)); err != nil {
		t.Fatal(err)
	}
	plain.Close()
	var ce *CorruptEntryError
	if _, err := verifyFile(path); !errors.As(err, &ce) || ce.Index != 9 || !strings.Contains(err.Error(), "no checksum") {
		t.Fatalf("verify = %v, want entry 9 without checksum", err)
	}
	s = openChecked(t, path, nil)
	if err := s.GetLog(9, &l); !errors.As(err, &ce) || ce.Index != 9 {
		t.Fatalf("GetLog(9) = %v, want entry 9 without checksum", err)
	}
}

// startErr builds and starts a node, returning Start's error.
func (n *testNode) startErr() error {
	c, err := New(n.config())
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	n.c = c
	return nil
}

// A follower whose stored entry changed on disk refuses to start, naming
// the entry, the file and the recovery, instead of rejoining with
// different data at the same index.
func TestCorruptFollowerEntryRefusesToRejoin(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	var ids []string
	for range 10 {
		ids = append(ids, tc.create(leader.c))
	}
	tc.converged(leader.fsm.State().Read().Revision(), ids)
	f := tc.followers()[0]
	f.stop(t)

	// Find the entry that created ids[4] and flip a byte of its name.
	path := filepath.Join(f.dir, "raft", "raft.db")
	idx := entryContaining(t, path, []byte(ids[4]))
	flipInEntry(t, path, idx, []byte(ids[4]))

	err := f.startErr()
	if err == nil {
		got := f.fsm.State().Read()
		t.Fatalf("corrupt follower started (network %s there: %v)", ids[4], got.Network(ids[4]) != nil)
	}
	var ce *CorruptEntryError
	if !errors.As(err, &ce) || ce.Index != idx {
		t.Fatalf("start: %v, want corrupt entry %d", err, idx)
	}
	for _, want := range []string{fmt.Sprintf("entry %d", idx), path, "remove-server " + f.name} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	// The others go on.
	ids = append(ids, tc.create(tc.leader().c))
	tc.converged(tc.leader().fsm.State().Read().Revision(), ids)
}

func entryContaining(t testing.TB, path string, needle []byte) uint64 {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var idx uint64
	_ = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("logs")).ForEach(func(k, v []byte) error {
			if idx == 0 && bytes.Contains(v, needle) {
				idx = binary.BigEndian.Uint64(k)
			}
			return nil
		})
	})
	if idx == 0 {
		t.Fatalf("no entry in %s contains %q", path, needle)
	}
	return idx
}

// oneServer runs a single-server cluster with a few writes and a snapshot,
// then stops it, for the start-up failure tests.
func oneServer(t *testing.T) *testNode {
	t.Helper()
	tc := newTestCluster(t, 1, nil)
	n := tc.leader()
	for range 5 {
		tc.create(n.c)
	}
	if err := n.c.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	tc.create(n.c)
	n.stop(t)
	return n
}

func TestStartupFailuresAreOneLineErrors(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, n *testNode) (hold func())
		is     error
		want   []string
	}{
		{"truncated raft.db", func(t *testing.T, n *testNode) func() {
			path := filepath.Join(n.dir, "raft", "raft.db")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()/2); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ErrCorrupt, []string{"raft.db", "truncated", "remove-server", "empty data dir"}},
		{"raft.db cut inside the meta pages", func(t *testing.T, n *testNode) func() {
			if err := os.Truncate(filepath.Join(n.dir, "raft", "raft.db"), 100); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ErrCorrupt, []string{"raft.db", "remove-server"}},
		{"foreign raft.db", func(t *testing.T, n *testNode) func() {
			path := filepath.Join(n.dir, "raft", "raft.db")
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a database\n"), 1000), 0o600); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ErrCorrupt, []string{"raft.db", "not a raft log", "--data-dir"}},
		{"locked data dir", func(t *testing.T, n *testNode) func() {
			db, err := bbolt.Open(filepath.Join(n.dir, "raft", "raft.db"), 0o600, &bbolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return func() { db.Close() }
		}, ErrDataDirLocked, []string{"raft.db", "locked by pid", "another --data-dir"}},
		{"corrupted snapshot state", func(t *testing.T, n *testNode) func() {
			state := newestSnapshotFile(t, n, "state.bin")
			buf, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			buf[len(buf)/2] ^= 0x01
			if err := os.WriteFile(state, buf, 0o600); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ErrCorrupt, []string{"state.bin", "CRC", "remove-server"}},
		{"unreadable snapshot metadata", func(t *testing.T, n *testNode) func() {
			if err := os.WriteFile(newestSnapshotFile(t, n, "meta.json"), []byte("{garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ErrCorrupt, []string{"meta.json", "remove-server"}},
		{"snapshot dir is a file", func(t *testing.T, n *testNode) func() {
			dir := filepath.Join(n.dir, "raft", "snapshots")
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return nil
		}, nil, []string{"snapshots", "unusable"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			n := oneServer(t)
			if hold := tt.damage(t, n); hold != nil {
				defer hold()
			}
			err := n.startErr()
			if err == nil {
				t.Cleanup(func() { n.stop(t) })
				t.Fatal("started on a damaged data dir")
			}
			t.Log(err)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func newestSnapshotFile(t *testing.T, n *testNode, name string) string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(n.dir, "raft", "snapshots", "*", name))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no snapshot %s in %s: %v", name, n.dir, err)
	}
	return dirs[len(dirs)-1] // names sort by term, index, time
}

// BenchmarkVerifyLog measures the start-up verification of every stored
// entry (10k entries of 200 bytes, about a network create each), opening
// and closing the file included.
func BenchmarkVerifyLog(b *testing.B) {
	path := filepath.Join(b.TempDir(), "raft.db")
	s := openChecked(b, path, nil)
	const n = 10000
	for i := uint64(1); i <= n; i += 500 {
		batch := testLogs(i, i+499)
		for _, l := range batch {
			l.Data = bytes.Repeat(l.Data[:8], 25)
		}
		if err := s.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	for b.Loop() {
		if got, err := verifyFile(path); err != nil || got != n {
			b.Fatalf("verify = %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/10k-entries")
}

// TestStableWriteAfterClose: raft's heartbeat fast path can write the term
// after raft.Shutdown, from a transport connection that is still open, and
// raft panics when that write fails. Once the store is closed such writes
// are dropped; before, they are kept; Close waits for one in flight.
func TestStableWriteAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s := openChecked(t, path, nil)
	key := []byte("CurrentTerm")
	if err := s.SetUint64(key, 7); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64(key); err != nil || v != 7 {
		t.Fatalf("term before close: %d %v", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64(key, 8); err != nil {
		t.Fatalf("term write after close: %v (raft would panic)", err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("s2")); err != nil {
		t.Fatalf("vote write after close: %v (raft would panic)", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	// The dropped write did not reach the file.
	s2 := openChecked(t, path, nil)
	if v, err := s2.GetUint64(key); err != nil || v != 7 {
		t.Fatalf("term after reopening: %d %v, want 7", v, err)
	}
}
