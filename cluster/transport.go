package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/hashicorp/go-metrics/compat"
	"github.com/hashicorp/memberlist"
)

// gossipTransport carries memberlist's packets (UDP) and streams (TCP) as
// memberlist's own NetTransport does, with one difference: a received
// packet is read into one buffer the listener reuses and handed on in a
// copy of its own size. NetTransport allocates a fresh 64 KiB buffer for
// every packet (a gossip packet is at most about 1.4 KB), and at 1,000
// members in one simulator process that garbage was much of what kept the
// collector at half the process' CPU (docs/architecture.md, "1,000
// chassis").
// Every node, server, chassis or simulated chassis, uses it.
type gossipTransport struct {
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	log      *slog.Logger
	labels   []metrics.Label
	closed   atomic.Bool
	wg       sync.WaitGroup
	// cut, a test hook, drops everything both ways as a cut link would.
	cut atomic.Bool
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

// maxPacket is the largest UDP payload there is; the one read buffer.
const maxPacket = 65536

// gossipRecvBuf is the UDP socket's receive buffer asked for (the kernel
// may clamp it): bursts of gossip wait there while the listener is busy.
const gossipRecvBuf = 2 << 20

// newGossipTransport listens on host:port for TCP and UDP; port 0 takes
// the TCP listener's port for both.
func newGossipTransport(host string, port int, log *slog.Logger, labels []metrics.Label) (*gossipTransport, error) {
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("gossip transport: bind address %q is not an IP", host)
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("gossip transport: listen tcp %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	port = tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("gossip transport: listen udp %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	for size := gossipRecvBuf; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t := &gossipTransport{
		tcp: tcp, udp: udp, log: log, labels: labels,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
	}
	t.wg.Add(2)
	go t.acceptLoop()
	go t.readLoop()
	return t, nil
}

// FinalAdvertiseAddr is the address the node gossips as: the configured
// one (Config checks it is a concrete IP), else the listener's.
func (t *gossipTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip == "" {
		a := t.tcp.Addr().(*net.TCPAddr)
		if a.IP.IsUnspecified() {
			return nil, 0, errors.New("gossip transport: bound to an unspecified address and no advertise address given")
		}
		return a.IP, a.Port, nil
	}
	addr := net.ParseIP(ip)
	if addr == nil {
		return nil, 0, fmt.Errorf("gossip transport: advertise address %q is not an IP", ip)
	}
	if v4 := addr.To4(); v4 != nil {
		addr = v4
	}
	if port == 0 {
		port = t.tcp.Addr().(*net.TCPAddr).Port
	}
	return addr, port, nil
}

func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.cut.Load() {
		return time.Now(), nil // lost on the way
	}
	to, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, to)
	return time.Now(), err
}

func (t *gossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// IngestPacket hands memberlist a packet that arrived some other way (a
// label-wrapped or relayed one): the whole of conn.
func (t *gossipTransport) IngestPacket(conn net.Conn, addr net.Addr, now time.Time, shouldClose bool) error {
	if shouldClose {
		defer conn.Close()
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, conn); err != nil {
		return fmt.Errorf("gossip transport: read packet: %w", err)
	}
	if buf.Len() == 0 {
		return fmt.Errorf("gossip transport: empty packet from %s", addr)
	}
	t.packetCh <- &memberlist.Packet{Buf: buf.Bytes(), From: addr, Timestamp: now}
	return nil
}

func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.cut.Load() {
		return nil, fmt.Errorf("gossip transport: dial %s: link cut", a.Addr)
	}
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

func (t *gossipTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *gossipTransport) IngestStream(conn net.Conn) error {
	t.streamCh <- conn
	return nil
}

// Shutdown closes both listeners and waits for their loops. memberlist
// calls it after it has stopped reading the channels.
func (t *gossipTransport) Shutdown() error {
	t.closed.Store(true)
	t.tcp.Close()
	t.udp.Close()
	t.wg.Wait()
	return nil
}

func (t *gossipTransport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		conn, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.closed.Load() {
				return
			}
			// A transient accept error (too many open files): back off
			// rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Error("gossip transport: accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if t.cut.Load() {
			conn.Close()
			continue
		}
		t.streamCh <- conn
	}
}

func (t *gossipTransport) readLoop() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if t.closed.Load() {
				return
			}
			t.log.Error("gossip transport: read packet", "err", err)
			continue
		}
		if n == 0 || t.cut.Load() {
			continue
		}
		metrics.IncrCounterWithLabels([]string{"memberlist", "udp", "received"}, float32(n), t.labels)
		// memberlist may keep slices of a packet (decoded fields), so
		// each gets its own copy; the read buffer is reused.
		t.packetCh <- &memberlist.Packet{Buf: bytes.Clone(buf[:n]), From: from, Timestamp: now}
	}
}
