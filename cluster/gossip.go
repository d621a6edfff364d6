package cluster

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	metrics "github.com/hashicorp/go-metrics/compat"
	"github.com/hashicorp/memberlist"
)

// MemberStatus is a node's liveness as gossip sees it. memberlist v0.6.0
// does not expose "suspect" through its API, so a suspect node shows alive.
type MemberStatus string

// Member statuses.
const (
	StatusAlive MemberStatus = "alive"
	StatusDead  MemberStatus = "dead"
	StatusLeft  MemberStatus = "left"
)

// Member is one node of the gossip pool.
type Member struct {
	Name   string       // node name
	Addr   string       // gossip address, host:port
	Status MemberStatus // liveness as last gossiped
	Meta   NodeMeta     // the node's announced metadata
}

// peersFile lists the gossip addresses of the servers this node has seen, so
// that a restarted node can rejoin with no Join flags.
const peersFile = "gossip-peers.json"

func (c *Cluster) startGossip() error {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.cfg.NodeName
	mc.BindAddr = c.addrs.bindHost
	mc.BindPort = c.addrs.gossipPort
	mc.AdvertiseAddr = c.addrs.advertiseHost
	mc.AdvertisePort = c.addrs.gossipPort
	mc.ProbeInterval = c.cfg.ProbeInterval
	mc.ProbeTimeout = c.cfg.ProbeTimeout
	mc.SuspicionMult = c.cfg.SuspicionMult
	mc.GossipInterval = c.cfg.GossipInterval
	mc.EnableCompression = !c.cfg.DisableCompression
	if c.cfg.GossipPacketSize > 0 {
		mc.UDPBufferSize = c.cfg.GossipPacketSize
	}
	if c.cfg.RetransmitMult > 0 {
		mc.RetransmitMult = c.cfg.RetransmitMult
	}
	mc.Delegate = (*gossipDelegate)(c)
	mc.Events = (*gossipEvents)(c)
	mc.Logger = newStdLogger(c.log.With("subsystem", "memberlist"))
	// memberlist's own go-metrics series (the agent may export them)
	// name their node: several agents can share a process in tests.
	mc.MetricLabels = []metrics.Label{{Name: "node", Value: c.cfg.NodeName}}
	kr, err := c.loadKeyring()
	if err != nil {
		return err
	}
	mc.Keyring = kr // nil: plaintext
	tr, err := newGossipTransport(mc.BindAddr, mc.BindPort, c.log.With("subsystem", "memberlist"), mc.MetricLabels)
	if err != nil {
		return fmt.Errorf("cluster: start gossip: %w", err)
	}
	mc.Transport = tr
	c.gossipTr = tr
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		return fmt.Errorf("cluster: start gossip on %s:%d: %w", mc.BindAddr, mc.BindPort, err)
	}
	c.gossip = ml
	return nil
}

// setMeta encodes and installs new local metadata, then gossips it.
func (c *Cluster) setMeta(m NodeMeta) error {
	if c.cfg.TLS != nil {
		m.CertFP = c.ownFP
	}
	buf, err := EncodeMeta(m)
	if err != nil {
		return err
	}
	if c.cfg.TLS != nil {
		// Signed after the size check of the unsigned form, and checked
		// again: the signature adds about 100 bytes.
		if buf, err = c.signMeta(buf); err != nil {
			return err
		}
		if len(buf) > MaxMetaSize {
			return fmt.Errorf("%w: %d bytes signed, limit %d", ErrMetaTooLarge, len(buf), MaxMetaSize)
		}
	}
	c.mu.Lock()
	c.meta, c.metaBuf = m, buf
	c.mu.Unlock()
	if c.gossip == nil {
		return nil
	}
	// UpdateNode waits for the broadcast to go out; a timeout only means it
	// goes out with the next gossip round.
	if err := c.gossip.UpdateNode(time.Second); err != nil {
		c.log.Debug("metadata update not yet acknowledged", "err", err)
	}
	return nil
}

// UpdateMeta changes this node's chassis metadata and gossips it; fields the
// cluster owns (Role, RaftAddr, HTTPAddr, Expect, Bootstrapped, Leaving,
// LeaderTerm, Version, Commands)
// are kept.
func (c *Cluster) UpdateMeta(fn func(*NodeMeta)) error {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	c.mu.Lock()
	cur := c.meta
	c.mu.Unlock()
	next := cur
	next.Roles = slices.Clone(cur.Roles)
	next.Encaps = slices.Clone(cur.Encaps)
	next.BridgeMappings = maps.Clone(cur.BridgeMappings)
	fn(&next)
	next.Role, next.RaftAddr, next.HTTPAddr = cur.Role, cur.RaftAddr, cur.HTTPAddr
	next.Expect, next.Bootstrapped, next.Leaving, next.LeaderTerm = cur.Expect, cur.Bootstrapped, cur.Leaving, cur.LeaderTerm
	next.Version, next.Commands = cur.Version, cur.Commands
	return c.setMeta(next)
}

// changeOwnMeta changes fields the cluster owns.
func (c *Cluster) changeOwnMeta(fn func(*NodeMeta)) error {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	c.mu.Lock()
	next := c.meta
	c.mu.Unlock()
	fn(&next)
	return c.setMeta(next)
}

// Members returns every node gossip has seen, ordered by name.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (c *Cluster) member(name string) (Member, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[name]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

// Leave announces a deliberate departure to gossip, so that others record
// this node as "left" rather than "dead". Shutdown does not leave: a stopped
// server stays a Raft voter and is expected back, as in Consul.
func (c *Cluster) Leave(timeout time.Duration) error {
	if err := c.changeOwnMeta(func(m *NodeMeta) { m.Leaving = true }); err != nil {
		return err
	}
	if err := c.gossip.Leave(timeout); err != nil {
		return fmt.Errorf("cluster: leave gossip: %w", err)
	}
	return nil
}

// observe records a gossip event and wakes the loops that act on members.
func (c *Cluster) observe(n *memberlist.Node, status MemberStatus) {
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		c.log.Warn("ignoring member with bad metadata", "member", n.Name, "err", err)
		return
	}
	if !c.admit(n, meta, status) {
		return
	}
	if status == StatusDead && meta.Leaving {
		status = StatusLeft
	}
	c.mu.Lock()
	prev, known := c.members[n.Name]
	c.members[n.Name] = &Member{Name: n.Name, Addr: n.Address(), Status: status, Meta: meta}
	if n.Name != c.cfg.NodeName {
		if known && prev.Status == StatusDead {
			c.deadMembers--
		}
		if status == StatusDead {
			c.deadMembers++
		}
	}
	c.mu.Unlock()
	if status == StatusDead {
		c.deadEvents.Add(1)
	}
	if !known || prev.Status != status {
		c.log.Info("member "+string(status), "member", n.Name, "addr", n.Address(), "role", meta.Role)
	}
	kick(c.memberCh)
	kick(c.reconcileCh)
}

// kick wakes a loop without blocking; one pending wake-up is enough because
// the loops re-read the whole member list.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// gossipDelegate serves our metadata to memberlist.
type gossipDelegate Cluster

func (d *gossipDelegate) NodeMeta(limit int) []byte {
	c := (*Cluster)(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.metaBuf) > limit {
		// Unreachable: setMeta refuses oversize metadata.
		return nil
	}
	return c.metaBuf
}

func (d *gossipDelegate) NotifyMsg(b []byte)              { (*Cluster)(d).handleUserMsg(b) }
func (d *gossipDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (d *gossipDelegate) LocalState(bool) []byte          { return nil }
func (d *gossipDelegate) MergeRemoteState([]byte, bool)   {}

// gossipEvents records membership changes.
type gossipEvents Cluster

func (e *gossipEvents) NotifyJoin(n *memberlist.Node)   { (*Cluster)(e).observe(n, StatusAlive) }
func (e *gossipEvents) NotifyLeave(n *memberlist.Node)  { (*Cluster)(e).observe(n, StatusDead) }
func (e *gossipEvents) NotifyUpdate(n *memberlist.Node) { (*Cluster)(e).observe(n, StatusAlive) }

// joinLoop joins the gossip pool and retries until some other node answers:
// after a full restart the peers come back one by one.
func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if c.gossip.NumMembers() > 1 {
			return
		}
		targets := c.joinTargets()
		if len(targets) == 0 {
			// First node of a new pool: others will join us.
			return
		}
		n, err := c.gossip.Join(targets)
		if n > 0 {
			c.log.Info("joined gossip pool", "contacted", n, "targets", targets)
			return
		}
		if attempt%10 == 0 {
			c.log.Warn("gossip join failed, retrying", "targets", targets, "err", err)
		}
		select {
		case <-c.shutdownCh:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// reconnectInterval is how often a node tries to reach the members gossip
// declared dead. memberlist alone never heals a partition: once both sides
// have declared each other dead and the dead messages have been
// retransmitted (into the void), neither side probes or gossips to the
// other again. Serf heals the same way (its reconnect interval).
const reconnectInterval = 2 * time.Second

// reconnectLoop pushes/pulls state with dead members now and then; once
// their link is back, the exchange makes each side refute its own death.
func (c *Cluster) reconnectLoop() {
	defer c.wg.Done()
	var busy atomic.Bool
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	t := time.NewTicker(reconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-c.shutdownCh:
			return
		case <-t.C:
		}
		c.retryCerts()
		var dead []string
		alive := 1 // this node
		c.mu.Lock()
		if c.deadMembers == 0 {
			// The common case, not worth a scan of every member by every
			// member every round (a tenth of a core at 1,000 members in
			// the simulator's process).
			c.mu.Unlock()
			continue
		}
		for _, m := range c.members {
			switch {
			case m.Name == c.cfg.NodeName:
			case m.Status == StatusDead:
				dead = append(dead, m.Addr)
			case m.Status == StatusAlive:
				alive++
			}
		}
		c.mu.Unlock()
		dead = reconnectTargets(dead, alive, rng)
		if len(dead) == 0 || !busy.CompareAndSwap(false, true) {
			continue
		}
		// Not waited for on shutdown: a dial to a dead address can take
		// memberlist's TCPTimeout, and a failed Join changes nothing.
		go func() {
			defer busy.Store(false)
			if n, err := c.gossip.Join(dead); n > 0 {
				c.log.Info("reached members gossip had declared dead", "contacted", n, "targets", dead)
			} else {
				c.log.Debug("dead members still unreachable", "targets", dead, "err", err)
			}
		}()
	}
}

// maxReconnects bounds the dead members one node contacts in a round.
const maxReconnects = 4

// reconnectTargets picks the dead members to push/pull with this round.
// As Serf does, a node contacts dead/alive of them in expectation (alive
// counts itself), so the cluster as a whole contacts each dead member
// about once a round whatever its size; a node cut off from everyone
// (alive 1) contacts up to maxReconnects, any of which heals it if its
// link is back. Contacting every dead member every round, as before, made
// each false death cost every member a full state exchange every 2 s: at
// 1,000 members in the simulator that fed the storm it came from
// (docs/architecture.md, "Simulator"). dead is reordered.
func reconnectTargets(dead []string, alive int, rng *rand.Rand) []string {
	if len(dead) == 0 {
		return nil
	}
	alive = max(alive, 1)
	n := len(dead) / alive
	if rng.IntN(alive) < len(dead)%alive {
		n++
	}
	n = min(n, maxReconnects)
	rng.Shuffle(len(dead), func(i, j int) { dead[i], dead[j] = dead[j], dead[i] })
	return dead[:n]
}

// joinTargets are the configured Join addresses plus, for a node that has
// been in a cluster before, the peers it persisted and the gossip addresses
// of its Raft peers (Raft port - 1).
func (c *Cluster) joinTargets() []string {
	self := net.JoinHostPort(c.addrs.advertiseHost, strconv.Itoa(c.addrs.gossipPort))
	var out []string
	add := func(a string) {
		if a != "" && a != self && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, a := range c.cfg.Join {
		add(a)
	}
	for _, a := range c.readPeers() {
		add(a)
	}
	for _, a := range c.raftPeerGossipAddrs() {
		add(a)
	}
	return out
}

func (c *Cluster) readPeers() []string {
	if c.cfg.DataDir == "" {
		return nil
	}
	buf, err := os.ReadFile(filepath.Join(c.cfg.DataDir, peersFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var peers []string
	if err == nil {
		err = json.Unmarshal(buf, &peers)
	}
	if err != nil {
		c.log.Warn("ignoring unreadable peers file", "err", err)
		return nil
	}
	return peers
}

// persistPeers writes the gossip addresses of every server seen (except
// those that left), replacing the file atomically, when they changed.
func (c *Cluster) persistPeers() {
	if c.cfg.DataDir == "" {
		return
	}
	var peers []string
	for _, m := range c.Members() {
		if m.Meta.Role == RoleServer && m.Status != StatusLeft && m.Name != c.cfg.NodeName {
			peers = append(peers, m.Addr)
		}
	}
	if len(peers) == 0 || slices.Equal(peers, c.savedPeers) {
		return
	}
	buf, err := json.Marshal(peers)
	if err == nil {
		err = writeFileAtomic(filepath.Join(c.cfg.DataDir, peersFile), buf)
	}
	if err != nil {
		c.log.Warn("cannot persist gossip peers", "err", err)
		return
	}
	c.savedPeers = peers
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ErrUnknownMember means gossip has no address for the named node.
var ErrUnknownMember = errors.New("cluster: unknown member")

// Ping sends one direct gossip ping (UDP) to a member and waits up to the
// gossip ProbeTimeout for its ack, returning the round-trip time. Unlike
// this node's gossip view, it is not slowed down by memberlist's awareness
// multiplier when this node is unhealthy (e.g. cut off), which is what the
// gateway self-fence needs.
func (c *Cluster) Ping(name string) (time.Duration, error) {
	if c.gossip == nil {
		return 0, fmt.Errorf("cluster: ping %s: gossip not started", name)
	}
	// Our copy, not memberlist's Members(): those are pointers into its
	// state that it updates under its own lock (a data race), and dead
	// members leave its list after a while while ours keeps them.
	c.mu.Lock()
	m, ok := c.members[name]
	c.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrUnknownMember, name)
	}
	addr, err := net.ResolveUDPAddr("udp", m.Addr)
	if err != nil {
		return 0, fmt.Errorf("cluster: ping %s: %w", name, err)
	}
	return c.gossip.Ping(name, addr)
}

// NodeName returns this node's name.
func (c *Cluster) NodeName() string { return c.cfg.NodeName }
