package northbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"neutrino/fsm"
)

// cli runs Debian's openstack CLI (python3-octaviaclient) against a
// server, without authentication (the server's noauth admin).
func cli(t *testing.T, s *apiServer, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	full := append([]string{"--os-auth-type", "none", "--os-endpoint", s.base}, args...)
	stdout, stderr, err := openstackCLI(ctx, nil, full...)
	return stdout + stderr, err
}

// cliJSON runs a command with -f json and decodes its output.
func cliJSON(t *testing.T, s *apiServer, out any, args ...string) {
	t.Helper()
	text, err := cli(t, s, append(args, "-f", "json")...)
	if err != nil {
		t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, text)
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, text)
	}
}

// cliOK runs a command that prints nothing useful.
func cliOK(t *testing.T, s *apiServer, args ...string) {
	t.Helper()
	if text, err := cli(t, s, args...); err != nil {
		t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, text)
	}
}

// TestLBaaSCLI drives the full lifecycle with `openstack loadbalancer ...`
// (octaviaclient reaches /v2.0/lbaas through --os-endpoint), each command
// through another server of a 3-server cluster; --wait polls until the
// agents' reports made each change ACTIVE.
func TestLBaaSCLI(t *testing.T) {
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatalf("the openstack CLI is not installed: %v", err)
	}
	e := newLBEnv(t)
	s := func(i int) *apiServer { return e.servers[i%3] }
	_, subID := lbTenantNet(e.servers[0], nil, "10.40.0.0/24")

	var lb map[string]any
	cliJSON(t, s(0), &lb, "loadbalancer", "create", "--name", "cli-lb", "--vip-subnet-id", subID, "--vip-address", "10.40.0.50", "--wait")
	if lb["provisioning_status"] != fsm.LBActive || lb["vip_address"] != "10.40.0.50" {
		t.Fatalf("created %v", lb)
	}
	var l, p, p2, m, hm, pol, rule map[string]any
	cliJSON(t, s(1), &l, "loadbalancer", "listener", "create", "--name", "cli-l", "--protocol", "HTTP", "--protocol-port", "80",
		"--insert-headers", "X-Forwarded-For=true", "--connection-limit", "1000", "--wait", "cli-lb")
	cliJSON(t, s(2), &p, "loadbalancer", "pool", "create", "--name", "cli-p", "--protocol", "HTTP", "--lb-algorithm", "ROUND_ROBIN",
		"--listener", "cli-l", "--session-persistence", "type=APP_COOKIE,cookie_name=sid", "--wait")
	for i := range 2 {
		cliJSON(t, s(i), &m, "loadbalancer", "member", "create", "--name", fmt.Sprintf("m%d", i), "--address", fmt.Sprintf("10.40.0.%d", 10+i),
			"--protocol-port", "8080", "--subnet-id", subID, "--weight", "3", "--wait", "cli-p")
	}
	cliJSON(t, s(1), &hm, "loadbalancer", "healthmonitor", "create", "--name", "cli-hm", "--delay", "3", "--timeout", "2", "--max-retries", "2",
		"--type", "HTTP", "--url-path", "/healthz", "--expected-codes", "200,204", "--wait", "cli-p")
	cliJSON(t, s(2), &p2, "loadbalancer", "pool", "create", "--name", "cli-api", "--protocol", "HTTP", "--lb-algorithm", "SOURCE_IP",
		"--loadbalancer", "cli-lb", "--wait")
	cliJSON(t, s(0), &pol, "loadbalancer", "l7policy", "create", "--name", "cli-pol", "--action", "REDIRECT_TO_POOL", "--redirect-pool", "cli-api",
		"--wait", "cli-l")
	// octaviaclient 3.1.0's --wait for l7rule asks for the rule under the
	// wrong path (policy and rule ids swapped): wait here instead.
	cliJSON(t, s(1), &rule, "loadbalancer", "l7rule", "create", "--type", "PATH", "--compare-type", "REGEX", "--value", "^/api/.*",
		pol["id"].(string))
	e.waitActive(lb["id"].(string))
	if l["insert_headers"] == nil || p["session_persistence"] == nil || hm["expected_codes"] != "200,204" || rule["value"] != "^/api/.*" {
		t.Fatalf("listener %v pool %v monitor %v rule %v", l, p, hm, rule)
	}

	// Updates.
	cliOK(t, s(2), "loadbalancer", "set", "--name", "cli-lb-2", "--wait", "cli-lb")
	cliOK(t, s(0), "loadbalancer", "member", "set", "--weight", "7", "--wait", "cli-p", "m0")
	cliOK(t, s(1), "loadbalancer", "l7policy", "set", "--action", "REJECT", "--wait", "cli-pol")
	var mm map[string]any
	cliJSON(t, s(2), &mm, "loadbalancer", "member", "show", "cli-p", "m0")
	if mm["weight"] != float64(7) {
		t.Fatalf("member after set: %v", mm)
	}

	// Lists and the status tree.
	var ms []map[string]any
	cliJSON(t, s(0), &ms, "loadbalancer", "member", "list", "cli-p")
	var lbs []map[string]any
	cliJSON(t, s(1), &lbs, "loadbalancer", "list")
	if len(ms) != 2 || len(lbs) != 1 || lbs[0]["name"] != "cli-lb-2" {
		t.Fatalf("members %v load balancers %v", ms, lbs)
	}
	var st map[string]any
	// status show prints JSON and takes no -f.
	text, err := cli(t, s(2), "loadbalancer", "status", "show", "cli-lb-2")
	if err != nil || json.Unmarshal([]byte(text), &st) != nil {
		t.Fatalf("status show: %v %s", err, text)
	}
	data, _ := json.Marshal(st)
	if !strings.Contains(string(data), "cli-hm") && !strings.Contains(string(data), hm["id"].(string)) || !strings.Contains(string(data), "10.40.0.11") {
		t.Fatalf("status tree: %s", data)
	}

	// Failover, then bad input, then cascade delete.
	before := e.lbState(lb["id"].(string))["neutrino:active_chassis"]
	cliOK(t, s(0), "loadbalancer", "failover", "--wait", "cli-lb-2")
	if after := e.waitActive(lb["id"].(string))["neutrino:active_chassis"]; after == before {
		t.Fatalf("failover stayed on %v", before)
	}
	// The gateways' health reports would move the revision: none while
	// the bad input is checked.
	for _, g := range e.gws {
		g.pause(true)
	}
	rev := settledRevision(t, s(0))
	out, err := cli(t, s(1), "loadbalancer", "healthmonitor", "create", "--delay", "2", "--timeout", "5", "--max-retries", "2", "--type", "TCP", "cli-api")
	if err == nil || !strings.Contains(out, "less than or equal to the delay") {
		t.Fatalf("monitor with timeout > delay: %v %s", err, out)
	}
	out, err = cli(t, s(2), "loadbalancer", "l7rule", "create", "--type", "PATH", "--compare-type", "REGEX", "--value", "([", pol["id"].(string))
	if err == nil || !strings.Contains(out, "not a valid regular expression") {
		t.Fatalf("invalid regex: %v %s", err, out)
	}
	out, err = cli(t, s(0), "loadbalancer", "listener", "create", "--protocol", "TCP", "--protocol-port", "80", "cli-lb-2")
	if err == nil || !strings.Contains(out, "protocol_port 80") {
		t.Fatalf("duplicate listener port: %v %s", err, out)
	}
	if got := revisionNow(s(0)); got != rev {
		t.Fatalf("bad input changed the revision %d -> %d", rev, got)
	}
	for _, g := range e.gws {
		g.pause(false)
	}
	cliOK(t, s(1), "loadbalancer", "delete", "--cascade", "--wait", "cli-lb-2")
	cliJSON(t, s(2), &lbs, "loadbalancer", "list")
	var pools []map[string]any
	cliJSON(t, s(0), &pools, "loadbalancer", "pool", "list")
	if len(lbs) != 0 || len(pools) != 0 {
		t.Fatalf("after cascade delete: %v %v", lbs, pools)
	}
}
