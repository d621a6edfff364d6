package packet

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0x0a, 0x01}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0x0b, 0x02}
	ipA  = netip.MustParseAddr("192.0.2.1")
	ipB  = netip.MustParseAddr("192.0.2.254")
)

func TestARPFrames(t *testing.T) {
	cases := []struct {
		name string
		got  func() ([]byte, error)
		want string
	}{
		{"request", func() ([]byte, error) { return NewARPRequest(macA, ipA, ipB, 0) }, `
			ffffffffffff 020000000a01 0806
			0001 0800 06 04 0001 020000000a01 c0000201 000000000000 c00002fe`},
		{"request vlan 100", func() ([]byte, error) { return NewARPRequest(macA, ipA, ipB, 100) }, `
			ffffffffffff 020000000a01 8100 0064 0806
			0001 0800 06 04 0001 020000000a01 c0000201 000000000000 c00002fe`},
		{"reply", func() ([]byte, error) { return NewARPReply(macB, ipB, macA, ipA, 0) }, `
			020000000a01 020000000b02 0806
			0001 0800 06 04 0002 020000000b02 c00002fe 020000000a01 c0000201`},
		{"gratuitous vlan 4095", func() ([]byte, error) { return NewGratuitousARP(macB, ipB, 4095) }, `
			ffffffffffff 020000000b02 8100 0fff 0806
			0001 0800 06 04 0001 020000000b02 c00002fe 000000000000 c00002fe`},
	}
	for _, c := range cases {
		got, err := c.got()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if want := unhex(t, c.want); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.name, got, want)
		}
	}
	if _, err := NewARPRequest(macA, netip.MustParseAddr("2001:db8::1"), ipB, 0); err == nil {
		t.Error("IPv6 sender accepted in ARP")
	}
	if _, err := NewGratuitousARP(net.HardwareAddr{1, 2}, ipB, 0); err == nil {
		t.Error("2-byte MAC accepted")
	}
}

func TestParseARP(t *testing.T) {
	for _, vlan := range []uint16{0, 7} {
		f, _ := NewARPReply(macB, ipB, macA, ipA, vlan)
		a, err := ParseARP(f)
		if err != nil {
			t.Fatal(err)
		}
		if a.Op != ARPReply || !bytes.Equal(a.SHA, macB) || a.SPA != ipB || !bytes.Equal(a.THA, macA) ||
			a.TPA != ipA || a.VLAN != vlan || !bytes.Equal(a.EthSrc, macB) || !bytes.Equal(a.EthDst, macA) || a.IsGratuitous() {
			t.Errorf("vlan %d: parsed %+v", vlan, a)
		}
	}
	// Double tag (802.1ad outer 10, inner 20), padded to 60 bytes as on a wire.
	f := unhex(t, `ffffffffffff 020000000b02 88a8 000a 8100 0014 0806
		0001 0800 06 04 0001 020000000b02 c00002fe 000000000000 c00002fe`)
	f = append(f, make([]byte, 64-len(f))...)
	a, err := ParseARP(f)
	if err != nil {
		t.Fatal(err)
	}
	if a.VLAN != 10 || a.Op != ARPRequest || !a.IsGratuitous() || a.SPA != ipB {
		t.Errorf("QinQ: parsed %+v", a)
	}
	for name, bad := range map[string][]byte{
		"short":     f[:10],
		"truncated": f[:30],
		"ipv4":      unhex(t, "ffffffffffff020000000b020800450000"),
		"tag only":  unhex(t, "ffffffffffff020000000b028100"),
	} {
		if _, err := ParseARP(bad); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestUnsolicitedNA(t *testing.T) {
	ip := netip.MustParseAddr("2001:db8::1")
	got, err := NewUnsolicitedNA(macA, ip, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Checksum 0x6f2a computed independently (pseudo-header src, ff02::1,
	// length 32, next header 58).
	want := unhex(t, `
		333300000001 020000000a01 86dd
		60000000 0020 3a ff
		20010db8000000000000000000000001
		ff020000000000000000000000000001
		88 00 6f2a a0000000
		20010db8000000000000000000000001
		02 01 020000000a01`)
	if !bytes.Equal(got, want) {
		t.Errorf("NA:\n got %x\nwant %x", got, want)
	}
	// Re-summing the whole message with its checksum in place gives 0.
	var s, d [16]byte = ip.As16(), AllNodes.As16()
	if c := ICMPv6Checksum(s, d, got[54:]); c != 0 {
		t.Errorf("checksum does not verify: %#x", c)
	}
	tagged, err := NewUnsolicitedNA(macA, ip, false, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tagged[12:16], []byte{0x81, 0, 0, 5}) || tagged[18+40+4] != 0x20 || len(tagged) != len(got)+4 {
		t.Errorf("tagged NA: %x", tagged)
	}
	if _, err := NewUnsolicitedNA(macA, ipA, false, 0); err == nil {
		t.Error("IPv4 target accepted")
	}
}
