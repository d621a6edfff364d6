package northbound_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/l7policies"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/listeners"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/loadbalancers"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/monitors"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/pools"

	"neutrino/fsm"
	"neutrino/northbound"
)

// lbTenantNet creates a network and subnet of a project for load
// balancers and returns the subnet id.
func lbTenantNet(s *apiServer, hdr map[string]string, cidr string) (netID, subnetID string) {
	n := s.create("networks", "network", map[string]any{"name": "lb-net"}, hdr)
	sub := s.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": cidr, "ip_version": 4}, hdr)
	return n["id"].(string), sub["id"].(string)
}

// TestLBaaSGophercloud drives every Octavia resource with gophercloud's
// loadbalancer/v2 packages through a 3-server cluster, each call through
// another server: create of the tree, pending -> active by the agents'
// reports, 409 while pending, batch member update, L7 policy and rule,
// status tree, health from the agent, failover, cascade delete.
func TestLBaaSGophercloud(t *testing.T) {
	e := newLBEnv(t)
	ctx := context.Background()
	c := func(i int) *gophercloud.ServiceClient { return octavia(e.servers[i%3], "alice") }
	_, subID := lbTenantNet(e.servers[0], alice, "10.20.0.0/24")

	// Discovery: the lbaasv2 extension, and Octavia's version document.
	var exts map[string][]map[string]any
	e.servers[1].do("GET", "/v2.0/extensions", nil, nil, &exts)
	if !slices.ContainsFunc(exts["extensions"], func(x map[string]any) bool { return x["alias"] == "lbaasv2" }) {
		t.Fatal("extension lbaasv2 not listed")
	}
	var vers struct {
		Versions []struct {
			ID    string
			Links []map[string]string
		}
	}
	if code := e.servers[2].do("GET", "/v2", nil, nil, &vers); code != 200 || len(vers.Versions) != 1 || vers.Versions[0].ID != "v2.0" ||
		!strings.HasSuffix(vers.Versions[0].Links[0]["href"], "/v2") {
		t.Fatalf("version document: %d %+v", code, vers)
	}

	lb, err := loadbalancers.Create(ctx, c(0), loadbalancers.CreateOpts{Name: "web", VipSubnetID: subID, VipAddress: "10.20.0.100", Tags: []string{"t1"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if lb.ProvisioningStatus != fsm.LBPendingCreate || lb.VipAddress != "10.20.0.100" || lb.Provider != fsm.LBProvider || lb.VipPortID == "" {
		t.Fatalf("created %+v", lb)
	}
	admin := e.waitActive(lb.ID)
	gwList, _ := admin["neutrino:gateway_chassis"].([]any)
	active, _ := admin["neutrino:active_chassis"].(string)
	if len(gwList) != 2 || active == "" || active != gwList[0] {
		t.Fatalf("placement: list %v active %q", gwList, active)
	}
	// The VIP port: Octavia's owner, bound where the load balancer runs.
	// Read with a deadline: on a loaded machine gossip may move the load
	// balancer between the two reads; the port must follow where it runs.
	var vp struct{ Port map[string]any }
	eventually(t, 30*time.Second, func() error {
		if code := e.servers[1].do("GET", "/v2.0/ports/"+lb.VipPortID, nil, nil, &vp); code != 200 ||
			vp.Port["device_owner"] != fsm.DeviceOwnerLBVIP || vp.Port["device_id"] != "lb-"+lb.ID {
			t.Fatalf("vip port %d %v", code, vp.Port)
		}
		active, _ = e.lbState(lb.ID)["neutrino:active_chassis"].(string)
		if vp.Port["binding:host_id"] != active {
			return fmt.Errorf("vip port bound to %v, load balancer active on %q", vp.Port["binding:host_id"], active)
		}
		return nil
	})

	// A write while the tree is pending is 409 ImmutableObject.
	g := e.gw(active)
	g.pause(true)
	l, err := listeners.Create(ctx, c(1), listeners.CreateOpts{Name: "http", LoadbalancerID: lb.ID, Protocol: listeners.ProtocolHTTP,
		ProtocolPort: 80, InsertHeaders: map[string]string{"X-Forwarded-For": "true"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listeners.Create(ctx, c(2), listeners.CreateOpts{LoadbalancerID: lb.ID, Protocol: listeners.ProtocolTCP, ProtocolPort: 81}).Extract(); !isStatus(err, 409) {
		t.Fatalf("write while pending: %v", err)
	}
	g.pause(false)
	e.waitActive(lb.ID)

	// Pool on the listener (becomes its default), members, monitor.
	p, err := pools.Create(ctx, c(2), pools.CreateOpts{Name: "p1", ListenerID: l.ID, Protocol: pools.ProtocolHTTP, LBMethod: pools.LBMethodRoundRobin,
		Persistence: &pools.SessionPersistence{Type: "HTTP_COOKIE"}}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	if got, _ := listeners.Get(ctx, c(0), l.ID).Extract(); got == nil || got.DefaultPoolID != p.ID {
		t.Fatalf("listener's default pool: %+v", got)
	}
	var members []string
	for i := range 3 {
		m, err := pools.CreateMember(ctx, c(i), p.ID, pools.CreateMemberOpts{Address: fmt.Sprintf("10.20.0.%d", 10+i), ProtocolPort: 8080, SubnetID: subID}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m.ID)
		e.waitActive(lb.ID)
	}
	hm, err := monitors.Create(ctx, c(1), monitors.CreateOpts{PoolID: p.ID, Type: monitors.TypeHTTP, Delay: 2, Timeout: 1, MaxRetries: 2, URLPath: "/health", ExpectedCodes: "200-204"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	if got, _ := pools.Get(ctx, c(2), p.ID).Extract(); got == nil || got.MonitorID != hm.ID || len(got.Members) != 3 {
		t.Fatalf("pool after monitor: %+v", got)
	}

	// Batch update: keep .10 (new weight), add .20, drop .11 and .12.
	w := 5
	if err := pools.BatchUpdateMembers(ctx, c(0), p.ID, []pools.BatchUpdateMemberOpts{
		{Address: "10.20.0.10", ProtocolPort: 8080, Weight: &w}, {Address: "10.20.0.20", ProtocolPort: 8080}}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	ms, err := pools.ListMembers(c(1), p.ID, nil).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := pools.ExtractMembers(ms)
	if len(got) != 2 {
		t.Fatalf("members after batch: %+v", got)
	}
	for _, m := range got {
		if (m.Address == "10.20.0.10") != (m.ID == members[0]) || (m.Address == "10.20.0.10" && m.Weight != 5) {
			t.Fatalf("member after batch: %+v", m)
		}
	}

	// L7: a second pool for /api, a policy redirecting to it, a rule.
	p2, err := pools.Create(ctx, c(1), pools.CreateOpts{Name: "api", LoadbalancerID: lb.ID, Protocol: pools.ProtocolHTTP, LBMethod: pools.LBMethodLeastConnections}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	pol, err := l7policies.Create(ctx, c(2), l7policies.CreateOpts{ListenerID: l.ID, Action: l7policies.ActionRedirectToPool, RedirectPoolID: p2.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	rule, err := l7policies.CreateRule(ctx, c(0), pol.ID, l7policies.CreateRuleOpts{RuleType: l7policies.TypePath, CompareType: l7policies.CompareTypeStartWith, Value: "/api"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	if pol.Position != 1 || rule.Value != "/api" {
		t.Fatalf("policy %+v rule %+v", pol, rule)
	}
	// Updates of each kind.
	name := "web-2"
	if _, err := loadbalancers.Update(ctx, c(1), lb.ID, loadbalancers.UpdateOpts{Name: &name}).Extract(); err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	limit := 100
	if ul, err := listeners.Update(ctx, c(2), l.ID, listeners.UpdateOpts{ConnLimit: &limit}).Extract(); err != nil || ul.ConnLimit != 100 || ul.ProvisioningStatus != fsm.LBPendingUpdate {
		t.Fatalf("listener update: %v %+v", err, ul)
	}
	e.waitActive(lb.ID)
	inv := true
	if _, err := l7policies.UpdateRule(ctx, c(0), pol.ID, rule.ID, l7policies.UpdateRuleOpts{Invert: &inv}).Extract(); err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)

	// Health from the agent: a member goes ERROR in the status tree.
	e.gw(active).setHealth(members[0], fsm.LBOpError)
	eventually(t, 20*time.Second, func() error {
		st, err := loadbalancers.GetStatuses(ctx, c(1), lb.ID).Extract()
		if err != nil {
			return err
		}
		ls := st.Loadbalancer.Listeners
		if len(ls) != 1 || len(ls[0].Pools) != 2 {
			return fmt.Errorf("status tree %+v", st.Loadbalancer)
		}
		for _, pp := range ls[0].Pools {
			for _, m := range pp.Members {
				if m.ID == members[0] && m.OperatingStatus == fsm.LBOpError {
					return nil
				}
			}
		}
		return fmt.Errorf("member %s not ERROR in %+v", members[0], ls[0].Pools)
	})

	// Failover (admin): the next chassis of the list takes it.
	if err := loadbalancers.Failover(ctx, octavia(e.servers[2], ""), lb.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	after := e.waitActive(lb.ID)
	if after["neutrino:active_chassis"] == active {
		t.Fatalf("failover stayed on %s", active)
	}
	if err := loadbalancers.Failover(ctx, c(0), lb.ID).ExtractErr(); !isStatus(err, 403) {
		t.Fatalf("member failover: %v", err)
	}

	// Lists with filters; another project sees nothing.
	all, err := loadbalancers.List(c(0), loadbalancers.ListOpts{Name: "web-2"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lbs, _ := loadbalancers.ExtractLoadBalancers(all); len(lbs) != 1 || lbs[0].ID != lb.ID || len(lbs[0].Listeners) != 1 || len(lbs[0].Pools) != 2 {
		t.Fatalf("filtered list: %+v", lbs)
	}
	if _, err := loadbalancers.Get(ctx, octavia(e.servers[0], "bob"), lb.ID).Extract(); !isStatus(err, 404) {
		t.Fatalf("bob sees alice's load balancer: %v", err)
	}

	// Child delete is pending until the agent reports, then gone.
	if err := l7policies.DeleteRule(ctx, c(1), pol.ID, rule.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	e.waitActive(lb.ID)
	if _, err := l7policies.GetRule(ctx, c(1), pol.ID, rule.ID).Extract(); !isStatus(err, 404) {
		t.Fatalf("deleted rule: %v", err)
	}

	// Delete without cascade is refused while children exist; cascade
	// removes the tree and the VIP port once the agent tore it down.
	if err := loadbalancers.Delete(ctx, c(2), lb.ID, nil).ExtractErr(); !isStatus(err, 400) {
		t.Fatalf("delete with children: %v", err)
	}
	if err := loadbalancers.Delete(ctx, c(2), lb.ID, loadbalancers.DeleteOpts{Cascade: true}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if _, err := loadbalancers.Get(ctx, c(0), lb.ID).Extract(); !isStatus(err, 404) {
			return fmt.Errorf("load balancer still there: %v", err)
		}
		return nil
	})
	if code := e.servers[0].do("GET", "/v2.0/ports/"+lb.VipPortID, nil, nil, nil); code != 404 {
		t.Fatalf("vip port after delete: %d", code)
	}
	// Octavia's single-call create of a whole tree.
	tree, err := loadbalancers.Create(ctx, c(1), lbTreeOpts("tree", subID, 3)).Extract()
	if err != nil {
		t.Fatal(err)
	}
	e.waitActive(tree.ID)
	tl, err := listeners.List(c(2), listeners.ListOpts{LoadbalancerID: tree.ID}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tls, _ := listeners.ExtractListeners(tl)
	if len(tls) != 1 || tls[0].DefaultPoolID == "" {
		t.Fatalf("tree listeners %+v", tls)
	}
	tp, err := pools.Get(ctx, c(0), tls[0].DefaultPoolID).Extract()
	if err != nil || len(tp.Members) != 3 || tp.MonitorID == "" || tp.ProvisioningStatus != fsm.LBActive {
		t.Fatalf("tree pool %v %+v", err, tp)
	}
	if err := loadbalancers.Delete(ctx, c(2), tree.ID, loadbalancers.DeleteOpts{Cascade: true}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if _, err := loadbalancers.Get(ctx, c(0), tree.ID).Extract(); !isStatus(err, 404) {
			return fmt.Errorf("tree load balancer still there: %v", err)
		}
		return nil
	})
	// A VIP on the caller's own port: adopted, then released.
	own := e.servers[0].create("ports", "port", map[string]any{"network_id": vp.Port["network_id"]}, alice)
	adopted, err := loadbalancers.Create(ctx, c(2), loadbalancers.CreateOpts{VipPortID: own["id"].(string)}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, ip := fixedIP(own, 0); adopted.VipAddress != ip || adopted.VipPortID != own["id"] {
		t.Fatalf("adopted %+v, port %v", adopted, own)
	}
	e.waitActive(adopted.ID)
	if err := loadbalancers.Delete(ctx, c(0), adopted.ID, nil).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		var op struct{ Port map[string]any }
		if code := e.servers[1].do("GET", "/v2.0/ports/"+adopted.VipPortID, nil, nil, &op); code != 200 || op.Port["device_owner"] != "" {
			return fmt.Errorf("adopted port: %d %v", code, op.Port)
		}
		return nil
	})
	for _, path := range []string{"/v2/lbaas/listeners", "/v2/lbaas/pools", "/v2/lbaas/healthmonitors", "/v2/lbaas/l7policies"} {
		var out map[string][]any
		e.servers[1].do("GET", path, nil, nil, &out)
		for k, v := range out {
			if !slices.Contains([]string{"listeners", "pools", "healthmonitors", "l7policies"}, k) {
				continue
			}
			if len(v) != 0 {
				t.Fatalf("%s left after cascade delete: %v", path, v)
			}
		}
	}
}

// TestLBaaSBadInput: every invalid request is a 4xx with Octavia's fault
// body and a clear message, and changes nothing (revision unchanged).
func TestLBaaSBadInput(t *testing.T) {
	e := newLBEnv(t)
	s := e.servers[1]
	_, subID := lbTenantNet(e.servers[0], alice, "10.30.0.0/24")
	_, bobSub := lbTenantNet(e.servers[0], bob, "10.31.0.0/24")
	post := func(path string, body map[string]any) map[string]any {
		t.Helper()
		var out map[string]map[string]any
		if code := s.do("POST", "/v2/lbaas/"+path, alice, body, &out); code != 201 {
			t.Fatalf("POST %s: %d %v", path, code, out)
		}
		for _, v := range out {
			return v
		}
		return nil
	}
	lb := post("loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID}})
	lbID := lb["id"].(string)
	e.waitActive(lbID)
	l := post("listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "protocol_port": 80}})
	e.waitActive(lbID)
	p := post("pools", map[string]any{"pool": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})
	e.waitActive(lbID)
	pol := post("l7policies", map[string]any{"l7policy": map[string]any{"listener_id": l["id"], "action": "REJECT"}})
	e.waitActive(lbID)
	tcp := post("pools", map[string]any{"pool": map[string]any{"loadbalancer_id": lbID, "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}})
	e.waitActive(lbID)

	for _, c := range []struct {
		name, method, path string
		body               any
		code               int
		msg                string
	}{
		{"no vip", "POST", "loadbalancers", map[string]any{"loadbalancer": map[string]any{"name": "x"}}, 400, "VIP must contain one of"},
		{"vip on another project's subnet", "POST", "loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": bobSub}}, 400, "not found"},
		{"vip address outside subnet", "POST", "loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID, "vip_address": "10.99.0.5"}}, 400, "not a valid IP"},
		{"vip address in use", "POST", "loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID, "vip_address": lb["vip_address"]}}, 409, "already allocated"},
		{"unknown provider", "POST", "loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID, "provider": "amphora"}}, 400, "Provider 'amphora' is not enabled"},
		{"unknown attribute", "POST", "loadbalancers", map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID, "colour": "red"}}, 400, "colour"},
		{"malformed body", "POST", "loadbalancers", "{", 400, "Malformed"},
		{"duplicate listener port", "POST", "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": lbID, "protocol": "TCP", "protocol_port": 80}}, 409, "already using protocol"},
		{"unknown default pool", "POST", "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "protocol_port": 81, "default_pool_id": "nope"}}, 404, "Pool nope not found"},
		{"pool protocol mismatch", "POST", "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "protocol_port": 82, "default_pool_id": tcp["id"]}}, 400, "pool protocol 'TCP' is invalid"},
		{"bad port", "POST", "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "protocol_port": 70000}}, 400, "protocol_port 70000"},
		{"terminated https", "POST", "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": lbID, "protocol": "TERMINATED_HTTPS", "protocol_port": 443}}, 400, "TERMINATED_HTTPS"},
		{"header on tcp", "POST", "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": lbID, "protocol": "TCP", "protocol_port": 83, "insert_headers": map[string]string{"X-Forwarded-For": "true"}}}, 400, "not supported for the TCP protocol"},
		{"unknown load balancer", "POST", "listeners", map[string]any{"listener": map[string]any{"loadbalancer_id": "nope", "protocol": "HTTP", "protocol_port": 84}}, 404, "Load Balancer nope not found"},
		{"bad algorithm", "POST", "pools", map[string]any{"pool": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "lb_algorithm": "RANDOM"}}, 400, "lb_algorithm 'RANDOM'"},
		{"app cookie without name", "POST", "pools", map[string]any{"pool": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "session_persistence": map[string]any{"type": "APP_COOKIE"}}}, 400, "requires a cookie_name"},
		{"member on another project's subnet", "POST", "pools/" + p["id"].(string) + "/members", map[string]any{"member": map[string]any{"address": "10.31.0.5", "protocol_port": 80, "subnet_id": bobSub}}, 400, "Subnet " + bobSub + " not found"},
		{"member bad address", "POST", "pools/" + p["id"].(string) + "/members", map[string]any{"member": map[string]any{"address": "10.30.0.x", "protocol_port": 80}}, 400, "not a valid IP address"},
		{"member weight", "POST", "pools/" + p["id"].(string) + "/members", map[string]any{"member": map[string]any{"address": "10.30.0.5", "protocol_port": 80, "weight": 300}}, 400, "weight 300"},
		{"member of unknown pool", "POST", "pools/nope/members", map[string]any{"member": map[string]any{"address": "10.30.0.5", "protocol_port": 80}}, 404, "Pool nope not found"},
		{"hm timeout > delay", "POST", "healthmonitors", map[string]any{"healthmonitor": map[string]any{"pool_id": p["id"], "type": "HTTP", "delay": 2, "timeout": 5, "max_retries": 3}}, 400, "less than or equal to the delay"},
		{"hm bad codes", "POST", "healthmonitors", map[string]any{"healthmonitor": map[string]any{"pool_id": p["id"], "type": "HTTP", "delay": 2, "timeout": 1, "max_retries": 3, "expected_codes": "2xx"}}, 400, "expected_codes"},
		{"hm url on tcp", "POST", "healthmonitors", map[string]any{"healthmonitor": map[string]any{"pool_id": p["id"], "type": "TCP", "delay": 2, "timeout": 1, "max_retries": 3, "url_path": "/"}}, 400, "url_path is not a valid option"},
		{"policy unknown pool", "POST", "l7policies", map[string]any{"l7policy": map[string]any{"listener_id": l["id"], "action": "REDIRECT_TO_POOL", "redirect_pool_id": "nope"}}, 404, "Pool nope not found"},
		{"policy bad url", "POST", "l7policies", map[string]any{"l7policy": map[string]any{"listener_id": l["id"], "action": "REDIRECT_TO_URL", "redirect_url": "not a url"}}, 400, "not a valid http(s) URL"},
		{"rule invalid regex", "POST", "l7policies/" + pol["id"].(string) + "/rules", map[string]any{"rule": map[string]any{"type": "PATH", "compare_type": "REGEX", "value": "^/api(["}}, 400, "not a valid regular expression"},
		{"rule header without key", "POST", "l7policies/" + pol["id"].(string) + "/rules", map[string]any{"rule": map[string]any{"type": "HEADER", "compare_type": "EQUAL_TO", "value": "x"}}, 400, "not a valid header name"},
		{"rule file type compare", "POST", "l7policies/" + pol["id"].(string) + "/rules", map[string]any{"rule": map[string]any{"type": "FILE_TYPE", "compare_type": "STARTS_WITH", "value": "jpg"}}, 400, "FILE_TYPE"},
		{"update read-only", "PUT", "listeners/" + l["id"].(string), map[string]any{"listener": map[string]any{"protocol_port": 90}}, 400, "read-only"},
		{"unknown listener", "PUT", "listeners/nope", map[string]any{"listener": map[string]any{"name": "x"}}, 404, "Listener nope not found"},
		{"pool in use by policy", "DELETE", "pools/" + tcp["id"].(string), nil, 0, ""},
	} {
		if c.code == 0 {
			continue
		}
		rev := revisionNow(s)
		var out map[string]any
		code := s.do(c.method, "/v2/lbaas/"+c.path, alice, c.body, &out)
		checkFault(t, code, c.code, out, c.msg)
		if got := revisionNow(s); got != rev {
			var ch map[string]any
			s.do("GET", fmt.Sprintf("/v1/watch?tables=%s&since=%d&timeout=1", strings.Join(fsm.WatchTables, ","), rev), nil, nil, &ch)
			t.Fatalf("%s: revision %d -> %d: %v", c.name, rev, got, ch)
		}
	}
	// A pool that a policy redirects to cannot be deleted.
	p2 := post("pools", map[string]any{"pool": map[string]any{"loadbalancer_id": lbID, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})
	e.waitActive(lbID)
	post("l7policies", map[string]any{"l7policy": map[string]any{"listener_id": l["id"], "action": "REDIRECT_TO_POOL", "redirect_pool_id": p2["id"]}})
	e.waitActive(lbID)
	rev := revisionNow(s)
	var out map[string]any
	checkFault(t, s.do("DELETE", "/v2/lbaas/pools/"+p2["id"].(string), alice, nil, &out), 409, out, "in use by L7 policy")
	if got := revisionNow(s); got != rev {
		t.Fatalf("refused pool delete: revision %d -> %d", rev, got)
	}
	// A create repeated with its Idempotency-Key answers the first outcome.
	keyed := map[string]string{"X-Project-Id": "alice", "X-Roles": "member", "Idempotency-Key": "lb-once"}
	body := map[string]any{"member": map[string]any{"address": "10.30.0.77", "protocol_port": 80}}
	var first, again map[string]map[string]any
	code1, _ := s.doRaw("POST", "/v2/lbaas/pools/"+p2["id"].(string)+"/members", keyed, body, &first)
	// The reporter's ACTIVE report would otherwise move the revision
	// between this read and the replay's check.
	e.waitActive(lbID)
	rev = revisionNow(s)
	code2, hdr := e.servers[2].doRaw("POST", "/v2.0/lbaas/pools/"+p2["id"].(string)+"/members", keyed, body, &again)
	if code1 != 201 || code2 != 201 || hdr.Get(northbound.HeaderReplayed) != "true" || first["member"]["id"] != again["member"]["id"] || revisionNow(s) != rev {
		t.Fatalf("replay: %d %d %v %v %v", code1, code2, hdr, first, again)
	}
	e.waitActive(lbID)
	rev = revisionNow(s)
	// The VIP port belongs to the load balancer.
	checkNeutronError(t, s.do("DELETE", "/v2.0/ports/"+lb["vip_port_id"].(string), alice, nil, &out), 409, out, fsm.ErrTypeL3PortInUse)
	// Another project's objects are invisible, through /v2.0 as well.
	checkFault(t, s.do("GET", "/v2.0/lbaas/loadbalancers/"+lbID, bob, nil, &out), 404, out, "not found")
	checkFault(t, s.do("DELETE", "/v2.0/lbaas/listeners/"+l["id"].(string), bob, nil, &out), 404, out, "not found")
	// The agent endpoint is for admins, and stale reports change nothing.
	checkNeutronError(t, s.do("PUT", "/v1/lbaas/loadbalancers/"+lbID+"/agent-status", alice, map[string]any{"chassis": "gw1"}, &out), 403, out, "PolicyNotAuthorized")
	checkNeutronError(t, s.do("PUT", "/v1/lbaas/loadbalancers/"+lbID+"/agent-status", nil, map[string]any{"chassis": "nobody", "config_revision": 1}, &out), 409, out, fsm.ErrTypeLBStaleStatus)
	if got := revisionNow(s); got != rev {
		var ch map[string]any
		s.do("GET", fmt.Sprintf("/v1/watch?tables=%s&since=%d&timeout=1", strings.Join(fsm.WatchTables, ","), rev), nil, nil, &ch)
		t.Fatalf("revision %d -> %d: %v", rev, got, ch)
	}
}

// TestLBaaSDeleteWithoutReport: when the agent of the active chassis never
// reports on a deletion, the leader completes it after LBDeleteTimeout.
func TestLBaaSDeleteWithoutReport(t *testing.T) {
	e := newLBEnv(t, func(c *northbound.Config) { c.LBDeleteTimeout = 2 * time.Second })
	_, subID := lbTenantNet(e.servers[0], alice, "10.50.0.0/24")
	var out map[string]map[string]any
	if code := e.servers[1].do("POST", "/v2/lbaas/loadbalancers", alice, map[string]any{"loadbalancer": map[string]any{"vip_subnet_id": subID}}, &out); code != 201 {
		t.Fatalf("create: %d", code)
	}
	id := out["loadbalancer"]["id"].(string)
	active := e.waitActive(id)["neutrino:active_chassis"].(string)
	e.gw(active).pause(true)
	if code := e.servers[2].do("DELETE", "/v2/lbaas/loadbalancers/"+id, alice, nil, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if lb := e.lbState(id); lb == nil || lb["provisioning_status"] != fsm.LBPendingDelete {
		t.Fatalf("after delete: %v", lb)
	}
	eventually(t, 30*time.Second, func() error {
		if lb := e.lbState(id); lb != nil {
			return fmt.Errorf("still there: %v", lb["provisioning_status"])
		}
		return nil
	})
}

// lbTreeOpts is a single-call create: an HTTP listener whose default pool
// has n members and an HTTP monitor.
func lbTreeOpts(name, subnetID string, n int) loadbalancers.CreateOpts {
	var ms []pools.CreateMemberOpts
	for i := range n {
		ms = append(ms, pools.CreateMemberOpts{Address: fmt.Sprintf("10.20.1.%d", 10+i), ProtocolPort: 8080})
	}
	return loadbalancers.CreateOpts{Name: name, VipSubnetID: subnetID, Listeners: []listeners.CreateOpts{{
		Name: name + "-l", Protocol: listeners.ProtocolHTTP, ProtocolPort: 80,
		DefaultPool: &pools.CreateOpts{Name: name + "-p", Protocol: pools.ProtocolHTTP, LBMethod: pools.LBMethodRoundRobin, Members: ms,
			Monitor: &monitors.CreateOpts{Type: monitors.TypeHTTP, Delay: 2, Timeout: 1, MaxRetries: 2}},
	}}}
}
