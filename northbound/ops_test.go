package northbound_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/agents"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/quotas"

	"neutrino/cluster"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
)

// opsRetries bounds the resends of a request answered 503: a loaded
// machine (make test's -race run) can see elections mid-test, and a 503
// with Retry-After is the API's documented "resend" (the Go client does).
const opsRetries = 60

// gopherOps is gopher that resends on 503 after a pause, as a client
// honouring Retry-After does.
func gopherOps(s *apiServer, project, roles string) *gophercloud.ServiceClient {
	sc := gopher(s, project, roles)
	sc.ProviderClient.RetryFunc = func(ctx context.Context, _, _ string, _ *gophercloud.RequestOpts, err error, n uint) error {
		if !isStatus(err, 503) || n > opsRetries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
			return nil
		}
	}
	return sc
}

// opsDo is apiServer.do that resends on 503 (see opsRetries), a write
// with an Idempotency-Key of its own so that a resend applies it at most
// once.
func opsDo(s *apiServer, method, path string, hdr map[string]string, body, out any) int {
	s.t.Helper()
	if method != "GET" {
		h := map[string]string{"Idempotency-Key": fmt.Sprintf("ops-%d", opsKeys.Add(1))}
		for k, v := range hdr {
			h[k] = v
		}
		hdr = h
	}
	for i := 0; ; i++ {
		code := s.do(method, path, hdr, body, out)
		if code != 503 || i == opsRetries {
			return code
		}
		<-time.After(500 * time.Millisecond)
	}
}

// opsCLI runs an idempotent openstack command, resending it while the
// answer is a 503 (python3-openstackclient does not resend; see
// opsRetries), and returns its output.
func opsCLI(t *testing.T, s *apiServer, args ...string) (string, error) {
	t.Helper()
	for i := 0; ; i++ {
		out, err := cli(t, s, args...)
		unavailable := strings.Contains(out, "ServiceUnavailable") || strings.Contains(out, "Cannot serve a consistent read") ||
			strings.Contains(out, "HTTP 503")
		if err == nil || !unavailable || i == 10 {
			return out, err
		}
		<-time.After(time.Second)
	}
}

// opsCLIOK is cliOK through opsCLI.
func opsCLIOK(t *testing.T, s *apiServer, args ...string) {
	t.Helper()
	if out, err := opsCLI(t, s, args...); err != nil {
		t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// opsCLIJSON is cliJSON through opsCLI.
func opsCLIJSON(t *testing.T, s *apiServer, out any, args ...string) {
	t.Helper()
	text, err := opsCLI(t, s, append(args, "-f", "json")...)
	if err != nil {
		t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, text)
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, text)
	}
}

// opsKeys numbers the Idempotency-Keys opsDo sends.
var opsKeys atomic.Uint64

// opsChassis starts a chassis agent (gossip only, no Open vSwitch) in a
// zone and returns a function that stops it (also run at cleanup).
func opsChassis(t *testing.T, servers []*apiServer, name, zone string, roles ...string) func() {
	t.Helper()
	a, err := agent.Start(agent.Config{Node: name, DataDir: t.TempDir(), Bind: freeBind(t), HTTP: "127.0.0.1:0",
		Join:   []string{servers[0].bind, servers[1].bind, servers[2].bind},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Chassis: cluster.NodeMeta{TunnelIP: "192.0.2.50", Roles: roles, Encaps: []string{"vxlan"},
			AvailabilityZone: zone, BridgeMappings: map[string]string{"external": "br-ex"}}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.Shutdown(ctx)
		})
	}
	t.Cleanup(stop)
	return stop
}

// agentsByHost lists the agents through gophercloud, keyed by type/host.
func agentsByHost(t *testing.T, s *apiServer) (map[string]agents.Agent, error) {
	t.Helper()
	pages, err := agents.List(gopherOps(s, "", ""), agents.ListOpts{}).AllPages(context.Background())
	if err != nil {
		return nil, err
	}
	list, err := agents.ExtractAgents(pages)
	if err != nil {
		return nil, err
	}
	out := map[string]agents.Agent{}
	for _, a := range list {
		out[a.AgentType+"/"+a.Host] = a
	}
	return out, nil
}

// wantNeutronError checks a status and a Neutron error body.
func wantNeutronError(t *testing.T, what string, code, want int, body neutronError, typ string) {
	t.Helper()
	if code != want || body.NeutronError.Type != typ || body.NeutronError.Message == "" {
		t.Fatalf("%s: %d %+v, want %d %s", what, code, body, want, typ)
	}
}

// TestOpsAgentsAndZones: agents and availability zones of a 3-server
// cluster with three chassis in two zones and the default one, through
// gophercloud, plain HTTP and the openstack CLI; zone hints place router
// gateways, a dead chassis' agent goes not-alive and can be deleted.
func TestOpsAgentsAndZones(t *testing.T) {
	servers := newAPICluster(t, 3, nil)
	ctx := context.Background()
	opsChassis(t, servers, "ops-gw-a", "az1", "gateway")
	stopB := opsChassis(t, servers, "ops-gw-b", "az2", "gateway")
	opsChassis(t, servers, "ops-cmp", "", "compute")

	var all map[string]agents.Agent
	// Generous: under a loaded machine (make test runs packages side by
	// side, -race) gossip and the first elections take long.
	eventually(t, 90*time.Second, func() error {
		var err error
		if all, err = agentsByHost(t, servers[1]); err != nil {
			return err
		}
		// Chassis liveness is committed state; a server's is the
		// answering leader's gossip view, which a machine loaded to a load
		// average of 30 (-race) was seen to flap for minutes: only the
		// chassis must all be alive here.
		alive := 0
		for _, a := range all {
			if a.Alive && a.AgentType == northbound.AgentTypeChassis {
				alive++
			}
		}
		if len(all) != 6 || alive != 3 {
			return fmt.Errorf("%d agents, %d chassis alive: %v", len(all), alive, all)
		}
		return nil
	})
	gwB := all[northbound.AgentTypeChassis+"/ops-gw-b"]
	if gwB.AvailabilityZone != "az2" || gwB.Configurations["tunnel_ip"] != "192.0.2.50" || gwB.Binary != "neutrino-agent" ||
		gwB.HeartbeatTimestamp.IsZero() || gwB.ID != fsm.AgentID(fsm.AgentKindChassis, "ops-gw-b") {
		t.Fatalf("gw-b agent %+v", gwB)
	}
	if c := all[northbound.AgentTypeChassis+"/ops-cmp"]; c.AvailabilityZone != fsm.DefaultAvailabilityZone {
		t.Fatalf("cmp agent %+v", c)
	}
	if s := all[northbound.AgentTypeServer+"/api-2"]; s.StartedAt.IsZero() || s.Configurations["raft_address"] == "" {
		t.Fatalf("server agent %+v", s)
	}
	got, err := agents.Get(ctx, gopherOps(servers[2], "", ""), gwB.ID).Extract()
	if err != nil || got.Host != "ops-gw-b" {
		t.Fatalf("get: %+v %v", got, err)
	}

	// Update through a follower; bad input and members change nothing.
	cmp := all[northbound.AgentTypeChassis+"/ops-cmp"]
	down, desc := false, "rack 7"
	upd, err := agents.Update(ctx, gopherOps(servers[0], "", ""), cmp.ID, agents.UpdateOpts{AdminStateUp: &down, Description: &desc}).Extract()
	if err != nil || upd.AdminStateUp || upd.Description != "rack 7" {
		t.Fatalf("update: %+v %v", upd, err)
	}
	// Chassis records may still change (gossip): the agent itself must not.
	var nerr neutronError
	code := opsDo(servers[1], "PUT", "/v2.0/agents/"+cmp.ID, nil, map[string]any{"agent": map[string]any{"alive": false}}, &nerr)
	wantNeutronError(t, "read-only attribute", code, 400, nerr, "HTTPBadRequest")
	code = opsDo(servers[1], "PUT", "/v2.0/agents/"+cmp.ID, nil, map[string]any{"agent": map[string]any{"admin_state_up": "maybe"}}, &nerr)
	wantNeutronError(t, "bad boolean", code, 400, nerr, "HTTPBadRequest")
	code = opsDo(servers[1], "GET", "/v2.0/agents", map[string]string{"X-Project-Id": "p1", "X-Roles": "member"}, nil, &nerr)
	wantNeutronError(t, "member list", code, 403, nerr, "PolicyNotAuthorized")
	code = opsDo(servers[1], "GET", "/v2.0/agents/not-a-uuid", nil, nil, &nerr)
	wantNeutronError(t, "bad id", code, 400, nerr, "HTTPBadRequest")
	if a, err := agents.Get(ctx, gopherOps(servers[2], "", ""), cmp.ID).Extract(); err != nil || a.AdminStateUp || a.Description != "rack 7" {
		t.Fatalf("agent after rejected updates: %+v %v", a, err)
	}

	// Zones: az1 and az2 for networks and routers, nova for networks.
	// Eventually: under -race load gossip may declare a chassis dead
	// for a while (a zone is unavailable then).
	eventually(t, 60*time.Second, func() error {
		var zl struct {
			AvailabilityZones []map[string]string `json:"availability_zones"`
		}
		if code := opsDo(servers[2], "GET", "/v2.0/availability_zones", map[string]string{"X-Project-Id": "p1"}, nil, &zl); code != 200 {
			return fmt.Errorf("zones: %d", code)
		}
		var zones []string
		for _, z := range zl.AvailabilityZones {
			zones = append(zones, z["name"]+"/"+z["resource"]+"/"+z["state"])
		}
		slices.Sort(zones)
		if want := []string{"az1/network/available", "az1/router/available", "az2/network/available", "az2/router/available",
			"nova/network/available"}; !slices.Equal(zones, want) {
			return fmt.Errorf("zones %v, want %v", zones, want)
		}
		return nil
	})

	var exts map[string][]map[string]any
	opsDo(servers[0], "GET", "/v2.0/extensions", nil, nil, &exts)
	listed := map[string]bool{}
	for _, e := range exts["extensions"] {
		listed[fmt.Sprint(e["alias"])] = true
	}
	for _, alias := range []string{"agent", "availability_zone", "network_availability_zone", "router_availability_zone", "quotas", "quota_details"} {
		if !listed[alias] {
			t.Fatalf("extension %s not listed", alias)
		}
	}
	var ch map[string]map[string]any
	if code := opsDo(servers[0], "GET", "/v2.0/chassis/ops-gw-a", nil, nil, &ch); code != 200 || ch["chassis"]["availability_zone"] != "az1" {
		t.Fatalf("chassis gw-a: %d %v", code, ch)
	}

	// A router hinted to az2 lands on gw-b; an unknown zone is refused.
	ext := servers[0].createNetwork(map[string]any{"name": "ext", "router:external": true, "provider:network_type": "flat",
		"provider:physical_network": "external"}, nil)
	var sub map[string]any
	if code := opsDo(servers[0], "POST", "/v2.0/subnets", nil, map[string]any{"subnet": map[string]any{"network_id": ext["id"],
		"cidr": "203.0.113.0/24", "ip_version": 4}}, &sub); code != 201 {
		t.Fatalf("subnet: %d %v", code, sub)
	}
	code = opsDo(servers[1], "POST", "/v2.0/routers", nil, map[string]any{"router": map[string]any{"name": "r0",
		"availability_zone_hints": []string{"az9"}}}, &nerr)
	wantNeutronError(t, "unknown zone", code, 404, nerr, "AvailabilityZoneNotFound")
	var rl struct{ Routers []map[string]any }
	if code := opsDo(servers[0], "GET", "/v2.0/routers?name=r0", nil, nil, &rl); code != 200 || len(rl.Routers) != 0 {
		t.Fatalf("refused router exists: %d %v", code, rl)
	}
	var rt struct{ Router map[string]any }
	if code := opsDo(servers[1], "POST", "/v2.0/routers", nil, map[string]any{"router": map[string]any{"name": "r1",
		"availability_zone_hints": []string{"az2"}, "external_gateway_info": map[string]any{"network_id": ext["id"]}}}, &rt); code != 201 {
		t.Fatalf("router: %d %v", code, rt)
	}
	routerID := rt.Router["id"].(string)
	eventually(t, 60*time.Second, func() error {
		if code := opsDo(servers[0], "GET", "/v2.0/routers/"+routerID, nil, nil, &rt); code != 200 ||
			fmt.Sprint(rt.Router["availability_zones"]) != "[az2]" || rt.Router["neutrino:active_gateway_chassis"] != "ops-gw-b" {
			return fmt.Errorf("router %d %v", code, rt.Router)
		}
		return nil
	})

	// The CLI sees the same agents and zones.
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatalf("the openstack CLI is not installed: %v", err)
	}
	var rows []map[string]any
	opsCLIJSON(t, servers[2], &rows, "network", "agent", "list", "--host", "ops-cmp")
	if len(rows) != 1 || rows[0]["Agent Type"] != northbound.AgentTypeChassis || rows[0]["State"] != false ||
		rows[0]["Availability Zone"] != "nova" {
		t.Fatalf("cli agent list: %v", rows)
	}
	opsCLIOK(t, servers[0], "network", "agent", "set", "--enable", "--description", "rack 8", cmp.ID)
	var shown map[string]any
	opsCLIJSON(t, servers[1], &shown, "network", "agent", "show", cmp.ID)
	if shown["admin_state_up"] != true || shown["description"] != "rack 8" || shown["host"] != "ops-cmp" {
		t.Fatalf("cli agent show: %v", shown)
	}
	opsCLIJSON(t, servers[1], &rows, "availability", "zone", "list", "--network")
	if len(rows) != 5 {
		t.Fatalf("cli zone list: %v", rows)
	}

	// gw-b dies: its agent goes not-alive (the committed chassis state)
	// and r1 has no gateway left in az2.
	stopB()
	eventually(t, 60*time.Second, func() error {
		a, err := agents.Get(ctx, gopherOps(servers[0], "", ""), gwB.ID).Extract()
		if err != nil || a.Alive {
			return fmt.Errorf("gw-b: %+v %v", a, err)
		}
		return nil
	})
	if code := opsDo(servers[0], "GET", "/v2.0/routers/"+routerID, nil, nil, &rt); code != 200 || rt.Router["neutrino:active_gateway_chassis"] != nil {
		t.Fatalf("router after gw-b died: %d %v", code, rt.Router)
	}
	// (Deleting an alive chassis' agent is a 409 AgentAlive: fsm's
	// TestAgentDelete; here gossip may flap a chassis under load.)
	opsCLIOK(t, servers[2], "network", "agent", "delete", gwB.ID)
	if err := agents.Get(ctx, gopherOps(servers[0], "", ""), gwB.ID).Err; !isStatus(err, 404) {
		t.Fatalf("deleted agent: %v", err)
	}
}

// TestOpsQuotas: quotas through gophercloud, HTTP and the CLI on a
// 3-server cluster; concurrent creates through every server never pass the
// limit; the configured defaults are committed by the leader.
func TestOpsQuotas(t *testing.T) {
	servers := newAPICluster(t, 3, func(c *northbound.Config) {
		c.QuotaDefaults = map[string]int{"router": 2}
		// Every racing create holds a VNI until it is refused.
		c.VNIRanges = []northbound.Range{{Min: 1000, Max: 1999}}
	})
	ctx := context.Background()
	member := func(p string) map[string]string { return map[string]string{"X-Project-Id": p, "X-Roles": "member"} }

	eventually(t, 90*time.Second, func() error {
		q, err := quotas.Get(ctx, gopherOps(servers[1], "", ""), "p-any").Extract()
		if err != nil || q.Router != 2 || q.Network != -1 {
			return fmt.Errorf("defaults not committed: %+v %v", q, err)
		}
		return nil
	})

	// Limit networks to 3, then race 12 creates through all servers.
	three := 3
	q, err := quotas.Update(ctx, gopherOps(servers[2], "", ""), "p-race", quotas.UpdateOpts{Network: &three}).Extract()
	if err != nil || q.Network != 3 || q.Router != 2 {
		t.Fatalf("update: %+v %v", q, err)
	}
	var wg sync.WaitGroup
	codes := make([]int, 12)
	bodies := make([]neutronError, 12)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = opsDo(servers[i%3], "POST", "/v2.0/networks", member("p-race"),
				map[string]any{"network": map[string]any{"name": fmt.Sprintf("n%d", i)}}, &bodies[i])
		}()
	}
	wg.Wait()
	created := 0
	for i, c := range codes {
		switch c {
		case 201:
			created++
		case 409:
			wantNeutronError(t, "over quota", c, 409, bodies[i], fsm.ErrTypeOverQuota)
			if bodies[i].NeutronError.Message != "Quota exceeded for resources: ['network']." {
				t.Fatalf("message %q", bodies[i].NeutronError.Message)
			}
		default:
			t.Fatalf("create %d: %d %+v", i, c, bodies[i])
		}
	}
	// A resend after a 503 OutcomeUnknown may find its first attempt
	// applied, so the answers can count fewer than the state holds.
	var nl struct{ Networks []map[string]any }
	if code := opsDo(servers[1], "GET", "/v2.0/networks", member("p-race"), nil, &nl); code != 200 || len(nl.Networks) != 3 || created > 3 || created == 0 {
		t.Fatalf("%d created answers, %d networks under a limit of 3: %v", created, len(nl.Networks), codes)
	}
	var details struct {
		Quota map[string]map[string]int `json:"quota"`
	}
	if code := opsDo(servers[0], "GET", "/v2.0/quotas/p-race/details", member("p-race"), nil, &details); code != 200 ||
		details.Quota["network"]["used"] != 3 || details.Quota["network"]["limit"] != 3 {
		t.Fatalf("details: %d %v", code, details)
	}

	// Bad input and policy: 400/403 with Neutron's body, nothing changed.
	rev := agreedRevision(t, servers)
	var nerr neutronError
	for _, body := range []any{
		map[string]any{"quota": map[string]any{"network": "many"}},
		map[string]any{"quota": map[string]any{"network": -2}},
		map[string]any{"quota": map[string]any{"bogus": 1}},
		map[string]any{"quotas": map[string]any{"network": 1}},
		`{"quota": `,
	} {
		code := opsDo(servers[1], "PUT", "/v2.0/quotas/p-race", nil, body, &nerr)
		if code != 400 || nerr.NeutronError.Type == "" {
			t.Fatalf("PUT %v: %d %+v", body, code, nerr)
		}
	}
	code := opsDo(servers[1], "PUT", "/v2.0/quotas/p-race", member("p-race"), map[string]any{"quota": map[string]any{"network": 50}}, &nerr)
	wantNeutronError(t, "member PUT", code, 403, nerr, "PolicyNotAuthorized")
	code = opsDo(servers[1], "GET", "/v2.0/quotas/p-race", member("p-other"), nil, &nerr)
	wantNeutronError(t, "other project's quota", code, 403, nerr, "PolicyNotAuthorized")
	for i, s := range servers {
		if r := s.revision(); r != rev {
			var st [3]map[string]any
			for j := range servers {
				servers[j].do("GET", "/v1/cluster", nil, nil, &st[j])
			}
			t.Fatalf("rejected requests moved server %d's revision %d -> %d; cluster status: %v", i, rev, r, st)
		}
	}

	// The default router limit holds for a project without a row.
	for i := range 3 {
		code := opsDo(servers[i], "POST", "/v2.0/routers", member("p-r"), map[string]any{"router": map[string]any{"name": "r"}}, &nerr)
		if want := map[bool]int{true: 201, false: 409}[i < 2]; code != want {
			t.Fatalf("router %d: %d %+v", i, code, nerr)
		}
	}

	// Reset to defaults.
	if err := quotas.Delete(ctx, gopherOps(servers[0], "", ""), "p-race").ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if q, err := quotas.Get(ctx, gopherOps(servers[1], "", ""), "p-race").Extract(); err != nil || q.Network != -1 {
		t.Fatalf("after reset: %+v %v", q, err)
	}
	if err := quotas.Delete(ctx, gopherOps(servers[0], "", ""), "p-race").ExtractErr(); !isStatus(err, 404) {
		t.Fatalf("second reset: %v", err)
	}

	// The CLI: quota set, quota list --network, and its create refused.
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatalf("the openstack CLI is not installed: %v", err)
	}
	opsCLIOK(t, servers[0], "quota", "set", "--networks", "1", "p-cli")
	var rows []map[string]any
	opsCLIJSON(t, servers[1], &rows, "quota", "list", "--network", "--project", "p-cli")
	if len(rows) != 1 || rows[0]["Project ID"] != "p-cli" || rows[0]["Networks"] != float64(1) || rows[0]["Routers"] != float64(2) {
		t.Fatalf("cli quota list: %v", rows)
	}
	cliOK(t, servers[2], "network", "create", "--project", "p-cli", "cli-n1")
	out, err := cli(t, servers[0], "network", "create", "--project", "p-cli", "cli-n2")
	if err == nil || !strings.Contains(out, "Quota exceeded for resources: ['network']") {
		t.Fatalf("second network over quota: %v\n%s", err, out)
	}
}
