package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"neutrino/scenarios/lab"
)

// TestPhysnetsAndNodeFailures brings up one lab with physnets (3 servers,
// 1 chassis mapping the physnets, 2 gateways) and checks the lab's side of
// them: the outside node, the physnet bridges' NICs, and what `lab
// kill`/`revive` and `lab partition`/`heal` do to a node's processes,
// links and state. What the cluster makes of these faults (gossip, chassis
// records, flows) is the scenario TestNodeFailures, on every driver.
func TestPhysnetsAndNodeFailures(t *testing.T) {
	e := newLab(t)
	rootBefore := rootLinks(t)
	start := time.Now()
	e.mustRun("up", "--servers", "3", "--chassis", "1", "--gateways", "2", "--external-chassis", "1")
	t.Logf("lab up in %s", time.Since(start).Round(time.Millisecond))
	st, err := lab.LoadState(e.dir)
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

	t.Run("outside-vlan", func(t *testing.T) { testOutsideVLAN(t, e) })

	t.Run("physnet-bridges", func(t *testing.T) {
		for _, n := range external {
			for br, nic := range map[string]string{"br-ex": "ext0", "br-vlan": "extv0"} {
				// The lab adds the NIC; the controller adds the patch
				// port to br-int (phy-<bridge>), nothing else.
				ports := strings.Fields(e.mustRun("exec", n, "--", "ovs-vsctl", "list-ports", br))
				if !slices.Contains(ports, nic) || slices.ContainsFunc(ports, func(p string) bool { return p != nic && p != "phy-"+br }) {
					t.Errorf("%s: ports of %s: %v, want %s and at most the controller's phy-%s", n, br, ports, nic, br)
				}
				if fm := strings.TrimSpace(e.mustRun("exec", n, "--", "ovs-vsctl", "get-fail-mode", br)); fm != "standalone" {
					t.Errorf("%s: %s fail mode %q", n, br, fm)
				}
			}
		}
	})

	t.Run("kill-revive", func(t *testing.T) {
		const node = "gateway-1"
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
		t.Logf("kill: %s", time.Since(start).Round(time.Millisecond))

		start = time.Now()
		if err := lab.Revive(ctx, e.dir, node, binary); err != nil {
			t.Fatal(err)
		}
		t.Logf("revive -> alive in gossip: %s", time.Since(start).Round(time.Millisecond))
		if st := mustState(t, e.dir).Node(node); st.Killed || !pidRunning(st.AgentPID) || !pidRunning(st.VswitchdPID) {
			t.Errorf("state after revive: killed %v, agent pid %d running %v, ovs-vswitchd pid %d running %v",
				st.Killed, st.AgentPID, pidRunning(st.AgentPID), st.VswitchdPID, pidRunning(st.VswitchdPID))
		}
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
		t.Logf("partition: %s", time.Since(start).Round(time.Millisecond))
		if !mustState(t, e.dir).Node(node).Partitioned {
			t.Error("state does not say partitioned")
		}
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
		for _, pid := range pids {
			if !pidRunning(pid) {
				t.Errorf("pid %d of %s is gone after heal", pid, node)
			}
		}
		if st := mustState(t, e.dir).Node(node); st.Partitioned || st.AgentPID != pids[0] {
			t.Errorf("state after heal: partitioned %v, agent pid %d (was %d)", st.Partitioned, st.AgentPID, pids[0])
		}
	})

	t.Run("down", func(t *testing.T) {
		o := mustState(t, e.dir).Outside
		e.mustRun("down")
		for _, pid := range []int{o.OVSDBPID, o.VswitchdPID} {
			if pidRunning(pid) {
				t.Errorf("outside's OVS pid %d still runs after down", pid)
			}
		}
		if left := e.leftovers(rootBefore); len(left) > 0 {
			t.Errorf("left after down: %v", left)
		}
	})
}

// testOutsideVLAN checks the outside node's own OVS and `lab
// outside-vlan`, and that its frames cross the VLAN physnet tagged, with
// no Neutron involved: outside's vlan101 (203.0.113.1) talks to a
// temporary tagged internal port on gateway-1's br-vlan (203.0.113.9)
// while tcpdump in the underlay namespace watches outside's untagged-side
// link into the physnet bridge.
func testOutsideVLAN(t *testing.T, e *labEnv) {
	const (
		vid         = 101
		outsideAddr = "203.0.113.1/24"
		outsideIP   = "203.0.113.1"
		gw          = "gateway-1"
		gwPort      = "tv101"
		gwAddr      = "203.0.113.9/24"
		gwIP        = "203.0.113.9"
	)
	ctx := context.Background()
	st := mustState(t, e.dir)
	o := st.Outside
	if o == nil || o.Bridge != "br-out" || o.OVSDir == "" || o.OVSDBUnix == "" {
		t.Fatalf("outside has no OVS in the state: %+v", o)
	}
	for _, pid := range []int{o.OVSDBPID, o.VswitchdPID} {
		recorded := false
		for _, p := range st.Processes {
			recorded = recorded || p.PID == pid
		}
		if pid == 0 || !recorded || !pidRunning(pid) {
			t.Errorf("outside OVS pid %d: recorded in processes %v, running %v", pid, recorded, pidRunning(pid))
		}
	}
	if fm := strings.TrimSpace(e.mustRun("exec", "outside", "--", "ovs-vsctl", "get-fail-mode", "br-out")); fm != "standalone" {
		t.Errorf("br-out fail mode %q", fm)
	}
	if c := strings.TrimSpace(e.mustRun("exec", "outside", "--", "ovs-vsctl", "get-controller", "br-out")); c != "" {
		t.Errorf("br-out has a controller: %q", c)
	}
	if dp := strings.TrimSpace(e.mustRun("exec", "outside", "--", "ovs-vsctl", "get", "Bridge", "br-out", "datapath_type")); dp != "netdev" {
		t.Errorf("br-out datapath_type %s", dp)
	}
	// Nothing listens in outside: its OVSDB is a unix socket only.
	if out := strings.TrimSpace(e.mustRun("exec", "outside", "--", "ss", "-Hltnu")); out != "" {
		t.Errorf("something listens in outside:\n%s", out)
	}

	start := time.Now()
	e.mustRun("outside-vlan", fmt.Sprint(vid), outsideAddr)
	t.Logf("lab outside-vlan: %s", time.Since(start).Round(time.Millisecond))
	// Again through the Go API: same port, same address. And once with
	// another address, which replaces the first.
	if err := lab.OutsideVLAN(ctx, e.dir, vid, outsideAddr); err != nil {
		t.Fatal(err)
	}
	if err := lab.OutsideVLAN(ctx, e.dir, vid, "203.0.113.2/24"); err != nil {
		t.Fatal(err)
	}
	if out := e.mustRun("exec", "outside", "--", "ip", "-o", "-4", "addr", "show", "dev", "vlan101"); !strings.Contains(out, "203.0.113.2/24") || strings.Contains(out, "203.0.113.1/") {
		t.Errorf("vlan101 after a new address: %s", out)
	}
	if err := lab.OutsideVLAN(ctx, e.dir, vid, outsideAddr); err != nil {
		t.Fatal(err)
	}
	if ports := strings.Fields(e.mustRun("exec", "outside", "--", "ovs-vsctl", "list-ports", "br-out")); strings.Join(ports, ",") != "eth1,vlan101" {
		t.Errorf("ports of br-out: %v, want [eth1 vlan101]", ports)
	}
	if tag := strings.TrimSpace(e.mustRun("exec", "outside", "--", "ovs-vsctl", "get", "Port", "vlan101", "tag")); tag != "101" {
		t.Errorf("vlan101 tag %s", tag)
	}
	if typ := strings.TrimSpace(e.mustRun("exec", "outside", "--", "ovs-vsctl", "get", "Interface", "vlan101", "type")); typ != "internal" {
		t.Errorf("vlan101 type %s", typ)
	}
	if out := e.mustRun("exec", "outside", "--", "ip", "-o", "-4", "addr", "show", "dev", "vlan101"); strings.Count(out, "inet ") != 1 || !strings.Contains(out, outsideAddr) {
		t.Errorf("vlan101 addresses: %s", out)
	}
	if out := e.mustRun("exec", "outside", "--", "ethtool", "-k", "vlan101"); !strings.Contains(out, "tx-checksumming: off") {
		t.Errorf("TX checksum offload on vlan101 is not off:\n%s", out)
	}
	if vs := mustState(t, e.dir).Outside.VLANs; len(vs) != 1 || vs[0].VID != vid || vs[0].Port != "vlan101" ||
		vs[0].Address != outsideAddr || vs[0].MAC == "" {
		t.Errorf("state outside VLANs: %+v", vs)
	}
	var s struct {
		Outside *lab.Outside `json:"outside"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("status", "-o", "json")), &s); err != nil {
		t.Fatal(err)
	}
	if s.Outside == nil || len(s.Outside.VLANs) != 1 {
		t.Errorf("status outside: %+v", s.Outside)
	}

	// The far end: a tagged internal port on gateway-1's br-vlan.
	e.mustRun("exec", gw, "--", "ovs-vsctl", "add-port", "br-vlan", gwPort, "tag="+fmt.Sprint(vid),
		"--", "set", "Interface", gwPort, "type=internal")
	t.Cleanup(func() {
		if _, err := e.run("exec", gw, "--", "ovs-vsctl", "--if-exists", "del-port", "br-vlan", gwPort); err != nil {
			t.Errorf("remove %s from %s: %v", gwPort, gw, err)
		}
	})
	e.mustRun("exec", gw, "--", "ethtool", "-K", gwPort, "tx", "off")
	e.mustRun("exec", gw, "--", "ip", "addr", "add", gwAddr, "dev", gwPort)
	e.mustRun("exec", gw, "--", "ip", "link", "set", gwPort, "up")

	// tcpdump on outside's link into br-extvlan, in the underlay namespace:
	// the wire between outside's trunk and the physnet.
	cp := &capture{vm: "underlay", filter: "icmp or vlan",
		proc: startOn(t, st, "underlay", "tcpdump", "-i", "outside-exv", "-nn", "-e", "-l", "-Z", "root", "icmp", "or", "vlan")}
	eventually(t, 10*time.Second, "tcpdump capturing on outside-exv", func() error {
		if strings.Contains(cp.proc.stderr(), "listening on") {
			return nil
		}
		if cp.proc.exited() {
			return fmt.Errorf("tcpdump exited: %s", cp.proc.stderr())
		}
		return fmt.Errorf("not yet")
	})

	start = time.Now()
	eventually(t, 20*time.Second, "outside pings gateway-1 on VLAN 101", func() error {
		out, err := e.run("exec", "outside", "--", "ping", "-c1", "-W1", gwIP)
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	t.Logf("first ping outside -> %s on VLAN %d answered after %s", gwIP, vid, time.Since(start).Round(time.Millisecond))
	if out, err := e.run("exec", gw, "--", "ping", "-c3", "-i0.2", "-W2", outsideIP); err != nil {
		t.Errorf("gateway-1 -> outside on VLAN %d: %v %s", vid, err, out)
	}
	// TCP too: with TX offload left on, netdev OVS forwards partial
	// checksums and ping works while TCP fails.
	l := startOn(t, st, "outside", "nc", "-k", "-l", "-p", "7101")
	eventually(t, 10*time.Second, "outside listens on tcp 7101", func() error {
		if l.exited() {
			return fmt.Errorf("nc exited: %s", l.stderr())
		}
		if out, _ := e.run("exec", "outside", "--", "ss", "-Hltn", "sport = :7101"); !strings.Contains(out, "LISTEN") {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	msg := fmt.Sprintf("over-vlan-%d", time.Now().UnixNano())
	eventually(t, 10*time.Second, "tcp gateway-1 -> outside:7101 on VLAN 101", func() error {
		if out, err := e.run("exec", gw, "--", "sh", "-c", fmt.Sprintf("echo %s | nc -N -w 3 %s 7101", msg, outsideIP)); err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		if !strings.Contains(l.stdout(), msg) {
			return fmt.Errorf("connected, but outside received %q", l.stdout())
		}
		return nil
	})
	l.stop()

	lines := cp.packets()
	var tagged, untagged int
	for _, line := range lines {
		if !strings.Contains(line, outsideIP+" > "+gwIP) && !strings.Contains(line, gwIP+" > "+outsideIP) {
			continue
		}
		if strings.Contains(line, "vlan 101,") {
			tagged++
		} else {
			untagged++
			t.Errorf("untagged frame between the VLAN 101 addresses on outside-exv: %s", line)
		}
	}
	if tagged < 2 {
		t.Errorf("tcpdump -e on outside-exv saw %d frames tagged vlan 101 between %s and %s, want echo requests and replies:\n%s",
			tagged, outsideIP, gwIP, strings.Join(lines, "\n"))
	}
	t.Logf("outside-exv: %d ICMP frames tagged vlan 101, %d untagged", tagged, untagged)

	// Remove the temporary port; its tap goes with it.
	e.mustRun("exec", gw, "--", "ovs-vsctl", "del-port", "br-vlan", gwPort)
	if ports := strings.Fields(e.mustRun("exec", gw, "--", "ovs-vsctl", "list-ports", "br-vlan")); slices.Contains(ports, gwPort) {
		t.Errorf("ports of %s br-vlan after cleanup: %v", gw, ports)
	}
	eventually(t, 10*time.Second, gwPort+" gone from "+gw, func() error {
		if _, err := e.run("exec", gw, "--", "ip", "link", "show", gwPort); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
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

func mustState(t *testing.T, dir string) *lab.State {
	t.Helper()
	st, err := lab.LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
