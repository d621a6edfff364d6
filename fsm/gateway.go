package fsm

// Gateway chassis scheduling and MAC bindings (issue 6).
//
// A router with an external gateway has a priority list of gateway chassis
// (Router.GatewayChassis, committed state). Its active gateway is the
// chassis its gateway port (device_owner network:router_gateway) is bound
// to (Port.BindingHostID): the FSM binds it when the router gets its
// gateway, and moves it down the list when that chassis goes down, all at
// apply time so that every replica decides the same way and a failover is
// one Raft commit.
//
// The rules:
//
//   - A usable gateway chassis exists, is up and has the role "gateway".
//   - Candidates for a gateway on network N are the usable chassis whose
//     bridge mappings name N's physical network or, when none does, every
//     usable chassis; ordered by load (the number of router gateway ports
//     bound to them), then name.
//   - A router that gets a gateway without an explicit list gets the first
//     MaxGatewayChassis candidates as its list, and its gateway port is
//     bound to the first usable chassis of the list.
//   - When the active chassis stops being usable (down, deleted, no longer
//     a gateway), the port moves to the next usable chassis of the list
//     after it (wrapping around).
//   - Whenever a router's list has no usable chassis left while some other
//     candidate is usable, the best such candidate is appended to the list
//     (dropping the lowest-priority entry when the list is full) and takes
//     the gateway: a gateway is never left unbound while a candidate is up.
//   - A chassis that comes back takes nothing back, unless the router has
//     GatewayPreempt: then the gateway moves to the highest-priority usable
//     chassis of its list.
//   - A deleted chassis leaves every list; a router without a gateway has
//     no list.

import (
	"cmp"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// Chassis roles announced in gossip.
const (
	ChassisRoleCompute = "compute"
	ChassisRoleGateway = "gateway"
)

// MaxGatewayChassis bounds a router's gateway chassis list.
const MaxGatewayChassis = 5

// ErrTypeInvalidGatewayChassis rejects a bad neutrino:gateway_chassis.
const ErrTypeInvalidGatewayChassis = "InvalidGatewayChassis"

// IsGateway reports whether the chassis has the gateway role.
func (c *Chassis) IsGateway() bool { return slices.Contains(c.Roles, ChassisRoleGateway) }

// GatewayUsable reports whether the named chassis may serve router
// gateways now: it exists, is up and has the gateway role.
func (v *View) GatewayUsable(name string) bool {
	c := v.Chassis(name)
	return c != nil && c.Up && c.IsGateway()
}

// GatewayLoad is the number of router gateway ports bound to the chassis.
func (v *View) GatewayLoad(name string) int {
	n := 0
	for _, p := range v.PortsOnChassis(name) {
		if p.DeviceOwner == DeviceOwnerRouterGateway {
			n++
		}
	}
	return n
}

// GatewayCandidates returns the usable gateway chassis for a router
// gateway on the network, best first: those whose bridge mappings name the
// network's physical network (all usable ones when none does), by load
// then name. Chassis an operator set admin down are left out.
func (v *View) GatewayCandidates(networkID string) []string {
	return v.gatewayCandidatesIn(networkID, nil)
}

// gatewayCandidatesIn is GatewayCandidates restricted to chassis in the
// availability zones (any zone when zones is empty).
func (v *View) gatewayCandidatesIn(networkID string, zones []string) []string {
	physnet := ""
	if n := v.Network(networkID); n != nil {
		physnet = n.PhysicalNetwork
	}
	var usable, mapped []*Chassis
	for _, c := range v.ChassisList() {
		if !c.Up || !c.IsGateway() || !v.ChassisAdminUp(c.Name) {
			continue
		}
		if len(zones) > 0 && !slices.Contains(zones, c.Zone()) {
			continue
		}
		usable = append(usable, c)
		if _, ok := c.BridgeMappings[physnet]; ok && physnet != "" {
			mapped = append(mapped, c)
		}
	}
	if len(mapped) > 0 {
		usable = mapped
	}
	load := make(map[string]int, len(usable))
	for _, c := range usable {
		load[c.Name] = v.GatewayLoad(c.Name)
	}
	slices.SortStableFunc(usable, func(a, b *Chassis) int {
		if d := cmp.Compare(load[a.Name], load[b.Name]); d != 0 {
			return d
		}
		return cmp.Compare(a.Name, b.Name)
	})
	out := make([]string, 0, len(usable))
	for _, c := range usable {
		out = append(out, c.Name)
	}
	return out
}

// RouterZones are the availability zones a router's gateway may be
// scheduled in: its availability_zone_hints, or else its external
// network's; empty means any zone.
func (v *View) RouterZones(r *Router) []string {
	if len(r.AvailabilityZoneHints) > 0 || r.Gateway == nil {
		return r.AvailabilityZoneHints
	}
	if n := v.Network(r.Gateway.NetworkID); n != nil {
		return n.AvailabilityZoneHints
	}
	return nil
}

// ActiveGatewayChassis is the chassis a router's gateway port is bound
// to, or "".
func (v *View) ActiveGatewayChassis(routerID string) string {
	if p := v.RouterGatewayPort(routerID); p != nil {
		return p.BindingHostID
	}
	return ""
}

// CheckGatewayChassis validates an explicit gateway chassis list: at most
// MaxGatewayChassis names, no duplicates, each an existing chassis with the
// gateway role.
func (v *View) CheckGatewayChassis(list []string) error {
	if len(list) > MaxGatewayChassis {
		return Errorf(CodeBadRequest, ErrTypeInvalidGatewayChassis,
			"Invalid input for neutrino:gateway_chassis. Reason: %d chassis given, at most %d allowed.", len(list), MaxGatewayChassis)
	}
	for i, name := range list {
		if slices.Contains(list[:i], name) {
			return Errorf(CodeBadRequest, ErrTypeInvalidGatewayChassis,
				"Invalid input for neutrino:gateway_chassis. Reason: duplicate chassis %q.", name)
		}
		c := v.Chassis(name)
		if c == nil {
			return Errorf(CodeBadRequest, ErrTypeInvalidGatewayChassis,
				"Invalid input for neutrino:gateway_chassis. Reason: chassis %q does not exist.", name)
		}
		if !c.IsGateway() {
			return Errorf(CodeBadRequest, ErrTypeInvalidGatewayChassis,
				"Invalid input for neutrino:gateway_chassis. Reason: chassis %q does not have the gateway role.", name)
		}
	}
	return nil
}

// firstUsable is the highest-priority usable chassis of the list, or "".
func (v *View) firstUsable(list []string) string {
	for _, n := range list {
		if v.GatewayUsable(n) {
			return n
		}
	}
	return ""
}

// nextUsableAfter is the first usable chassis of the list after failed,
// wrapping around; from the start of the list when failed is not in it.
func (v *View) nextUsableAfter(list []string, failed string) string {
	i := slices.Index(list, failed)
	for k := 1; k <= len(list); k++ {
		n := list[(i+k+len(list))%len(list)]
		if n != failed && v.GatewayUsable(n) {
			return n
		}
	}
	return ""
}

// fallbackGateway appends to a list without a usable chassis the best
// candidate not in it (dropping the last entry when the list is full); it
// returns the new list and the candidate, or the list unchanged and "".
func (v *View) fallbackGateway(list []string, networkID string, zones []string) ([]string, string) {
	for _, c := range v.gatewayCandidatesIn(networkID, zones) {
		if slices.Contains(list, c) {
			continue
		}
		out := slices.Clone(list)
		if len(out) >= MaxGatewayChassis {
			out = out[:MaxGatewayChassis-1]
		}
		return append(out, c), c
	}
	return list, ""
}

// scheduleGateways returns a new gateway chassis list for a gateway on the
// network: the first MaxGatewayChassis candidates in the zones.
func (v *View) scheduleGateways(networkID string, zones []string) []string {
	c := v.gatewayCandidatesIn(networkID, zones)
	if len(c) > MaxGatewayChassis {
		c = c[:MaxGatewayChassis]
	}
	return c
}

// planGateway decides, for a router being created (cur nil) or updated to
// r, its gateway chassis list (set in r) and the chassis its gateway port
// is to be bound to ("" for none). curHost is where the current gateway
// port is bound, "" when the gateway is new or moves to another network.
//
// The list is explicit when the request changed it (on create: gave one);
// an explicit empty list asks for a scheduled one.
func (v *View) planGateway(cur, r *Router, curHost string) (string, error) {
	explicit := len(r.GatewayChassis) > 0
	if cur != nil {
		explicit = !slices.Equal(r.GatewayChassis, cur.GatewayChassis)
	}
	if r.Gateway == nil {
		if explicit && len(r.GatewayChassis) > 0 {
			return "", Errorf(CodeBadRequest, ErrTypeInvalidGatewayChassis,
				"Invalid input for neutrino:gateway_chassis. Reason: router %s has no external gateway.", r.ID)
		}
		r.GatewayChassis = nil
		return "", nil
	}
	if explicit {
		if err := v.CheckGatewayChassis(r.GatewayChassis); err != nil {
			return "", err
		}
	}
	moved := cur == nil || cur.Gateway == nil || cur.Gateway.NetworkID != r.Gateway.NetworkID
	if len(r.GatewayChassis) == 0 || (moved && !explicit) {
		r.GatewayChassis = v.scheduleGateways(r.Gateway.NetworkID, v.RouterZones(r))
	}
	r.GatewayChassis = slices.Clip(slices.Clone(r.GatewayChassis))
	if curHost != "" && slices.Contains(r.GatewayChassis, curHost) && v.GatewayUsable(curHost) && !r.GatewayPreempt {
		return curHost, nil
	}
	if host := v.firstUsable(r.GatewayChassis); host != "" {
		return host, nil
	}
	var host string
	r.GatewayChassis, host = v.fallbackGateway(r.GatewayChassis, r.Gateway.NetworkID, v.RouterZones(r))
	return host, nil
}

// setGatewayBinding binds a gateway port to host ("" unbinds it): bound
// ports are ACTIVE with vif_type ovs, unbound ones DOWN. The ofport is
// kept only while the host stays the same (the gateway chassis may report
// the port plugged, see applyPortBind).
func setGatewayBinding(p *Port, host string) {
	if host == "" {
		p.BindingHostID, p.BindingVIFType, p.BindingOFPort, p.Status = "", VIFTypeUnbound, 0, PortStatusDown
		return
	}
	if p.BindingHostID != host {
		p.BindingOFPort = 0
	}
	p.BindingHostID, p.BindingVIFType, p.Status = host, VIFTypeOVS, PortStatusActive
}

// rebindGatewayPort stores a changed version of a gateway port bound to
// host, with its revision bumped and updated_at at (empty: kept); it
// reports whether anything changed.
func rebindGatewayPort(txn *memdb.Txn, cur *Port, host, at string, index uint64) bool {
	p := cur.Copy()
	setGatewayBinding(p, host)
	if p.BindingHostID == cur.BindingHostID && p.BindingVIFType == cur.BindingVIFType &&
		p.BindingOFPort == cur.BindingOFPort && p.Status == cur.Status {
		return false
	}
	p.RevisionNumber++
	if at != "" {
		p.UpdatedAt = at
	}
	p.ModifyIndex = index
	insert(txn, TablePorts, p, index)
	if p.BindingHostID != cur.BindingHostID {
		resetVPNStatus(txn, p.DeviceID, at, index)
	}
	return true
}

// reviseRouter stores a router changed by the scheduler (its list or its
// active gateway): revision bumped, updated_at at (empty: kept).
func reviseRouter(txn *memdb.Txn, r *Router, at string, index uint64) {
	r.RevisionNumber++
	if at != "" {
		r.UpdatedAt = at
	}
	r.ModifyIndex = index
	insert(txn, TableRouters, r, index)
}

// reconcileGateways brings every router's gateway binding in line with
// the chassis table after a chassis change, in router id order: deleted
// chassis leave the lists, gateways on chassis that are no longer usable
// fail over, unbound gateways get bound, and preempting routers move back
// to their highest-priority usable chassis. at is the command's time.
func reconcileGateways(txn *memdb.Txn, at string, index uint64) {
	v := View{txn: txn}
	for _, cur := range v.Routers() {
		if cur.Gateway == nil {
			continue
		}
		gp := v.RouterGatewayPort(cur.ID)
		if gp == nil {
			continue
		}
		list := slices.DeleteFunc(slices.Clone(cur.GatewayChassis), func(n string) bool { return v.Chassis(n) == nil })
		host := gp.BindingHostID
		target := ""
		switch {
		case host != "" && v.GatewayUsable(host):
			target = host
			if cur.GatewayPreempt {
				if first := v.firstUsable(list); first != "" {
					target = first
				}
			}
		case host != "":
			// Failover: the next one after the failed chassis, in the
			// list as it was (the failed chassis may just have left it).
			target = v.nextUsableAfter(cur.GatewayChassis, host)
		default:
			if len(list) == 0 {
				list = v.scheduleGateways(cur.Gateway.NetworkID, v.RouterZones(cur))
			}
			target = v.firstUsable(list)
		}
		if target == "" {
			list, target = v.fallbackGateway(list, cur.Gateway.NetworkID, v.RouterZones(cur))
		}
		if slices.Equal(list, cur.GatewayChassis) && target == host {
			continue
		}
		r := cur.Copy()
		r.GatewayChassis = list
		reviseRouter(txn, r, at, index)
		rebindGatewayPort(txn, gp, target, at, index)
	}
	reconcileLoadBalancers(txn, at, index)
}

// TableMacBindings holds the MAC addresses learned for IP addresses on
// external networks that are not Neutron ports (the upstream router).
const TableMacBindings = "mac_bindings"

// MacBinding is the MAC address an IP address on a network answered ARP
// (or ND) with, as learned by the leader from a chassis.
type MacBinding struct {
	NetworkID string
	IP        string
	MAC       string
	// UpdatedAt is when the leader last committed a change (RFC 3339).
	UpdatedAt string
	// ModifyIndex is the revision of the last change.
	ModifyIndex uint64
}

// ID is the binding's key: network id, "/", IP address.
func (m *MacBinding) ID() string { return m.NetworkID + "/" + m.IP }

// MacBindingSetRequest records learned MAC bindings at time At; unchanged
// bindings are left as they are. IP and MAC are stored canonical (IP as
// netip prints it, MAC lower case); an empty MAC removes the binding.
// Bindings on networks that no longer exist are skipped.
type MacBindingSetRequest struct {
	Bindings []MacBinding
	At       string
}

// MacBinding returns the binding of the address on the network, or nil.
func (v *View) MacBinding(networkID, ip string) *MacBinding {
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.Unmap().String()
	}
	return first[*MacBinding](v.txn, TableMacBindings, "id", networkID+"/"+ip)
}

// MacBindings returns every MAC binding, ordered by id.
func (v *View) MacBindings() []*MacBinding {
	return all[*MacBinding](v.txn, TableMacBindings, "id")
}

// MacBindingsOfNetwork returns a network's MAC bindings.
func (v *View) MacBindingsOfNetwork(networkID string) []*MacBinding {
	return all[*MacBinding](v.txn, TableMacBindings, "network", networkID)
}

func applyMacBindingSet(txn *memdb.Txn, body []byte, index uint64) error {
	var req MacBindingSetRequest
	mustDecode(body, &req, index)
	// Validate everything first: a rejected command changes nothing.
	canon := make([]MacBinding, 0, len(req.Bindings))
	for _, b := range req.Bindings {
		a, err := netip.ParseAddr(b.IP)
		if err != nil || a.Zone() != "" || b.NetworkID == "" {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: MAC binding %q on network %q.", b.IP, b.NetworkID)
		}
		b.IP = a.Unmap().String()
		if b.MAC != "" {
			hw, err := net.ParseMAC(b.MAC)
			if err != nil || len(hw) != 6 {
				return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: MAC address %q for %s.", b.MAC, b.IP)
			}
			b.MAC = strings.ToLower(hw.String())
		}
		canon = append(canon, b)
	}
	v := View{txn: txn}
	for _, b := range canon {
		if v.Network(b.NetworkID) == nil {
			continue
		}
		cur := v.MacBinding(b.NetworkID, b.IP)
		switch {
		case b.MAC == "" && cur != nil:
			remove(txn, TableMacBindings, cur, index)
		case b.MAC == "", cur != nil && cur.MAC == b.MAC:
		default:
			insert(txn, TableMacBindings, &MacBinding{NetworkID: b.NetworkID, IP: b.IP, MAC: b.MAC, UpdatedAt: req.At, ModifyIndex: index}, index)
		}
	}
	return nil
}

// macBindingIDIndexer indexes MAC bindings by MacBinding.ID.
type macBindingIDIndexer struct{}

func (macBindingIDIndexer) FromObject(obj any) (bool, []byte, error) {
	m, ok := obj.(*MacBinding)
	if !ok {
		return false, nil, errNotMacBinding
	}
	return true, []byte(m.ID() + "\x00"), nil
}

func (macBindingIDIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, errMacBindingArgs
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, errMacBindingArgs
	}
	return []byte(s + "\x00"), nil
}

// PrefixFromArgs lets the id index be listed by prefix (a network's
// bindings are also listed by the network index).
func (macBindingIDIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	b, err := macBindingIDIndexer{}.FromArgs(args...)
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

var (
	errNotMacBinding  = errors.New("mac binding index: not a MacBinding")
	errMacBindingArgs = errors.New("mac binding index takes one string")
)
