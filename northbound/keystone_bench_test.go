package northbound_test

import (
	"testing"
	"time"
)

// BenchmarkKeystoneRequest measures GET /v2.0/networks under
// --auth-strategy keystone against a real Keystone: warm, the token's
// validation is cached; cold (a TTL of 1 ns), every request asks Keystone
// (GET /v3/auth/tokens) first. The difference is Keystone's validation
// cost, which the cache saves for up to --token-cache-ttl.
func BenchmarkKeystoneRequest(b *testing.B) {
	k := newKeystoneSite(b)
	for _, c := range []struct {
		name string
		ttl  time.Duration
	}{{"warm", time.Minute}, {"cold", time.Nanosecond}} {
		b.Run(c.name, func(b *testing.B) {
			s := newAPIServer(b, k.tweak(c.ttl))
			hdr := map[string]string{"X-Auth-Token": k.token(b, "alice", "alpha")}
			if code := s.do("GET", "/v2.0/networks", hdr, nil, nil); code != 200 {
				b.Fatalf("first request: %d", code)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if code := s.do("GET", "/v2.0/networks", hdr, nil, nil); code != 200 {
					b.Fatalf("request %d: %d", i, code)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			latencyMetrics(b, lat)
		})
	}
}
