package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/cluster"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/hostnet"
	"neutrino/southbound/ovsproc"
)

var ovsSeq atomic.Int32

// startOVS starts a chassis' ovsdb-server and ovs-vswitchd in a namespace
// of its own (skipping the test without root or OVS); stopped at cleanup.
func startOVS(t *testing.T, name string) *ovsproc.Instance {
	t.Helper()
	if err := ovsproc.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := fmt.Sprintf("sb%d-%d%s", os.Getpid()%100000, ovsSeq.Add(1), name)
	inst, err := ovsproc.Start(ctx, ovsproc.Options{Name: full, Logger: testLogger()})
	if err != nil {
		t.Fatalf("start ovs %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("stop ovs %s: %v", name, err)
		}
	})
	return inst
}

// underlay joins chassis by a veth pair whose ends are ports of a netdev
// br-phy in each namespace, with the tunnel IP on br-phy (lab-notes.md:
// the userspace tunnel endpoint must sit on an OVS bridge).
func underlay(t *testing.T, a, b *ovsproc.Instance, ipA, ipB string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hostnet.CreateVeth(hostnet.VethSpec{Name: "ul", Namespace: a.Namespace(), PeerName: "ul", PeerNS: b.Namespace(), MTU: 1600}); err != nil {
		t.Fatal(err)
	}
	macs := []string{"02:00:00:00:ff:01", "02:00:00:00:ff:02"}
	for i, side := range []struct {
		inst     *ovsproc.Instance
		ip, peer string
	}{{a, ipA, ipB}, {b, ipB, ipA}} {
		if _, err := side.inst.Vsctl(ctx, "add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
			"other-config:hwaddr="+macs[i], "--", "add-port", "br-phy", "ul"); err != nil {
			t.Fatal(err)
		}
		if err := hostnet.SetLinkUp(side.inst.Namespace(), "br-phy"); err != nil {
			t.Fatal(err)
		}
		if err := hostnet.AddAddress(side.inst.Namespace(), "br-phy", side.ip+"/24"); err != nil {
			t.Fatal(err)
		}
		// Without this the first packets toward the peer are lost while
		// OVS resolves its MAC.
		if _, err := side.inst.Appctl(ctx, "tnl/arp/set", "br-phy", side.peer, macs[1-i]); err != nil {
			t.Logf("tnl/arp/set: %v", err)
		}
	}
}

// ofSocket returns a short unix socket path for a server's OpenFlow
// listener, removed at cleanup.
func ofSocket(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nof")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "of.sock")
}

func chassisAgent(t *testing.T, name string, taken map[int]bool, join string, inst *ovsproc.Instance, tunnelIP string) *agent.Agent {
	t.Helper()
	return startAgent(t, agent.Config{
		Node: name, Bind: fmt.Sprintf("127.0.0.1:%d", freePort(t, taken)), Join: []string{join},
		Chassis: cluster.NodeMeta{TunnelIP: tunnelIP, OVSDB: inst.DBEndpoint(), Roles: []string{"compute"},
			Encaps: []string{"vxlan", "gre", "geneve"}, DatapathType: "netdev"},
	})
}

func apply(t *testing.T, a *agent.Agent, typ fsm.CommandType, body any) uint64 {
	t.Helper()
	cmd, err := fsm.Encode(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.Cluster().Apply(ctx, cmd)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return res.Revision
}

// createNetwork creates a provider network through the API.
func createProviderNet(t *testing.T, a *agent.Agent, name, typ string, seg int) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"network": map[string]any{
		"name": name, "provider:network_type": typ, "provider:segmentation_id": seg}})
	resp, err := http.Post("http://"+a.HTTPAddr()+"/v2.0/networks", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Network struct{ ID string } `json:"network"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create network %s: %d %v", name, resp.StatusCode, err)
	}
	return out.Network.ID
}

// vmPort is a Neutron port and the workload plugged for it.
type vmPort struct {
	id, net, mac, ip string
	inst             *ovsproc.Instance
	vm               *ovsproc.VM
}

func createPorts(t *testing.T, a *agent.Agent, ports []*vmPort) {
	t.Helper()
	var ps []*fsm.Port
	for _, p := range ports {
		ps = append(ps, &fsm.Port{Meta: fsm.Meta{ID: p.id, ProjectID: "admin", RevisionNumber: 1},
			NetworkID: p.net, MACAddress: p.mac, AdminStateUp: true, Status: fsm.PortStatusDown,
			BindingVIFType: fsm.VIFTypeUnbound, BindingVNICType: "normal", BindingProfile: "{}"})
	}
	apply(t, a, fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: ps})
}

func plug(t *testing.T, p *vmPort, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vm, err := p.inst.PlugVM(ctx, ovsproc.VMSpec{Name: name, Bridge: "br-int", MAC: p.mac, CIDR: p.ip + "/24", IfaceID: p.id})
	if err != nil {
		t.Fatal(err)
	}
	p.vm = vm
}

func ping(t *testing.T, from, to *vmPort, what string) {
	t.Helper()
	start := time.Now()
	eventually(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		out, err := from.vm.Exec(ctx, "ping", "-c1", "-W1", to.ip)
		if err != nil {
			return fmt.Errorf("%s: %v: %s", what, err, out)
		}
		return nil
	})
	t.Logf("%s: ping %s -> %s ok after %v", what, from.ip, to.ip, time.Since(start).Round(time.Millisecond))
}

// dbState lists the rows the controller owns on a chassis, with UUIDs, so
// that a rewrite shows as a difference.
func dbState(t *testing.T, inst *ovsproc.Instance) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sb strings.Builder
	for _, q := range [][]string{
		{"--columns=_uuid,name,controller,datapath_type,fail_mode,protocols,other_config,external_ids,ports", "list", "Bridge", "br-int"},
		{"--columns=_uuid,target,max_backoff,connection_mode", "list", "Controller"},
		{"--columns=_uuid,name,interfaces,external_ids", "find", "Port", "external_ids:neutrino-tunnel!=none"},
	} {
		out, err := inst.Vsctl(ctx, q...)
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteString(out)
	}
	return sb.String()
}

func realized(a *agent.Agent, chassis string, rev uint64) error {
	for _, st := range a.Controller().Status() {
		if st.Chassis != chassis {
			continue
		}
		if !st.Master || st.Realized < rev {
			return fmt.Errorf("chassis %s: %+v, want master and revision %d", chassis, st, rev)
		}
		return nil
	}
	return fmt.Errorf("chassis %s unknown to the controller: %+v", chassis, a.Controller().Status())
}

// TestControllerOVS runs one server and two chassis, each a real OVS in
// its own namespace joined by an underlay: br-int is bootstrapped
// idempotently, plugged VMs become bound ACTIVE ports, and VMs ping on one
// chassis and across VXLAN, GRE and Geneve.
func TestControllerOVS(t *testing.T) {
	ovs1, ovs2 := startOVS(t, "a"), startOVS(t, "b")
	underlay(t, ovs1, ovs2, "172.31.0.1", "172.31.0.2")
	taken := map[int]bool{}
	srvBind := fmt.Sprintf("127.0.0.1:%d", freePort(t, taken))
	srv := startAgent(t, agent.Config{Server: true, Node: "srv1", Bind: srvBind, BootstrapExpect: 1, OpenFlow: "unix:" + ofSocket(t)})
	chassisAgent(t, "hv1", taken, srvBind, ovs1, "172.31.0.1")
	chassisAgent(t, "hv2", taken, srvBind, ovs2, "172.31.0.2")

	rev0 := uint64(0)
	eventually(t, 30*time.Second, func() error {
		for _, ch := range []string{"hv1", "hv2"} {
			if err := realized(srv, ch, 1); err != nil {
				return err
			}
		}
		rev0 = srv.FSM().State().Read().Revision()
		return nil
	})
	before := []string{dbState(t, ovs1), dbState(t, ovs2)}
	for i, s := range before {
		for _, want := range []string{`fail_mode           : secure`, `datapath_type       : netdev`, `datapath-id=`, "tun-vxlan", "tun-gre", "tun-geneve", "OpenFlow13"} {
			if !strings.Contains(s, want) {
				t.Fatalf("chassis %d: %q missing from\n%s", i+1, want, s)
			}
		}
	}

	vx := createProviderNet(t, srv, "vx", "vxlan", 2001)
	gre := createProviderNet(t, srv, "gre", "gre", 2002)
	gnv := createProviderNet(t, srv, "gnv", "geneve", 2003)
	// Every worker has run full passes since: the bootstrap was redone
	// and must not have changed a row.
	rev := srv.FSM().State().Read().Revision()
	eventually(t, 20*time.Second, func() error {
		if rev <= rev0 {
			return fmt.Errorf("revision did not move")
		}
		for _, ch := range []string{"hv1", "hv2"} {
			if err := realized(srv, ch, rev); err != nil {
				return err
			}
		}
		return nil
	})
	if after := []string{dbState(t, ovs1), dbState(t, ovs2)}; after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("second bootstrap changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	ports := map[string]*vmPort{
		"a1": {id: "port-a1", net: vx, mac: "fa:16:3e:01:00:01", ip: "10.1.0.1", inst: ovs1},
		"a2": {id: "port-a2", net: vx, mac: "fa:16:3e:01:00:02", ip: "10.1.0.2", inst: ovs2},
		"a3": {id: "port-a3", net: vx, mac: "fa:16:3e:01:00:03", ip: "10.1.0.3", inst: ovs1},
		"b1": {id: "port-b1", net: gre, mac: "fa:16:3e:02:00:01", ip: "10.2.0.1", inst: ovs1},
		"b2": {id: "port-b2", net: gre, mac: "fa:16:3e:02:00:02", ip: "10.2.0.2", inst: ovs2},
		"g1": {id: "port-g1", net: gnv, mac: "fa:16:3e:03:00:01", ip: "10.3.0.1", inst: ovs1},
		"g2": {id: "port-g2", net: gnv, mac: "fa:16:3e:03:00:02", ip: "10.3.0.2", inst: ovs2},
	}
	var all []*vmPort
	for _, name := range []string{"a1", "a2", "a3", "b1", "b2", "g1", "g2"} {
		all = append(all, ports[name])
	}
	createPorts(t, srv, all)
	for name, p := range ports {
		plug(t, p, "vm"+name)
	}
	hosts := map[*ovsproc.Instance]string{ovs1: "hv1", ovs2: "hv2"}
	start := time.Now()
	eventually(t, 20*time.Second, func() error {
		v := srv.FSM().State().Read()
		for name, p := range ports {
			got := v.Port(p.id)
			if got.Status != fsm.PortStatusActive || got.BindingHostID != hosts[p.inst] || got.BindingVIFType != fsm.VIFTypeOVS {
				return fmt.Errorf("port %s: status %s host %q vif %s", name, got.Status, got.BindingHostID, got.BindingVIFType)
			}
			ofport, err := p.vm.OFPort(context.Background())
			if err != nil || got.BindingOFPort != ofport {
				return fmt.Errorf("port %s: committed ofport %d, switch has %d (%v)", name, got.BindingOFPort, ofport, err)
			}
		}
		return nil
	})
	t.Logf("7 ports bound ACTIVE %v after plugging", time.Since(start).Round(time.Millisecond))

	ping(t, ports["a1"], ports["a3"], "same chassis")
	ping(t, ports["a1"], ports["a2"], "vxlan")
	ping(t, ports["b2"], ports["b1"], "gre")
	ping(t, ports["g1"], ports["g2"], "geneve")

	// Unplugging unbinds.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ports["a3"].vm.Unplug(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		p := srv.FSM().State().Read().Port("port-a3")
		if p.Status != fsm.PortStatusDown || p.BindingHostID != "" {
			return fmt.Errorf("port a3 after unplug: status %s host %q", p.Status, p.BindingHostID)
		}
		return nil
	})
}

var cookieRE = regexp.MustCompile(`cookie=0x([0-9a-f]+)`)

// flowRounds counts br-int's Neutrino flows by cookie round.
func flowRounds(t *testing.T, inst *ovsproc.Instance) map[uint16]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := inst.Ofctl(ctx, "--no-stats", "dump-flows", "br-int")
	if err != nil {
		t.Fatal(err)
	}
	rounds := map[uint16]int{}
	for _, m := range cookieRE.FindAllStringSubmatch(out, -1) {
		c, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if flowsync.IsOurs(c) {
			rounds[flowsync.CookieRound(c)]++
		}
	}
	return rounds
}

// threeServersOneChassis starts 3 servers on loopback and a chassis
// agent hv1 with its own OVS (named by ovsName), joined to the first.
func threeServersOneChassis(t *testing.T, ovsName string) (*ovsproc.Instance, []*agent.Agent, *agent.Agent) {
	t.Helper()
	ovs1 := startOVS(t, ovsName)
	taken := map[int]bool{}
	var binds []string
	for i := 0; i < 3; i++ {
		binds = append(binds, fmt.Sprintf("127.0.0.1:%d", freePort(t, taken)))
	}
	var servers []*agent.Agent
	for i := 0; i < 3; i++ {
		servers = append(servers, startAgent(t, agent.Config{Server: true, Node: fmt.Sprintf("s%d", i+1), Bind: binds[i],
			Join: binds, BootstrapExpect: 3, OpenFlow: "unix:" + ofSocket(t)}))
	}
	return ovs1, servers, chassisAgent(t, "hv1", taken, binds[0], ovs1, "172.31.0.1")
}

// TestLeaderChangeFlows: three servers, one chassis. After the leader is
// shut down, the new leader becomes MASTER and the chassis' flows converge
// to the new round, the old round's pruned.
func TestLeaderChangeFlows(t *testing.T) {
	ovs1, servers, _ := threeServersOneChassis(t, "l")

	leader := func(among []*agent.Agent) (*agent.Agent, error) {
		for _, a := range among {
			if a.Cluster().IsLeader() && a.Controller() != nil {
				return a, nil
			}
		}
		return nil, fmt.Errorf("no leader")
	}
	var old *agent.Agent
	eventually(t, 30*time.Second, func() (err error) {
		if old, err = leader(servers); err != nil {
			return err
		}
		return realized(old, "hv1", 1)
	})
	net := createProviderNet(t, old, "vx", "vxlan", 3001)
	p := &vmPort{id: "port-l1", net: net, mac: "fa:16:3e:09:00:01", ip: "10.9.0.1", inst: ovs1}
	createPorts(t, old, []*vmPort{p})
	plug(t, p, "vml1")
	oldRound := uint16(old.Cluster().Term())
	var n int
	var since time.Time
	eventually(t, 20*time.Second, func() error {
		if err := realized(old, "hv1", old.FSM().State().Read().Revision()); err != nil {
			return err
		}
		r := flowRounds(t, ovs1)
		// 2 default drops, VIF classify, tunnel classify, L2 entry, 2 floods.
		if len(r) != 1 || r[oldRound] < 7 {
			return fmt.Errorf("flows by round %v, want only round %d", r, oldRound)
		}
		// Settled: a pass without a new revision can still add flows (the
		// tunnel ports' ofports arrive after the first compile).
		if r[oldRound] != n {
			n, since = r[oldRound], time.Now()
		}
		if time.Since(since) < time.Second {
			return fmt.Errorf("%d flows, not settled for a second yet", n)
		}
		return nil
	})

	start := time.Now()
	shutdown(t, old)
	var rest []*agent.Agent
	for _, a := range servers {
		if a != old {
			rest = append(rest, a)
		}
	}
	var next *agent.Agent
	eventually(t, 30*time.Second, func() (err error) {
		if next, err = leader(rest); err != nil {
			return err
		}
		if err := realized(next, "hv1", next.FSM().State().Read().Revision()); err != nil {
			return err
		}
		r := flowRounds(t, ovs1)
		newRound := uint16(next.Cluster().Term())
		if newRound == oldRound || len(r) != 1 || r[newRound] != n {
			return fmt.Errorf("flows by round %v, want %d flows of round %d only", r, n, newRound)
		}
		return nil
	})
	t.Logf("new leader %s master with %d flows of round %d %v after the old one stopped",
		next.Cluster().Status().Node, n, uint16(next.Cluster().Term()), time.Since(start).Round(time.Millisecond))
	for _, a := range rest {
		if a == next {
			continue
		}
		for _, st := range a.Controller().Status() {
			if st.Master {
				t.Fatalf("follower %s holds MASTER on %s", a.Cluster().Status().Node, st.Chassis)
			}
		}
	}
}
