package main

// portResource is Neutron's port with the binding, port-security,
// security-group and allowed-address-pairs extensions.
var portResource = &resource{
	collection: "ports",
	singular:   "port",
	nameArg:    true,
	tags:       true,
	listColumns: []column{
		{"ID", "id"},
		{"Name", "name"},
		{"MAC Address", "mac_address"},
		{"Fixed IP Addresses", "fixed_ips"},
		{"Status", "status"},
	},
	longColumns: []column{
		{"Network", "network_id"},
		{"Device", "device_id"},
		{"Device Owner", "device_owner"},
		{"Host", "binding:host_id"},
		{"Security Groups", "security_groups"},
		{"Tags", "tags"},
	},
	showFields: []string{
		"id", "name", "description", "project_id", "network_id", "mac_address", "fixed_ips",
		"status", "admin_state_up", "device_id", "device_owner", "binding:host_id", "binding:vif_type",
		"binding:vnic_type", "port_security_enabled", "security_groups", "allowed_address_pairs",
		"tags", "revision_number", "created_at", "updated_at",
	},
	createFlags: []attrFlag{
		{name: "network", key: "network_id", kind: kindRef, ref: networkResource, usage: "network of the port (required)"},
		{name: "fixed-ip", key: "fixed_ips", kind: kindStrings, conv: parseFixedIP, usage: "address subnet=SUBNET_ID[,ip-address=IP] or ip-address=IP"},
		{name: "mac-address", key: "mac_address", kind: kindString, usage: "MAC address"},
		{name: "device", key: "device_id", kind: kindString, usage: "device (instance) id"},
		{name: "device-owner", key: "device_owner", kind: kindString, usage: "device owner (compute:nova, ...)"},
		{name: "host", key: "binding:host_id", kind: kindString, usage: "chassis to bind to (admin only)"},
		{name: "vnic-type", key: "binding:vnic_type", kind: kindString, usage: "normal, direct, macvtap, ..."},
		{name: "security-group", key: "security_groups", kind: kindStrings, usage: "security group id"},
		{name: "allowed-address", key: "allowed_address_pairs", kind: kindStrings, conv: parseAddressPair, usage: "allowed address pair ip-address=IP[,mac-address=MAC]"},
		{name: "enable-port-security", key: "port_security_enabled", kind: kindSwitch, value: true, usage: "port security on (default: the network's)"},
		{name: "disable-port-security", key: "port_security_enabled", kind: kindSwitch, value: false, usage: "port security off"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up (default)"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "project-id", key: "project_id", kind: kindString, usage: "owning project (admin only)"},
	},
	updateFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "new name"},
		{name: "description", key: "description", kind: kindString, usage: "description"},
		{name: "fixed-ip", key: "fixed_ips", kind: kindStrings, conv: parseFixedIP, usage: "address subnet=SUBNET_ID[,ip-address=IP] (replaces the addresses)"},
		{name: "device", key: "device_id", kind: kindString, usage: "device (instance) id"},
		{name: "device-owner", key: "device_owner", kind: kindString, usage: "device owner"},
		{name: "host", key: "binding:host_id", kind: kindString, usage: "chassis to bind to (admin only)"},
		{name: "security-group", key: "security_groups", kind: kindStrings, usage: "security group id (replaces the groups)"},
		{name: "no-security-group", key: "security_groups", kind: kindClear, usage: "remove every security group"},
		{name: "allowed-address", key: "allowed_address_pairs", kind: kindStrings, conv: parseAddressPair, usage: "allowed address pair ip-address=IP[,mac-address=MAC] (replaces the pairs)"},
		{name: "no-allowed-address", key: "allowed_address_pairs", kind: kindClear, usage: "remove every allowed address pair"},
		{name: "enable-port-security", key: "port_security_enabled", kind: kindSwitch, value: true, usage: "port security on"},
		{name: "disable-port-security", key: "port_security_enabled", kind: kindSwitch, value: false, usage: "port security off"},
		{name: "enable", key: "admin_state_up", kind: kindSwitch, value: true, usage: "administratively up"},
		{name: "disable", key: "admin_state_up", kind: kindSwitch, value: false, usage: "administratively down"},
	},
	listFlags: []attrFlag{
		{name: "name", key: "name", kind: kindString, usage: "only ports with this name"},
		{name: "network", key: "network_id", kind: kindRef, ref: networkResource, usage: "only ports of this network"},
		{name: "router", key: "device_id", kind: kindRef, ref: routerResource, usage: "only ports of this router"},
		{name: "device-id", key: "device_id", kind: kindString, usage: "only ports of this device"},
		{name: "device-owner", key: "device_owner", kind: kindString, usage: "only ports with this device owner"},
		{name: "mac-address", key: "mac_address", kind: kindString, usage: "only the port with this MAC address"},
	},
	formats: map[string]func(any) string{
		"admin_state_up": upDown,
	},
}

// parseFixedIP reads "subnet=ID,ip-address=IP" (either may be missing).
func parseFixedIP(s string) (any, error) {
	kv, err := keyValues(s)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range kv {
		switch k {
		case "subnet":
			out["subnet_id"] = v
		case "ip-address":
			out["ip_address"] = v
		default:
			return nil, errUnknownKey(s, k)
		}
	}
	return out, nil
}

// parseAddressPair reads "ip-address=IP[,mac-address=MAC]".
func parseAddressPair(s string) (any, error) {
	kv, err := keyValues(s, "ip-address")
	if err != nil {
		return nil, err
	}
	out := map[string]any{"ip_address": kv["ip-address"]}
	for k, v := range kv {
		switch k {
		case "ip-address":
		case "mac-address":
			out["mac_address"] = v
		default:
			return nil, errUnknownKey(s, k)
		}
	}
	return out, nil
}
