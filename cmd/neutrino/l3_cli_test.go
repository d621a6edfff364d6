package main

import (
	"reflect"
	"strings"
	"testing"
)

const router1 = `{"id": "r1", "name": "edge", "project_id": "p1", "status": "ACTIVE", "admin_state_up": true,
	"external_gateway_info": null, "routes": [], "tags": [], "revision_number": 1}`

// router1gw is router1 as an admin sees it with a scheduled gateway.
const router1gw = `{"id": "r1", "name": "edge", "project_id": "p1", "status": "ACTIVE", "admin_state_up": true,
	"external_gateway_info": {"network_id": "n1", "enable_snat": true, "external_fixed_ips": []}, "routes": [], "tags": [], "revision_number": 2,
	"neutrino:gateway_chassis": ["gw2", "gw1"], "neutrino:active_gateway_chassis": "gw2", "neutrino:gateway_preempt": false}`

// TestL3Commands: router gateway, interfaces and routes, floating IPs,
// and the security group rule's missing update, against a fake API.
func TestL3Commands(t *testing.T) {
	base := map[string]string{
		"GET /v2.0/routers/edge":                       notFound,
		"GET /v2.0/routers":                            `200 {"routers": [` + router1 + `]}`,
		"GET /v2.0/networks/a":                         notFound,
		"GET /v2.0/networks":                           "200 {\"networks\": [" + net1 + "]}",
		"GET /v2.0/subnets/s1":                         `200 {"subnet": {"id": "s1", "name": "sn"}}`,
		"GET /v2.0/ports/p1":                           `200 {"port": {"id": "p1", "name": "vm"}}`,
		"PUT /v2.0/routers/r1":                         `200 {"router": ` + router1gw + `}`,
		"POST /v2.0/routers":                           `201 {"router": ` + router1gw + `}`,
		"POST /v2.0/floatingips":                       `201 {"floatingip": {"id": "f1", "floating_ip_address": "203.0.113.5", "status": "DOWN"}}`,
		"GET /v2.0/floatingips/f1":                     `200 {"floatingip": {"id": "f1"}}`,
		"PUT /v2.0/floatingips/f1":                     `200 {"floatingip": {"id": "f1", "port_id": null}}`,
		"PUT /v2.0/routers/r1/add_router_interface":    `200 {"id": "r1", "port_id": "p9", "subnet_id": "s1", "network_id": "n1", "project_id": "p1"}`,
		"PUT /v2.0/routers/r1/remove_router_interface": `200 {"id": "r1", "port_id": "p1", "subnet_id": "s1", "network_id": "n1", "project_id": "p1"}`,
	}
	tests := []struct {
		name       string
		args       []string
		wantLast   string
		wantBody   string
		wantOutHas string
		wantErrHas string
	}{
		{"set gateway", []string{"router", "set", "edge", "--external-gateway", "a", "--disable-snat"},
			"PUT /v2.0/routers/r1", `{"router": {"external_gateway_info": {"network_id": "n1", "enable_snat": false}}}`, "", ""},
		{"clear gateway", []string{"router", "set", "edge", "--no-external-gateway"},
			"PUT /v2.0/routers/r1", `{"router": {"external_gateway_info": null}}`, "", ""},
		{"routes", []string{"router", "set", "edge", "--route", "destination=10.9.0.0/16,gateway=10.0.0.9"},
			"PUT /v2.0/routers/r1", `{"router": {"routes": [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9"}]}}`, "", ""},
		{"bad route", []string{"router", "set", "edge", "--route", "destination=10.9.0.0/16"}, "", "", "", "gateway= is required"},
		{"gateway chassis", []string{"router", "set", "edge", "--gateway-chassis", "gw2,gw1", "--gateway-chassis", "gw3", "--gateway-preempt"},
			"PUT /v2.0/routers/r1", `{"router": {"neutrino:gateway_chassis": ["gw2", "gw1", "gw3"], "neutrino:gateway_preempt": true}}`,
			"neutrino:active_gateway_chassis  gw2", ""},
		{"scheduled gateway chassis", []string{"router", "set", "edge", "--no-gateway-chassis", "--no-gateway-preempt"},
			"PUT /v2.0/routers/r1", `{"router": {"neutrino:gateway_chassis": null, "neutrino:gateway_preempt": false}}`, "", ""},
		{"create with gateway chassis", []string{"router", "create", "edge2", "--external-gateway", "a", "--gateway-chassis", "gw1"},
			"POST /v2.0/routers", `{"router": {"name": "edge2", "external_gateway_info": {"network_id": "n1"}, "neutrino:gateway_chassis": ["gw1"]}}`,
			"neutrino:gateway_chassis         gw2, gw1", ""},
		{"gateway preempt switches exclude each other", []string{"router", "set", "edge", "--gateway-preempt", "--no-gateway-preempt"}, "", "", "", "none of the others can be"},
		{"add interface by subnet", []string{"router", "add", "interface", "edge", "--subnet", "s1"},
			"PUT /v2.0/routers/r1/add_router_interface", `{"subnet_id": "s1"}`, "port_id     p9", ""},
		{"remove interface by port", []string{"router", "remove", "interface", "edge", "--port", "p1"},
			"PUT /v2.0/routers/r1/remove_router_interface", `{"port_id": "p1"}`, "", ""},
		{"interface needs subnet or port", []string{"router", "add", "interface", "edge"}, "", "", "", "at least one of the flags"},
		{"floating ip create", []string{"floating-ip", "create", "--network", "a", "--port", "p1"},
			"POST /v2.0/floatingips", `{"floatingip": {"floating_network_id": "n1", "port_id": "p1"}}`, "203.0.113.5", ""},
		{"floating ip unset port", []string{"floating-ip", "set", "f1", "--no-port"},
			"PUT /v2.0/floatingips/f1", `{"floatingip": {"port_id": null}}`, "", ""},
		{"rules have no update", []string{"security-group-rule", "set", "x", "--direction", "egress"}, "", "", "", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, out, errOut, code := cli(t, base, nil, tt.args...)
			if tt.wantErrHas != "" {
				if code == 0 || !strings.Contains(errOut, tt.wantErrHas) {
					t.Fatalf("exit %d, stderr %q, want %q", code, errOut, tt.wantErrHas)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			lines := f.lines()
			if lines[len(lines)-1] != tt.wantLast {
				t.Fatalf("requests %q, want last %q", lines, tt.wantLast)
			}
			bodies := f.bodies()
			if got, want := bodies[len(bodies)-1], jsonValue(t, tt.wantBody); !reflect.DeepEqual(got, want) {
				t.Fatalf("body %v, want %v", got, want)
			}
			if !strings.Contains(out, tt.wantOutHas) {
				t.Fatalf("stdout %q, want %q", out, tt.wantOutHas)
			}
		})
	}
}
