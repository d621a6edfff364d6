package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Writes is a set of concurrent writers creating networks with unique
// names (Prefix-W-N) through random servers, recording which creates were
// acknowledged (201) and with what id. A writer never resends a request:
// a write with an unknown outcome may or may not exist, but an
// acknowledged one must, once.
type Writes struct {
	Prefix string

	apis  func() map[string]string // server -> API URL, asked before each write
	cut   atomic.Value             // server the writers avoid, "" for none
	acks  atomic.Int64
	mu    sync.Mutex
	acked map[string]string // name -> id of every 201
	tried int
	fails map[string]int    // error class -> count
	first map[string]string // error class -> its first answer, for the log

	stop    context.CancelFunc
	wg      sync.WaitGroup
	stopped sync.Once
}

// StartWrites starts writers creating networks through the servers apis
// names (server name -> API URL, asked before each write: a restarted
// server's URL may change) until Stop or the end of the test.
func StartWrites(tb testing.TB, prefix string, apis func() map[string]string, writers int) *Writes {
	w := &Writes{Prefix: prefix, apis: apis, acked: map[string]string{}, fails: map[string]int{}, first: map[string]string{}}
	w.cut.Store("")
	ctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	for id := range writers {
		w.wg.Go(func() { w.writer(ctx, id) })
	}
	tb.Cleanup(w.Stop)
	return w
}

// APIs maps every server of e to its API URL now (Env.API).
func (e *Env) APIs() map[string]string {
	out := map[string]string{}
	for _, s := range e.Servers() {
		out[s] = e.API(s)
	}
	return out
}

// Avoid makes new writes go to the other servers ("" : to any): writes
// already in flight to a server that is cut off meet the cut.
func (w *Writes) Avoid(server string) { w.cut.Store(server) }

// Acks is how many creates were acknowledged so far.
func (w *Writes) Acks() int64 { return w.acks.Load() }

// Stop ends the writers and waits for them.
func (w *Writes) Stop() {
	w.stopped.Do(func() {
		w.stop()
		w.wg.Wait()
	})
}

// WaitAcks waits until n more creates than before were acknowledged.
func (w *Writes) WaitAcks(tb testing.TB, before int64, n int, timeout time.Duration, what string) {
	tb.Helper()
	Poll(tb, timeout, what, func() error {
		if got := w.Acks() - before; got < int64(n) {
			return fmt.Errorf("%d acknowledged since", got)
		}
		return nil
	})
}

// writer creates networks through random servers over its own kept-alive
// connections until ctx ends; each name is sent once.
func (w *Writes) writer(ctx context.Context, id int) {
	// A request that times out is an unknown outcome like any other; the
	// bound keeps a writer from idling on a stalled forward.
	client := &http.Client{Timeout: 15 * time.Second, Transport: Transport(2)}
	defer client.CloseIdleConnections()
	for seq := 0; ctx.Err() == nil; seq++ {
		apis := w.apis()
		var servers []string
		for s := range apis {
			servers = append(servers, s)
		}
		slices.Sort(servers)
		cut, _ := w.cut.Load().(string)
		survivors := Without(servers, cut)
		server := survivors[rand.IntN(len(survivors))]
		name := fmt.Sprintf("%s-%d-%d", w.Prefix, id, seq)
		status, netID, err := CreateNetwork(context.Background(), client, apis[server], name)
		w.mu.Lock()
		w.tried++
		class := ""
		switch {
		case err != nil:
			class, netID = "transport", err.Error()
		case status == http.StatusCreated:
			w.acked[name] = netID
			w.acks.Add(1)
		default:
			class = strconv.Itoa(status)
		}
		if class != "" {
			w.fails[class]++
			if _, ok := w.first[class]; !ok {
				w.first[class] = server + ": " + netID
			}
		}
		w.mu.Unlock()
		if err != nil || status != http.StatusCreated {
			// Do not hammer a server that just failed.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// CreateNetwork POSTs one network and returns the status and its id (for
// an error answer, its body instead of the id).
func CreateNetwork(ctx context.Context, c *http.Client, api, name string) (int, string, error) {
	body := strings.NewReader(fmt.Sprintf(`{"network": {"name": %q}}`, name))
	req, err := http.NewRequestWithContext(ctx, "POST", api+"/v2.0/networks", body)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		// Acknowledged, but we cannot tell with what: count it as an
		// unknown outcome.
		return 0, "", fmt.Errorf("decode 201: %w", err)
	}
	return resp.StatusCode, out.Network.ID, nil
}

// Check stops the writers and checks, through api, that every
// acknowledged network exists with the id it was acknowledged with and
// that no name exists twice; then it deletes the writers' networks. It
// returns how many creates were acknowledged.
func (w *Writes) Check(tb testing.TB, api string) int {
	tb.Helper()
	w.Stop()
	r, err := Call("GET", api+"/v2.0/networks?fields=id&fields=name", nil, nil)
	if err != nil || r.Status != http.StatusOK {
		tb.Fatalf("list networks: %v %d %s", err, r.Status, r.Body)
	}
	var list struct {
		Networks []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(r.Body, &list); err != nil {
		tb.Fatal(err)
	}
	present := map[string][]string{}
	for _, n := range list.Networks {
		if strings.HasPrefix(n.Name, w.Prefix+"-") {
			present[n.Name] = append(present[n.Name], n.ID)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	lost, dup, unacked := 0, 0, 0
	for name, id := range w.acked {
		if ids := present[name]; !slices.Contains(ids, id) {
			lost++
			tb.Errorf("acknowledged network %s (%s) is missing (present: %v)", name, id, ids)
		}
	}
	for name, ids := range present {
		if _, ok := w.acked[name]; !ok {
			unacked++
		}
		if len(ids) > 1 {
			dup++
			tb.Errorf("network %s exists %d times: %v", name, len(ids), ids)
		}
	}
	tb.Logf("writes %s: %d creates tried, %d acknowledged, %d present (%d unacknowledged that took effect), %d lost, %d duplicated; failures %v",
		w.Prefix, w.tried, len(w.acked), len(present), unacked, lost, dup, w.fails)
	for class, first := range w.first {
		tb.Logf("first %s failure: %s", class, first)
	}
	if len(w.acked) == 0 {
		tb.Fatal("no write was acknowledged")
	}
	for _, ids := range present {
		for _, id := range ids {
			if r, err := Call("DELETE", api+"/v2.0/networks/"+id, nil, nil); err != nil || r.Status != http.StatusNoContent {
				tb.Errorf("delete network %s: %v %d", id, err, r.Status)
			}
		}
	}
	return len(w.acked)
}
