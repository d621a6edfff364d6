package main

// networkResource is Neutron's network with the provider, external-net,
// net-mtu, tag and standard-attr extensions.
var networkResource = &resource{
	collection: "networks",
	singular:   "network",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"},
		{"Name", "name"},
		{"Subnets", "subnets"},
	},
	longColumns: []column{
		{"Status", "status"},
		{"Project", "project_id"},
		{"State", "admin_state_up"},
		{"Shared", "shared"},
		{"External", "router:external"},
		{"MTU", "mtu"},
		{"Network Type", "provider:network_type"},
		{"Segment", "provider:segmentation_id"},
		{"Physical Network", "provider:physical_network"},
		{"Tags", "tags"},
	},
	showFields: []string{
		"id", "name", "description", "project_id", "status", "admin_state_up",
		"shared", "router:external", "mtu",
		"provider:network_type", "provider:segmentation_id", "provider:physical_network",
		"subnets", "tags", "revision_number", "created_at", "updated_at",
	},
	createFlags: []attrFlag{
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "shared", key: "shared", kind: kindSwitch, value: true, usage: "share the network with every project"},
		{name: "external", key: "router:external", kind: kindSwitch, value: true, usage: "make it an external network (router gateways, floating IPs)"},
		{name: "mtu", key: "mtu", kind: kindInt, usage: "MTU"},
		{name: "provider-network-type", key: "provider:network_type", kind: kindString, usage: "provider network type: flat, vlan, vxlan, gre, geneve (admin only)"},
		{name: "provider-segment", key: "provider:segmentation_id", kind: kindInt, usage: "VLAN id or tunnel key (admin only)"},
		{name: "provider-physical-network", key: "provider:physical_network", kind: kindString, usage: "physical network of a flat or VLAN network (admin only)"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up (default)"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	},
	updateFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "new name"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "mtu", key: "mtu", kind: kindInt, usage: "MTU"},
		{name: "shared", key: "shared", kind: kindSwitch, value: true, usage: "share the network with every project"},
		{name: "no-shared", key: "shared", kind: kindSwitch, value: false, usage: "stop sharing the network"},
		{name: "external", key: "router:external", kind: kindSwitch, value: true, usage: "make it an external network"},
		{name: "no-external", key: "router:external", kind: kindSwitch, value: false, usage: "make it an internal network"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	},
	listFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "only networks with this name"},
	},
	formats: map[string]func(any) string{
		"admin_state_up":  upDown,
		"router:external": func(v any) string { return pick(v, "External", "Internal") },
	},
}

// upDown shows admin_state_up as the openstack CLI does.
func upDown(v any) string { return pick(v, "UP", "DOWN") }

// pick names a boolean attribute; anything else shows as it is.
func pick(v any, yes, no string) string {
	b, ok := v.(bool)
	switch {
	case !ok:
		return formatValue(v)
	case b:
		return yes
	default:
		return no
	}
}
