package scenarios_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"neutrino/scenarios"
	"neutrino/scenarios/vagrant"
)

// The scenarios' Vagrant cluster gets names and networks of its own
// (nvt-*, 10.214.0-2.0/24), so a cluster of `make vagrant-up` (nv-*,
// 10.213.*) can stay up beside it.
const (
	vagrantPrefixEnv = "NEUTRINO_VAGRANT_TEST_PREFIX"
	vagrantNetEnv    = "NEUTRINO_VAGRANT_TEST_NET"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// vagrantDriver is the Vagrantfile's cluster on the docker provider, with
// names and networks of its own; after Down no container and no network of
// it may be left. Docker must answer: a machine without it fails here.
func vagrantDriver(tb testing.TB) scenarios.Driver {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := vagrant.Available(ctx); err != nil {
		tb.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		tb.Fatal(err)
	}
	state, err := os.MkdirTemp("", "nvt-vagrant-")
	if err != nil {
		tb.Fatal(err)
	}
	prefix, net := envOr(vagrantPrefixEnv, "nvt-"), envOr(vagrantNetEnv, "10.214")
	// A run killed before its cleanup leaves its containers behind.
	if err := vagrant.Sweep(ctx, prefix, net); err != nil {
		tb.Fatalf("remove a previous run's cluster: %v", err)
	}
	d := vagrant.NewDriver(vagrant.Options{Root: root, StateDir: state, Binary: binary, Prefix: prefix, Net: net})
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if tb.Failed() {
			if l := d.Lab(); l != nil {
				for _, n := range l.Nodes {
					tb.Logf("%s agent.log (tail):\n%s", n.Name, d.AgentLog(ctx, n.Name, 25))
				}
			}
		}
		start := time.Now()
		if err := d.Down(ctx); err != nil {
			tb.Errorf("vagrant down: %v", err)
		}
		tb.Logf("vagrant down in %s", time.Since(start).Round(time.Millisecond))
		if out, err := dockerOut(ctx, "ps", "-aq", "--filter", "name=^"+prefix); err != nil || out != "" {
			tb.Errorf("vagrant down left containers %q (%v)", out, err)
		}
		if out, err := dockerOut(ctx, "network", "ls", "-q", "--filter", "name=vagrant_network_"+net+"."); err != nil || out != "" {
			tb.Errorf("vagrant down left networks %q (%v)", out, err)
		}
	})
	return d
}

func dockerOut(ctx context.Context, args ...string) (string, error) {
	out, err := execOut(ctx, "docker", args...)
	return strings.TrimSpace(out), err
}

// execOut runs a command and returns its standard output.
func execOut(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}
