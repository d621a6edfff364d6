package main

import "github.com/spf13/cobra"

// VPN as a service (Neutron VPNaaS): `neutrino vpn ike-policy|ipsec-policy|
// service|endpoint-group|site-connection ...`, the generic resource
// commands under one parent, as `openstack vpn ...` groups them.

func vpnPolicyFlags(update bool, extra ...attrFlag) []attrFlag {
	flags := []attrFlag{
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "auth-algorithm", key: "auth_algorithm", kind: kindString, usage: "sha1 (default), sha256, sha384, sha512"},
		{name: "encryption-algorithm", key: "encryption_algorithm", kind: kindString, usage: "aes-128 (default), aes-192, aes-256, 3des, ..."},
		{name: "pfs", key: "pfs", kind: kindString, usage: "Diffie-Hellman group for perfect forward secrecy: group5 (default), group2, group14, ..."},
		{name: "lifetime", key: "lifetime.value", kind: kindInt, usage: "SA lifetime in seconds (default 3600, at least 60)"},
	}
	if update {
		flags = append(flags, attrFlag{name: "name", key: "name", kind: kindString, usage: "new name"})
	} else {
		flags = append(flags, attrFlag{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"})
	}
	return append(flags, extra...)
}

var ikePolicyFlags = []attrFlag{
	{name: "ike-version", key: "ike_version", kind: kindString, usage: "v1 (default) or v2"},
	{name: "phase1-negotiation-mode", key: "phase1_negotiation_mode", kind: kindString, usage: "main (default) or aggressive"},
}

var ipsecPolicyFlags = []attrFlag{
	{name: "transform-protocol", key: "transform_protocol", kind: kindString, usage: "esp (default), ah or ah-esp"},
	{name: "encapsulation-mode", key: "encapsulation_mode", kind: kindString, usage: "tunnel (default) or transport"},
}

var vpnIKEPolicyResource = &resource{
	collection: "vpn/ikepolicies",
	singular:   "ikepolicy",
	command:    "ike-policy",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"}, {"Name", "name"}, {"Authentication Algorithm", "auth_algorithm"},
		{"Encryption Algorithm", "encryption_algorithm"}, {"IKE Version", "ike_version"}, {"Perfect Forward Secrecy (PFS)", "pfs"},
	},
	showFields: []string{"id", "name", "description", "project_id", "auth_algorithm", "encryption_algorithm",
		"ike_version", "pfs", "phase1_negotiation_mode", "lifetime"},
	createFlags: vpnPolicyFlags(false, ikePolicyFlags...),
	updateFlags: vpnPolicyFlags(true, ikePolicyFlags...),
	listFlags:   []attrFlag{{name: "name", key: "name", kind: kindString, usage: "only policies with this name"}},
}

var vpnIPsecPolicyResource = &resource{
	collection: "vpn/ipsecpolicies",
	singular:   "ipsecpolicy",
	command:    "ipsec-policy",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"}, {"Name", "name"}, {"Authentication Algorithm", "auth_algorithm"},
		{"Encryption Algorithm", "encryption_algorithm"}, {"Transform Protocol", "transform_protocol"}, {"Perfect Forward Secrecy (PFS)", "pfs"},
	},
	showFields: []string{"id", "name", "description", "project_id", "auth_algorithm", "encryption_algorithm",
		"transform_protocol", "encapsulation_mode", "pfs", "lifetime"},
	createFlags: vpnPolicyFlags(false, ipsecPolicyFlags...),
	updateFlags: vpnPolicyFlags(true, ipsecPolicyFlags...),
	listFlags:   []attrFlag{{name: "name", key: "name", kind: kindString, usage: "only policies with this name"}},
}

var vpnServiceResource = &resource{
	collection: "vpn/vpnservices",
	singular:   "vpnservice",
	command:    "service",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"}, {"Name", "name"}, {"Router", "router_id"}, {"Subnet", "subnet_id"}, {"Status", "status"},
		{"External IPv4", "external_v4_ip"},
	},
	showFields: []string{"id", "name", "description", "project_id", "router_id", "subnet_id", "status",
		"admin_state_up", "external_v4_ip", "external_v6_ip"},
	createFlags: []attrFlag{
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "router", key: "router_id", kind: kindRef, ref: routerResource, usage: "router whose gateway terminates the connections (required)"},
		{name: "subnet", key: "subnet_id", kind: kindRef, ref: subnetResource, usage: "local subnet (legacy form: connections then take --peer-cidr)"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up (default)"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	},
	updateFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "new name"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	},
	listFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "only services with this name"},
		{name: "router", key: "router_id", kind: kindRef, ref: routerResource, usage: "only services of this router"},
	},
	formats: map[string]func(any) string{"admin_state_up": upDown},
}

var vpnEndpointGroupResource = &resource{
	collection:  "vpn/endpoint-groups",
	singular:    "endpoint_group",
	command:     "endpoint-group",
	nameArg:     true,
	tags:        true,
	listColumns: []column{{"ID", "id"}, {"Name", "name"}, {"Type", "type"}, {"Endpoints", "endpoints"}},
	showFields:  []string{"id", "name", "description", "project_id", "type", "endpoints"},
	createFlags: []attrFlag{
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "type", key: "type", kind: kindString, usage: "subnet (local subnets by id) or cidr (peer CIDRs)"},
		{name: "value", key: "endpoints", kind: kindStrings, usage: "an endpoint: a subnet id or a CIDR"},
	},
	updateFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "new name"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
	},
	listFlags: []attrFlag{{name: "name", key: "name", kind: kindString, usage: "only groups with this name"}},
}

// vpnConnectionFlags are the attributes a site connection may change.
var vpnConnectionFlags = []attrFlag{
	{name: "description", key: "description", kind: kindString, usage: "description"},
	{name: "peer-address", key: "peer_address", kind: kindString, usage: "the peer gateway's address (or a name to resolve)"},
	{name: "peer-id", key: "peer_id", kind: kindString, usage: "the peer's IKE identity"},
	{name: "local-id", key: "local_id", kind: kindString, usage: "our IKE identity (default: the external address)"},
	{name: "psk", key: "psk", kind: kindString, usage: "pre-shared key (stored, never shown)"},
	{name: "peer-cidr", key: "peer_cidrs", kind: kindStrings, usage: "peer CIDR (legacy form, with a service that has a subnet)"},
	{name: "local-endpoint-group", key: "local_ep_group_id", kind: kindRef, ref: vpnEndpointGroupResource, usage: "local endpoint group (type subnet)"},
	{name: "peer-endpoint-group", key: "peer_ep_group_id", kind: kindRef, ref: vpnEndpointGroupResource, usage: "peer endpoint group (type cidr)"},
	{name: "mtu", key: "mtu", kind: kindInt, usage: "MTU (default 1500; at least 68, 1280 for IPv6)"},
	{name: "initiator", key: "initiator", kind: kindString, usage: "bi-directional (default) or response-only"},
	{name: "dpd-action", key: "dpd.action", kind: kindString, usage: "dead peer detection action: hold (default), clear, restart, disabled, restart-by-peer"},
	{name: "dpd-interval", key: "dpd.interval", kind: kindInt, usage: "dead peer detection interval in seconds (default 30)"},
	{name: "dpd-timeout", key: "dpd.timeout", kind: kindInt, usage: "dead peer detection timeout in seconds (default 120; above the interval)"},
	{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up"},
	{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
}

var vpnSiteConnectionResource = &resource{
	collection: "vpn/ipsec-site-connections",
	singular:   "ipsec_site_connection",
	command:    "site-connection",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"}, {"Name", "name"}, {"Peer Address", "peer_address"}, {"Auth Mode", "auth_mode"},
		{"Status", "status"},
	},
	longColumns: []column{{"VPN Service", "vpnservice_id"}, {"Local Endpoint Group", "local_ep_group_id"},
		{"Peer Endpoint Group", "peer_ep_group_id"}, {"Peer CIDRs", "peer_cidrs"}},
	showFields: []string{"id", "name", "description", "project_id", "status", "admin_state_up", "vpnservice_id",
		"ikepolicy_id", "ipsecpolicy_id", "peer_address", "peer_id", "local_id", "local_ep_group_id",
		"peer_ep_group_id", "peer_cidrs", "mtu", "initiator", "dpd", "route_mode", "auth_mode"},
	createFlags: append([]attrFlag{
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
		{name: "vpnservice", key: "vpnservice_id", kind: kindRef, ref: vpnServiceResource, usage: "VPN service (required)"},
		{name: "ikepolicy", key: "ikepolicy_id", kind: kindRef, ref: vpnIKEPolicyResource, usage: "IKE policy (required)"},
		{name: "ipsecpolicy", key: "ipsecpolicy_id", kind: kindRef, ref: vpnIPsecPolicyResource, usage: "IPsec policy (required)"},
	}, vpnConnectionFlags...),
	updateFlags: append([]attrFlag{{name: "name", key: "name", kind: kindString, usage: "new name"}}, vpnConnectionFlags...),
	listFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "only connections with this name"},
		{name: "vpnservice", key: "vpnservice_id", kind: kindRef, ref: vpnServiceResource, usage: "only connections of this VPN service"},
	},
	formats: map[string]func(any) string{"admin_state_up": upDown},
}

// vpnResources are the commands under `neutrino vpn`, in help order.
var vpnResources = []*resource{
	vpnIKEPolicyResource, vpnIPsecPolicyResource, vpnServiceResource, vpnEndpointGroupResource, vpnSiteConnectionResource,
}

func newVPNCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "vpn", Short: "Manage VPN as a service (IPsec site-to-site: policies, services, endpoint groups, connections)"}
	for _, r := range vpnResources {
		cmd.AddCommand(newResourceCmd(a, r))
	}
	return cmd
}
