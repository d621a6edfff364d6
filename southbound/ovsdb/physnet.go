package ovsdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"neutrino/southbound/ovsdb/vswitchd"
)

// PhysnetOwnerKey marks a patch Port (and its Interface) between the
// integration bridge and a physical network's bridge as ours; the value is
// the physical network name (several, comma-separated and sorted, when
// more than one physnet maps to the same bridge).
const PhysnetOwnerKey = "neutrino-physnet"

// maxIfaceName is the longest interface name a kernel accepts (IFNAMSIZ-1).
// Patch ports need no kernel device, but tools and habits assume it.
const maxIfaceName = 15

// PhysnetSpec is the desired set of patch port pairs of a chassis.
type PhysnetSpec struct {
	// Bridge is the integration bridge, normally "br-int"; it must exist.
	Bridge string
	// Mappings maps a physical network name to the bridge carrying it
	// (the chassis' bridge mappings, e.g. external -> br-ex). The operator
	// creates those bridges with their NICs; a mapping whose bridge does
	// not exist is skipped.
	Mappings map[string]string
}

// PhysnetSkipped is a mapping EnsurePhysnetPatches could not realize.
type PhysnetSkipped struct {
	Physnet, Bridge string
	Reason          string
}

func (s PhysnetSkipped) String() string {
	return fmt.Sprintf("%s -> %s: %s", s.Physnet, s.Bridge, s.Reason)
}

// PhysnetPatchPort returns the name of the patch port on the integration
// bridge toward a physnet bridge: int-<bridge>, or int-<hash> when that
// would be longer than 15 bytes.
func PhysnetPatchPort(bridge string) string { return patchName("int-", bridge) }

// PhysnetPeerPort returns the name of the patch port on the physnet bridge
// toward the integration bridge: phy-<bridge>, or phy-<hash>.
func PhysnetPeerPort(bridge string) string { return patchName("phy-", bridge) }

func patchName(prefix, bridge string) string {
	if len(prefix)+len(bridge) <= maxIfaceName {
		return prefix + bridge
	}
	sum := sha256.Sum256([]byte(bridge))
	return prefix + hex.EncodeToString(sum[:])[:maxIfaceName-len(prefix)]
}

// EnsurePhysnetPatches converges the patch port pairs between the
// integration bridge and every mapped bridge that exists on the chassis:
// int-<bridge> on spec.Bridge (options:peer=phy-<bridge>) and phy-<bridge>
// on the mapped bridge (options:peer=int-<bridge>), both marked
// external_ids:neutrino-physnet=<physnet>. Marked patch ports that are no
// longer wanted are deleted on every bridge; other ports are never
// touched. Mappings that cannot be realized (the bridge does not exist, is
// the integration bridge itself, or a port of that name is someone
// else's) are skipped and returned, sorted by physnet. ops is the number
// of write operations sent: 0 when converged.
func (c *Client) EnsurePhysnetPatches(ctx context.Context, spec PhysnetSpec) (ops int, skipped []PhysnetSkipped, err error) {
	if spec.Bridge == "" {
		return 0, nil, fmt.Errorf("physnet patches: no integration bridge")
	}
	ops, err = c.converge(ctx, "ensure physnet patches on "+spec.Bridge, func() ([]libovsdb.Operation, error) {
		o, sk, err := c.planPhysnets(ctx, spec)
		skipped = sk
		return o, err
	})
	return ops, skipped, err
}

// RemovePhysnetPatches deletes every patch port pair EnsurePhysnetPatches
// made for the integration bridge (both ends, on every bridge), cutting
// the chassis off its physical networks: the gateway's self-fencing.
func (c *Client) RemovePhysnetPatches(ctx context.Context, bridge string) error {
	_, _, err := c.EnsurePhysnetPatches(ctx, PhysnetSpec{Bridge: bridge})
	return err
}

// PhysnetPorts returns the names of the marked patch ports on a bridge,
// sorted.
func (c *Client) PhysnetPorts(ctx context.Context, bridge string) ([]string, error) {
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
		if _, owned := bp.port.ExternalIDs[PhysnetOwnerKey]; owned {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (c *Client) planPhysnets(ctx context.Context, spec PhysnetSpec) ([]libovsdb.Operation, []PhysnetSkipped, error) {
	intBr, err := c.Bridge(ctx, spec.Bridge)
	if err != nil {
		return nil, nil, err
	}
	if intBr == nil {
		return nil, nil, fmt.Errorf("bridge %s does not exist", spec.Bridge)
	}
	var bridges []vswitchd.Bridge
	if err := c.ovs.List(ctx, &bridges); err != nil {
		return nil, nil, fmt.Errorf("ovsdb %s: list bridges: %w", c.endpoint, err)
	}
	byName := map[string]*vswitchd.Bridge{}
	for i := range bridges {
		byName[bridges[i].Name] = &bridges[i]
	}

	// Physnets per existing mapped bridge.
	var skipped []PhysnetSkipped
	physnets := map[string][]string{}
	for _, pn := range slices.Sorted(maps.Keys(spec.Mappings)) {
		b := spec.Mappings[pn]
		switch {
		case b == "" || pn == "":
			skipped = append(skipped, PhysnetSkipped{pn, b, "empty physnet or bridge"})
		case b == spec.Bridge:
			skipped = append(skipped, PhysnetSkipped{pn, b, "mapped to the integration bridge"})
		case byName[b] == nil:
			skipped = append(skipped, PhysnetSkipped{pn, b, "bridge does not exist"})
		default:
			physnets[b] = append(physnets[b], pn)
		}
	}

	// Desired ports per bridge; a foreign port holding one of our names
	// skips the whole pair.
	want := map[string]map[string]tunnelPort{}
	for _, b := range slices.Sorted(maps.Keys(physnets)) {
		in, out := PhysnetPatchPort(b), PhysnetPeerPort(b)
		if reason := c.foreignPort(ctx, intBr, in); reason != "" {
			skipped = append(skipped, skipAll(physnets[b], b, reason)...)
			continue
		}
		if reason := c.foreignPort(ctx, byName[b], out); reason != "" {
			skipped = append(skipped, skipAll(physnets[b], b, reason)...)
			continue
		}
		ids := map[string]string{PhysnetOwnerKey: strings.Join(physnets[b], ",")}
		if want[spec.Bridge] == nil {
			want[spec.Bridge] = map[string]tunnelPort{}
		}
		want[spec.Bridge][in] = tunnelPort{name: in, encap: "patch", options: map[string]string{"peer": out}, externalIDs: ids}
		want[b] = map[string]tunnelPort{out: {name: out, encap: "patch", options: map[string]string{"peer": in}, externalIDs: ids}}
	}
	slices.SortFunc(skipped, func(a, b PhysnetSkipped) int { return strings.Compare(a.Physnet, b.Physnet) })

	// Every bridge is planned: marked ports on bridges no longer mapped go.
	var ops []libovsdb.Operation
	seq := 0
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		o, err := c.planOwnedPorts(ctx, byName[name], want[name], PhysnetOwnerKey, "patch", &seq)
		if err != nil {
			return nil, skipped, err
		}
		ops = append(ops, o...)
	}
	return ops, skipped, nil
}

// foreignPort says why the port name on br cannot be ours ("" if it can).
func (c *Client) foreignPort(ctx context.Context, br *vswitchd.Bridge, name string) string {
	have, err := c.bridgePorts(ctx, br)
	if err != nil {
		return err.Error()
	}
	if bp, ok := have[name]; ok {
		if _, owned := bp.port.ExternalIDs[PhysnetOwnerKey]; !owned {
			return fmt.Sprintf("port %s on %s is not ours", name, br.Name)
		}
	}
	return ""
}

func skipAll(physnets []string, bridge, reason string) []PhysnetSkipped {
	var out []PhysnetSkipped
	for _, pn := range physnets {
		out = append(out, PhysnetSkipped{pn, bridge, reason})
	}
	return out
}

// WatchOwnedPorts calls fn (from its own goroutine) whenever the ports
// this package owns change on any bridge: a tunnel or patch port added,
// removed, renumbered or reconfigured by someone else, as when a fenced
// gateway removes its patch ports or a restarted ovsdb-server comes back
// with a different database. It compares the whole owned set after every
// cache event (and every resyncInterval), so a cache rebuild that changes
// nothing calls nothing. It stops when ctx ends or the client closes.
func (c *Client) WatchOwnedPorts(ctx context.Context, fn func()) {
	wake := make(chan struct{}, 1)
	c.mu.Lock()
	c.wakeups = append(c.wakeups, wake)
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			c.wakeups = slices.DeleteFunc(c.wakeups, func(ch chan struct{}) bool { return ch == wake })
			c.mu.Unlock()
		}()
		tick := time.NewTimer(c.resync())
		defer tick.Stop()
		prev, first := "", true
		for {
			cur, err := c.ownedPortsDigest(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				if !first && cur != prev {
					fn()
				}
				prev, first = cur, false
			}
			select {
			case <-ctx.Done():
				return
			case <-c.closed:
				return
			case <-wake:
			case <-tick.C:
				tick.Reset(c.resync())
			}
		}
	}()
}

// ownedPortsDigest describes every owned port (bridge, name, type,
// options, ofport) as one comparable string.
func (c *Client) ownedPortsDigest(ctx context.Context) (string, error) {
	var bridges []vswitchd.Bridge
	if err := c.ovs.List(ctx, &bridges); err != nil {
		return "", err
	}
	var lines []string
	for i := range bridges {
		have, err := c.bridgePorts(ctx, &bridges[i])
		if err != nil {
			return "", err
		}
		for name, bp := range have {
			_, tun := bp.port.ExternalIDs[TunnelOwnerKey]
			_, phy := bp.port.ExternalIDs[PhysnetOwnerKey]
			if !tun && !phy {
				continue
			}
			line := bridges[i].Name + "/" + name
			if bp.iface != nil {
				ofport := 0
				if bp.iface.Ofport != nil {
					ofport = *bp.iface.Ofport
				}
				line += fmt.Sprintf(" %s %v %d", bp.iface.Type, bp.iface.Options, ofport)
			}
			lines = append(lines, line)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}
