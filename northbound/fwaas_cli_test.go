package northbound_test

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestFWaaSCLI drives the FWaaS v2 lifecycle with Debian's `openstack
// firewall group ...` (python3-neutronclient's OSC plugin), each command
// through another server of a 3-server cluster, names resolved by the
// client as usual.
func TestFWaaSCLI(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatalf("the openstack CLI is not installed: %v", err)
	}
	servers := newAPICluster(t, 3, nil)
	s := func(i int) *apiServer { return servers[i%3] }
	site := newFWSite(servers[0], nil, "10.50.0.0/24")

	var ssh, web, pol, g map[string]any
	cliJSON(t, s(0), &ssh, "firewall", "group", "rule", "create", "--name", "cli-ssh", "--protocol", "tcp",
		"--destination-port", "22", "--destination-ip-address", "10.50.0.0/24", "--action", "allow")
	if ssh["Protocol"] != "tcp" || ssh["Destination Port"] != "22" || ssh["Action"] != "allow" {
		t.Fatalf("rule: %v", ssh)
	}
	cliJSON(t, s(1), &web, "firewall", "group", "rule", "create", "--name", "cli-web", "--protocol", "tcp",
		"--destination-port", "80:81", "--action", "reject", "--disable-rule")
	if web["Enabled"] != false || web["Destination Port"] != "80:81" {
		t.Fatalf("rule: %v", web)
	}
	cliJSON(t, s(2), &pol, "firewall", "group", "policy", "create", "--firewall-rule", "cli-ssh", "cli-pol")
	cliOK(t, s(0), "firewall", "group", "policy", "add", "rule", "--insert-before", "cli-ssh", "cli-pol", "cli-web")
	cliJSON(t, s(1), &pol, "firewall", "group", "policy", "show", "cli-pol")
	if got := fmt.Sprint(pol["Firewall Rules"]); got != fmt.Sprint([]any{web["ID"], ssh["ID"]}) {
		t.Fatalf("policy rules after add: %v", pol)
	}
	cliJSON(t, s(2), &g, "firewall", "group", "create", "--name", "cli-fwg", "--ingress-firewall-policy", "cli-pol",
		"--egress-firewall-policy", "cli-pol", "--port", site.routerPort)
	if g["Status"] != "ACTIVE" || fmt.Sprint(g["Ports"]) != fmt.Sprint([]any{site.routerPort}) {
		t.Fatalf("group: %v", g)
	}
	cliOK(t, s(0), "firewall", "group", "set", "--port", site.vmPort, "--disable", "cli-fwg")
	cliJSON(t, s(1), &g, "firewall", "group", "show", "cli-fwg")
	if g["Status"] != "DOWN" || len(g["Ports"].([]any)) != 2 {
		t.Fatalf("group after set: %v", g)
	}
	cliOK(t, s(2), "firewall", "group", "unset", "--port", site.routerPort, "--egress-firewall-policy", "cli-fwg")
	cliJSON(t, s(0), &g, "firewall", "group", "show", "cli-fwg")
	if g["Status"] != "DOWN" || fmt.Sprint(g["Ports"]) != fmt.Sprint([]any{site.vmPort}) || g["Egress Policy ID"] != nil {
		t.Fatalf("group after unset: %v", g)
	}
	var list []map[string]any
	cliJSON(t, s(1), &list, "firewall", "group", "list")
	var names []string
	for _, x := range list {
		names = append(names, fmt.Sprint(x["Name"]))
	}
	if !slices.Contains(names, "cli-fwg") || !slices.Contains(names, "default") {
		t.Fatalf("group list: %v", list)
	}
	// Bad input: the CLI shows Neutron's message and fails.
	if out, err := cli(t, s(2), "firewall", "group", "rule", "delete", "cli-ssh"); err == nil || !strings.Contains(out, "is being used") {
		t.Fatalf("delete of a rule in use: %v %s", err, out)
	}
	if out, err := cli(t, s(0), "firewall", "group", "rule", "create", "--protocol", "icmp", "--destination-port", "80"); err == nil ||
		!strings.Contains(out, "not allowed when protocol is set to ICMP") {
		t.Fatalf("icmp rule with a port: %v %s", err, out)
	}
	cliOK(t, s(1), "firewall", "group", "policy", "remove", "rule", "cli-pol", "cli-web")
	cliJSON(t, s(2), &pol, "firewall", "group", "policy", "show", "cli-pol")
	if fmt.Sprint(pol["Firewall Rules"]) != fmt.Sprint([]any{ssh["ID"]}) || pol["Audited"] != false {
		t.Fatalf("policy after remove: %v", pol)
	}
	cliOK(t, s(0), "firewall", "group", "set", "--no-port", "--enable", "cli-fwg")
	cliOK(t, s(1), "firewall", "group", "delete", "cli-fwg")
	cliOK(t, s(2), "firewall", "group", "policy", "delete", "cli-pol")
	cliOK(t, s(0), "firewall", "group", "rule", "delete", "cli-ssh", "cli-web")
	if out, err := cli(t, s(1), "firewall", "group", "rule", "show", "cli-ssh"); err == nil {
		t.Fatalf("deleted rule still shown: %s", out)
	}
}
