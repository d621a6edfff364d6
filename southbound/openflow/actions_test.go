package openflow_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	of "neutrino/southbound/openflow"
	"neutrino/southbound/openflow/oftest"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var (
	ip4   = of.EthType(0x0800)
	ip6   = of.EthType(0x86dd)
	arp   = of.EthType(0x0806)
	tcp   = of.IPProto(6)
	udp   = of.IPProto(17)
	icmp4 = of.IPProto(1)
	icmp6 = of.IPProto(58)
	addr  = netip.MustParseAddr
	pfx   = netip.MustParsePrefix
	reg6  = of.Bits(of.FieldReg(6), 0, 16)
	reg7  = of.Bits(of.FieldReg(7), 0, 16)
)

// extFlow is a flow and the ovs-ofctl spelling of its actions, checked
// against ovs-ofctl 3.1 by TestExtendedRoundTrip.
type extFlow struct {
	flow    of.Flow
	actions string
}

func extFlows() []extFlow {
	mac1, mac2 := mustMAC("02:00:00:00:00:01"), mustMAC("02:00:00:00:00:02")
	var out []extFlow
	cookie := uint64(0x100)
	add := func(table uint8, prio uint16, m of.Match, want string, acts ...of.Action) {
		cookie++
		out = append(out, extFlow{of.Flow{Table: table, Priority: prio, Cookie: cookie, Match: m, Actions: acts}, want})
	}

	// Conntrack and NAT. ct needs ip or ipv6 in the match
	// (OFPBAC_MATCH_INCONSISTENT otherwise).
	add(20, 10, of.Match{ip4}, "ct(table=21,zone=NXM_NX_REG6[0..15])",
		of.CT{ZoneSrc: reg6, Recirc: true, Table: 21})
	add(20, 11, of.Match{ip6}, "ct(commit,zone=NXM_NX_REG7[0..15])",
		of.CT{Commit: true, ZoneSrc: reg7})
	add(20, 12, of.Match{ip4}, "ct(commit,zone=5,exec(set_field:0x1->ct_mark))",
		of.CT{Commit: true, Zone: 5, Actions: []of.Action{of.SetCtMark(1)}})
	add(20, 13, of.Match{ip4}, "ct(commit,zone=NXM_NX_REG6[0..15],nat(src=198.51.100.10))",
		of.CT{Commit: true, ZoneSrc: reg6, Actions: []of.Action{of.SNAT(addr("198.51.100.10"))}})
	add(20, 14, of.Match{ip4}, "ct(table=30,zone=4,nat)",
		of.CT{Recirc: true, Table: 30, Zone: 4, Actions: []of.Action{of.NAT{}}})
	add(20, 15, of.Match{ip4, tcp}, "ct(commit,table=22,zone=7,nat(dst=10.0.0.1-10.0.0.9:80-90),exec(set_field:0x2->ct_mark))",
		of.CT{Commit: true, Zone: 7, Recirc: true, Table: 22, Actions: []of.Action{
			of.NAT{Kind: of.NATDst, MinIP: addr("10.0.0.1"), MaxIP: addr("10.0.0.9"), MinPort: 80, MaxPort: 90},
			of.SetCtMark(2)}})
	add(20, 16, of.Match{ip4}, "ct(commit,nat(src=198.51.100.1:1000-2000,persistent,random))",
		of.CT{Commit: true, Actions: []of.Action{of.NAT{Kind: of.NATSrc, MinIP: addr("198.51.100.1"),
			MinPort: 1000, MaxPort: 2000, Persistent: true, Random: true}}})
	add(20, 17, of.Match{ip4}, "ct(commit,nat(src))",
		of.CT{Commit: true, Actions: []of.Action{of.NAT{Kind: of.NATSrc}}})
	// A nat after set_field is printed inside exec().
	add(20, 18, of.Match{ip4}, "ct(commit,zone=9,exec(set_field:0x4->ct_mark,nat(dst=10.1.1.1:8080)))",
		of.CT{Commit: true, Zone: 9, Actions: []of.Action{of.SetCtMark(4),
			of.NAT{Kind: of.NATDst, MinIP: addr("10.1.1.1"), MinPort: 8080}}})
	// zone=0 is not printed; max equal to min collapses.
	add(20, 19, of.Match{ip4}, "ct(commit,nat(src=10.2.2.2))",
		of.CT{Commit: true, Zone: 0, Actions: []of.Action{
			of.NAT{Kind: of.NATSrc, MinIP: addr("10.2.2.2"), MaxIP: addr("10.2.2.2")}}})
	add(20, 20, of.Match{ip6}, "ct(commit,zone=3,nat(src=[2001:db8::1]-[2001:db8::9]:1000))",
		of.CT{Commit: true, Zone: 3, Actions: []of.Action{
			of.NAT{Kind: of.NATSrc, MinIP: addr("2001:db8::1"), MaxIP: addr("2001:db8::9"), MinPort: 1000}}})
	add(20, 21, of.Match{ip6}, "ct(commit,nat(dst=2001:db8::5))",
		of.CT{Commit: true, Actions: []of.Action{of.DNAT(addr("2001:db8::5"))}})
	add(20, 22, of.Match{ip4, of.CtState(of.CtTrk|of.CtNew, of.CtTrk|of.CtNew)},
		"ct(commit,table=23,zone=NXM_NX_REG6[0..15],nat(src=198.51.100.10)),resubmit(,24)",
		of.CT{Commit: true, ZoneSrc: reg6, Recirc: true, Table: 23, Actions: []of.Action{of.SNAT(addr("198.51.100.10"))}},
		of.Resubmit{Table: 24})

	// Register moves.
	add(40, 1, nil, "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],move:OXM_OF_METADATA[0..15]->NXM_NX_REG1[16..31],"+
		"move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG2[],move:NXM_NX_REG3[5]->NXM_NX_REG4[7],"+
		"move:NXM_NX_TUN_IPV4_DST[]->NXM_NX_REG5[],move:NXM_NX_TUN_ID[]->OXM_OF_METADATA[]",
		of.MoveField(of.FieldEthSrc, of.FieldEthDst),
		of.Move{Src: of.FieldMetadata, Dst: of.FieldReg(1), DstOfs: 16, NBits: 16},
		of.Move{Src: of.FieldTunID, Dst: of.FieldReg(2), NBits: 32},
		of.Move{Src: of.FieldReg(3), SrcOfs: 5, Dst: of.FieldReg(4), DstOfs: 7, NBits: 1},
		of.MoveField(of.FieldTunDst, of.FieldReg(5)),
		of.MoveField(of.FieldTunID, of.FieldMetadata))
	add(40, 2, of.Match{ip4}, "move:NXM_OF_IP_SRC[]->NXM_NX_REG0[],move:NXM_NX_REG0[]->NXM_OF_IP_DST[]",
		of.MoveField(of.FieldIPv4Src, of.FieldReg(0)), of.MoveField(of.FieldReg(0), of.FieldIPv4Dst))
	add(40, 3, of.Match{arp}, "move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"+
		"move:NXM_OF_ARP_OP[]->NXM_NX_REG0[0..15],move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
		of.MoveField(of.FieldARPSha, of.FieldARPTha), of.MoveField(of.FieldARPSpa, of.FieldARPTpa),
		of.Move{Src: of.FieldARPOp, Dst: of.FieldReg(0), NBits: 16},
		of.MoveField(of.FieldEthSrc, of.FieldEthDst))
	add(40, 4, of.Match{ip6}, "move:NXM_NX_IPV6_SRC[]->NXM_NX_IPV6_DST[],move:NXM_NX_IPV6_SRC[96..127]->NXM_NX_REG0[]",
		of.MoveField(of.FieldIPv6Src, of.FieldIPv6Dst), of.Move{Src: of.FieldIPv6Src, SrcOfs: 96, Dst: of.FieldReg(0), NBits: 32})
	add(40, 5, of.Match{ip6, icmp6, of.ICMPv6Type(135)},
		"move:NXM_NX_ND_TARGET[]->NXM_NX_IPV6_SRC[],move:NXM_NX_ND_SLL[]->NXM_OF_ETH_SRC[]",
		of.MoveField(of.FieldNDTarget, of.FieldIPv6Src), of.MoveField(of.FieldNDSLL, of.FieldEthSrc))
	add(40, 6, of.Match{ip4, tcp}, "move:NXM_OF_TCP_SRC[]->NXM_NX_REG1[0..15],move:NXM_NX_IP_TTL[]->NXM_NX_REG1[16..23],move:OXM_OF_IN_PORT[]->NXM_NX_REG2[]",
		of.Move{Src: of.FieldTCPSrc, Dst: of.FieldReg(1), NBits: 16},
		of.Move{Src: of.FieldIPTTL, Dst: of.FieldReg(1), DstOfs: 16, NBits: 8},
		of.MoveField(of.FieldInPort, of.FieldReg(2)))

	// IPv6 matches and set_field.
	_, n6, _ := net.ParseCIDR("2001:db8:1::/48")
	add(50, 1, of.Match{ip6, of.IPv6Src(pfx("2001:db8::/64")), of.IPv6Dst(pfx("::1.2.3.4/128")), of.IPTTL(5)},
		"set_field:2001:db8::1->ipv6_src,set_field:::ffff:1.2.3.4->ipv6_dst,set_field:9->nw_ttl",
		of.SetIP(of.FieldIPv6Src, addr("2001:db8::1")), of.SetIP(of.FieldIPv6Dst, addr("::ffff:1.2.3.4")),
		of.SetUint(of.FieldIPTTL, 9))
	add(50, 2, of.Match{ip6, tcp, of.IPv6DstNet(*n6), of.Exact(of.FieldTCPDst, 80)}, "drop")
	add(50, 3, of.Match{ip6, tcp, {Field: of.FieldIPv6Dst, Value: addr("2001:db8::").AsSlice(), Mask: addr("ffff::ffff").AsSlice()}}, "drop")
	add(50, 4, of.Match{ip6, udp, of.Exact(of.FieldUDPSrc, 53), of.IPv6Src(pfx("fe80::1/128"))}, "output:1", of.Output{Port: 1})
	add(50, 5, of.Match{ip6, icmp6, of.ICMPv6Type(135), of.NDTarget(addr("fe80::7")), of.NDSLL(mac1)},
		"set_field:fe80::1->nd_target,set_field:136->icmpv6_type,set_field:0->icmpv6_code,set_field:02:00:00:00:00:02->nd_sll",
		of.SetIP(of.FieldNDTarget, addr("fe80::1")), of.SetUint(of.FieldICMPv6Type, 136),
		of.SetUint(of.FieldICMPv6Code, 0), of.SetMAC(of.FieldNDSLL, mac2))
	add(50, 6, of.Match{ip6, icmp6, of.ICMPv6Type(136), of.ICMPv6Code(0),
		{Field: of.FieldNDTarget, Value: addr("fe80::").AsSlice(), Mask: pfx("ffff:ffff:ffff:ffff::/64").Masked().Addr().AsSlice()},
		of.NDTLL(mac2)},
		"set_field:02:00:00:00:00:01->nd_tll,move:NXM_NX_ND_TLL[]->NXM_OF_ETH_DST[]",
		of.SetMAC(of.FieldNDTLL, mac1), of.MoveField(of.FieldNDTLL, of.FieldEthDst))
	// An NS turned into the NA in place (the pipeline's ND responder). OVS
	// checks set_field and move prerequisites against the match, not the
	// packet as rewritten: nd_tll (ND_NA) is written by a second flow that
	// matches the advertisement.
	add(50, 10, of.Match{ip6, icmp6, of.ICMPv6Type(135), of.NDTarget(addr("fd00::5"))},
		"move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:02:00:00:00:00:01->eth_src,"+
			"move:NXM_NX_IPV6_SRC[]->NXM_NX_IPV6_DST[],set_field:fd00::5->ipv6_src,set_field:136->icmpv6_type,"+
			"set_field:1610612736->nd_reserved,set_field:2->nd_options_type,resubmit(,51)",
		of.MoveField(of.FieldEthSrc, of.FieldEthDst), of.SetMAC(of.FieldEthSrc, mac1),
		of.MoveField(of.FieldIPv6Src, of.FieldIPv6Dst), of.SetIP(of.FieldIPv6Src, addr("fd00::5")),
		of.SetUint(of.FieldICMPv6Type, 136), of.SetUint(of.FieldNDReserved, 0x60000000), of.SetUint(of.FieldNDOptionsType, 2),
		of.Resubmit{Table: 51})
	add(51, 10, of.Match{ip6, icmp6, of.ICMPv6Type(136)},
		"move:NXM_OF_ETH_SRC[]->NXM_NX_ND_TLL[],move:ERICOXM_OF_ICMPV6_ND_RESERVED[]->NXM_NX_REG3[],"+
			"move:ERICOXM_OF_ICMPV6_ND_OPTIONS_TYPE[]->NXM_NX_REG4[0..7],IN_PORT",
		of.MoveField(of.FieldEthSrc, of.FieldNDTLL), of.MoveField(of.FieldNDReserved, of.FieldReg(3)),
		of.Move{Src: of.FieldNDOptionsType, Dst: of.FieldReg(4), NBits: 8}, of.Output{Port: of.PortInPort})
	add(50, 7, of.Match{ip6, of.IPProto(132)}, "drop")
	add(50, 8, of.Match{ip6, of.IPProto(47)}, "drop")
	add(50, 9, of.Match{ip4, of.IPTTL(64)}, "set_field:9->nw_ttl", of.SetUint(of.FieldIPTTL, 9))

	// set_field on every field the flow compiler writes.
	add(60, 1, of.Match{arp},
		"set_field:2->arp_op,set_field:02:00:00:00:00:01->arp_sha,set_field:10.0.0.1->arp_spa,"+
			"set_field:02:00:00:00:00:02->arp_tha,set_field:10.0.0.2->arp_tpa,"+
			"set_field:02:00:00:00:00:01->eth_src,set_field:02:00:00:00:00:02->eth_dst,IN_PORT",
		of.SetUint(of.FieldARPOp, 2), of.SetMAC(of.FieldARPSha, mac1), of.SetIP(of.FieldARPSpa, addr("10.0.0.1")),
		of.SetMAC(of.FieldARPTha, mac2), of.SetIP(of.FieldARPTpa, addr("10.0.0.2")),
		of.SetMAC(of.FieldEthSrc, mac1), of.SetMAC(of.FieldEthDst, mac2), of.Output{Port: of.PortInPort})
	regActs := []of.Action{of.SetIP(of.FieldIPv4Src, addr("192.0.2.1")), of.SetIP(of.FieldIPv4Dst, addr("192.0.2.2")),
		of.SetTunID(0x1234), of.SetIP(of.FieldTunDst, addr("203.0.113.9")), of.SetUint(of.FieldMetadata, 0xabc)}
	regWant := []string{"set_field:192.0.2.1->ip_src", "set_field:192.0.2.2->ip_dst", "set_field:0x1234->tun_id",
		"set_field:203.0.113.9->tun_dst", "set_field:0xabc->metadata"}
	for i := range 16 {
		regActs = append(regActs, of.SetReg(i, uint32(i)))
		v := "0"
		if i > 0 {
			v = fmt.Sprintf("%#x", i)
		}
		regWant = append(regWant, fmt.Sprintf("set_field:%s->reg%d", v, i))
	}
	add(60, 2, of.Match{ip4}, strings.Join(regWant, ","), regActs...)
	add(60, 3, of.Match{ip4, icmp4, of.Exact(of.FieldICMPType, 8)}, "set_field:0->icmp_type,set_field:0->icmp_code,IN_PORT",
		of.SetUint(of.FieldICMPType, 0), of.SetUint(of.FieldICMPCode, 0), of.Output{Port: of.PortInPort})

	// Conjunctive match.
	add(70, 10, of.Match{ip4, of.IPv4Src(net.IPNet{IP: net.IP{10, 0, 0, 0}, Mask: net.CIDRMask(8, 32)})},
		"conjunction(7,1/2),conjunction(8,2/3)", of.Conjunction{ID: 7, Clause: 1, NClauses: 2}, of.Conjunction{ID: 8, Clause: 2, NClauses: 3})
	add(70, 10, of.Match{ip4, tcp, of.Exact(of.FieldTCPDst, 80)}, "conjunction(7,2/2),conjunction(8,1/3),conjunction(8,3/3)",
		of.Conjunction{ID: 7, Clause: 2, NClauses: 2}, of.Conjunction{ID: 8, Clause: 1, NClauses: 3}, of.Conjunction{ID: 8, Clause: 3, NClauses: 3})
	add(70, 10, of.Match{of.ConjID(7), ip4}, "resubmit(,71)", of.Resubmit{Table: 71})
	add(70, 10, of.Match{of.ConjID(8), ip4}, "ct(commit,zone=NXM_NX_REG6[0..15])", of.CT{Commit: true, ZoneSrc: reg6})
	return out
}

// TestExtendedStrings checks the ovs-ofctl spellings without a switch.
func TestExtendedStrings(t *testing.T) {
	for _, e := range extFlows() {
		if got := e.flow.ActionsString(); got != e.actions {
			t.Errorf("table %d priority %d:\n got %s\nwant %s", e.flow.Table, e.flow.Priority, got, e.actions)
		}
	}
}

// TestExtendedRoundTrip installs ct/nat/move/IPv6/set_field/conjunction
// flows through a bundle, dumps them back through the connection, and
// checks keys, cookies and actions match, and that Flow.String() is what
// ovs-ofctl dump-flows prints.
func TestExtendedRoundTrip(t *testing.T) {
	sw, conn := masterConn(t, "ext")
	ctx := ctxFor(t, 30*time.Second)
	var want []of.Flow
	for _, e := range extFlows() {
		want = append(want, e.flow)
	}
	if err := conn.Bundle(ctx, adds(want)); err != nil {
		t.Fatal(err)
	}
	got, err := conn.DumpFlows(ctx, of.TableAll, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[of.Key]of.Flow{}
	for _, f := range got {
		for _, a := range f.Actions {
			if r, ok := a.(of.RawAction); ok {
				t.Errorf("undecoded action %s in %s", r, f.String())
			}
		}
		byKey[f.Key()] = f
	}
	if len(got) != len(want) {
		t.Errorf("dumped %d flows, want %d", len(got), len(want))
	}
	for _, w := range want {
		g, ok := byKey[w.Key()]
		switch {
		case !ok:
			t.Errorf("flow not found by key: %s", w.String())
		case g.Cookie != w.Cookie || g.ActionsString() != w.ActionsString():
			t.Errorf("dumped %s\nwant   %s", g.String(), w.String())
		}
	}
	ofctl := sw.OfctlFlows(t)
	if testing.Verbose() {
		t.Logf("ovs-ofctl dump-flows:\n%s", strings.Join(ofctl, "\n"))
	}
	if g, w := ofctl, oftest.Expected(want); !slices.Equal(g, w) {
		for i := range max(len(g), len(w)) {
			var gl, wl string
			if i < len(g) {
				gl = g[i]
			}
			if i < len(w) {
				wl = w[i]
			}
			if gl != wl {
				t.Errorf("ovs-ofctl dump differs from String():\n got %s\nwant %s", gl, wl)
			}
		}
	}

	// Installing the dumped flows again (as a resync would) changes nothing.
	if err := conn.Bundle(ctx, adds(got)); err != nil {
		t.Fatalf("re-adding dumped flows: %v", err)
	}
	again, err := conn.DumpFlows(ctx, of.TableAll, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := oftest.Expected(again), oftest.Expected(want); !slices.Equal(g, w) {
		t.Errorf("flows changed after re-adding the dump:\n got %s\nwant %s", strings.Join(g, "\n     "), strings.Join(w, "\n     "))
	}
}

// TestExtendedBadFlows: flows our layer refuses before sending.
func TestExtendedBadFlows(t *testing.T) {
	bad := []of.Action{
		of.SNAT(addr("1.2.3.4")),                                                       // nat outside ct
		of.CT{ZoneSrc: of.Bits(of.FieldReg(6), 0, 8)},                                  // zone must be 16 bits
		of.CT{ZoneSrc: of.Bits(of.FieldReg(6), 20, 16)},                                // beyond the register
		of.CT{Actions: []of.Action{of.SetCtMark(1)}},                                   // exec without commit
		of.CT{Actions: []of.Action{of.SNAT(addr("1.2.3.4"))}},                          // nat range without commit
		of.CT{Commit: true, Actions: []of.Action{of.Output{Port: 1}}},                  // output inside ct
		of.CT{Commit: true, Actions: []of.Action{of.NAT{}, of.NAT{}}},                  // two nats
		of.CT{Commit: true, Actions: []of.Action{of.NAT{Persistent: true}}},            // flags without src/dst
		of.CT{Commit: true, Actions: []of.Action{of.NAT{Kind: of.NATSrc, MinPort: 5}}}, // port without address
		of.CT{Recirc: true, Table: 255},
		of.Move{Src: of.FieldIPv4Src, Dst: of.FieldEthDst},                       // widths differ
		of.Move{Src: of.FieldReg(0), Dst: of.FieldReg(1), DstOfs: 20, NBits: 16}, // beyond dst
		of.Move{Src: of.FieldConjID, Dst: of.FieldReg(1), NBits: 16},             // not nameable
	}
	for _, a := range bad {
		f := of.Flow{Match: of.Match{ip4}, Actions: []of.Action{a}}
		if err := f.Validate(); !errors.Is(err, of.ErrBadFlow) {
			t.Errorf("%s: err = %v, want ErrBadFlow", a, err)
		}
	}
	if err := (&of.Flow{Match: of.Match{ip6, of.MatchField{Field: of.FieldIPv6Src, Value: []byte{1, 2, 3, 4}}}}).Validate(); !errors.Is(err, of.ErrBadFlow) {
		t.Errorf("short ipv6_src: err = %v", err)
	}
	if err := (&of.Flow{Match: of.Match{ip6, of.Masked(of.FieldICMPv6Type, 1, 1)}}).Validate(); !errors.Is(err, of.ErrBadFlow) {
		t.Errorf("masked icmpv6_type: err = %v", err)
	}
}
