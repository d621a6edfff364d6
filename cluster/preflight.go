package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Start-up checks of a server's data dir. Each failure is one line naming
// the file and the fix, instead of a bbolt panic or a raft that silently
// starts from less than it had.

// ErrDataDirLocked means another process has the data dir's raft.db open.
var ErrDataDirLocked = errors.New("cluster: data dir in use by another process")

// wipeFix is the recovery advice for a server whose stored state is lost.
func (c *Cluster) wipeFix() string {
	return fmt.Sprintf("on a healthy server run `neutrino cluster remove-server %s`, then move %s away and start this server with an empty data dir; it rejoins and copies the state from the leader",
		c.cfg.NodeName, c.cfg.DataDir)
}

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common): a 16-byte
// page header, then magic, version, page size, flags, root bucket (16),
// freelist, high-water page id, txid, and an FNV-64a checksum of what
// precedes it. Little-endian on every platform we build for.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	boltPageHdr     = 16
	boltMetaSumOff  = 56
	boltMetaLen     = 64
	boltDefaultPage = 4096
)

type boltMeta struct {
	valid    bool
	magic    bool
	pageSize uint32
	pages    uint64 // high-water mark: the file holds at least this many pages
	txid     uint64
}

func readBoltMeta(f *os.File, off int64) boltMeta {
	buf := make([]byte, boltPageHdr+boltMetaLen)
	if _, err := f.ReadAt(buf, off); err != nil {
		return boltMeta{}
	}
	m := buf[boltPageHdr:]
	le := binary.LittleEndian
	meta := boltMeta{
		magic:    le.Uint32(m[0:]) == boltMagic,
		pageSize: le.Uint32(m[8:]),
		pages:    le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}
	h := fnv.New64a()
	h.Write(m[:boltMetaSumOff])
	meta.valid = meta.magic && le.Uint32(m[4:]) == boltVersion && h.Sum64() == le.Uint64(m[boltMetaSumOff:])
	return meta
}

// checkBoltFile refuses a raft.db that bbolt would panic or fault on: a
// file that is not a bbolt database, or one shorter than its meta page says.
// A missing file is fine: the server is new.
func checkBoltFile(path, fix string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: cannot read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cluster: cannot stat %s: %w", path, err)
	}
	size := st.Size()
	if size == 0 {
		return fmt.Errorf("%w: %s is empty (truncated); fix: %s", ErrCorrupt, path, fix)
	}
	m0 := readBoltMeta(f, 0)
	page := int64(boltDefaultPage)
	if m0.valid {
		page = int64(m0.pageSize)
	}
	m1 := readBoltMeta(f, page)
	best := m0
	if m1.valid && (!m0.valid || m1.txid > m0.txid) {
		best = m1
	}
	switch {
	case !best.valid && !m0.magic && !m1.magic:
		return fmt.Errorf("%w: %s is not a raft log (not a bbolt database, %d bytes): another program's file, or a wrong --data-dir; fix: %s",
			ErrCorrupt, path, size, fix)
	case !best.valid:
		return fmt.Errorf("%w: %s has no valid bbolt meta page (%d bytes; truncated or overwritten); fix: %s", ErrCorrupt, path, size, fix)
	case best.pageSize < 512 || best.pageSize > 1<<20:
		return fmt.Errorf("%w: %s: implausible page size %d; fix: %s", ErrCorrupt, path, best.pageSize, fix)
	}
	if need := int64(best.pages) * int64(best.pageSize); size < need {
		return fmt.Errorf("%w: %s is truncated: %d bytes, its meta page needs %d; fix: %s", ErrCorrupt, path, size, need, fix)
	}
	return nil
}

// openBoltStore checks raft.db (checkBoltFile), verifies every stored
// entry (verifyLogFile), then opens it for raft, turning a panic of bbolt's
// into an error and a held lock into ErrDataDirLocked. It reports how many
// entries it verified.
//
// checkBoltFile is what prevents the crash of a truncated file: bbolt
// walks the pages in a goroutine of its own while opening, and a page past
// the end of the file is a SIGBUS there, which no recover can catch.
func (c *Cluster) openBoltStore(path string) (store *raftboltdb.BoltStore, verified int, err error) {
	if err := checkBoltFile(path, c.wipeFix()); err != nil {
		return nil, 0, err
	}
	defer func() {
		if p := recover(); p != nil {
			store, err = nil, fmt.Errorf("%w: %s cannot be opened (bbolt: %v); fix: %s", ErrCorrupt, path, p, c.wipeFix())
		}
	}()
	verified, err = verifyLogFile(path, func(idx uint64, reason string) error {
		return &CorruptEntryError{Index: idx, Path: path, Node: c.cfg.NodeName, DataDir: c.cfg.DataDir, Reason: reason}
	})
	if err != nil {
		return nil, 0, c.boltOpenErr(path, err)
	}
	// A bbolt Timeout makes a second opener of the same dir fail instead of
	// blocking forever; NoFreelistSync trades a slower reopen for faster
	// commits.
	store, err = raftboltdb.New(raftboltdb.Options{
		Path:        path,
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true},
	})
	if err != nil {
		return nil, 0, c.boltOpenErr(path, err)
	}
	return store, verified, nil
}

// boltOpenErr explains an error from opening raft.db.
func (c *Cluster) boltOpenErr(path string, err error) error {
	switch {
	case errors.Is(err, ErrCorrupt):
		return err
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("%w: %s is locked%s; stop that agent or give this one another --data-dir",
			ErrDataDirLocked, path, lockHolder(path))
	}
	return fmt.Errorf("%w: %s cannot be opened: %v; fix: %s", ErrCorrupt, path, err, c.wipeFix())
}

// lockHolder names the process holding a flock on path, from /proc/locks,
// as " by pid N (COMMAND)"; empty when it cannot tell.
func lockHolder(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return ""
	}
	suffix := ":" + strconv.FormatUint(sys.Ino, 10)
	for _, line := range strings.Split(string(locks), "\n") {
		// "1: FLOCK  ADVISORY  WRITE 4242 00:2f:1234 0 EOF"
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || !strings.HasSuffix(f[5], suffix) {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + f[4] + "/comm")
		if c := strings.TrimSpace(string(comm)); c != "" {
			return fmt.Sprintf(" by pid %s (%s)", f[4], c)
		}
		return " by pid " + f[4]
	}
	return ""
}

// snapshotMeta is the part of raft's snapshot meta.json we check.
type snapshotMeta struct {
	ID    string
	Index uint64
	Term  uint64
}

// checkSnapshots makes sure raft will restore the newest snapshot: raft
// skips a snapshot whose meta.json it cannot read, and falls back to an
// older snapshot when the newest fails its CRC, then replays from there
// a log that may already be compacted past it: missing state, or a panic.
// So an unreadable snapshot dir, a snapshot without readable metadata, or
// a newest snapshot whose state fails its CRC-64 stops the start instead.
func (c *Cluster) checkSnapshots(snaps *raft.FileSnapshotStore, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: cannot read snapshot dir %s: %w; fix: make it readable, or %s", dir, err, c.wipeFix())
	}
	var newest *snapshotMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue // raft removes its own unfinished snapshots
		}
		path := filepath.Join(dir, e.Name(), "meta.json")
		buf, err := os.ReadFile(path)
		var m snapshotMeta
		if err == nil {
			err = json.Unmarshal(buf, &m)
		}
		if err != nil {
			return fmt.Errorf("%w: snapshot metadata %s unreadable: %v; fix: %s", ErrCorrupt, path, err, c.wipeFix())
		}
		if newest == nil || m.Term > newest.Term || m.Term == newest.Term && m.Index > newest.Index {
			newest = &m
		}
	}
	if newest == nil {
		return nil
	}
	_, rc, err := snaps.Open(newest.ID)
	if err == nil {
		// Open has checked the CRC-64 of the whole state file already.
		rc.Close()
		return nil
	}
	return fmt.Errorf("%w: snapshot %s (index %d) fails verification: %v; fix: %s",
		ErrCorrupt, filepath.Join(dir, newest.ID, "state.bin"), newest.Index, err, c.wipeFix())
}
