package openflow

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contiv/libOpenflow/common"
	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Options tune a connection; the zero value is usable.
type Options struct {
	// EchoInterval: idle time after which we send an ECHO_REQUEST (5 s).
	EchoInterval time.Duration
	// EchoTimeout: silence after which the connection is declared dead
	// (3 × EchoInterval). A switch busy committing a huge bundle is silent
	// for a few seconds, so keep this well above that.
	EchoTimeout time.Duration
	// WriteTimeout bounds one write to the socket (30 s).
	WriteTimeout time.Duration
	// Logger for connection events (slog.Default()).
	Logger *slog.Logger
	// PacketInQueue is how many packet-ins wait for the reader of
	// PacketIns before new ones are dropped (DefaultPacketInQueue).
	PacketInQueue int
	// PacketInRate bounds the packet-ins per second this connection
	// decodes and delivers (a token bucket of PacketInBurst); the excess
	// is dropped unread and counted (PacketInsLimited), so one switch
	// flooding packet-ins costs the controller little and delays no other
	// switch. Zero or negative: no limit.
	PacketInRate  float64
	PacketInBurst int
	// TLS, when set, makes a Listener accept TLS only (OVS `ssl:`
	// controller targets); PeerCertificates then names the switch's
	// certificate for the caller to check. Nil is plaintext.
	TLS *tls.Config
}

func (o Options) withDefaults() Options {
	if o.EchoInterval <= 0 {
		o.EchoInterval = 5 * time.Second
	}
	if o.EchoTimeout <= 0 {
		o.EchoTimeout = 3 * o.EchoInterval
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.PacketInQueue <= 0 {
		o.PacketInQueue = DefaultPacketInQueue
	}
	if o.PacketInRate > 0 && o.PacketInBurst <= 0 {
		o.PacketInBurst = max(1, int(o.PacketInRate/5))
	}
	return o
}

// Listener accepts OpenFlow connections from switches (active controller
// targets such as unix:/path or tcp:ip:port on the switch side).
// Handshakes run concurrently (at most maxHandshakes at once), so a peer
// that connects and stays silent or sends garbage delays no other switch.
type Listener struct {
	ln     net.Listener
	opts   Options
	ctx    context.Context // cancelled by Close: ends handshakes in progress
	cancel context.CancelFunc
	start  sync.Once
	conns  chan *Conn
	dead   chan struct{} // closed when the accept loop ends; err says why
	err    error
}

// maxHandshakes bounds the handshakes in progress: each lasts at most
// handshakeTimeout, so silent peers beyond this only slow accepting down.
const maxHandshakes = 128

// handshakeTimeout bounds HELLO and FEATURES (and a TLS handshake).
const handshakeTimeout = 10 * time.Second

// Listen opens a listener; network is "unix" or "tcp".
func Listen(network, address string, opts Options) (*Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("openflow: listen %s %s: %w", network, address, err)
	}
	return NewListener(ln, opts), nil
}

// NewListener accepts OpenFlow connections on ln (e.g. one opened in
// another network namespace), with TLS when opts.TLS is set.
func NewListener(ln net.Listener, opts Options) *Listener {
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{ln: ln, opts: opts.withDefaults(), ctx: ctx, cancel: cancel,
		conns: make(chan *Conn), dead: make(chan struct{})}
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting and ends handshakes in progress; established
// connections stay open.
func (l *Listener) Close() error {
	l.cancel()
	return l.ln.Close()
}

// Accept waits for the next switch that completed the handshake. A peer
// that fails it (silent, garbage, not OpenFlow 1.3) is logged and dropped.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.dead:
		return nil, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Listener) acceptLoop() {
	sem := make(chan struct{}, maxHandshakes)
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			l.err = fmt.Errorf("openflow: accept: %w", err)
			close(l.dead)
			return
		}
		select {
		case sem <- struct{}{}:
		case <-l.ctx.Done():
			nc.Close()
			continue
		}
		go func() {
			defer func() { <-sem }()
			c, err := Handshake(l.ctx, nc, l.opts)
			if err != nil {
				if l.ctx.Err() == nil {
					l.opts.Logger.Warn("openflow handshake failed, peer dropped", "remote", nc.RemoteAddr(), "err", err)
				}
				return
			}
			select {
			case l.conns <- c:
			case <-l.ctx.Done():
				c.Close()
			}
		}()
	}
}

// Conn is one OpenFlow 1.3 connection to a switch. One goroutine reads and
// dispatches messages in arrival order; any goroutine may send.
type Conn struct {
	nc   net.Conn
	opts Options
	// logp is the connection's logger; the handshake replaces it (adding
	// the datapath id) after the read loop started, which logs too.
	logp atomic.Pointer[slog.Logger]
	dpid uint64

	wmu sync.Mutex // serialises writers; held per batch, not per bundle
	bw  *bufio.Writer

	xid      atomic.Uint32
	bundleID atomic.Uint32
	lastRead atomic.Int64 // unix nanos of the last message received

	// master is true only between a ROLE_REPLY(MASTER) and the first sign
	// we lost it (STALE, IS_SLAVE, Demote). Writes check it.
	master atomic.Bool

	// packetIns is written only by the read loop, which closes it.
	packetIns chan PacketIn
	piDrops   atomic.Uint64
	piLimited atomic.Uint64
	piBucket  tokenBucket // read loop only

	mu      sync.Mutex
	pending map[uint32]*call
	ranges  []*xidRange

	done     chan struct{}
	closeErr error
	once     sync.Once
}

// call waits for the reply to one request; multipart parts accumulate.
type call struct {
	ch    chan reply
	parts [][]byte
}

type reply struct {
	msg   []byte   // the final message
	parts [][]byte // multipart bodies in order (for multipart replies)
	err   error
}

// xidRange collects errors for a block of xids (the messages of a bundle),
// which get no reply unless they fail.
type xidRange struct {
	first, last uint32
	errs        map[uint32]*Error
}

// connBufSize sizes a connection's read and write buffers: one message at
// most (its length is 16 bits). A leader holds a connection per chassis,
// and at 256 KiB each the buffers were a quarter of its live heap at 100
// simulated chassis; writes longer than the buffer go straight through.
const connBufSize = 64 << 10

// Handshake runs HELLO and FEATURES over nc and starts the reader.
func Handshake(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	c := &Conn{
		nc:        nc,
		opts:      opts,
		bw:        bufio.NewWriterSize(nc, connBufSize),
		pending:   map[uint32]*call{},
		done:      make(chan struct{}),
		packetIns: make(chan PacketIn, opts.PacketInQueue),
		piBucket:  newTokenBucket(opts.PacketInRate, opts.PacketInBurst),
	}
	c.logp.Store(opts.Logger)
	c.lastRead.Store(time.Now().UnixNano())
	br := bufio.NewReaderSize(nc, connBufSize)

	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if tc, ok := nc.(*tls.Conn); ok {
		// The TLS handshake first, bounded like the OpenFlow one: a
		// switch with a certificate we refuse goes no further.
		if err := tc.HandshakeContext(hctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
		}
	}
	stop := context.AfterFunc(hctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	hello, err := common.NewHello(of13.VERSION)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	// Offer 1.3 only: we speak no other version.
	hello.Elements = []common.HelloElem{&common.HelloElemVersionBitmap{
		HelloElemHeader: common.HelloElemHeader{Type: common.HelloElemType_VersionBitmap, Length: 8},
		Bitmaps:         []uint32{1 << of13.VERSION},
	}}
	hello.Header.Xid = c.nextXid()
	hb, _ := hello.MarshalBinary()
	if err := c.write(hb); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: send hello: %w", ErrHandshake, err)
	}
	msg, err := readMsg(br)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: read hello: %w", ErrHandshake, err)
	}
	if msg[1] != of13.Type_Hello || !helloAccepts13(msg) {
		nc.Close()
		return nil, fmt.Errorf("%w: peer does not speak OpenFlow 1.3 (version %d type %d)", ErrHandshake, msg[0], msg[1])
	}
	stop()
	_ = nc.SetReadDeadline(time.Time{})

	go c.readLoop(br)

	freq := of13.NewFeaturesRequest()
	freq.Xid = c.nextXid()
	fb, _ := freq.MarshalBinary()
	rep, err := c.request(hctx, freq.Xid, fb)
	if err != nil {
		c.closeWith(err)
		return nil, fmt.Errorf("%w: features: %w", ErrHandshake, err)
	}
	if len(rep.msg) < 16 {
		c.closeWith(ErrDecode)
		return nil, fmt.Errorf("%w: short features reply", ErrHandshake)
	}
	c.dpid = binary.BigEndian.Uint64(rep.msg[8:16])
	// Keepalive starts only now: ovs-vswitchd may take a few hundred ms to
	// answer the first request of a new connection.
	go c.keepalive()
	log := c.logger().With("dpid", fmt.Sprintf("%016x", c.dpid))
	c.logp.Store(log)
	log.Debug("openflow connected", "remote", nc.RemoteAddr())
	return c, nil
}

// helloAccepts13 reads the peer's HELLO: a version bitmap wins over the
// header version (OpenFlow 1.3.1 §6.3.1).
func helloAccepts13(msg []byte) bool {
	for n := 8; n+4 <= len(msg); {
		typ := binary.BigEndian.Uint16(msg[n:])
		l := int(binary.BigEndian.Uint16(msg[n+2:]))
		if l < 4 || n+l > len(msg) {
			break
		}
		if typ == common.HelloElemType_VersionBitmap && l >= 8 {
			return binary.BigEndian.Uint32(msg[n+4:])&(1<<of13.VERSION) != 0
		}
		n += (l + 7) / 8 * 8
	}
	return msg[0] >= of13.VERSION
}

func readMsg(br *bufio.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	l := int(binary.BigEndian.Uint16(hdr[2:]))
	if l < 8 {
		return nil, fmt.Errorf("%w: message length %d", ErrDecode, l)
	}
	msg := make([]byte, l)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(br, msg[8:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// DatapathID is the switch's datapath id from FEATURES_REPLY.
func (c *Conn) DatapathID() uint64 { return c.dpid }

// PeerCertificates is the switch's TLS certificate chain, leaf first; nil
// over plaintext.
func (c *Conn) PeerCertificates() []*x509.Certificate {
	if tc, ok := c.nc.(*tls.Conn); ok {
		return tc.ConnectionState().PeerCertificates
	}
	return nil
}

func (c *Conn) logger() *slog.Logger { return c.logp.Load() }

// Done is closed when the connection ends.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while open).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.closeErr
	default:
		return nil
	}
}

// Close ends the connection.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

func (c *Conn) closeWith(err error) {
	c.once.Do(func() {
		c.closeErr = err
		c.master.Store(false)
		_ = c.nc.Close()
		close(c.done)
		c.mu.Lock()
		for xid, cl := range c.pending {
			cl.ch <- reply{err: fmt.Errorf("%w: %w", ErrClosed, err)}
			delete(c.pending, xid)
		}
		c.mu.Unlock()
	})
}

func (c *Conn) nextXid() uint32 {
	for {
		if x := c.xid.Add(1); x != 0 {
			return x
		}
	}
}

// reserveXids hands out n consecutive non-zero xids.
func (c *Conn) reserveXids(n int) uint32 {
	for {
		last := c.xid.Add(uint32(n))
		first := last - uint32(n) + 1
		if first != 0 && first <= last {
			return first
		}
	}
}

// write sends whole messages under the write lock and flushes.
func (c *Conn) write(msgs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	for _, m := range msgs {
		if _, err := c.bw.Write(m); err != nil {
			return c.writeFailed(err)
		}
	}
	if err := c.bw.Flush(); err != nil {
		return c.writeFailed(err)
	}
	return nil
}

func (c *Conn) writeFailed(err error) error {
	err = fmt.Errorf("openflow: write: %w", err)
	c.closeWith(err)
	return err
}

// request sends msg (whose xid is xid) and waits for the reply with that
// xid: the reply itself, an OFPT_ERROR, or all parts of a multipart reply.
func (c *Conn) request(ctx context.Context, xid uint32, msg []byte) (reply, error) {
	cl := &call{ch: make(chan reply, 1)}
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return reply{}, fmt.Errorf("%w: %w", ErrClosed, c.closeErr)
	default:
	}
	c.pending[xid] = cl
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, xid)
		c.mu.Unlock()
	}()
	if err := c.write(msg); err != nil {
		return reply{}, err
	}
	select {
	case r := <-cl.ch:
		return r, r.err
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

func (c *Conn) readLoop(br *bufio.Reader) {
	defer close(c.packetIns)
	for {
		msg, err := readMsg(br)
		if err != nil {
			c.closeWith(fmt.Errorf("openflow: read: %w", err))
			return
		}
		if msg[0] != of13.VERSION {
			// We negotiated 1.3: anything else is a broken or hostile
			// peer, and its framing cannot be trusted any more.
			c.closeWith(fmt.Errorf("openflow: %w: message of version %d (type %d) after negotiating 1.3", ErrDecode, msg[0], msg[1]))
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.dispatch(msg)
	}
}

const multipartMore = 1 // OFPMPF_REPLY_MORE

func (c *Conn) dispatch(msg []byte) {
	xid := binary.BigEndian.Uint32(msg[4:])
	switch msg[1] {
	case of13.Type_EchoRequest:
		rep := slices.Clone(msg)
		rep[1] = of13.Type_EchoReply
		// Not from this goroutine: a writer holding the lock on a full
		// socket must not stop us reading.
		go func() { _ = c.write(rep) }()
		return
	case of13.Type_Error:
		c.dispatchError(xid, msg)
		return
	case of13.Type_MultiPartReply:
		c.mu.Lock()
		cl := c.pending[xid]
		if cl != nil && len(msg) >= 16 {
			cl.parts = append(cl.parts, msg[16:])
			if binary.BigEndian.Uint16(msg[10:])&multipartMore == 0 {
				cl.ch <- reply{msg: msg, parts: cl.parts}
				delete(c.pending, xid)
			}
		}
		c.mu.Unlock()
		return
	case of13.Type_RoleReply:
		// Trust a ROLE_REPLY only as the answer to our request; the
		// requester updates c.master.
	case of13.Type_PacketIn:
		c.handlePacketIn(msg)
		return
	case of13.Type_PortStatus, of13.Type_FlowRemoved:
		return
	}
	c.mu.Lock()
	if cl := c.pending[xid]; cl != nil {
		cl.ch <- reply{msg: msg}
		delete(c.pending, xid)
	}
	c.mu.Unlock()
}

func (c *Conn) dispatchError(xid uint32, msg []byte) {
	if len(msg) < 12 {
		return
	}
	e := &Error{Type: binary.BigEndian.Uint16(msg[8:]), Code: binary.BigEndian.Uint16(msg[10:]), Xid: xid}
	data := msg[12:]
	if e.Type == of13.ET_EXPERIMENTER && len(data) >= 4 {
		data = data[4:] // experimenter id
	}
	e.Data = slices.Clone(data)
	if errors.Is(e, ErrNotMaster) || errors.Is(e, ErrStale) {
		// Stop writing at once: whatever else is in flight will be refused.
		if c.master.Swap(false) {
			c.logger().Warn("openflow: lost master role", "err", e)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.pending[xid]; cl != nil {
		cl.ch <- reply{msg: msg, err: e}
		delete(c.pending, xid)
		return
	}
	for _, r := range c.ranges {
		if xid >= r.first && xid <= r.last {
			r.errs[xid] = e
			return
		}
	}
	c.logger().Warn("openflow: unsolicited error", "xid", xid, "err", e)
}

func (c *Conn) keepalive() {
	t := time.NewTicker(c.opts.EchoInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, c.lastRead.Load()))
		if idle > c.opts.EchoTimeout {
			c.logger().Warn("openflow: switch silent, closing", "idle", idle)
			c.closeWith(ErrEchoTimeout)
			return
		}
		if idle > c.opts.EchoInterval {
			h := of13.NewEchoRequest()
			h.Xid = c.nextXid()
			b, _ := h.MarshalBinary()
			// The reply only refreshes lastRead; nobody waits for it.
			_ = c.write(b)
		}
	}
}

// Barrier waits until the switch has processed every message sent before.
func (c *Conn) Barrier(ctx context.Context) error {
	h := common.Header{Version: of13.VERSION, Type: of13.Type_BarrierRequest, Length: 8, Xid: c.nextXid()}
	b, _ := h.MarshalBinary()
	_, err := c.request(ctx, h.Xid, b)
	if err != nil {
		return fmt.Errorf("openflow: barrier: %w", err)
	}
	return nil
}

// DumpFlows returns the flows of table (TableAll for every table) whose
// cookie matches cookie under cookieMask, reassembling multipart replies.
func (c *Conn) DumpFlows(ctx context.Context, table uint8, cookie, cookieMask uint64) ([]Flow, error) {
	fsr := of13.NewFlowStatsRequest()
	fsr.TableId = table
	fsr.Cookie = cookie
	fsr.CookieMask = cookieMask
	req := &of13.MultipartRequest{Header: of13.NewOfp13Header(), Type: of13.MultipartType_Flow, Body: fsr}
	req.Header.Type = of13.Type_MultiPartRequest
	req.Header.Xid = c.nextXid()
	b, err := req.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("openflow: encode flow stats request: %w", err)
	}
	rep, err := c.request(ctx, req.Header.Xid, b)
	if err != nil {
		return nil, fmt.Errorf("openflow: dump flows: %w", err)
	}
	var flows []Flow
	for _, p := range rep.parts {
		if flows, err = decodeFlowStats(p, flows); err != nil {
			return nil, fmt.Errorf("openflow: dump flows: %w", err)
		}
	}
	return flows, nil
}
