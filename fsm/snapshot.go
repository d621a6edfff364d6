package fsm

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// snapshotVersion is written first; Restore refuses versions it does not know.
const snapshotVersion = 1

type snapshotHeader struct {
	Version int
}

// snapshot streams a memdb snapshot as a header followed by
// (table name, object) pairs, all in one msgpack stream.
type snapshot struct {
	db *memdb.MemDB
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriter(sink)
	if err := s.write(w); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	enc := codec.NewEncoder(w, msgpackHandle)
	if err := enc.Encode(snapshotHeader{Version: snapshotVersion}); err != nil {
		return err
	}
	txn := s.db.Txn(false)
	for _, table := range snapshotTables {
		it, err := txn.Get(table, "id")
		if err != nil {
			return err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if err := enc.Encode(table); err != nil {
				return err
			}
			if err := enc.Encode(raw); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *snapshot) Release() {}

// newRow returns an empty object of the table's type to decode into.
func newRow(table string) (any, error) {
	switch table {
	case tableIndex:
		return &indexEntry{}, nil
	case TableNetworks:
		return &Network{}, nil
	case TableSubnets:
		return &Subnet{}, nil
	case TablePorts:
		return &Port{}, nil
	case TableSecurityGroups:
		return &SecurityGroup{}, nil
	case TableSecurityGroupRules:
		return &SecurityGroupRule{}, nil
	case TableChassis:
		return &Chassis{}, nil
	case TableRouters:
		return &Router{}, nil
	case TableFloatingIPs:
		return &FloatingIP{}, nil
	case TableMacBindings:
		return &MacBinding{}, nil
	case TableRequests:
		return &Request{}, nil
	}
	return nil, fmt.Errorf("unknown table %q in snapshot", table)
}

func readSnapshot(r io.Reader) (*State, error) {
	dec := codec.NewDecoder(r, msgpackHandle)
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if hdr.Version != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d, want %d", hdr.Version, snapshotVersion)
	}
	st := newState()
	txn := st.db.Txn(true)
	defer txn.Abort()
	for {
		var table string
		if err := dec.Decode(&table); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("table name: %w", err)
		}
		row, err := newRow(table)
		if err != nil {
			return nil, err
		}
		if err := dec.Decode(row); err != nil {
			return nil, fmt.Errorf("row of %s: %w", table, err)
		}
		if err := txn.Insert(table, row); err != nil {
			return nil, fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	txn.Commit()
	return st, nil
}
