// Package ovsdb is the controller's OVSDB side of a chassis: a reconnecting,
// monitored libovsdb session to its ovsdb-server, one TransactAndCheck that
// checks every operation's result, and idempotent convergers for what the
// controller owns on a chassis (the integration bridge with its OpenFlow
// controllers, the tunnel ports) plus a watch of port bindings
// (Interface external_ids:iface-id).
//
// Every Ensure function is level-triggered: it reads the monitored cache,
// plans only the operations that differ from the desired state, and sends
// nothing when the chassis is already converged. It touches only rows and
// keys it owns.
//
// # Tunnels
//
// A chassis has one flow-based tunnel port per encapsulation on br-int
// (tun-vxlan, tun-gre, tun-geneve with options remote_ip=flow, key=flow,
// local_ip=<chassis tunnel IP>): the OpenFlow pipeline sets the remote
// endpoint and the key per packet (set_field tun_dst, tun_id). A chassis
// therefore carries O(1) tunnel ports however many chassis exist — at
// 1,000 chassis and 3 encapsulations that is 3 ports instead of ~3,000 —
// and a chassis joining or leaving costs no OVSDB write anywhere else.
//
// The one exception is gateway chassis: toward each of them a chassis gets
// one more port with a fixed options:remote_ip=<gateway IP> (key=flow,
// encapsulation chosen by the caller), because a port with a concrete
// remote is what BFD can later run on to detect a dead gateway. Those come
// and go as gateways join and leave.
//
// Tunnel ports this package owns are marked external_ids:neutrino-tunnel
// on the Port row; EnsureTunnels deletes only marked ports that are no
// longer wanted, and never touches any other port.
//
// # Physnet patch ports
//
// For each bridge mapping (physnet -> bridge) whose bridge exists on the
// chassis, EnsurePhysnetPatches keeps a patch pair: int-<bridge> on br-int
// (options:peer=phy-<bridge>) and phy-<bridge> on the mapped bridge, both
// marked external_ids:neutrino-physnet=<physnet>; mappings it cannot
// realize are returned, not fatal. RemovePhysnetPatches removes every pair
// (a partitioned gateway's self-fence). WatchOwnedPorts reports changes to
// any port this package owns, so the controller re-ensures at once.
package ovsdb
