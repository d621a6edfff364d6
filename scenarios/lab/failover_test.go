package lab_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// Gateway failover (issue 6): a continuous ping stream at 50 ms from the
// outside node to a floating IP served by the gateway chassis, and one
// from a VM without a floating IP to the outside node (SNAT on the gateway
// chassis). The outage is measured from the replies that did not come.

const streamInterval = 50 * time.Millisecond

// stream is a ping running at streamInterval with timestamps (-D).
type stream struct {
	name string
	proc *bgProc
}

var replyRE = regexp.MustCompile(`^\[(\d+\.\d+)\] .*icmp_seq=(\d+) .*time=`)

type reply struct {
	at  time.Time
	seq int
}

func (s *stream) replies() []reply {
	var out []reply
	for _, l := range strings.Split(s.proc.stdout(), "\n") {
		m := replyRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		f, _ := strconv.ParseFloat(m[1], 64)
		seq, _ := strconv.Atoi(m[2])
		out = append(out, reply{at: time.Unix(0, int64(f*1e9)), seq: seq})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// gap is a run of lost replies: from the last reply before it.
type gap struct {
	after time.Time
	lost  int
}

func (g gap) duration() time.Duration { return time.Duration(g.lost) * streamInterval }

// gaps lists the runs of missing sequence numbers among replies received
// after since.
func (s *stream) gaps(since time.Time) []gap {
	var out []gap
	rs := s.replies()
	for i := 1; i < len(rs); i++ {
		if rs[i].at.Before(since) {
			continue
		}
		if lost := rs[i].seq - rs[i-1].seq - 1; lost > 0 {
			out = append(out, gap{after: rs[i-1].at, lost: lost})
		}
	}
	return out
}

// longest is the longest gap after since (zero if none).
func longest(gs []gap) gap {
	var g gap
	for _, x := range gs {
		if x.lost > g.lost {
			g = x
		}
	}
	return g
}

func (p *pipeLab) startStream(name, from, to string) *stream {
	p.tb.Helper()
	s := &stream{name: name, proc: p.start(from, "ping", "-n", "-D", "-i", fmt.Sprintf("%.3f", streamInterval.Seconds()), "-W", "1", to)}
	p.waitReplies(s, 10, firstPacket)
	return s
}

// waitReplies waits until the stream got n more replies.
func (p *pipeLab) waitReplies(s *stream, n int, timeout time.Duration) {
	p.tb.Helper()
	base := len(s.replies())
	poll(p.tb, timeout, fmt.Sprintf("%s: %d more replies", s.name, n), func() error {
		if s.proc.exited() {
			return fmt.Errorf("ping exited: %s", s.proc.stderr())
		}
		if got := len(s.replies()) - base; got < n {
			return fmt.Errorf("%d replies", got)
		}
		return nil
	})
}

// failoverLab is a lab with a router whose gateway serves a floating IP
// (of a VM on chassis-2, which does not map the external network) and SNAT
// for another VM on chassis-2.
type failoverLab struct {
	*pipeLab
	routerID string
	fip      string
	snatVM   vm
}

func upFailoverLab(tb testing.TB) *failoverLab {
	p := upPipelineLab(tb, externalTopo)
	nc := p.admin
	ext, _ := p.extNet(nc, "public", "flat", "external", 0, "198.51.100.0/24", outsideIP)
	tenant, tsub := p.network(nc, "tenant", "10.10.0.0/24")
	r, _ := p.gatewayRouter(nc, "edge", ext, tsub)
	sg := p.openGroup(nc, "open")
	opts := func(name string) ports.CreateOpts {
		return ports.CreateOpts{NetworkID: tenant, Name: name, SecurityGroups: &[]string{sg}}
	}
	a := p.plug("fa", p.chassis[1], p.port(nc, opts("fa")))
	bp := p.port(nc, opts("fb"))
	p.plug("fb", p.chassis[1], bp)
	f := p.floatingIP(nc, ext, bp.ID)
	p.pingOK(firstPacket, "outside", f.FloatingIP)
	p.pingOK(firstPacket, a.Name, outsideIP)
	return &failoverLab{pipeLab: p, routerID: r.ID, fip: f.FloatingIP, snatVM: a}
}

// outage runs both streams, does act (to the active gateway), and returns
// the longest outage of each stream (floating IP, SNAT) once both have
// recovered, with the gateway the router moved to.
func (f *failoverLab) outage(act func(gateway string)) (fipOut, snatOut time.Duration, from, to string) {
	f.tb.Helper()
	from, list := f.activeGateway(f.routerID)
	if from == "" || len(list) < 2 {
		f.tb.Fatalf("router %s: active gateway %q of %v: want one of two", f.routerID, from, list)
	}
	in := f.startStream("outside -> "+f.fip, "outside", f.fip)
	out := f.startStream(f.snatVM.Name+" -> "+outsideIP, f.snatVM.Name, outsideIP)
	start := time.Now()
	act(from)
	poll(f.tb, 20*time.Second, "the router's gateway moves off "+from, func() error {
		if to, _ = f.activeGateway(f.routerID); to == from || to == "" {
			return fmt.Errorf("active gateway %q", to)
		}
		return nil
	})
	// Recovered: a second of replies after the move.
	f.waitReplies(in, 20, 20*time.Second)
	f.waitReplies(out, 20, 20*time.Second)
	in.proc.stop()
	out.proc.stop()
	gi, go_ := longest(in.gaps(start)), longest(out.gaps(start))
	f.tb.Logf("%s -> %s: floating IP stream lost %d (%s), SNAT stream lost %d (%s)", from, to, gi.lost, gi.duration(), go_.lost, go_.duration())
	return gi.duration(), go_.duration(), from, to
}

// noOutage runs both streams for about two seconds around act and fails
// if either loses more than one reply in a row.
func (f *failoverLab) noOutage(what string, act func()) {
	f.tb.Helper()
	in := f.startStream("outside -> "+f.fip, "outside", f.fip)
	out := f.startStream(f.snatVM.Name+" -> "+outsideIP, f.snatVM.Name, outsideIP)
	start := time.Now()
	act()
	f.waitReplies(in, 40, 20*time.Second)
	f.waitReplies(out, 40, 20*time.Second)
	in.proc.stop()
	out.proc.stop()
	for _, s := range []*stream{in, out} {
		if g := longest(s.gaps(start)); g.lost > 1 {
			f.tb.Errorf("%s: %s lost %d replies in a row (%s) after %s", what, s.name, g.lost, g.duration(), g.after.Format("15:04:05.000"))
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
	fipOut, snatOut, dead, to := f.outage(func(gw string) { f.kill(gw) })
	t.Logf("kill %s: outage floating IP %s, SNAT %s (target 1s)", dead, fipOut, snatOut)
	f.noOutage("revive "+dead, func() { f.revive(dead) })
	if now, _ := f.activeGateway(f.routerID); now != to {
		t.Fatalf("after %s came back the gateway moved to %s: want it to stay on %s (no preemption)", dead, now, to)
	}

	fipOut, snatOut, cut, _ := f.outage(func(gw string) { f.partition(gw) })
	t.Logf("partition %s: outage floating IP %s, SNAT %s (target 1s)", cut, fipOut, snatOut)
	poll(t, 20*time.Second, cut+" fences itself (no patch to the physical network)", func() error {
		out, err := f.exec(cut, "ovs-vsctl", "--db=unix:"+f.ovsdbSocket(cut), "list-ports", "br-int")
		if err != nil {
			return err
		}
		if slices.ContainsFunc(strings.Fields(out), func(s string) bool { return strings.HasPrefix(s, "int-") }) {
			return fmt.Errorf("br-int ports: %s", strings.Join(strings.Fields(out), " "))
		}
		return nil
	})
	f.noOutage("heal "+cut, func() { f.heal(cut) })
}

// BenchmarkGatewayFailover reports the median outage of 5 kills of the
// active gateway chassis (each revived before the next).
func BenchmarkGatewayFailover(b *testing.B) {
	f := upFailoverLab(b)
	b.ResetTimer()
	var fips, snats []float64
	for i := 0; i < b.N; i++ {
		for j := 0; j < 5; j++ {
			fo, so, dead, _ := f.outage(func(gw string) { f.kill(gw) })
			fips, snats = append(fips, float64(fo.Milliseconds())), append(snats, float64(so.Milliseconds()))
			f.revive(dead)
		}
	}
	b.StopTimer()
	b.ReportMetric(median(fips), "fip-outage-ms")
	b.ReportMetric(median(snats), "snat-outage-ms")
	b.ReportMetric(slices.Max(fips), "fip-outage-max-ms")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// kill, revive, partition and heal do that to a lab node.
func (p *pipeLab) kill(node string)      { p.nodeOp("kill", node, p.d.KillNode) }
func (p *pipeLab) revive(node string)    { p.nodeOp("revive", node, p.d.ReviveNode) }
func (p *pipeLab) partition(node string) { p.nodeOp("partition", node, p.d.Partition) }
func (p *pipeLab) heal(node string)      { p.nodeOp("heal", node, p.d.Heal) }

func (p *pipeLab) nodeOp(what, node string, op func(context.Context, string) error) {
	p.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := op(ctx, node); err != nil {
		p.tb.Fatalf("%s %s: %v", what, node, err)
	}
}

// ovsdbSocket is a chassis' OVSDB unix socket.
func (p *pipeLab) ovsdbSocket(node string) string {
	st := p.d.State()
	if n := st.Node(node); n != nil {
		return strings.TrimPrefix(n.OVSDBUnix, "unix:")
	}
	return ""
}
