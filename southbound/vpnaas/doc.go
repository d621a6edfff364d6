// Package vpnaas runs IPsec site-to-site connections (Neutron VPNaaS) on a
// router's active gateway chassis: one strongSwan charon per router, in a
// network namespace of its own plugged into br-int, configured through
// swanctl (vici) from the replicated state the chassis agent watches.
//
// The data path (docs/pipeline.md, "VPN"): the namespace has one port on
// br-int, the router's "inside" transit port (iface-id vpn-<router id>).
// It carries the router's external address as a second address, so charon
// speaks IKE and ESP-in-UDP from the real external address without NAT;
// the pipeline sends UDP 500/4500 to that address to the port and routes
// the peer CIDRs into it, and what charon decrypts comes back through the
// same port into the router.
//
// Userspace ESP: this kind of machine has no kernel ESP, so charon runs
// with kernel-libipsec (a TUN device ipsec0, routes in table 220, ESP
// always in UDP 4500). Each charon has its own strongswan.conf and its own
// /run (bind-mounted inside `ip netns exec`, whose pid and vici socket
// paths are fixed there).
package vpnaas
