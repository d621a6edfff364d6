package trace

import "testing"

func TestParseTo(t *testing.T) {
	for _, tc := range []struct {
		in, proto string
		port      int
		bad       bool
	}{
		{in: "10.0.0.5", proto: "icmp"},
		{in: "10.0.0.5:icmp", proto: "icmp"},
		{in: "10.0.0.5:tcp/22", proto: "tcp", port: 22},
		{in: "10.0.0.5:UDP/53", proto: "udp", port: 53},
		{in: "10.0.0.5:tcp", bad: true},
		{in: "10.0.0.5:tcp/0", bad: true},
		{in: "10.0.0.5:tcp/70000", bad: true},
		{in: "10.0.0.5:icmp/8", bad: true},
		{in: "10.0.0.5:sctp/1", bad: true},
		{in: "fd00::1", bad: true},
		{in: "host", bad: true},
	} {
		dst, proto, port, err := ParseTo(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseTo(%q): err %v, want bad=%v", tc.in, err, tc.bad)
			continue
		}
		if !tc.bad && (dst.String() != "10.0.0.5" || proto != tc.proto || port != tc.port) {
			t.Errorf("ParseTo(%q) = %s %s %d, want 10.0.0.5 %s %d", tc.in, dst, proto, port, tc.proto, tc.port)
		}
	}
}
