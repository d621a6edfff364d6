package controller

import (
	"context"
	"errors"
	"fmt"

	"neutrino/southbound/openflow"
)

// ErrNoMaster means this server has no MASTER OpenFlow connection to the
// chassis (it does not lead, the chassis is not connected, or the role
// request has not been answered yet).
var ErrNoMaster = errors.New("controller: no master connection to chassis")

// PacketOut sends a packet-out to chassis over this server's MASTER
// connection to its br-int and waits until the switch has processed it.
func (c *Controller) PacketOut(ctx context.Context, chassis string, po openflow.PacketOut) error {
	c.mu.Lock()
	conn := c.conns[chassis]
	c.mu.Unlock()
	if conn == nil || !conn.IsMaster() {
		return fmt.Errorf("%w %s", ErrNoMaster, chassis)
	}
	if err := conn.PacketOut(ctx, po); err != nil {
		return fmt.Errorf("controller: packet-out to %s: %w", chassis, err)
	}
	return nil
}

// packetIns drains conn's packet-ins until the connection ends, handing
// those that arrive while it is MASTER to Config.OnPacketIn (OVS sends
// packet-ins to masters and equals, so one arriving before the role reply
// or after a demotion is dropped). A slow handler only fills the
// connection's bounded queue; the switch is still read.
func (c *Controller) packetIns(chassis string, conn *openflow.Conn) {
	for pi := range conn.PacketIns() {
		if !conn.IsMaster() {
			continue
		}
		c.onPacketIn(chassis, pi)
		if c.cfg.OnPacketIn != nil {
			c.cfg.OnPacketIn(chassis, pi)
		}
	}
}
