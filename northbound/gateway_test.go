package northbound_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
	"neutrino/northbound"
)

// localBackend applies commands straight to an FSM: a one-node cluster
// without Raft, so that a test can also commit what only the southbound
// and the cluster propose (chassis records).
type localBackend struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (b *localBackend) Apply(_ context.Context, cmd []byte) (*fsm.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	return b.f.Apply(&raft.Log{Index: b.index, Type: raft.LogCommand, Data: cmd}).(*fsm.Result), nil
}

func (b *localBackend) IsLeader() bool                     { return true }
func (b *localBackend) LeaderHTTPAddr() string             { return "" }
func (b *localBackend) VerifyLeader(context.Context) error { return nil }
func (b *localBackend) WaitReady(context.Context) error    { return nil }

func (b *localBackend) must(t *testing.T, typ fsm.CommandType, body any) {
	t.Helper()
	cmd, err := fsm.Encode(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := b.Apply(context.Background(), cmd)
	if res.Err != nil {
		t.Fatalf("%s: %v", typ, res.Err)
	}
}

func newLocalAPI(t *testing.T) (*apiServer, *localBackend) {
	t.Helper()
	f := fsm.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	be := &localBackend{f: f}
	cfg := northbound.DefaultConfig()
	cfg.FlatNetworks = []string{"physnet1"}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	hs := httptest.NewServer(northbound.New(cfg, be, f).Handler())
	t.Cleanup(hs.Close)
	return &apiServer{t: t, base: hs.URL}, be
}

func testGatewayChassis(name string, gateway bool) *fsm.Chassis {
	roles := []string{fsm.ChassisRoleCompute}
	if gateway {
		roles = append(roles, fsm.ChassisRoleGateway)
	}
	return &fsm.Chassis{Meta: fsm.Meta{ID: name, Name: name, RevisionNumber: 1, UpdatedAt: "2026-11-23T00:00:00Z"},
		TunnelIP: "192.0.2.1", Roles: roles, BridgeMappings: map[string]string{"physnet1": "br-ex"},
		Encaps: []string{"geneve"}, DatapathID: fsm.ChassisDatapathID(name), Up: true}
}

// checkNeutronError checks a NeutronError body of the given status and type.
func checkNeutronError(t *testing.T, code, wantCode int, out map[string]any, wantType string) {
	t.Helper()
	ne, _ := out["NeutronError"].(map[string]any)
	if code != wantCode || ne == nil || (wantType != "" && ne["type"] != wantType) || ne["message"] == "" {
		t.Fatalf("got %d %v, want %d %s", code, out, wantCode, wantType)
	}
}

func TestRouterGatewayChassisAttributes(t *testing.T) {
	s, be := newLocalAPI(t)
	be.must(t, fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{
		testGatewayChassis("gw1", true), testGatewayChassis("gw2", true), testGatewayChassis("c1", false)}})
	ext := s.create("networks", "network", map[string]any{"name": "public", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "physnet1"}, nil)
	s.create("subnets", "subnet", map[string]any{"ip_version": 4, "network_id": ext["id"], "cidr": "203.0.113.0/24"}, nil)
	gwInfo := map[string]any{"network_id": ext["id"]}

	// Scheduled: spread over the two gateways.
	r1 := s.create("routers", "router", map[string]any{"name": "r1", "external_gateway_info": gwInfo}, nil)
	r2 := s.create("routers", "router", map[string]any{"name": "r2", "external_gateway_info": gwInfo}, nil)
	if fmt.Sprint(r1["neutrino:gateway_chassis"]) != "[gw1 gw2]" || r1["neutrino:active_gateway_chassis"] != "gw1" || r1["neutrino:gateway_preempt"] != false {
		t.Fatalf("r1: %v", r1)
	}
	if fmt.Sprint(r2["neutrino:gateway_chassis"]) != "[gw2 gw1]" || r2["neutrino:active_gateway_chassis"] != "gw2" {
		t.Fatalf("r2: %v", r2)
	}
	var got map[string]map[string]any
	s.do("GET", "/v2.0/routers/"+r1["id"].(string), nil, nil, &got)
	if got["router"]["neutrino:active_gateway_chassis"] != "gw1" {
		t.Fatalf("show: %v", got)
	}
	// No gateway: empty list, null active.
	r3 := s.create("routers", "router", map[string]any{"name": "r3"}, nil)
	if fmt.Sprint(r3["neutrino:gateway_chassis"]) != "[]" || r3["neutrino:active_gateway_chassis"] != nil {
		t.Fatalf("r3: %v", r3)
	}

	// Explicit list and preemption from an admin.
	r4 := s.create("routers", "router", map[string]any{"name": "r4", "external_gateway_info": gwInfo,
		"neutrino:gateway_chassis": []string{"gw2"}, "neutrino:gateway_preempt": true}, nil)
	if fmt.Sprint(r4["neutrino:gateway_chassis"]) != "[gw2]" || r4["neutrino:active_gateway_chassis"] != "gw2" || r4["neutrino:gateway_preempt"] != true {
		t.Fatalf("r4: %v", r4)
	}
	path4 := "/v2.0/routers/" + r4["id"].(string)
	up := s.put(path4, nil, map[string]any{"router": map[string]any{"neutrino:gateway_chassis": []string{"gw1", "gw2"}}})["router"].(map[string]any)
	if fmt.Sprint(up["neutrino:gateway_chassis"]) != "[gw1 gw2]" || up["neutrino:active_gateway_chassis"] != "gw1" || up["revision_number"] != float64(2) {
		t.Fatalf("update (preempting): %v", up)
	}
	up = s.put(path4, nil, map[string]any{"router": map[string]any{"neutrino:gateway_preempt": false, "neutrino:gateway_chassis": []string{"gw2", "gw1"}}})["router"].(map[string]any)
	if up["neutrino:active_gateway_chassis"] != "gw1" || up["neutrino:gateway_preempt"] != false {
		t.Fatalf("update (not preempting): %v", up)
	}
	// null asks for a scheduled list.
	up = s.put(path4, nil, map[string]any{"router": map[string]any{"neutrino:gateway_chassis": nil}})["router"].(map[string]any)
	if l, _ := up["neutrino:gateway_chassis"].([]any); len(l) != 2 || up["neutrino:active_gateway_chassis"] != "gw1" {
		t.Fatalf("update (rescheduled): %v", up)
	}

	// Failover through the state machine shows on the router.
	be.must(t, fsm.CmdChassisSetState, fsm.ChassisSetStateRequest{Names: []string{"gw1"}, Up: false, At: "2026-11-23T01:00:00Z"})
	s.do("GET", "/v2.0/routers/"+r1["id"].(string), nil, nil, &got)
	if got["router"]["neutrino:active_gateway_chassis"] != "gw2" || got["router"]["updated_at"] != "2026-11-23T01:00:00Z" {
		t.Fatalf("after failover: %v", got)
	}

	// Bad values: 400 with a NeutronError.
	var out map[string]any
	for _, bad := range []any{[]string{"nope"}, []string{"c1"}, []string{"gw1", "gw1"},
		[]string{"gw1", "gw2", "gw1", "gw2", "gw1", "gw2"}, "gw1", []any{1}} {
		code := s.do("POST", "/v2.0/routers", nil, map[string]any{"router": map[string]any{"external_gateway_info": gwInfo,
			"neutrino:gateway_chassis": bad}}, &out)
		checkNeutronError(t, code, 400, out, "")
		code = s.do("PUT", path4, nil, map[string]any{"router": map[string]any{"neutrino:gateway_chassis": bad}}, &out)
		checkNeutronError(t, code, 400, out, "")
	}
	code := s.do("POST", "/v2.0/routers", nil, map[string]any{"router": map[string]any{"neutrino:gateway_chassis": []string{"gw1"}}}, &out)
	checkNeutronError(t, code, 400, out, fsm.ErrTypeInvalidGatewayChassis)
	code = s.do("POST", "/v2.0/routers", nil, map[string]any{"router": map[string]any{"neutrino:gateway_preempt": "maybe"}}, &out)
	checkNeutronError(t, code, 400, out, "")
	code = s.do("PUT", path4, nil, map[string]any{"router": map[string]any{"neutrino:active_gateway_chassis": "gw1"}}, &out)
	checkNeutronError(t, code, 400, out, "")

	// Members: 403 on setting, attributes not shown.
	member := map[string]string{"X-Project-Id": "p-member", "X-Roles": "member"}
	code = s.do("POST", "/v2.0/routers", member, map[string]any{"router": map[string]any{"name": "m",
		"neutrino:gateway_chassis": []string{"gw1"}}}, &out)
	checkNeutronError(t, code, 403, out, "PolicyNotAuthorized")
	code = s.do("POST", "/v2.0/routers", member, map[string]any{"router": map[string]any{"name": "m", "neutrino:gateway_preempt": true}}, &out)
	checkNeutronError(t, code, 403, out, "PolicyNotAuthorized")
	mr := s.create("routers", "router", map[string]any{"name": "m", "external_gateway_info": gwInfo}, member)
	if _, ok := mr["neutrino:gateway_chassis"]; ok {
		t.Fatalf("member sees gateway chassis: %v", mr)
	}
	if _, ok := mr["neutrino:active_gateway_chassis"]; ok {
		t.Fatalf("member sees the active gateway: %v", mr)
	}
	code = s.do("PUT", "/v2.0/routers/"+mr["id"].(string), member, map[string]any{"router": map[string]any{"neutrino:gateway_chassis": []string{"gw2"}}}, &out)
	checkNeutronError(t, code, 403, out, "PolicyNotAuthorized")
	// ... but the admin sees where the member's router runs.
	s.do("GET", "/v2.0/routers/"+mr["id"].(string), nil, nil, &got)
	if got["router"]["neutrino:active_gateway_chassis"] != "gw2" {
		t.Fatalf("admin view of member router: %v", got)
	}

	// The extension is listed.
	var exts map[string][]map[string]any
	s.do("GET", "/v2.0/extensions", nil, nil, &exts)
	found := false
	for _, e := range exts["extensions"] {
		found = found || e["alias"] == "neutrino-gateway-chassis"
	}
	if !found {
		t.Fatal("extension neutrino-gateway-chassis not listed")
	}
}
