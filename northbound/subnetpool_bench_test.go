package northbound_test

import (
	"fmt"
	"net/netip"
	"testing"

	"neutrino/northbound"
)

// BenchmarkSubnetPoolFirstFree: the next free /24 of a 10.0.0.0/8 pool
// whose first 1,000 /24s are taken (the search steps past each used
// prefix, so its cost is bounded by the used prefixes, not the pool).
func BenchmarkSubnetPoolFirstFree(b *testing.B) {
	pool := netip.MustParsePrefix("10.0.0.0/8")
	var used []netip.Prefix
	for i := 0; i < 1000; i++ {
		used = append(used, netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)))
	}
	want := netip.MustParsePrefix("10.3.232.0/24")
	b.ReportAllocs()
	for b.Loop() {
		if got, ok := northbound.FirstFree(pool, 24, used); !ok || got != want {
			b.Fatalf("got %s %v", got, ok)
		}
	}
}

// TestSubnetPoolFirstFree checks the search on a pool with holes and
// larger and smaller used prefixes.
func TestSubnetPoolFirstFree(t *testing.T) {
	p := netip.MustParsePrefix
	pool := p("10.0.0.0/22")
	for _, c := range []struct {
		used []netip.Prefix
		bits int
		want string
	}{
		{nil, 24, "10.0.0.0/24"},
		{[]netip.Prefix{p("10.0.0.0/28")}, 24, "10.0.1.0/24"},
		{[]netip.Prefix{p("10.0.0.0/23")}, 26, "10.0.2.0/26"},
		{[]netip.Prefix{p("10.0.0.0/24"), p("10.0.2.0/24")}, 24, "10.0.1.0/24"},
		{[]netip.Prefix{p("10.0.0.0/23"), p("10.0.2.0/23")}, 28, ""},
		{nil, 21, ""},
	} {
		got, ok := northbound.FirstFree(pool, c.bits, c.used)
		if (c.want == "") == ok || (ok && got.String() != c.want) {
			t.Fatalf("used %v /%d: got %s %v, want %q", c.used, c.bits, got, ok, c.want)
		}
	}
}
