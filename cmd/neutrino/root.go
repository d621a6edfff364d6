package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"neutrino/northbound/client"
)

const defaultEndpoint = "http://127.0.0.1:9696"

// Output formats of -o/--output.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// app is what every command shares: the global options and where output goes.
type app struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
	opts           globalOptions
}

// globalOptions are the root's persistent flags.
type globalOptions struct {
	config   string
	endpoint string
	output   string
	project  string
	roles    []string
	token    string
	stale    bool
	wait     bool
	waitFor  time.Duration
	timeout  time.Duration
	debug    bool
	ca       string
}

func newRootCmd(a *app) *cobra.Command {
	// Run the persistent pre-run hook of every command on the path, root
	// first, so flag binding below also runs under a command (the agent)
	// that has hooks of its own.
	cobra.EnableTraverseRunHooks = true

	root := &cobra.Command{
		Use:   "neutrino",
		Short: "Neutrino, a distributed SDN controller with an OpenStack Networking (Neutron) v2.0 API",
		Long: `Neutrino is a distributed SDN controller with an OpenStack Networking
(Neutron) v2.0 compatible API. This one binary is both the agent and the
command-line client of the API.

Every flag can also be set in the environment as NEUTRINO_<FLAG> (upper
case, '-' as '_'; e.g. NEUTRINO_ENDPOINT), except the attribute flags of
resource commands, and in a JSON config file (--config) whose keys are flag
names. The command line wins over the environment, which wins over the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindFlags(cmd, a.lookupEnv); err != nil {
				return err
			}
			if o := a.opts.output; o != outputTable && o != outputJSON {
				return fmt.Errorf("--output %q: want %s or %s", o, outputTable, outputJSON)
			}
			return nil
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)

	pf := root.PersistentFlags()
	pf.StringVar(&a.opts.config, configFlag, "", "JSON file of flag values keyed by flag name")
	pf.StringVar(&a.opts.endpoint, "endpoint", defaultEndpoint, "URL of the Neutrino API")
	pf.StringVarP(&a.opts.output, "output", "o", outputTable, "output format: table or json")
	pf.StringVar(&a.opts.project, "project", "", "project to act in (X-Project-Id); none acts as admin under noauth")
	pf.StringSliceVar(&a.opts.roles, "roles", nil, "roles in the project (X-Roles), comma separated")
	pf.StringVar(&a.opts.token, "token", "", "authentication token (X-Auth-Token)")
	pf.BoolVar(&a.opts.stale, "stale", false, "let any server answer reads from its own replica, which may lag the leader")
	pf.BoolVar(&a.opts.wait, "wait", false, "make writes answer only once every chassis realized them")
	pf.DurationVar(&a.opts.waitFor, "wait-timeout", 0, "how long --wait waits (0: the server's default, 30s)")
	pf.DurationVar(&a.opts.timeout, "timeout", client.DefaultTimeout, "time limit of one API request")
	pf.BoolVar(&a.opts.debug, "debug", false, "log every API request to stderr")
	pf.StringVar(&a.opts.ca, "ca", "", "CA certificate (PEM) an https --endpoint is verified with (default: the system's)")
	_ = root.RegisterFlagCompletionFunc("output",
		cobra.FixedCompletions([]string{outputTable, outputJSON}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.MarkPersistentFlagFilename(configFlag, "json")

	root.AddGroup(
		&cobra.Group{ID: "resources", Title: "Resources:"},
		&cobra.Group{ID: "operations", Title: "Operations:"},
	)
	for _, r := range resources {
		cmd := newResourceCmd(a, r)
		cmd.GroupID = "resources"
		root.AddCommand(cmd)
	}
	vpn := newVPNCmd(a) // vpn.go
	vpn.GroupID = "resources"
	root.AddCommand(vpn)
	fw := newFirewallCmd(a) // firewall.go
	fw.GroupID = "resources"
	root.AddCommand(fw)
	lb := newLoadBalancerCmd(a) // loadbalancer.go
	lb.GroupID = "resources"
	root.AddCommand(lb)
	cluster := newClusterCmd(a)
	cluster.GroupID = "operations"
	root.AddCommand(cluster)
	realization := newRealizationCmd(a)
	realization.GroupID = "operations"
	root.AddCommand(realization)
	traceCmd := newTraceCmd(a) // trace.go
	traceCmd.GroupID = "operations"
	root.AddCommand(traceCmd)
	tlsCmd := newTLSCmd(a) // tls.go
	tlsCmd.GroupID = "operations"
	root.AddCommand(tlsCmd)
	gossipCmd := newGossipCmd(a) // gossip.go
	gossipCmd.GroupID = "operations"
	root.AddCommand(gossipCmd)
	labCmd := newLabCmd(a) // lab.go
	labCmd.GroupID = "operations"
	root.AddCommand(labCmd)
	simCmd := newSimCmd(a) // sim.go
	simCmd.GroupID = "operations"
	root.AddCommand(simCmd)

	// AGENT: `neutrino agent` is the lead engineer's command, defined in
	// agent.go; it gets --config and NEUTRINO_* binding like every command.
	agent := newAgentCmd()
	agent.GroupID = "operations"
	root.AddCommand(agent)

	return root
}

// client is an API client configured from the global flags.
func (a *app) client() (*client.Client, error) {
	c, err := client.New(a.opts.endpoint)
	if err != nil {
		return nil, err
	}
	c.ProjectID = a.opts.project
	c.Roles = a.opts.roles
	c.Token = a.opts.token
	c.Stale = a.opts.stale
	c.Wait, c.WaitTimeout = a.opts.wait, a.opts.waitFor
	c.HTTPClient.Timeout = a.opts.timeout
	if a.opts.ca != "" {
		if err := c.TrustCA(a.opts.ca); err != nil {
			return nil, err
		}
	}
	c.UserAgent = "neutrino-cli"
	if a.opts.debug {
		c.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return c, nil
}
