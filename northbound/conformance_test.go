package northbound_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestUnknownFieldsIgnored: names in ?fields= that are no attribute are
// ignored, as Neutron does, on lists and shows; known names still select.
func TestUnknownFieldsIgnored(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "fields-net"}, nil)
	id := n["id"].(string)
	l := s.list("/v2.0/networks?fields=id&fields=security_group_ids&fields=name", nil, "networks")
	if len(l) != 1 || len(l[0]) != 2 || l[0]["id"] != id || l[0]["name"] != "fields-net" {
		t.Fatalf("list with an unknown field: want only id and name, got %v", l)
	}
	var show map[string]map[string]any
	if code := s.do("GET", "/v2.0/networks/"+id+"?fields=colour&fields=mtu", nil, nil, &show); code != 200 {
		t.Fatalf("show with an unknown field: %d", code)
	}
	if got := show["network"]; len(got) != 1 || got["mtu"] == nil {
		t.Fatalf("show with an unknown field: want only mtu, got %v", got)
	}
	// Only unknown names: nothing known was asked for, so nothing is shown.
	if l := s.list("/v2.0/networks?fields=colour", nil, "networks"); len(l) != 1 || len(l[0]) != 0 {
		t.Fatalf("list with only unknown fields: %v", l)
	}
}

// TestPortListLongCLI runs `openstack port list --long`, which asks for
// fields Neutron does not have (security_group_ids): it must work.
func TestPortListLongCLI(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatalf("the openstack CLI is not installed: %v", err)
	}
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "cli-net"}, nil)
	s.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.9.0.0/24", "ip_version": 4}, nil)
	p := s.create("ports", "port", map[string]any{"network_id": n["id"], "name": "cli-port"}, nil)
	var rows []map[string]any
	cliJSON(t, s, &rows, "port", "list", "--long")
	if len(rows) != 1 {
		t.Fatalf("port list --long: want 1 row, got %v", rows)
	}
	row := rows[0]
	ip := p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	fixed, _ := json.Marshal(row["Fixed IP Addresses"])
	if row["ID"] != p["id"] || row["Name"] != "cli-port" || row["MAC Address"] != p["mac_address"] ||
		!strings.Contains(string(fixed), ip) {
		t.Fatalf("port list --long: row %v does not show port %v", row, p)
	}
	if _, ok := row["Security Groups"]; !ok {
		t.Fatalf("port list --long: no Security Groups column in %v", row)
	}
}

// TestMethodNotAllowed: a known collection or member asked with a method it
// does not support is 405 with an Allow header, in Neutron's error format;
// an unknown path stays 404.
func TestMethodNotAllowed(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "m"}, nil)
	before := s.revision()
	cases := []struct {
		method, path string
		want         int
		allow        []string
	}{
		{"PUT", "/v2.0/networks", 405, []string{"GET", "POST"}},
		{"DELETE", "/v2.0/ports", 405, []string{"GET", "POST"}},
		{"POST", "/v2.0/networks/" + n["id"].(string), 405, []string{"GET", "PUT", "DELETE"}},
		{"PATCH", "/v2.0/subnets/6f1e4a4c-0000-4000-8000-000000000000", 405, []string{"GET", "PUT", "DELETE"}},
		{"POST", "/v2.0/extensions", 405, []string{"GET"}},
		{"GET", "/v2.0/no-such-things", 404, nil},
		{"PUT", "/v2.0/no-such-things/x", 404, nil},
	}
	for _, tc := range cases {
		var ne neutronError
		code, h := s.doRaw(tc.method, tc.path, nil, nil, &ne)
		if code != tc.want || ne.NeutronError.Message == "" {
			t.Fatalf("%s %s: got %d %+v, want %d", tc.method, tc.path, code, ne.NeutronError, tc.want)
		}
		allow := h.Get("Allow")
		if tc.want == 405 {
			if ne.NeutronError.Type != "HTTPMethodNotAllowed" {
				t.Fatalf("%s %s: type %q", tc.method, tc.path, ne.NeutronError.Type)
			}
			got := map[string]bool{}
			for _, m := range strings.Split(allow, ",") {
				got[strings.TrimSpace(m)] = true
			}
			for _, m := range tc.allow {
				if !got[m] {
					t.Fatalf("%s %s: Allow %q lacks %s", tc.method, tc.path, allow, m)
				}
			}
			if got[tc.method] {
				t.Fatalf("%s %s: Allow %q names the refused method", tc.method, tc.path, allow)
			}
		} else if allow != "" {
			t.Fatalf("%s %s: 404 with Allow %q", tc.method, tc.path, allow)
		}
	}
	if after := s.revision(); after != before {
		t.Fatalf("revision moved from %d to %d", before, after)
	}
}

// TestMarkerNotFound: a marker naming no object the caller can see is 404
// like Neutron's paging lookup of the marker, not a list from the start.
func TestMarkerNotFound(t *testing.T) {
	s := newAPIServer(t, nil)
	a := s.create("networks", "network", map[string]any{"name": "a"}, nil)
	s.create("networks", "network", map[string]any{"name": "b"}, nil)
	missing := "6f1e4a4c-0000-4000-8000-000000000000"
	for _, tc := range []struct{ path, typ string }{
		{"/v2.0/networks?limit=1&marker=" + missing, "NetworkNotFound"},
		{"/v2.0/networks?marker=" + missing, "NetworkNotFound"},
		{"/v2.0/ports?limit=1&marker=" + missing, "PortNotFound"},
		{"/v2.0/security-groups?limit=1&page_reverse=True&marker=" + missing, "SecurityGroupNotFound"},
	} {
		var ne neutronError
		if code := s.do("GET", tc.path, nil, nil, &ne); code != 404 || ne.NeutronError.Type != tc.typ ||
			!strings.Contains(ne.NeutronError.Message, missing) {
			t.Fatalf("GET %s: got %d %+v, want 404 %s", tc.path, code, ne.NeutronError, tc.typ)
		}
	}
	// Another project's network is no marker for a member either.
	member := map[string]string{"X-Project-Id": "someone-else", "X-Roles": "member"}
	var ne neutronError
	if code := s.do("GET", "/v2.0/networks?limit=1&marker="+a["id"].(string), member, nil, &ne); code != 404 {
		t.Fatalf("member with an invisible marker: %d %+v", code, ne.NeutronError)
	}
	// A marker that exists still pages.
	after := 0
	for _, o := range s.list("/v2.0/networks", nil, "networks") {
		if o["id"].(string) > a["id"].(string) {
			after++
		}
	}
	if l := s.list("/v2.0/networks?limit=5&marker="+a["id"].(string), nil, "networks"); len(l) != after {
		t.Fatalf("page after an existing marker: want %d networks, got %v", after, l)
	}
}

// logIndex is the server's Raft commit index: a refused request must not
// have appended anything (no command proposed, no retries).
func (s *apiServer) logIndex() uint64 {
	s.t.Helper()
	var st struct {
		CommitIndex uint64 `json:"commit_index"`
	}
	if code := s.do("GET", "/v1/cluster", nil, nil, &st); code != 200 {
		s.t.Fatalf("cluster status: %d", code)
	}
	return st.CommitIndex
}

// unchanged fails the test when a refused request moved the state's
// revision or the Raft log.
func (s *apiServer) unchanged(what string, rev, index uint64) {
	s.t.Helper()
	if r, i := s.revision(), s.logIndex(); r != rev || i != index {
		s.t.Fatalf("%s: revision %d -> %d, commit index %d -> %d, want both unchanged", what, rev, r, index, i)
	}
}

// TestInvalidUTF8Refused: a body whose strings are not valid UTF-8 (raw
// bytes, or a JSON escape naming a lone surrogate) is a 400 before
// anything is written, on every resource and on updates; a valid escaped
// pair is taken.
func TestInvalidUTF8Refused(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "utf8"}, nil)
	id := n["id"].(string)
	rev, index := s.revision(), s.logIndex()
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v2.0/networks", "{\"network\": {\"name\": \"bad\xff\"}}"},
		{"POST", "/v2.0/networks", "{\"networks\": [{\"name\": \"ok\"}, {\"name\": \"\xc3\x28\"}]}"},
		{"POST", "/v2.0/networks", `{"network": {"name": "lone \ud800 high"}}`},
		{"POST", "/v2.0/networks", `{"network": {"name": "lone \udc00 low"}}`},
		{"POST", "/v2.0/networks", `{"network": {"name": "high then text \ud83dx"}}`},
		{"PUT", "/v2.0/networks/" + id, "{\"network\": {\"description\": \"\xed\xa0\x80\"}}"},
		{"POST", "/v2.0/security-groups", "{\"security_group\": {\"name\": \"sg\", \"description\": \"\xfe\"}}"},
		{"POST", "/v2.0/fwaas/firewall_rules", "{\"firewall_rule\": {\"name\": \"\x80\"}}"},
		{"PUT", "/v2.0/networks/" + id + "/tags", "{\"tags\": [\"\xff\"]}"},
	} {
		var ne neutronError
		if code, _ := s.doRaw(tc.method, tc.path, nil, tc.body, &ne); code != 400 || ne.NeutronError.Type != "MalformedRequestBody" {
			t.Fatalf("%s %s %q: got %d %+v, want 400 MalformedRequestBody", tc.method, tc.path, tc.body, code, ne.NeutronError)
		}
		s.unchanged(tc.method+" "+tc.path, rev, index)
	}
	// Octavia's API answers in its own format.
	var fault map[string]any
	if code, _ := s.doRaw("POST", "/v2/lbaas/loadbalancers", nil, "{\"loadbalancer\": {\"name\": \"\xff\"}}", &fault); code != 400 ||
		!strings.Contains(fmt.Sprint(fault["faultstring"]), "UTF-8") {
		t.Fatalf("Octavia create with invalid UTF-8: %d %v", code, fault)
	}
	s.unchanged("Octavia create", rev, index)
	if l := s.list("/v2.0/networks", nil, "networks"); len(l) != 1 || l[0]["description"] != "" {
		t.Fatalf("refused writes left something behind: %v", l)
	}
	// A surrogate pair is one valid character; an escaped backslash before
	// "ud800" is no escape of a surrogate at all.
	var out map[string]map[string]any
	if code, _ := s.doRaw("POST", "/v2.0/networks", nil, `{"network": {"name": "smile \ud83d\ude00", "description": "\\ud800"}}`, &out); code != 201 ||
		out["network"]["name"] != "smile \U0001F600" || out["network"]["description"] != `\ud800` {
		t.Fatalf("valid escapes: %d %v", code, out)
	}
}

// TestSubnetIPVersionRequired: Neutron requires ip_version on a subnet
// create and does not infer it from the CIDR; a bulk with one item
// missing it creates nothing. The openstack CLI sends it by default.
func TestSubnetIPVersionRequired(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "ipv"}, nil)
	rev, index := s.revision(), s.logIndex()
	const want = "Failed to parse request. Required attribute 'ip_version' not specified"
	for _, body := range []map[string]any{
		{"subnet": map[string]any{"network_id": n["id"], "cidr": "10.8.0.0/24"}},
		{"subnet": map[string]any{"network_id": n["id"], "cidr": "fd00:8::/64"}},
		{"subnets": []any{map[string]any{"network_id": n["id"], "cidr": "10.8.1.0/24", "ip_version": 4},
			map[string]any{"network_id": n["id"], "cidr": "10.8.2.0/24"}}},
	} {
		var ne neutronError
		if code := s.do("POST", "/v2.0/subnets", nil, body, &ne); code != 400 || ne.NeutronError.Type != "HTTPBadRequest" ||
			ne.NeutronError.Message != want {
			t.Fatalf("subnet %v without ip_version: %d %+v", body, code, ne.NeutronError)
		}
		s.unchanged("subnet without ip_version", rev, index)
	}
	if l := s.list("/v2.0/subnets", nil, "subnets"); len(l) != 0 {
		t.Fatalf("subnets left behind: %v", l)
	}
	var sub map[string]any
	cliJSON(t, s, &sub, "subnet", "create", "--network", n["id"].(string), "--subnet-range", "10.8.3.0/24", "cli-sub")
	if sub["ip_version"] != float64(4) || sub["cidr"] != "10.8.3.0/24" {
		t.Fatalf("openstack subnet create: %v", sub)
	}
}

// TestMemberAdminOnlyAttrsOnUpdate: what a member may not set on create it
// may not set on update either (403, nothing written), on its own objects;
// an admin may.
func TestMemberAdminOnlyAttrsOnUpdate(t *testing.T) {
	s := newAPIServer(t, nil)
	member := map[string]string{"X-Project-Id": "p-member", "X-Roles": "member"}
	ext, _ := externalNet(s, nil, "203.0.113.0/24")
	shared := s.create("networks", "network", map[string]any{"name": "shared", "shared": true}, nil)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": shared["id"], "cidr": "10.6.0.0/24"}, nil)
	n := s.create("networks", "network", map[string]any{"name": "mine"}, member)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.5.0.0/24"}, member)
	own := s.create("ports", "port", map[string]any{"network_id": n["id"]}, member)
	onShared := s.create("ports", "port", map[string]any{"network_id": shared["id"]}, member)
	rt := s.create("routers", "router", map[string]any{"name": "r"}, member)
	path := func(coll string, o map[string]any) string { return "/v2.0/" + coll + "/" + o["id"].(string) }
	cases := []struct {
		path, singular string
		attrs          map[string]any
	}{
		{path("networks", n), "network", map[string]any{"shared": true}},
		{path("networks", n), "network", map[string]any{"router:external": true}},
		{path("networks", n), "network", map[string]any{"provider:network_type": "vlan"}},
		{path("networks", n), "network", map[string]any{"provider:physical_network": "physnet1"}},
		{path("networks", n), "network", map[string]any{"provider:segmentation_id": 7}},
		{path("ports", own), "port", map[string]any{"binding:host_id": "compute-9"}},
		{path("ports", own), "port", map[string]any{"binding:profile": map[string]any{"k": "v"}}},
		// On another project's (shared) network: what only the network
		// owner may set.
		{path("ports", onShared), "port", map[string]any{"mac_address": "fa:16:3e:00:00:01"}},
		{path("ports", onShared), "port", map[string]any{"port_security_enabled": false}},
		{path("ports", onShared), "port", map[string]any{"allowed_address_pairs": []any{map[string]any{"ip_address": "10.6.0.99"}}}},
		{path("ports", onShared), "port", map[string]any{"device_owner": "network:dhcp"}},
		{path("routers", rt), "router", map[string]any{"distributed": true}},
		{path("routers", rt), "router", map[string]any{"ha": true}},
		{path("routers", rt), "router", map[string]any{"neutrino:gateway_chassis": []string{"gw-1"}}},
		{path("routers", rt), "router", map[string]any{"external_gateway_info": map[string]any{"network_id": ext["id"], "enable_snat": false}}},
	}
	rev, index := s.revision(), s.logIndex()
	for _, tc := range cases {
		var ne neutronError
		code := s.do("PUT", tc.path, member, map[string]any{tc.singular: tc.attrs}, &ne)
		if code != 403 || ne.NeutronError.Type != "PolicyNotAuthorized" {
			t.Fatalf("member PUT %s %v: got %d %+v, want 403", tc.path, tc.attrs, code, ne.NeutronError)
		}
		for k := range tc.attrs {
			if !strings.Contains(ne.NeutronError.Message, k) {
				t.Fatalf("member PUT %s %v: message %q does not name %s", tc.path, tc.attrs, ne.NeutronError.Message, k)
			}
		}
		s.unchanged("member PUT "+tc.path, rev, index)
	}
	// The same member may change what it owns otherwise, and an admin may
	// set what the member may not.
	inner := func(body map[string]any, singular string) map[string]any {
		o, _ := body[singular].(map[string]any)
		return o
	}
	if got := inner(s.put(path("networks", n), member, map[string]any{"network": map[string]any{"name": "renamed"}}), "network"); got["name"] != "renamed" {
		t.Fatalf("member rename: %v", got)
	}
	if got := inner(s.put(path("ports", onShared), nil, map[string]any{"port": map[string]any{"port_security_enabled": false, "security_groups": []string{}}}), "port"); got["port_security_enabled"] != false {
		t.Fatalf("admin port_security_enabled: %v", got)
	}
	if got := inner(s.put(path("networks", n), nil, map[string]any{"network": map[string]any{"shared": true}}), "network"); got["shared"] != true {
		t.Fatalf("admin shared: %v", got)
	}
	// Provider attributes cannot change, even for an admin (400, not 403).
	var ne neutronError
	if code := s.do("PUT", path("networks", n), nil, map[string]any{"network": map[string]any{"provider:segmentation_id": 7}}, &ne); code != 400 {
		t.Fatalf("admin provider update: %d %+v", code, ne.NeutronError)
	}
}

// TestBulkConflictsFailOnce: a bulk create whose items conflict with each
// other fails with Neutron's error before anything is proposed: no log
// entry, no retries, nothing created.
func TestBulkConflictsFailOnce(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "bulk"}, nil)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.4.0.0/24"}, nil)
	sg := s.create("security-groups", "security_group", map[string]any{"name": "bulk-sg"}, nil)
	port := func(kv ...any) map[string]any {
		m := map[string]any{"network_id": n["id"]}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	ip := func(a string) []any { return []any{map[string]any{"subnet_id": sub["id"], "ip_address": a}} }
	rule := map[string]any{"security_group_id": sg["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
		"port_range_min": 22, "port_range_max": 22}
	rulesBefore := len(s.list("/v2.0/security-group-rules", nil, "security_group_rules"))
	cases := []struct {
		name, collection string
		body             map[string]any
		code             int
		typ              string
	}{
		{"two ports, one fixed IP", "ports", map[string]any{"ports": []any{port("fixed_ips", ip("10.4.0.10")), port("fixed_ips", ip("10.4.0.10"))}},
			409, "IpAddressAlreadyAllocated"},
		{"two ports, one MAC", "ports", map[string]any{"ports": []any{port("mac_address", "fa:16:3e:12:34:56"), port("mac_address", "fa:16:3e:12:34:56")}},
			409, "MacAddressInUse"},
		{"a fixed IP and a MAC, one conflict", "ports", map[string]any{"ports": []any{port("name", "a"), port("fixed_ips", ip("10.4.0.20"), "name", "b"),
			port("fixed_ips", ip("10.4.0.20"), "mac_address", "fa:16:3e:12:34:57")}}, 409, "IpAddressAlreadyAllocated"},
		{"two networks, one VNI", "networks", map[string]any{"networks": []any{
			map[string]any{"name": "v1", "provider:network_type": "vxlan", "provider:segmentation_id": 4242},
			map[string]any{"name": "v2", "provider:network_type": "vxlan", "provider:segmentation_id": 4242}}},
			409, "TunnelIdInUse"},
		{"two identical rules", "security-group-rules", map[string]any{"security_group_rules": []any{rule, rule}},
			409, "SecurityGroupRuleExists"},
	}
	rev, index := s.revision(), s.logIndex()
	for _, tc := range cases {
		var ne neutronError
		if code := s.do("POST", "/v2.0/"+tc.collection, nil, tc.body, &ne); code != tc.code || ne.NeutronError.Type != tc.typ {
			t.Fatalf("%s: got %d %+v, want %d %s", tc.name, code, ne.NeutronError, tc.code, tc.typ)
		}
		s.unchanged(tc.name, rev, index)
	}
	if l := s.list("/v2.0/ports", nil, "ports"); len(l) != 0 {
		t.Fatalf("ports left behind: %v", l)
	}
	if l := s.list("/v2.0/networks", nil, "networks"); len(l) != 1 {
		t.Fatalf("networks left behind: %v", l)
	}
	if l := s.list("/v2.0/security-group-rules", nil, "security_group_rules"); len(l) != rulesBefore {
		t.Fatalf("rules left behind: %d, want %d", len(l), rulesBefore)
	}
	// Without the conflict the same bulk goes through in one entry.
	var out map[string][]map[string]any
	if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"ports": []any{port("fixed_ips", ip("10.4.0.10")), port("fixed_ips", ip("10.4.0.11"))}}, &out); code != 201 || len(out["ports"]) != 2 {
		t.Fatalf("bulk without conflict: %d %v", code, out)
	}
	if i := s.logIndex(); i != index+1 {
		t.Fatalf("bulk create took %d log entries, want 1", i-index)
	}
}
