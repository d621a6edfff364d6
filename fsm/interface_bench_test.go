package fsm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// routerWithInterfaces builds a router with n interfaces, on subnets
// 10.0.i.0/24, and one more network with subnet 10.200.0.0/24 (sub-new)
// that is not attached; it returns the FSM.
func routerWithInterfaces(tb testing.TB, n int) *FSM {
	tb.Helper()
	f := New(nil)
	var index uint64
	must := func(typ CommandType, body any) {
		tb.Helper()
		index++
		buf, err := Encode(typ, body)
		if err != nil {
			tb.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf}).(*Result); r.Err != nil {
			tb.Fatal(r.Err)
		}
	}
	r := &Router{Meta: Meta{ID: "r", ProjectID: "p1", RevisionNumber: 1}, AdminStateUp: true, Status: "ACTIVE"}
	must(CmdRouterCreate, RouterCreateRequest{Router: r})
	prev := index
	for i := range n + 1 {
		net, sub := fmt.Sprintf("n%d", i), fmt.Sprintf("s%d", i)
		cidr := fmt.Sprintf("10.0.%d.0/24", i)
		if i == n {
			net, sub, cidr = "n-new", "sub-new", "10.200.0.0/24"
		}
		must(CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork(net, 5000+i)}})
		s := testSubnet(sub, net, cidr)
		s.GatewayIP = strings.TrimSuffix(cidr, "0/24") + "1"
		must(CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{s}})
		if i == n {
			break
		}
		p := testPort("if"+sub, net, fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256), ip(sub, s.GatewayIP))
		p.DeviceID, p.DeviceOwner, p.SecurityGroups, p.AllowedAddressPairs = "r", DeviceOwnerRouterInterface, nil, nil
		next := r.Copy()
		next.RevisionNumber++
		must(CmdRouterInterfaceAdd, RouterInterfaceAddRequest{Router: next, PrevIndex: prev, Port: p})
		r, prev = next, index
	}
	return f
}

// TestCheckInterfaceSubnet: a subnet already on the router, a subnet
// overlapping two of its interface subnets (the error names the older),
// and a free one.
func TestCheckInterfaceSubnet(t *testing.T) {
	f := routerWithInterfaces(t, 5)
	v := f.State().Read()
	if err := v.CheckInterfaceSubnet("r", v.Subnet("sub-new")); err != nil {
		t.Fatalf("free subnet refused: %v", err)
	}
	if err := v.CheckInterfaceSubnet("r", v.Subnet("s3")); err == nil || !strings.Contains(err.Error(), "already has a port on subnet s3") {
		t.Fatalf("subnet on the router: %v", err)
	}
	wide := testSubnet("wide", "n-new", "10.0.0.0/16")
	if err := v.CheckInterfaceSubnet("r", wide); err == nil || !strings.Contains(err.Error(), "overlaps with cidr 10.0.0.0/24 of subnet s0") {
		t.Fatalf("overlapping subnet: %v", err)
	}
}

// BenchmarkCheckInterfaceSubnet is the subnet check of one
// add_router_interface on a router with 100 interfaces (run by the handler
// and by every replica's apply).
func BenchmarkCheckInterfaceSubnet(b *testing.B) {
	f := routerWithInterfaces(b, 100)
	v := f.State().Read()
	sub := v.Subnet("sub-new")
	b.ReportAllocs()
	for b.Loop() {
		if err := v.CheckInterfaceSubnet("r", sub); err != nil {
			b.Fatal(err)
		}
	}
}
