package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"neutrino/scenarios"
	"neutrino/southbound/hostnet"
	"neutrino/southbound/ovsproc"
)

// AliveTimeout bounds how long Revive and Heal wait for every live server
// to see the node alive in gossip again.
const AliveTimeout = 60 * time.Second

// link is one end of a veth: an interface in a namespace.
type link struct{ ns, name string }

// underlayLink is the underlay-namespace end of a node's underlay veth.
func underlayLink(st *State, n *Node) link { return link{st.Underlay.Namespace, n.Name} }

// nodeLinks are both ends of every veth of a node: underlay and physnets.
func nodeLinks(st *State, n *Node) []link {
	out := []link{underlayLink(st, n), {n.Namespace, nodeNIC}}
	for _, l := range n.Physnets {
		out = append(out, link{st.Underlay.Namespace, l.UnderlayLink}, link{n.Namespace, l.NIC})
	}
	return out
}

// setLinks sets links up or down.
func setLinks(ctx context.Context, links []link, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	for _, l := range links {
		if _, err := hostnet.Exec(ctx, "", "ip", "-n", l.ns, "link", "set", l.name, state); err != nil {
			return err
		}
	}
	return nil
}

// nodeProcesses are the recorded processes of a node that still run: its
// agent and, on a chassis, its ovsdb-server and ovs-vswitchd.
func nodeProcesses(st *State, n *Node) []Process {
	var out []Process
	for _, p := range st.Processes {
		if p.PID == 0 || !p.alive() {
			continue
		}
		if p.PID == n.AgentPID || p.PID == n.OVSDBPID || p.PID == n.VswitchdPID {
			out = append(out, p)
		}
	}
	return out
}

// Kill kills a node as a machine dies: SIGKILL to its agent, ovs-vswitchd
// and ovsdb-server at once (PIDs from the state), then every link of it
// down on both ends (underlay and physnet veths), so nothing reaches it
// and it reaches nothing. Node.Killed records it; Revive undoes it.
func Kill(ctx context.Context, dir, name string) error {
	s, lk, st, n, err := openNode(dir, name)
	if err != nil {
		return err
	}
	defer lk.release()
	if n.Killed {
		return fmt.Errorf("lab: %s is already killed (`neutrino lab revive %s` boots it)", name, name)
	}
	if err := s.update(func(st *State) { st.Node(name).Killed = true }); err != nil {
		return err
	}
	if err := killDead(ctx, nodeProcesses(st, n)); err != nil {
		return fmt.Errorf("lab: %s: %w", name, err)
	}
	return setLinks(ctx, nodeLinks(st, n), false)
}

// killDead SIGKILLs procs and waits (5 s at most) until none is alive.
func killDead(ctx context.Context, procs []Process) error {
	for _, p := range procs {
		if err := p.kill(); err != nil {
			return err
		}
	}
	gone := func() bool {
		for _, p := range procs {
			if p.alive() {
				return false
			}
		}
		return true
	}
	if !waitUntil(ctx, 5*time.Second, gone) {
		return fmt.Errorf("processes still alive after SIGKILL")
	}
	return nil
}

// Revive boots a killed node again: links up, its OVS restarted on the
// database it had (bridges and ports come back, flows do not: the
// controller resyncs), the tunnel endpoint address and ARP entries the lab
// set up, and its agent (binary, default this executable). It returns once
// every live server sees the node alive in gossip (AliveTimeout).
func Revive(ctx context.Context, dir, name, binary string) error {
	s, lk, st, n, err := openNode(dir, name)
	if err != nil {
		return err
	}
	defer lk.release()
	if !n.Killed {
		return fmt.Errorf("lab: %s is not killed (see `neutrino lab kill`)", name)
	}
	if binary == "" {
		if binary, err = os.Executable(); err != nil {
			return err
		}
	}
	if err := setLinks(ctx, nodeLinks(st, n), true); err != nil {
		return err
	}
	if n.OVSDir != "" {
		if err := restartOVS(ctx, s, st, n); err != nil {
			return fmt.Errorf("lab: revive %s: %w", name, err)
		}
	}
	if err := undoFaults(ctx, s, st, n); err != nil {
		return err
	}
	if err := startAgent(s, binary, name); err != nil {
		return err
	}
	return waitAlive(ctx, s, name)
}

// RestartOVS kills a chassis' ovsdb-server and ovs-vswitchd (SIGKILL, its
// agent runs on) and starts them again on the database they had, as
// Revive does; the flows are gone until the controller puts them back.
func RestartOVS(ctx context.Context, dir, name string) error {
	s, lk, st, n, err := openNode(dir, name)
	if err != nil {
		return err
	}
	defer lk.release()
	if n.OVSDir == "" {
		return fmt.Errorf("lab: %s runs no Open vSwitch", name)
	}
	if n.Killed {
		return fmt.Errorf("lab: %s is killed (`neutrino lab revive %s` boots it)", name, name)
	}
	var procs []Process
	for _, p := range nodeProcesses(st, n) {
		if p.PID == n.OVSDBPID || p.PID == n.VswitchdPID {
			procs = append(procs, p)
		}
	}
	if err := killDead(ctx, procs); err != nil {
		return fmt.Errorf("lab: OVS of %s: %w", name, err)
	}
	if err := restartOVS(ctx, s, st, n); err != nil {
		return fmt.Errorf("lab: restart OVS of %s: %w", name, err)
	}
	return nil
}

// restartOVS starts a killed chassis' OVS on its database and redoes what
// does not persist in it.
func restartOVS(ctx context.Context, s *store, st *State, n *Node) error {
	remotes, ssl := dbRemotes(n)
	inst, err := ovsproc.Start(ctx, ovsproc.Options{
		Name: n.Name, Namespace: n.Namespace, Dir: n.OVSDir, KeepDB: true,
		DBRemotes: remotes, DBSSL: ssl,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	dbPID, vsPID := inst.DBPID(), inst.VswitchdPID()
	if err := s.update(func(st *State) {
		cur := st.Node(n.Name)
		cur.OVSDBPID, cur.VswitchdPID = dbPID, vsPID
		st.Processes = append(st.Processes,
			processOf(dbPID, "ovsdb-server "+n.Name),
			processOf(vsPID, "ovs-vswitchd "+n.Name))
	}); err != nil {
		return err
	}
	if err := appctlTarget(inst); err != nil {
		return err
	}
	var peers []peer
	for _, o := range st.Nodes {
		if o.MAC != "" && o.Name != n.Name {
			peers = append(peers, peer{ip: o.IP, mac: o.MAC})
		}
	}
	return tunnelEndpoint(ctx, inst, n, n.IP+"/"+strconv.Itoa(prefixLen()), peers)
}

// Partition cuts a node off the underlay: its underlay veth goes down on
// the underlay side. Its processes keep running and its physnet links stay
// up, so it goes on believing what it believed: a split brain. Heal undoes it.
func Partition(ctx context.Context, dir, name string) error {
	s, lk, st, n, err := openNode(dir, name)
	if err != nil {
		return err
	}
	defer lk.release()
	if n.Killed {
		return fmt.Errorf("lab: %s is killed", name)
	}
	if err := s.update(func(st *State) { st.Node(name).Partitioned = true }); err != nil {
		return err
	}
	return setLinks(ctx, []link{underlayLink(st, n)}, false)
}

// Heal undoes every network fault of a node (Partition, Isolate, Degrade):
// its underlay link back up, its blackhole routes and netem qdiscs gone.
// It returns once every live server sees it alive in gossip
// (AliveTimeout).
func Heal(ctx context.Context, dir, name string) error {
	s, lk, st, n, err := openNode(dir, name)
	if err != nil {
		return err
	}
	defer lk.release()
	if n.Killed {
		return fmt.Errorf("lab: %s is killed (`neutrino lab revive %s` boots it)", name, name)
	}
	if err := setLinks(ctx, []link{underlayLink(st, n)}, true); err != nil {
		return err
	}
	if err := undoFaults(ctx, s, st, n); err != nil {
		return err
	}
	return waitAlive(ctx, s, name)
}

// undoFaults removes a node's blackhole routes (Isolate) and loss or delay
// (Degrade) and records it free of every fault, Kill's included (the
// callers have brought its links, and for Revive its processes, back).
func undoFaults(ctx context.Context, s *store, st *State, n *Node) error {
	if n.Isolated {
		if err := blackholes(ctx, st, n, false); err != nil {
			return err
		}
	}
	if n.Degraded {
		if err := undegrade(ctx, st, n); err != nil {
			return err
		}
	}
	return s.update(func(st *State) {
		n := st.Node(n.Name)
		n.Killed, n.Partitioned, n.Isolated, n.Degraded = false, false, false, false
	})
}

// waitAlive waits until every live server (agent running, not killed,
// not partitioned) lists node alive in gossip.
func waitAlive(ctx context.Context, s *store, name string) error {
	return poll(ctx, AliveTimeout, func() (bool, string, error) {
		st := s.snapshot()
		if n := st.Node(name); n != nil && !agentAlive(st, n) {
			return false, "", fmt.Errorf("lab: agent of %s exited: %s", name, tail(n.Log, 8))
		}
		asked := 0
		for _, sv := range st.Nodes {
			if sv.Kind != scenarios.KindServer || sv.API == "" || sv.Killed ||
				((sv.Partitioned || sv.Isolated) && sv.Name != name) || !agentAlive(st, sv) {
				continue
			}
			asked++
			c, err := apiClient(st, sv.API, 2*time.Second)
			if err != nil {
				return false, "", err
			}
			members, err := c.Members(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: members: %v", sv.Name, err), nil
			}
			alive := false
			for _, m := range members {
				alive = alive || (m.Name == name && m.Status == "alive")
			}
			if !alive {
				return false, fmt.Sprintf("%s does not see %s alive in gossip", sv.Name, name), nil
			}
		}
		if asked == 0 {
			return false, "no live server to ask", nil
		}
		return true, "", nil
	})
}

// openNode opens the lab in dir (locked: release lk) and finds node name.
func openNode(dir, name string) (s *store, lk *lock, st *State, n *Node, err error) {
	if s, lk, err = openLab(dir); err != nil {
		return nil, nil, nil, nil, err
	}
	st = s.snapshot()
	if n = st.Node(name); n == nil {
		lk.release()
		return nil, nil, nil, nil, fmt.Errorf("lab: no node %s (see `neutrino lab status`)", name)
	}
	return s, lk, st, n, nil
}
