package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"neutrino/scenarios"
	"neutrino/southbound/hostnet"
)

// Faults finer than Partition's cut link, for the partition nemesis.
//
// Isolate separates one server from the other servers only: a blackhole
// route for every other server in its namespace, and one for it in theirs,
// so Raft, gossip and API traffic between them is dropped both ways while
// the chassis (and their OVSDB and OpenFlow sessions) still reach every
// server. That is the split a leader fencing must survive: a deposed
// leader that still talks to the switches. Routes need no tc classifiers
// (this kernel has none) and no firewall tools the lab does not otherwise
// depend on; packets to a blackholed address are dropped silently, as in
// a partition (a TCP dial times out), without touching the chassis' paths.
//
// Degrade adds loss and delay (a netem qdisc) to a node's underlay link,
// where the kernel has sch_netem.

// ErrNoNetem means the kernel has no netem qdisc (sch_netem), so Degrade
// cannot add loss or delay.
var ErrNoNetem = errors.New("lab: the kernel has no netem qdisc (sch_netem): cannot add loss or delay")

// Isolate cuts a server off from every other server (not from the
// chassis): blackhole routes both ways. Heal undoes it.
func Isolate(ctx context.Context, dir, name string) error {
	s, lk, st, n, err := openNode(dir, name)
	if err != nil {
		return err
	}
	defer lk.release()
	if n.Kind != scenarios.KindServer {
		return fmt.Errorf("lab: %s is a %s; isolate cuts a server off from the other servers", name, n.Kind)
	}
	if n.Killed {
		return fmt.Errorf("lab: %s is killed", name)
	}
	// Recorded first: a crash half-way leaves a state Heal undoes.
	if err := s.update(func(st *State) { st.Node(name).Isolated = true }); err != nil {
		return err
	}
	return blackholes(ctx, st, n, true)
}

// blackholes adds (or removes) the routes that separate server n from the
// other servers, in both directions.
func blackholes(ctx context.Context, st *State, n *Node, add bool) error {
	var errs []error
	for _, o := range st.Nodes {
		if o.Kind != scenarios.KindServer || o.Name == n.Name {
			continue
		}
		for _, r := range [][2]string{{n.Namespace, o.IP}, {o.Namespace, n.IP}} {
			if err := blackhole(ctx, r[0], r[1], add); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// blackhole adds or removes a blackhole route to ip in namespace ns;
// removing one that is not there is not an error.
func blackhole(ctx context.Context, ns, ip string, add bool) error {
	if add {
		_, err := hostnet.Exec(ctx, "", "ip", "-n", ns, "route", "replace", "blackhole", ip+"/32")
		return err
	}
	_, err := hostnet.Exec(ctx, "", "ip", "-n", ns, "route", "del", "blackhole", ip+"/32")
	if err != nil && (strings.Contains(err.Error(), "No such process") || strings.Contains(err.Error(), "does not exist")) {
		return nil
	}
	return err
}

// Degrade adds loss (percent) and delay to every packet leaving either end
// of a node's underlay link (netem on both ends), so both directions
// suffer. Heal removes it. It returns ErrNoNetem when the kernel lacks
// sch_netem.
func Degrade(ctx context.Context, dir, name string, lossPercent float64, delay time.Duration) error {
	s, lk, st, n, err := openNode(dir, name)
	if err != nil {
		return err
	}
	defer lk.release()
	if n.Killed {
		return fmt.Errorf("lab: %s is killed", name)
	}
	if lossPercent < 0 || lossPercent > 100 || delay < 0 {
		return fmt.Errorf("lab: degrade %s: loss %v%% delay %s: want 0-100%% and a delay >= 0", name, lossPercent, delay)
	}
	if err := s.update(func(st *State) { st.Node(name).Degraded = true }); err != nil {
		return err
	}
	args := []string{"root", "netem", "loss", fmt.Sprintf("%g%%", lossPercent),
		"delay", fmt.Sprintf("%dus", delay.Microseconds())}
	for _, l := range []link{underlayLink(st, n), {n.Namespace, nodeNIC}} {
		_, err := hostnet.Exec(ctx, "", append([]string{"tc", "-n", l.ns, "qdisc", "replace", "dev", l.name}, args...)...)
		if err != nil && strings.Contains(err.Error(), "qdisc kind is unknown") {
			// Nothing was added: netem is missing everywhere or nowhere.
			if uerr := s.update(func(st *State) { st.Node(name).Degraded = false }); uerr != nil {
				return uerr
			}
			return fmt.Errorf("%w (%v)", ErrNoNetem, err)
		}
		if err != nil {
			return fmt.Errorf("lab: degrade %s: %w", name, err)
		}
	}
	return nil
}

// undegrade removes a node's netem qdiscs (the default qdisc comes back);
// a link without one is not an error.
func undegrade(ctx context.Context, st *State, n *Node) error {
	var errs []error
	for _, l := range []link{underlayLink(st, n), {n.Namespace, nodeNIC}} {
		_, err := hostnet.Exec(ctx, "", "tc", "-n", l.ns, "qdisc", "del", "dev", l.name, "root")
		if err != nil && !strings.Contains(err.Error(), "No such file") && !strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
