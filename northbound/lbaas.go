package northbound

// The Octavia v2 API (load balancing as a service, issue 12), served on
// /v2/lbaas/... and /v2.0/lbaas/... (python-octaviaclient with
// --os-endpoint calls the latter) through the same front door as the
// Neutron API: identity, forwarding to the leader, request identity and
// replay, X-Neutrino-Revision, ?wait=realized. Errors have Octavia's
// body, {"faultcode": "Client", "faultstring": ..., "debuginfo": null}.
//
// Provisioning status leaves PENDING_* only through the agent's report
// (PUT /v1/lbaas/loadbalancers/{id}/agent-status, lbaas_agent.go).

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"neutrino/fsm"
	"neutrino/northbound/client"
)

// lbPrefixes are where the Octavia API is served: /v2 as Octavia's own
// endpoint, /v2.0 as octaviaclient reaches it through --os-endpoint.
var lbPrefixes = []string{"/v2/lbaas", "/v2.0/lbaas"}

// octavia registers an Octavia route under every prefix: the Neutron front
// door, with errors rewritten to Octavia's body for the client.
func (s *Server) octavia(method, path string, h apiHandler) {
	for _, pre := range lbPrefixes {
		pattern := method + " " + pre + path
		inner := s.apiHandlerFunc(pattern, h)
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			// One request is one request under either prefix (its
			// identity's fingerprint has the path); the route's path
			// values are already matched.
			if rest, ok := strings.CutPrefix(r.URL.Path, lbPrefixes[1]); ok {
				u := *r.URL
				u.Path, u.RawPath = lbPrefixes[0]+rest, ""
				r = r.WithContext(r.Context())
				r.URL = &u
			}
			// A forwarded request answers the forwarding server, which
			// reads Neutron's error types (retries) and rewrites for its
			// client.
			if r.Header.Get(HeaderForwarded) != "" {
				inner(w, r)
				return
			}
			fw := &faultWriter{ResponseWriter: w}
			inner(fw, r)
			fw.finish()
		})
	}
}

// faultWriter holds back an error answer and rewrites a NeutronError body
// into Octavia's fault body.
type faultWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (f *faultWriter) WriteHeader(code int) {
	if code >= 400 {
		f.status = code
		return
	}
	f.ResponseWriter.WriteHeader(code)
}

func (f *faultWriter) Write(p []byte) (int, error) {
	if f.status >= 400 {
		return f.buf.Write(p)
	}
	return f.ResponseWriter.Write(p)
}

func (f *faultWriter) finish() {
	if f.status < 400 {
		return
	}
	var env struct {
		NeutronError *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"NeutronError"`
	}
	if json.Unmarshal(f.buf.Bytes(), &env) != nil || env.NeutronError == nil {
		f.ResponseWriter.WriteHeader(f.status)
		_, _ = f.ResponseWriter.Write(f.buf.Bytes())
		return
	}
	code := "Client"
	if f.status >= 500 {
		code = "Server"
	}
	body, _ := json.Marshal(map[string]any{"faultcode": code, "faultstring": env.NeutronError.Message, "debuginfo": nil})
	f.Header().Del("Content-Length")
	f.Header().Set("Content-Type", "application/json")
	// Our own clients (northbound/client) retry by Neutron error type.
	f.Header().Set(client.HeaderErrorType, env.NeutronError.Type)
	f.ResponseWriter.WriteHeader(f.status)
	_, _ = f.ResponseWriter.Write(append(body, '\n'))
}

// lbInvalid is Octavia's ValidationException (400).
func lbInvalid(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, fsm.ErrTypeLBValidation, "Validation failure: "+format, args...)
}

// lbNotFound is Octavia's NotFound (404).
func lbNotFound(table, id string) error { return fsm.LBNotFound(table, id) }

// octaviaTime renders a stored RFC 3339 UTC time as Octavia does (no zone
// suffix; gophercloud parses it as such).
func octaviaTime(t string) any {
	if t == "" {
		return nil
	}
	return strings.TrimSuffix(t, "Z")
}

func idRefs(ids []string) []map[string]string {
	out := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, map[string]string{"id": id})
	}
	return out
}

// lbBase renders what every Octavia object has.
func lbBase(m *fsm.Meta, obj any) map[string]any {
	ps, os := fsm.LBStatusOf(obj)
	return map[string]any{
		"id": m.ID, "name": m.Name, "project_id": m.ProjectID, "tenant_id": m.ProjectID,
		"provisioning_status": ps, "operating_status": os,
		"created_at": octaviaTime(m.CreatedAt), "updated_at": octaviaTime(m.UpdatedAt), "tags": nonNil(m.Tags),
	}
}

func intOrNil(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func renderLoadBalancer(v *fsm.View, lb *fsm.LoadBalancer, admin bool) map[string]any {
	o := lbBase(&lb.Meta, lb)
	var ls, ps []string
	for _, l := range v.ListenersOfLB(lb.ID) {
		ls = append(ls, l.ID)
	}
	for _, p := range v.PoolsOfLB(lb.ID) {
		ps = append(ps, p.ID)
	}
	o["description"] = lb.Description
	o["admin_state_up"] = lb.AdminStateUp
	o["vip_address"] = lb.VipAddress
	o["vip_port_id"] = lb.VipPortID
	o["vip_subnet_id"] = strOrNil(lb.VipSubnetID)
	o["vip_network_id"] = lb.VipNetworkID
	o["vip_qos_policy_id"] = nil
	o["provider"] = lb.Provider
	o["flavor_id"] = nil
	o["availability_zone"] = nil
	o["additional_vips"] = []any{}
	o["listeners"] = idRefs(ls)
	o["pools"] = idRefs(ps)
	o["neutrino:status_reason"] = lb.StatusReason
	if admin {
		o["neutrino:gateway_chassis"] = nonNil(lb.GatewayChassis)
		o["neutrino:active_chassis"] = strOrNil(lb.ActiveChassis)
		o["neutrino:config_revision"] = lb.ConfigRevision
	}
	return o
}

func renderListener(v *fsm.View, l *fsm.Listener) map[string]any {
	o := lbBase(&l.Meta, l)
	var ps []string
	for _, p := range v.L7PoliciesOfListener(l.ID) {
		ps = append(ps, p.ID)
	}
	hdrs := map[string]string{}
	for k, x := range l.InsertHeaders {
		hdrs[k] = x
	}
	o["description"] = l.Description
	o["admin_state_up"] = l.AdminStateUp
	o["protocol"] = l.Protocol
	o["protocol_port"] = l.ProtocolPort
	o["connection_limit"] = l.ConnectionLimit
	o["default_pool_id"] = strOrNil(l.DefaultPoolID)
	o["default_tls_container_ref"] = nil
	o["sni_container_refs"] = []string{}
	o["loadbalancers"] = idRefs([]string{l.LoadBalancerID})
	// Not in Octavia's body, but a filter Octavia accepts.
	o["loadbalancer_id"] = l.LoadBalancerID
	o["l7policies"] = idRefs(ps)
	o["insert_headers"] = hdrs
	o["timeout_client_data"] = l.TimeoutClientData
	o["timeout_member_connect"] = l.TimeoutMemberConnect
	o["timeout_member_data"] = l.TimeoutMemberData
	o["timeout_tcp_inspect"] = l.TimeoutTCPInspect
	o["allowed_cidrs"] = nil
	return o
}

func renderPool(v *fsm.View, p *fsm.Pool) map[string]any {
	o := lbBase(&p.Meta, p)
	var ms []string
	for _, m := range v.MembersOfPool(p.ID) {
		ms = append(ms, m.ID)
	}
	o["description"] = p.Description
	o["admin_state_up"] = p.AdminStateUp
	o["protocol"] = p.Protocol
	o["lb_algorithm"] = p.LBAlgorithm
	if sp := p.SessionPersistence; sp != nil {
		o["session_persistence"] = map[string]any{"type": sp.Type, "cookie_name": strOrNil(sp.CookieName)}
	} else {
		o["session_persistence"] = nil
	}
	o["loadbalancers"] = idRefs([]string{p.LoadBalancerID})
	o["loadbalancer_id"] = p.LoadBalancerID
	o["listeners"] = idRefs(p.ListenerIDs)
	o["members"] = idRefs(ms)
	o["healthmonitor_id"] = strOrNil(p.HealthMonitorID)
	o["tls_enabled"] = false
	return o
}

func renderMember(m *fsm.Member) map[string]any {
	o := lbBase(&m.Meta, m)
	o["admin_state_up"] = m.AdminStateUp
	o["address"] = m.Address
	o["protocol_port"] = m.ProtocolPort
	o["weight"] = m.Weight
	o["backup"] = m.Backup
	o["subnet_id"] = strOrNil(m.SubnetID)
	o["monitor_address"] = strOrNil(m.MonitorAddress)
	o["monitor_port"] = intOrNil(m.MonitorPort)
	o["pool_id"] = m.PoolID
	return o
}

func renderHealthMonitor(h *fsm.HealthMonitor) map[string]any {
	o := lbBase(&h.Meta, h)
	o["admin_state_up"] = h.AdminStateUp
	o["type"] = h.Type
	o["delay"] = h.Delay
	o["timeout"] = h.Timeout
	o["max_retries"] = h.MaxRetries
	o["max_retries_down"] = h.MaxRetriesDown
	o["http_method"] = strOrNil(h.HTTPMethod)
	o["url_path"] = strOrNil(h.URLPath)
	o["expected_codes"] = strOrNil(h.ExpectedCodes)
	o["pools"] = idRefs([]string{h.PoolID})
	o["pool_id"] = h.PoolID
	o["http_version"] = nil
	o["domain_name"] = nil
	return o
}

func renderL7Policy(v *fsm.View, p *fsm.L7Policy) map[string]any {
	o := lbBase(&p.Meta, p)
	var rs []string
	for _, r := range v.L7RulesOfPolicy(p.ID) {
		rs = append(rs, r.ID)
	}
	o["description"] = p.Description
	o["admin_state_up"] = p.AdminStateUp
	o["listener_id"] = p.ListenerID
	o["action"] = p.Action
	o["position"] = p.Position
	o["redirect_pool_id"] = strOrNil(p.RedirectPoolID)
	o["redirect_url"] = strOrNil(p.RedirectURL)
	o["redirect_prefix"] = strOrNil(p.RedirectPrefix)
	o["redirect_http_code"] = intOrNil(p.RedirectHTTPCode)
	o["rules"] = idRefs(rs)
	return o
}

func renderL7Rule(r *fsm.L7Rule) map[string]any {
	o := lbBase(&r.Meta, r)
	delete(o, "name")
	o["admin_state_up"] = r.AdminStateUp
	o["type"] = r.Type
	o["compare_type"] = r.CompareType
	o["key"] = strOrNil(r.Key)
	o["value"] = r.Value
	o["invert"] = r.Invert
	return o
}

// lbKind describes one Octavia collection.
type lbKind struct {
	table, singular, plural string
	attrs                   map[string]attrSpec
	// parent is the path value naming the parent (members: pool_id, rules:
	// l7policy_id), "" for top-level collections.
	parent string
}

func (k *lbKind) render(v *fsm.View, obj any, admin bool) map[string]any {
	switch o := obj.(type) {
	case *fsm.LoadBalancer:
		return renderLoadBalancer(v, o, admin)
	case *fsm.Listener:
		return renderListener(v, o)
	case *fsm.Pool:
		return renderPool(v, o)
	case *fsm.Member:
		return renderMember(o)
	case *fsm.HealthMonitor:
		return renderHealthMonitor(o)
	case *fsm.L7Policy:
		return renderL7Policy(v, o)
	case *fsm.L7Rule:
		return renderL7Rule(o)
	}
	return nil
}

// parentOf is the id of the path parent an object belongs to.
func parentOf(obj any) string {
	switch o := obj.(type) {
	case *fsm.Member:
		return o.PoolID
	case *fsm.L7Rule:
		return o.L7PolicyID
	}
	return ""
}

// Attribute specs: Post/Put say what a request may set; the rest are the
// rendered attributes, valid for filters, fields and sorting.
var (
	lbCommonAttrs = map[string]attrSpec{
		"id": {Kind: attrString}, "name": {Kind: attrString, Post: true, Put: true, MaxLen: 255, Nullable: true},
		"description":         {Kind: attrString, Post: true, Put: true, MaxLen: 255, Nullable: true},
		"admin_state_up":      {Kind: attrBool, Post: true, Put: true},
		"project_id":          {Kind: attrString, Post: true, MaxLen: 255},
		"tenant_id":           {Kind: attrString, Post: true, MaxLen: 255},
		"provisioning_status": {Kind: attrString}, "operating_status": {Kind: attrString},
		"created_at": {Kind: attrString}, "updated_at": {Kind: attrString},
		"tags": {Kind: attrStrings, Post: true, Put: true},
	}
	loadBalancerAttrs = merged(lbCommonAttrs, map[string]attrSpec{
		"vip_address": {Kind: attrString, Post: true}, "vip_port_id": {Kind: attrString, Post: true},
		"vip_subnet_id": {Kind: attrString, Post: true}, "vip_network_id": {Kind: attrString, Post: true},
		"vip_qos_policy_id": {Kind: attrString, Post: true, Put: true, Nullable: true},
		"provider":          {Kind: attrString, Post: true}, "flavor_id": {Kind: attrString, Post: true, Nullable: true},
		"availability_zone": {Kind: attrString, Post: true, Nullable: true},
		"listeners":         {Kind: attrStrings}, "pools": {Kind: attrStrings}, "additional_vips": {Kind: attrStrings},
		"neutrino:status_reason": {Kind: attrString}, "neutrino:gateway_chassis": {Kind: attrStrings},
		"neutrino:active_chassis": {Kind: attrString}, "neutrino:config_revision": {Kind: attrInt},
	})
	listenerAttrs = merged(lbCommonAttrs, map[string]attrSpec{
		"protocol": {Kind: attrString, Post: true}, "protocol_port": {Kind: attrInt, Post: true},
		"loadbalancer_id":           {Kind: attrString, Post: true},
		"connection_limit":          {Kind: attrInt, Post: true, Put: true},
		"default_pool_id":           {Kind: attrString, Post: true, Put: true, Nullable: true},
		"default_tls_container_ref": {Kind: attrString, Post: true, Put: true, Nullable: true},
		"sni_container_refs":        {Kind: attrStrings, Post: true, Put: true},
		"timeout_client_data":       {Kind: attrInt, Post: true, Put: true, Nullable: true},
		"timeout_member_connect":    {Kind: attrInt, Post: true, Put: true, Nullable: true},
		"timeout_member_data":       {Kind: attrInt, Post: true, Put: true, Nullable: true},
		"timeout_tcp_inspect":       {Kind: attrInt, Post: true, Put: true, Nullable: true},
		"allowed_cidrs":             {Kind: attrStrings, Post: true, Put: true, Nullable: true},
		"loadbalancers":             {Kind: attrStrings}, "l7policies": {Kind: attrStrings},
	})
	poolAttrs = merged(lbCommonAttrs, map[string]attrSpec{
		"protocol": {Kind: attrString, Post: true}, "lb_algorithm": {Kind: attrString, Post: true, Put: true},
		"loadbalancer_id": {Kind: attrString, Post: true}, "listener_id": {Kind: attrString, Post: true},
		"loadbalancers": {Kind: attrStrings}, "listeners": {Kind: attrStrings}, "members": {Kind: attrStrings},
		"healthmonitor_id": {Kind: attrString}, "tls_enabled": {Kind: attrBool, Post: true, Put: true},
	})
	memberAttrs = merged(lbCommonAttrs, map[string]attrSpec{
		"address": {Kind: attrString, Post: true}, "protocol_port": {Kind: attrInt, Post: true},
		"weight": {Kind: attrInt, Post: true, Put: true}, "backup": {Kind: attrBool, Post: true, Put: true},
		"subnet_id":       {Kind: attrString, Post: true, Nullable: true},
		"monitor_address": {Kind: attrString, Post: true, Put: true, Nullable: true},
		"monitor_port":    {Kind: attrInt, Post: true, Put: true, Nullable: true},
		"pool_id":         {Kind: attrString},
	})
	healthMonitorAttrs = merged(lbCommonAttrs, map[string]attrSpec{
		"type": {Kind: attrString, Post: true}, "pool_id": {Kind: attrString, Post: true},
		"delay": {Kind: attrInt, Post: true, Put: true}, "timeout": {Kind: attrInt, Post: true, Put: true},
		"max_retries":      {Kind: attrInt, Post: true, Put: true},
		"max_retries_down": {Kind: attrInt, Post: true, Put: true},
		"http_method":      {Kind: attrString, Post: true, Put: true, Nullable: true},
		"url_path":         {Kind: attrString, Post: true, Put: true, Nullable: true},
		"expected_codes":   {Kind: attrString, Post: true, Put: true, Nullable: true},
		"http_version":     {Kind: attrString, Post: true, Put: true, Nullable: true},
		"domain_name":      {Kind: attrString, Post: true, Put: true, Nullable: true},
		"pools":            {Kind: attrStrings},
	})
	l7PolicyAttrs = merged(lbCommonAttrs, map[string]attrSpec{
		"listener_id": {Kind: attrString, Post: true}, "action": {Kind: attrString, Post: true, Put: true},
		"position":           {Kind: attrInt, Post: true, Put: true},
		"redirect_pool_id":   {Kind: attrString, Post: true, Put: true, Nullable: true},
		"redirect_url":       {Kind: attrString, Post: true, Put: true, Nullable: true},
		"redirect_prefix":    {Kind: attrString, Post: true, Put: true, Nullable: true},
		"redirect_http_code": {Kind: attrInt, Post: true, Put: true, Nullable: true},
		"rules":              {Kind: attrStrings},
	})
	l7RuleAttrs = merged(lbCommonAttrs, map[string]attrSpec{
		"type": {Kind: attrString, Post: true, Put: true}, "compare_type": {Kind: attrString, Post: true, Put: true},
		"key": {Kind: attrString, Post: true, Put: true, Nullable: true}, "value": {Kind: attrString, Post: true, Put: true},
		"invert": {Kind: attrBool, Post: true, Put: true},
	})
)

var (
	kindLB       = &lbKind{table: fsm.TableLBLoadBalancers, singular: "loadbalancer", plural: "loadbalancers", attrs: loadBalancerAttrs}
	kindListener = &lbKind{table: fsm.TableLBListeners, singular: "listener", plural: "listeners", attrs: listenerAttrs}
	kindPool     = &lbKind{table: fsm.TableLBPools, singular: "pool", plural: "pools", attrs: poolAttrs}
	kindMember   = &lbKind{table: fsm.TableLBMembers, singular: "member", plural: "members", attrs: memberAttrs, parent: "pool_id"}
	kindHM       = &lbKind{table: fsm.TableLBHealthMonitors, singular: "healthmonitor", plural: "healthmonitors", attrs: healthMonitorAttrs}
	kindL7Policy = &lbKind{table: fsm.TableLBL7Policies, singular: "l7policy", plural: "l7policies", attrs: l7PolicyAttrs}
	kindL7Rule   = &lbKind{table: fsm.TableLBL7Rules, singular: "rule", plural: "rules", attrs: l7RuleAttrs, parent: "l7policy_id"}
)

// path is the collection's path under /v2/lbaas for a parent id.
func (k *lbKind) path(parent string) string {
	switch k {
	case kindMember:
		return "/pools/" + parent + "/members"
	case kindL7Rule:
		return "/l7policies/" + parent + "/rules"
	}
	return "/" + k.plural
}

func (s *Server) lbaasRoutes() {
	for _, k := range []*lbKind{kindLB, kindListener, kindPool, kindHM, kindL7Policy} {
		s.octavia("GET", k.path(""), s.lbList(k))
		s.octavia("GET", k.path("")+"/{id}", s.lbShow(k))
		s.octavia("DELETE", k.path("")+"/{id}", s.lbDelete(k))
	}
	s.octavia("GET", "/pools/{pool_id}/members", s.lbList(kindMember))
	s.octavia("GET", "/pools/{pool_id}/members/{id}", s.lbShow(kindMember))
	s.octavia("DELETE", "/pools/{pool_id}/members/{id}", s.lbDelete(kindMember))
	s.octavia("GET", "/l7policies/{l7policy_id}/rules", s.lbList(kindL7Rule))
	s.octavia("GET", "/l7policies/{l7policy_id}/rules/{id}", s.lbShow(kindL7Rule))
	s.octavia("DELETE", "/l7policies/{l7policy_id}/rules/{id}", s.lbDelete(kindL7Rule))

	s.octavia("POST", "/loadbalancers", s.createLoadBalancer)
	s.octavia("PUT", "/loadbalancers/{id}", s.updateLoadBalancer)
	s.octavia("GET", "/loadbalancers/{id}/status", s.loadBalancerStatus)
	s.octavia("PUT", "/loadbalancers/{id}/failover", s.failoverLoadBalancer)
	s.octavia("POST", "/listeners", s.lbCreate(kindListener))
	s.octavia("PUT", "/listeners/{id}", s.lbUpdate(kindListener))
	s.octavia("POST", "/pools", s.lbCreate(kindPool))
	s.octavia("PUT", "/pools/{id}", s.lbUpdate(kindPool))
	s.octavia("POST", "/pools/{pool_id}/members", s.lbCreate(kindMember))
	s.octavia("PUT", "/pools/{pool_id}/members", s.batchUpdateMembers)
	s.octavia("PUT", "/pools/{pool_id}/members/{id}", s.lbUpdate(kindMember))
	s.octavia("POST", "/healthmonitors", s.lbCreate(kindHM))
	s.octavia("PUT", "/healthmonitors/{id}", s.lbUpdate(kindHM))
	s.octavia("POST", "/l7policies", s.lbCreate(kindL7Policy))
	s.octavia("PUT", "/l7policies/{id}", s.lbUpdate(kindL7Policy))
	s.octavia("POST", "/l7policies/{l7policy_id}/rules", s.lbCreate(kindL7Rule))
	s.octavia("PUT", "/l7policies/{l7policy_id}/rules/{id}", s.lbUpdate(kindL7Rule))
	s.octavia("GET", "/providers", s.lbProviders)

	s.mux.HandleFunc("GET /v2/{$}", s.octaviaVersions)
	s.mux.HandleFunc("GET /v2", s.octaviaVersions)
	s.neutron("PUT /v1/lbaas/loadbalancers/{id}/agent-status", s.lbAgentStatus)
}

// octaviaVersions answers Octavia's version discovery on its /v2 root.
func (s *Server) octaviaVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []map[string]any{{
		"id": "v2.0", "status": "CURRENT", "updated": "2026-12-06T00:00:00Z",
		"links": []map[string]string{{"rel": "self", "href": scheme(r) + "://" + r.Host + "/v2"}},
	}}})
}

func (s *Server) lbProviders(w http.ResponseWriter, r *http.Request) error {
	s.view(w)
	writeJSON(w, http.StatusOK, map[string]any{"providers": []map[string]string{
		{"name": fsm.LBProvider, "description": "HAProxy on Neutrino gateway chassis"}}})
	return nil
}

// lbVisible: the caller may see the object (its project's, or admin).
func lbVisible(ident Identity, obj any) bool {
	m, ok := obj.(fsm.Object)
	return ok && (ident.Admin || m.GetMeta().ProjectID == ident.ProjectID)
}

// lbLookup returns an object of the kind the caller may see, checking its
// path parent, or Octavia's 404.
func lbLookup(v *fsm.View, ident Identity, k *lbKind, id, parent string) (any, error) {
	obj := v.Object(k.table, id)
	if obj == nil || !lbVisible(ident, obj) || (k.parent != "" && parentOf(obj) != parent) {
		return nil, lbNotFound(k.table, id)
	}
	return obj, nil
}

// lbParentCheck checks that the path parent of a child collection exists
// and is visible.
func lbParentCheck(v *fsm.View, ident Identity, k *lbKind, parent string) error {
	switch k {
	case kindMember:
		_, err := lbLookup(v, ident, kindPool, parent, "")
		return err
	case kindL7Rule:
		_, err := lbLookup(v, ident, kindL7Policy, parent, "")
		return err
	}
	return nil
}

func (s *Server) lbList(k *lbKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		lq, err := parseListQuery(r.URL.Query(), k.plural, k.attrs)
		if err != nil {
			return err
		}
		ident := identityFrom(r.Context())
		v := s.view(w)
		parent := ""
		if k.parent != "" {
			parent = r.PathValue(k.parent)
			if err := lbParentCheck(v, ident, k, parent); err != nil {
				return err
			}
		}
		objs := []map[string]any{}
		for _, o := range v.Objects(k.table) {
			if lbVisible(ident, o) && (k.parent == "" || parentOf(o) == parent) {
				objs = append(objs, k.render(v, o, ident.Admin))
			}
		}
		return writeList(w, r, lq, k.plural, objs)
	}
}

func (s *Server) lbShow(k *lbKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		ident := identityFrom(r.Context())
		v := s.view(w)
		obj, err := lbLookup(v, ident, k, r.PathValue("id"), r.PathValue(k.parent))
		if err != nil {
			return err
		}
		return writeShow(w, r, k.singular, k.plural, k.attrs, k.render(v, obj, ident.Admin))
	}
}

// lbDelete deletes a child (PENDING_DELETE until the agent reports) or a
// load balancer (?cascade=true for one with children).
func (s *Server) lbDelete(k *lbKind) apiHandler {
	return func(w http.ResponseWriter, r *http.Request) error {
		ident := identityFrom(r.Context())
		v := s.fsm.State().Read()
		obj, err := lbLookup(v, ident, k, r.PathValue("id"), r.PathValue(k.parent))
		if err != nil {
			return err
		}
		id := obj.(fsm.Object).GetMeta().ID
		var rev uint64
		if k == kindLB {
			cascade := strings.EqualFold(r.URL.Query().Get("cascade"), "true")
			rev, err = s.propose(r.Context(), fsm.CmdLBDelete, fsm.LBDeleteRequest{ID: id, Cascade: cascade, At: now()})
		} else {
			rev, err = s.propose(r.Context(), fsm.CmdLBTreeChange, fsm.LBTreeChangeRequest{
				LoadBalancerID: fsm.LoadBalancerOf(obj), Delete: []fsm.LBRef{{Table: k.table, ID: id}}, At: now()})
		}
		if err != nil {
			return err
		}
		setRevision(w, rev)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) failoverLoadBalancer(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	if !ident.Admin {
		return forbidden("Policy does not allow this request to be performed.")
	}
	obj, err := lbLookup(s.fsm.State().Read(), ident, kindLB, r.PathValue("id"), "")
	if err != nil {
		return err
	}
	declare(r.Context(), &outcome{Status: http.StatusAccepted})
	rev, err := s.propose(r.Context(), fsm.CmdLBFailover, fsm.LBFailoverRequest{ID: obj.(*fsm.LoadBalancer).ID, At: now()})
	if err != nil {
		return err
	}
	setRevision(w, rev)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// loadBalancerStatus is Octavia's status tree: the load balancer, its
// listeners, each listener's pools (default and L7 redirect), each pool's
// members and health monitor.
func (s *Server) loadBalancerStatus(w http.ResponseWriter, r *http.Request) error {
	ident := identityFrom(r.Context())
	v := s.view(w)
	obj, err := lbLookup(v, ident, kindLB, r.PathValue("id"), "")
	if err != nil {
		return err
	}
	lb := obj.(*fsm.LoadBalancer)
	st := func(m *fsm.Meta, o any) map[string]any {
		ps, os := fsm.LBStatusOf(o)
		return map[string]any{"id": m.ID, "name": m.Name, "provisioning_status": ps, "operating_status": os}
	}
	pool := func(p *fsm.Pool) map[string]any {
		out := st(&p.Meta, p)
		members := []map[string]any{}
		for _, m := range v.MembersOfPool(p.ID) {
			mo := st(&m.Meta, m)
			mo["address"], mo["protocol_port"] = m.Address, m.ProtocolPort
			members = append(members, mo)
		}
		out["members"] = members
		if h := v.HealthMonitor(p.HealthMonitorID); h != nil {
			ho := st(&h.Meta, h)
			ho["type"] = h.Type
			out["health_monitor"] = ho
		}
		return out
	}
	listeners := []map[string]any{}
	for _, l := range v.ListenersOfLB(lb.ID) {
		lo := st(&l.Meta, l)
		var pids []string
		if l.DefaultPoolID != "" {
			pids = append(pids, l.DefaultPoolID)
		}
		for _, p := range v.L7PoliciesOfListener(l.ID) {
			if p.RedirectPoolID != "" && !slices.Contains(pids, p.RedirectPoolID) {
				pids = append(pids, p.RedirectPoolID)
			}
		}
		pools := []map[string]any{}
		for _, id := range pids {
			if p := v.LBPool(id); p != nil {
				pools = append(pools, pool(p))
			}
		}
		lo["pools"] = pools
		listeners = append(listeners, lo)
	}
	lo := st(&lb.Meta, lb)
	lo["listeners"] = listeners
	writeJSON(w, http.StatusOK, map[string]any{"statuses": map[string]any{"loadbalancer": lo}})
	return nil
}

// lbSubresource is Octavia's InvalidSubresource: a referenced Neutron
// object (subnet, network, port) the caller cannot use (400).
func lbSubresource(resource, id string) *apiError {
	return newError(http.StatusBadRequest, "InvalidSubresource", "%s %s not found.", resource, id)
}
