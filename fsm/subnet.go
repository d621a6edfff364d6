package fsm

import (
	"net/netip"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Neutron error types used by the subnet handlers.
const (
	ErrTypeSubnetNotFound  = "SubnetNotFound"
	ErrTypeSubnetInUse     = "SubnetInUse"
	ErrTypeNetworkInUse    = "NetworkInUse"
	ErrTypeInvalidInput    = "InvalidInput"
	errTypeSubnetDuplicate = "SubnetDuplicated"
)

// IPRange is an inclusive range of addresses (an allocation pool).
type IPRange struct {
	Start string
	End   string
}

// Contains reports whether the address lies in the range. Both ends are
// canonical addresses of the same family, as the API stores them.
func (r IPRange) Contains(a netip.Addr) bool {
	s, err1 := netip.ParseAddr(r.Start)
	e, err2 := netip.ParseAddr(r.End)
	return err1 == nil && err2 == nil && s.Compare(a) <= 0 && a.Compare(e) <= 0
}

// HostRoute is a static route handed to instances by DHCP.
type HostRoute struct {
	Destination string
	NextHop     string
}

// Subnet is a Neutron subnet. CIDR, GatewayIP and the pools are canonical
// (netip) strings; GatewayIP is "" when the subnet has no gateway.
type Subnet struct {
	Meta
	NetworkID       string
	IPVersion       int
	CIDR            string
	GatewayIP       string
	AllocationPools []IPRange
	EnableDHCP      bool
	DNSNameservers  []string
	HostRoutes      []HostRoute
	IPv6RAMode      string
	IPv6AddressMode string
	// SubnetPoolID is the pool the subnet's prefix was allocated from.
	SubnetPoolID string
}

// Copy returns a deep copy that may be changed.
func (s *Subnet) Copy() *Subnet {
	c := *s
	c.Tags = append([]string(nil), s.Tags...)
	c.AllocationPools = append([]IPRange(nil), s.AllocationPools...)
	c.DNSNameservers = append([]string(nil), s.DNSNameservers...)
	c.HostRoutes = append([]HostRoute(nil), s.HostRoutes...)
	return &c
}

// Prefix returns the parsed CIDR (the zero Prefix if it does not parse).
func (s *Subnet) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(s.CIDR)
	return p
}

// InPools reports whether an address lies in one of the allocation pools.
func (s *Subnet) InPools(a netip.Addr) bool {
	for _, r := range s.AllocationPools {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// SubnetCreateRequest creates one or more subnets, all or none.
type SubnetCreateRequest struct {
	Subnets []*Subnet
}

// SubnetUpdateRequest replaces a subnet (compare-and-set on PrevIndex).
type SubnetUpdateRequest struct {
	Subnet    *Subnet
	PrevIndex uint64
}

// SubnetDeleteRequest deletes a subnet by id.
type SubnetDeleteRequest struct {
	ID string
}

// Subnet returns the subnet with the id, or nil.
func (v *View) Subnet(id string) *Subnet {
	return first[*Subnet](v.txn, TableSubnets, "id", id)
}

// Subnets returns every subnet, ordered by id.
func (v *View) Subnets() []*Subnet {
	return all[*Subnet](v.txn, TableSubnets, "id")
}

// SubnetsOfNetwork returns the network's subnets in creation order.
func (v *View) SubnetsOfNetwork(networkID string) []*Subnet {
	subs := all[*Subnet](v.txn, TableSubnets, "network", networkID)
	sortByCreation(subs)
	return subs
}

// sortByCreation orders objects by CreateIndex then id. It also sorts a
// router's interfaces (hundreds): an insertion sort was quadratic there.
func sortByCreation[T Object](objs []T) {
	if len(objs) < 2 {
		return
	}
	slices.SortFunc(objs, func(a, b T) int {
		am, bm := a.GetMeta(), b.GetMeta()
		switch {
		case lessCreated(am, bm):
			return -1
		case lessCreated(bm, am):
			return 1
		}
		return 0
	})
}

func lessCreated(a, b *Meta) bool {
	if a.CreateIndex != b.CreateIndex {
		return a.CreateIndex < b.CreateIndex
	}
	return a.ID < b.ID
}

func subnetNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeSubnetNotFound, "Subnet %s could not be found.", id)
}

// CheckSubnetOverlap refuses a CIDR that overlaps another subnet of the
// same network (Neutron allows overlap across networks only).
func (v *View) CheckSubnetOverlap(s *Subnet) error {
	p := s.Prefix()
	for _, o := range all[*Subnet](v.txn, TableSubnets, "network", s.NetworkID) {
		if o.ID != s.ID && o.Prefix().Overlaps(p) {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput,
				"Invalid input for operation: Requested subnet with cidr: %s for network: %s overlaps with another subnet.", s.CIDR, s.NetworkID)
		}
	}
	return nil
}

// CheckSubnetDelete reports whether the subnet may be deleted: only the
// subnet's service ports (see IsServicePort) may hold addresses on it.
func (v *View) CheckSubnetDelete(id string) error {
	if v.Subnet(id) == nil {
		return subnetNotFound(id)
	}
	for _, p := range v.PortsOnSubnet(id) {
		if !IsServicePort(p) {
			return Errorf(CodeConflict, ErrTypeSubnetInUse,
				"Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
		}
	}
	return checkSubnetVPN(v, id)
}

// CheckNetworkDelete reports whether the network may be deleted: only
// service ports, which go with it, may remain on it.
func (v *View) CheckNetworkDelete(id string) error {
	for _, p := range v.PortsOfNetwork(id) {
		if !IsServicePort(p) {
			return Errorf(CodeConflict, ErrTypeNetworkInUse,
				"Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
	}
	for _, s := range v.SubnetsOfNetwork(id) {
		if err := checkSubnetVPN(v, s.ID); err != nil {
			return err
		}
	}
	return nil
}

// deleteNetworkChildren removes what a network takes with it (its service
// ports, subnets and MAC bindings), or refuses while other ports remain on
// it.
func deleteNetworkChildren(txn *memdb.Txn, id string, index uint64) error {
	v := View{txn: txn}
	if err := v.CheckNetworkDelete(id); err != nil {
		return err
	}
	for _, p := range v.PortsOfNetwork(id) {
		remove(txn, TablePorts, p, index)
	}
	for _, s := range v.SubnetsOfNetwork(id) {
		remove(txn, TableSubnets, s, index)
	}
	for _, m := range v.MacBindingsOfNetwork(id) {
		remove(txn, TableMacBindings, m, index)
	}
	return nil
}

func checkSubnet(v *View, s *Subnet) error {
	if v.Network(s.NetworkID) == nil {
		return Errorf(CodeNotFound, ErrTypeNetworkNotFound, "Network %s could not be found.", s.NetworkID)
	}
	p, err := netip.ParsePrefix(s.CIDR)
	if err != nil || p.Masked() != p {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: '%s' is not a valid IP subnet.", s.CIDR)
	}
	if err := checkPoolSubnet(v, s); err != nil {
		return err
	}
	return v.CheckSubnetOverlap(s)
}

func applySubnetCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req SubnetCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	for _, s := range req.Subnets {
		if v.Subnet(s.ID) != nil {
			return Errorf(CodeConflict, errTypeSubnetDuplicate, "Subnet %s already exists.", s.ID)
		}
		if err := checkSubnet(&v, s); err != nil {
			return err
		}
		s.CreateIndex, s.ModifyIndex = index, index
		insert(txn, TableSubnets, s, index)
	}
	return nil
}

func applySubnetUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req SubnetUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	s := req.Subnet
	cur := v.Subnet(s.ID)
	if cur == nil {
		return subnetNotFound(s.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "subnet %s changed concurrently", s.ID)
	}
	if s.NetworkID != cur.NetworkID || s.CIDR != cur.CIDR || s.IPVersion != cur.IPVersion {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: network_id, cidr and ip_version cannot be changed.")
	}
	if err := v.CheckPoolsKeepAllocations(cur, s); err != nil {
		return err
	}
	s.CreateIndex, s.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableSubnets, s, index)
	return nil
}

// CheckPoolsKeepAllocations refuses new allocation pools that would leave
// out an address allocated from the old pools: IPAM handed that address
// out from a pool, and it must stay in one. Addresses placed explicitly
// outside the pools (Neutron allows that) are not constrained.
func (v *View) CheckPoolsKeepAllocations(cur, next *Subnet) error {
	for _, p := range v.PortsOnSubnet(cur.ID) {
		for _, ip := range p.FixedIPs {
			if ip.SubnetID != cur.ID {
				continue
			}
			a, err := netip.ParseAddr(ip.IPAddress)
			if err != nil || !cur.InPools(a) || next.InPools(a) || ip.IPAddress == next.GatewayIP {
				continue
			}
			return Errorf(CodeConflict, ErrTypeSubnetInUse,
				"Unable to complete operation on subnet %s: the allocation pools must keep the allocated address %s of port %s.", cur.ID, ip.IPAddress, p.ID)
		}
	}
	return nil
}

func applySubnetDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req SubnetDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	if err := v.CheckSubnetDelete(req.ID); err != nil {
		return err
	}
	// Service ports give up their address on the subnet; one left without
	// any address goes too.
	for _, p := range v.PortsOnSubnet(req.ID) {
		c := p.Copy()
		c.FixedIPs = c.FixedIPs[:0]
		for _, ip := range p.FixedIPs {
			if ip.SubnetID != req.ID {
				c.FixedIPs = append(c.FixedIPs, ip)
			}
		}
		if len(c.FixedIPs) == 0 {
			remove(txn, TablePorts, p, index)
			continue
		}
		c.ModifyIndex = index
		c.RevisionNumber++
		insert(txn, TablePorts, c, index)
	}
	remove(txn, TableSubnets, v.Subnet(req.ID), index)
	return nil
}
