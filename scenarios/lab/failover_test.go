package lab_test

import (
	"context"
	"strings"
	"time"

	"neutrino/scenarios/harness"
)

// Streams and node faults for the lab's tests (package harness). The
// gateway failover test itself is a scenario (scenarios/failover_test.go).

const streamInterval = harness.StreamInterval

// stream is a ping running at streamInterval with timestamps (-D).
type stream struct {
	name string
	proc *bgProc
}

func (s *stream) h() *harness.Stream { return &harness.Stream{Name: s.name, Proc: s.proc.Proc} }

// reply is one echo reply of a stream.
type reply = harness.Reply

func (s *stream) replies() []reply { return s.h().Replies() }

// gap is a run of lost replies: from the last reply before it.
type gap struct {
	after time.Time
	lost  int
}

func (g gap) duration() time.Duration { return harness.Gap{After: g.after, Lost: g.lost}.Duration() }

// gaps lists the runs of missing sequence numbers among replies received
// after since.
func (s *stream) gaps(since time.Time) []gap {
	var out []gap
	for _, g := range s.h().Gaps(since) {
		out = append(out, gap{after: g.After, lost: g.Lost})
	}
	return out
}

// longest is the longest gap (zero if none).
func longest(gs []gap) gap {
	var hs []harness.Gap
	for _, g := range gs {
		hs = append(hs, harness.Gap{After: g.after, Lost: g.lost})
	}
	l := harness.Longest(hs)
	return gap{after: l.After, lost: l.Lost}
}

// startStream starts a ping stream and returns once it has 10 replies.
func (p *pipeLab) startStream(name, from, to string) *stream {
	p.tb.Helper()
	s := p.e().StartStream(name, from, to)
	return &stream{name: s.Name, proc: &bgProc{s.Proc}}
}

// waitReplies waits until the stream got n more replies.
func (p *pipeLab) waitReplies(s *stream, n int, timeout time.Duration) {
	p.tb.Helper()
	p.e().WaitReplies(s.h(), n, timeout)
}

func median(xs []float64) float64 { return harness.Median(xs) }

// kill, revive, partition and heal do that to a lab node.
func (p *pipeLab) kill(node string)      { p.nodeOp("kill", node, p.d.KillNode) }
func (p *pipeLab) revive(node string)    { p.nodeOp("revive", node, p.d.ReviveNode) }
func (p *pipeLab) partition(node string) { p.nodeOp("partition", node, p.d.Partition) }
func (p *pipeLab) heal(node string)      { p.nodeOp("heal", node, p.d.Heal) }

func (p *pipeLab) nodeOp(what, node string, op func(context.Context, string) error) {
	p.tb.Helper()
	p.e().NodeOp(what, node, op)
}

// ovsdbSocket is a chassis' OVSDB unix socket.
func (p *pipeLab) ovsdbSocket(node string) string {
	st := p.d.State()
	if n := st.Node(node); n != nil {
		return strings.TrimPrefix(n.OVSDBUnix, "unix:")
	}
	return ""
}
