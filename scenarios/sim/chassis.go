// Package sim simulates chassis: each one is what the controller sees of a
// hypervisor, with no data plane behind it. It has a real OVSDB server
// (libovsdb's server, in memory, with the vswitch schema), a simulated
// ovs-vswitchd that numbers interfaces and connects br-int to the OpenFlow
// controller targets the leader writes into that database, a flow table
// that takes flow-mods and bundles exactly as the controller sends them
// (roles with generation ids, barriers, flow dumps, echo, packet-in/out),
// and a gossip member announcing the chassis like a chassis agent does.
// So the real path is exercised end to end: gossip -> Raft chassis record
// -> the leader dials the chassis' OVSDB -> it configures br-int and its
// controllers -> the switch dials every server -> MASTER with generation
// id -> flows.
//
// It stands in for chassis where a thousand real ovs-vswitchd cannot run
// (one 2-core machine); it is a tool for tests and benchmarks, not a
// replacement for OVS where the real one can run.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"neutrino/cluster"
	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
	"neutrino/southbound/ovsdb"
	"neutrino/southbound/pipeline"
)

// Bridge is the integration bridge the controller creates.
const Bridge = "br-int"

// Options configure one simulated chassis.
type Options struct {
	// Name is the chassis' (and its gossip member's) name; required.
	Name string
	// Join lists gossip addresses of the cluster.
	Join []string
	// Host is the loopback or local address everything listens on
	// (127.0.0.1 by default).
	Host string
	// TunnelIP is announced as the overlay endpoint; no traffic uses it.
	TunnelIP string
	// Encaps announced (geneve, vxlan and gre by default, as OVS has them).
	Encaps []string
	// Roles announced (compute by default).
	Roles []string
	// Gossip tuning; zero takes the cluster package's defaults.
	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
	GossipInterval              time.Duration
	GossipPacketSize            int
	RetransmitMult              int
	Logger                      *slog.Logger
}

// Chassis is one running simulated chassis.
type Chassis struct {
	opts   Options
	log    *slog.Logger
	db     *dbServer
	agent  *dbAgent
	sw     *Switch
	gossip *cluster.Cluster
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	dialers map[string]context.CancelFunc // controller target -> its dialer
	plugged map[string]string             // port id -> interface name
}

// Start starts a chassis and joins gossip.
func Start(ctx context.Context, opts Options) (*Chassis, error) {
	if opts.Name == "" {
		return nil, errors.New("sim: chassis name required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if len(opts.Encaps) == 0 {
		opts.Encaps = []string{ovsdb.EncapGeneve, ovsdb.EncapVXLAN, ovsdb.EncapGRE}
	}
	if len(opts.Roles) == 0 {
		opts.Roles = []string{"compute"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "sim", "chassis", opts.Name)
	db, err := startDB("tcp:" + net.JoinHostPort(opts.Host, "0"))
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute) // a loaded machine under -race is slow
	agent, err := connectVswitchd(cctx, db.endpoint, opts.Name, log)
	cancel()
	if err != nil {
		db.close()
		return nil, err
	}
	c := &Chassis{opts: opts, log: log, db: db, agent: agent, sw: newSwitch(log),
		done: make(chan struct{}), dialers: map[string]context.CancelFunc{}, plugged: map[string]string{}}
	rctx, rcancel := context.WithCancel(context.Background())
	c.cancel = rcancel
	go c.run(rctx)

	port, err := freePort(opts.Host)
	if err == nil {
		c.gossip, err = cluster.New(cluster.Config{
			NodeName: opts.Name,
			BindAddr: net.JoinHostPort(opts.Host, strconv.Itoa(port)),
			Join:     opts.Join,
			Logger:   log,
			Meta: cluster.NodeMeta{TunnelIP: opts.TunnelIP, OVSDB: db.endpoint, Roles: opts.Roles,
				Encaps: opts.Encaps, DatapathType: "netdev", StartedAt: time.Now().Unix()},
			ProbeInterval: opts.ProbeInterval,
			ProbeTimeout:  opts.ProbeTimeout,
			SuspicionMult: opts.SuspicionMult,
			// Many members share this process: no per-packet LZW
			// (cluster.Config.DisableCompression).
			GossipInterval: opts.GossipInterval, DisableCompression: true,
			GossipPacketSize: opts.GossipPacketSize, RetransmitMult: opts.RetransmitMult,
		})
	}
	if err == nil {
		err = c.gossip.Start()
	}
	if err != nil {
		c.gossip = nil
		c.Close()
		return nil, fmt.Errorf("sim: chassis %s gossip: %w", opts.Name, err)
	}
	return c, nil
}

// freePort finds a port free for both TCP and UDP on host (gossip uses
// both).
func freePort(host string) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, errors.New("sim: no free port")
}

// Name is the chassis' name.
func (c *Chassis) Name() string { return c.opts.Name }

// Switch is the chassis' simulated switch.
func (c *Chassis) Switch() *Switch { return c.sw }

// OVSDB is the endpoint the chassis announces.
func (c *Chassis) OVSDB() string { return c.db.endpoint }

// Close leaves gossip (a clean leave: the chassis goes down at once),
// closes every connection and stops the database.
func (c *Chassis) Close() {
	if c.gossip != nil {
		_ = c.gossip.Leave(2 * time.Second)
		_ = c.gossip.Shutdown()
	}
	c.cancel()
	<-c.done
	c.agent.ovs.Close()
	c.db.close()
}

// Kill stops the chassis without leaving gossip, as a crash would.
func (c *Chassis) Kill() {
	if c.gossip != nil {
		_ = c.gossip.Shutdown()
	}
	c.cancel()
	<-c.done
	c.agent.ovs.Close()
	c.db.close()
}

// run is ovs-vswitchd's main loop: on every database change number new
// interfaces, follow br-int's datapath id and controller targets.
// reconcileEvery is how often a chassis reads its database with nothing
// changed.
const reconcileEvery = 10 * time.Second

func (c *Chassis) run(ctx context.Context) {
	defer close(c.done)
	defer func() {
		c.mu.Lock()
		for t, stop := range c.dialers {
			stop()
			delete(c.dialers, t)
		}
		c.mu.Unlock()
	}()
	var cur bridgeState
	for {
		st, err := c.agent.reconcile(ctx, Bridge)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("database pass failed", "err", err)
		}
		// Every change of the database wakes the pass (kick); the timer
		// only retries a failed one soon and re-reads now and then. (A
		// pass every second made a thousand chassis list their tables a
		// thousand times a second: a quarter of the pool's CPU.)
		retry := reconcileEvery
		if err == nil {
			c.follow(ctx, cur, st)
			cur = st
		} else {
			retry = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-c.agent.kick:
		case <-time.After(retry):
		}
	}
}

// follow dials new controller targets and drops removed ones; a new
// datapath id reconnects every target (the switch names itself by it).
func (c *Chassis) follow(ctx context.Context, prev, st bridgeState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.dpid != prev.dpid {
		c.sw.mu.Lock()
		c.sw.dpid = st.dpid
		c.sw.mu.Unlock()
		for t, stop := range c.dialers {
			stop()
			delete(c.dialers, t)
		}
	}
	if st.dpid == 0 {
		return // br-int not configured yet
	}
	for t, stop := range c.dialers {
		if !slices.Contains(st.targets, t) {
			stop()
			delete(c.dialers, t)
		}
	}
	for _, t := range st.targets {
		if _, ok := c.dialers[t]; ok {
			continue
		}
		dctx, stop := context.WithCancel(ctx)
		c.dialers[t] = stop
		go c.sw.dial(dctx, t)
	}
}

// Plug plugs a Neutron port into br-int (interface external_ids:iface-id),
// as Nova does when a VM starts; the leader then binds it here.
func (c *Chassis) Plug(ctx context.Context, portID string) error {
	name := "tap" + portID
	if len(name) > 14 {
		name = name[:14]
	}
	if err := c.agent.plug(ctx, Bridge, name, portID); err != nil {
		return fmt.Errorf("sim: plug %s on %s: %w", portID, c.opts.Name, err)
	}
	c.mu.Lock()
	c.plugged[portID] = name
	c.mu.Unlock()
	return nil
}

// Unplug removes a port's interface.
func (c *Chassis) Unplug(ctx context.Context, portID string) error {
	c.mu.Lock()
	name, ok := c.plugged[portID]
	delete(c.plugged, portID)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	return c.agent.unplug(ctx, Bridge, name)
}

// Facts are the chassis' facts as the leader's worker gathers them from
// this chassis' database: bound ports and tunnel ports with their ofports
// (no physnets: a simulated chassis maps none).
func (c *Chassis) Facts(ctx context.Context, v *fsm.View) (pipeline.Facts, error) {
	byName, ids, err := c.agent.ofports(ctx)
	if err != nil {
		return pipeline.Facts{}, err
	}
	f := pipeline.Facts{Chassis: c.opts.Name, Bindings: map[string]uint32{}, Tunnels: map[string]uint32{}, Physnets: map[string]uint32{}}
	for id, name := range ids {
		if n, ok := byName[name]; ok {
			if p := v.Port(id); p != nil && p.BindingHostID != c.opts.Name &&
				(p.DeviceOwner == fsm.DeviceOwnerRouterGateway || p.DeviceOwner == fsm.DeviceOwnerLBVIP) {
				continue // a scheduled port (router gateway, VIP) bound elsewhere
			}
			f.Bindings[id] = n
		}
	}
	for _, e := range c.opts.Encaps {
		if n, ok := byName[ovsdb.FlowTunnelPort(e)]; ok {
			f.Tunnels[e] = n
		}
	}
	return f, nil
}

// Check compares the switch's flows with a full compile of state v for
// this chassis: the same keys, actions and owner cookies, every cookie of
// round. It returns "" when they agree.
func (c *Chassis) Check(ctx context.Context, v *fsm.View, round uint16) (string, error) {
	facts, err := c.Facts(ctx, v)
	if err != nil {
		return "", err
	}
	want := pipeline.Compile(v, facts)
	have := c.sw.Flows()
	var wrongRound int
	for i := range have {
		if !flowsync.IsOurs(have[i].Cookie) || flowsync.CookieRound(have[i].Cookie) != round {
			wrongRound++
		}
		have[i].Cookie &= flowsync.CookieOwnerMask
	}
	diff := pipeline.Diff(have, want)
	if wrongRound > 0 {
		diff = fmt.Sprintf("%d flows not of round %d; %s", wrongRound, round, diff)
	}
	return diff, nil
}

// PacketIn sends a packet-in to the chassis' master controller.
func (c *Chassis) PacketIn(p openflow.PacketIn) (int, error) { return c.sw.PacketIn(p) }
