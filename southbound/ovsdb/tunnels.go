package ovsdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"slices"

	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"neutrino/southbound/ovsdb/vswitchd"
)

// Encapsulations we build tunnel ports for.
const (
	EncapVXLAN  = "vxlan"
	EncapGRE    = "gre"
	EncapGeneve = "geneve"
)

// External-ids keys marking the tunnel ports this package owns.
const (
	// TunnelOwnerKey marks a Port (and its Interface) as ours; the value is
	// TunnelKindFlow or TunnelKindGateway.
	TunnelOwnerKey = "neutrino-tunnel"
	// TunnelChassisKey names the remote chassis of a gateway tunnel.
	TunnelChassisKey = "neutrino-chassis"
	// TunnelKindFlow is the value of TunnelOwnerKey on flow-based ports.
	TunnelKindFlow = "flow"
	// TunnelKindGateway is the value of TunnelOwnerKey on gateway ports.
	TunnelKindGateway = "gateway"
)

// TunnelSpec is the desired set of tunnel ports on one bridge.
type TunnelSpec struct {
	// Bridge the ports live on, normally "br-int"; it must exist.
	Bridge string
	// LocalIP is this chassis' tunnel endpoint (options:local_ip); optional.
	LocalIP string
	// Encaps get one flow-based port each (remote_ip=flow, key=flow).
	Encaps []string
	// Remotes get one port each with a fixed remote_ip (gateway chassis).
	Remotes []RemoteTunnel
}

// RemoteTunnel is a per-remote tunnel toward a gateway chassis.
type RemoteTunnel struct {
	Chassis string // remote chassis name (unique in a spec)
	IP      string // remote tunnel endpoint
	Encap   string // vxlan, gre or geneve
}

// FlowTunnelPort returns the name of the flow-based port for an encap.
func FlowTunnelPort(encap string) string { return "tun-" + encap }

// GatewayTunnelPort returns the name of the port toward a gateway chassis:
// a hash, because chassis names are longer than the 15 bytes an interface
// name should have, and stable, so a restart of the controller recomputes
// the same name.
func GatewayTunnelPort(chassis string) string {
	sum := sha256.Sum256([]byte(chassis))
	return "tgw-" + hex.EncodeToString(sum[:])[:10]
}

// tunnelPort is one desired port this package owns (a tunnel, or a patch
// port); encap is the Interface type.
type tunnelPort struct {
	name, encap string
	options     map[string]string
	externalIDs map[string]string
}

func (s TunnelSpec) desired() (map[string]tunnelPort, error) {
	if s.Bridge == "" {
		return nil, fmt.Errorf("tunnels: no bridge")
	}
	if s.LocalIP != "" && net.ParseIP(s.LocalIP) == nil {
		return nil, fmt.Errorf("tunnels: bad local IP %q", s.LocalIP)
	}
	want := map[string]tunnelPort{}
	opts := func(remote string) map[string]string {
		o := map[string]string{"remote_ip": remote, "key": "flow"}
		if s.LocalIP != "" {
			o["local_ip"] = s.LocalIP
		}
		return o
	}
	for _, e := range s.Encaps {
		if !validEncap(e) {
			return nil, fmt.Errorf("tunnels: unknown encapsulation %q", e)
		}
		name := FlowTunnelPort(e)
		want[name] = tunnelPort{name: name, encap: e, options: opts("flow"),
			externalIDs: map[string]string{TunnelOwnerKey: TunnelKindFlow}}
	}
	seen := map[string]bool{}
	for _, r := range s.Remotes {
		if !validEncap(r.Encap) {
			return nil, fmt.Errorf("tunnels: chassis %s: unknown encapsulation %q", r.Chassis, r.Encap)
		}
		if r.Chassis == "" || seen[r.Chassis] {
			return nil, fmt.Errorf("tunnels: empty or duplicate remote chassis %q", r.Chassis)
		}
		seen[r.Chassis] = true
		if net.ParseIP(r.IP) == nil {
			return nil, fmt.Errorf("tunnels: chassis %s: bad IP %q", r.Chassis, r.IP)
		}
		name := GatewayTunnelPort(r.Chassis)
		want[name] = tunnelPort{name: name, encap: r.Encap, options: opts(r.IP),
			externalIDs: map[string]string{TunnelOwnerKey: TunnelKindGateway, TunnelChassisKey: r.Chassis}}
	}
	return want, nil
}

func validEncap(e string) bool {
	return e == EncapVXLAN || e == EncapGRE || e == EncapGeneve
}

// EnsureTunnels converges the bridge's tunnel ports to spec: it creates
// missing ports, fixes changed ones and deletes ports marked as ours
// (external_ids:neutrino-tunnel) that are no longer wanted. Other ports are
// never touched. It returns the number of write operations sent.
func (c *Client) EnsureTunnels(ctx context.Context, spec TunnelSpec) (int, error) {
	want, err := spec.desired()
	if err != nil {
		return 0, err
	}
	return c.converge(ctx, "ensure tunnels on "+spec.Bridge, func() ([]libovsdb.Operation, error) {
		return c.planTunnels(ctx, spec.Bridge, want)
	})
}

// bridgePort is a Port of a bridge with its first Interface.
type bridgePort struct {
	port  vswitchd.Port
	iface *vswitchd.Interface
}

// bridgePorts returns the cached ports of a bridge by name. Ports or
// interfaces referenced but not (yet) cached are skipped.
func (c *Client) bridgePorts(ctx context.Context, br *vswitchd.Bridge) (map[string]bridgePort, error) {
	out := make(map[string]bridgePort, len(br.Ports))
	for _, u := range br.Ports {
		p := vswitchd.Port{UUID: u}
		if err := c.ovs.Get(ctx, &p); err != nil {
			continue
		}
		bp := bridgePort{port: p}
		if len(p.Interfaces) > 0 {
			i := vswitchd.Interface{UUID: p.Interfaces[0]}
			if err := c.ovs.Get(ctx, &i); err == nil {
				bp.iface = &i
			}
		}
		out[p.Name] = bp
	}
	return out, nil
}

func (c *Client) planTunnels(ctx context.Context, bridge string, want map[string]tunnelPort) ([]libovsdb.Operation, error) {
	br, err := c.Bridge(ctx, bridge)
	if err != nil {
		return nil, err
	}
	if br == nil {
		return nil, fmt.Errorf("bridge %s does not exist", bridge)
	}
	seq := 0
	return c.planOwnedPorts(ctx, br, want, TunnelOwnerKey, "tun", &seq)
}

// planOwnedPorts plans the operations that make the ports of br marked
// with ownerKey exactly want (by port name): it creates missing ports,
// fixes the type, options and external_ids of changed ones (columns of our
// own rows are set whole) and deletes marked ports that are not wanted. A
// wanted name held by a port without the mark is an error: never a
// takeover. Named UUIDs are prefix_<n> with n from seq, so several calls
// can share one transaction.
func (c *Client) planOwnedPorts(ctx context.Context, br *vswitchd.Bridge, want map[string]tunnelPort,
	ownerKey, prefix string, seq *int) ([]libovsdb.Operation, error) {
	bridge := br.Name
	have, err := c.bridgePorts(ctx, br)
	if err != nil {
		return nil, err
	}

	var (
		ops      []libovsdb.Operation
		addPorts []string
		delPorts []string
	)
	for _, name := range slices.Sorted(maps.Keys(have)) {
		bp := have[name]
		if _, owned := bp.port.ExternalIDs[ownerKey]; owned {
			if _, wanted := want[name]; !wanted {
				// Port and Interface rows go with the reference: ovsdb-server
				// garbage-collects non-root rows nobody points at.
				delPorts = append(delPorts, bp.port.UUID)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		tp := want[name]
		bp, exists := have[name]
		if !exists {
			*seq++
			iface := &vswitchd.Interface{
				UUID:        fmt.Sprintf("new_%s_iface_%d", prefix, *seq),
				Name:        tp.name,
				Type:        tp.encap,
				Options:     tp.options,
				ExternalIDs: tp.externalIDs,
			}
			port := &vswitchd.Port{
				UUID:        fmt.Sprintf("new_%s_port_%d", prefix, *seq),
				Name:        tp.name,
				Interfaces:  []string{iface.UUID},
				ExternalIDs: tp.externalIDs,
			}
			for _, m := range []model.Model{iface, port} {
				o, err := c.ovs.Create(m)
				if err != nil {
					return nil, fmt.Errorf("create port %s: %w", tp.name, err)
				}
				ops = append(ops, o...)
			}
			addPorts = append(addPorts, port.UUID)
			continue
		}
		if _, owned := bp.port.ExternalIDs[ownerKey]; !owned {
			return nil, fmt.Errorf("port %s exists on %s and is not marked %s: not touching it", name, bridge, ownerKey)
		}
		if bp.iface == nil {
			return nil, fmt.Errorf("port %s: interface not in cache yet", name)
		}
		if !maps.Equal(bp.port.ExternalIDs, tp.externalIDs) {
			upd := vswitchd.Port{UUID: bp.port.UUID, ExternalIDs: tp.externalIDs}
			o, err := c.ovs.Where(&upd).Update(&upd, &upd.ExternalIDs)
			if err != nil {
				return nil, fmt.Errorf("update port %s: %w", name, err)
			}
			ops = append(ops, o...)
		}
		upd := vswitchd.Interface{UUID: bp.iface.UUID}
		var fields []any
		if bp.iface.Type != tp.encap {
			upd.Type = tp.encap
			fields = append(fields, &upd.Type)
		}
		if !maps.Equal(bp.iface.Options, tp.options) {
			upd.Options = tp.options
			fields = append(fields, &upd.Options)
		}
		if !maps.Equal(bp.iface.ExternalIDs, tp.externalIDs) {
			upd.ExternalIDs = tp.externalIDs
			fields = append(fields, &upd.ExternalIDs)
		}
		if len(fields) > 0 {
			o, err := c.ovs.Where(&upd).Update(&upd, fields...)
			if err != nil {
				return nil, fmt.Errorf("update interface %s: %w", name, err)
			}
			ops = append(ops, o...)
		}
	}

	mut := vswitchd.Bridge{UUID: br.UUID}
	var muts []model.Mutation
	if len(delPorts) > 0 {
		muts = append(muts, model.Mutation{Field: &mut.Ports, Mutator: libovsdb.MutateOperationDelete, Value: delPorts})
	}
	if len(addPorts) > 0 {
		muts = append(muts, model.Mutation{Field: &mut.Ports, Mutator: libovsdb.MutateOperationInsert, Value: addPorts})
	}
	if len(muts) > 0 {
		o, err := c.ovs.Where(&mut).Mutate(&mut, muts...)
		if err != nil {
			return nil, fmt.Errorf("ports of %s: %w", bridge, err)
		}
		ops = append(ops, o...)
	}
	return ops, nil
}

// TunnelPorts returns the names of the tunnel ports this package owns on a
// bridge, sorted.
func (c *Client) TunnelPorts(ctx context.Context, bridge string) ([]string, error) {
	br, err := c.Bridge(ctx, bridge)
	if err != nil || br == nil {
		return nil, err
	}
	have, err := c.bridgePorts(ctx, br)
	if err != nil {
		return nil, err
	}
	var names []string
	for name, bp := range have {
		if _, owned := bp.port.ExternalIDs[TunnelOwnerKey]; owned {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}
