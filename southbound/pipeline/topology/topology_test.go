package topology

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"neutrino/fsm"
)

// TestBuildDualStack: every network has an IPv4 and an IPv6 subnet, every
// VM port an address on each, every router an interface (a port) on each
// subnet and an extra route of each family where it has one.
func TestBuildDualStack(t *testing.T) {
	spec := DefaultSpec(200)
	spec.DualStack = true
	f, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	exp := spec.Expect()
	v := f.State().Read()
	ifaces, routes := 0, 0
	for _, r := range v.Routers() {
		ifaces += len(v.RouterInterfaces(r.ID))
		routes += len(r.Routes)
	}
	if len(v.Subnets()) != exp.Subnets || exp.Subnets != 40 || ifaces != exp.RouterInterfaces || exp.RouterInterfaces != 40 ||
		routes != exp.ExtraRoutes || exp.ExtraRoutes != 2 || len(v.Ports()) != 240 {
		t.Fatalf("expect %+v; state %d subnets %d interfaces %d routes %d ports", exp, len(v.Subnets()), ifaces, routes, len(v.Ports()))
	}
	for _, n := range v.Networks() {
		subs := v.SubnetsOfNetwork(n.ID)
		if len(subs) != 2 || subs[0].IPVersion+subs[1].IPVersion != 10 {
			t.Fatalf("network %s subnets %+v, want one IPv4 and one IPv6", n.ID, subs)
		}
	}
	for _, p := range v.Ports() {
		if p.DeviceOwner == "compute:nova" && len(p.FixedIPs) != 2 {
			t.Fatalf("VM port %s fixed IPs %v, want one per family", p.ID, p.FixedIPs)
		}
	}
}

func TestBuildCounts(t *testing.T) {
	spec := DefaultSpec(1000)
	f, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	exp := spec.Expect()
	want := Counts{Chassis: 50, Networks: 100, Subnets: 100, Routers: 10, RouterInterfaces: 100, ExtraRoutes: 4,
		SecurityGroups: 10, Rules: 40, Ports: 1100, VMPorts: 1000, AddressPairs: 100, NoPortSecurity: 20}
	if exp != want {
		t.Fatalf("Expect() = %+v, want %+v", exp, want)
	}
	v := f.State().Read()
	var got Counts
	got.Chassis = len(v.ChassisList())
	got.Networks = len(v.Networks())
	got.Subnets = len(v.Subnets())
	got.Routers = len(v.Routers())
	for _, r := range v.Routers() {
		got.RouterInterfaces += len(v.RouterInterfaces(r.ID))
		got.ExtraRoutes += len(r.Routes)
	}
	got.SecurityGroups = len(v.SecurityGroups())
	got.Rules = len(v.SecurityGroupRules())
	ports := v.Ports()
	got.Ports = len(ports)
	perChassis := map[string]map[int]bool{}
	for _, p := range ports {
		if p.DeviceOwner != "compute:nova" {
			continue
		}
		got.VMPorts++
		if len(p.AllowedAddressPairs) > 0 {
			got.AddressPairs++
		}
		if !p.PortSecurityEnabled {
			got.NoPortSecurity++
			if len(p.SecurityGroups) != 0 {
				t.Errorf("port %s: port security off with groups %v", p.ID, p.SecurityGroups)
			}
		} else if len(p.SecurityGroups) != 1 {
			t.Errorf("port %s: groups %v", p.ID, p.SecurityGroups)
		}
		if p.BindingHostID == "" || p.BindingOFPort < 10 || p.Status != fsm.PortStatusActive || p.BindingVIFType != fsm.VIFTypeOVS {
			t.Fatalf("port %s not bound: %+v", p.ID, p)
		}
		if perChassis[p.BindingHostID] == nil {
			perChassis[p.BindingHostID] = map[int]bool{}
		}
		if perChassis[p.BindingHostID][p.BindingOFPort] {
			t.Fatalf("ofport %d used twice on %s", p.BindingOFPort, p.BindingHostID)
		}
		perChassis[p.BindingHostID][p.BindingOFPort] = true
	}
	if got != want {
		t.Fatalf("state has %+v, want %+v", got, want)
	}
	if len(perChassis) < 40 {
		t.Errorf("ports on %d chassis only", len(perChassis))
	}
	// Every chassis' ofports are 10, 11, ... without gaps.
	all := AllBindings(v)
	for name, used := range perChassis {
		for n := 10; n < 10+len(used); n++ {
			if !used[n] {
				t.Errorf("%s: ofports %v not contiguous from 10", name, slices.Sorted(maps.Keys(used)))
				break
			}
		}
		b := Bindings(v, name)
		if len(b) != len(used) || !maps.Equal(b, all[name]) {
			t.Errorf("%s: Bindings %d entries, AllBindings %d, ports %d", name, len(b), len(all[name]), len(used))
		}
	}

	types := map[string]int{}
	for _, n := range v.Networks() {
		types[n.NetworkType]++
		if subs := v.SubnetsOfNetwork(n.ID); len(subs) != 1 || subs[0].IPVersion != 4 {
			t.Fatalf("network %s: subnets %v", n.ID, subs)
		}
	}
	if types[fsm.NetTypeVXLAN] != 80 || types[fsm.NetTypeGeneve] != 10 || types[fsm.NetTypeGRE] != 10 {
		t.Errorf("network types %v", types)
	}
	for _, g := range v.SecurityGroups() {
		rules := v.RulesOfSecurityGroup(g.ID)
		remote := 0
		for _, r := range rules {
			if r.RemoteGroupID == g.ID {
				remote++
			}
		}
		if len(rules) != 4 || remote != 1 {
			t.Errorf("group %s: %d rules, %d remote-group", g.ID, len(rules), remote)
		}
	}
	for _, c := range v.ChassisList() {
		if !c.Up || c.TunnelIP == "" || len(c.Encaps) == 0 {
			t.Errorf("chassis %+v", c)
		}
	}
}

func TestBuildOptions(t *testing.T) {
	spec := Spec{Ports: 95, PortsPerNetwork: 30, NetworksPerRouter: 2, RulesPerPort: 7, Chassis: 3,
		AddressPairEvery: -1, NoPortSecurityEvery: -1, RouteEvery: 1, OverlappingCIDRs: true, Batch: 10, Seed: 7}
	f, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	v := f.State().Read()
	exp := spec.Expect()
	if len(v.Networks()) != 4 || exp.Networks != 4 || len(v.Routers()) != 2 || len(v.ChassisList()) != 3 ||
		len(v.SecurityGroupRules()) != 7 || len(v.Ports()) != 99 || exp.AddressPairs != 0 || exp.ExtraRoutes != 2 {
		t.Fatalf("expect %+v; state %d networks %d routers %d rules %d ports", exp,
			len(v.Networks()), len(v.Routers()), len(v.SecurityGroupRules()), len(v.Ports()))
	}
	cidrs := map[string]int{}
	for _, s := range v.Subnets() {
		cidrs[s.CIDR]++
	}
	if len(cidrs) != 2 {
		t.Errorf("overlapping CIDRs: %v", cidrs)
	}
	// Same Spec, same state.
	f2, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := dump(v), dump(f2.State().Read()); a != b {
		t.Error("Build is not deterministic")
	}
}

// TestBindCommands: binding by commands gives the same state, but for the
// ports' revisions and indexes.
func TestBindCommands(t *testing.T) {
	spec := DefaultSpec(300)
	f1, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.BindCommands = true
	f2, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := f1.State().Read(), f2.State().Read()
	if v2.Revision() <= v1.Revision() {
		t.Fatalf("revisions %d and %d", v1.Revision(), v2.Revision())
	}
	p1, p2 := v1.Ports(), v2.Ports()
	if len(p1) != len(p2) {
		t.Fatalf("%d and %d ports", len(p1), len(p2))
	}
	for i := range p1 {
		a, b := p1[i].Copy(), p2[i].Copy()
		b.RevisionNumber, b.ModifyIndex, b.CreateIndex = a.RevisionNumber, a.ModifyIndex, a.CreateIndex
		if x, y := fmt.Sprintf("%+v", *a), fmt.Sprintf("%+v", *b); x != y {
			t.Fatalf("ports differ:\n%s\n%s", x, y)
		}
	}
	if b1, b2 := AllBindings(v1), AllBindings(v2); !maps.EqualFunc(b1, b2, maps.Equal) {
		t.Fatal("bindings differ")
	}
}

func dump(v *fsm.View) string {
	var objs []any
	for _, p := range v.Ports() {
		objs = append(objs, p)
	}
	for _, n := range v.Networks() {
		objs = append(objs, n)
	}
	for _, s := range v.Subnets() {
		objs = append(objs, s)
	}
	for _, g := range v.SecurityGroups() {
		objs = append(objs, g)
	}
	for _, r := range v.SecurityGroupRules() {
		objs = append(objs, r)
	}
	for _, r := range v.Routers() {
		objs = append(objs, r)
	}
	for _, c := range v.ChassisList() {
		objs = append(objs, c)
	}
	for _, f := range v.FloatingIPs() {
		objs = append(objs, f)
	}
	b, err := json.Marshal(objs)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// runOps runs n steps and checks the driver's invariants after each.
func runOps(t *testing.T, f *fsm.FSM, seed int64, n int) (descs []string, ok int, tables map[string]bool) {
	t.Helper()
	o := NewOps(f, seed)
	tables = map[string]bool{}
	for i := 0; i < n; i++ {
		desc, err := o.Step()
		if err == nil {
			ok++
		} else if _, isFSM := fsm.AsError(err); !isFSM {
			t.Fatalf("step %d %s: %v", i, desc, err)
		}
		descs = append(descs, fmt.Sprintf("%s => %v", desc, err))
		v := f.State().Read()
		if v.Revision() > o.Index() {
			t.Fatalf("revision %d beyond index %d", v.Revision(), o.Index())
		}
		counts := map[string]int{
			fsm.TableChassis: len(v.ChassisList()), fsm.TableNetworks: len(v.Networks()),
			fsm.TableSubnets: len(v.Subnets()), fsm.TablePorts: len(v.Ports()),
			fsm.TableSecurityGroups: len(v.SecurityGroups()), fsm.TableSecurityGroupRules: len(v.SecurityGroupRules()),
			fsm.TableRouters: len(v.Routers()), fsm.TableFloatingIPs: len(v.FloatingIPs()),
			fsm.TableFWRules: len(v.FirewallRules()), fsm.TableFWPolicies: len(v.FirewallPolicies()),
			fsm.TableFWGroups: len(v.FirewallGroups()),
		}
		for tbl, c := range counts {
			if c > 0 {
				tables[tbl] = true
			}
		}
		used := map[string]bool{}
		for _, p := range v.Ports() {
			if p.BindingHostID == "" || p.DeviceOwner == fsm.DeviceOwnerRouterGateway {
				continue // gateway ports are bound by scheduling, not plugged
			}
			key := fmt.Sprintf("%s/%d", p.BindingHostID, p.BindingOFPort)
			if used[key] || p.BindingOFPort < 10 {
				t.Fatalf("step %d %s: bad or duplicate binding %s", i, desc, key)
			}
			used[key] = true
		}
	}
	if cs := o.Chassis(); len(cs) < 2 || !slices.IsSorted(cs) {
		t.Fatalf("Chassis() = %v", cs)
	}
	return descs, ok, tables
}

func TestOps(t *testing.T) {
	// 700: the firewall operations take a share of the steps, and a
	// floating IP needs a router with a gateway first.
	const steps = 700
	allTables := []string{fsm.TableChassis, fsm.TableNetworks, fsm.TableSubnets, fsm.TablePorts,
		fsm.TableSecurityGroups, fsm.TableSecurityGroupRules, fsm.TableRouters, fsm.TableFloatingIPs,
		fsm.TableFWRules, fsm.TableFWPolicies, fsm.TableFWGroups}
	for _, start := range []string{"empty", "built"} {
		t.Run(start, func(t *testing.T) {
			newFSM := func() *fsm.FSM {
				if start == "empty" {
					return fsm.New(slog.New(slog.DiscardHandler))
				}
				f, err := Build(DefaultSpec(200))
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			f := newFSM()
			descs, ok, tables := runOps(t, f, 42, steps)
			rate := float64(ok) / steps
			t.Logf("%d/%d steps applied (%.1f%%)", ok, steps, 100*rate)
			if rate <= 0.8 {
				for _, d := range descs {
					t.Log(d)
				}
				t.Fatalf("only %.1f%% of the steps applied", 100*rate)
			}
			for _, tbl := range allTables {
				if !tables[tbl] {
					t.Errorf("table %s never had rows", tbl)
				}
			}
			// Same seed, same operations, same state.
			f2 := newFSM()
			descs2, _, _ := runOps(t, f2, 42, steps)
			if !slices.Equal(descs, descs2) {
				t.Fatal("Ops is not deterministic")
			}
			if a, b := dump(f.State().Read()), dump(f2.State().Read()); a != b {
				t.Fatal("Ops states differ")
			}
		})
	}
}

// TestOpsKinds checks that every kind of operation gets applied at least
// once over a longer run.
func TestOpsKinds(t *testing.T) {
	f, err := Build(DefaultSpec(100))
	if err != nil {
		t.Fatal(err)
	}
	o := NewOps(f, 7)
	applied := map[string]int{}
	rejected := map[string]int{}
	for range 2000 {
		desc, err := o.Step()
		kind, _, _ := strings.Cut(desc, ": ")
		if err != nil {
			rejected[kind]++
		} else {
			applied[kind]++
		}
	}
	for _, w := range o.ops {
		if w.name != "invalid" && applied[w.name] == 0 {
			t.Errorf("%s never applied (%d rejected)", w.name, rejected[w.name])
		}
	}
	t.Logf("applied %v", applied)
	t.Logf("rejected %v", rejected)
}

func BenchmarkBuild(b *testing.B) {
	spec := DefaultSpec(10000)
	for b.Loop() {
		if _, err := Build(spec); err != nil {
			b.Fatal(err)
		}
	}
}
