package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"neutrino/fsm"
)

// LeadershipEvent tells that this node became a ready leader (barrier done,
// epoch set) or stopped leading; Term is the term it led in.
type LeadershipEvent struct {
	IsLeader bool   // gained (true) or lost (false)
	Term     uint64 // the term of the leadership gained or lost
}

// barrierTimeout bounds the post-election barrier; a leader that cannot
// apply its backlog in this time retries.
const barrierTimeout = time.Minute

// leadershipLoop turns raft's NotifyCh into a leader loop per term of
// leadership: started on true, stopped (and waited for) on false, so a
// "lost" event is never published before the matching "gained" one.
func (c *Cluster) leadershipLoop() {
	defer c.wg.Done()
	var stop, done chan struct{}
	stopLeading := func() {
		if stop != nil {
			close(stop)
			<-done
			stop = nil
		}
	}
	for {
		select {
		case isLeader := <-c.notifyCh:
			if isLeader && stop == nil {
				stop, done = make(chan struct{}), make(chan struct{})
				go c.leaderLoop(stop, done)
			} else if !isLeader {
				stopLeading()
			}
		case <-c.shutdownCh:
			stopLeading()
			return
		}
	}
}

// leaderLoop establishes leadership, publishes it, and reconciles
// membership until stop is closed.
func (c *Cluster) leaderLoop(stop, done chan struct{}) {
	defer close(done)
	term, ok := c.establishLeadership(stop)
	if !ok {
		return
	}
	c.readyTerm.Store(term)
	c.log.Info("leading", "term", term, "epoch", c.Epoch())
	c.leaders.publish(LeadershipEvent{IsLeader: true, Term: term})
	c.announceLeader(term)
	defer func() {
		c.readyTerm.Store(0)
		c.log.Info("no longer leading", "term", term)
		c.leaders.publish(LeadershipEvent{IsLeader: false, Term: term})
		c.announceLeader(0)
	}()

	t := time.NewTicker(c.cfg.ReconcileInterval)
	defer t.Stop()
	chassis := newChassisReconciler(c)
	dead := newDeadTracker()
	for {
		// Chassis first: a dead gateway's routers move on its commit, while
		// adding a Raft voter may block for seconds.
		chassis.reconcile()
		c.reconcile()
		c.cleanupDead(dead, time.Now())
		select {
		case <-stop:
			return
		case <-c.reconcileCh:
		case <-t.C:
		}
	}
}

// establishLeadership waits until the FSM has applied everything committed
// before this term, then sets the epoch if this is a new cluster. It retries
// until it succeeds or leadership ends.
func (c *Cluster) establishLeadership(stop chan struct{}) (uint64, bool) {
	for {
		term, err := c.tryEstablish(stop)
		if err == nil {
			return term, true
		}
		c.log.Warn("establishing leadership failed, retrying", "err", err)
		select {
		case <-stop:
			return 0, false
		case <-time.After(time.Second):
		}
	}
}

func (c *Cluster) tryEstablish(stop chan struct{}) (uint64, error) {
	// A future raft queued just before it shut down is never answered
	// (hashicorp/raft v1.7.3: verifyCh is buffered and not drained on
	// shutdown), so every wait here also ends with leadership or the
	// cluster: a Shutdown waiting for this loop would otherwise hang.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-c.shutdownCh:
		case <-ctx.Done():
		}
		cancel()
	}()
	// LeaderObservation/NotifyCh carry no term: read it around a quorum
	// check so the term is the one we were confirmed leader in.
	term := c.raft.CurrentTerm()
	if err := waitFuture(ctx, c.raft.VerifyLeader()); err != nil {
		return 0, fmt.Errorf("verify leader: %w", err)
	}
	if now := c.raft.CurrentTerm(); now != term {
		return 0, fmt.Errorf("term moved from %d to %d", term, now)
	}
	if err := waitFuture(ctx, c.raft.Barrier(barrierTimeout)); err != nil {
		return 0, fmt.Errorf("barrier: %w", err)
	}
	if c.Epoch() == 0 {
		// Unix seconds grow across re-bootstraps of a cluster, so
		// epoch<<32|term does too even though terms restart at 1.
		epoch := uint64(time.Now().Unix())
		cmd, err := fsm.Encode(fsm.CmdSetEpoch, fsm.SetEpochRequest{Epoch: epoch})
		if err != nil {
			return 0, err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := c.apply(ctx, cmd)
		if err != nil {
			return 0, fmt.Errorf("set epoch: %w", err)
		}
		if res.Err != nil {
			if e, ok := fsm.AsError(res.Err); !ok || e.Code != fsm.CodeConflict {
				return 0, fmt.Errorf("set epoch: %w", res.Err)
			}
		} else {
			c.log.Info("cluster epoch set", "epoch", epoch)
		}
	}
	return term, nil
}

// SubscribeLeadership returns a channel of this node's leadership events in
// order and without drops (each subscriber has an unbounded queue), and a
// function to unsubscribe. A subscriber that joins while this node leads
// first receives that leadership. The channel closes on Shutdown.
func (c *Cluster) SubscribeLeadership() (<-chan LeadershipEvent, func()) {
	return c.leaders.subscribe()
}

// broadcaster fans leadership events out to subscribers.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	last   LeadershipEvent
	closed bool
}

type subscriber struct {
	mu     sync.Mutex
	queue  []LeadershipEvent
	ended  bool
	wake   chan struct{}
	out    chan LeadershipEvent
	cancel chan struct{}
	once   sync.Once
}

func (b *broadcaster) subscribe() (<-chan LeadershipEvent, func()) {
	s := &subscriber{wake: make(chan struct{}, 1), out: make(chan LeadershipEvent), cancel: make(chan struct{})}
	stop := func() { s.once.Do(func() { close(s.cancel) }) }
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.out)
		return s.out, func() {}
	}
	if b.subs == nil {
		b.subs = make(map[*subscriber]struct{})
	}
	b.subs[s] = struct{}{}
	if b.last.IsLeader {
		s.push(b.last)
	}
	go s.pump()
	return s.out, func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
		stop()
	}
}

func (b *broadcaster) publish(ev LeadershipEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.last = ev
	for s := range b.subs {
		s.push(ev)
	}
}

// close ends every subscription once its queued events are delivered.
func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		s.signal()
	}
	b.subs = nil
}

func (s *subscriber) push(ev LeadershipEvent) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump delivers queued events in order, closing out once the subscription
// has ended and the queue is drained.
func (s *subscriber) pump() {
	defer close(s.out)
	for {
		s.mu.Lock()
		q, ended := s.queue, s.ended
		s.queue = nil
		s.mu.Unlock()
		for _, ev := range q {
			select {
			case s.out <- ev:
			case <-s.cancel:
				return
			}
		}
		if ended && len(q) == 0 {
			return
		}
		if len(q) > 0 {
			continue // more may have arrived while we delivered
		}
		select {
		case <-s.wake:
		case <-s.cancel:
			return
		}
	}
}

// announceLeader puts the term this server leads in (0: none) into its
// gossip metadata, for chassis agents' readiness.
func (c *Cluster) announceLeader(term uint64) {
	select {
	case <-c.shutdownCh:
		return // gossip is going away with the whole node
	default:
	}
	if err := c.changeOwnMeta(func(m *NodeMeta) { m.LeaderTerm = term }); err != nil {
		c.log.Warn("cannot announce leadership in gossip", "term", term, "err", err)
	}
}
