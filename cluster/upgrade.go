package cluster

// Rolling upgrades (docs/architecture.md, "Upgrades"): every server
// announces its version and the command types its state machine knows;
// the leader proposes a command only when every server in the Raft
// configuration knows its type, so no server meets an entry it would have
// to stop on (fsm/upgrade.go).

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"neutrino/fsm"
)

// ErrCommandUnsupported means a server in the Raft configuration does not
// know the command's type: it was not proposed. It succeeds once every
// server runs a version that knows it.
var ErrCommandUnsupported = errors.New("cluster: not every server knows this command")

// version is set at link time (-ldflags "-X neutrino/cluster.version=V");
// without it the version is the VCS revision the binary was built from.
var version string

// Version is this binary's version: the link-time one, else the VCS
// revision (12 digits, "+dirty" for a modified tree), else "devel".
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// serverCommands is what a server knows by its gossip metadata: its
// announced set, or the baseline for one that announces none (a release
// before announcements, or a server gossip has never seen).
func (c *Cluster) serverCommands(name string) (fsm.CommandSet, string) {
	if name == c.cfg.NodeName {
		return c.cfg.knownCommands(), Version()
	}
	m, ok := c.member(name)
	if !ok || m.Meta.Commands == "" {
		return fsm.BaselineCommands, "unannounced (a release before version announcements)"
	}
	set, err := fsm.ParseCommandSet(m.Meta.Commands)
	if err != nil {
		c.log.Warn("server announces a bad command set; assuming the baseline", "member", name, "err", err)
		return fsm.BaselineCommands, m.Meta.Version
	}
	return set, m.Meta.Version
}

// checkSupported refuses a command whose type (or whose envelope's inner
// type) some server in the Raft configuration does not know. Ignorable
// types pass: a server that does not know one skips it.
func (c *Cluster) checkSupported(cmd []byte) error {
	types, err := fsm.CommandTypes(cmd)
	if err != nil {
		return fmt.Errorf("cluster: apply: %w", err)
	}
	return c.Supports(types...)
}

// Supports reports, on any server, whether every server in the Raft
// configuration knows the command types (ErrCommandUnsupported naming one
// that does not). Ignorable types need nobody's support.
func (c *Cluster) Supports(types ...fsm.CommandType) error {
	if c.raftPub.Load() == nil {
		return ErrNotServer
	}
	var need []fsm.CommandType
	for _, t := range types {
		if !t.Ignorable() && !fsm.BaselineCommands.Has(t) {
			need = append(need, t)
		}
	}
	if len(need) == 0 {
		return nil
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("cluster: apply: read raft configuration: %w", err)
	}
	for _, s := range f.Configuration().Servers {
		set, ver := c.serverCommands(string(s.ID))
		for _, t := range need {
			if !set.Has(t) {
				return fmt.Errorf("%w: server %s runs version %s that does not know command %s (type %d); "+
					"it is accepted once every server runs a version that does", ErrCommandUnsupported, s.ID, ver, t, uint8(t))
			}
		}
	}
	return nil
}

// clusterCommands is the set every server in the Raft configuration
// knows.
func (c *Cluster) clusterCommands() (fsm.CommandSet, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fsm.CommandSet{}, fmt.Errorf("cluster: read raft configuration: %w", err)
	}
	all := fsm.KnownCommands()
	for _, s := range f.Configuration().Servers {
		set, _ := c.serverCommands(string(s.ID))
		for i := range all {
			all[i] &= set[i]
		}
	}
	return all, nil
}

// FinalizeUpgrade records in the replicated state the command types every
// server knows (CmdUpgradeFinalize); from then on reconcile adds no voter
// that announces fewer. ErrCommandUnsupported while a server runs a
// version without the finalize command.
func (c *Cluster) FinalizeUpgrade(ctx context.Context) (*fsm.Result, error) {
	if c.raftPub.Load() == nil {
		return nil, ErrNotServer
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	set, err := c.clusterCommands()
	if err != nil {
		return nil, err
	}
	cmd, err := fsm.Encode(fsm.CmdUpgradeFinalize, fsm.UpgradeFinalizeRequest{Commands: set})
	if err != nil {
		return nil, err
	}
	return c.Apply(ctx, cmd)
}

// canJoin refuses a server that does not know every finalized command
// type: it could not apply the log.
func (c *Cluster) canJoin(m Member) error {
	if c.fsm == nil {
		return nil
	}
	fin := c.fsm.State().Read().FinalizedCommands()
	if fin.Len() == 0 {
		return nil
	}
	set, ver := c.serverCommands(m.Name)
	if missing := fin.Missing(set); len(missing) > 0 {
		return fmt.Errorf("%w: server %s runs version %s that does not know finalized command types %v",
			ErrCommandUnsupported, m.Name, ver, missing)
	}
	return nil
}
