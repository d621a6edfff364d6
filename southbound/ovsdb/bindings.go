package ovsdb

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
)

// IfaceIDKey is the Interface external_ids key carrying the Neutron port id
// of a workload plugged into the integration bridge (as in OVN).
const IfaceIDKey = "iface-id"

// Binding says that a Neutron port is plugged on this chassis as an
// Interface with an OpenFlow port number.
type Binding struct {
	IfaceID       string
	InterfaceName string
	OFPort        int
}

// BindingEventKind says what happened to a binding.
type BindingEventKind int

// Kinds of binding events.
const (
	BindingAdded BindingEventKind = iota + 1
	BindingUpdated
	BindingRemoved
)

// String returns the kind's name, for logs.
func (k BindingEventKind) String() string {
	switch k {
	case BindingAdded:
		return "added"
	case BindingUpdated:
		return "updated"
	case BindingRemoved:
		return "removed"
	}
	return "unknown"
}

// BindingEvent is one change of the bindings on a bridge. Old is set for
// updates.
type BindingEvent struct {
	Kind    BindingEventKind
	Binding Binding
	Old     Binding
}

// Bindings lists, from the cache, the Interfaces on a bridge that carry
// external_ids:iface-id and have an assigned ofport (> 0), sorted by
// interface name.
func (c *Client) Bindings(ctx context.Context, bridge string) ([]Binding, error) {
	br, err := c.Bridge(ctx, bridge)
	if err != nil || br == nil {
		return nil, err
	}
	ports, err := c.bridgePorts(ctx, br)
	if err != nil {
		return nil, err
	}
	var out []Binding
	for _, bp := range ports {
		i := bp.iface
		if i == nil || i.Ofport == nil || *i.Ofport <= 0 {
			continue
		}
		id := i.ExternalIDs[IfaceIDKey]
		if id == "" {
			continue
		}
		out = append(out, Binding{IfaceID: id, InterfaceName: i.Name, OFPort: *i.Ofport})
	}
	slices.SortFunc(out, func(a, b Binding) int { return strings.Compare(a.InterfaceName, b.InterfaceName) })
	return out, nil
}

// resyncInterval is the periodic full pass that backs up event wake-ups
// (unless Config.Resync says otherwise).
const resyncInterval = 10 * time.Second

// WatchBindings calls fn for every change of the bindings on a bridge,
// starting with an Added event for each binding that exists now. It is
// level-triggered: any cache change of Bridge, Port or Interface (and a
// periodic pass) recomputes the whole set and reports the difference, so a
// reconnection that rebuilds the cache reports only real changes. fn runs
// on one goroutine, never concurrently; the watch ends when ctx is done or
// the client is closed. WatchBindings returns at once.
func (c *Client) WatchBindings(ctx context.Context, bridge string, fn func(BindingEvent)) {
	wake := make(chan struct{}, 1)
	c.mu.Lock()
	c.wakeups = append(c.wakeups, wake)
	c.mu.Unlock()
	log := c.log.With("bridge", bridge)

	go func() {
		defer func() {
			c.mu.Lock()
			c.wakeups = slices.DeleteFunc(c.wakeups, func(ch chan struct{}) bool { return ch == wake })
			c.mu.Unlock()
		}()
		tick := time.NewTimer(c.resync())
		defer tick.Stop()
		prev := map[string]Binding{}
		for {
			cur, err := c.Bindings(ctx, bridge)
			switch {
			case ctx.Err() != nil:
				return // the cache read may have given up on consistency
			case err != nil:
				log.Warn("list bindings", "err", err)
			default:
				prev = diffBindings(prev, cur, fn)
			}
			select {
			case <-ctx.Done():
				return
			case <-c.closed:
				return
			case <-wake:
			case <-tick.C:
				tick.Reset(c.resync())
			}
		}
	}()
}

// diffBindings reports the changes from prev to cur and returns cur keyed
// by interface name.
func diffBindings(prev map[string]Binding, cur []Binding, fn func(BindingEvent)) map[string]Binding {
	next := make(map[string]Binding, len(cur))
	for _, b := range cur {
		next[b.InterfaceName] = b
		old, ok := prev[b.InterfaceName]
		switch {
		case !ok:
			fn(BindingEvent{Kind: BindingAdded, Binding: b})
		case old != b:
			fn(BindingEvent{Kind: BindingUpdated, Binding: b, Old: old})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(prev)) {
		if _, ok := next[name]; !ok {
			fn(BindingEvent{Kind: BindingRemoved, Binding: prev[name]})
		}
	}
	return next
}
