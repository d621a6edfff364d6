package openflow

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/contiv/libOpenflow/common"
	of13 "github.com/contiv/libOpenflow/openflow13"
)

// Meters (OpenFlow 1.3 meter table): QoS bandwidth limits. The userspace
// datapath has no tc, so ingress policing on an Interface does nothing
// there; a meter with one drop band is what limits a port's rate.

// Meter is the meter instruction: packets of the flow pass meter ID first.
type Meter struct{ ID uint32 }

// stageMeter puts the meter instruction first, where OVS wants it.
const stageMeter = -1

func (a Meter) String() string            { return fmt.Sprintf("meter:%d", a.ID) }
func (Meter) stage() int                  { return stageMeter }
func (Meter) codec() (of13.Action, error) { return nil, nil }

// Meter-mod commands.
const (
	MeterAdd    uint16 = 0
	MeterModify uint16 = 1
	MeterDelete uint16 = 2
)

// MeterAll names every meter in a delete.
const MeterAll uint32 = 0xffffffff

// MeterBand is a meter's one drop band: rate and burst in kbit/s and kbit.
type MeterBand struct {
	RateKbps  uint32
	BurstKbit uint32
}

// MeterMod is one meter-table change.
type MeterMod struct {
	Command uint16
	ID      uint32
	Band    MeterBand
}

const (
	meterFlagKbps  = 1 << 0
	meterFlagBurst = 1 << 2
	meterBandDrop  = 1
)

// encode writes the meter-mod by hand: ofp_meter_mod with one
// ofp_meter_band_drop (none for a delete).
func (m MeterMod) encode(xid uint32) []byte {
	n := 16
	if m.Command != MeterDelete {
		n += 16
	}
	b := make([]byte, n)
	h := common.Header{Version: of13.VERSION, Type: of13.Type_MeterMod, Length: uint16(n), Xid: xid}
	hb, _ := h.MarshalBinary()
	copy(b, hb)
	binary.BigEndian.PutUint16(b[8:], m.Command)
	binary.BigEndian.PutUint16(b[10:], meterFlagKbps|meterFlagBurst)
	binary.BigEndian.PutUint32(b[12:], m.ID)
	if m.Command != MeterDelete {
		binary.BigEndian.PutUint16(b[16:], meterBandDrop)
		binary.BigEndian.PutUint16(b[18:], 16)
		binary.BigEndian.PutUint32(b[20:], m.Band.RateKbps)
		binary.BigEndian.PutUint32(b[24:], m.Band.BurstKbit)
	}
	return b
}

// SendMeters writes meter-mods and a barrier and returns the switch's
// errors for them (a *MeterError).
func (c *Conn) SendMeters(ctx context.Context, mods []MeterMod) error {
	if err := c.checkMaster(); err != nil {
		return err
	}
	if len(mods) == 0 {
		return nil
	}
	r, release := c.watchRange(len(mods))
	defer release()
	msgs := make([][]byte, len(mods))
	for i, m := range mods {
		msgs[i] = m.encode(r.first + uint32(i))
	}
	if err := c.write(msgs...); err != nil {
		return err
	}
	if err := c.Barrier(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for xid, e := range r.errs {
		return &MeterError{Mod: mods[xid-r.first], Err: e}
	}
	return nil
}

// MeterError is the switch's refusal of a meter-mod.
type MeterError struct {
	Mod MeterMod
	Err *Error
}

func (e *MeterError) Error() string {
	return fmt.Sprintf("openflow: meter-mod %d of meter %d refused: %v", e.Mod.Command, e.Mod.ID, e.Err)
}

// MeterConfig is one meter as the switch reports it (OFPMP_METER_CONFIG).
type MeterConfig struct {
	ID    uint32
	Flags uint16
	Bands []MeterBandConfig
}

// MeterBandConfig is one band of a reported meter (ofp_meter_band_header).
type MeterBandConfig struct {
	Type        uint16
	Rate, Burst uint32
}

// Band returns the meter's band and true when the meter has the shape a
// MeterMod writes (kbit/s with burst, one drop band); anything else must
// be modified before it counts as ours.
func (m MeterConfig) Band() (MeterBand, bool) {
	if m.Flags != meterFlagKbps|meterFlagBurst || len(m.Bands) != 1 || m.Bands[0].Type != meterBandDrop {
		return MeterBand{}, false
	}
	return MeterBand{RateKbps: m.Bands[0].Rate, BurstKbit: m.Bands[0].Burst}, true
}

const (
	multipartMeterConfig = 10 // OFPMP_METER_CONFIG
	meterConfigLen       = 8  // ofp_meter_config without bands
	meterBandHeaderLen   = 12 // ofp_meter_band_header; bands pad it to 16
)

// DumpMeters returns every meter of the switch (OFPMP_METER_CONFIG),
// reassembling multipart replies. It needs no MASTER role: a controller
// taking a switch over reads the meters before it changes any.
func (c *Conn) DumpMeters(ctx context.Context) ([]MeterConfig, error) {
	xid := c.nextXid()
	// ofp_multipart_request (16 bytes) and ofp_meter_multipart_request
	// (meter_id, pad[4]).
	b := make([]byte, 24)
	h := common.Header{Version: of13.VERSION, Type: of13.Type_MultiPartRequest, Length: 24, Xid: xid}
	hb, _ := h.MarshalBinary()
	copy(b, hb)
	binary.BigEndian.PutUint16(b[8:], multipartMeterConfig)
	binary.BigEndian.PutUint32(b[16:], MeterAll)
	rep, err := c.request(ctx, xid, b)
	if err != nil {
		return nil, fmt.Errorf("openflow: dump meters: %w", err)
	}
	var out []MeterConfig
	for _, p := range rep.parts {
		if out, err = decodeMeterConfig(p, out); err != nil {
			return nil, fmt.Errorf("openflow: dump meters: %w", err)
		}
	}
	return out, nil
}

// decodeMeterConfig parses the body of a meter-config multipart reply:
// ofp_meter_config entries, each with its bands. Lengths come from the
// switch, so each is checked against what is left before it is used.
func decodeMeterConfig(b []byte, out []MeterConfig) ([]MeterConfig, error) {
	for len(b) > 0 {
		if len(b) < meterConfigLen {
			return out, fmt.Errorf("%w: short meter config (%d bytes)", ErrDecode, len(b))
		}
		l := int(binary.BigEndian.Uint16(b))
		if l < meterConfigLen || l > len(b) {
			return out, fmt.Errorf("%w: meter config length %d of %d bytes", ErrDecode, l, len(b))
		}
		m := MeterConfig{Flags: binary.BigEndian.Uint16(b[2:]), ID: binary.BigEndian.Uint32(b[4:])}
		for bands := b[meterConfigLen:l]; len(bands) > 0; {
			if len(bands) < meterBandHeaderLen {
				return out, fmt.Errorf("%w: meter %d: short band (%d bytes)", ErrDecode, m.ID, len(bands))
			}
			bl := int(binary.BigEndian.Uint16(bands[2:]))
			if bl < meterBandHeaderLen || bl > len(bands) {
				return out, fmt.Errorf("%w: meter %d: band length %d of %d bytes", ErrDecode, m.ID, bl, len(bands))
			}
			m.Bands = append(m.Bands, MeterBandConfig{
				Type:  binary.BigEndian.Uint16(bands),
				Rate:  binary.BigEndian.Uint32(bands[4:]),
				Burst: binary.BigEndian.Uint32(bands[8:]),
			})
			bands = bands[bl:]
		}
		out = append(out, m)
		b = b[l:]
	}
	return out, nil
}
