package fsm

// Subnet pools (Neutron's subnet_allocation extension, issue 19). The API
// server picks a free prefix of a pool before it proposes the subnet
// (northbound); the state machine re-checks at apply time that a pool's
// subnets lie in its prefixes and never overlap, so two concurrent
// allocations that picked the same prefix cannot both commit. A subnet's
// prefix returns to the pool when the subnet is deleted: what is free is
// computed from the pool's subnets, nothing else is recorded.

import (
	"net/netip"

	memdb "github.com/hashicorp/go-memdb"
)

// TableSubnetPools holds subnet pools.
const TableSubnetPools = "subnetpools"

// Error types of the subnet pool handlers (Neutron's).
const (
	ErrTypeSubnetPoolNotFound = "SubnetPoolNotFound"
	ErrTypeSubnetPoolInUse    = "SubnetPoolInUse"
	ErrTypeSubnetPoolOverlap  = "SubnetAllocationError"
)

// SubnetPool is a row of TableSubnetPools.
type SubnetPool struct {
	Meta
	IPVersion        int
	Prefixes         []string
	DefaultPrefixLen int
	MinPrefixLen     int
	MaxPrefixLen     int
	IsDefault        bool
	Shared           bool
	// AddressScopeID is stored and shown; address scopes are not enforced.
	AddressScopeID string
}

// Copy returns a deep copy that may be changed.
func (p *SubnetPool) Copy() *SubnetPool {
	c := *p
	c.Tags = append([]string(nil), p.Tags...)
	c.Prefixes = append([]string(nil), p.Prefixes...)
	return &c
}

// ParsedPrefixes returns the pool's prefixes (they were validated on
// create).
func (p *SubnetPool) ParsedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(p.Prefixes))
	for _, s := range p.Prefixes {
		if pr, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pr)
		}
	}
	return out
}

// Contains reports whether the prefix lies inside one of the pool's.
func (p *SubnetPool) Contains(sub netip.Prefix) bool {
	for _, pr := range p.ParsedPrefixes() {
		if pr.Bits() <= sub.Bits() && pr.Contains(sub.Addr()) {
			return true
		}
	}
	return false
}

// SubnetPoolRequest is the body of CmdSubnetPool. Update carries the whole
// pool and the ModifyIndex it was read at; delete only the ID.
type SubnetPoolRequest struct {
	Op string
	// Pool is nil for a delete (which names ID); create and update refuse
	// a request without it.
	Pool      *SubnetPool `fsm:"optional"`
	ID        string
	PrevIndex uint64
}

func subnetPoolSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableSubnetPools,
		Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"project": {Name: "project", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ProjectID"}},
		},
	}
}

// SubnetPool returns a pool by id, nil if there is none.
func (v *View) SubnetPool(id string) *SubnetPool {
	return first[*SubnetPool](v.txn, TableSubnetPools, "id", id)
}

// SubnetPools lists every pool, ordered by id.
func (v *View) SubnetPools() []*SubnetPool {
	return all[*SubnetPool](v.txn, TableSubnetPools, "id")
}

// DefaultSubnetPool returns the default pool of an IP version, nil if none.
func (v *View) DefaultSubnetPool(ipVersion int) *SubnetPool {
	for _, p := range v.SubnetPools() {
		if p.IsDefault && p.IPVersion == ipVersion {
			return p
		}
	}
	return nil
}

// SubnetsOfPool lists the subnets allocated from a pool.
func (v *View) SubnetsOfPool(poolID string) []*Subnet {
	var out []*Subnet
	for _, s := range v.Subnets() {
		if s.SubnetPoolID == poolID {
			out = append(out, s)
		}
	}
	return out
}

func subnetPoolNotFound(id string) error {
	return Errorf(CodeNotFound, ErrTypeSubnetPoolNotFound, "Subnet pool %s could not be found.", id)
}

func applySubnetPool(txn *memdb.Txn, body []byte, index uint64) error {
	var req SubnetPoolRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if err := needObject(req.Op, req.Pool != nil, "SubnetPoolRequest without Pool"); err != nil {
		return err
	}
	switch req.Op {
	case OpCreate, OpUpdate:
		p := req.Pool
		cur := v.SubnetPool(p.ID)
		if req.Op == OpCreate && cur != nil {
			return Errorf(CodeConflict, ErrTypeInvalidInput, "Subnet pool %s already exists.", p.ID)
		}
		if req.Op == OpUpdate {
			if cur == nil {
				return subnetPoolNotFound(p.ID)
			}
			if cur.ModifyIndex != req.PrevIndex {
				return Errorf(CodeConflict, ErrTypeStaleUpdate, "subnet pool %s changed concurrently", p.ID)
			}
			for _, s := range v.SubnetsOfPool(p.ID) {
				if !p.Contains(s.Prefix()) {
					return Errorf(CodeBadRequest, ErrTypeInvalidInput,
						"Illegal update to prefixes: subnet %s (%s) would no longer lie in the pool.", s.ID, s.CIDR)
				}
			}
		}
		if p.IsDefault {
			if d := v.DefaultSubnetPool(p.IPVersion); d != nil && d.ID != p.ID {
				return Errorf(CodeBadRequest, "BadRequest",
					"Invalid input for operation: A default subnetpool for this IP family has already been set. Only one default may exist per IP family.")
			}
		}
		p.CreateIndex, p.ModifyIndex = index, index
		if cur != nil {
			p.CreateIndex = cur.CreateIndex
		}
		insert(txn, TableSubnetPools, p, index)
		return nil
	case OpDelete:
		cur := v.SubnetPool(req.ID)
		if cur == nil {
			return subnetPoolNotFound(req.ID)
		}
		if len(v.SubnetsOfPool(req.ID)) > 0 {
			return Errorf(CodeConflict, ErrTypeSubnetPoolInUse,
				"Unable to complete operation on subnet pool %s. Subnets are allocated from it.", req.ID)
		}
		remove(txn, TableSubnetPools, cur, index)
		return nil
	}
	return Errorf(CodeBadRequest, ErrTypeInvalidInput, "unknown subnet pool operation %q", req.Op)
}

// checkPoolSubnet: a subnet from a pool lies in its prefixes, within its
// prefix lengths, and overlaps no other subnet of the pool.
func checkPoolSubnet(v *View, s *Subnet) error {
	if s.SubnetPoolID == "" {
		return nil
	}
	pool := v.SubnetPool(s.SubnetPoolID)
	if pool == nil {
		return subnetPoolNotFound(s.SubnetPoolID)
	}
	pr := s.Prefix()
	if pool.IPVersion != s.IPVersion || !pool.Contains(pr) {
		return Errorf(CodeBadRequest, ErrTypeSubnetPoolOverlap,
			"Unable to allocate subnet with prefix length %d, %s is not in subnet pool %s.", pr.Bits(), s.CIDR, pool.ID)
	}
	if pr.Bits() < pool.MinPrefixLen || pr.Bits() > pool.MaxPrefixLen {
		return Errorf(CodeBadRequest, ErrTypeSubnetPoolOverlap,
			"Unable to allocate subnet with prefix length %d, minimum allowed prefix is %d, maximum %d.", pr.Bits(), pool.MinPrefixLen, pool.MaxPrefixLen)
	}
	for _, o := range v.SubnetsOfPool(pool.ID) {
		if o.ID != s.ID && o.Prefix().Overlaps(pr) {
			return Errorf(CodeConflict, ErrTypeSubnetPoolOverlap,
				"Failed to allocate subnet: %s overlaps with subnet %s of subnet pool %s.", s.CIDR, o.ID, pool.ID)
		}
	}
	return nil
}
