package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"neutrino/southbound/ovsdb/vswitchd"
)

// BridgeSpec is the desired integration bridge of a chassis.
type BridgeSpec struct {
	// Name of the bridge; default "br-int".
	Name string
	// DatapathType is "netdev" (userspace, the lab) or "system" (kernel);
	// "" means system.
	DatapathType string
	// Controllers are the OpenFlow controller targets, e.g.
	// "tcp:10.0.0.1:6653" or "unix:<rundir>/ctl.sock"; the bridge ends up
	// with exactly these.
	Controllers []string
	// Protocols default to OpenFlow13.
	Protocols []string
	// MaxBackoff is each Controller's max_backoff in ms; default 1000, so a
	// switch finds a restarted controller within a second instead of 8 s.
	MaxBackoff int
	// OtherConfig keys to set besides disable-in-band=true; keys not named
	// here are left alone.
	OtherConfig map[string]string
	// ExternalIDs keys to set; keys not named here are left alone.
	ExternalIDs map[string]string
}

func (s BridgeSpec) withDefaults() BridgeSpec {
	if s.Name == "" {
		s.Name = "br-int"
	}
	if s.DatapathType == "" {
		s.DatapathType = "system"
	}
	if len(s.Protocols) == 0 {
		s.Protocols = []string{vswitchd.BridgeProtocolsOpenflow13}
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 1000
	}
	oc := map[string]string{"disable-in-band": "true"}
	maps.Copy(oc, s.OtherConfig)
	s.OtherConfig = oc
	s.Protocols = sortedUnique(s.Protocols)
	s.Controllers = sortedUnique(s.Controllers)
	return s
}

// EnsureIntegrationBridge creates the bridge (with its local internal port,
// fail_mode=secure, the protocols, other_config:disable-in-band=true and
// one out-of-band Controller row per target) or converges an existing one
// to the spec, changing only the columns and keys the spec names. It
// returns the number of write operations sent: 0 when already converged.
func (c *Client) EnsureIntegrationBridge(ctx context.Context, spec BridgeSpec) (int, error) {
	spec = spec.withDefaults()
	return c.converge(ctx, "ensure bridge "+spec.Name, func() ([]libovsdb.Operation, error) {
		return c.planBridge(ctx, spec)
	})
}

// Bridge returns the cached bridge with that name, or nil.
func (c *Client) Bridge(ctx context.Context, name string) (*vswitchd.Bridge, error) {
	var brs []vswitchd.Bridge
	err := c.ovs.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == name }).List(ctx, &brs)
	if err != nil {
		return nil, fmt.Errorf("ovsdb %s: list bridges: %w", c.endpoint, err)
	}
	if len(brs) == 0 {
		return nil, nil
	}
	return &brs[0], nil
}

func (c *Client) planBridge(ctx context.Context, spec BridgeSpec) ([]libovsdb.Operation, error) {
	root, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	br, err := c.Bridge(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	if br == nil {
		return c.planNewBridge(ctx, root, spec)
	}

	var ops []libovsdb.Operation
	ctlUUIDs, ctlOps, err := c.planControllers(ctx, br.Controller, spec)
	if err != nil {
		return nil, err
	}
	ops = append(ops, ctlOps...)

	upd := vswitchd.Bridge{UUID: br.UUID}
	var fields []any
	if normDatapath(br.DatapathType) != spec.DatapathType {
		upd.DatapathType = spec.DatapathType
		fields = append(fields, &upd.DatapathType)
	}
	if br.FailMode == nil || *br.FailMode != vswitchd.BridgeFailModeSecure {
		upd.FailMode = ptr(vswitchd.BridgeFailModeSecure)
		fields = append(fields, &upd.FailMode)
	}
	if !slices.Equal(sortedUnique(br.Protocols), spec.Protocols) {
		upd.Protocols = spec.Protocols
		fields = append(fields, &upd.Protocols)
	}
	if !sameSet(br.Controller, ctlUUIDs) { // new rows have named UUIDs, never in the set
		upd.Controller = ctlUUIDs
		fields = append(fields, &upd.Controller)
	}
	if len(fields) > 0 {
		o, err := c.ovs.Where(&upd).Update(&upd, fields...)
		if err != nil {
			return nil, fmt.Errorf("update bridge %s: %w", spec.Name, err)
		}
		ops = append(ops, o...)
	}
	// Map columns are mutated key by key so keys set by others survive.
	mut := vswitchd.Bridge{UUID: br.UUID}
	var muts []model.Mutation
	muts = append(muts, mapMutations(&mut.OtherConfig, br.OtherConfig, spec.OtherConfig)...)
	muts = append(muts, mapMutations(&mut.ExternalIDs, br.ExternalIDs, spec.ExternalIDs)...)
	if len(muts) > 0 {
		o, err := c.ovs.Where(&mut).Mutate(&mut, muts...)
		if err != nil {
			return nil, fmt.Errorf("mutate bridge %s: %w", spec.Name, err)
		}
		ops = append(ops, o...)
	}
	if !slices.Contains(root.Bridges, br.UUID) {
		o, err := c.addToRoot(root, br.UUID)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o...)
	}
	return ops, nil
}

// planNewBridge inserts the bridge the way ovs-vsctl add-br does (a local
// internal Port/Interface named after the bridge) plus its controllers, and
// links it from the root row, all in one transaction.
func (c *Client) planNewBridge(ctx context.Context, root *vswitchd.OpenvSwitch, spec BridgeSpec) ([]libovsdb.Operation, error) {
	var ops []libovsdb.Operation
	iface := &vswitchd.Interface{UUID: "new_local_iface", Name: spec.Name, Type: "internal"}
	port := &vswitchd.Port{UUID: "new_local_port", Name: spec.Name, Interfaces: []string{iface.UUID}}
	for _, m := range []model.Model{iface, port} {
		o, err := c.ovs.Create(m)
		if err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", spec.Name, err)
		}
		ops = append(ops, o...)
	}
	ctlUUIDs, ctlOps, err := c.planControllers(ctx, nil, spec)
	if err != nil {
		return nil, err
	}
	ops = append(ops, ctlOps...)
	br := &vswitchd.Bridge{
		UUID:         "new_bridge",
		Name:         spec.Name,
		DatapathType: spec.DatapathType,
		FailMode:     ptr(vswitchd.BridgeFailModeSecure),
		Protocols:    spec.Protocols,
		OtherConfig:  spec.OtherConfig,
		ExternalIDs:  spec.ExternalIDs,
		Controller:   ctlUUIDs,
		Ports:        []string{port.UUID},
	}
	o, err := c.ovs.Create(br)
	if err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", spec.Name, err)
	}
	ops = append(ops, o...)
	o, err = c.addToRoot(root, br.UUID)
	if err != nil {
		return nil, err
	}
	return append(ops, o...), nil
}

func (c *Client) addToRoot(root *vswitchd.OpenvSwitch, brUUID string) ([]libovsdb.Operation, error) {
	r := vswitchd.OpenvSwitch{UUID: root.UUID}
	o, err := c.ovs.Where(&r).Mutate(&r, model.Mutation{
		Field: &r.Bridges, Mutator: libovsdb.MutateOperationInsert, Value: []string{brUUID},
	})
	if err != nil {
		return nil, fmt.Errorf("add bridge to Open_vSwitch: %w", err)
	}
	return o, nil
}

// planControllers returns the Controller UUIDs (real or named) the bridge
// should reference and the operations creating or fixing those rows.
// Unreferenced Controller rows are garbage-collected by ovsdb-server (the
// table is not a root table), so dropping a target needs no delete.
func (c *Client) planControllers(ctx context.Context, current []string, spec BridgeSpec) ([]string, []libovsdb.Operation, error) {
	byTarget := map[string]*vswitchd.Controller{}
	for _, u := range current {
		ctl := &vswitchd.Controller{UUID: u}
		if err := c.ovs.Get(ctx, ctl); err != nil {
			// Referenced but not (yet) in the cache: treat as absent; the
			// bridge update replaces the reference.
			continue
		}
		if _, dup := byTarget[ctl.Target]; !dup {
			byTarget[ctl.Target] = ctl
		}
	}
	var (
		uuids []string
		ops   []libovsdb.Operation
	)
	for n, target := range spec.Controllers {
		ctl, ok := byTarget[target]
		if !ok {
			ctl = &vswitchd.Controller{
				UUID:           fmt.Sprintf("new_controller_%d", n),
				Target:         target,
				MaxBackoff:     ptr(spec.MaxBackoff),
				ConnectionMode: ptr(vswitchd.ControllerConnectionModeOutOfBand),
			}
			o, err := c.ovs.Create(ctl)
			if err != nil {
				return nil, nil, fmt.Errorf("create controller %s: %w", target, err)
			}
			ops = append(ops, o...)
			uuids = append(uuids, ctl.UUID)
			continue
		}
		uuids = append(uuids, ctl.UUID)
		upd := vswitchd.Controller{UUID: ctl.UUID}
		var fields []any
		if ctl.MaxBackoff == nil || *ctl.MaxBackoff != spec.MaxBackoff {
			upd.MaxBackoff = ptr(spec.MaxBackoff)
			fields = append(fields, &upd.MaxBackoff)
		}
		if ctl.ConnectionMode == nil || *ctl.ConnectionMode != vswitchd.ControllerConnectionModeOutOfBand {
			upd.ConnectionMode = ptr(vswitchd.ControllerConnectionModeOutOfBand)
			fields = append(fields, &upd.ConnectionMode)
		}
		if len(fields) > 0 {
			o, err := c.ovs.Where(&upd).Update(&upd, fields...)
			if err != nil {
				return nil, nil, fmt.Errorf("update controller %s: %w", target, err)
			}
			ops = append(ops, o...)
		}
	}
	return uuids, ops, nil
}

// mapMutations returns the mutations that make the keys of want hold
// their values in a map column currently holding have, leaving every other
// key alone. A changed value needs delete-then-insert: OVSDB's map insert
// never overwrites. Deleting the old key/value pair (not the bare key)
// means a concurrent change by someone else is not clobbered.
func mapMutations(field *map[string]string, have, want map[string]string) []model.Mutation {
	del, ins := map[string]string{}, map[string]string{}
	for k, v := range want {
		old, ok := have[k]
		if ok && old == v {
			continue
		}
		if ok {
			del[k] = old
		}
		ins[k] = v
	}
	var muts []model.Mutation
	if len(del) > 0 {
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationDelete, Value: del})
	}
	if len(ins) > 0 {
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationInsert, Value: ins})
	}
	return muts
}

func normDatapath(t string) string {
	if t == "" {
		return "system"
	}
	return t
}

func ptr[T any](v T) *T { return &v }

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func sameSet(a, b []string) bool {
	return slices.Equal(sortedUnique(a), sortedUnique(b))
}
