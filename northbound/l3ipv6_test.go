package northbound_test

import (
	"fmt"
	"testing"
)

// TestL3IPv6Interfaces: IPv6 subnets attach to a router like IPv4 ones
// (the interface port holds the subnet's gateway_ip; a dual-stack network
// gets one router port per subnet), in every ipv6_ra_mode /
// ipv6_address_mode combination Neutron accepts; IPv6 extra routes are
// accepted; a subnet whose hosts would take RAs from an external router
// (address mode without RA mode) is refused as Neutron refuses it, with
// nothing written.
func TestL3IPv6Interfaces(t *testing.T) {
	s := newAPIServer(t, nil)
	n := s.create("networks", "network", map[string]any{"name": "dual"}, nil)
	v4 := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.0.0.0/24"}, nil)
	r := s.create("routers", "router", map[string]any{"name": "r6"}, nil)
	rid := r["id"].(string)
	s.put("/v2.0/routers/"+rid+"/add_router_interface", nil, map[string]any{"subnet_id": v4["id"]})

	for i, modes := range []struct{ ra, addr any }{
		{nil, nil}, {"slaac", "slaac"}, {"dhcpv6-stateless", "dhcpv6-stateless"}, {"dhcpv6-stateful", "dhcpv6-stateful"}, {"slaac", nil},
	} {
		netID := n["id"]
		if i > 0 {
			netID = s.create("networks", "network", map[string]any{"name": fmt.Sprint("v6-", i)}, nil)["id"]
		}
		body := map[string]any{"network_id": netID, "ip_version": 6, "cidr": fmt.Sprintf("fd00:%d::/64", i+1)}
		if modes.ra != nil {
			body["ipv6_ra_mode"] = modes.ra
		}
		if modes.addr != nil {
			body["ipv6_address_mode"] = modes.addr
		}
		sub := s.create("subnets", "subnet", body, nil)
		info := s.put("/v2.0/routers/"+rid+"/add_router_interface", nil, map[string]any{"subnet_id": sub["id"]})
		var p map[string]map[string]any
		s.do("GET", "/v2.0/ports/"+info["port_id"].(string), nil, nil, &p)
		subID, ip := fixedIP(p["port"], 0)
		if p["port"]["device_owner"] != "network:router_interface" || subID != sub["id"] || ip != sub["gateway_ip"] || ip != fmt.Sprintf("fd00:%d::1", i+1) {
			t.Fatalf("modes %v/%v: interface port %v, want the subnet's gateway fd00:%d::1", modes.ra, modes.addr, p["port"], i+1)
		}
	}
	if ports := s.list("/v2.0/ports?device_id="+rid+"&network_id="+n["id"].(string), nil, "ports"); len(ports) != 2 {
		t.Fatalf("dual-stack network: %d router ports, want one per subnet: %v", len(ports), ports)
	}

	upd := s.put("/v2.0/routers/"+rid, nil, map[string]any{"router": map[string]any{"routes": []any{
		map[string]any{"destination": "fd00:99::/64", "nexthop": "fd00:1::99"},
		map[string]any{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}}}})["router"].(map[string]any)
	if got := fmt.Sprint(upd["routes"]); got != "[map[destination:fd00:99::/64 nexthop:fd00:1::99] map[destination:192.168.0.0/16 nexthop:10.0.0.254]]" {
		t.Fatalf("routes: %s", got)
	}

	ext := s.create("networks", "network", map[string]any{"name": "ra-outside"}, nil)
	bad := s.create("subnets", "subnet", map[string]any{"network_id": ext["id"], "ip_version": 6, "cidr": "fd00:77::/64", "ipv6_address_mode": "slaac"}, nil)
	badPort := s.create("ports", "port", map[string]any{"network_id": ext["id"]}, nil)
	// A router of its own: the subnet case must not decide the port case.
	r2 := s.create("routers", "router", map[string]any{"name": "r6-2"}, nil)["id"].(string)
	for _, tc := range []struct {
		name string
		path string
		body any
		want string
	}{
		{"subnet with address mode and no RA mode", "/v2.0/routers/" + rid + "/add_router_interface", map[string]any{"subnet_id": bad["id"]}, "BadRequest"},
		{"port on such a subnet", "/v2.0/routers/" + r2 + "/add_router_interface", map[string]any{"port_id": badPort["id"]}, "BadRequest"},
		{"IPv6 route with IPv4 next hop", "/v2.0/routers/" + rid, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "fd00:98::/64", "nexthop": "10.0.0.9"}}}}, "InvalidRoutes"},
		{"IPv6 route via no subnet", "/v2.0/routers/" + rid, map[string]any{"router": map[string]any{"routes": []any{map[string]any{"destination": "fd00:98::/64", "nexthop": "fd00:55::9"}}}}, "InvalidRoutes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.revision()
			var ne neutronError
			if code := s.do("PUT", tc.path, nil, tc.body, &ne); code != 400 || ne.NeutronError.Type != tc.want || ne.NeutronError.Message == "" {
				t.Fatalf("got %d %+v, want 400 %s", code, ne.NeutronError, tc.want)
			}
			if after := s.revision(); after != before {
				t.Fatalf("revision moved from %d to %d", before, after)
			}
		})
	}
}
