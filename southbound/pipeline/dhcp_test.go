package pipeline

import (
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// dhcpSteering lists the table-10 flows of ofport that send to the
// chassis agent, by eth type.
func dhcpSteering(flows []openflow.Flow) map[string]bool {
	out := map[string]bool{}
	for _, f := range flows {
		if f.Table != TablePortSecurity || len(f.Actions) != 1 {
			continue
		}
		if a, ok := f.Actions[0].(openflow.Controller); ok && a.ID == ChassisControllerID {
			out[f.Match.String()] = true
		}
	}
	return out
}

// TestDHCPSteering: a local VM port's DHCP requests go to the chassis
// agent only while its network has a subnet with enable_dhcp; turning it
// off (a subnet change) removes the flow incrementally, as a full compile
// does.
func TestDHCPSteering(t *testing.T) {
	s := newState(t)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{chassis("ch1", "192.0.2.1", "vxlan")}})
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{network("n", fsm.NetTypeVXLAN, 100)}})
	sub := &fsm.Subnet{Meta: fsm.Meta{ID: "s", ProjectID: "p"}, NetworkID: "n", IPVersion: 4, CIDR: "10.0.0.0/24", EnableDHCP: true}
	s.apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: []*fsm.Subnet{sub}})
	p := port("vm", "n", "fa:16:3e:00:00:01", "ch1")
	p.FixedIPs = []fsm.FixedIP{{SubnetID: "s", IPAddress: "10.0.0.5"}}
	p.PortSecurityEnabled = true
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{p}})
	facts := Facts{Chassis: "ch1", Bindings: map[string]uint32{"vm": 5}, Tunnels: map[string]uint32{"vxlan": 1}}

	v := s.f.State().Read()
	c := NewCompiler()
	c.Update(v, nil, facts)
	if got := dhcpSteering(c.Flows()); len(got) != 1 {
		t.Fatalf("with enable_dhcp: steering flows %v, want one (udp 68->67)", got)
	}
	rev := v.Revision()
	off := v.Subnet("s").Copy()
	off.EnableDHCP = false
	s.apply(fsm.CmdSubnetUpdate, fsm.SubnetUpdateRequest{Subnet: off, PrevIndex: v.Subnet("s").ModifyIndex})
	changes, ok := s.f.ChangesSince(rev)
	if !ok {
		t.Fatal("no change history")
	}
	v = s.f.State().Read()
	c.Update(v, changes, Facts{Chassis: "ch1", Bindings: map[string]uint32{"vm": 5}, Tunnels: map[string]uint32{"vxlan": 1}})
	if got := dhcpSteering(c.Flows()); len(got) != 0 {
		t.Fatalf("enable_dhcp=false: steering flows %v remain", got)
	}
	if got := dhcpSteering(Compile(v, facts)); len(got) != 0 {
		t.Fatalf("full compile with enable_dhcp=false: %v", got)
	}
	// The DHCP server replies of a secured port are dropped either way.
	drops := 0
	for _, f := range c.Flows() {
		if f.Table == TablePortSecurity && f.Priority == 150 && len(f.Actions) == 0 {
			drops++
		}
	}
	if drops != 2 {
		t.Fatalf("%d server-reply drops, want udp 67->68 and udp6 547->546", drops)
	}
}
