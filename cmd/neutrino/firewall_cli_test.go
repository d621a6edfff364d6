package main

import (
	"reflect"
	"strings"
	"testing"
)

// TestFirewallCommands: `neutrino firewall ...` reaches the FWaaS
// collections, resolves policies and rules by name and sends insert_rule
// with the reference rule's id.
func TestFirewallCommands(t *testing.T) {
	replies := map[string]string{
		"GET /v2.0/fwaas/firewall_policies":                `200 {"firewall_policies": [{"id": "p1", "name": "in"}]}`,
		"GET /v2.0/fwaas/firewall_rules":                   `200 {"firewall_rules": [{"id": "r1", "name": "ssh"}, {"id": "r2", "name": "web"}]}`,
		"POST /v2.0/fwaas/firewall_groups":                 `201 {"firewall_group": {"id": "g1", "name": "edge", "status": "ACTIVE", "admin_state_up": true, "ports": ["port-1"]}}`,
		"PUT /v2.0/fwaas/firewall_policies/p1/insert_rule": `200 {"id": "p1", "name": "in", "firewall_rules": ["r2", "r1"], "audited": false}`,
	}
	f, out, errOut, code := cli(t, replies, nil, "firewall", "group", "create", "edge", "--ingress-firewall-policy", "in",
		"--port", "port-1", "--no-egress-firewall-policy")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := jsonValue(t, `{"firewall_group": {"name": "edge", "ingress_firewall_policy_id": "p1", "egress_firewall_policy_id": null, "ports": ["port-1"]}}`)
	if got := f.bodies()[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}
	if !strings.Contains(out, "ACTIVE") || !strings.Contains(out, "UP") {
		t.Errorf("create output:\n%s", out)
	}
	f, out, errOut, code = cli(t, replies, nil, "firewall", "policy", "insert-rule", "in", "web", "--before", "ssh")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if last := f.lines()[len(f.lines())-1]; last != "PUT /v2.0/fwaas/firewall_policies/p1/insert_rule" {
		t.Fatalf("requests: %q", f.lines())
	}
	want = jsonValue(t, `{"firewall_rule_id": "r2", "insert_before": "r1"}`)
	if got := f.bodies()[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("body = %v, want %v", got, want)
	}
	if !strings.Contains(out, "r2") {
		t.Errorf("insert-rule output:\n%s", out)
	}
}
