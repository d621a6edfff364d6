package fsm

// Firewall as a service (issue 16): the Neutron FWaaS v2 model.
//
// Rules are ordered by the policies that list them; a group names an
// ingress and an egress policy and the ports (router interfaces and VM
// ports) it is enforced on. Every rule and group carries a small integer
// Key allocated here, so the flow compiler can name them in cookies and
// registers without hashing ids, and every replica agrees on it.

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// FWaaS table names.
const (
	TableFWRules    = "fw_rules"
	TableFWPolicies = "fw_policies"
	TableFWGroups   = "fw_groups"
)

// FWaaS commands (140-159). Values are persisted in the Raft log: never
// renumber.
const (
	CmdFirewallRuleCreate   CommandType = 140
	CmdFirewallRuleUpdate   CommandType = 141
	CmdFirewallRuleDelete   CommandType = 142
	CmdFirewallPolicyCreate CommandType = 143
	// CmdFirewallPolicyUpdate also carries insert_rule / remove_rule: the
	// leader computes the new ordered rule list.
	CmdFirewallPolicyUpdate CommandType = 144
	CmdFirewallPolicyDelete CommandType = 145
	CmdFirewallGroupCreate  CommandType = 146
	CmdFirewallGroupUpdate  CommandType = 147
	CmdFirewallGroupDelete  CommandType = 148
	// CmdFirewallGroupStatus sets groups' status from the data path's
	// report (FirewallGroupStatusRequest).
	CmdFirewallGroupStatus CommandType = 149
	// CmdFirewallDefaults creates a project's default firewall group with
	// its default policies and rules, as neutron-fwaas does on first use.
	CmdFirewallDefaults CommandType = 150
)

// Firewall group statuses (Neutron's).
const (
	FirewallStatusActive   = "ACTIVE"
	FirewallStatusInactive = "INACTIVE"
	FirewallStatusDown     = "DOWN"
	FirewallStatusError    = "ERROR"
)

// Firewall rule actions and protocols ("" is any protocol).
const (
	FirewallAllow  = "allow"
	FirewallDeny   = "deny"
	FirewallReject = "reject"

	FirewallProtoTCP  = "tcp"
	FirewallProtoUDP  = "udp"
	FirewallProtoICMP = "icmp"
)

// Key ranges. Group keys fit 16 bits (a register half); rule keys 24 bits.
const (
	FirewallGroupKeyMax = 1<<16 - 1
	FirewallRuleKeyMax  = 1<<24 - 1
)

// The names neutron-fwaas gives a project's default objects.
const (
	FirewallDefaultGroup         = "default"
	FirewallDefaultIngressPolicy = "default ingress"
	FirewallDefaultEgressPolicy  = "default egress"
)

// Neutron error types of the FWaaS handlers (neutron_lib's
// exceptions/firewall_v2.py and neutron-fwaas' own).
const (
	ErrTypeFirewallRuleNotFound          = "FirewallRuleNotFound"
	ErrTypeFirewallPolicyNotFound        = "FirewallPolicyNotFound"
	ErrTypeFirewallGroupNotFound         = "FirewallGroupNotFound"
	ErrTypeFirewallRuleInUse             = "FirewallRuleInUse"
	ErrTypeFirewallPolicyInUse           = "FirewallPolicyInUse"
	ErrTypeFirewallGroupInUse            = "FirewallGroupInUse"
	ErrTypeFirewallGroupPortInUse        = "FirewallGroupPortInUse"
	ErrTypeFirewallGroupPortInvalid      = "FirewallGroupPortInvalid"
	ErrTypeFirewallGroupPortProject      = "FirewallGroupPortInvalidProject"
	ErrTypeFirewallPolicyConflict        = "FirewallPolicyConflict"
	ErrTypeFirewallRuleConflict          = "FirewallRuleConflict"
	ErrTypeFirewallPolicySharingConflict = "FirewallPolicySharingConflict"
	ErrTypeFirewallRuleSharingConflict   = "FirewallRuleSharingConflict"
	ErrTypeFirewallRuleAlreadyAssociated = "FirewallRuleAlreadyAssociated"
	ErrTypeFirewallRuleNotAssociated     = "FirewallRuleNotAssociatedWithPolicy"
	ErrTypeFirewallCannotRemoveDefault   = "FirewallGroupCannotRemoveDefault"
	ErrTypeFirewallDefaultExists         = "FirewallDefaultParameterExists"
	ErrTypeFirewallDefaultRestricted     = "FirewallDefaultObjectUpdateRestricted"
	ErrTypeFirewallKeysExhausted         = "FirewallKeysExhausted"
	ErrTypeFirewallDuplicate             = "FirewallObjectDuplicated"
)

// FirewallRule is a Neutron FWaaS v2 firewall rule.
type FirewallRule struct {
	Meta
	Protocol  string // tcp, udp, icmp, or "" for any
	IPVersion int    // 4 or 6
	// SourceIP and DestinationIP are "" (any) or a canonical CIDR (a
	// plain address is stored as /32 or /128).
	SourceIP      string
	DestinationIP string
	// Port ranges: 0,0 is any; min == max for one port.
	SourcePortMin, SourcePortMax           int
	DestinationPortMin, DestinationPortMax int
	Action                                 string // allow, deny, reject
	Enabled                                bool
	Shared                                 bool
	// Key is unique among rules, 1..FirewallRuleKeyMax, kept while the
	// rule exists: one above the highest in use (the lowest free once the
	// space is used up to its top).
	Key uint32
}

// Copy returns a deep copy that may be changed.
func (r *FirewallRule) Copy() *FirewallRule {
	c := *r
	c.Tags = slices.Clone(r.Tags)
	return &c
}

// FirewallPolicy is an ordered list of firewall rules: first match wins.
type FirewallPolicy struct {
	Meta
	Rules   []string // rule ids in policy order
	Audited bool
	Shared  bool
}

// Copy returns a deep copy that may be changed.
func (p *FirewallPolicy) Copy() *FirewallPolicy {
	c := *p
	c.Tags = slices.Clone(p.Tags)
	c.Rules = slices.Clone(p.Rules)
	return &c
}

// FirewallGroup applies an ingress and an egress policy to ports.
type FirewallGroup struct {
	Meta
	IngressPolicyID string // "" = none
	EgressPolicyID  string // "" = none
	Ports           []string
	AdminStateUp    bool
	Shared          bool
	Status          string
	// Key is unique among groups, the lowest free in 1..FirewallGroupKeyMax.
	Key uint32
}

// Copy returns a deep copy that may be changed.
func (g *FirewallGroup) Copy() *FirewallGroup {
	c := *g
	c.Tags = slices.Clone(g.Tags)
	c.Ports = slices.Clone(g.Ports)
	return &c
}

// IsDefault reports whether the group is its project's default group.
func (g *FirewallGroup) IsDefault() bool { return g.Name == FirewallDefaultGroup }

// FirewallRuleCreateRequest creates a rule; the state machine sets Key.
type FirewallRuleCreateRequest struct{ Rule *FirewallRule }

// FirewallRuleUpdateRequest replaces a rule (compare-and-set on
// PrevIndex); the policies that list it become unaudited.
type FirewallRuleUpdateRequest struct {
	Rule      *FirewallRule
	PrevIndex uint64
}

// FirewallPolicyCreateRequest creates a policy.
type FirewallPolicyCreateRequest struct{ Policy *FirewallPolicy }

// FirewallPolicyUpdateRequest replaces a policy (compare-and-set); the
// leader computed Rules for insert_rule / remove_rule.
type FirewallPolicyUpdateRequest struct {
	Policy    *FirewallPolicy
	PrevIndex uint64
}

// FirewallGroupCreateRequest creates a group; the state machine sets Key
// and Status.
type FirewallGroupCreateRequest struct{ Group *FirewallGroup }

// FirewallGroupUpdateRequest replaces a group (compare-and-set).
type FirewallGroupUpdateRequest struct {
	Group     *FirewallGroup
	PrevIndex uint64
}

// FirewallDeleteRequest deletes an FWaaS object by id (the command names
// the table). WithPolicies also deletes a group's policies when no other
// group uses them (an admin deleting a default group, as neutron-fwaas).
type FirewallDeleteRequest struct {
	ID           string
	WithPolicies bool
}

// FirewallGroupStatusRequest sets groups' status by id (the data path's
// report: ERROR when a group could not be realized). A group whose status
// the state machine derives as DOWN or INACTIVE keeps it.
type FirewallGroupStatusRequest struct {
	Statuses  map[string]string
	UpdatedAt string
}

// FirewallDefaultsRequest creates a project's default group, its two
// policies and their rules in one command; it fails with
// FirewallDefaultParameterExists when the project has one already.
type FirewallDefaultsRequest struct {
	Rules    []*FirewallRule
	Policies []*FirewallPolicy
	Group    *FirewallGroup
}

// keyIndexer indexes an object's uint32 Key in big-endian order, so the
// index iterates keys in numeric order (memdb's UintFieldIndex uses
// varints, which do not sort).
type keyIndexer struct{}

func keyBytes(k uint32) []byte { return binary.BigEndian.AppendUint32(nil, k) }

func (keyIndexer) FromObject(obj any) (bool, []byte, error) {
	switch o := obj.(type) {
	case *FirewallRule:
		return true, keyBytes(o.Key), nil
	case *FirewallGroup:
		return true, keyBytes(o.Key), nil
	}
	return false, nil, fmt.Errorf("key index: %T has no firewall key", obj)
}

func (keyIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("key index takes one argument")
	}
	k, ok := args[0].(uint32)
	if !ok {
		return nil, fmt.Errorf("key index: argument %T is not a uint32", args[0])
	}
	return keyBytes(k), nil
}

func fwSchemas() map[string]*memdb.TableSchema {
	table := func(name string, extra ...*memdb.IndexSchema) *memdb.TableSchema {
		t := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
		}}
		for _, x := range extra {
			t.Indexes[x.Name] = x
		}
		return t
	}
	key := &memdb.IndexSchema{Name: "key", Unique: true, Indexer: keyIndexer{}}
	slice := func(name, field string) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: field}}
	}
	field := func(name, f string) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: f}}
	}
	return map[string]*memdb.TableSchema{
		TableFWRules:    table(TableFWRules, key),
		TableFWPolicies: table(TableFWPolicies, slice("rule", "Rules")),
		TableFWGroups: table(TableFWGroups, &memdb.IndexSchema{Name: "key", Unique: true, Indexer: keyIndexer{}},
			slice("port", "Ports"), field("ingress", "IngressPolicyID"), field("egress", "EgressPolicyID")),
	}
}

// newFWObject returns a new zero object of an FWaaS table, or nil.
func newFWObject(table string) any {
	switch table {
	case TableFWRules:
		return new(FirewallRule)
	case TableFWPolicies:
		return new(FirewallPolicy)
	case TableFWGroups:
		return new(FirewallGroup)
	}
	return nil
}

var fwCommandNames = map[CommandType]string{
	CmdFirewallRuleCreate: "FirewallRuleCreate", CmdFirewallRuleUpdate: "FirewallRuleUpdate", CmdFirewallRuleDelete: "FirewallRuleDelete",
	CmdFirewallPolicyCreate: "FirewallPolicyCreate", CmdFirewallPolicyUpdate: "FirewallPolicyUpdate", CmdFirewallPolicyDelete: "FirewallPolicyDelete",
	CmdFirewallGroupCreate: "FirewallGroupCreate", CmdFirewallGroupUpdate: "FirewallGroupUpdate", CmdFirewallGroupDelete: "FirewallGroupDelete",
	CmdFirewallGroupStatus: "FirewallGroupStatus", CmdFirewallDefaults: "FirewallDefaults",
}

// FirewallRule returns the rule with the id, or nil.
func (v *View) FirewallRule(id string) *FirewallRule {
	return first[*FirewallRule](v.txn, TableFWRules, "id", id)
}

// FirewallRules returns every rule, ordered by id.
func (v *View) FirewallRules() []*FirewallRule {
	return all[*FirewallRule](v.txn, TableFWRules, "id")
}

// FirewallPolicy returns the policy with the id, or nil.
func (v *View) FirewallPolicy(id string) *FirewallPolicy {
	return first[*FirewallPolicy](v.txn, TableFWPolicies, "id", id)
}

// FirewallPolicies returns every policy, ordered by id.
func (v *View) FirewallPolicies() []*FirewallPolicy {
	return all[*FirewallPolicy](v.txn, TableFWPolicies, "id")
}

// FirewallPoliciesOfRule returns the policies that list a rule.
func (v *View) FirewallPoliciesOfRule(ruleID string) []*FirewallPolicy {
	return all[*FirewallPolicy](v.txn, TableFWPolicies, "rule", ruleID)
}

// FirewallGroup returns the group with the id, or nil.
func (v *View) FirewallGroup(id string) *FirewallGroup {
	return first[*FirewallGroup](v.txn, TableFWGroups, "id", id)
}

// FirewallGroups returns every group, ordered by id.
func (v *View) FirewallGroups() []*FirewallGroup {
	return all[*FirewallGroup](v.txn, TableFWGroups, "id")
}

// FirewallGroupOfPort returns the group a port is in (at most one), or nil.
func (v *View) FirewallGroupOfPort(portID string) *FirewallGroup {
	return first[*FirewallGroup](v.txn, TableFWGroups, "port", portID)
}

// FirewallGroupsOfPolicy returns the groups that use a policy in either
// direction (a group using it both ways is listed once).
func (v *View) FirewallGroupsOfPolicy(policyID string) []*FirewallGroup {
	out := all[*FirewallGroup](v.txn, TableFWGroups, "ingress", policyID)
	for _, g := range all[*FirewallGroup](v.txn, TableFWGroups, "egress", policyID) {
		if g.IngressPolicyID != policyID {
			out = append(out, g)
		}
	}
	return out
}

// DefaultFirewallGroup returns a project's default group, or nil.
func (v *View) DefaultFirewallGroup(projectID string) *FirewallGroup {
	for _, g := range all[*FirewallGroup](v.txn, TableFWGroups, "project", projectID) {
		if g.IsDefault() {
			return g
		}
	}
	return nil
}

// FirewallPortAllowed reports whether a port's device owner may be in a
// firewall group: a router interface or a VM (compute) port.
func FirewallPortAllowed(p *Port) bool {
	return p.DeviceOwner == DeviceOwnerRouterInterface || strings.HasPrefix(p.DeviceOwner, "compute:")
}
