package controller

import (
	"maps"
	"testing"

	"github.com/hashicorp/raft"

	"neutrino/fsm"
)

// TestLocalBindings: a chassis carries a scheduled port (VIP, router
// gateway) only where the FSM bound it; other plugged ports as shown.
func TestLocalBindings(t *testing.T) {
	f := fsm.New(nil)
	idx := uint64(0)
	apply := func(typ fsm.CommandType, body any) {
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
