package northbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"neutrino/cmd/neutrino/agent"
	"neutrino/northbound"
)

// proxiedServer is an in-process server agent whose API address, as the
// other servers know it (gossip), is a faultProxy in front of it.
type proxiedServer struct {
	name  string
	agent *agent.Agent
	proxy *faultProxy
	base  string // the real API address, for clients
}

// stop shuts the server's agent down (Raft, gossip, API), standing in for
// its death.
func (s *proxiedServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.agent.Shutdown(ctx)
}

// writeThroughStall POSTs a network through the follower while the
// leader's API stalls, then takes the stalled leader down once the write
// is held there, and returns the follower's answer.
func writeThroughStall(tb testing.TB, client *http.Client, leader, follower *proxiedServer) postResult {
	tb.Helper()
	leader.proxy.stall.Store(true)
	done := make(chan postResult, 1)
	go func() { done <- post(client, follower.base, "stalled", "") }()
	eventually(tb, 10*time.Second, func() error {
		if leader.proxy.held.Load() == 0 {
			return fmt.Errorf("the write has not reached the stalled leader")
		}
		return nil
	})
	leader.stop()
	return <-done
}

// newProxiedCluster starts n server agents (real Raft over loopback TCP)
// that forward to each other through fault proxies.
func newProxiedCluster(t testing.TB, n int) []*proxiedServer {
	t.Helper()
	api := northbound.DefaultConfig()
	binds := make([]string, n)
	for i := range binds {
		binds[i] = freeBind(t)
	}
	var out []*proxiedServer
	for i := 0; i < n; i++ {
		p := newFaultProxy(t)
		name := fmt.Sprintf("fx-%d", i+1)
		a, err := agent.Start(agent.Config{
			Server: true, Node: name, DataDir: t.TempDir(), Bind: binds[i],
			HTTP: "127.0.0.1:0", AdvertiseHTTP: p.addr(), BootstrapExpect: n, Join: binds, API: api,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		p.target.Store(a.HTTPAddr())
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = a.Shutdown(ctx)
		})
		out = append(out, &proxiedServer{name: name, agent: a, proxy: p, base: "http://" + a.HTTPAddr()})
	}
	return out
}

// leaderOf waits until every listed server names the same leader among
// them, and returns it and one of the others.
func leaderOf(t testing.TB, servers []*proxiedServer) (leader, follower *proxiedServer) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		leader, follower = nil, nil
		name := ""
		for _, s := range servers {
			var st struct {
				Leader string `json:"leader"`
				Epoch  uint64 `json:"epoch"`
			}
			if code, err := getJSONFrom(s.base+"/v1/cluster", &st); err != nil || code != 200 || st.Leader == "" || st.Epoch == 0 {
				return fmt.Errorf("%s: no leader yet (%d %v)", s.name, code, err)
			}
			if name != "" && st.Leader != name {
				return fmt.Errorf("leaders disagree: %s vs %s", name, st.Leader)
			}
			name = st.Leader
		}
		for _, s := range servers {
			if s.name == name {
				leader = s
			} else if follower == nil {
				follower = s
			}
		}
		if leader == nil {
			return fmt.Errorf("leader %s is not among the live servers", name)
		}
		return nil
	})
	return leader, follower
}

func getJSONFrom(url string, out any) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}

type postResult struct {
	code int
	id   string
	typ  string
	hdr  http.Header
	err  error
	took time.Duration
}

// post creates a network over the client's kept-alive connections.
func post(c *http.Client, base, name, key string) postResult {
	body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": name}})
	req, _ := http.NewRequest("POST", base+"/v2.0/networks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return postResult{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	var out struct {
		Network      struct{ ID string }
		NeutronError struct{ Type string }
	}
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return postResult{code: resp.StatusCode, id: out.Network.ID, typ: out.NeutronError.Type, hdr: resp.Header, took: time.Since(start)}
}

// networksNamed lists, through a server (consistent read), the ids of the
// networks with the name.
func networksNamed(t testing.TB, base, name string) []string {
	t.Helper()
	var ids []string
	eventually(t, 20*time.Second, func() error {
		var l struct {
			Networks []struct{ ID string } `json:"networks"`
		}
		code, err := getJSONFrom(base+"/v2.0/networks?fields=id&name="+name, &l)
		if err != nil || code != 200 {
			return fmt.Errorf("list: %d %v", code, err)
		}
		ids = nil
		for _, n := range l.Networks {
			ids = append(ids, n.ID)
		}
		return nil
	})
	return ids
}

func keptAliveClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
}

// TestForwardedKeyedPostAfterLeaderDiesAppliesOnce is issue 11, case 1: a
// client POSTs with an Idempotency-Key over a kept-alive connection to a
// follower; the leader applies the request and dies before its answer
// gets out. The request must take effect once, and a retry with the key
// must return the same network.
func TestForwardedKeyedPostAfterLeaderDiesAppliesOnce(t *testing.T) {
	servers := newProxiedCluster(t, 3)
	leader, follower := leaderOf(t, servers)
	client := keptAliveClient(30 * time.Second)
	// Warm up: the follower now holds a kept-alive connection to the
	// leader, the one Go's transport would resend a replayable POST on.
	if r := post(client, follower.base, "warm", "warm-key"); r.code != 201 {
		t.Fatalf("warm-up write: %+v", r)
	}

	leader.proxy.dropNext.Store(true)
	done := make(chan postResult, 1)
	go func() { done <- post(client, follower.base, "once", "key-1") }()
	select {
	case <-leader.proxy.dropped:
	case r := <-done:
		t.Fatalf("the write answered before reaching the leader: %+v", r)
	case <-time.After(20 * time.Second):
		t.Fatal("the write never reached the leader")
	}
	// The leader applied it and is gone before answering.
	leader.stop()
	r := <-done
	t.Logf("first answer after %v: %d %s", r.took.Round(time.Millisecond), r.code, r.typ)
	live := []*proxiedServer{}
	for _, s := range servers {
		if s != leader {
			live = append(live, s)
		}
	}
	leaderOf(t, live)
	switch {
	case r.code == 201:
	case r.code == 503 && r.typ == northbound.ErrTypeOutcomeUnknown && r.hdr.Get("X-Neutrino-Request-Id") == "key-1":
	default:
		t.Fatalf("answer %+v: want 201, or 503 OutcomeUnknown naming the key", r)
	}
	ids := networksNamed(t, follower.base, "once")
	if len(ids) != 1 {
		t.Fatalf("%d networks for one request with one key: %v", len(ids), ids)
	}
	if r.code == 201 && r.id != ids[0] {
		t.Fatalf("acknowledged id %s, stored %s", r.id, ids[0])
	}
	again := post(client, follower.base, "once", "key-1")
	if again.code != 201 || again.id != ids[0] || again.hdr.Get("X-Neutrino-Replayed") != "true" {
		t.Fatalf("retry with the key: %+v, want 201 %s replayed", again, ids[0])
	}
	if ids := networksNamed(t, follower.base, "once"); len(ids) != 1 {
		t.Fatalf("after the retry: %d networks", len(ids))
	}
}

// TestForwardToStalledLeaderMovesToNewLeader is issue 11, case 2: a write
// through a follower is in flight to a leader that stops answering (its
// API stalls, its Raft is gone); once a new leader is elected the write
// completes there, once, well within the client's timeout.
func TestForwardToStalledLeaderMovesToNewLeader(t *testing.T) {
	servers := newProxiedCluster(t, 3)
	leader, follower := leaderOf(t, servers)
	client := keptAliveClient(25 * time.Second)
	if r := post(client, follower.base, "warm", ""); r.code != 201 {
		t.Fatalf("warm-up write: %+v", r)
	}
	r := writeThroughStall(t, client, leader, follower)
	t.Logf("write through the follower answered after %v: %d %s", r.took.Round(time.Millisecond), r.code, r.typ)
	if r.err != nil || r.code != 201 {
		t.Fatalf("write through the follower: %+v", r)
	}
	if ids := networksNamed(t, follower.base, "stalled"); len(ids) != 1 || ids[0] != r.id {
		t.Fatalf("networks named stalled: %v, acknowledged %s", ids, r.id)
	}
}
