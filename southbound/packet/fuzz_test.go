package packet

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// FuzzParseARP: any frame parses or fails without panicking, and what
// parses encodes back to a frame that parses to the same ARP.
func FuzzParseARP(f *testing.F) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	ip, target := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, vlan := range []uint16{0, 100} {
		b, err := NewARPRequest(mac, ip, target, vlan)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	if b, err := NewARPReply(mac, ip, net.HardwareAddr{2, 0, 0, 0, 0, 2}, target, 0); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		a, err := ParseARP(frame)
		if err != nil {
			return
		}
		out, err := a.Marshal()
		if err != nil {
			t.Fatalf("parsed ARP %+v does not encode: %v", a, err)
		}
		b, err := ParseARP(out)
		if err != nil {
			t.Fatalf("re-encoded ARP does not parse: %v", err)
		}
		if !bytes.Equal(a.EthDst, b.EthDst) || !bytes.Equal(a.EthSrc, b.EthSrc) || a.VLAN != b.VLAN || a.Op != b.Op ||
			!bytes.Equal(a.SHA, b.SHA) || a.SPA != b.SPA || !bytes.Equal(a.THA, b.THA) || a.TPA != b.TPA {
			t.Fatalf("round trip: %+v -> %+v", a, b)
		}
	})
}
