package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"neutrino/northbound/client"
	"neutrino/scenarios/lab"
)

// TestPhysnetsAndNodeFailures brings up one lab with physnets (3 servers,
// 1 chassis mapping the physnets, 2 gateways) and checks the outside node,
// the physnet bridges and mappings, `lab kill`/`revive` of a gateway and
// `lab partition`/`heal` of a chassis.
func TestPhysnetsAndNodeFailures(t *testing.T) {
	e := newLab(t)
	start := time.Now()
	e.mustRun("up", "--servers", "3", "--chassis", "1", "--gateways", "2", "--external-chassis", "1")
	t.Logf("lab up in %s", time.Since(start).Round(time.Millisecond))
	st, err := lab.LoadState(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(st.Node("server-1").API)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	external := []string{"chassis-1", "gateway-1", "gateway-2"}

	t.Run("outside", func(t *testing.T) {
		out := e.mustRun("exec", "outside", "--", "ip", "addr")
		if !strings.Contains(out, "198.51.100.1/24") {
			t.Fatalf("outside has no 198.51.100.1/24:\n%s", out)
		}
		// No underlay link: nothing on the underlay is reachable.
		for _, n := range st.Nodes {
			if out, err := e.run("exec", "outside", "--", "ping", "-c1", "-W1", n.IP); err == nil {
				t.Errorf("outside reaches %s (%s) on the underlay: %s", n.Name, n.IP, out)
			}
		}
		var s struct {
			Outside *lab.Outside `json:"outside"`
		}
		if err := json.Unmarshal([]byte(e.mustRun("status", "-o", "json")), &s); err != nil {
			t.Fatal(err)
		}
		if s.Outside == nil || len(s.Outside.NICs) != 2 || s.Outside.NICs[0].MAC == "" ||
			s.Outside.NICs[0].Address != "198.51.100.1/24" || s.Outside.NICs[1].Address != "" {
			t.Fatalf("status outside: %+v", s.Outside)
		}
		// The flat physnet carries frames from outside through a gateway's
		// br-ex (a standalone learning switch) to its internal port.
		e.mustRun("exec", "gateway-1", "--", "ip", "addr", "add", "198.51.100.250/24", "dev", "br-ex")
		e.mustRun("exec", "gateway-1", "--", "ip", "link", "set", "br-ex", "up")
		defer e.run("exec", "gateway-1", "--", "ip", "link", "set", "br-ex", "down")
		defer e.run("exec", "gateway-1", "--", "ip", "addr", "del", "198.51.100.250/24", "dev", "br-ex")
		if out, err := e.run("exec", "outside", "--", "ping", "-c1", "-W2", "198.51.100.250"); err != nil {
			t.Fatalf("outside -> gateway-1 br-ex over the flat physnet: %v %s", err, out)
		}
	})

	t.Run("physnet-bridges", func(t *testing.T) {
		for _, n := range external {
			for br, nic := range map[string]string{"br-ex": "ext0", "br-vlan": "extv0"} {
				ports := strings.Fields(e.mustRun("exec", n, "--", "ovs-vsctl", "list-ports", br))
				if len(ports) != 1 || ports[0] != nic {
					t.Errorf("%s: ports of %s: %v, want [%s] (no patch ports: the controller adds them)", n, br, ports, nic)
				}
				if fm := strings.TrimSpace(e.mustRun("exec", n, "--", "ovs-vsctl", "get-fail-mode", br)); fm != "standalone" {
					t.Errorf("%s: %s fail mode %q", n, br, fm)
				}
			}
		}
		eventually(t, 20*time.Second, "chassis records carry the bridge mappings", func() error {
			list, err := c.List(ctx, "chassis", nil)
			if err != nil {
				return err
			}
			got := map[string]string{}
			for _, ch := range list {
				b, _ := json.Marshal(ch["bridge_mappings"])
				got[fmt.Sprint(ch["name"])] = string(b)
			}
			for _, n := range external {
				if want := `{"external":"br-ex","external-vlan":"br-vlan"}`; got[n] != want {
					return fmt.Errorf("%s: bridge_mappings %s, want %s", n, got[n], want)
				}
			}
			return nil
		})
	})

	t.Run("kill-revive", func(t *testing.T) {
		const node = "gateway-1"
		before := flowCount(t, e, node)
		n := mustState(t, e.dir).Node(node)
		pids := []int{n.AgentPID, n.OVSDBPID, n.VswitchdPID}
		start := time.Now()
		if err := lab.Kill(ctx, e.dir, node); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			if pidRunning(pid) {
				t.Errorf("pid %d of %s still runs after kill", pid, node)
			}
		}
		if !mustState(t, e.dir).Node(node).Killed {
			t.Error("state does not say killed")
		}
		waitMember(t, c, node, "dead")
		t.Logf("kill -> dead in gossip: %s", time.Since(start).Round(time.Millisecond))
		waitChassisUp(t, c, node, false)
		t.Logf("kill -> chassis down: %s", time.Since(start).Round(time.Millisecond))

		start = time.Now()
		if err := lab.Revive(ctx, e.dir, node, binary); err != nil {
			t.Fatal(err)
		}
		t.Logf("revive -> alive in gossip: %s", time.Since(start).Round(time.Millisecond))
		waitMember(t, c, node, "alive")
		waitChassisUp(t, c, node, true)
		t.Logf("revive -> chassis up: %s", time.Since(start).Round(time.Millisecond))
		eventually(t, 30*time.Second, "br-int flows back after revive", func() error {
			if got := flowCount(t, e, node); got < before || got == 0 {
				return fmt.Errorf("%d flows, had %d before the kill", got, before)
			}
			return nil
		})
		t.Logf("revive -> flows resynced: %s", time.Since(start).Round(time.Millisecond))
		for _, br := range []string{"br-phy", "br-ex", "br-vlan", "br-int"} {
			e.mustRun("exec", node, "--", "ovs-vsctl", "br-exists", br)
		}
		if out, err := e.run("exec", node, "--", "ping", "-c1", "-W2", "10.250.0.101"); err != nil {
			t.Fatalf("revived %s cannot reach chassis-1 on the underlay: %v %s", node, err, out)
		}
	})

	t.Run("partition-heal", func(t *testing.T) {
		const node = "chassis-1"
		n := mustState(t, e.dir).Node(node)
		pids := []int{n.AgentPID, n.OVSDBPID, n.VswitchdPID}
		start := time.Now()
		e.mustRun("partition", node)
		waitMember(t, c, node, "dead")
		t.Logf("partition -> dead in gossip: %s", time.Since(start).Round(time.Millisecond))
		for _, pid := range pids {
			if !pidRunning(pid) {
				t.Errorf("pid %d of %s died in the partition", pid, node)
			}
		}
		// Its physnet link stays up.
		if out := e.mustRun("exec", node, "--", "ip", "-o", "link", "show", "ext0"); strings.Contains(out, "state DOWN") {
			t.Errorf("ext0 down in a partition: %s", out)
		}
		start = time.Now()
		e.mustRun("heal", node)
		t.Logf("heal -> alive in gossip: %s", time.Since(start).Round(time.Millisecond))
		waitMember(t, c, node, "alive")
		for _, pid := range pids {
			if !pidRunning(pid) {
				t.Errorf("pid %d of %s is gone after heal", pid, node)
			}
		}
		if st := mustState(t, e.dir).Node(node); st.Partitioned || st.AgentPID != pids[0] {
			t.Errorf("state after heal: partitioned %v, agent pid %d (was %d)", st.Partitioned, st.AgentPID, pids[0])
		}
	})
}

// flowCount is the number of flows on a node's br-int.
func flowCount(t *testing.T, e *labEnv, node string) int {
	t.Helper()
	out, err := e.run("exec", node, "--", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int")
	if err != nil {
		return 0
	}
	return strings.Count(out, "cookie=")
}

// pidRunning reports whether pid is a live (not zombie) process.
func pidRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

// waitMember waits until server-1's gossip view lists node with status.
func waitMember(t *testing.T, c *client.Client, node, status string) {
	t.Helper()
	eventually(t, 30*time.Second, node+" "+status+" in gossip", func() error {
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
	eventually(t, 30*time.Second, fmt.Sprintf("chassis %s up=%v", node, want), func() error {
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

func mustState(t *testing.T, dir string) *lab.State {
	t.Helper()
	st, err := lab.LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
