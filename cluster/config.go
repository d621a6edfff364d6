package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"neutrino/cluster/tlsutil"
	"neutrino/fsm"
)

// Defaults for Raft follow Consul's (raft_snapshot_threshold,
// raft_snapshot_interval, raft_trailing_logs) and hashicorp/raft's timeouts.
const (
	DefaultSnapshotThreshold = 16384
	DefaultSnapshotInterval  = 30 * time.Second
	DefaultTrailingLogs      = 10240
	DefaultHeartbeatTimeout  = time.Second
	DefaultElectionTimeout   = time.Second
	DefaultReconcileInterval = 5 * time.Second
)

// Gossip defaults: memberlist's LAN profile declares a crashed node dead
// after about 6 s. A gateway's death must cost at most about a second of
// traffic, so detection has to be well under that: with these timings a
// 7-node pool on loopback declares a crashed node dead in 376-574 ms (p50
// 425 ms; BenchmarkGossipDetect), against 726-981 ms (p50 779 ms) for the
// 200/100 ms figures in lab-notes.md, and an idle pool sees no false deaths
// (TestGossipQuietNoFalseDeaths). SuspicionMult 2 keeps the suspicion
// timeout at its minimum (2 probe intervals): memberlist waits for
// SuspicionMult-2 independent confirmations, none here. Lifeguard (the
// awareness multiplier, up to 8x) stretches the probe interval of a node
// whose own probes fail, so an isolated node itself needs 0.8-2.3 s to
// see the majority dead (BenchmarkGossipIsolated): the gateway self-fence
// uses direct pings, not its own gossip view.
const (
	DefaultProbeInterval  = 100 * time.Millisecond
	DefaultProbeTimeout   = 50 * time.Millisecond
	DefaultSuspicionMult  = 2
	DefaultGossipInterval = 50 * time.Millisecond
)

// Config configures one Neutrino agent's membership in the cluster.
type Config struct {
	// NodeName names the node in gossip and is its Raft ServerID; it must be
	// unique and stable across restarts.
	NodeName string
	// DataDir holds Raft state (DataDir/raft) and the gossip peers file.
	// Required for servers; optional for chassis agents (no peers file then).
	DataDir string
	// BindAddr is "host:port": gossip listens on port (TCP and UDP), Raft on
	// port+1 (TCP).
	BindAddr string
	// AdvertiseAddr is the host others reach this node at; it defaults to
	// BindAddr's host, which must then be a concrete address.
	AdvertiseAddr string
	// HTTPAddr is this node's advertised API address; followers forward
	// writes to the leader's, so it travels in gossip metadata.
	HTTPAddr string
	// Join lists gossip addresses ("host:port") to join at start.
	Join []string
	// BootstrapExpect is the number of servers that bootstrap a new cluster
	// together; 0 means wait to be added by an existing cluster's leader.
	BootstrapExpect int
	// Server makes the node a Raft voter; false runs gossip only (a chassis
	// agent).
	Server bool
	// FSM is the replicated state machine; required for servers.
	FSM *fsm.FSM
	// Logger is the parent logger; raft and memberlist log through it too.
	Logger *slog.Logger
	// OnFatal is called when this server finds its stored Raft data
	// corrupt while running; it should stop the process (the agent logs the
	// error and exits 1). Without it the error is logged and raft panics.
	OnFatal func(error)
	// KnownCommands overrides the command types a server announces (tests
	// that play an older server); empty announces fsm.KnownCommands().
	KnownCommands fsm.CommandSet
	// Meta carries the chassis fields announced in gossip; the cluster fills
	// in Role, RaftAddr, HTTPAddr, Expect and Bootstrapped itself.
	Meta NodeMeta

	// TLS, when set, runs Raft over mutual TLS: only servers with a server
	// certificate of the same CA talk to each other (tls.go). Nil is
	// plaintext TCP.
	TLS *tlsutil.Bundle
	// GossipKeys, when given, encrypt and authenticate gossip
	// (memberlist's keyring, AES-GCM); the first sends, all receive. Each
	// is 16, 24 or 32 bytes. Once a keyring was saved in DataDir it wins
	// over these (keyring.go), so a rotation outlives a restart.
	GossipKeys [][]byte

	// Raft tuning; zero values take the defaults above.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
	// ReconcileInterval is how often the leader re-checks that every alive
	// server in gossip is a Raft voter, besides reacting to member events.
	ReconcileInterval time.Duration
	// DeadServerCleanup is how long a voter may be dead (or left, or unseen)
	// in gossip before the leader removes it from the Raft configuration;
	// zero takes DefaultDeadServerCleanup, a negative value turns cleanup
	// off. See membership.go.
	DeadServerCleanup time.Duration
	// MinQuorum is the fewest voters dead-server cleanup leaves; zero means
	// a quorum of the largest BootstrapExpect among the servers.
	MinQuorum int
	// ReadyMaxLag is how many committed entries a follower may have left
	// to apply and still be ready (Ready); zero takes DefaultReadyMaxLag.
	ReadyMaxLag uint64

	// Gossip tuning; zero values take the defaults above.
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	SuspicionMult  int
	GossipInterval time.Duration
}

// addrs are the addresses derived from a Config.
type addrs struct {
	bindHost      string
	gossipPort    int
	advertiseHost string
	raftBind      string // host:port+1
	raftAdvertise string // advertiseHost:port+1
}

func (c *Config) validate() (addrs, error) {
	var a addrs
	if c.NodeName == "" {
		return a, errors.New("cluster: NodeName is required")
	}
	if c.Server {
		if c.DataDir == "" {
			return a, errors.New("cluster: DataDir is required for a server")
		}
		if c.FSM == nil {
			return a, errors.New("cluster: FSM is required for a server")
		}
	}
	if c.MinQuorum < 0 {
		return a, errors.New("cluster: MinQuorum must not be negative")
	}
	if c.BootstrapExpect < 0 {
		return a, errors.New("cluster: BootstrapExpect must not be negative")
	}
	host, portStr, err := net.SplitHostPort(c.BindAddr)
	if err != nil {
		return a, fmt.Errorf("cluster: BindAddr %q: %w", c.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port >= 65535 {
		return a, fmt.Errorf("cluster: BindAddr %q: port must be in 1..65534 (Raft uses port+1)", c.BindAddr)
	}
	adv := c.AdvertiseAddr
	if adv == "" {
		adv = host
	}
	ip := net.ParseIP(adv)
	if ip == nil || ip.IsUnspecified() {
		return a, fmt.Errorf("cluster: advertise address %q must be a concrete IP (set AdvertiseAddr)", adv)
	}
	a = addrs{
		bindHost:      host,
		gossipPort:    port,
		advertiseHost: adv,
		raftBind:      net.JoinHostPort(host, strconv.Itoa(port+1)),
		raftAdvertise: net.JoinHostPort(adv, strconv.Itoa(port+1)),
	}
	return a, nil
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDefault(&c.SnapshotThreshold, DefaultSnapshotThreshold)
	setDefault(&c.SnapshotInterval, DefaultSnapshotInterval)
	setDefault(&c.TrailingLogs, DefaultTrailingLogs)
	setDefault(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	setDefault(&c.ElectionTimeout, DefaultElectionTimeout)
	setDefault(&c.ReconcileInterval, DefaultReconcileInterval)
	setDefault(&c.DeadServerCleanup, DefaultDeadServerCleanup)
	setDefault(&c.ReadyMaxLag, DefaultReadyMaxLag)
	setDefault(&c.ProbeInterval, DefaultProbeInterval)
	setDefault(&c.ProbeTimeout, DefaultProbeTimeout)
	setDefault(&c.SuspicionMult, DefaultSuspicionMult)
	setDefault(&c.GossipInterval, DefaultGossipInterval)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (c *Config) raftDir() string { return filepath.Join(c.DataDir, "raft") }

// knownCommands is the command set this server announces.
func (c Config) knownCommands() fsm.CommandSet {
	if c.KnownCommands.Len() > 0 {
		return c.KnownCommands
	}
	return fsm.KnownCommands()
}
