package client

import (
	"context"
	"net/http"
	"net/url"
)

// ClusterStatus is the body of GET /v1/cluster: the Raft view of the
// server that answered (Node).
type ClusterStatus struct {
	Node         string   `json:"node,omitempty"`
	Leader       string   `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Revision     uint64   `json:"revision"`
	Epoch        uint64   `json:"epoch"`
	Servers      []Server `json:"servers"`
}

// Server is one Raft server in ClusterStatus.
type Server struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	State   string `json:"state"`
}

// Member is one gossip member, from GET /v1/cluster/members.
type Member struct {
	Name    string         `json:"name"`
	Address string         `json:"address"`
	Status  string         `json:"status"`
	Role    string         `json:"role"`
	Meta    map[string]any `json:"meta,omitempty"`
}

// Cluster reads the cluster's Raft status: GET /v1/cluster.
func (c *Client) Cluster(ctx context.Context) (*ClusterStatus, error) {
	var st ClusterStatus
	if err := c.Do(ctx, http.MethodGet, "/v1/cluster", nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Members lists the gossip members: GET /v1/cluster/members.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var out struct {
		Members []Member `json:"members"`
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/cluster/members", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Members, nil
}

// RemoveServer removes a server from the Raft configuration (admin):
// DELETE /v1/cluster/servers/{name}.
func (c *Client) RemoveServer(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/cluster/servers/"+url.PathEscape(name), nil, nil, nil)
}

// ChassisRealization is one chassis in RealizationStatus.
type ChassisRealization struct {
	Chassis          string `json:"chassis"`
	RealizedRevision uint64 `json:"realized_revision"`
	Connected        bool   `json:"connected"`
	Master           bool   `json:"master"`
	Error            string `json:"error,omitempty"`
}

// RealizationStatus is the body of GET /v1/realization: the leader's state
// revision and what each chassis realized of it.
type RealizationStatus struct {
	Revision uint64               `json:"revision"`
	Leader   string               `json:"leader"`
	Chassis  []ChassisRealization `json:"chassis"`
}

// Realization reads how far each chassis realized the state, from the
// leader: GET /v1/realization.
func (c *Client) Realization(ctx context.Context) (*RealizationStatus, error) {
	var st RealizationStatus
	if err := c.Do(ctx, http.MethodGet, "/v1/realization", nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
