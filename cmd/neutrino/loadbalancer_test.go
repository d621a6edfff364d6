package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
	"neutrino/northbound/client"
)

// TestLoadBalancerCommands runs `neutrino loadbalancer ...` against a real
// one-server agent (no chassis: a load balancer there is ERROR "no gateway
// chassis", and its deletion completes at once).
func TestLoadBalancerCommands(t *testing.T) {
	bind := clustertest.FreeBind(t)
	a, err := agent.Start(agent.Config{Server: true, Node: "lb-cli", DataDir: t.TempDir(), Bind: bind, HTTP: "127.0.0.1:0",
		BootstrapExpect: 1, Join: []string{bind}, API: northbound.DefaultConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	endpoint := "http://" + a.HTTPAddr()
	c, err := client.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var net map[string]any
	clustertest.Eventually(t, 30*time.Second, func() error {
		var err error
		net, err = c.Create(ctx, "networks", "network", map[string]any{"name": "lb-net"})
		return err
	})
	sub, err := c.Create(ctx, "subnets", "subnet", map[string]any{"network_id": net["id"], "cidr": "10.70.0.0/24", "ip_version": 4})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		lookup := func(k string) (string, bool) {
			if k == "NEUTRINO_ENDPOINT" {
				return endpoint, true
			}
			return "", false
		}
		var out, errOut bytes.Buffer
		code := run(ctx, args, &out, &errOut, lookup)
		return out.String(), errOut.String(), code
	}
	out, errOut, code := run("loadbalancer", "create", "--name", "web", "--vip-subnet-id", sub["id"].(string), "--vip-address", "10.70.0.9")
	if code != 0 || !hasRow(out, "vip_address", "10.70.0.9") || !hasRow(out, "neutrino:status_reason", "no gateway chassis") {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	if out, errOut, code = run("loadbalancer", "list"); code != 0 || !strings.Contains(out, "web") || !strings.Contains(out, "ERROR") {
		t.Fatalf("list: %d %s %s", code, out, errOut)
	}
	if out, errOut, code = run("loadbalancer", "show", "web", "-o", "json"); code != 0 || !strings.Contains(out, `"provider": "neutrino"`) {
		t.Fatalf("show: %d %s %s", code, out, errOut)
	}
	if out, errOut, code = run("loadbalancer", "status", "web"); code != 0 || !strings.Contains(out, `"statuses"`) {
		t.Fatalf("status: %d %s %s", code, out, errOut)
	}
	if _, errOut, code = run("loadbalancer", "failover", "web", "--project", "p1", "--roles", "member"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("member failover of another project's load balancer: %d %s", code, errOut)
	}
	if _, errOut, code = run("loadbalancer", "create", "--name", "bad"); code == 0 || !strings.Contains(errOut, "VIP must contain one of") {
		t.Fatalf("create without a VIP: %d %s", code, errOut)
	}
	if _, errOut, code = run("loadbalancer", "delete", "web"); code != 0 {
		t.Fatalf("delete: %d %s", code, errOut)
	}
	if _, errOut, code = run("loadbalancer", "show", "web"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("show after delete: %d %s", code, errOut)
	}
}

// hasRow reports whether a Field/Value table has the row.
func hasRow(table, field, value string) bool {
	for _, line := range strings.Split(table, "\n") {
		if f, v, ok := strings.Cut(line, " "); ok && f == field && strings.TrimSpace(v) == value {
			return true
		}
	}
	return false
}
