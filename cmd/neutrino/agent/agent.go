// Package agent wires one Neutrino process together: the replicated state
// machine, the cluster (Raft + gossip) and the HTTP API. It is the one
// place that knows all of them.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"neutrino/cluster"
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
	API      northbound.Config
	// Raft snapshot tuning; zero keeps the cluster package's defaults.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	Logger            *slog.Logger
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

	south *southbound // nil on a chassis agent

	// The gateway self-fence (fence.go); nil unless a gateway chassis.
	fence       *fence
	fenceCancel context.CancelFunc
	fenceDone   chan struct{}
}

// Start starts an agent and returns once its API listens.
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
	log := cfg.Logger.With("node", cfg.Node)
	a := &Agent{cfg: cfg, log: log, fsm: fsm.New(log), done: make(chan error, 1)}

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", cfg.HTTP, err)
	}
	a.ln = ln
	httpAddr := ln.Addr().String()
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

	c, err := cluster.New(cluster.Config{
		NodeName:          cfg.Node,
		DataDir:           filepath.Join(cfg.DataDir),
		BindAddr:          cfg.Bind,
		AdvertiseAddr:     cfg.Advertise,
		HTTPAddr:          httpAddr,
		Join:              cfg.Join,
		Meta:              cfg.Chassis,
		BootstrapExpect:   cfg.BootstrapExpect,
		Server:            cfg.Server,
		FSM:               a.fsm,
		Logger:            log,
		SnapshotThreshold: cfg.SnapshotThreshold,
		TrailingLogs:      cfg.TrailingLogs,
	})
	if err != nil {
		ln.Close()
		a.south.close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.cluster = c
	if err := c.Start(); err != nil {
		ln.Close()
		a.south.close()
		return nil, fmt.Errorf("agent: start cluster: %w", err)
	}
	a.south.start(a)
	a.startFence()

	api := cfg.API
	api.NodeName = cfg.Node
	api.Logger = log
	api.Status = a.status
	api.Members = a.members
	if api.Realizer == nil && a.south != nil && a.south.ctrl != nil {
		api.Realizer = realizer{a.south.ctrl}
	}
	srv := northbound.New(api, backend{c}, a.fsm)
	a.http = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
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
	log.Info("agent started", "server", cfg.Server, "http", httpAddr, "bind", cfg.Bind)
	return a, nil
}

// startFence starts the self-fence of a gateway chassis (fence.go).
func (a *Agent) startFence() {
	if !slices.Contains(a.cfg.Chassis.Roles, "gateway") || a.cfg.Chassis.OVSDB == "" {
		return
	}
	a.fence = newFence(fenceConfig{Cluster: a.cluster, OVSDB: a.cfg.Chassis.OVSDB, Logger: a.log})
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

// FSM returns the agent's state machine.
func (a *Agent) FSM() *fsm.FSM { return a.fsm }

// Done is closed with the API server's error when it stops.
func (a *Agent) Done() <-chan error { return a.done }

// Shutdown stops the API, then the cluster.
func (a *Agent) Shutdown(ctx context.Context) error {
	var err error
	a.once.Do(func() {
		a.stopFence()
		err = errors.Join(a.http.Shutdown(ctx), a.south.stop(), a.cluster.Shutdown())
	})
	return err
}

// backend adapts the cluster to what the API needs.
type backend struct{ c *cluster.Cluster }

func (b backend) Apply(ctx context.Context, cmd []byte) (*fsm.Result, error) {
	res, err := b.c.Apply(ctx, cmd)
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

func (b backend) VerifyLeader(ctx context.Context) error { return b.c.VerifyLeader(ctx) }

func (a *Agent) status() northbound.ClusterStatus {
	st := a.cluster.Status()
	out := northbound.ClusterStatus{
		Leader: st.Leader, Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		Revision: st.Revision, Epoch: st.Epoch, Servers: []northbound.ServerInfo{},
	}
	for _, s := range st.Servers {
		out.Servers = append(out.Servers, northbound.ServerInfo{Name: s.Name, Address: s.Address, Voter: s.Voter, State: s.State})
	}
	return out
}

func (a *Agent) members() []northbound.Member {
	var out []northbound.Member
	for _, m := range a.cluster.Members() {
		out = append(out, northbound.Member{Name: m.Name, Address: m.Addr, Status: string(m.Status), Role: m.Meta.Role,
			Meta: map[string]any{"http": m.Meta.HTTPAddr, "raft": m.Meta.RaftAddr}})
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
