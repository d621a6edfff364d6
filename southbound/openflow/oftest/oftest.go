// Package oftest gives tests and benchmarks a real ovs-vswitchd bridge
// (via ovsproc, userspace datapath, own network namespace) connected to
// controllers built on package openflow. Everything it starts is stopped
// by the test's cleanup, by PID and namespace, even when the test fails.
package oftest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"neutrino/southbound/openflow"
	"neutrino/southbound/ovsproc"
)

// Bridge is the bridge name every test switch has.
const Bridge = "br-int"

var seq atomic.Int32

// Switch is a running ovs-vswitchd with Bridge (netdev, OpenFlow 1.3,
// fail_mode=secure so it forwards nothing without our flows).
type Switch struct {
	*ovsproc.Instance
}

// StartSwitch starts a switch or skips the test when OVS or root is missing.
func StartSwitch(t testing.TB, name string) *Switch {
	t.Helper()
	if err := ovsproc.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// pid+seq: test binaries of several packages may run at once.
	full := fmt.Sprintf("of%d-%d%s", os.Getpid()%100000, seq.Add(1), name)
	inst, err := ovsproc.Start(ctx, ovsproc.Options{Name: full})
	if err != nil {
		t.Fatalf("start switch %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("stop switch %s: %v", name, err)
		}
	})
	if _, err := inst.Vsctl(ctx, "add-br", Bridge, "--", "set", "Bridge", Bridge,
		"datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure"); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	return &Switch{Instance: inst}
}

// Controller is a listening controller endpoint for switches to connect to.
type Controller struct {
	*openflow.Listener
	Path string // the real unix socket
}

// NewController listens on a unix socket in a short temporary directory.
func NewController(t testing.TB, opts openflow.Options) *Controller {
	t.Helper()
	dir, err := os.MkdirTemp("", "ofc")
	if err != nil {
		t.Fatalf("controller dir: %v", err)
	}
	path := filepath.Join(dir, "c.sock")
	l, err := openflow.Listen("unix", path, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() {
		l.Close()
		os.RemoveAll(dir)
	})
	return &Controller{Listener: l, Path: path}
}

// Connect points the bridge at the given controllers (replacing earlier
// targets) and returns once each has accepted its connection.
func (s *Switch) Connect(t testing.TB, ctrls ...*Controller) []*openflow.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// One transaction creates the Controller rows with max_backoff=1000
	// (reconnect within a second, not after OVS's 8 s backoff) and points
	// the bridge at them; the active unix: target must lie inside the
	// switch's OVS_RUNDIR, so each gets a symlink there to the real socket.
	var args []string
	var ids []string
	for i, c := range ctrls {
		link := filepath.Join(s.RunDir(), fmt.Sprintf("ctl%d.sock", i))
		_ = os.Remove(link)
		if err := os.Symlink(c.Path, link); err != nil {
			t.Fatalf("symlink: %v", err)
		}
		id := fmt.Sprintf("@c%d", i)
		ids = append(ids, id)
		args = append(args, "--", "--id="+id, "create", "Controller", fmt.Sprintf("target=%q", "unix:"+link), "max_backoff=1000")
	}
	args = append(args, "--", "set", "Bridge", Bridge, "controller=["+strings.Join(ids, ",")+"]")
	if _, err := s.Vsctl(ctx, args...); err != nil {
		t.Fatalf("set controllers: %v", err)
	}
	conns := make([]*openflow.Conn, len(ctrls))
	for i, c := range ctrls {
		conn, err := c.Accept(ctx)
		if err != nil {
			t.Fatalf("accept on controller %d: %v", i, err)
		}
		t.Cleanup(func() { conn.Close() })
		conns[i] = conn
	}
	return conns
}

// Disconnect removes every controller target from the bridge.
func (s *Switch) Disconnect(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Vsctl(ctx, "del-controller", Bridge); err != nil {
		t.Fatalf("del-controller: %v", err)
	}
}

// OfctlFlows dumps the bridge with ovs-ofctl (no stats, no port names) and
// returns the flow lines sorted, for comparison with Expected.
func (s *Switch) OfctlFlows(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := s.Ofctl(ctx, "--no-stats", "--no-names", "dump-flows", Bridge)
	if err != nil {
		t.Fatalf("dump-flows: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "OFPST_FLOW") {
			continue
		}
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return lines
}

// Expected renders flows the way ovs-ofctl --no-stats prints them, sorted.
func Expected(flows []openflow.Flow) []string {
	out := make([]string, len(flows))
	for i := range flows {
		out[i] = flows[i].String()
	}
	sort.Strings(out)
	return out
}

// Eventually polls cond until it returns true or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ListenTCPIn opens a TCP listener on 127.0.0.1 inside a network namespace
// (a switch's), so an OVS `tcp:` or `ssl:127.0.0.1:PORT` controller
// target reaches it; the test's cleanup closes it.
func ListenTCPIn(t testing.TB, ns string) net.Listener {
	t.Helper()
	type res struct {
		ln  net.Listener
		err error
	}
	ch := make(chan res)
	go func() {
		// Never unlocked: the thread, moved to another namespace, ends
		// with the goroutine.
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err != nil {
			ch <- res{err: err}
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		ch <- res{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen in %s: %v", ns, r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}
