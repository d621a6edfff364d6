package fsm

import (
	"fmt"
	"maps"

	memdb "github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableIndex    = "index"
	TableNetworks = "networks"

	TableSubnets            = "subnets"
	TablePorts              = "ports"
	TableSecurityGroups     = "security_groups"
	TableSecurityGroupRules = "security_group_rules"

	TableChassis = "chassis"

	TableRouters     = "routers"
	TableFloatingIPs = "floating_ips"
)

// Keys of the index table that are not table names.
const (
	indexRevision = "revision"
	indexEpoch    = "epoch"
)

// indexEntry is a row of the index table: the latest Raft index that
// changed a table, and the cluster-wide revision and epoch.
type indexEntry struct {
	Key   string
	Value uint64
}

func schema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableIndex: {
			Name: tableIndex,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
		TableNetworks: {
			Name: TableNetworks,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"key":     keyIndexSchema(),
				"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
				"segment": {Name: "segment", Indexer: segmentIndexer{}},
			},
		},
		TableSubnets: {
			Name: TableSubnets,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
				"network": {Name: "network", Indexer: &memdb.StringFieldIndex{Field: "NetworkID"}},
			},
		},
		TablePorts: {
			Name: TablePorts,
			Indexes: map[string]*memdb.IndexSchema{
				"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"key": keyIndexSchema(),
				// Router gateway and floating IP ports belong to no project.
				"project":  {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
				"network":  {Name: "network", Indexer: &memdb.StringFieldIndex{Field: "NetworkID"}},
				"device":   {Name: "device", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "DeviceID"}},
				"ip":       {Name: "ip", AllowMissing: true, Indexer: portIPIndexer{}},
				"mac":      {Name: "mac", Indexer: portMACIndexer{}},
				"secgroup": {Name: "secgroup", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "SecurityGroups"}},
				// Unbound ports have no host.
				"host": {Name: "host", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "BindingHostID"}},
			},
		},
		TableSecurityGroups: {
			Name: TableSecurityGroups,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
			},
		},
		TableSecurityGroupRules: {
			Name: TableSecurityGroupRules,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"key":     keyIndexSchema(),
				"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
				"group":   {Name: "group", Indexer: &memdb.StringFieldIndex{Field: "SecurityGroupID"}},
				"remote":  {Name: "remote", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "RemoteGroupID"}},
			},
		},
		TableChassis: {
			Name: TableChassis,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			},
		},
		TableRouters: {
			Name: TableRouters,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"key":     keyIndexSchema(),
				"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
			},
		},
		TableMacBindings: {
			Name: TableMacBindings,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: macBindingIDIndexer{}},
				"network": {Name: "network", Indexer: &memdb.StringFieldIndex{Field: "NetworkID"}},
			},
		},
		TableRequests: requestsSchema(),
		TableFloatingIPs: {
			Name: TableFloatingIPs,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
				"network": {Name: "network", Indexer: &memdb.StringFieldIndex{Field: "FloatingNetworkID"}},
				"port":    {Name: "port", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "PortID"}},
				"router":  {Name: "router", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "RouterID"}},
			},
		},
	}}
	for name, t := range vpnSchemas() {
		s.Tables[name] = t
	}
	maps.Copy(s.Tables, lbSchemas())
	maps.Copy(s.Tables, fwSchemas())
	s.Tables[TableQuotas] = quotaSchema()
	s.Tables[TableAgents] = agentSchema()
	s.Tables[TableRBACPolicies] = rbacSchema()
	s.Tables[TableSubnetPools] = subnetPoolSchema()
	s.Tables[TableQoSPolicies] = qosSchema()
	s.Tables[TableTrunks] = trunkSchema()
	return s
}

// segmentIndexer indexes networks by SegmentKey so a duplicate segment is
// found without a scan.
type segmentIndexer struct{}

func (segmentIndexer) FromObject(obj any) (bool, []byte, error) {
	n, ok := obj.(*Network)
	if !ok {
		return false, nil, fmt.Errorf("segment index: %T is not a network", obj)
	}
	return true, []byte(n.SegmentKey() + "\x00"), nil
}

func (segmentIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("segment index takes one argument")
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("segment index: argument %T is not a string", args[0])
	}
	return []byte(s + "\x00"), nil
}
