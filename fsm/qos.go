package fsm

// QoS policies (Neutron's qos extension, issue 19): a policy holds
// bandwidth-limit rules (one per direction) and at most one DSCP-marking
// rule; a port or a network names a policy with qos_policy_id. The
// effective policy of a port is its own, else (for a compute port, not a
// router or DHCP port) its network's, as in ML2/OVS and OVN.
//
// A policy's rules live inside the policy row: every rule change is a
// compare-and-set of the whole policy (PrevIndex), so two concurrent rule
// creates cannot both add a rule of one type and direction. Commands
// 170-174 are QoS's; only 170 is used. They are not ignorable: an older
// server that skipped a policy would refuse the ports naming it and the
// replicas would diverge, so they are gated like 190/191 (upgrade.go).

import (
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// QoS commands (170-174; 171-174 reserved).
const (
	// CmdQoSPolicy creates, updates or deletes a QoS policy with its rules
	// (QoSPolicyRequest).
	CmdQoSPolicy CommandType = 170
)

// TableQoSPolicies holds QoS policies.
const TableQoSPolicies = "qos_policies"

// Error types of the QoS handlers (Neutron's).
const (
	ErrTypeQoSPolicyNotFound = "QosPolicyNotFound"
	ErrTypeQoSPolicyInUse    = "QosPolicyInUse"
	ErrTypeQoSRuleNotFound   = "QosRuleNotFound"
)

// QoS rule types and directions (Neutron's names).
const (
	QoSRuleBandwidthLimit = "bandwidth_limit"
	QoSRuleDSCPMarking    = "dscp_marking"
	QoSEgress             = "egress"
	QoSIngress            = "ingress"
)

// QoSRule is one rule of a policy. MaxKbps, MaxBurstKbps and Direction
// belong to bandwidth-limit rules, DSCPMark to DSCP-marking rules.
type QoSRule struct {
	ID           string
	Type         string
	MaxKbps      int
	MaxBurstKbps int
	Direction    string
	DSCPMark     int
}

// QoSPolicy is a row of TableQoSPolicies.
type QoSPolicy struct {
	Meta
	Shared    bool
	IsDefault bool
	Rules     []QoSRule
}

// Copy returns a deep copy that may be changed.
func (p *QoSPolicy) Copy() *QoSPolicy {
	c := *p
	c.Tags = append([]string(nil), p.Tags...)
	c.Rules = append([]QoSRule(nil), p.Rules...)
	return &c
}

// Rule returns the policy's rule with the id and type, nil if none.
func (p *QoSPolicy) Rule(typ, id string) *QoSRule {
	for i := range p.Rules {
		if p.Rules[i].ID == id && p.Rules[i].Type == typ {
			return &p.Rules[i]
		}
	}
	return nil
}

// BandwidthLimit returns the policy's bandwidth-limit rule for a
// direction, nil if none.
func (p *QoSPolicy) BandwidthLimit(direction string) *QoSRule {
	for i := range p.Rules {
		if p.Rules[i].Type == QoSRuleBandwidthLimit && p.Rules[i].Direction == direction {
			return &p.Rules[i]
		}
	}
	return nil
}

// DSCPMarking returns the policy's DSCP-marking rule, nil if none.
func (p *QoSPolicy) DSCPMarking() *QoSRule {
	for i := range p.Rules {
		if p.Rules[i].Type == QoSRuleDSCPMarking {
			return &p.Rules[i]
		}
	}
	return nil
}

// QoSPolicyRequest is the body of CmdQoSPolicy: create and update carry
// the whole policy (update with the ModifyIndex it was read at), delete
// only the ID.
type QoSPolicyRequest struct {
	Op string
	// Policy is nil for a delete (which names ID).
	Policy    *QoSPolicy `fsm:"optional"`
	ID        string
	PrevIndex uint64
}

func qosSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableQoSPolicies,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		},
	}
}

// QoSPolicy returns a policy by id, nil if there is none.
func (v *View) QoSPolicy(id string) *QoSPolicy {
	return first[*QoSPolicy](v.txn, TableQoSPolicies, "id", id)
}

// QoSPolicies lists every policy, ordered by id.
func (v *View) QoSPolicies() []*QoSPolicy {
	return all[*QoSPolicy](v.txn, TableQoSPolicies, "id")
}

// DefaultQoSPolicy returns a project's default policy, nil if none.
func (v *View) DefaultQoSPolicy(project string) *QoSPolicy {
	for _, p := range v.QoSPolicies() {
		if p.IsDefault && p.ProjectID == project {
			return p
		}
	}
	return nil
}

// EffectiveQoSPolicy is the policy that applies to a port: its own, else
// its network's when it is a compute port (Neutron applies a network's
// policy to neither router nor DHCP ports, nor other network:* owners).
func (v *View) EffectiveQoSPolicy(p *Port) *QoSPolicy {
	if p.QoSPolicyID != "" {
		return v.QoSPolicy(p.QoSPolicyID)
	}
	if len(p.DeviceOwner) >= 8 && p.DeviceOwner[:8] == "network:" {
		return nil
	}
	if n := v.Network(p.NetworkID); n != nil && n.QoSPolicyID != "" {
		return v.QoSPolicy(n.QoSPolicyID)
	}
	return nil
}

// qosPolicyUser names a network or port that names the policy ("" when
// none): Neutron's QosPolicyInUse says which.
func (v *View) qosPolicyUser(id string) (kind, objID string) {
	if i := slices.IndexFunc(v.Networks(), func(n *Network) bool { return n.QoSPolicyID == id }); i >= 0 {
		return "network", v.Networks()[i].ID
	}
	if i := slices.IndexFunc(v.Ports(), func(p *Port) bool { return p.QoSPolicyID == id }); i >= 0 {
		return "port", v.Ports()[i].ID
	}
	return "", ""
}

func qosPolicyNotFound(id string) error {
	return Errorf(CodeNotFound, ErrTypeQoSPolicyNotFound, "QoS policy %s could not be found.", id)
}

// checkQoSPolicyRef refuses a port or network that names a policy which
// does not exist (it may have been deleted after the API server checked).
func (v *View) checkQoSPolicyRef(id string) error {
	if id != "" && v.QoSPolicy(id) == nil {
		return qosPolicyNotFound(id)
	}
	return nil
}

// checkQoSRules re-checks at apply time what the API validated: rule ids
// unique, one bandwidth limit per direction, one DSCP mark.
func checkQoSRules(p *QoSPolicy) error {
	ids := map[string]bool{}
	kinds := map[string]bool{}
	for _, r := range p.Rules {
		kind := r.Type
		if r.Type == QoSRuleBandwidthLimit {
			kind += "/" + r.Direction
		}
		if ids[r.ID] || kinds[kind] {
			return Errorf(CodeConflict, "QoSRulesConflict", "Rule %s conflicts with another rule of policy %s.", r.ID, p.ID)
		}
		ids[r.ID], kinds[kind] = true, true
	}
	return nil
}

func applyQoSPolicy(txn *memdb.Txn, body []byte, index uint64) error {
	var req QoSPolicyRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if err := needObject(req.Op, req.Policy != nil, "QoSPolicyRequest without Policy"); err != nil {
		return err
	}
	switch req.Op {
	case OpCreate, OpUpdate:
		p := req.Policy
		cur := v.QoSPolicy(p.ID)
		if req.Op == OpCreate && cur != nil {
			return Errorf(CodeConflict, ErrTypeInvalidInput, "QoS policy %s already exists.", p.ID)
		}
		if req.Op == OpUpdate {
			if cur == nil {
				return qosPolicyNotFound(p.ID)
			}
			if cur.ModifyIndex != req.PrevIndex {
				return Errorf(CodeConflict, ErrTypeStaleUpdate, "QoS policy %s changed concurrently", p.ID)
			}
		}
		if err := checkQoSRules(p); err != nil {
			return err
		}
		if p.IsDefault {
			if d := v.DefaultQoSPolicy(p.ProjectID); d != nil && d.ID != p.ID {
				return Errorf(CodeConflict, "QoSPolicyDefaultAlreadyExists",
					"A default QoS policy exists for project %s.", p.ProjectID)
			}
		}
		p.CreateIndex, p.ModifyIndex = index, index
		if cur != nil {
			p.CreateIndex = cur.CreateIndex
		}
		insert(txn, TableQoSPolicies, p, index)
		return nil
	case OpDelete:
		cur := v.QoSPolicy(req.ID)
		if cur == nil {
			return qosPolicyNotFound(req.ID)
		}
		if kind, obj := v.qosPolicyUser(req.ID); kind != "" {
			return Errorf(CodeConflict, ErrTypeQoSPolicyInUse,
				"QoS Policy %s is used by %s %s.", req.ID, kind, obj)
		}
		remove(txn, TableQoSPolicies, cur, index)
		return nil
	}
	return Errorf(CodeBadRequest, ErrTypeInvalidInput, "unknown QoS policy operation %q", req.Op)
}
