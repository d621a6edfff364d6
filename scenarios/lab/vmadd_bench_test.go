package lab_test

import (
	"fmt"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"neutrino/scenarios"
	"neutrino/scenarios/lab"
)

// BenchmarkVMAddDHCP: `lab vm add` of a new port until the VM's eth0 has
// its address, by DHCP (the port's flows and binding must reach the
// chassis and its agent first) and, for comparison, written (--static).
func BenchmarkVMAddDHCP(b *testing.B) {
	p := upPipelineLab(b, scenarios.Topology{Servers: 1, Chassis: 1})
	nc := p.admin
	netID, _ := p.network(nc, "bench-dhcp", "10.51.0.0/16")
	for _, mode := range []string{"dhcp", "static"} {
		b.Run(mode, func(b *testing.B) {
			i := 0
			for b.Loop() {
				b.StopTimer()
				i++
				name := fmt.Sprintf("b%s%d", mode[:1], i)
				port := p.port(nc, ports.CreateOpts{NetworkID: netID, Name: name})
				ctx, cancel := p.ctx()
				b.StartTimer()
				err := lab.AddVMWith(ctx, p.d.Options.Dir, name, port.ID, p.chassis[0], lab.VMOptions{Static: mode == "static", Binary: p.d.Options.Binary}, nil)
				b.StopTimer()
				if err != nil {
					cancel()
					b.Fatal(err)
				}
				if err := p.d.DelVM(ctx, name); err != nil {
					b.Fatal(err)
				}
				cancel()
				b.StartTimer()
			}
		})
	}
}
