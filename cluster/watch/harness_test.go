package watch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"neutrino/cluster/clustertest"
	"neutrino/cluster/watch"
	"neutrino/cmd/neutrino/agent"
	"neutrino/fsm"
	"neutrino/northbound"
)

var eventually = clustertest.Eventually

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// server is one in-process server agent: real Raft over loopback TCP,
// real HTTP API.
type server struct {
	name string
	a    *agent.Agent
	addr string // API host:port
	down bool
}

// startCluster starts n server agents and waits until all of them know
// the leader and the epoch is set.
func startCluster(t testing.TB, n int, tweak func(*northbound.Config)) []*server {
	t.Helper()
	api := northbound.DefaultConfig()
	api.VNIRanges = []northbound.Range{{Min: 1000, Max: 100000}}
	if tweak != nil {
		tweak(&api)
	}
	binds := make([]string, n)
	for i := range binds {
		binds[i] = clustertest.FreeBind(t)
	}
	var out []*server
	for i := range n {
		name := fmt.Sprintf("w-%d", i+1)
		a, err := agent.Start(agent.Config{
			Server: true, Node: name, DataDir: t.TempDir(), Bind: binds[i],
			HTTP: "127.0.0.1:0", BootstrapExpect: n, Join: binds, API: api, Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		s := &server{name: name, a: a, addr: a.HTTPAddr()}
		t.Cleanup(func() { s.stop() })
		out = append(out, s)
	}
	for _, s := range out {
		eventually(t, 30*time.Second, func() error {
			var st struct {
				Leader string `json:"leader"`
				Epoch  uint64 `json:"epoch"`
			}
			if code, _ := call(s.addr, "GET", "/v1/cluster", "", nil, &st); code != 200 || st.Leader == "" || st.Epoch == 0 {
				return fmt.Errorf("%s: no leader yet (%d %+v)", s.name, code, st)
			}
			return nil
		})
	}
	return out
}

// stop shuts the server down (its listener closes: clients are refused).
func (s *server) stop() {
	if s.down {
		return
	}
	s.down = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.a.Shutdown(ctx)
}

// split returns the leader and the followers.
func split(t testing.TB, servers []*server) (leader *server, followers []*server) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		leader, followers = nil, nil
		for _, s := range servers {
			if s.down {
				continue
			}
			if s.a.Cluster().IsLeader() {
				leader = s
			} else {
				followers = append(followers, s)
			}
		}
		if leader == nil {
			return fmt.Errorf("no leader among the live servers")
		}
		return nil
	})
	return leader, followers
}

var client = &http.Client{Timeout: 10 * time.Second}

// call sends a request to addr and returns the status and the revision
// header.
func call(addr, method, path, token string, body, out any) (int, uint64) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(data, out)
	}
	rev, _ := strconv.ParseUint(resp.Header.Get(northbound.HeaderRevision), 10, 64)
	return resp.StatusCode, rev
}

// write sends a write to s and fails t unless it answers want; it returns
// the object's id (for a create) and the committed revision.
func write(t testing.TB, s *server, method, path string, want int, body any) (string, uint64) {
	t.Helper()
	var out map[string]map[string]any
	code, rev := call(s.addr, method, path, "", body, &out)
	if code != want {
		t.Fatalf("%s %s: %d, want %d", method, path, code, want)
	}
	for _, obj := range out {
		id, _ := obj["id"].(string)
		return id, rev
	}
	return "", rev
}

// heldSubscriber records every batch a watcher delivers and, once armed,
// holds the watcher inside the next delivery until released, so its
// revision stays behind while a test writes on.
type heldSubscriber struct {
	*recorder
	hold, entered, released chan struct{}
	once                    sync.Once
}

// subscribeHeld subscribes a heldSubscriber to w; it is released at the
// end of the test at the latest.
func subscribeHeld(t testing.TB, w *watch.Watcher) *heldSubscriber {
	h := &heldSubscriber{recorder: &recorder{}, hold: make(chan struct{}, 1),
		entered: make(chan struct{}, 1), released: make(chan struct{})}
	w.Subscribe(func(b watch.Batch) {
		h.add(b)
		select {
		case <-h.hold:
			h.entered <- struct{}{}
			<-h.released
		default:
		}
	})
	t.Cleanup(h.release)
	return h
}

// arm makes the next delivery hold; waitHeld waits until one does.
func (h *heldSubscriber) arm()      { h.hold <- struct{}{} }
func (h *heldSubscriber) waitHeld() { <-h.entered }

// release lets the held delivery (and every later one) go on.
func (h *heldSubscriber) release() { h.once.Do(func() { close(h.released) }) }

// changes counts the changes delivered so far.
func (h *heldSubscriber) changes() int {
	n := 0
	for _, b := range h.all() {
		n += len(b.Changes)
	}
	return n
}

// recorder keeps every batch a watcher delivers.
type recorder struct {
	mu      sync.Mutex
	batches []watch.Batch
}

func (r *recorder) add(b watch.Batch) {
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
}

func (r *recorder) all() []watch.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]watch.Batch(nil), r.batches...)
}

// history returns what the batches said about one object, in order:
// "upsert:NAME" or "delete".
func (r *recorder) history(table, id string) []string {
	var out []string
	for _, b := range r.all() {
		for _, c := range b.Changes {
			if c.Table != table || c.ID != id {
				continue
			}
			if c.Op == watch.OpDelete {
				out = append(out, "delete")
				continue
			}
			out = append(out, "upsert:"+c.Object.(fsm.Object).GetMeta().Name)
		}
	}
	return out
}

// newWatcher starts a watcher that records its batches and is closed at
// the end of the test.
func newWatcher(t testing.TB, cfg watch.Config) (*watch.Watcher, *recorder) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	w, err := watch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	w.Subscribe(rec.add)
	t.Cleanup(w.Close)
	return w, rec
}

func waitRevision(t testing.TB, w *watch.Watcher, rev uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WaitRevision(ctx, rev); err != nil {
		t.Fatalf("%v (stats %+v)", err, w.Stats())
	}
}

// sameAs reports how the watcher's copy differs from a server's state;
// nil when they are at the same revision with the same objects.
func sameAs(w *watch.Watcher, f *fsm.FSM, tables []string) error {
	v := f.State().Read()
	for _, t := range tables {
		want := v.Objects(t)
		got, rev := w.List(t)
		if rev != v.Revision() {
			return fmt.Errorf("copy at revision %d, state at %d", rev, v.Revision())
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s: copy has %d objects, state %d", t, len(got), len(want))
		}
		for i := range want {
			a, _ := json.Marshal(got[i])
			b, _ := json.Marshal(want[i])
			if !bytes.Equal(a, b) {
				return fmt.Errorf("%s: copy has %s, state %s", t, a, b)
			}
		}
	}
	return nil
}

// blackhole accepts connections and never answers: a server behind a
// partition, as a client sees it.
func blackhole(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

func addrs(servers ...*server) []string {
	var out []string
	for _, s := range servers {
		out = append(out, s.addr)
	}
	return out
}
