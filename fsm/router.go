package fsm

import (
	"fmt"
	"net/netip"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Neutron error types used by the router and floating IP handlers.
const (
	ErrTypeRouterNotFound                = "RouterNotFound"
	ErrTypeRouterInUse                   = "RouterInUse"
	ErrTypeRouterInterfaceNotFound       = "RouterInterfaceNotFound"
	ErrTypeRouterInterfaceNotFoundSubnet = "RouterInterfaceNotFoundForSubnet"
	ErrTypeRouterInterfaceInUseByFIP     = "RouterInterfaceInUseByFloatingIP"
	ErrTypeRouterInterfaceInUseByRoute   = "RouterInterfaceInUseByRoute"
	ErrTypeGatewayInUseByFloatingIP      = "RouterExternalGatewayInUseByFloatingIp"
	ErrTypeInvalidRoutes                 = "InvalidRoutes"
	ErrTypeL3PortInUse                   = "L3PortInUse"
	ErrTypePortInUse                     = "PortInUse"
	ErrTypeBadRequest                    = "BadRequest"
	ErrTypeFloatingIPNotFound            = "FloatingIPNotFound"
	ErrTypeExternalGatewayForFIPNotFound = "ExternalGatewayForFloatingIPNotFound"
	ErrTypeFIPPortAlreadyAssociated      = "FloatingIPPortAlreadyAssociated"
	ErrTypeExternalNetworkInUse          = "ExternalNetworkInUse"
	errTypeRouterDuplicate               = "RouterDuplicated"
	errTypeFloatingIPDuplicate           = "FloatingIPDuplicated"
)

// Floating IP states: a floating IP is ACTIVE while it is associated with
// a port, DOWN otherwise (decided from the replicated state alone).
const (
	FloatingIPActive = "ACTIVE"
	FloatingIPDown   = "DOWN"
)

// Route is one extra route of a router (Neutron's extraroute).
type Route struct {
	Destination string
	NextHop     string
}

// ExternalGateway is a router's external_gateway_info without its
// addresses: those are the fixed IPs of the router's gateway port.
type ExternalGateway struct {
	NetworkID  string
	EnableSNAT bool
}

// Router is a Neutron router. Its interfaces are ports with device_id =
// router id and device_owner network:router_interface; its gateway is the
// port with device_owner network:router_gateway.
type Router struct {
	Meta
	AdminStateUp          bool
	Status                string
	Gateway               *ExternalGateway `fsm:"optional"`
	Distributed           bool
	HA                    bool
	Routes                []Route
	AvailabilityZoneHints []string
	// GatewayChassis is the priority list of gateway chassis for the
	// router's gateway port (extension attribute neutrino:gateway_chassis).
	GatewayChassis []string
	// GatewayPreempt moves the gateway back to a higher-priority chassis
	// when it comes back up (neutrino:gateway_preempt; default false: a
	// chassis that comes back takes nothing back).
	GatewayPreempt bool
	// Key is the router's datapath key (keys.go): the value of the routing
	// register, its SNAT conntrack zone, its flows' cookie owner.
	DatapathKey uint32
}

// Copy returns a deep copy that may be changed.
func (r *Router) Copy() *Router {
	c := *r
	c.Tags = append([]string(nil), r.Tags...)
	c.Routes = append([]Route(nil), r.Routes...)
	c.AvailabilityZoneHints = append([]string(nil), r.AvailabilityZoneHints...)
	c.GatewayChassis = append([]string(nil), r.GatewayChassis...)
	if r.Gateway != nil {
		g := *r.Gateway
		c.Gateway = &g
	}
	return &c
}

// FloatingIP is a Neutron floating IP. Its address is held by a port on
// the external network (device_owner network:floatingip, device_id = the
// floating IP's id), so address uniqueness is the ports' own.
type FloatingIP struct {
	Meta
	FloatingNetworkID string
	FloatingSubnetID  string
	FloatingIPAddress string
	FloatingPortID    string
	PortID            string
	FixedIPAddress    string
	RouterID          string
	Status            string
}

// Copy returns a deep copy that may be changed.
func (f *FloatingIP) Copy() *FloatingIP {
	c := *f
	c.Tags = append([]string(nil), f.Tags...)
	return &c
}

// RouterCreateRequest creates a router with its gateway port (nil: none).
type RouterCreateRequest struct {
	Router      *Router
	GatewayPort *Port `fsm:"optional"`
}

// RouterUpdateRequest replaces a router (compare-and-set on PrevIndex).
// With a gateway, GatewayPort (when not nil) replaces the router's gateway
// port; nil keeps the current one. Without a gateway, the gateway port goes.
type RouterUpdateRequest struct {
	Router      *Router
	PrevIndex   uint64
	GatewayPort *Port `fsm:"optional"`
}

// RouterDeleteRequest deletes a router and its gateway port.
type RouterDeleteRequest struct {
	ID string
}

// RouterInterfaceAddRequest attaches a port to a router in one step with
// the router's new version (compare-and-set on PrevIndex). PortPrevIndex
// is 0 when Port is created here, else the ModifyIndex of the existing
// port it replaces.
type RouterInterfaceAddRequest struct {
	Router        *Router
	PrevIndex     uint64
	Port          *Port
	PortPrevIndex uint64
}

// RouterInterfaceRemoveRequest detaches and deletes an interface port.
type RouterInterfaceRemoveRequest struct {
	Router    *Router
	PrevIndex uint64
	PortID    string
}

// FloatingIPCreateRequest creates a floating IP with its address port.
type FloatingIPCreateRequest struct {
	FloatingIP *FloatingIP
	Port       *Port
}

// FloatingIPUpdateRequest replaces a floating IP (compare-and-set). The
// association (PortID, FixedIPAddress) is re-checked and RouterID and
// Status derived from it at apply time.
type FloatingIPUpdateRequest struct {
	FloatingIP *FloatingIP
	PrevIndex  uint64
}

// FloatingIPDeleteRequest deletes a floating IP and its address port.
type FloatingIPDeleteRequest struct {
	ID string
}

// Router returns the router with the id, or nil.
func (v *View) Router(id string) *Router {
	return first[*Router](v.txn, TableRouters, "id", id)
}

// Routers returns every router, ordered by id.
func (v *View) Routers() []*Router {
	return all[*Router](v.txn, TableRouters, "id")
}

// FloatingIP returns the floating IP with the id, or nil.
func (v *View) FloatingIP(id string) *FloatingIP {
	return first[*FloatingIP](v.txn, TableFloatingIPs, "id", id)
}

// FloatingIPs returns every floating IP, ordered by id.
func (v *View) FloatingIPs() []*FloatingIP {
	return all[*FloatingIP](v.txn, TableFloatingIPs, "id")
}

// FloatingIPsOfPort returns the floating IPs associated with a port.
func (v *View) FloatingIPsOfPort(portID string) []*FloatingIP {
	return all[*FloatingIP](v.txn, TableFloatingIPs, "port", portID)
}

// FloatingIPsOfRouter returns the floating IPs routed through a router.
func (v *View) FloatingIPsOfRouter(routerID string) []*FloatingIP {
	return all[*FloatingIP](v.txn, TableFloatingIPs, "router", routerID)
}

// RouterInterfaces returns a router's interface ports in creation order.
func (v *View) RouterInterfaces(routerID string) []*Port {
	var out []*Port
	for _, p := range v.PortsOfDevice(routerID) {
		if p.DeviceOwner == DeviceOwnerRouterInterface {
			out = append(out, p)
		}
	}
	sortByCreation(out)
	return out
}

// RouterGatewayPort returns a router's gateway port, or nil. It walks the
// device index without collecting the router's ports: the agent asks it
// of every router after each port change (watchFailovers).
func (v *View) RouterGatewayPort(routerID string) *Port {
	it, err := v.txn.Get(TablePorts, "device", routerID)
	if err != nil {
		panic(fmt.Sprintf("fsm: list %s.device: %v", TablePorts, err))
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if p := raw.(*Port); p.DeviceOwner == DeviceOwnerRouterGateway {
			return p
		}
	}
	return nil
}

// IsL3Port reports whether a port belongs to a router or a floating IP:
// such ports are managed through those resources, not the port API.
func IsL3Port(p *Port) bool {
	switch p.DeviceOwner {
	case DeviceOwnerRouterInterface, DeviceOwnerRouterGateway, DeviceOwnerFloatingIP:
		return true
	}
	return false
}

func routerNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeRouterNotFound, "Router %s could not be found", id)
}

func floatingIPNotFound(id string) *Error {
	return Errorf(CodeNotFound, ErrTypeFloatingIPNotFound, "Floating IP %s could not be found", id)
}

// subnetsOfPorts returns the subnets the ports have addresses on.
func (v *View) subnetsOfPorts(ports ...*Port) []*Subnet {
	var out []*Subnet
	// A set, not a scan of out: a router with n interfaces made every
	// add_router_interface O(n^2) here (issue 18: 24 ms each).
	seen := make(map[string]bool, len(ports))
	for _, p := range ports {
		if p == nil {
			continue
		}
		for _, ip := range p.FixedIPs {
			if seen[ip.SubnetID] {
				continue
			}
			seen[ip.SubnetID] = true
			if s := v.Subnet(ip.SubnetID); s != nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// CheckRoutes validates extra routes against the subnets of the router's
// ports (interfaces and gateway, as Neutron): every nexthop must be inside
// one of them and must not be one of the router's own addresses.
func (v *View) CheckRoutes(routes []Route, ports []*Port) error {
	if len(routes) == 0 {
		return nil
	}
	subs := v.subnetsOfPorts(ports...)
	for _, rt := range routes {
		hop, err := netip.ParseAddr(rt.NextHop)
		if err != nil {
			return Errorf(CodeBadRequest, ErrTypeInvalidRoutes, "Invalid format for routes: %s via %s, the nexthop is not a valid IP address.", rt.Destination, rt.NextHop)
		}
		ok := slices.ContainsFunc(subs, func(s *Subnet) bool { return s.Prefix().Contains(hop) })
		if !ok {
			return Errorf(CodeBadRequest, ErrTypeInvalidRoutes,
				"Invalid format for routes: %s via %s, the nexthop does not belong to router's subnets.", rt.Destination, rt.NextHop)
		}
		for _, p := range ports {
			if p != nil && slices.ContainsFunc(p.FixedIPs, func(f FixedIP) bool { return f.IPAddress == hop.String() }) {
				return Errorf(CodeBadRequest, ErrTypeInvalidRoutes,
					"Invalid format for routes: %s via %s, the nexthop is used by router.", rt.Destination, rt.NextHop)
			}
		}
	}
	return nil
}

// CheckInterfaceSubnet reports whether a port on the subnet may become an
// interface of the router: the router has no port on the subnet yet and
// the subnet overlaps none of the router's other interface subnets.
//
// It runs in the handler and in every replica's apply of each
// add_router_interface, over all the router's interfaces: it walks the
// device index once, without the sorted copy RouterInterfaces makes, and
// compares subnet ids before it looks a subnet up (issue 18: the add was
// dearer than a port create).
func (v *View) CheckInterfaceSubnet(routerID string, sub *Subnet) error {
	prefix := sub.Prefix()
	it, err := v.txn.Get(TablePorts, "device", routerID)
	if err != nil {
		panic(fmt.Sprintf("fsm: list %s.device: %v", TablePorts, err))
	}
	var (
		first  *Subnet // the first overlapping subnet, by creation
		looked map[string]bool
	)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		p := raw.(*Port)
		if p.DeviceOwner != DeviceOwnerRouterInterface {
			continue
		}
		for _, ip := range p.FixedIPs {
			if ip.SubnetID == sub.ID {
				return Errorf(CodeBadRequest, ErrTypeBadRequest,
					"Bad router request: Router already has a port on subnet %s.", sub.ID)
			}
			if looked[ip.SubnetID] {
				continue
			}
			if looked == nil {
				looked = make(map[string]bool)
			}
			looked[ip.SubnetID] = true
			s := v.Subnet(ip.SubnetID)
			if s == nil || !s.Prefix().Overlaps(prefix) {
				continue
			}
			// The error names the oldest overlapping subnet, as the
			// scan in creation order did.
			if first == nil || lessCreated(&s.Meta, &first.Meta) {
				first = s
			}
		}
	}
	if first != nil {
		return Errorf(CodeBadRequest, ErrTypeBadRequest,
			"Bad router request: Cidr %s of subnet %s overlaps with cidr %s of subnet %s.", sub.CIDR, sub.ID, first.CIDR, first.ID)
	}
	return nil
}

// CheckGatewayNetwork: a router gateway or a floating IP needs an
// external network.
func (v *View) CheckGatewayNetwork(netID, what string) error {
	n := v.Network(netID)
	if n == nil {
		return Errorf(CodeNotFound, ErrTypeNetworkNotFound, "Network %s could not be found.", netID)
	}
	if !n.External {
		if what == "floatingip" {
			return Errorf(CodeBadRequest, ErrTypeBadRequest,
				"Bad floatingip request: Network %s is not a valid external network.", netID)
		}
		return Errorf(CodeBadRequest, ErrTypeBadRequest, "Bad router request: Network %s is not an external network.", netID)
	}
	return nil
}

// FloatingIPRouter finds the router a floating IP on network extNet
// reaches the port's address through: a router with an interface on the
// address's subnet and its gateway on extNet. It validates the
// association as Neutron does.
func (v *View) FloatingIPRouter(fip *FloatingIP) (string, error) {
	p := v.Port(fip.PortID)
	if p == nil {
		return "", portNotFound(fip.PortID)
	}
	if IsL3Port(p) || p.DeviceOwner == DeviceOwnerDHCP {
		return "", Errorf(CodeBadRequest, ErrTypeBadRequest,
			"Bad floatingip request: Port %s has owner %s and therefore cannot be associated with a floating IP.", p.ID, p.DeviceOwner)
	}
	var fixed *FixedIP
	for i, f := range p.FixedIPs {
		if f.IPAddress == fip.FixedIPAddress {
			fixed = &p.FixedIPs[i]
		}
	}
	if fixed == nil {
		return "", Errorf(CodeBadRequest, ErrTypeBadRequest,
			"Bad floatingip request: Port %s does not have fixed ip %s.", p.ID, fip.FixedIPAddress)
	}
	for _, o := range v.FloatingIPsOfPort(p.ID) {
		if o.ID != fip.ID && o.FixedIPAddress == fip.FixedIPAddress && o.FloatingNetworkID == fip.FloatingNetworkID {
			return "", Errorf(CodeConflict, ErrTypeFIPPortAlreadyAssociated,
				"Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
				fip.FloatingIPAddress, fip.ID, p.ID, fip.FixedIPAddress, fip.FloatingNetworkID)
		}
	}
	var found []string
	for _, rp := range v.PortsOnSubnet(fixed.SubnetID) {
		if rp.DeviceOwner != DeviceOwnerRouterInterface {
			continue
		}
		r := v.Router(rp.DeviceID)
		if r != nil && r.Gateway != nil && r.Gateway.NetworkID == fip.FloatingNetworkID && !slices.Contains(found, r.ID) {
			found = append(found, r.ID)
		}
	}
	if len(found) == 0 {
		return "", Errorf(CodeNotFound, ErrTypeExternalGatewayForFIPNotFound,
			"External network %s is not reachable from subnet %s. Therefore, cannot associate Port %s with a Floating IP.",
			fip.FloatingNetworkID, fixed.SubnetID, p.ID)
	}
	// Several routers can serve one subnet; the lowest id is a choice
	// every replica makes the same way.
	slices.Sort(found)
	return found[0], nil
}

// checkRouterPorts validates the router's ports as they stand in the
// transaction: its gateway on an external network and its routes.
func checkRouterPorts(v *View, r *Router) error {
	if r.Gateway != nil {
		if err := v.CheckGatewayNetwork(r.Gateway.NetworkID, "router"); err != nil {
			return err
		}
		gp := v.RouterGatewayPort(r.ID)
		if gp == nil || gp.NetworkID != r.Gateway.NetworkID {
			return Errorf(CodeBadRequest, ErrTypeBadRequest, "Bad router request: the gateway port of router %s is not on network %s.", r.ID, r.Gateway.NetworkID)
		}
	}
	if len(r.Routes) == 0 {
		return nil // no need to list the router's ports
	}
	return v.CheckRoutes(r.Routes, v.PortsOfDevice(r.ID))
}

// setGatewayPort replaces the router's gateway port(s) with p (nil: none).
func setGatewayPort(txn *memdb.Txn, routerID string, p *Port, index uint64) error {
	v := View{txn: txn}
	var prev *Port
	for _, cur := range v.PortsOfDevice(routerID) {
		if cur.DeviceOwner != DeviceOwnerRouterGateway {
			continue
		}
		if p != nil && cur.ID == p.ID {
			prev = cur
			continue
		}
		remove(txn, TablePorts, cur, index)
	}
	if p == nil {
		return nil
	}
	if p.DeviceID != routerID || p.DeviceOwner != DeviceOwnerRouterGateway {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: gateway port %s does not belong to router %s.", p.ID, routerID)
	}
	if prev == nil && v.Port(p.ID) != nil {
		return Errorf(CodeConflict, errTypePortDuplicate, "Port %s already exists.", p.ID)
	}
	if err := v.CheckPort(p); err != nil {
		return err
	}
	p.CreateIndex, p.ModifyIndex = index, index
	if prev != nil {
		p.CreateIndex = prev.CreateIndex
	}
	insert(txn, TablePorts, p, index)
	return nil
}

func applyRouterCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req RouterCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	r := req.Router
	if v.Router(r.ID) != nil {
		return Errorf(CodeConflict, errTypeRouterDuplicate, "Router %s already exists.", r.ID)
	}
	if (r.Gateway == nil) != (req.GatewayPort == nil) {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: a gateway needs exactly one gateway port.")
	}
	host, err := v.planGateway(nil, r, "")
	if err != nil {
		return err
	}
	if p := req.GatewayPort; p != nil {
		p.BindingHostID = ""
		setGatewayBinding(p, host)
	}
	if err := setGatewayPort(txn, r.ID, req.GatewayPort, index); err != nil {
		return err
	}
	if err := checkRouterPorts(&v, r); err != nil {
		return err
	}
	clearKey(r)
	if _, err := assignKey(txn, TableRouters, r); err != nil {
		return err
	}
	r.CreateIndex, r.ModifyIndex = index, index
	insert(txn, TableRouters, r, index)
	return nil
}

// checkRouterCAS returns the current router if PrevIndex still matches.
func checkRouterCAS(v *View, id string, prev uint64) (*Router, error) {
	cur := v.Router(id)
	if cur == nil {
		return nil, routerNotFound(id)
	}
	if cur.ModifyIndex != prev {
		return nil, Errorf(CodeConflict, ErrTypeStaleUpdate, "router %s changed concurrently", id)
	}
	return cur, nil
}

func applyRouterUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req RouterUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	r := req.Router
	cur, err := checkRouterCAS(&v, r.ID, req.PrevIndex)
	if err != nil {
		return err
	}
	gatewayMoves := cur.Gateway != nil && (r.Gateway == nil || r.Gateway.NetworkID != cur.Gateway.NetworkID)
	if gatewayMoves {
		if err := checkRouterVPN(&v, r.ID); err != nil {
			return err
		}
	}
	if gatewayMoves && len(v.FloatingIPsOfRouter(r.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeGatewayInUseByFloatingIP,
			"Gateway %s of router %s cannot be updated, as it is required by one or more floating IPs.", cur.Gateway.NetworkID, r.ID)
	}
	// The gateway stays where it is active unless it moves to another
	// network; the scheduler decides the list and the binding.
	curPort := v.RouterGatewayPort(r.ID)
	curHost := ""
	if curPort != nil && !gatewayMoves && r.Gateway != nil {
		curHost = curPort.BindingHostID
	}
	host, err := v.planGateway(cur, r, curHost)
	if err != nil {
		return err
	}
	switch {
	case r.Gateway == nil:
		if err := setGatewayPort(txn, r.ID, nil, index); err != nil {
			return err
		}
	case req.GatewayPort != nil:
		p := req.GatewayPort
		// The binding is the state machine's, not the proposer's copy.
		p.BindingHostID, p.BindingVIFType, p.BindingOFPort, p.Status = "", VIFTypeUnbound, 0, PortStatusDown
		if old := v.Port(p.ID); old != nil && old.DeviceID == r.ID && old.DeviceOwner == DeviceOwnerRouterGateway {
			p.BindingHostID, p.BindingVIFType, p.BindingOFPort, p.Status = old.BindingHostID, old.BindingVIFType, old.BindingOFPort, old.Status
		}
		setGatewayBinding(p, host)
		if err := setGatewayPort(txn, r.ID, p, index); err != nil {
			return err
		}
	case curPort != nil:
		rebindGatewayPort(txn, curPort, host, r.UpdatedAt, index)
	}
	if err := checkRouterPorts(&v, r); err != nil {
		return err
	}
	refreshVPNServices(txn, r.ID, index)
	r.CreateIndex, r.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableRouters, r, index)
	return nil
}

func applyRouterDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req RouterDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.Router(req.ID)
	if cur == nil {
		return routerNotFound(req.ID)
	}
	if len(v.RouterInterfaces(req.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeRouterInUse, "Router %s still has ports", req.ID)
	}
	if len(v.FloatingIPsOfRouter(req.ID)) > 0 {
		return Errorf(CodeConflict, ErrTypeRouterInUse, "Router %s is still used by floating IPs", req.ID)
	}
	if err := checkRouterVPN(&v, req.ID); err != nil {
		return err
	}
	if err := setGatewayPort(txn, req.ID, nil, index); err != nil {
		return err
	}
	remove(txn, TableRouters, cur, index)
	return nil
}

func applyRouterInterfaceAdd(txn *memdb.Txn, body []byte, index uint64) error {
	var req RouterInterfaceAddRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	r, p := req.Router, req.Port
	cur, err := checkRouterCAS(&v, r.ID, req.PrevIndex)
	if err != nil {
		return err
	}
	if p.DeviceID != r.ID || p.DeviceOwner != DeviceOwnerRouterInterface || len(p.FixedIPs) != 1 {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: port %s is not an interface of router %s.", p.ID, r.ID)
	}
	existing := v.Port(p.ID)
	switch {
	case req.PortPrevIndex == 0 && existing != nil:
		return Errorf(CodeConflict, errTypePortDuplicate, "Port %s already exists.", p.ID)
	case req.PortPrevIndex != 0 && existing == nil:
		return portNotFound(p.ID)
	case req.PortPrevIndex != 0 && existing.ModifyIndex != req.PortPrevIndex:
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "port %s changed concurrently", p.ID)
	case existing != nil && existing.DeviceID != "":
		return Errorf(CodeConflict, ErrTypePortInUse,
			"Unable to complete operation on port %s for network %s. Port already has an attached device %s.", p.ID, p.NetworkID, existing.DeviceID)
	case existing != nil && existing.NetworkID != p.NetworkID:
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: network_id cannot be changed.")
	}
	sub := v.Subnet(p.FixedIPs[0].SubnetID)
	if sub == nil {
		return subnetNotFound(p.FixedIPs[0].SubnetID)
	}
	if n := v.Network(sub.NetworkID); n != nil && n.External {
		return Errorf(CodeBadRequest, ErrTypeBadRequest,
			"Bad router request: Subnet %s is on external network %s; use it as the router's gateway.", sub.ID, n.ID)
	}
	if err := v.CheckInterfaceSubnet(r.ID, sub); err != nil {
		return err
	}
	if err := v.CheckPort(p); err != nil {
		return err
	}
	p.CreateIndex, p.ModifyIndex = index, index
	if existing != nil {
		p.CreateIndex = existing.CreateIndex
	}
	insert(txn, TablePorts, p, index)
	if err := checkRouterPorts(&v, r); err != nil {
		return err
	}
	r.CreateIndex, r.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableRouters, r, index)
	return nil
}

// CheckInterfaceRemove reports whether an interface port may leave its
// router: no floating IP is routed through its subnet and no extra route
// needs it.
func (v *View) CheckInterfaceRemove(r *Router, p *Port) error {
	subs := v.subnetsOfPorts(p)
	for _, f := range v.FloatingIPsOfRouter(r.ID) {
		fp := v.Port(f.PortID)
		if fp == nil {
			continue
		}
		for _, ip := range fp.FixedIPs {
			if ip.IPAddress == f.FixedIPAddress && slices.ContainsFunc(subs, func(s *Subnet) bool { return s.ID == ip.SubnetID }) {
				return Errorf(CodeConflict, ErrTypeRouterInterfaceInUseByFIP,
					"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", ip.SubnetID, r.ID)
			}
		}
	}
	var rest []*Port
	for _, o := range v.PortsOfDevice(r.ID) {
		if o.ID != p.ID {
			rest = append(rest, o)
		}
	}
	if err := v.CheckRoutes(r.Routes, rest); err != nil {
		sub := ""
		if len(subs) > 0 {
			sub = subs[0].ID
		}
		return Errorf(CodeConflict, ErrTypeRouterInterfaceInUseByRoute,
			"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.", sub, r.ID)
	}
	return nil
}

func applyRouterInterfaceRemove(txn *memdb.Txn, body []byte, index uint64) error {
	var req RouterInterfaceRemoveRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	r := req.Router
	cur, err := checkRouterCAS(&v, r.ID, req.PrevIndex)
	if err != nil {
		return err
	}
	p := v.Port(req.PortID)
	if p == nil || p.DeviceID != r.ID || p.DeviceOwner != DeviceOwnerRouterInterface {
		return Errorf(CodeNotFound, ErrTypeRouterInterfaceNotFound, "Router %s does not have an interface with id %s", r.ID, req.PortID)
	}
	if err := v.CheckInterfaceRemove(cur, p); err != nil {
		return err
	}
	if err := checkInterfaceVPN(&v, r.ID, p); err != nil {
		return err
	}
	forgetFirewallPort(txn, p.ID, index)
	remove(txn, TablePorts, p, index)
	r.CreateIndex, r.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableRouters, r, index)
	return nil
}

// associate derives RouterID and Status from the floating IP's port.
func associate(v *View, f *FloatingIP) error {
	f.RouterID, f.Status = "", FloatingIPDown
	if f.PortID == "" {
		f.FixedIPAddress = ""
		return nil
	}
	rid, err := v.FloatingIPRouter(f)
	if err != nil {
		return err
	}
	f.RouterID, f.Status = rid, FloatingIPActive
	return nil
}

func applyFloatingIPCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FloatingIPCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	f, p := req.FloatingIP, req.Port
	if v.FloatingIP(f.ID) != nil {
		return Errorf(CodeConflict, errTypeFloatingIPDuplicate, "Floating IP %s already exists.", f.ID)
	}
	if err := v.CheckGatewayNetwork(f.FloatingNetworkID, "floatingip"); err != nil {
		return err
	}
	if p == nil || p.ID != f.FloatingPortID || p.DeviceID != f.ID || p.DeviceOwner != DeviceOwnerFloatingIP || p.NetworkID != f.FloatingNetworkID {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: floating IP %s needs its address port.", f.ID)
	}
	if v.Port(p.ID) != nil {
		return Errorf(CodeConflict, errTypePortDuplicate, "Port %s already exists.", p.ID)
	}
	if err := v.CheckPort(p); err != nil {
		return err
	}
	if err := associate(&v, f); err != nil {
		return err
	}
	p.CreateIndex, p.ModifyIndex = index, index
	insert(txn, TablePorts, p, index)
	f.CreateIndex, f.ModifyIndex = index, index
	insert(txn, TableFloatingIPs, f, index)
	return nil
}

func applyFloatingIPUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req FloatingIPUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	f := req.FloatingIP
	cur := v.FloatingIP(f.ID)
	if cur == nil {
		return floatingIPNotFound(f.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "floating IP %s changed concurrently", f.ID)
	}
	if f.FloatingNetworkID != cur.FloatingNetworkID || f.FloatingIPAddress != cur.FloatingIPAddress || f.FloatingPortID != cur.FloatingPortID {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: the floating address cannot be changed.")
	}
	if err := associate(&v, f); err != nil {
		return err
	}
	f.CreateIndex, f.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableFloatingIPs, f, index)
	return nil
}

func applyFloatingIPDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req FloatingIPDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.FloatingIP(req.ID)
	if cur == nil {
		return floatingIPNotFound(req.ID)
	}
	if p := v.Port(cur.FloatingPortID); p != nil {
		remove(txn, TablePorts, p, index)
	}
	remove(txn, TableFloatingIPs, cur, index)
	return nil
}

// CheckExternalNetworkUnused reports whether a network may stop being
// external: no router gateway or floating IP may be on it (Neutron's
// ExternalNetworkInUse).
func (v *View) CheckExternalNetworkUnused(id string) error {
	inUse := len(all[*FloatingIP](v.txn, TableFloatingIPs, "network", id)) > 0
	for _, r := range v.Routers() {
		inUse = inUse || (r.Gateway != nil && r.Gateway.NetworkID == id)
	}
	if inUse {
		return Errorf(CodeConflict, ErrTypeExternalNetworkInUse,
			"External network %s cannot be updated to be made non-external, since it has existing gateway ports.", id)
	}
	return nil
}

// checkL3PortDelete refuses deleting a router's or a floating IP's port
// through the port API while its owner exists (Neutron's L3PortInUse).
func checkL3PortDelete(v *View, p *Port) error {
	if lb := v.LoadBalancerOfVIP(p); lb != nil {
		return Errorf(CodeConflict, ErrTypeL3PortInUse,
			"Port %s is the VIP of load balancer %s and therefore cannot be deleted directly via the port API.", p.ID, lb.ID)
	}
	if !IsL3Port(p) {
		return nil
	}
	owned := false
	switch p.DeviceOwner {
	case DeviceOwnerFloatingIP:
		owned = v.FloatingIP(p.DeviceID) != nil
	default:
		owned = v.Router(p.DeviceID) != nil
	}
	if !owned {
		return nil
	}
	return Errorf(CodeConflict, ErrTypeL3PortInUse,
		"Port %s has owner %s and therefore cannot be deleted directly via the port API.", p.ID, p.DeviceOwner)
}

// checkL3PortUpdate refuses moving a router's or a floating IP's port to
// another device or other addresses through the port API: the router and
// floating IP handlers own those fields.
func checkL3PortUpdate(v *View, cur, next *Port) error {
	if next.DeviceID == cur.DeviceID && next.DeviceOwner == cur.DeviceOwner && slices.Equal(next.FixedIPs, cur.FixedIPs) {
		return nil
	}
	if err := checkL3PortDelete(v, cur); err != nil {
		return Errorf(CodeConflict, ErrTypeL3PortInUse,
			"Port %s has owner %s and therefore its device and addresses cannot be changed directly via the port API.", cur.ID, cur.DeviceOwner)
	}
	return nil
}

// disassociatePort clears the floating IPs (and firewall group) of a port that is going away,
// as Neutron does when a port is deleted.
func disassociatePort(txn *memdb.Txn, portID string, index uint64) {
	v := View{txn: txn}
	forgetFirewallPort(txn, portID, index)
	for _, f := range v.FloatingIPsOfPort(portID) {
		c := f.Copy()
		c.PortID, c.FixedIPAddress, c.RouterID, c.Status = "", "", "", FloatingIPDown
		c.RevisionNumber++
		c.ModifyIndex = index
		insert(txn, TableFloatingIPs, c, index)
	}
}
