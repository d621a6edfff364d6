// Package flowsync keeps one switch's OpenFlow table equal to a desired
// flow set, level-triggered, without caring what the flows mean.
//
// A Syncer holds the desired set (replaced whole with SetDesired or changed
// with ApplyDelta, each carrying a revision) and the switch's MASTER
// connection (SetConn). On every new connection it dumps the flows whose
// cookie carries our magic, diffs them against the desired set by
// openflow.Key (table, priority, canonical match) and applies the
// difference: missing or different (actions or cookie) -> add, which
// replaces the entry in place; extra -> strict delete. After that it
// remembers what it installed, so later changes are diffs without dumping.
// Every change goes to the switch in one atomic bundle followed by a
// barrier; it never deletes everything to re-add, and never clears a table.
// Failures requeue with exponential backoff.
//
// # Cookies
//
// Every flow's cookie names its owner and the leader round that installed
// it:
//
//		63      56 55           40 39      32 31                 0
//		+---------+---------------+----------+--------------------+
//		|  0x4e   |     round     |   kind   |     object key     |
//		+---------+---------------+----------+--------------------+
//
//	  - magic 0x4e ('N'): the flow is ours; dumps filter on it and flows
//	    without it (someone else's) are never touched.
//	  - round: the leader round (Options.Round, e.g. the low 16 bits of the
//	    Raft term); stamped by the engine, not by the compiler.
//	  - kind: the kind of object the flow was compiled from (network, port,
//	    router, security group, ...), numbered in docs/pipeline.md.
//	  - object key: a number unique among the objects of that kind (the
//	    pipeline uses the datapath key the state machine allocated to the
//	    object; see Cookie), so a cookie names exactly one object.
//
// The compiler sets kind and key (Cookie); the engine sets magic and round.
//
// # Takeover by a new round
//
// A new leader uses a new round. On connecting it finds flows of the old
// round: those whose key it also wants differ in cookie, so the first
// bundle re-adds them with the new cookie (an add replaces the entry in
// place, so the switch never lacks it); flows of the same round it no
// longer wants are deleted strictly in that bundle too. Only after that
// bundle is committed does a second bundle prune what is left of older
// rounds, by cookie and mask (magic|round), never by clearing a table. A
// controller of the same round that reconnects finds equal cookies and sends
// only the real difference.
//
// # Realized revisions
//
// Realized reports the highest revision whose flows the switch has
// acknowledged (bundle committed, barrier answered); WaitRealized blocks
// until a revision is realized, for the API's ?wait=realized.
package flowsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"neutrino/southbound/openflow"
)

// Options configure a Syncer.
type Options struct {
	// Round is this leader's round, stamped into every cookie.
	Round uint16
	// MinBackoff and MaxBackoff bound the retry delay after a failure
	// (100 ms and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// ResyncInterval, if set, re-dumps the switch that often to repair
	// changes made behind our back.
	ResyncInterval time.Duration
	// DumpSlots, if set, is shared by the syncers of many switches and
	// bounds how many of them run a pass that starts from a dump (a new
	// connection's: dump, diff, install, prune) at once: a new leader
	// taking over a hundred switches at once queued their dumps' decoding
	// in front of Raft's goroutines (docs/architecture.md, "Simulator").
	// A pass holds a slot until it ends; the connection's echo timeout
	// bounds a silent switch.
	DumpSlots chan struct{}
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// ErrDuplicateKey: a desired set holds two flows with the same key.
var ErrDuplicateKey = errors.New("flowsync: duplicate flow key")

// entry is a desired or installed flow. It keeps no formatted actions:
// diff compares actions element-wise first (Flow.SameActions) and formats
// only what that does not find equal (a flow dumped from the switch in
// another spelling). Formatting every added flow on every chassis, and
// keeping the string, cost the leader CPU and about 100 bytes a flow on
// each chassis.
type entry struct {
	flow openflow.Flow
}

func newEntry(f openflow.Flow) entry { return entry{flow: f} }

// Syncer keeps one switch in sync. Its methods are safe for concurrent use;
// Run does the work.
type Syncer struct {
	opts Options
	log  *slog.Logger
	kick chan struct{}

	mu         sync.Mutex
	desired    map[openflow.Key]entry
	desiredRev uint64
	// hasDesired: SetDesired was called. Until then an empty desired set
	// means "not compiled yet", not "no flows": a new leader whose
	// MASTER connection comes before its first compile must not prune
	// the old round's flows (the switch would run empty until then).
	hasDesired bool
	dirty      map[openflow.Key]struct{} // keys changed since the last pass
	full       bool                      // diff every key, not just dirty ones
	conn       *openflow.Conn
	installed  map[openflow.Key]entry // nil: unknown, dump first
	realized   uint64
	realizedCh chan struct{} // closed and replaced whenever realized moves
	lastErr    error
	stats      Stats

	// Meters (QoS bandwidth limits, meters.go): the desired meter table
	// and what the switch has (nil: unknown, read from the switch first).
	desiredMeters map[uint32]openflow.MeterBand
	meters        map[uint32]haveMeter
}

// Stats counts what a Syncer did, for tests and metrics.
type Stats struct {
	Dumps, Bundles, Added, Deleted, Pruned int
	// Unready counts passes that left the switch alone because no
	// desired set had been given yet.
	Unready int
	// Errors counts passes that failed with a connection (dump, bundle)
	// and were retried; passes parked for want of a MASTER connection
	// are not errors.
	Errors int
}

// New returns a Syncer with an empty desired set and no connection.
func New(opts Options) *Syncer {
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Syncer{
		opts:       opts,
		log:        opts.Logger.With("component", "flowsync"),
		kick:       make(chan struct{}, 1),
		desired:    map[openflow.Key]entry{},
		dirty:      map[openflow.Key]struct{}{},
		realizedCh: make(chan struct{}),
	}
}

func (s *Syncer) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// SetDesired replaces the desired set with flows at revision rev. Cookies
// need only the owner bits (Cookie); magic and round are added here.
func (s *Syncer) SetDesired(rev uint64, flows []openflow.Flow) error {
	return s.SetDesiredKeyed(rev, flows, flowKeys(flows))
}

// SetDesiredKeyed is SetDesired with each flow's key given (keys[i] is
// flows[i].Key()), as a compiler holds them.
func (s *Syncer) SetDesiredKeyed(rev uint64, flows []openflow.Flow, keys []openflow.Key) error {
	if len(keys) != len(flows) {
		return fmt.Errorf("flowsync: %d keys for %d flows", len(keys), len(flows))
	}
	m := make(map[openflow.Key]entry, len(flows))
	for i, f := range flows {
		f.Cookie = stamp(f.Cookie, s.opts.Round)
		k := keys[i]
		if _, dup := m[k]; dup {
			return fmt.Errorf("%w: %s", ErrDuplicateKey, f.String())
		}
		m[k] = newEntry(f)
	}
	s.mu.Lock()
	s.desired, s.desiredRev, s.full, s.hasDesired = m, rev, true, true
	clear(s.dirty)
	s.mu.Unlock()
	s.wake()
	return nil
}

// ApplyDelta changes the desired set at revision rev: remove the flows
// with the given keys, then add (or replace) flows.
func (s *Syncer) ApplyDelta(rev uint64, add []openflow.Flow, remove []openflow.Key) {
	s.ApplyDeltaKeyed(rev, add, flowKeys(add), remove)
}

// flowKeys are the flows' keys, in order.
func flowKeys(flows []openflow.Flow) []openflow.Key {
	keys := make([]openflow.Key, len(flows))
	for i := range flows {
		keys[i] = flows[i].Key()
	}
	return keys
}

// ApplyDeltaKeyed is ApplyDelta with the added flows' keys given
// (addKeys[i] is add[i].Key()), as a compiler holds them. It panics when
// their lengths differ.
func (s *Syncer) ApplyDeltaKeyed(rev uint64, add []openflow.Flow, addKeys []openflow.Key, remove []openflow.Key) {
	if len(addKeys) != len(add) {
		panic(fmt.Sprintf("flowsync: %d keys for %d flows", len(addKeys), len(add)))
	}
	es := make([]entry, len(add))
	for i, f := range add {
		f.Cookie = stamp(f.Cookie, s.opts.Round)
		es[i] = newEntry(f)
	}
	s.mu.Lock()
	for _, k := range remove {
		delete(s.desired, k)
		s.dirty[k] = struct{}{}
	}
	for i, k := range addKeys {
		s.desired[k] = es[i]
		s.dirty[k] = struct{}{}
	}
	s.desiredRev = rev
	s.mu.Unlock()
	s.wake()
}

// SetConn hands the Syncer the switch's connection, which the caller has
// made MASTER (RequestRole). It forgets what it knew of the switch and
// dumps it on the next pass. nil detaches.
func (s *Syncer) SetConn(c *openflow.Conn) {
	s.mu.Lock()
	s.conn, s.installed, s.meters = c, nil, nil
	s.mu.Unlock()
	s.wake()
}

// Realized returns the highest revision the switch has acknowledged.
func (s *Syncer) Realized() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.realized
}

// WaitRealized blocks until revision rev (or a later one) is realized.
func (s *Syncer) WaitRealized(ctx context.Context, rev uint64) error {
	for {
		s.mu.Lock()
		done, ch := s.realized >= rev, s.realizedCh
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("flowsync: revision %d not realized: %w", rev, ctx.Err())
		}
	}
}

// Err returns the error of the last failed pass, nil after a success.
func (s *Syncer) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Desired is the number of flows in the desired set.
func (s *Syncer) Desired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.desired)
}

// Stats returns counters of the work done so far.
func (s *Syncer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Run syncs until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	backoff := s.opts.MinBackoff
	var retry <-chan time.Time
	var resync <-chan time.Time
	if s.opts.ResyncInterval > 0 {
		t := time.NewTicker(s.opts.ResyncInterval)
		defer t.Stop()
		resync = t.C
	}
	for {
		s.mu.Lock()
		conn := s.conn
		s.mu.Unlock()
		var connDone <-chan struct{}
		if conn != nil {
			connDone = conn.Done()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry:
		case <-connDone:
			s.mu.Lock()
			if s.conn == conn {
				s.conn, s.installed, s.meters = nil, nil, nil
			}
			s.mu.Unlock()
			continue
		case <-resync:
			// Re-read meters too: one small multipart, and a meter
			// deleted by hand (which took its flows along) comes back.
			s.mu.Lock()
			s.installed, s.meters = nil, nil
			s.mu.Unlock()
		}
		retry = nil
		err := s.pass(ctx)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		switch {
		case err == nil:
			backoff = s.opts.MinBackoff
		case errors.Is(err, openflow.ErrNotMaster), errors.Is(err, openflow.ErrStale), errors.Is(err, errNoConn):
			// Retrying cannot help: wait for SetConn with a master
			// connection.
			s.log.Warn("flow sync parked", "err", err)
		case ctx.Err() != nil:
			return
		default:
			s.mu.Lock()
			s.stats.Errors++
			s.mu.Unlock()
			s.log.Warn("flow sync failed, retrying", "err", err, "backoff", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, s.opts.MaxBackoff)
		}
	}
}

var errNoConn = errors.New("flowsync: no connection")

// pass brings the switch to the desired set once.
func (s *Syncer) pass(ctx context.Context) error {
	s.mu.Lock()
	conn, ready := s.conn, s.hasDesired
	if conn != nil && !ready {
		s.stats.Unready++
	}
	s.mu.Unlock()
	if conn == nil {
		return errNoConn
	}
	if !ready {
		return nil // SetDesired wakes the next pass
	}
	s.mu.Lock()
	needDump := s.installed == nil
	s.mu.Unlock()
	if needDump && s.opts.DumpSlots != nil {
		select {
		case s.opts.DumpSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-s.opts.DumpSlots }()
	}
	// Meters go in before the flows that use them (a flow naming a
	// missing meter fails the bundle) and out after (deleting a meter
	// deletes the flows using it).
	if err := s.addMeters(ctx, conn); err != nil {
		return err
	}
	if needDump {
		flows, err := conn.DumpFlows(ctx, openflow.TableAll, CookieMagic, CookieMagicMask)
		if err != nil {
			return err
		}
		inst := make(map[openflow.Key]entry, len(flows))
		for _, f := range flows {
			inst[f.Key()] = newEntry(f)
		}
		s.mu.Lock()
		if s.conn != conn {
			s.mu.Unlock()
			return nil // replaced meanwhile; the new conn has its own pass
		}
		s.installed, s.full = inst, true
		s.stats.Dumps++
		s.mu.Unlock()
	}

	s.mu.Lock()
	d := s.diff()
	rev := s.desiredRev
	s.mu.Unlock()

	if len(d.mods) > 0 {
		if err := conn.Bundle(ctx, d.mods); err != nil {
			s.forget(conn)
			return fmt.Errorf("flowsync: install: %w", err)
		}
	}
	if len(d.staleRounds) > 0 {
		// Only now that our round's flows are in: prune older rounds by
		// cookie, so the switch never lacks a flow during takeover.
		prune := make([]openflow.FlowMod, 0, len(d.staleRounds))
		for r := range d.staleRounds {
			prune = append(prune, openflow.FlowMod{
				Command:    openflow.CmdDelete,
				Flow:       openflow.Flow{Table: openflow.TableAll, Cookie: CookieMagic | uint64(r)<<cookieRoundShift},
				CookieMask: CookieMagicMask | CookieRoundMask,
			})
		}
		if err := conn.Bundle(ctx, prune); err != nil {
			s.forget(conn)
			return fmt.Errorf("flowsync: prune: %w", err)
		}
	}

	s.mu.Lock()
	ok := s.record(conn, d)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	// Only now that the switch holds our flows and no older round's: a
	// stale meter is used by no flow we keep.
	if err := s.removeMeters(ctx, conn); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev > s.realized {
		s.realized = rev
		close(s.realizedCh)
		s.realizedCh = make(chan struct{})
	}
	return nil
}

// record notes a pass's changes in the installed set; false when the
// connection was replaced or forgotten meanwhile. Call with s.mu held.
func (s *Syncer) record(conn *openflow.Conn, d diffResult) bool {
	if s.conn != conn || s.installed == nil {
		return false
	}
	for _, k := range d.deleted {
		delete(s.installed, k)
	}
	for k, e := range d.added {
		s.installed[k] = e
	}
	if len(d.staleRounds) > 0 {
		for k, e := range s.installed {
			if _, stale := d.staleRounds[CookieRound(e.flow.Cookie)]; stale {
				delete(s.installed, k)
				s.stats.Pruned++
			}
		}
	}
	s.stats.Added += len(d.added)
	s.stats.Deleted += len(d.deleted)
	if len(d.mods) > 0 || len(d.staleRounds) > 0 {
		s.stats.Bundles++
	}
	return true
}

// forget drops what we know of the switch after a failed bundle, so the
// next pass starts from a dump.
func (s *Syncer) forget(conn *openflow.Conn) {
	s.mu.Lock()
	if s.conn == conn {
		s.installed = nil
	}
	s.mu.Unlock()
}

type diffResult struct {
	mods        []openflow.FlowMod
	added       map[openflow.Key]entry
	deleted     []openflow.Key
	staleRounds map[uint16]struct{}
}

// diff compares desired and installed (all keys after a dump or
// SetDesired, else only keys touched by deltas). Called with s.mu held; it
// consumes the dirty set. Adds come before deletes in the bundle.
func (s *Syncer) diff() diffResult {
	d := diffResult{added: map[openflow.Key]entry{}, staleRounds: map[uint16]struct{}{}}
	var dels []openflow.FlowMod
	check := func(k openflow.Key) {
		want, wanted := s.desired[k]
		have, has := s.installed[k]
		switch {
		case wanted && (!has || have.flow.Cookie != want.flow.Cookie || !want.flow.SameActions(&have.flow)):
			d.mods = append(d.mods, openflow.FlowMod{Command: openflow.CmdAdd, Flow: want.flow})
			d.added[k] = want
		case !wanted && has:
			if r := CookieRound(have.flow.Cookie); r != s.opts.Round {
				d.staleRounds[r] = struct{}{}
				return
			}
			dels = append(dels, openflow.FlowMod{Command: openflow.CmdDeleteStrict, Flow: have.flow, CookieMask: ^uint64(0)})
			d.deleted = append(d.deleted, k)
		}
	}
	if s.full {
		for k := range s.desired {
			check(k)
		}
		for k := range s.installed {
			if _, ok := s.desired[k]; !ok {
				check(k)
			}
		}
	} else {
		for k := range s.dirty {
			check(k)
		}
	}
	s.full = false
	clear(s.dirty)
	d.mods = append(d.mods, dels...)
	return d
}
