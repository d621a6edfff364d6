package lab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
// where the kernel has sch_netem. Where it has not (this machine), loss
// alone is made with iptables' statistic match in the node's namespace,
// both directions; delay then cannot be had.

// ErrNoNetem means the kernel has no netem qdisc (sch_netem), so Degrade
// cannot add delay.
var ErrNoNetem = errors.New("lab: the kernel has no netem qdisc (sch_netem): cannot add delay")

// lossChain is the iptables chain of the loss fallback.
const lossChain = "neutrino-loss"

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
			// Degraded stays set (Heal undoes what is not there
			// without error): a loss fallback of an earlier call may be
			// in place.
			if delay > 0 {
				return fmt.Errorf("%w (%v)", ErrNoNetem, err)
			}
			return lossByIptables(ctx, n, lossPercent)
		}
		if err != nil {
			return fmt.Errorf("lab: degrade %s: %w", name, err)
		}
	}
	return nil
}

// lossByIptables drops lossPercent of the packets in and out of the node's
// underlay NIC, with iptables' statistic match in a chain of its own.
func lossByIptables(ctx context.Context, n *Node, lossPercent float64) error {
	ipt := func(args ...string) error {
		_, err := hostnet.Exec(ctx, "", append([]string{"ip", "netns", "exec", n.Namespace, "iptables", "-w"}, args...)...)
		return err
	}
	// A chain left by an earlier Degrade is reused (flushed).
	if ipt("-N", lossChain) != nil {
		if err := ipt("-F", lossChain); err != nil {
			return fmt.Errorf("lab: degrade %s: %w", n.Name, err)
		}
	}
	p := fmt.Sprintf("%g", lossPercent/100)
	steps := [][]string{
		{"-A", lossChain, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP"},
		{"-I", "INPUT", "-i", nodeNIC, "-j", lossChain},
		{"-I", "OUTPUT", "-o", nodeNIC, "-j", lossChain},
	}
	for _, a := range steps {
		if err := ipt(a...); err != nil {
			return fmt.Errorf("lab: degrade %s (iptables loss, package iptables): %w", n.Name, err)
		}
	}
	return nil
}

// LossDrops returns how many packets the iptables loss fallback (Degrade
// without netem) has dropped on a node so far; 0 when it is not in place.
func LossDrops(ctx context.Context, dir, name string) (uint64, error) {
	_, lk, _, n, err := openNode(dir, name)
	if err != nil {
		return 0, err
	}
	defer lk.release()
	out, err := hostnet.Exec(ctx, "", "ip", "netns", "exec", n.Namespace, "iptables", "-w", "-L", lossChain, "-v", "-x", "-n")
	if err != nil {
		return 0, nil
	}
	// Chain header, column header, then "pkts bytes target ..." per rule.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var total uint64
	for _, l := range lines[min(2, len(lines)):] {
		if f := strings.Fields(l); len(f) > 2 && f[2] == "DROP" {
			v, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("lab: loss counters of %s: %q: %w", name, l, err)
			}
			total += v
		}
	}
	return total, nil
}

// undoLossByIptables removes the loss fallback's chain and jumps; what is
// not there is not an error.
func undoLossByIptables(ctx context.Context, n *Node) {
	for _, a := range [][]string{
		{"-D", "INPUT", "-i", nodeNIC, "-j", lossChain},
		{"-D", "OUTPUT", "-o", nodeNIC, "-j", lossChain},
		{"-F", lossChain}, {"-X", lossChain},
	} {
		_, _ = hostnet.Exec(ctx, "", append([]string{"ip", "netns", "exec", n.Namespace, "iptables", "-w"}, a...)...)
	}
}

// undegrade removes a node's netem qdiscs (the default qdisc comes back);
// a link without one is not an error.
func undegrade(ctx context.Context, st *State, n *Node) error {
	undoLossByIptables(ctx, n)
	var errs []error
	for _, l := range []link{underlayLink(st, n), {n.Namespace, nodeNIC}} {
		_, err := hostnet.Exec(ctx, "", "tc", "-n", l.ns, "qdisc", "del", "dev", l.name, "root")
		if err != nil && !strings.Contains(err.Error(), "No such file") && !strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
