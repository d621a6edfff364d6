package northbound_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"neutrino/northbound"
)

// testRealizer stands in for the leader's controller: one chassis that
// realized up to a revision the test moves.
type testRealizer struct {
	mu       sync.Mutex
	realized uint64
	changed  chan struct{} // closed when realized moves
	waits    []uint64      // revisions waited for, in order
}

func newTestRealizer() *testRealizer { return &testRealizer{changed: make(chan struct{})} }

func (r *testRealizer) set(rev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.realized = rev
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *testRealizer) waited() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.waits...)
}

func (r *testRealizer) Realization() []northbound.ChassisRealization {
	r.mu.Lock()
	defer r.mu.Unlock()
	return []northbound.ChassisRealization{{Chassis: "ch1", RealizedRevision: r.realized, Connected: true, Master: true}}
}

func (r *testRealizer) WaitRealized(ctx context.Context, rev uint64) error {
	r.mu.Lock()
	r.waits = append(r.waits, rev)
	r.mu.Unlock()
	for {
		r.mu.Lock()
		done, ch := r.realized >= rev, r.changed
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// leaderAndFollower finds the leader's node name and one follower.
func leaderAndFollower(t *testing.T, servers []*apiServer) (leader string, follower *apiServer) {
	t.Helper()
	for _, s := range servers {
		var st struct {
			Node   string `json:"node"`
			Leader string `json:"leader"`
		}
		s.do("GET", "/v1/cluster", nil, nil, &st)
		leader = st.Leader
		if st.Node != st.Leader && follower == nil {
			follower = s
		}
	}
	if leader == "" || follower == nil {
		t.Fatal("no leader or no follower")
	}
	return leader, follower
}

func TestRealization(t *testing.T) {
	rz := newTestRealizer()
	servers := newAPICluster(t, 3, func(c *northbound.Config) { c.Realizer = rz })
	leader, follower := leaderAndFollower(t, servers)

	// GET /v1/realization is answered by the leader, even through a follower.
	var st northbound.RealizationStatus
	code, hdr := follower.doRaw("GET", "/v1/realization", nil, nil, &st)
	if code != 200 || st.Leader != leader || st.Revision == 0 || len(st.Chassis) != 1 || st.Chassis[0].Chassis != "ch1" ||
		hdr.Get(northbound.HeaderServedBy) != leader || hdr.Get(northbound.HeaderRevision) != strconv.FormatUint(st.Revision, 10) {
		t.Fatalf("realization: %d %+v %v", code, st, hdr)
	}

	// A write with ?wait=realized through a follower answers once the
	// leader saw its revision realized.
	type answer struct {
		code int
		hdr  http.Header
		body map[string]any
	}
	answered := make(chan answer, 1)
	go func() {
		var out map[string]any
		code, hdr := follower.doRaw("POST", "/v2.0/networks?wait=realized", nil,
			map[string]any{"network": map[string]any{"name": "waited"}}, &out)
		answered <- answer{code, hdr, out}
	}()
	var rev uint64
	eventually(t, 10*time.Second, func() error {
		if w := rz.waited(); len(w) > 0 {
			rev = w[len(w)-1]
			return nil
		}
		return fmt.Errorf("nobody waits")
	})
	select {
	case a := <-answered:
		t.Fatalf("answered before realization: %d %v", a.code, a.body)
	case <-time.After(200 * time.Millisecond):
	}
	rz.set(rev)
	select {
	case a := <-answered:
		if a.code != 201 || a.hdr.Get(northbound.HeaderRevision) != strconv.FormatUint(rev, 10) ||
			a.hdr.Get(northbound.HeaderServedBy) != leader || a.body["network"] == nil {
			t.Fatalf("waited write: %d %v %v", a.code, a.hdr, a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after realization")
	}

	// Not realized in time: 504, but committed at the revision it names.
	var ne neutronError
	code, hdr = follower.doRaw("POST", "/v2.0/networks", map[string]string{
		northbound.HeaderWait: "realized", northbound.HeaderWaitTimeout: "0.2",
	}, map[string]any{"network": map[string]any{"name": "late"}}, &ne)
	committed := hdr.Get(northbound.HeaderRevision)
	if code != http.StatusGatewayTimeout || ne.NeutronError.Type != northbound.ErrTypeRealizationTimeout ||
		committed == "" || !strings.Contains(ne.NeutronError.Message, "revision "+committed) {
		t.Fatalf("timeout: %d %+v %v", code, ne, hdr)
	}
	if got := servers[0].list("/v2.0/networks?name=late", nil, "networks"); len(got) != 1 {
		t.Fatalf("the timed-out write was not committed: %v", got)
	}

	// Already realized: no wait at all. DELETE and PUT wait too.
	rz.set(1 << 40)
	id := servers[0].list("/v2.0/networks?name=late", nil, "networks")[0]["id"].(string)
	if code := follower.do("PUT", "/v2.0/networks/"+id+"?wait=realized", nil,
		map[string]any{"network": map[string]any{"name": "renamed"}}, nil); code != 200 {
		t.Fatalf("PUT with wait: %d", code)
	}
	n := len(rz.waited())
	if code := follower.do("DELETE", "/v2.0/networks/"+id, map[string]string{northbound.HeaderWait: "realized"}, nil, nil); code != 204 {
		t.Fatalf("DELETE with wait: %d", code)
	}
	if len(rz.waited()) != n+1 {
		t.Fatal("DELETE with wait did not wait")
	}

	// Bad requests to wait are refused before anything is committed.
	for _, tc := range []struct {
		path string
		hdr  map[string]string
	}{
		{"/v2.0/networks?wait=yes", nil},
		{"/v2.0/networks?wait=", nil},
		{"/v2.0/networks", map[string]string{northbound.HeaderWait: "soon"}},
		{"/v2.0/networks", map[string]string{northbound.HeaderWait: "realized", northbound.HeaderWaitTimeout: "-1"}},
		{"/v2.0/networks", map[string]string{northbound.HeaderWait: "realized", northbound.HeaderWaitTimeout: "forever"}},
	} {
		for _, s := range []*apiServer{follower, servers[0]} {
			var ne neutronError
			if code := s.do("POST", tc.path, tc.hdr, map[string]any{"network": map[string]any{"name": "bad"}}, &ne); code != 400 ||
				ne.NeutronError.Type != "HTTPBadRequest" {
				t.Errorf("%s %v: %d %+v", tc.path, tc.hdr, code, ne)
			}
		}
	}
	// Nothing was created (the revision itself may move: the cluster
	// commits chassis and membership in the background).
	var list struct {
		Networks []map[string]any `json:"networks"`
	}
	if code := servers[0].do("GET", "/v2.0/networks?name=bad", nil, nil, &list); code != 200 || len(list.Networks) != 0 {
		t.Fatalf("a refused wait created networks: %d %v", code, list.Networks)
	}

	// wait is not a filter of reads.
	if code := follower.do("GET", "/v2.0/networks?wait=realized", nil, nil, nil); code != 200 {
		t.Fatalf("list with wait: %d", code)
	}
	if code := follower.do("GET", "/v2.0/ports?wait=realized&stale=1", nil, nil, nil); code != 200 {
		t.Fatalf("stale list with wait: %d", code)
	}
}
