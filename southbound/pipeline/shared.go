package pipeline

import (
	"net/netip"
	"sync"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
)

// Shared holds what every chassis' compiler of one replicated state
// derives alike, so that it is derived once rather than once per chassis:
// the addresses of a remote security group's members, and a security
// group rule's flows (the same on every chassis with a port of the group).
// At 100 simulated chassis, recomputing a remote group's addresses in
// every compiler was 8% of the leader's CPU, and a port added to a group
// that others name as remote recompiled each of their rules on every
// chassis of theirs. One Shared serves the compilers of one state (its
// entries are keyed by that state's table indexes); it is safe for
// concurrent use. What it returns is shared: never modify it.
type Shared struct {
	mu      sync.Mutex
	ports   uint64 // the ports table index the entries were derived at
	remotes map[remoteKey][]netip.Prefix
	rules   map[string]*sharedRule
	// prevRules are the entries of the ports index before, for the
	// change from them; lastVer numbers entries.
	prevRules map[string]*sharedRule
	lastVer   uint64
}

type remoteKey struct {
	group string
	v6    bool
}

// sharedRule is one rule's flows and their keys, derived from the rule
// object it names (a changed rule is a new object). ver numbers it (0: not
// shared); when the rule object is the one of the entry before it (from),
// added and gone are the change from that entry: the indexes of its new
// flows and the keys it dropped, so that a compiler that holds version
// from applies the change instead of comparing every flow of the rule.
type sharedRule struct {
	rule  *fsm.SecurityGroupRule
	flows []openflow.Flow
	keys  []openflow.Key
	ver   uint64
	from  uint64
	added []int
	gone  []openflow.Key
}

// NewShared returns an empty cache for the compilers of one state.
func NewShared() *Shared { return &Shared{} }

// Share makes the compiler use s for what it derives alike with others.
func (c *Compiler) Share(s *Shared) { c.shared = s }

// at makes the entries those of ports index idx, dropping older ones, and
// reports whether entries derived at idx may be read and stored: not for
// a compiler behind the cache, which computes without storing. s.mu held.
func (s *Shared) at(idx uint64) bool {
	if idx > s.ports || s.remotes == nil {
		s.ports = idx
		s.remotes = map[remoteKey][]netip.Prefix{}
		s.prevRules, s.rules = s.rules, map[string]*sharedRule{}
	}
	return idx == s.ports
}

// remoteMembers is groupMembers through the shared cache: its entries
// hold while the ports table is unchanged (a member's addresses and
// groups are the port's).
func (c *Compiler) remoteMembers(group string, v6 bool) []netip.Prefix {
	s := c.shared
	if s == nil {
		return groupMembers(c.v, group, v6)
	}
	idx := c.v.TableIndex(fsm.TablePorts)
	k := remoteKey{group, v6}
	s.mu.Lock()
	if s.at(idx) {
		if out, ok := s.remotes[k]; ok {
			s.mu.Unlock()
			return out
		}
	}
	s.mu.Unlock()
	out := groupMembers(c.v, group, v6)
	s.mu.Lock()
	if s.at(idx) {
		s.remotes[k] = out
	}
	s.mu.Unlock()
	return out
}

// ruleEntry is the rule's flows on this chassis: nil where its group has
// no port, else the same flows on every chassis, compiled once per rule
// object and ports index when the compiler shares (an unshared entry has
// ver 0 and no keys).
func (c *Compiler) ruleEntry(id string) *sharedRule {
	r := c.v.SecurityGroupRule(id)
	if r == nil || c.sgLocal[r.SecurityGroupID] == 0 {
		return nil
	}
	compile := func() []openflow.Flow {
		e := &emitter{cookie: flowsync.Cookie(KindRule, r.DatapathKey)}
		c.ruleFlows(e, r)
		return e.flows
	}
	s := c.shared
	if s == nil {
		return &sharedRule{rule: r, flows: compile()}
	}
	idx := c.v.TableIndex(fsm.TablePorts)
	s.mu.Lock()
	if s.at(idx) {
		if e := s.rules[id]; e != nil && e.rule == r {
			s.mu.Unlock()
			return e
		}
	}
	s.mu.Unlock()
	e := &sharedRule{rule: r, flows: compile()}
	e.keys = make([]openflow.Key, len(e.flows))
	for i := range e.flows {
		e.keys[i] = e.flows[i].Key()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.at(idx) {
		return e // behind the cache: this compiler's own, not shared
	}
	if cur := s.rules[id]; cur != nil && cur.rule == r {
		return cur // another compiler stored it meanwhile: share its version
	}
	s.lastVer++
	e.ver = s.lastVer
	if prev := s.prevRules[id]; prev != nil && prev.rule == r {
		e.from = prev.ver
		had := make(map[openflow.Key]bool, len(prev.keys))
		for _, k := range prev.keys {
			had[k] = true
		}
		for i, k := range e.keys {
			if had[k] {
				delete(had, k)
			} else {
				e.added = append(e.added, i)
			}
		}
		for _, k := range prev.keys {
			if had[k] {
				e.gone = append(e.gone, k)
			}
		}
	}
	s.rules[id] = e
	return e
}
