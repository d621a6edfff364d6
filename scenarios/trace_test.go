package scenarios_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/northbound/trace"
	"neutrino/scenarios/harness"
)

// TestTrace runs `neutrino trace` (the CLI, against a follower or the
// leader alike) on the pipeline lab: TCP 22 from A (chassis 1) to B
// (chassis 2, group trace-server allowing only TCP 22 in) is delivered
// through the tunnel to chassis 2 and allowed by that rule, and the real
// connection works; TCP 80 is dropped by B's group, which the trace names;
// a packet with a spoofed source is dropped by port security. With
// --ofproto each verdict is checked against ovs-appctl ofproto/trace on
// the chassis that decides it.
func TestTrace(t *testing.T) {
	if driverName == "vagrant" {
		t.Skip("checked on the netns lab only: not yet run on the Vagrant cluster")
	}
	p := sharedUp(t, pipelineTopo)
	nc := p.Admin
	netID, _ := p.Network(nc, "trace", "10.19.0.0/24")
	srv := p.Group(nc, "trace-server")
	ssh := p.Rule(nc, rules.CreateOpts{SecGroupID: srv, Direction: rules.DirIngress, Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22})
	cli := p.Group(nc, "trace-client")
	a := p.Plug("tra", p.Chassis[0], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "tra", SecurityGroups: &[]string{cli}}))
	b := p.Plug("trb", p.Chassis[1], p.Port(nc, ports.CreateOpts{NetworkID: netID, Name: "trb", SecurityGroups: &[]string{srv}}))
	p.TCPExchange(b.Name, b.IP, a.Name, 22) // the data path agrees with the first trace
	endpoint := p.API(p.Servers()[len(p.Servers())-1])

	global := []string{"--endpoint", endpoint}
	if ca, ok := p.D.(interface{ CAFile() string }); ok && ca.CAFile() != "" {
		global = append(global, "--ca", ca.CAFile())
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary, append(append(global, "trace", "--port", a.PortID), args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	traceJSON := func(args ...string) trace.Result {
		t.Helper()
		out, err := run(append(args, "--ofproto", "-o", "json")...)
		if err != nil {
			t.Fatalf("neutrino trace %v: %v\n%s", args, err, out)
		}
		var r trace.Result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("neutrino trace %v: %v\n%s", args, err, out)
		}
		return r
	}
	ofproto := func(r trace.Result, chassis string) trace.OFProto {
		t.Helper()
		for _, o := range r.OFProto {
			if o.Chassis == chassis {
				if o.Error != "" || !strings.Contains(o.Output, "Datapath actions:") {
					t.Fatalf("ofproto/trace on %s: error %q, output:\n%s", chassis, o.Error, o.Output)
				}
				return o
			}
		}
		t.Fatalf("no ofproto/trace on %s in %+v", chassis, r.OFProto)
		return trace.OFProto{}
	}
	last := func(r trace.Result) trace.Step {
		if len(r.Steps) == 0 {
			t.Fatalf("trace without steps: %+v", r)
		}
		return r.Steps[len(r.Steps)-1]
	}

	// Allowed: through the tunnel to chassis 2, by rule ssh.
	var ok trace.Result
	harness.Poll(t, 30*time.Second, "trace of TCP 22 delivered, and not dropped by either switch", func() error {
		ok = traceJSON("--to", b.IP+":tcp/22")
		if ok.Verdict != trace.Delivered {
			t.Fatalf("TCP 22 to B: verdict %q, want delivered: %+v", ok.Verdict, ok.Steps)
		}
		for _, c := range []string{a.Chassis, b.Chassis} {
			if o := ofproto(ok, c); harness.Dropped(o.Actions) {
				return fmt.Errorf("ofproto/trace on %s drops TCP 22: %s", c, o.Output)
			}
		}
		return nil
	})
	tunnel := slices.IndexFunc(ok.Steps, func(s trace.Step) bool {
		return s.Stage == "tunnel" && s.Chassis == a.Chassis && s.Object == "chassis "+b.Chassis
	})
	if tunnel < 0 {
		t.Errorf("TCP 22 to B: no tunnel step from %s to %s: %+v", a.Chassis, b.Chassis, ok.Steps)
	}
	if s := ok.Steps[len(ok.Steps)-2]; s.Stage != "security groups (ingress)" || s.Object != "security_group_rule "+ssh || s.Chassis != b.Chassis {
		t.Errorf("TCP 22 to B: ingress step %+v, want rule %s on %s", s, ssh, b.Chassis)
	}
	if s := last(ok); s.Stage != "output" || s.Chassis != b.Chassis {
		t.Errorf("TCP 22 to B: last step %+v, want output on %s", s, b.Chassis)
	}

	// Dropped by B's security group: no rule allows TCP 80; B's switch drops it.
	sg := traceJSON("--to", b.IP+":tcp/80")
	if s := last(sg); sg.Verdict != trace.Dropped || s.Stage != "security groups (ingress)" ||
		!strings.Contains(s.Detail, "trace-server") || !strings.Contains(s.Detail, "no ingress rule") {
		t.Errorf("TCP 80 to B: verdict %q, last step %+v; want dropped by group trace-server, no ingress rule", sg.Verdict, s)
	}
	if o := ofproto(sg, b.Chassis); !harness.Dropped(o.Actions) {
		t.Errorf("ofproto/trace of TCP 80 on %s: datapath actions %q, want drop:\n%s", b.Chassis, o.Actions, o.Output)
	}

	// Dropped by port security: a source address that is not A's.
	sp := traceJSON("--to", b.IP+":tcp/22", "--src", "10.19.0.250")
	if s := last(sp); sp.Verdict != trace.Dropped || s.Stage != "port security" || !strings.Contains(s.Detail, "spoofed") {
		t.Errorf("spoofed source: verdict %q, last step %+v; want dropped by port security", sp.Verdict, s)
	}
	if o := ofproto(sp, a.Chassis); !harness.Dropped(o.Actions) {
		t.Errorf("ofproto/trace of the spoofed packet on %s: datapath actions %q, want drop:\n%s", a.Chassis, o.Actions, o.Output)
	}

	// What a user reads.
	out, err := run("--to", b.IP+":tcp/80")
	if err != nil || !strings.Contains(out, "Verdict: dropped") || !strings.Contains(out, "no ingress rule of security group trace-server") {
		t.Errorf("neutrino trace (text): %v\n%s", err, out)
	}
	t.Logf("neutrino trace --to %s:tcp/80:\n%s", b.IP, out)
}
