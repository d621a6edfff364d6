package openflow

import (
	"context"
	"encoding/binary"
	"fmt"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Role is an OpenFlow controller role (ofp_controller_role).
type Role uint32

// Controller roles.
const (
	RoleNoChange Role = 0
	RoleEqual    Role = 1
	RoleMaster   Role = 2
	RoleSlave    Role = 3
)

func (r Role) String() string {
	switch r {
	case RoleNoChange:
		return "NOCHANGE"
	case RoleEqual:
		return "EQUAL"
	case RoleMaster:
		return "MASTER"
	case RoleSlave:
		return "SLAVE"
	}
	return fmt.Sprintf("role(%d)", uint32(r))
}

// RequestRole sends ROLE_REQUEST(role, generationID) and returns the role
// and generation id of the ROLE_REPLY. The caller passes
// epoch<<32 | raft term, so a re-bootstrapped cluster is not stale
// (ovs-vswitchd remembers the highest id across reconnects). Only a
// ROLE_REPLY saying MASTER allows flow writes; a STALE refusal returns an
// error matching ErrStale and forbids writes.
func (c *Conn) RequestRole(ctx context.Context, role Role, generationID uint64) (Role, uint64, error) {
	if role != RoleMaster {
		// Giving up MASTER takes effect here and now, not when the reply
		// comes back.
		c.master.Store(false)
	}
	xid := c.nextXid()
	b := make([]byte, 24)
	b[0] = of13.VERSION
	b[1] = of13.Type_RoleRequest
	binary.BigEndian.PutUint16(b[2:], 24)
	binary.BigEndian.PutUint32(b[4:], xid)
	binary.BigEndian.PutUint32(b[8:], uint32(role))
	binary.BigEndian.PutUint64(b[16:], generationID)
	rep, err := c.request(ctx, xid, b)
	if err != nil {
		c.master.Store(false)
		return 0, 0, fmt.Errorf("openflow: role request %s gen %#x: %w", role, generationID, err)
	}
	got, gen, err := decodeRoleReply(rep.msg)
	if err != nil {
		c.master.Store(false)
		return 0, 0, err
	}
	c.master.Store(got == RoleMaster)
	c.logger().Info("openflow role", "role", got, "generation_id", fmt.Sprintf("%#x", gen))
	return got, gen, nil
}

// decodeRoleReply parses the 24-byte ROLE_REPLY (the codec has no decoder).
func decodeRoleReply(msg []byte) (Role, uint64, error) {
	if len(msg) < 24 || msg[1] != of13.Type_RoleReply {
		return 0, 0, fmt.Errorf("%w: role reply type %d length %d", ErrDecode, msg[1], len(msg))
	}
	return Role(binary.BigEndian.Uint32(msg[8:])), binary.BigEndian.Uint64(msg[16:]), nil
}

// IsMaster reports whether the last ROLE_REPLY said MASTER and nothing
// since took it away.
func (c *Conn) IsMaster() bool { return c.master.Load() }

// Demote forbids further flow writes at once, e.g. when this controller
// learns it lost leadership. Only a new RequestRole(MASTER) lifts it.
func (c *Conn) Demote() { c.master.Store(false) }

func (c *Conn) checkMaster() error {
	if !c.master.Load() {
		return ErrNotMaster
	}
	return nil
}
