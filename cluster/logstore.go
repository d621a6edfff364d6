package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// ErrCorrupt marks stored Raft data (a log entry, a snapshot, the store
// file) that fails its checksum or cannot be decoded. A server with corrupt
// data must stop: serving it would diverge silently from the others.
var ErrCorrupt = errors.New("cluster: corrupt raft data")

// CorruptEntryError names the log entry that failed verification, the file
// it lives in, and how to recover.
type CorruptEntryError struct {
	Index   uint64 // the log index
	Path    string // the raft.db file
	Node    string // this server's name, for the recovery command
	DataDir string // this server's data dir
	Reason  string // what was wrong
}

func (e *CorruptEntryError) Error() string {
	return fmt.Sprintf("raft log entry %d in %s is corrupt (%s); this server must not serve its data. Recover: "+
		"on a healthy server run `neutrino cluster remove-server %s`, then start this one with an empty data dir "+
		"(move %s away); it rejoins and copies the state from the leader",
		e.Index, e.Path, e.Reason, e.Node, e.DataDir)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptEntryError) Unwrap() error { return ErrCorrupt }

// Storage-local checksums. Every entry this store writes carries, in front of
// its Extensions, checksumMagic and a CRC-32C over index, term, type, data
// and the original extensions; GetLog verifies and strips it, so raft (and
// the followers it replicates to) only ever see the original entry. Putting
// the checksum into the entry's own record, rather than a side bucket,
// keeps raft-boltdb's single write transaction per batch: an entry and its
// checksum cannot be torn apart by a crash.
var (
	checksumMagic = []byte("NCK1")
	crcTable      = crc32.MakeTable(crc32.Castagnoli)
	// checksumKey, in the stable store, marks a store created (or adopted)
	// by this code. Its value is the first index that must carry a
	// checksum: 1 for a new store; for a data dir from before checksums,
	// the index after its last entry (those older entries are trusted as
	// they are and leave with the next log compaction).
	checksumKey = []byte("neutrino_log_checksum_from")
)

const checksumPrefixLen = 8 // magic + CRC-32C

// checkedStore is raft-boltdb with a checksum on every log entry. It is
// also the stable store (term, vote), passed through unchanged: those are
// tiny, rewritten often, and raft-boltdb stores them in the same file.
type checkedStore struct {
	*raftboltdb.BoltStore
	path string
	node string
	dir  string
	// from is the first index that must carry a checksum.
	from uint64
	// onCorrupt is called once with the first read-time corruption: raft
	// panics on GetLog errors in its apply path, so the caller stops the
	// process from here, before raft gets the error.
	onCorrupt func(error)
	once      sync.Once

	// closeMu orders the stable store's writes with Close: raft's
	// heartbeat fast path runs on the transport's connection goroutines,
	// which outlive raft.Shutdown, and it panics when a term write fails
	// (a northbound test binary died with "failed to save current term:
	// database not open"). After Close such a write is dropped: raft has
	// shut down, and a term not kept is one the node learns again.
	closeMu sync.RWMutex
	closed  bool
}

// Set stores a stable-store key (raft's vote), unless the store is closed.
func (s *checkedStore) Set(key, val []byte) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil
	}
	return s.BoltStore.Set(key, val)
}

// SetUint64 stores a stable-store number (raft's term), unless the store is
// closed.
func (s *checkedStore) SetUint64(key []byte, val uint64) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil
	}
	return s.BoltStore.SetUint64(key, val)
}

// Close closes the store once no stable-store write is in flight.
func (s *checkedStore) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.BoltStore.Close()
}

var (
	_ raft.LogStore    = (*checkedStore)(nil)
	_ raft.StableStore = (*checkedStore)(nil)
)

// newCheckedStore wraps an open BoltStore, marking a store that has no mark
// yet (see checksumKey).
func newCheckedStore(b *raftboltdb.BoltStore, path, node, dataDir string, onCorrupt func(error)) (*checkedStore, error) {
	s := &checkedStore{BoltStore: b, path: path, node: node, dir: dataDir, onCorrupt: onCorrupt}
	buf, err := b.Get(checksumKey)
	switch {
	case err == nil && len(buf) == 8:
		s.from = binary.BigEndian.Uint64(buf)
		return s, nil
	case err == nil:
		return nil, fmt.Errorf("%w: %s: checksum marker has %d bytes, want 8", ErrCorrupt, path, len(buf))
	case !errors.Is(err, raftboltdb.ErrKeyNotFound):
		return nil, fmt.Errorf("cluster: read checksum marker in %s: %w", path, err)
	}
	last, err := b.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("cluster: read last index in %s: %w", path, err)
	}
	s.from = last + 1
	if err := b.Set(checksumKey, binary.BigEndian.AppendUint64(nil, s.from)); err != nil {
		return nil, fmt.Errorf("cluster: mark %s as checksummed: %w", path, err)
	}
	return s, nil
}

func entrySum(l *raft.Log, ext []byte) uint32 {
	var hdr [8 + 8 + 1 + 8]byte
	binary.BigEndian.PutUint64(hdr[0:], l.Index)
	binary.BigEndian.PutUint64(hdr[8:], l.Term)
	hdr[16] = byte(l.Type)
	// The data length keeps data and extensions from trading bytes.
	binary.BigEndian.PutUint64(hdr[17:], uint64(len(l.Data)))
	sum := crc32.Update(0, crcTable, hdr[:])
	sum = crc32.Update(sum, crcTable, l.Data)
	return crc32.Update(sum, crcTable, ext)
}

// seal returns a copy of l carrying its checksum; l itself is raft's and
// must not change.
func seal(l *raft.Log) *raft.Log {
	out := *l
	ext := make([]byte, checksumPrefixLen, checksumPrefixLen+len(l.Extensions))
	copy(ext, checksumMagic)
	binary.BigEndian.PutUint32(ext[4:], entrySum(l, l.Extensions))
	out.Extensions = append(ext, l.Extensions...)
	return &out
}

// StoreLog stores one entry with its checksum.
func (s *checkedStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries with their checksums, in one transaction.
func (s *checkedStore) StoreLogs(logs []*raft.Log) error {
	sealed := make([]*raft.Log, len(logs))
	for i, l := range logs {
		sealed[i] = seal(l)
	}
	return s.BoltStore.StoreLogs(sealed)
}

// GetLog reads an entry and verifies its checksum. On a mismatch it reports
// a *CorruptEntryError, after handing it to onCorrupt.
func (s *checkedStore) GetLog(idx uint64, l *raft.Log) error {
	err := s.BoltStore.GetLog(idx, l)
	if errors.Is(err, raft.ErrLogNotFound) {
		return err
	}
	if err == nil {
		err = s.verify(idx, l)
	} else {
		err = s.corrupt(idx, fmt.Sprintf("undecodable: %v", err))
	}
	if err != nil && s.onCorrupt != nil {
		s.once.Do(func() { s.onCorrupt(err) })
	}
	return err
}

// verify checks and strips the checksum of an entry read at idx.
func (s *checkedStore) verify(idx uint64, l *raft.Log) error {
	if reason := verifyEntry(idx, l, s.from); reason != "" {
		return s.corrupt(idx, reason)
	}
	return nil
}

// verifyEntry checks and strips the checksum of an entry read at idx from a
// store that requires checksums from index from on; it returns what is
// wrong, or "".
func verifyEntry(idx uint64, l *raft.Log, from uint64) string {
	if l.Index != idx {
		return fmt.Sprintf("stored under index %d but says %d", idx, l.Index)
	}
	if len(l.Extensions) < checksumPrefixLen || !bytes.Equal(l.Extensions[:4], checksumMagic) {
		if idx < from {
			return "" // written before this store had checksums
		}
		return "no checksum"
	}
	want := binary.BigEndian.Uint32(l.Extensions[4:checksumPrefixLen])
	ext := l.Extensions[checksumPrefixLen:]
	if len(ext) == 0 {
		ext = nil // what raft stored; msgpack decodes an empty slice as nil too
	}
	if got := entrySum(l, ext); got != want {
		return fmt.Sprintf("checksum %08x, stored %08x", got, want)
	}
	l.Extensions = ext
	return ""
}

func (s *checkedStore) corrupt(idx uint64, reason string) error {
	return &CorruptEntryError{Index: idx, Path: s.path, Node: s.node, DataDir: s.dir, Reason: reason}
}

// verifyLogFile reads and verifies every entry of a raft.db no one has
// open, in one read-only transaction, so a corrupt entry stops the server
// at start-up with a clear error before raft reads it (raft panics on a log
// read error while starting and applying). One transaction and one msgpack
// handle for all entries: raft-boltdb's GetLog builds both per entry,
// which made this several times slower (BenchmarkVerifyLog). corrupt builds
// the error for an entry.
func verifyLogFile(path string, corrupt func(idx uint64, reason string) error) (int, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bbolt.Tx) error {
		logs := tx.Bucket([]byte("logs")) // raft-boltdb's bucket names
		if logs == nil {
			return nil
		}
		from := uint64(math.MaxUint64) // an unmarked store: adopted as it is
		if conf := tx.Bucket([]byte("conf")); conf != nil {
			if v := conf.Get(checksumKey); len(v) == 8 {
				from = binary.BigEndian.Uint64(v)
			}
		}
		dec := codec.NewDecoderBytes(nil, &codec.MsgpackHandle{})
		var prev uint64
		c := logs.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			idx := binary.BigEndian.Uint64(k)
			if prev != 0 && idx != prev+1 {
				return corrupt(prev+1, fmt.Sprintf("missing: the log jumps from %d to %d", prev, idx))
			}
			prev = idx
			var l raft.Log
			dec.ResetBytes(v)
			if err := dec.Decode(&l); err != nil {
				return corrupt(idx, fmt.Sprintf("undecodable: %v", err))
			}
			if reason := verifyEntry(idx, &l, from); reason != "" {
				return corrupt(idx, reason)
			}
			n++
		}
		return nil
	})
	return n, err
}
