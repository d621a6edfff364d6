package main

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/spf13/cobra"

	"neutrino/northbound/client"
)

func newClusterCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the controller cluster and remove failed servers",
	}
	realization := newRealizationCmd(a)
	realization.Short += " (as neutrino realization)"
	cmd.AddCommand(
		realization,
		newRemoveServerCmd(a),
		&cobra.Command{
			Use:   "status",
			Short: "Show the Raft status: leader, term, indexes, revision and servers",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				st, err := c.Cluster(cmd.Context())
				if err != nil {
					return err
				}
				if a.opts.output == outputJSON {
					return printJSON(a.stdout, st)
				}
				var rows [][]string
				if st.Node != "" {
					rows = append(rows, []string{"Answered by:", st.Node})
				}
				leader := st.Leader
				if leader == "" {
					leader = "(none)"
				}
				rows = append(rows,
					[]string{"Leader:", leader},
					[]string{"Term:", strconv.FormatUint(st.Term, 10)},
					[]string{"Commit index:", strconv.FormatUint(st.CommitIndex, 10)},
					[]string{"Applied index:", strconv.FormatUint(st.AppliedIndex, 10)},
					[]string{"Revision:", strconv.FormatUint(st.Revision, 10)},
					[]string{"Epoch:", strconv.FormatUint(st.Epoch, 10)},
				)
				if err := printRows(a, rows); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout)
				servers := make([][]string, len(st.Servers))
				for i, s := range st.Servers {
					servers[i] = []string{s.Name, s.Address, formatValue(s.Voter), s.State}
				}
				return printTable(a.stdout, []string{"Name", "Address", "Voter", "State"}, servers)
			},
		},
		&cobra.Command{
			Use:   "members",
			Short: "List the gossip members: servers and chassis, alive or not",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				_, members, err := a.members(cmd)
				if err != nil {
					return err
				}
				if a.opts.output == outputJSON {
					return printJSON(a.stdout, members)
				}
				rows := make([][]string, len(members))
				for i, m := range members {
					rows[i] = []string{m.Name, m.Address, m.Status, m.Role, formatMap(m.Meta)}
				}
				return printTable(a.stdout, []string{"Name", "Address", "Status", "Role", "Meta"}, rows)
			},
		},
	)
	return cmd
}

// newRemoveServerCmd is `neutrino cluster remove-server NAME`.
func newRemoveServerCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "remove-server NAME",
		Short: "Remove a stopped server from the Raft configuration (admin)",
		Long: `Remove a stopped server from the Raft configuration (admin).

Use it to replace a server whose data dir is lost or corrupt: stop it, run
this on any healthy server (the leader carries it out), then start the
server with an empty --data-dir, under the same or a new name; the leader
adds it back as a voter and it copies the state. The leader itself and a
server that gossip shows alive are refused: stop the server first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RemoveServer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Removed server %s from the Raft configuration.\n", args[0])
			return nil
		},
	}
}

// newRealizationCmd shows how far each chassis realized the state.
func newRealizationCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "realization",
		Short: "Show the state revision each chassis realized, from the leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.Realization(cmd.Context())
			if err != nil {
				return err
			}
			if a.opts.output == outputJSON {
				return printJSON(a.stdout, st)
			}
			if err := printRows(a, [][]string{
				{"Leader:", st.Leader},
				{"Revision:", strconv.FormatUint(st.Revision, 10)},
			}); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout)
			rows := make([][]string, len(st.Chassis))
			for i, ch := range st.Chassis {
				behind := "0"
				if ch.RealizedRevision < st.Revision {
					behind = strconv.FormatUint(st.Revision-ch.RealizedRevision, 10)
				}
				rows[i] = []string{ch.Chassis, strconv.FormatUint(ch.RealizedRevision, 10), behind,
					formatValue(ch.Connected), formatValue(ch.Master), ch.Error}
			}
			return printTable(a.stdout, []string{"Chassis", "Realized", "Behind", "Connected", "Master", "Error"}, rows)
		},
	}
}

// printRows prints label/value pairs aligned, without a header.
func printRows(a *app, rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	return printTable(a.stdout, rows[0], rows[1:])
}

// members returns the client and the gossip members it reports, sorted by
// name.
func (a *app) members(cmd *cobra.Command) (*client.Client, []client.Member, error) {
	c, err := a.client()
	if err != nil {
		return nil, nil, err
	}
	members, err := c.Members(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	return c, members, nil
}
