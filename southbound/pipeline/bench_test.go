package pipeline_test

import (
	"fmt"
	"maps"
	"runtime"
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/pipeline"
	"neutrino/southbound/pipeline/topology"
)

// benchTopology builds topology.DefaultSpec(ports) (10 ports per network,
// 10 networks per router, 3 rules + a remote-group rule per group) with
// every port on one chassis: the worst case for a chassis, every network,
// router and rule present.
func benchTopology(b *testing.B, ports int) (*fsm.FSM, pipeline.Facts) {
	b.Helper()
	spec := topology.DefaultSpec(ports)
	spec.Chassis = 1
	f, err := topology.Build(spec)
	if err != nil {
		b.Fatal(err)
	}
	v := f.State().Read()
	name := topology.ChassisName(0)
	return f, pipeline.Facts{Chassis: name, Bindings: topology.Bindings(v, name), Tunnels: tunnels}
}

// BenchmarkCompileFull compiles one chassis fully (see benchTopology).
func BenchmarkCompileFull(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) {
			f, facts := benchTopology(b, n)
			v := f.State().Read()
			b.ResetTimer()
			var flows int
			for i := 0; i < b.N; i++ {
				flows = len(pipeline.Compile(v, facts))
			}
			b.ReportMetric(float64(flows), "flows")
		})
	}
}

// BenchmarkCompileDualStack compiles one chassis fully for a 100-router
// topology (10,000 ports, as benchTopology) IPv4-only and dual-stack
// (topology.Spec.DualStack: an IPv6 subnet, address and router interface
// on every network): the cost IPv6 routing adds.
func BenchmarkCompileDualStack(b *testing.B) {
	for _, dual := range []bool{false, true} {
		b.Run(fmt.Sprintf("dualstack=%v", dual), func(b *testing.B) {
			spec := topology.DefaultSpec(10000)
			spec.Chassis, spec.DualStack = 1, dual
			f, err := topology.Build(spec)
			if err != nil {
				b.Fatal(err)
			}
			v := f.State().Read()
			name := topology.ChassisName(0)
			facts := pipeline.Facts{Chassis: name, Bindings: topology.Bindings(v, name), Tunnels: tunnels}
			b.ResetTimer()
			var flows int
			for i := 0; i < b.N; i++ {
				flows = len(pipeline.Compile(v, facts))
			}
			b.ReportMetric(float64(flows), "flows")
			b.ReportMetric(float64(len(v.Routers())), "routers")
		})
	}
}

// BenchmarkCompileIncremental adds one port (bound to the chassis, in the
// default security group of its network) to a 10k-port topology and
// measures the incremental compile of that change; the port is deleted
// again outside the timer.
func BenchmarkCompileIncremental(b *testing.B) {
	f, facts := benchTopology(b, 10000)
	v := f.State().Read()
	c := pipeline.NewCompiler()
	c.Update(v, nil, facts)
	tmpl := v.Ports()[0]
	for _, p := range v.Ports() {
		if p.DeviceOwner == "compute:nova" && p.PortSecurityEnabled {
			tmpl = p
			break
		}
	}
	apply, rev := applier(b, f), f.State().Read().Revision()
	var delta int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := tmpl.Copy()
		p.ID, p.MACAddress = "bench-port", "fa:16:3e:ff:ff:fe"
		p.FixedIPs = []fsm.FixedIP{{SubnetID: tmpl.FixedIPs[0].SubnetID, IPAddress: benchIP(tmpl.FixedIPs[0].IPAddress)}}
		p.BindingOFPort = 60000
		apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{p}})
		facts.Bindings = maps.Clone(facts.Bindings)
		facts.Bindings[p.ID] = 60000
		nv := f.State().Read()
		changes, ok := f.ChangesSince(rev)
		if !ok {
			b.Fatal("history lost")
		}
		b.StartTimer()
		add, remove := c.Update(nv, changes, facts)
		b.StopTimer()
		delta = len(add) + len(remove)
		rev = nv.Revision()
		apply(fsm.CmdPortDelete, fsm.PortDeleteRequest{ID: p.ID})
		facts.Bindings = maps.Clone(facts.Bindings)
		delete(facts.Bindings, p.ID)
		changes, _ = f.ChangesSince(rev)
		nv = f.State().Read()
		c.Update(nv, changes, facts)
		rev = nv.Revision()
		b.StartTimer()
	}
	b.ReportMetric(float64(delta), "flows/delta")
}

// applier applies commands to f as Raft would (topology.Applier), failing
// the benchmark on a refusal.
func applier(b *testing.B, f *fsm.FSM) func(fsm.CommandType, any) {
	a := topology.NewApplier(f)
	return func(t fsm.CommandType, body any) {
		if _, err := a.Apply(t, body); err != nil {
			b.Fatal(err)
		}
	}
}

// benchIP is an address of the template's subnet no port uses (.250).
func benchIP(ip string) string {
	var a, b2, c, d int
	fmt.Sscanf(ip, "%d.%d.%d.%d", &a, &b2, &c, &d)
	return fmt.Sprintf("%d.%d.%d.250", a, b2, c)
}

// BenchmarkLeaderMemory reports the heap of a leader's state at 100k ports
// (the FSM) and of one chassis' compiled flows with all of them present.
func BenchmarkLeaderMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var m0, m1, m2 runtime.MemStats
		runtime.ReadMemStats(&m0)
		f, facts := benchTopology(b, 100000)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		c := pipeline.NewCompiler()
		c.Update(f.State().Read(), nil, facts)
		runtime.GC()
		runtime.ReadMemStats(&m2)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(1<<20), "MiB-state")
		b.ReportMetric(float64(m2.HeapAlloc-m1.HeapAlloc)/(1<<20), "MiB-compiled")
		b.ReportMetric(float64(c.Stats().Flows), "flows")
		runtime.KeepAlive(c)
		runtime.KeepAlive(f)
	}
}

// BenchmarkCompileSharedGroupPort adds one port to a security group that
// its rules name as remote (the default group, in a 10k-port topology
// over 20 chassis) and updates every chassis' compiler for the change:
// unshared, each compiler recompiles the rules of the group on its own;
// shared (pipeline.Shared, as the controller's workers are), the rules'
// flows and their change are derived once and every chassis applies the
// change. The port is deleted again outside the timer.
func BenchmarkCompileSharedGroupPort(b *testing.B) {
	for _, share := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", share), func(b *testing.B) {
			spec := topology.DefaultSpec(10000)
			spec.Chassis = 20
			f, err := topology.Build(spec)
			if err != nil {
				b.Fatal(err)
			}
			v := f.State().Read()
			shared := pipeline.NewShared()
			type chassis struct {
				c     *pipeline.Compiler
				facts pipeline.Facts
			}
			var all []chassis
			for i := range spec.Chassis {
				name := topology.ChassisName(i)
				c := pipeline.NewCompiler()
				if share {
					c.Share(shared)
				}
				facts := pipeline.Facts{Chassis: name, Bindings: topology.Bindings(v, name), Tunnels: tunnels}
				c.Update(v, nil, facts)
				all = append(all, chassis{c, facts})
			}
			var tmpl *fsm.Port
			for _, p := range v.Ports() {
				if p.DeviceOwner == "compute:nova" && p.PortSecurityEnabled && len(p.SecurityGroups) > 0 {
					tmpl = p
					break
				}
			}
			if tmpl == nil {
				b.Fatal("no VM port with a security group")
			}
			apply, rev := applier(b, f), f.State().Read().Revision()
			update := func() (delta int) {
				nv := f.State().Read()
				changes, ok := f.ChangesSince(rev)
				if !ok {
					b.Fatal("history lost")
				}
				for _, ch := range all {
					add, remove := ch.c.Update(nv, changes, ch.facts)
					delta += len(add) + len(remove)
				}
				rev = nv.Revision()
				return delta
			}
			var delta int
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p := tmpl.Copy()
				p.ID, p.MACAddress, p.BindingHostID = "bench-port", "fa:16:3e:ff:ff:fe", ""
				p.FixedIPs = []fsm.FixedIP{{SubnetID: tmpl.FixedIPs[0].SubnetID, IPAddress: benchIP(tmpl.FixedIPs[0].IPAddress)}}
				apply(fsm.CmdPortCreate, fsm.PortCreateRequest{Ports: []*fsm.Port{p}})
				b.StartTimer()
				delta = update()
				b.StopTimer()
				apply(fsm.CmdPortDelete, fsm.PortDeleteRequest{ID: p.ID})
				update()
				b.StartTimer()
			}
			if delta == 0 {
				b.Fatal("the port changed no chassis' flows")
			}
			b.ReportMetric(float64(delta), "flows/delta")
		})
	}
}
