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

// Snapshot defaults follow Consul's (raft_snapshot_threshold,
// raft_snapshot_interval, raft_trailing_logs).
const (
	DefaultSnapshotThreshold = 16384
	DefaultSnapshotInterval  = 30 * time.Second
	DefaultTrailingLogs      = 10240
	DefaultReconcileInterval = 5 * time.Second
)

// Raft timeouts for a LAN. hashicorp/raft's defaults (HeartbeatTimeout and
// ElectionTimeout 1 s, LeaderLeaseTimeout 500 ms; Consul's raft_multiplier
// 1) leave a cluster without a leader for about 2.3 s after the leader's
// SIGKILL: a follower's heartbeat timer fires at a random point in [HT, 2HT]
// and only acts when the last contact is at least HT old, so it starts an
// election 1-3 HT after the last heartbeat. The base values here are a fifth
// of those; like Consul's raft_multiplier, RaftMultiplier scales them
// (multiplier 5: HT and ET as hashicorp/raft's defaults) for a slow or
// loaded network. At multiplier 1 a new leader exists within
// ElectionBound = 3 HT + 2 ET = 1 s of the crash (one election round on a
// LAN takes milliseconds; a split vote costs up to 2 ET more), and the
// leader heartbeats every HT/10 = 20 ms, so a follower starts an election
// only after ten heartbeats in a row are missing. The default multiplier
// is 2 (HT = ET = 400 ms, bound 2 s, measured p50 well under 1 s): at 1 an
// idle cluster re-elected during make test (-race, 2 cores, load average
// up to 10), where whole processes stalled for 250 ms. The leader lease is HT,
// not Consul's HT/2: at 100 ms a leader on a loaded 2-core box stepped down
// in an idle cluster (its followers' answers 101-147 ms late under -race);
// reads do not rely on the lease (VerifyLeader asks a quorum), so the
// longer lease only delays a cut-off leader's step-down.
const (
	DefaultRaftMultiplier = 2
	MaxRaftMultiplier     = 10
	// RaceRaftMultiplier is the default in a race-detector build (tests).
	RaceRaftMultiplier       = 5
	RaftBaseHeartbeatTimeout = 200 * time.Millisecond
	RaftBaseElectionTimeout  = 200 * time.Millisecond
	// DefaultHeartbeatTimeout and DefaultElectionTimeout are the timeouts
	// at the default multiplier.
	DefaultHeartbeatTimeout = RaftBaseHeartbeatTimeout * DefaultRaftMultiplier
	DefaultElectionTimeout  = RaftBaseElectionTimeout * DefaultRaftMultiplier
	// DefaultCommitTimeout is hashicorp/raft's: it is how long an idle
	// leader waits before telling followers the commit index, which is a
	// follower watcher's latency, not failover; it is not scaled.
	DefaultCommitTimeout = 50 * time.Millisecond
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
	// AllowUnsignedGossip admits members whose metadata carries no
	// signature (a release before gossip identity, during a rolling
	// upgrade with TLS on); signed metadata is still checked.
	AllowUnsignedGossip bool

	// Raft tuning; zero values take the defaults above.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// RaftMultiplier scales the base Raft timeouts above (1..10, zero
	// means DefaultRaftMultiplier), as Consul's raft_multiplier does.
	RaftMultiplier int
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout override the
	// scaled base values; LeaderLeaseTimeout defaults to HeartbeatTimeout
	// (raft refuses a longer one).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
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
	// DisableCompression sends gossip uncompressed. memberlist compresses
	// every packet with LZW (a fresh 16 KiB table each): a hundred members
	// in one process (the chassis simulator) spent a quarter of their CPU
	// on it. Members of either setting understand each other.
	DisableCompression bool
	// GossipPacketSize is the largest gossip packet this node sends; zero
	// takes memberlist's 1,400 bytes (one Ethernet frame). The simulator's
	// members, all on loopback, send bigger ones: a burst of news (a
	// thousand joins) then goes out in fewer packets.
	GossipPacketSize int
	// RetransmitMult scales how many times a node passes each piece of news
	// on (memberlist: RetransmitMult x log10(members+1)); zero takes
	// memberlist's 4.
	RetransmitMult int
}

// maxGossipPacket is the largest UDP payload over IPv4.
const maxGossipPacket = 65507

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
	if c.GossipPacketSize < 0 || c.GossipPacketSize > maxGossipPacket {
		return a, fmt.Errorf("cluster: GossipPacketSize %d: must be in 0..%d", c.GossipPacketSize, maxGossipPacket)
	}
	if c.RetransmitMult < 0 {
		return a, errors.New("cluster: RetransmitMult must not be negative")
	}
	if c.MinQuorum < 0 {
		return a, errors.New("cluster: MinQuorum must not be negative")
	}
	if c.RaftMultiplier < 0 || c.RaftMultiplier > MaxRaftMultiplier {
		return a, fmt.Errorf("cluster: RaftMultiplier %d: must be in 1..%d", c.RaftMultiplier, MaxRaftMultiplier)
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
	if raceBuild {
		// In-process test clusters under -race (make test runs the packages
		// in parallel: load average above 10 on 2 cores) re-elected at
		// multiplier 2; they keep hashicorp/raft's timeouts unless a test
		// asks for a multiplier.
		setDefault(&c.RaftMultiplier, RaceRaftMultiplier)
	}
	setDefault(&c.RaftMultiplier, DefaultRaftMultiplier)
	m := time.Duration(c.RaftMultiplier)
	setDefault(&c.HeartbeatTimeout, RaftBaseHeartbeatTimeout*m)
	setDefault(&c.ElectionTimeout, RaftBaseElectionTimeout*m)
	setDefault(&c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	setDefault(&c.CommitTimeout, DefaultCommitTimeout)
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

// ElectionBound is how long after the leader's crash a new leader exists
// at the latest, barring repeated split votes, with these (defaulted)
// timeouts: a follower notices within 3 HeartbeatTimeouts, and a split vote
// costs up to 2 ElectionTimeouts more.
func (c *Config) ElectionBound() time.Duration {
	return 3*c.HeartbeatTimeout + 2*c.ElectionTimeout
}

func (c *Config) raftDir() string { return filepath.Join(c.DataDir, "raft") }

// knownCommands is the command set this server announces.
func (c Config) knownCommands() fsm.CommandSet {
	if c.KnownCommands.Len() > 0 {
		return c.KnownCommands
	}
	return fsm.KnownCommands()
}
