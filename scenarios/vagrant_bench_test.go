package scenarios_test

import (
	"context"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios"
	"neutrino/scenarios/harness"
)

// BenchmarkVagrantCluster brings the Vagrantfile's default cluster up on
// the docker provider (3 servers, 2 chassis, 2 gateways, outside) and
// reports the seconds until it is ready (vagrant up, then a leader, every
// node alive in gossip, every chassis committed up), until a first ping
// crosses from a VM on chassis-1 to one on chassis-2 (network, subnet,
// ports and both VMs created after ready), and to destroy it.
func BenchmarkVagrantCluster(b *testing.B) {
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	if binary == "" {
		b.Fatalf("no neutrino binary was built: %v", skipWhy)
	}
	var up, ping, down time.Duration
	for i := 0; i < b.N; i++ {
		d, teardown := vagrantDriver()
		b.Cleanup(func() {
			for _, err := range teardown(b.Failed(), b.Logf) {
				b.Error(err)
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		start := time.Now()
		l, err := d.Up(ctx, scenarios.Topology{Servers: 3, Chassis: 2, Gateways: 2})
		if err != nil {
			cancel()
			b.Fatalf("vagrant up: %v", err)
		}
		up += time.Since(start)
		e := harness.New(b, d, l)
		netID, _ := e.Network(e.Admin, "bench", "10.42.0.0/24")
		sg := e.OpenGroup(e.Admin, "open")
		var vms []harness.VM
		for j, ch := range e.Chassis[:2] {
			name := []string{"ba", "bb"}[j]
			p := e.Port(e.Admin, ports.CreateOpts{NetworkID: netID, Name: name, SecurityGroups: &[]string{sg}})
			vms = append(vms, e.Plug(name, ch, p))
		}
		e.PingOK(harness.FirstPacket, vms[0].Name, vms[1].IP)
		ping += time.Since(start)
		start = time.Now()
		if err := d.Down(ctx); err != nil {
			cancel()
			b.Fatalf("vagrant down: %v", err)
		}
		down += time.Since(start)
		cancel()
	}
	n := float64(b.N)
	b.ReportMetric(up.Seconds()/n, "up-s")
	b.ReportMetric(ping.Seconds()/n, "first-ping-s")
	b.ReportMetric(down.Seconds()/n, "down-s")
}
