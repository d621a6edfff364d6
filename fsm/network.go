package fsm

import memdb "github.com/hashicorp/go-memdb"

// Neutron error types used by the network handlers.
const (
	ErrTypeNetworkNotFound   = "NetworkNotFound"
	ErrTypeNetworkExists     = "NetworkExists"
	ErrTypeTunnelIDInUse     = "TunnelIdInUse"
	ErrTypeVlanIDInUse       = "VlanIdInUse"
	ErrTypeFlatNetworkInUse  = "FlatNetworkInUse"
	ErrTypeRevisionMismatch  = "RevisionNumberConstraintFailed"
	errTypeNetworkDuplicated = "NetworkDuplicated"
)

func segmentConflict(n *Network) *Error {
	if n.NetworkType == NetTypeFlat {
		return Errorf(CodeConflict, ErrTypeFlatNetworkInUse,
			"Unable to create the flat network. Physical network %s is in use.", n.PhysicalNetwork)
	}
	if n.NetworkType == NetTypeVLAN {
		return Errorf(CodeConflict, ErrTypeVlanIDInUse,
			"Unable to create the network. The VLAN %d on physical network %s is in use.", n.SegmentationID, n.PhysicalNetwork)
	}
	return Errorf(CodeConflict, ErrTypeTunnelIDInUse,
		"Unable to create the network. The tunnel ID %d is in use.", n.SegmentationID)
}

func applyNetworkCreate(txn *memdb.Txn, body []byte, index uint64) error {
	var req NetworkCreateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	for _, n := range req.Networks {
		if v.Network(n.ID) != nil {
			return Errorf(CodeConflict, errTypeNetworkDuplicated, "Network %s already exists.", n.ID)
		}
		if v.NetworkBySegment(n.SegmentKey()) != nil {
			return segmentConflict(n)
		}
		if err := v.checkQoSPolicyRef(n.QoSPolicyID); err != nil {
			return err
		}
		clearKey(n)
		if _, err := assignKey(txn, TableNetworks, n); err != nil {
			return err
		}
		n.CreateIndex, n.ModifyIndex = index, index
		insert(txn, TableNetworks, n, index)
	}
	return nil
}

func applyNetworkUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req NetworkUpdateRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	n := req.Network
	cur := v.Network(n.ID)
	if cur == nil {
		return Errorf(CodeNotFound, ErrTypeNetworkNotFound, "Network %s could not be found.", n.ID)
	}
	if cur.ModifyIndex != req.PrevIndex {
		return Errorf(CodeConflict, ErrTypeStaleUpdate, "network %s changed concurrently", n.ID)
	}
	if other := v.NetworkBySegment(n.SegmentKey()); other != nil && other.ID != n.ID {
		return segmentConflict(n)
	}
	if err := v.checkQoSPolicyRef(n.QoSPolicyID); err != nil {
		return err
	}
	if cur.External && !n.External {
		if err := v.CheckExternalNetworkUnused(n.ID); err != nil {
			return err
		}
	}
	n.CreateIndex, n.ModifyIndex = cur.CreateIndex, index
	insert(txn, TableNetworks, n, index)
	return nil
}

func applyNetworkDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req NetworkDeleteRequest
	mustDecode(body, &req, index)
	v := View{txn: txn}
	cur := v.Network(req.ID)
	if cur == nil {
		return Errorf(CodeNotFound, ErrTypeNetworkNotFound, "Network %s could not be found.", req.ID)
	}
	if err := deleteNetworkChildren(txn, req.ID, index); err != nil {
		return err
	}
	deleteRBACOf(txn, req.ID, index)
	remove(txn, TableNetworks, cur, index)
	return nil
}
