package fsm

import memdb "github.com/hashicorp/go-memdb"

// lbSchemas returns the table schemas of the LBaaS model.
func lbSchemas() map[string]*memdb.TableSchema {
	idx := func(name, field string, missing bool) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: name, AllowMissing: missing, Indexer: &memdb.StringFieldIndex{Field: field}}
	}
	table := func(name string, extra ...*memdb.IndexSchema) *memdb.TableSchema {
		t := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"project": idx("project", "ProjectID", true),
		}}
		for _, x := range extra {
			t.Indexes[x.Name] = x
		}
		return t
	}
	return map[string]*memdb.TableSchema{
		// A load balancer without a usable chassis has no active one.
		TableLBLoadBalancers:  table(TableLBLoadBalancers, idx("chassis", "ActiveChassis", true)),
		TableLBListeners:      table(TableLBListeners, idx("lb", "LoadBalancerID", false)),
		TableLBPools:          table(TableLBPools, idx("lb", "LoadBalancerID", false)),
		TableLBMembers:        table(TableLBMembers, idx("lb", "LoadBalancerID", false), idx("pool", "PoolID", false)),
		TableLBHealthMonitors: table(TableLBHealthMonitors, idx("lb", "LoadBalancerID", false), idx("pool", "PoolID", false)),
		TableLBL7Policies:     table(TableLBL7Policies, idx("lb", "LoadBalancerID", false), idx("listener", "ListenerID", false)),
		TableLBL7Rules:        table(TableLBL7Rules, idx("lb", "LoadBalancerID", false), idx("policy", "L7PolicyID", false)),
	}
}

// newLBObject returns a new zero object of an LBaaS table, or nil.
func newLBObject(table string) any {
	switch table {
	case TableLBLoadBalancers:
		return new(LoadBalancer)
	case TableLBListeners:
		return new(Listener)
	case TableLBPools:
		return new(Pool)
	case TableLBMembers:
		return new(Member)
	case TableLBHealthMonitors:
		return new(HealthMonitor)
	case TableLBL7Policies:
		return new(L7Policy)
	case TableLBL7Rules:
		return new(L7Rule)
	}
	return nil
}

// lbCommandString names the LBaaS commands, "" for any other.
func lbCommandString(t CommandType) string {
	switch t {
	case CmdLBCreate:
		return "LBCreate"
	case CmdLBUpdate:
		return "LBUpdate"
	case CmdLBDelete:
		return "LBDelete"
	case CmdLBFailover:
		return "LBFailover"
	case CmdLBStatus:
		return "LBStatus"
	case CmdLBTreeChange:
		return "LBTreeChange"
	case CmdLBDeleteExpire:
		return "LBDeleteExpire"
	}
	return ""
}
