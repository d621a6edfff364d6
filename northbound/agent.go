package northbound

import (
	"net/http"
	"slices"
	"time"

	"neutrino/fsm"
)

// Agents (Neutron's agent extension) and availability zones.
//
// Neutrino has two kinds of agent: one per chassis (a node whose Open
// vSwitch the leader programs) and one per server (a Raft voter). They get
// types of their own, as OVN's controllers do ("OVN Controller agent"),
// not "Open vSwitch agent": no neutron-openvswitch-agent runs there, and
// tools that key on that type (its RPC topics, `--agent-type
// open-vswitch`) would be misled. A chassis agent's liveness is its
// committed chassis record (up while gossip says alive, as the scheduler
// sees it); a server agent's is its gossip membership.

// Agent types.
const (
	AgentTypeChassis = "Neutrino chassis agent"
	AgentTypeServer  = "Neutrino server agent"
	agentBinary      = "neutrino-agent"
)

// agentAttrs are the attributes of an agent; PUT may set admin_state_up
// and description.
var agentAttrs = map[string]attrSpec{
	"id":                  {Kind: attrString},
	"agent_type":          {Kind: attrString},
	"binary":              {Kind: attrString},
	"topic":               {Kind: attrString},
	"host":                {Kind: attrString},
	"admin_state_up":      {Kind: attrBool, Put: true},
	"description":         {Kind: attrString, Put: true, MaxLen: 255},
	"created_at":          {Kind: attrString},
	"started_at":          {Kind: attrString},
	"heartbeat_timestamp": {Kind: attrString},
	"alive":               {Kind: attrBool},
	"configurations":      {Kind: attrString},
	"availability_zone":   {Kind: attrString},
	"resources_synced":    {Kind: attrBool},
}

// availabilityZoneAttrs are the attributes of an availability zone.
var availabilityZoneAttrs = map[string]attrSpec{
	"name":     {Kind: attrString},
	"resource": {Kind: attrString},
	"state":    {Kind: attrString},
}

func (s *Server) agentRoutes() {
	s.neutron("GET /v2.0/agents", s.listAgents)
	s.neutron("GET /v2.0/agents/{id}", s.showAgent)
	s.neutron("PUT /v2.0/agents/{id}", s.updateAgent)
	s.neutron("DELETE /v2.0/agents/{id}", s.deleteAgent)
	s.neutron("GET /v2.0/availability_zones", s.listAvailabilityZones)
}

// agentRecord is one agent before rendering.
type agentRecord struct {
	kind, host string
	obj        map[string]any
}

// agentTimeLayout is how Neutron writes agent times (no T, no zone: UTC),
// and what clients parse them with (gophercloud's RFC3339ZNoTNoZ).
const agentTimeLayout = "2006-01-02 15:04:05"

func unixTime(sec int64) string { return time.Unix(sec, 0).UTC().Format(agentTimeLayout) }

// agentTime converts one of our RFC 3339 times to the agent layout; an
// empty or unreadable one is null.
func agentTime(rfc string) any {
	t, err := time.Parse(time.RFC3339, rfc)
	if err != nil {
		return nil
	}
	return t.UTC().Format(agentTimeLayout)
}

// agents lists every agent: the chassis of the state, then the servers
// of the Raft configuration and of gossip.
func (s *Server) agents(v *fsm.View) []agentRecord {
	members := map[string]Member{}
	if s.cfg.Members != nil {
		for _, m := range s.cfg.Members() {
			members[m.Name] = m
		}
	}
	startedAt := func(name string, fallback any) any {
		if st, ok := members[name].Meta["started_at"].(int64); ok && st > 0 {
			return unixTime(st)
		}
		return fallback
	}
	var out []agentRecord
	for _, c := range v.ChassisList() {
		set := v.AgentSettingsOf(fsm.AgentKindChassis, c.Name)
		bm := map[string]string{}
		for k, x := range c.BridgeMappings {
			bm[k] = x
		}
		out = append(out, agentRecord{kind: fsm.AgentKindChassis, host: c.Name, obj: map[string]any{
			"id": set.ID, "agent_type": AgentTypeChassis, "binary": agentBinary, "topic": "N/A", "host": c.Name,
			"admin_state_up": set.AdminStateUp, "description": set.Description,
			"created_at": agentTime(c.CreatedAt), "started_at": startedAt(c.Name, agentTime(c.CreatedAt)),
			"heartbeat_timestamp": agentTime(c.LastSeen), "alive": c.Up, "availability_zone": c.Zone(),
			"resources_synced": nil,
			"configurations": map[string]any{
				"roles": nonNil(c.Roles), "tunnel_ip": c.TunnelIP, "encaps": nonNil(c.Encaps),
				"bridge_mappings": bm, "datapath_type": c.DatapathType, "ovsdb": c.OVSDB,
			},
		}})
	}
	servers := map[string]bool{}
	if s.cfg.Status != nil {
		for _, sv := range s.cfg.Status().Servers {
			servers[sv.Name] = true
		}
	}
	for name, m := range members {
		if m.Role == "server" {
			servers[name] = true
		}
	}
	now := time.Now().UTC().Format(agentTimeLayout)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range servers {
			if !yield(k) {
				return
			}
		}
	}) {
		m, known := members[name]
		alive := known && m.Status == "alive"
		// Gossip keeps no time of the last probe answered: an alive
		// server was heard from within the probe interval, so now.
		var heartbeat any
		if alive {
			heartbeat = now
		}
		zone, _ := m.Meta["availability_zone"].(string)
		if zone == "" {
			zone = fsm.DefaultAvailabilityZone
		}
		set := v.AgentSettingsOf(fsm.AgentKindServer, name)
		started := startedAt(name, nil)
		out = append(out, agentRecord{kind: fsm.AgentKindServer, host: name, obj: map[string]any{
			"id": set.ID, "agent_type": AgentTypeServer, "binary": agentBinary, "topic": "N/A", "host": name,
			"admin_state_up": set.AdminStateUp, "description": set.Description,
			"created_at": started, "started_at": started,
			"heartbeat_timestamp": heartbeat, "alive": alive, "availability_zone": zone, "resources_synced": nil,
			"configurations": map[string]any{"raft_address": m.Meta["raft"], "http_address": m.Meta["http"]},
		}})
	}
	return out
}

func adminOnly(r *http.Request, rule string) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("(rule:%s) is disallowed by policy", rule)
	}
	return nil
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "get_agent"); err != nil {
		return err
	}
	lq, err := parseListQuery(r.URL.Query(), "agents", agentAttrs)
	if err != nil {
		return err
	}
	var objs []map[string]any
	for _, a := range s.agents(s.view(w)) {
		objs = append(objs, a.obj)
	}
	return writeList(w, r, lq, "agents", objs)
}

func (s *Server) findAgent(v *fsm.View, id string) (*agentRecord, error) {
	if !validUUID(id) {
		return nil, badRequest("Invalid input for id. Reason: '%s' is not a valid UUID.", id)
	}
	for _, a := range s.agents(v) {
		if a.obj["id"] == id {
			return &a, nil
		}
	}
	return nil, newError(http.StatusNotFound, "AgentNotFound", "Agent %s could not be found.", id)
}

func (s *Server) showAgent(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "get_agent"); err != nil {
		return err
	}
	a, err := s.findAgent(s.view(w), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeShow(w, r, "agent", "agents", agentAttrs, a.obj)
}

func (s *Server) updateAgent(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "update_agent"); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	objs, err := objectsFromBody(body, "agent", "agents", false)
	if err != nil {
		return err
	}
	at, err := parseAttrs(objs[0], agentAttrs, false)
	if err != nil {
		return err
	}
	a, err := s.findAgent(s.fsm.State().Read(), r.PathValue("id"))
	if err != nil {
		return err
	}
	req := fsm.AgentUpdateRequest{Kind: a.kind, Host: a.host, At: now()}
	if x, ok := at.boolean("admin_state_up"); ok {
		req.AdminStateUp = &x
	}
	if x, ok := at.str("description"); ok {
		req.Description = &x
	}
	rev, err := s.propose(r.Context(), fsm.CmdAgentUpdate, req)
	if err != nil {
		return err
	}
	setRevision(w, rev)
	a, err = s.findAgent(s.fsm.State().Read(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent": a.obj})
	return nil
}

// deleteAgent deletes a dead agent: a chassis' record (the state machine
// refuses an up one), or a server, removed from Raft first.
func (s *Server) deleteAgent(w http.ResponseWriter, r *http.Request) error {
	if err := adminOnly(r, "delete_agent"); err != nil {
		return err
	}
	a, err := s.findAgent(s.fsm.State().Read(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if a.kind == fsm.AgentKindServer {
		if a.obj["alive"] == true {
			return newError(http.StatusConflict, fsm.ErrTypeAgentAlive, "Agent %s is alive: only a dead agent can be deleted.", a.obj["id"])
		}
		if s.cfg.RemoveServer == nil {
			return badRequest("This server cannot change the cluster's membership.")
		}
		if err := s.cfg.RemoveServer(r.Context(), a.host); err != nil {
			if fe, ok := fsm.AsError(err); !ok || fe.Code != fsm.CodeNotFound {
				return err
			}
		}
	}
	rev, err := s.propose(r.Context(), fsm.CmdAgentDelete, fsm.AgentDeleteRequest{Kind: a.kind, Host: a.host, At: now()})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// zonesOf returns the sorted zones of the named chassis that exist.
func zonesOf(v *fsm.View, names []string) []string {
	out := []string{}
	if v == nil {
		return out
	}
	for _, n := range names {
		if c := v.Chassis(n); c != nil && !slices.Contains(out, c.Zone()) {
			out = append(out, c.Zone())
		}
	}
	slices.Sort(out)
	return out
}

// networkZones are the zones of the chassis that host the network's
// bound ports.
func networkZones(v *fsm.View, networkID string) []string {
	if v == nil {
		return []string{}
	}
	var hosts []string
	for _, p := range v.PortsOfNetwork(networkID) {
		if p.BindingHostID != "" && !slices.Contains(hosts, p.BindingHostID) {
			hosts = append(hosts, p.BindingHostID)
		}
	}
	return zonesOf(v, hosts)
}

// checkZoneHints validates availability_zone_hints: each names a zone of
// some chassis (Neutron's AvailabilityZoneNotFound otherwise).
func checkZoneHints(v *fsm.View, hints []string) error {
	for _, h := range hints {
		found := false
		for _, c := range v.ChassisList() {
			found = found || c.Zone() == h
		}
		if !found {
			return newError(http.StatusNotFound, "AvailabilityZoneNotFound", "AvailabilityZone %s could not be found.", h)
		}
	}
	return nil
}

// listAvailabilityZones lists each zone of a chassis for resource
// "network" (any chassis) and "router" (gateway chassis); a zone is
// available while one of its chassis is up.
func (s *Server) listAvailabilityZones(w http.ResponseWriter, r *http.Request) error {
	lq, err := parseListQuery(r.URL.Query(), "availability_zones", availabilityZoneAttrs)
	if err != nil {
		return err
	}
	type key struct{ name, resource string }
	up := map[key]bool{}
	var keys []key
	add := func(k key, isUp bool) {
		if _, ok := up[k]; !ok {
			keys = append(keys, k)
		}
		up[k] = up[k] || isUp
	}
	for _, c := range s.view(w).ChassisList() {
		add(key{c.Zone(), "network"}, c.Up)
		if c.IsGateway() {
			add(key{c.Zone(), "router"}, c.Up)
		}
	}
	var objs []map[string]any
	for _, k := range keys {
		state := "unavailable"
		if up[k] {
			state = "available"
		}
		// The id only orders the list (listQuery sorts by it); zones have none.
		objs = append(objs, map[string]any{"id": k.name + "/" + k.resource, "name": k.name, "resource": k.resource, "state": state})
	}
	page, _, err := lq.apply(objs, r)
	if err != nil {
		return err
	}
	for _, o := range page {
		delete(o, "id")
	}
	writeJSON(w, http.StatusOK, map[string]any{"availability_zones": nonNilObjs(page)})
	return nil
}
