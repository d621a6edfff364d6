package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// benchApplier applies commands to an FSM with increasing indexes.
type benchApplier struct {
	b     *testing.B
	f     *FSM
	index uint64
}

func (a *benchApplier) apply(typ CommandType, body any) {
	buf, err := Encode(typ, body)
	if err != nil {
		a.b.Fatal(err)
	}
	a.index++
	if r := a.f.Apply(&raft.Log{Index: a.index, Type: raft.LogCommand, Data: buf}).(*Result); r.Err != nil {
		a.b.Fatalf("%s: %v", typ, r.Err)
	}
}

func benchRouters(b *testing.B, existing int) *benchApplier {
	a := &benchApplier{b: b, f: New(nil)}
	for i := range existing {
		a.apply(CmdRouterCreate, RouterCreateRequest{Router: testRouter(fmt.Sprintf("r%06d", i))})
	}
	return a
}

// nearlyFull routers leave one router key free (MaxRouterKey: the cluster
// holds at most that many routers).
const nearlyFull = int(MaxRouterKey) - 1

// BenchmarkApplyRouterCreateDelete is the Apply cost of a router create
// and its delete (a key allocated and freed) with existing routers, up to
// a nearly full key space.
func BenchmarkApplyRouterCreateDelete(b *testing.B) {
	for _, existing := range []int{0, 1000, nearlyFull} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			a := benchRouters(b, existing)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("new%d", i)
				a.apply(CmdRouterCreate, RouterCreateRequest{Router: testRouter(id)})
				a.apply(CmdRouterDelete, RouterDeleteRequest{ID: id})
			}
		})
	}
}

// BenchmarkApplyRouterRefill is the worst case of the key hint: the
// lowest key is free, so the first create takes it and the second walks
// the key index over every router to the end; both are deleted again.
func BenchmarkApplyRouterRefill(b *testing.B) {
	for _, existing := range []int{1000, nearlyFull} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			a := benchRouters(b, existing)
			a.apply(CmdRouterDelete, RouterDeleteRequest{ID: "r000000"})
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				x, y := fmt.Sprintf("x%d", i), fmt.Sprintf("y%d", i)
				a.apply(CmdRouterCreate, RouterCreateRequest{Router: testRouter(x)})
				a.apply(CmdRouterCreate, RouterCreateRequest{Router: testRouter(y)})
				a.apply(CmdRouterDelete, RouterDeleteRequest{ID: x})
				a.apply(CmdRouterDelete, RouterDeleteRequest{ID: y})
			}
		})
	}
}

// BenchmarkApplyRuleCreateDelete is the Apply cost of a security group
// rule create and delete with existing rules in the group.
func BenchmarkApplyRuleCreateDelete(b *testing.B) {
	for _, existing := range []int{0, 10000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			a := &benchApplier{b: b, f: New(nil)}
			g := &SecurityGroupBundle{Group: &SecurityGroup{Meta: Meta{ID: "sg", ProjectID: "p1"}, Stateful: true}}
			a.apply(CmdSecurityGroupCreate, SecurityGroupCreateRequest{Groups: []*SecurityGroupBundle{g}})
			rule := func(id string, port int) *SecurityGroupRule {
				return &SecurityGroupRule{Meta: Meta{ID: id, ProjectID: "p1"}, SecurityGroupID: "sg", Direction: DirectionIngress,
					EtherType: EtherTypeIPv4, Protocol: "tcp", PortRangeMin: intp(port), PortRangeMax: intp(port),
					RemoteIPPrefix: fmt.Sprintf("10.%d.%d.0/24", port/256%256, port%256)}
			}
			var rules []*SecurityGroupRule
			for i := range existing {
				rules = append(rules, rule(fmt.Sprintf("r%06d", i), 1+i%60000))
			}
			if len(rules) > 0 {
				a.apply(CmdSecurityGroupRuleCreate, SecurityGroupRuleCreateRequest{Rules: rules})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("new%d", i)
				a.apply(CmdSecurityGroupRuleCreate, SecurityGroupRuleCreateRequest{Rules: []*SecurityGroupRule{rule(id, 65000)}})
				a.apply(CmdSecurityGroupRuleDelete, SecurityGroupRuleDeleteRequest{ID: id})
			}
		})
	}
}
