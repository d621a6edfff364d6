package pipeline

import (
	"neutrino/fsm"
	"neutrino/southbound/openflow"
)

// ChassisControllerID is the OpenFlow controller id of a chassis agent's
// own connection to its br-int: controller(id=ChassisControllerID) sends
// a packet to that agent only, never to the servers' connections (id 0).
const ChassisControllerID uint16 = 0x4e44

// prioDHCP is above every port security flow of table 10: a DHCP or
// DHCPv6 request or a router solicitation from a VM goes to the chassis
// agent, and a DHCP server's reply from a VM is dropped, before any other
// check.
const prioDHCP = 150

// IPv6 address and RA modes of a subnet (Neutron's values).
const (
	IPv6ModeSLAAC     = "slaac"
	IPv6ModeStateless = "dhcpv6-stateless"
	IPv6ModeStateful  = "dhcpv6-stateful"
)

// dhcpServices says which requests of a network the chassis agent answers.
type dhcpServices struct{ v4, v6, ra bool }

func (c *Compiler) dhcpServicesOf(networkID string) dhcpServices {
	var s dhcpServices
	for _, sub := range c.v.SubnetsOfNetwork(networkID) {
		switch {
		case sub.IPVersion == 4:
			s.v4 = s.v4 || sub.EnableDHCP
		case sub.IPVersion == 6:
			if sub.EnableDHCP && (sub.IPv6AddressMode == IPv6ModeStateful || sub.IPv6AddressMode == IPv6ModeStateless) {
				s.v6 = true
			}
			if sub.IPv6RAMode != "" {
				s.ra = true
			}
		}
	}
	return s
}

// dhcpPortFlows: requests from a local VM port to the services of its
// network go to the chassis agent (controller(id=ChassisControllerID));
// the agent finds the port by in_port, so what the VM claims (MAC, client
// id) never picks the answer. A port with port security may not answer
// as a DHCP or DHCPv6 server (router advertisements are dropped in table
// 20).
func (c *Compiler) dhcpPortFlows(e *emitter, p *fsm.Port, inPort openflow.MatchField) {
	s := c.dhcpServicesOf(p.NetworkID)
	toAgent := openflow.Controller{ID: ChassisControllerID}
	udp := func(et uint16, src, dst uint64) openflow.Match {
		return openflow.Match{inPort, openflow.EthType(et), openflow.IPProto(17),
			openflow.Exact(openflow.FieldUDPSrc, src), openflow.Exact(openflow.FieldUDPDst, dst)}
	}
	if s.v4 {
		e.add(TablePortSecurity, prioDHCP, udp(ethIPv4, 68, 67), toAgent)
	}
	if s.v6 {
		e.add(TablePortSecurity, prioDHCP, udp(ethIPv6, 546, 547), toAgent)
	}
	if s.ra {
		e.add(TablePortSecurity, prioDHCP, append(icmp6Type(133), inPort), toAgent)
	}
	if portSecured(p) {
		e.add(TablePortSecurity, prioDHCP, udp(ethIPv4, 67, 68))
		e.add(TablePortSecurity, prioDHCP, udp(ethIPv6, 547, 546))
	}
}
