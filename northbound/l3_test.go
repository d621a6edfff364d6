package northbound_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"neutrino/northbound"
)

// put sends a PUT and fails the test unless it answers 200.
func (s *apiServer) put(path string, hdr map[string]string, body any) map[string]any {
	s.t.Helper()
	var out map[string]any
	if code := s.do("PUT", path, hdr, body, &out); code != 200 {
		s.t.Fatalf("PUT %s %v: %d %v", path, body, code, out)
	}
	return out
}

// externalNet creates (as admin) an external network with one subnet and
// returns the network and the subnet.
func externalNet(s *apiServer, hdr map[string]string, cidr string) (map[string]any, map[string]any) {
	n := s.create("networks", "network", map[string]any{"name": "public", "router:external": true}, hdr)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": ipVersionOf(cidr), "network_id": n["id"], "cidr": cidr}, hdr)
	return n, sub
}

func gatewayIP(r map[string]any) string {
	gi := r["external_gateway_info"].(map[string]any)
	return gi["external_fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
}

// TestL3Lifecycle walks a router and a floating IP through their life:
// gateway, interfaces, extra routes, association, and tear down, checking
// the ports Neutron would show for each step.
func TestL3Lifecycle(t *testing.T) {
	s := newAPIServer(t, nil)
	ext, extSub := externalNet(s, nil, "203.0.113.0/24")
	n := s.create("networks", "network", map[string]any{"name": "private"}, nil)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.0.0.0/24"}, nil)

	r := s.create("routers", "router", map[string]any{"name": "r1", "external_gateway_info": map[string]any{"network_id": ext["id"]}}, nil)
	rid := r["id"].(string)
	gi := r["external_gateway_info"].(map[string]any)
	if r["status"] != "ACTIVE" || r["admin_state_up"] != true || r["revision_number"] != float64(1) || gi["enable_snat"] != true ||
		gi["network_id"] != ext["id"] || r["distributed"] != false || r["ha"] != false || fmt.Sprint(r["routes"]) != "[]" {
		t.Fatalf("router: %v", r)
	}
	gws := s.list("/v2.0/ports?device_id="+rid, nil, "ports")
	if len(gws) != 1 || gws[0]["device_owner"] != "network:router_gateway" || gws[0]["project_id"] != "" || gws[0]["network_id"] != ext["id"] {
		t.Fatalf("gateway port: %v", gws)
	}
	if subID, ip := fixedIP(gws[0], 0); subID != extSub["id"] || ip != gatewayIP(r) {
		t.Fatalf("gateway address %s on %s, router says %s", ip, subID, gatewayIP(r))
	}

	info := s.put("/v2.0/routers/"+rid+"/add_router_interface", nil, map[string]any{"subnet_id": sub["id"]})
	if info["id"] != rid || info["subnet_id"] != sub["id"] || info["network_id"] != n["id"] || fmt.Sprint(info["subnet_ids"]) != fmt.Sprint([]any{sub["id"]}) {
		t.Fatalf("interface info: %v", info)
	}
	var ifp map[string]map[string]any
	s.do("GET", "/v2.0/ports/"+info["port_id"].(string), nil, nil, &ifp)
	if p := ifp["port"]; p["device_owner"] != "network:router_interface" || p["device_id"] != rid {
		t.Fatalf("interface port: %v", p)
	} else if _, ip := fixedIP(p, 0); ip != "10.0.0.1" {
		t.Fatalf("interface address %s, want the subnet's gateway", ip)
	}

	// An existing port becomes an interface too.
	n2 := s.create("networks", "network", map[string]any{"name": "private2"}, nil)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n2["id"], "cidr": "10.2.0.0/24"}, nil)
	p2 := s.create("ports", "port", map[string]any{"network_id": n2["id"]}, nil)
	info2 := s.put("/v2.0/routers/"+rid+"/add_router_interface", nil, map[string]any{"port_id": p2["id"]})
	if info2["port_id"] != p2["id"] {
		t.Fatalf("interface by port: %v", info2)
	}

	upd := s.put("/v2.0/routers/"+rid, nil, map[string]any{"router": map[string]any{"routes": []any{
		map[string]any{"destination": "192.168.0.0/16", "nexthop": "10.0.0.254"}}}})["router"].(map[string]any)
	if fmt.Sprint(upd["routes"]) != "[map[destination:192.168.0.0/16 nexthop:10.0.0.254]]" || upd["revision_number"].(float64) < 4 {
		t.Fatalf("routes: %v", upd)
	}

	vm := s.create("ports", "port", map[string]any{"network_id": n["id"], "device_id": "vm-1"}, nil)
	_, vmIP := fixedIP(vm, 0)
	fip := s.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "port_id": vm["id"]}, nil)
	if fip["status"] != "ACTIVE" || fip["router_id"] != rid || fip["fixed_ip_address"] != vmIP || fip["floating_ip_address"] == gatewayIP(r) {
		t.Fatalf("floating IP: %v", fip)
	}
	fipPorts := s.list("/v2.0/ports?device_owner=network:floatingip", nil, "ports")
	if len(fipPorts) != 1 || fipPorts[0]["device_id"] != fip["id"] {
		t.Fatalf("floating IP port: %v", fipPorts)
	}
	if _, a := fixedIP(fipPorts[0], 0); a != fip["floating_ip_address"] {
		t.Fatalf("floating IP port holds %s, want %s", a, fip["floating_ip_address"])
	}
	got := s.list("/v2.0/floatingips?port_id="+vm["id"].(string), nil, "floatingips")
	if len(got) != 1 || got[0]["id"] != fip["id"] {
		t.Fatalf("filter by port: %v", got)
	}

	// Disassociate with port_id null; delete releases the address.
	dis := s.put("/v2.0/floatingips/"+fip["id"].(string), nil, map[string]any{"floatingip": map[string]any{"port_id": nil}})["floatingip"].(map[string]any)
	if dis["status"] != "DOWN" || dis["port_id"] != nil || dis["router_id"] != nil || dis["fixed_ip_address"] != nil {
		t.Fatalf("disassociated: %v", dis)
	}
	if code := s.do("DELETE", "/v2.0/floatingips/"+fip["id"].(string), nil, nil, nil); code != 204 {
		t.Fatalf("delete floating IP: %d", code)
	}
	again := s.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "floating_ip_address": fip["floating_ip_address"]}, nil)
	s.do("DELETE", "/v2.0/floatingips/"+again["id"].(string), nil, nil, nil)

	// A deleted VM port takes its association with it.
	fip2 := s.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "port_id": vm["id"]}, nil)
	s.do("DELETE", "/v2.0/ports/"+vm["id"].(string), nil, nil, nil)
	var after map[string]map[string]any
	s.do("GET", "/v2.0/floatingips/"+fip2["id"].(string), nil, nil, &after)
	if after["floatingip"]["port_id"] != nil || after["floatingip"]["status"] != "DOWN" {
		t.Fatalf("after port delete: %v", after["floatingip"])
	}

	s.put("/v2.0/routers/"+rid, nil, map[string]any{"router": map[string]any{"routes": []any{}}})
	s.put("/v2.0/routers/"+rid+"/remove_router_interface", nil, map[string]any{"subnet_id": sub["id"]})
	s.put("/v2.0/routers/"+rid+"/remove_router_interface", nil, map[string]any{"port_id": p2["id"]})
	cleared := s.put("/v2.0/routers/"+rid, nil, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{}}})["router"].(map[string]any)
	if cleared["external_gateway_info"] != nil {
		t.Fatalf("gateway not cleared: %v", cleared)
	}
	if left := s.list("/v2.0/ports?device_id="+rid, nil, "ports"); len(left) != 0 {
		t.Fatalf("router ports left: %v", left)
	}
	if code := s.do("DELETE", "/v2.0/routers/"+rid, nil, nil, nil); code != 204 {
		t.Fatalf("delete router: %d", code)
	}
}

// TestL3BadInput: every refused router and floating IP request answers
// with Neutron's status and error type and leaves the revision alone.
func TestL3BadInput(t *testing.T) {
	s := newAPIServer(t, nil)
	ext, extSub := externalNet(s, nil, "203.0.113.0/24")
	n1 := s.create("networks", "network", map[string]any{"name": "n1"}, nil)
	s1 := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n1["id"], "cidr": "10.0.0.0/24"}, nil)
	n2 := s.create("networks", "network", map[string]any{"name": "n2"}, nil)
	s2 := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n2["id"], "cidr": "10.0.0.0/25"}, nil)
	s3 := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n2["id"], "cidr": "10.1.0.0/24", "gateway_ip": nil}, nil)
	n4 := s.create("networks", "network", map[string]any{"name": "n4"}, nil)
	s4 := s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n4["id"], "cidr": "10.4.0.0/24"}, nil)

	r1 := s.create("routers", "router", map[string]any{"name": "r1", "external_gateway_info": map[string]any{"network_id": ext["id"]}}, nil)
	r1id := r1["id"].(string)
	if1 := s.put("/v2.0/routers/"+r1id+"/add_router_interface", nil, map[string]any{"subnet_id": s1["id"]})
	r2 := s.create("routers", "router", map[string]any{"name": "r2"}, nil)
	r2id := r2["id"].(string)
	s.put("/v2.0/routers/"+r2id+"/add_router_interface", nil, map[string]any{"subnet_id": s4["id"]})
	vmA := s.create("ports", "port", map[string]any{"network_id": n1["id"]}, nil)
	vmB := s.create("ports", "port", map[string]any{"network_id": n4["id"]}, nil)
	bound := s.create("ports", "port", map[string]any{"network_id": n2["id"], "device_id": "some-vm"}, nil)
	f1 := s.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "port_id": vmA["id"]}, nil)

	member := map[string]string{"X-Project-Id": "p-member", "X-Roles": "member"}
	missing := "6f1e4a4c-0000-4000-8000-000000000000"
	fip := func(body map[string]any) map[string]any { return map[string]any{"floatingip": body} }
	router := func(body map[string]any) map[string]any { return map[string]any{"router": body} }
	cases := []struct {
		name     string
		method   string
		path     string
		hdr      map[string]string
		body     any
		wantCode int
		wantType string
	}{
		{"fip on non-external network", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": n1["id"]}), 400, "BadRequest"},
		{"fip floating_network_id not a UUID", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": "public"}), 400, "HTTPBadRequest"},
		{"fip port_id not a UUID", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": ext["id"], "port_id": "vm-1"}), 400, "HTTPBadRequest"},
		{"fip on missing network", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": missing}), 404, "NetworkNotFound"},
		{"fip address taken", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": ext["id"], "floating_ip_address": gatewayIP(r1)}), 409, "IpAddressAlreadyAllocated"},
		{"fip without gateway path", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": ext["id"], "port_id": vmB["id"]}), 404, "ExternalGatewayForFloatingIPNotFound"},
		{"fip port already associated", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": ext["id"], "port_id": vmA["id"]}), 409, "FloatingIPPortAlreadyAssociated"},
		{"fip fixed ip not on port", "PUT", "/v2.0/floatingips/" + f1["id"].(string), nil, fip(map[string]any{"port_id": vmA["id"], "fixed_ip_address": "10.0.0.200"}), 400, "BadRequest"},
		{"fip to a router port", "POST", "/v2.0/floatingips", nil, fip(map[string]any{"floating_network_id": ext["id"], "port_id": if1["port_id"]}), 400, "BadRequest"},
		{"fip address by member", "POST", "/v2.0/floatingips", member, fip(map[string]any{"floating_network_id": ext["id"], "floating_ip_address": "203.0.113.99"}), 403, "PolicyNotAuthorized"},
		{"delete missing fip", "DELETE", "/v2.0/floatingips/" + missing, nil, nil, 404, "FloatingIPNotFound"},
		{"gateway on non-external network", "POST", "/v2.0/routers", nil, router(map[string]any{"external_gateway_info": map[string]any{"network_id": n1["id"]}}), 400, "BadRequest"},
		{"gateway with unknown key", "POST", "/v2.0/routers", nil, router(map[string]any{"external_gateway_info": map[string]any{"network_id": ext["id"], "colour": "red"}}), 400, "HTTPBadRequest"},
		{"routes on create", "POST", "/v2.0/routers", nil, router(map[string]any{"routes": []any{}}), 400, "HTTPBadRequest"},
		{"member sets distributed", "POST", "/v2.0/routers", member, router(map[string]any{"distributed": true}), 403, "PolicyNotAuthorized"},
		{"member sets enable_snat", "POST", "/v2.0/routers", member, router(map[string]any{"external_gateway_info": map[string]any{"network_id": ext["id"], "enable_snat": false}}), 403, "PolicyNotAuthorized"},
		{"ha on active router", "PUT", "/v2.0/routers/" + r2id, nil, router(map[string]any{"ha": true}), 400, "BadRequest"},
		{"subnet routed by another router", "PUT", "/v2.0/routers/" + r2id + "/add_router_interface", nil, map[string]any{"subnet_id": s1["id"]}, 409, "IpAddressAlreadyAllocated"},
		{"subnet already on router", "PUT", "/v2.0/routers/" + r1id + "/add_router_interface", nil, map[string]any{"subnet_id": s1["id"]}, 400, "BadRequest"},
		{"overlapping subnet", "PUT", "/v2.0/routers/" + r1id + "/add_router_interface", nil, map[string]any{"subnet_id": s2["id"]}, 400, "BadRequest"},
		{"subnet without gateway", "PUT", "/v2.0/routers/" + r2id + "/add_router_interface", nil, map[string]any{"subnet_id": s3["id"]}, 400, "BadRequest"},
		{"external subnet as interface", "PUT", "/v2.0/routers/" + r2id + "/add_router_interface", nil, map[string]any{"subnet_id": extSub["id"]}, 400, "BadRequest"},
		{"port with a device", "PUT", "/v2.0/routers/" + r2id + "/add_router_interface", nil, map[string]any{"port_id": bound["id"]}, 409, "PortInUse"},
		{"interface without subnet or port", "PUT", "/v2.0/routers/" + r2id + "/add_router_interface", nil, map[string]any{}, 400, "BadRequest"},
		{"interface with both", "PUT", "/v2.0/routers/" + r2id + "/add_router_interface", nil, map[string]any{"subnet_id": s2["id"], "port_id": vmB["id"]}, 400, "BadRequest"},
		{"interface on missing router", "PUT", "/v2.0/routers/" + missing + "/add_router_interface", nil, map[string]any{"subnet_id": s2["id"]}, 404, "RouterNotFound"},
		{"route nexthop outside", "PUT", "/v2.0/routers/" + r1id, nil, router(map[string]any{"routes": []any{map[string]any{"destination": "10.50.0.0/16", "nexthop": "192.168.77.1"}}}), 400, "InvalidRoutes"},
		{"route nexthop is the router", "PUT", "/v2.0/routers/" + r1id, nil, router(map[string]any{"routes": []any{map[string]any{"destination": "10.50.0.0/16", "nexthop": "10.0.0.1"}}}), 400, "InvalidRoutes"},
		{"route bad destination", "PUT", "/v2.0/routers/" + r1id, nil, router(map[string]any{"routes": []any{map[string]any{"destination": "nowhere", "nexthop": "10.0.0.9"}}}), 400, "InvalidRoutes"},
		{"remove missing interface by subnet", "PUT", "/v2.0/routers/" + r1id + "/remove_router_interface", nil, map[string]any{"subnet_id": s4["id"]}, 404, "RouterInterfaceNotFoundForSubnet"},
		{"remove missing interface by port", "PUT", "/v2.0/routers/" + r1id + "/remove_router_interface", nil, map[string]any{"port_id": vmA["id"]}, 404, "RouterInterfaceNotFound"},
		{"remove interface used by fip", "PUT", "/v2.0/routers/" + r1id + "/remove_router_interface", nil, map[string]any{"subnet_id": s1["id"]}, 409, "RouterInterfaceInUseByFloatingIP"},
		{"clear gateway used by fip", "PUT", "/v2.0/routers/" + r1id, nil, router(map[string]any{"external_gateway_info": nil}), 409, "RouterExternalGatewayInUseByFloatingIp"},
		{"delete router in use", "DELETE", "/v2.0/routers/" + r1id, nil, nil, 409, "RouterInUse"},
		{"delete interface port directly", "DELETE", "/v2.0/ports/" + if1["port_id"].(string), nil, nil, 409, "L3PortInUse"},
		{"detach interface port via port API", "PUT", "/v2.0/ports/" + if1["port_id"].(string), nil, map[string]any{"port": map[string]any{"device_owner": ""}}, 409, "L3PortInUse"},
		{"stale If-Match", "PUT", "/v2.0/routers/" + r1id, map[string]string{"If-Match": "revision_number=99"}, router(map[string]any{"name": "x"}), 412, "RevisionNumberConstraintFailed"},
		{"external network in use made internal", "PUT", "/v2.0/networks/" + ext["id"].(string), nil, map[string]any{"network": map[string]any{"router:external": false}}, 409, "ExternalNetworkInUse"},
		{"member sees no router", "GET", "/v2.0/routers/" + r1id, member, nil, 404, "RouterNotFound"},
		{"member cannot delete router", "DELETE", "/v2.0/routers/" + r1id, member, nil, 404, "RouterNotFound"},
	}
	for _, tc := range cases {
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
}

// TestL3TenantIsolation: with tokens, two projects build the same network
// (same CIDR) and neither can see, change, delete or attach to the
// other's objects: Neutron answers 404 as if they did not exist.
func TestL3TenantIsolation(t *testing.T) {
	s := newAPIServer(t, func(c *northbound.Config) {
		c.AuthStrategy = northbound.AuthToken
		c.Tokens = map[string]northbound.TokenEntry{
			"tok-admin": {ProjectID: "admin", Roles: []string{"admin"}},
			"tok-alice": {ProjectID: "alice", Roles: []string{"member"}},
			"tok-bob":   {ProjectID: "bob", Roles: []string{"member"}},
		}
	})
	admin := map[string]string{"X-Auth-Token": "tok-admin"}
	ext, _ := externalNet(s, admin, "203.0.113.0/24")
	type world struct {
		hdr                          map[string]string
		net, sub, router, port, fip  map[string]any
		iface                        map[string]any
		spareNet, spareSub, sparePrt map[string]any
	}
	build := func(token string) *world {
		w := &world{hdr: map[string]string{"X-Auth-Token": token}}
		w.net = s.create("networks", "network", map[string]any{"name": "net"}, w.hdr)
		w.sub = s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": w.net["id"], "cidr": "10.0.0.0/24"}, w.hdr)
		w.router = s.create("routers", "router", map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext["id"]}}, w.hdr)
		w.iface = s.put("/v2.0/routers/"+w.router["id"].(string)+"/add_router_interface", w.hdr, map[string]any{"subnet_id": w.sub["id"]})
		w.port = s.create("ports", "port", map[string]any{"network_id": w.net["id"]}, w.hdr)
		w.fip = s.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "port_id": w.port["id"]}, w.hdr)
		w.spareNet = s.create("networks", "network", map[string]any{"name": "spare"}, w.hdr)
		w.spareSub = s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": w.spareNet["id"], "cidr": "10.9.0.0/24"}, w.hdr)
		w.sparePrt = s.create("ports", "port", map[string]any{"network_id": w.spareNet["id"]}, w.hdr)
		return w
	}
	a, b := build("tok-alice"), build("tok-bob")
	_, ipA := fixedIP(a.port, 0)
	_, ipB := fixedIP(b.port, 0)
	if ipA != ipB || a.fip["floating_ip_address"] == b.fip["floating_ip_address"] || a.fip["status"] != "ACTIVE" || b.fip["router_id"] != b.router["id"] {
		t.Fatalf("same CIDR in two projects: %s/%s, floating %v/%v", ipA, ipB, a.fip, b.fip)
	}
	if code := s.do("GET", "/v2.0/routers", nil, nil, nil); code != 401 {
		t.Fatalf("no token: %d", code)
	}

	id := func(o map[string]any) string { return o["id"].(string) }
	for _, pair := range []struct {
		name    string
		me, oth *world
	}{{"bob vs alice", b, a}, {"alice vs bob", a, b}} {
		me, oth := pair.me, pair.oth
		cases := []struct {
			name, method, path string
			body               any
			wantType           string
		}{
			{"show router", "GET", "/v2.0/routers/" + id(oth.router), nil, "RouterNotFound"},
			{"update router", "PUT", "/v2.0/routers/" + id(oth.router), map[string]any{"router": map[string]any{"name": "mine"}}, "RouterNotFound"},
			{"delete router", "DELETE", "/v2.0/routers/" + id(oth.router), nil, "RouterNotFound"},
			{"tag router", "PUT", "/v2.0/routers/" + id(oth.router) + "/tags/x", nil, "RouterNotFound"},
			{"add interface to other's router", "PUT", "/v2.0/routers/" + id(oth.router) + "/add_router_interface", map[string]any{"subnet_id": id(me.spareSub)}, "RouterNotFound"},
			{"remove interface of other's router", "PUT", "/v2.0/routers/" + id(oth.router) + "/remove_router_interface", map[string]any{"subnet_id": id(oth.sub)}, "RouterNotFound"},
			{"attach other's subnet", "PUT", "/v2.0/routers/" + id(me.router) + "/add_router_interface", map[string]any{"subnet_id": id(oth.spareSub)}, "SubnetNotFound"},
			{"attach other's port", "PUT", "/v2.0/routers/" + id(me.router) + "/add_router_interface", map[string]any{"port_id": id(oth.sparePrt)}, "PortNotFound"},
			{"port on other's network", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": id(oth.net)}}, "NetworkNotFound"},
			{"show other's subnet", "GET", "/v2.0/subnets/" + id(oth.sub), nil, "SubnetNotFound"},
			{"show other's port", "GET", "/v2.0/ports/" + id(oth.port), nil, "PortNotFound"},
			{"show fip", "GET", "/v2.0/floatingips/" + id(oth.fip), nil, "FloatingIPNotFound"},
			{"update fip", "PUT", "/v2.0/floatingips/" + id(oth.fip), map[string]any{"floatingip": map[string]any{"port_id": nil}}, "FloatingIPNotFound"},
			{"delete fip", "DELETE", "/v2.0/floatingips/" + id(oth.fip), nil, "FloatingIPNotFound"},
			{"fip to other's port", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": ext["id"], "port_id": id(oth.sparePrt)}}, "PortNotFound"},
			{"delete other's port", "DELETE", "/v2.0/ports/" + id(oth.sparePrt), nil, "PortNotFound"},
		}
		for _, tc := range cases {
			t.Run(pair.name+"/"+tc.name, func(t *testing.T) {
				before := s.revision()
				var ne neutronError
				if code := s.do(tc.method, tc.path, me.hdr, tc.body, &ne); code != 404 || ne.NeutronError.Type != tc.wantType {
					t.Fatalf("got %d %+v, want 404 %s", code, ne.NeutronError, tc.wantType)
				}
				if after := s.revision(); after != before {
					t.Fatalf("revision moved from %d to %d", before, after)
				}
			})
		}
		for _, coll := range []string{"routers", "floatingips", "networks", "subnets", "ports"} {
			for _, o := range s.list("/v2.0/"+coll, me.hdr, coll) {
				if p := o["project_id"]; p != me.hdr["X-Auth-Token"][4:] && !(coll == "networks" || coll == "subnets") {
					t.Fatalf("%s lists %s of project %v", pair.name, coll, p)
				}
				if coll == "networks" && o["router:external"] != true && o["project_id"] != me.hdr["X-Auth-Token"][4:] {
					t.Fatalf("%s lists network %v", pair.name, o)
				}
			}
		}
	}
	if n := len(s.list("/v2.0/routers", admin, "routers")); n != 2 {
		t.Fatalf("admin sees %d routers", n)
	}
}

// TestIPAMConcurrentPortsThreeServers: 500 ports created concurrently
// through the three servers of a cluster get 500 distinct addresses and
// MACs (followers forward to the leader, which owns IPAM).
func TestIPAMConcurrentPortsThreeServers(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	n := servers[0].create("networks", "network", map[string]any{"name": "n"}, nil)
	servers[1].create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": n["id"], "cidr": "10.0.0.0/22"}, nil)
	const total, workers = 500, 30
	var (
		mu        sync.Mutex
		ips, macs = map[string]bool{}, map[string]bool{}
		wg        sync.WaitGroup
		errs      = make(chan error, total)
		jobs      = make(chan int)
		perServer [3]int
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := servers[w%3]
			for range jobs {
				var out map[string]map[string]any
				if code := s.do("POST", "/v2.0/ports", nil, map[string]any{"port": map[string]any{"network_id": n["id"]}}, &out); code != 201 {
					errs <- fmt.Errorf("create through %s: %d", s.base, code)
					continue
				}
				_, ip := fixedIP(out["port"], 0)
				mac := out["port"]["mac_address"].(string)
				mu.Lock()
				if ips[ip] || macs[mac] {
					errs <- fmt.Errorf("duplicate %s / %s", ip, mac)
				}
				ips[ip], macs[mac] = true, true
				perServer[w%3]++
				mu.Unlock()
			}
		}(w)
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
	if len(ips) != total || len(macs) != total || perServer[0] == 0 || perServer[1] == 0 || perServer[2] == 0 {
		t.Fatalf("%d addresses, %d MACs, per server %v", len(ips), len(macs), perServer)
	}
	// Every replica agrees (stale reads answer from the server's own state).
	for _, s := range servers {
		eventually(t, 10*time.Second, func() error {
			ports := s.list("/v2.0/ports?stale&network_id="+n["id"].(string)+"&fields=fixed_ips&fields=mac_address", nil, "ports")
			seen := map[string]bool{}
			for _, p := range ports {
				_, ip := fixedIP(p, 0)
				if seen[ip] {
					return fmt.Errorf("address %s twice on %s", ip, s.base)
				}
				seen[ip] = true
			}
			if len(seen) != total {
				return fmt.Errorf("%d ports on %s", len(seen), s.base)
			}
			return nil
		})
	}
}
