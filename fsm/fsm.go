// Package fsm is Neutrino's replicated state machine: the model types, the
// commands that change them, and Apply / Snapshot / Restore over an indexed
// in-memory store. It imports nothing of Neutrino's.
//
// A log entry is one CommandType byte followed by a msgpack body. Apply
// hands the body to one handler per command inside one write transaction;
// a handler that returns an error leaves the state untouched and the error
// reaches the proposer through ApplyFuture.Response(). A body that does not
// decode, or an unknown type, panics: a replica that silently diverges is
// worse than one that stops. An unknown type in the ignorable range is
// skipped instead (upgrade.go).
//
// Apply also keeps a bounded history of which objects each revision
// changed (ChangesSince), so that consumers such as the flow compiler can
// recompute only what changed.
package fsm

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// Result is what Apply returns for every command.
type Result struct {
	// Revision is the state revision after the command: its Raft index when
	// it changed the state, the unchanged revision when it was rejected.
	Revision uint64
	Err      error
	// Replayed is set when the command was a repeat of an applied request
	// (CmdRequest): nothing was applied and Request is the first outcome.
	Replayed bool
	// Request is the record of the request envelope's identity: the first
	// outcome on a replay, the new record otherwise; nil for a command
	// without an envelope or one that was rejected.
	Request *Request
}

type handler func(txn *memdb.Txn, body []byte, index uint64) error

// FSM implements raft.FSM over a State.
type FSM struct {
	log      *slog.Logger
	mu       sync.RWMutex
	state    *State
	handlers map[CommandType]handler
	// changes is the history of the latest revisions' changes.
	changes changeLog
	// onFatal stops the server on an unknown command (SetOnFatal).
	onFatal func(error)
}

// New returns an FSM with an empty state.
func New(log *slog.Logger) *FSM {
	if log == nil {
		log = slog.Default()
	}
	f := &FSM{log: log.With("component", "fsm"), state: newState()}
	f.handlers = map[CommandType]handler{
		CmdSetEpoch:      applySetEpoch,
		CmdNetworkCreate: applyNetworkCreate,
		CmdNetworkUpdate: applyNetworkUpdate,
		CmdNetworkDelete: applyNetworkDelete,

		CmdSubnetCreate:            applySubnetCreate,
		CmdSubnetUpdate:            applySubnetUpdate,
		CmdSubnetDelete:            applySubnetDelete,
		CmdPortCreate:              applyPortCreate,
		CmdPortUpdate:              applyPortUpdate,
		CmdPortDelete:              applyPortDelete,
		CmdSecurityGroupCreate:     applySecurityGroupCreate,
		CmdSecurityGroupUpdate:     applySecurityGroupUpdate,
		CmdSecurityGroupDelete:     applySecurityGroupDelete,
		CmdSecurityGroupRuleCreate: applySecurityGroupRuleCreate,
		CmdSecurityGroupRuleDelete: applySecurityGroupRuleDelete,

		CmdChassisUpsert:   applyChassisUpsert,
		CmdChassisSetState: applyChassisSetState,
		CmdChassisDelete:   applyChassisDelete,
		CmdPortBind:        applyPortBind,
		CmdPortStatus:      applyPortStatus,
		CmdMacBindingSet:   applyMacBindingSet,

		CmdRouterCreate:          applyRouterCreate,
		CmdRouterUpdate:          applyRouterUpdate,
		CmdRouterDelete:          applyRouterDelete,
		CmdRouterInterfaceAdd:    applyRouterInterfaceAdd,
		CmdRouterInterfaceRemove: applyRouterInterfaceRemove,
		CmdFloatingIPCreate:      applyFloatingIPCreate,
		CmdFloatingIPUpdate:      applyFloatingIPUpdate,
		CmdFloatingIPDelete:      applyFloatingIPDelete,

		CmdLBCreate:       applyLBCreate,
		CmdLBUpdate:       applyLBUpdate,
		CmdLBDelete:       applyLBDelete,
		CmdLBFailover:     applyLBFailover,
		CmdLBStatus:       applyLBStatus,
		CmdLBTreeChange:   applyLBTreeChange,
		CmdLBDeleteExpire: applyLBDeleteExpire,
	}
	for t, h := range vpnHandlers() {
		f.handlers[t] = h
	}
	maps.Copy(f.handlers, fwHandlers())
	maps.Copy(f.handlers, quotaHandlers())
	maps.Copy(f.handlers, agentHandlers())
	f.handlers[CmdRBACPolicy] = applyRBACPolicy
	f.handlers[CmdSubnetPool] = applySubnetPool
	f.handlers[CmdQoSPolicy] = applyQoSPolicy
	f.handlers[CmdUpgradeFinalize] = applyUpgradeFinalize
	f.handlers[CmdTrunk] = applyTrunk
	f.handlers[CmdTrunkSubports] = applyTrunkSubports
	return f
}

// State returns the current state; after a restore it is a new object.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state
}

// Apply applies one committed log entry.
func (f *FSM) Apply(l *raft.Log) any {
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("fsm: empty log entry at index %d", l.Index))
	}
	t := CommandType(l.Data[0])
	if t == CmdRequest {
		return f.applyRequest(f.State(), l.Data[1:], l.Index)
	}
	st := f.State()
	h, ok := f.handlers[t]
	if !ok {
		return f.unknownCommand(t, l.Index, st)
	}
	txn := st.db.Txn(true)
	txn.TrackChanges()
	if err := runHandler(h, txn, l.Data[1:], l.Index); err != nil {
		txn.Abort()
		return &Result{Revision: st.Read().Revision(), Err: err}
	}
	f.commit(txn, l.Index)
	return &Result{Revision: l.Index}
}

// runHandler runs a command's handler, then the quota check on what it
// created (quota.go).
func runHandler(h handler, txn *memdb.Txn, body []byte, index uint64) error {
	if err := runDecoded(h, txn, body, index); err != nil {
		return err
	}
	return checkQuotas(txn)
}

// commit sets the revision and commits a successful command's transaction.
func (f *FSM) commit(txn *memdb.Txn, index uint64) {
	setIndex(txn, indexRevision, index)
	changes := trackedChanges(txn)
	// Commit and record under the history lock: whoever sees the revision
	// in the state finds its changes in the history.
	f.changes.mu.Lock()
	txn.Commit()
	f.changes.record(index, changes)
	f.changes.mu.Unlock()
}

// mustDecode decodes a command body or panics (see the package doc). A
// body that decodes without a required object is refused instead
// (malformed.go).
func mustDecode(body []byte, out any, index uint64) {
	if err := decode(body, out); err != nil {
		panic(fmt.Sprintf("fsm: undecodable %T at index %d: %v", out, index, err))
	}
	if err := checkPresent(out); err != nil {
		panic(missingObject{err})
	}
}

func setIndex(txn *memdb.Txn, key string, v uint64) {
	if err := txn.Insert(tableIndex, &indexEntry{Key: key, Value: v}); err != nil {
		panic(fmt.Sprintf("fsm: set index %s: %v", key, err))
	}
}

func insert(txn *memdb.Txn, table string, obj any, index uint64) {
	insertObject(txn, table, obj)
	setIndex(txn, table, index)
}

// insertObject is insert without the table's index, for a handler that
// inserts many objects of one table and sets the index once (each
// setIndex is a write of its own to the index table).
func insertObject(txn *memdb.Txn, table string, obj any) {
	// A create handler has already assigned the key (and returned its
	// exhaustion as an error); here an update keeps the stored key and an
	// implicit create (a gateway or floating IP port) gets one.
	isNew, err := assignKey(txn, table, obj)
	if err != nil {
		panic(fmt.Sprintf("fsm: insert into %s: %v", table, err))
	}
	if err := txn.Insert(table, obj); err != nil {
		panic(fmt.Sprintf("fsm: insert into %s: %v", table, err))
	}
	if isNew {
		keyInserted(txn, table, obj)
	}
}

func remove(txn *memdb.Txn, table string, obj any, index uint64) {
	freeKey(txn, table, obj)
	if err := txn.Delete(table, obj); err != nil {
		panic(fmt.Sprintf("fsm: delete from %s: %v", table, err))
	}
	setIndex(txn, table, index)
}

func applySetEpoch(txn *memdb.Txn, body []byte, index uint64) error {
	var req SetEpochRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if cur := v.Epoch(); cur != 0 {
		return Errorf(CodeConflict, "EpochAlreadySet", "cluster epoch is already %d", cur)
	}
	if req.Epoch == 0 {
		return Errorf(CodeBadRequest, "InvalidEpoch", "epoch must not be 0")
	}
	setIndex(txn, indexEpoch, req.Epoch)
	return nil
}

// snapshotTables lists every table a snapshot carries, in a fixed order.
// Every new table must be added here (the round-trip test checks it).
var snapshotTables = []string{tableIndex, TableNetworks,
	TableSubnets, TablePorts, TableSecurityGroups, TableSecurityGroupRules,
	TableChassis, TableRouters, TableFloatingIPs, TableMacBindings, TableRequests,
	TableVPNIKEPolicies, TableVPNIPsecPolicies, TableVPNServices, TableVPNEndpointGroups, TableVPNSiteConnections,
	TableLBLoadBalancers, TableLBListeners, TableLBPools, TableLBMembers,
	TableLBHealthMonitors, TableLBL7Policies, TableLBL7Rules,
	TableFWRules, TableFWPolicies, TableFWGroups,
	TableQuotas, TableAgents,
	TableRBACPolicies, TableSubnetPools,
	TableQoSPolicies, TableTrunks}

// Snapshot returns a point-in-time snapshot; the memdb snapshot is O(1) and
// Persist streams it while Apply goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{db: f.State().db.Snapshot()}, nil
}

// Restore replaces the state with a snapshot's and abandons the old state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(bufio.NewReader(rc))
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	f.changes.mu.Lock()
	f.mu.Lock()
	old := f.state
	f.state = st
	f.mu.Unlock()
	f.changes.reset(st.Read().Revision())
	f.changes.mu.Unlock()
	close(old.abandonCh)
	return nil
}
