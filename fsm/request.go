package fsm

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// CmdRequest wraps another command with the identity of the API request
// that proposed it (RequestEnvelope), so that a repeat of an applied
// request is answered with the first outcome instead of applying again.
const CmdRequest CommandType = 90

// TableRequests is the dedupe window: one Request per applied envelope.
const TableRequests = "requests"

// Bounds of the dedupe window. A request is remembered for RequestWindow by
// the leader's clock carried in the commands, and at most MaxRequests are
// kept; the oldest (lowest Raft index) go first.
const (
	RequestWindow = 24 * time.Hour
	MaxRequests   = 100_000
	// maxExpirePerApply bounds the work one Apply spends on expiry, so a
	// command after a long quiet period does not stall the log; the rest
	// expire with the next commands (deterministic either way).
	maxExpirePerApply = 256
)

// maxRequests is MaxRequests; tests lower it.
var maxRequests uint64 = MaxRequests

// indexRequestCount is the number of rows in TableRequests, kept in the
// index table so the count cap needs no scan and survives a snapshot.
const indexRequestCount = "requests_count"

// RequestEnvelope is the body of CmdRequest.
type RequestEnvelope struct {
	// ID is the request's identity: "<project>/<idempotency key>".
	ID string
	// Fingerprint identifies the request itself (method, path, body): the
	// same ID with another fingerprint is a different request.
	Fingerprint string
	// Time is the proposing leader's clock (Unix nanoseconds): expiry
	// reads time only from the log, so every replica prunes alike.
	Time int64
	// Outcome is opaque to the state machine: what the API needs to
	// answer a repeat (status, ids of the objects to render).
	Outcome []byte
	// Command is the inner log entry (type byte + body). It must not be
	// another CmdRequest.
	Command []byte
}

// Request is a row of TableRequests: an applied request and its outcome.
type Request struct {
	ID          string
	Fingerprint string
	Time        int64
	// Index is the Raft index (revision) at which the request applied.
	Index   uint64
	Outcome []byte
}

func requestsSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableRequests,
		Indexes: map[string]*memdb.IndexSchema{
			"id":    {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"index": {Name: "index", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Index"}},
		},
	}
}

// Request returns the applied request with the identity, or nil.
func (v *View) Request(id string) *Request {
	return first[*Request](v.txn, TableRequests, "id", id)
}

// RequestCount is the number of requests in the dedupe window.
func (v *View) RequestCount() uint64 { return v.index(indexRequestCount) }

// applyRequest is Apply's path for CmdRequest. A repeat returns the first
// outcome and changes nothing; otherwise the inner command and the record
// of the request are written in the same transaction, so either both are
// applied or neither.
func (f *FSM) applyRequest(st *State, body []byte, index uint64) *Result {
	var env RequestEnvelope
	mustDecode(body, &env, index)
	if env.ID == "" || len(env.Command) == 0 {
		panic(fmt.Sprintf("fsm: request envelope without identity or command at index %d", index))
	}
	t := CommandType(env.Command[0])
	if t == CmdRequest {
		panic(fmt.Sprintf("fsm: request envelope with bad inner command type %d at index %d", t, index))
	}
	h, ok := f.handlers[t]
	if !ok {
		return f.unknownCommand(t, index, st)
	}
	if prev := st.Read().Request(env.ID); prev != nil {
		return &Result{Revision: st.Read().Revision(), Replayed: true, Request: prev}
	}
	txn := st.db.Txn(true)
	txn.TrackChanges()
	if err := runHandler(h, txn, env.Command[1:], index); err != nil {
		// A rejected command changed nothing: running it again is safe,
		// so it is not remembered.
		txn.Abort()
		return &Result{Revision: st.Read().Revision(), Err: err}
	}
	rec := recordRequest(txn, &env, index)
	f.commit(txn, index)
	return &Result{Revision: index, Request: rec}
}

// recordRequest remembers an applied request in the dedupe window.
func recordRequest(txn *memdb.Txn, env *RequestEnvelope, index uint64) *Request {
	rec := &Request{ID: env.ID, Fingerprint: env.Fingerprint, Time: env.Time, Index: index, Outcome: env.Outcome}
	pruneRequests(txn, env.Time)
	if err := txn.Insert(TableRequests, rec); err != nil {
		panic(fmt.Sprintf("fsm: insert into %s: %v", TableRequests, err))
	}
	v := View{txn: txn}
	setIndex(txn, indexRequestCount, v.RequestCount()+1)
	setIndex(txn, TableRequests, index)
	return rec
}

// pruneRequests drops requests older than the window (by the time in the
// command being applied) and, at the count cap, the oldest, making room
// for one more. Both walk the requests in Raft index order.
func pruneRequests(txn *memdb.Txn, now int64) {
	v := View{txn: txn}
	count := v.RequestCount()
	cutoff := now - int64(RequestWindow)
	it, err := txn.LowerBound(TableRequests, "index", uint64(0))
	if err != nil {
		panic(fmt.Sprintf("fsm: scan %s: %v", TableRequests, err))
	}
	var drop []*Request
	for raw := it.Next(); raw != nil; raw = it.Next() {
		r := raw.(*Request)
		overCap := count-uint64(len(drop)) >= maxRequests
		expired := r.Time < cutoff && len(drop) < maxExpirePerApply
		if !overCap && !expired {
			break
		}
		drop = append(drop, r)
	}
	for _, r := range drop {
		if err := txn.Delete(TableRequests, r); err != nil {
			panic(fmt.Sprintf("fsm: delete from %s: %v", TableRequests, err))
		}
	}
	if len(drop) > 0 {
		setIndex(txn, indexRequestCount, count-uint64(len(drop)))
	}
}
