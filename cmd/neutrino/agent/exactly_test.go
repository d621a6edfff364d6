package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeOutcome is how one logical create ended for its writer.
type writeOutcome struct {
	name     string
	id       string // set when acknowledged (201)
	conflict bool   // a 409 TunnelIdInUse
	unknown  bool   // never learned the outcome
}

// createOnce creates a network named name through base, over the client's
// kept-alive connections, as a careful client does: with the key (its own
// or the one the server assigned), it retries 503s and broken connections
// until budget passes.
func createOnce(c *http.Client, base, name string, withKey bool, budget time.Duration) writeOutcome {
	key := ""
	if withKey {
		key = "k-" + name
	}
	body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": name}})
	deadline := time.Now().Add(budget)
	for {
		req, _ := http.NewRequest("POST", base+"/v2.0/networks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := c.Do(req)
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var out struct {
				Network      struct{ ID string }
				NeutronError struct{ Type string }
			}
			_ = json.Unmarshal(data, &out)
			if key == "" {
				key = resp.Header.Get("X-Neutrino-Request-Id")
			}
			switch {
			case resp.StatusCode == http.StatusCreated:
				return writeOutcome{name: name, id: out.Network.ID}
			case resp.StatusCode == http.StatusConflict && out.NeutronError.Type == "TunnelIdInUse":
				return writeOutcome{name: name, conflict: true}
			case resp.StatusCode != http.StatusServiceUnavailable:
				return writeOutcome{name: name, unknown: true}
			}
		}
		// Without a key a resend could apply twice: give up instead.
		if key == "" || time.Now().After(deadline) {
			return writeOutcome{name: name, unknown: true}
		}
		time.Sleep(100 * time.Millisecond) // the client's retry pacing, not a wait for a condition
	}
}

// TestFailoverWritesExactlyOnce is issue 11, cases 1 and 4 under load:
// writers with and without idempotency keys create networks through the
// followers over kept-alive connections while the leader is SIGKILLed.
// Every acknowledged create is present exactly once, no name is created
// twice, no create fails with a spurious TunnelIdInUse (the new leader
// allocates only once it has applied everything committed before), and
// segmentation ids are distinct.
func TestFailoverWritesExactlyOnce(t *testing.T) {
	c := newProcCluster(t, 3)
	leader := c.leader(30 * time.Second)
	var targets []*node
	for _, nd := range c.nodes {
		if nd != leader {
			targets = append(targets, nd)
		}
	}
	const writers = 12
	var (
		mu       sync.Mutex
		outcomes []writeOutcome
		acked    atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
			defer client.CloseIdleConnections()
			base := "http://" + targets[w%len(targets)].http
			for j := 0; !stop.Load() && j < 2000; j++ {
				o := createOnce(client, base, fmt.Sprintf("w%d-%d", w, j), w%2 == 0, 20*time.Second)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if o.id != "" {
					acked.Add(1)
				}
			}
		}()
	}
	waitAcks := func(n int64, what string) {
		eventually(t, 60*time.Second, func() error {
			if got := acked.Load(); got < n {
				return fmt.Errorf("%s: %d of %d writes acknowledged", what, got, n)
			}
			return nil
		})
	}
	waitAcks(150, "before the kill")
	c.kill(leader)
	killedAt := acked.Load()
	newLeader := c.leader(30 * time.Second)
	waitAcks(killedAt+300, "after the kill")
	stop.Store(true)
	wg.Wait()

	var l struct {
		Networks []struct {
			ID      string `json:"id"`
			Name    string `json:"name"`
			Segment int    `json:"provider:segmentation_id"`
		} `json:"networks"`
	}
	if code, err := getJSON("http://"+newLeader.http+"/v2.0/networks", &l); err != nil || code != 200 {
		t.Fatalf("list: %d %v", code, err)
	}
	byName := map[string][]string{}
	segs := map[int]string{}
	for _, n := range l.Networks {
		byName[n.Name] = append(byName[n.Name], n.ID)
		if other, ok := segs[n.Segment]; ok {
			t.Errorf("segmentation id %d on %s and %s", n.Segment, other, n.ID)
		}
		segs[n.Segment] = n.ID
	}
	var nAcked, conflicts, unknown, lost, dup, unknownPresent int
	for _, o := range outcomes {
		ids := byName[o.name]
		if len(ids) > 1 {
			dup++
			t.Errorf("%s created %d times: %v", o.name, len(ids), ids)
		}
		switch {
		case o.conflict:
			conflicts++
		case o.unknown:
			unknown++
			if len(ids) > 0 {
				unknownPresent++
			}
		case o.id != "":
			nAcked++
			if len(ids) != 1 || ids[0] != o.id {
				lost++
				t.Errorf("%s acknowledged as %s, stored as %v", o.name, o.id, ids)
			}
		}
	}
	t.Logf("%d writes: %d acknowledged, %d lost, %d duplicated, %d spurious TunnelIdInUse, %d unknown (%d of them applied)",
		len(outcomes), nAcked, lost, dup, conflicts, unknown, unknownPresent)
	if conflicts > 0 {
		t.Errorf("%d creates failed with a spurious TunnelIdInUse after the failover", conflicts)
	}
}
