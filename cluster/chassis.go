package cluster

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"neutrino/fsm"
)

// chassisGrace is how long a new leader waits before marking down a chassis
// that is up in the state but unknown to its own gossip view: right after
// an election, gossip may simply not have told this node about it yet.
const chassisGrace = 10 * time.Second

// chassisReconciler turns gossip into committed chassis records while this
// node leads: every member that announces a tunnel IP (a chassis agent, or
// a server that is also a chassis) gets a record that follows its
// metadata, up while gossip says alive, down once it is dead or has left.
// It commits only what differs from the state, so a quiet cluster costs no
// Raft writes.
type chassisReconciler struct {
	c     *Cluster
	since time.Time
}

func newChassisReconciler(c *Cluster) *chassisReconciler {
	return &chassisReconciler{c: c, since: time.Now()}
}

// isChassis says whether a member announces a chassis.
func isChassis(m Member) bool {
	return m.Meta.TunnelIP != "" || (m.Meta.Role == RoleChassis && m.Meta.OVSDB != "")
}

// chassisFromMember is the record a member's metadata asks for; state and
// timestamps are filled in by the caller.
func chassisFromMember(m Member) *fsm.Chassis {
	return &fsm.Chassis{
		Meta:           fsm.Meta{ID: m.Name, Name: m.Name},
		TunnelIP:       m.Meta.TunnelIP,
		OVSDB:          m.Meta.OVSDB,
		Roles:          slices.Clone(m.Meta.Roles),
		BridgeMappings: maps.Clone(m.Meta.BridgeMappings),
		Encaps:         slices.Clone(m.Meta.Encaps),
		DatapathType:   m.Meta.DatapathType,
		DatapathID:     fsm.ChassisDatapathID(m.Name),

		AvailabilityZone: m.Meta.AvailabilityZone,
	}
}

// sameChassis compares the gossip-derived fields of two records.
func sameChassis(a, b *fsm.Chassis) bool {
	return a.TunnelIP == b.TunnelIP && a.OVSDB == b.OVSDB && slices.Equal(a.Roles, b.Roles) &&
		maps.Equal(a.BridgeMappings, b.BridgeMappings) && slices.Equal(a.Encaps, b.Encaps) &&
		a.DatapathType == b.DatapathType && a.DatapathID == b.DatapathID && a.AvailabilityZone == b.AvailabilityZone
}

// reconcile commits the differences between gossip and the chassis table.
func (r *chassisReconciler) reconcile() {
	c := r.c
	v := c.fsm.State().Read()
	ts := time.Now().UTC().Format(time.RFC3339)
	var (
		upsert []*fsm.Chassis
		up     []string
		down   []string
		seen   = map[string]bool{}
	)
	for _, m := range c.Members() {
		if !isChassis(m) {
			continue
		}
		seen[m.Name] = true
		alive := m.Status == StatusAlive
		want := chassisFromMember(m)
		cur := v.Chassis(m.Name)
		switch {
		case cur == nil && !alive:
			// Never recorded and already gone: nothing to say about it.
		case cur == nil || (alive && !sameChassis(cur, want)):
			// A dead member's metadata is its last word; only a live one
			// changes the record.
			want.Up, want.LastSeen, want.UpdatedAt, want.CreatedAt = alive, ts, ts, ts
			want.RevisionNumber = 1
			if cur != nil {
				want.Tags = cur.Tags
			}
			upsert = append(upsert, want)
		case cur.Up != alive && alive:
			up = append(up, m.Name)
		case cur.Up != alive:
			down = append(down, m.Name)
		}
	}
	if time.Since(r.since) > chassisGrace {
		for _, cur := range v.ChassisList() {
			if cur.Up && !seen[cur.Name] {
				down = append(down, cur.Name)
			}
		}
	}
	if len(upsert) > 0 {
		r.apply(fsm.CmdChassisUpsert, fsm.ChassisUpsertRequest{Chassis: upsert})
	}
	if len(up) > 0 {
		r.apply(fsm.CmdChassisSetState, fsm.ChassisSetStateRequest{Names: up, Up: true, At: ts})
	}
	if down = r.confirmDown(down); len(down) > 0 {
		r.apply(fsm.CmdChassisSetState, fsm.ChassisSetStateRequest{Names: down, Up: false, At: ts})
	}
}

// confirmDown keeps the chassis that do not answer a direct ping (one
// probe timeout). Gossip can say dead about a live node: a node coming
// back from a partition spreads the deaths it saw from its side, and
// until the accused refutes them everyone believes it. Marking such a
// chassis down would move its routers' gateways for nothing; a chassis
// that answers stays up (gossip will say alive again, or the next pass
// asks again).
func (r *chassisReconciler) confirmDown(names []string) []string {
	if len(names) == 0 || r.c.gossip == nil {
		return names
	}
	alive := make([]bool, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.c.Ping(n)
			alive[i] = err == nil
		}()
	}
	wg.Wait()
	var out []string
	for i, n := range names {
		if alive[i] {
			r.c.log.Warn("chassis: gossip says dead but it answers a direct ping; left up", "chassis", n)
			continue
		}
		out = append(out, n)
	}
	return out
}

func (r *chassisReconciler) apply(t fsm.CommandType, body any) {
	c := r.c
	cmd, err := fsm.Encode(t, body)
	if err != nil {
		c.log.Error("chassis: encode", "cmd", t, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Apply(ctx, cmd)
	if err == nil && res.Err != nil {
		err = res.Err
	}
	if err != nil {
		// The next pass (member event or ReconcileInterval) retries.
		c.log.Warn("chassis: commit failed", "cmd", t, "err", err)
		return
	}
	c.log.Info("chassis records committed", "cmd", t, "revision", res.Revision)
}
