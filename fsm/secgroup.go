package fsm

import (
	"net/netip"
	"strconv"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Neutron error types used by the security group handlers.
const (
	ErrTypeSecurityGroupInUse    = "SecurityGroupInUse"
	ErrTypeSecurityGroupRuleNF   = "SecurityGroupRuleNotFound"
	ErrTypeSecurityGroupRuleDup  = "SecurityGroupRuleExists"
	errTypeSecurityGroupDuplicat = "SecurityGroupDuplicated"
)

// Rule directions and ethertypes.
const (
	DirectionIngress = "ingress"
	DirectionEgress  = "egress"
	EtherTypeIPv4    = "IPv4"
	EtherTypeIPv6    = "IPv6"
)

// SecurityGroup is a Neutron security group; its rules are rows of their
// own table. IsDefault marks the "default" group of its project.
type SecurityGroup struct {
	Meta
	Stateful  bool
	IsDefault bool
}

// Copy returns a deep copy that may be changed.
func (g *SecurityGroup) Copy() *SecurityGroup {
	c := *g
	c.Tags = append([]string(nil), g.Tags...)
	return &c
}

// SecurityGroupRule is one rule of a group. Protocol is "" for any, a
// name (tcp, udp, icmp, ...) or a number as given; the port range is nil
// when unset (for icmp it holds type and code). RemoteIPPrefix is a
// canonical CIDR or "".
type SecurityGroupRule struct {
	Meta
	SecurityGroupID string
	Direction       string
	EtherType       string
	Protocol        string
	PortRangeMin    *int
	PortRangeMax    *int
	RemoteIPPrefix  string
	RemoteGroupID   string
	// Key is the rule's datapath key (keys.go): its conjunction id, its
	// flows' cookie owner.
	DatapathKey uint32
}

// ProtocolNumbers maps the protocol names Neutron accepts to IP protocol
// numbers.
var ProtocolNumbers = map[string]int{
	"hopopt": 0, "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17,
	"ipv6-encap": 41, "ipv6-route": 43, "ipv6-frag": 44, "rsvp": 46, "gre": 47,
	"esp": 50, "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "ipv6-nonxt": 59,
	"ipv6-opts": 60, "ospf": 89, "pgm": 113, "vrrp": 112, "sctp": 132,
	"udplite": 136, "dccp": 33,
}

// ProtocolNumber returns a protocol's number ("" and "any" are -1), and
// false for an unknown name or a number outside 0-255.
func ProtocolNumber(proto string) (int, bool) {
	p := strings.ToLower(proto)
	if p == "" || p == "any" {
		return -1, true
	}
	if n, ok := ProtocolNumbers[p]; ok {
		return n, true
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 255 {
		return 0, false
	}
	return n, true
}

// Key is what makes two rules the same rule: everything but ids and
// descriptions, with the protocol as a number and an any-address prefix
// the same as none.
func (r *SecurityGroupRule) Key() string {
	proto, _ := ProtocolNumber(r.Protocol)
	prefix := r.RemoteIPPrefix
	if p, err := netip.ParsePrefix(prefix); err == nil && p.Bits() == 0 {
		prefix = ""
	}
	rng := func(p *int) string {
		if p == nil {
			return "-"
		}
		return strconv.Itoa(*p)
	}
	return strings.Join([]string{r.SecurityGroupID, r.Direction, r.EtherType, strconv.Itoa(proto),
		rng(r.PortRangeMin), rng(r.PortRangeMax), prefix, r.RemoteGroupID}, "|")
}

// SecurityGroupBundle is a group with its rules, created together.
type SecurityGroupBundle struct {
	Group *SecurityGroup
	Rules []*SecurityGroupRule
}

// SecurityGroupCreateRequest creates groups with their rules, all or none.
// Defaults are default groups created only if missing: two servers' first
// uses of a project propose the same default group (its id derives from
// the project) and the second one is a no-op.
type SecurityGroupCreateRequest struct {
	Groups   []*SecurityGroupBundle
	Defaults []*SecurityGroupBundle
}

// SecurityGroupUpdateRequest replaces a group (compare-and-set).
type SecurityGroupUpdateRequest struct {
	Group     *SecurityGroup
	PrevIndex uint64
}

// SecurityGroupDeleteRequest deletes a group, its rules and the rules of
// other groups that name it as their remote group.
type SecurityGroupDeleteRequest struct {
	ID string
}

// SecurityGroupRuleCreateRequest creates rules, all or none.
type SecurityGroupRuleCreateRequest struct {
	Rules []*SecurityGroupRule
}

// SecurityGroupRuleDeleteRequest deletes a rule by id.
type SecurityGroupRuleDeleteRequest struct {
	ID string
}

// SecurityGroup returns the group with the id, or nil.
func (v *View) SecurityGroup(id string) *SecurityGroup {
	return first[*SecurityGroup](v.txn, TableSecurityGroups, "id", id)
}

// SecurityGroups returns every group, ordered by id.
func (v *View) SecurityGroups() []*SecurityGroup {
	return all[*SecurityGroup](v.txn, TableSecurityGroups, "id")
}

// SecurityGroupRule returns the rule with the id, or nil.
func (v *View) SecurityGroupRule(id string) *SecurityGroupRule {
	return first[*SecurityGroupRule](v.txn, TableSecurityGroupRules, "id", id)
}

// SecurityGroupRules returns every rule, ordered by id.
func (v *View) SecurityGroupRules() []*SecurityGroupRule {
	return all[*SecurityGroupRule](v.txn, TableSecurityGroupRules, "id")
}

// RulesOfSecurityGroup returns a group's rules, ordered by id.
func (v *View) RulesOfSecurityGroup(sgID string) []*SecurityGroupRule {
	return all[*SecurityGroupRule](v.txn, TableSecurityGroupRules, "group", sgID)
}

// RulesWithRemoteGroup returns the rules whose remote group is sgID (whose
// matches change with the group's members), ordered by id.
func (v *View) RulesWithRemoteGroup(sgID string) []*SecurityGroupRule {
	return all[*SecurityGroupRule](v.txn, TableSecurityGroupRules, "remote", sgID)
}

func sgNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeSecurityGroupNotFound, "Security group %s does not exist", id)
}

// CheckSecurityGroupDelete refuses to delete a group a port uses.
func (v *View) CheckSecurityGroupDelete(id string) error {
	if v.SecurityGroup(id) == nil {
		return sgNotFound(id)
	}
	if p := v.PortUsingSecurityGroup(id); p != nil {
		return Errorf(CodeConflict, ErrTypeSecurityGroupInUse, "Security Group %s in use.", id)
	}
	return nil
}

// CheckSecurityGroupRule validates a new rule against the state: its
// group and remote group exist and no equal rule is in the group.
func (v *View) CheckSecurityGroupRule(r *SecurityGroupRule) error {
	if v.SecurityGroup(r.SecurityGroupID) == nil {
		return sgNotFound(r.SecurityGroupID)
	}
	if r.RemoteGroupID != "" && v.SecurityGroup(r.RemoteGroupID) == nil {
		return sgNotFound(r.RemoteGroupID)
	}
	key := r.Key()
	for _, o := range v.RulesOfSecurityGroup(r.SecurityGroupID) {
		if o.ID != r.ID && o.Key() == key {
			return Errorf(CodeConflict, ErrTypeSecurityGroupRuleDup, "Security group rule already exists. Rule id is %s.", o.ID)
		}
	}
	return nil
}

func createBundle(txn *memdb.Txn, b *SecurityGroupBundle, index uint64) error {
	v := View{txn: txn}
	g := b.Group
	if v.SecurityGroup(g.ID) != nil {
		return Errorf(CodeConflict, errTypeSecurityGroupDuplicat, "Security group %s already exists.", g.ID)
	}
	g.CreateIndex, g.ModifyIndex = index, index
	insert(txn, TableSecurityGroups, g, index)
	for _, r := range b.Rules {
		if r.SecurityGroupID != g.ID {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: rule %s is not of group %s.", r.ID, g.ID)
		}
		if err := insertRule(txn, r, index); err != nil {
			return err
		}
	}
	return nil
}

func insertRule(txn *memdb.Txn, r *SecurityGroupRule, index uint64) error {
	v := View{txn: txn}
	if v.SecurityGroupRule(r.ID) != nil {
		return Errorf(CodeConflict, ErrTypeSecurityGroupRuleDup, "Security group rule already exists. Rule id is %s.", r.ID)
	}
	if err := v.CheckSecurityGroupRule(r); err != nil {
		return err
	}
	clearKey(r)
	if _, err := assignKey(txn, TableSecurityGroupRules, r); err != nil {
		return err
	}
	r.CreateIndex, r.ModifyIndex = index, index
	insert(txn, TableSecurityGroupRules, r, index)
	return nil
}

// ensureSecurityGroups creates the bundles whose group does not exist yet.
func ensureSecurityGroups(txn *memdb.Txn, bundles []*SecurityGroupBundle, index uint64) error {
	v := View{txn: txn}
	for _, b := range bundles {
		if v.SecurityGroup(b.Group.ID) != nil {
			continue
		}
		if err := createBundle(txn, b, index); err != nil {
			return err
		}
	}
	return nil
}

func applySecurityGroupCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req SecurityGroupCreateRequest
	mustDecode(body, &req, index)
	if err := ensureSecurityGroups(txn, req.Defaults, index); err != nil {
		return err
	}
	for _, b := range req.Groups {
		if err := createBundle(txn, b, index); err != nil {
			return err
		}
	}
	return nil
}

func applySecurityGroupUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req SecurityGroupUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	g := req.Group
	cur := v.SecurityGroup(g.ID)
	if cur == nil {
		return sgNotFound(g.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "security group %s changed concurrently", g.ID)
	}
	g.CreateIndex, g.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableSecurityGroups, g, index)
	return nil
}

func applySecurityGroupDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req SecurityGroupDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if err := v.CheckSecurityGroupDelete(req.ID); err != nil {
		return err
	}
	for _, r := range v.RulesOfSecurityGroup(req.ID) {
		remove(txn, TableSecurityGroupRules, r, index)
	}
	for _, r := range all[*SecurityGroupRule](txn, TableSecurityGroupRules, "remote", req.ID) {
		remove(txn, TableSecurityGroupRules, r, index)
		bumpGroup(txn, r.SecurityGroupID, index)
	}
	remove(txn, TableSecurityGroups, v.SecurityGroup(req.ID), index)
	return nil
}

// bumpGroup raises a group's revision: its rules are part of it.
func bumpGroup(txn *memdb.Txn, id string, index uint64) {
	v := View{txn: txn}
	if g := v.SecurityGroup(id); g != nil {
		c := g.Copy()
		c.RevisionNumber++
		c.ModifyIndex = index
		insert(txn, TableSecurityGroups, c, index)
	}
}

func applySecurityGroupRuleCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req SecurityGroupRuleCreateRequest
	mustDecode(body, &req, index)
	for _, r := range req.Rules {
		if err := insertRule(txn, r, index); err != nil {
			return err
		}
		bumpGroup(txn, r.SecurityGroupID, index)
	}
	return nil
}

func applySecurityGroupRuleDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req SecurityGroupRuleDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	r := v.SecurityGroupRule(req.ID)
	if r == nil {
		return Errorf(CodeNotFound, ErrTypeSecurityGroupRuleNF, "Security group rule %s does not exist", req.ID)
	}
	remove(txn, TableSecurityGroupRules, r, index)
	bumpGroup(txn, r.SecurityGroupID, index)
	return nil
}
