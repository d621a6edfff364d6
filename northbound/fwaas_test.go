package northbound_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/fwaas_v2/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/fwaas_v2/policies"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/fwaas_v2/rules"

	"neutrino/northbound"
)

// fwSite is a router with one interface (a firewall-able router port) and
// a VM port on its subnet, in the project of hdr (nil: the default).
type fwSite struct {
	routerPort, vmPort, network string
}

func newFWSite(s *apiServer, hdr map[string]string, cidr string) fwSite {
	s.t.Helper()
	n := s.create("networks", "network", map[string]any{"name": "fw-net"}, hdr)
	sub := s.create("subnets", "subnet", map[string]any{"ip_version": ipVersionOf(cidr), "network_id": n["id"], "cidr": cidr}, hdr)
	r := s.create("routers", "router", map[string]any{"name": "fw-r"}, hdr)
	ifc := s.put("/v2.0/routers/"+r["id"].(string)+"/add_router_interface", hdr, map[string]any{"subnet_id": sub["id"]})
	vm := s.create("ports", "port", map[string]any{"network_id": n["id"], "device_owner": "compute:nova", "device_id": "vm-" + cidr}, hdr)
	return fwSite{routerPort: ifc["port_id"].(string), vmPort: vm["id"].(string), network: n["id"].(string)}
}

func readRevision(s *apiServer) uint64 {
	s.t.Helper()
	code, h := s.doRaw("GET", "/v2.0/fwaas/firewall_rules", nil, nil, nil)
	var rev uint64
	if _, err := fmt.Sscan(h.Get("X-Neutrino-Revision"), &rev); code != 200 || err != nil {
		s.t.Fatalf("revision of a read: %d %v", code, err)
	}
	return rev
}

// TestFWaaSGophercloud drives the FWaaS v2 lifecycle with gophercloud's
// fwaas_v2 packages against a 3-server cluster, each call through another
// server.
func TestFWaaSGophercloud(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	n := 0
	c := func() *gophercloud.ServiceClient { n++; return gopher(servers[n%3], "", "") }
	s := servers[0]
	site := newFWSite(s, nil, "10.1.0.0/24")

	var exts map[string][]map[string]any
	s.do("GET", "/v2.0/extensions", nil, nil, &exts)
	if !slices.ContainsFunc(exts["extensions"], func(x map[string]any) bool { return x["alias"] == "fwaas_v2" }) {
		t.Fatal("fwaas_v2 is not in /v2.0/extensions")
	}

	enabled := true
	ssh, err := rules.Create(ctx, c(), rules.CreateOpts{Name: "ssh", Protocol: rules.ProtocolTCP, Action: rules.ActionAllow,
		DestinationIPAddress: "10.1.0.5", DestinationPort: "22", Enabled: &enabled}).Extract()
	if err != nil || ssh.Protocol != "tcp" || ssh.DestinationIPAddress != "10.1.0.5/32" || ssh.DestinationPort != "22" || ssh.IPVersion != 4 || !ssh.Enabled {
		t.Fatalf("ssh rule: %v %+v", err, ssh)
	}
	web, err := rules.Create(ctx, c(), rules.CreateOpts{Name: "web", Protocol: rules.ProtocolTCP, Action: rules.ActionReject,
		SourcePort: "1024:65535", DestinationPort: "80:81"}).Extract()
	if err != nil || web.SourcePort != "1024:65535" || web.DestinationPort != "80:81" || web.Action != "reject" {
		t.Fatalf("web rule: %v %+v", err, web)
	}
	anyv6, err := rules.Create(ctx, c(), rules.CreateOpts{Name: "v6", Protocol: rules.ProtocolAny, Action: rules.ActionDeny,
		IPVersion: gophercloud.IPv6, SourceIPAddress: "2001:db8::1:0/112"}).Extract()
	if err != nil || anyv6.Protocol != "" || anyv6.SourceIPAddress != "2001:db8::1:0/112" || anyv6.IPVersion != 6 {
		t.Fatalf("v6 rule: %v %+v", err, anyv6)
	}
	// Writes through a follower are forwarded, committed and answer the
	// revision; ?wait=realized is accepted like on every resource.
	var waited map[string]map[string]any
	code, hdr := servers[2].doRaw("POST", "/v2.0/fwaas/firewall_rules?wait=realized", nil,
		map[string]any{"firewall_rule": map[string]any{"name": "waited", "protocol": "udp", "action": "deny"}}, &waited)
	if code != 201 || hdr.Get(northbound.HeaderRevision) == "" || waited["firewall_rule"]["name"] != "waited" {
		t.Fatalf("waited create: %d %v %v", code, hdr, waited)
	}
	s.do("DELETE", "/v2.0/fwaas/firewall_rules/"+waited["firewall_rule"]["id"].(string), nil, nil, nil)
	audited := true
	pol, err := policies.Create(ctx, c(), policies.CreateOpts{Name: "in", FirewallRules: []string{ssh.ID}, Audited: &audited}).Extract()
	if err != nil || !pol.Audited || !slices.Equal(pol.Rules, []string{ssh.ID}) {
		t.Fatalf("policy: %v %+v", err, pol)
	}
	// insert_rule: before, after, and the rule's policies follow.
	pol, err = policies.InsertRule(ctx, c(), pol.ID, policies.InsertRuleOpts{ID: web.ID, InsertBefore: ssh.ID}).Extract()
	if err != nil || pol.Audited || !slices.Equal(pol.Rules, []string{web.ID, ssh.ID}) {
		t.Fatalf("insert before: %v %+v", err, pol)
	}
	pol, err = policies.InsertRule(ctx, c(), pol.ID, policies.InsertRuleOpts{ID: anyv6.ID, InsertAfter: web.ID}).Extract()
	if err != nil || !slices.Equal(pol.Rules, []string{web.ID, anyv6.ID, ssh.ID}) {
		t.Fatalf("insert after: %v %+v", err, pol)
	}
	if got, err := rules.Get(ctx, c(), web.ID).Extract(); err != nil || !slices.Equal(got.FirewallPolicyID, []string{pol.ID}) {
		t.Fatalf("rule's policies: %v %+v", err, got)
	}
	if _, err := policies.InsertRule(ctx, c(), pol.ID, policies.InsertRuleOpts{ID: web.ID, InsertBefore: ssh.ID}).Extract(); !isStatus(err, http.StatusConflict) {
		t.Fatalf("inserting a rule twice: %v", err)
	}
	// A repeated insert_rule (same Idempotency-Key) answers the first
	// outcome, the bare policy, without a second write.
	key := map[string]string{"Idempotency-Key": "fw-insert-1"}
	var first, again map[string]any
	code1, h1 := s.doRaw("PUT", "/v2.0/fwaas/firewall_policies/"+pol.ID+"/remove_rule", key, map[string]any{"firewall_rule_id": ssh.ID}, &first)
	code2, h2 := servers[1].doRaw("PUT", "/v2.0/fwaas/firewall_policies/"+pol.ID+"/remove_rule", key, map[string]any{"firewall_rule_id": ssh.ID}, &again)
	if code1 != 200 || code2 != 200 || h2.Get(northbound.HeaderReplayed) == "" || h1.Get("X-Neutrino-Revision") == "" ||
		fmt.Sprint(first["firewall_rules"]) != fmt.Sprint(again["firewall_rules"]) || first["revision_number"] != again["revision_number"] {
		t.Fatalf("replayed remove_rule: %d %v / %d %v %v", code1, first, code2, again, h2)
	}
	if pol, err = policies.InsertRule(ctx, c(), pol.ID, policies.InsertRuleOpts{ID: ssh.ID, InsertAfter: anyv6.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	pol, err = policies.RemoveRule(ctx, c(), pol.ID, anyv6.ID).Extract()
	if err != nil || !slices.Equal(pol.Rules, []string{web.ID, ssh.ID}) {
		t.Fatalf("remove rule: %v %+v", err, pol)
	}
	// Audited again, then a change of one of its rules unaudits it.
	pol, err = policies.Update(ctx, c(), pol.ID, policies.UpdateOpts{Audited: &audited}).Extract()
	if err != nil || !pol.Audited {
		t.Fatalf("audit: %v %+v", err, pol)
	}
	disabled := false
	if _, err := rules.Update(ctx, c(), web.ID, rules.UpdateOpts{Enabled: &disabled}).Extract(); err != nil {
		t.Fatal(err)
	}
	if pol, err = policies.Get(ctx, c(), pol.ID).Extract(); err != nil || pol.Audited {
		t.Fatalf("policy after its rule changed: %v %+v", err, pol)
	}

	g, err := groups.Create(ctx, c(), groups.CreateOpts{Name: "edge", IngressFirewallPolicyID: pol.ID, Ports: []string{site.routerPort}}).Extract()
	if err != nil || g.Status != "ACTIVE" || !g.AdminStateUp || g.IngressFirewallPolicyID != pol.ID || g.EgressFirewallPolicyID != "" {
		t.Fatalf("group: %v %+v", err, g)
	}
	// The project's default group came with the first group.
	pages, err := groups.List(c(), groups.ListOpts{Name: "default"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := groups.ExtractGroups(pages)
	if err != nil || len(defaults) != 1 || defaults[0].Status != "INACTIVE" || defaults[0].IngressFirewallPolicyID == "" {
		t.Fatalf("default group: %v %+v", err, defaults)
	}
	if in, err := policies.Get(ctx, c(), defaults[0].IngressFirewallPolicyID).Extract(); err != nil || in.Name != "default ingress" || len(in.Rules) != 2 {
		t.Fatalf("default ingress policy: %v %+v", err, in)
	}
	// A port in one group cannot join another; rule and policy in use.
	if _, err := groups.Create(ctx, c(), groups.CreateOpts{Name: "dup", Ports: []string{site.routerPort}}).Extract(); !isStatus(err, http.StatusConflict) {
		t.Fatalf("port in two groups: %v", err)
	}
	if err := rules.Delete(ctx, c(), ssh.ID).ExtractErr(); !isStatus(err, http.StatusConflict) {
		t.Fatalf("delete rule in use: %v", err)
	}
	if err := policies.Delete(ctx, c(), pol.ID).ExtractErr(); !isStatus(err, http.StatusConflict) {
		t.Fatalf("delete policy in use: %v", err)
	}
	if err := groups.Delete(ctx, c(), g.ID).ExtractErr(); !isStatus(err, http.StatusConflict) {
		t.Fatalf("delete group with ports: %v", err)
	}
	ports := []string{site.routerPort, site.vmPort}
	down := false
	g, err = groups.Update(ctx, c(), g.ID, groups.UpdateOpts{Ports: &ports, EgressFirewallPolicyID: &pol.ID, AdminStateUp: &down}).Extract()
	if err != nil || g.Status != "DOWN" || len(g.Ports) != 2 || g.EgressFirewallPolicyID != pol.ID {
		t.Fatalf("group update: %v %+v", err, g)
	}
	up := true
	if g, err = groups.Update(ctx, c(), g.ID, groups.UpdateOpts{AdminStateUp: &up}).Extract(); err != nil || g.Status != "ACTIVE" {
		t.Fatalf("group up: %v %+v", err, g)
	}
	if g, err = groups.RemoveEgressPolicy(ctx, c(), g.ID).Extract(); err != nil || g.EgressFirewallPolicyID != "" {
		t.Fatalf("remove egress policy: %v %+v", err, g)
	}
	// Deleting the VM port takes it out of the group.
	s.do("DELETE", "/v2.0/ports/"+site.vmPort, nil, nil, nil)
	if g, err = groups.Get(ctx, c(), g.ID).Extract(); err != nil || !slices.Equal(g.Ports, []string{site.routerPort}) {
		t.Fatalf("group after port delete: %v %+v", err, g)
	}
	// Filters and fields like the other resources.
	rp, err := rules.List(c(), rules.ListOpts{Action: rules.ActionReject}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rules.ExtractRules(rp); err != nil || len(got) != 1 || got[0].ID != web.ID {
		t.Fatalf("filtered rules: %v %+v", err, got)
	}
	var shown map[string]map[string]any
	s.do("GET", "/v2.0/fwaas/firewall_groups/"+g.ID+"?fields=status&fields=id", nil, nil, &shown)
	if len(shown["firewall_group"]) != 2 || shown["firewall_group"]["status"] != "ACTIVE" {
		t.Fatalf("fields: %v", shown)
	}

	// Tear down in dependency order.
	empty := []string{}
	if _, err := groups.Update(ctx, c(), g.ID, groups.UpdateOpts{Ports: &empty}).Extract(); err != nil {
		t.Fatal(err)
	}
	if err := groups.Delete(ctx, c(), g.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := policies.Delete(ctx, c(), pol.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ssh.ID, web.ID, anyv6.ID} {
		if err := rules.Delete(ctx, c(), id).ExtractErr(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rules.Get(ctx, c(), ssh.ID).Extract(); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("deleted rule: %v", err)
	}
	// An admin may delete the default group; its policies go with it.
	if err := groups.Delete(ctx, c(), defaults[0].ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Get(ctx, c(), defaults[0].IngressFirewallPolicyID).Extract(); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("default policy after its group: %v", err)
	}
}

// TestFWaaSBadInput: every invalid request is a 4xx in Neutron's format
// and changes nothing.
func TestFWaaSBadInput(t *testing.T) {
	s := newAPIServer(t, nil)
	site := newFWSite(s, nil, "10.1.0.0/24")
	dhcp := s.create("ports", "port", map[string]any{"network_id": site.network, "device_owner": "network:dhcp"}, nil)
	rule := s.create("fwaas/firewall_rules", "firewall_rule", map[string]any{"protocol": "tcp", "destination_port": "22", "action": "allow"}, nil)
	other := s.create("fwaas/firewall_rules", "firewall_rule", map[string]any{"protocol": "udp", "action": "deny"}, nil)
	pol := s.create("fwaas/firewall_policies", "firewall_policy", map[string]any{"firewall_rules": []string{rule["id"].(string)}}, nil)
	grp := s.create("fwaas/firewall_groups", "firewall_group", map[string]any{"ingress_firewall_policy_id": pol["id"], "ports": []string{site.routerPort}}, nil)
	rid, pid, gid := rule["id"].(string), pol["id"].(string), grp["id"].(string)
	def := s.list("/v2.0/fwaas/firewall_groups?name=default", nil, "firewall_groups")
	if len(def) != 1 {
		t.Fatalf("default groups: %v", def)
	}
	defID := def[0]["id"].(string)
	ruleBody := func(kv ...any) map[string]any {
		b := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			b[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"firewall_rule": b}
	}
	const rules, policies, groups = "/v2.0/fwaas/firewall_rules", "/v2.0/fwaas/firewall_policies", "/v2.0/fwaas/firewall_groups"
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		body               any
		code               int
		typ                string
	}{
		{"bad protocol", "POST", rules, nil, ruleBody("protocol", "gre"), 400, "FirewallRuleInvalidProtocol"},
		{"bad action", "POST", rules, nil, ruleBody("action", "drop"), 400, ""},
		{"bad ip version", "POST", rules, nil, ruleBody("ip_version", 5), 400, ""},
		{"address vs version", "POST", rules, nil, ruleBody("ip_version", 6, "source_ip_address", "10.0.0.1"), 400, "FirewallIpAddressConflict"},
		{"bad address", "POST", rules, nil, ruleBody("destination_ip_address", "10.0.0.300"), 400, ""},
		{"port without protocol", "POST", rules, nil, ruleBody("destination_port", "80"), 400, "FirewallRuleWithPortWithoutProtocolInvalid"},
		{"icmp with port", "POST", rules, nil, ruleBody("protocol", "icmp", "destination_port", "80"), 400, "FirewallRuleInvalidICMPParameter"},
		{"port range backwards", "POST", rules, nil, ruleBody("protocol", "tcp", "destination_port", "90:80"), 400, "FirewallRuleInvalidPortValue"},
		{"port out of range", "POST", rules, nil, ruleBody("protocol", "tcp", "source_port", "70000"), 400, "FirewallRuleInvalidPortValue"},
		{"unknown attribute", "POST", rules, nil, ruleBody("priority", 1), 400, ""},
		{"read-only attribute", "POST", rules, nil, ruleBody("firewall_policy_id", []string{pid}), 400, ""},
		{"update to icmp with port", "PUT", rules + "/" + rid, nil, ruleBody("protocol", "icmp"), 400, "FirewallRuleInvalidICMPParameter"},
		{"member shares rule", "POST", rules, alice, ruleBody("shared", true), 403, ""},
		{"rule in use", "DELETE", rules + "/" + rid, nil, nil, 409, "FirewallRuleInUse"},
		{"missing rule", "DELETE", rules + "/f0000000-0000-0000-0000-000000000000", nil, nil, 404, "FirewallRuleNotFound"},
		{"policy with missing rule", "POST", policies, nil, map[string]any{"firewall_policy": map[string]any{"firewall_rules": []string{"nope"}}}, 404, "FirewallRuleNotFound"},
		{"policy lists rule twice", "PUT", policies + "/" + pid, nil, map[string]any{"firewall_policy": map[string]any{"firewall_rules": []string{rid, rid}}}, 409, "FirewallRuleAlreadyAssociated"},
		{"reserved policy name", "POST", policies, nil, map[string]any{"firewall_policy": map[string]any{"name": "default ingress"}}, 409, "FirewallDefaultParameterExists"},
		{"policy in use", "DELETE", policies + "/" + pid, nil, nil, 409, "FirewallPolicyInUse"},
		{"insert without rule", "PUT", policies + "/" + pid + "/insert_rule", nil, map[string]any{}, 400, "FirewallRuleInfoMissing"},
		{"insert present rule", "PUT", policies + "/" + pid + "/insert_rule", nil, map[string]any{"firewall_rule_id": rid}, 409, "FirewallRuleAlreadyAssociated"},
		{"insert before stranger", "PUT", policies + "/" + pid + "/insert_rule", nil, map[string]any{"firewall_rule_id": other["id"], "insert_before": "nope"}, 400, "FirewallRuleNotAssociatedWithPolicy"},
		{"remove absent rule", "PUT", policies + "/" + pid + "/remove_rule", nil, map[string]any{"firewall_rule_id": other["id"]}, 400, "FirewallRuleNotAssociatedWithPolicy"},
		{"group missing policy", "POST", groups, nil, map[string]any{"firewall_group": map[string]any{"egress_firewall_policy_id": "nope"}}, 404, "FirewallPolicyNotFound"},
		{"port in another group", "POST", groups, nil, map[string]any{"firewall_group": map[string]any{"ports": []string{site.routerPort}}}, 409, "FirewallGroupPortInUse"},
		{"dhcp port", "PUT", groups + "/" + gid, nil, map[string]any{"firewall_group": map[string]any{"ports": []any{dhcp["id"]}}}, 409, "FirewallGroupPortInvalid"},
		{"missing port", "PUT", groups + "/" + gid, nil, map[string]any{"firewall_group": map[string]any{"ports": []string{"nope"}}}, 404, "PortNotFound"},
		{"group with ports", "DELETE", groups + "/" + gid, nil, nil, 409, "FirewallGroupInUse"},
		{"second default", "POST", groups, nil, map[string]any{"firewall_group": map[string]any{"name": "default"}}, 409, "FirewallDefaultParameterExists"},
		{"change default policy", "PUT", policies + "/" + def[0]["ingress_firewall_policy_id"].(string), nil, map[string]any{"firewall_policy": map[string]any{"description": "x"}}, 409, "FirewallDefaultObjectUpdateRestricted"},
		{"rename default", "PUT", groups + "/" + defID, nil, map[string]any{"firewall_group": map[string]any{"name": "x"}}, 409, "FirewallDefaultObjectUpdateRestricted"},
		{"status is read-only", "PUT", groups + "/" + gid, nil, map[string]any{"firewall_group": map[string]any{"status": "ERROR"}}, 400, ""},
		{"malformed body", "POST", groups, nil, "{", 400, ""},
	}
	for _, c := range cases {
		before := readRevision(s)
		var out map[string]any
		code := s.do(c.method, c.path, c.hdr, c.body, &out)
		if code != c.code {
			t.Errorf("%s: status %d %v, want %d", c.name, code, out, c.code)
			continue
		}
		ne, _ := out["NeutronError"].(map[string]any)
		if ne == nil || ne["message"] == "" || (c.typ != "" && ne["type"] != c.typ) {
			t.Errorf("%s: body %v, want a NeutronError of type %q", c.name, out, c.typ)
		}
		if after := readRevision(s); after != before {
			t.Errorf("%s: rejected but revision moved %d -> %d", c.name, before, after)
		}
	}
}

// TestFWaaSProjects: a member sees its own and shared objects only, cannot
// attach another project's port, and cannot delete its default group.
func TestFWaaSProjects(t *testing.T) {
	s := newAPIServer(t, nil)
	bobSite := newFWSite(s, bob, "10.2.0.0/24")
	aliceSite := newFWSite(s, alice, "10.3.0.0/24")
	bobRule := s.create("fwaas/firewall_rules", "firewall_rule", map[string]any{"name": "bob-only", "protocol": "tcp", "action": "allow"}, bob)
	shared := s.create("fwaas/firewall_rules", "firewall_rule", map[string]any{"name": "shared", "shared": true, "action": "deny"}, nil)

	seen := s.list("/v2.0/fwaas/firewall_rules", alice, "firewall_rules")
	names := []string{}
	for _, r := range seen {
		names = append(names, r["name"].(string))
	}
	if slices.Contains(names, "bob-only") || !slices.Contains(names, "shared") {
		t.Fatalf("alice sees rules %v", names)
	}
	var out map[string]any
	checkNeutronError(t, s.do("GET", "/v2.0/fwaas/firewall_rules/"+bobRule["id"].(string), alice, nil, &out), 404, out, "FirewallRuleNotFound")
	checkNeutronError(t, s.do("DELETE", "/v2.0/fwaas/firewall_rules/"+shared["id"].(string), alice, nil, &out), 403, out, "")
	// alice's policy may use the shared rule, not bob's.
	s.create("fwaas/firewall_policies", "firewall_policy", map[string]any{"firewall_rules": []string{shared["id"].(string)}}, alice)
	checkNeutronError(t, s.do("POST", "/v2.0/fwaas/firewall_policies", alice,
		map[string]any{"firewall_policy": map[string]any{"firewall_rules": []string{bobRule["id"].(string)}}}, &out), 404, out, "FirewallRuleNotFound")

	for _, port := range []string{bobSite.routerPort, bobSite.vmPort} {
		checkNeutronError(t, s.do("POST", "/v2.0/fwaas/firewall_groups", alice,
			map[string]any{"firewall_group": map[string]any{"ports": []string{aliceSite.vmPort, port}}}, &out), 404, out, "PortNotFound")
	}
	// The admin sees the port, but it is not the group's project's.
	checkNeutronError(t, s.do("POST", "/v2.0/fwaas/firewall_groups", nil,
		map[string]any{"firewall_group": map[string]any{"project_id": "alice", "ports": []string{bobSite.vmPort}}}, &out), 409, out, "FirewallGroupPortInvalidProject")
	// The failed creates made alice's default group (as neutron-fwaas
	// does on a project's first use), and nothing else.
	mine := s.list("/v2.0/fwaas/firewall_groups", alice, "firewall_groups")
	if len(mine) != 1 || mine[0]["name"] != "default" || mine[0]["project_id"] != "alice" {
		t.Fatalf("alice's groups: %v", mine)
	}
	g := s.create("fwaas/firewall_groups", "firewall_group", map[string]any{"ports": []string{aliceSite.vmPort, aliceSite.routerPort}}, alice)
	if g["status"] != "INACTIVE" || len(g["ports"].([]any)) != 2 {
		t.Fatalf("alice's group: %v", g)
	}
	checkNeutronError(t, s.do("DELETE", "/v2.0/fwaas/firewall_groups/"+mine[0]["id"].(string), alice, nil, &out), 409, out, "FirewallGroupCannotRemoveDefault")
	if got := s.list("/v2.0/fwaas/firewall_groups", bob, "firewall_groups"); len(got) != 1 || got[0]["name"] != "default" {
		t.Fatalf("bob sees groups %v", got)
	}
}
