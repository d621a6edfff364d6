package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// PoolOptions configure a pool of simulated chassis.
type PoolOptions struct {
	// Chassis is how many to start.
	Chassis int
	// Prefix starts every chassis' name (name = Prefix + index from 1,
	// zero-padded to 4 digits); it must be unique among the cluster's
	// members ("sim-" by default).
	Prefix string
	// Join lists gossip addresses of the cluster; required.
	Join []string
	// Host everything listens on (127.0.0.1).
	Host string
	// Parallel bounds how many chassis start at once (8).
	Parallel int
	// Gossip tuning of the chassis; zero takes ScaledTimings' intervals
	// for the pool's size, SimProbeTimeout, SimSuspicionMult,
	// SimRetransmitMult and, on a loopback Host, SimGossipPacketSize.
	ProbeInterval, ProbeTimeout time.Duration
	SuspicionMult               int
	GossipInterval              time.Duration
	GossipPacketSize            int
	RetransmitMult              int
	Logger                      *slog.Logger
}

// Gossip timings of simulated chassis unless PoolOptions say otherwise;
// the servers of a simulator run need the same (agent --gossip-probe-*).
const (
	SimProbeInterval = time.Second
	SimProbeTimeout  = 500 * time.Millisecond
	SimSuspicionMult = 4
	// SimGossipInterval spaces the chassis' broadcast rounds: at the
	// cluster's 50 ms, a hundred members joining in one process send
	// every join to 3 members 20 times a second each, and the start of
	// 100 chassis did not finish in 2 minutes (docs/architecture.md,
	// "Simulator").
	SimGossipInterval = 250 * time.Millisecond
	// SimRetransmitMult: each chassis passes a piece of news on
	// 2 x log10(members+1) times (memberlist's 4 x): a thousand joins made
	// each of a thousand members in one process send 16,000 messages, and
	// decoding them, with the collector behind, starved the probes
	// (docs/architecture.md, "1,000 chassis"). Push/pull still brings every
	// member the whole state.
	SimRetransmitMult = 2
	// SimGossipPacketSize: on loopback a chassis packs up to 32 KiB of
	// news into a packet (a real chassis, 1,400 bytes: one frame).
	SimGossipPacketSize = 32 << 10
)

// ScaledTimings are the probe and gossip intervals of a pool of n chassis:
// SimProbeInterval and SimGossipInterval up to 100 chassis, stretched in
// proportion beyond (up to 5 s and 2 s), so that the pool's process sends
// and handles about as many probes and gossip rounds a second at 1,000
// chassis as at 100. All members of a pool share one process' cores, so
// its gossip work grows with n where a real chassis' does not.
func ScaledTimings(n int) (probe, gossip time.Duration) {
	f := max(1, float64(n)/100)
	return min(time.Duration(f*float64(SimProbeInterval)), 5*time.Second),
		min(time.Duration(f*float64(SimGossipInterval)), 2*time.Second)
}

// Pool is a set of running simulated chassis.
type Pool struct {
	Chassis []*Chassis
}

// TunnelIP is the (unused, never routed) overlay address of chassis i:
// 100.64.0.0/10, shared address space, so no real host is named.
func TunnelIP(i int) string { return fmt.Sprintf("100.%d.%d.%d", 64+i>>16&63, i>>8&255, i&255) }

// StartPool starts opts.Chassis chassis; on any failure it stops those it
// started and returns the error.
func StartPool(ctx context.Context, opts PoolOptions) (*Pool, error) {
	if len(opts.Join) == 0 {
		return nil, errors.New("sim: pool needs gossip addresses to join")
	}
	if opts.Prefix == "" {
		opts.Prefix = "sim-"
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	// Many gossip members share this process' cores: at the cluster's LAN
	// timings (100 ms probes, 50 ms timeouts) 100 chassis in one process on
	// 2 cores miss probe deadlines, get declared dead, refute, flap; the
	// leader tears their OVSDB sessions down and redials them, and nothing
	// converges (the 100-chassis stall, docs/architecture.md "Simulator").
	probe, gossip := ScaledTimings(opts.Chassis)
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = probe
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = SimProbeTimeout
	}
	if opts.SuspicionMult == 0 {
		opts.SuspicionMult = SimSuspicionMult
	}
	if opts.GossipInterval == 0 {
		opts.GossipInterval = gossip
	}
	if opts.RetransmitMult == 0 {
		opts.RetransmitMult = SimRetransmitMult
	}
	if ip := net.ParseIP(cmp.Or(opts.Host, "127.0.0.1")); opts.GossipPacketSize == 0 && ip != nil && ip.IsLoopback() {
		opts.GossipPacketSize = SimGossipPacketSize
	}
	p := &Pool{Chassis: make([]*Chassis, opts.Chassis)}
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range opts.Chassis {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := Start(ctx, Options{
				Name: fmt.Sprintf("%s%04d", opts.Prefix, i+1), Join: opts.Join, Host: opts.Host,
				TunnelIP: TunnelIP(i + 1), ProbeInterval: opts.ProbeInterval, ProbeTimeout: opts.ProbeTimeout,
				SuspicionMult: opts.SuspicionMult, GossipInterval: opts.GossipInterval, Logger: opts.Logger,
				GossipPacketSize: opts.GossipPacketSize, RetransmitMult: opts.RetransmitMult,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			p.Chassis[i] = c
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close stops every chassis, leaving gossip.
func (p *Pool) Close() {
	var wg sync.WaitGroup
	for _, c := range p.Chassis {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close()
		}()
	}
	wg.Wait()
}

// FlowMods is the number of flow-mods every switch of the pool took.
func (p *Pool) FlowMods() uint64 {
	var n uint64
	for _, c := range p.Chassis {
		n += c.sw.Stats().FlowMods
	}
	return n
}

// Ready counts the chassis whose switch has a MASTER controller and at
// least one flow.
func (p *Pool) Ready() int {
	n := 0
	for _, c := range p.Chassis {
		if c.sw.MasterCount() == 1 && c.sw.FlowCount() > 0 {
			n++
		}
	}
	return n
}
