package fsm

// RBAC policies (Neutron's rbac-policies extension, issue 19): a network's
// owner shares it with one project (or every project, "*") for ports
// (access_as_shared), or lets a project use it as an external network for
// router gateways and floating IPs (access_as_external).
//
// One command type carries create, update and delete (RBACPolicyRequest.Op):
// of the types reserved for this work (190-199) only 190 and 191 lie below
// IgnorableMin, and an older server must not skip an entry that decides
// who may use a network, so these commands must be gated, not ignorable.

import (
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// RBAC and subnet pool commands (190-191, non-ignorable: see above).
const (
	// CmdRBACPolicy creates, updates or deletes an RBAC policy
	// (RBACPolicyRequest).
	CmdRBACPolicy CommandType = 190
	// CmdSubnetPool creates, updates or deletes a subnet pool
	// (SubnetPoolRequest).
	CmdSubnetPool CommandType = 191
)

// TableRBACPolicies holds RBAC policies.
const TableRBACPolicies = "rbac_policies"

// RBAC actions and the wildcard target.
const (
	RBACAccessAsShared   = "access_as_shared"
	RBACAccessAsExternal = "access_as_external"
	RBACTargetAll        = "*"
	// RBACObjectNetwork is the one object type Neutrino's policies apply to.
	RBACObjectNetwork = "network"
)

// Error types of the RBAC handlers (Neutron's).
const (
	ErrTypeRBACNotFound  = "RbacPolicyNotFound"
	ErrTypeRBACDuplicate = "DuplicateRbacPolicy"
	ErrTypeRBACInUse     = "RbacPolicyInUse"
)

// Ops of the combined create/update/delete commands.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// RBACPolicy is a row of TableRBACPolicies. Meta.ProjectID is the owner of
// the policy (the object's owner, or an admin's choice).
type RBACPolicy struct {
	Meta
	ObjectType   string
	ObjectID     string
	Action       string
	TargetTenant string
}

// RBACPolicyRequest is the body of CmdRBACPolicy: Op create and update
// carry the whole policy, delete only its ID.
type RBACPolicyRequest struct {
	Op string
	// Policy is nil for a delete (which names ID); create and update
	// refuse a request without it.
	Policy *RBACPolicy `fsm:"optional"`
	ID     string
}

func rbacSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableRBACPolicies,
		Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"object": {Name: "object", Indexer: &memdb.StringFieldIndex{Field: "ObjectID"}},
		},
	}
}

// RBACPolicy returns a policy by id, nil if there is none.
func (v *View) RBACPolicy(id string) *RBACPolicy {
	return first[*RBACPolicy](v.txn, TableRBACPolicies, "id", id)
}

// RBACPolicies lists every policy, ordered by id.
func (v *View) RBACPolicies() []*RBACPolicy {
	return all[*RBACPolicy](v.txn, TableRBACPolicies, "id")
}

// RBACPoliciesOf lists the policies on one object.
func (v *View) RBACPoliciesOf(objectID string) []*RBACPolicy {
	return all[*RBACPolicy](v.txn, TableRBACPolicies, "object", objectID)
}

// rbacGrants reports whether the policies (except the one named skip) give
// project the action on the object.
func rbacGrants(policies []*RBACPolicy, action, project, skip string) bool {
	for _, p := range policies {
		if p.ID != skip && p.Action == action && (p.TargetTenant == RBACTargetAll || p.TargetTenant == project) {
			return true
		}
	}
	return false
}

// NetworkSharedWith reports whether project may put ports on the network
// without owning it: the network is shared, or a policy shares it.
func (v *View) NetworkSharedWith(n *Network, project string) bool {
	return n.Shared || rbacGrants(v.RBACPoliciesOf(n.ID), RBACAccessAsShared, project, "")
}

// NetworkExternalFor reports whether project may use the network as an
// external network: it is external for all (router:external set through
// the network API), or a policy makes it external for the project.
func (v *View) NetworkExternalFor(n *Network, project string) bool {
	if !n.External {
		return false
	}
	return !n.ExternalRestricted || n.ProjectID == project ||
		rbacGrants(v.RBACPoliciesOf(n.ID), RBACAccessAsExternal, project, "")
}

func rbacNotFound(id string) error {
	return Errorf(CodeNotFound, ErrTypeRBACNotFound, "RBAC policy of type network with ID %s not found.", id)
}

// needObject refuses a create or update of an Op-style command (a delete
// names only an ID) whose object is missing: mustDecode lets such an
// object be nil (tagged optional) for the delete's sake.
func needObject(op string, present bool, what string) error {
	if !present && op != OpDelete {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: %s.", what)
	}
	return nil
}

func applyRBACPolicy(txn *memdb.Txn, body []byte, index uint64) error {
	var req RBACPolicyRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if err := needObject(req.Op, req.Policy != nil, "RBACPolicyRequest without Policy"); err != nil {
		return err
	}
	switch req.Op {
	case OpCreate:
		return createRBAC(txn, &v, req.Policy, index)
	case OpUpdate:
		cur := v.RBACPolicy(req.Policy.ID)
		if cur == nil {
			return rbacNotFound(req.Policy.ID)
		}
		if err := checkRBACRemovable(&v, cur, req.Policy.TargetTenant); err != nil {
			return err
		}
		if err := checkRBACDuplicate(&v, req.Policy); err != nil {
			return err
		}
		p := *req.Policy
		p.CreateIndex, p.ModifyIndex = cur.CreateIndex, index
		insert(txn, TableRBACPolicies, &p, index)
		return nil
	case OpDelete:
		cur := v.RBACPolicy(req.ID)
		if cur == nil {
			return rbacNotFound(req.ID)
		}
		if err := checkRBACRemovable(&v, cur, ""); err != nil {
			return err
		}
		remove(txn, TableRBACPolicies, cur, index)
		return unconvertExternal(txn, &v, cur.ObjectID, index)
	}
	return Errorf(CodeBadRequest, ErrTypeInvalidInput, "unknown RBAC operation %q", req.Op)
}

func checkRBACDuplicate(v *View, p *RBACPolicy) error {
	for _, o := range v.RBACPoliciesOf(p.ObjectID) {
		if o.ID != p.ID && o.Action == p.Action && o.TargetTenant == p.TargetTenant {
			return Errorf(CodeConflict, ErrTypeRBACDuplicate, "An RBAC policy already exists with those values.")
		}
	}
	return nil
}

func createRBAC(txn *memdb.Txn, v *View, p *RBACPolicy, index uint64) error {
	if v.RBACPolicy(p.ID) != nil {
		return Errorf(CodeConflict, ErrTypeRBACDuplicate, "RBAC policy %s already exists.", p.ID)
	}
	if p.ObjectType != RBACObjectNetwork || (p.Action != RBACAccessAsShared && p.Action != RBACAccessAsExternal) {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: unsupported RBAC policy %s on %s.", p.Action, p.ObjectType)
	}
	n := v.Network(p.ObjectID)
	if n == nil {
		return Errorf(CodeNotFound, ErrTypeNetworkNotFound, "Network %s could not be found.", p.ObjectID)
	}
	if err := checkRBACDuplicate(v, p); err != nil {
		return err
	}
	p.CreateIndex, p.ModifyIndex = index, index
	insert(txn, TableRBACPolicies, p, index)
	if p.Action == RBACAccessAsExternal && !n.External {
		// As Neutron does, a policy that makes a network external for a
		// project turns it into an external network, seen as such only by
		// its owner and the policies' targets.
		c := n.Copy()
		c.External, c.ExternalRestricted = true, true
		c.RevisionNumber++
		c.ModifyIndex = index
		insert(txn, TableNetworks, c, index)
	}
	return nil
}

// unconvertExternal makes a network that a policy made external internal
// again once its last access_as_external policy is gone.
func unconvertExternal(txn *memdb.Txn, v *View, netID string, index uint64) error {
	n := v.Network(netID)
	if n == nil || !n.ExternalRestricted {
		return nil
	}
	if slices.ContainsFunc(v.RBACPoliciesOf(netID), func(p *RBACPolicy) bool { return p.Action == RBACAccessAsExternal }) {
		return nil
	}
	if err := v.CheckExternalNetworkUnused(netID); err != nil {
		return Errorf(CodeConflict, ErrTypeRBACInUse,
			"RBAC policy on object %s cannot be removed because other objects depend on it.", netID)
	}
	c := n.Copy()
	c.External, c.ExternalRestricted = false, false
	c.RevisionNumber++
	c.ModifyIndex = index
	insert(txn, TableNetworks, c, index)
	return nil
}

// checkRBACRemovable refuses removing a policy (or retargeting it to
// newTarget) while a project that would lose access has objects on the
// network: its ports for access_as_shared, its router gateways and
// floating IPs for access_as_external (Neutron's RbacPolicyInUse).
func checkRBACRemovable(v *View, p *RBACPolicy, newTarget string) error {
	n := v.Network(p.ObjectID)
	if n == nil {
		return nil
	}
	others := v.RBACPoliciesOf(n.ID)
	loses := func(project string) bool {
		if project == "" || project == n.ProjectID {
			return false
		}
		if p.TargetTenant != RBACTargetAll && p.TargetTenant != project {
			return false
		}
		if newTarget == RBACTargetAll || newTarget == project {
			return false
		}
		if p.Action == RBACAccessAsShared {
			return !n.Shared && !rbacGrants(others, p.Action, project, p.ID)
		}
		return n.ExternalRestricted && !rbacGrants(others, p.Action, project, p.ID)
	}
	inUse := false
	if p.Action == RBACAccessAsShared {
		for _, port := range v.PortsOfNetwork(n.ID) {
			inUse = inUse || loses(port.ProjectID)
		}
	} else {
		for _, f := range all[*FloatingIP](v.txn, TableFloatingIPs, "network", n.ID) {
			inUse = inUse || loses(f.ProjectID)
		}
		for _, r := range v.Routers() {
			inUse = inUse || r.Gateway != nil && r.Gateway.NetworkID == n.ID && loses(r.ProjectID)
		}
	}
	if inUse {
		return Errorf(CodeConflict, ErrTypeRBACInUse,
			"RBAC policy on object %s cannot be removed because other objects depend on it.", n.ID)
	}
	return nil
}

// deleteRBACOf removes the policies of a deleted object.
func deleteRBACOf(txn *memdb.Txn, objectID string, index uint64) {
	v := View{txn: txn}
	for _, p := range v.RBACPoliciesOf(objectID) {
		remove(txn, TableRBACPolicies, p, index)
	}
}
