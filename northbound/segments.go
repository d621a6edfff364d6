package northbound

import (
	"sync"

	"neutrino/fsm"
)

// segmentAllocator decides segmentation ids on the leader before a command
// is proposed, so the command carries the result and replicas never
// diverge. Ids chosen by requests still in flight are held as reservations
// so two concurrent creates do not pick the same id; the state machine
// re-checks uniqueness at apply time all the same.
type segmentAllocator struct {
	mu      sync.Mutex
	pending map[string]bool
	next    map[string]int // per id space: where the last search ended
}

func newSegmentAllocator() *segmentAllocator {
	return &segmentAllocator{pending: map[string]bool{}, next: map[string]int{}}
}

// reservation is the set of segment keys one request holds.
type reservation struct {
	a    *segmentAllocator
	keys []string
}

func (a *segmentAllocator) begin() *reservation { return &reservation{a: a} }

// release gives the reservation's keys back; call it once the command was
// applied (the state then holds the ids) or failed.
func (r *reservation) release() {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	for _, k := range r.keys {
		delete(r.a.pending, k)
	}
	r.keys = nil
}

// claim reserves a key chosen by the caller; false if it is in use or held.
func (r *reservation) claim(v *fsm.View, key string) bool {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	if r.a.pending[key] || v.NetworkBySegment(key) != nil {
		return false
	}
	r.a.pending[key] = true
	r.keys = append(r.keys, key)
	return true
}

// allocate picks a free id of the network type in the ranges, searching on
// from where the previous search of that id space stopped so that a long
// run of used ids is not rescanned for every network.
func (r *reservation) allocate(v *fsm.View, netType, physnet string, ranges []Range) (int, bool) {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	space := fsm.SegmentKey(netType, physnet, 0)
	total := 0
	for _, rg := range ranges {
		total += rg.Max - rg.Min + 1
	}
	if total <= 0 {
		return 0, false
	}
	start := r.a.next[space]
	for i := 0; i < total; i++ {
		id := nthID(ranges, (start+i)%total)
		key := fsm.SegmentKey(netType, physnet, id)
		if r.a.pending[key] || v.NetworkBySegment(key) != nil {
			continue
		}
		r.a.pending[key] = true
		r.keys = append(r.keys, key)
		r.a.next[space] = (start + i + 1) % total
		return id, true
	}
	return 0, false
}

func nthID(ranges []Range, n int) int {
	for _, rg := range ranges {
		size := rg.Max - rg.Min + 1
		if n < size {
			return rg.Min + n
		}
		n -= size
	}
	panic("nthID: index out of ranges")
}
