package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/spf13/cobra"

	"neutrino/northbound/client"
)

// lbPath is the Octavia v2 collection of load balancers.
const lbPath = "/v2/lbaas/loadbalancers"

// lbColumns are list's columns, as `openstack loadbalancer list` has them.
var lbColumns = []column{{"ID", "id"}, {"Name", "name"}, {"Project", "project_id"}, {"VIP Address", "vip_address"},
	{"Provisioning Status", "provisioning_status"}, {"Operating Status", "operating_status"}, {"Provider", "provider"}}

// newLoadBalancerCmd is `neutrino loadbalancer`: the load balancers of the
// Octavia v2 API. Listeners, pools, members, monitors and L7 policies are
// driven with `openstack loadbalancer ...` or gophercloud.
func newLoadBalancerCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "loadbalancer",
		Short: "Load balancers (Octavia v2 API): list, show, create, delete, status, failover",
	}
	var name, subnet, network, port, address string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a load balancer with its VIP on a subnet, a network or a port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{}
			for k, v := range map[string]string{"name": name, "vip_subnet_id": subnet, "vip_network_id": network, "vip_port_id": port, "vip_address": address} {
				if v != "" {
					body[k] = v
				}
			}
			return a.lbDo(cmd.Context(), http.MethodPost, lbPath, nil, map[string]any{"loadbalancer": body}, true)
		},
	}
	create.Flags().StringVar(&name, "name", "", "name")
	create.Flags().StringVar(&subnet, "vip-subnet-id", "", "subnet of the VIP")
	create.Flags().StringVar(&network, "vip-network-id", "", "network of the VIP")
	create.Flags().StringVar(&port, "vip-port-id", "", "existing port to take as the VIP")
	create.Flags().StringVar(&address, "vip-address", "", "VIP address")

	list := &cobra.Command{
		Use:   "list",
		Short: "List load balancers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var out struct {
				LBs []map[string]any `json:"loadbalancers"`
			}
			if err := c.Do(cmd.Context(), http.MethodGet, lbPath, nil, nil, &out); err != nil {
				return err
			}
			if a.opts.output == outputJSON {
				return printJSON(a.stdout, out.LBs)
			}
			headers := make([]string, len(lbColumns))
			for i, col := range lbColumns {
				headers[i] = col.header
			}
			rows := make([][]string, len(out.LBs))
			for i, lb := range out.LBs {
				for _, col := range lbColumns {
					rows[i] = append(rows[i], formatValue(lb[col.key]))
				}
			}
			return printTable(a.stdout, headers, rows)
		},
	}
	show := &cobra.Command{
		Use:   "show LOADBALANCER",
		Short: "Show a load balancer (by id or name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.lbFind(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.lbDo(cmd.Context(), http.MethodGet, lbPath+"/"+url.PathEscape(id), nil, nil, true)
		},
	}
	status := &cobra.Command{
		Use:   "status LOADBALANCER",
		Short: "Show a load balancer's status tree (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.lbFind(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var out map[string]any
			if err := c.Do(cmd.Context(), http.MethodGet, lbPath+"/"+url.PathEscape(id)+"/status", nil, nil, &out); err != nil {
				return err
			}
			return printJSON(a.stdout, out)
		},
	}
	failover := &cobra.Command{
		Use:   "failover LOADBALANCER",
		Short: "Move a load balancer to the next gateway chassis of its list (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.lbFind(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.lbDo(cmd.Context(), http.MethodPut, lbPath+"/"+url.PathEscape(id)+"/failover", nil, nil, false)
		},
	}
	var cascade bool
	del := &cobra.Command{
		Use:   "delete LOADBALANCER",
		Short: "Delete a load balancer (--cascade: with everything in it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.lbFind(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var q url.Values
			if cascade {
				q = url.Values{"cascade": {"true"}}
			}
			return a.lbDo(cmd.Context(), http.MethodDelete, lbPath+"/"+url.PathEscape(id), q, nil, false)
		},
	}
	del.Flags().BoolVar(&cascade, "cascade", false, "delete the listeners, pools and everything under them too")
	cmd.AddCommand(create, list, show, status, failover, del)
	return cmd
}

// lbFind resolves a load balancer's id or name to its id.
func (a *app) lbFind(ctx context.Context, idOrName string) (string, error) {
	c, err := a.client()
	if err != nil {
		return "", err
	}
	var one struct {
		LB map[string]any `json:"loadbalancer"`
	}
	err = c.Do(ctx, http.MethodGet, lbPath+"/"+url.PathEscape(idOrName), nil, nil, &one)
	if err == nil {
		return idOrName, nil
	}
	if !client.IsNotFound(err) {
		return "", err
	}
	var list struct {
		LBs []map[string]any `json:"loadbalancers"`
	}
	if err := c.Do(ctx, http.MethodGet, lbPath, url.Values{"name": {idOrName}}, nil, &list); err != nil {
		return "", err
	}
	switch len(list.LBs) {
	case 0:
		return "", fmt.Errorf("load balancer %q: %w", idOrName, client.ErrNotFound)
	case 1:
		return fmt.Sprint(list.LBs[0]["id"]), nil
	}
	return "", fmt.Errorf("load balancer %q: %w", idOrName, client.ErrNoUniqueMatch)
}

// lbDo sends one request and prints the load balancer it answers (when
// show), as rows or JSON.
func (a *app) lbDo(ctx context.Context, method, path string, q url.Values, in any, show bool) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var out struct {
		LB map[string]any `json:"loadbalancer"`
	}
	var dst any
	if show {
		dst = &out
	}
	if err := c.Do(ctx, method, path, q, in, dst); err != nil {
		return err
	}
	if !show {
		return nil
	}
	if a.opts.output == outputJSON {
		return printJSON(a.stdout, out.LB)
	}
	keys := make([]string, 0, len(out.LB))
	for k := range out.LB {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, len(keys))
	for i, k := range keys {
		rows[i] = []string{k, formatValue(out.LB[k])}
	}
	return printTable(a.stdout, []string{"Field", "Value"}, rows)
}
