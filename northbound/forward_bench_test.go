package northbound_test

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkForwardStalledLeader measures how long a write through a
// follower takes when it is in flight to a leader that stalls (its API
// stops answering, its Raft is gone): the forwarder abandons the attempt
// once its Raft view changes and resends to the new leader. One fresh
// 3-server cluster per iteration (set-up not timed); reports the median
// and the maximum answer time. Run with -benchtime=10x for a median of 10.
func BenchmarkForwardStalledLeader(b *testing.B) {
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		took = append(took, stalledLeaderWrite(b))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "median-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
}

func stalledLeaderWrite(b *testing.B) time.Duration {
	b.Helper()
	servers := newProxiedCluster(b, 3)
	defer func() {
		// Free the iteration's cluster now rather than at the end.
		for _, s := range servers {
			s.stop()
			s.proxy.close()
		}
	}()
	leader, follower := leaderOf(b, servers)
	client := keptAliveClient(25 * time.Second)
	defer client.CloseIdleConnections()
	if r := post(client, follower.base, "warm", ""); r.code != 201 {
		b.Fatalf("warm-up write: %+v", r)
	}
	b.StartTimer()
	r := writeThroughStall(b, client, leader, follower)
	b.StopTimer()
	if r.code != 201 {
		b.Fatalf("write through the follower: %+v", r)
	}
	return r.took
}
