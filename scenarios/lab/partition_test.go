package lab_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"neutrino/scenarios/harness"
	"neutrino/scenarios/lab"
)

// Partition helpers for the lab's tests (package harness) and the lab's
// own degraded-link test. The partition scenarios (a cut-off leader, the
// nemesis) run on every driver: scenarios/partition_test.go.

// partitionTopo is three servers and two chassis (harness.PartitionTopology).
var partitionTopo = harness.PartitionTopology

// clusterView is GET /v1/cluster of one server.
type clusterView = harness.ClusterView

// cluster asks one server for its Raft view.
func (p *pipeLab) cluster(server string) (clusterView, error) { return p.env.Cluster(server) }

// servers are the lab's server names, in order.
func (p *pipeLab) servers() []string { return p.env.Servers() }

// leaderOf waits until every server of among reports the same leader, one
// of among, and returns it with that server's term.
func (p *pipeLab) leaderOf(among []string, timeout time.Duration) (string, uint64) {
	p.tb.Helper()
	return p.e().LeaderOf(among, timeout)
}

func without(xs []string, x string) []string { return harness.Without(xs, x) }

// controllerRole is a chassis' view of one server's OpenFlow controller
// target: the role OVS gave that connection and whether it is up.
type controllerRole = harness.ControllerRole

// controllerRoles reads the Controller rows of a chassis' br-int, keyed by
// server IP (targets are tcp:IP:PORT).
func (p *pipeLab) controllerRoles(chassis string) (map[string]controllerRole, error) {
	return p.env.ControllerRoles(chassis)
}

// serverIP is a server's underlay address (its OpenFlow target's host).
func (p *pipeLab) serverIP(server string) string { return p.d.State().Node(server).IP }

// waitRoles waits until every chassis has the leader's connection as
// master and, if the old leader's connection is up, has it as slave.
func (p *pipeLab) waitRoles(leader, old string, oldConnected bool, timeout time.Duration) {
	p.tb.Helper()
	p.e().WaitRoles(leader, old, oldConnected, timeout)
}

// waitRound waits until every Neutrino flow on every chassis carries the
// round of term and there is at least one.
func (p *pipeLab) waitRound(term uint64, timeout time.Duration) {
	p.tb.Helper()
	p.e().WaitRound(term, timeout)
}

// TestDegradedFollower: writes through a follower whose underlay link
// loses packets (the lab's netem, or its iptables fallback where the
// kernel has no netem) still succeed; so they do with delay, where the
// kernel has netem.
func TestDegradedFollower(t *testing.T) {
	upPipelineLab(t, partitionTopo).degraded(t)
}

// degraded adds loss to a follower's underlay link (netem, or iptables'
// statistic match where the kernel has no netem) and checks that writes
// through it still succeed; then delay, where the kernel has netem.
func (pl *pipeLab) degraded(t *testing.T) {
	all := pl.servers()
	leader, _ := pl.leaderOf(all, 30*time.Second)
	follower := without(all, leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { pl.heal(follower) })
	writes := func(what string) {
		ep := pl.env.API(follower)
		for i := range 10 {
			pl.mustCall(http.StatusCreated, "POST", ep+"/v2.0/networks", nil,
				map[string]any{"network": map[string]any{"name": fmt.Sprintf("%s-%d", what, i)}})
		}
	}
	if err := pl.d.Degrade(ctx, follower, 10, 0); err != nil {
		t.Fatal(err)
	}
	writes("lossy")
	drops, err := pl.d.LossDrops(ctx, follower)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10%% loss on %s's underlay: %d packets dropped by the iptables fallback (0 with netem)", follower, drops)
	err = pl.d.Degrade(ctx, follower, 10, 20*time.Millisecond)
	if errors.Is(err, lab.ErrNoNetem) {
		// Without netem the loss above came from the fallback: it dropped.
		if drops == 0 {
			t.Fatalf("no netem, and the iptables loss fallback dropped nothing on %s", follower)
		}
		t.Skipf("delay needs the netem qdisc (kernel module sch_netem, CONFIG_NET_SCH_NETEM), which this kernel lacks (loss was tested through iptables): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	writes("slow")
}
