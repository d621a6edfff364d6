package fsm

import (
	"testing"
)

func testIKEPolicy(id string) *IKEPolicy {
	return &IKEPolicy{Meta: Meta{ID: id, ProjectID: "p1", Name: "ike-" + id, RevisionNumber: 1},
		AuthAlgorithm: "sha256", EncryptionAlgorithm: "aes-128", PFS: "group14", Phase1NegotiationMode: "main",
		IKEVersion: "v2", LifetimeUnits: "seconds", LifetimeValue: 3600}
}

func testIPsecPolicy(id string) *IPsecPolicy {
	return &IPsecPolicy{Meta: Meta{ID: id, ProjectID: "p1", Name: "ipsec-" + id, RevisionNumber: 1},
		TransformProtocol: "esp", EncapsulationMode: "tunnel", AuthAlgorithm: "sha256", EncryptionAlgorithm: "aes-256",
		PFS: "group14", LifetimeUnits: "seconds", LifetimeValue: 3600}
}

func testSiteConnection(id string) *IPsecSiteConnection {
	return &IPsecSiteConnection{Meta: Meta{ID: id, ProjectID: "p1", Name: "conn-" + id, RevisionNumber: 1},
		VPNServiceID: "vpn-s", IKEPolicyID: "vpn-ike", IPsecPolicyID: "vpn-ipsec", PeerAddress: "203.0.113.50",
		PeerID: "203.0.113.50", PSK: "secret", LocalEPGroupID: "vpn-local", PeerEPGroupID: "vpn-peer", MTU: 1500,
		Initiator: "bi-directional", DPDAction: "hold", DPDInterval: 30, DPDTimeout: 120, AdminStateUp: true,
		RouteMode: VPNRouteModeStatic, AuthMode: VPNAuthModePSK}
}

// fillVPNTables adds a row to every VPNaaS table on fillL3Tables' router
// l3-r (its gateway bound by fillGatewayTables to gw-snap).
func fillVPNTables(t *testing.T, f *FSM, index uint64) uint64 {
	t.Helper()
	steps := []struct {
		typ  CommandType
		body any
	}{
		{CmdVPNIKEPolicyCreate, VPNIKEPolicyCreateRequest{Policy: testIKEPolicy("vpn-ike")}},
		{CmdVPNIPsecPolicyCreate, VPNIPsecPolicyCreateRequest{Policy: testIPsecPolicy("vpn-ipsec")}},
		{CmdVPNServiceCreate, VPNServiceCreateRequest{Service: &VPNService{Meta: Meta{ID: "vpn-s", ProjectID: "p1", RevisionNumber: 1},
			RouterID: "l3-r", AdminStateUp: true}}},
		{CmdVPNEndpointGroupCreate, VPNEndpointGroupCreateRequest{Group: &EndpointGroup{Meta: Meta{ID: "vpn-local", ProjectID: "p1", RevisionNumber: 1},
			Type: VPNEndpointSubnet, Endpoints: []string{"l3-int-sub"}}}},
		{CmdVPNEndpointGroupCreate, VPNEndpointGroupCreateRequest{Group: &EndpointGroup{Meta: Meta{ID: "vpn-peer", ProjectID: "p1", RevisionNumber: 1},
			Type: VPNEndpointCIDR, Endpoints: []string{"172.16.0.0/24"}}}},
		{CmdVPNSiteConnectionCreate, VPNSiteConnectionCreateRequest{Connection: testSiteConnection("vpn-c")}},
	}
	for i, s := range steps {
		if r := apply(t, f, index+uint64(i), s.typ, s.body); r.Err != nil {
			t.Fatalf("%s: %v", s.typ, r.Err)
		}
	}
	return index + uint64(len(steps)) - 1
}

func vpnEnv(t *testing.T) (*FSM, uint64) {
	t.Helper()
	f := New(nil)
	last := fillL3Tables(t, f, 1)
	last = fillGatewayTables(t, f, last+1)
	last = fillVPNTables(t, f, last+1)
	return f, last + 1
}

func wantVPNErr(t *testing.T, f *FSM, idx uint64, typ CommandType, body any, want string) {
	t.Helper()
	before := f.State().Read().Revision()
	r := apply(t, f, idx, typ, body)
	if fe, ok := AsError(r.Err); !ok || fe.Type != want {
		t.Fatalf("%s: got %v, want %s", typ, r.Err, want)
	}
	if after := f.State().Read().Revision(); after != before {
		t.Fatalf("%s rejected but revision moved %d -> %d", typ, before, after)
	}
}

func TestVPNCreateDerivesState(t *testing.T) {
	f, _ := vpnEnv(t)
	v := f.State().Read()
	s := v.VPNService("vpn-s")
	if s.ExternalV4IP != "203.0.113.10" || s.Status != VPNStatusPendingCreate {
		t.Fatalf("service: %+v", s)
	}
	c := v.IPsecSiteConnection("vpn-c")
	if c.Status != VPNStatusPendingCreate || c.PSK != "secret" {
		t.Fatalf("connection: %+v", c)
	}
	if v.VPNServiceChassis("vpn-s") != "gw-snap" {
		t.Fatalf("service chassis %q", v.VPNServiceChassis("vpn-s"))
	}
	if got := v.VPNLocalSubnets(c); len(got) != 1 || got[0].ID != "l3-int-sub" {
		t.Fatalf("local subnets %v", got)
	}
	if got := v.VPNPeerCIDRs(c); len(got) != 1 || got[0] != "172.16.0.0/24" {
		t.Fatalf("peer cidrs %v", got)
	}
}

func TestVPNRejectsAndChangesNothing(t *testing.T) {
	f, idx := vpnEnv(t)
	del := func(id string) VPNDeleteRequest { return VPNDeleteRequest{ID: id} }
	wantVPNErr(t, f, idx, CmdVPNIKEPolicyDelete, del("vpn-ike"), ErrTypeIKEPolicyInUse)
	wantVPNErr(t, f, idx, CmdVPNIPsecPolicyDelete, del("vpn-ipsec"), ErrTypeIPsecPolicyInUse)
	cur := f.State().Read().IKEPolicy("vpn-ike")
	upd := cur.Copy()
	upd.LifetimeValue = 7200
	wantVPNErr(t, f, idx, CmdVPNIKEPolicyUpdate, VPNIKEPolicyUpdateRequest{Policy: upd, PrevIndex: cur.ModifyIndex}, ErrTypeIKEPolicyInUse)
	wantVPNErr(t, f, idx, CmdVPNServiceDelete, del("vpn-s"), ErrTypeVPNServiceInUse)
	wantVPNErr(t, f, idx, CmdVPNEndpointGroupDelete, del("vpn-local"), ErrTypeEndpointGroupInUse)
	wantVPNErr(t, f, idx, CmdVPNEndpointGroupDelete, del("vpn-peer"), ErrTypeEndpointGroupInUse)
	wantVPNErr(t, f, idx, CmdVPNSiteConnectionDelete, del("nope"), ErrTypeIPsecSiteConnectionNotFound)

	// A router without gateway cannot carry a VPN service; a subnet must be
	// one of the router's.
	noGw := &Router{Meta: Meta{ID: "r-nogw", ProjectID: "p1"}, AdminStateUp: true}
	if r := apply(t, f, idx, CmdRouterCreate, RouterCreateRequest{Router: noGw}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	svc := func(router, subnet string) VPNServiceCreateRequest {
		return VPNServiceCreateRequest{Service: &VPNService{Meta: Meta{ID: "s2", ProjectID: "p1"}, RouterID: router, SubnetID: subnet, AdminStateUp: true}}
	}
	wantVPNErr(t, f, idx, CmdVPNServiceCreate, svc("r-nogw", ""), ErrTypeRouterIsNotExternal)
	wantVPNErr(t, f, idx, CmdVPNServiceCreate, svc("nope", ""), ErrTypeRouterNotFound)
	wantVPNErr(t, f, idx, CmdVPNServiceCreate, svc("l3-r", "l3-ext-sub"), ErrTypeSubnetIsNotConnectedRouter)

	conn := func(change func(c *IPsecSiteConnection)) VPNSiteConnectionCreateRequest {
		c := testSiteConnection("c2")
		change(c)
		return VPNSiteConnectionCreateRequest{Connection: c}
	}
	peer2 := &EndpointGroup{Meta: Meta{ID: "peer-overlap", ProjectID: "p1"}, Type: VPNEndpointCIDR, Endpoints: []string{"10.0.0.128/25"}}
	if r := apply(t, f, idx, CmdVPNEndpointGroupCreate, VPNEndpointGroupCreateRequest{Group: peer2}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	cases := []struct {
		name   string
		change func(c *IPsecSiteConnection)
		want   string
	}{
		{"overlap", func(c *IPsecSiteConnection) { c.PeerEPGroupID = "peer-overlap" }, ErrTypeVPNPeerCIDROverlap},
		{"peer cidrs with groups", func(c *IPsecSiteConnection) { c.PeerCIDRs = []string{"172.17.0.0/24"} }, ErrTypeVPNPeerCIDRsInvalid},
		{"local group of type cidr", func(c *IPsecSiteConnection) { c.LocalEPGroupID = "vpn-peer" }, ErrTypeVPNWrongEndpointGroupType},
		{"peer group of type subnet", func(c *IPsecSiteConnection) { c.PeerEPGroupID = "vpn-local" }, ErrTypeVPNWrongEndpointGroupType},
		{"no peer group", func(c *IPsecSiteConnection) { c.PeerEPGroupID = "" }, ErrTypeVPNMissingRequiredEPGroup},
		{"mtu too small", func(c *IPsecSiteConnection) { c.MTU = 67 }, ErrTypeIPsecSiteConnectionMTU},
		{"unknown service", func(c *IPsecSiteConnection) { c.VPNServiceID = "nope" }, ErrTypeVPNServiceNotFound},
		{"unknown ike policy", func(c *IPsecSiteConnection) { c.IKEPolicyID = "nope" }, ErrTypeIKEPolicyNotFound},
		{"v6 peer on a v4-only router", func(c *IPsecSiteConnection) { c.PeerAddress = "2001:db8::1" }, ErrTypeExternalNetworkHasNoSubnet},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantVPNErr(t, f, idx, CmdVPNSiteConnectionCreate, conn(tc.change), tc.want) })
	}
}

func TestVPNStatusFromActiveGatewayOnly(t *testing.T) {
	f, idx := vpnEnv(t)
	report := func(chassis, svc, conn string) *Result {
		t.Helper()
		r := apply(t, f, idx, CmdVPNStatus, VPNStatusRequest{Chassis: chassis,
			Services: map[string]string{"vpn-s": svc}, Connections: map[string]string{"vpn-c": conn}, UpdatedAt: "2026-12-06T00:00:00Z"})
		idx++
		return r
	}
	v := f.State().Read()
	req := &VPNStatusRequest{Chassis: "other", Connections: map[string]string{"vpn-c": VPNStatusActive}}
	if s, c := v.PlanVPNStatus(req); len(s)+len(c) != 0 {
		t.Fatalf("a stale report would change %v %v", s, c)
	}
	if r := report("other", VPNStatusActive, VPNStatusActive); r.Err != nil {
		t.Fatal(r.Err)
	}
	if c := f.State().Read().IPsecSiteConnection("vpn-c"); c.Status != VPNStatusPendingCreate {
		t.Fatalf("stale report applied: %s", c.Status)
	}
	if r := report("gw-snap", VPNStatusDown, VPNStatusActive); r.Err != nil {
		t.Fatal(r.Err)
	}
	v = f.State().Read()
	c, s := v.IPsecSiteConnection("vpn-c"), v.VPNService("vpn-s")
	if c.Status != VPNStatusActive || s.Status != VPNStatusActive || c.RevisionNumber != 2 || c.UpdatedAt == "" {
		t.Fatalf("after report: connection %s rev %d, service %s", c.Status, c.RevisionNumber, s.Status)
	}
	if s, c := v.PlanVPNStatus(&VPNStatusRequest{Chassis: "gw-snap", Connections: map[string]string{"vpn-c": VPNStatusActive}}); len(s)+len(c) != 0 {
		t.Fatal("a repeated report would change something")
	}
	wantVPNErr(t, f, idx, CmdVPNStatus, VPNStatusRequest{Chassis: "gw-snap", Connections: map[string]string{"vpn-c": "UP"}}, ErrTypeInvalidInput)
	if r := report("gw-snap", VPNStatusDown, VPNStatusDown); r.Err != nil {
		t.Fatal(r.Err)
	}
	v = f.State().Read()
	if c, s := v.IPsecSiteConnection("vpn-c"), v.VPNService("vpn-s"); c.Status != VPNStatusDown || s.Status != VPNStatusDown {
		t.Fatalf("after down report: %s %s", c.Status, s.Status)
	}
	// Disabled: DOWN at once, whatever the agent says.
	cur := v.IPsecSiteConnection("vpn-c").Copy()
	cur.AdminStateUp = false
	if r := apply(t, f, idx, CmdVPNSiteConnectionUpdate, VPNSiteConnectionUpdateRequest{Connection: cur, PrevIndex: cur.ModifyIndex}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	report("gw-snap", VPNStatusActive, VPNStatusActive)
	if c := f.State().Read().IPsecSiteConnection("vpn-c"); c.Status != VPNStatusDown {
		t.Fatalf("disabled connection %s", c.Status)
	}
}

func TestVPNDeleteLifecycle(t *testing.T) {
	f, idx := vpnEnv(t)
	for _, s := range []struct {
		typ CommandType
		id  string
	}{
		{CmdVPNSiteConnectionDelete, "vpn-c"}, {CmdVPNIKEPolicyDelete, "vpn-ike"}, {CmdVPNIPsecPolicyDelete, "vpn-ipsec"},
		{CmdVPNEndpointGroupDelete, "vpn-local"}, {CmdVPNEndpointGroupDelete, "vpn-peer"}, {CmdVPNServiceDelete, "vpn-s"},
	} {
		if r := apply(t, f, idx, s.typ, VPNDeleteRequest{ID: s.id}); r.Err != nil {
			t.Fatalf("%s %s: %v", s.typ, s.id, r.Err)
		}
		idx++
	}
	v := f.State().Read()
	if len(v.VPNServices())+len(v.IKEPolicies())+len(v.IPsecPolicies())+len(v.EndpointGroups())+len(v.IPsecSiteConnections()) != 0 {
		t.Fatal("VPN objects left")
	}
}

func TestVPNGuardsRouter(t *testing.T) {
	f, idx := vpnEnv(t)
	v := f.State().Read()
	r := v.Router("l3-r")
	wantVPNErr(t, f, idx, CmdRouterDelete, RouterDeleteRequest{ID: "l3-r"}, ErrTypeRouterInUse)
	noGw := r.Copy()
	noGw.Gateway = nil
	wantVPNErr(t, f, idx, CmdRouterUpdate, RouterUpdateRequest{Router: noGw, PrevIndex: r.ModifyIndex}, ErrTypeRouterInUseByVPNService)
	if res := apply(t, f, idx, CmdFloatingIPDelete, FloatingIPDeleteRequest{ID: "l3-fip"}); res.Err != nil {
		t.Fatal(res.Err)
	}
	idx++
	ifp := v.RouterInterfaces("l3-r")[0]
	wantVPNErr(t, f, idx, CmdRouterInterfaceRemove, RouterInterfaceRemoveRequest{Router: r.Copy(), PrevIndex: r.ModifyIndex, PortID: ifp.ID},
		ErrTypeSubnetInUseByEndpointGroup)
	// A new gateway address reaches the service.
	gp := v.RouterGatewayPort("l3-r").Copy()
	gp.FixedIPs = ip("l3-ext-sub", "203.0.113.99")
	if res := apply(t, f, idx, CmdRouterUpdate, RouterUpdateRequest{Router: r.Copy(), PrevIndex: r.ModifyIndex, GatewayPort: gp}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if s := f.State().Read().VPNService("vpn-s"); s.ExternalV4IP != "203.0.113.99" || s.RevisionNumber != 2 {
		t.Fatalf("service after gateway change: %+v", s)
	}
}

func TestVPNGuardsSubnet(t *testing.T) {
	f, idx := vpnEnv(t)
	// An endpoint group naming a subnet keeps it, even off any router.
	if r := apply(t, f, idx, CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork("lonely-net", 4200)}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	if r := apply(t, f, idx, CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet("lonely", "lonely-net", "10.7.0.0/24")}}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	g := &EndpointGroup{Meta: Meta{ID: "g-lonely", ProjectID: "p1"}, Type: VPNEndpointSubnet, Endpoints: []string{"lonely"}}
	if r := apply(t, f, idx, CmdVPNEndpointGroupCreate, VPNEndpointGroupCreateRequest{Group: g}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	wantVPNErr(t, f, idx, CmdSubnetDelete, SubnetDeleteRequest{ID: "lonely"}, ErrTypeSubnetInUseByEndpointGroup)
	wantVPNErr(t, f, idx, CmdNetworkDelete, NetworkDeleteRequest{ID: "lonely-net"}, ErrTypeSubnetInUseByEndpointGroup)
	if r := apply(t, f, idx, CmdVPNEndpointGroupDelete, VPNDeleteRequest{ID: "g-lonely"}); r.Err != nil {
		t.Fatal(r.Err)
	}
	idx++
	if r := apply(t, f, idx, CmdSubnetDelete, SubnetDeleteRequest{ID: "lonely"}); r.Err != nil {
		t.Fatal(r.Err)
	}
}

func TestVPNStatusFollowsGatewayFailover(t *testing.T) {
	f, idx := vpnEnv(t)
	step := func(typ CommandType, body any) {
		t.Helper()
		if r := apply(t, f, idx, typ, body); r.Err != nil {
			t.Fatalf("%s: %v", typ, r.Err)
		}
		idx++
	}
	step(CmdChassisUpsert, ChassisUpsertRequest{Chassis: []*Chassis{gatewayChassis("gw-two", "physnet1")}})
	r := f.State().Read().Router("l3-r").Copy()
	r.GatewayChassis = []string{"gw-snap", "gw-two"}
	step(CmdRouterUpdate, RouterUpdateRequest{Router: r, PrevIndex: r.ModifyIndex})
	report := func(chassis string) VPNStatusRequest {
		return VPNStatusRequest{Chassis: chassis, Connections: map[string]string{"vpn-c": VPNStatusActive}}
	}
	step(CmdVPNStatus, report("gw-snap"))
	if c := f.State().Read().IPsecSiteConnection("vpn-c"); c.Status != VPNStatusActive {
		t.Fatalf("before failover: %s", c.Status)
	}
	step(CmdChassisSetState, ChassisSetStateRequest{Names: []string{"gw-snap"}, Up: false, At: "2026-12-06T00:00:00Z"})
	v := f.State().Read()
	if got := v.VPNServiceChassis("vpn-s"); got != "gw-two" {
		t.Fatalf("service on %q after failover", got)
	}
	if c, s := v.IPsecSiteConnection("vpn-c"), v.VPNService("vpn-s"); c.Status != VPNStatusPendingCreate || s.Status != VPNStatusPendingCreate {
		t.Fatalf("after failover: connection %s, service %s; want PENDING_CREATE until gw-two reports", c.Status, s.Status)
	}
	if s, c := v.PlanVPNStatus(&VPNStatusRequest{Chassis: "gw-snap", Connections: map[string]string{"vpn-c": VPNStatusActive}}); len(s)+len(c) != 0 {
		t.Fatal("the old gateway's report would still apply")
	}
	step(CmdVPNStatus, report("gw-two"))
	if c := f.State().Read().IPsecSiteConnection("vpn-c"); c.Status != VPNStatusActive {
		t.Fatalf("after the new gateway's report: %s", c.Status)
	}
}

func TestVPNCommandNames(t *testing.T) {
	for typ := CmdVPNIKEPolicyCreate; typ <= CmdVPNStatus; typ++ {
		if s := typ.String(); s == "" || s[0] == 'C' {
			t.Errorf("command %d has no name: %q", typ, s)
		}
	}
}
