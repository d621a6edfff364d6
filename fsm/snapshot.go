package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Snapshot format versions. Restore reads both; Persist writes the latest.
const (
	// snapshotV1: the header, then (table name, row) pairs, one msgpack
	// stream that can only be decoded in order.
	snapshotV1 = 1
	// snapshotV2: the header, then chunks of up to chunkRows rows of one
	// table: table name, row count, and the rows' msgpack encodings as one
	// byte string. Chunks are framed, so Restore decodes them in parallel.
	snapshotV2 = 2

	snapshotVersion = snapshotV2
	chunkRows       = 1024
)

type snapshotHeader struct {
	Version int
}

// snapshot streams a memdb snapshot in the latest format.
type snapshot struct {
	db *memdb.MemDB
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 1<<20)
	if err := writeSnapshot(w, s.db, snapshotVersion); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	if err := w.Flush(); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// writeSnapshot writes every table of snapshotTables in the given format
// (version 1 is kept for the tests that read old snapshots).
func writeSnapshot(w io.Writer, db *memdb.MemDB, version int) error {
	enc := codec.NewEncoder(w, msgpackHandle)
	if err := enc.Encode(snapshotHeader{Version: version}); err != nil {
		return err
	}
	var chunk bytes.Buffer
	rowEnc := codec.NewEncoder(&chunk, msgpackHandle)
	txn := db.Txn(false)
	for _, table := range snapshotTables {
		it, err := txn.Get(table, "id")
		if err != nil {
			return err
		}
		n := 0
		flush := func() error {
			if n == 0 {
				return nil
			}
			for _, v := range []any{table, n, chunk.Bytes()} {
				if err := enc.Encode(v); err != nil {
					return err
				}
			}
			chunk.Reset()
			n = 0
			return nil
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if version == snapshotV1 {
				if err := enc.Encode(table); err != nil {
					return err
				}
				if err := enc.Encode(raw); err != nil {
					return err
				}
				continue
			}
			if err := rowEnc.Encode(raw); err != nil {
				return err
			}
			if n++; n == chunkRows {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

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
	case TableQuotas:
		return &Quota{}, nil
	case TableAgents:
		return &AgentSettings{}, nil
	case TableRBACPolicies:
		return &RBACPolicy{}, nil
	case TableSubnetPools:
		return &SubnetPool{}, nil
	case TableQoSPolicies:
		return &QoSPolicy{}, nil
	case TableTrunks:
		return &Trunk{}, nil
	}
	if obj := newVPNObject(table); obj != nil {
		return obj, nil
	}
	if o := newLBObject(table); o != nil {
		return o, nil
	}
	if o := newFWObject(table); o != nil {
		return o, nil
	}
	return nil, fmt.Errorf("unknown table %q in snapshot", table)
}

func readSnapshot(r io.Reader) (*State, error) {
	defer restoreGC()()
	dec := codec.NewDecoder(r, msgpackHandle)
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	var rows map[string][]any
	var err error
	switch hdr.Version {
	case snapshotV1:
		rows, err = readRowsV1(dec)
	case snapshotV2:
		rows, err = readRowsV2(dec)
	default:
		return nil, fmt.Errorf("snapshot version %d, this build reads %d to %d", hdr.Version, snapshotV1, snapshotV2)
	}
	if err != nil {
		return nil, err
	}
	if err := assignRestoredKeys(rows); err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return buildState(rows)
}

func readRowsV1(dec *codec.Decoder) (map[string][]any, error) {
	rows := map[string][]any{}
	for {
		var table string
		if err := dec.Decode(&table); err != nil {
			if errors.Is(err, io.EOF) {
				return rows, nil
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
		rows[table] = append(rows[table], row)
	}
}

// chunk is one framed chunk of a version 2 snapshot.
type chunk struct {
	seq   int
	table string
	n     int
	data  []byte
	rows  []any
	err   error
}

// readRowsV2 reads the chunks in order and decodes them on every CPU: the
// msgpack decoding of the rows is most of a restore's cost after the
// index build.
func readRowsV2(dec *codec.Decoder) (map[string][]any, error) {
	todo := make(chan *chunk, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var decoded []*chunk
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []*chunk
			for c := range todo {
				c.rows, c.err = decodeChunk(c)
				c.data = nil
				mine = append(mine, c)
			}
			mu.Lock()
			decoded = append(decoded, mine...)
			mu.Unlock()
		}()
	}
	readErr := func() error {
		defer close(todo)
		for seq := 0; ; seq++ {
			c := &chunk{seq: seq}
			if err := dec.Decode(&c.table); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return fmt.Errorf("table name: %w", err)
			}
			if err := dec.Decode(&c.n); err != nil {
				return fmt.Errorf("row count of a %s chunk: %w", c.table, err)
			}
			if err := dec.Decode(&c.data); err != nil {
				return fmt.Errorf("rows of a %s chunk: %w", c.table, err)
			}
			todo <- c
		}
	}()
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	slices.SortFunc(decoded, func(a, b *chunk) int { return a.seq - b.seq })
	rows := map[string][]any{}
	for _, c := range decoded {
		if c.err != nil {
			return nil, c.err
		}
		rows[c.table] = append(rows[c.table], c.rows...)
	}
	return rows, nil
}

func decodeChunk(c *chunk) ([]any, error) {
	if c.n < 0 || c.n > len(c.data) {
		return nil, fmt.Errorf("a %s chunk claims %d rows in %d bytes", c.table, c.n, len(c.data))
	}
	d := codec.NewDecoderBytes(c.data, msgpackHandle)
	out := make([]any, 0, c.n)
	for range c.n {
		row, err := newRow(c.table)
		if err != nil {
			return nil, err
		}
		if err := d.Decode(row); err != nil {
			return nil, fmt.Errorf("row of %s: %w", c.table, err)
		}
		out = append(out, row)
	}
	var extra any
	if err := d.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("a %s chunk holds more than its %d rows", c.table, c.n)
	}
	return out, nil
}
