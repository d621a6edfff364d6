package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	of13 "github.com/contiv/libOpenflow/openflow13"

	"neutrino/southbound/openflow"
)

// OpenFlow constants the codec lacks.
const (
	onfExperimenter  = 0x4f4e4600 // ONF_EXPERIMENTER_ID (bundles in 1.3)
	nxExperimenter   = 0x00002320
	typeSetAsync     = 28
	roleNoChange     = 0
	roleEqual        = 1
	roleMaster       = 2
	roleSlave        = 3
	maxReplyBody     = 60000 // a multipart part stays under the 16-bit length
	errRoleStaleCode = 0     // OFPRRFC_STALE
)

// Switch is the OpenFlow side of a simulated ovs-vswitchd: one flow table
// (every table id in one map, keyed like OVS keys entries), the highest
// generation id any controller asked a role with, and the connections to
// the controllers the bridge's Controller rows name.
type Switch struct {
	log *slog.Logger

	mu     sync.Mutex
	dpid   uint64
	flows  map[openflow.Key]openflow.Flow
	maxGen uint64
	hasGen bool
	conns  map[*swConn]bool
	// Counters since start.
	flowMods   atomic.Uint64
	bundles    atomic.Uint64
	packetOuts atomic.Uint64
	changedCh  chan struct{}
}

// Stats are a switch's counters since it started.
type Stats struct {
	FlowMods, Bundles, PacketOuts uint64
}

// Stats returns the switch's counters.
func (s *Switch) Stats() Stats {
	return Stats{FlowMods: s.flowMods.Load(), Bundles: s.bundles.Load(), PacketOuts: s.packetOuts.Load()}
}

func newSwitch(log *slog.Logger) *Switch {
	return &Switch{log: log, flows: map[openflow.Key]openflow.Flow{}, conns: map[*swConn]bool{},
		changedCh: make(chan struct{})}
}

// Flows returns a copy of the flow table.
func (s *Switch) Flows() []openflow.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]openflow.Flow, 0, len(s.flows))
	for _, f := range s.flows {
		out = append(out, f)
	}
	return out
}

// FlowCount is the number of flows installed.
func (s *Switch) FlowCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.flows)
}

// Changed returns a channel closed at the next committed flow change.
func (s *Switch) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changedCh
}

// MasterCount is how many connections hold the MASTER role (0 or 1).
func (s *Switch) MasterCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.role == roleMaster {
			n++
		}
	}
	return n
}

// Connections is the number of open controller connections.
func (s *Switch) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// changed wakes waiters; called with s.mu held.
func (s *Switch) changed() {
	close(s.changedCh)
	s.changedCh = make(chan struct{})
}

// swConn is one controller connection.
type swConn struct {
	sw      *Switch
	nc      net.Conn
	wmu     sync.Mutex
	role    uint32 // under sw.mu
	bundles map[uint32][]openflow.FlowMod
	xid     atomic.Uint32
}

// dial keeps one controller target connected until ctx ends, redialling
// with a backoff of up to a second (the Controller rows' max_backoff).
func (s *Switch) dial(ctx context.Context, target string) {
	network, addr, ok := strings.Cut(target, ":")
	if !ok || (network != "tcp" && network != "unix") {
		s.log.Warn("unsupported controller target", "target", target)
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err == nil {
			backoff = 100 * time.Millisecond
			c := &swConn{sw: s, nc: nc, role: roleEqual, bundles: map[uint32][]openflow.FlowMod{}}
			stop := context.AfterFunc(ctx, func() { nc.Close() })
			err = c.serve()
			stop()
			nc.Close()
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Debug("controller connection ended", "target", target, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (c *swConn) send(msgs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	for _, m := range msgs {
		if _, err := c.nc.Write(m); err != nil {
			return err
		}
	}
	return nil
}

func header(typ uint8, length int, xid uint32) []byte {
	b := make([]byte, length)
	b[0] = of13.VERSION
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], uint16(length))
	binary.BigEndian.PutUint32(b[4:], xid)
	return b
}

// sendError answers msg with OFPT_ERROR(typ, code), echoing its start.
func (c *swConn) sendError(msg []byte, typ, code uint16) error {
	data := msg[:min(len(msg), 64)]
	b := header(of13.Type_Error, 12+len(data), binary.BigEndian.Uint32(msg[4:]))
	binary.BigEndian.PutUint16(b[8:], typ)
	binary.BigEndian.PutUint16(b[10:], code)
	copy(b[12:], data)
	return c.send(b)
}

func readMsg(r io.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	l := int(binary.BigEndian.Uint16(hdr[2:]))
	if l < 8 {
		return nil, fmt.Errorf("message length %d", l)
	}
	msg := make([]byte, l)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[8:])
	return msg, err
}

// serve runs one connection: HELLO, then messages in order until it ends.
func (c *swConn) serve() error {
	hello := header(of13.Type_Hello, 16, c.xid.Add(1))
	binary.BigEndian.PutUint16(hello[8:], 1) // version bitmap element
	binary.BigEndian.PutUint16(hello[10:], 8)
	binary.BigEndian.PutUint32(hello[12:], 1<<of13.VERSION)
	if err := c.send(hello); err != nil {
		return err
	}
	s := c.sw
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	for {
		msg, err := readMsg(c.nc)
		if err != nil {
			return err
		}
		if msg[0] != of13.VERSION && msg[1] != of13.Type_Hello {
			if err := c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_VERSION); err != nil {
				return err
			}
			continue
		}
		if err := c.handle(msg); err != nil {
			return err
		}
	}
}

func (c *swConn) handle(msg []byte) error {
	xid := binary.BigEndian.Uint32(msg[4:])
	switch msg[1] {
	case of13.Type_Hello, of13.Type_EchoReply, of13.Type_SetConfig, typeSetAsync:
		return nil
	case of13.Type_EchoRequest:
		rep := slices.Clone(msg)
		rep[1] = of13.Type_EchoReply
		return c.send(rep)
	case of13.Type_FeaturesRequest:
		b := header(of13.Type_FeaturesReply, 32, xid)
		c.sw.mu.Lock()
		binary.BigEndian.PutUint64(b[8:], c.sw.dpid)
		c.sw.mu.Unlock()
		b[20] = 254 // n_tables
		return c.send(b)
	case of13.Type_GetConfigRequest:
		b := header(of13.Type_GetConfigReply, 12, xid)
		binary.BigEndian.PutUint16(b[10:], 0xffff)
		return c.send(b)
	case of13.Type_BarrierRequest:
		// Every earlier message was handled before this one was read.
		return c.send(header(of13.Type_BarrierReply, 8, xid))
	case of13.Type_RoleRequest:
		return c.roleRequest(msg)
	case of13.Type_FlowMod:
		if c.isSlave() {
			return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_IS_SLAVE)
		}
		fm, err := openflow.DecodeFlowMod(msg)
		if err == nil {
			err = c.sw.apply([]openflow.FlowMod{fm})
		}
		if err != nil {
			return c.sendError(msg, of13.ET_FLOW_MOD_FAILED, 0)
		}
		c.sw.flowMods.Add(1)
		return nil
	case of13.Type_PacketOut:
		if c.isSlave() {
			return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_IS_SLAVE)
		}
		c.sw.packetOuts.Add(1)
		return nil
	case of13.Type_MultiPartRequest:
		return c.multipart(msg)
	case of13.Type_Experimenter:
		return c.experimenter(msg)
	}
	return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_TYPE)
}

func (c *swConn) isSlave() bool {
	c.sw.mu.Lock()
	defer c.sw.mu.Unlock()
	return c.role == roleSlave
}

// roleRequest follows ovs-vswitchd: a MASTER or SLAVE request whose
// generation id is older (in 64-bit serial arithmetic) than the highest
// seen is refused STALE; MASTER demotes the previous master to SLAVE.
func (c *swConn) roleRequest(msg []byte) error {
	if len(msg) < 24 {
		return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_LEN)
	}
	role := binary.BigEndian.Uint32(msg[8:])
	gen := binary.BigEndian.Uint64(msg[16:])
	s := c.sw
	s.mu.Lock()
	if role == roleMaster || role == roleSlave {
		if s.hasGen && int64(gen-s.maxGen) < 0 {
			s.mu.Unlock()
			return c.sendError(msg, of13.ET_ROLE_REQUEST_FAILED, errRoleStaleCode)
		}
		s.hasGen, s.maxGen = true, gen
	}
	if role != roleNoChange {
		if role == roleMaster {
			for o := range s.conns {
				if o != c && o.role == roleMaster {
					o.role = roleSlave
				}
			}
		}
		c.role = role
	}
	cur, g := c.role, s.maxGen
	s.mu.Unlock()
	b := header(of13.Type_RoleReply, 24, binary.BigEndian.Uint32(msg[4:]))
	binary.BigEndian.PutUint32(b[8:], cur)
	binary.BigEndian.PutUint64(b[16:], g)
	return c.send(b)
}

// multipart answers flow-stats requests (the only kind the controller
// sends) in parts below the 64 KiB message limit.
func (c *swConn) multipart(msg []byte) error {
	if len(msg) < 16 {
		return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_LEN)
	}
	xid := binary.BigEndian.Uint32(msg[4:])
	if typ := binary.BigEndian.Uint16(msg[8:]); typ != of13.MultipartType_Flow || len(msg) < 56 {
		return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_MULTIPART)
	}
	table := msg[16]
	cookie := binary.BigEndian.Uint64(msg[32:])
	mask := binary.BigEndian.Uint64(msg[40:])
	fm := slices.Clone(msg)
	// Reuse the flow-mod match decoder: same offset (48) in both.
	fm[1] = of13.Type_FlowMod
	fm[25] = openflow.CmdDelete
	sel, err := openflow.DecodeFlowMod(fm)
	if err != nil {
		return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_LEN)
	}
	var entries [][]byte
	for _, f := range c.sw.Flows() {
		if (table != openflow.TableAll && f.Table != table) || f.Cookie&mask != cookie&mask || !sel.Flow.Match.Subsumes(f.Match) {
			continue
		}
		e, err := openflow.EncodeFlowStats(f)
		if err != nil {
			return fmt.Errorf("encode flow %s: %w", f.String(), err)
		}
		entries = append(entries, e)
	}
	var parts [][]byte
	body := []byte{}
	flush := func(more bool) {
		b := header(of13.Type_MultiPartReply, 16, xid)
		binary.BigEndian.PutUint16(b[8:], of13.MultipartType_Flow)
		if more {
			binary.BigEndian.PutUint16(b[10:], 1)
		}
		b = append(b, body...)
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		parts = append(parts, b)
		body = []byte{}
	}
	for _, e := range entries {
		if len(body)+len(e) > maxReplyBody {
			flush(true)
		}
		body = append(body, e...)
	}
	flush(false)
	return c.send(parts...)
}

// experimenter handles ONF bundles and ignores Nicira's
// NXT_SET_CONTROLLER_ID.
func (c *swConn) experimenter(msg []byte) error {
	if len(msg) < 16 {
		return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_LEN)
	}
	exp := binary.BigEndian.Uint32(msg[8:])
	sub := binary.BigEndian.Uint32(msg[12:])
	switch {
	case exp == nxExperimenter && sub == 20:
		return nil
	case exp == onfExperimenter && sub == of13.Type_BundleCtrl && len(msg) >= 24:
		return c.bundleControl(msg)
	case exp == onfExperimenter && sub == of13.Type_BundleAdd && len(msg) >= 24+8:
		id := binary.BigEndian.Uint32(msg[16:])
		if c.isSlave() {
			return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_IS_SLAVE)
		}
		if _, ok := c.bundles[id]; !ok {
			return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_EXPERIMENTER)
		}
		fm, err := openflow.DecodeFlowMod(msg[24:])
		if err != nil {
			return c.sendError(msg, of13.ET_FLOW_MOD_FAILED, 0)
		}
		c.bundles[id] = append(c.bundles[id], fm)
		return nil
	}
	return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_EXPERIMENTER)
}

func (c *swConn) bundleControl(msg []byte) error {
	id := binary.BigEndian.Uint32(msg[16:])
	typ := binary.BigEndian.Uint16(msg[20:])
	switch typ {
	case of13.OFPBCT_OPEN_REQUEST:
		c.bundles[id] = []openflow.FlowMod{}
	case of13.OFPBCT_COMMIT_REQUEST:
		mods, ok := c.bundles[id]
		delete(c.bundles, id)
		if !ok {
			return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_EXPERIMENTER)
		}
		if c.isSlave() {
			return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_IS_SLAVE)
		}
		if err := c.sw.apply(mods); err != nil {
			return c.sendError(msg, of13.ET_FLOW_MOD_FAILED, 0)
		}
		c.sw.bundles.Add(1)
		c.sw.flowMods.Add(uint64(len(mods)))
	case of13.OFPBCT_DISCARD_REQUEST:
		delete(c.bundles, id)
	default:
		return c.sendError(msg, of13.ET_BAD_REQUEST, of13.BRC_BAD_EXPERIMENTER)
	}
	rep := slices.Clone(msg[:24])
	binary.BigEndian.PutUint16(rep[2:], 24)
	binary.BigEndian.PutUint16(rep[20:], typ+1)
	return c.send(rep)
}

var errBadMod = errors.New("sim: flow-mod refused")

// apply applies mods atomically: all or, on the first refused one, none.
func (s *Switch) apply(mods []openflow.FlowMod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range mods {
		if err := checkMod(m); err != nil {
			return err
		}
	}
	// Every mod was checked first and applying cannot fail, so under the
	// lock the table goes from before to after the whole batch at once.
	for _, m := range mods {
		applyMod(s.flows, m)
	}
	s.changed()
	return nil
}

func checkMod(m openflow.FlowMod) error {
	switch m.Command {
	case openflow.CmdAdd, openflow.CmdModifyStrict:
		if m.Flow.Table == openflow.TableAll {
			return fmt.Errorf("%w: add to table 255", errBadMod)
		}
	case openflow.CmdDelete, openflow.CmdDeleteStrict, of13.FC_MODIFY:
	default:
		return fmt.Errorf("%w: command %d", errBadMod, m.Command)
	}
	return nil
}

func applyMod(flows map[openflow.Key]openflow.Flow, m openflow.FlowMod) {
	cookieOK := func(f openflow.Flow) bool { return f.Cookie&m.CookieMask == m.Flow.Cookie&m.CookieMask }
	f := m.Flow
	f.Match = f.Match.Canonical()
	k := f.Key()
	switch m.Command {
	case openflow.CmdAdd:
		flows[k] = f
	case openflow.CmdModifyStrict:
		if old, ok := flows[k]; ok && cookieOK(old) {
			old.Actions = f.Actions
			flows[k] = old
		}
	case openflow.CmdDeleteStrict:
		if old, ok := flows[k]; ok && cookieOK(old) {
			delete(flows, k)
		}
	case openflow.CmdDelete, of13.FC_MODIFY:
		for key, old := range flows {
			if (m.Flow.Table == openflow.TableAll || old.Table == m.Flow.Table) && cookieOK(old) && m.Flow.Match.Subsumes(old.Match) {
				if m.Command == openflow.CmdDelete {
					delete(flows, key)
				} else {
					old.Actions = f.Actions
					flows[key] = old
				}
			}
		}
	}
}

// PacketIn sends a packet-in to the MASTER connection (or every EQUAL one
// when there is no master), as ovs-vswitchd does; it reports how many
// connections it went to.
func (s *Switch) PacketIn(p openflow.PacketIn) (int, error) {
	s.mu.Lock()
	var to []*swConn
	for c := range s.conns {
		if c.role == roleMaster || c.role == roleEqual {
			to = append(to, c)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, c := range to {
		b, err := openflow.EncodePacketIn(c.xid.Add(1), p)
		if err != nil {
			return n, err
		}
		if c.send(b) == nil {
			n++
		}
	}
	return n, nil
}

// HasFlow reports whether some installed flow satisfies pred (called under
// the switch's lock: pred must not call back into the switch).
func (s *Switch) HasFlow(pred func(*openflow.Flow) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.flows {
		if pred(&f) {
			return true
		}
	}
	return false
}
