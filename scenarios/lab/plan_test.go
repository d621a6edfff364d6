package lab

import (
	"strings"
	"testing"

	"neutrino/scenarios"
)

func TestPlan(t *testing.T) {
	nodes, err := plan(scenarios.Topology{Servers: 3, Chassis: 2, Gateways: 1, ExternalChassis: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, ip, mac string
		external      bool
	}{
		{"server-1", "10.250.0.11", "", false},
		{"server-2", "10.250.0.12", "", false},
		{"server-3", "10.250.0.13", "", false},
		{"chassis-1", "10.250.0.101", "02:6e:6c:00:00:65", true},
		{"chassis-2", "10.250.0.102", "02:6e:6c:00:00:66", false},
		{"gateway-1", "10.250.0.201", "02:6e:6c:00:00:c9", true},
	}
	if len(nodes) != len(want) {
		t.Fatalf("got %d nodes, want %d", len(nodes), len(want))
	}
	for i, w := range want {
		n := nodes[i]
		if n.name != w.name || n.ip.String() != w.ip || n.mac != w.mac || n.external != w.external {
			t.Errorf("node %d: got %s %s %q %v, want %s %s %q %v", i, n.name, n.ip, n.mac, n.external,
				w.name, w.ip, w.mac, w.external)
		}
	}
	for _, bad := range []scenarios.Topology{
		{Servers: 0, Chassis: 1},
		{Servers: 10},
		{Servers: 1, Chassis: 100},
		{Servers: 1, Gateways: 55},
		{Servers: 1, Chassis: -1},
		{Servers: 1, Chassis: 1, ExternalChassis: 2},
		{Servers: 1, Chassis: 1, ExternalChassis: -1},
	} {
		if _, err := plan(bad); err == nil || !strings.Contains(err.Error(), "want") {
			t.Errorf("plan(%+v): want a range error, got %v", bad, err)
		}
	}
}

func TestNamespacesByPrefixPattern(t *testing.T) {
	// Only names a lab makes match; the pattern, not the directory, is tested.
	for name, want := range map[string]bool{
		"nl-underlay": true, "nl-server-1": true, "nl-chassis-12": true, "nl-gateway-2": true,
		"nl-vm-web": true, "nl-outside": true, "nl-server-x": false, "nl-other": false, "xnl-server-1": false,
	} {
		if got := labNamespaceName("nl-", name); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}
