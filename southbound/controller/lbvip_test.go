package controller

import (
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
)

// TestLocalBindings: a chassis carries a scheduled port (VIP, router
// gateway) only where the FSM bound it; other plugged ports as shown.
func TestLocalBindings(t *testing.T) {
	f := fsm.New(nil)
	apply := applier(t, f)
	apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{{Meta: fsm.Meta{ID: "n1", ProjectID: "p"}, AdminStateUp: true, SegmentationID: 5}}})
	ports := []*fsm.Port{
		{Meta: fsm.Meta{ID: "vip", ProjectID: "p"}, NetworkID: "n1", MACAddress: "fa:16:3e:00:00:01", DeviceOwner: fsm.DeviceOwnerLBVIP, AdminStateUp: true},
		{Meta: fsm.Meta{ID: "vm", ProjectID: "p"}, NetworkID: "n1", MACAddress: "fa:16:3e:00:00:02", AdminStateUp: true},
	}
	apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ports})
	shown := map[string]uint32{"vip": 4, "vm": 5, "gone": 6}
	v := f.State().Read()
	if got, want := localBindings(v, "gw-b", shown), map[string]uint32{"vm": 5, "gone": 6}; !maps.Equal(got, want) {
		t.Fatalf("unbound VIP: %v, want %v", got, want)
	}
}

// TestGatewayRemotesFollowRecords: the tgw-* tunnel ports follow the
// gateway chassis records, not their liveness: a gateway declared down
// keeps its port on every other chassis (a false death must not rewrite
// every switch's ports), one deleted loses it, and only gateways with a
// tunnel address get one.
func TestGatewayRemotesFollowRecords(t *testing.T) {
	f := fsm.New(nil)
	apply := applier(t, f)
	chassis := func(name, ip string, roles ...string) *fsm.Chassis {
		return &fsm.Chassis{Meta: fsm.Meta{ID: name, Name: name}, TunnelIP: ip, Roles: roles,
			Encaps: []string{"geneve", "vxlan"}, Up: true}
	}
	apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{
		chassis("ch-1", "10.0.0.1", "compute"), chassis("gw-1", "10.0.0.11", "gateway"),
		chassis("gw-2", "10.0.0.12", "gateway"), chassis("gw-3", "", "gateway"),
	}})
	c := &Controller{}
	names := func(self string) []string {
		t.Helper()
		v := f.State().Read()
		var me *fsm.Chassis
		for _, o := range v.ChassisList() {
			if o.Name == self {
				me = o
			}
		}
		var out []string
		for _, r := range c.gatewayRemotes(v, me) {
			if r.Encap != "geneve" {
				t.Fatalf("%s -> %s over %s, want geneve", self, r.Chassis, r.Encap)
			}
			out = append(out, r.Chassis)
		}
		return out
	}
	if got := names("ch-1"); !slices.Equal(got, []string{"gw-1", "gw-2"}) {
		t.Fatalf("all up: %v", got)
	}
	apply(fsm.CmdChassisSetState, fsm.ChassisSetStateRequest{Names: []string{"gw-1"}, Up: false, At: "2026-12-07T00:00:00Z"})
	if got := names("ch-1"); !slices.Equal(got, []string{"gw-1", "gw-2"}) {
		t.Fatalf("gw-1 down: %v, want its port kept", got)
	}
	if got := c.gateways(f.State().Read()); len(got) != 1 || got[0].Name != "gw-2" {
		t.Fatalf("up gateways with gw-1 down: %v", got)
	}
	if got := names("gw-2"); !slices.Equal(got, []string{"gw-1"}) {
		t.Fatalf("from gw-2: %v", got)
	}
	apply(fsm.CmdChassisDelete, fsm.ChassisDeleteRequest{Name: "gw-1", At: "2026-12-07T00:00:01Z"})
	if got := names("ch-1"); !slices.Equal(got, []string{"gw-2"}) {
		t.Fatalf("gw-1 deleted: %v", got)
	}
}

// applier applies commands to f at increasing indexes, failing t on any
// error.
func applier(t *testing.T, f *fsm.FSM) func(fsm.CommandType, any) {
	idx := uint64(0)
	return func(typ fsm.CommandType, body any) {
		t.Helper()
		idx++
		cmd, err := fsm.Encode(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: idx, Data: cmd}).(*fsm.Result); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
}
