package scenarios_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// network namespaces on this machine). Every scenario runs unchanged on
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
		return netnsDriver(tb)
	default:
		tb.Fatalf("%s=%q: no such driver (netns)", driverEnv, driverName)
		return nil
	}
}

// netnsDriver is the namespace lab, in a directory and with a namespace
// prefix of its own; after Down no namespace of it may be left.
func netnsDriver(tb testing.TB) scenarios.Driver {
	tmp, err := os.MkdirTemp("", "sc") // short: OVS socket paths live under it
	if err != nil {
		tb.Fatal(err)
	}
	prefix := fmt.Sprintf("sc%d-%d-", os.Getpid()%100000, labSeq.Add(1))
	dir := filepath.Join(tmp, "lab")
	d := lab.NewDriver(dir, prefix, binary, nil)
	tb.Cleanup(func() {
		if tb.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "*", "agent.log"))
			ovs, _ := filepath.Glob(filepath.Join(dir, "*", "ovs", "ovs-vswitchd.log"))
			for _, l := range append(logs, ovs...) {
				b, _ := os.ReadFile(l)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				if len(lines) > 25 {
					lines = lines[len(lines)-25:]
				}
				tb.Logf("%s (tail):\n%s", l, strings.Join(lines, "\n"))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Down(ctx); err != nil && !errors.Is(err, lab.ErrNoLab) {
			tb.Errorf("lab down: %v", err)
		}
		// VMs included: down leaves no namespace of the lab.
		if ents, err := os.ReadDir("/run/netns"); err == nil {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), prefix) {
					tb.Errorf("lab down left namespace %s", e.Name())
				}
			}
		}
		os.RemoveAll(tmp)
	})
	return d
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
	d := newDriver(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
