package openflow

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	of13 "github.com/contiv/libOpenflow/openflow13"
)

// batchSize is how many messages go out under one hold of the write lock,
// so echo replies and other requests interleave with a large bundle.
const batchSize = 512

const bundleFlags = of13.OFPBCT_ATOMIC | of13.OFPBCT_ORDERED

// Bundle applies mods atomically: OPEN, one BUNDLE_ADD per flow-mod, a
// barrier to collect errors of the adds, COMMIT, then a barrier. If any
// message is refused nothing of the bundle is installed and the returned
// *BundleError names every refused message. It refuses to start unless
// this connection is MASTER, and stops writing as soon as the switch says
// IS_SLAVE or the caller demotes it.
func (c *Conn) Bundle(ctx context.Context, mods []FlowMod) error {
	if err := c.checkMaster(); err != nil {
		return err
	}
	if len(mods) == 0 {
		return nil
	}
	id := c.bundleID.Add(1)
	if err := c.bundleControl(ctx, id, of13.OFPBCT_OPEN_REQUEST); err != nil {
		return &BundleError{Control: fmt.Errorf("open: %w", err)}
	}
	committed := false
	defer func() {
		if !committed {
			// Best effort: the switch also drops the bundle when the
			// connection closes. Not under ctx, which may be done.
			dctx, cancel := context.WithTimeout(context.Background(), c.opts.WriteTimeout)
			defer cancel()
			_ = c.bundleControl(dctx, id, of13.OFPBCT_DISCARD_REQUEST)
		}
	}()

	r, release := c.watchRange(len(mods))
	defer release()
	if err := c.sendMods(ctx, mods, r.first, func(xid uint32, fm []byte) ([]byte, error) {
		add := of13.NewBundleAdd(&of13.BundleAdd{BundleID: id, Flags: bundleFlags, Message: rawBytes(fm)})
		add.Header.Xid = xid // the inner flow-mod carries the same xid
		return add.MarshalBinary()
	}); err != nil {
		return err
	}
	// The adds are checked when they arrive, not at commit: wait for their
	// errors before deciding to commit.
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	if errs := c.rangeErrors(r, mods); len(errs) > 0 {
		return &BundleError{Messages: errs}
	}
	if err := c.checkMaster(); err != nil {
		return err
	}
	cerr := c.bundleControl(ctx, id, of13.OFPBCT_COMMIT_REQUEST)
	// A commit that fails is gone as well; never discard after commit.
	committed = true
	if errs := c.rangeErrors(r, mods); len(errs) > 0 || cerr != nil {
		return &BundleError{Messages: errs, Control: cerr}
	}
	return c.Barrier(ctx)
}

// Send writes mods as plain flow-mods (not atomic) and a barrier, and
// returns the per-message errors as a *BundleError. For small changes and
// tests; the sync engine uses Bundle.
func (c *Conn) Send(ctx context.Context, mods []FlowMod) error {
	if err := c.checkMaster(); err != nil {
		return err
	}
	if len(mods) == 0 {
		return nil
	}
	r, release := c.watchRange(len(mods))
	defer release()
	if err := c.sendMods(ctx, mods, r.first, func(_ uint32, fm []byte) ([]byte, error) { return fm, nil }); err != nil {
		return err
	}
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	if errs := c.rangeErrors(r, mods); len(errs) > 0 {
		return &BundleError{Messages: errs}
	}
	return nil
}

// sendMods encodes and writes mods in batches with xids first, first+1, ...
func (c *Conn) sendMods(ctx context.Context, mods []FlowMod, first uint32, wrap func(xid uint32, fm []byte) ([]byte, error)) error {
	batch := make([][]byte, 0, batchSize)
	for i := 0; i < len(mods); i += batchSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.checkMaster(); err != nil {
			return err
		}
		batch = batch[:0]
		for j := i; j < len(mods) && j < i+batchSize; j++ {
			xid := first + uint32(j)
			fm, err := mods[j].encode(xid)
			if err == nil {
				fm, err = wrap(xid, fm)
			}
			if err != nil {
				return fmt.Errorf("%w: message %d (%s): %w", ErrBadFlow, j, mods[j].Flow.String(), err)
			}
			batch = append(batch, fm)
		}
		if err := c.write(batch...); err != nil {
			return err
		}
	}
	return nil
}

// watchRange reserves n xids and routes errors for them into the range.
func (c *Conn) watchRange(n int) (*xidRange, func()) {
	first := c.reserveXids(n)
	r := &xidRange{first: first, last: first + uint32(n) - 1, errs: map[uint32]*Error{}}
	c.mu.Lock()
	c.ranges = append(c.ranges, r)
	c.mu.Unlock()
	return r, func() {
		c.mu.Lock()
		c.ranges = slices.DeleteFunc(c.ranges, func(x *xidRange) bool { return x == r })
		c.mu.Unlock()
	}
}

func (c *Conn) rangeErrors(r *xidRange, mods []FlowMod) []MessageError {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []MessageError
	for xid, e := range r.errs {
		i := int(xid - r.first)
		out = append(out, MessageError{Index: i, Mod: mods[i], Err: e})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Index < out[b].Index })
	return out
}

// bundleControl sends one bundle control request and checks its reply.
func (c *Conn) bundleControl(ctx context.Context, id uint32, typ uint16) error {
	msg := of13.NewBundleControl(&of13.BundleControl{BundleID: id, Type: typ, Flags: bundleFlags})
	msg.Header.Xid = c.nextXid()
	b, err := msg.MarshalBinary()
	if err != nil {
		return fmt.Errorf("openflow: encode bundle control: %w", err)
	}
	rep, err := c.request(ctx, msg.Header.Xid, b)
	if err != nil {
		return err
	}
	// experimenter header (16 bytes) + bundle_id, type, flags
	m := rep.msg
	if len(m) < 24 || m[1] != of13.Type_Experimenter || binary.BigEndian.Uint32(m[12:]) != of13.Type_BundleCtrl {
		return fmt.Errorf("%w: unexpected bundle control reply type %d", ErrDecode, m[1])
	}
	if got := binary.BigEndian.Uint16(m[20:]); got != typ+1 {
		return fmt.Errorf("%w: bundle control reply %d for request %d", ErrDecode, got, typ)
	}
	return nil
}
