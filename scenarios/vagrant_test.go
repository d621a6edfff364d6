package scenarios_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"neutrino/scenarios"
	"neutrino/scenarios/harness"
	"neutrino/scenarios/vagrant"
)

// Every Vagrant cluster of the scenarios gets names and networks of its
// own: nvt-PID-N-* for the Nth cluster of test process PID, on the first
// 10.X.0-3.0/24 (X in 214-243) that no Docker network uses (a shared lab
// stays up while other tests bring theirs up, and another test process
// may run beside), away from a cluster of `make vagrant-up` (nv-*,
// 10.213.*), which can stay up beside them. NEUTRINO_VAGRANT_TEST_PREFIX
// changes "nvt-".
const vagrantPrefixEnv = "NEUTRINO_VAGRANT_TEST_PREFIX"

// vagrantDriver is the Vagrantfile's cluster on the docker provider (Up
// fails where dockerd does not answer: never skipped). teardown takes it
// down (with the agents' log tails first if failed) and reports what it
// left: after Down no container and no network of it may be left.
func vagrantDriver() (d *vagrant.Driver, teardown func(failed bool, logf func(string, ...any)) []error) {
	fail := func(err error) (*vagrant.Driver, func(bool, func(string, ...any)) []error) {
		return vagrant.NewDriver(vagrant.Options{}), func(bool, func(string, ...any)) []error { return []error{err} }
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return fail(err)
	}
	state, err := os.MkdirTemp("", "nvt-vagrant-")
	if err != nil {
		return fail(err)
	}
	prefix := os.Getenv(vagrantPrefixEnv)
	if prefix == "" {
		prefix = "nvt-"
	}
	prefix += fmt.Sprintf("%d-%d-", os.Getpid(), labSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	net := ""
	for x := 214; x <= 243 && net == ""; x++ {
		// Taken if a network of it is left, also a crashed run's (make
		// vagrant-down sweeps those).
		free := true
		for i := 0; i < 4 && free; i++ {
			_, err := dockerOut(ctx, "network", "inspect", fmt.Sprintf("vagrant_network_10.%d.%d.0/24", x, i))
			free = err != nil
		}
		if free {
			net = "10." + strconv.Itoa(x)
		}
	}
	if net == "" {
		return fail(errors.New("vagrant: 10.214-10.243 are all taken by Docker networks (make vagrant-down removes a crashed run's)"))
	}
	d = vagrant.NewDriver(vagrant.Options{Root: root, StateDir: state, Binary: binary, Prefix: prefix, Net: net})
	return d, func(failed bool, logf func(string, ...any)) []error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if failed {
			if l := d.Lab(); l != nil {
				for _, n := range l.Nodes {
					logf("%s agent.log (tail):\n%s", n.Name, d.AgentLog(ctx, n.Name, 25))
				}
			}
		}
		var errs []error
		start := time.Now()
		if err := d.Down(ctx); err != nil {
			errs = append(errs, fmt.Errorf("vagrant down: %w", err))
		}
		logf("vagrant down in %s", time.Since(start).Round(time.Millisecond))
		if out, err := dockerOut(ctx, "ps", "-aq", "--filter", "name=^"+prefix); err != nil || out != "" {
			errs = append(errs, fmt.Errorf("vagrant down left containers %q (%v)", out, err))
		}
		if out, err := dockerOut(ctx, "network", "ls", "-q", "--filter", "name=vagrant_network_"+net+"."); err != nil || out != "" {
			errs = append(errs, fmt.Errorf("vagrant down left networks %q (%v)", out, err))
		}
		os.RemoveAll(state)
		return errs
	}
}

var _ scenarios.Driver = (*vagrant.Driver)(nil)

func dockerOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
	}
	return strings.TrimSpace(string(out)), err
}

// TestVagrantStatus checks, on the Vagrant driver, that `vagrant status`
// (Driver.Status) lists every host of the shared pipeline lab running: the
// outside host and every node.
func TestVagrantStatus(t *testing.T) {
	if driverName != "vagrant" {
		t.Skipf("%s=%s: the Vagrant driver's own check", driverEnv, driverName)
	}
	e := sharedUp(t, harness.PipelineTopology)
	d, ok := e.D.(*vagrant.Driver)
	if !ok {
		t.Fatalf("driver %T, want *vagrant.Driver", e.D)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := d.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{e.Lab.External.Node}
	for _, n := range e.Lab.Nodes {
		want = append(want, n.Name)
	}
	for _, n := range want {
		if st[n] != "running" {
			t.Errorf("vagrant status: %s is %q, want running (all: %v)", n, st[n], st)
		}
	}
	if len(st) != len(want) {
		t.Errorf("vagrant status lists %d machines, want %d: %v", len(st), len(want), st)
	}
}
