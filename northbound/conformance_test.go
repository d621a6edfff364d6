package northbound_test

import (
	"encoding/json"
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
