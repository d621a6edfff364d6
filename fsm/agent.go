package fsm

// Agents (Neutron's agent extension, issue 19). Neutrino's agents are its
// chassis (TableChassis, from gossip through the leader) and its servers
// (gossip members): what an operator can set on them, admin_state_up and
// a description, is kept here, keyed by the agent's id.

import (
	"crypto/sha1"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Agent commands (ops' 160-179).
const (
	// CmdAgentUpdate sets an agent's admin_state_up and description
	// (AgentUpdateRequest).
	CmdAgentUpdate CommandType = 163
	// CmdAgentDelete forgets a dead agent (AgentDeleteRequest).
	CmdAgentDelete CommandType = 164
)

// TableAgents holds what an operator set on agents.
const TableAgents = "agents"

// Agent kinds: one agent per chassis and one per server.
const (
	AgentKindChassis = "chassis"
	AgentKindServer  = "server"
)

// Error types of the agent handlers.
const (
	ErrTypeAgentNotFound = "AgentNotFoundByTypeHost"
	ErrTypeAgentAlive    = "AgentAlive"
)

// AgentID is the stable id of the agent of a kind on a host: a name-based
// (version 5 style) UUID, so every server names an agent alike without
// storing anything.
func AgentID(kind, host string) string {
	sum := sha1.Sum([]byte("neutrino-agent/" + kind + "/" + host))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

// AgentSettings is a row of TableAgents.
type AgentSettings struct {
	ID             string
	Kind           string
	Host           string
	AdminStateUp   bool
	Description    string
	RevisionNumber uint64
	UpdatedAt      string
	ModifyIndex    uint64
}

// AgentUpdateRequest changes the fields that are set (nil keeps).
type AgentUpdateRequest struct {
	Kind         string
	Host         string
	AdminStateUp *bool
	Description  *string
	At           string
}

// AgentDeleteRequest deletes an agent: its settings and, for a chassis,
// its record, which must be down (an up chassis would be recreated from
// gossip at once). A server's agent is deleted by removing the server
// from Raft (the API does that first).
type AgentDeleteRequest struct {
	Kind string
	Host string
	At   string
}

func agentSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableAgents,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		},
	}
}

func agentHandlers() map[CommandType]handler {
	return map[CommandType]handler{CmdAgentUpdate: applyAgentUpdate, CmdAgentDelete: applyAgentDelete}
}

func agentCommandName(t CommandType) string {
	switch t {
	case CmdAgentUpdate:
		return "AgentUpdate"
	case CmdAgentDelete:
		return "AgentDelete"
	}
	return ""
}

// AgentSettingsOf returns the settings of an agent; an agent nobody
// changed is admin up without a description.
func (v *View) AgentSettingsOf(kind, host string) *AgentSettings {
	if s := first[*AgentSettings](v.txn, TableAgents, "id", AgentID(kind, host)); s != nil {
		return s
	}
	return &AgentSettings{ID: AgentID(kind, host), Kind: kind, Host: host, AdminStateUp: true}
}

// ChassisAdminUp reports whether an operator left the chassis' agent admin
// up: an admin-down chassis gets no new gateways (like a disabled Neutron
// L3 agent, it keeps those it has).
func (v *View) ChassisAdminUp(name string) bool {
	return v.AgentSettingsOf(AgentKindChassis, name).AdminStateUp
}

func validAgentKind(kind string) error {
	if kind != AgentKindChassis && kind != AgentKindServer {
		return Errorf(CodeBadRequest, ErrTypeInvalidInput, "Invalid input for operation: agent kind %q.", kind)
	}
	return nil
}

func applyAgentUpdate(txn *memdb.Txn, body []byte, index uint64) error {
	var req AgentUpdateRequest
	mustDecode(body, &req, index)
	if err := validAgentKind(req.Kind); err != nil {
		return err
	}
	v := View{txn: txn}
	if req.Kind == AgentKindChassis && v.Chassis(req.Host) == nil {
		return Errorf(CodeNotFound, ErrTypeAgentNotFound, "Agent %s could not be found.", AgentID(req.Kind, req.Host))
	}
	s := *v.AgentSettingsOf(req.Kind, req.Host)
	if req.AdminStateUp != nil {
		s.AdminStateUp = *req.AdminStateUp
	}
	if req.Description != nil {
		s.Description = *req.Description
	}
	s.RevisionNumber++
	s.UpdatedAt, s.ModifyIndex = req.At, index
	insert(txn, TableAgents, &s, index)
	return nil
}

func applyAgentDelete(txn *memdb.Txn, body []byte, index uint64) error {
	var req AgentDeleteRequest
	mustDecode(body, &req, index)
	if err := validAgentKind(req.Kind); err != nil {
		return err
	}
	v := View{txn: txn}
	id := AgentID(req.Kind, req.Host)
	if req.Kind == AgentKindChassis {
		c := v.Chassis(req.Host)
		if c == nil {
			return Errorf(CodeNotFound, ErrTypeAgentNotFound, "Agent %s could not be found.", id)
		}
		if c.Up {
			return Errorf(CodeConflict, ErrTypeAgentAlive, "Agent %s is alive: only a dead agent can be deleted.", id)
		}
		remove(txn, TableChassis, c, index)
		reconcileGateways(txn, req.At, index)
	}
	if s := first[*AgentSettings](v.txn, TableAgents, "id", id); s != nil {
		remove(txn, TableAgents, s, index)
	}
	return nil
}
