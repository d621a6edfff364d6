package northbound_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"neutrino/northbound"
)

var (
	alice = map[string]string{"X-Project-Id": "alice", "X-Roles": "member"}
	bob   = map[string]string{"X-Project-Id": "bob", "X-Roles": "member"}
)

// create POSTs one object and returns it, failing the test unless 201.
func (s *apiServer) create(collection, singular string, body map[string]any, hdr map[string]string) map[string]any {
	s.t.Helper()
	var out map[string]map[string]any
	var ne neutronError
	code := s.do("POST", "/v2.0/"+collection, hdr, map[string]any{singular: body}, &out)
	if code != 201 {
		s.do("POST", "/v2.0/"+collection, hdr, map[string]any{singular: body}, &ne)
		s.t.Fatalf("create %s %v: status %d %+v", singular, body, code, ne.NeutronError)
	}
	return out[singular]
}

// ipVersionOf is the ip_version a subnet create must send for cidr.
func ipVersionOf(cidr string) int {
	if strings.Contains(cidr, ":") {
		return 6
	}
	return 4
}

func (s *apiServer) list(path string, hdr map[string]string, key string) []map[string]any {
	s.t.Helper()
	var out map[string]any
	if code := s.do("GET", path, hdr, nil, &out); code != 200 {
		s.t.Fatalf("GET %s: %d", path, code)
	}
	raw, _ := out[key].([]any)
	res := make([]map[string]any, 0, len(raw))
	for _, o := range raw {
		res = append(res, o.(map[string]any))
	}
	return res
}

func ids(objs []map[string]any) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o["id"].(string))
	}
	slices.Sort(out)
	return out
}

func fixedIP(p map[string]any, i int) (subnet, ip string) {
	f := p["fixed_ips"].([]any)[i].(map[string]any)
	return f["subnet_id"].(string), f["ip_address"].(string)
}

func TestSubnetLifecycle(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "n"}, nil)
	nid := n["id"].(string)
	sub := s.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.0.77/24", "ip_version": 4, "name": "s4",
		"dns_nameservers": []string{"8.8.8.8"}, "host_routes": []any{map[string]any{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}}}, nil)
	if sub["cidr"] != "10.0.0.0/24" || sub["gateway_ip"] != "10.0.0.1" || sub["enable_dhcp"] != true || sub["revision_number"] != float64(1) ||
		fmt.Sprint(sub["allocation_pools"]) != "[map[end:10.0.0.254 start:10.0.0.2]]" || fmt.Sprint(sub["dns_nameservers"]) != "[8.8.8.8]" ||
		fmt.Sprint(sub["host_routes"]) != "[map[destination:10.9.0.0/16 nexthop:10.0.0.254]]" || sub["ipv6_address_mode"] != nil {
		t.Fatalf("v4 defaults: %v", sub)
	}
	sid := sub["id"].(string)
	v6 := s.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "2001:db8:1::/64", "ip_version": 6,
		"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}, nil)
	if v6["gateway_ip"] != "2001:db8:1::1" || fmt.Sprint(v6["allocation_pools"]) != "[map[end:2001:db8:1:0:ffff:ffff:ffff:ffff start:2001:db8:1::2]]" {
		t.Fatalf("v6 defaults: %v", v6)
	}
	nogw := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": nid, "cidr": "192.168.0.0/30", "gateway_ip": nil,
		"allocation_pools": []any{map[string]any{"start": "192.168.0.2", "end": "192.168.0.2"}}}, nil)
	if nogw["gateway_ip"] != nil || nogw["ip_version"] != float64(4) {
		t.Fatalf("no gateway: %v", nogw)
	}
	// Overlap is fine on another network.
	n2 := s.create("networks", "network", map[string]any{"name": "n2"}, nil)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n2["id"], "cidr": "10.0.0.0/16"}, nil)

	var got map[string]map[string]any
	s.do("GET", "/v2.0/networks/"+nid, nil, nil, &got)
	if subs := got["network"]["subnets"].([]any); len(subs) != 3 || subs[0] != sid {
		t.Fatalf("network subnets: %v", got["network"]["subnets"])
	}
	if l := s.list("/v2.0/subnets?network_id="+nid+"&ip_version=6", nil, "subnets"); len(l) != 1 || l[0]["id"] != v6["id"] {
		t.Fatalf("filter: %v", l)
	}
	if l := s.list("/v2.0/subnets?cidr=10.0.0.0/24&fields=id&fields=cidr", nil, "subnets"); len(l) != 1 || len(l[0]) != 2 {
		t.Fatalf("fields: %v", l)
	}

	code := s.do("PUT", "/v2.0/subnets/"+sid, map[string]string{"If-Match": "revision_number=1"}, map[string]any{"subnet": map[string]any{
		"name": "renamed", "gateway_ip": "10.0.0.254", "enable_dhcp": false, "dns_nameservers": []string{},
		"allocation_pools": []any{map[string]any{"start": "10.0.0.10", "end": "10.0.0.100"}, map[string]any{"start": "10.0.0.2", "end": "10.0.0.5"}}}}, &got)
	u := got["subnet"]
	if code != 200 || u["name"] != "renamed" || u["gateway_ip"] != "10.0.0.254" || u["enable_dhcp"] != false || u["revision_number"] != float64(2) ||
		fmt.Sprint(u["allocation_pools"]) != "[map[end:10.0.0.5 start:10.0.0.2] map[end:10.0.0.100 start:10.0.0.10]]" ||
		fmt.Sprint(u["dns_nameservers"]) != "[]" || fmt.Sprint(u["host_routes"]) == "[]" {
		t.Fatalf("update: %d %v", code, u)
	}
	if code := s.do("PUT", "/v2.0/subnets/"+sid+"/tags/blue", nil, nil, nil); code != 201 {
		t.Fatalf("tag: %d", code)
	}
	if l := s.list("/v2.0/subnets?tags=blue", nil, "subnets"); len(l) != 1 {
		t.Fatalf("tag filter: %v", l)
	}
	if code := s.do("DELETE", "/v2.0/subnets/"+nogw["id"].(string), nil, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	// Deleting the network takes its subnets.
	if code := s.do("DELETE", "/v2.0/networks/"+nid, nil, nil, nil); code != 204 {
		t.Fatalf("delete network: %d", code)
	}
	if code := s.do("GET", "/v2.0/subnets/"+sid, nil, nil, nil); code != 404 {
		t.Fatalf("subnet outlived its network: %d", code)
	}
	if l := s.list("/v2.0/subnets", nil, "subnets"); len(l) != 1 {
		t.Fatalf("subnets left: %v", l)
	}
}

func TestPortLifecycle(t *testing.T) {
	s := newAPIServer(t, func(c *northbound.Config) { c.MACBase = "fa:16:3f" })
	n := s.create("networks", "network", map[string]any{"name": "n"}, nil)
	nid := n["id"].(string)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": nid, "cidr": "10.0.0.0/24"}, nil)
	sid := sub["id"].(string)
	v6 := s.create("subnets", "subnet", map[string]any{"ip_version": 6, "network_id": nid, "cidr": "2001:db8::/64", "ipv6_address_mode": "slaac"}, nil)

	p := s.create("ports", "port", map[string]any{"network_id": nid, "name": "p1", "device_id": "vm-1", "tags": []string{"x"}}, nil)
	mac := p["mac_address"].(string)
	if !strings.HasPrefix(mac, "fa:16:3f:") || p["status"] != "DOWN" || p["binding:vif_type"] != "unbound" ||
		p["binding:vnic_type"] != "normal" || fmt.Sprint(p["binding:profile"]) != "map[]" || p["port_security_enabled"] != true ||
		p["admin_state_up"] != true || len(p["security_groups"].([]any)) != 1 || p["revision_number"] != float64(1) {
		t.Fatalf("port defaults: %v", p)
	}
	if fips := p["fixed_ips"].([]any); len(fips) != 2 {
		t.Fatalf("want an IPv4 and a SLAAC address: %v", fips)
	}
	if sub0, ip0 := fixedIP(p, 0); sub0 != v6["id"] || !strings.HasPrefix(ip0, "2001:db8::f816:3fff:fe") {
		t.Fatalf("SLAAC address %s on %s", ip0, sub0)
	}
	if sub1, ip1 := fixedIP(p, 1); sub1 != sid || ip1 != "10.0.0.2" {
		t.Fatalf("IPv4 address %s on %s", ip1, sub1)
	}
	sgs := s.list("/v2.0/security-groups?name=default", nil, "security_groups")
	if len(sgs) != 1 || p["security_groups"].([]any)[0] != sgs[0]["id"] {
		t.Fatalf("default group: %v vs %v", sgs, p["security_groups"])
	}

	p2 := s.create("ports", "port", map[string]any{"network_id": nid, "fixed_ips": []any{map[string]any{"ip_address": "10.0.0.50"}},
		"mac_address": "FA:16:3E:00:00:01", "port_security_enabled": false, "device_owner": "compute:nova"}, nil)
	if p2["mac_address"] != "fa:16:3e:00:00:01" || len(p2["security_groups"].([]any)) != 0 {
		t.Fatalf("explicit port: %v", p2)
	}
	if _, ip := fixedIP(p2, 0); ip != "10.0.0.50" {
		t.Fatalf("explicit address: %v", ip)
	}
	pid := p["id"].(string)

	// Update: move the IPv4 address, bind, add an address pair.
	var got map[string]map[string]any
	code := s.do("PUT", "/v2.0/ports/"+pid, nil, map[string]any{"port": map[string]any{
		"fixed_ips":             []any{map[string]any{"subnet_id": sid, "ip_address": "10.0.0.9"}, map[string]any{"subnet_id": v6["id"]}},
		"binding:host_id":       "compute-1",
		"binding:profile":       map[string]any{"k": "v"},
		"allowed_address_pairs": []any{map[string]any{"ip_address": "10.0.0.0/28"}},
		"name":                  "renamed"}}, &got)
	u := got["port"]
	if code != 200 || u["binding:vif_type"] != "ovs" || u["binding:host_id"] != "compute-1" || u["name"] != "renamed" || u["revision_number"] != float64(2) ||
		fmt.Sprint(u["allowed_address_pairs"]) != fmt.Sprintf("[map[ip_address:10.0.0.0/28 mac_address:%s]]", mac) || fmt.Sprint(u["binding:profile"]) != "map[k:v]" {
		t.Fatalf("update: %d %v", code, u)
	}
	if _, ip := fixedIP(u, 0); ip != "10.0.0.9" {
		t.Fatalf("moved address: %v", u["fixed_ips"])
	}
	if _, ip := fixedIP(u, 1); ip != mustSLAAC(t, p) {
		t.Fatalf("SLAAC address not kept: %v", u["fixed_ips"])
	}
	// The old address is free again.
	p3 := s.create("ports", "port", map[string]any{"network_id": nid, "fixed_ips": []any{map[string]any{"subnet_id": sid, "ip_address": "10.0.0.2"}}}, nil)

	for q, want := range map[string][]string{
		"fixed_ips=ip_address%3D10.0.0.9":                                  {pid},
		"fixed_ips=subnet_id%3D" + sid + "&device_id=vm-1":                 {pid},
		"fixed_ips=ip_address%3D10.0.0.50&fixed_ips=ip_address%3D10.0.0.2": ids([]map[string]any{p2, p3}),
		"fixed_ips=ip_address_substr%3D10.0.0.5":                           {p2["id"].(string)},
		"device_id=vm-1":                                                   {pid},
		"network_id=" + nid + "&name=renamed":                              {pid},
		"mac_address=fa:16:3e:00:00:01":                                    {p2["id"].(string)},
		"tags=x":                                                           {pid},
		"security_groups=" + sgs[0]["id"].(string):                         ids([]map[string]any{p, p3}),
	} {
		if got := ids(s.list("/v2.0/ports?"+q, nil, "ports")); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("filter %s: got %v want %v", q, got, want)
		}
	}
	if code := s.do("PUT", "/v2.0/ports/"+pid+"/tags/y", nil, nil, nil); code != 201 {
		t.Fatalf("tag: %d", code)
	}
	for _, id := range []string{pid, p2["id"].(string), p3["id"].(string)} {
		if code := s.do("DELETE", "/v2.0/ports/"+id, nil, nil, nil); code != 204 {
			t.Fatalf("delete port: %d", code)
		}
	}
	if code := s.do("GET", "/v2.0/ports/"+pid, nil, nil, nil); code != 404 {
		t.Fatalf("show deleted: %d", code)
	}
	// A DHCP port does not keep the network alive.
	s.create("ports", "port", map[string]any{"network_id": nid, "device_owner": "network:dhcp"}, nil)
	if code := s.do("DELETE", "/v2.0/networks/"+nid, nil, nil, nil); code != 204 {
		t.Fatalf("delete network with only a DHCP port: %d", code)
	}
	if l := s.list("/v2.0/ports", nil, "ports"); len(l) != 0 {
		t.Fatalf("ports left: %v", l)
	}
}

func mustSLAAC(t *testing.T, p map[string]any) string {
	t.Helper()
	for i := range p["fixed_ips"].([]any) {
		if _, ip := fixedIP(p, i); strings.Contains(ip, ":") {
			return ip
		}
	}
	t.Fatal("no SLAAC address")
	return ""
}

func TestSecurityGroupLifecycle(t *testing.T) {
	s := newAPIServer(t, nil)
	groups := s.list("/v2.0/security-groups", alice, "security_groups")
	if len(groups) != 1 || groups[0]["name"] != "default" || len(groups[0]["security_group_rules"].([]any)) != 4 {
		t.Fatalf("default group on first list: %v", groups)
	}
	def := groups[0]
	var remote int
	for _, r := range def["security_group_rules"].([]any) {
		r := r.(map[string]any)
		if r["direction"] == "ingress" && r["remote_group_id"] == def["id"] {
			remote++
		}
		if r["belongs_to_default_sg"] != true {
			t.Fatalf("rule %v", r)
		}
	}
	if remote != 2 {
		t.Fatalf("default ingress rules: %v", def["security_group_rules"])
	}
	// A second list does not create another default group.
	if l := s.list("/v2.0/security-groups", alice, "security_groups"); len(l) != 1 {
		t.Fatalf("second list: %v", l)
	}

	web := s.create("security-groups", "security_group", map[string]any{"name": "web", "description": "http"}, alice)
	wid := web["id"].(string)
	if len(web["security_group_rules"].([]any)) != 2 || web["stateful"] != true || web["project_id"] != "alice" {
		t.Fatalf("new group: %v", web)
	}
	rule := s.create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": wid, "direction": "ingress",
		"protocol": "tcp", "port_range_min": 80, "port_range_max": 443, "remote_ip_prefix": "192.0.2.7/24"}, alice)
	if rule["remote_ip_prefix"] != "192.0.2.0/24" || rule["ethertype"] != "IPv4" || rule["protocol"] != "tcp" || rule["port_range_min"] != float64(80) {
		t.Fatalf("rule: %v", rule)
	}
	icmp := s.create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": wid, "direction": "ingress",
		"protocol": 58, "ethertype": "ipv6", "port_range_min": 128, "remote_group_id": def["id"]}, alice)
	if icmp["protocol"] != "58" || icmp["ethertype"] != "IPv6" || icmp["port_range_max"] != nil {
		t.Fatalf("icmp rule: %v", icmp)
	}
	var got map[string]map[string]any
	s.do("GET", "/v2.0/security-groups/"+wid, alice, nil, &got)
	if n := len(got["security_group"]["security_group_rules"].([]any)); n != 4 || got["security_group"]["revision_number"].(float64) < 2 {
		t.Fatalf("group after rules: %v", got["security_group"])
	}
	if l := s.list("/v2.0/security-group-rules?security_group_id="+wid+"&direction=ingress", alice, "security_group_rules"); len(l) != 2 {
		t.Fatalf("rules of group: %v", l)
	}
	if l := s.list("/v2.0/security-group-rules", bob, "security_group_rules"); len(l) != 4 {
		t.Fatalf("bob sees %d rules (his default group's)", len(l))
	}
	if code := s.do("GET", "/v2.0/security-groups/"+wid, bob, nil, nil); code != 404 {
		t.Fatalf("bob sees alice's group: %d", code)
	}
	if code := s.do("PUT", "/v2.0/security-groups/"+wid, alice, map[string]any{"security_group": map[string]any{"name": "www"}}, &got); code != 200 || got["security_group"]["name"] != "www" {
		t.Fatalf("rename: %d %v", code, got)
	}
	if code := s.do("DELETE", "/v2.0/security-group-rules/"+rule["id"].(string), alice, nil, nil); code != 204 {
		t.Fatalf("delete rule: %d", code)
	}
	if code := s.do("PUT", "/v2.0/security-groups/"+wid+"/tags/t", alice, nil, nil); code != 201 {
		t.Fatalf("tag: %d", code)
	}
	// Deleting the default group (admin) takes the rules naming it.
	if code := s.do("DELETE", "/v2.0/security-groups/"+wid, alice, nil, nil); code != 204 {
		t.Fatalf("delete group: %d", code)
	}
	if code := s.do("DELETE", "/v2.0/security-groups/"+def["id"].(string), nil, nil, nil); code != 204 {
		t.Fatalf("admin deletes default group: %d", code)
	}
	if l := s.list("/v2.0/security-group-rules?security_group_id="+def["id"].(string), nil, "security_group_rules"); len(l) != 0 {
		t.Fatalf("rules left: %v", l)
	}
}

func TestCoreBadInput(t *testing.T) {
	s := newAPIServer(t, nil)
	net := s.create("networks", "network", map[string]any{"name": "n"}, nil)
	nid := net["id"].(string)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": nid, "cidr": "10.0.0.0/24"}, nil)
	sid := sub["id"].(string)
	bobNet := s.create("networks", "network", map[string]any{"name": "bob"}, bob)
	sharedNet := s.create("networks", "network", map[string]any{"name": "shared", "shared": true, "project_id": "carol"}, nil)
	extNet := s.create("networks", "network", map[string]any{"name": "ext", "router:external": true}, nil)
	s.list("/v2.0/security-groups", alice, "security_groups")
	aliceDefault := s.list("/v2.0/security-groups", alice, "security_groups")[0]["id"].(string)
	web := s.create("security-groups", "security_group", map[string]any{"name": "web"}, nil)
	wid := web["id"].(string)
	s.create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": wid, "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}, nil)
	port := s.create("ports", "port", map[string]any{"network_id": nid, "mac_address": "fa:16:3e:aa:bb:cc",
		"fixed_ips": []any{map[string]any{"subnet_id": sid, "ip_address": "10.0.0.5"}}, "security_groups": []string{wid}}, nil)
	pid := port["id"].(string)

	subnet := func(kv ...any) map[string]any {
		m := map[string]any{"network_id": nid, "cidr": "10.1.0.0/24", "ip_version": 4}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"subnet": m}
	}
	portBody := func(kv ...any) map[string]any {
		m := map[string]any{"network_id": nid}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"port": m}
	}
	rule := func(kv ...any) map[string]any {
		m := map[string]any{"security_group_id": wid, "direction": "ingress"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"security_group_rule": m}
	}
	pool := func(start, end string) []any { return []any{map[string]any{"start": start, "end": end}} }
	ipOn := func(subnetID, ip string) []any { return []any{map[string]any{"subnet_id": subnetID, "ip_address": ip}} }
	const missing = "6f1e4a4c-0000-4000-8000-000000000000"

	cases := []struct {
		name     string
		method   string
		path     string
		hdr      map[string]string
		body     any
		wantCode int
		wantType string
	}{
		{"invalid cidr", "POST", "/v2.0/subnets", nil, subnet("cidr", "10.0.0.0/33"), 400, "HTTPBadRequest"},
		{"garbage cidr", "POST", "/v2.0/subnets", nil, subnet("cidr", "banana"), 400, "HTTPBadRequest"},
		{"missing cidr", "POST", "/v2.0/subnets", nil, map[string]any{"subnet": map[string]any{"network_id": nid, "ip_version": 4}}, 400, "HTTPBadRequest"},
		{"ip_version mismatch", "POST", "/v2.0/subnets", nil, subnet("cidr", "2001:db8::/64", "ip_version", 4), 400, "InvalidInput"},
		{"ip_version 5", "POST", "/v2.0/subnets", nil, subnet("ip_version", 5), 400, "HTTPBadRequest"},
		{"gateway outside subnet", "POST", "/v2.0/subnets", nil, subnet("gateway_ip", "10.2.0.1"), 400, "InvalidInput"},
		{"gateway is broadcast", "POST", "/v2.0/subnets", nil, subnet("gateway_ip", "10.1.0.255"), 400, "InvalidInput"},
		{"gateway is network address", "POST", "/v2.0/subnets", nil, subnet("gateway_ip", "10.1.0.0"), 400, "InvalidInput"},
		{"pool outside cidr", "POST", "/v2.0/subnets", nil, subnet("allocation_pools", pool("10.1.0.10", "10.1.1.10")), 400, "OutOfBoundsAllocationPool"},
		{"pool with broadcast", "POST", "/v2.0/subnets", nil, subnet("allocation_pools", pool("10.1.0.10", "10.1.0.255")), 400, "OutOfBoundsAllocationPool"},
		{"pool start after end", "POST", "/v2.0/subnets", nil, subnet("allocation_pools", pool("10.1.0.20", "10.1.0.10")), 400, "InvalidAllocationPool"},
		{"pool of wrong family", "POST", "/v2.0/subnets", nil, subnet("allocation_pools", pool("2001:db8::1", "2001:db8::5")), 400, "InvalidAllocationPool"},
		{"overlapping pools", "POST", "/v2.0/subnets", nil, subnet("allocation_pools", append(pool("10.1.0.10", "10.1.0.20"), pool("10.1.0.15", "10.1.0.30")...)), 409, "OverlappingAllocationPools"},
		{"pool contains gateway", "POST", "/v2.0/subnets", nil, subnet("allocation_pools", pool("10.1.0.1", "10.1.0.20")), 409, "GatewayConflictWithAllocationPools"},
		{"overlapping cidr on one network", "POST", "/v2.0/subnets", nil, subnet("cidr", "10.0.0.128/25"), 400, "InvalidInput"},
		{"overlapping cidrs in one bulk", "POST", "/v2.0/subnets", nil, map[string]any{"subnets": []any{subnet("cidr", "10.7.0.0/16")["subnet"], subnet("cidr", "10.7.1.0/24")["subnet"]}}, 400, "InvalidInput"},
		{"subnet on unknown network", "POST", "/v2.0/subnets", nil, subnet("network_id", missing), 404, "NetworkNotFound"},
		{"subnet network_id not a UUID", "POST", "/v2.0/subnets", nil, subnet("network_id", "net-1"), 400, "HTTPBadRequest"},
		{"subnet on another project's network", "POST", "/v2.0/subnets", alice, subnet("network_id", bobNet["id"]), 404, "NetworkNotFound"},
		{"subnet on another project's shared network", "POST", "/v2.0/subnets", alice, subnet("network_id", sharedNet["id"]), 403, "PolicyNotAuthorized"},
		{"ipv6 mode on v4", "POST", "/v2.0/subnets", nil, subnet("ipv6_address_mode", "slaac"), 400, "InvalidInput"},
		{"slaac needs /64", "POST", "/v2.0/subnets", nil, subnet("cidr", "2001:db8::/80", "ip_version", 6, "ipv6_address_mode", "slaac"), 400, "InvalidInput"},
		{"bad nameserver", "POST", "/v2.0/subnets", nil, subnet("dns_nameservers", []string{"dns.example"}), 400, "HTTPBadRequest"},
		{"bad host route", "POST", "/v2.0/subnets", nil, subnet("host_routes", []any{map[string]any{"destination": "x", "nexthop": "10.1.0.1"}}), 400, "HTTPBadRequest"},
		{"unknown pool key", "POST", "/v2.0/subnets", nil, subnet("allocation_pools", []any{map[string]any{"first": "10.1.0.2"}}), 400, "HTTPBadRequest"},
		{"update pools dropping an allocation", "PUT", "/v2.0/subnets/" + sid, nil, map[string]any{"subnet": map[string]any{"allocation_pools": pool("10.0.0.100", "10.0.0.200")}}, 409, "SubnetInUse"},
		{"update gateway into the pool", "PUT", "/v2.0/subnets/" + sid, nil, map[string]any{"subnet": map[string]any{"gateway_ip": "10.0.0.77"}}, 409, "GatewayConflictWithAllocationPools"},
		{"update cidr", "PUT", "/v2.0/subnets/" + sid, nil, map[string]any{"subnet": map[string]any{"cidr": "10.9.0.0/24"}}, 400, "HTTPBadRequest"},
		{"bob updates admin's subnet", "PUT", "/v2.0/subnets/" + sid, bob, map[string]any{"subnet": map[string]any{"name": "x"}}, 404, "SubnetNotFound"},
		{"delete subnet in use", "DELETE", "/v2.0/subnets/" + sid, nil, nil, 409, "SubnetInUse"},
		{"delete network in use", "DELETE", "/v2.0/networks/" + nid, nil, nil, 409, "NetworkInUse"},

		{"bad MAC", "POST", "/v2.0/ports", nil, portBody("mac_address", "fa:16:3e:zz:00:01"), 400, "HTTPBadRequest"},
		{"multicast MAC", "POST", "/v2.0/ports", nil, portBody("mac_address", "01:00:5e:00:00:01"), 400, "HTTPBadRequest"},
		{"duplicate MAC", "POST", "/v2.0/ports", nil, portBody("mac_address", "FA:16:3E:AA:BB:CC"), 409, "MacAddressInUse"},
		{"IP outside subnet", "POST", "/v2.0/ports", nil, portBody("fixed_ips", ipOn(sid, "10.5.0.5")), 400, "InvalidIpForSubnet"},
		{"IP is broadcast", "POST", "/v2.0/ports", nil, portBody("fixed_ips", ipOn(sid, "10.0.0.255")), 400, "InvalidIpForSubnet"},
		{"IP on no subnet of the network", "POST", "/v2.0/ports", nil, portBody("fixed_ips", []any{map[string]any{"ip_address": "172.16.0.1"}}), 400, "InvalidIpForNetwork"},
		{"IP already used", "POST", "/v2.0/ports", nil, portBody("fixed_ips", ipOn(sid, "10.0.0.5")), 409, "IpAddressAlreadyAllocated"},
		{"same IP twice in a bulk", "POST", "/v2.0/ports", nil, map[string]any{"ports": []any{
			portBody("fixed_ips", ipOn(sid, "10.0.0.99"))["port"], portBody("fixed_ips", ipOn(sid, "10.0.0.99"))["port"]}}, 409, "IpAddressAlreadyAllocated"},
		{"bad IP", "POST", "/v2.0/ports", nil, portBody("fixed_ips", ipOn(sid, "10.0.0.300")), 400, "HTTPBadRequest"},
		{"unknown subnet", "POST", "/v2.0/ports", nil, portBody("fixed_ips", []any{map[string]any{"subnet_id": missing}}), 404, "SubnetNotFound"},
		{"port on unknown network", "POST", "/v2.0/ports", nil, portBody("network_id", missing), 404, "NetworkNotFound"},
		{"port network_id not a UUID", "POST", "/v2.0/ports", nil, portBody("network_id", "net-1"), 400, "HTTPBadRequest"},
		{"port on another project's network", "POST", "/v2.0/ports", alice, portBody("network_id", bobNet["id"]), 404, "NetworkNotFound"},
		{"member port on external network", "POST", "/v2.0/ports", alice, portBody("network_id", extNet["id"]), 403, "PolicyNotAuthorized"},
		{"member sets host", "POST", "/v2.0/ports", alice, portBody("network_id", sharedNet["id"], "binding:host_id", "h1"), 403, "PolicyNotAuthorized"},
		{"member sets IP on shared network", "POST", "/v2.0/ports", alice, portBody("network_id", sharedNet["id"], "fixed_ips", []any{map[string]any{"ip_address": "10.0.0.9"}}), 403, "PolicyNotAuthorized"},
		{"unknown security group", "POST", "/v2.0/ports", nil, portBody("security_groups", []string{missing}), 404, "SecurityGroupNotFound"},
		{"another project's security group", "POST", "/v2.0/ports", bob, portBody("network_id", bobNet["id"], "security_groups", []string{aliceDefault}), 404, "SecurityGroupNotFound"},
		{"groups without port security", "POST", "/v2.0/ports", nil, portBody("port_security_enabled", false, "security_groups", []string{wid}), 400, "PortSecurityAndIPRequiredForSecurityGroups"},
		{"address pairs without port security", "POST", "/v2.0/ports", nil, portBody("port_security_enabled", false, "allowed_address_pairs", []any{map[string]any{"ip_address": "10.0.0.7"}}), 409, "AddressPairAndPortSecurityRequired"},
		{"bad address pair", "POST", "/v2.0/ports", nil, portBody("allowed_address_pairs", []any{map[string]any{"ip_address": "nope"}}), 400, "HTTPBadRequest"},
		{"bad vnic type", "POST", "/v2.0/ports", nil, portBody("binding:vnic_type", "warp"), 400, "HTTPBadRequest"},
		{"disable port security with groups", "PUT", "/v2.0/ports/" + pid, nil, map[string]any{"port": map[string]any{"port_security_enabled": false}}, 409, "PortSecurityPortHasSecurityGroup"},
		{"update to a used IP", "PUT", "/v2.0/ports/" + pid, nil, map[string]any{"port": map[string]any{"fixed_ips": ipOn(sid, "10.0.0.5"), "mac_address": "fa:16:3e:aa:bb:cd"}}, 200, ""},
		{"update network_id", "PUT", "/v2.0/ports/" + pid, nil, map[string]any{"port": map[string]any{"network_id": missing}}, 400, "HTTPBadRequest"},
		{"stale If-Match", "PUT", "/v2.0/ports/" + pid, map[string]string{"If-Match": "revision_number=99"}, map[string]any{"port": map[string]any{"name": "x"}}, 412, "RevisionNumberConstraintFailed"},
		{"bob shows admin's port", "GET", "/v2.0/ports/" + pid, bob, nil, 404, "PortNotFound"},
		{"bad fixed_ips filter", "GET", "/v2.0/ports?fixed_ips=mac%3Dx", nil, nil, 400, "HTTPBadRequest"},

		{"rule min > max", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "tcp", "port_range_min", 100, "port_range_max", 90), 400, "SecurityGroupInvalidPortRange"},
		{"rule port 0", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "udp", "port_range_min", 0, "port_range_max", 90), 400, "SecurityGroupInvalidPortValue"},
		{"rule port too big", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "udp", "port_range_min", 1, "port_range_max", 70000), 400, "SecurityGroupInvalidPortValue"},
		{"rule ports without protocol", "POST", "/v2.0/security-group-rules", nil, rule("port_range_min", 1, "port_range_max", 2), 400, "SecurityGroupProtocolRequiredWithPorts"},
		{"rule ports on gre", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "gre", "port_range_min", 1, "port_range_max", 2), 400, "SecurityGroupInvalidProtocolForPort"},
		{"rule icmp type too big", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "icmp", "port_range_min", 300), 400, "SecurityGroupInvalidIcmpValue"},
		{"rule icmp code without type", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "icmp", "port_range_max", 3), 400, "SecurityGroupMissingIcmpType"},
		{"unknown protocol", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "tcpx"), 400, "SecurityGroupRuleInvalidProtocol"},
		{"protocol number too big", "POST", "/v2.0/security-group-rules", nil, rule("protocol", 256), 400, "SecurityGroupRuleInvalidProtocol"},
		{"icmpv6 with IPv4", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "ipv6-icmp"), 400, "SecurityGroupEthertypeConflictWithProtocol"},
		{"remote prefix family mismatch", "POST", "/v2.0/security-group-rules", nil, rule("ethertype", "IPv6", "remote_ip_prefix", "10.0.0.0/8"), 400, "SecurityGroupRuleParameterConflict"},
		{"bad remote prefix", "POST", "/v2.0/security-group-rules", nil, rule("remote_ip_prefix", "10.0.0.0/40"), 400, "HTTPBadRequest"},
		{"remote prefix and group", "POST", "/v2.0/security-group-rules", nil, rule("remote_ip_prefix", "10.0.0.0/8", "remote_group_id", wid), 400, "SecurityGroupRemoteGroupAndRemoteIpPrefix"},
		{"unknown remote group", "POST", "/v2.0/security-group-rules", nil, rule("remote_group_id", missing), 404, "SecurityGroupNotFound"},
		{"rule of unknown group", "POST", "/v2.0/security-group-rules", nil, rule("security_group_id", missing), 404, "SecurityGroupNotFound"},
		{"rule security_group_id not a UUID", "POST", "/v2.0/security-group-rules", nil, rule("security_group_id", "default"), 400, "HTTPBadRequest"},
		{"rule remote_group_id not a UUID", "POST", "/v2.0/security-group-rules", nil, rule("remote_group_id", "web"), 400, "HTTPBadRequest"},
		{"rule in another project's group", "POST", "/v2.0/security-group-rules", bob, rule("security_group_id", aliceDefault), 404, "SecurityGroupNotFound"},
		{"bad direction", "POST", "/v2.0/security-group-rules", nil, rule("direction", "sideways"), 400, "HTTPBadRequest"},
		{"bad ethertype", "POST", "/v2.0/security-group-rules", nil, rule("ethertype", "IPX"), 400, "SecurityGroupRuleInvalidEtherType"},
		{"duplicate rule", "POST", "/v2.0/security-group-rules", nil, rule("protocol", "6", "port_range_min", 22, "port_range_max", 22, "remote_ip_prefix", "0.0.0.0/0"), 409, "SecurityGroupRuleExists"},
		{"duplicate rule in one bulk", "POST", "/v2.0/security-group-rules", nil, map[string]any{"security_group_rules": []any{rule("protocol", "udp")["security_group_rule"], rule("protocol", "udp")["security_group_rule"]}}, 409, "SecurityGroupRuleExists"},
		{"delete group in use", "DELETE", "/v2.0/security-groups/" + wid, nil, nil, 409, "SecurityGroupInUse"},
		{"member deletes default group", "DELETE", "/v2.0/security-groups/" + aliceDefault, alice, nil, 409, "SecurityGroupCannotRemoveDefault"},
		{"member renames default group", "PUT", "/v2.0/security-groups/" + aliceDefault, alice, map[string]any{"security_group": map[string]any{"name": "x"}}, 409, "SecurityGroupCannotUpdateDefault"},
		{"second group named default", "POST", "/v2.0/security-groups", alice, map[string]any{"security_group": map[string]any{"name": "default"}}, 409, "SecurityGroupDefaultAlreadyExists"},
		{"delete missing rule", "DELETE", "/v2.0/security-group-rules/" + missing, nil, nil, 404, "SecurityGroupRuleNotFound"},
	}
	for _, tc := range cases {
		if tc.wantCode == 200 {
			continue // a sanity row: keeping one's own address is fine
		}
		t.Run(tc.name, func(t *testing.T) {
			before := s.revision()
			var ne neutronError
			code := s.do(tc.method, tc.path, tc.hdr, tc.body, &ne)
			if code != tc.wantCode || ne.NeutronError.Type != tc.wantType || ne.NeutronError.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", code, ne.NeutronError, tc.wantCode, tc.wantType)
			}
			if after := s.revision(); after != before {
				t.Fatalf("revision moved from %d to %d: a rejected request changed state", before, after)
			}
		})
	}
	if l := s.list("/v2.0/ports", nil, "ports"); len(l) != 1 {
		t.Fatalf("want only the one good port, got %d", len(l))
	}
	if l := s.list("/v2.0/subnets", nil, "subnets"); len(l) != 1 {
		t.Fatalf("want only the one good subnet, got %d", len(l))
	}
	// Keeping one's own address while changing the MAC is fine.
	var got map[string]map[string]any
	if code := s.do("PUT", "/v2.0/ports/"+pid, nil, map[string]any{"port": map[string]any{"fixed_ips": ipOn(sid, "10.0.0.5"), "mac_address": "fa:16:3e:aa:bb:cd"}}, &got); code != 200 || got["port"]["mac_address"] != "fa:16:3e:aa:bb:cd" {
		t.Fatalf("keep address: %d %v", code, got)
	}
}

func TestIPAMConcurrentPorts(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "n"}, nil)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.0.0.0/22"}, nil)
	const total, workers = 500, 32
	var mu sync.Mutex
	ips, macs := map[string]bool{}, map[string]bool{}
	var wg sync.WaitGroup
	jobs := make(chan int)
	errs := make(chan error, total)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				var out map[string]map[string]any
				code := s.do("POST", "/v2.0/ports", nil, map[string]any{"port": map[string]any{"network_id": n["id"]}}, &out)
				if code != 201 {
					errs <- fmt.Errorf("create: %d", code)
					continue
				}
				_, ip := fixedIP(out["port"], 0)
				mu.Lock()
				if ips[ip] || macs[out["port"]["mac_address"].(string)] {
					errs <- fmt.Errorf("duplicate %s / %s", ip, out["port"]["mac_address"])
				}
				ips[ip], macs[out["port"]["mac_address"].(string)] = true, true
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < total; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(ips) != total || len(macs) != total {
		t.Fatalf("%d addresses, %d MACs", len(ips), len(macs))
	}
	// The state agrees: every port has its own address.
	ports := s.list("/v2.0/ports?network_id="+n["id"].(string)+"&fields=fixed_ips", nil, "ports")
	seen := map[string]bool{}
	for _, p := range ports {
		_, ip := fixedIP(p, 0)
		if seen[ip] {
			t.Fatalf("address %s twice in the state", ip)
		}
		seen[ip] = true
	}
	if len(seen) != total {
		t.Fatalf("%d ports in the state", len(seen))
	}
}

func TestIPAMExhaustion(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "n"}, nil)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.0.0.0/29"}, nil)
	// .1 is the gateway, .2-.6 the pool, .7 the broadcast address.
	var got []string
	for i := 0; i < 5; i++ {
		p := s.create("ports", "port", map[string]any{"network_id": n["id"]}, nil)
		_, ip := fixedIP(p, 0)
		got = append(got, ip)
	}
	slices.SortFunc(got, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
	if fmt.Sprint(got) != "[10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6]" {
		t.Fatalf("addresses %v", got)
	}
	before := s.revision()
	var ne neutronError
	if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"port": map[string]any{"network_id": n["id"]}}, &ne); code != 409 || ne.NeutronError.Type != "IpAddressGenerationFailure" {
		t.Fatalf("exhausted: %d %+v", code, ne)
	}
	if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"port": map[string]any{"network_id": n["id"], "fixed_ips": []any{map[string]any{"subnet_id": sub["id"]}}}}, &ne); code != 409 || ne.NeutronError.Type != "IpAddressGenerationFailure" {
		t.Fatalf("exhausted with subnet_id: %d %+v", code, ne)
	}
	if s.revision() != before {
		t.Fatal("failed allocation changed state")
	}
	// Freeing one address makes it available again.
	ports := s.list("/v2.0/ports?fixed_ips=ip_address%3D10.0.0.4", nil, "ports")
	if len(ports) != 1 {
		t.Fatalf("lookup by IP: %v", ports)
	}
	s.do("DELETE", "/v2.0/ports/"+ports[0]["id"].(string), nil, nil, nil)
	p := s.create("ports", "port", map[string]any{"network_id": n["id"]}, nil)
	if _, ip := fixedIP(p, 0); ip != "10.0.0.4" {
		t.Fatalf("reused address %s", ip)
	}
}

func TestDefaultSecurityGroupOnceUnderConcurrency(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "n"}, alice)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.0.0.0/24"}, alice)
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			codes <- s.do("POST", "/v2.0/ports", alice, map[string]any{"port": map[string]any{"network_id": n["id"]}}, nil)
		}()
		go func() {
			defer wg.Done()
			codes <- s.do("GET", "/v2.0/security-groups", alice, nil, nil)
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 201 && c != 200 {
			t.Fatalf("status %d", c)
		}
	}
	groups := s.list("/v2.0/security-groups", alice, "security_groups")
	if len(groups) != 1 || groups[0]["name"] != "default" || len(groups[0]["security_group_rules"].([]any)) != 4 {
		t.Fatalf("groups: %v", groups)
	}
	for _, p := range s.list("/v2.0/ports", alice, "ports") {
		if sgs := p["security_groups"].([]any); len(sgs) != 1 || sgs[0] != groups[0]["id"] {
			t.Fatalf("port groups %v", sgs)
		}
	}
}

func TestCoreProjectScoping(t *testing.T) {
	s := newAPIServer(t, nil)
	an := s.create("networks", "network", map[string]any{"name": "a"}, alice)
	as := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": an["id"], "cidr": "10.0.0.0/24"}, alice)
	ap := s.create("ports", "port", map[string]any{"network_id": an["id"]}, alice)
	shared := s.create("networks", "network", map[string]any{"name": "shared", "shared": true}, nil)
	ss := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": shared["id"], "cidr": "10.1.0.0/24"}, nil)
	bp := s.create("ports", "port", map[string]any{"network_id": shared["id"]}, bob)
	if bp["project_id"] != "bob" {
		t.Fatalf("bob's port on the shared network: %v", bp)
	}
	if got := ids(s.list("/v2.0/subnets", bob, "subnets")); fmt.Sprint(got) != fmt.Sprint([]string{ss["id"].(string)}) {
		t.Fatalf("bob sees subnets %v", got)
	}
	if got := ids(s.list("/v2.0/ports", bob, "ports")); fmt.Sprint(got) != fmt.Sprint([]string{bp["id"].(string)}) {
		t.Fatalf("bob sees ports %v", got)
	}
	if got := ids(s.list("/v2.0/ports", alice, "ports")); fmt.Sprint(got) != fmt.Sprint([]string{ap["id"].(string)}) {
		t.Fatalf("alice sees ports %v", got)
	}
	for _, path := range []string{"/v2.0/subnets/" + as["id"].(string), "/v2.0/ports/" + ap["id"].(string)} {
		for _, m := range []string{"GET", "DELETE"} {
			if code := s.do(m, path, bob, nil, nil); code != 404 {
				t.Fatalf("bob %s %s: %d", m, path, code)
			}
		}
	}
	if l := s.list("/v2.0/ports", nil, "ports"); len(l) != 2 {
		t.Fatalf("admin sees %d ports", len(l))
	}
}

func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	for _, v := range []any{
		map[string]any{"b": 1, "a": []string{"x", "<y>"}, "c": nil, "d": true, "e": uint64(7), "f": "é\"q",
			"g": []map[string]string{{"k": "v", "a": "b"}}, "h": []map[string]any{{"z": 1.5}}, "i": map[string]string{}, "j": []string{}},
	} {
		want, _ := json.Marshal(v)
		got, err := northbound.AppendJSON(nil, v)
		if err != nil || string(got) != string(want) {
			t.Fatalf("got %s\nwant %s (%v)", got, want, err)
		}
	}
}
