package openflow

import (
	"context"
	"encoding/binary"
	"fmt"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// A chassis agent holds a second OpenFlow connection of its own to the
// local br-int (the bridge's service socket) to answer DHCP and router
// solicitations. It never writes flows: it names itself with a controller
// id, so only the flows' controller(id=N) actions reach it, asks for
// packet-ins, and sends packet-outs.

// nxastController is NXAST_CONTROLLER (Nicira action subtype 20).
const nxastController = 20

// Controller is the Nicira controller(reason, max_len, id) action: the
// packet goes to the connections whose controller id is ID (and not to
// the others, as output:CONTROLLER would).
type Controller struct {
	ID uint16
}

func (a Controller) String() string { return fmt.Sprintf("controller(id=%d)", a.ID) }
func (Controller) stage() int       { return stageApply }
func (a Controller) codec() (of13.Action, error) {
	return &rawCodecAction{b: a.encode()}, nil
}

// encode: type 0xffff, len 16, vendor, subtype, max_len, controller_id,
// reason (OFPR_ACTION), pad. max_len 0xffff sends the whole packet.
func (a Controller) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint16(b, 0xffff)
	binary.BigEndian.PutUint16(b[2:], 16)
	binary.BigEndian.PutUint32(b[4:], of13.NxExperimenterID)
	binary.BigEndian.PutUint16(b[8:], nxastController)
	binary.BigEndian.PutUint16(b[10:], 0xffff)
	binary.BigEndian.PutUint16(b[12:], a.ID)
	b[14] = ReasonAction
	return b
}

// decodeController reads NXAST_CONTROLLER; only the default max_len and
// reason map to a Controller (anything else stays raw and is replaced).
func decodeController(a []byte) Action {
	if len(a) < 16 || binary.BigEndian.Uint16(a[10:]) != 0xffff || a[14] != ReasonAction {
		return nil
	}
	return Controller{ID: binary.BigEndian.Uint16(a[12:])}
}

// rawCodecAction lets an action we encode by hand go through the codec's
// instruction list.
type rawCodecAction struct{ b []byte }

func (r *rawCodecAction) Len() uint16                    { return uint16(len(r.b)) }
func (r *rawCodecAction) MarshalBinary() ([]byte, error) { return r.b, nil }
func (r *rawCodecAction) UnmarshalBinary([]byte) error   { return nil }
func (r *rawCodecAction) Header() *of13.ActionHeader {
	return &of13.ActionHeader{Type: 0xffff, Length: uint16(len(r.b))}
}

// SetControllerID sends NXT_SET_CONTROLLER_ID: from now on the switch
// sends this connection the packet-ins of controller(id=id) actions.
func (c *Conn) SetControllerID(ctx context.Context, id uint16) error {
	return c.sendChecked(ctx, func(xid uint32) []byte {
		b := make([]byte, 24)
		b[0] = of13.VERSION
		b[1] = of13.Type_Experimenter
		binary.BigEndian.PutUint16(b[2:], 24)
		binary.BigEndian.PutUint32(b[4:], xid)
		binary.BigEndian.PutUint32(b[8:], of13.NxExperimenterID)
		binary.BigEndian.PutUint32(b[12:], 20) // NXT_SET_CONTROLLER_ID
		binary.BigEndian.PutUint16(b[22:], id)
		return b
	})
}

// EnablePacketIns sends OFPT_SET_ASYNC asking for packet-ins (table miss
// and action) in every role: a passive (service) connection gets no
// asynchronous message until it asks.
func (c *Conn) EnablePacketIns(ctx context.Context) error {
	return c.sendChecked(ctx, func(xid uint32) []byte {
		b := make([]byte, 32)
		b[0] = of13.VERSION
		b[1] = 28 // OFPT_SET_ASYNC
		binary.BigEndian.PutUint16(b[2:], 32)
		binary.BigEndian.PutUint32(b[4:], xid)
		mask := uint32(1<<ReasonNoMatch | 1<<ReasonAction)
		binary.BigEndian.PutUint32(b[8:], mask)  // packet-in, master/equal
		binary.BigEndian.PutUint32(b[12:], mask) // packet-in, slave
		return b
	})
}

// sendChecked sends a message that has no reply and returns the error the
// switch answers it with, if any (a barrier follows it).
func (c *Conn) sendChecked(ctx context.Context, build func(xid uint32) []byte) error {
	r, done := c.watchRange(1)
	defer done()
	if err := c.write(build(r.first)); err != nil {
		return err
	}
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	e := r.errs[r.first]
	c.mu.Unlock()
	if e != nil {
		return e
	}
	return nil
}

// SendPacketOut sends a packet-out without asking for a role and without
// waiting: for a service connection answering packets (an error the switch
// reports is logged as unsolicited). It never writes flows.
func (c *Conn) SendPacketOut(po PacketOut) error {
	b, err := po.encode(c.nextXid())
	if err != nil {
		return err
	}
	return c.write(b)
}
