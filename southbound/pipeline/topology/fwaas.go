package topology

import (
	"fmt"
	"slices"

	"neutrino/fsm"
)

// FWaaS operations: rules, policies (ordered rule lists) and groups on
// router interfaces and VM ports, created, changed and deleted at random
// like the rest of the topology, so the incremental == full property test
// covers the firewall tables.

func (o *Ops) randomFWRule(project string) *fsm.FirewallRule {
	r := &fsm.FirewallRule{Meta: o.meta(project, ""), IPVersion: 4, Enabled: !o.chance(15)}
	r.Action = pick(o, []string{fsm.FirewallAllow, fsm.FirewallAllow, fsm.FirewallDeny, fsm.FirewallReject})
	if o.chance(20) {
		r.IPVersion = 6
	}
	r.Protocol = pick(o, []string{"", fsm.FirewallProtoTCP, fsm.FirewallProtoTCP, fsm.FirewallProtoUDP, fsm.FirewallProtoICMP})
	if r.Protocol == fsm.FirewallProtoTCP || r.Protocol == fsm.FirewallProtoUDP {
		if o.chance(60) {
			lo := 1 + o.rng.IntN(1024)
			r.DestinationPortMin, r.DestinationPortMax = lo, lo
			if o.chance(30) {
				r.DestinationPortMax = lo + o.rng.IntN(300)
			}
		}
		if o.chance(15) {
			r.SourcePortMin, r.SourcePortMax = 1024, 1024+o.rng.IntN(4000)
		}
	}
	prefix := func() string {
		if r.IPVersion == 6 {
			return fmt.Sprintf("2001:db8:%x::/64", o.rng.IntN(16))
		}
		return fmt.Sprintf("10.%d.0.0/16", o.rng.IntN(16))
	}
	if o.chance(30) {
		r.SourceIP = prefix()
	}
	if o.chance(30) {
		r.DestinationIP = prefix()
	}
	return r
}

// fwProject is mostly the project of a router with interfaces, so that
// rules, policies and groups meet on router interfaces.
func (o *Ops) fwProject() string {
	if rt := pick(o, o.routersWithInterfaces()); rt != nil && o.chance(80) {
		return rt.ProjectID
	}
	return o.project()
}

func (o *Ops) fwRuleCreate() (string, fsm.CommandType, any) {
	r := o.randomFWRule(o.fwProject())
	return fmt.Sprintf("%s %s v%d %q %s", r.ID, r.Action, r.IPVersion, r.Protocol, r.DestinationIP),
		fsm.CmdFirewallRuleCreate, fsm.FirewallRuleCreateRequest{Rule: r}
}

func (o *Ops) fwRuleUpdate() (string, fsm.CommandType, any) {
	cur := pick(o, o.v.FirewallRules())
	if cur == nil {
		return "", 0, nil
	}
	r := cur.Copy()
	switch o.rng.IntN(3) {
	case 0:
		r.Enabled = !r.Enabled
	case 1:
		r.Action = pick(o, []string{fsm.FirewallAllow, fsm.FirewallDeny, fsm.FirewallReject})
	default:
		n := o.randomFWRule(r.ProjectID)
		n.Meta, n.Key = r.Meta, r.Key
		r = n
	}
	r.RevisionNumber++
	r.UpdatedAt = o.ts()
	return fmt.Sprintf("%s enabled=%v %s", r.ID, r.Enabled, r.Action), fsm.CmdFirewallRuleUpdate,
		fsm.FirewallRuleUpdateRequest{Rule: r, PrevIndex: cur.ModifyIndex}
}

func (o *Ops) fwRuleDelete() (string, fsm.CommandType, any) {
	r := pick(o, o.v.FirewallRules())
	if r == nil {
		return "", 0, nil
	}
	return r.ID, fsm.CmdFirewallRuleDelete, fsm.FirewallDeleteRequest{ID: r.ID}
}

// fwRulesOf returns up to n random rules of a project, in random order.
func (o *Ops) fwRulesOf(project string, n int) []string {
	var ids []string
	for _, r := range o.v.FirewallRules() {
		if r.ProjectID == project {
			ids = append(ids, r.ID)
		}
	}
	o.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids[:min(n, len(ids))]
}

func (o *Ops) fwPolicyCreate() (string, fsm.CommandType, any) {
	project := o.fwProject()
	p := &fsm.FirewallPolicy{Meta: o.meta(project, ""), Rules: o.fwRulesOf(project, o.rng.IntN(5))}
	return fmt.Sprintf("%s rules=%d", p.ID, len(p.Rules)), fsm.CmdFirewallPolicyCreate, fsm.FirewallPolicyCreateRequest{Policy: p}
}

// fwPolicyUpdate reorders, inserts or removes rules (insert_rule and
// remove_rule become a new list).
func (o *Ops) fwPolicyUpdate() (string, fsm.CommandType, any) {
	cur := pick(o, o.v.FirewallPolicies())
	if cur == nil {
		return "", 0, nil
	}
	p := cur.Copy()
	switch {
	case len(p.Rules) > 0 && o.chance(30):
		i := o.rng.IntN(len(p.Rules))
		p.Rules = slices.Delete(p.Rules, i, i+1)
	case len(p.Rules) > 1 && o.chance(30):
		o.rng.Shuffle(len(p.Rules), func(i, j int) { p.Rules[i], p.Rules[j] = p.Rules[j], p.Rules[i] })
	default:
		for _, id := range o.fwRulesOf(p.ProjectID, 3) {
			if !slices.Contains(p.Rules, id) {
				p.Rules = slices.Insert(p.Rules, o.rng.IntN(len(p.Rules)+1), id)
				break
			}
		}
	}
	p.RevisionNumber++
	p.UpdatedAt = o.ts()
	return fmt.Sprintf("%s rules=%d", p.ID, len(p.Rules)), fsm.CmdFirewallPolicyUpdate,
		fsm.FirewallPolicyUpdateRequest{Policy: p, PrevIndex: cur.ModifyIndex}
}

func (o *Ops) fwPolicyDelete() (string, fsm.CommandType, any) {
	p := pick(o, o.v.FirewallPolicies())
	if p == nil {
		return "", 0, nil
	}
	return p.ID, fsm.CmdFirewallPolicyDelete, fsm.FirewallDeleteRequest{ID: p.ID}
}

// fwGroupPorts picks up to n free router interfaces and VM ports of a
// project (mostly router interfaces).
func (o *Ops) fwGroupPorts(project, group string, n int) []string {
	var ids []string
	for _, p := range o.v.Ports() {
		if p.ProjectID != project || !fsm.FirewallPortAllowed(p) {
			continue
		}
		if g := o.v.FirewallGroupOfPort(p.ID); g != nil && g.ID != group {
			continue
		}
		if p.DeviceOwner == fsm.DeviceOwnerRouterInterface || o.chance(20) {
			ids = append(ids, p.ID)
		}
	}
	o.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids[:min(n, len(ids))]
}

func (o *Ops) fwPolicyOf(project string) string {
	if o.chance(25) {
		return ""
	}
	p := pick(o, filter(o.v.FirewallPolicies(), func(p *fsm.FirewallPolicy) bool { return p.ProjectID == project }))
	if p == nil {
		return ""
	}
	return p.ID
}

func (o *Ops) fwGroupCreate() (string, fsm.CommandType, any) {
	project := o.fwProject()
	g := &fsm.FirewallGroup{Meta: o.meta(project, ""), AdminStateUp: !o.chance(10),
		IngressPolicyID: o.fwPolicyOf(project), EgressPolicyID: o.fwPolicyOf(project)}
	g.Ports = o.fwGroupPorts(project, g.ID, o.rng.IntN(4))
	return fmt.Sprintf("%s ports=%d in=%s out=%s", g.ID, len(g.Ports), g.IngressPolicyID, g.EgressPolicyID),
		fsm.CmdFirewallGroupCreate, fsm.FirewallGroupCreateRequest{Group: g}
}

func (o *Ops) fwGroupUpdate() (string, fsm.CommandType, any) {
	cur := pick(o, o.v.FirewallGroups())
	if cur == nil {
		return "", 0, nil
	}
	g := cur.Copy()
	switch o.rng.IntN(4) {
	case 0:
		g.AdminStateUp = !g.AdminStateUp
	case 1:
		g.IngressPolicyID = o.fwPolicyOf(g.ProjectID)
	case 2:
		g.EgressPolicyID = o.fwPolicyOf(g.ProjectID)
	default:
		g.Ports = o.fwGroupPorts(g.ProjectID, g.ID, o.rng.IntN(4))
	}
	g.RevisionNumber++
	g.UpdatedAt = o.ts()
	return fmt.Sprintf("%s ports=%d admin=%v", g.ID, len(g.Ports), g.AdminStateUp), fsm.CmdFirewallGroupUpdate,
		fsm.FirewallGroupUpdateRequest{Group: g, PrevIndex: cur.ModifyIndex}
}

func (o *Ops) fwGroupDelete() (string, fsm.CommandType, any) {
	g := pick(o, o.v.FirewallGroups())
	if g == nil {
		return "", 0, nil
	}
	return g.ID, fsm.CmdFirewallGroupDelete, fsm.FirewallDeleteRequest{ID: g.ID}
}
