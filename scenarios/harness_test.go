package scenarios_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"neutrino/scenarios"
	"neutrino/scenarios/harness"
	"neutrino/scenarios/lab"
	"neutrino/southbound/ovsproc"
)

// The driver is chosen with NEUTRINO_SCENARIO_DRIVER: "netns" (default,
// network namespaces on this machine) or "vagrant" (the Vagrantfile on the
// docker provider: vagrant_test.go; never skipped). Every scenario runs unchanged on
// each driver: it sees the lab only through scenarios.Driver, the API and
// commands run on nodes (package harness).
const driverEnv = "NEUTRINO_SCENARIO_DRIVER"

var (
	driverName string
	binary     string
	buildErr   error
	skipWhy    error
	labSeq     atomic.Int32
)

func TestMain(m *testing.M) {
	driverName = os.Getenv(driverEnv)
	if driverName == "" {
		driverName = "netns"
	}
	if driverName == "netns" {
		skipWhy = ovsproc.Available()
	}
	if skipWhy != nil {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "scenario-bin-")
	if err != nil {
		buildErr = err
		os.Exit(m.Run())
	}
	binary = filepath.Join(dir, "neutrino")
	if out, err := exec.Command("go", "build", "-tags", "hashicorpmetrics", "-o", binary, "neutrino/cmd/neutrino").CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build: %w: %s", err, out)
	}
	code := m.Run()
	if !downShared() && code == 0 {
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// newDriver returns the selected driver for tb, and registers in tb's
// cleanup what the driver needs beyond Down (leftover checks, logs of a
// failed test).
func newDriver(tb testing.TB) scenarios.Driver {
	tb.Helper()
	switch driverName {
	case "netns":
		d, teardown := netnsDriver()
		tb.Cleanup(func() {
			for _, err := range teardown(tb.Failed(), tb.Logf) {
				tb.Error(err)
			}
		})
		return d
	case "vagrant":
		d, teardown := vagrantDriver()
		tb.Cleanup(func() {
			for _, err := range teardown(tb.Failed(), tb.Logf) {
				tb.Error(err)
			}
		})
		return d
	default:
		tb.Fatalf("%s=%q: no such driver (netns, vagrant)", driverEnv, driverName)
		return nil
	}
}

// independentDriver is the selected driver, built without a test (for a
// shared lab), and its teardown.
func independentDriver() (scenarios.Driver, func(failed bool, logf func(string, ...any)) []error) {
	if driverName == "vagrant" {
		return vagrantDriver()
	}
	return netnsDriver()
}

// netnsDriver is the namespace lab, in a directory and with a namespace
// prefix of its own. teardown takes it down (with the agents' and
// switches' log tails first if failed) and reports what it left: after
// Down no namespace of the lab may be left.
func netnsDriver() (d *lab.Driver, teardown func(failed bool, logf func(string, ...any)) []error) {
	tmp, err := os.MkdirTemp("", "sc") // short: OVS socket paths live under it
	if err != nil {
		return nil, func(bool, func(string, ...any)) []error { return []error{err} }
	}
	prefix := fmt.Sprintf("sc%d-%d-", os.Getpid()%100000, labSeq.Add(1))
	dir := filepath.Join(tmp, "lab")
	d = lab.NewDriver(dir, prefix, binary, nil)
	return d, func(failed bool, logf func(string, ...any)) []error {
		if failed {
			logs, _ := filepath.Glob(filepath.Join(dir, "*", "agent.log"))
			ovs, _ := filepath.Glob(filepath.Join(dir, "*", "ovs", "ovs-vswitchd.log"))
			for _, l := range append(logs, ovs...) {
				b, _ := os.ReadFile(l)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 25 {
					lines = lines[len(lines)-25:]
				}
				logf("%s (tail):\n%s", l, strings.Join(lines, "\n"))
			}
		}
		var errs []error
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Down(ctx); err != nil && !errors.Is(err, lab.ErrNoLab) {
			errs = append(errs, fmt.Errorf("lab down: %w", err))
		}
		// VMs included: down leaves no namespace of the lab.
		if ents, err := os.ReadDir("/run/netns"); err == nil {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), prefix) {
					errs = append(errs, fmt.Errorf("lab down left namespace %s", e.Name()))
				}
			}
		}
		os.RemoveAll(tmp)
		return errs
	}
}

// up brings a lab up for tb through the selected driver and takes it down
// when tb ends, whatever happened. A benchmark whose lab does not come up
// is skipped; a test fails.
func up(tb testing.TB, topo scenarios.Topology) *harness.Env {
	tb.Helper()
	if skipWhy != nil {
		tb.Skipf("the %s driver cannot run here: %v", driverName, skipWhy)
	}
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	if t, ok := tb.(*testing.T); ok && shareLabs() {
		return sharedUp(t, topo)
	}
	d := newDriver(tb)
	return upOn(tb, d, topo)
}

// shareLabs reports whether every scenario test runs on a shared lab
// (sharedUp), faults or not: by default on the Vagrant driver, where a
// `vagrant up` takes 35-80 s here against 2 s for a netns lab, so sharing
// is most of what keeps `make test` within its budget. A test leaves the
// lab settled (harness.Env.Settled: its faults undone, every node alive
// and realized) or fails; a failed test takes the lab down and the next
// one brings up a fresh lab. NEUTRINO_SCENARIO_SHARED=off gives each test
// that faults nodes a lab of its own (the netns default); =on shares on
// netns too.
func shareLabs() bool {
	switch os.Getenv("NEUTRINO_SCENARIO_SHARED") {
	case "off":
		return false
	case "on":
		return driverName == "netns" || driverName == "vagrant"
	}
	return driverName == "vagrant"
}

// suiteTopologies are the labs shared tests run on: a test whose topology
// is not one of them runs on the first that holds it. On Vagrant the
// partition and fault scenarios run on the pipeline lab (one chassis
// more, still no gateway: the fencing checks of a partitioned leader
// count on every chassis being a compute one), TestNodeFailures and the
// VPN scenarios on the external lab.
var suiteTopologies = []scenarios.Topology{harness.PipelineTopology, harness.ExternalTopology}

// suiteTopology is the topology a test asking for topo runs on.
func suiteTopology(topo scenarios.Topology) scenarios.Topology {
	if !shareLabs() || slices.Contains(suiteTopologies, topo) {
		return topo
	}
	for _, s := range suiteTopologies {
		if topo.Servers <= s.Servers && topo.Chassis <= s.Chassis && topo.Gateways <= s.Gateways && topo.ExternalChassis <= s.ExternalChassis {
			return s
		}
	}
	return topo
}

// upOn brings d's lab up for tb.
func upOn(tb testing.TB, d scenarios.Driver, topo scenarios.Topology) *harness.Env {
	tb.Helper()
	limit := 5 * time.Minute
	if driverName == "vagrant" {
		// `vagrant up` of 5-8 containers took 12-34 s here, and over 5
		// minutes while other work loaded the machine (load average 20+).
		limit = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	l, err := d.Up(ctx, topo)
	if err != nil {
		if _, bench := tb.(*testing.B); bench {
			tb.Skipf("lab cannot come up: %v", err)
		}
		tb.Fatalf("lab up: %v", err)
	}
	tb.Logf("lab up on %s (%d servers, %d chassis, %d gateways) in %s", driverName, topo.Servers, topo.Chassis, topo.Gateways, time.Since(start).Round(time.Millisecond))
	e := harness.New(tb, d, l)
	if len(e.Chassis) < topo.Chassis {
		tb.Fatalf("lab: want %d chassis, got %v", topo.Chassis, e.Chassis)
	}
	return e
}

// sharedLab is a lab several scenarios run on in turn (sharedUp).
type sharedLab struct {
	d        scenarios.Driver
	l        *scenarios.Lab
	teardown func(failed bool, logf func(string, ...any)) []error
}

// shared are the labs of sharedUp by topology; TestMain takes down those
// still up after the last test.
var shared = map[scenarios.Topology]*sharedLab{}

// sharedUp is up for scenarios that leave a lab as they found it once
// their objects are gone (no node faults): they run in turn on one lab of
// their topology. When tb ends its VMs and API objects are swept (a leak
// fails tb); a failed test takes the lab down with it, so the next one
// starts on a fresh lab. Drivers without a test-independent constructor
// (so far: all but netns and vagrant) give every test a lab of its own.
func sharedUp(tb testing.TB, topo scenarios.Topology) *harness.Env {
	tb.Helper()
	if driverName != "netns" && driverName != "vagrant" {
		return up(tb, topo)
	}
	if skipWhy != nil {
		tb.Skipf("the %s driver cannot run here: %v", driverName, skipWhy)
	}
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	topo = suiteTopology(topo)
	s := shared[topo]
	if s == nil {
		d, teardown := independentDriver()
		s = &sharedLab{d: d, teardown: teardown}
		shared[topo] = s
		failed := true
		defer func() {
			if failed {
				delete(shared, topo)
				for _, err := range teardown(true, tb.Logf) {
					tb.Error(err)
				}
			}
		}()
		s.l = upOn(tb, d, topo).Lab
		failed = false
	} else {
		tb.Logf("on the shared %s lab (%d servers, %d chassis, %d gateways)", driverName, topo.Servers, topo.Chassis, topo.Gateways)
	}
	e := harness.New(tb, s.d, s.l)
	tb.Cleanup(func() {
		if err := e.Sweep(); err != nil {
			tb.Errorf("sweeping the shared lab for the next scenario: %v", err)
		} else if err := e.WaitSettled(90 * time.Second); err != nil {
			tb.Errorf("the shared lab for the next scenario: %v", err)
		}
		if tb.Failed() {
			delete(shared, topo)
			for _, err := range s.teardown(true, tb.Logf) {
				tb.Error(err)
			}
		}
	})
	return e
}

// downShared takes down the shared labs; it returns false if one left
// something behind.
func downShared() bool {
	ok := true
	for topo, s := range shared {
		for _, err := range s.teardown(false, func(string, ...any) {}) {
			fmt.Fprintf(os.Stderr, "shared lab %+v: %v\n", topo, err)
			ok = false
		}
		delete(shared, topo)
	}
	return ok
}

// requireAPI skips the test when the API lacks a collection (404 on its
// list): the feature is not built yet. Any other failure fails the test.
func requireAPI(tb testing.TB, endpoint string, collections ...string) {
	tb.Helper()
	for _, c := range collections {
		r, err := harness.Call("GET", endpoint+"/v2.0/"+c, nil, nil)
		if err != nil {
			tb.Fatalf("GET /v2.0/%s: %v", c, err)
		}
		switch {
		case r.Status == 404:
			tb.Skipf("the API has no /v2.0/%s yet (404): this scenario needs it", c)
		case r.Status != 200:
			tb.Fatalf("GET /v2.0/%s: %d", c, r.Status)
		}
	}
}

// vagrantFullEnv set to 1 runs every part of the service scenarios on
// the Vagrant driver too.
const vagrantFullEnv = "NEUTRINO_VAGRANT_FULL"

// onlyFullOnVagrant skips the rest of a service scenario's part (what:
// the extra objects it makes) on the Vagrant driver unless
// NEUTRINO_VAGRANT_FULL=1: `make test` runs one load balancer, one VPN
// connection and the DHCP checks there, every part on netns.
func onlyFullOnVagrant(t *testing.T, what string) {
	t.Helper()
	if driverName == "vagrant" && os.Getenv(vagrantFullEnv) != "1" {
		t.Skipf("%s on Vagrant: only with %s=1 (the netns run covers it)", what, vagrantFullEnv)
	}
}
