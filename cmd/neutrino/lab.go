package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"neutrino/scenarios"
	"neutrino/scenarios/lab"
)

// labOptions are the flags every `neutrino lab` subcommand shares.
type labOptions struct {
	dir    string
	prefix string
}

func newLabCmd(a *app) *cobra.Command {
	var o labOptions
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a multi-node Neutrino lab on this machine (network namespaces, root)",
		Long: `Run a multi-node Neutrino lab on this machine, out of network namespaces.

Every node is a namespace (` + lab.DefaultPrefix + `server-1, ` + lab.DefaultPrefix + `chassis-1, ` + lab.DefaultPrefix + `gateway-1) with a
veth into a linux bridge in the namespace ` + lab.DefaultPrefix + `underlay, on ` + lab.UnderlayCIDR + `
(MTU ` + strconv.Itoa(lab.UnderlayMTU) + `): servers .11-.19, chassis .101-.199, gateways .201-.254.
Chassis and gateways run their own ovsdb-server and ovs-vswitchd (netdev
datapath) with the tunnel IP on br-phy and OVSDB on ssl:IP:6640; every node
runs 'neutrino agent' in its namespace. Each server's API is also served on
https://127.0.0.1:PORT in this (root) namespace: see 'neutrino lab status'.
TLS is on by default: a CA and a certificate per node in --dir/tls, every
channel over TLS, gossip encrypted; 'lab up --tls=false' (or
NEUTRINO_LAB_TLS=off) runs plaintext (http://, tcp:).
No lab address is ever configured outside the lab's namespaces.

Two physical networks are linux bridges in the underlay namespace too:
'` + lab.PhysnetExternal + `' (flat) and '` + lab.PhysnetExternalVLAN + `' (802.1Q tags pass). Every gateway and
the first --external-chassis chassis have a veth into each (ext0, extv0),
a port of a standalone netdev OVS bridge (br-ex, br-vlan) the agent maps
with --bridge-mappings. The node 'outside' (namespace ` + lab.DefaultPrefix + `outside, no
agent, no underlay link) is on both: eth0 ` + lab.ExternalGateway + ` in ` + lab.ExternalCIDR + `, the
upstream router, and eth1 without an address for VLAN tests: the kernel
here cannot tag 802.1Q, so outside runs an OVS of its own (netdev, no
controller) with eth1 as a trunk port of br-out, and 'lab outside-vlan VID
CIDR' gives it an address on a VLAN.

'lab kill NODE' kills a node as a machine dies (agent and OVS SIGKILLed,
links down); 'lab revive NODE' boots it again. 'lab partition NODE' cuts
only its underlay link; 'lab isolate SERVER' cuts a server off from the
other servers only (the chassis still reach it); 'lab degrade NODE' adds
loss (netem or iptables) and delay (netem) to its underlay link; 'lab heal
NODE' undoes all three.

State, logs and data live in --dir (default ` + lab.DefaultDir + `); 'lab down'
removes every namespace, process and file the lab made, also after a crash.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.dir, "dir", lab.DefaultDir, "lab directory: state, logs, data")
	pf.StringVar(&o.prefix, "prefix", lab.DefaultPrefix, "prefix of the lab's namespace names (two labs at once need two prefixes)")
	cmd.AddCommand(
		newLabUpCmd(a, &o),
		newLabDownCmd(a, &o),
		newLabStatusCmd(a, &o),
		newLabVMCmd(a, &o),
		newLabDHCP6Cmd(a),
		newLabExecCmd(a, &o),
		newLabAgentCmd(a, &o),
		newLabKillCmd(a, &o),
		newLabReviveCmd(a, &o),
		newLabPartitionCmd(a, &o),
		newLabIsolateCmd(a, &o),
		newLabDegradeCmd(a, &o),
		newLabHealCmd(a, &o),
		newLabOutsideVLANCmd(a, &o),
		newLabSiteCmd(a, &o),
		newLabHTTPProbeCmd(a),
		newLabVLANPingCmd(a),
	)
	return cmd
}

// labLogger logs lab warnings to stderr, and progress with --debug.
func (a *app) labLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if a.opts.debug {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
}

func newLabUpCmd(a *app, o *labOptions) *cobra.Command {
	var (
		t       scenarios.Topology
		timeout time.Duration
		binary  string
		keep    bool
		useTLS  bool
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build a lab: servers, chassis and gateways",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			st, err := lab.Up(cmd.Context(), lab.Options{
				Dir: o.dir, Prefix: o.prefix, Binary: binary, Topology: t,
				ReadyTimeout: timeout, KeepOnFailure: keep, Logger: a.labLogger(),
				NoTLS: !useTLS,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "lab up in %s (%d servers, %d chassis (%d external), %d gateways)\n",
				time.Since(start).Round(10*time.Millisecond), t.Servers, t.Chassis, t.ExternalChassis, t.Gateways)
			return a.printLabStatus(st)
		},
	}
	f := cmd.Flags()
	f.IntVar(&t.Servers, "servers", 3, "controller servers (Raft voters)")
	f.IntVar(&t.Chassis, "chassis", 3, "compute chassis")
	f.IntVar(&t.Gateways, "gateways", 2, "gateway chassis (all plugged into the physical networks)")
	f.IntVar(&t.ExternalChassis, "external-chassis", 0, "how many chassis, from chassis-1 up, are also plugged into the physical networks (distributed floating IPs)")
	f.DurationVar(&timeout, "ready-timeout", lab.DefaultReadyTimeout, "how long to wait for a leader and full gossip membership")
	f.StringVar(&binary, "agent-binary", "", "neutrino binary the agents run (default: this one)")
	f.BoolVar(&keep, "keep-on-failure", false, "leave a lab that failed to come up in place for inspection")
	f.BoolVar(&useTLS, "tls", true, "TLS on every channel (a CA and node certificates in --dir/tls, HTTPS API, gossip key); --tls=false, or NEUTRINO_LAB_TLS=off, runs plaintext")
	return cmd
}

func newLabDownCmd(a *app, o *labOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove the lab: every namespace, link, process and file it made",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			// Cleaning up must not stop half-way because of a Ctrl-C.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 2*time.Minute)
			defer cancel()
			err := lab.Down(ctx, o.dir, o.prefix, a.labLogger())
			if errors.Is(err, lab.ErrNoLab) {
				fmt.Fprintf(a.stderr, "no lab in %s\n", o.dir)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "lab down in %s\n", time.Since(start).Round(10*time.Millisecond))
			return nil
		},
	}
}

func newLabStatusCmd(a *app, o *labOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the lab's nodes, VMs, addresses and API endpoints",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			st, err := lab.LoadState(o.dir)
			if err != nil {
				return err
			}
			return a.printLabStatus(st)
		},
	}
}

// labNodeStatus is one node in `lab status -o json`.
type labNodeStatus struct {
	*lab.Node
	AgentAlive bool `json:"agent_alive"`
}

// labStatus is `lab status -o json`.
type labStatus struct {
	Dir       string             `json:"dir"`
	Prefix    string             `json:"prefix"`
	Phase     string             `json:"phase"`
	Created   time.Time          `json:"created"`
	Topology  scenarios.Topology `json:"topology"`
	Underlay  lab.Underlay       `json:"underlay"`
	Endpoints []string           `json:"endpoints"`
	Nodes     []labNodeStatus    `json:"nodes"`
	VMs       []*lab.VM          `json:"vms"`
	Physnets  []lab.Physnet      `json:"physnets"`
	Outside   *lab.Outside       `json:"outside,omitempty"`
	// CA verifies the https endpoints (empty: a lab without TLS).
	CA string `json:"ca,omitempty"`
}

func (a *app) printLabStatus(st *lab.State) error {
	s := labStatus{Dir: st.Dir, Prefix: st.Prefix, Phase: st.Phase, Created: st.Created,
		Topology: st.Topology, Underlay: st.Underlay, Endpoints: []string{}, VMs: st.VMs,
		Physnets: st.Physnets, Outside: st.Outside, CA: st.CA}
	if s.Physnets == nil {
		s.Physnets = []lab.Physnet{}
	}
	if s.VMs == nil {
		s.VMs = []*lab.VM{}
	}
	for _, n := range st.Nodes {
		s.Nodes = append(s.Nodes, labNodeStatus{Node: n, AgentAlive: st.AgentAlive(n.Name)})
		if n.API != "" {
			s.Endpoints = append(s.Endpoints, n.API)
		}
	}
	if a.opts.output == outputJSON {
		return printJSON(a.stdout, s)
	}
	fmt.Fprintf(a.stdout, "Lab in %s (%s), underlay %s in namespace %s (bridge %s, MTU %d)\n\n",
		st.Dir, st.Phase, st.Underlay.CIDR, st.Underlay.Namespace, st.Underlay.Bridge, st.Underlay.MTU)
	rows := make([][]string, 0, len(s.Nodes))
	for _, n := range s.Nodes {
		agent := "down"
		if n.AgentAlive {
			agent = "pid " + strconv.Itoa(n.AgentPID)
		}
		switch {
		case n.Killed:
			agent = "killed"
		case n.Partitioned:
			agent += " (partitioned)"
		case n.Isolated:
			agent += " (isolated)"
		}
		if n.Degraded {
			agent += " (degraded)"
		}
		ep := n.API
		if ep == "" {
			ep = n.OVSDB
		}
		var maps []string
		for _, l := range n.Physnets {
			maps = append(maps, l.Physnet+":"+l.OVSBridge)
		}
		rows = append(rows, []string{n.Name, n.Kind, n.Namespace, n.IP, agent, ep, strings.Join(maps, ",")})
	}
	if err := printTable(a.stdout, []string{"Node", "Kind", "Namespace", "IP", "Agent", "API / OVSDB", "Bridge mappings"}, rows); err != nil {
		return err
	}
	if o := st.Outside; o != nil {
		fmt.Fprintln(a.stdout)
		rows = rows[:0]
		for _, nic := range o.NICs {
			addr := nic.Address
			if addr == "" {
				addr = "-"
			}
			rows = append(rows, []string{o.Name, o.Namespace, nic.Name, nic.Physnet, addr, nic.MAC})
		}
		for _, v := range o.VLANs {
			rows = append(rows, []string{o.Name, o.Namespace, v.Port,
				fmt.Sprintf("%s (VLAN %d)", lab.PhysnetExternalVLAN, v.VID), v.Address, v.MAC})
		}
		if err := printTable(a.stdout, []string{"Outside", "Namespace", "NIC", "Physnet", "Address", "MAC"}, rows); err != nil {
			return err
		}
	}
	if len(s.VMs) > 0 {
		fmt.Fprintln(a.stdout)
		rows = rows[:0]
		for _, v := range s.VMs {
			rows = append(rows, []string{v.Name, v.Chassis, v.Namespace, v.CIDR, v.MAC, v.PortID})
		}
		if err := printTable(a.stdout, []string{"VM", "Chassis", "Namespace", "Address", "MAC", "Port"}, rows); err != nil {
			return err
		}
	}
	fmt.Fprintln(a.stdout)
	if len(s.Endpoints) > 0 {
		ca := ""
		if st.CA != "" {
			ca = " --ca " + st.CA
		}
		fmt.Fprintf(a.stdout, "API:     neutrino --endpoint %s%s network list\n", s.Endpoints[0], ca)
	}
	for _, n := range st.Nodes {
		if n.OVSDBUnix != "" {
			fmt.Fprintf(a.stdout, "OVS:     neutrino lab exec %s -- ovs-vsctl show   (or ovs-vsctl --db=%s show)\n", n.Name, n.OVSDBUnix)
			fmt.Fprintf(a.stdout, "Flows:   neutrino lab exec %s -- ovs-ofctl -O OpenFlow13 dump-flows br-int\n", n.Name)
			break
		}
	}
	fmt.Fprintf(a.stdout, "Logs:    %s/<node>/agent.log, %s/<chassis>/ovs/*.log\n", st.Dir, st.Dir)
	fmt.Fprintf(a.stdout, "Remove:  neutrino lab down%s\n", a.labDirFlag(st.Dir))
	return nil
}

// labDirFlag is " --dir DIR" when dir is not the default, for hints.
func (a *app) labDirFlag(dir string) string {
	if dir == lab.DefaultDir {
		return ""
	}
	return " --dir " + dir
}

func newLabVMCmd(a *app, o *labOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Plug and unplug workloads (namespaces on a chassis' br-int)",
	}
	var port, chassis string
	var static bool
	add := &cobra.Command{
		Use:   "add NAME --port PORT_ID --chassis CHASSIS",
		Short: "Plug a workload as a Neutron port (MAC from the API; address, routes, MTU and DNS by DHCP, or written with --static)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lab.AddVMWith(cmd.Context(), o.dir, args[0], port, chassis, lab.VMOptions{Static: static}, a.labLogger()); err != nil {
				return err
			}
			st, err := lab.LoadState(o.dir)
			if err != nil {
				return err
			}
			v := st.VM(args[0])
			if a.opts.output == outputJSON {
				return printJSON(a.stdout, v)
			}
			return printTable(a.stdout, []string{"Field", "Value"}, [][]string{
				{"name", v.Name}, {"namespace", v.Namespace}, {"chassis", v.Chassis}, {"port_id", v.PortID},
				{"ovs_port", v.OVSPort}, {"mac", v.MAC}, {"address", v.CIDR}, {"gateway", v.Gateway},
				{"mtu", strconv.Itoa(v.MTU)},
			})
		},
	}
	add.Flags().StringVar(&port, "port", "", "Neutron port id")
	add.Flags().StringVar(&chassis, "chassis", "", "chassis (or gateway) to plug into, e.g. chassis-1")
	add.Flags().BoolVar(&static, "static", false, "write the port's address, gateway and MTU into the VM instead of running a DHCP client")
	_ = add.MarkFlagRequired("port")
	_ = add.MarkFlagRequired("chassis")
	del := &cobra.Command{
		Use:     "del NAME",
		Aliases: []string{"delete", "rm"},
		Short:   "Unplug a workload and delete its namespace",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lab.DelVM(cmd.Context(), o.dir, args[0])
		},
	}
	cmd.AddCommand(add, del)
	return cmd
}

// newLabDHCP6Cmd is the lab VMs' DHCPv6 client (Debian's busybox-static
// has no udhcpc6).
func newLabDHCP6Cmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:    "dhcp6-client IFACE",
		Short:  "The lab VMs' DHCPv6 client (run inside a VM's namespace by vm add)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lab.RunDHCPv6Client(cmd.Context(), args[0], a.stdout)
		},
	}
}

func newLabExecCmd(_ *app, o *labOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NAME -- CMD [ARG...]",
		Short: "Run a command on a lab node, VM, outside or underlay (inside its namespace; OVS_RUNDIR set on chassis)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := lab.LoadState(o.dir)
			if err != nil {
				return err
			}
			c, err := lab.Command(cmd.Context(), st, args[0], args[1:]...)
			if err != nil {
				return err
			}
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					return fmt.Errorf("%s on %s: %w", strings.Join(args[1:], " "), args[0], err)
				}
				return err
			}
			return nil
		},
	}
}

func newLabAgentCmd(a *app, o *labOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Kill or start a node's agent (failover experiments)",
	}
	var binary string
	start := &cobra.Command{
		Use:   "start NODE",
		Short: "Start a node's agent again (same flags, data dir and API port)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lab.StartAgent(cmd.Context(), o.dir, args[0], binary)
		},
	}
	start.Flags().StringVar(&binary, "agent-binary", "", "neutrino binary the agent runs (default: this one)")
	kill := &cobra.Command{
		Use:   "kill NODE",
		Short: "Kill a node's agent with SIGKILL, as a crash would",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lab.StopAgent(cmd.Context(), o.dir, args[0])
		},
	}
	cmd.AddCommand(start, kill)
	_ = a
	return cmd
}

// labNodeCmd is a `neutrino lab VERB NODE` command.
func labNodeCmd(use, short, long string, run func(ctx context.Context, node string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " NODE",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(cmd.Context(), args[0])
		},
	}
}

func newLabKillCmd(_ *app, o *labOptions) *cobra.Command {
	return labNodeCmd("kill", "Kill a node as a machine dies: agent and OVS SIGKILLed, every link down",
		`Kill a node as a machine dies: SIGKILL to its agent, ovs-vswitchd and
ovsdb-server, and every link of it (underlay and physical networks) down
on both ends. 'neutrino lab revive NODE' boots it again.`,
		func(ctx context.Context, node string) error { return lab.Kill(ctx, o.dir, node) })
}

func newLabReviveCmd(_ *app, o *labOptions) *cobra.Command {
	var binary string
	cmd := labNodeCmd("revive", "Boot a killed node again and wait until gossip sees it alive",
		`Boot a killed node again: links up, OVS restarted on the database it had
(bridges and ports come back; the controller resyncs the flows), the
tunnel endpoint set up again, the agent started; returns once every live
server sees the node alive in gossip.`,
		func(ctx context.Context, node string) error { return lab.Revive(ctx, o.dir, node, binary) })
	cmd.Flags().StringVar(&binary, "agent-binary", "", "neutrino binary the agent runs (default: this one)")
	return cmd
}

func newLabPartitionCmd(_ *app, o *labOptions) *cobra.Command {
	return labNodeCmd("partition", "Cut a node's underlay link (processes and physnet links stay): a split brain",
		`Cut a node off the underlay: its underlay link goes down, its processes
keep running and its physical network links stay up. 'neutrino lab heal
NODE' restores the link.`,
		func(ctx context.Context, node string) error { return lab.Partition(ctx, o.dir, node) })
}

func newLabIsolateCmd(_ *app, o *labOptions) *cobra.Command {
	return labNodeCmd("isolate", "Cut a server off from the other servers only (the chassis still reach it)",
		`Cut a server off from every other server, both ways (blackhole routes in
its namespace and theirs): Raft, gossip and API traffic between them is
dropped while the chassis' OVSDB and OpenFlow sessions to it stay up, as
a leader cut off from its peers but not from the switches.
'neutrino lab heal SERVER' removes the routes.`,
		func(ctx context.Context, node string) error { return lab.Isolate(ctx, o.dir, node) })
}

func newLabDegradeCmd(_ *app, o *labOptions) *cobra.Command {
	var (
		loss  float64
		delay time.Duration
	)
	cmd := labNodeCmd("degrade", "Add packet loss and delay to a node's underlay link (netem)",
		`Add packet loss and delay to both directions of a node's underlay link
(a netem qdisc on both ends of its veth). Where the kernel has no netem
qdisc (sch_netem), loss alone is made with iptables' statistic match in the
node's namespace (give --delay 0), and a delay fails with a clear error.
'neutrino lab heal NODE' removes it.`,
		func(ctx context.Context, node string) error { return lab.Degrade(ctx, o.dir, node, loss, delay) })
	cmd.Flags().Float64Var(&loss, "loss", 10, "percent of packets dropped")
	cmd.Flags().DurationVar(&delay, "delay", 20*time.Millisecond, "delay added to every packet")
	return cmd
}

func newLabHealCmd(_ *app, o *labOptions) *cobra.Command {
	return labNodeCmd("heal", "Undo a node's partition, isolation or degradation and wait until gossip sees it alive",
		`Undo every network fault of a node: its underlay link back up (partition),
its blackhole routes removed (isolate), its netem qdiscs removed
(degrade); returns once every live server sees the node alive in gossip.`,
		func(ctx context.Context, node string) error { return lab.Heal(ctx, o.dir, node) })
}

func newLabOutsideVLANCmd(a *app, o *labOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "outside-vlan VID CIDR",
		Short: "Give the outside node an address on a VLAN of the VLAN physnet",
		Long: `Give the outside node the address CIDR (e.g. 203.0.113.1/24) on VLAN VID
of the physnet '` + lab.PhysnetExternalVLAN + `': an OVS internal port vlanVID with tag=VID on
the outside node's bridge br-out, whose uplink eth1 is a trunk (this kernel
cannot tag 802.1Q itself). TX checksum offload is off on it. Running it
again for the same VID keeps the port and makes CIDR its address.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			vid, err := strconv.Atoi(args[0])
			if err != nil {
				return fmt.Errorf("VID %q: %w", args[0], err)
			}
			if err := lab.OutsideVLAN(cmd.Context(), o.dir, vid, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "%s: vlan%d (VLAN %d on %s) has %s\n", lab.OutsideName, vid, vid, lab.PhysnetExternalVLAN, args[1])
			return nil
		},
	}
}
