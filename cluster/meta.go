package cluster

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Roles a node announces in gossip.
const (
	RoleServer  = "server"
	RoleChassis = "chassis"
)

// MaxMetaSize is memberlist's limit on node metadata; memberlist panics
// above it, so EncodeMeta refuses instead.
const MaxMetaSize = memberlist.MetaMaxSize

// metaVersion is the first byte of encoded metadata, so the format can change
// while old and new agents gossip together.
const metaVersion = 1

// ErrMetaTooLarge is returned when encoded node metadata exceeds MaxMetaSize.
var ErrMetaTooLarge = errors.New("cluster: node metadata too large")

// NodeMeta is what a node announces about itself in gossip. JSON with short
// keys keeps it well under memberlist's 512-byte cap for typical chassis.
type NodeMeta struct {
	// Role is RoleServer for Raft voters, RoleChassis for agents.
	Role string `json:"r"`
	// RaftAddr is the server's Raft transport address.
	RaftAddr string `json:"ra,omitempty"`
	// HTTPAddr is the node's advertised API address.
	HTTPAddr string `json:"h,omitempty"`
	// Expect is the server's BootstrapExpect; servers bootstrap together
	// only when they all expect the same number.
	Expect int `json:"e,omitempty"`
	// Bootstrapped says the server has Raft state: it is part of a cluster
	// already, so nobody may bootstrap a new one with it.
	Bootstrapped bool `json:"b,omitempty"`
	// Leaving says the node is leaving gossip on purpose (status "left",
	// not "dead"): memberlist v0.6.0 does not tell the two apart in events.
	Leaving bool `json:"l,omitempty"`
	// LeaderTerm is the term this server leads in, once its barrier is
	// done; 0 when it does not lead. Chassis agents, which have no Raft,
	// learn from it that a leader exists (cluster.Ready).
	LeaderTerm uint64 `json:"lt,omitempty"`

	// Chassis fields, announced by agents that run Open vSwitch.

	// TunnelIP is the chassis' overlay endpoint.
	TunnelIP string `json:"tip,omitempty"`
	// OVSDB is the chassis' OVSDB endpoint (e.g. "tcp:10.0.0.5:6640").
	OVSDB string `json:"db,omitempty"`
	// Roles lists chassis roles ("compute", "gateway").
	Roles []string `json:"ro,omitempty"`
	// BridgeMappings maps physical network names to bridges.
	BridgeMappings map[string]string `json:"bm,omitempty"`
	// Encaps lists supported encapsulations ("vxlan", "geneve", "gre").
	Encaps []string `json:"en,omitempty"`
	// DatapathType is the OVS datapath type ("system" or "netdev").
	DatapathType string `json:"dp,omitempty"`
	// AvailabilityZone is the node's availability zone (Neutron's; ""
	// reads as "nova").
	AvailabilityZone string `json:"az,omitempty"`
	// StartedAt is when the agent process started (Unix seconds): the
	// agents API's started_at.
	StartedAt int64 `json:"st,omitempty"`

	// OpenFlowAddr is a server's OpenFlow listener ("tcp:IP:PORT" or
	// "unix:PATH"); every chassis' br-int connects to every server's.
	OpenFlowAddr string `json:"of,omitempty"`

	// Version is the node's binary version (cluster.Version).
	Version string `json:"v,omitempty"`
	// Commands is a server's fsm.CommandSet (64 hex digits): the command
	// types its state machine knows. Servers that announce none know
	// fsm.BaselineCommands.
	Commands string `json:"cmd,omitempty"`
	// CertFP names the certificate whose key signed this metadata, with
	// TLS on (identity.go); the signature follows it as "sg".
	CertFP string `json:"cf,omitempty"`
}

// EncodeMeta encodes metadata for gossip, refusing anything over MaxMetaSize.
func EncodeMeta(m NodeMeta) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cluster: encode node metadata: %w", err)
	}
	buf := append([]byte{metaVersion}, body...)
	if len(buf) > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(buf), MaxMetaSize)
	}
	return buf, nil
}

// DecodeMeta decodes metadata written by EncodeMeta.
func DecodeMeta(buf []byte) (NodeMeta, error) {
	var m NodeMeta
	if len(buf) == 0 {
		return m, errors.New("cluster: empty node metadata")
	}
	if buf[0] != metaVersion {
		return m, fmt.Errorf("cluster: node metadata version %d, want %d", buf[0], metaVersion)
	}
	if err := json.Unmarshal(buf[1:], &m); err != nil {
		return m, fmt.Errorf("cluster: decode node metadata: %w", err)
	}
	return m, nil
}
