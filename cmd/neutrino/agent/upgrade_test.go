package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// previousRelease is the release a rolling upgrade starts from: the last
// commit before servers announced their command types (issue 17), whose
// command set is fsm.BaselineCommands. The test needs it in the clone's
// history (a shallow clone must be deepened: git fetch --unshallow).
const previousRelease = "05fefc1"

// buildPrevious builds previousRelease's agent from this clone's history
// into a temporary directory (-trimpath, so the build cache serves a rerun).
func buildPrevious(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("not in a git clone: %v", err)
	}
	root := strings.TrimSpace(string(out))
	if err := exec.Command("git", "-C", root, "cat-file", "-e", previousRelease+"^{commit}").Run(); err != nil {
		t.Fatalf("commit %s is not in this clone (a shallow clone? git fetch --unshallow): %v", previousRelease, err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("git", "-C", root, "archive", previousRelease)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", previousRelease, err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar %s: %v", previousRelease, err)
	}
	bin := filepath.Join(dir, "neutrino-"+previousRelease)
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/neutrino")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", previousRelease, err, out)
	}
	return bin
}

// postFinalize asks a node to finalize the upgrade and returns the status
// and the Neutron error (type, message) if any.
func postFinalize(nd *node) (int, string, string, error) {
	resp, err := httpClient.Post("http://"+nd.http+"/v1/cluster/upgrade/finalize", "application/json", nil)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", "", err
	}
	var e struct {
		NeutronError struct{ Type, Message string }
	}
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, e.NeutronError.Type, e.NeutronError.Message, nil
}

// stopGracefully ends a node as an operator upgrading it would (SIGTERM),
// with SIGKILL after a deadline.
func (c *procCluster) stopGracefully(nd *node) {
	_ = nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.exited:
		nd.cmd = nil
	case <-time.After(20 * time.Second):
		c.kill(nd)
	}
}

// TestRollingUpgrade starts three servers of the previous release, then
// replaces them one at a time with this tree's binary while a writer keeps
// creating networks through every server. No acknowledged write is lost,
// the cluster elects a leader after every step, the new-only command
// (finalize) is refused with 503 UpgradeIncomplete naming an old server
// while one remains, and is accepted once the last is replaced.
// make upgrade-test runs it (building the old release takes minutes on a
// loaded machine).
func TestRollingUpgrade(t *testing.T) {
	if os.Getenv("NEUTRINO_UPGRADE_TEST") == "" {
		t.Skip("set NEUTRINO_UPGRADE_TEST=1 (make upgrade-test) to build the previous release and upgrade a cluster of it")
	}
	start := time.Now()
	old := buildPrevious(t)
	t.Logf("built %s in %s", previousRelease, time.Since(start).Round(time.Second))
	start = time.Now()
	c := newProcClusterOf(t, 3, old)
	c.leader(60 * time.Second)

	// The writer: one network at a time, through each server in turn.
	var (
		mu      sync.Mutex
		acked   []string
		refused int
		wg      sync.WaitGroup
		stop    = make(chan struct{})
	)
	addrs := []*node{{http: c.nodes[0].http}, {http: c.nodes[1].http}, {http: c.nodes[2].http}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id, ok := createNetwork(addrs[i%len(addrs)], fmt.Sprintf("upgrade-%d", i))
			mu.Lock()
			if ok {
				acked = append(acked, id)
			} else {
				refused++
			}
			mu.Unlock()
			if !ok {
				// A server being replaced refuses connections: do not spin.
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitWrites := func(n int, when string) {
		t.Helper()
		eventually(t, 60*time.Second, func() error {
			if got := ackedCount(); got < n {
				return fmt.Errorf("%s: %d acknowledged writes, want %d", when, got, n)
			}
			return nil
		})
	}
	waitWrites(10, "on the old release")

	for i, nd := range c.nodes {
		// While a server runs the old release, the new-only command is
		// refused; a new server refuses it itself, naming the old one.
		if i > 0 {
			code, typ, msg, err := postFinalize(c.nodes[0])
			if err != nil || code != http.StatusServiceUnavailable || typ != "UpgradeIncomplete" ||
				!strings.Contains(msg, "runs version unannounced") {
				t.Fatalf("finalize with %d of 3 servers upgraded: %d %s %q %v", i, code, typ, msg, err)
			}
			t.Logf("finalize with %d of 3 upgraded: %d %s: %s", i, code, typ, msg)
		} else if code, _, _, err := postFinalize(nd); err != nil || code == http.StatusOK {
			t.Fatalf("the old release finalized: %d %v", code, err)
		}
		before := ackedCount()
		c.stopGracefully(nd)
		nd.bin = ""
		c.start(nd)
		c.leader(60 * time.Second)
		// The replaced server catches up on everything acknowledged so
		// far, and writes go on.
		want := ackedCount()
		eventually(t, 60*time.Second, func() error {
			var l struct {
				Networks []any `json:"networks"`
			}
			code, err := getJSON("http://"+nd.http+"/v2.0/networks?stale&fields=id", &l)
			if err != nil || code != 200 || len(l.Networks) < want {
				return fmt.Errorf("upgraded %s has %d networks, want %d (%d %v)", nd.name, len(l.Networks), want, code, err)
			}
			return nil
		})
		waitWrites(before+10, fmt.Sprintf("after upgrading %s", nd.name))
	}

	// Every server runs this tree: the finalize commits once gossip carries
	// the last server's announcement.
	eventually(t, 60*time.Second, func() error {
		code, typ, msg, err := postFinalize(c.nodes[0])
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("finalize: %d %s %q %v", code, typ, msg, err)
		}
		return nil
	})
	for _, nd := range c.nodes {
		eventually(t, 30*time.Second, func() error {
			var st struct {
				Finalized uint64 `json:"upgrade_finalized_at"`
			}
			if _, err := getJSON("http://"+nd.http+"/v1/cluster", &st); err != nil || st.Finalized == 0 {
				return fmt.Errorf("%s: finalized at %d (%v)", nd.name, st.Finalized, err)
			}
			return nil
		})
	}

	close(stop)
	wg.Wait()
	leader := c.leader(60 * time.Second)
	mu.Lock()
	all := append([]string(nil), acked...)
	mu.Unlock()
	checkAll(t, c.networkIDs(leader), all, "after the rolling upgrade")
	t.Logf("%d writes acknowledged, %d refused or failed during the upgrade; upgrade took %s",
		len(all), refused, time.Since(start).Round(time.Second))
	var members struct {
		Members []struct {
			Name string         `json:"name"`
			Meta map[string]any `json:"meta"`
		} `json:"members"`
	}
	if _, err := getJSON("http://"+leader.http+"/v1/cluster/members", &members); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, m := range members.Members {
		if m.Meta["version"] != treeVersion || len(fmt.Sprint(m.Meta["commands"])) != 64 {
			t.Errorf("member %s announces version %v and commands %v after the upgrade", m.Name, m.Meta["version"], m.Meta["commands"])
		}
		fmt.Fprintf(&buf, " %s=%v", m.Name, m.Meta["version"])
	}
	t.Logf("versions:%s", buf.String())
}
