package scenarios_test

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"neutrino/scenarios/harness"
)

// providerNetwork adds Neutron's provider:network_type to a network create.
type providerNetwork struct {
	networks.CreateOpts
	NetworkType string
}

func (p providerNetwork) ToNetworkCreateMap() (map[string]any, error) {
	m, err := p.CreateOpts.ToNetworkCreateMap()
	if err != nil {
		return nil, err
	}
	m["network"].(map[string]any)["provider:network_type"] = p.NetworkType
	return m, nil
}

// providerResult reads the provider and MTU attributes of a network (not
// embedding networks.Network: its UnmarshalJSON would hide these fields).
type providerResult struct {
	ID          string `json:"id"`
	NetworkType string `json:"provider:network_type"`
	Segment     int    `json:"provider:segmentation_id"`
	MTU         int    `json:"mtu"`
}

// TestL2AcrossEncapsulations creates, through the API with gophercloud, a
// network per encapsulation (VXLAN, GRE, Geneve) with a subnet and two
// ports, plugs a VM for each port on two different chassis and checks
// that they reach each other across the tunnel: ping both ways, a ping of
// the network's full MTU with DF set, and a TCP exchange.
func TestL2AcrossEncapsulations(t *testing.T) {
	e := sharedUp(t, pipelineTopo)
	d := e.D
	requireAPI(t, d.Endpoint(), "networks", "subnets", "ports")
	chassis := e.Chassis
	ctx := context.Background()
	endpoints := d.Endpoints()

	for i, encap := range []string{"vxlan", "gre", "geneve"} {
		t.Run(encap, func(t *testing.T) {
			// Each encapsulation through another server and chassis pair.
			e := e.Sub(t)
			nc := harness.NetworkClient(endpoints[i%len(endpoints)], "")
			a, b := chassis[i%3], chassis[(i+1)%3]

			var net providerResult
			err := networks.Create(ctx, nc, providerNetwork{
				CreateOpts:  networks.CreateOpts{Name: "l2-" + encap},
				NetworkType: encap,
			}).ExtractInto(&net)
			if err != nil {
				t.Fatalf("create %s network: %v", encap, err)
			}
			if net.NetworkType != encap || net.Segment == 0 {
				t.Fatalf("network: provider:network_type %q segmentation_id %d", net.NetworkType, net.Segment)
			}
			cidr := fmt.Sprintf("192.168.%d.0/24", 10+i)
			sub, err := subnets.Create(ctx, nc, subnets.CreateOpts{
				NetworkID: net.ID, CIDR: cidr, IPVersion: gophercloud.IPv4, Name: "l2-" + encap,
			}).Extract()
			if err != nil {
				t.Fatalf("create subnet: %v", err)
			}
			var ips []string
			for _, vm := range []struct{ name, chassis string }{{encap + "-a", a}, {encap + "-b", b}} {
				p, err := ports.Create(ctx, nc, ports.CreateOpts{NetworkID: net.ID, Name: vm.name}).Extract()
				if err != nil {
					t.Fatalf("create port %s: %v", vm.name, err)
				}
				if len(p.FixedIPs) == 0 || p.FixedIPs[0].SubnetID != sub.ID {
					t.Fatalf("port %s: fixed_ips %+v, want an address on %s", vm.name, p.FixedIPs, sub.ID)
				}
				ips = append(ips, e.Plug(vm.name, vm.chassis, p).IP)
			}
			va, vb := encap+"-a", encap+"-b"
			t.Logf("%s network %s (segment %d, mtu %d): %s %s on %s, %s %s on %s",
				encap, net.ID, net.Segment, net.MTU, va, ips[0], a, vb, ips[1], b)

			// The VM got what the API says: address with the subnet's prefix.
			out, err := d.Exec(ctx, va, "ip", "-o", "-4", "addr", "show", "dev", "eth0")
			if pfx := netip.MustParsePrefix(cidr); err != nil || !strings.Contains(out, ips[0]+"/"+strconv.Itoa(pfx.Bits())) {
				t.Fatalf("%s eth0: %v %q, want %s/%d", va, err, out, ips[0], pfx.Bits())
			}

			// Flows reach the chassis asynchronously: poll the first ping.
			e.PingOK(harness.FirstPacket, va, ips[1])
			e.PingOK(harness.Change, vb, ips[0])
			if net.MTU > 0 {
				// A frame of the network's MTU must cross the tunnel whole.
				e.PingOK(harness.Change, va, ips[1], "-M", "do", "-s", strconv.Itoa(net.MTU-28))
			}
			e.TCPExchange(va, ips[0], vb, 5001)
		})
	}

	// A removed VM is gone: its namespace no longer runs commands.
	if err := d.DelVM(ctx, "geneve-b"); err != nil {
		t.Fatalf("vm del: %v", err)
	}
	if _, err := d.Exec(ctx, "geneve-b", "true"); err == nil {
		t.Fatal("geneve-b still answers after vm del")
	}
}
