// Package agent wires one Neutrino process together: the replicated state
// machine, the cluster (Raft + gossip) and the HTTP API. It is the one
// place that knows all of them.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"neutrino/cluster"
	"neutrino/cluster/tlsutil"
	"neutrino/cluster/watch"
	"neutrino/fsm"
	"neutrino/northbound"
	"neutrino/southbound/controller"
)

// Config is an agent's configuration (flags, environment or config file).
type Config struct {
	Server    bool
	Node      string
	DataDir   string
	Bind      string
	Advertise string
	HTTP      string
	// AdvertiseHTTP is the API address announced in gossip, where other
	// servers forward requests (e.g. a proxy in front of this server);
	// empty announces the listener's address.
	AdvertiseHTTP   string
	Join            []string
	BootstrapExpect int
	// Chassis is what a chassis announces in gossip (tunnel IP, OVSDB
	// endpoint, roles, bridge mappings, encapsulations, datapath type).
	Chassis cluster.NodeMeta
	// ExtraHTTP are further listeners the API is served on, e.g. one
	// inherited from `neutrino lab` in another network namespace.
	ExtraHTTP []net.Listener
	// OpenFlow is a server's OpenFlow listen address for the chassis'
	// switches: "tcp:IP:PORT", "unix:PATH" or "IP:PORT"; empty means the
	// --bind host (advertised as --advertise) on the --bind port + 2.
	OpenFlow string
	// PacketInRate bounds the packet-ins per second a server takes from
	// each chassis' switch, in bursts of PacketInBurst (openflow.Options);
	// zero is DefaultPacketInRate, negative no limit.
	PacketInRate  float64
	PacketInBurst int
	API           northbound.Config
	// Raft snapshot tuning; zero keeps the cluster package's defaults.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// RaftMultiplier scales the LAN Raft timeouts (1..10; 0: the cluster
	// default, 1), as Consul's raft_multiplier does.
	RaftMultiplier int
	// DeadServerCleanup is how long a server may be dead before the leader
	// removes it from Raft: zero is the cluster default, negative is off.
	DeadServerCleanup time.Duration
	// MinQuorum is the fewest voters that cleanup leaves (0: a quorum of
	// --bootstrap-expect).
	MinQuorum int
	// TLS, when set, serves the API over HTTPS, runs Raft over mutual
	// TLS and makes every call to another server's API (forwarding,
	// watches, agent reports) over HTTPS with this node's certificate
	// (tls.go). Nil keeps every channel plaintext.
	TLS *tlsutil.Bundle
	// TLSFiles are TLS's files, for ovs-vswitchd: a chassis agent points
	// its switch's SSL row at them so the switch reaches the servers'
	// `ssl:` OpenFlow listeners (tls.go).
	TLSFiles TLSFiles
	// OVSDBLocal is the endpoint this chassis' own agent (self-fence,
	// switch SSL row, load balancer and VPN plumbing) reaches its
	// ovsdb-server through, e.g. its unix socket; empty means
	// Chassis.OVSDB. Required when Chassis.OVSDB is "ssl:": that remote is
	// for the leader's mutual-TLS session (tls.go).
	OVSDBLocal string
	// OpenFlowListener, when set, is the server's OpenFlow listener
	// instead of --openflow (tests open it in a switch's namespace).
	OpenFlowListener net.Listener
	// GossipKeys encrypt gossip (memberlist's keyring); the first is the
	// one used to send. Empty keeps gossip plaintext.
	GossipKeys [][]byte
	// GossipAllowUnsigned admits gossip members without a metadata
	// signature (cluster.Config.AllowUnsignedGossip).
	GossipAllowUnsigned bool
	// Gossip failure detection tuning; zero keeps the cluster package's
	// defaults (tests on a loaded machine slow it down).
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	SuspicionMult int
	// WatchToken is the X-Auth-Token Watch sends (an admin's, in token
	// mode).
	WatchToken string
	// AuthToken, when set, gives the X-Auth-Token of the agent's own API
	// calls instead of WatchToken (a Keystone service user's token,
	// renewed before it expires: --auth-strategy keystone on a chassis).
	AuthToken func(context.Context) (string, error)
	// VPNNamespacePrefix starts the names of a gateway's VPN namespaces
	// (default "nvpn-"); VPNDisabled runs no VPN on a gateway.
	VPNNamespacePrefix string
	VPNDisabled        bool
	// HAProxy is the haproxy binary load balancers run with (default
	// "haproxy" on PATH); LBNamespacePrefix starts the name of their
	// namespaces (default DefaultLBNamespacePrefix); DisableLBaaS runs
	// none on a gateway chassis (lbaas.go).
	HAProxy           string
	LBNamespacePrefix string
	DisableLBaaS      bool
	// DHCP configures a chassis' DHCP and RA responder (dhcp.go).
	DHCP   DHCPConfig
	Logger *slog.Logger
}

// Agent is a running Neutrino process.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	fsm     *fsm.FSM
	cluster *cluster.Cluster
	http    *http.Server
	ln      net.Listener
	done    chan error
	once    sync.Once
	// up is set once the cluster started (snapshot restored): before,
	// nothing may ask Raft anything.
	up atomic.Bool

	south *southbound // nil on a chassis agent

	// The gateway self-fence (fence.go); nil unless a gateway chassis.
	fence       *fence
	fenceCancel context.CancelFunc
	fenceDone   chan struct{}

	// vpnStop stops the gateway's VPN manager (vpnaas.go); nil if none.
	vpnStop func()
	// The load balancer agent of a gateway chassis (lbaas.go).
	lbStop context.CancelFunc
	lbDone chan struct{}
	dhcp   *dhcpService // nil unless a chassis
	// quotaStop stops the leader's default quota sync (ops.go); nil on
	// a chassis agent.
	quotaStop func()
	// metrics are served at /metrics (metrics.go); failoverStop stops
	// the server's gateway failover counter.
	metrics      *agentMetrics
	failoverStop context.CancelFunc
	failoverDone chan struct{}
}

// Start starts an agent and returns once its cluster runs (its snapshot
// restored); the API answers from the start, 503 until ready.
func Start(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent: no --node and no hostname: %w", err)
		}
		cfg.Node = h
	}
	if cfg.DataDir == "" {
		return nil, errors.New("agent: --data-dir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	if err := checkOVSDBTLS(cfg); err != nil {
		return nil, err
	}
	if cfg.AuthToken != nil {
		// Fail at start, loudly, rather than run a chassis whose every
		// call the servers refuse (a wrong password, an unknown user).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := cfg.AuthToken(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("agent: cannot authenticate its own API calls: %w", err)
		}
	}
	log := cfg.Logger.With("node", cfg.Node)
	a := &Agent{cfg: cfg, log: log, fsm: fsm.New(log), done: make(chan error, 1)}
	// A command this version does not know stops the server, as a corrupt
	// entry does: applying past it would diverge from the other servers.
	a.fsm.SetOnFatal(exitOnCorruption)
	a.metrics = newAgentMetrics(a)

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", cfg.HTTP, err)
	}
	a.ln = ln
	httpAddr := ln.Addr().String()
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS.APIServerConfig())
		for i, l := range cfg.ExtraHTTP {
			cfg.ExtraHTTP[i] = tls.NewListener(l, cfg.TLS.APIServerConfig())
		}
	}
	if cfg.AdvertiseHTTP != "" {
		httpAddr = cfg.AdvertiseHTTP
	}

	// SOUTHBOUND: a server listens for the chassis' OpenFlow connections
	// and announces where in gossip; see southbound.go.
	if cfg.Server {
		sb, ofAddr, err := listenOpenFlow(cfg, log)
		if err != nil {
			ln.Close()
			return nil, err
		}
		a.south = sb
		cfg.Chassis.OpenFlowAddr = ofAddr
	}
	cfg.Chassis.StartedAt = time.Now().Unix()

	c, err := cluster.New(cluster.Config{
		NodeName:            cfg.Node,
		DataDir:             filepath.Join(cfg.DataDir),
		BindAddr:            cfg.Bind,
		AdvertiseAddr:       cfg.Advertise,
		HTTPAddr:            httpAddr,
		Join:                cfg.Join,
		Meta:                cfg.Chassis,
		BootstrapExpect:     cfg.BootstrapExpect,
		Server:              cfg.Server,
		FSM:                 a.fsm,
		Logger:              log,
		SnapshotThreshold:   cfg.SnapshotThreshold,
		TrailingLogs:        cfg.TrailingLogs,
		RaftMultiplier:      cfg.RaftMultiplier,
		DeadServerCleanup:   cfg.DeadServerCleanup,
		MinQuorum:           cfg.MinQuorum,
		OnFatal:             exitOnCorruption,
		TLS:                 cfg.TLS,
		GossipKeys:          cfg.GossipKeys,
		AllowUnsignedGossip: cfg.GossipAllowUnsigned,
		ProbeInterval:       cfg.ProbeInterval,
		ProbeTimeout:        cfg.ProbeTimeout,
		SuspicionMult:       cfg.SuspicionMult,
	})
	if err != nil {
		ln.Close()
		a.south.close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.cluster = c

	// Serve HTTP before the cluster starts: restoring a large snapshot
	// takes seconds, and meanwhile /healthz says alive, /readyz says what
	// is missing and every API request gets 503 with Retry-After at once
	// instead of a connection that hangs.
	a.south.prepare(a)
	api := cfg.API
	api.NodeName = cfg.Node
	api.Logger = log
	api.Status = a.status
	api.Members = a.members
	api.RemoveServer = a.removeServer
	api.UpgradeCheck = func() error { return apiErr(c.Supports(fsm.CmdUpgradeFinalize)) }
	api.FinalizeUpgrade = func(ctx context.Context) (*fsm.Result, error) {
		res, err := c.FinalizeUpgrade(ctx)
		return res, apiErr(err)
	}
	api.Readiness = a.readiness
	api.NoReplica = !cfg.Server
	api.Keyring = c
	if cfg.Chassis.OVSDB != "" && cfg.DHCP.Socket != "off" {
		api.OFProtoTrace = a.ofprotoTrace
	}
	api.Metrics = a.metrics.handler()
	api.ObserveRequest = a.metrics.observeRequest
	if cfg.TLS != nil {
		api.PeerTLS = cfg.TLS.PeerClientConfig()
		api.VerifyForwarder = forwarderCheck(cfg.TLS)
		api.ChassisTLS = func(name string) *tls.Config { return cfg.TLS.NodeClientConfig(name, tlsutil.RoleChassis) }
	}
	if api.Realizer == nil && a.south != nil && a.south.ctrl != nil {
		api.Realizer = realizer{a.south.ctrl}
	}
	srv := northbound.New(api, backend{c: c, apply: a.metrics.apply}, a.fsm)
	a.http = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second,
		// TLS handshake failures (a client without the CA, a peer of
		// another CA) are the peer's problem: debug, not stderr.
		ErrorLog: slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelDebug)}
	api.Limits.ConfigureServer(a.http)
	a.http.RegisterOnShutdown(srv.StopWatches)
	for _, l := range append([]net.Listener{ln}, cfg.ExtraHTTP...) {
		go func() {
			err := a.http.Serve(l)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			select {
			case a.done <- err:
			default:
			}
		}()
	}

	if err := c.Start(); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.http.Shutdown(ctx)
		a.south.close()
		return nil, fmt.Errorf("agent: start cluster: %w", err)
	}
	a.up.Store(true)
	if cfg.Server {
		a.quotaStop = a.startQuotaSync(srv)
		ctx, cancel := context.WithCancel(context.Background())
		a.failoverStop, a.failoverDone = cancel, make(chan struct{})
		go func() {
			defer close(a.failoverDone)
			a.watchFailovers(ctx)
		}()
	}
	a.south.start(a)
	if err := a.configureSwitchSSL(); err != nil {
		log.Error("switch not configured for TLS: it cannot reach the servers' ssl: OpenFlow targets", "err", err)
	}
	a.startFence()
	a.startVPN()
	a.startLBaaS()
	if err := a.startDHCP(); err != nil {
		log.Error("DHCP responder not started", "err", err)
	}

	log.Info("agent started", "server", cfg.Server, "http", httpAddr, "bind", cfg.Bind)
	return a, nil
}

// startFence starts the self-fence of a gateway chassis (fence.go).
func (a *Agent) startFence() {
	if !slices.Contains(a.cfg.Chassis.Roles, "gateway") || a.cfg.Chassis.OVSDB == "" {
		return
	}
	a.fence = newFence(fenceConfig{Cluster: a.cluster, OVSDB: a.localOVSDB(), Logger: a.log})
	ctx, cancel := context.WithCancel(context.Background())
	a.fenceCancel, a.fenceDone = cancel, make(chan struct{})
	go func() {
		defer close(a.fenceDone)
		a.fence.run(ctx)
	}()
}

func (a *Agent) stopFence() {
	if a.fenceCancel != nil {
		a.fenceCancel()
		<-a.fenceDone
	}
}

// Fenced reports whether this gateway chassis has fenced itself off its
// physical networks (always false on other nodes).
func (a *Agent) Fenced() bool { return a.fence != nil && a.fence.Fenced() }

// HTTPAddr is the address the API listens on.
func (a *Agent) HTTPAddr() string { return a.ln.Addr().String() }

// Cluster returns the agent's cluster membership.
func (a *Agent) Cluster() *cluster.Cluster { return a.cluster }

// Watch starts a watch of the tables from the servers' APIs as gossip
// lists them (this agent's own first when it is a server); the caller
// closes it. It is how a chassis agent follows replicated state.
func (a *Agent) Watch(tables ...string) (*watch.Watcher, error) {
	return watch.New(watch.Config{Servers: a.watchServers, Tables: tables,
		Token: a.cfg.WatchToken, TokenFunc: a.cfg.AuthToken, Logger: a.log, TLS: a.peerTLS()})
}

// watchServers lists the API addresses of the alive servers in gossip.
func (a *Agent) watchServers() []string {
	var out []string
	for _, m := range a.cluster.Members() {
		if m.Meta.Role != cluster.RoleServer || m.Status != cluster.StatusAlive || m.Meta.HTTPAddr == "" {
			continue
		}
		addr := m.Meta.HTTPAddr
		if a.cfg.TLS != nil {
			addr = "https://" + addr
		}
		if m.Name == a.cfg.Node {
			out = append([]string{addr}, out...)
		} else {
			out = append(out, addr)
		}
	}
	return out
}

// FSM returns the agent's state machine.
func (a *Agent) FSM() *fsm.FSM { return a.fsm }

// Done is closed with the API server's error when it stops.
func (a *Agent) Done() <-chan error { return a.done }

// Shutdown stops the API, then the cluster.
func (a *Agent) Shutdown(ctx context.Context) error {
	var err error
	a.once.Do(func() {
		if a.quotaStop != nil {
			a.quotaStop()
		}
		if a.failoverStop != nil {
			a.failoverStop()
			<-a.failoverDone
		}
		a.stopVPN()
		a.stopLBaaS()
		a.stopFence()
		a.stopDHCP()
		err = errors.Join(a.http.Shutdown(ctx), a.south.stop(), a.cluster.Shutdown())
	})
	return err
}

// backend adapts the cluster to what the API needs.
type backend struct {
	c *cluster.Cluster
	// apply times the commands applied through this server (metrics.go).
	apply prometheus.Histogram
}

func (b backend) Apply(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	start := time.Now()
	res, err := b.c.Apply(ctx, cmd)
	if err == nil {
		b.apply.Observe(time.Since(start).Seconds())
	}
	return res, apiErr(err)
}

// apiErr sorts the cluster's errors into the API's: not appended
// (ErrNotLeader, ErrNotReady) or fate unknown (ErrUnknownOutcome, also for
// any error the cluster did not sort: claiming "not applied" needs
// certainty).
func apiErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNotServer):
		return fmt.Errorf("%w: %w", northbound.ErrNotLeader, err)
	case errors.Is(err, cluster.ErrCommandUnsupported):
		return fmt.Errorf("%w: %s", northbound.ErrUnsupported,
			strings.TrimPrefix(err.Error(), cluster.ErrCommandUnsupported.Error()+": "))
	case errors.Is(err, cluster.ErrLeaderNotReady):
		return fmt.Errorf("%w: %w", northbound.ErrNotReady, err)
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, cluster.ErrUnknownOutcome):
		// Apply refuses a context already past its deadline before
		// proposing anything.
		return fmt.Errorf("%w: %w", northbound.ErrNotReady, err)
	default:
		return fmt.Errorf("%w: %w", northbound.ErrUnknownOutcome, err)
	}
}

func (b backend) WaitReady(ctx context.Context) error { return apiErr(b.c.WaitReady(ctx)) }

func (b backend) IsLeader() bool { return b.c.IsLeader() }

func (b backend) LeaderHTTPAddr() string {
	_, addr := b.c.Leader()
	return addr
}

// VerifyLeader confirms leadership with a quorum; a lost leadership is
// northbound.ErrNotLeader, so a write that learns it is forwarded.
func (b backend) VerifyLeader(ctx context.Context) error {
	err := b.c.VerifyLeader(ctx)
	if errors.Is(err, cluster.ErrNotLeader) {
		return fmt.Errorf("%w: %w", northbound.ErrNotLeader, err)
	}
	return err
}

func (a *Agent) status() northbound.ClusterStatus {
	if !a.up.Load() {
		return northbound.ClusterStatus{Servers: []northbound.ServerInfo{}}
	}
	st := a.cluster.Status()
	out := northbound.ClusterStatus{
		Leader: st.Leader, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		Revision: st.Revision, Epoch: st.Epoch, Servers: []northbound.ServerInfo{},
		UpgradeFinalizedAt: a.fsm.State().Read().UpgradeFinalizedAt(),
	}
	for _, s := range st.Servers {
		out.Servers = append(out.Servers, northbound.ServerInfo{Name: s.Name, Address: s.Address, Voter: s.Voter, State: s.State})
	}
	return out
}

// exitOnCorruption ends the process when a stored Raft entry fails its
// checksum while running: raft would panic on the read error next, and a
// server must never serve data that diverged from the others.
func exitOnCorruption(err error) {
	fmt.Fprintln(os.Stderr, "Error:", err)
	os.Exit(1)
}

// removeServer removes a server from Raft, reporting refusals as API
// errors (not found, conflict).
func (a *Agent) removeServer(ctx context.Context, name string) error {
	err := a.cluster.RemoveServer(ctx, name)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrNotLeader):
		return fmt.Errorf("%w: %w", northbound.ErrNotLeader, err)
	case errors.Is(err, cluster.ErrUnknownServer):
		return fsm.Errorf(fsm.CodeNotFound, "ServerNotFound", "Server %s is not in the cluster's Raft configuration.", name)
	case errors.Is(err, cluster.ErrRemoveLeader):
		return fsm.Errorf(fsm.CodeConflict, "ServerIsLeader",
			"Server %s is the leader: stop it, and remove it once another server leads.", name)
	case errors.Is(err, cluster.ErrServerAlive):
		return fsm.Errorf(fsm.CodeConflict, "ServerAlive",
			"Server %s is alive: stop it first, or the leader adds it back as a voter.", name)
	}
	return err
}

// readiness is the cluster's readiness (cluster.Ready) for the API gate.
func (a *Agent) readiness() northbound.Readiness {
	err := a.cluster.Ready()
	if err == nil {
		return northbound.Readiness{Ready: true, Serve: true}
	}
	var nr *cluster.NotReadyError
	if !errors.As(err, &nr) {
		return northbound.Readiness{Missing: []northbound.ReadyCondition{{Condition: "unknown", Detail: err.Error()}}}
	}
	out := northbound.Readiness{Serve: nr.Serveable()}
	for _, m := range nr.Missing {
		out.Missing = append(out.Missing, northbound.ReadyCondition{Condition: m.Condition, Detail: m.Detail})
	}
	return out
}

func (a *Agent) members() []northbound.Member {
	var out []northbound.Member
	for _, m := range a.cluster.Members() {
		out = append(out, northbound.Member{Name: m.Name, Address: m.Addr, Status: string(m.Status), Role: m.Meta.Role,
			Meta: map[string]any{"http": m.Meta.HTTPAddr, "raft": m.Meta.RaftAddr,
				"availability_zone": m.Meta.AvailabilityZone, "started_at": m.Meta.StartedAt,
				"version": m.Meta.Version, "commands": m.Meta.Commands}})
	}
	return out
}

// realizer adapts the southbound controller to what the API needs to
// report and wait for realization.
type realizer struct{ c *controller.Controller }

func (r realizer) Realization() []northbound.ChassisRealization {
	st := r.c.Status()
	out := make([]northbound.ChassisRealization, 0, len(st))
	for _, cs := range st {
		cr := northbound.ChassisRealization{Chassis: cs.Chassis, RealizedRevision: cs.Realized,
			Connected: cs.Connected, Master: cs.Master}
		if cs.Err != nil {
			cr.Error = cs.Err.Error()
		}
		out = append(out, cr)
	}
	return out
}

func (r realizer) WaitRealized(ctx context.Context, rev uint64) error {
	return r.c.WaitRealizedAll(ctx, rev)
}

// authToken is the X-Auth-Token of the agent's own API calls: AuthToken's
// (renewed before expiry) when set, else WatchToken. A failure is logged
// and the call goes without a token: the server's 401 is then the error
// its caller reports.
func (a *Agent) authToken(ctx context.Context) string {
	if a.cfg.AuthToken == nil {
		return a.cfg.WatchToken
	}
	tok, err := a.cfg.AuthToken(ctx)
	if err != nil {
		a.log.Error("cannot get a token for the agent's own API calls", "err", err)
		return ""
	}
	return tok
}
