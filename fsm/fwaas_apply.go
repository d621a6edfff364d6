package fsm

import (
	"slices"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

func fwHandlers() map[CommandType]handler {
	return map[CommandType]handler{
		CmdFirewallRuleCreate:   applyFirewallRuleCreate,
		CmdFirewallRuleUpdate:   applyFirewallRuleUpdate,
		CmdFirewallRuleDelete:   applyFirewallRuleDelete,
		CmdFirewallPolicyCreate: applyFirewallPolicyCreate,
		CmdFirewallPolicyUpdate: applyFirewallPolicyUpdate,
		CmdFirewallPolicyDelete: applyFirewallPolicyDelete,
		CmdFirewallGroupCreate:  applyFirewallGroupCreate,
		CmdFirewallGroupUpdate:  applyFirewallGroupUpdate,
		CmdFirewallGroupDelete:  applyFirewallGroupDelete,
		CmdFirewallGroupStatus:  applyFirewallGroupStatus,
		CmdFirewallDefaults:     applyFirewallDefaults,
	}
}

// fwKind names one FWaaS table for the shared lookup and error helpers.
type fwKind struct {
	table, what, notFoundType, idName string
}

var (
	fwRuleKind   = fwKind{TableFWRules, "Firewall rule", ErrTypeFirewallRuleNotFound, "firewall_rule_id"}
	fwPolicyKind = fwKind{TableFWPolicies, "Firewall policy", ErrTypeFirewallPolicyNotFound, "firewall_policy_id"}
	fwGroupKind  = fwKind{TableFWGroups, "Firewall group", ErrTypeFirewallGroupNotFound, "firewall_id"}
)

func (k fwKind) notFound(id string) *Error {
	return Errorf(CodeNotFound, k.notFoundType, "%s %s could not be found.", k.what, id)
}

// fwCurrent returns the stored object for an update: not found, or a
// compare-and-set that lost a race, are errors.
func fwCurrent[T Object](txn *memdb.Txn, k fwKind, id string, prev uint64) (T, error) {
	var zero T
	raw, err := txn.First(k.table, "id", id)
	if err != nil || raw == nil {
		return zero, k.notFound(id)
	}
	cur := raw.(T)
	if cur.GetMeta().ModifyIndex != prev {
		return zero, Errorf(CodeConflict, ErrTypeStaleUpdate, "%s %s changed concurrently", k.what, id)
	}
	return cur, nil
}

// fwExists reports whether the table has the id.
func fwExists(txn *memdb.Txn, k fwKind, id string) bool {
	raw, err := txn.First(k.table, "id", id)
	return err == nil && raw != nil
}

// fwPut stores a new or changed object with its indexes set.
func fwPut(txn *memdb.Txn, k fwKind, obj Object, createIndex, index uint64) {
	m := obj.GetMeta()
	m.CreateIndex, m.ModifyIndex = createIndex, index
	insert(txn, k.table, obj, index)
}

func objectKey(raw any) uint32 {
	switch o := raw.(type) {
	case *FirewallRule:
		return o.Key
	case *FirewallGroup:
		return o.Key
	}
	return 0
}

// allocKey returns a free key in 1..max of a table's key index, or 0 when
// every key is taken: one above the highest while there is room (one
// reverse index read), else the lowest free (a walk, once the space has
// wrapped). Groups (lowestFirst) always take the lowest free, as their
// space is small and the contract with the data path says so.
func allocKey(txn *memdb.Txn, table string, max uint32, lowestFirst bool) uint32 {
	if !lowestFirst {
		top, err := txn.GetReverse(table, "key")
		if err != nil {
			panic("fsm: list " + table + " keys: " + err.Error())
		}
		raw := top.Next()
		if raw == nil {
			return 1
		}
		if k := objectKey(raw); k < max {
			return k + 1
		}
	}
	it, err := txn.Get(table, "key")
	if err != nil {
		panic("fsm: list " + table + " keys: " + err.Error())
	}
	want := uint32(1)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		k := objectKey(raw)
		if k > want {
			break
		}
		want = k + 1
	}
	if want > max || want == 0 {
		return 0
	}
	return want
}

func keysExhausted(what string, max int) *Error {
	return Errorf(CodeConflict, ErrTypeFirewallKeysExhausted, "No free %s key: all %d are in use; delete one first.", what, max)
}

func applyFirewallRuleCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallRuleCreateRequest
	mustDecode(body, &req, index)
	return createFirewallRule(txn, req.Rule, index)
}

func createFirewallRule(txn *memdb.Txn, r *FirewallRule, index uint64) error {
	if fwExists(txn, fwRuleKind, r.ID) {
		return Errorf(CodeConflict, ErrTypeFirewallDuplicate, "Firewall rule %s already exists.", r.ID)
	}
	if r.Key = allocKey(txn, TableFWRules, FirewallRuleKeyMax, false); r.Key == 0 {
		return keysExhausted("firewall rule", FirewallRuleKeyMax)
	}
	fwPut(txn, fwRuleKind, r, index, index)
	return nil
}

func applyFirewallRuleUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallRuleUpdateRequest
	mustDecode(body, &req, index)
	r := req.Rule
	cur, err := fwCurrent[*FirewallRule](txn, fwRuleKind, r.ID, req.PrevIndex)
	if err != nil {
		return err
	}
	v := View{txn: txn}
	policies := v.FirewallPoliciesOfRule(r.ID)
	if !r.Shared {
		for _, p := range policies {
			if p.ProjectID != r.ProjectID || p.Shared {
				return Errorf(CodeConflict, ErrTypeFirewallRuleInUse, "Firewall rule %s is being used.", r.ID)
			}
		}
	}
	r.Key = cur.Key
	fwPut(txn, fwRuleKind, r, cur.CreateIndex, index)
	// A changed rule changes what its policies do: they are no longer
	// audited (neutron-fwaas).
	for _, p := range policies {
		touchPolicy(txn, p, r.UpdatedAt, index)
	}
	return nil
}

// touchPolicy marks a policy changed by a change of one of its rules.
func touchPolicy(txn *memdb.Txn, p *FirewallPolicy, at string, index uint64) {
	c := p.Copy()
	c.Audited = false
	c.RevisionNumber++
	if at != "" {
		c.UpdatedAt = at
	}
	fwPut(txn, fwPolicyKind, c, p.CreateIndex, index)
}

// deleteUnused deletes a rule or policy unless inUse says something uses
// it (inUseType, Neutron's 409).
func deleteUnused(txn *memdb.Txn, body []byte, index uint64, k fwKind, inUseType string, inUse func(v *View, id string) bool) error {
	var req FirewallDeleteRequest
	mustDecode(body, &req, index)
	raw, err := txn.First(k.table, "id", req.ID)
	if err != nil || raw == nil {
		return k.notFound(req.ID)
	}
	if inUse(&View{txn: txn}, req.ID) {
		return Errorf(CodeConflict, inUseType, "%s %s is being used.", k.what, req.ID)
	}
	remove(txn, k.table, raw, index)
	return nil
}

func applyFirewallRuleDelete(txn *memdb.Txn, body []byte, index uint64) error {
	return deleteUnused(txn, body, index, fwRuleKind, ErrTypeFirewallRuleInUse, func(v *View, id string) bool {
		return len(v.FirewallPoliciesOfRule(id)) > 0
	})
}

// CheckFirewallPolicyRules validates a policy's rule list against the
// state as neutron-fwaas does: every rule exists, is listed once, and is
// the policy's project's or shared; a shared policy lists shared rules.
func (v *View) CheckFirewallPolicyRules(p *FirewallPolicy) error {
	seen := map[string]bool{}
	for _, id := range p.Rules {
		r := v.FirewallRule(id)
		if r == nil {
			return fwRuleKind.notFound(id)
		}
		if seen[id] {
			return Errorf(CodeConflict, ErrTypeFirewallRuleAlreadyAssociated,
				"Operation cannot be performed since firewall rule %s is already associated with firewall policy %s.", id, p.ID)
		}
		seen[id] = true
		if !r.Shared && r.ProjectID != p.ProjectID {
			return Errorf(CodeConflict, ErrTypeFirewallRuleConflict,
				"Operation cannot be performed since firewall rule %s is not shared and belongs to another project %s.", id, r.ProjectID)
		}
		if p.Shared && !r.Shared {
			return Errorf(CodeConflict, ErrTypeFirewallPolicySharingConflict,
				"Operation cannot be performed. Before sharing firewall policy %s, share associated firewall rule %s.", p.ID, id)
		}
	}
	return nil
}

func applyFirewallPolicyCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallPolicyCreateRequest
	mustDecode(body, &req, index)
	return createFirewallPolicy(txn, req.Policy, index)
}

func createFirewallPolicy(txn *memdb.Txn, p *FirewallPolicy, index uint64) error {
	if fwExists(txn, fwPolicyKind, p.ID) {
		return Errorf(CodeConflict, ErrTypeFirewallDuplicate, "Firewall policy %s already exists.", p.ID)
	}
	v := View{txn: txn}
	if err := v.CheckFirewallPolicyRules(p); err != nil {
		return err
	}
	fwPut(txn, fwPolicyKind, p, index, index)
	return nil
}

func applyFirewallPolicyUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallPolicyUpdateRequest
	mustDecode(body, &req, index)
	p := req.Policy
	cur, err := fwCurrent[*FirewallPolicy](txn, fwPolicyKind, p.ID, req.PrevIndex)
	if err != nil {
		return err
	}
	v := View{txn: txn}
	if err := v.CheckFirewallPolicyRules(p); err != nil {
		return err
	}
	if !p.Shared {
		for _, g := range v.FirewallGroupsOfPolicy(p.ID) {
			if g.ProjectID != p.ProjectID {
				return Errorf(CodeConflict, ErrTypeFirewallPolicyInUse, "Firewall policy %s is being used.", p.ID)
			}
		}
	}
	fwPut(txn, fwPolicyKind, p, cur.CreateIndex, index)
	return nil
}

func applyFirewallPolicyDelete(txn *memdb.Txn, body []byte, index uint64) error {
	return deleteUnused(txn, body, index, fwPolicyKind, ErrTypeFirewallPolicyInUse, func(v *View, id string) bool {
		return len(v.FirewallGroupsOfPolicy(id)) > 0
	})
}

// CheckFirewallGroup validates a group's policies and ports against the
// state as neutron-fwaas does.
func (v *View) CheckFirewallGroup(g *FirewallGroup) error {
	for _, id := range []string{g.IngressPolicyID, g.EgressPolicyID} {
		if id == "" {
			continue
		}
		p := v.FirewallPolicy(id)
		if p == nil {
			return fwPolicyKind.notFound(id)
		}
		if p.ProjectID != g.ProjectID && !p.Shared {
			return Errorf(CodeNotFound, ErrTypeFirewallPolicyConflict,
				"Operation cannot be performed since firewall policy %s for your project could not be found. "+
					"Please confirm if the firewall policy exists and is shared.", id)
		}
	}
	var inUse []string
	for i, id := range g.Ports {
		if slices.Contains(g.Ports[:i], id) {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for ports. Reason: Duplicate items in the list: '%s'.", id)
		}
		p := v.Port(id)
		if p == nil {
			return portNotFound(id)
		}
		if p.ProjectID != g.ProjectID {
			return Errorf(CodeConflict, ErrTypeFirewallGroupPortProject,
				"Operation cannot be performed as port %s is in an invalid project %s.", id, p.ProjectID)
		}
		if !FirewallPortAllowed(p) {
			return Errorf(CodeConflict, ErrTypeFirewallGroupPortInvalid, "Port %s of firewall group is invalid.", id)
		}
		if other := v.FirewallGroupOfPort(id); other != nil && other.ID != g.ID {
			inUse = append(inUse, id)
		}
	}
	if len(inUse) > 0 {
		return Errorf(CodeConflict, ErrTypeFirewallGroupPortInUse,
			"Port(s) %s provided already associated with other firewall group(s).", strings.Join(inUse, ", "))
	}
	return nil
}

// firewallGroupStatus derives a group's status from what the state says:
// DOWN when disabled, INACTIVE with no port or no policy, else ACTIVE (or
// ERROR while the data path reports it could not realize the group).
func firewallGroupStatus(g *FirewallGroup, reported string) string {
	switch {
	case !g.AdminStateUp:
		return FirewallStatusDown
	case len(g.Ports) == 0 || (g.IngressPolicyID == "" && g.EgressPolicyID == ""):
		return FirewallStatusInactive
	case reported == FirewallStatusError:
		return FirewallStatusError
	}
	return FirewallStatusActive
}

func applyFirewallGroupCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallGroupCreateRequest
	mustDecode(body, &req, index)
	return createFirewallGroup(txn, req.Group, index)
}

func createFirewallGroup(txn *memdb.Txn, g *FirewallGroup, index uint64) error {
	if fwExists(txn, fwGroupKind, g.ID) {
		return Errorf(CodeConflict, ErrTypeFirewallDuplicate, "Firewall group %s already exists.", g.ID)
	}
	v := View{txn: txn}
	if g.IsDefault() && v.DefaultFirewallGroup(g.ProjectID) != nil {
		return Errorf(CodeConflict, ErrTypeFirewallDefaultExists, "Default Firewall Group exists for project %s.", g.ProjectID)
	}
	if err := v.CheckFirewallGroup(g); err != nil {
		return err
	}
	if g.Key = allocKey(txn, TableFWGroups, FirewallGroupKeyMax, true); g.Key == 0 {
		return keysExhausted("firewall group", FirewallGroupKeyMax)
	}
	g.Status = firewallGroupStatus(g, "")
	fwPut(txn, fwGroupKind, g, index, index)
	return nil
}

func applyFirewallGroupUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallGroupUpdateRequest
	mustDecode(body, &req, index)
	g := req.Group
	cur, err := fwCurrent[*FirewallGroup](txn, fwGroupKind, g.ID, req.PrevIndex)
	if err != nil {
		return err
	}
	v := View{txn: txn}
	if err := v.CheckFirewallGroup(g); err != nil {
		return err
	}
	g.Key = cur.Key
	g.Status = firewallGroupStatus(g, cur.Status)
	fwPut(txn, fwGroupKind, g, cur.CreateIndex, index)
	return nil
}

func applyFirewallGroupDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.FirewallGroup(req.ID)
	if cur == nil {
		return fwGroupKind.notFound(req.ID)
	}
	if len(cur.Ports) > 0 {
		return Errorf(CodeConflict, ErrTypeFirewallGroupInUse, "Firewall group %s is still active.", req.ID)
	}
	remove(txn, TableFWGroups, cur, index)
	if !req.WithPolicies {
		return nil
	}
	for _, id := range []string{cur.IngressPolicyID, cur.EgressPolicyID} {
		if p := v.FirewallPolicy(id); p != nil && len(v.FirewallGroupsOfPolicy(id)) == 0 {
			remove(txn, TableFWPolicies, p, index)
		}
	}
	return nil
}

func applyFirewallGroupStatus(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallGroupStatusRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	for id, st := range req.Statuses {
		switch st {
		case FirewallStatusActive, FirewallStatusError:
		default:
			return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: firewall group status %q.", st)
		}
		g := v.FirewallGroup(id)
		if g == nil {
			continue // deleted since the report was made
		}
		next := firewallGroupStatus(g, st)
		if next == g.Status {
			continue
		}
		c := g.Copy()
		c.Status = next
		if req.UpdatedAt != "" {
			c.UpdatedAt = req.UpdatedAt
		}
		fwPut(txn, fwGroupKind, c, g.CreateIndex, index)
	}
	return nil
}

func applyFirewallDefaults(txn *memdb.Txn, body []byte, index uint64) error {
	var req FirewallDefaultsRequest
	mustDecode(body, &req, index)
	for _, r := range req.Rules {
		if err := createFirewallRule(txn, r, index); err != nil {
			return err
		}
	}
	for _, p := range req.Policies {
		if err := createFirewallPolicy(txn, p, index); err != nil {
			return err
		}
	}
	return createFirewallGroup(txn, req.Group, index)
}

// forgetFirewallPort takes a port that is going away out of its firewall
// group, as neutron-fwaas' port association cascades on port delete.
func forgetFirewallPort(txn *memdb.Txn, portID string, index uint64) {
	v := View{txn: txn}
	g := v.FirewallGroupOfPort(portID)
	if g == nil {
		return
	}
	c := g.Copy()
	c.Ports = slices.DeleteFunc(c.Ports, func(id string) bool { return id == portID })
	c.RevisionNumber++
	c.Status = firewallGroupStatus(c, g.Status)
	fwPut(txn, fwGroupKind, c, g.CreateIndex, index)
}
