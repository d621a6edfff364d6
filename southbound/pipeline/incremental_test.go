package pipeline_test

import (
	"fmt"
	"testing"

	"neutrino/fsm"
	"neutrino/southbound/flowsync"
	"neutrino/southbound/openflow"
	"neutrino/southbound/pipeline"
	"neutrino/southbound/pipeline/topology"
)

var tunnels = map[string]uint32{"vxlan": 1, "gre": 2, "geneve": 3}

// chassisCompile is one chassis' incremental compiler and the flow set its
// deltas describe (what a switch fed only the deltas would hold).
type chassisCompile struct {
	c      *pipeline.Compiler
	mirror map[openflow.Key]openflow.Flow
	rev    uint64
}

func (cc *chassisCompile) apply(add []openflow.Flow, remove []openflow.Key) {
	for _, k := range remove {
		delete(cc.mirror, k)
	}
	for _, f := range add {
		cc.mirror[f.Key()] = f
	}
}

func (cc *chassisCompile) mirrorFlows() []openflow.Flow {
	out := make([]openflow.Flow, 0, len(cc.mirror))
	for _, f := range cc.mirror {
		out = append(out, f)
	}
	return out
}

// TestIncrementalEqualsFull applies random state changes (500 per seed;
// firewall rules, policies and groups on router interfaces and VM ports
// among them) and checks after each that every chassis' incremental flow set, and the
// set its deltas build up, equal a full compile of the same state. The
// last run makes half the subnets IPv6 (routers with IPv6 interfaces and
// routes).
func TestIncrementalEqualsFull(t *testing.T) {
	fwFlows, vmFlows, runs := 0, 0, 0 // firewall group flows (router interface, VM port tables) seen over all runs and steps
	for _, run := range []struct {
		seed int64
		ipv6 int
	}{{1, 0}, {2, 0}, {3, 0}, {4, 50}} {
		seed := run.seed
		t.Run(fmt.Sprintf("seed=%d,ipv6=%d", seed, run.ipv6), func(t *testing.T) {
			f := fsm.New(nil)
			ops := topology.NewOps(f, seed)
			ops.IPv6Percent = run.ipv6
			compilers := map[string]*chassisCompile{}
			// The compilers share one cache of what they derive alike
			// (pipeline.Shared), as the controller's workers do; every
			// other chassis compiles one step behind, after the others
			// filled the cache at the newer state.
			shared := pipeline.NewShared()
			type pending struct {
				v       *fsm.View
				changes []fsm.Change
			}
			behind := map[string]*pending{}
			ok := 0
			runs++
			var hist []string
			check := func(step int, desc, name string, cc *chassisCompile, v *fsm.View, changes []fsm.Change) {
				facts := pipeline.Facts{Chassis: name, Bindings: topology.Bindings(v, name), Tunnels: tunnels, Physnets: topology.Physnets(v, name)}
				add, remove := cc.c.Update(v, changes, facts)
				// The keys handed to the syncer with the flows are theirs.
				if keys := cc.c.AddedKeys(); len(keys) != len(add) {
					t.Fatalf("step %d, chassis %s: %d added keys for %d flows", step, name, len(keys), len(add))
				} else {
					for i := range add {
						if keys[i] != add[i].Key() {
							t.Fatalf("step %d, chassis %s: added key %d is not its flow's: %s", step, name, i, add[i].String())
						}
					}
				}
				if step%50 == 0 {
					flows, keys := cc.c.FlowsKeyed()
					for i := range flows {
						if keys[i] != flows[i].Key() {
							t.Fatalf("step %d, chassis %s: FlowsKeyed key %d is not its flow's: %s", step, name, i, flows[i].String())
						}
					}
				}
				cc.apply(add, remove)
				cc.rev = v.Revision()
				full := pipeline.Compile(v, facts)
				if d := pipeline.Diff(cc.c.Flows(), full); d != "" {
					t.Fatalf("step %d (%s), chassis %s: incremental != full: %s\nlast ops: %v", step, desc, name, d, tail(hist, 8))
				}
				if d := pipeline.Diff(cc.mirrorFlows(), full); d != "" {
					t.Fatalf("step %d (%s), chassis %s: deltas != full: %s\nlast ops: %v", step, desc, name, d, tail(hist, 8))
				}
				for _, fl := range full {
					if (fl.Table == pipeline.TableFWEgressACL || fl.Table == pipeline.TableFWIngressACL) && flowsync.CookieKind(fl.Cookie) == pipeline.KindFirewall {
						fwFlows++
					}
					if (fl.Table == pipeline.TableFWVMEgress || fl.Table == pipeline.TableFWVMIngress) && flowsync.CookieKind(fl.Cookie) == pipeline.KindFirewall {
						vmFlows++
					}
				}
			}
			changesFor := func(step int, cc *chassisCompile, rev uint64) []fsm.Change {
				if rev == 0 {
					return nil
				}
				ch, ok := f.ChangesSince(rev)
				if !ok {
					t.Fatalf("step %d: change history lost", step)
				}
				return append([]fsm.Change{}, ch...)
			}
			for step := 0; step < 500; step++ {
				desc, err := ops.Step()
				if err == nil {
					ok++
				}
				hist = append(hist, desc)
				v := f.State().Read()
				for i, name := range ops.Chassis() {
					cc := compilers[name]
					if cc == nil {
						c := pipeline.NewCompiler()
						c.Share(shared)
						cc = &chassisCompile{c: c, mirror: map[openflow.Key]openflow.Flow{}}
						compilers[name] = cc
					}
					if i%2 == 0 {
						delete(behind, name)
						check(step, desc, name, cc, v, changesFor(step, cc, cc.rev))
					}
				}
				for i, name := range ops.Chassis() {
					if i%2 == 0 {
						continue
					}
					cc := compilers[name]
					rev := cc.rev
					if p := behind[name]; p != nil {
						check(step, desc+" (one step behind)", name, cc, p.v, p.changes)
						rev = p.v.Revision()
					}
					behind[name] = &pending{v: v, changes: changesFor(step, cc, rev)}
				}
			}
			if ok < 300 {
				t.Fatalf("only %d of 500 operations succeeded", ok)
			}
			total := 0
			for _, cc := range compilers {
				total += len(cc.mirror)
				if st := cc.c.Stats(); st.Incremental == 0 {
					t.Fatalf("no incremental compile happened: %+v", st)
				}
			}
			if total == 0 {
				t.Fatal("no flows at all: the random topology never bound a port")
			}
			t.Logf("%d operations succeeded, %d chassis, %d flows in total", ok, len(compilers), total)
		})
	}
	if fwFlows == 0 && runs == 4 && !t.Failed() {
		t.Fatal("no firewall group ever had flows: the random firewall objects never reached a present router interface")
	}
	if vmFlows == 0 && runs == 4 && !t.Failed() {
		t.Fatal("no firewall group had VM port flows: the random groups never held a plugged VM port")
	}
	t.Logf("firewall group flows seen: %d router interface, %d VM port", fwFlows, vmFlows)
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
