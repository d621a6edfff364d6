package dhcp

import (
	"net"
	"net/netip"
	"testing"
)

// The fuzz targets feed the responder whole frames from a VM port: any
// input must be answered or dropped, never crash it, and a dropped frame
// that does not decode must be counted.

func FuzzDHCPv4(f *testing.F) {
	f.Add(request4(Discover, netip.Addr{}))
	f.Add(request4(Request, netip.MustParseAddr("10.0.0.5")))
	f.Add(request4(Request, netip.Addr{}, Option{OptRequestedIP, []byte{10, 0, 0, 6}}, Option{OptServerID, []byte{10, 0, 0, 1}}))
	f.Add(request4(Inform, netip.MustParseAddr("10.0.0.5"), Option{OptClientID, make([]byte, 300)}))
	r, _ := newTestResponder(true)
	f.Fuzz(func(t *testing.T, b []byte) {
		before := r.Stats()
		out := r.Handle(7, b)
		after := r.Stats()
		if out == nil && after.Malformed == before.Malformed && after.Silent == before.Silent {
			t.Fatalf("dropped without counting: %x", b)
		}
		if out != nil {
			if _, err := ParseFrame(out); err != nil {
				t.Fatalf("answer does not decode: %v", err)
			}
		}
	})
}

func FuzzDHCPv6(f *testing.F) {
	cll := linkLocal(clientMAC)
	msg := []byte{Solicit6, 1, 2, 3}
	msg = appendOpt6(msg, Opt6ClientID, DUID(clientMAC))
	msg = appendOpt6(msg, Opt6IANA, make([]byte, 12))
	mc := net.HardwareAddr{0x33, 0x33, 0, 1, 0, 2}
	f.Add(buildUDP(mc, clientMAC, cll, netip.MustParseAddr("ff02::1:2"), 546, 547, msg))
	info := appendOpt6([]byte{InfoReq6, 0, 0, 1}, Opt6ClientID, DUID(clientMAC))
	f.Add(buildUDP(mc, clientMAC, cll, netip.MustParseAddr("ff02::1:2"), 546, 547, info))
	rs := append([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 1}, clientMAC...)
	f.Add(buildICMP6(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, clientMAC, cll, netip.MustParseAddr("ff02::2"), rs))
	r, _ := newTestResponder(true)
	f.Fuzz(func(t *testing.T, b []byte) {
		before := r.Stats()
		out := r.Handle(7, b)
		after := r.Stats()
		if out == nil && after.Malformed == before.Malformed && after.Silent == before.Silent {
			t.Fatalf("dropped without counting: %x", b)
		}
		if out != nil {
			if _, err := ParseFrame(out); err != nil {
				t.Fatalf("answer does not decode: %v", err)
			}
		}
	})
}
