package nemesis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestResumedLeaderAnswersNoStalePrecondition reproduces what the nemesis
// found (porcupine: "cas(N -> x) -> 412, served by" the old leader): a
// leader frozen by SIGSTOP while the others elect a new one and move a
// network's revision on still believes it leads when it resumes, and must
// not answer a compare-and-set from its stale state. A PUT with If-Match on
// the current revision, queued on its socket while it is frozen, must be
// applied (200, forwarded or served after it learned the news) or refused
// honestly (503), never rejected with 412.
func TestResumedLeaderAnswersNoStalePrecondition(t *testing.T) {
	if testing.Short() {
		t.Skip("runs server processes")
	}
	c := newProcCluster(t, 3)
	// The resumed server races its own step-down: several queued requests
	// per round and several rounds, each one more draw.
	for round := range 6 {
		if staleRound(t, c, round) {
			return
		}
		c.caughtUp(60 * time.Second)
	}
}

// staleRound pauses the leader, moves n networks on through the new one,
// queues a CAS per network on the frozen server, resumes it and checks
// the answers; it reports whether one was a stale 412.
func staleRound(t *testing.T, c *procCluster, round int) bool {
	old := c.leader(60 * time.Second)
	const n = 4
	ids := make([]string, n)
	revs := make([]uint64, n)
	for i := range ids {
		id, st, err := CreateNetwork(waitCtx(t, 30*time.Second), old.http, fmt.Sprintf("stale-%d-%d", round, i))
		if err != nil {
			t.Fatal(err)
		}
		ids[i], revs[i] = id, st.Rev
	}
	c.caughtUp(60 * time.Second)
	c.pause(old)
	defer c.resume(old)
	leader := c.leader(60 * time.Second)

	for i, id := range ids {
		code, got := casPut(t, leader.http, id, revs[i], "moved")
		if code != http.StatusOK || got != revs[i]+1 {
			t.Fatalf("CAS through the new leader %s: %d, revision %d", leader.name, code, got)
		}
		revs[i]++
	}

	// The requests reach the frozen server's socket (the kernel accepts
	// and buffers them) before the server resumes.
	conns := make([]net.Conn, n)
	reqs := make([]*http.Request, n)
	for i, id := range ids {
		conn, err := net.DialTimeout("tcp", old.http, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": "after"}})
		req, _ := http.NewRequest(http.MethodPut, "http://"+old.http+"/v2.0/networks/"+id, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("If-Match", "revision_number="+strconv.FormatUint(revs[i], 10))
		if err := req.Write(conn); err != nil {
			t.Fatal(err)
		}
		conns[i], reqs[i] = conn, req
	}
	c.resume(old)
	stale := false
	for i, conn := range conns {
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), reqs[i])
		if err != nil {
			t.Fatalf("no answer from the resumed old leader %s: %v", old.name, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		served := resp.Header.Get("X-Neutrino-Served-By")
		switch resp.StatusCode {
		case http.StatusOK, http.StatusServiceUnavailable:
		default:
			stale = true
			t.Errorf("round %d: CAS on the current revision %d sent to the resumed old leader %s: %d served by %q: %s "+
				"(the leader at that time, %s, had that revision)", round, revs[i], old.name, resp.StatusCode, served,
				bytes.TrimSpace(data), leader.name)
		}
	}
	return stale
}

// casPut sends PUT name with If-Match and returns the status and the
// revision in the answer.
func casPut(t *testing.T, addr, id string, rev uint64, name string) (int, uint64) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"network": map[string]any{"name": name}})
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v2.0/networks/"+id, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("If-Match", fmt.Sprintf("revision_number=%d", rev))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var nw network
	_ = json.NewDecoder(resp.Body).Decode(&nw)
	return resp.StatusCode, nw.Network.RevisionNumber
}
