package scenarios_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios/harness"
)

// Gateway failover (issue 6): a continuous ping stream at 50 ms from the
// outside node to a floating IP served by the gateway chassis, and one
// from a VM without a floating IP to the outside node (SNAT on the gateway
// chassis). The outage is measured from the replies that did not come.

// failoverLab is a lab with a router whose gateway serves a floating IP
// (of a VM on chassis-2, which does not map the external network) and SNAT
// for another VM on chassis-2.
type failoverLab struct {
	*harness.Env
	routerID string
	fip      string
	snatVM   harness.VM
	// outside is the outside node, outsideIP its address on the external
	// network (Lab.External).
	outside, outsideIP string
}

func upFailoverLab(tb testing.TB) *failoverLab {
	p := up(tb, externalTopo)
	nc := p.Admin
	x := p.Lab.External
	if x == nil {
		tb.Fatal("the lab has no external side")
	}
	ext, _ := p.ExtNet(nc, "public", "flat", x.Physnet, 0, x.CIDR, x.Gateway)
	tenant, tsub := p.Network(nc, "tenant", "10.10.0.0/24")
	r, _ := p.GatewayRouter(nc, "edge", ext, tsub)
	sg := p.OpenGroup(nc, "open")
	opts := func(name string) ports.CreateOpts {
		return ports.CreateOpts{NetworkID: tenant, Name: name, SecurityGroups: &[]string{sg}}
	}
	a := p.Plug("fa", p.Chassis[1], p.Port(nc, opts("fa")))
	bp := p.Port(nc, opts("fb"))
	p.Plug("fb", p.Chassis[1], bp)
	f := p.FloatingIP(nc, ext, bp.ID)
	p.PingOK(harness.FirstPacket, x.Node, f.FloatingIP)
	p.PingOK(harness.FirstPacket, a.Name, x.Gateway)
	return &failoverLab{Env: p, routerID: r.ID, fip: f.FloatingIP, snatVM: a, outside: x.Node, outsideIP: x.Gateway}
}

// outage runs both streams, does act (to the active gateway), and returns
// the longest outage of each stream (floating IP, SNAT) once both have
// recovered, with the gateway the router moved to.
func (f *failoverLab) outage(act func(gateway string)) (fipOut, snatOut time.Duration, from, to string) {
	f.TB.Helper()
	from, list := f.ActiveGateway(f.routerID)
	if from == "" || len(list) < 2 {
		f.TB.Fatalf("router %s: active gateway %q of %v: want one of two", f.routerID, from, list)
	}
	in := f.StartStream(f.outside+" -> "+f.fip, f.outside, f.fip)
	out := f.StartStream(f.snatVM.Name+" -> "+f.outsideIP, f.snatVM.Name, f.outsideIP)
	start := time.Now()
	act(from)
	harness.Poll(f.TB, 20*time.Second, "the router's gateway moves off "+from, func() error {
		if to, _ = f.ActiveGateway(f.routerID); to == from || to == "" {
			return fmt.Errorf("active gateway %q", to)
		}
		return nil
	})
	// Recovered: a second of replies after the move.
	f.WaitReplies(in, 20, 20*time.Second)
	f.WaitReplies(out, 20, 20*time.Second)
	in.Proc.Stop()
	out.Proc.Stop()
	gi, go_ := harness.Longest(in.Gaps(start)), harness.Longest(out.Gaps(start))
	f.TB.Logf("%s -> %s: floating IP stream lost %d (%s), SNAT stream lost %d (%s)", from, to, gi.Lost, gi.Duration(), go_.Lost, go_.Duration())
	return gi.Duration(), go_.Duration(), from, to
}

// noOutage runs both streams for about two seconds around act and fails
// if either loses more than one reply in a row.
func (f *failoverLab) noOutage(what string, act func()) {
	f.TB.Helper()
	in := f.StartStream(f.outside+" -> "+f.fip, f.outside, f.fip)
	out := f.StartStream(f.snatVM.Name+" -> "+f.outsideIP, f.snatVM.Name, f.outsideIP)
	start := time.Now()
	act()
	f.WaitReplies(in, 40, 20*time.Second)
	f.WaitReplies(out, 40, 20*time.Second)
	in.Proc.Stop()
	out.Proc.Stop()
	for _, s := range []*harness.Stream{in, out} {
		if g := harness.Longest(s.Gaps(start)); g.Lost > 1 {
			f.TB.Errorf("%s: %s lost %d replies in a row (%s) after %s", what, s.Name, g.Lost, g.Duration(), g.After.Format("15:04:05.000"))
		}
	}
}

// TestGatewayFailover kills the active gateway chassis (processes and
// links, as a machine dies): the router's gateway moves to the next one
// in its list and traffic resumes; bringing the dead one back takes
// nothing back (no second outage). Then the new active gateway loses only
// its underlay link (split): the gateway moves again, and the cut-off
// gateway fences itself (drops its patch to the physical network).
func TestGatewayFailover(t *testing.T) {
	f := upFailoverLab(t)
	fipOut, snatOut, dead, to := f.outage(func(gw string) { f.NodeOp("kill", gw, f.D.KillNode) })
	t.Logf("kill %s: outage floating IP %s, SNAT %s (target 1s)", dead, fipOut, snatOut)
	f.noOutage("revive "+dead, func() { f.NodeOp("revive", dead, f.D.ReviveNode) })
	if now, _ := f.ActiveGateway(f.routerID); now != to {
		t.Fatalf("after %s came back the gateway moved to %s: want it to stay on %s (no preemption)", dead, now, to)
	}

	fipOut, snatOut, cut, _ := f.outage(func(gw string) { f.NodeOp("partition", gw, f.D.Partition) })
	t.Logf("partition %s: outage floating IP %s, SNAT %s (target 1s)", cut, fipOut, snatOut)
	harness.Poll(t, 20*time.Second, cut+" fences itself (no patch to the physical network)", func() error {
		out, err := f.Exec(cut, "ovs-vsctl", "list-ports", "br-int")
		if err != nil {
			return err
		}
		if slices.ContainsFunc(strings.Fields(out), func(s string) bool { return strings.HasPrefix(s, "int-") }) {
			return fmt.Errorf("br-int ports: %s", strings.Join(strings.Fields(out), " "))
		}
		return nil
	})
	f.noOutage("heal "+cut, func() { f.NodeOp("heal", cut, f.D.Heal) })
}

// BenchmarkGatewayFailover reports the median outage of 5 kills of the
// active gateway chassis (each revived before the next).
func BenchmarkGatewayFailover(b *testing.B) {
	f := upFailoverLab(b)
	b.ResetTimer()
	var fips, snats []float64
	for i := 0; i < b.N; i++ {
		for j := 0; j < 5; j++ {
			fo, so, dead, _ := f.outage(func(gw string) { f.NodeOp("kill", gw, f.D.KillNode) })
			fips, snats = append(fips, float64(fo.Milliseconds())), append(snats, float64(so.Milliseconds()))
			f.NodeOp("revive", dead, f.D.ReviveNode)
		}
	}
	b.StopTimer()
	b.ReportMetric(harness.Median(fips), "fip-outage-ms")
	b.ReportMetric(harness.Median(snats), "snat-outage-ms")
	b.ReportMetric(slices.Max(fips), "fip-outage-max-ms")
}
