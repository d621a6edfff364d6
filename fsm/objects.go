package fsm

import "slices"

// WatchTables are the tables whose objects can be read by name and
// followed from outside (the watch API): every table of the model, but
// not the internal index and request tables.
var WatchTables = []string{TableNetworks, TableSubnets, TablePorts,
	TableSecurityGroups, TableSecurityGroupRules, TableChassis, TableRouters,
	TableFloatingIPs, TableMacBindings,
	TableVPNIKEPolicies, TableVPNIPsecPolicies, TableVPNServices, TableVPNEndpointGroups, TableVPNSiteConnections,
	TableFloatingIPs, TableMacBindings, TableLBLoadBalancers, TableLBListeners,
	TableLBPools, TableLBMembers, TableLBHealthMonitors, TableLBL7Policies,
	TableLBL7Rules,
	TableFWRules, TableFWPolicies, TableFWGroups}

// IsWatchTable reports whether table is one of WatchTables.
func IsWatchTable(table string) bool { return slices.Contains(WatchTables, table) }

// NewObject returns a new zero object of a WatchTables table's type (for
// decoding), or nil for any other table.
func NewObject(table string) any {
	switch table {
	case TableNetworks:
		return new(Network)
	case TableSubnets:
		return new(Subnet)
	case TablePorts:
		return new(Port)
	case TableSecurityGroups:
		return new(SecurityGroup)
	case TableSecurityGroupRules:
		return new(SecurityGroupRule)
	case TableChassis:
		return new(Chassis)
	case TableRouters:
		return new(Router)
	case TableFloatingIPs:
		return new(FloatingIP)
	case TableMacBindings:
		return new(MacBinding)
	}
	if o := newVPNObject(table); o != nil {
		return o
	}
	if o := newLBObject(table); o != nil {
		return o
	}
	return newFWObject(table)
}

// Object returns the object of a WatchTables table with the id (a Change's
// ID), or nil.
func (v *View) Object(table, id string) any {
	if !IsWatchTable(table) {
		return nil
	}
	raw, err := v.txn.First(table, "id", id)
	if err != nil || raw == nil {
		return nil
	}
	return raw
}

// Objects returns every object of a WatchTables table, ordered by id.
func (v *View) Objects(table string) []any {
	if !IsWatchTable(table) {
		return nil
	}
	return all[any](v.txn, table, "id")
}

// ObjectID is the id a Change names obj by.
func ObjectID(obj any) string {
	switch o := obj.(type) {
	case Object:
		return o.GetMeta().ID
	case *MacBinding:
		return o.ID()
	}
	return ""
}
