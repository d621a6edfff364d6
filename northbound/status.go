package northbound

import (
	"errors"
	"net/http"
)

// ClusterStatus is the body of GET /v1/cluster.
type ClusterStatus struct {
	Node         string       `json:"node"`
	Leader       string       `json:"leader"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commit_index"`
	AppliedIndex uint64       `json:"applied_index"`
	Revision     uint64       `json:"revision"`
	Epoch        uint64       `json:"epoch"`
	Servers      []ServerInfo `json:"servers"`
	// UpgradeFinalizedAt is the Raft index of the last finalized upgrade
	// (POST /v1/cluster/upgrade/finalize), 0 before one.
	UpgradeFinalizedAt uint64 `json:"upgrade_finalized_at"`
}

// ServerInfo is one Raft server in ClusterStatus.
type ServerInfo struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	State   string `json:"state"`
}

// Member is one gossip member in GET /v1/cluster/members.
type Member struct {
	Name    string         `json:"name"`
	Address string         `json:"address"`
	Status  string         `json:"status"`
	Role    string         `json:"role"`
	Meta    map[string]any `json:"meta,omitempty"`
}

// healthz answers 200 while the process serves HTTP; the body says whether
// it sees a leader, so a probe can tell a live-but-partitioned server.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	leader := ""
	if s.cfg.Status != nil {
		leader = s.cfg.Status().Leader
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": s.cfg.NodeName, "leader": leader})
}

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	st := ClusterStatus{Node: s.cfg.NodeName, Servers: []ServerInfo{}}
	if s.cfg.Status != nil {
		st = s.cfg.Status()
		st.Node = s.cfg.NodeName
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) clusterMembers(w http.ResponseWriter, r *http.Request) {
	members := []Member{}
	if s.cfg.Members != nil {
		members = s.cfg.Members()
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": members})
}

// removeServer removes a (dead) server from the Raft configuration: admin
// only, served by the leader (neutron() forwards it like any write).
func (s *Server) removeServer(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("Removing a server requires the admin role.")
	}
	if s.cfg.RemoveServer == nil {
		return badRequest("This server cannot change the cluster's membership.")
	}
	err := s.cfg.RemoveServer(r.Context(), r.PathValue("name"))
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
		return nil
	case errors.Is(err, ErrNotLeader):
		return errNoLeader
	}
	return err
}

// finalizeUpgrade records that every server knows the command types they
// all announce (fsm.CmdUpgradeFinalize): admin only, on the leader. While a
// server runs a version without the finalize command it answers 503
// UpgradeIncomplete naming that server.
func (s *Server) finalizeUpgrade(w http.ResponseWriter, r *http.Request) error {
	if !identityFrom(r.Context()).Admin {
		return forbidden("Finalizing an upgrade requires the admin role.")
	}
	if s.cfg.FinalizeUpgrade == nil {
		return badRequest("This server cannot finalize an upgrade.")
	}
	res, err := s.cfg.FinalizeUpgrade(r.Context())
	switch {
	case errors.Is(err, ErrNotLeader):
		return errNoLeader
	case errors.Is(err, ErrNotReady):
		return errNotApplied(err)
	case errors.Is(err, ErrUnsupported):
		return errUnsupported(err)
	case err != nil:
		return newError(http.StatusServiceUnavailable, ErrTypeOutcomeUnknown,
			"The outcome of the finalize is unknown (%v); it is idempotent: retry it.", err)
	case res.Err != nil:
		return res.Err
	}
	setRevision(w, res.Revision)
	writeJSON(w, http.StatusOK, map[string]any{"upgrade": map[string]any{"finalized_at": res.Revision}})
	return nil
}

// upgradeCheck answers a finalize 503 UpgradeIncomplete on any server
// that sees a server of an older version: a leader of the older version
// would not know the route.
func (s *Server) upgradeCheck(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.UpgradeCheck != nil {
			if err := s.cfg.UpgradeCheck(); errors.Is(err, ErrUnsupported) {
				writeError(w, errUnsupported(err))
				return
			}
		}
		next(w, r)
	}
}

// versions is Neutron's version document at /.
func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []map[string]any{{
		"id": "v2.0", "status": "CURRENT",
		"links": []map[string]string{{"rel": "self", "href": scheme(r) + "://" + r.Host + "/v2.0/"}},
	}}})
}

func (s *Server) v2Root(w http.ResponseWriter, r *http.Request) {
	var res []map[string]any
	for _, c := range []string{"network", "subnet", "port", "security-group", "security-group-rule", "router", "floatingip"} {
		res = append(res, map[string]any{"name": c, "collection": c + "s",
			"links": []map[string]string{{"rel": "self", "href": scheme(r) + "://" + r.Host + "/v2.0/" + c + "s"}}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": res})
}

// extensionList is what GET /v2.0/extensions reports as supported.
var extensionList = []struct{ Alias, Name, Description string }{
	{"provider", "Provider Network", "Expose mapping of virtual networks to physical networks"},
	{"external-net", "Neutron external network", "Adds external network attribute to network resource."},
	{"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."},
	{"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."},
	{"standard-attr-tag", "Tag support for resources with standard attribute: network", "Enables to set tag on resources with standard attribute."},
	{"tag-creation", "Tag support for resources during creation", "Enables to set tags on resources during creation."},
	{"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"},
	{"net-mtu", "Network MTU", "Provides MTU attribute for a network resource."},
	{"port-security", "Port Security", "Provides port security"},
	{"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."},
	{"pagination", "Pagination support", "Extension that indicates that pagination is enabled."},
	{"sorting", "Sorting support", "Extension that indicates that sorting is enabled."},
	{"fields", "Fields support", "Extension that indicates that fields filter is enabled."},
	{"security-group", "security-group", "The security groups extension."},
	{"binding", "Port Binding", "Expose port bindings of a virtual port to external application"},
	{"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"},
	{"extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)"},
	{"ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when listing ports"},
	{"filter-validation", "Filter parameters validation", "Provides validation on filter parameters."},
	{"revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported."},
	{"router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."},
	{"ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"},
	{"extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"},
	{"dvr", "Distributed Virtual Router", "Enables configuration of Distributed Virtual Routers."},
	{"l3-ha", "HA Router extension", "Adds HA capability to routers."},
	{"vpnaas", "VPN service", "Extension for VPN service"},
	{"vpn-endpoint-groups", "VPN Endpoint Groups", "VPN endpoint groups support"},
	{"fwaas_v2", "Firewall As A Service v2", "Extension for Firewall Service v2"},
	{"lbaasv2", "LoadBalancing service v2", "The Octavia v2 load balancing API, served by this endpoint at /v2.0/lbaas and /v2/lbaas."},
	{"agent", "agent", "The agent management extension."},
	{"availability_zone", "Availability Zone", "The availability zone extension."},
	{"network_availability_zone", "Network Availability Zone", "Availability zone support for network."},
	{"router_availability_zone", "Router Availability Zone", "Availability zone support for router."},
	{"quotas", "Quota management support", "Expose functions for quotas management per project"},
	{"quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"},
	{"rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control tenant access to resources."},
	{"subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"},
	{"default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default."},
	{"segment", "Segment", "Segments extension."},
	{"qos", "Quality of Service", "The Quality of Service extension."},
	{"qos-bw-limit-direction", "Direction for QoS bandwidth limit rule", "Allow to configure QoS bandwidth limit rule with specific direction: ingress or egress"},
	{"qos-default", "QoS default policy", "Expose the QoS default policy per project"},
	{"qos-rule-type-details", "Details of QoS rule types", "Expose details about QoS rule types supported by loaded backend drivers"},
	{"trunk", "Trunk Extension", "Provides support for trunk ports"},
	{"trunk-details", "Trunk port details", "Expose trunk port details"},
	{"neutrino-gateway-chassis", "Neutrino router gateway chassis", "Shows and sets the priority list of gateway chassis of a router's external gateway (neutrino:gateway_chassis), the chassis it is active on (neutrino:active_gateway_chassis) and whether a recovered chassis takes it back (neutrino:gateway_preempt)."},
}

func (s *Server) extensions(w http.ResponseWriter, r *http.Request) {
	exts := make([]map[string]any, 0, len(extensionList))
	for _, e := range extensionList {
		exts = append(exts, map[string]any{"alias": e.Alias, "name": e.Name, "description": e.Description,
			"updated": "2026-11-23T00:00:00-00:00", "links": []any{}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"extensions": exts})
}
