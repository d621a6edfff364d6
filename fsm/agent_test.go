package fsm

import (
	"testing"
)

func TestAgentID(t *testing.T) {
	a, b := AgentID(AgentKindChassis, "n1"), AgentID(AgentKindServer, "n1")
	if a == b || a != AgentID(AgentKindChassis, "n1") || len(a) != 36 || a[14] != '5' {
		t.Fatalf("ids %s %s", a, b)
	}
}

// TestZoneHintsRestrictGateways: a router's availability_zone_hints (or
// its external network's) restrict its gateway chassis to those zones,
// with no fallback outside them; an admin-down chassis gets no new
// gateway but keeps the one it has.
func TestZoneHintsRestrictGateways(t *testing.T) {
	a, b, c := gatewayChassis("gw-a", "physnet1"), gatewayChassis("gw-b", "physnet1"), gatewayChassis("gw-c", "physnet1")
	a.AvailabilityZone, b.AvailabilityZone = "az1", "az2"
	e := newGwEnv(t, a, b, c)
	if c.Zone() != DefaultAvailabilityZone {
		t.Fatalf("default zone %q", c.Zone())
	}
	r := &Router{Meta: Meta{ID: "r1", ProjectID: "p1", RevisionNumber: 1}, AdminStateUp: true, Status: "ACTIVE",
		AvailabilityZoneHints: []string{"az2"}, Gateway: &ExternalGateway{NetworkID: "ext", EnableSNAT: true}}
	e.must(CmdRouterCreate, RouterCreateRequest{Router: r, GatewayPort: e.gwPort("r1")})
	e.expect("r1", []string{"gw-b"}, "gw-b")

	// gw-b dies: nothing else in az2, so the gateway is unbound rather
	// than moved out of its zone.
	e.setState(false, "gw-b")
	e.expect("r1", []string{"gw-b"}, "")
	e.setState(true, "gw-b")
	e.expect("r1", []string{"gw-b"}, "gw-b")

	// Without hints of its own, a router takes its external network's.
	ext := e.f.State().Read().Network("ext").Copy()
	ext.AvailabilityZoneHints = []string{"az1", "nova"}
	e.must(CmdNetworkUpdate, NetworkUpdateRequest{Network: ext, PrevIndex: ext.ModifyIndex})
	if res := e.createRouter("r2", nil, false); res.Err != nil {
		t.Fatal(res.Err)
	}
	e.expect("r2", []string{"gw-a", "gw-c"}, "gw-a")

	// Admin down: gw-a keeps r2 but a new router skips it.
	up := false
	e.must(CmdAgentUpdate, AgentUpdateRequest{Kind: AgentKindChassis, Host: "gw-a", AdminStateUp: &up, At: "t1"})
	if res := e.createRouter("r3", nil, false); res.Err != nil {
		t.Fatal(res.Err)
	}
	e.expect("r2", []string{"gw-a", "gw-c"}, "gw-a")
	e.expect("r3", []string{"gw-c"}, "gw-c")
	if s := e.f.State().Read().AgentSettingsOf(AgentKindChassis, "gw-a"); s.AdminStateUp || s.RevisionNumber != 1 {
		t.Fatalf("settings %+v", s)
	}
}

func TestAgentDelete(t *testing.T) {
	e := newGwEnv(t, gatewayChassis("gw-a", "physnet1"), gatewayChassis("gw-b", "physnet1"))
	if res := e.createRouter("r1", []string{"gw-a", "gw-b"}, false); res.Err != nil {
		t.Fatal(res.Err)
	}
	rev := e.f.State().Read().Revision()
	res := e.apply(CmdAgentDelete, AgentDeleteRequest{Kind: AgentKindChassis, Host: "gw-a", At: "t1"})
	if fe, ok := AsError(res.Err); !ok || fe.Type != ErrTypeAgentAlive || fe.Code != CodeConflict || e.f.State().Read().Revision() != rev {
		t.Fatalf("delete of an alive chassis: %+v", res)
	}
	e.setState(false, "gw-a")
	e.must(CmdAgentDelete, AgentDeleteRequest{Kind: AgentKindChassis, Host: "gw-a", At: "t2"})
	if e.f.State().Read().Chassis("gw-a") != nil {
		t.Fatal("chassis still there")
	}
	e.expect("r1", []string{"gw-b"}, "gw-b")
	res = e.apply(CmdAgentDelete, AgentDeleteRequest{Kind: AgentKindChassis, Host: "gw-a", At: "t3"})
	if fe, ok := AsError(res.Err); !ok || fe.Code != CodeNotFound {
		t.Fatalf("second delete: %+v", res)
	}
}

// fillAgentTable gives the agents table a row.
func fillAgentTable(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	d := "rack 3"
	if r := apply(t, f, index, CmdAgentUpdate, AgentUpdateRequest{Kind: AgentKindServer, Host: "s1", Description: &d, At: "t"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	return index
}
