package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"neutrino/fsm"
)

// TestLeaderGatesCommandsByVersion: with one server announcing only the
// baseline command set (a release before issue 17), the leader refuses a
// newer command, directly or in a request envelope, naming that server;
// baseline commands go on. Once the server announces the new set (it was
// "upgraded"), the same command commits on every server, and a server
// that knows fewer types may no longer join.
func TestLeaderGatesCommandsByVersion(t *testing.T) {
	old := func(c *Config) {
		if c.NodeName == "s3" {
			c.KnownCommands = fsm.BaselineCommands
		}
	}
	tc := newTestCluster(t, 3, old)
	leader := tc.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := leader.c.FinalizeUpgrade(ctx)
	if !errors.Is(err, ErrCommandUnsupported) || !strings.Contains(err.Error(), "server s3 runs version") ||
		!strings.Contains(err.Error(), "UpgradeFinalize") {
		t.Fatalf("finalize with an old server: %v", err)
	}
	inner, err := fsm.Encode(fsm.CmdUpgradeFinalize, fsm.UpgradeFinalizeRequest{Commands: fsm.KnownCommands()})
	if err != nil {
		t.Fatal(err)
	}
	env, err := fsm.Encode(fsm.CmdRequest, fsm.RequestEnvelope{ID: "p/k", Time: 1, Command: inner})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.c.Apply(ctx, env); !errors.Is(err, ErrCommandUnsupported) {
		t.Fatalf("enveloped newer command: %v", err)
	}
	// An ignorable type needs nobody's support (every server skips or
	// applies it); the baseline goes on.
	ign, err := fsm.Encode(fsm.IgnorableMin, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.c.checkSupported(ign); err != nil {
		t.Fatalf("ignorable type refused: %v", err)
	}
	ids := []string{tc.create(leader.c)}

	// Upgrade s3: restart it announcing this build's set.
	s3 := tc.nodes[2]
	s3.stop(t)
	s3.tweak = nil
	s3.start(t, false)
	var res *fsm.Result
	eventually(t, 30*time.Second, func() error {
		l := tc.leader()
		res, err = l.c.FinalizeUpgrade(ctx)
		if err != nil {
			return err
		}
		if res.Err != nil {
			return res.Err
		}
		return nil
	})
	ids = append(ids, tc.create(tc.leader().c))
	tc.converged(tc.leader().fsm.State().Read().Revision(), ids)
	for _, n := range tc.running() {
		v := n.fsm.State().Read()
		if v.UpgradeFinalizedAt() != res.Revision || v.FinalizedCommands() != fsm.KnownCommands() {
			t.Fatalf("%s: finalized at %d (want %d)", n.name, v.UpgradeFinalizedAt(), res.Revision)
		}
	}
	l := tc.leader()
	if err := l.c.canJoin(Member{Name: "s3"}); err != nil {
		t.Fatalf("upgraded server may not join: %v", err)
	}
	if err := l.c.canJoin(Member{Name: "s9"}); !errors.Is(err, ErrCommandUnsupported) {
		t.Fatalf("a server announcing nothing may join after the finalize: %v", err)
	}
}

// BenchmarkCheckSupported: the leader's per-write version check, for a
// baseline command in a request envelope (every API write) and for a
// newer command that needs the Raft configuration and gossip.
func BenchmarkCheckSupported(b *testing.B) {
	tc := newTestCluster(b, 3, nil)
	leader := tc.leader()
	_, cmd := tc.networkCmd()
	env, err := fsm.Encode(fsm.CmdRequest, fsm.RequestEnvelope{ID: "p/k", Time: 1, Command: cmd})
	if err != nil {
		b.Fatal(err)
	}
	newer, err := fsm.Encode(fsm.CmdUpgradeFinalize, fsm.UpgradeFinalizeRequest{Commands: fsm.KnownCommands()})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		cmd  []byte
	}{{"envelope-baseline", env}, {"newer", newer}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := leader.c.checkSupported(bc.cmd); err != nil {
					b.Fatal(fmt.Errorf("%s: %w", bc.name, err))
				}
			}
		})
	}
}
