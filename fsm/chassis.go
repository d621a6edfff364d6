package fsm

import (
	"hash/fnv"

	memdb "github.com/hashicorp/go-memdb"
)

// Error types of the chassis and binding handlers.
const (
	ErrTypeChassisNotFound = "ChassisNotFound"
	errTypeChassisInvalid  = "InvalidChassis"
)

// Chassis is a node that runs Open vSwitch, as the leader learned it from
// gossip. ID and Name are the node name. Timestamps are chosen by the
// leader and carried in the commands.
type Chassis struct {
	Meta
	TunnelIP       string
	OVSDB          string
	Roles          []string
	BridgeMappings map[string]string
	Encaps         []string
	DatapathType   string
	// DatapathID is the OpenFlow datapath id the controller gives the
	// chassis' br-int (ChassisDatapathID), so that an OpenFlow connection
	// names its chassis.
	DatapathID uint64
	// AvailabilityZone is the zone the chassis announced ("" is
	// DefaultAvailabilityZone).
	AvailabilityZone string
	// Up is false once gossip declared the node dead or gone.
	Up bool
	// LastSeen is when the leader last committed the chassis alive (on
	// every change while up; on going down, the moment it was declared down).
	LastSeen string
}

// DefaultAvailabilityZone is Neutron's default zone name.
const DefaultAvailabilityZone = "nova"

// Zone is the chassis' availability zone.
func (c *Chassis) Zone() string {
	if c.AvailabilityZone == "" {
		return DefaultAvailabilityZone
	}
	return c.AvailabilityZone
}

// Copy returns a deep copy that may be changed.
func (c *Chassis) Copy() *Chassis {
	n := *c
	n.Tags = append([]string(nil), c.Tags...)
	n.Roles = append([]string(nil), c.Roles...)
	n.Encaps = append([]string(nil), c.Encaps...)
	if c.BridgeMappings != nil {
		n.BridgeMappings = make(map[string]string, len(c.BridgeMappings))
		for k, v := range c.BridgeMappings {
			n.BridgeMappings[k] = v
		}
	}
	return &n
}

// ChassisDatapathID derives a chassis' OpenFlow datapath id from its name:
// FNV-1a-64 folded to 48 bits (OVS prints and accepts 16 hex digits) and
// never 0, which OVS refuses.
func ChassisDatapathID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	id := h.Sum64() & (1<<48 - 1)
	if id == 0 {
		id = 1
	}
	return id
}

// ChassisUpsertRequest creates or replaces chassis records.
type ChassisUpsertRequest struct {
	Chassis []*Chassis
}

// ChassisSetStateRequest marks chassis up or down at time At.
type ChassisSetStateRequest struct {
	Names []string
	Up    bool
	At    string
}

// ChassisDeleteRequest deletes a chassis record. At (RFC 3339, optional)
// is the updated_at of the routers and gateway ports the deletion moves.
type ChassisDeleteRequest struct {
	Name string
	At   string
}

// PortBinding binds a port to a chassis, or unbinds it when Chassis is
// empty (then only if it is still bound to FromChassis, so that a late
// unplug on one chassis cannot undo a newer binding on another).
type PortBinding struct {
	PortID      string
	Chassis     string
	OFPort      int
	FromChassis string
}

// PortBindRequest records port bindings learned from chassis at time At.
type PortBindRequest struct {
	Bindings []PortBinding
	At       string
}

// PortStatusChange sets the status of one port, only if the port is still
// bound to Chassis.
type PortStatusChange struct {
	PortID  string
	Chassis string
	Status  string
}

// PortStatusRequest sets port statuses from the realization of the ports'
// flows on their chassis. Ports that no longer exist or are no longer
// bound to the chassis named are skipped: the binding may have moved since
// the leader decided. A changed port gets updated_at At (RFC 3339, chosen
// by the leader; empty keeps updated_at) and its revision_number bumped.
type PortStatusRequest struct {
	Ports []PortStatusChange
	At    string
}

// Port statuses. A (new or changed) binding and an unbinding set DOWN;
// CmdPortStatus sets ACTIVE once the chassis realized the port's flows.
const (
	PortStatusActive = "ACTIVE"
	PortStatusDown   = "DOWN"
	PortStatusBuild  = "BUILD"
	PortStatusError  = "ERROR"
)

// Chassis returns the chassis with the name, or nil.
func (v *View) Chassis(name string) *Chassis {
	return first[*Chassis](v.txn, TableChassis, "id", name)
}

// ChassisList returns every chassis, ordered by name.
func (v *View) ChassisList() []*Chassis {
	return all[*Chassis](v.txn, TableChassis, "id")
}

// ChassisByDatapathID returns the chassis whose br-int has the datapath id,
// or nil.
func (v *View) ChassisByDatapathID(dpid uint64) *Chassis {
	for _, c := range v.ChassisList() {
		if c.DatapathID == dpid {
			return c
		}
	}
	return nil
}

func applyChassisUpsert(txn *memdb.Txn, body []byte, index uint64) error {
	var req ChassisUpsertRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	at := ""
	for _, c := range req.Chassis {
		if c.Name == "" || c.ID != c.Name {
			return Errorf(CodeBadRequest, errTypeChassisInvalid, "chassis %q: ID and Name must be the node name", c.Name)
		}
		c.CreateIndex, c.ModifyIndex = index, index
		if cur := v.Chassis(c.ID); cur != nil {
			c.CreateIndex, c.CreatedAt = cur.CreateIndex, cur.CreatedAt
			c.RevisionNumber = cur.RevisionNumber + 1
		}
		insert(txn, TableChassis, c, index)
		if c.UpdatedAt > at {
			at = c.UpdatedAt
		}
	}
	reconcileGateways(txn, at, index)
	return nil
}

func applyChassisSetState(txn *memdb.Txn, body []byte, index uint64) error {
	var req ChassisSetStateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	for _, name := range req.Names {
		cur := v.Chassis(name)
		if cur == nil {
			return Errorf(CodeNotFound, ErrTypeChassisNotFound, "Chassis %s could not be found.", name)
		}
		c := cur.Copy()
		c.Up, c.LastSeen, c.UpdatedAt = req.Up, req.At, req.At
		c.RevisionNumber++
		c.ModifyIndex = index
		insert(txn, TableChassis, c, index)
		if cur.Up && !req.Up {
			portsDownWith(txn, &v, name, req.At, index)
		}
	}
	reconcileGateways(txn, req.At, index)
	return nil
}

// portsDownWith sets DOWN the ACTIVE ports bound to a chassis that went
// down: nobody answers for them any more (Neutron's status of a port whose
// host died). They keep their binding; the chassis' controller sets them
// ACTIVE again once it is back and has realized their flows. Router
// gateway ports are left to gateway placement.
func portsDownWith(txn *memdb.Txn, v *View, chassis, at string, index uint64) {
	for _, cur := range v.PortsOnChassis(chassis) {
		if cur.Status != PortStatusActive || cur.DeviceOwner == DeviceOwnerRouterGateway {
			continue
		}
		p := cur.Copy()
		p.Status = PortStatusDown
		p.RevisionNumber++
		if at != "" {
			p.UpdatedAt = at
		}
		p.ModifyIndex = index
		insert(txn, TablePorts, p, index)
	}
}

func applyChassisDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req ChassisDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.Chassis(req.Name)
	if cur == nil {
		return Errorf(CodeNotFound, ErrTypeChassisNotFound, "Chassis %s could not be found.", req.Name)
	}
	remove(txn, TableChassis, cur, index)
	reconcileGateways(txn, req.At, index)
	return nil
}

// applyPortBind sets binding:host_id, binding:vif_type and status. Ports
// that no longer exist are skipped, not refused: a workload may outlive
// its Neutron port, and one stale binding must not block the others.
// Router gateway and load balancer VIP ports are bound by the scheduler,
// not here (bindGatewayOFPort).
//
// A new or changed binding leaves the port DOWN until CmdPortStatus says
// its chassis realized it; an unchanged one keeps its status.
func applyPortBind(txn *memdb.Txn, body []byte, index uint64) error {
	var req PortBindRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	for _, b := range req.Bindings {
		cur := v.Port(b.PortID)
		if cur == nil {
			continue
		}
		// A load balancer's VIP port is placed like a gateway port (the
		// standby chassis plugs it too).
		if cur.DeviceOwner == DeviceOwnerRouterGateway || v.LoadBalancerOfVIP(cur) != nil {
			bindGatewayOFPort(txn, cur, b, req.At, index)
			continue
		}
		p := cur.Copy()
		if b.Chassis != "" {
			p.BindingHostID, p.BindingVIFType, p.BindingOFPort = b.Chassis, VIFTypeOVS, b.OFPort
			if p.BindingHostID != cur.BindingHostID || p.BindingVIFType != cur.BindingVIFType ||
				p.BindingOFPort != cur.BindingOFPort {
				p.Status = PortStatusDown
			}
		} else {
			if cur.BindingHostID != b.FromChassis {
				continue
			}
			p.BindingHostID, p.BindingVIFType, p.Status, p.BindingOFPort = "", VIFTypeUnbound, PortStatusDown, 0
		}
		if p.BindingHostID == cur.BindingHostID && p.BindingVIFType == cur.BindingVIFType && p.Status == cur.Status &&
			p.BindingOFPort == cur.BindingOFPort {
			continue
		}
		p.RevisionNumber++
		p.UpdatedAt = req.At
		p.ModifyIndex = index
		insert(txn, TablePorts, p, index)
	}
	return nil
}

// bindGatewayOFPort applies a binding a chassis reported for a router
// gateway port. The state machine schedules gateway ports (see
// gateway.go): a report only sets (or, unplugged, clears) the ofport on
// the chassis the port is bound to; reports from other chassis are
// ignored and an unplug does not unbind.
func bindGatewayOFPort(txn *memdb.Txn, cur *Port, b PortBinding, at string, index uint64) {
	host, ofport := b.Chassis, b.OFPort
	if host == "" {
		host, ofport = b.FromChassis, 0
	}
	if host == "" || host != cur.BindingHostID || ofport == cur.BindingOFPort {
		return
	}
	p := cur.Copy()
	p.BindingOFPort = ofport
	p.RevisionNumber++
	p.UpdatedAt = at
	p.ModifyIndex = index
	insert(txn, TablePorts, p, index)
}

var validPortStatus = map[string]bool{
	PortStatusActive: true, PortStatusDown: true, PortStatusBuild: true, PortStatusError: true,
}

// applyPortStatus sets the status of ports still bound to the chassis the
// request names; the others are skipped. A request that changes nothing
// succeeds and changes nothing.
func applyPortStatus(txn *memdb.Txn, body []byte, index uint64) error {
	var req PortStatusRequest
	mustDecode(body, &req, index)
	for _, c := range req.Ports {
		if !validPortStatus[c.Status] {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: port status %q.", c.Status)
		}
	}
	v := View{txn: txn}
	for _, c := range req.Ports {
		cur := v.Port(c.PortID)
		if cur == nil || c.Chassis == "" || cur.BindingHostID != c.Chassis || cur.Status == c.Status {
			continue
		}
		p := cur.Copy()
		p.Status = c.Status
		p.RevisionNumber++
		if req.At != "" {
			p.UpdatedAt = req.At
		}
		p.ModifyIndex = index
		insert(txn, TablePorts, p, index)
	}
	return nil
}
