package openflow

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Packet-in reasons (ofp_packet_in_reason).
const (
	ReasonNoMatch    uint8 = 0 // table miss
	ReasonAction     uint8 = 1 // output:CONTROLLER
	ReasonInvalidTTL uint8 = 2
)

// noBuffer is OFP_NO_BUFFER.
const noBuffer = 0xffffffff

// DefaultPacketInQueue is the default Options.PacketInQueue.
const DefaultPacketInQueue = 256

// PacketIn is an OFPT_PACKET_IN the switch sent. OVS puts the packet's
// pipeline fields into the match: in_port always, metadata, registers and
// tunnel fields only when they are non-zero (absent fields read as 0).
type PacketIn struct {
	BufferID uint32 // 0xffffffff: not buffered (OVS never buffers)
	TotalLen uint16 // length of the whole frame (Data may be shorter)
	Reason   uint8  // ReasonNoMatch, ReasonAction, ...
	TableID  uint8  // the table whose flow sent it
	Cookie   uint64 // that flow's cookie
	InPort   uint32 // PortController for a packet-out injected by a controller
	Metadata uint64
	Regs     [16]uint32 // NXM_NX_REG0..15 (and NXM xregs split into pairs)
	TunnelID uint64
	// Match is every field of the packet-in match as decoded (including
	// the ones copied into the fields above).
	Match Match
	// Data is the Ethernet frame.
	Data []byte
}

// Reg returns register i.
func (p *PacketIn) Reg(i int) uint32 { return p.Regs[i] }

// decodePacketIn parses an OpenFlow 1.3 PACKET_IN by hand (the codec's
// decoder panics on NXM fields it does not model).
func decodePacketIn(msg []byte) (PacketIn, error) {
	// header 8, buffer_id 4, total_len 2, reason 1, table_id 1, cookie 8,
	// match (padded to 8), 2 pad, data.
	if len(msg) < 32 || msg[1] != of13.Type_PacketIn {
		return PacketIn{}, fmt.Errorf("%w: packet-in length %d", ErrDecode, len(msg))
	}
	p := PacketIn{
		BufferID: binary.BigEndian.Uint32(msg[8:]),
		TotalLen: binary.BigEndian.Uint16(msg[12:]),
		Reason:   msg[14],
		TableID:  msg[15],
		Cookie:   binary.BigEndian.Uint64(msg[16:]),
	}
	m, n, err := decodeMatch(msg[24:])
	if err != nil {
		return PacketIn{}, fmt.Errorf("packet-in: %w", err)
	}
	off := 24 + n + 2
	if off > len(msg) {
		return PacketIn{}, fmt.Errorf("%w: packet-in truncated after match", ErrDecode)
	}
	p.Match = m
	p.Data = msg[off:] // msg is ours (readMsg allocates per message)
	for _, f := range m {
		if f.Mask != nil {
			continue
		}
		v := beUint(f.Value)
		switch {
		case f.Field == FieldInPort:
			p.InPort = uint32(v)
		case f.Field == FieldMetadata:
			p.Metadata = v
		case f.Field == FieldTunID:
			p.TunnelID = v
		case f.Field.Class() == of13.OXM_CLASS_NXM_1 && f.Field.Code() >= of13.NXM_NX_REG0 && f.Field.Code() < of13.NXM_NX_REG0+16:
			p.Regs[f.Field.Code()-of13.NXM_NX_REG0] = uint32(v)
		case f.Field.Class() == oxmClassPacketRegs && f.Field.Code() < 8:
			// OXM_OF_PKT_REG<i> (xreg i = reg 2i<<32 | reg 2i+1), used
			// from OpenFlow 1.5 on.
			i := int(f.Field.Code())
			p.Regs[2*i], p.Regs[2*i+1] = uint32(v>>32), uint32(v)
		}
	}
	return p, nil
}

// oxmClassPacketRegs is OFPXMC_PACKET_REGS (64-bit xregs).
const oxmClassPacketRegs = 0x8001

func beUint(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// PacketIns delivers the connection's packet-ins in arrival order. The
// channel is closed when the connection ends. The reader never blocks on
// it: when the queue (Options.PacketInQueue) is full, packet-ins are
// dropped and counted (PacketInDrops).
func (c *Conn) PacketIns() <-chan PacketIn { return c.packetIns }

// PacketInDrops is how many packet-ins were dropped because the queue was
// full or could not be decoded.
func (c *Conn) PacketInDrops() uint64 { return c.piDrops.Load() }

// PacketInsLimited is how many packet-ins were dropped unread because
// they came faster than Options.PacketInRate.
func (c *Conn) PacketInsLimited() uint64 { return c.piLimited.Load() }

// handlePacketIn runs on the read loop: rate-limit, decode and queue
// without blocking.
func (c *Conn) handlePacketIn(msg []byte) {
	if !c.piBucket.take(time.Now()) {
		if n := c.piLimited.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8, ...
			c.logger().Warn("openflow: packet-ins over the rate limit, dropping", "limited", n, "rate", c.opts.PacketInRate)
		}
		return
	}
	pi, err := decodePacketIn(msg)
	if err != nil {
		c.piDrops.Add(1)
		c.logger().Warn("openflow: undecodable packet-in", "err", err)
		return
	}
	select {
	case c.packetIns <- pi:
	default:
		if n := c.piDrops.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8, ...
			c.logger().Warn("openflow: packet-in queue full, dropping", "dropped", n)
		}
	}
}

// PacketOut is an OFPT_PACKET_OUT: Data (an Ethernet frame) is run
// through Actions as if it had arrived on InPort. Resubmit{Table: n}
// sends it through the pipeline from table n.
type PacketOut struct {
	// InPort defaults (0) to PortController.
	InPort  uint32
	Actions []Action
	Data    []byte
}

func (po *PacketOut) encode(xid uint32) ([]byte, error) {
	var acts []byte
	for _, a := range po.Actions {
		if a.stage() != stageApply {
			return nil, fmt.Errorf("%w: %s is an instruction, not allowed in a packet-out", ErrBadFlow, a.String())
		}
		ca, err := a.codec()
		if err != nil {
			return nil, err
		}
		b, err := ca.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("%w: encode %s: %w", ErrBadFlow, a.String(), err)
		}
		acts = append(acts, b...)
	}
	if len(po.Data) == 0 {
		return nil, fmt.Errorf("%w: packet-out without data", ErrBadFlow)
	}
	l := 24 + len(acts) + len(po.Data)
	if l > 0xffff {
		return nil, fmt.Errorf("%w: packet-out of %d bytes", ErrBadFlow, l)
	}
	in := po.InPort
	if in == 0 {
		in = PortController
	}
	b := make([]byte, 24, l)
	b[0] = of13.VERSION
	b[1] = of13.Type_PacketOut
	binary.BigEndian.PutUint16(b[2:], uint16(l))
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint32(b[8:], noBuffer)
	binary.BigEndian.PutUint32(b[12:], in)
	binary.BigEndian.PutUint16(b[16:], uint16(len(acts)))
	b = append(b, acts...)
	b = append(b, po.Data...)
	return b, nil
}

// PacketOut sends a packet-out and waits for a barrier, so an error the
// switch reports for it (bad action, bad port) is returned. Like flow
// writes it requires MASTER: a deposed leader must not announce addresses.
func (c *Conn) PacketOut(ctx context.Context, po PacketOut) error {
	if err := c.checkMaster(); err != nil {
		return err
	}
	r, done := c.watchRange(1)
	defer done()
	b, err := po.encode(r.first)
	if err != nil {
		return err
	}
	if err := c.write(b); err != nil {
		return err
	}
	// A barrier's reply comes after any error for the packet-out.
	if err := c.Barrier(ctx); err != nil {
		return fmt.Errorf("openflow: packet-out: %w", err)
	}
	c.mu.Lock()
	e := r.errs[r.first]
	c.mu.Unlock()
	if e != nil {
		return fmt.Errorf("openflow: packet-out: %w", e)
	}
	return nil
}

// tokenBucket admits rate events per second with bursts of burst; the zero
// value (rate 0) admits everything. Not safe for concurrent use.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64, burst int) tokenBucket {
	if rate <= 0 {
		return tokenBucket{}
	}
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *tokenBucket) take(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
