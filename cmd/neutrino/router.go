package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
)

// routerResource is Neutron's router with the ext-gw-mode, extraroute,
// dvr, l3-ha and neutrino-gateway-chassis extensions. show prints the
// neutrino:* gateway chassis attributes when the API shows them (admins).
var routerResource = &resource{
	collection: "routers",
	singular:   "router",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"},
		{"Name", "name"},
		{"Status", "status"},
		{"State", "admin_state_up"},
		{"Project", "project_id"},
	},
	longColumns: []column{
		{"Distributed", "distributed"},
		{"HA", "ha"},
		{"External Gateway", "external_gateway_info"},
		{"Gateway Chassis", "neutrino:gateway_chassis"},
		{"Active Gateway", "neutrino:active_gateway_chassis"},
		{"Routes", "routes"},
		{"Tags", "tags"},
	},
	showFields: []string{
		"id", "name", "description", "project_id", "status", "admin_state_up",
		"external_gateway_info", "routes", "distributed", "ha",
		"tags", "revision_number", "created_at", "updated_at",
	},
	createFlags: []attrFlag{
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "external-gateway", key: "external_gateway_info.network_id", kind: kindRef, ref: networkResource, usage: "external network of the router's gateway"},
		{name: "enable-snat", key: "external_gateway_info.enable_snat", kind: kindSwitch, value: true, usage: "source NAT on the gateway (default; admin only)"},
		{name: "disable-snat", key: "external_gateway_info.enable_snat", kind: kindSwitch, value: false, usage: "no source NAT on the gateway (admin only)"},
		{name: "distributed", key: "distributed", kind: kindSwitch, value: true, usage: "distributed router (admin only)"},
		{name: "centralized", key: "distributed", kind: kindSwitch, value: false, usage: "centralized router (admin only)"},
		{name: "ha", key: "ha", kind: kindSwitch, value: true, usage: "highly available router (admin only)"},
		{name: "no-ha", key: "ha", kind: kindSwitch, value: false, usage: "not highly available (admin only)"},
		{name: "gateway-chassis", key: "neutrino:gateway_chassis", kind: kindList, usage: "gateway chassis of the external gateway, highest priority first (admin only; default: scheduled)"},
		{name: "gateway-preempt", key: "neutrino:gateway_preempt", kind: kindSwitch, value: true, usage: "move the gateway back to a higher-priority chassis when it recovers (admin only)"},
		{name: "no-gateway-preempt", key: "neutrino:gateway_preempt", kind: kindSwitch, value: false, usage: "leave the gateway where it is when a chassis recovers (default; admin only)"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up (default)"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	},
	updateFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "new name"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "external-gateway", key: "external_gateway_info.network_id", kind: kindRef, ref: networkResource, usage: "set the gateway on this external network"},
		{name: "no-external-gateway", key: "external_gateway_info", kind: kindClear, usage: "remove the gateway"},
		{name: "enable-snat", key: "external_gateway_info.enable_snat", kind: kindSwitch, value: true, usage: "source NAT on the gateway (with --external-gateway; admin only)"},
		{name: "disable-snat", key: "external_gateway_info.enable_snat", kind: kindSwitch, value: false, usage: "no source NAT on the gateway (with --external-gateway; admin only)"},
		{name: "route", key: "routes", kind: kindStrings, conv: parseRoute, usage: "extra route destination=CIDR,gateway=IP (replaces the routes)"},
		{name: "no-route", key: "routes", kind: kindClear, usage: "remove every extra route"},
		{name: "distributed", key: "distributed", kind: kindSwitch, value: true, usage: "distributed router (admin only)"},
		{name: "centralized", key: "distributed", kind: kindSwitch, value: false, usage: "centralized router (admin only)"},
		{name: "ha", key: "ha", kind: kindSwitch, value: true, usage: "highly available router (admin only)"},
		{name: "no-ha", key: "ha", kind: kindSwitch, value: false, usage: "not highly available (admin only)"},
		{name: "gateway-chassis", key: "neutrino:gateway_chassis", kind: kindList, usage: "gateway chassis of the external gateway, highest priority first (admin only)"},
		{name: "no-gateway-chassis", key: "neutrino:gateway_chassis", kind: kindClear, usage: "let the scheduler choose the gateway chassis (admin only)"},
		{name: "gateway-preempt", key: "neutrino:gateway_preempt", kind: kindSwitch, value: true, usage: "move the gateway back to a higher-priority chassis when it recovers (admin only)"},
		{name: "no-gateway-preempt", key: "neutrino:gateway_preempt", kind: kindSwitch, value: false, usage: "leave the gateway where it is when a chassis recovers (admin only)"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	},
	listFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "only routers with this name"},
		{name: "project-id", key: "project_id", kind: kindString, usage: "only routers of this project"},
	},
	formats: map[string]func(any) string{
		"admin_state_up": upDown,
	},
	extra: routerInterfaceCmds,
}

// floatingIPResource is Neutron's floating IP.
var floatingIPResource = &resource{
	collection: "floatingips",
	singular:   "floatingip",
	command:    "floating-ip",
	tags:       true,
	listColumns: []column{
		{"ID", "id"},
		{"Floating IP Address", "floating_ip_address"},
		{"Fixed IP Address", "fixed_ip_address"},
		{"Port", "port_id"},
		{"Floating Network", "floating_network_id"},
		{"Project", "project_id"},
	},
	longColumns: []column{
		{"Router", "router_id"},
		{"Status", "status"},
		{"Description", "description"},
		{"Tags", "tags"},
	},
	showFields: []string{
		"id", "floating_ip_address", "floating_network_id", "fixed_ip_address", "port_id",
		"router_id", "status", "description", "project_id",
		"tags", "revision_number", "created_at", "updated_at",
	},
	createFlags: []attrFlag{
		{name: "network", key: "floating_network_id", kind: kindRef, ref: networkResource, usage: "external network to take the address from (required)"},
		{name: "subnet", key: "subnet_id", kind: kindRef, ref: subnetResource, usage: "subnet of the external network to take the address from"},
		{name: "floating-ip-address", key: "floating_ip_address", kind: kindString, usage: "this address (admin only)"},
		{name: "port", key: "port_id", kind: kindRef, ref: portResource, usage: "associate with this port"},
		{name: "fixed-ip-address", key: "fixed_ip_address", kind: kindString, usage: "fixed address of the port to associate with"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
	},
	updateFlags: []attrFlag{
		{name: "port", key: "port_id", kind: kindRef, ref: portResource, usage: "associate with this port"},
		{name: "no-port", key: "port_id", kind: kindClear, usage: "disassociate from its port"},
		{name: "fixed-ip-address", key: "fixed_ip_address", kind: kindString, usage: "fixed address of the port to associate with"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
	},
	listFlags: []attrFlag{
		{name: "network", key: "floating_network_id", kind: kindRef, ref: networkResource, usage: "only floating IPs of this external network"},
		{name: "port", key: "port_id", kind: kindRef, ref: portResource, usage: "only floating IPs of this port"},
		{name: "router", key: "router_id", kind: kindRef, ref: routerResource, usage: "only floating IPs through this router"},
		{name: "status", key: "status", kind: kindString, usage: "only floating IPs with this status (ACTIVE or DOWN)"},
		{name: "project-id", key: "project_id", kind: kindString, usage: "only floating IPs of this project"},
	},
}

// parseRoute reads "destination=CIDR,gateway=IP" as the openstack CLI does.
func parseRoute(s string) (any, error) {
	kv, err := keyValues(s, "destination", "gateway")
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParsePrefix(kv["destination"]); err != nil {
		return nil, fmt.Errorf("route %q: destination must be a CIDR", s)
	}
	if _, err := netip.ParseAddr(kv["gateway"]); err != nil {
		return nil, fmt.Errorf("route %q: gateway must be an IP address", s)
	}
	return map[string]any{"destination": kv["destination"], "nexthop": kv["gateway"]}, nil
}

// keyValues reads "k1=v1,k2=v2" where every key is one of keys; all of
// required must be present.
func keyValues(s string, required ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value pairs separated by commas", s)
		}
		out[k] = v
	}
	for _, k := range required {
		if out[k] == "" {
			return nil, fmt.Errorf("%q: %s= is required", s, k)
		}
	}
	return out, nil
}

// routerInterfaceCmds are `router add interface` and `router remove
// interface`: ROUTER --subnet SUBNET | --port PORT. (Subnets and ports
// are named by collection: the port descriptor refers to routers.)
func routerInterfaceCmds(a *app, r *resource) []*cobra.Command {
	verb := func(action, short string) *cobra.Command {
		iface := &cobra.Command{
			Use:               "interface ROUTER (--subnet SUBNET | --port PORT)",
			Short:             short,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: a.completeNames(r),
		}
		subnet := iface.Flags().String("subnet", "", "subnet (id or name): the interface takes its gateway address")
		port := iface.Flags().String("port", "", "existing port (id or name) to use as the interface")
		markNoEnv(iface.Flags(), "subnet", "port")
		iface.MarkFlagsMutuallyExclusive("subnet", "port")
		iface.MarkFlagsOneRequired("subnet", "port")
		iface.RunE = func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			router, err := c.Find(ctx, r.collection, r.singular, args[0])
			if err != nil {
				return err
			}
			body := map[string]any{}
			if *subnet != "" {
				obj, err := c.Find(ctx, "subnets", "subnet", *subnet)
				if err != nil {
					return err
				}
				body["subnet_id"] = obj["id"]
			} else {
				obj, err := c.Find(ctx, "ports", "port", *port)
				if err != nil {
					return err
				}
				body["port_id"] = obj["id"]
			}
			var info map[string]any
			id, _ := router["id"].(string)
			if err := c.Do(ctx, "PUT", "/v2.0/routers/"+id+"/"+action+"_router_interface", nil, body, &info); err != nil {
				return err
			}
			return a.printObject(&resource{showFields: []string{"id", "port_id", "subnet_id", "network_id", "project_id"}}, info)
		}
		group := &cobra.Command{Use: action, Short: short}
		group.AddCommand(iface)
		return group
	}
	return []*cobra.Command{
		verb("add", "Attach a subnet or a port to a router"),
		verb("remove", "Detach a subnet or a port from a router"),
	}
}
