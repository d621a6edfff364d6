package watch_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"neutrino/cluster"
	"neutrino/cluster/clustertest"
	"neutrino/cluster/watch"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
)

var watched = []string{fsm.TableNetworks, fsm.TablePorts, fsm.TableRouters}

// Creates, updates and deletes of ports and routers reach a watcher of a
// follower one revision at a time, in order, and its copy is the leader's
// state.
func TestWatchFollowsChanges(t *testing.T) {
	servers := startCluster(t, 3, nil)
	leader, followers := split(t, servers)
	w, rec := newWatcher(t, watch.Config{Servers: func() []string { return addrs(followers[0]) }, Tables: watched})
	waitRevision(t, w, 1)

	netID, _ := write(t, leader, "POST", "/v2.0/networks", 201, map[string]any{"network": map[string]any{"name": "n1"}})
	steps := []struct {
		method, path string
		want         int
		body         any
	}{
		{"POST", "/v2.0/ports", 201, map[string]any{"port": map[string]any{"network_id": netID, "name": "p-a"}}},
		{"POST", "/v2.0/routers", 201, map[string]any{"router": map[string]any{"name": "r-a"}}},
		{"PUT", "/v2.0/ports/PORT", 200, map[string]any{"port": map[string]any{"name": "p-b"}}},
		{"PUT", "/v2.0/routers/ROUTER", 200, map[string]any{"router": map[string]any{"name": "r-b"}}},
		{"DELETE", "/v2.0/ports/PORT", 204, nil},
		{"DELETE", "/v2.0/routers/ROUTER", 204, nil},
	}
	var portID, routerID string
	for _, st := range steps {
		path := st.path
		if portID != "" {
			path = replace(path, "PORT", portID)
		}
		if routerID != "" {
			path = replace(path, "ROUTER", routerID)
		}
		id, rev := write(t, leader, st.method, path, st.want, st.body)
		switch {
		case st.path == "/v2.0/ports" && st.method == "POST":
			portID = id
		case st.path == "/v2.0/routers" && st.method == "POST":
			routerID = id
		}
		if rev == 0 {
			t.Fatalf("%s %s: no revision header", st.method, path)
		}
		// One write at a time: each reaches the watcher before the next.
		waitRevision(t, w, rev)
		if got := w.Revision(); got != rev {
			t.Fatalf("after %s %s at revision %d the copy is at %d", st.method, path, rev, got)
		}
	}
	if got, want := rec.history(fsm.TablePorts, portID), []string{"upsert:p-a", "upsert:p-b", "delete"}; !slices.Equal(got, want) {
		t.Errorf("port history %v, want %v", got, want)
	}
	if got, want := rec.history(fsm.TableRouters, routerID), []string{"upsert:r-a", "upsert:r-b", "delete"}; !slices.Equal(got, want) {
		t.Errorf("router history %v, want %v", got, want)
	}
	var last uint64
	for _, b := range rec.all() {
		if b.Revision <= last {
			t.Errorf("batch at revision %d after one at %d", b.Revision, last)
		}
		last = b.Revision
	}
	if n, ok := watch.Get[*fsm.Network](w, fsm.TableNetworks, netID); !ok || n.Name != "n1" {
		t.Errorf("network %s in the copy: %+v", netID, n)
	}
	eventually(t, 10*time.Second, func() error { return sameAs(w, leader.a.FSM(), watched) })
}

// The watched server (a follower, or the leader) dies and the next one
// listed is unreachable: the watcher moves on to a live server, resumes
// from its revision and misses nothing.
func TestWatchFailsOver(t *testing.T) {
	for _, victim := range []string{"follower", "leader"} {
		t.Run(victim, func(t *testing.T) { testFailover(t, victim) })
	}
}

func testFailover(t *testing.T, victim string) {
	servers := startCluster(t, 3, nil)
	leader, followers := split(t, servers)
	watched1, others := followers[0], []*server{leader, followers[1]}
	if victim == "leader" {
		watched1, others = leader, followers
	}
	hole := blackhole(t)
	list := append(addrs(watched1), hole)
	list = append(list, addrs(others...)...)
	w, rec := newWatcher(t, watch.Config{Servers: func() []string { return list }, Tables: watched,
		PollTimeout: time.Second, RequestTimeout: time.Second})
	waitRevision(t, w, 1)

	netID, _ := write(t, leader, "POST", "/v2.0/networks", 201, map[string]any{"network": map[string]any{"name": "n1"}})
	var ports []string
	createPorts := func(n int) uint64 {
		var rev uint64
		for range n {
			var id string
			lead, _ := split(t, servers)
			id, rev = write(t, lead, "POST", "/v2.0/ports", 201,
				map[string]any{"port": map[string]any{"network_id": netID, "name": fmt.Sprintf("p%d", len(ports))}})
			ports = append(ports, id)
		}
		return rev
	}
	waitRevision(t, w, createPorts(5))
	if s := w.Stats().Server; s != watched1.addr {
		t.Fatalf("watching %s, want %s", s, watched1.addr)
	}

	watched1.stop()
	rev := createPorts(5)
	leader, _ = split(t, servers)
	_, del := write(t, leader, "DELETE", "/v2.0/ports/"+ports[0], 204, nil)
	rev = max(rev, del)
	waitRevision(t, w, rev)

	st := w.Stats()
	if st.Server == watched1.addr || st.Server == hole || st.Failovers < 2 {
		t.Errorf("stats after the kill: %+v", st)
	}
	if st.Resyncs != 1 {
		t.Errorf("%d resyncs, want 1: a failover resumes from the revision", st.Resyncs)
	}
	for i, id := range ports {
		want := []string{fmt.Sprintf("upsert:p%d", i)}
		if i == 0 {
			want = append(want, "delete")
		}
		if got := rec.history(fsm.TablePorts, id); !slices.Equal(got, want) {
			t.Errorf("port %d history %v, want %v", i, got, want)
		}
	}
	eventually(t, 10*time.Second, func() error { return sameAs(w, leader.a.FSM(), watched) })
}

// A watcher that falls behind the servers' change history gets 410 Gone,
// rebuilds its copy from a snapshot (deleting what vanished meanwhile) and
// equals the leader's state again.
func TestWatchResyncsAfterGone(t *testing.T) {
	servers := startCluster(t, 3, nil)
	for _, s := range servers {
		s.a.FSM().SetHistoryBound(4)
	}
	leader, followers := split(t, servers)
	w, err := watch.New(watch.Config{Servers: func() []string { return addrs(followers...) }, Tables: watched, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	// A subscriber that stops the watcher while held: the watcher's
	// revision stays behind while the writes below go on.
	rec := subscribeHeld(t, w)
	netID, rev := write(t, leader, "POST", "/v2.0/networks", 201, map[string]any{"network": map[string]any{"name": "n1"}})
	gone, _ := write(t, leader, "POST", "/v2.0/ports", 201, map[string]any{"port": map[string]any{"network_id": netID, "name": "gone"}})
	waitRevision(t, w, rev)

	rec.arm()
	write(t, leader, "POST", "/v2.0/routers", 201, map[string]any{"router": map[string]any{"name": "r0"}})
	rec.waitHeld()
	write(t, leader, "DELETE", "/v2.0/ports/"+gone, 204, nil)
	var last uint64
	for i := range 20 {
		_, last = write(t, leader, "POST", "/v2.0/ports", 201,
			map[string]any{"port": map[string]any{"network_id": netID, "name": fmt.Sprintf("p%d", i)}})
	}
	rec.release()
	waitRevision(t, w, last)

	if st := w.Stats(); st.Resyncs != 2 {
		t.Errorf("%d resyncs, want 2 (the first sync and one after 410)", st.Resyncs)
	}
	if got := rec.history(fsm.TablePorts, gone); !slices.Equal(got, []string{"upsert:gone", "delete"}) {
		t.Errorf("history of the port deleted while behind: %v", got)
	}
	resyncs := 0
	for _, b := range rec.all() {
		if b.Resync {
			resyncs++
		}
	}
	if resyncs != 2 {
		t.Errorf("%d resync batches, want 2", resyncs)
	}
	eventually(t, 10*time.Second, func() error { return sameAs(w, leader.a.FSM(), watched) })
}

// A watcher behind by more changes than an answer may carry catches up in
// pages, and its subscribers see one batch at the revision the pages
// reach, never a copy assembled from objects of different revisions.
func TestWatchCatchesUpInPages(t *testing.T) {
	servers := startCluster(t, 3, nil)
	leader, followers := split(t, servers)
	w, err := watch.New(watch.Config{Servers: func() []string { return addrs(followers[0]) }, Tables: watched,
		MaxChanges: 2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	rec := subscribeHeld(t, w)
	netID, rev := write(t, leader, "POST", "/v2.0/networks", 201, map[string]any{"network": map[string]any{"name": "n1"}})
	waitRevision(t, w, rev)
	rec.arm()
	write(t, leader, "POST", "/v2.0/routers", 201, map[string]any{"router": map[string]any{"name": "r0"}})
	rec.waitHeld()
	held := len(rec.all())
	answers := w.Stats().Answers
	var ports []string
	var last uint64
	for i := range 10 {
		var id string
		id, last = write(t, leader, "POST", "/v2.0/ports", 201,
			map[string]any{"port": map[string]any{"network_id": netID, "name": fmt.Sprintf("p%d", i)}})
		ports = append(ports, id)
	}
	_, last2 := write(t, leader, "PUT", "/v2.0/ports/"+ports[0], 200, map[string]any{"port": map[string]any{"name": "p0-renamed"}})
	last = max(last, last2)
	// The follower has the whole backlog before the watcher asks for it.
	eventually(t, 10*time.Second, func() error {
		if r := followers[0].a.FSM().State().Read().Revision(); r < last {
			return fmt.Errorf("follower at %d, want %d", r, last)
		}
		return nil
	})
	rec.release()
	waitRevision(t, w, last)

	st := w.Stats()
	if st.Resyncs != 1 {
		t.Errorf("%d resyncs, want 1", st.Resyncs)
	}
	if st.Answers-answers < 5 {
		t.Errorf("%d answers for 10 ports at 2 changes an answer", st.Answers-answers)
	}
	after := rec.all()[held:]
	if len(after) != 1 || after[0].Revision != last || len(after[0].Changes) != 10 {
		t.Fatalf("batches after the backlog: %+v, want one of the 10 ports at revision %d", after, last)
	}
	if got := rec.history(fsm.TablePorts, ports[0]); !slices.Equal(got, []string{"upsert:p0-renamed"}) {
		t.Errorf("port 0 history %v", got)
	}
	eventually(t, 10*time.Second, func() error { return sameAs(w, leader.a.FSM(), watched) })
}

// A server cut off from the others ends a waiting watch with 503 instead
// of answering "nothing changed" for as long as it is cut off.
func TestWatchCutOffServerRefuses(t *testing.T) {
	servers := startCluster(t, 3, nil)
	_, followers := split(t, servers)
	lone := followers[0]
	done := make(chan int, 1)
	go func() {
		code, _ := call(lone.addr, "GET", watch.PathWatch+"?tables=ports&since=1000000&timeout=300", "", nil, nil)
		done <- code
	}()
	for _, s := range servers {
		if s != lone {
			s.stop()
		}
	}
	select {
	case code := <-done:
		if code != 503 {
			t.Errorf("watch on a cut-off server: %d, want 503", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the watch on a cut-off server still waits")
	}
}

// In token mode only an admin may watch: a watch carries every project's
// objects. Bad tables and a revision of another cluster epoch are refused.
func TestWatchNeedsAdmin(t *testing.T) {
	servers := startCluster(t, 1, func(c *northbound.Config) {
		c.AuthStrategy = northbound.AuthToken
		c.Tokens = map[string]northbound.TokenEntry{
			"admin-token":  {ProjectID: "p-admin", UserID: "u1", Roles: []string{"admin"}},
			"member-token": {ProjectID: "p-member", UserID: "u2", Roles: []string{"member"}},
		}
	})
	s := servers[0]
	var cl struct {
		Epoch uint64 `json:"epoch"`
	}
	if code, _ := call(s.addr, "GET", "/v1/cluster", "admin-token", nil, &cl); code != 200 || cl.Epoch == 0 {
		t.Fatalf("cluster status: %d %+v", code, cl)
	}
	other := strconv.FormatUint(cl.Epoch+1, 10)
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{watch.PathWatch + "?tables=ports&since=0&timeout=0", "member-token", 403},
		{watch.PathSnapshot + "?tables=ports", "member-token", 403},
		{watch.PathWatch + "?tables=ports&since=0&timeout=0", "", 401},
		{watch.PathSnapshot + "?tables=ports", "admin-token", 200},
		{watch.PathWatch + "?tables=ports&since=0&timeout=0", "admin-token", 200},
		{watch.PathWatch + "?tables=requests&since=0&timeout=0", "admin-token", 400},
		// A revision of another cluster (bootstrapped anew) cannot be
		// continued from.
		{watch.PathWatch + "?tables=ports&since=0&timeout=0&epoch=" + other, "admin-token", 410},
	} {
		if code, _ := call(s.addr, "GET", c.path, c.token, nil, nil); code != c.want {
			t.Errorf("GET %s as %q: %d, want %d", c.path, c.token, code, c.want)
		}
	}
	w, _ := newWatcher(t, watch.Config{Servers: func() []string { return addrs(s) }, Tables: watched, Token: "admin-token"})
	waitRevision(t, w, 1)
}

func replace(s, old, repl string) string { return strings.Replace(s, old, repl, 1) }

// A chassis agent (no Raft) watches the servers it finds in gossip
// (Agent.Watch), and its own API refuses watches: it keeps no replica.
func TestChassisAgentWatch(t *testing.T) {
	servers := startCluster(t, 1, nil)
	srv := servers[0]
	ch, err := agent.Start(agent.Config{Node: "hv1", DataDir: t.TempDir(), Bind: clustertest.FreeBind(t),
		HTTP: "127.0.0.1:0", Join: []string{srv.a.Cluster().Members()[0].Addr}, Logger: quiet,
		Chassis: cluster.NodeMeta{TunnelIP: "192.0.2.1", Roles: []string{"compute"}, Encaps: []string{"vxlan"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ch.Shutdown(ctx)
	})
	w, err := ch.Watch(watched...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	netID, rev := write(t, srv, "POST", "/v2.0/networks", 201, map[string]any{"network": map[string]any{"name": "n1"}})
	waitRevision(t, w, rev)
	if n, ok := watch.Get[*fsm.Network](w, fsm.TableNetworks, netID); !ok || n.Name != "n1" {
		t.Errorf("network in the chassis' copy: %+v", n)
	}
	eventually(t, 10*time.Second, func() error { return sameAs(w, srv.a.FSM(), watched) })
	if code, _ := call(ch.HTTPAddr(), "GET", watch.PathSnapshot+"?tables=ports", "", nil, nil); code != 503 {
		t.Errorf("snapshot from a chassis agent: %d, want 503", code)
	}
}
