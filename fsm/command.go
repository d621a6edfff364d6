package fsm

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// CommandType is the first byte of every Raft log entry: it names the
// handler that Apply hands the msgpack body to.
type CommandType uint8

// Command types. Values are persisted in the Raft log: never renumber.
const (
	CmdSetEpoch      CommandType = 1
	CmdNetworkCreate CommandType = 2
	CmdNetworkUpdate CommandType = 3
	CmdNetworkDelete CommandType = 4

	// Subnets, ports and security groups (10-39).
	CmdSubnetCreate            CommandType = 10
	CmdSubnetUpdate            CommandType = 11
	CmdSubnetDelete            CommandType = 12
	CmdPortCreate              CommandType = 13
	CmdPortUpdate              CommandType = 14
	CmdPortDelete              CommandType = 15
	CmdSecurityGroupCreate     CommandType = 16
	CmdSecurityGroupUpdate     CommandType = 17
	CmdSecurityGroupDelete     CommandType = 18
	CmdSecurityGroupRuleCreate CommandType = 19
	CmdSecurityGroupRuleDelete CommandType = 20

	// Chassis and port bindings, from the southbound (40-59).
	CmdChassisUpsert   CommandType = 40
	CmdChassisSetState CommandType = 41
	CmdChassisDelete   CommandType = 42
	CmdPortBind        CommandType = 43
	// CmdPortStatus sets the status of bound ports once the leader's
	// controller knows whether their chassis realized them
	// (PortStatusRequest).
	CmdPortStatus CommandType = 44
	// CmdMacBindingSet records MAC addresses learned on networks for
	// addresses that are not Neutron ports (MacBindingSetRequest).
	CmdMacBindingSet CommandType = 45

	// Routers and floating IPs (60-79).
	CmdRouterCreate          CommandType = 60
	CmdRouterUpdate          CommandType = 61
	CmdRouterDelete          CommandType = 62
	CmdRouterInterfaceAdd    CommandType = 63
	CmdRouterInterfaceRemove CommandType = 64
	CmdFloatingIPCreate      CommandType = 65
	CmdFloatingIPUpdate      CommandType = 66
	CmdFloatingIPDelete      CommandType = 67
)

func (t CommandType) String() string {
	switch t {
	case CmdSetEpoch:
		return "SetEpoch"
	case CmdNetworkCreate:
		return "NetworkCreate"
	case CmdNetworkUpdate:
		return "NetworkUpdate"
	case CmdNetworkDelete:
		return "NetworkDelete"
	case CmdSubnetCreate:
		return "SubnetCreate"
	case CmdSubnetUpdate:
		return "SubnetUpdate"
	case CmdSubnetDelete:
		return "SubnetDelete"
	case CmdPortCreate:
		return "PortCreate"
	case CmdPortUpdate:
		return "PortUpdate"
	case CmdPortDelete:
		return "PortDelete"
	case CmdSecurityGroupCreate:
		return "SecurityGroupCreate"
	case CmdSecurityGroupUpdate:
		return "SecurityGroupUpdate"
	case CmdSecurityGroupDelete:
		return "SecurityGroupDelete"
	case CmdSecurityGroupRuleCreate:
		return "SecurityGroupRuleCreate"
	case CmdSecurityGroupRuleDelete:
		return "SecurityGroupRuleDelete"
	case CmdChassisUpsert:
		return "ChassisUpsert"
	case CmdChassisSetState:
		return "ChassisSetState"
	case CmdChassisDelete:
		return "ChassisDelete"
	case CmdPortBind:
		return "PortBind"
	case CmdPortStatus:
		return "PortStatus"
	case CmdMacBindingSet:
		return "MacBindingSet"
	case CmdRouterCreate:
		return "RouterCreate"
	case CmdRouterUpdate:
		return "RouterUpdate"
	case CmdRouterDelete:
		return "RouterDelete"
	case CmdRouterInterfaceAdd:
		return "RouterInterfaceAdd"
	case CmdRouterInterfaceRemove:
		return "RouterInterfaceRemove"
	case CmdFloatingIPCreate:
		return "FloatingIPCreate"
	case CmdFloatingIPUpdate:
		return "FloatingIPUpdate"
	case CmdFloatingIPDelete:
		return "FloatingIPDelete"
	case CmdRequest:
		return "Request"
	case CmdUpgradeFinalize:
		return "UpgradeFinalize"
	case CmdRBACPolicy:
		return "RBACPolicy"
	case CmdSubnetPool:
		return "SubnetPool"
	case CmdQoSPolicy:
		return "QoSPolicy"
	case CmdTrunk:
		return "Trunk"
	case CmdTrunkSubports:
		return "TrunkSubports"
	}
	if name := vpnCommandName(t); name != "" {
		return name
	}
	if s := lbCommandString(t); s != "" {
		return s
	}
	if s := fwCommandNames[t]; s != "" {
		return s
	}
	if s := quotaCommandName(t); s != "" {
		return s
	}
	if s := agentCommandName(t); s != "" {
		return s
	}
	return fmt.Sprintf("CommandType(%d)", uint8(t))
}

// msgpackHandle is shared by every encoder and decoder; it is safe for
// concurrent use once configured.
var msgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.RawToString = true
	h.WriteExt = true
	return h
}()

// Encode builds a log entry: one type byte followed by the msgpack body.
func Encode(t CommandType, body any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(byte(t))
	if err := codec.NewEncoder(&buf, msgpackHandle).Encode(body); err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return buf.Bytes(), nil
}

func decode(buf []byte, out any) error {
	return codec.NewDecoder(bytes.NewReader(buf), msgpackHandle).Decode(out)
}

// SetEpochRequest records the cluster epoch. The first leader of a freshly
// bootstrapped cluster sets it once; it never changes afterwards.
type SetEpochRequest struct {
	Epoch uint64
}

// NetworkCreateRequest creates one or more networks, all or none.
type NetworkCreateRequest struct {
	Networks []*Network
}

// NetworkUpdateRequest replaces a network with a new version computed by the
// leader from the version whose ModifyIndex is PrevIndex (compare-and-set:
// a concurrent change makes the update fail instead of being lost).
type NetworkUpdateRequest struct {
	Network   *Network
	PrevIndex uint64
}

// NetworkDeleteRequest deletes a network by id.
type NetworkDeleteRequest struct {
	ID string
}
