package harness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ping sends one echo request from a VM and waits a second for the reply.
func (e *Env) Ping(from, to string, extra ...string) (string, error) {
	return e.Exec(from, append(append([]string{"ping", "-n", "-c1", "-W1"}, extra...), to)...)
}

// PingOK polls a ping from a VM until it is answered: flows reach the
// chassis asynchronously. It returns the successful ping's output.
func (e *Env) PingOK(timeout time.Duration, from, to string, extra ...string) string {
	e.TB.Helper()
	var out string
	what := strings.TrimSpace(fmt.Sprintf("ping %s -> %s %s", from, to, strings.Join(extra, " "))) + " answered"
	Poll(e.TB, timeout, what, func() error {
		var err error
		if out, err = e.Ping(from, to, extra...); err != nil {
			return fmt.Errorf("%w (%s)", err, PacketLoss(out))
		}
		return nil
	})
	return out
}

// PingFails checks that pings from a VM get no answer, attempts times in a
// row (each waits a second), after a first failure within timeout: a
// denial may take a moment to be realized, and must then hold.
func (e *Env) PingFails(timeout time.Duration, attempts int, from, to string, extra ...string) {
	e.TB.Helper()
	what := strings.TrimSpace(fmt.Sprintf("ping %s -> %s %s", from, to, strings.Join(extra, " "))) + " denied"
	Poll(e.TB, timeout, what, func() error {
		if out, err := e.Ping(from, to, extra...); err == nil {
			return fmt.Errorf("answered: %s", LastLine(out))
		}
		return nil
	})
	for i := 0; i < attempts; i++ {
		if out, err := e.Ping(from, to, extra...); err == nil {
			e.TB.Fatalf("%s: answered again (attempt %d after it was denied): %s", what, i+1, LastLine(out))
		}
	}
}

// TCPConnect opens (and closes) a TCP connection from a VM to ip:port,
// giving up after wait seconds.
func (e *Env) TCPConnect(from, ip string, port, wait int) error {
	_, err := e.Exec(from, "nc", "-z", "-v", "-w", fmt.Sprint(wait), ip, fmt.Sprint(port))
	return err
}

// TCPOK polls a TCP connect from a VM until it succeeds.
func (e *Env) TCPOK(timeout time.Duration, from, ip string, port int) {
	e.TB.Helper()
	Poll(e.TB, timeout, fmt.Sprintf("tcp %s -> %s:%d connects", from, ip, port), func() error {
		return e.TCPConnect(from, ip, port, 2)
	})
}

// TCPDenied checks that TCP connects from a VM to ip:port fail, attempts
// times in a row (each gives up after 2 s).
func (e *Env) TCPDenied(attempts int, from, ip string, port int) {
	e.TB.Helper()
	for i := 0; i < attempts; i++ {
		start := time.Now()
		if err := e.TCPConnect(from, ip, port, 2); err == nil {
			e.TB.Fatalf("tcp %s -> %s:%d: connected (attempt %d), want it denied", from, ip, port, i+1)
		} else if i == 0 {
			e.TB.Logf("tcp %s -> %s:%d denied after %s: %v", from, ip, port, time.Since(start).Round(time.Millisecond), err)
		}
	}
}

// TCPExchange sends a line over TCP from VM client to VM server (at ip)
// and checks the server received it: ping alone passes even when
// checksums (TX offload) or the MTU are wrong.
func (e *Env) TCPExchange(server, ip, client string, port int) {
	e.TB.Helper()
	l := e.Listen(server, port)
	msg := fmt.Sprintf("hello-from-%s-%d", client, time.Now().UnixNano())
	Poll(e.TB, Change, fmt.Sprintf("tcp %s -> %s:%d carries a line", client, ip, port), func() error {
		if _, err := e.Exec(client, "sh", "-c", fmt.Sprintf("echo %s | nc -N -w 3 %s %d", msg, ip, port)); err != nil {
			return err
		}
		if !strings.Contains(l.Stdout(), msg) {
			return fmt.Errorf("connected, but %s received %q", server, l.Stdout())
		}
		return nil
	})
	l.Stop()
}

// Listen starts a TCP listener (`nc -k -l -p PORT`) in a VM, waits until
// the socket listens, and returns it; what clients send shows in its
// output (-k: one listener serves every connection in turn).
func (e *Env) Listen(vmName string, port int) *Proc {
	e.TB.Helper()
	l := e.Start(vmName, "nc", "-k", "-l", "-p", fmt.Sprint(port))
	Poll(e.TB, 10*time.Second, fmt.Sprintf("%s listens on tcp %d", vmName, port), func() error {
		if l.Exited() {
			return fmt.Errorf("nc exited: %s", l.Stderr())
		}
		out, err := e.Exec(vmName, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if err != nil {
			return err
		}
		if !strings.Contains(out, "LISTEN") {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	return l
}

// Proc is a long-running command on a node or VM (nc, tcpdump, ping),
// ended when the test ends at the latest (before the lab goes down:
// cleanups run last-in first-out).
type Proc struct {
	// Stdin is the command's standard input (an open connection's data).
	Stdin  io.WriteCloser
	out    lockedBuffer
	err    lockedBuffer
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(b)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start starts a long-running command on a node or VM.
func (e *Env) Start(node string, args ...string) *Proc {
	e.TB.Helper()
	return Start(e.TB, strings.Join(args, " ")+" on "+node, func(ctx context.Context) (*exec.Cmd, error) {
		node, args := e.target(node, args)
		return e.D.Command(ctx, node, args...)
	})
}

// Start starts the command that command returns (what names it in
// messages); the test's cleanup stops it.
func Start(tb testing.TB, what string, command func(context.Context) (*exec.Cmd, error)) *Proc {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd, err := command(ctx)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	p := &Proc{cancel: cancel, done: make(chan struct{})}
	// SIGTERM first so tcpdump flushes; SIGKILL after WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second
	cmd.Stdout, cmd.Stderr = &p.out, &p.err
	if p.Stdin, err = cmd.StdinPipe(); err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start %s: %v", what, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(p.Stop)
	return p
}

// Stop ends the command and waits for it; its output stays readable.
func (p *Proc) Stop() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
}

// Exited reports whether the command has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stdout is what the command printed so far.
func (p *Proc) Stdout() string { return p.out.String() }

// Stderr is what the command printed on standard error so far, trimmed.
func (p *Proc) Stderr() string { return strings.TrimSpace(p.err.String()) }

// Capture is tcpdump running on an interface of a node or VM.
type Capture struct {
	Node, Filter string
	Proc         *Proc
}

// Capture starts tcpdump on a VM's eth0 with a pcap filter and returns
// once it is capturing.
func (e *Env) Capture(vmName, filter string) *Capture {
	e.TB.Helper()
	return e.CaptureOn(vmName, "eth0", filter)
}

// CaptureOn is Capture on a given interface of a node.
func (e *Env) CaptureOn(node, iface, filter string) *Capture {
	e.TB.Helper()
	args := append([]string{"tcpdump", "-i", iface, "-nn", "-e", "-l", "-Z", "root"}, strings.Fields(filter)...)
	c := &Capture{Node: node, Filter: filter, Proc: e.Start(node, args...)}
	c.WaitListening(e.TB)
	return c
}

// WaitListening waits until tcpdump says it captures.
func (c *Capture) WaitListening(tb testing.TB) {
	tb.Helper()
	Poll(tb, 10*time.Second, "tcpdump on "+c.Node+" capturing", func() error {
		if strings.Contains(c.Proc.Stderr(), "listening on") {
			return nil
		}
		if c.Proc.Exited() {
			return fmt.Errorf("tcpdump exited: %s", c.Proc.Stderr())
		}
		return fmt.Errorf("not yet")
	})
}

// Packets stops the capture and returns the packets it saw, one line each.
func (c *Capture) Packets() []string {
	c.Proc.Stop()
	var out []string
	for _, l := range strings.Split(c.Proc.Stdout(), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// SeenFrom waits (up to 5 s: tcpdump prints asynchronously) until the
// capture printed a packet from want, stops it and returns every source
// address it saw, with the raw lines.
func (c *Capture) SeenFrom(want string) ([]string, string) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !slices.Contains(Sources(strings.Split(c.Proc.Stdout(), "\n")), want) {
		time.Sleep(20 * time.Millisecond) // polling tcpdump's output, bounded by the deadline
	}
	lines := c.Packets()
	return Sources(lines), strings.Join(lines, "\n")
}

var sourceRE = regexp.MustCompile(`(?:IP |: )(\d+\.\d+\.\d+\.\d+)(\.\d+)? > \d+\.\d+\.\d+\.\d+`)

// Sources returns the IPv4 source addresses of "IP a > b" capture lines.
func Sources(lines []string) []string {
	var out []string
	for _, l := range lines {
		if m := sourceRE.FindStringSubmatch(l); m != nil && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// SeenAt captures on a VM (pcap filter) while send runs and returns the
// packets captured. send should wait for its replies (ping -W), so that
// anything it caused has arrived when it returns.
func (e *Env) SeenAt(vmName, filter string, send func()) []string {
	e.TB.Helper()
	c := e.Capture(vmName, filter)
	send()
	return c.Packets()
}

// PacketLoss is ping's summary line ("1 packets transmitted, 0 received").
func PacketLoss(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			return strings.TrimSpace(l)
		}
	}
	return LastLine(out)
}

// LastLine is the last non-blank line of s.
func LastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

// Matching returns the lines that contain every one of subs.
func Matching(lines []string, subs ...string) []string {
	var out []string
next:
	for _, l := range lines {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// StreamInterval is the interval of a Stream's pings.
const StreamInterval = 50 * time.Millisecond

// Stream is a ping running at StreamInterval with timestamps (-D): the
// replies that did not come measure an outage.
type Stream struct {
	Name string
	Proc *Proc
}

// Reply is one echo reply of a Stream.
type Reply struct {
	At  time.Time
	Seq int
}

var replyRE = regexp.MustCompile(`^\[(\d+\.\d+)\] .*icmp_seq=(\d+) .*time=`)

// Replies are the replies so far, by sequence number.
func (s *Stream) Replies() []Reply {
	var out []Reply
	for _, l := range strings.Split(s.Proc.Stdout(), "\n") {
		m := replyRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		f, _ := strconv.ParseFloat(m[1], 64)
		seq, _ := strconv.Atoi(m[2])
		out = append(out, Reply{At: time.Unix(0, int64(f*1e9)), Seq: seq})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Gap is a run of lost replies, after the last reply before it.
type Gap struct {
	After time.Time
	Lost  int
}

// Duration is how long the gap lasted, in stream intervals.
func (g Gap) Duration() time.Duration { return time.Duration(g.Lost) * StreamInterval }

// Gaps lists the runs of missing sequence numbers among replies received
// after since.
func (s *Stream) Gaps(since time.Time) []Gap {
	var out []Gap
	rs := s.Replies()
	for i := 1; i < len(rs); i++ {
		if rs[i].At.Before(since) {
			continue
		}
		if lost := rs[i].Seq - rs[i-1].Seq - 1; lost > 0 {
			out = append(out, Gap{After: rs[i-1].At, Lost: lost})
		}
	}
	return out
}

// Longest is the longest of gaps (zero if none).
func Longest(gs []Gap) Gap {
	var g Gap
	for _, x := range gs {
		if x.Lost > g.Lost {
			g = x
		}
	}
	return g
}

// StartStream starts a ping stream from a node or VM to an address and
// returns once it has 10 replies.
func (e *Env) StartStream(name, from, to string) *Stream {
	e.TB.Helper()
	s := &Stream{Name: name, Proc: e.Start(from, "ping", "-n", "-D", "-i", fmt.Sprintf("%.3f", StreamInterval.Seconds()), "-W", "1", to)}
	e.WaitReplies(s, 10, FirstPacket)
	return s
}

// WaitReplies waits until the stream got n more replies.
func (e *Env) WaitReplies(s *Stream, n int, timeout time.Duration) {
	e.TB.Helper()
	base := len(s.Replies())
	Poll(e.TB, timeout, fmt.Sprintf("%s: %d more replies", s.Name, n), func() error {
		if s.Proc.Exited() {
			return fmt.Errorf("ping exited: %s", s.Proc.Stderr())
		}
		if got := len(s.Replies()) - base; got < n {
			return fmt.Errorf("%d replies", got)
		}
		return nil
	})
}

// Median is the median of xs (0 for none).
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// EUI64LinkLocal is the EUI-64 link-local address of a MAC (what a
// router's or a VM's interface has).
func EUI64LinkLocal(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}
