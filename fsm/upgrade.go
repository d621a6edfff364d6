package fsm

// Upgrades (issue 17). A rolling upgrade runs servers of two versions in
// one Raft group, so a log entry may reach a server that does not know its
// command type. Two rules keep the replicas equal (docs/architecture.md,
// "Upgrades"):
//
//   - Types from IgnorableMin up (the two high bits of the type byte set)
//     carry state that an older server may go without: one that does not
//     know such a type skips the entry (Nomad's IgnoreUnknownTypeFlag; a
//     single flag bit is not free here, types 128-164 are in use).
//   - Any other unknown type stops the server's state machine (OnFatal; the
//     agent exits non-zero) with a message naming the entry: applying the
//     entries after it would make this replica diverge.
//
// So that the second rule never fires in a rolling upgrade, servers
// announce the command types they know (KnownCommands) in gossip and the
// leader proposes a type only when every server in the Raft configuration
// knows it (cluster.Apply). Servers of releases that announce nothing know
// BaselineCommands.

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	memdb "github.com/hashicorp/go-memdb"
)

// IgnorableMin is the first command type that a server which does not know
// it may skip: 192-255.
const IgnorableMin CommandType = 0xC0

// Ignorable reports whether a server that does not know t may skip it.
func (t CommandType) Ignorable() bool { return t >= IgnorableMin }

// Cluster upgrade commands (180-189; 190-191 are RBAC and subnet pools, rbac.go).
const (
	// CmdUpgradeFinalize records that every server runs a version that
	// knows a set of command types (UpgradeFinalizeRequest): from then on
	// no server that knows fewer may join as a voter.
	CmdUpgradeFinalize CommandType = 180
)

// Keys of the index table that hold the finalized command set: the Raft
// index of the finalize and the set's four words.
const indexUpgradeFinalized = "upgrade.finalized"

var indexUpgradeWords = [4]string{"upgrade.cmds.0", "upgrade.cmds.1", "upgrade.cmds.2", "upgrade.cmds.3"}

// ErrTypeUpgradeNotAnnounced is the error type of a finalize that names a
// command type the proposing server does not know itself.
const ErrTypeUpgradeNotAnnounced = "UpgradeCommandsUnknown"

// CommandSet is a set of command types, one bit per type.
type CommandSet [4]uint64

// Add adds t to the set.
func (s *CommandSet) Add(t CommandType) { s[t>>6] |= 1 << (t & 63) }

// Has reports whether t is in the set.
func (s CommandSet) Has(t CommandType) bool { return s[t>>6]&(1<<(t&63)) != 0 }

// Len is the number of types in the set.
func (s CommandSet) Len() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// Missing returns the types of s that other lacks, in order.
func (s CommandSet) Missing(other CommandSet) []CommandType {
	var out []CommandType
	for t := 0; t < 256; t++ {
		if s.Has(CommandType(t)) && !other.Has(CommandType(t)) {
			out = append(out, CommandType(t))
		}
	}
	return out
}

// Max is the highest type in the set that is not ignorable (0 when none):
// a one-number summary for people, not a capability.
func (s CommandSet) Max() CommandType {
	for t := int(IgnorableMin) - 1; t > 0; t-- {
		if s.Has(CommandType(t)) {
			return CommandType(t)
		}
	}
	return 0
}

// String encodes the set as 64 hex digits (what gossip carries).
func (s CommandSet) String() string {
	var b [32]byte
	for i, w := range s {
		for j := 0; j < 8; j++ {
			b[i*8+j] = byte(w >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// ParseCommandSet decodes CommandSet.String's form.
func ParseCommandSet(str string) (CommandSet, error) {
	var s CommandSet
	b, err := hex.DecodeString(str)
	if err != nil || len(b) != 32 {
		return s, fmt.Errorf("fsm: command set %q: want 64 hex digits", str)
	}
	for i := range s {
		for j := 0; j < 8; j++ {
			s[i] |= uint64(b[i*8+j]) << (8 * j)
		}
	}
	return s, nil
}

// BaselineCommands is what every server knows whose release does not
// announce its command types (those before issue 17): the types of commit
// 05fefc1. Never add to it: a new type goes only into KnownCommands.
var BaselineCommands = func() CommandSet {
	var s CommandSet
	for _, r := range [][2]CommandType{{1, 4}, {10, 20}, {40, 45}, {60, 67}, {90, 90}, {100, 106},
		{120, 135}, {140, 150}, {160, 164}} {
		for t := r[0]; t <= r[1]; t++ {
			s.Add(t)
		}
	}
	return s
}()

// KnownCommands is the set of command types this build's state machine
// applies.
var KnownCommands = sync.OnceValue(func() CommandSet {
	var s CommandSet
	for t := range New(nil).handlers {
		s.Add(t)
	}
	s.Add(CmdRequest)
	return s
})

// SetOnFatal sets what happens when Apply meets an entry this server must
// not apply past (an unknown type without the ignorable bits): the agent
// exits. Without it, Apply panics. fn must not return normally for the
// replicas to stay equal; if it does, Apply panics after it.
func (f *FSM) SetOnFatal(fn func(error)) { f.onFatal = fn }

// ErrUnknownCommand is what OnFatal receives for an unknown command type.
var ErrUnknownCommand = errors.New("fsm: unknown command type")

// unknownCommand handles an entry whose type (or whose envelope's inner
// type) this server does not know.
func (f *FSM) unknownCommand(t CommandType, index uint64, st *State) *Result {
	if t.Ignorable() {
		f.log.Warn("skipping a command this version does not know; a newer server wrote it and marked it ignorable",
			"type", uint8(t), "index", index)
		return &Result{Revision: st.Read().Revision()}
	}
	err := fmt.Errorf("%w %d at raft index %d: a newer version wrote it (this one knows types up to %d); "+
		"stopping rather than diverging from the other servers: upgrade this server's binary and start it again",
		ErrUnknownCommand, uint8(t), index, KnownCommands().Max())
	f.log.Error("stopping the state machine", "err", err)
	if f.onFatal != nil {
		f.onFatal(err)
	}
	panic(err.Error())
}

// UpgradeFinalizeRequest is the body of CmdUpgradeFinalize.
type UpgradeFinalizeRequest struct {
	// Commands is the set every server announced when the leader proposed
	// this; the finalized set is the union with the earlier one.
	Commands CommandSet
}

func applyUpgradeFinalize(txn *memdb.Txn, body []byte, index uint64) error {
	var req UpgradeFinalizeRequest
	mustDecode(body, &req, index)
	if !req.Commands.Has(CmdUpgradeFinalize) {
		return Errorf(CodeBadRequest, ErrTypeUpgradeNotAnnounced, "a finalized command set must hold the finalize command itself")
	}
	v := View{txn: txn}
	cur := v.FinalizedCommands()
	for i := range cur {
		setIndex(txn, indexUpgradeWords[i], cur[i]|req.Commands[i])
	}
	setIndex(txn, indexUpgradeFinalized, index)
	return nil
}

// FinalizedCommands is the command set of the last CmdUpgradeFinalize
// (empty before one).
func (v *View) FinalizedCommands() CommandSet {
	var s CommandSet
	for i, k := range indexUpgradeWords {
		s[i] = v.index(k)
	}
	return s
}

// UpgradeFinalizedAt is the Raft index of the last CmdUpgradeFinalize, 0
// before one.
func (v *View) UpgradeFinalizedAt() uint64 { return v.index(indexUpgradeFinalized) }

// CommandTypes returns an entry's command type and, for a request
// envelope, the inner command's type after it.
func CommandTypes(cmd []byte) ([]CommandType, error) {
	if len(cmd) == 0 {
		return nil, errors.New("fsm: empty command")
	}
	t := CommandType(cmd[0])
	if t != CmdRequest {
		return []CommandType{t}, nil
	}
	var env RequestEnvelope
	if err := decode(cmd[1:], &env); err != nil {
		return nil, fmt.Errorf("fsm: request envelope: %w", err)
	}
	if len(env.Command) == 0 {
		return nil, errors.New("fsm: request envelope without a command")
	}
	return []CommandType{t, CommandType(env.Command[0])}, nil
}
