package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

var (
	vmMAC     = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	routerMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0xff, 0, 1}
)

// TestRejectAnswer: a TCP SYN gets a RST|ACK acknowledging it, from the
// destination, with valid checksums; a segment with ACK a RST with its
// acknowledgment number; a UDP datagram (IPv4, IPv6) an ICMP port
// unreachable quoting it; a RST or an ICMP error nothing.
func TestRejectAnswer(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.1.10"), netip.MustParseAddr("10.0.2.10")
	seg := func(flags byte, seq, ack uint32) []byte {
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h, 40000)
		binary.BigEndian.PutUint16(h[2:], 80)
		binary.BigEndian.PutUint32(h[4:], seq)
		binary.BigEndian.PutUint32(h[8:], ack)
		h[12], h[13] = 5<<4, flags
		return h
	}
	parseTCP := func(t *testing.T, out []byte) []byte {
		t.Helper()
		if out == nil {
			t.Fatal("no answer")
		}
		if got := net.HardwareAddr(out[0:6]); got.String() != vmMAC.String() {
			t.Fatalf("answer to %s, want the sender %s", got, vmMAC)
		}
		ip := out[14:]
		if ip[9] != protoTCP || netip.AddrFrom4([4]byte(ip[12:16])) != b || netip.AddrFrom4([4]byte(ip[16:20])) != a {
			t.Fatalf("answer header % x", ip[:20])
		}
		l4 := ip[20:]
		if c := checksum(b, a, protoTCP, l4); c != 0 {
			t.Fatalf("TCP checksum does not verify (%#x)", c)
		}
		return l4
	}
	rst := parseTCP(t, RejectAnswer(buildIP(routerMAC, vmMAC, a, b, protoTCP, seg(0x02, 1000, 0))))
	if rst[13] != 0x14 || binary.BigEndian.Uint32(rst[8:]) != 1001 || binary.BigEndian.Uint16(rst[0:]) != 80 || binary.BigEndian.Uint16(rst[2:]) != 40000 {
		t.Errorf("answer to a SYN: flags %#x ack %d ports %d->%d, want RST|ACK ack 1001 80->40000",
			rst[13], binary.BigEndian.Uint32(rst[8:]), binary.BigEndian.Uint16(rst[0:]), binary.BigEndian.Uint16(rst[2:]))
	}
	rst = parseTCP(t, RejectAnswer(buildIP(routerMAC, vmMAC, a, b, protoTCP, seg(0x10, 1000, 777))))
	if rst[13] != 0x04 || binary.BigEndian.Uint32(rst[4:]) != 777 {
		t.Errorf("answer to an ACK: flags %#x seq %d, want RST seq 777", rst[13], binary.BigEndian.Uint32(rst[4:]))
	}
	if out := RejectAnswer(buildIP(routerMAC, vmMAC, a, b, protoTCP, seg(0x04, 1, 0))); out != nil {
		t.Error("a RST was answered")
	}

	udp := buildUDP(routerMAC, vmMAC, a, b, 5000, 53, []byte("query"))
	out := RejectAnswer(udp)
	if out == nil {
		t.Fatal("UDP not answered")
	}
	ip := out[14:]
	if ip[9] != protoICMP || ip[20] != 3 || ip[21] != 3 || icmpChecksum(ip[20:]) != 0 {
		t.Fatalf("UDP answer: proto %d type %d code %d, want ICMP 3/3 with a valid checksum", ip[9], ip[20], ip[21])
	}
	if got := ip[28:]; len(got) != 28 || string(got[12:16]) != string(a.AsSlice()) {
		t.Errorf("ICMP quote % x: want the IP header and 8 bytes of the datagram", got)
	}
	if RejectAnswer(out) != nil {
		t.Error("an ICMP error was answered")
	}

	a6, b6 := netip.MustParseAddr("fd00:a::10"), netip.MustParseAddr("fd00:b::10")
	out = RejectAnswer(buildUDP(routerMAC, vmMAC, a6, b6, 5000, 53, []byte("query")))
	f6, err := ParseFrame(out)
	if err != nil || f6.Proto != protoICMP6 || f6.Payload[0] != 1 || f6.Payload[1] != 4 || f6.SrcIP != b6 || f6.DstIP != a6 {
		t.Fatalf("IPv6 UDP answer: %+v, %v: want ICMPv6 1/4 from %s to %s", f6, err, b6, a6)
	}
	if c := checksum(b6, a6, protoICMP6, f6.Payload); c != 0 {
		t.Errorf("ICMPv6 checksum does not verify (%#x)", c)
	}
	if RejectAnswer(out) != nil {
		t.Error("an ICMPv6 error was answered")
	}
	if RejectAnswer([]byte{1, 2, 3}) != nil {
		t.Error("a runt frame was answered")
	}
}
