// Package topology builds replicated states for the flow compiler's
// benchmarks and property tests. It applies fsm commands straight to a
// fresh fsm.FSM (raft.Log entries with increasing indexes, no Raft) and
// imports nothing of Neutrino's but fsm: every request is built here the
// way the northbound API would build it (canonical addresses, MACs in
// fa:16:3e, VM ports with device_owner compute:nova).
//
// # The generator (Build)
//
// Build(Spec) creates, in this order and deterministically for a Spec:
//
//   - Chassis: Spec.Chassis records chassis-0 … chassis-(C-1), Up, roles
//     [compute], tunnel IP 10.250.(i/250).(i%250+1), datapath id
//     fsm.ChassisDatapathID(name), encaps [vxlan geneve gre] except every
//     16th chassis (i%16 == 15), which announces [vxlan geneve] only.
//   - Networks: ceil(Ports/PortsPerNetwork) networks, PortsPerNetwork VM
//     ports each (the last one may have fewer). Network i is geneve when
//     i%10 == 3, gre when i%10 == 7, vxlan otherwise (80% vxlan), with
//     segmentation id 1000+i and port security on.
//   - Subnets: one IPv4 subnet per network, a /24 (larger when
//     PortsPerNetwork needs it) carved from 10.0.0.0/8 in network order,
//     so no two subnets overlap (OverlappingCIDRs: every router's networks
//     reuse the same CIDRs, as tenants do). Gateway .1, pool .2 to the
//     broadcast address - 1, DHCP on. The VM ports get .10, .11, ….
//   - Tenants and routers: NetworksPerRouter consecutive networks form a
//     tenant (one project id) with one router that has an interface (a
//     network:router_interface port on the subnet's gateway address) on
//     each of them. Every RouteEvery-th router (router 0, RouteEvery, …)
//     also gets an extra route 192.168.(r%256).0/24 via the second-to-last
//     address of its first subnet.
//   - Security groups: one group per NetworksPerGroup consecutive
//     networks, in the project of the group's first network. A group holds
//     RulesPerPort rules, taken in this order: (1) ingress IPv4 icmp from
//     0.0.0.0/0, (2) ingress IPv4 tcp 22, (3) ingress IPv4 tcp 8000+100k to
//     8099+100k (k = group % 10), (4) egress IPv4 any, (5) ingress IPv4 udp
//     53 from 10.0.0.0/8, (6 and later) ingress IPv4 tcp 1000+n from
//     192.0.2.n/32. With RemoteGroupRules the group gets one more rule:
//     ingress IPv4 any protocol with remote_group_id = the group itself.
//   - Ports: Ports VM ports, each with one fixed IP on its network's
//     subnet, a unique MAC, the group of its network, device_owner
//     compute:nova and a device id of its own. Every AddressPairEvery-th
//     port (port index % AddressPairEvery == 1) has an allowed address pair
//     (the subnet's third-to-last address, a VIP shared by those ports,
//     with the port's MAC); every NoPortSecurityEvery-th port (index %
//     NoPortSecurityEvery == NoPortSecurityEvery-1) has port security off,
//     no group and no pair. Ports are created Batch per PortCreateRequest.
//   - Bindings: every VM port is bound to a chassis drawn uniformly at
//     random (math/rand/v2 PCG seeded by Spec.Seed), with an OFPort unique
//     on its chassis: 10, 11, … in port order, and is ACTIVE. By default
//     the ports are created so (binding:host_id, vif_type ovs, the ofport,
//     status ACTIVE in the PortCreateRequest: one write per port). With
//     Spec.BindCommands they are created unbound and DOWN, then bound by
//     PortBindRequests and set ACTIVE by PortStatusRequests (Batch per
//     command) as the control plane does: the same state but for the
//     ports' RevisionNumber and ModifyIndex, at about twice the cost.
//
// DefaultSpec(ports) gives the defaults the benchmark figures use: 10
// ports per network, 10 networks per router, 3 security group rules per
// port's group plus the remote-group rule (RemoteGroupRules on), one group
// per 10 networks, one chassis per 20 ports, an address pair on every 10th
// port, port security off on every 50th, an extra route on every 3rd
// router; ports created bound. Build fills a zero int field of its Spec with the default
// (the bool fields are taken as given); a negative
// AddressPairEvery, NoPortSecurityEvery, RouteEvery or RulesPerPort turns
// the feature off. Spec.Expect gives the row counts Build creates.
//
// Bindings(v, chassis) returns the port id → ofport map of one chassis
// (what its pipeline.Facts.Bindings would be); AllBindings does every
// chassis in one pass.
//
// # The random operation driver (Ops)
//
// NewOps(f, seed) drives random Neutron operations through f.Apply, one
// per Step, deterministic for a seed and a starting state: networks
// (vxlan, gre, geneve; external vlan/flat), subnets (IPv4, now and then
// IPv6 or an address range another network uses), VM ports (fixed IPs in
// their subnets, random MACs, sometimes the MAC of a port on another
// network), port updates (security groups, allowed address pairs, port
// security, fixed IPs, admin state, MAC), bindings (bind, unbind, move to
// another chassis or re-plug on the same one; OFPorts unique per chassis,
// the lowest free one from 10, so freed numbers are reused; port status
// reports from the chassis), security
// groups and rules (icmp/tcp/udp/any/numeric protocols, port ranges,
// remote prefixes, remote groups), routers (create, interfaces, extra
// routes, external gateway, delete), floating IPs, and chassis (new
// chassis, up/down, tunnel IP and encaps changes). Some operations are
// invalid on purpose or turn out invalid (stale compare-and-set, a MAC in
// use, a group in use...): the FSM rejects them and Step returns the
// rejection. Steps apply to an empty FSM too (the first steps then create
// chassis and networks).
package topology
