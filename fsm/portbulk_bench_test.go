package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkPortBulkApply applies bulk creates of 100 ports (one command,
// as a Neutron bulk POST) onto a state that grows from 1,000 ports, on
// 10 networks: the per-port cost of the write path's largest command.
func BenchmarkPortBulkApply(b *testing.B) {
	const bulk = 100
	f := New(nil)
	var index uint64
	applyCmd := func(typ CommandType, body any) {
		index++
		buf, err := Encode(typ, body)
		if err != nil {
			b.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf}).(*Result); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	const nets = 10
	for i := range nets {
		applyCmd(CmdNetworkCreate, NetworkCreateRequest{Networks: []*Network{testNetwork(fmt.Sprintf("n%d", i), 6000+i)}})
		applyCmd(CmdSubnetCreate, SubnetCreateRequest{Subnets: []*Subnet{testSubnet(fmt.Sprintf("s%d", i), fmt.Sprintf("n%d", i), fmt.Sprintf("10.%d.0.0/16", i))}})
	}
	n := 0
	bodies := func() []byte {
		ports := make([]*Port, bulk)
		for j := range ports {
			net := n % nets
			id := fmt.Sprintf("p%06d", n)
			ports[j] = testPort(id, fmt.Sprintf("n%d", net), fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", n>>16&255, n>>8&255, n&255),
				ip(fmt.Sprintf("s%d", net), fmt.Sprintf("10.%d.%d.%d", net, 1+n/250%250, 1+n%250)))
			ports[j].SecurityGroups, ports[j].AllowedAddressPairs = nil, nil
			n++
		}
		buf, err := Encode(CmdPortCreate, PortCreateRequest{Ports: ports})
		if err != nil {
			b.Fatal(err)
		}
		return buf
	}
	for range 1000 / bulk {
		index++
		if r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: bodies()}).(*Result); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		buf := bodies()
		index++
		b.StartTimer()
		if r := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: buf}).(*Result); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*bulk), "us/port")
}
