package dhcp_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"neutrino/fsm"
	"neutrino/southbound/dhcp"
	"neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
	"neutrino/southbound/ovsproc"
	"neutrino/southbound/pipeline"
)

// state is a fixed replicated state for the responder.
type state struct {
	ports    []*fsm.Port
	subnets  []*fsm.Subnet
	networks []*fsm.Network
}

func (s *state) Ports() []*fsm.Port       { return s.ports }
func (s *state) Subnets() []*fsm.Subnet   { return s.subnets }
func (s *state) Networks() []*fsm.Network { return s.networks }

const vmMAC = "fa:16:3e:00:00:05"

func testState(ofport int) *state {
	return &state{
		networks: []*fsm.Network{{Meta: fsm.Meta{ID: "net1"}, MTU: 1400}},
		subnets: []*fsm.Subnet{{Meta: fsm.Meta{ID: "sub1"}, NetworkID: "net1", IPVersion: 4, CIDR: "10.9.0.0/24",
			GatewayIP: "10.9.0.1", EnableDHCP: true, DNSNameservers: []string{"10.9.0.53"},
			HostRoutes: []fsm.HostRoute{{Destination: "172.16.0.0/16", NextHop: "10.9.0.254"}}}},
		ports: []*fsm.Port{{Meta: fsm.Meta{ID: "port1"}, NetworkID: "net1", MACAddress: vmMAC, DeviceOwner: "compute:nova",
			FixedIPs: []fsm.FixedIP{{SubnetID: "sub1", IPAddress: "10.9.0.5"}}, BindingHostID: "ch1", BindingOFPort: ofport}},
	}
}

// udhcpcScript records what udhcpc was given.
const udhcpcScript = `#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
env | grep -E '^(ip|subnet|router|dns|mtu|staticroutes|lease|domain|hostname|serverid)=' | sort > "$OUT"
`

// startResponder runs a responder on the switch's service socket.
func startResponder(t testing.TB, sw *oftest.Switch, src dhcp.Source) *dhcp.Responder {
	t.Helper()
	r := dhcp.New(dhcp.Config{Socket: filepath.Join(sw.RunDir(), oftest.Bridge+".mgmt"), Chassis: "ch1", Source: src})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	oftest.Eventually(t, 30*time.Second, "responder connected", func() (bool, error) { return r.Connected(), nil })
	return r
}

// TestServiceSocketAnswersUdhcpc: on a real ovs-vswitchd, a flow's
// controller(id) action reaches the responder's connection on br-int.mgmt
// (which needs no Controller row) and not a controller with id 0, and
// busybox udhcpc in the VM gets the port's address and its subnet's
// settings from the answers.
func TestServiceSocketAnswersUdhcpc(t *testing.T) {
	sw := oftest.StartSwitch(t, "dh")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	vm, err := sw.PlugVM(ctx, ovsproc.VMSpec{Name: "vm1", Bridge: oftest.Bridge, MAC: vmMAC, IfaceID: "port1"})
	if err != nil {
		t.Fatal(err)
	}
	ofport, err := vm.OFPort(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A controller with id 0 (as the servers' connections are) must not
	// get the packet-ins.
	leader := sw.Connect(t, oftest.NewController(t, openflow.Options{}))[0]
	flow := fmt.Sprintf("table=0,priority=150,udp,in_port=%d,tp_src=68,tp_dst=67,actions=controller(id=%d)", ofport, pipeline.ChassisControllerID)
	if _, err := sw.Ofctl(ctx, "add-flow", oftest.Bridge, flow); err != nil {
		t.Fatal(err)
	}
	flows, err := leader.DumpFlows(ctx, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 1 || len(flows[0].Actions) != 1 || flows[0].Actions[0] != (openflow.Controller{ID: pipeline.ChassisControllerID}) {
		t.Fatalf("dumped flows %v: want one with controller(id=%d) decoded", flows, pipeline.ChassisControllerID)
	}

	r := startResponder(t, sw, testState(ofport))
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if o, err := vm.Exec(ctx, "env", "OUT="+out, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", script); err != nil {
		t.Fatalf("udhcpc: %v: %s (stats %+v)", err, o, r.Stats())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{"ip=10.9.0.5", "subnet=255.255.255.0", "router=10.9.0.1", "dns=10.9.0.53", "mtu=1400",
		"staticroutes=172.16.0.0/16 10.9.0.254 0.0.0.0/0 10.9.0.1", "lease=86400", "domain=openstacklocal",
		"hostname=host-10-9-0-5", "serverid=10.9.0.1"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("udhcpc got:\n%s\nmissing %q", got, want)
		}
	}
	if st := r.Stats(); st.Answered < 2 || st.Malformed != 0 {
		t.Errorf("stats %+v: want an offer and an ack, nothing malformed", st)
	}
	select {
	case pi := <-leader.PacketIns():
		t.Errorf("the id-0 controller got a packet-in: %+v", pi)
	default:
	}
}
