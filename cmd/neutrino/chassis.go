package main

// chassisResource is our chassis extension: the Open vSwitch nodes the
// leader learned from gossip. Read only, admin only.
var chassisResource = &resource{
	collection: "chassis",
	singular:   "chassis",
	readOnly:   true,
	listColumns: []column{
		{"Name", "name"},
		{"Status", "status"},
		{"Tunnel IP", "tunnel_ip"},
		{"Roles", "roles"},
	},
	longColumns: []column{
		{"OVSDB", "ovsdb"},
		{"Encaps", "encaps"},
		{"Datapath Type", "datapath_type"},
		{"Datapath ID", "datapath_id"},
		{"Bridge Mappings", "bridge_mappings"},
		{"Last Seen", "last_seen"},
	},
	showFields: []string{
		"id", "name", "status", "tunnel_ip", "ovsdb", "roles", "encaps",
		"bridge_mappings", "datapath_type", "datapath_id", "last_seen",
		"revision_number", "created_at", "updated_at",
	},
	listFlags: []attrFlag{
		{name: "status", key: "status", kind: kindString, usage: "only chassis with this status (UP or DOWN)"},
	},
}
