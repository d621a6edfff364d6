package openflow

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// encodeActs encodes acts as an apply-actions list body.
func encodeActs(t *testing.T, acts ...Action) []byte {
	t.Helper()
	var b []byte
	for _, a := range acts {
		ca, err := a.codec()
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		x, err := ca.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(x)%8 != 0 || int(binary.BigEndian.Uint16(x[2:])) != len(x) {
			t.Fatalf("%s: bad length %d", a, len(x))
		}
		b = append(b, x...)
	}
	return b
}

// TestExtActionCodec: encode → decode gives the same String, without a switch.
func TestExtActionCodec(t *testing.T) {
	acts := []Action{
		CT{Commit: true, ZoneSrc: Bits(FieldReg(6), 16, 16), Recirc: true, Table: 0,
			Actions: []Action{NAT{Kind: NATDst, MinIP: netip.MustParseAddr("2001:db8::1"), MinPort: 80, MaxPort: 81, Hash: true}, SetCtMark(7)}},
		CT{Zone: 65535, Actions: []Action{NAT{}}},
		Move{Src: FieldIPv6Dst, SrcOfs: 64, Dst: FieldMetadata, NBits: 64},
		MoveField(FieldTunSrc, FieldIPv4Dst),
	}
	got, err := decodeActions(encodeActs(t, acts...))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := ActionsString(got), ActionsString(acts); g != w {
		t.Fatalf("decoded %s\nwant    %s", g, w)
	}
	want := "ct(commit,table=0,zone=NXM_NX_REG6[16..31],nat(dst=[2001:db8::1]:80-81,hash),exec(set_field:0x7->ct_mark))," +
		"ct(zone=65535,nat),move:NXM_NX_IPV6_DST[64..127]->OXM_OF_METADATA[],move:NXM_NX_TUN_IPV4_SRC[]->NXM_OF_IP_DST[]"
	if g := ActionsString(acts); g != want {
		t.Fatalf("String %s\nwant   %s", g, want)
	}
}

// TestExtDecodeUnmodelled: ct flags, alg or nat flags we do not model stay
// RawAction (so the sync engine replaces them), and truncated input never
// panics.
func TestExtDecodeUnmodelled(t *testing.T) {
	ct := encodeActs(t, CT{Commit: true, Zone: 1})
	force := append([]byte(nil), ct...)
	binary.BigEndian.PutUint16(force[10:], ctFlagCommit|ctFlagForce)
	alg := append([]byte(nil), ct...)
	binary.BigEndian.PutUint16(alg[22:], 21)
	nat, err := NAT{}.encode()
	if err != nil {
		t.Fatal(err)
	}
	natPersistent := append([]byte(nil), nat...)
	binary.BigEndian.PutUint16(natPersistent[12:], natFlagPersistent)
	for _, b := range [][]byte{force, alg, natPersistent} {
		got, err := decodeActions(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got[0].(RawAction); !ok || len(got) != 1 {
			t.Errorf("decoded %v, want one RawAction", got)
		}
	}
	full := encodeActs(t, CT{Commit: true, ZoneSrc: Bits(FieldReg(6), 0, 16),
		Actions: []Action{NAT{Kind: NATSrc, MinIP: netip.MustParseAddr("10.0.0.1"), MaxIP: netip.MustParseAddr("10.0.0.2"), MinPort: 1, MaxPort: 2}}})
	for n := 0; n < len(full); n++ {
		b := append([]byte(nil), full[:n]...)
		if n >= 4 {
			binary.BigEndian.PutUint16(b[2:], uint16(n)) // lie consistently
		}
		_, _ = decodeActions(b)
		// and a nested nat cut short inside a well-formed ct
		if n >= 24 {
			c := append([]byte(nil), full...)
			binary.BigEndian.PutUint16(c[24+2:], uint16(n-24))
			_, _ = decodeActions(c)
		}
	}
}

func TestExtSetIPWidth(t *testing.T) {
	if _, err := SetIP(FieldIPv4Src, netip.MustParseAddr("2001:db8::1")).codec(); !errors.Is(err, ErrBadFlow) {
		t.Errorf("ipv6 address into ip_src: err = %v", err)
	}
	if s := SetIP(FieldIPv4Src, netip.MustParseAddr("::ffff:1.2.3.4")).String(); s != "set_field:1.2.3.4->ip_src" {
		t.Errorf("got %s", s)
	}
	if s := IPv6Src(netip.MustParsePrefix("10.0.0.0/8")).String(); s != "ipv6_src=::ffff:10.0.0.0/104" {
		t.Errorf("got %s", s)
	}
}

// EncodeFlowModForTest exposes the controller's flow-mod encoder to the
// switch-side codec's tests.
func EncodeFlowModForTest(m *FlowMod, xid uint32) ([]byte, error) { return m.encode(xid) }
