package agent_test

import (
	"bytes"
	encbin "encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// flipInStoredEntry changes one byte of the first stored Raft log entry
// that contains needle, in a stopped server's raft.db, and returns its index.
func flipInStoredEntry(t *testing.T, path string, needle []byte) uint64 {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var idx uint64
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("logs"))
		var key, val []byte
		_ = b.ForEach(func(k, v []byte) error {
			if key == nil && bytes.Contains(v, needle) {
				key, val = bytes.Clone(k), bytes.Clone(v)
			}
			return nil
		})
		if key == nil {
			return fmt.Errorf("no entry contains %q", needle)
		}
		at := bytes.Index(val, needle)
		val[at+len(needle)-1] ^= 0x01 // the name's last letter changes
		idx = encbin.BigEndian.Uint64(key)
		return b.Put(key, val)
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// A follower whose stored entry was changed on disk exits at start with a
// one-line error naming the entry, the file and the recovery, and never
// serves; the documented recovery (remove-server through any server, wipe,
// start again) brings it back as a voter with the leader's state.
func TestCorruptServerStopsAndIsReplaced(t *testing.T) {
	c := newProcCluster(t, 3)
	leader := c.leader(30 * time.Second)
	var acked []string
	for i := range 20 {
		if id, ok := createNetwork(leader, fmt.Sprintf("net-%02d-original", i)); ok {
			acked = append(acked, id)
		}
	}
	if len(acked) != 20 {
		t.Fatalf("only %d of 20 writes acknowledged", len(acked))
	}
	victim := c.other(leader)
	eventually(t, 20*time.Second, func() error {
		var st status
		if _, err := getJSON("http://"+victim.http+"/v1/cluster", &st); err != nil {
			return err
		}
		var lst status
		if _, err := getJSON("http://"+leader.http+"/v1/cluster", &lst); err != nil {
			return err
		}
		if st.Revision != lst.Revision {
			return fmt.Errorf("%s at revision %d, leader at %d", victim.name, st.Revision, lst.Revision)
		}
		return nil
	})
	c.kill(victim)

	path := filepath.Join(victim.dir, "raft", "raft.db")
	idx := flipInStoredEntry(t, path, []byte("net-07-original"))

	logPath := filepath.Join(victim.dir, "agent.log")
	if err := os.Truncate(logPath, 0); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	select {
	case <-victim.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the corrupt server kept running")
	}
	if code := victim.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("corrupt server exited with %d, want 1", code)
	}
	victim.cmd = nil
	out, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"Error:", fmt.Sprintf("raft log entry %d", idx), path,
		"remove-server " + victim.name, "empty data dir"} {
		if !strings.Contains(last, want) {
			t.Errorf("last output line %q does not mention %q", last, want)
		}
	}
	if strings.Contains(string(out), "panic") {
		t.Errorf("output has a panic:\n%s", out)
	}

	// Recovery, as the README says: remove it through any healthy server
	// (a follower forwards to the leader), wipe its data dir, start it.
	via := c.other(victim, leader)
	req, err := http.NewRequest(http.MethodDelete, "http://"+via.http+"/v1/cluster/servers/"+victim.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Project-Id", "p1")
	req.Header.Set("X-Roles", "member")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("remove-server by a member: %d, want 403", resp.StatusCode)
	}
	// Until gossip has declared it dead, the leader refuses (ServerAlive).
	eventually(t, 20*time.Second, func() error {
		cli := exec.Command(binary, "--endpoint", "http://"+via.http, "cluster", "remove-server", victim.name)
		out, err := cli.CombinedOutput()
		if err != nil {
			if !strings.Contains(string(out), "ServerAlive") {
				t.Fatalf("remove-server: %v\n%s", err, out)
			}
			return fmt.Errorf("remove-server: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "Removed server "+victim.name) {
			t.Fatalf("remove-server printed %q", out)
		}
		return nil
	})
	c.waitVoters(leader, 2)
	if err := os.RemoveAll(victim.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(victim.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.start(victim)
	c.waitVoters(c.leader(30*time.Second), 3)
	id, ok := createNetwork(c.leader(30*time.Second), "after-recovery")
	if !ok {
		t.Fatal("write after recovery not acknowledged")
	}
	acked = append(acked, id)
	eventually(t, 30*time.Second, func() error {
		var st, lst status
		if _, err := getJSON("http://"+victim.http+"/v1/cluster", &st); err != nil {
			return err
		}
		if _, err := getJSON("http://"+c.leader(30*time.Second).http+"/v1/cluster", &lst); err != nil {
			return err
		}
		if st.Revision != lst.Revision {
			return fmt.Errorf("recovered %s at revision %d, leader at %d", victim.name, st.Revision, lst.Revision)
		}
		return nil
	})
	// Its own replica (a stale read is served locally) has every write,
	// with the original names.
	var l struct {
		Networks []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"networks"`
	}
	if code, err := getJSON("http://"+victim.http+"/v2.0/networks?stale=true", &l); err != nil || code != 200 {
		t.Fatalf("stale list on %s: %d %v", victim.name, code, err)
	}
	have := map[string]bool{}
	for _, n := range l.Networks {
		have[n.ID] = true
		if strings.HasPrefix(n.Name, "net-07") && n.Name != "net-07-original" {
			t.Errorf("recovered server serves the corrupted name %q", n.Name)
		}
	}
	checkAll(t, have, acked, "after recovery, on the recovered server's own replica")
}

// waitVoters waits until the node's Raft configuration has n voters.
func (c *procCluster) waitVoters(nd *node, n int) {
	c.t.Helper()
	eventually(c.t, 30*time.Second, func() error {
		var st status
		if _, err := getJSON("http://"+nd.http+"/v1/cluster", &st); err != nil {
			return err
		}
		voters := 0
		for _, s := range st.Servers {
			if s.Voter {
				voters++
			}
		}
		if voters != n {
			return fmt.Errorf("%d voters (%+v), want %d", voters, st.Servers, n)
		}
		return nil
	})
}

// flipInFile flips the last byte of every occurrence of needle in a file,
// under a running server (bbolt maps the file shared, so it reads the
// change), and reports how many it changed.
func flipInFile(t *testing.T, path string, needle []byte) int {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; ; {
		at := bytes.Index(buf[off:], needle)
		if at < 0 {
			break
		}
		pos := int64(off + at + len(needle) - 1)
		if _, err := f.WriteAt([]byte{buf[pos] ^ 0x01}, pos); err != nil {
			t.Fatal(err)
		}
		n++
		off += at + len(needle)
	}
	return n
}

// A leader that finds a stored entry corrupt while running (reading it to
// catch up a follower) exits 1 with the one-line error, without a panic;
// the others elect a new leader and go on.
func TestCorruptEntryReadWhileRunningStopsServer(t *testing.T) {
	c := newProcCluster(t, 3)
	leader := c.leader(30 * time.Second)
	lagging := c.other(leader)
	c.kill(lagging)
	var acked []string
	for i := range 5 {
		if id, ok := createNetwork(leader, fmt.Sprintf("while-down-%02d", i)); ok {
			acked = append(acked, id)
		}
	}
	if len(acked) != 5 {
		t.Fatalf("only %d of 5 writes acknowledged", len(acked))
	}
	logPath := filepath.Join(leader.dir, "agent.log")
	if n := flipInFile(t, filepath.Join(leader.dir, "raft", "raft.db"), []byte("while-down-02")); n == 0 {
		t.Fatal("entry not found in the leader's raft.db")
	}
	// The lagging follower comes back: the leader reads the entries it
	// missed from its store to send them.
	c.start(lagging)
	select {
	case <-leader.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader kept running with a corrupt entry")
	}
	if code := leader.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("leader exited with %d, want 1", code)
	}
	leader.cmd = nil
	out, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"Error:", "raft log entry", "is corrupt", "remove-server " + leader.name} {
		if !strings.Contains(last, want) {
			t.Errorf("last output line %q does not mention %q", last, want)
		}
	}
	if strings.Contains(string(out), "goroutine ") {
		t.Errorf("the leader panicked:\n%s", out)
	}
	next := c.leader(30 * time.Second)
	// A rejected write changed nothing, so it is retried: a new leader's
	// first writes can still meet a spurious 409 TunnelIdInUse (issue 11
	// case 4, fixed by the leader-readiness work, not here).
	eventually(t, 20*time.Second, func() error {
		body := []byte(`{"network": {"name": "after-leader-stopped"}}`)
		resp, err := httpClient.Post("http://"+next.http+"/v2.0/networks", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			return nil
		case http.StatusConflict, http.StatusServiceUnavailable:
			return fmt.Errorf("write after the corrupt leader stopped: %d %s", resp.StatusCode, msg)
		}
		t.Fatalf("write after the corrupt leader stopped: %d %s", resp.StatusCode, msg)
		return nil
	})
	checkAll(t, c.networkIDs(next), acked, "after the corrupt leader stopped")
}

// A second agent on a data dir another agent holds exits 1 with one line
// saying so, naming the holder's pid, instead of waiting or panicking.
func TestLockedDataDirIsOneLineError(t *testing.T) {
	c := newProcCluster(t, 1)
	first := c.leader(30 * time.Second)
	second := &node{name: "second", dir: first.dir,
		bind: fmt.Sprintf("127.0.0.1:%d", freePort(t, nil)), http: fmt.Sprintf("127.0.0.1:%d", freePort(t, nil))}
	var out bytes.Buffer
	cmd := exec.Command(binary, "agent", "--server", "--node", second.name, "--data-dir", second.dir,
		"--bind", second.bind, "--http", second.http, "--bootstrap-expect", "1", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("the second agent kept running on a locked data dir")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("second agent exited with %d, want 1; output:\n%s", code, out.String())
	}
	text := strings.TrimSpace(out.String())
	want := fmt.Sprintf("locked by pid %d (neutrino)", first.cmd.Process.Pid)
	if strings.Count(text, "\n") != 0 || !strings.HasPrefix(text, "Error:") || !strings.Contains(text, want) ||
		!strings.Contains(text, filepath.Join(first.dir, "raft", "raft.db")) {
		t.Fatalf("output %q: want one Error line naming raft.db and %q", text, want)
	}
}
