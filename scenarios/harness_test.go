package scenarios_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"neutrino/scenarios"
	"neutrino/scenarios/lab"
	"neutrino/southbound/ovsproc"
)

// The driver is chosen with NEUTRINO_SCENARIO_DRIVER: "netns" (default,
// network namespaces on this machine) or "vagrant" (the Vagrantfile on
// the docker provider: vagrant_test.go).
const driverEnv = "NEUTRINO_SCENARIO_DRIVER"

var (
	binary   string
	buildErr error
	skipWhy  error
)

func TestMain(m *testing.M) {
	switch d := os.Getenv(driverEnv); d {
	case "", "netns":
		skipWhy = ovsproc.Available()
	case "vagrant":
		// Never skipped: a machine without Docker fails the scenarios.
	default:
		skipWhy = fmt.Errorf("%s=%q: want netns or vagrant", driverEnv, d)
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

// up brings a lab up for t through the selected driver and takes it down
// when t ends, whatever happened.
func up(t *testing.T, topo scenarios.Topology) (scenarios.Driver, *scenarios.Lab) {
	t.Helper()
	if skipWhy != nil {
		t.Skipf("scenario needs root and Open vSwitch: %v", skipWhy)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if os.Getenv(driverEnv) == "vagrant" {
		return upVagrant(t, topo)
	}
	tmp, err := os.MkdirTemp("", "sc") // short: OVS socket paths live under it
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("sc%d-", os.Getpid()%100000)
	d := lab.NewDriver(filepath.Join(tmp, "lab"), prefix, binary, nil)
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, filepath.Join(tmp, "lab"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Down(ctx); err != nil && !errors.Is(err, lab.ErrNoLab) {
			t.Errorf("lab down: %v", err)
		}
		// VMs included: down leaves no namespace of the lab.
		if ents, err := os.ReadDir("/run/netns"); err == nil {
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), prefix) {
					t.Errorf("lab down left namespace %s", e.Name())
				}
			}
		}
		os.RemoveAll(tmp)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := d.Up(ctx, topo)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Logf("lab up (%d servers, %d chassis, %d gateways) in %s", topo.Servers, topo.Chassis, topo.Gateways, time.Since(start).Round(time.Millisecond))
	return d, l
}

func dumpLogs(t *testing.T, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "agent.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		t.Logf("%s:\n%s", l, strings.Join(lines, "\n"))
	}
}

// networkClient is a gophercloud Networking client of the lab's API, as
// `openstack --os-auth-type none` would use it (noauth: admin).
func networkClient(endpoint string) *gophercloud.ServiceClient {
	return &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 30 * time.Second}},
		Endpoint:       endpoint + "/",
		ResourceBase:   endpoint + "/v2.0/",
		Type:           "network",
	}
}

// requireAPI skips the test when the API lacks a collection (404 on its
// list): the feature is not built yet. Any other failure fails the test.
func requireAPI(t *testing.T, endpoint string, collections ...string) {
	t.Helper()
	for _, c := range collections {
		resp, err := http.Get(endpoint + "/v2.0/" + c)
		if err != nil {
			t.Fatalf("GET /v2.0/%s: %v", c, err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusNotFound:
			t.Skipf("the API has no /v2.0/%s yet (404): this scenario needs it", c)
		case resp.StatusCode != http.StatusOK:
			t.Fatalf("GET /v2.0/%s: %s", c, resp.Status)
		}
	}
}

// eventually polls cond until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
