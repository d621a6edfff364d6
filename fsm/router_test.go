package fsm

import "testing"

// fillL3Tables builds an external network, an internal subnet, a router
// with a gateway and an interface, and an associated floating IP, starting
// at index; it returns the last index used.
func fillL3Tables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	must := func(r *Result) {
		t.Helper()
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	ext := testNetwork("l3-ext", 4100)
	ext.External = true
	must(apply(t, f, index, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{ext, testNetwork("l3-int", 4101)}}))
	extSub := testSubnet("l3-ext-sub", "l3-ext", "203.0.113.0/24")
	extSub.AllocationPools = []IPRange{{Start: "203.0.113.10", End: "203.0.113.200"}}
	intSub := testSubnet("l3-int-sub", "l3-int", "10.0.0.0/24")
	intSub.GatewayIP = "10.0.0.1"
	must(apply(t, f, index+1, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{extSub, intSub}}))
	gw := testPort("l3-gw", "l3-ext", "fa:16:3e:00:10:01", ip("l3-ext-sub", "203.0.113.10"))
	gw.DeviceID, gw.DeviceOwner, gw.SecurityGroups, gw.AllowedAddressPairs = "l3-r", DeviceOwnerRouterGateway, nil, nil
	r := &Router{Meta: Meta{ID: "l3-r", ProjectID: "p1", Name: "r", RevisionNumber: 1}, AdminStateUp: true, Status: "ACTIVE",
		Gateway: &ExternalGateway{NetworkID: "l3-ext", EnableSNAT: true}}
	must(apply(t, f, index+2, CmdRouterCreate, RouterCreateRequest{Router: r, GatewayPort: gw}))
	ifp := testPort("l3-if", "l3-int", "fa:16:3e:00:10:02", ip("l3-int-sub", "10.0.0.1"))
	ifp.DeviceID, ifp.DeviceOwner, ifp.SecurityGroups, ifp.AllowedAddressPairs = "l3-r", DeviceOwnerRouterInterface, nil, nil
	r2 := r.Copy()
	r2.RevisionNumber = 2
	must(apply(t, f, index+3, CmdRouterInterfaceAdd, RouterInterfaceAddRequest{Router: r2, PrevIndex: index + 2, Port: ifp}))
	vm := testPort("l3-vm", "l3-int", "fa:16:3e:00:10:03", ip("l3-int-sub", "10.0.0.5"))
	vm.SecurityGroups, vm.AllowedAddressPairs = nil, nil
	must(apply(t, f, index+4, CmdPortCreate, PortCreateRequest{Ports: []*Port{vm}}))
	fp := testPort("l3-fip-port", "l3-ext", "fa:16:3e:00:10:04", ip("l3-ext-sub", "203.0.113.11"))
	fp.ProjectID, fp.DeviceID, fp.DeviceOwner, fp.SecurityGroups, fp.AllowedAddressPairs = "", "l3-fip", DeviceOwnerFloatingIP, nil, nil
	fip := &FloatingIP{Meta: Meta{ID: "l3-fip", ProjectID: "p1", RevisionNumber: 1}, FloatingNetworkID: "l3-ext", FloatingSubnetID: "l3-ext-sub",
		FloatingIPAddress: "203.0.113.11", FloatingPortID: "l3-fip-port", PortID: "l3-vm", FixedIPAddress: "10.0.0.5"}
	must(apply(t, f, index+5, CmdFloatingIPCreate, FloatingIPCreateRequest{FloatingIP: fip, Port: fp}))
	return index + 5
}

func TestApplyL3Lifecycle(t *testing.T) {
	f := New(nil)
	last := fillL3Tables(t, f, 1)
	v := f.State().Read()
	fip := v.FloatingIP("l3-fip")
	if fip == nil || fip.RouterID != "l3-r" || fip.Status != FloatingIPActive {
		t.Fatalf("floating IP: %+v", fip)
	}
	if gp := v.RouterGatewayPort("l3-r"); gp == nil || gp.ID != "l3-gw" || len(v.RouterInterfaces("l3-r")) != 1 {
		t.Fatal("router ports not found")
	}
	idx := last + 1
	step := func(typ CommandType, body any, want string) {
		t.Helper()
		r := apply(t, f, idx, typ, body)
		idx++
		if want == "" && r.Err != nil {
			t.Fatalf("%s: %v", typ, r.Err)
		}
		if want != "" {
			if fe, ok := AsError(r.Err); !ok || fe.Type != want {
				t.Fatalf("%s: got %v, want %s", typ, r.Err, want)
			}
		}
	}
	router := func() *Router { return f.State().Read().Router("l3-r") }
	// The router's ports cannot go through the port API.
	step(CmdPortDelete, PortDeleteRequest{ID: "l3-if"}, ErrTypeL3PortInUse)
	step(CmdPortDelete, PortDeleteRequest{ID: "l3-gw"}, ErrTypeL3PortInUse)
	step(CmdPortDelete, PortDeleteRequest{ID: "l3-fip-port"}, ErrTypeL3PortInUse)
	// The floating IP holds the interface and the gateway.
	cur := router()
	step(CmdRouterInterfaceRemove, RouterInterfaceRemoveRequest{Router: cur.Copy(), PrevIndex: cur.ModifyIndex, PortID: "l3-if"}, ErrTypeRouterInterfaceInUseByFIP)
	noGW := cur.Copy()
	noGW.Gateway = nil
	step(CmdRouterUpdate, RouterUpdateRequest{Router: noGW, PrevIndex: cur.ModifyIndex}, ErrTypeGatewayInUseByFloatingIP)
	step(CmdRouterDelete, RouterDeleteRequest{ID: "l3-r"}, ErrTypeRouterInUse)
	// The external network stays external while the gateway is on it.
	internal := f.State().Read().Network("l3-ext").Copy()
	internal.External = false
	step(CmdNetworkUpdate, NetworkUpdateRequest{Network: internal, PrevIndex: internal.ModifyIndex}, ErrTypeExternalNetworkInUse)
	// Routes must go through one of the router's subnets.
	bad := cur.Copy()
	bad.Routes = []Route{{Destination: "192.168.0.0/16", NextHop: "172.16.0.1"}}
	step(CmdRouterUpdate, RouterUpdateRequest{Router: bad, PrevIndex: cur.ModifyIndex}, ErrTypeInvalidRoutes)
	good := cur.Copy()
	good.Routes = []Route{{Destination: "192.168.0.0/16", NextHop: "10.0.0.254"}}
	step(CmdRouterUpdate, RouterUpdateRequest{Router: good, PrevIndex: cur.ModifyIndex}, "")
	// Stale compare-and-set.
	step(CmdRouterUpdate, RouterUpdateRequest{Router: good, PrevIndex: cur.ModifyIndex}, ErrTypeStaleUpdate)

	// Deleting the VM port disassociates its floating IP.
	step(CmdPortDelete, PortDeleteRequest{ID: "l3-vm"}, "")
	if fip := f.State().Read().FloatingIP("l3-fip"); fip.PortID != "" || fip.RouterID != "" || fip.Status != FloatingIPDown {
		t.Fatalf("after port delete: %+v", fip)
	}
	// The route still needs the interface.
	cur = router()
	step(CmdRouterInterfaceRemove, RouterInterfaceRemoveRequest{Router: cur.Copy(), PrevIndex: cur.ModifyIndex, PortID: "l3-if"}, ErrTypeRouterInterfaceInUseByRoute)
	noRoutes := cur.Copy()
	noRoutes.Routes = nil
	step(CmdRouterUpdate, RouterUpdateRequest{Router: noRoutes, PrevIndex: cur.ModifyIndex}, "")
	cur = router()
	step(CmdRouterInterfaceRemove, RouterInterfaceRemoveRequest{Router: cur.Copy(), PrevIndex: cur.ModifyIndex, PortID: "l3-if"}, "")
	step(CmdFloatingIPDelete, FloatingIPDeleteRequest{ID: "l3-fip"}, "")
	step(CmdRouterDelete, RouterDeleteRequest{ID: "l3-r"}, "")
	v = f.State().Read()
	if len(v.Ports()) != 0 || len(v.Routers()) != 0 || len(v.FloatingIPs()) != 0 {
		t.Fatalf("left %d ports, %d routers, %d floating IPs", len(v.Ports()), len(v.Routers()), len(v.FloatingIPs()))
	}
}
