package fsm

// Trunks (Neutron's trunk extension, issue 19): a VM's port (the parent)
// carries untagged frames for its own network and 802.1Q-tagged frames
// for subports, each a port of its own on another network, told apart by
// its VLAN (segmentation_id). The data path pops and pushes the tag on the
// parent's chassis (docs/pipeline.md, "Trunks").
//
// The commands are gated, not ignorable (175-177 lie below IgnorableMin):
// an older server that skipped a subport add would disagree about which
// port owns a VLAN and about which ports may be deleted.

import (
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Trunk commands (175-177; 177 is unused, reserved for trunks).
const (
	// CmdTrunk creates, updates or deletes a trunk (TrunkRequest).
	CmdTrunk CommandType = 175
	// CmdTrunkSubports adds subports to a trunk or removes them
	// (TrunkSubportsRequest).
	CmdTrunkSubports CommandType = 176
)

// TableTrunks holds trunks.
const TableTrunks = "trunks"

// SegmentationVLAN is the one segmentation type Neutrino's trunks carry.
const SegmentationVLAN = "vlan"

// DeviceOwnerTrunkSubport is a subport's device_owner while it is on a
// trunk (Neutron's trunk:subport; its device_id is the trunk's id).
const DeviceOwnerTrunkSubport = "trunk:subport"

// Ops of CmdTrunkSubports.
const (
	OpAddSubports    = "add"
	OpRemoveSubports = "remove"
)

// Error types of the trunk handlers (Neutron's trunk exceptions).
const (
	ErrTypeTrunkNotFound          = "TrunkNotFound"
	ErrTypeTrunkPortInUse         = "TrunkPortInUse"
	ErrTypeSubPortNotFound        = "SubPortNotFound"
	ErrTypeDuplicateSubPort       = "DuplicateSubPort"
	ErrTypeTrunkDisabled          = "TrunkDisabled"
	ErrTypePortInUseAsTrunkParent = "PortInUseAsTrunkParent"
	ErrTypePortInUseAsSubPort     = "PortInUseAsSubPort"
	errTypeTrunkDuplicate         = "TrunkDuplicated"
)

// SubPort is one port of a trunk and the VLAN that carries it on the
// parent port.
type SubPort struct {
	PortID           string
	SegmentationType string
	SegmentationID   int
}

// Trunk is a row of TableTrunks. Its status is not stored: it follows the
// parent port's (ACTIVE when the parent is, DOWN otherwise).
type Trunk struct {
	Meta
	// PortID is the parent port.
	PortID       string
	AdminStateUp bool
	SubPorts     []SubPort
}

// Copy returns a deep copy that may be changed.
func (t *Trunk) Copy() *Trunk {
	c := *t
	c.Tags = slices.Clone(t.Tags)
	c.SubPorts = slices.Clone(t.SubPorts)
	return &c
}

// SubPort returns the trunk's subport for a port, if it has one.
func (t *Trunk) SubPort(portID string) (SubPort, bool) {
	for _, s := range t.SubPorts {
		if s.PortID == portID {
			return s, true
		}
	}
	return SubPort{}, false
}

// TrunkRequest is the body of CmdTrunk: create and update carry the whole
// trunk (an update keeps the stored parent and subports), delete only ID.
type TrunkRequest struct {
	Op    string
	Trunk *Trunk `fsm:"optional"`
	ID    string
}

// TrunkSubportsRequest is the body of CmdTrunkSubports. A remove names
// its subports by PortID only. UpdatedAt is the leader's timestamp for
// the trunk and the ports whose device fields change.
type TrunkSubportsRequest struct {
	Op        string
	TrunkID   string
	SubPorts  []SubPort
	UpdatedAt string
}

func trunkSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableTrunks,
		Indexes: map[string]*memdb.IndexSchema{
			"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"port":    {Name: "port", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "PortID"}},
			"subport": {Name: "subport", AllowMissing: true, Indexer: subportIndexer{}},
		},
	}
}

// subportIndexer indexes a trunk by each of its subports' port ids.
type subportIndexer struct{}

func (subportIndexer) FromObject(obj any) (bool, [][]byte, error) {
	t, ok := obj.(*Trunk)
	if !ok {
		return false, nil, fmt.Errorf("subport index: %T is not a trunk", obj)
	}
	if len(t.SubPorts) == 0 {
		return false, nil, nil
	}
	keys := make([][]byte, 0, len(t.SubPorts))
	for _, s := range t.SubPorts {
		keys = append(keys, []byte(s.PortID+"\x00"))
	}
	return true, keys, nil
}

func (subportIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("subport index takes a port id")
	}
	id, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("subport index: argument %T is not a string", args[0])
	}
	return []byte(id + "\x00"), nil
}

// Trunk returns a trunk by id, nil if there is none.
func (v *View) Trunk(id string) *Trunk { return first[*Trunk](v.txn, TableTrunks, "id", id) }

// Trunks lists every trunk, ordered by id.
func (v *View) Trunks() []*Trunk { return all[*Trunk](v.txn, TableTrunks, "id") }

// TrunkOfParent returns the trunk whose parent is the port, or nil.
func (v *View) TrunkOfParent(portID string) *Trunk {
	return first[*Trunk](v.txn, TableTrunks, "port", portID)
}

// TrunkOfSubport returns the trunk the port is a subport of, or nil.
func (v *View) TrunkOfSubport(portID string) *Trunk {
	return first[*Trunk](v.txn, TableTrunks, "subport", portID)
}

func trunkNotFound(id string) error {
	return Errorf(CodeNotFound, ErrTypeTrunkNotFound, "Trunk %s could not be found.", id)
}

func trunkPortInUse(id string) error {
	return Errorf(CodeConflict, ErrTypeTrunkPortInUse, "Port %s is in use by another trunk.", id)
}

// checkTrunkPortFree refuses a port that is already a trunk's parent or
// subport.
func checkTrunkPortFree(v *View, portID string) error {
	if v.TrunkOfParent(portID) != nil || v.TrunkOfSubport(portID) != nil {
		return trunkPortInUse(portID)
	}
	return nil
}

// CheckSubPorts validates subports to add to trunk t (whose parent and
// current subports are set): each port exists and is on no trunk, its
// segmentation is VLAN 1-4094, and no VLAN or port appears twice on the
// trunk. The leader runs it before proposing and every replica again.
func (v *View) CheckSubPorts(t *Trunk, subs []SubPort) error {
	vlans := map[int]bool{}
	ports := map[string]bool{t.PortID: true}
	for _, s := range t.SubPorts {
		vlans[s.SegmentationID] = true
		ports[s.PortID] = true
	}
	for _, s := range subs {
		if s.SegmentationType != SegmentationVLAN {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput,
				"Invalid input for operation: segmentation_type %q is not supported (only vlan).", s.SegmentationType)
		}
		if s.SegmentationID < 1 || s.SegmentationID > 4094 {
			return Errorf(CodeBadRequest, ErrTypeInvalidInput,
				"Invalid input for operation: segmentation_id %d is not in the range 1-4094.", s.SegmentationID)
		}
		if v.Port(s.PortID) == nil {
			return portNotFound(s.PortID)
		}
		if ports[s.PortID] {
			return trunkPortInUse(s.PortID)
		}
		if err := checkTrunkPortFree(v, s.PortID); err != nil {
			return err
		}
		if vlans[s.SegmentationID] {
			return Errorf(CodeConflict, ErrTypeDuplicateSubPort,
				"segmentation_type %s and segmentation_id %d already in use on trunk %s.", s.SegmentationType, s.SegmentationID, t.ID)
		}
		vlans[s.SegmentationID] = true
		ports[s.PortID] = true
	}
	return nil
}

// checkTrunkPortDelete refuses deleting a trunk's parent or subport
// (Neutron's PortInUseAsTrunkParent and PortInUseAsSubPort).
func checkTrunkPortDelete(v *View, portID string) error {
	if t := v.TrunkOfParent(portID); t != nil {
		return Errorf(CodeConflict, ErrTypePortInUseAsTrunkParent, "Port %s is currently a parent port for trunk %s.", portID, t.ID)
	}
	if t := v.TrunkOfSubport(portID); t != nil {
		return Errorf(CodeConflict, ErrTypePortInUseAsSubPort, "Port %s is currently a subport for trunk %s.", portID, t.ID)
	}
	return nil
}

func applyTrunk(txn *memdb.Txn, body []byte, index uint64) error {
	var req TrunkRequest
	mustDecode(body, &req, index)
	if err := needObject(req.Op, req.Trunk != nil, "TrunkRequest without Trunk"); err != nil {
		return err
	}
	v := View{txn: txn}
	switch req.Op {
	case OpCreate:
		t := req.Trunk
		if v.Trunk(t.ID) != nil {
			return Errorf(CodeConflict, errTypeTrunkDuplicate, "Trunk %s already exists.", t.ID)
		}
		if v.Port(t.PortID) == nil {
			return portNotFound(t.PortID)
		}
		if err := checkTrunkPortFree(&v, t.PortID); err != nil {
			return err
		}
		subs := t.SubPorts
		t.SubPorts = nil
		if err := v.CheckSubPorts(t, subs); err != nil {
			return err
		}
		t.SubPorts = subs
		t.CreateIndex, t.ModifyIndex = index, index
		insert(txn, TableTrunks, t, index)
		setSubportOwner(txn, &v, t.ID, subs, t.UpdatedAt, index)
		return nil
	case OpUpdate:
		cur := v.Trunk(req.Trunk.ID)
		if cur == nil {
			return trunkNotFound(req.Trunk.ID)
		}
		t := req.Trunk.Copy()
		t.PortID, t.SubPorts = cur.PortID, slices.Clone(cur.SubPorts)
		t.CreateIndex, t.ModifyIndex = cur.CreateIndex, index
		insert(txn, TableTrunks, t, index)
		return nil
	case OpDelete:
		cur := v.Trunk(req.ID)
		if cur == nil {
			return trunkNotFound(req.ID)
		}
		remove(txn, TableTrunks, cur, index)
		setSubportOwner(txn, &v, "", cur.SubPorts, "", index)
		return nil
	}
	return Errorf(CodeBadRequest, ErrTypeInvalidInput, "unknown trunk operation %q", req.Op)
}

func applyTrunkSubports(txn *memdb.Txn, body []byte, index uint64) error {
	var req TrunkSubportsRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.Trunk(req.TrunkID)
	if cur == nil {
		return trunkNotFound(req.TrunkID)
	}
	if !cur.AdminStateUp {
		return Errorf(CodeConflict, ErrTypeTrunkDisabled, "Trunk %s is currently disabled.", cur.ID)
	}
	t := cur.Copy()
	switch req.Op {
	case OpAddSubports:
		if err := v.CheckSubPorts(cur, req.SubPorts); err != nil {
			return err
		}
		t.SubPorts = append(t.SubPorts, req.SubPorts...)
		setSubportOwner(txn, &v, t.ID, req.SubPorts, req.UpdatedAt, index)
	case OpRemoveSubports:
		for _, s := range req.SubPorts {
			i := slices.IndexFunc(t.SubPorts, func(x SubPort) bool { return x.PortID == s.PortID })
			if i < 0 {
				return Errorf(CodeNotFound, ErrTypeSubPortNotFound, "SubPort %s on trunk %s could not be found.", s.PortID, t.ID)
			}
			t.SubPorts = slices.Delete(t.SubPorts, i, i+1)
		}
		setSubportOwner(txn, &v, "", req.SubPorts, req.UpdatedAt, index)
	default:
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "unknown subport operation %q", req.Op)
	}
	t.RevisionNumber++
	if req.UpdatedAt != "" {
		t.UpdatedAt = req.UpdatedAt
	}
	t.ModifyIndex = index
	insert(txn, TableTrunks, t, index)
	return nil
}

// setSubportOwner marks ports as subports of trunk (device_owner
// trunk:subport, device_id the trunk), or clears that mark (trunk "") from
// ports that carry it, as Neutron's trunk plugin does.
func setSubportOwner(txn *memdb.Txn, v *View, trunk string, subs []SubPort, ts string, index uint64) {
	for _, s := range subs {
		p := v.Port(s.PortID)
		if p == nil {
			continue
		}
		owner := DeviceOwnerTrunkSubport
		if trunk == "" {
			if p.DeviceOwner != DeviceOwnerTrunkSubport {
				continue
			}
			owner = ""
		}
		c := p.Copy()
		c.DeviceOwner, c.DeviceID = owner, trunk
		c.RevisionNumber++
		if ts != "" {
			c.UpdatedAt = ts
		}
		c.ModifyIndex = index
		insert(txn, TablePorts, c, index)
	}
}
