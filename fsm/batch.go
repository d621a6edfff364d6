package fsm

import (
	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// ApplyBatch implements raft.BatchingFSM: raft hands over every entry of a
// commit (up to MaxAppendEntries) at once. Successful commands of a batch
// share one write transaction, committed once at the last one's index:
// memdb then copies each index's radix path and allocates each index's
// write cache once per batch instead of once per command, and watchers
// wake once. The result is the state sequential Apply calls give: each
// command reads what the ones before it wrote (through the transaction),
// gets its own index as CreateIndex/ModifyIndex, and the revision index
// is set after each success as Apply sets it. Batches differ between
// servers (each commits at its own pace), so nothing may depend on where
// a batch ends:
//   - a command that fails may have written before failing, and memdb has
//     no savepoint: the transaction is dropped, the commands before it are
//     applied again in a new one (they succeed again: handlers are
//     deterministic) and the failing one goes through Apply, which returns
//     its error with the exact revision;
//   - the quota check looks at the transaction's changes (quota.go), which
//     in a shared transaction would include earlier commands': once any
//     quota is set, commands go through Apply one at a time;
//   - the change history records a batch's changes at its last index:
//     state is only ever visible at batch ends, and a consumer asking from
//     an index inside a batch gets a superset, which is safe.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i := 0; i < len(logs); {
		i = f.applyRun(logs, out, i)
	}
	return out
}

// applyRun applies logs[start:] in one transaction until the end or the
// first command that cannot share it, which it applies alone; it returns
// the position after the last entry it handled.
func (f *FSM) applyRun(logs []*raft.Log, out []any, start int) int {
	st := f.State()
	if raw, err := st.Read().txn.First(TableQuotas, "id"); err == nil && raw != nil {
		return f.applyOne(logs, out, start)
	}
	txn := st.db.Txn(true)
	txn.TrackChanges()
	var last uint64 // the last index that changed the state
	i := start
	for ; i < len(logs); i++ {
		l := logs[i]
		if l.Type != raft.LogCommand {
			continue // raft's Apply path never sees them either
		}
		res, wrote, ok := f.applyInTxn(txn, l)
		if !ok {
			break
		}
		out[i] = res
		if wrote {
			last = l.Index
		}
	}
	if i < len(logs) {
		// logs[i] failed or needs Apply: redo the prefix without it.
		txn.Abort()
		if i > start {
			return f.applyRun(logs[:i], out, start)
		}
		return f.applyOne(logs, out, i)
	}
	if last == 0 {
		txn.Abort() // nothing written: replays and non-commands only
		return i
	}
	f.commit(txn, last)
	return i
}

// applyOne applies logs[i] through Apply.
func (f *FSM) applyOne(logs []*raft.Log, out []any, i int) int {
	if logs[i].Type == raft.LogCommand {
		out[i] = f.Apply(logs[i])
	}
	return i + 1
}

// applyInTxn applies one command inside a batch's transaction: ok is
// false when it failed (its writes, if any, are in txn) or must go
// through Apply (an unknown type, a quota set after it); wrote says
// whether it changed the state (a replayed request does not).
func (f *FSM) applyInTxn(txn *memdb.Txn, l *raft.Log) (res *Result, wrote, ok bool) {
	if len(l.Data) == 0 {
		return nil, false, false // Apply panics with the index
	}
	if raw, err := txn.First(TableQuotas, "id"); err != nil || raw != nil {
		return nil, false, false
	}
	t := CommandType(l.Data[0])
	body := l.Data[1:]
	v := View{txn: txn}
	var env RequestEnvelope
	if t == CmdRequest {
		mustDecode(body, &env, l.Index)
		if env.ID == "" || len(env.Command) == 0 || CommandType(env.Command[0]) == CmdRequest {
			return nil, false, false // Apply panics with the reason
		}
		if prev := v.Request(env.ID); prev != nil {
			return &Result{Revision: v.Revision(), Replayed: true, Request: prev}, false, true
		}
		t, body = CommandType(env.Command[0]), env.Command[1:]
	}
	h, known := f.handlers[t]
	if !known {
		return nil, false, false
	}
	if err := runHandler(h, txn, body, l.Index); err != nil {
		return nil, false, false
	}
	res = &Result{Revision: l.Index}
	if env.ID != "" {
		res.Request = recordRequest(txn, &env, l.Index)
	}
	setIndex(txn, indexRevision, l.Index)
	return res, true, true
}
