package dhcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"neutrino/fsm"
)

var clientMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 5}

// request4 builds a DHCPv4 client frame of type t with extra options.
func request4(t uint8, ciaddr netip.Addr, opts ...Option) []byte {
	m := &Message{Op: 1, HType: 1, HLen: 6, XID: 0x1234, CIAddr: ciaddr, YIAddr: netip.IPv4Unspecified(),
		SIAddr: netip.IPv4Unspecified(), GIAddr: netip.IPv4Unspecified()}
	copy(m.CHAddr[:], clientMAC)
	m.Options = append([]Option{{OptMessageType, []byte{t}}}, opts...)
	src := ciaddr
	if !src.IsValid() {
		src = netip.IPv4Unspecified()
	}
	return buildUDP(net.HardwareAddr{255, 255, 255, 255, 255, 255}, clientMAC, src, netip.AddrFrom4([4]byte{255, 255, 255, 255}), 68, 67, m.Marshal())
}

type fixed struct {
	ports    []*fsm.Port
	subnets  []*fsm.Subnet
	networks []*fsm.Network
}

func (s *fixed) Ports() []*fsm.Port       { return s.ports }
func (s *fixed) Subnets() []*fsm.Subnet   { return s.subnets }
func (s *fixed) Networks() []*fsm.Network { return s.networks }

func newTestResponder(enable bool) (*Responder, *fixed) {
	src := &fixed{
		networks: []*fsm.Network{{Meta: fsm.Meta{ID: "n"}, MTU: 1450}},
		subnets: []*fsm.Subnet{
			{Meta: fsm.Meta{ID: "s4"}, NetworkID: "n", IPVersion: 4, CIDR: "10.0.0.0/24", GatewayIP: "10.0.0.1", EnableDHCP: enable},
			{Meta: fsm.Meta{ID: "s6"}, NetworkID: "n", IPVersion: 6, CIDR: "2001:db8::/64", GatewayIP: "2001:db8::1", EnableDHCP: enable,
				IPv6RAMode: "dhcpv6-stateful", IPv6AddressMode: "dhcpv6-stateful", DNSNameservers: []string{"2001:db8::53"}},
		},
		ports: []*fsm.Port{
			{Meta: fsm.Meta{ID: "vm"}, NetworkID: "n", MACAddress: clientMAC.String(), BindingHostID: "ch", BindingOFPort: 7,
				FixedIPs: []fsm.FixedIP{{SubnetID: "s4", IPAddress: "10.0.0.5"}, {SubnetID: "s6", IPAddress: "2001:db8::5"}}},
			{Meta: fsm.Meta{ID: "other"}, NetworkID: "n", MACAddress: "fa:16:3e:00:00:06", BindingHostID: "ch", BindingOFPort: 8,
				FixedIPs: []fsm.FixedIP{{SubnetID: "s4", IPAddress: "10.0.0.6"}}},
			{Meta: fsm.Meta{ID: "rif"}, NetworkID: "n", MACAddress: "fa:16:3e:00:00:01", DeviceOwner: fsm.DeviceOwnerRouterInterface,
				FixedIPs: []fsm.FixedIP{{SubnetID: "s4", IPAddress: "10.0.0.1"}, {SubnetID: "s6", IPAddress: "2001:db8::1"}}},
		},
	}
	return New(Config{Chassis: "ch", Source: src, Settings: Settings{LeaseTime: time.Hour}, Logger: slog.New(slog.DiscardHandler)}), src
}

func reply4(t *testing.T, b []byte) *Message {
	t.Helper()
	if b == nil {
		t.Fatal("no reply")
	}
	f, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.SrcPort != 67 || f.DstPort != 68 {
		t.Fatalf("ports %d -> %d", f.SrcPort, f.DstPort)
	}
	// A reply has op 2: decode by hand what ParseV4 refuses in a request.
	m, err := ParseV4(append([]byte{1}, f.Payload[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAnswersV4(t *testing.T) {
	r, _ := newTestResponder(true)
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	ip := func(s string) Option { return Option{OptRequestedIP, netip.MustParseAddr(s).AsSlice()} }
	sid := Option{OptServerID, netip.MustParseAddr("10.0.0.1").AsSlice()}
	for _, tc := range []struct {
		name   string
		port   uint32
		frame  []byte
		want   uint8 // 0: no answer
		yiaddr string
	}{
		{"discover", 7, request4(Discover, netip.Addr{}), Offer, "10.0.0.5"},
		{"discover asking for another port's address", 7, request4(Discover, netip.Addr{}, ip("10.0.0.6")), Offer, "10.0.0.5"},
		{"selecting", 7, request4(Request, netip.Addr{}, ip("10.0.0.5"), sid), Ack, "10.0.0.5"},
		{"selecting another server", 7, request4(Request, netip.Addr{}, ip("10.0.0.5"), Option{OptServerID, []byte{10, 0, 0, 9}}), 0, ""},
		{"init-reboot own address", 7, request4(Request, netip.Addr{}, ip("10.0.0.5")), Ack, "10.0.0.5"},
		{"init-reboot another port's address", 7, request4(Request, netip.Addr{}, ip("10.0.0.6")), Nak, "0.0.0.0"},
		{"renewing", 7, request4(Request, netip.MustParseAddr("10.0.0.5")), Ack, "10.0.0.5"},
		{"renewing a stale address", 7, request4(Request, netip.MustParseAddr("10.0.0.7")), Nak, "0.0.0.0"},
		{"inform", 7, request4(Inform, netip.MustParseAddr("10.0.0.5")), Ack, "0.0.0.0"},
		{"release", 7, request4(Release, netip.MustParseAddr("10.0.0.5")), 0, ""},
		{"decline", 7, request4(Decline, netip.Addr{}, ip("10.0.0.5")), 0, ""},
		{"the other port, same client MAC", 8, request4(Discover, netip.Addr{}), Offer, "10.0.0.6"},
		{"unknown ofport", 9, request4(Discover, netip.Addr{}), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := r.Handle(tc.port, tc.frame)
			if tc.want == 0 {
				if out != nil {
					t.Fatalf("answered %x", out)
				}
				return
			}
			m := reply4(t, out)
			if m.Type() != tc.want || m.YIAddr.String() != tc.yiaddr || m.XID != 0x1234 {
				t.Fatalf("type %d yiaddr %v xid %x, want %d %s", m.Type(), m.YIAddr, m.XID, tc.want, tc.yiaddr)
			}
			if tc.want == Offer || (tc.want == Ack && tc.yiaddr != "0.0.0.0") {
				if v, _ := m.Option(OptLeaseTime); binary.BigEndian.Uint32(v) != 3600 {
					t.Errorf("lease %x", v)
				}
				if v, _ := m.Option(OptMTU); binary.BigEndian.Uint16(v) != 1450 {
					t.Errorf("mtu %x", v)
				}
				if v, _ := m.Option(OptRouter); !bytes.Equal(v, []byte{10, 0, 0, 1}) {
					t.Errorf("router %v", v)
				}
			}
			f, _ := ParseFrame(out)
			if tc.want == Nak && f.DstIP != bcast {
				t.Errorf("NAK to %v, want broadcast", f.DstIP)
			}
			if !bytes.Equal(f.SrcMAC, []byte{0xfa, 0x16, 0x3e, 0, 0, 1}) {
				t.Errorf("server MAC %v, want the router interface's", f.SrcMAC)
			}
		})
	}
}

func TestDisabledIsSilent(t *testing.T) {
	r, _ := newTestResponder(false)
	if out := r.Handle(7, request4(Discover, netip.Addr{})); out != nil {
		t.Fatal("answered with enable_dhcp=false")
	}
	if st := r.Stats(); st.Silent != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFixedIPChangeNaksRenewal(t *testing.T) {
	r, src := newTestResponder(true)
	src.ports[0].FixedIPs[0].IPAddress = "10.0.0.50"
	r.Invalidate()
	if m := reply4(t, r.Handle(7, request4(Request, netip.MustParseAddr("10.0.0.5")))); m.Type() != Nak {
		t.Fatalf("renewal of the old address: type %d, want NAK", m.Type())
	}
	if m := reply4(t, r.Handle(7, request4(Discover, netip.Addr{}))); m.YIAddr.String() != "10.0.0.50" {
		t.Fatalf("offer %v, want the new address", m.YIAddr)
	}
}

func TestMalformedCounted(t *testing.T) {
	r, _ := newTestResponder(true)
	good := request4(Discover, netip.Addr{})
	// An option whose length runs past the end of the message.
	huge := request4(Discover, netip.Addr{}, Option{OptClientID, []byte("abcdefgh")})
	huge[bytes.Index(huge, []byte("abcdefgh"))-1] = 0xff
	for _, b := range [][]byte{nil, good[:20], good[:42], good[:300], huge} {
		if out := r.Handle(7, b); out != nil {
			t.Fatalf("answered a malformed packet")
		}
	}
	if st := r.Stats(); st.Malformed != 5 {
		t.Fatalf("stats %+v: want 5 malformed", st)
	}
}

func TestDHCPv6Stateful(t *testing.T) {
	r, _ := newTestResponder(true)
	cll := linkLocal(clientMAC)
	msg := []byte{Solicit6, 1, 2, 3}
	msg = appendOpt6(msg, Opt6ClientID, DUID(clientMAC))
	msg = appendOpt6(msg, Opt6IANA, make([]byte, 12))
	out := r.Handle(7, buildUDP(net.HardwareAddr{0x33, 0x33, 0, 1, 0, 2}, clientMAC, cll, netip.MustParseAddr("ff02::1:2"), 546, 547, msg))
	if out == nil {
		t.Fatalf("no advertise (stats %+v)", r.Stats())
	}
	f, err := ParseFrame(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Payload[0] != Advertise6 || f.DstIP != cll {
		t.Fatalf("type %d to %v", f.Payload[0], f.DstIP)
	}
	opts, err := parseOptions6(f.Payload[4:])
	if err != nil {
		t.Fatal(err)
	}
	var addr netip.Addr
	for _, o := range opts {
		if o.Code == Opt6IANA {
			in, _ := parseOptions6(o.Value[12:])
			addr = netip.AddrFrom16([16]byte(in[0].Value[:16]))
		}
	}
	if addr != netip.MustParseAddr("2001:db8::5") {
		t.Fatalf("IA_NA address %v", addr)
	}
}

func TestRouterSolicitation(t *testing.T) {
	r, _ := newTestResponder(true)
	rs := []byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 1}
	rs = append(rs, clientMAC...)
	out := r.Handle(7, buildICMP6(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, clientMAC, linkLocal(clientMAC), netip.MustParseAddr("ff02::2"), rs))
	if out == nil {
		t.Fatal("no RA")
	}
	f, err := ParseFrame(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Payload[0] != 134 || f.Payload[5]&0xc0 != 0xc0 || f.SrcIP != linkLocal(net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}) {
		t.Fatalf("RA %x from %v: want type 134 with M and O from the router", f.Payload[:8], f.SrcIP)
	}
	if checksum(f.SrcIP, f.DstIP, protoICMP6, f.Payload) != 0 {
		t.Fatal("bad ICMPv6 checksum")
	}
}

func TestParseErrorsWrapMalformed(t *testing.T) {
	for _, b := range [][]byte{{1, 2}, make([]byte, 300)} {
		if _, err := ParseV4(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseV4: %v", err)
		}
	}
	if _, err := ParseV6([]byte{1, 0, 0, 0, 0, 1, 0xff, 0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseV6: %v", err)
	}
}

func TestExtraDHCPOpts(t *testing.T) {
	r, src := newTestResponder(true)
	src.ports[0].ExtraDHCPOpts = []fsm.DHCPOpt{
		{Name: "ntp-server", Value: "10.0.0.123,10.0.0.124", IPVersion: 4},
		{Name: "mtu", Value: "1300", IPVersion: 4},
		{Name: "250", Value: "custom", IPVersion: 4},
		{Name: "42", Value: "not-an-address", IPVersion: 4}, // left out
		{Name: "23", Value: "fd00::1", IPVersion: 6},        // not DHCPv4
	}
	r.Invalidate()
	m := reply4(t, r.Handle(7, request4(Discover, netip.Addr{})))
	if v, _ := m.Option(42); !bytes.Equal(v, []byte{10, 0, 0, 123, 10, 0, 0, 124}) {
		t.Errorf("option 42 = %v", v)
	}
	if v, _ := m.Option(OptMTU); binary.BigEndian.Uint16(v) != 1300 {
		t.Errorf("mtu = %v, want the extra option's 1300", v)
	}
	if v, _ := m.Option(250); string(v) != "custom" {
		t.Errorf("option 250 = %q", v)
	}
}

func TestDHCPv6Stateless(t *testing.T) {
	r, src := newTestResponder(true)
	src.subnets[1].IPv6AddressMode, src.subnets[1].IPv6RAMode = "dhcpv6-stateless", "dhcpv6-stateless"
	r.Invalidate()
	cll := linkLocal(clientMAC)
	msg := appendOpt6([]byte{InfoReq6, 4, 5, 6}, Opt6ClientID, DUID(clientMAC))
	out := r.Handle(7, buildUDP(net.HardwareAddr{0x33, 0x33, 0, 1, 0, 2}, clientMAC, cll, netip.MustParseAddr("ff02::1:2"), 546, 547, msg))
	if out == nil {
		t.Fatal("no reply to an information-request")
	}
	f, _ := ParseFrame(out)
	opts, err := parseOptions6(f.Payload[4:])
	if err != nil || f.Payload[0] != Reply6 {
		t.Fatalf("reply type %d: %v", f.Payload[0], err)
	}
	var dns []byte
	for _, o := range opts {
		if o.Code == Opt6IANA {
			t.Error("stateless reply carries an IA_NA")
		}
		if o.Code == Opt6DNS {
			dns = o.Value
		}
		if o.Code == Opt6ServerID && !bytes.Equal(o.Value, DUID(net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1})) {
			t.Errorf("server DUID %x, want the router interface's MAC", o.Value)
		}
	}
	if !bytes.Equal(dns, netip.MustParseAddr("2001:db8::53").AsSlice()) {
		t.Fatalf("DNS option %x", dns)
	}
	// The RA of a stateless subnet: O without M, and the A flag.
	rs := append([]byte{133, 0, 0, 0, 0, 0, 0, 0}, 1, 1)
	rs = append(rs, clientMAC...)
	ra := r.Handle(7, buildICMP6(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, clientMAC, cll, netip.MustParseAddr("ff02::2"), rs))
	rf, _ := ParseFrame(ra)
	if rf.Payload[5]&0xc0 != 0x40 {
		t.Fatalf("RA flags %x, want O only", rf.Payload[5])
	}
}
