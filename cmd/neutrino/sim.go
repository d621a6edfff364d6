package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"neutrino/scenarios/sim"
)

// newSimCmd is `neutrino sim up`: simulated chassis against a real cluster
// (scenarios/sim), for tests and benchmarks at a scale one machine cannot
// run real Open vSwitch at.
func newSimCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "sim", Short: "Simulated chassis (OVSDB + OpenFlow + gossip, no data plane) for scale tests"}
	var (
		n        int
		join     []string
		prefix   string
		host     string
		parallel int
		logLevel string
		probe    time.Duration
		probeTO  time.Duration
		suspect  int
	)
	up := &cobra.Command{
		Use:   "up",
		Short: "Start simulated chassis that join a cluster; they run until interrupted",
		Long: `Start --chassis simulated chassis in this process. Each is a real OVSDB
server (in memory, vswitch schema) that the leader configures, a simulated
ovs-vswitchd that connects br-int to every server's OpenFlow listener and
keeps the flows it is given (roles, generation ids, bundles, flow dumps),
and a gossip member announcing the chassis (role compute, geneve, vxlan and gre, tunnel IP
in 100.64.0.0/10, never routed). It forwards no packets.

They leave gossip when interrupted (SIGINT, SIGTERM), so the cluster marks
them down at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n <= 0 {
				return errors.New("--chassis must be at least 1")
			}
			if len(join) == 0 {
				return errors.New("--join: give at least one server's gossip address (host:port)")
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			start := time.Now()
			pool, err := sim.StartPool(ctx, sim.PoolOptions{Chassis: n, Prefix: prefix, Join: join, Host: host,
				Parallel: parallel, Logger: log, ProbeInterval: probe, ProbeTimeout: probeTO, SuspicionMult: suspect})
			if err != nil {
				return err
			}
			defer pool.Close()
			fmt.Fprintf(a.stdout, "%d simulated chassis %s0001..%s%04d started in %s\n", n, prefix, prefix, n, time.Since(start).Round(time.Millisecond))
			tick := time.NewTicker(5 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					fmt.Fprintln(a.stdout, "stopping")
					return nil
				case <-tick.C:
					fmt.Fprintf(a.stdout, "%d/%d chassis programmed by a master, %d flow-mods taken\n", pool.Ready(), n, pool.FlowMods())
				}
			}
		},
	}
	f := up.Flags()
	f.IntVar(&n, "chassis", 10, "how many chassis to simulate")
	f.StringSliceVar(&join, "join", nil, "gossip address (host:port) of a server; repeatable")
	f.StringVar(&prefix, "prefix", "sim-", "chassis name prefix (names are PREFIX0001, ...)")
	f.StringVar(&host, "host", "127.0.0.1", "address the chassis' OVSDB servers and gossip listen on (the servers must reach it)")
	f.IntVar(&parallel, "parallel", 8, "chassis started at once")
	f.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	// Start the servers with the same (agent --gossip-probe-*): they probe
	// the chassis, whose members all share this process' cores.
	f.DurationVar(&probe, "gossip-probe-interval", 0, "gossip probe interval of the chassis (0: 1s, stretched in proportion beyond 100 chassis)")
	f.DurationVar(&probeTO, "gossip-probe-timeout", sim.SimProbeTimeout, "gossip probe timeout of the chassis")
	f.IntVar(&suspect, "gossip-suspicion-mult", sim.SimSuspicionMult, "gossip suspicion multiplier of the chassis")
	cmd.AddCommand(up)
	return cmd
}
