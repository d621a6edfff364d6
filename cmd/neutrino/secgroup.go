package main

import "fmt"

// securityGroupResource is Neutron's security group.
var securityGroupResource = &resource{
	collection: "security-groups",
	singular:   "security_group",
	command:    "security-group",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"},
		{"Name", "name"},
		{"Description", "description"},
		{"Project", "project_id"},
	},
	longColumns: []column{
		{"Stateful", "stateful"},
		{"Tags", "tags"},
	},
	showFields: []string{
		"id", "name", "description", "project_id", "stateful", "security_group_rules",
		"tags", "revision_number", "created_at", "updated_at",
	},
	createFlags: []attrFlag{
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "stateful", key: "stateful", kind: kindSwitch, value: true, usage: "connection tracking (default)"},
		{name: "stateless", key: "stateful", kind: kindSwitch, value: false, usage: "no connection tracking"},
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
	},
	updateFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "new name"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "stateful", key: "stateful", kind: kindSwitch, value: true, usage: "connection tracking"},
		{name: "stateless", key: "stateful", kind: kindSwitch, value: false, usage: "no connection tracking"},
	},
	listFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "only groups with this name"},
		{name: "project-id", key: "project_id", kind: kindString, usage: "only groups of this project"},
	},
}

// securityGroupRuleResource is Neutron's security group rule (immutable).
var securityGroupRuleResource = &resource{
	collection: "security-group-rules",
	singular:   "security_group_rule",
	command:    "security-group-rule",
	noUpdate:   true,
	listColumns: []column{
		{"ID", "id"},
		{"IP Protocol", "protocol"},
		{"Ethertype", "ethertype"},
		{"IP Range", "remote_ip_prefix"},
		{"Port Range Min", "port_range_min"},
		{"Port Range Max", "port_range_max"},
		{"Direction", "direction"},
		{"Remote Security Group", "remote_group_id"},
		{"Security Group", "security_group_id"},
	},
	showFields: []string{
		"id", "security_group_id", "direction", "ethertype", "protocol", "port_range_min",
		"port_range_max", "remote_ip_prefix", "remote_group_id", "description", "project_id",
		"revision_number", "created_at", "updated_at",
	},
	createFlags: []attrFlag{
		{name: "security-group", key: "security_group_id", kind: kindRef, ref: securityGroupResource, usage: "group of the rule (required)"},
		{name: "direction", key: "direction", kind: kindString, usage: "ingress (default) or egress"},
		{name: "ethertype", key: "ethertype", kind: kindString, usage: "IPv4 (default) or IPv6"},
		{name: "protocol", key: "protocol", kind: kindString, usage: "tcp, udp, icmp, a number, or any"},
		{name: "port-range-min", key: "port_range_min", kind: kindInt, usage: "first port (ICMP: type)"},
		{name: "port-range-max", key: "port_range_max", kind: kindInt, usage: "last port (ICMP: code)"},
		{name: "remote-ip", key: "remote_ip_prefix", kind: kindString, usage: "remote CIDR"},
		{name: "remote-group", key: "remote_group_id", kind: kindRef, ref: securityGroupResource, usage: "remote security group"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
	},
	listFlags: []attrFlag{
		{name: "security-group", key: "security_group_id", kind: kindRef, ref: securityGroupResource, usage: "only rules of this group"},
		{name: "direction", key: "direction", kind: kindString, usage: "only ingress or egress rules"},
		{name: "protocol", key: "protocol", kind: kindString, usage: "only rules of this protocol"},
	},
}

func errUnknownKey(s, k string) error {
	return fmt.Errorf("%q: unknown key %q", s, k)
}
