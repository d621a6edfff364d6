package northbound_test

import (
	"fmt"
	"net/url"
	"testing"

	"neutrino/northbound"
)

type netList struct {
	Networks []map[string]any    `json:"networks"`
	Links    []map[string]string `json:"networks_links"`
}

func names(nets []map[string]any) []string {
	var out []string
	for _, n := range nets {
		out = append(out, n["name"].(string))
	}
	return out
}

func TestNetworkLifecycle(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.createNetwork(map[string]any{"name": "blue", "tags": []string{"b", "a", "b"}}, nil)
	if n["provider:network_type"] != "vxlan" || n["mtu"] != float64(1450) || n["status"] != "ACTIVE" ||
		n["revision_number"] != float64(1) || n["project_id"] != "admin" || n["tenant_id"] != "admin" ||
		n["admin_state_up"] != true || n["port_security_enabled"] != true || n["created_at"] == "" {
		t.Fatalf("defaults: %v", n)
	}
	if seg := n["provider:segmentation_id"].(float64); seg < 1000 || seg > 1009 {
		t.Fatalf("segment %v outside the configured range", seg)
	}
	if fmt.Sprint(n["tags"]) != "[a b]" {
		t.Fatalf("tags %v", n["tags"])
	}
	id := n["id"].(string)

	var got struct {
		Network map[string]any `json:"network"`
	}
	if code := s.do("GET", "/v2.0/networks/"+id+"?fields=name&fields=mtu", nil, nil, &got); code != 200 || len(got.Network) != 2 || got.Network["name"] != "blue" {
		t.Fatalf("show with fields: %d %v", code, got.Network)
	}

	// If-Match with the current revision succeeds and bumps it.
	code, hdr := s.doRaw("PUT", "/v2.0/networks/"+id, map[string]string{"If-Match": "revision_number=1"},
		map[string]any{"network": map[string]any{"name": "navy", "mtu": 1400}}, &got)
	if code != 200 || got.Network["name"] != "navy" || got.Network["mtu"] != float64(1400) || got.Network["revision_number"] != float64(2) {
		t.Fatalf("update: %d %v", code, got.Network)
	}
	if hdr.Get("X-Neutrino-Revision") == "" {
		t.Fatal("write without revision header")
	}

	// Tags sub-resource.
	if code := s.do("PUT", "/v2.0/networks/"+id+"/tags/c", nil, nil, nil); code != 201 {
		t.Fatalf("add tag: %d", code)
	}
	if code := s.do("GET", "/v2.0/networks/"+id+"/tags/c", nil, nil, nil); code != 204 {
		t.Fatalf("check tag: %d", code)
	}
	var tags struct {
		Tags []string `json:"tags"`
	}
	if code := s.do("PUT", "/v2.0/networks/"+id+"/tags", nil, map[string]any{"tags": []string{"x", "y"}}, &tags); code != 200 || fmt.Sprint(tags.Tags) != "[x y]" {
		t.Fatalf("replace tags: %d %v", code, tags.Tags)
	}
	if code := s.do("DELETE", "/v2.0/networks/"+id+"/tags/x", nil, nil, nil); code != 204 {
		t.Fatalf("remove tag: %d", code)
	}
	s.do("GET", "/v2.0/networks/"+id+"/tags", nil, nil, &tags)
	if fmt.Sprint(tags.Tags) != "[y]" {
		t.Fatalf("tags after remove: %v", tags.Tags)
	}
	if code := s.do("DELETE", "/v2.0/networks/"+id+"/tags", nil, nil, nil); code != 204 {
		t.Fatalf("clear tags: %d", code)
	}

	if code := s.do("DELETE", "/v2.0/networks/"+id, nil, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := s.do("GET", "/v2.0/networks/"+id, nil, nil, nil); code != 404 {
		t.Fatalf("show after delete: %d", code)
	}
}

func TestNetworkListQueries(t *testing.T) {
	s := newAPIServer(t, nil)
	var bulk struct {
		Networks []map[string]any `json:"networks"`
	}
	var objs []any
	for i, name := range []string{"n-c", "n-a", "n-e", "n-b", "n-d"} {
		tags := []string{"all"}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		objs = append(objs, map[string]any{"name": name, "tags": tags, "shared": i == 1})
	}
	if code := s.do("POST", "/v2.0/networks", nil, map[string]any{"networks": objs}, &bulk); code != 201 || len(bulk.Networks) != 5 {
		t.Fatalf("bulk create: %d %d", code, len(bulk.Networks))
	}
	list := func(q string) netList {
		t.Helper()
		var l netList
		if code := s.do("GET", "/v2.0/networks?"+q, nil, nil, &l); code != 200 {
			t.Fatalf("list %s: %d", q, code)
		}
		return l
	}
	if got := names(list("name=n-a&name=n-d&sort_key=name").Networks); fmt.Sprint(got) != "[n-a n-d]" {
		t.Fatalf("OR filter: %v", got)
	}
	if got := names(list("shared=True").Networks); fmt.Sprint(got) != "[n-a]" {
		t.Fatalf("bool filter: %v", got)
	}
	if got := names(list("tags=even&sort_key=name").Networks); fmt.Sprint(got) != "[n-c n-d n-e]" {
		t.Fatalf("tags filter: %v", got)
	}
	if got := names(list("not-tags-any=even&sort_key=name&sort_dir=desc").Networks); fmt.Sprint(got) != "[n-b n-a]" {
		t.Fatalf("not-tags-any + desc: %v", got)
	}
	if got := list("fields=id&fields=name").Networks[0]; len(got) != 2 {
		t.Fatalf("fields: %v", got)
	}

	// Paging by name with limit 2 walks the whole set once, in order.
	var seen []string
	q := "sort_key=name&limit=2"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		l := list(q)
		seen = append(seen, names(l.Networks)...)
		next := ""
		for _, link := range l.Links {
			if link["rel"] == "next" {
				next = link["href"]
			}
		}
		if next == "" {
			break
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		q = u.RawQuery
	}
	if fmt.Sprint(seen) != "[n-a n-b n-c n-d n-e]" {
		t.Fatalf("paged: %v", seen)
	}
}

func TestNetworkProjectScoping(t *testing.T) {
	s := newAPIServer(t, nil)
	alice := map[string]string{"X-Project-Id": "alice", "X-Roles": "member"}
	bob := map[string]string{"X-Project-Id": "bob", "X-Roles": "member"}
	an := s.createNetwork(map[string]any{"name": "alice-net"}, alice)
	s.createNetwork(map[string]any{"name": "bob-net"}, bob)
	s.createNetwork(map[string]any{"name": "public", "shared": true}, nil)
	s.createNetwork(map[string]any{"name": "ext", "router:external": true}, nil)

	var l netList
	s.do("GET", "/v2.0/networks?sort_key=name", alice, nil, &l)
	if got := names(l.Networks); fmt.Sprint(got) != "[alice-net ext public]" {
		t.Fatalf("alice sees %v", got)
	}
	s.do("GET", "/v2.0/networks", nil, nil, &l)
	if len(l.Networks) != 4 {
		t.Fatalf("admin sees %d networks", len(l.Networks))
	}
	id := an["id"].(string)
	for _, m := range []string{"GET", "DELETE"} {
		if code := s.do(m, "/v2.0/networks/"+id, bob, nil, nil); code != 404 {
			t.Fatalf("bob %s alice's network: %d", m, code)
		}
	}
	if code := s.do("PUT", "/v2.0/networks/"+id, bob, map[string]any{"network": map[string]any{"name": "mine"}}, nil); code != 404 {
		t.Fatalf("bob renames alice's network: %d", code)
	}
	if code := s.do("DELETE", "/v2.0/networks/"+id, alice, nil, nil); code != 204 {
		t.Fatalf("alice deletes her network: %d", code)
	}
}

func TestSegmentAllocation(t *testing.T) {
	s := newAPIServer(t, nil)
	// The VNI range holds 10 ids: 10 networks get distinct ones, the 11th
	// finds none and changes nothing.
	seen := map[float64]bool{}
	for i := 0; i < 10; i++ {
		n := s.createNetwork(map[string]any{"name": fmt.Sprint("v", i)}, nil)
		seg := n["provider:segmentation_id"].(float64)
		if seen[seg] {
			t.Fatalf("segment %v allocated twice", seg)
		}
		seen[seg] = true
	}
	before := s.revision()
	var ne neutronError
	if code := s.do("POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"name": "one-too-many"}}, &ne); code != 503 || ne.NeutronError.Type != "NoNetworkAvailable" {
		t.Fatalf("exhausted range: %d %v", code, ne)
	}
	if s.revision() != before {
		t.Fatal("failed allocation changed state")
	}
	// VLAN allocation from the physnet's range; a flat network owns its physnet.
	v := s.createNetwork(map[string]any{"provider:network_type": "vlan", "provider:physical_network": "physnet1"}, nil)
	if seg := v["provider:segmentation_id"]; seg != float64(100) && seg != float64(101) {
		t.Fatalf("vlan segment %v", seg)
	}
	f := s.createNetwork(map[string]any{"provider:network_type": "flat", "provider:physical_network": "external", "router:external": true}, nil)
	if f["provider:segmentation_id"] != nil || f["mtu"] != float64(1500) {
		t.Fatalf("flat network %v", f)
	}
	if code := s.do("POST", "/v2.0/networks", nil, map[string]any{"network": map[string]any{"provider:network_type": "flat", "provider:physical_network": "external"}}, &ne); code != 409 || ne.NeutronError.Type != "FlatNetworkInUse" {
		t.Fatalf("second flat network: %d %v", code, ne)
	}
}

func TestTokenAuth(t *testing.T) {
	s := newAPIServer(t, func(c *northbound.Config) {
		c.AuthStrategy = northbound.AuthToken
		c.Tokens = map[string]northbound.TokenEntry{
			"tok-admin": {ProjectID: "ops", Roles: []string{"admin"}},
			"tok-alice": {ProjectID: "alice", Roles: []string{"member"}},
		}
	})
	var ne neutronError
	for _, hdr := range []map[string]string{nil, {"X-Auth-Token": "wrong"}, {"X-Project-Id": "alice"}} {
		if code := s.do("GET", "/v2.0/networks", hdr, nil, &ne); code != 401 || ne.NeutronError.Type != "HTTPUnauthorized" {
			t.Fatalf("%v: got %d %v, want 401", hdr, code, ne)
		}
	}
	n := s.createNetwork(map[string]any{"name": "a"}, map[string]string{"X-Auth-Token": "tok-alice"})
	if n["project_id"] != "alice" {
		t.Fatalf("token's project not used: %v", n["project_id"])
	}
	// The token decides the project: X-Project-Id cannot override it.
	var l netList
	s.do("GET", "/v2.0/networks", map[string]string{"X-Auth-Token": "tok-alice", "X-Project-Id": "ops"}, nil, &l)
	if len(l.Networks) != 1 {
		t.Fatalf("alice sees %d networks", len(l.Networks))
	}
	if code := s.do("POST", "/v2.0/networks", map[string]string{"X-Auth-Token": "tok-alice"},
		map[string]any{"network": map[string]any{"shared": true}}, &ne); code != 403 {
		t.Fatalf("member creates shared network: %d", code)
	}
	s.createNetwork(map[string]any{"name": "b", "shared": true}, map[string]string{"X-Auth-Token": "tok-admin"})
}
