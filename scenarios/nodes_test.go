package scenarios_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"neutrino/northbound/client"
	"neutrino/scenarios"
	"neutrino/scenarios/harness"
)

// nodesTopo: one chassis mapping the physnets, two gateways.
var nodesTopo = scenarios.Topology{Servers: 3, Chassis: 1, Gateways: 2, ExternalChassis: 1}

// TestNodeFailures checks, on a lab with physical networks, what the
// cluster makes of its nodes: the chassis records carry the bridge
// mappings of every chassis that maps the physnets, whose physnet
// bridges are standalone switches patched into br-int by the controller;
// a killed gateway is dead in gossip and its chassis down, and once
// revived alive and up again with its flows back; a partitioned chassis
// is dead in gossip until healed.
func TestNodeFailures(t *testing.T) {
	e := up(t, nodesTopo)
	x := e.Lab.External
	if x == nil || len(x.Chassis) == 0 {
		t.Fatalf("the lab has no chassis on the physical networks: %+v", x)
	}
	c, err := client.New(e.D.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	c.HTTPClient.Transport = harness.Transport(0) // the lab's CA

	t.Run("physnet-bridges", func(t *testing.T) {
		e := e.Sub(t)
		for _, n := range x.Chassis {
			for _, br := range []string{x.Bridge, x.VLANBridge} {
				if fm := strings.TrimSpace(e.MustExec(n, "ovs-vsctl", "get-fail-mode", br)); fm != "standalone" {
					t.Errorf("%s: %s fail mode %q, want standalone", n, br, fm)
				}
				harness.Poll(t, 30*time.Second, n+": the controller's patch port on "+br, func() error {
					ports := strings.Fields(e.MustExec(n, "ovs-vsctl", "list-ports", br))
					if !slices.Contains(ports, "phy-"+br) {
						return fmt.Errorf("ports %v", ports)
					}
					return nil
				})
			}
		}
		want, _ := json.Marshal(map[string]string{x.Physnet: x.Bridge, x.VLANPhysnet: x.VLANBridge})
		harness.Poll(t, 30*time.Second, "chassis records carry the bridge mappings", func() error {
			list, err := c.List(context.Background(), "chassis", nil)
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, ch := range list {
				b, _ := json.Marshal(ch["bridge_mappings"])
				got[fmt.Sprint(ch["name"])] = string(b)
			}
			for _, n := range x.Chassis {
				if got[n] != string(want) {
					return fmt.Errorf("%s: bridge_mappings %s, want %s", n, got[n], want)
				}
			}
			return nil
		})
	})

	t.Run("kill-revive", func(t *testing.T) {
		e := e.Sub(t)
		node := e.Lab.ByKind(scenarios.KindGateway)[0].Name
		fs, err := e.Flows(node)
		if err != nil {
			t.Fatal(err)
		}
		before := len(harness.Ours(fs))
		start := time.Now()
		revive := e.Fault("kill", node, e.D.KillNode, "revive", e.D.ReviveNode)
		waitMember(t, c, node, "dead")
		t.Logf("kill -> dead in gossip: %s", time.Since(start).Round(time.Millisecond))
		waitChassisUp(t, c, node, false)
		t.Logf("kill -> chassis down: %s", time.Since(start).Round(time.Millisecond))

		start = time.Now()
		revive()
		waitMember(t, c, node, "alive")
		waitChassisUp(t, c, node, true)
		t.Logf("revive -> chassis up: %s", time.Since(start).Round(time.Millisecond))
		harness.Poll(t, 30*time.Second, "br-int flows back after revive", func() error {
			fs, err := e.Flows(node)
			if err != nil {
				return err
			}
			if got := len(harness.Ours(fs)); got < before || got == 0 {
				return fmt.Errorf("%d flows, had %d before the kill", got, before)
			}
			return nil
		})
		t.Logf("revive -> flows resynced: %s", time.Since(start).Round(time.Millisecond))
		for _, br := range []string{"br-int", x.Bridge, x.VLANBridge} {
			e.MustExec(node, "ovs-vsctl", "br-exists", br)
		}
		// The revived gateway reaches a chassis over the underlay.
		ch := e.Node(e.Chassis[0])
		if out, err := e.Exec(node, "ping", "-c1", "-W2", ch.Address); err != nil {
			t.Fatalf("revived %s cannot reach %s (%s) on the underlay: %v %s", node, ch.Name, ch.Address, err, out)
		}
	})

	t.Run("partition-heal", func(t *testing.T) {
		e := e.Sub(t)
		node := e.Chassis[0]
		start := time.Now()
		heal := e.Fault("partition", node, e.D.Partition, "heal", e.D.Heal)
		waitMember(t, c, node, "dead")
		t.Logf("partition -> dead in gossip: %s", time.Since(start).Round(time.Millisecond))
		start = time.Now()
		heal()
		waitMember(t, c, node, "alive")
		t.Logf("heal -> alive in gossip: %s", time.Since(start).Round(time.Millisecond))
	})
}

// waitMember waits until the server's gossip view lists node with status.
func waitMember(t *testing.T, c *client.Client, node, status string) {
	t.Helper()
	harness.Poll(t, 30*time.Second, node+" "+status+" in gossip", func() error {
		ms, err := c.Members(context.Background())
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Name == node {
				if m.Status == status {
					return nil
				}
				return fmt.Errorf("status %s", m.Status)
			}
		}
		return fmt.Errorf("not a member")
	})
}

// waitChassisUp waits until the chassis record of node has up == want.
func waitChassisUp(t *testing.T, c *client.Client, node string, want bool) {
	t.Helper()
	harness.Poll(t, 30*time.Second, fmt.Sprintf("chassis %s up=%v", node, want), func() error {
		list, err := c.List(context.Background(), "chassis", nil)
		if err != nil {
			return err
		}
		for _, ch := range list {
			if ch["name"] == node {
				if ch["up"] == want {
					return nil
				}
				return fmt.Errorf("up=%v status=%v", ch["up"], ch["status"])
			}
		}
		return fmt.Errorf("no chassis record")
	})
}
