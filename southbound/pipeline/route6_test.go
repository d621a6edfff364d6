package pipeline

import (
	"strings"
	"testing"

	"neutrino/fsm"
)

// TestIPv6EchoAboveRoutes: IPv6 route priorities go up to 100 + 2 x 128
// + 1, above the IPv4 echo's 300. With a /124 IPv6 subnet and a /128
// extra route the router's ICMPv6 echo flows must still outrank every
// IPv6 route, or an echo to the router would be routed (and dropped:
// the router's own address has no next-hop entry).
func TestIPv6EchoAboveRoutes(t *testing.T) {
	s := newState(t)
	s.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: []*fsm.Chassis{chassis("ch1", "192.0.2.1")}})
	s.apply(fsm.CmdNetworkCreate, fsm.NetworkCreateRequest{Networks: []*fsm.Network{network("n6", fsm.NetTypeVXLAN, 61)}})
	s.apply(fsm.CmdSubnetCreate, fsm.SubnetCreateRequest{Subnets: []*fsm.Subnet{{Meta: fsm.Meta{ID: "s6", ProjectID: "p"},
		NetworkID: "n6", IPVersion: 6, CIDR: "fd00:6::/124", GatewayIP: "fd00:6::1"}}})
	vm := port("vm6", "n6", "fa:16:3e:00:06:01", "ch1")
	vm.FixedIPs = []fsm.FixedIP{{SubnetID: "s6", IPAddress: "fd00:6::5"}}
	s.apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{vm}})
	s.apply(fsm.CmdRouterCreate, fsm.RouterCreateRequest{Router: &fsm.Router{Meta: fsm.Meta{ID: "r6", ProjectID: "p"}, AdminStateUp: true}})
	r := s.f.State().Read().Router("r6")
	ri := port("ri6", "n6", "fa:16:3e:ff:06:01", "")
	ri.DeviceOwner, ri.DeviceID = fsm.DeviceOwnerRouterInterface, "r6"
	ri.FixedIPs = []fsm.FixedIP{{SubnetID: "s6", IPAddress: "fd00:6::1"}}
	s.apply(fsm.CmdRouterInterfaceAdd, fsm.RouterInterfaceAddRequest{Router: r.Copy(), PrevIndex: r.ModifyIndex, Port: ri})
	r = s.f.State().Read().Router("r6")
	nr := r.Copy()
	nr.Routes = []fsm.Route{{Destination: "fd00:7::1/128", NextHop: "fd00:6::5"}}
	s.apply(fsm.CmdRouterUpdate, fsm.RouterUpdateRequest{Router: nr, PrevIndex: r.ModifyIndex})

	flows := Compile(s.f.State().Read(), Facts{Chassis: "ch1", Bindings: map[string]uint32{"vm6": 5}, Tunnels: map[string]uint32{"vxlan": 1}})
	var echoMin, routeMax uint16 = 0xffff, 0
	echoes, routes := 0, 0
	for _, f := range flows {
		if f.Table != TableRouting {
			continue
		}
		str := f.String()
		switch {
		case strings.Contains(str, "icmp6") && strings.Contains(str, "icmp_type=128"):
			echoes++
			echoMin = min(echoMin, f.Priority)
		case strings.Contains(str, "ipv6,"):
			routes++
			routeMax = max(routeMax, f.Priority)
		}
	}
	// Echo to fd00:6::1 and to the interface's link-local address; the
	// connected /124 and the /128 route.
	if echoes != 2 || routes != 2 {
		t.Fatalf("%d echo and %d IPv6 route flows in table 50, want 2 and 2", echoes, routes)
	}
	if routeMax != 100+2*128 || echoMin <= routeMax {
		t.Fatalf("IPv6 echo priority %d, highest IPv6 route %d (want 356): echo must be above every route", echoMin, routeMax)
	}
}
