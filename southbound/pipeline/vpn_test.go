package pipeline

import (
	"strings"
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// vpnState is externalTopology plus a VPN service on r1 (gateway gw1) with
// one connection to 10.99.0.0/24 from sub-a.
func vpnState(t *testing.T) *state {
	s := newState(t)
	buildExternal(s)
	buildVPN(s)
	return s
}

func buildVPN(s *state) {
	meta := func(id string) fsm.Meta { return fsm.Meta{ID: id, ProjectID: "p"} }
	s.apply(fsm.CmdVPNIKEPolicyCreate, fsm.VPNIKEPolicyCreateRequest{Policy: &fsm.IKEPolicy{Meta: meta("ike"),
		AuthAlgorithm: "sha256", EncryptionAlgorithm: "aes-128", PFS: "group14", Phase1NegotiationMode: "main",
		IKEVersion: "v2", LifetimeUnits: "seconds", LifetimeValue: 3600}})
	s.apply(fsm.CmdVPNIPsecPolicyCreate, fsm.VPNIPsecPolicyCreateRequest{Policy: &fsm.IPsecPolicy{Meta: meta("esp"),
		TransformProtocol: "esp", EncapsulationMode: "tunnel", AuthAlgorithm: "sha256", EncryptionAlgorithm: "aes-128",
		PFS: "group14", LifetimeUnits: "seconds", LifetimeValue: 3600}})
	s.apply(fsm.CmdVPNServiceCreate, fsm.VPNServiceCreateRequest{Service: &fsm.VPNService{Meta: meta("svc"), RouterID: "r1", AdminStateUp: true}})
	s.apply(fsm.CmdVPNEndpointGroupCreate, fsm.VPNEndpointGroupCreateRequest{Group: &fsm.EndpointGroup{Meta: meta("local"),
		Type: fsm.VPNEndpointSubnet, Endpoints: []string{"sub-a"}}})
	s.apply(fsm.CmdVPNEndpointGroupCreate, fsm.VPNEndpointGroupCreateRequest{Group: &fsm.EndpointGroup{Meta: meta("peer"),
		Type: fsm.VPNEndpointCIDR, Endpoints: []string{"10.99.0.0/24"}}})
	s.apply(fsm.CmdVPNSiteConnectionCreate, fsm.VPNSiteConnectionCreateRequest{Connection: &fsm.IPsecSiteConnection{
		Meta: meta("conn"), VPNServiceID: "svc", IKEPolicyID: "ike", IPsecPolicyID: "esp",
		PeerAddress: "198.51.100.250", PeerID: "198.51.100.250", PSK: "k", LocalEPGroupID: "local", PeerEPGroupID: "peer",
		MTU: 1500, Initiator: "bi-directional", DPDAction: "hold", DPDInterval: 30, DPDTimeout: 120, AdminStateUp: true,
		RouteMode: "static", AuthMode: "psk"}})
}

func flowsMatching(flows []openflow.Flow, subs ...string) []string {
	var out []string
next:
	for i := range flows {
		s := flows[i].String()
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// TestCompileVPN: on the active gateway the peer CIDR goes to the VPN
// namespace port (or is dropped while it is missing), IKE and NAT-T to the
// gateway address go there too, and what comes from the port enters the
// router; elsewhere the peer CIDR leaves for the gateway; incremental
// compiles (service added, port plugged, connection deleted) equal full
// ones.
func TestCompileVPN(t *testing.T) {
	s := vpnState(t)
	v := s.f.State().Read()
	gw := Facts{Chassis: "gw1", Bindings: map[string]uint32{VPNIfaceID("r1"): 20},
		Tunnels: map[string]uint32{"vxlan": 1, "geneve": 3}, Physnets: map[string]uint32{"external": 9}}
	flows := Compile(v, gw)
	for _, want := range [][]string{
		{"table=50", "nw_dst=10.99.0.0/24", "dec_ttl", "output:20"},
		{"priority=100,in_port=20 ", "set_field:0->reg10", "goto_table:50"}, // table 0
		{"table=46", "nw_dst=198.51.100.2", "tp_dst=500", "output:20"},
		{"table=46", "nw_dst=198.51.100.2", "tp_dst=4500", "output:20"},
	} {
		if len(flowsMatching(flows, want...)) != 1 {
			t.Errorf("gw1: no single flow with %v", want)
		}
	}
	noPort := Facts{Chassis: "gw1", Bindings: map[string]uint32{}, Tunnels: gw.Tunnels, Physnets: gw.Physnets}
	drop := flowsMatching(Compile(v, noPort), "table=50", "nw_dst=10.99.0.0/24")
	if len(drop) != 1 || !strings.HasSuffix(drop[0], "actions=drop") {
		t.Errorf("gw1 without the namespace port: want one drop flow for the peer CIDR, got %v", drop)
	}
	ch2 := Facts{Chassis: "ch2", Bindings: map[string]uint32{"pa2": 5, "pb1": 6}, Tunnels: gw.Tunnels}
	if got := flowsMatching(Compile(v, ch2), "table=50", "nw_dst=10.99.0.0/24", "goto_table:51"); len(got) != 1 {
		t.Errorf("ch2: want the peer CIDR sent to table 51, got %v", got)
	}

	// Incremental: from the state without VPN, through the VPN objects,
	// the namespace port plugged and the connection deleted.
	inc := newState(t)
	buildExternal(inc)
	c := NewCompiler()
	c.Update(inc.f.State().Read(), nil, noPort)
	rev := inc.f.State().Read().Revision()
	check := func(f Facts, what string) {
		t.Helper()
		v := inc.f.State().Read()
		changes, ok := inc.f.ChangesSince(rev)
		if !ok {
			t.Fatal("history lost")
		}
		c.Update(v, append([]fsm.Change{}, changes...), f)
		rev = v.Revision()
		if d := Diff(c.Flows(), Compile(v, f)); d != "" {
			t.Fatalf("%s: incremental != full: %s", what, d)
		}
	}
	buildVPN(inc)
	check(noPort, "VPN objects created")
	check(gw, "namespace port plugged")
	inc.apply(fsm.CmdVPNSiteConnectionDelete, fsm.VPNDeleteRequest{ID: "conn"})
	check(gw, "connection deleted")
	if got := flowsMatching(c.Flows(), "10.99.0.0/24"); len(got) != 0 {
		t.Errorf("flows for the peer CIDR left after the connection went: %v", got)
	}
	check(noPort, "namespace port unplugged")
}
