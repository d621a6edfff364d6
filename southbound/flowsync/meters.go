package flowsync

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"neutrino/southbound/openflow"
)

// haveMeter is a meter the switch has: its band, and whether it has the
// shape our meter-mods write (kbit/s with burst, one drop band). A meter
// of another shape is modified to ours before a flow of ours counts on it.
type haveMeter struct {
	band openflow.MeterBand
	ours bool
}

// SetMeters replaces the desired meter table (meter id -> band). Call it
// before the flow change that starts or stops using a meter: a pass adds
// and changes meters before it installs flows and deletes unwanted ones
// after, so a flow never names a missing meter.
func (s *Syncer) SetMeters(m map[uint32]openflow.MeterBand) {
	s.mu.Lock()
	changed := !maps.Equal(s.desiredMeters, m)
	s.desiredMeters = maps.Clone(m)
	s.mu.Unlock()
	if changed {
		s.wake()
	}
}

// addMeters brings in the desired meters the switch lacks or has with
// another band. On a new connection (a new leader, a reconnect) it reads
// the switch's meters first and never clears them: OVS deletes the flows
// that use a deleted meter, and a takeover must leave the data path
// alone. A changed meter is modified in place (OFPMC_MODIFY keeps its
// flows); a stale one waits for removeMeters, after the flow pass.
func (s *Syncer) addMeters(ctx context.Context, conn *openflow.Conn) error {
	s.mu.Lock()
	want, have := maps.Clone(s.desiredMeters), s.meters
	s.mu.Unlock()
	if have == nil {
		var err error
		if have, err = s.readMeters(ctx, conn); err != nil {
			return err
		}
		s.mu.Lock()
		if s.conn == conn {
			s.meters = have
		}
		s.mu.Unlock()
	}
	var mods []openflow.MeterMod
	for id, band := range want {
		cur, ok := have[id]
		switch {
		case !ok:
			mods = append(mods, openflow.MeterMod{Command: openflow.MeterAdd, ID: id, Band: band})
		case !cur.ours || cur.band != band:
			mods = append(mods, openflow.MeterMod{Command: openflow.MeterModify, ID: id, Band: band})
		}
	}
	if len(mods) == 0 {
		return nil
	}
	if err := conn.SendMeters(ctx, mods); err != nil {
		s.mu.Lock()
		if s.conn == conn {
			s.meters = nil // unknown again: read them on the next pass
		}
		s.mu.Unlock()
		return fmt.Errorf("flowsync: meters: %w", err)
	}
	s.mu.Lock()
	if s.conn == conn && s.meters != nil {
		for _, m := range mods {
			s.meters[m.ID] = haveMeter{band: m.Band, ours: true}
		}
	}
	s.mu.Unlock()
	return nil
}

// readMeters returns the meters the switch has. A switch that refuses the
// request has no meter table: flows go on syncing there, and only a flow
// naming a meter would fail.
func (s *Syncer) readMeters(ctx context.Context, conn *openflow.Conn) (map[uint32]haveMeter, error) {
	ms, err := conn.DumpMeters(ctx)
	var refused *openflow.Error
	switch {
	case errors.As(err, &refused):
		s.log.Warn("the switch refused listing its meters", "err", err)
		return map[uint32]haveMeter{}, nil
	case err != nil:
		return nil, fmt.Errorf("flowsync: read meters: %w", err)
	}
	have := make(map[uint32]haveMeter, len(ms))
	for _, m := range ms {
		band, ours := m.Band()
		have[m.ID] = haveMeter{band: band, ours: ours}
	}
	return have, nil
}

// removeMeters deletes the meters the switch has and the desired table
// does not, once the flows using them are gone. It never deletes a meter
// that a flow still installed names (OVS would delete that flow with it);
// with the installed set unknown it deletes nothing this pass.
func (s *Syncer) removeMeters(ctx context.Context, conn *openflow.Conn) error {
	s.mu.Lock()
	var stale []uint32
	for id := range s.meters {
		if _, ok := s.desiredMeters[id]; !ok {
			stale = append(stale, id)
		}
	}
	var mods []openflow.MeterMod
	if len(stale) > 0 && s.installed != nil {
		inUse := s.metersInUse()
		for _, id := range stale {
			if _, used := inUse[id]; used {
				s.log.Warn("keeping a meter no longer desired: an installed flow uses it", "meter", id)
				continue
			}
			mods = append(mods, openflow.MeterMod{Command: openflow.MeterDelete, ID: id})
		}
	}
	s.mu.Unlock()
	if len(mods) == 0 {
		return nil
	}
	if err := conn.SendMeters(ctx, mods); err != nil {
		return fmt.Errorf("flowsync: delete meters: %w", err)
	}
	s.mu.Lock()
	if s.conn == conn && s.meters != nil {
		for _, m := range mods {
			delete(s.meters, m.ID)
		}
	}
	s.mu.Unlock()
	return nil
}

// metersInUse is the set of meters the installed flows name. Only called
// when a meter is to go (rare), so the walk over every flow is no cost
// of an ordinary pass. Call with s.mu held.
func (s *Syncer) metersInUse() map[uint32]struct{} {
	used := map[uint32]struct{}{}
	for _, e := range s.installed {
		for _, a := range e.flow.Actions {
			if m, ok := a.(openflow.Meter); ok {
				used[m.ID] = struct{}{}
			}
		}
	}
	return used
}
