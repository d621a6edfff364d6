package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"neutrino/northbound/client"
)

// keyringAnswer is what /v1/gossip/keyring answers.
type keyringAnswer struct {
	Node    string   `json:"node"`
	Primary string   `json:"primary"`
	Keys    []string `json:"keys"`
}

// newGossipCmd is `neutrino gossip keyring`: the gossip encryption keys of
// every node. Each node keeps its own keyring, so the command asks the API
// at --endpoint for the members and then calls every alive member's own
// API in turn (like `consul keyring`, which does it with a Serf query).
func newGossipCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "gossip", Short: "Gossip (memberlist) operations"}
	kr := &cobra.Command{
		Use:   "keyring",
		Short: "List or change the gossip encryption keys on every node",
		Long: `List or change the gossip encryption keys (--gossip-key) on every alive node.

Rotate a key without downtime in three steps, each run once for the whole
cluster: "install NEW" (every node accepts NEW), "use NEW" (every node
sends with NEW), "remove OLD". A node that was down during a step misses it:
run the step again once it is back. Each node saves its keyring in its
--data-dir, so a rotation outlives restarts.`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List every node's keys (the primary, used to send, first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.eachMember(cmd, func(c *client.Client) (string, error) {
				var out keyringAnswer
				if err := c.Do(cmd.Context(), http.MethodGet, "/v1/gossip/keyring", nil, nil, &out); err != nil {
					return "", err
				}
				return strings.Join(out.Keys, " "), nil
			})
		},
	}
	kr.AddCommand(list)
	for _, op := range []struct{ name, short string }{
		{"install", "Add KEY to every node's keyring (accepted, not yet used to send)"},
		{"use", "Make the installed KEY the one every node sends with"},
		{"remove", "Remove KEY (not the one in use) from every node's keyring"},
	} {
		kr.AddCommand(&cobra.Command{
			Use:   op.name + " KEY",
			Short: op.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.eachMember(cmd, func(c *client.Client) (string, error) {
					var out keyringAnswer
					err := c.Do(cmd.Context(), http.MethodPost, "/v1/gossip/keyring/"+op.name, nil,
						map[string]string{"key": args[0]}, &out)
					if err != nil {
						return "", err
					}
					return fmt.Sprintf("%d keys, primary %s", len(out.Keys), out.Primary), nil
				})
			},
		})
	}
	cmd.AddCommand(kr)
	return cmd
}

// eachMember runs fn against the API of every alive gossip member, in name
// order, prints one line per node and fails if any node failed.
func (a *app) eachMember(cmd *cobra.Command, fn func(*client.Client) (string, error)) error {
	c, members, err := a.members(cmd)
	if err != nil {
		return err
	}
	scheme := "http"
	if u, err := url.Parse(c.Endpoint()); err == nil {
		scheme = u.Scheme
	}
	failed := 0
	for _, m := range members {
		if m.Status != "alive" {
			fmt.Fprintf(a.stdout, "%s\tskipped: %s\n", m.Name, m.Status)
			continue
		}
		addr, _ := m.Meta["http"].(string)
		if addr == "" {
			fmt.Fprintf(a.stdout, "%s\tskipped: announces no API address\n", m.Name)
			failed++
			continue
		}
		mc, err := c.At(scheme + "://" + addr)
		var line string
		if err == nil {
			line, err = fn(mc)
		}
		if err != nil {
			failed++
			fmt.Fprintf(a.stdout, "%s\terror: %v\n", m.Name, err)
			continue
		}
		fmt.Fprintf(a.stdout, "%s\t%s\n", m.Name, line)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d nodes failed", failed, len(members))
	}
	return nil
}
