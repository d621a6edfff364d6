package sim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/cluster/clustertest"
	"neutrino/scenarios/sim"
)

func ctx60() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute) // a loaded machine, a failover
}

// topo is what the test created and where each port is plugged.
type topo struct {
	nets    []string // network ids
	subnets []string // subnet ids, same index
	router  string
	group   string          // a security group with a remote-group rule
	plugged map[string]int  // port id -> chassis index
	grouped map[string]bool // port ids created into group
	// apiTime and plugTime sum createPorts' bulk creates and plugs.
	apiTime, plugTime time.Duration
	netOf             map[string]int // port id -> network index
	ifaces            map[int]bool   // networks attached to the router
	chassis           []*sim.Chassis
	rng               *rand.Rand
}

func mustOK(tb testing.TB, what string, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

func buildTopo(tb testing.TB, nc *gophercloud.ServiceClient, pool *sim.Pool, nets int, rng *rand.Rand) *topo {
	tb.Helper()
	t := &topo{plugged: map[string]int{}, grouped: map[string]bool{}, netOf: map[string]int{}, ifaces: map[int]bool{}, chassis: pool.Chassis, rng: rng}
	ctx, cancel := ctx60()
	defer cancel()
	for i := range nets {
		n, err := networks.Create(ctx, nc, networks.CreateOpts{Name: fmt.Sprintf("simnet%d", i)}).Extract()
		mustOK(tb, "create network", err)
		s, err := subnets.Create(ctx, nc, subnets.CreateOpts{NetworkID: n.ID, CIDR: fmt.Sprintf("10.%d.0.0/16", i+1),
			IPVersion: gophercloud.IPv4}).Extract()
		mustOK(tb, "create subnet", err)
		t.nets, t.subnets = append(t.nets, n.ID), append(t.subnets, s.ID)
	}
	r, err := routers.Create(ctx, nc, routers.CreateOpts{Name: "simr"}).Extract()
	mustOK(tb, "create router", err)
	t.router = r.ID
	for i := 0; i < nets/2; i++ {
		_, err := routers.AddInterface(ctx, nc, r.ID, routers.AddInterfaceOpts{SubnetID: t.subnets[i]}).Extract()
		mustOK(tb, "add router interface", err)
		t.ifaces[i] = true
	}
	g, err := groups.Create(ctx, nc, groups.CreateOpts{Name: "simsg"}).Extract()
	mustOK(tb, "create group", err)
	t.group = g.ID
	_, err = rules.Create(ctx, nc, rules.CreateOpts{SecGroupID: g.ID, Direction: rules.DirIngress, EtherType: rules.EtherType4,
		Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22, RemoteGroupID: g.ID}).Extract()
	mustOK(tb, "create remote-group rule", err)
	return t
}

// createPorts creates n ports in bulk (Neutron's {"ports": [...]}),
// spread over the networks, and plugs each on a random chassis.
func (t *topo) createPorts(tb testing.TB, nc *gophercloud.ServiceClient, n int) []string {
	tb.Helper()
	var ids []string
	for start := 0; start < n; start += 100 {
		ctx, cancel := ctx60() // each batch: a bulk create and its plugs
		defer cancel()
		t0 := time.Now()
		var body []map[string]any
		var netIdx []int
		var inGroup []bool
		for i := start; i < n && i < start+100; i++ {
			ni := t.rng.IntN(len(t.nets))
			p := map[string]any{"network_id": t.nets[ni], "name": fmt.Sprintf("simp%d", i)}
			if i%3 == 0 {
				p["security_groups"] = []string{t.group}
			}
			body = append(body, p)
			netIdx = append(netIdx, ni)
			inGroup = append(inGroup, i%3 == 0)
		}
		var out struct {
			Ports []ports.Port `json:"ports"`
		}
		_, err := nc.Post(ctx, nc.ServiceURL("ports"), map[string]any{"ports": body}, &out, &gophercloud.RequestOpts{OkCodes: []int{201}})
		mustOK(tb, "bulk create ports", err)
		if len(out.Ports) != len(body) {
			tb.Fatalf("bulk create: %d ports back for %d asked", len(out.Ports), len(body))
		}
		t.apiTime += time.Since(t0)
		t0 = time.Now()
		// Plugged on every chassis at once, as hypervisors do.
		byChassis := map[int][]string{}
		for i, p := range out.Ports {
			t.netOf[p.ID] = netIdx[i]
			if inGroup[i] {
				t.grouped[p.ID] = true
			}
			c := t.rng.IntN(len(t.chassis))
			byChassis[c] = append(byChassis[c], p.ID)
			t.plugged[p.ID] = c
			ids = append(ids, p.ID)
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(out.Ports))
		for c, ps := range byChassis {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, id := range ps {
					if err := t.chassis[c].Plug(ctx, id); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			tb.Fatalf("plug: %v", err)
		}
		t.plugTime += time.Since(t0)
	}
	return ids
}

func (t *topo) plug(tb testing.TB, id string, chassis int) {
	tb.Helper()
	ctx, cancel := ctx60()
	defer cancel()
	mustOK(tb, "plug", t.chassis[chassis].Plug(ctx, id))
	t.plugged[id] = chassis
}

func (t *topo) unplug(tb testing.TB, id string) {
	tb.Helper()
	ctx, cancel := ctx60()
	defer cancel()
	mustOK(tb, "unplug", t.chassis[t.plugged[id]].Unplug(ctx, id))
	delete(t.plugged, id)
}

func (t *topo) randomPort() string {
	// Sorted, so a seed replays the same sequence (map order is random).
	ids := make([]string, 0, len(t.plugged))
	for id := range t.plugged {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return ""
	}
	slices.Sort(ids)
	return ids[t.rng.IntN(len(ids))]
}

// randomWrite does one random change through the API (or the chassis'
// database, for plugging) and says what it did.
func (t *topo) randomWrite(tb testing.TB, nc *gophercloud.ServiceClient) string {
	tb.Helper()
	ctx, cancel := ctx60()
	defer cancel()
	switch op := t.rng.IntN(7); op {
	case 0:
		ids := t.createPorts(tb, nc, 1+t.rng.IntN(5))
		return fmt.Sprintf("create %d ports", len(ids))
	case 1:
		id := t.randomPort()
		t.unplug(tb, id)
		mustOK(tb, "delete port", ports.Delete(ctx, nc, id).ExtractErr())
		return "delete port " + id
	case 2:
		id := t.randomPort()
		up := t.rng.IntN(2) == 0
		_, err := ports.Update(ctx, nc, id, ports.UpdateOpts{AdminStateUp: &up}).Extract()
		mustOK(tb, "port admin state", err)
		return fmt.Sprintf("port %s admin_state_up=%v", id, up)
	case 3:
		id := t.randomPort()
		t.unplug(tb, id)
		to := t.rng.IntN(len(t.chassis))
		t.plug(tb, id, to)
		return fmt.Sprintf("move port %s to %s", id, t.chassis[to].Name())
	case 4:
		i := len(t.nets)/2 + t.rng.IntN(len(t.nets)-len(t.nets)/2)
		if t.ifaces[i] {
			_, err := routers.RemoveInterface(ctx, nc, t.router, routers.RemoveInterfaceOpts{SubnetID: t.subnets[i]}).Extract()
			mustOK(tb, "remove router interface", err)
			delete(t.ifaces, i)
			return fmt.Sprintf("router interface off net %d", i)
		}
		_, err := routers.AddInterface(ctx, nc, t.router, routers.AddInterfaceOpts{SubnetID: t.subnets[i]}).Extract()
		mustOK(tb, "add router interface", err)
		t.ifaces[i] = true
		return fmt.Sprintf("router interface on net %d", i)
	case 5:
		port := 1000 + t.rng.IntN(60000)
		_, err := rules.Create(ctx, nc, rules.CreateOpts{SecGroupID: t.group, Direction: rules.DirIngress, EtherType: rules.EtherType4,
			Protocol: rules.ProtocolUDP, PortRangeMin: port, PortRangeMax: port, RemoteGroupID: t.group}).Extract()
		mustOK(tb, "create rule", err)
		return fmt.Sprintf("remote-group rule udp %d", port)
	default:
		id := t.randomPort()
		sgs := []string{t.group}
		_, err := ports.Update(ctx, nc, id, ports.UpdateOpts{SecurityGroups: &sgs}).Extract()
		mustOK(tb, "port security groups", err)
		return "port " + id + " into the remote group"
	}
}

// checkAll waits until every simulated switch holds exactly the flows a
// full compile of the leader's state gives its chassis, all of the
// leader's round.
func checkAll(tb testing.TB, e *env, tp *topo, timeout time.Duration) {
	tb.Helper()
	start := time.Now()
	clustertest.Eventually(tb, timeout, func() error {
		l := e.leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		v := l.FSM().State().Read()
		round := uint16(l.Cluster().Term())
		ctx, cancel := ctx60()
		defer cancel()
		// Compare only once every switch acknowledged this revision: a
		// full compile per chassis is not cheap, and polling with it
		// would take the CPU the cluster needs to converge.
		if err := l.Controller().WaitRealizedAll(ctx, v.Revision()); err != nil {
			return err
		}
		// Every plugged port is bound where it is plugged: without this a
		// cluster that bound nothing would compile and match as well.
		for id, ci := range tp.plugged {
			if p := v.Port(id); p == nil || p.BindingHostID != tp.chassis[ci].Name() {
				return fmt.Errorf("port %s plugged on %s is not bound there (%+v)", id, tp.chassis[ci].Name(), p)
			}
		}
		var bad []string
		for _, c := range e.pool.Chassis {
			diff, err := c.Check(ctx, v, round)
			if err != nil {
				return err
			}
			if diff != "" {
				bad = append(bad, c.Name()+": "+diff)
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%d of %d chassis differ at revision %d; first: %s", len(bad), len(e.pool.Chassis), v.Revision(), bad[0])
		}
		if n := l.Controller().CompileMismatches(); n != 0 {
			return fmt.Errorf("leader counted %d incremental/full compile mismatches", n)
		}
		return nil
	})
	tb.Logf("every switch equals a full compile %s after the last write", time.Since(start).Round(time.Millisecond))
}

// TestSimulatedChassisMatchFullCompile: 3 servers, simulated chassis,
// ports built through the API, random writes with a leader stop in the
// middle; every simulated switch must end with exactly the flows a full
// compile gives its chassis, of the new leader's round only.
func TestSimulatedChassisMatchFullCompile(t *testing.T) {
	// Sized for make test on a shared 2-core machine: bigger runs (20
	// chassis and 1,000 ports lost Raft leadership in this one process at
	// load average 30) through the environment.
	chassis, portCount, writes := 10, 300, 20
	if raceEnabled {
		chassis, portCount, writes = 6, 150, 16
	}
	nChassis := envInt("NEUTRINO_SIM_CHASSIS", chassis)
	nPorts := envInt("NEUTRINO_SIM_PORTS", portCount)
	nWrites := envInt("NEUTRINO_SIM_WRITES", writes)
	seed, err := strconv.ParseUint(os.Getenv("NEUTRINO_SIM_SEED"), 10, 64)
	if err != nil {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (NEUTRINO_SIM_SEED), %d chassis, %d ports, %d writes", seed, nChassis, nPorts, nWrites)
	rng := rand.New(rand.NewPCG(seed, seed))
	start := time.Now()
	prof := phaseProfile(t, "start")
	e := newEnv(t, 3, nChassis)
	prof()
	t.Logf("3 servers and %d chassis up in %s", nChassis, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	prof = phaseProfile(t, "build")
	tp := buildTopo(t, e.api(), e.pool, 8, rng)
	t.Logf("8 networks, a router and a group built in %s", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	tp.createPorts(t, e.api(), nPorts)
	prof()
	t.Logf("%d ports created and plugged in %s", nPorts, time.Since(start).Round(time.Millisecond))
	checkAll(t, e, tp, 2*time.Minute)
	prof = phaseProfile(t, "writes")
	defer prof()

	old := e.leader()
	oldTerm := old.Cluster().Term()
	for i := range nWrites {
		wstart := time.Now()
		what := tp.randomWrite(t, e.api())
		t.Logf("write %d: %s (%s)", i, what, time.Since(wstart).Round(time.Millisecond))
		if i == nWrites/2 {
			t.Logf("stopping the leader %s (term %d)", old.Cluster().Status().Node, oldTerm)
			e.stop(old)
			clustertest.Eventually(t, 30*time.Second, func() error {
				if l := e.leader(); l == nil || l.Cluster().Term() == oldTerm {
					return fmt.Errorf("no new leader yet")
				}
				return nil
			})
		}
	}
	checkAll(t, e, tp, 2*time.Minute)
}
